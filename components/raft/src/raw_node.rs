//! `RawNode`: the host's handle on one raft group, and the `Ready` contract.
//!
//! The host loop, per group:
//! 1. feed inputs: `tick`, `step` (messages from peers), `propose`, ...;
//! 2. if `has_ready()`, take `ready()` and, in this order:
//!    - persist `hard_state`, `entries` and `snapshot` (one synced write
//!      when `must_sync`); `messages` may be sent before or while persisting;
//!    - after persisting, send `persisted_messages`;
//!    - apply `committed_entries` (and their membership changes through
//!      `apply_conf_change`);
//! 3. call `advance(ready)`.
//!
//! A host that persists asynchronously (many groups in one batch) calls
//! `advance_append_async(ready)` instead, then `on_persist_ready(number)`
//! when that ready's writes are durable, and `advance_apply_to(index)` as it
//! applies.

use std::collections::VecDeque;

use bytes::Bytes;
use flotilla_proto::raftpb::{
    ConfChange, ConfChangeV2, ConfState, Entry, EntryType, HardState, Message, MessageType,
    Snapshot,
};
use prost::Message as _;

use crate::config::Config;
use crate::errors::{Error, Result};
use crate::raft::{Raft, SoftState, StateRole};
use crate::read_only::ReadState;
use crate::status::Status;
use crate::storage::Storage;

/// Everything a group wants the host to do, handed out by [`RawNode::ready`].
#[derive(Debug, Default, PartialEq)]
pub struct Ready {
    number: u64,
    /// The new role and leader, when either changed.
    pub soft_state: Option<SoftState>,
    /// The hard state to persist, when it changed.
    pub hard_state: Option<HardState>,
    /// Reads that may be served once `index` is applied.
    pub read_states: Vec<ReadState>,
    /// Entries to append to stable storage.
    pub entries: Vec<Entry>,
    /// A snapshot to install in stable storage.
    pub snapshot: Option<Snapshot>,
    /// Committed entries to apply to the state machine, in order.
    pub committed_entries: Vec<Entry>,
    /// Messages to send now, before or while persisting.
    pub messages: Vec<Message>,
    /// Messages to send only after this ready's writes are durable.
    pub persisted_messages: Vec<Message>,
    /// Whether the writes must be synced to disk before the
    /// `persisted_messages` go out (a new term, vote or entries).
    pub must_sync: bool,
}

impl Ready {
    /// This ready's sequence number, for [`RawNode::on_persist_ready`].
    pub fn number(&self) -> u64 {
        self.number
    }
}

/// What raft must learn once a ready's writes are durable.
#[derive(Debug)]
struct ReadyRecord {
    number: u64,
    last_entry: Option<(u64, u64)>,
    snapshot_index: Option<u64>,
    // Our own acknowledgements (votes, appends), stepped once durable.
    self_msgs: Vec<Message>,
}

/// How sending a snapshot to a peer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotStatus {
    /// The peer received the whole snapshot.
    Finish,
    /// Sending failed; the leader will probe again.
    Failure,
}

/// The host's handle on one raft group.
#[derive(Debug)]
pub struct RawNode<S: Storage> {
    /// The state machine; exposed for tests and inspection.
    pub raft: Raft<S>,
    prev_ss: SoftState,
    prev_hs: HardState,
    // Invariant: numbers are increasing; records are persisted in order.
    records: VecDeque<ReadyRecord>,
    max_number: u64,
}

impl<S: Storage> RawNode<S> {
    /// Opens a group from its config and recovered storage.
    pub fn new(config: &Config, store: S) -> Result<Self> {
        let raft = Raft::new(config, store)?;
        let prev_ss = raft.soft_state();
        let prev_hs = raft.hard_state();
        Ok(RawNode {
            raft,
            prev_ss,
            prev_hs,
            records: VecDeque::new(),
            max_number: 0,
        })
    }

    /// Advances the logical clock by one tick.
    pub fn tick(&mut self) {
        self.raft.tick();
    }

    /// Starts an election now (a pre-election when pre-vote is on).
    pub fn campaign(&mut self) -> Result<()> {
        self.raft.step(local(MessageType::MsgHup))
    }

