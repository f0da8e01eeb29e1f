//! The round: every region of the batch steps its messages and hands its
//! ready to the round; at the end, ONE apply write for the entries already
//! committed and durable, and their answers, then ONE write batch with ONE
//! sync for all of the round's new state, the acknowledgements, and ONE
//! frame per destination store.
//!
//! With a store writer ([`crate::fsm::writer`]) the round hands its write
//! batch and acknowledgements over instead, and sends its other messages
//! (a leader's appends among them) at once: the writer syncs while the
//! next round runs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Sender;

use flotilla_batch_system::{HandleResult, Inbox, PollHandler, Router};
use flotilla_engine::{Engine, WriteBatch, WriteSink};
use flotilla_proto::metapb::Region;
use flotilla_proto::serverpb::HeartbeatEntry;
use flotilla_raft::Ready;
use parking_lot::RwLock;

use crate::clock::Clock;
use crate::config::StoreConfig;
use crate::fsm::writer::WriteTask;
use crate::fsm::{PeerFsm, StoreFsm};
use crate::msg::{PeerMsg, StoreMsg};
use crate::raft::Peer;
use crate::stats::StoreStats;
use crate::transport::{HeartbeatCoalescer, Outbox, Transport};

/// What every poller of a store shares.
pub(crate) struct StoreShared {
    pub(crate) cfg: Arc<StoreConfig>,
    pub(crate) engine: Engine,
    pub(crate) sink: Arc<dyn WriteSink>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) stats: Arc<StoreStats>,
    pub(crate) heartbeats: HeartbeatCoalescer,
    /// The regions as the store's peers know them, for routing.
    pub(crate) regions: RwLock<BTreeMap<u64, Region>>,
}

impl std::fmt::Debug for StoreShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreShared")
            .field("store_id", &self.cfg.store_id)
            .finish_non_exhaustive()
    }
}

/// One round's state: what the regions of the round write and send.
pub(crate) struct RoundCtx {
    pub(crate) shared: Arc<StoreShared>,
    pub(crate) stats: Arc<StoreStats>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) wb: WriteBatch,
    pub(crate) wrote: bool,
    pub(crate) must_sync: bool,
    pub(crate) entries: usize,
    /// Payload bytes of those entries.
    pub(crate) entry_bytes: u64,
    pub(crate) outbox: Outbox,
    /// Messages that leave once the store's writer made the round durable.
    pub(crate) acks: Outbox,
    pub(crate) heartbeats_out: Vec<(u64, HeartbeatEntry)>,
    /// Readies waiting for the write, with the batch slot of their FSM.
    pub(crate) pending: Vec<(usize, Ready)>,
    pub(crate) apply_wb: WriteBatch,
    pub(crate) applied: Vec<u64>,
    pub(crate) applied_commands: usize,
    /// Proposers' answers, given once the apply batch is written.
    pub(crate) answers: Vec<Box<dyn FnOnce() + Send>>,
}

impl RoundCtx {
    fn new(shared: Arc<StoreShared>) -> Self {
        RoundCtx {
            stats: Arc::clone(&shared.stats),
            clock: Arc::clone(&shared.clock),
            wb: shared.engine.write_batch(),
            apply_wb: shared.engine.write_batch(),
            shared,
            wrote: false,
            must_sync: false,
            entries: 0,
            entry_bytes: 0,
            outbox: Outbox::default(),
            acks: Outbox::default(),
            heartbeats_out: Vec::new(),
            pending: Vec::new(),
            applied: Vec::new(),
            applied_commands: 0,
            answers: Vec::new(),
        }
    }

    /// A peer's region changed shape (a snapshot brought a new one).
    pub(crate) fn region_changed(&self, region: Region) {
        self.shared.regions.write().insert(region.id, region);
    }
}

/// A poller's handler: runs rounds of peers (and the store FSM's turns).
pub(crate) struct RaftPoller {
    ctx: RoundCtx,
    router: Router<PeerFsm, StoreFsm>,
    /// The store's writer; `None`: the round writes and syncs itself.
    writer: Option<Sender<WriteTask>>,
    slot: usize,
    started: Instant,
}

impl RaftPoller {
    pub(crate) fn new(
        shared: Arc<StoreShared>,
        router: Router<PeerFsm, StoreFsm>,
        writer: Option<Sender<WriteTask>>,
    ) -> Self {
        RaftPoller {
            ctx: RoundCtx::new(shared),
            router,
            writer,
            slot: 0,
            started: Instant::now(),
        }
    }

