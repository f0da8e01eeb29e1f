//! An in-process cluster of stores for the store's tests: each store on its
//! own RocksDB in a temporary directory, all over one in-memory network
//! with filters, and a client over all of them.
//!
//! Two ways to run it: [`Cluster::start`] runs every store on its own
//! pollers and ticker (real time); [`ManualCluster`] runs rounds and ticks
//! by hand on the test's thread (deterministic, for counting).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::bounded;
use flotilla_engine::{Engine, FaultyWriteSink};
use flotilla_proto::metapb::Region;
use flotilla_raftstore::bootstrap::{CounterIds, bootstrap_store, plan_regions};
use flotilla_raftstore::transport::mem::{Filter, Isolate, MemNetwork};
use flotilla_raftstore::{
    Client, ClientConfig, Clock, LocalStores, ManualClock, RegionStatus, Store, StoreConfig,
    StoreDeps, StoreRouter, SystemClock,
};
use tempfile::TempDir;

/// How a test cluster is laid out.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Stores, with ids 1..=stores.
    pub stores: u64,
    /// Split keys of the initial regions (none: one region).
    pub split_keys: Vec<Bytes>,
    /// Replicas of each region.
    pub replicas: usize,
    /// Applies test settings to each store's configuration.
    pub configure: fn(&mut StoreConfig),
}

impl ClusterSpec {
    /// The initial regions of the spec's stores (ids `1..=stores`).
    pub(crate) fn plan(&self) -> Vec<Region> {
        let ids: Vec<u64> = (1..=self.stores).collect();
        plan_regions(
            &ids,
            &self.split_keys,
            self.replicas,
            &CounterIds::default(),
        )
        .expect("valid cluster plan")
    }

    /// Store `id`'s test configuration in `dir`, with the spec's settings.
    pub(crate) fn config(&self, id: u64, dir: &std::path::Path) -> StoreConfig {
        let mut cfg = test_config(id, dir);
        (self.configure)(&mut cfg);
        cfg
    }

    /// A new data directory for store `id`, bootstrapped with its replicas
    /// of `regions`; the engine stays open.
    pub(crate) fn bootstrap(&self, id: u64, regions: &[Region]) -> (TempDir, StoreConfig, Engine) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let cfg = self.config(id, dir.path());
        let engine = Engine::open(&cfg.data_dir, &cfg.engine).expect("open engine");
        bootstrap_store(&engine, id, regions).expect("bootstrap store");
        (dir, cfg, engine)
    }

    /// `stores` stores, one region per range between `split_keys`, three
    /// replicas, fast ticks.
    pub fn new(stores: u64, split_keys: Vec<Bytes>) -> Self {
        ClusterSpec {
            stores,
            split_keys,
            replicas: 3,
            configure: |_| {},
        }
    }
}

/// Settings for stores under test: 20 ms ticks, small rounds of work.
pub fn test_config(store_id: u64, dir: &std::path::Path) -> StoreConfig {
    let mut cfg = StoreConfig::new(store_id, dir);
    cfg.engine = flotilla_engine::EngineConfig::for_tests();
    cfg.tick_interval = Duration::from_millis(20);
    cfg.election_ticks = 10;
    cfg.heartbeat_ticks = 2;
    cfg.lease_drift_margin = Duration::from_millis(40);
    cfg.seed = store_id;
    cfg
}

/// A cluster whose stores run on threads.
#[derive(Debug)]
pub struct Cluster {
    /// The network between the stores.
    pub net: Arc<MemNetwork>,
    /// The running stores by id.
    pub stores: BTreeMap<u64, Store>,
    /// The initial regions.
    pub regions: Vec<Region>,
    /// Where the client finds stores.
    pub directory: Arc<LocalStores>,
    /// A client over every store.
    pub client: Client,
    /// Each running store's write path: counts its writes, can hold them.
    pub sinks: BTreeMap<u64, Arc<FaultyWriteSink<Engine>>>,
    spec: ClusterSpec,
    dirs: BTreeMap<u64, TempDir>,
}