    /// Proposes `data` to be appended to the log. `context` is opaque to raft.
    pub fn propose(&mut self, context: Bytes, data: Bytes) -> Result<()> {
        let e = Entry {
            data,
            context,
            ..Default::default()
        };
        self.raft.step(Message {
            msg_type: MessageType::MsgPropose as i32,
            from: self.raft.id,
            entries: vec![e],
            ..Default::default()
        })
    }

    /// Proposes a single-step membership change.
    pub fn propose_conf_change(&mut self, context: Bytes, cc: ConfChange) -> Result<()> {
        self.propose_entry(context, EntryType::EntryConfChange, cc.encode_to_vec())
    }

    /// Proposes a membership change of any kind (joint, simple or leave).
    pub fn propose_conf_change_v2(&mut self, context: Bytes, cc: ConfChangeV2) -> Result<()> {
        self.propose_entry(context, EntryType::EntryConfChangeV2, cc.encode_to_vec())
    }

    fn propose_entry(&mut self, context: Bytes, t: EntryType, data: Vec<u8>) -> Result<()> {
        let e = Entry {
            entry_type: t as i32,
            data: data.into(),
            context,
            ..Default::default()
        };
        self.raft.step(Message {
            msg_type: MessageType::MsgPropose as i32,
            from: self.raft.id,
            entries: vec![e],
            ..Default::default()
        })
    }

    /// Applies a committed membership change; call it for every committed
    /// conf-change entry, in log order.
    pub fn apply_conf_change(&mut self, cc: &ConfChangeV2) -> Result<ConfState> {
        self.raft.apply_conf_change(cc)
    }

    /// Steps a message received from a peer. Local-only message types are
    /// refused, and responses from peers outside the configuration dropped.
    pub fn step(&mut self, m: Message) -> Result<()> {
        let t = m.msg_type();
        if t.is_local() {
            return Err(Error::StepLocalMsg);
        }
        if t.is_response() && self.raft.trk.get(m.from).is_none() {
            return Err(Error::StepPeerNotFound(m.from));
        }
        // Only proposals and reads forwarded by a follower travel without a
        // term; anything else with term 0 would be taken as current.
        if m.term == 0 && !matches!(t, MessageType::MsgPropose | MessageType::MsgReadIndex) {
            return Err(Error::MalformedMessage(format!(
                "{t:?} from {} without a term",
                m.from
            )));
        }
        self.raft.step(m)
    }

    /// Requests a linearizable read; the answer arrives as a `ReadState`
    /// carrying `ctx`, which must be unique per request.
    pub fn read_index(&mut self, ctx: Bytes) -> Result<()> {
        self.raft.step(Message {
            msg_type: MessageType::MsgReadIndex as i32,
            from: self.raft.id,
            entries: vec![Entry {
                data: ctx,
                ..Default::default()
            }],
            ..Default::default()
        })
    }

    /// Asks the leader to hand leadership to `transferee`.
    pub fn transfer_leader(&mut self, transferee: u64) {
        let m = Message {
            msg_type: MessageType::MsgTransferLeader as i32,
            from: transferee,
            ..Default::default()
        };
        // A transfer is advisory; a dropped one needs no error.
        let _ = self.raft.step(m);
    }

    /// Reports that the last message to `id` could not be delivered.
    pub fn report_unreachable(&mut self, id: u64) {
        let m = Message {
            msg_type: MessageType::MsgUnreachable as i32,
            from: id,
            ..Default::default()
        };
        let _ = self.raft.step(m);
    }

    /// Reports how sending a snapshot to `id` ended.
    pub fn report_snapshot(&mut self, id: u64, status: SnapshotStatus) {
        let m = Message {
            msg_type: MessageType::MsgSnapshotStatus as i32,
            from: id,
            reject: status == SnapshotStatus::Failure,
            ..Default::default()
        };
        let _ = self.raft.step(m);
    }

    /// Whether there is anything for the host to do.
    pub fn has_ready(&self) -> bool {
        let r = &self.raft;
        r.soft_state() != self.prev_ss
            || (!r.hard_state().is_empty() && r.hard_state() != self.prev_hs)
            || !r.msgs.is_empty()
            || !r.msgs_after_append.is_empty()
            || !r.read_states.is_empty()
            || r.raft_log.has_next_unstable_ents()
            || r.raft_log.has_next_unstable_snapshot()
            || r.raft_log.has_next_committed_ents()
    }

