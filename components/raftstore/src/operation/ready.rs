//! A peer's part in a round: its ready goes into the round's one write
//! batch and its messages into the round's frames; its committed entries
//! (durable here already) apply; once the batch is durable, its
//! acknowledgements leave.

use std::sync::Arc;

use flotilla_proto::metapb::Peer as PeerMeta;
use flotilla_proto::raftpb::{Message, MessageType};
use flotilla_proto::serverpb::{HeartbeatEntry, RaftMessage};
use flotilla_raft::{Ready, SnapshotStatus, StateRole};

use crate::errors::Error;
use crate::fsm::RoundCtx;
use crate::fsm::writer::Durable;
use crate::raft::Peer;

impl Peer {
    /// Steps a raft message from another store.
    pub(crate) fn on_raft_message(&mut self, m: RaftMessage) {
        let to = m.to_peer.as_ref().map_or(0, |p| p.id);
        if to != self.peer_id {
            tracing::debug!(
                region_id = self.region_id,
                to,
                "message for another peer id; dropped"
            );
            return;
        }
        let Some(msg) = m.message else { return };
        if let Err(e) = self.raft.step(msg) {
            tracing::debug!(region_id = self.region_id, error = %e, "message refused");
        }
    }

    /// The transport lost `store`: a leader stops streaming to its peer
    /// there and probes it instead.
    pub(crate) fn on_store_unreachable(&mut self, store: u64) {
        let peers: Vec<u64> = self
            .peers
            .values()
            .filter(|p| p.store_id == store)
            .map(|p| p.id)
            .collect();
        for id in peers {
            self.raft.report_unreachable(id);
        }
    }

    /// Steps one entry of a coalesced heartbeat frame.
    pub(crate) fn on_heartbeat(&mut self, h: &HeartbeatEntry) {
        if h.to_peer != self.peer_id {
            return;
        }
        let msg_type = if h.response {
            MessageType::MsgHeartbeatResponse
        } else {
            MessageType::MsgHeartbeat
        };
        let m = Message {
            msg_type: msg_type as i32,
            from: h.from_peer,
            to: h.to_peer,
            term: h.term,
            commit: h.commit,
            ..Default::default()
        };
        if let Err(e) = self.raft.step(m) {
            tracing::debug!(region_id = self.region_id, error = %e, "heartbeat refused");
        }
    }

    /// Takes the peer's ready, if any, into the round: log entries, hard
    /// state and snapshot into the write batch, messages into the frames.
    pub(crate) fn collect_ready(&mut self, ctx: &mut RoundCtx, slot: usize) {
        if !self.raft.has_ready() {
            return;
        }
        let mut rd = self.raft.ready();
        if let Some(ss) = rd.soft_state {
            self.on_role_change(ss.raft_state, ctx);
        }
        if !rd.read_states.is_empty() {
            self.on_read_states(std::mem::take(&mut rd.read_states));
        }
        if let Some(last) = rd.committed_entries.last() {
            let now = ctx.clock.now();
            for p in self
                .proposals
                .iter_mut()
                .take_while(|p| p.index <= last.index)
            {
                if !p.committed {
                    p.committed = true;
                    ctx.stats
                        .record_commit_latency(now.saturating_sub(p.proposed_at));
                }
            }
        }
        if let Some(snap) = &rd.snapshot {
            let store = self.raft.store_mut();
            match store.apply_snapshot(snap, &mut ctx.wb) {
                Ok(()) => {
                    ctx.stats.record_snapshot(false);
                    self.refresh_peers();
                    ctx.region_changed(self.region().clone());
                }
                Err(e) => {
                    tracing::error!(region_id = self.region_id, error = %e, "snapshot not installed")
                }
            }
        }
        if !rd.entries.is_empty() {
            ctx.wrote = true;
            ctx.entries += rd.entries.len();
            ctx.entry_bytes += rd.entries.iter().map(|e| e.data.len() as u64).sum::<u64>();
            self.raft.store_mut().append(&rd.entries, &mut ctx.wb);
        }
        if let Some(hs) = rd.hard_state {
            self.raft.store_mut().set_hard_state(hs, &mut ctx.wb);
        }
        ctx.must_sync |= rd.must_sync;
        ctx.wrote |= rd.must_sync || rd.hard_state.is_some() || rd.snapshot.is_some();
        let messages = std::mem::take(&mut rd.messages);
        self.send(ctx, messages, false);
        ctx.pending.push((slot, rd));
    }

    fn on_role_change(&mut self, role: StateRole, ctx: &mut RoundCtx) {
        let leading = role == StateRole::Leader;
        if leading && !self.leading {
            ctx.stats.leaders_changed(1.0);
            tracing::debug!(
                region_id = self.region_id,
                term = self.raft.raft.term,
                "became leader"
            );
        } else if !leading && self.leading {
            ctx.stats.leaders_changed(-1.0);
            // Proposals still waiting may yet commit under the next leader,
            // or be overwritten; this peer can no longer tell its proposers
            // which. They hear StaleCommand now (outcome unknown: a client
            // retries, at least once) rather than nothing until this peer
            // rejoins the group.
            for p in self.proposals.drain(..) {
                ctx.answers
                    .push(Box::new(move || (p.cb)(Err(Error::StaleCommand))));
            }
        }
        self.leading = leading;
        if !leading {
            self.lease.expire();
            self.fail_reads();
        }
    }

