//! [`Store`]: one store's regions on a batch system, opened from its data
//! directory; run by poller threads and a ticker ([`Store::start`]), or
//! round by round by a single-threaded scheduler ([`Store::run_round`],
//! [`Store::tick`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Sender, bounded};
use flotilla_batch_system::{BatchSystem, Config as BatchConfig, Router, SendError, create_system};
use flotilla_engine::{Engine, RegionLogStorage, WriteSink};
use flotilla_proto::cmdpb::WriteCommand;
use flotilla_proto::metapb::{Region, RegionEpoch};
use flotilla_proto::serverpb::StoreBatch;
use flotilla_proto::storagepb::RegionState;
use parking_lot::{Mutex, RwLock};

use crate::clock::{Clock, SystemClock};
use crate::config::StoreConfig;
use crate::errors::{Error, Result};
use crate::fsm::writer::{self, WRITE_QUEUE_TASKS_MAX};
use crate::fsm::{PeerFsm, RaftPoller, StoreFsm, StoreShared};
use crate::msg::{Callback, PeerMsg, ReadRequest, ReadResponse, RegionStatus, StoreMsg};
use crate::raft::Peer;
use crate::stats::{StatsSnapshot, StoreStats};
use crate::transport::{Deliver, HeartbeatCoalescer, Transport};

/// What a store is given rather than builds: the seams a simulation
/// replaces.
#[derive(Clone)]
pub struct StoreDeps {
    /// How frames leave the store.
    pub transport: Arc<dyn Transport>,
    /// The store's clock (leases, latencies, delays).
    pub clock: Arc<dyn Clock>,
    /// Where round writes go; `None` for the engine itself.
    pub sink: Option<Arc<dyn WriteSink>>,
}

impl std::fmt::Debug for StoreDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreDeps")
            .field("transport", &self.transport)
            .field("clock", &self.clock)
            .field("sink", &self.sink.as_ref().map(|_| "custom"))
            .finish()
    }
}

impl StoreDeps {
    /// Real time, writes straight to the engine.
    pub fn new(transport: Arc<dyn Transport>) -> Self {
        StoreDeps {
            transport,
            clock: Arc::new(SystemClock::default()),
            sink: None,
        }
    }
}

/// A handle for sending to a store's regions: requests, and frames from
/// other stores. Cheap to clone.
#[derive(Clone)]
pub struct StoreRouter {
    store_id: u64,
    // A batch-system router caches mailboxes per clone and is not `Sync`;
    // each use takes a clone of this one.
    router: Arc<Mutex<Router<PeerFsm, StoreFsm>>>,
    shared: Arc<StoreShared>,
}

impl std::fmt::Debug for StoreRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreRouter")
            .field("store_id", &self.store_id)
            .finish()
    }
}

impl StoreRouter {
    /// The store's id.
    pub fn store_id(&self) -> u64 {
        self.store_id
    }

    /// Proposes a write to the region named in its header; `cb` gets the
    /// outcome once it is applied on this store's replica (the leader).
    pub fn write(&self, cmd: WriteCommand, cb: Callback<()>) {
        let region_id = cmd.header.as_ref().map_or(0, |h| h.region_id);
        self.send_or_fail(region_id, PeerMsg::Write { cmd, cb }, |m| match m {
            PeerMsg::Write { cb, .. } => Some(cb),
            _ => None,
        });
    }

    /// Reads from a region, linearizably, at its leader.
    pub fn read(
        &self,
        region_id: u64,
        epoch: RegionEpoch,
        req: ReadRequest,
        cb: Callback<ReadResponse>,
    ) {
        self.send_or_fail(region_id, PeerMsg::Read { epoch, req, cb }, |m| match m {
            PeerMsg::Read { cb, .. } => Some(cb),
            _ => None,
        });
    }

    fn batch_router(&self) -> Router<PeerFsm, StoreFsm> {
        self.router.lock().clone()
    }

    fn send_or_fail<T>(
        &self,
        region_id: u64,
        msg: PeerMsg,
        take: impl FnOnce(PeerMsg) -> Option<Callback<T>>,
    ) {
        let router = self.batch_router();
        if let Err(e) = router.send(region_id, msg) {
            let not_found = router.mailbox(region_id).is_none();
            if let Some(cb) = take(e.into_inner()) {
                cb(Err(if router.is_shutdown() {
                    Error::StoreStopped(self.store_id)
                } else if not_found {
                    Error::RegionNotFound {
                        region_id,
                        store_id: self.store_id,
                    }
                } else {
                    Error::ServerIsBusy(format!("region {region_id}: mailbox full"))
                }));
            }
        }
    }

