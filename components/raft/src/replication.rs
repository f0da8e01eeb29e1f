//! Log replication: the leader's side (proposals, appends, heartbeats, flow
//! control, commit) and the follower's (accepting appends, heartbeats and
//! snapshots).

use flotilla_proto::raftpb::{Entry, EntryType, Message, MessageType, Snapshot};
use tracing::{debug, info, warn};

use crate::errors::{Error, Result, StorageError};
use crate::raft::{Raft, StateRole};
use crate::storage::Storage;
use crate::tracker::ProgressState;

impl<S: Storage> Raft<S> {
    pub(crate) fn step_leader(&mut self, mut m: Message) -> Result<()> {
        match m.msg_type() {
            MessageType::MsgBeat => {
                self.bcast_heartbeat();
                return Ok(());
            }
            MessageType::MsgCheckQuorum => {
                if !self.trk.quorum_active() {
                    warn!(
                        raft_id = self.id,
                        term = self.term,
                        "stepped down to follower since quorum is not active"
                    );
                    let term = self.term;
                    self.become_follower(term, 0);
                }
                // Activity is counted afresh for the next check.
                let id = self.id;
                for (&pid, pr) in self.trk.iter_mut() {
                    pr.recent_active = pid == id;
                }
                return Ok(());
            }
            MessageType::MsgPropose => return self.handle_propose(&mut m),
            MessageType::MsgReadIndex => {
                self.handle_read_index(m);
                return Ok(());
            }
            _ => {}
        }
        // Everything else is a response from a peer, or a local report about one.
        if self.trk.get(m.from).is_none() {
            debug!(
                raft_id = self.id,
                from = m.from,
                "no progress available for peer"
            );
            return Ok(());
        }
        match m.msg_type() {
            MessageType::MsgAppendResponse => self.handle_append_response(&m),
            MessageType::MsgHeartbeatResponse => self.handle_heartbeat_response(&m),
            MessageType::MsgSnapshotStatus => self.handle_snapshot_status(&m),
            MessageType::MsgUnreachable => {
                let pr = self.trk.get_mut(m.from).expect("checked above");
                // An append may have been lost: stop streaming and probe.
                if pr.state == ProgressState::Replicate {
                    pr.become_probe();
                }
                debug!(
                    raft_id = self.id,
                    to = m.from,
                    "failed to send message to peer"
                );
            }
            MessageType::MsgTransferLeader => self.handle_transfer_leader(&m),
            _ => {}
        }
        Ok(())
    }

    fn handle_propose(&mut self, m: &mut Message) -> Result<()> {
        if m.entries.is_empty() {
            warn!(
                raft_id = self.id,
                from = m.from,
                "dropping an empty proposal"
            );
            return Err(Error::ProposalDropped);
        }
        if self.trk.get(self.id).is_none() {
            // Removed from the configuration while leading: we cannot
            // replicate new entries any more.
            return Err(Error::ProposalDropped);
        }
        if self.lead_transferee != 0 {
            debug!(
                raft_id = self.id,
                term = self.term,
                transferee = self.lead_transferee,
                "leader transfer in progress; dropping proposal"
            );
            return Err(Error::ProposalDropped);
        }
        for e in m.entries.iter_mut() {
            self.vet_conf_change_entry(e);
        }
        let ents = std::mem::take(&mut m.entries);
        if !self.append_entry(ents) {
            return Err(Error::ProposalDropped);
        }
        self.bcast_append();
        Ok(())
    }

