//! The store's errors: what a request can fail with, typed so that a client
//! knows how to retry (another leader, a refreshed region, later).

use bytes::Bytes;
use flotilla_proto::metapb::{Peer, Region};

/// What a store operation can fail with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// This peer is not the region's leader; `leader` is a hint, when known.
    #[error("region {region_id}: this peer is not the leader (hint: {leader:?})")]
    NotLeader {
        /// The region the request was for.
        region_id: u64,
        /// The leader this peer believes in, if any.
        leader: Option<Peer>,
    },
    /// The request was routed with an epoch that is no longer the region's;
    /// `current` is the region as this store knows it now.
    #[error("region {region_id}: the request's epoch is stale")]
    EpochNotMatch {
        /// The region the request was for.
        region_id: u64,
        /// The region's current shape.
        current: Box<Region>,
    },
    /// A key of the request is outside the region's range.
    #[error("region {}: key is not in its range", region.id)]
    KeyNotInRegion {
        /// The offending key.
        key: Bytes,
        /// The region's current shape.
        region: Box<Region>,
    },
    /// The store holds no replica of the region.
    #[error("store {store_id} has no region {region_id}")]
    RegionNotFound {
        /// The region asked for.
        region_id: u64,
        /// The store asked.
        store_id: u64,
    },
    /// The proposal was lost to a change of leader or term; retrying it is
    /// safe only for idempotent commands.
    #[error("command was superseded before it committed")]
    StaleCommand,
    /// The region or store refused to take more work now.
    #[error("server is busy: {0}")]
    ServerIsBusy(String),
    /// No answer within the request's deadline.
    #[error("request timed out")]
    Timeout,
    /// The store is shutting down or stopped.
    #[error("store {0} is stopped")]
    StoreStopped(u64),
    /// The request itself is malformed.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The storage engine failed.
    #[error("engine: {0}")]
    Engine(String),
}

impl From<flotilla_engine::Error> for Error {
    fn from(e: flotilla_engine::Error) -> Self {
        Error::Engine(e.to_string())
    }
}

/// The store's result type.
pub type Result<T> = std::result::Result<T, Error>;