    /// Writes the round's raft batch: ONE write, synced if any ready must
    /// be. A failed write leaves raft believing in state that is not on
    /// disk; the store cannot go on without risking acknowledged data.
    fn write_raft_batch(&mut self) {
        let ctx = &mut self.ctx;
        if !ctx.wrote {
            return;
        }
        let wb = std::mem::replace(&mut ctx.wb, ctx.shared.engine.write_batch());
        let sync = ctx.must_sync;
        if let Err(e) = ctx.shared.sink.write(wb, sync) {
            panic!(
                "store {}: raft write failed, cannot continue: {e}",
                ctx.shared.cfg.store_id
            );
        }
        ctx.stats.record_write(sync, ctx.entries, ctx.entry_bytes);
    }

    fn write_apply_batch(&mut self) {
        let ctx = &mut self.ctx;
        if ctx.applied.is_empty() {
            return;
        }
        let wb = std::mem::replace(&mut ctx.apply_wb, ctx.shared.engine.write_batch());
        // Not synced: a lost apply is replayed from the (synced) log at
        // restart, and the WAL is ordered, so the next synced raft write
        // makes this one durable too.
        if let Err(e) = ctx.shared.sink.write(wb, false) {
            panic!(
                "store {}: apply write failed, cannot continue: {e}",
                ctx.shared.cfg.store_id
            );
        }
        ctx.stats.record_apply_write(ctx.applied_commands);
    }

    /// What follows the round's handling, for `peers` (indexed by the
    /// slots their readies were collected with): ONE apply write and the
    /// answers, ONE write and sync, the acknowledgements it allows, ONE
    /// frame per destination store, and the reads the applies enable.
    fn finish_round(&mut self, peers: &mut [Option<&mut Peer>]) {
        // 1. Committed entries apply first, in ONE apply write, and their
        //    writers get their answers: raft hands out only entries that
        //    are committed and already durable here (synced by an earlier
        //    round), so neither waits for this round's sync. The write is
        //    not synced: a lost apply is replayed from the log at restart,
        //    and the WAL is ordered, so the sync below covers it too.
        let mut pending = std::mem::take(&mut self.ctx.pending);
        for (slot, rd) in &mut pending {
            if let Some(Some(peer)) = peers.get_mut(*slot) {
                peer.apply_committed(&mut self.ctx, rd);
            }
        }
        self.write_apply_batch();
        for answer in self.ctx.answers.drain(..) {
            answer();
        }
        if let Some(writer) = &self.writer {
            // 2-3. The store's writer writes and syncs, then sends the
            //      acknowledgements and tells each region; this round goes
            //      on and sends the rest (appends do not wait for the
            //      leader's own sync: it counts itself only once durable).
            hand_to_writer(&mut self.ctx, writer, peers, pending);
        } else {
            // 2. One write, one sync, for every region of the round.
            self.write_raft_batch();
            // 3. Durable: acknowledgements join the frames.
            for (slot, rd) in pending {
                if let Some(Some(peer)) = peers.get_mut(slot) {
                    peer.on_persisted(&mut self.ctx, rd);
                }
            }
        }
        // 4. One frame per destination store; snapshots on their own.
        let shared = Arc::clone(&self.ctx.shared);
        let snapshots = self.ctx.outbox.flush(
            shared.cfg.store_id,
            shared.transport.as_ref(),
            &shared.stats,
        );
        for (region_id, to_peer, delivered) in snapshots {
            // The region hears next round (raft must not be told a
            // snapshot is sent before the round's own write).
            let _ = self
                .router
                .force_send(region_id, PeerMsg::SnapshotStatus { to_peer, delivered });
        }
        shared.heartbeats.push_all(&mut self.ctx.heartbeats_out);
        // 5. The reads the applies enable.
        for peer in peers.iter_mut().flatten() {
            let applying = peer.raft.raft.raft_log.applying;
            peer.raft.advance_apply_to(applying);
            peer.serve_ready_reads(&self.ctx);
            if peer.raft.has_ready() {
                // Work the round made (a commit our own acknowledgement
                // completed): run again.
                let _ = self.router.force_send(peer.region_id, PeerMsg::Wake);
            }
        }
    }

    fn reset(&mut self) {
        let ctx = &mut self.ctx;
        ctx.wrote = false;
        ctx.must_sync = false;
        ctx.entries = 0;
        ctx.entry_bytes = 0;
        ctx.applied.clear();
        ctx.applied_commands = 0;
    }
}