    /// Replaces a proposed membership change that cannot be accepted now
    /// with an empty normal entry, so the proposal still gets an index.
    fn vet_conf_change_entry(&mut self, e: &mut Entry) {
        let cc = match e.entry_type() {
            EntryType::EntryNormal => return,
            EntryType::EntryConfChange => {
                crate::decode_conf_change(e).map(flotilla_proto::raftpb::ConfChange::into_v2)
            }
            EntryType::EntryConfChangeV2 => crate::decode_conf_change_v2(e),
        };
        let refuse = match cc {
            Err(_) => Some("undecodable".to_string()),
            Ok(cc) => {
                let joint = self.trk.config.voters.is_joint();
                if self.pending_conf_index > self.raft_log.applied {
                    Some(format!(
                        "possible unapplied conf change at index {} (applied to {})",
                        self.pending_conf_index, self.raft_log.applied
                    ))
                } else if joint && !cc.leaves_joint() {
                    Some("must transition out of joint config first".to_string())
                } else if !joint && cc.leaves_joint() {
                    Some("not in joint state; refusing empty conf change".to_string())
                } else {
                    None
                }
            }
        };
        match refuse {
            Some(why) => {
                info!(
                    raft_id = self.id,
                    term = self.term,
                    "ignoring conf change: {why}"
                );
                *e = Entry {
                    entry_type: EntryType::EntryNormal as i32,
                    ..Default::default()
                };
            }
            None => self.pending_conf_index = self.raft_log.last_index() + 1,
        }
    }

    /// Appends entries to the leader's log, stamped with our term and the
    /// next indexes. Returns false (appending nothing) when the
    /// uncommitted-size cap would be exceeded.
    pub(crate) fn append_entry(&mut self, mut es: Vec<Entry>) -> bool {
        let last = self.raft_log.last_index();
        for (i, e) in es.iter_mut().enumerate() {
            e.term = self.term;
            e.index = last + 1 + i as u64;
        }
        if !self.increase_uncommitted_size(&es) {
            debug!(
                raft_id = self.id,
                term = self.term,
                "appending entries would exceed the uncommitted size cap; dropping proposal"
            );
            return false;
        }
        let last = self.raft_log.append(&es);
        // Our own acknowledgement counts once the entries are durable.
        self.send(Message {
            to: self.id,
            msg_type: MessageType::MsgAppendResponse as i32,
            index: last,
            ..Default::default()
        });
        true
    }

    fn increase_uncommitted_size(&mut self, es: &[Entry]) -> bool {
        let size: u64 = es.iter().map(|e| e.data.len() as u64).sum();
        // An empty payload (leader entry, leave-joint change) always fits, and
        // so does any single proposal when nothing is outstanding.
        if self.uncommitted_bytes > 0
            && size > 0
            && self.uncommitted_bytes.saturating_add(size) > self.uncommitted_bytes_max
        {
            return false;
        }
        self.uncommitted_bytes = self.uncommitted_bytes.saturating_add(size);
        true
    }

    /// Releases the uncommitted-size budget of entries handed out to apply.
    pub fn reduce_uncommitted_size(&mut self, es: &[Entry]) {
        if self.state != StateRole::Leader {
            return;
        }
        let size: u64 = es.iter().map(|e| e.data.len() as u64).sum();
        // Entries of a previous term were never counted; never go below zero.
        self.uncommitted_bytes = self.uncommitted_bytes.saturating_sub(size);
    }

    /// Advances the commit index to what a quorum has acknowledged, if that
    /// index is of the current term. Returns whether it moved.
    pub fn maybe_commit(&mut self) -> bool {
        let mci = self.trk.committed();
        if !self.raft_log.maybe_commit(mci, self.term) {
            return false;
        }
        self.release_pending_read_index_messages();
        true
    }

    /// Whether this leader has committed an entry of its own term (until
    /// then its commit index may be behind and cannot serve reads).
    pub fn committed_entry_in_current_term(&self) -> bool {
        let committed = self.raft_log.committed;
        self.raft_log
            .zero_term_on_out_of_range(self.raft_log.term(committed))
            == self.term
    }

    // ---- sending appends and heartbeats ----------------------------------

    /// Sends an append (or a snapshot) to `to` if its progress allows.
    pub fn send_append(&mut self, to: u64) {
        self.maybe_send_append(to, true);
    }