    /// The state of this store's replica of `region_id`.
    pub fn inspect(&self, region_id: u64, cb: Callback<RegionStatus>) {
        self.send_or_fail(region_id, PeerMsg::Inspect(cb), |m| match m {
            PeerMsg::Inspect(cb) => Some(cb),
            _ => None,
        });
    }

    /// The regions this store holds replicas of, as it knows them.
    pub fn regions(&self) -> Vec<Region> {
        self.shared.regions.read().values().cloned().collect()
    }

    /// The store's counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }
}

impl Deliver for StoreRouter {
    /// Fans a frame out to the regions: each raft message to its region,
    /// each coalesced heartbeat to its region.
    fn deliver(&self, batch: StoreBatch) {
        let router = self.batch_router();
        let from_store = batch.from_store;
        let sends = batch
            .messages
            .into_iter()
            .map(|m| (m.region_id, PeerMsg::Raft(Box::new(m))))
            .chain(
                batch
                    .heartbeats
                    .into_iter()
                    .map(|h| (h.region_id, PeerMsg::Heartbeat(h))),
            );
        for (region_id, msg) in sends {
            match router.send(region_id, msg) {
                Ok(()) => {}
                // The region's FSM is closed: the store is shutting down (or
                // the replica was just removed); raft retries whatever mattered.
                Err(SendError::Disconnected(_)) => {}
                Err(e) => {
                    if self.shared.stats.record_undeliverable() {
                        tracing::warn!(
                            store_id = self.store_id,
                            from_store,
                            region_id,
                            reason = %e,
                            "dropping a message from another store (counted from now on, not logged)"
                        );
                    }
                }
            }
        }
    }

    fn unreachable(&self, store_id: u64) {
        self.batch_router()
            .broadcast_normal(|| PeerMsg::StoreUnreachable(store_id));
    }

    fn snapshot_status(&self, region_id: u64, to_peer: u64, delivered: bool) {
        let _ = self
            .batch_router()
            .force_send(region_id, PeerMsg::SnapshotStatus { to_peer, delivered });
    }
}

/// One store: its engine, its regions' FSMs on a batch system, and (once
/// started) its pollers and ticker.
pub struct Store {
    shared: Arc<StoreShared>,
    router: StoreRouter,
    system: BatchSystem<PeerFsm, StoreFsm>,
    manual: Option<RaftPoller>,
    ticker: Option<(Sender<()>, JoinHandle<()>)>,
    writer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("store_id", &self.shared.cfg.store_id)
            .field("started", &self.ticker.is_some())
            .finish()
    }
}

impl Store {
    /// Opens the store in `cfg.data_dir` and recovers every region it holds
    /// (raft state, applied index, region metadata). Nothing runs until
    /// [`start`](Self::start) or [`run_round`](Self::run_round).
    pub fn open(cfg: StoreConfig, deps: StoreDeps) -> Result<Store> {
        cfg.validate().map_err(Error::InvalidRequest)?;
        let engine = Engine::open(&cfg.data_dir, &cfg.engine)?;
        Self::with_engine(cfg, engine, deps)
    }

