//! What the store's FSMs receive: [`PeerMsg`] for a region, [`StoreMsg`]
//! for the store.

use std::fmt;

use bytes::Bytes;
use flotilla_engine::KvPair;
use flotilla_proto::cmdpb::WriteCommand;
use flotilla_proto::metapb::{Region, RegionEpoch};
use flotilla_proto::serverpb::{HeartbeatEntry, RaftMessage};

use crate::errors::Result;

/// Called once with a request's outcome, from a poller thread: it must not
/// block.
pub type Callback<T> = Box<dyn FnOnce(Result<T>) + Send>;

/// A read of one region's data.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadRequest {
    /// The value of one key.
    Get {
        /// The key.
        key: Bytes,
    },
    /// Up to `limit` pairs from `start` (inclusive) to `end` (exclusive; empty
    /// for the end of the region), clipped to the region's range.
    Scan {
        /// First key.
        start: Bytes,
        /// End of the range, exclusive; empty for unbounded.
        end: Bytes,
        /// Pairs at most.
        limit: usize,
    },
}

/// The outcome of a [`ReadRequest`].
#[derive(Debug, Clone, PartialEq)]
pub enum ReadResponse {
    /// A `Get`'s value.
    Value(Option<Bytes>),
    /// A `Scan`'s pairs, in key order; `region_end` is where the region
    /// stops, so the caller knows where to continue.
    Pairs {
        /// The pairs found.
        pairs: Vec<KvPair>,
        /// The region's end key (empty: the end of the key space).
        region_end: Bytes,
    },
}

/// A message to one region's peer.
pub enum PeerMsg {
    /// A raft message from a peer on another store.
    Raft(Box<RaftMessage>),
    /// A heartbeat or response, fanned out from a coalesced frame.
    Heartbeat(HeartbeatEntry),
    /// One logical clock tick.
    Tick,
    /// A write to propose.
    Write {
        /// The command, with the epoch it was routed with.
        cmd: WriteCommand,
        /// Answered once the command is applied, or failed.
        cb: Callback<()>,
    },
    /// A linearizable read.
    Read {
        /// The epoch the read was routed with.
        epoch: RegionEpoch,
        /// What to read.
        req: ReadRequest,
        /// Answered with the data once it is safe to read.
        cb: Callback<ReadResponse>,
    },
    /// The peer has work left from the last round (a ready to collect).
    Wake,
    /// The store's writer made a ready durable that lets the peer move on
    /// (the peer reads which from its durable mark).
    Persisted,
    /// Reports the replica's state.
    Inspect(Callback<RegionStatus>),
    /// The transport cannot reach this store.
    StoreUnreachable(u64),
    /// What became of a snapshot sent to a peer.
    SnapshotStatus {
        /// The peer it was for.
        to_peer: u64,
        /// It reached the peer's store.
        delivered: bool,
    },
}

/// One replica's state, as [`PeerMsg::Inspect`] reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionStatus {
    /// The region as the replica knows it.
    pub region: Region,
    /// The replica's peer id.
    pub peer_id: u64,
    /// Whether it leads.
    pub is_leader: bool,
    /// The leader it knows of (peer id, 0 when none).
    pub leader_id: u64,
    /// Its term.
    pub term: u64,
    /// Its commit index.
    pub commit: u64,
    /// Its applied index.
    pub applied: u64,
    /// Its first and last log index.
    pub log_range: (u64, u64),
}

impl fmt::Debug for PeerMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerMsg::Raft(m) => write!(
                f,
                "Raft(region {}, {:?})",
                m.region_id,
                m.message.as_ref().map(|m| m.msg_type())
            ),
            PeerMsg::Heartbeat(h) => write!(f, "Heartbeat(region {})", h.region_id),
            PeerMsg::Tick => f.write_str("Tick"),
            PeerMsg::Write { cmd, .. } => write!(f, "Write({} requests)", cmd.requests.len()),
            PeerMsg::Read { req, .. } => f.write_str(match req {
                ReadRequest::Get { .. } => "Read(Get)",
                ReadRequest::Scan { .. } => "Read(Scan)",
            }),
            PeerMsg::Wake => f.write_str("Wake"),
            PeerMsg::Persisted => f.write_str("Persisted"),
            PeerMsg::Inspect(_) => f.write_str("Inspect"),
            PeerMsg::StoreUnreachable(s) => write!(f, "StoreUnreachable({s})"),
            PeerMsg::SnapshotStatus { to_peer, delivered } => {
                write!(f, "SnapshotStatus({to_peer}, {delivered})")
            }
        }
    }
}

/// A message to the store's own FSM.
#[derive(Debug)]
pub enum StoreMsg {
    /// One store tick: flush the coalesced heartbeats, then tick every
    /// region.
    Tick,
}