    /// Sends an append to `to` unless it is paused, or there is nothing new
    /// and `send_if_empty` is false. Returns whether a message was sent.
    pub fn maybe_send_append(&mut self, to: u64, send_if_empty: bool) -> bool {
        let Some(pr) = self.trk.get(to) else {
            return false;
        };
        if pr.is_paused() {
            return false;
        }
        let next = pr.next_idx;
        let term = self.raft_log.term(next - 1);
        let ents = self.raft_log.entries(next, self.msg_bytes_max);
        let (term, ents) = match (term, ents) {
            (Ok(t), Ok(es)) => (t, es),
            _ => return self.maybe_send_snapshot(to),
        };
        if ents.is_empty() && !send_if_empty {
            return false;
        }
        let bytes: u64 = crate::util::entries_size(&ents);
        let last = ents.last().map_or(next - 1, |e| e.index);
        let commit = self.raft_log.committed;
        let pr = self.trk.get_mut(to).expect("checked above");
        pr.update_on_entries_send(last, bytes);
        pr.committed_index = pr.committed_index.max(commit);
        self.send(Message {
            to,
            msg_type: MessageType::MsgAppend as i32,
            index: next - 1,
            log_term: term,
            entries: ents,
            commit,
            ..Default::default()
        });
        true
    }

    /// The entries a follower needs were compacted: send a snapshot instead.
    fn maybe_send_snapshot(&mut self, to: u64) -> bool {
        if !self.trk.get(to).is_some_and(|pr| pr.recent_active) {
            debug!(
                raft_id = self.id,
                to, "not sending a snapshot to a recently inactive peer"
            );
            return false;
        }
        let snapshot = match self.raft_log.snapshot() {
            Ok(s) => s,
            Err(Error::Store(StorageError::SnapshotTemporarilyUnavailable)) => {
                debug!(
                    raft_id = self.id,
                    to, "snapshot temporarily unavailable; will retry"
                );
                return false;
            }
            Err(e) => panic!("raft {}: cannot read a snapshot for {to}: {e}", self.id),
        };
        assert!(
            !snapshot.is_empty(),
            "raft {}: need a non-empty snapshot for {to}",
            self.id
        );
        let (sindex, sterm) = (snapshot.index(), snapshot.term());
        let pr = self.trk.get_mut(to).expect("checked above");
        info!(
            raft_id = self.id,
            to,
            snapshot_index = sindex,
            snapshot_term = sterm,
            "leader sends a snapshot to peer in {}",
            pr
        );
        pr.become_snapshot(sindex);
        self.send(Message {
            to,
            msg_type: MessageType::MsgSnapshot as i32,
            snapshot: Some(Box::new(snapshot)),
            ..Default::default()
        });
        true
    }

    /// Sends appends to every peer that can take one.
    pub fn bcast_append(&mut self) {
        for id in self.peer_ids() {
            self.send_append(id);
        }
    }

    /// Sends heartbeats to every peer, carrying the newest pending read's context.
    pub fn bcast_heartbeat(&mut self) {
        let ctx = self
            .read_only
            .last_pending_request_ctx()
            .unwrap_or_default();
        for id in self.peer_ids() {
            self.send_heartbeat(id, ctx.clone());
        }
    }

    pub(crate) fn send_heartbeat(&mut self, to: u64, context: bytes::Bytes) {
        let Some(pr) = self.trk.get_mut(to) else {
            return;
        };
        // A follower must not learn a commit index beyond what it holds,
        // or it would commit entries it does not have.
        let commit = pr.matched.min(self.raft_log.committed);
        pr.committed_index = pr.committed_index.max(commit);
        self.send(Message {
            to,
            msg_type: MessageType::MsgHeartbeat as i32,
            commit,
            context,
            ..Default::default()
        });
    }

    /// Every peer in the configuration except this one, in id order.
    pub(crate) fn peer_ids(&self) -> Vec<u64> {
        self.trk
            .iter()
            .map(|(&id, _)| id)
            .filter(|&id| id != self.id)
            .collect()
    }

    // ---- the leader's view of responses ----------------------------------