    /// Collects everything the host must do now, and marks it in progress:
    /// a later `ready` does not hand the same entries out again.
    pub fn ready(&mut self) -> Ready {
        self.max_number += 1;
        let number = self.max_number;
        let raft = &mut self.raft;
        let mut rd = Ready {
            number,
            ..Default::default()
        };
        let ss = raft.soft_state();
        if ss != self.prev_ss {
            rd.soft_state = Some(ss);
            self.prev_ss = ss;
        }
        let hs = raft.hard_state();
        if hs != self.prev_hs {
            rd.must_sync = hs.term != self.prev_hs.term || hs.vote != self.prev_hs.vote;
            rd.hard_state = Some(hs);
            self.prev_hs = hs;
        }
        rd.entries = raft.raft_log.next_unstable_ents().to_vec();
        rd.must_sync |= !rd.entries.is_empty();
        if let Some(first) = rd.entries.first() {
            // These entries rewrite indexes that earlier, still unpersisted
            // readies also write. Once an earlier one is durable, a write in
            // between may still replace its entries on disk, even where the
            // log now holds the same (index, term) again (ABA): its
            // persistence must not mark them stable. This ready's will.
            for rec in self.records.iter_mut() {
                if rec
                    .last_entry
                    .is_some_and(|(index, _)| index >= first.index)
                {
                    rec.last_entry = None;
                }
            }
        }
        rd.snapshot = raft.raft_log.next_unstable_snapshot().cloned();
        rd.must_sync |= rd.snapshot.is_some();
        raft.raft_log.accept_unstable();
        if raft.raft_log.has_next_committed_ents() {
            rd.committed_entries = raft.raft_log.next_committed_ents();
            if let Some(last) = rd.committed_entries.last() {
                raft.raft_log.accept_applying(last.index);
            }
            raft.reduce_uncommitted_size(&rd.committed_entries);
        }
        rd.read_states = std::mem::take(&mut raft.read_states);
        rd.messages = std::mem::take(&mut raft.msgs);
        let id = raft.id;
        // Split in place (order kept): the others are most of them, and a
        // message is large enough that moving each into a new vector shows.
        let mut others = std::mem::take(&mut raft.msgs_after_append);
        let mut self_msgs = Vec::new();
        others.retain_mut(|m| {
            if m.to == id {
                self_msgs.push(std::mem::take(m));
                false
            } else {
                true
            }
        });
        rd.persisted_messages = others;
        self.records.push_back(ReadyRecord {
            number,
            last_entry: rd.entries.last().map(|e| (e.index, e.term)),
            snapshot_index: rd.snapshot.as_ref().map(Snapshot::index),
            self_msgs,
        });
        rd
    }

    /// The host persisted and handled everything in `rd` (synchronous use).
    pub fn advance(&mut self, rd: Ready) {
        self.on_persist_ready(rd.number);
        self.advance_apply();
    }

    /// The host took `rd` and will persist it later; nothing is durable yet.
    /// (A no-op kept for symmetry: `ready` already marked it in progress.)
    pub fn advance_append_async(&mut self, rd: Ready) {
        debug_assert!(self.records.back().is_some_and(|r| r.number >= rd.number));
    }

    /// Every ready up to `number` is durable: entries, hard state and
    /// snapshot. Our own acknowledgements now count.
    pub fn on_persist_ready(&mut self, number: u64) {
        while self.records.front().is_some_and(|r| r.number <= number) {
            let rec = self.records.pop_front().expect("checked non-empty");
            if let Some(index) = rec.snapshot_index {
                self.raft.raft_log.stable_snap_to(index);
            }
            if let Some((index, term)) = rec.last_entry {
                self.raft.raft_log.stable_to(index, term);
            }
            for m in rec.self_msgs {
                // Our own acknowledgement; stale ones are dropped by term checks.
                let _ = self.raft.step(m);
            }
        }
    }

    /// Everything handed out to apply so far has been applied.
    pub fn advance_apply(&mut self) {
        let applying = self.raft.raft_log.applying;
        self.advance_apply_to(applying);
    }