    /// As [`open`](Self::open), over an engine already open.
    pub fn with_engine(cfg: StoreConfig, engine: Engine, deps: StoreDeps) -> Result<Store> {
        crate::stats::describe();
        let cfg = Arc::new(cfg);
        let mut peers = Vec::new();
        let mut regions = BTreeMap::new();
        for state in engine.region_states()? {
            if state.state != RegionState::Normal as i32 {
                continue;
            }
            let Some(region) = state.region else { continue };
            let storage = RegionLogStorage::load(&engine, region.id)?;
            peers.push(Peer::open(&cfg, &engine, storage)?);
            regions.insert(region.id, region);
        }
        let sink = deps.sink.unwrap_or_else(|| Arc::new(engine.clone()));
        let shared = Arc::new(StoreShared {
            cfg: Arc::clone(&cfg),
            engine,
            sink,
            transport: deps.transport,
            clock: deps.clock,
            stats: Arc::new(StoreStats::new(cfg.store_id)),
            heartbeats: HeartbeatCoalescer::default(),
            regions: RwLock::new(regions),
        });
        let batch_cfg = BatchConfig {
            pool_size: cfg.pool_size,
            max_batch_size: cfg.round_regions_max,
            messages_per_tick: cfg.messages_per_turn,
            mailbox_capacity: cfg.mailbox_capacity,
            ..BatchConfig::default()
        };
        let (router, system) = create_system(&batch_cfg, Box::new(StoreFsm::default()))
            .map_err(|e| Error::InvalidRequest(e.to_string()))?;
        tracing::info!(
            store_id = cfg.store_id,
            regions = peers.len(),
            "store opened"
        );
        router.register_all(peers.into_iter().map(|p| (p.region_id, PeerFsm::new(p))));
        let store_router = StoreRouter {
            store_id: cfg.store_id,
            router: Arc::new(Mutex::new(router)),
            shared: Arc::clone(&shared),
        };
        Ok(Store {
            shared,
            router: store_router,
            system,
            manual: None,
            ticker: None,
            writer: None,
        })
    }

    /// The handle requests and other stores' frames come in through.
    pub fn router(&self) -> StoreRouter {
        self.router.clone()
    }

    /// The store's engine.
    pub fn engine(&self) -> &Engine {
        &self.shared.engine
    }

    /// The store's counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// Starts the pollers, the store's writer (see
    /// [`StoreConfig::async_raft_write`]) and the store's one ticker thread.
    pub fn start(&mut self) -> Result<()> {
        assert!(
            self.manual.is_none(),
            "a store driven round by round cannot also start threads"
        );
        let shared = Arc::clone(&self.shared);
        let router = self.router.batch_router();
        let name = format!("store-{}", self.shared.cfg.store_id);
        let writer = if shared.cfg.async_raft_write && shared.cfg.cross_region_batching {
            let (tx, rx) = bounded(WRITE_QUEUE_TASKS_MAX);
            let handle = writer::spawn(Arc::clone(&shared), router.clone(), rx)
                .map_err(|e| Error::Engine(format!("spawning the writer: {e}")))?;
            self.writer = Some(handle);
            Some(tx)
        } else {
            None
        };
        // The pollers hold the only senders: once they stop, the writer
        // writes what is queued and stops too.
        self.system
            .spawn(&name, || {
                RaftPoller::new(Arc::clone(&shared), router.clone(), writer.clone())
            })
            .map_err(|e| Error::Engine(format!("spawning pollers: {e}")))?;
        drop(writer);
        let (stop, stopped) = bounded::<()>(1);
        let interval = self.shared.cfg.tick_interval;
        let router = self.router.batch_router();
        let handle = std::thread::Builder::new()
            .name(format!("{name}-ticker"))
            .spawn(move || {
                // One timer for every region of the store.
                while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(interval)
                {
                    if router.send_control(StoreMsg::Tick).is_err() && router.is_shutdown() {
                        break;
                    }
                }
            })
            .map_err(|e| Error::Engine(format!("spawning ticker: {e}")))?;
        self.ticker = Some((stop, handle));
        Ok(())
    }

    /// Runs one round on the calling thread over the regions that have
    /// work; returns how many it handled (0: nothing to do).
    pub fn run_round(&mut self) -> usize {
        let shared = &self.shared;
        let router = &self.router;
        let handler = self.manual.get_or_insert_with(|| {
            RaftPoller::new(Arc::clone(shared), router.batch_router(), None)
        });
        self.system.run_round(handler)
    }

    /// Queues one store tick: the next round flushes the coalesced
    /// heartbeats and ticks every region.
    pub fn tick(&self) {
        let _ = self.router.batch_router().send_control(StoreMsg::Tick);
    }

    /// Stops the ticker, the pollers and the writer (after it wrote what
    /// the pollers handed it). Waiting requests are dropped (their callers
    /// time out); everything acknowledged is on disk.
    pub fn shutdown(&mut self) {
        if let Some((stop, handle)) = self.ticker.take() {
            let _ = stop.send(());
            let _ = handle.join();
        }
        self.system.shutdown();
        if let Some(writer) = self.writer.take()
            && let Err(panic) = writer.join()
            && !std::thread::panicking()
        {
            std::panic::resume_unwind(panic);
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.shutdown();
    }
}