/// Hands the round's raft write to the store's writer. A round that
/// installs a snapshot waits for it: the region's new data and state must
/// be on disk before the round's snapshot statuses and reads.
fn hand_to_writer(
    ctx: &mut RoundCtx,
    writer: &Sender<WriteTask>,
    peers: &mut [Option<&mut Peer>],
    pending: Vec<(usize, Ready)>,
) {
    if pending.is_empty() {
        return;
    }
    let installs_snapshot = pending.iter().any(|(_, rd)| rd.snapshot.is_some());
    let mut persisted = Vec::with_capacity(pending.len());
    for (slot, rd) in pending {
        if let Some(Some(peer)) = peers.get_mut(slot) {
            persisted.push(peer.hand_to_writer(ctx, rd));
        }
    }
    let batch = ctx
        .wrote
        .then(|| std::mem::replace(&mut ctx.wb, ctx.shared.engine.write_batch()));
    let (done, wait) = if installs_snapshot {
        let (tx, rx) = crossbeam_channel::bounded(1);
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let task = WriteTask {
        batch,
        sync: ctx.must_sync,
        entries: ctx.entries,
        entry_bytes: ctx.entry_bytes,
        outbox: std::mem::take(&mut ctx.acks),
        persisted,
        done,
    };
    if writer.send(task).is_err() {
        panic!(
            "store {}: the store's writer stopped, cannot continue",
            ctx.shared.cfg.store_id
        );
    }
    if let Some(wait) = wait {
        let _ = wait.recv();
    }
}

impl PollHandler<PeerFsm, StoreFsm> for RaftPoller {
    fn begin(&mut self, _batch_size: usize) {
        self.slot = 0;
        self.started = Instant::now();
        self.reset();
    }

    fn handle_control(
        &mut self,
        store: &mut StoreFsm,
        inbox: &mut Inbox<'_, StoreMsg>,
    ) -> HandleResult {
        while let Some(msg) = inbox.recv() {
            match msg {
                StoreMsg::Tick => {
                    store.ticks += 1;
                    let shared = &self.ctx.shared;
                    shared.heartbeats.flush(
                        shared.cfg.store_id,
                        shared.transport.as_ref(),
                        &shared.stats,
                    );
                    self.router.broadcast_normal(|| PeerMsg::Tick);
                }
            }
        }
        HandleResult::KeepProcessing
    }

    fn handle_normal(&mut self, fsm: &mut PeerFsm, inbox: &mut Inbox<'_, PeerMsg>) -> HandleResult {
        let peer = &mut fsm.peer;
        peer.absorb_durable();
        while let Some(msg) = inbox.recv() {
            match msg {
                PeerMsg::Raft(m) => peer.on_raft_message(*m),
                PeerMsg::Heartbeat(h) => peer.on_heartbeat(&h),
                PeerMsg::Tick => peer.raft.tick(),
                PeerMsg::Write { cmd, cb } => peer.take_write(&mut self.ctx, cmd, cb),
                PeerMsg::Read { epoch, req, cb } => peer.read(&mut self.ctx, epoch, req, cb),
                PeerMsg::Wake => {}
                PeerMsg::Persisted => {}
                PeerMsg::Inspect(cb) => cb(Ok(peer.status())),
                PeerMsg::StoreUnreachable(store) => peer.on_store_unreachable(store),
                PeerMsg::SnapshotStatus { to_peer, delivered } => {
                    peer.on_snapshot_status(to_peer, delivered)
                }
            }
        }
        peer.propose_batch(&mut self.ctx);
        if self.ctx.shared.cfg.cross_region_batching {
            peer.collect_ready(&mut self.ctx, self.slot);
            self.slot += 1;
        } else {
            // The naive design: this region's ready is written, synced,
            // sent and applied on its own, before the next region's.
            peer.collect_ready(&mut self.ctx, 0);
            self.finish_round(&mut [Some(&mut fsm.peer)]);
            self.reset();
        }
        HandleResult::KeepProcessing
    }

    fn end(&mut self, normals: &mut [Option<Box<PeerFsm>>]) {
        let mut peers: Vec<Option<&mut Peer>> = normals
            .iter_mut()
            .map(|f| f.as_mut().map(|f| &mut f.peer))
            .collect();
        self.finish_round(&mut peers);
        self.ctx
            .stats
            .record_round(normals.len(), self.started.elapsed());
    }
}
