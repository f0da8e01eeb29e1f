//! One simulated peer and its host: what is durable, what is volatile, and
//! the host's asynchronous persistence and apply queues.
//!
//! The model:
//! - **Durable**: the [`MemStorage`] (log, hard state, snapshot) and the
//!   state machine up to its last flush point (`sm_durable`). A snapshot in
//!   storage is itself a durable image of the state machine at its index.
//! - **Volatile** ([`Host`]): the `RawNode`, the queue of readies not yet
//!   (fully) handled, the committed entries not yet applied, and the state
//!   machine past its flush point.
//! - **Persistence**: `ready()` output goes to `pending`. Later a prefix of
//!   it is written to storage in order (the `persist_ready` semantics:
//!   snapshot, entries, hard state); later still, a durable prefix is
//!   acknowledged with `on_persist_ready`. A write's `persisted_messages`
//!   are released either as soon as it is durable or with its
//!   acknowledgement (chosen per write). A crash in between loses the
//!   acknowledgements and unsent messages, not the data.
//! - **Applying**: committed entries are queued, applied (appended to `sm`)
//!   later, and `advance_apply_to` is reported later still. A snapshot is
//!   installed into the state machine when it is written to storage.
//! - **Crash**: the host is dropped. The state machine is cut back to
//!   `max(min(sm_durable, durable commit), storage snapshot index)`, and
//!   the peer restarts with `Config.applied` at that point, so raft hands
//!   out the committed entries after it again.

use std::collections::VecDeque;

use bytes::Bytes;
use flotilla_raft::raftpb::{ConfState, Entry, HardState, Message, MessageType, Snapshot};
use flotilla_raft::{Config, MemStorage, RawNode, Ready};

use crate::checker::{LogEntry, LogView};

/// One `Ready`'s writes, waiting to become durable and then acknowledged.
#[derive(Debug)]
pub struct PendingWrite {
    /// The ready's number, for `on_persist_ready`.
    pub number: u64,
    /// The hard state to write.
    pub hard_state: Option<HardState>,
    /// The entries to write.
    pub entries: Vec<Entry>,
    /// The snapshot to write.
    pub snapshot: Option<Snapshot>,
    /// Messages to release once acknowledged.
    pub persisted_messages: Vec<Message>,
    /// Written to storage (but not yet acknowledged to raft).
    pub durable: bool,
}

/// The volatile part of a peer: lost in a crash.
#[derive(Debug)]
pub struct Host {
    /// The raft group.
    pub raw: RawNode<MemStorage>,
    /// Readies handed out and not yet acknowledged, oldest first.
    pub pending: VecDeque<PendingWrite>,
    /// Committed entries handed out and not yet applied.
    pub to_apply: VecDeque<Entry>,
}

/// An applied entry: its index and what it was.
pub type Applied = (u64, LogEntry);

/// What writing pending writes to storage produced.
#[derive(Debug, Default)]
pub struct Written {
    /// Entries applied by installing a snapshot.
    pub applied: Vec<Applied>,
    /// The index of the snapshot installed, if any.
    pub snapshot: Option<u64>,
    /// Messages released because their write is durable.
    pub messages: Vec<Message>,
}

/// One simulated peer.
#[derive(Debug)]
pub struct SimNode {
    /// The peer's id.
    pub id: u64,
    /// Its configuration (`applied` and `seed` are set at each start).
    pub cfg: Config,
    /// Its durable storage; survives crashes.
    pub storage: MemStorage,
    /// Its volatile state; `None` while down.
    pub host: Option<Host>,
    /// The applied state machine: `sm[i]` was applied at index `i + 1`.
    pub sm: Vec<LogEntry>,
    /// How much of `sm` survives a crash (further capped by the durable
    /// commit index).
    pub sm_durable: u64,
}

impl SimNode {
    /// A fresh peer of a group whose voters are `voters`, started.
    pub fn new(cfg: Config, voters: &[u64], seed: u64) -> Self {
        let cs = ConfState {
            voters: voters.to_vec(),
            ..Default::default()
        };
        let mut n = SimNode {
            id: cfg.id,
            cfg,
            storage: MemStorage::new_with_conf_state(cs),
            host: None,
            sm: Vec::new(),
            sm_durable: 0,
        };
        n.start(seed);
        n
    }

    /// Whether the peer is up.
    pub fn is_up(&self) -> bool {
        self.host.is_some()
    }

    /// The raft group, when up.
    pub fn raw(&self) -> Option<&RawNode<MemStorage>> {
        self.host.as_ref().map(|h| &h.raw)
    }

