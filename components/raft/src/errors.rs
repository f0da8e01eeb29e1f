//! The raft core's errors. Invariant violations are bugs and panic; these are
//! the conditions a caller can meet in normal operation and handle.

use thiserror::Error;

/// What can go wrong when driving a raft group.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The log storage failed or could not serve the request.
    #[error("raft storage: {0}")]
    Store(#[from] StorageError),
    /// A local-only message (hup, beat, ...) was passed to `step` from the network.
    #[error("raft: cannot step a local message received from the network")]
    StepLocalMsg,
    /// A response arrived from a peer that is not in the configuration.
    #[error("raft: cannot step a response from unknown peer {0}")]
    StepPeerNotFound(u64),
    /// The proposal was not accepted: no leader, leadership transfer in
    /// progress, uncommitted-size cap reached, or this peer was removed.
    #[error("raft: proposal dropped")]
    ProposalDropped,
    /// A message from a peer breaks the protocol's rules and was dropped.
    #[error("raft: malformed message: {0}")]
    MalformedMessage(String),
    /// The configuration given to `RawNode::new` is invalid.
    #[error("raft: invalid config: {0}")]
    ConfigInvalid(String),
    /// A membership change cannot be applied to the current configuration.
    #[error("raft: invalid configuration change: {0}")]
    ConfChange(String),
    /// A message or entry payload could not be decoded.
    #[error("raft: cannot decode {what}: {source}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// The decoder's error.
        source: prost::DecodeError,
    },
}

impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Error::Store(a), Error::Store(b)) => a == b,
            (Error::StepLocalMsg, Error::StepLocalMsg) => true,
            (Error::StepPeerNotFound(a), Error::StepPeerNotFound(b)) => a == b,
            (Error::ProposalDropped, Error::ProposalDropped) => true,
            (Error::ConfigInvalid(a), Error::ConfigInvalid(b)) => a == b,
            (Error::MalformedMessage(a), Error::MalformedMessage(b)) => a == b,
            (Error::ConfChange(a), Error::ConfChange(b)) => a == b,
            (Error::Decode { what: a, .. }, Error::Decode { what: b, .. }) => a == b,
            _ => false,
        }
    }
}

/// Why a [`Storage`](crate::Storage) call could not be served.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The requested index is older than the first entry still kept.
    #[error("log compacted: requested index is older than the first kept entry")]
    Compacted,
    /// The requested index is newer than the last entry.
    #[error("requested entry is unavailable")]
    Unavailable,
    /// The requested snapshot is older than the one already stored.
    #[error("snapshot out of date")]
    SnapshotOutOfDate,
    /// A snapshot is being generated; ask again later.
    #[error("snapshot temporarily unavailable")]
    SnapshotTemporarilyUnavailable,
    /// Any other failure of the backing store (I/O, corruption, ...).
    #[error("{0}")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl PartialEq for StorageError {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (StorageError::Other(a), StorageError::Other(b)) => a.to_string() == b.to_string(),
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

/// The raft core's result type.
pub type Result<T> = std::result::Result<T, Error>;