impl Cluster {
    /// Bootstraps and starts a cluster.
    pub fn start(spec: ClusterSpec) -> Cluster {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
        let net = MemNetwork::new(clock);
        let regions = spec.plan();
        let directory = Arc::new(LocalStores::default());
        let mut cluster = Cluster {
            client: Client::new(directory.clone(), ClientConfig::default()),
            net,
            stores: BTreeMap::new(),
            regions,
            directory,
            sinks: BTreeMap::new(),
            spec,
            dirs: BTreeMap::new(),
        };
        for id in 1..=cluster.spec.stores {
            let (dir, _, engine) = cluster.spec.bootstrap(id, &cluster.regions);
            drop(engine);
            cluster.dirs.insert(id, dir);
            cluster.run_store(id);
        }
        cluster
    }

    /// Opens store `id` from its data directory and starts it.
    pub fn run_store(&mut self, id: u64) {
        let dir = self.dirs[&id].path().to_path_buf();
        let cfg = self.spec.config(id, &dir);
        let engine = Engine::open(&cfg.data_dir, &cfg.engine).expect("open engine");
        let sink = Arc::new(FaultyWriteSink::new(engine.clone()));
        self.sinks.insert(id, Arc::clone(&sink));
        let deps = StoreDeps {
            sink: Some(sink),
            ..StoreDeps::new(self.net.transport(id))
        };
        let mut store = Store::with_engine(cfg, engine, deps).expect("open store");
        let router = store.router();
        self.net.register(id, Arc::new(router.clone()));
        self.directory.insert(router);
        store.start().expect("start store");
        self.stores.insert(id, store);
    }

    /// Stops store `id` as a crash would leave it: frames to it are lost,
    /// its threads stop, what it synced stays on disk.
    pub fn stop_store(&mut self, id: u64) {
        self.net.unregister(id);
        self.directory.remove(id);
        if let Some(mut s) = self.stores.remove(&id) {
            s.shutdown();
        }
        self.sinks.remove(&id);
    }

    /// A store's router.
    pub fn router(&self, id: u64) -> StoreRouter {
        self.stores[&id].router()
    }

    /// Cuts `id` off from every other store.
    pub fn isolate(&self, id: u64) {
        self.net.add_filter(Isolate(id));
    }

    /// Adds a network filter.
    pub fn add_filter(&self, f: impl Filter) {
        self.net.add_filter(f);
    }

    /// Heals the network.
    pub fn clear_filters(&self) {
        self.net.clear_filters();
    }

    /// Writes through the client, or panics.
    pub fn must_put(&self, key: &[u8], value: &[u8]) {
        if let Err(e) = self
            .client
            .put(Bytes::copy_from_slice(key), Bytes::copy_from_slice(value))
        {
            panic!("put {:?}: {e}", String::from_utf8_lossy(key));
        }
    }

    /// Reads through the client, or panics.
    pub fn must_get(&self, key: &[u8]) -> Option<Bytes> {
        match self.client.get(Bytes::copy_from_slice(key)) {
            Ok(v) => v,
            Err(e) => panic!("get {:?}: {e}", String::from_utf8_lossy(key)),
        }
    }

