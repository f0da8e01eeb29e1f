//! A snapshot of a group's state for inspection and admin APIs.

use std::fmt;

use flotilla_proto::raftpb::HardState;

use crate::raft::{Raft, SoftState, StateRole};
use crate::storage::Storage;
use crate::tracker::{Config as TrackerConfig, ProgressMap};

/// What a group looks like right now.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// This peer's id.
    pub id: u64,
    /// Term, vote and commit index.
    pub hard_state: HardState,
    /// Role and known leader.
    pub soft_state: SoftState,
    /// The applied index.
    pub applied: u64,
    /// The membership.
    pub config: TrackerConfig,
    /// Every peer's replication progress (leaders only).
    pub progress: Option<ProgressMap>,
    /// The target of a leadership transfer in progress, 0 when none.
    pub lead_transferee: u64,
}

impl Status {
    /// Reads the status of `raft`.
    pub fn new<S: Storage>(raft: &Raft<S>) -> Self {
        let progress = (raft.state == StateRole::Leader).then(|| raft.trk.progress.clone());
        Status {
            id: raft.id,
            hard_state: raft.hard_state(),
            soft_state: raft.soft_state(),
            applied: raft.raft_log.applied,
            config: raft.trk.config.clone(),
            progress,
            lead_transferee: raft.lead_transferee,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hs = &self.hard_state;
        writeln!(
            f,
            "{} {} term={} vote={} commit={} applied={} lead={}",
            self.id,
            self.soft_state.raft_state,
            hs.term,
            hs.vote,
            hs.commit,
            self.applied,
            self.soft_state.leader_id
        )?;
        write!(f, "config: {}", self.config)?;
        if self.lead_transferee != 0 {
            write!(f, "\ntransferring leadership to {}", self.lead_transferee)?;
        }
        if let Some(prs) = &self.progress {
            for (id, pr) in prs {
                write!(f, "\n{id}: {pr}")?;
            }
        }
        Ok(())
    }
}