    /// Puts messages into the round: heartbeats without a read context to
    /// the store's coalescer, everything else into the round's frames, or,
    /// `after_write`, into the frames that leave once the store's writer
    /// made the round durable.
    pub(crate) fn send(&mut self, ctx: &mut RoundCtx, msgs: Vec<Message>, after_write: bool) {
        for m in msgs {
            let Some(to) = self.peers.get(&m.to).cloned() else {
                tracing::debug!(
                    region_id = self.region_id,
                    to = m.to,
                    "no such peer; message dropped"
                );
                continue;
            };
            let t = m.msg_type();
            if t.is_heartbeat()
                && m.context.is_empty()
                && ctx.shared.cfg.cross_region_batching
                && !after_write
            {
                ctx.heartbeats_out.push((
                    to.store_id,
                    HeartbeatEntry {
                        region_id: self.region_id,
                        from_peer: m.from,
                        to_peer: m.to,
                        term: m.term,
                        commit: m.commit,
                        response: t == MessageType::MsgHeartbeatResponse,
                    },
                ));
                continue;
            }
            if t.is_heartbeat() && !ctx.shared.cfg.cross_region_batching {
                // The naive design: each heartbeat travels in its region's
                // own frame, so each counts as a heartbeat frame.
                ctx.stats.record_heartbeat_frame(1);
            }
            let is_snapshot = t == MessageType::MsgSnapshot;
            let from = PeerMeta {
                id: self.peer_id,
                store_id: self.store_id,
                ..Default::default()
            };
            let to_store = to.store_id;
            let msg = RaftMessage {
                region_id: self.region_id,
                from_peer: Some(from),
                to_peer: Some(to),
                region_epoch: self.region().region_epoch,
                message: Some(m),
            };
            if is_snapshot {
                ctx.stats.record_snapshot(true);
                ctx.outbox.push_snapshot(to_store, msg);
            } else if after_write {
                ctx.acks.push(self.store_id, to_store, msg);
            } else {
                ctx.outbox.push(self.store_id, to_store, msg);
            }
        }
    }

    /// Applies the ready's committed entries into the round's apply
    /// batch. Raft hands out only entries durable here already, so this
    /// may run before the round's own write.
    pub(crate) fn apply_committed(&mut self, ctx: &mut RoundCtx, rd: &mut Ready) {
        let committed = std::mem::take(&mut rd.committed_entries);
        self.apply(ctx, committed);
    }

    /// After the round's write is durable: the messages that had to wait
    /// for it go out, and raft learns what is persisted.
    pub(crate) fn on_persisted(&mut self, ctx: &mut RoundCtx, mut rd: Ready) {
        debug_assert!(rd.committed_entries.is_empty(), "applied before the write");
        let persisted = std::mem::take(&mut rd.persisted_messages);
        self.send(ctx, persisted, false);
        self.raft.on_persist_ready(rd.number());
    }

    /// Hands the ready to the store's writer: the messages that must wait
    /// for its write go into the writer's frames; returns what the writer
    /// reports back once the write is durable.
    pub(crate) fn hand_to_writer(&mut self, ctx: &mut RoundCtx, mut rd: Ready) -> Durable {
        debug_assert!(rd.committed_entries.is_empty(), "applied before the write");
        let persisted = std::mem::take(&mut rd.persisted_messages);
        self.send(ctx, persisted, true);
        let r = &self.raft.raft;
        // Whether the write alone lets the peer move on, so that it must
        // be woken for it: a leader's or candidate's own acknowledgement
        // may complete a quorum; committed entries may wait for this copy
        // to apply; a snapshot becomes stable. Otherwise the peer learns
        // of it at its next turn, which the next message brings (a
        // follower's acknowledgement leaves after the write, so whatever
        // the leader sends in answer finds the write durable), or at the
        // latest the next tick. (Hibernated regions will need a wake
        // whenever a record is left.)
        let wake = (rd.must_sync && r.state != StateRole::Follower)
            || rd.snapshot.is_some()
            || r.raft_log.committed > r.raft_log.persisted_index();
        Durable {
            region_id: self.region_id,
            number: rd.number(),
            cell: Arc::clone(&self.durable),
            wake,
        }
    }

    /// The transport's word on a snapshot sent to `to_peer`: delivered
    /// resumes replication after it; failed makes raft probe and, if the
    /// log is still compacted, send another.
    pub(crate) fn on_snapshot_status(&mut self, to_peer: u64, delivered: bool) {
        let status = if delivered {
            SnapshotStatus::Finish
        } else {
            SnapshotStatus::Failure
        };
        self.raft.report_snapshot(to_peer, status);
    }
}