    /// The raft group, when up.
    pub fn raw_mut(&mut self) -> Option<&mut RawNode<MemStorage>> {
        self.host.as_mut().map(|h| &mut h.raw)
    }

    /// Starts the peer from its durable state. `seed` drives its election
    /// timeouts (a restarted peer draws new ones).
    pub fn start(&mut self, seed: u64) {
        assert!(self.host.is_none(), "node {} is already up", self.id);
        self.cfg.applied = self.sm.len() as u64;
        self.cfg.seed = seed;
        let raw = RawNode::new(&self.cfg, self.storage.clone())
            .unwrap_or_else(|e| panic!("node {}: cannot restart from storage: {e}", self.id));
        self.host = Some(Host {
            raw,
            pending: VecDeque::new(),
            to_apply: VecDeque::new(),
        });
    }

    /// Crashes the peer: everything volatile is lost and the state machine
    /// falls back to its durable point.
    pub fn crash(&mut self) -> Result<(), String> {
        self.host = None;
        let core = self.storage.rl();
        let keep = self
            .sm_durable
            .min(core.hard_state().commit)
            .max(core.snapshot_metadata().index);
        if keep > self.sm.len() as u64 {
            return Err(format!(
                "node {}: durable applied point {keep} is past the state machine ({})",
                self.id,
                self.sm.len()
            ));
        }
        self.sm.truncate(keep as usize);
        self.sm_durable = keep;
        Ok(())
    }

    /// Takes a ready if there is one: queues its writes and committed
    /// entries, and returns the messages that may be sent at once.
    pub fn handle_ready(&mut self) -> Result<Vec<Message>, String> {
        let Some(host) = self.host.as_mut() else {
            return Ok(Vec::new());
        };
        if !host.raw.has_ready() {
            return Ok(Vec::new());
        }
        let mut rd = host.raw.ready();
        let messages = std::mem::take(&mut rd.messages);
        if let Some(m) = messages.iter().find(|m| is_durable_ack(m)) {
            return Err(format!(
                "node {}: {:?} to {} handed out to send before persisting",
                self.id,
                m.msg_type(),
                m.to
            ));
        }
        host.to_apply
            .extend(std::mem::take(&mut rd.committed_entries));
        host.pending.push_back(PendingWrite {
            number: rd.number(),
            hard_state: rd.hard_state.take(),
            entries: std::mem::take(&mut rd.entries),
            snapshot: rd.snapshot.take(),
            persisted_messages: std::mem::take(&mut rd.persisted_messages),
            durable: false,
        });
        host.raw.advance_append_async(rd);
        Ok(messages)
    }

    /// How many pending writes are not yet durable.
    pub fn unwritten(&self) -> usize {
        self.host
            .as_ref()
            .map_or(0, |h| h.pending.iter().filter(|w| !w.durable).count())
    }

    /// How many pending writes are durable and not yet acknowledged.
    pub fn unacked(&self) -> usize {
        self.host
            .as_ref()
            .map_or(0, |h| h.pending.iter().take_while(|w| w.durable).count())
    }

    /// Writes the next `k` pending writes to storage, in order. With
    /// `send_now`, their `persisted_messages` are released at once (the
    /// host may send them as soon as the write is durable, before telling
    /// raft); otherwise they wait for [`SimNode::acknowledge`].
    pub fn persist(&mut self, k: usize, send_now: bool) -> Result<Written, String> {
        let id = self.id;
        let mut out = Written::default();
        let Some(host) = self.host.as_mut() else {
            return Ok(out);
        };
        for w in host.pending.iter_mut().filter(|w| !w.durable).take(k) {
            let mut rd = Ready::default();
            rd.hard_state = w.hard_state;
            rd.entries.clone_from(&w.entries);
            rd.snapshot.clone_from(&w.snapshot);
            self.storage
                .persist_ready(&rd)
                .map_err(|e| format!("node {id}: persisting ready {}: {e}", w.number))?;
            if let Some(snap) = &w.snapshot {
                // Installing the snapshot replaces the state machine; what was
                // still queued to apply lies below it and is applied first.
                for e in host.to_apply.drain(..) {
                    out.applied.push(apply_one(id, &mut self.sm, &e)?);
                }
                self.sm = decode_state(&snap.data)?;
                if self.sm.len() as u64 != snap.index() {
                    return Err(format!("node {id}: snapshot {} is corrupt", snap.index()));
                }
                out.applied.extend((1..).zip(self.sm.iter().copied()));
                out.snapshot = Some(snap.index());
                self.sm_durable = snap.index();
            }
            if send_now {
                out.messages.append(&mut w.persisted_messages);
            }
            w.durable = true;
        }
        Ok(out)
    }

