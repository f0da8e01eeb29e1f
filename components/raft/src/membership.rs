//! Membership changes and leadership transfer.

use flotilla_proto::raftpb::{ConfChangeV2, ConfState, Message, MessageType};
use tracing::{debug, info};

use crate::confchange::Changer;
use crate::errors::Result;
use crate::raft::{Raft, StateRole};
use crate::storage::Storage;
use crate::tracker::{Config as TrackerConfig, ProgressMap};

impl<S: Storage> Raft<S> {
    /// Applies a committed membership change and returns the new membership.
    /// An invalid change is an error and leaves the configuration as it was.
    pub fn apply_conf_change(&mut self, cc: &ConfChangeV2) -> Result<ConfState> {
        let changer = Changer::new(&self.trk, self.raft_log.last_index());
        let (cfg, prs) = if cc.leaves_joint() {
            changer.leave_joint()?
        } else if let Some(auto_leave) = cc.enters_joint() {
            changer.enter_joint(auto_leave, &cc.changes)?
        } else {
            changer.simple(&cc.changes)?
        };
        Ok(self.switch_to_config(cfg, prs))
    }

    /// Installs a new configuration and reacts to it: learn whether we are a
    /// learner, commit what the new quorum allows, and abort a transfer to a
    /// peer that left.
    pub(crate) fn switch_to_config(&mut self, cfg: TrackerConfig, prs: ProgressMap) -> ConfState {
        self.trk.apply_conf(cfg, prs);
        info!(raft_id = self.id, config = %self.trk.config, "switched to configuration");
        let cs = self.trk.conf_state();
        let me = self.trk.get(self.id);
        self.is_learner = me.is_some_and(|pr| pr.is_learner);
        if (me.is_none() || self.is_learner) && self.state == StateRole::Leader {
            // Removed or demoted while leading. We keep leading until the
            // host stops this peer or a new leader takes over; proposals are
            // refused meanwhile (we have no progress of our own).
            return cs;
        }
        if self.state != StateRole::Leader || cs.voters.is_empty() {
            return cs;
        }
        if self.maybe_commit() {
            // The new quorum committed more: tell everyone.
            self.bcast_append();
        } else {
            // New peers need their first append; others may learn nothing.
            for id in self.peer_ids() {
                self.maybe_send_append(id, false);
            }
        }
        if self.lead_transferee != 0 && !self.trk.config.voters.contains(self.lead_transferee) {
            self.abort_leader_transfer();
        }
        cs
    }

    pub(crate) fn handle_transfer_leader(&mut self, m: &Message) {
        let target = m.from;
        let Some((is_learner, matched)) =
            self.trk.get(target).map(|pr| (pr.is_learner, pr.matched))
        else {
            return;
        };
        if is_learner {
            debug!(
                raft_id = self.id,
                target, "ignored transferring leadership to a learner"
            );
            return;
        }
        if self.lead_transferee != 0 {
            if self.lead_transferee == target {
                info!(
                    raft_id = self.id,
                    target, "transfer to the same peer already in progress"
                );
                return;
            }
            self.abort_leader_transfer();
        }
        if target == self.id {
            debug!(
                raft_id = self.id,
                "already leader; ignored transfer to self"
            );
            return;
        }
        info!(
            raft_id = self.id,
            term = self.term,
            target,
            "starting leadership transfer"
        );
        // The transfer must finish within an election timeout.
        self.election_elapsed = 0;
        self.lead_transferee = target;
        if matched == self.raft_log.last_index() {
            self.send_timeout_now(target);
        } else {
            self.send_append(target);
        }
    }

    /// Tells `to` to campaign at once.
    pub(crate) fn send_timeout_now(&mut self, to: u64) {
        self.send(Message {
            to,
            msg_type: MessageType::MsgTimeoutNow as i32,
            ..Default::default()
        });
    }

    /// Whether the group is idle from this leader's view: every peer has all
    /// entries and knows the commit index, nothing is in flight, pending or
    /// unapplied. An idle group needs no ticks until something arrives.
    pub fn is_quiescent(&self) -> bool {
        if self.state != StateRole::Leader
            || self.lead_transferee != 0
            || self.read_only.pending_read_count() > 0
            || !self.pending_read_index_messages.is_empty()
            || !self.msgs.is_empty()
            || !self.msgs_after_append.is_empty()
        {
            return false;
        }
        let log = &self.raft_log;
        let last = log.last_index();
        if log.committed != last || log.applied != last || log.persisted_index() != last {
            return false;
        }
        self.trk
            .iter()
            .all(|(&id, pr)| id == self.id || (pr.matched == last && pr.committed_index >= last))
    }
}