    /// Entries up to `applied` have been applied. A leader in a joint
    /// configuration with automatic leave proposes the leave here.
    pub fn advance_apply_to(&mut self, applied: u64) {
        if applied <= self.raft.raft_log.applied {
            return;
        }
        self.raft.raft_log.applied_to(applied);
        let r = &mut self.raft;
        if r.trk.config.auto_leave
            && applied >= r.pending_conf_index
            && r.state == StateRole::Leader
        {
            // An empty V2 change leaves the joint configuration. Failing to
            // append it (cap reached) is retried at the next apply.
            let cc = ConfChangeV2::default();
            let e = Entry {
                entry_type: EntryType::EntryConfChangeV2 as i32,
                data: cc.encode_to_vec().into(),
                ..Default::default()
            };
            if r.append_entry(vec![e]) {
                r.pending_conf_index = r.raft_log.last_index();
                r.bcast_append();
                tracing::info!(
                    raft_id = r.id,
                    "initiating automatic leave of joint configuration"
                );
            }
        }
    }

    /// A summary of the group's state.
    pub fn status(&self) -> Status {
        Status::new(&self.raft)
    }

    /// Whether the group is idle (see [`Raft::is_quiescent`]).
    pub fn is_quiescent(&self) -> bool {
        self.raft.is_quiescent()
    }

    /// The group's storage.
    pub fn store(&self) -> &S {
        &self.raft.raft_log.store
    }

    /// The group's storage, mutably (the host's own writes).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.raft.raft_log.store
    }
}