    fn handle_append_response(&mut self, m: &Message) {
        let from = m.from;
        let pr = self.trk.get_mut(from).expect("caller checked the peer");
        pr.recent_active = true;
        if m.reject {
            debug!(
                raft_id = self.id,
                from,
                reject_index = m.index,
                hint = m.reject_hint,
                "received MsgAppendResponse rejection"
            );
            let mut next_probe = m.reject_hint;
            if m.log_term > 0 {
                // Skip every entry of ours above the follower's hint whose
                // term is above the follower's term at the hint: they cannot
                // match (fast backtracking).
                next_probe = self
                    .raft_log
                    .find_conflict_by_term(m.reject_hint, m.log_term)
                    .0;
            }
            let pr = self.trk.get_mut(from).expect("caller checked the peer");
            if pr.maybe_decr_to(m.index, next_probe) {
                if pr.state == ProgressState::Replicate {
                    pr.become_probe();
                }
                self.send_append(from);
            }
            return;
        }
        if m.index > self.raft_log.last_index() {
            // No correct peer acknowledges entries we never had; obeying it
            // would break `matched < next_idx` and the commit rule.
            warn!(
                raft_id = self.id,
                from,
                index = m.index,
                "ignored an ack beyond our log"
            );
            return;
        }
        let pr = self.trk.get_mut(from).expect("caller checked the peer");
        let old_paused = pr.is_paused();
        if !pr.maybe_update(m.index) {
            return;
        }
        match pr.state {
            ProgressState::Probe => pr.become_replicate(),
            ProgressState::Snapshot if pr.is_snapshot_caught_up() => {
                pr.become_probe();
                pr.become_replicate();
            }
            ProgressState::Replicate => pr.inflights.free_to(m.index),
            ProgressState::Snapshot => {}
        }
        if self.maybe_commit() {
            // Without the broadcast, the commit rides on the appends that
            // carry entries; the rest learn it from their next append or
            // heartbeat.
            for id in self.peer_ids() {
                self.maybe_send_append(id, self.broadcast_commit);
            }
        } else if old_paused && from != self.id {
            self.send_append(from);
        }
        if from != self.id {
            // Stream whatever else the window allows.
            while self.maybe_send_append(from, false) {}
        }
        let matched = self.trk.get(from).map_or(0, |pr| pr.matched);
        if from == self.lead_transferee && matched == self.raft_log.last_index() {
            info!(
                raft_id = self.id,
                to = from,
                "sent MsgTimeoutNow after log caught up"
            );
            self.send_timeout_now(from);
        }
    }

    fn handle_heartbeat_response(&mut self, m: &Message) {
        let last_index = self.raft_log.last_index();
        let pr = self.trk.get_mut(m.from).expect("caller checked the peer");
        pr.recent_active = true;
        pr.resume();
        // A heartbeat response means the follower is reachable: free one
        // slot of a full window so a lost append does not stall it forever.
        if pr.state == ProgressState::Replicate && pr.inflights.full() {
            pr.inflights.free_first_one();
        }
        if pr.matched < last_index {
            self.send_append(m.from);
        }
        if m.context.is_empty() {
            return;
        }
        self.handle_read_ack(m.from, &m.context);
    }

    fn handle_snapshot_status(&mut self, m: &Message) {
        let pr = self.trk.get_mut(m.from).expect("caller checked the peer");
        if pr.state != ProgressState::Snapshot {
            return;
        }
        if m.reject {
            pr.pending_snapshot = 0;
            debug!(
                raft_id = self.id,
                to = m.from,
                "snapshot failed; resuming probing"
            );
        } else {
            debug!(
                raft_id = self.id,
                to = m.from,
                "snapshot sent; resuming probing"
            );
        }
        pr.become_probe();
        // Wait for a heartbeat response before the next append, so the
        // follower has time to apply the snapshot.
        pr.pause();
    }

    // ---- the follower's side ---------------------------------------------

    /// Whether an append's entries are consecutive from `index + 1` with
    /// terms never above the message's. A peer that sends otherwise is
    /// broken; dropping its message keeps our log safe.
    fn valid_append(&self, m: &Message) -> bool {
        let mut prev_term = m.log_term;
        for (i, e) in m.entries.iter().enumerate() {
            if e.index != m.index + 1 + i as u64 || e.term < prev_term || e.term > m.term {
                return false;
            }
            prev_term = e.term;
        }
        true
    }

