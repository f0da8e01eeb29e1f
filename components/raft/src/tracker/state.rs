//! The replication states a leader keeps per follower.

use std::fmt;

/// How the leader is currently sending the log to one follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressState {
    /// The leader does not know where the follower's log ends. It sends at
    /// most one append per heartbeat interval (or per response) to find out.
    #[default]
    Probe,
    /// The follower is known to be in sync up to `matched`; the leader
    /// streams appends optimistically, bounded by the inflight window.
    Replicate,
    /// The follower needs a snapshot; nothing else is sent until it has been
    /// applied or sending it failed.
    Snapshot,
}

impl fmt::Display for ProgressState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ProgressState::Probe => "StateProbe",
            ProgressState::Replicate => "StateReplicate",
            ProgressState::Snapshot => "StateSnapshot",
        };
        f.write_str(s)
    }
}