fn local(t: MessageType) -> Message {
    Message {
        msg_type: t as i32,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;

    fn node(id: u64, voters: &[u64]) -> RawNode<MemStorage> {
        let cs = ConfState {
            voters: voters.to_vec(),
            ..Default::default()
        };
        RawNode::new(&Config::new(id), MemStorage::new_with_conf_state(cs)).expect("valid")
    }

    /// Persists and advances until the node has nothing more to do,
    /// returning every message it wanted sent.
    fn drain(n: &mut RawNode<MemStorage>) -> Vec<Message> {
        let mut out = Vec::new();
        while n.has_ready() {
            let mut rd = n.ready();
            n.store().persist_ready(&rd).expect("persist");
            out.append(&mut rd.messages);
            out.append(&mut rd.persisted_messages);
            n.advance(rd);
        }
        out
    }

    #[test]
    fn a_single_voter_becomes_leader_only_after_persisting_its_vote() {
        let mut n = node(1, &[1]);
        n.campaign().unwrap();
        // Pre-vote, then vote: each of our own votes counts once durable.
        assert_ne!(n.raft.state, StateRole::Leader);
        drain(&mut n);
        assert_eq!(n.raft.state, StateRole::Leader);
        assert_eq!(
            n.raft.raft_log.committed, 1,
            "the leader's empty entry commits alone"
        );
    }

    #[test]
    fn local_and_termless_messages_from_peers_are_refused() {
        let mut n = node(1, &[1, 2, 3]);
        let hup = Message {
            msg_type: MessageType::MsgHup as i32,
            from: 2,
            ..Default::default()
        };
        assert_eq!(n.step(hup), Err(Error::StepLocalMsg));
        let hb = Message {
            msg_type: MessageType::MsgHeartbeat as i32,
            from: 2,
            commit: 5,
            ..Default::default()
        };
        assert!(matches!(n.step(hb), Err(Error::MalformedMessage(_))));
        let resp = Message {
            msg_type: MessageType::MsgAppendResponse as i32,
            from: 9,
            term: 1,
            ..Default::default()
        };
        assert_eq!(n.step(resp), Err(Error::StepPeerNotFound(9)));
    }

    fn msg(t: MessageType, from: u64, term: u64) -> Message {
        Message {
            msg_type: t as i32,
            from,
            to: 1,
            term,
            ..Default::default()
        }
    }

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: Bytes::from_static(b"d"),
            ..Default::default()
        }
    }

    #[test]
    fn an_append_rewriting_committed_entries_is_dropped_not_obeyed() {
        let mut n = node(1, &[1, 2, 3]);
        let mut app = msg(MessageType::MsgAppend, 2, 2);
        app.entries = vec![entry(1, 1), entry(2, 1), entry(3, 2)];
        app.commit = 3;
        n.step(app).unwrap();
        drain(&mut n);
        assert_eq!(n.raft.raft_log.committed, 3);
        // A confused peer claims index 2 has another term: committed
        // entries must never change, and the peer cannot crash us.
        let mut bad = msg(MessageType::MsgAppend, 2, 3);
        bad.index = 1;
        bad.log_term = 1;
        bad.entries = vec![entry(2, 3)];
        n.step(bad).unwrap();
        drain(&mut n);
        assert_eq!(n.raft.raft_log.term(2), Ok(1));
        assert_eq!(n.raft.raft_log.last_index(), 3);
    }

    #[test]
    fn an_ack_beyond_the_leaders_log_is_ignored() {
        let mut n = node(1, &[1, 2]);
        n.campaign().unwrap();
        drain(&mut n);
        let mut grant = msg(MessageType::MsgRequestPreVoteResponse, 2, 1);
        grant.to = 1;
        n.step(grant).unwrap();
        drain(&mut n);
        let grant = msg(MessageType::MsgRequestVoteResponse, 2, 1);
        n.step(grant).unwrap();
        drain(&mut n);
        assert_eq!(n.raft.state, StateRole::Leader);
        let last = n.raft.raft_log.last_index();
        let mut ack = msg(MessageType::MsgAppendResponse, 2, 1);
        ack.index = last + 100;
        n.step(ack).unwrap();
        drain(&mut n);
        assert_eq!(n.raft.trk.get(2).map(|pr| pr.matched), Some(0));
        assert_eq!(
            n.raft.raft_log.committed, 0,
            "nothing committed on a bogus ack"
        );
    }

    #[test]
    fn asynchronous_persistence_holds_our_own_ack_until_reported() {
        let mut n = node(1, &[1]);
        n.campaign().unwrap();
        drain(&mut n);
        let committed = n.raft.raft_log.committed;
        n.propose(Bytes::new(), Bytes::from_static(b"x")).unwrap();
        let rd = n.ready();
        assert_eq!(rd.entries.len(), 1);
        assert!(rd.must_sync);
        let number = rd.number();
        n.store().persist_ready(&rd).unwrap();
        n.advance_append_async(rd);
        assert_eq!(
            n.raft.raft_log.committed, committed,
            "not durable yet: no commit"
        );
        assert!(!n.has_ready(), "nothing new until the write is reported");
        n.on_persist_ready(number);
        assert_eq!(n.raft.raft_log.committed, committed + 1);
        let rd = n.ready();
        assert_eq!(rd.committed_entries.len(), 1);
        let applied = rd.committed_entries[0].index;
        n.advance_append_async(rd);
        n.advance_apply_to(applied);
        assert_eq!(n.raft.raft_log.applied, applied);
    }

    #[test]
    fn an_idle_leader_reports_quiescence_until_something_happens() {
        let mut nodes: Vec<RawNode<MemStorage>> = (1..=3).map(|id| node(id, &[1, 2, 3])).collect();
        nodes[0].campaign().unwrap();
        let mut rounds = 0;
        loop {
            let mut msgs = Vec::new();
            for n in nodes.iter_mut() {
                msgs.extend(drain(n));
            }
            if msgs.is_empty() {
                break;
            }
            for m in msgs {
                nodes[(m.to - 1) as usize].step(m).unwrap();
            }
            rounds += 1;
            assert!(rounds < 50, "did not settle");
        }
        assert_eq!(nodes[0].raft.state, StateRole::Leader);
        // Followers learned the commit index only if it was sent to them.
        nodes[0].raft.bcast_heartbeat();
        for m in drain(&mut nodes[0]) {
            nodes[(m.to - 1) as usize].step(m).unwrap();
        }
        assert!(nodes[0].is_quiescent());
        assert!(!nodes[1].is_quiescent(), "only a leader reports quiescence");
        nodes[0]
            .propose(Bytes::new(), Bytes::from_static(b"x"))
            .unwrap();
        assert!(!nodes[0].is_quiescent());
    }
}