    /// Acknowledges up to `k` durable writes to raft; returns their
    /// `persisted_messages`, now free to send.
    pub fn acknowledge(&mut self, k: usize) -> Vec<Message> {
        let Some(host) = self.host.as_mut() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut last = None;
        let mut acked = 0;
        while acked < k && host.pending.front().is_some_and(|w| w.durable) {
            let w = host.pending.pop_front().expect("checked");
            last = Some(w.number);
            out.extend(w.persisted_messages);
            acked += 1;
        }
        if let Some(n) = last {
            host.raw.on_persist_ready(n);
        }
        out
    }

    /// Applies up to `k` queued committed entries.
    pub fn apply(&mut self, k: usize) -> Result<Vec<Applied>, String> {
        let Some(host) = self.host.as_mut() else {
            return Ok(Vec::new());
        };
        let n = k.min(host.to_apply.len());
        let mut out = Vec::with_capacity(n);
        for e in host.to_apply.drain(..n) {
            out.push(apply_one(self.id, &mut self.sm, &e)?);
        }
        Ok(out)
    }

    /// Tells raft how far the state machine has applied.
    pub fn report_applied(&mut self) {
        let applied = self.sm.len() as u64;
        if let Some(raw) = self.raw_mut() {
            raw.advance_apply_to(applied);
        }
    }

    /// Makes the state machine durable as it is now.
    pub fn flush_state_machine(&mut self) {
        self.sm_durable = self.sm.len() as u64;
    }

    /// Snapshots the state machine at the index raft knows applied (capped
    /// by the durable commit index) and discards the log before it (or up to
    /// it, with `through`). Returns the snapshot index, if one was taken.
    pub fn compact(&mut self, through: bool) -> Result<Option<u64>, String> {
        let Some(raw) = self.raw() else {
            return Ok(None);
        };
        let applied = raw.raft.raft_log.applied;
        let mut core = self.storage.wl();
        let at = applied.min(core.hard_state().commit).min(core.last_index());
        if at <= core.snapshot_metadata().index {
            return Ok(None);
        }
        let data = encode_state(&self.sm[..at as usize]);
        let err = |e| format!("node {}: compacting at {at}: {e}", self.id);
        core.create_snapshot(at, None, data).map_err(err)?;
        core.compact(if through { at + 1 } else { at })
            .map_err(err)?;
        Ok(Some(at))
    }

    /// The peer's raft log (stable and unstable entries), when up.
    pub fn log_view(&self) -> Result<Option<LogView>, String> {
        let Some(raw) = self.raw() else {
            return Ok(None);
        };
        let log = &raw.raft.raft_log;
        let view = LogView::new(
            format!("node {}", self.id),
            log.first_index(),
            &log.all_entries(),
        )?;
        Ok(Some(view))
    }

    /// The peer's durable log.
    pub fn durable_view(&self) -> Result<LogView, String> {
        let core = self.storage.rl();
        LogView::new(
            format!("node {} durable", self.id),
            core.first_index(),
            core.entries(),
        )
    }
}

/// Acknowledgements that promise durable state and so must wait for it.
fn is_durable_ack(m: &Message) -> bool {
    matches!(
        m.msg_type(),
        MessageType::MsgAppendResponse | MessageType::MsgRequestVoteResponse
    )
}

fn apply_one(id: u64, sm: &mut Vec<LogEntry>, e: &Entry) -> Result<Applied, String> {
    let next = sm.len() as u64 + 1;
    if e.index != next {
        return Err(format!(
            "node {id}: committed entry {} handed out to apply, expected {next}",
            e.index
        ));
    }
    let le = LogEntry::of(e)?;
    sm.push(le);
    Ok((e.index, le))
}

/// Encodes a state machine as snapshot data: (term, payload) per index.
pub fn encode_state(sm: &[LogEntry]) -> Bytes {
    let mut v = Vec::with_capacity(sm.len() * 16);
    for e in sm {
        v.extend_from_slice(&e.term.to_le_bytes());
        v.extend_from_slice(&e.payload.to_le_bytes());
    }
    v.into()
}

/// Decodes snapshot data written by [`encode_state`].
pub fn decode_state(data: &Bytes) -> Result<Vec<LogEntry>, String> {
    if !data.len().is_multiple_of(16) {
        return Err(format!("snapshot data of {} bytes is corrupt", data.len()));
    }
    let word = |c: &[u8]| u64::from_le_bytes(c.try_into().expect("8 bytes"));
    Ok(data
        .chunks_exact(16)
        .map(|c| LogEntry {
            term: word(&c[..8]),
            payload: word(&c[8..]),
        })
        .collect())
}