    /// The state of store `store`'s replica of `region_id`.
    pub fn inspect(&self, store: u64, region_id: u64) -> Option<RegionStatus> {
        let (tx, rx) = bounded(1);
        self.stores.get(&store)?.router().inspect(
            region_id,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.recv_timeout(Duration::from_secs(5)).ok()?.ok()
    }

    /// The store leading `region_id`, if any store says it leads.
    pub fn leader_of(&self, region_id: u64) -> Option<u64> {
        self.stores
            .keys()
            .copied()
            .find(|&s| self.inspect(s, region_id).is_some_and(|st| st.is_leader))
    }

    /// A store holding a follower of `region` (one that does not lead it).
    pub fn follower_of(&self, region: &Region) -> u64 {
        let leader = self.leader_of(region.id);
        region
            .peers
            .iter()
            .map(|p| p.store_id)
            .find(|&s| Some(s) != leader)
            .expect("a region of several replicas has a follower")
    }

    /// Waits until `key` holds `value` in the applied data of every running
    /// replica of its region, or panics after `timeout`.
    pub fn must_replicate(&self, key: &[u8], value: Option<&[u8]>, timeout: Duration) {
        let region = self.client.locate(key).expect("locate");
        let deadline = Instant::now() + timeout;
        for p in &region.peers {
            let Some(store) = self.stores.get(&p.store_id) else {
                continue;
            };
            loop {
                let got = store.engine().get(&region, key).expect("engine get");
                if got.as_deref() == value {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "store {} region {}: {:?} not replicated (has {got:?})",
                    p.store_id,
                    region.id,
                    String::from_utf8_lossy(key)
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Waits until every region has a leader, or panics after `timeout`.
    pub fn wait_for_leaders(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for r in &self.regions {
            while self.leader_of(r.id).is_none() {
                assert!(Instant::now() < deadline, "region {} has no leader", r.id);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// A cluster run round by round on the test's thread, with a manual clock.
#[derive(Debug)]
pub struct ManualCluster {
    /// The network between the stores.
    pub net: Arc<MemNetwork>,
    /// The clock every store reads.
    pub clock: Arc<ManualClock>,
    /// The stores by id.
    pub stores: BTreeMap<u64, Store>,
    /// The initial regions.
    pub regions: Vec<Region>,
    /// Each store's write path, counting every write the store issues.
    pub sinks: BTreeMap<u64, Arc<FaultyWriteSink<Engine>>>,
    _dirs: Vec<TempDir>,
}

impl ManualCluster {
    /// Bootstraps a cluster whose stores run only when told to.
    pub fn new(spec: ClusterSpec) -> ManualCluster {
        let clock = Arc::new(ManualClock::default());
        let net = MemNetwork::new(clock.clone());
        let regions = spec.plan();
        let mut stores = BTreeMap::new();
        let mut sinks = BTreeMap::new();
        let mut dirs = Vec::new();
        for id in 1..=spec.stores {
            let (dir, cfg, engine) = spec.bootstrap(id, &regions);
            let sink = Arc::new(FaultyWriteSink::new(engine.clone()));
            sinks.insert(id, sink.clone());
            let deps = StoreDeps {
                transport: net.transport(id),
                clock: clock.clone(),
                sink: Some(sink),
            };
            let store = Store::with_engine(cfg, engine, deps).expect("open store");
            net.register(id, Arc::new(store.router()));
            stores.insert(id, store);
            dirs.push(dir);
        }
        ManualCluster {
            net,
            clock,
            stores,
            regions,
            sinks,
            _dirs: dirs,
        }
    }

    /// Runs rounds on every store, in id order, until none has work;
    /// returns the rounds run. Panics if work never runs out.
    pub fn settle(&mut self) -> usize {
        let mut rounds = 0;
        loop {
            let mut busy = false;
            for s in self.stores.values_mut() {
                if s.run_round() > 0 {
                    rounds += 1;
                    busy = true;
                }
            }
            if !busy {
                return rounds;
            }
            assert!(rounds < 1_000_000, "the cluster never settles");
        }
    }

    /// One tick on the given stores (and the clock), then settle.
    pub fn tick(&mut self, stores: &[u64]) {
        self.clock.advance(Duration::from_millis(20));
        for id in stores {
            self.stores[id].tick();
        }
        self.settle();
    }

    /// The state of store `store`'s replica of `region_id` (settles first).
    pub fn inspect(&mut self, store: u64, region_id: u64) -> RegionStatus {
        let (tx, rx) = bounded(1);
        self.stores[&store].router().inspect(
            region_id,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        self.settle();
        rx.try_recv()
            .expect("inspect answered")
            .expect("region exists")
    }
}