    pub(crate) fn handle_append_entries(&mut self, m: &Message) {
        if !self.valid_append(m) {
            warn!(
                raft_id = self.id,
                from = m.from,
                index = m.index,
                "dropping a malformed append"
            );
            return;
        }
        if m.index < self.raft_log.committed {
            // Already committed here: tell the leader where we are.
            self.send(Message {
                to: m.from,
                msg_type: MessageType::MsgAppendResponse as i32,
                index: self.raft_log.committed,
                ..Default::default()
            });
            return;
        }
        if let Some(last) = self
            .raft_log
            .maybe_append(m.index, m.log_term, m.commit, &m.entries)
        {
            self.send(Message {
                to: m.from,
                msg_type: MessageType::MsgAppendResponse as i32,
                index: last,
                ..Default::default()
            });
            return;
        }
        // Our log does not match at m.index. Hint the leader at the largest
        // index whose term is at most m.log_term: all entries between it and
        // m.index are certain to conflict.
        let hint = m.index.min(self.raft_log.last_index());
        let (hint_index, hint_term) = self.raft_log.find_conflict_by_term(hint, m.log_term);
        debug!(
            raft_id = self.id,
            from = m.from,
            index = m.index,
            log_term = m.log_term,
            hint_index,
            hint_term,
            "rejected append"
        );
        self.send(Message {
            to: m.from,
            msg_type: MessageType::MsgAppendResponse as i32,
            index: m.index,
            reject: true,
            reject_hint: hint_index,
            log_term: hint_term,
            ..Default::default()
        });
    }

    pub(crate) fn handle_heartbeat(&mut self, m: &Message) {
        let last = self.raft_log.last_index();
        if m.commit > last {
            warn!(
                raft_id = self.id,
                from = m.from,
                commit = m.commit,
                last_index = last,
                "heartbeat commit beyond our log; clamping"
            );
        }
        self.raft_log.commit_to(m.commit.min(last));
        self.send(Message {
            to: m.from,
            msg_type: MessageType::MsgHeartbeatResponse as i32,
            context: m.context.clone(),
            ..Default::default()
        });
    }

    pub(crate) fn handle_snapshot(&mut self, mut m: Message) {
        let snap = m.snapshot.take().map(|s| *s).unwrap_or_default();
        let (sindex, sterm) = (snap.index(), snap.term());
        let index = if self.restore(snap) {
            info!(
                raft_id = self.id,
                commit = self.raft_log.committed,
                sindex,
                sterm,
                "restored snapshot"
            );
            self.raft_log.last_index()
        } else {
            info!(
                raft_id = self.id,
                commit = self.raft_log.committed,
                sindex,
                sterm,
                "ignored snapshot"
            );
            self.raft_log.committed
        };
        self.send(Message {
            to: m.from,
            msg_type: MessageType::MsgAppendResponse as i32,
            index,
            ..Default::default()
        });
    }

    /// Resets the log and the configuration to a snapshot. Returns false
    /// when the snapshot is stale, malformed, excludes us, or is already
    /// covered by our log (then only the commit index moves).
    pub fn restore(&mut self, snap: Snapshot) -> bool {
        let Some(meta) = snap.metadata.as_ref() else {
            return false;
        };
        if meta.index <= self.raft_log.committed {
            return false;
        }
        if self.state != StateRole::Follower {
            // Only a follower is sent snapshots; defend against a confused peer.
            warn!(
                raft_id = self.id,
                "non-follower attempted to restore snapshot"
            );
            let term = self.term + 1;
            self.become_follower(term, 0);
            return false;
        }
        let cs = meta.conf_state.clone().unwrap_or_default();
        let in_config = [&cs.voters, &cs.learners, &cs.voters_outgoing]
            .iter()
            .any(|set| set.contains(&self.id));
        if !in_config {
            warn!(
                raft_id = self.id,
                "attempted to restore a snapshot that excludes us"
            );
            return false;
        }
        if self.raft_log.match_term(meta.index, meta.term) {
            // We already have the snapshot's entries: fast-forward the commit.
            self.raft_log.commit_to(meta.index);
            return false;
        }
        let (cfg, prs) = match crate::confchange::restore(&self.trk, meta.index, &cs) {
            Ok(x) => x,
            Err(e) => {
                warn!(
                    raft_id = self.id,
                    "snapshot carries an unusable configuration: {e}"
                );
                return false;
            }
        };
        self.raft_log.restore(snap);
        self.switch_to_config(cfg, prs);
        true
    }
}
