//! A local cluster: stores as threads of this process, each on its own
//! RocksDB, talking over real TCP on 127.0.0.1, each with a client port.
//! Also the pieces `flotilla start` runs one store with.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use flotilla_engine::Engine;
use flotilla_raftstore::bootstrap::{CounterIds, bootstrap_store, even_split_keys, plan_regions};
use flotilla_raftstore::{LocalStores, StatsSnapshot, Store, StoreConfig, StoreDeps};
use flotilla_transport::client::{ClientService, ClientServiceConfig};
use flotilla_transport::{TcpTransport, TransportConfig};

use crate::workload::KEY_SPACE;

/// The keys a cluster of `regions` regions is cut at (`k` + 7 digits).
pub fn split_keys(regions: u64) -> Vec<Bytes> {
    even_split_keys("k", KEY_SPACE, 7, regions)
}

/// Opens a store's engine, bootstrapping it into the planned cluster of
/// `regions` regions if it is new.
pub fn open_engine(
    cfg: &StoreConfig,
    store_ids: &[u64],
    regions: u64,
    replicas: usize,
) -> anyhow::Result<Engine> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let engine = Engine::open(&cfg.data_dir, &cfg.engine)
        .with_context(|| format!("opening {}", cfg.data_dir.display()))?;
    if engine.region_states()?.is_empty() {
        let plan = plan_regions(
            store_ids,
            &split_keys(regions),
            replicas,
            &CounterIds::default(),
        )?;
        let n = bootstrap_store(&engine, cfg.store_id, &plan)?;
        tracing::info!(store_id = cfg.store_id, regions = n, "bootstrapped");
    }
    Ok(engine)
}

/// One running store: the store, its transport and its client service.
#[derive(Debug)]
pub struct Running {
    /// The store.
    pub store: Store,
    /// Its transport.
    pub transport: Arc<TcpTransport>,
    /// Its client service, if it has a client address.
    pub clients: Option<ClientService>,
}

impl Running {
    /// Stops taking requests, then the store, then its transport.
    pub fn shutdown(&mut self) {
        if let Some(c) = &self.clients {
            c.shutdown();
        }
        self.store.shutdown();
        self.transport.shutdown();
    }
}

/// Starts a store on `engine`, its transport on `listener` and, given a
/// listener, its client service.
pub fn run_store(
    cfg: StoreConfig,
    tcfg: TransportConfig,
    listener: TcpListener,
    client_listener: Option<TcpListener>,
    engine: Engine,
) -> anyhow::Result<Running> {
    let frame_bytes_max = tcfg.frame_bytes_max;
    let transport = TcpTransport::bind(tcfg, listener)?;
    let mut store = Store::with_engine(cfg, engine, StoreDeps::new(transport.clone()))?;
    transport.serve(Arc::new(store.router()))?;
    store.start()?;
    let clients = match client_listener {
        Some(l) => Some(ClientService::start(
            l,
            Arc::new(store.router()),
            ClientServiceConfig {
                frame_bytes_max,
                ..Default::default()
            },
        )?),
        None => None,
    };
    Ok(Running {
        store,
        transport,
        clients,
    })
}

/// What local cluster to start.
#[derive(Debug, Clone)]
pub struct LocalClusterConfig {
    /// Stores, with ids `1..=stores`.
    pub stores: u64,
    /// Regions, the key space pre-cut evenly; three replicas (fewer with
    /// fewer stores).
    pub regions: u64,
    /// Where the stores keep their data (`store-N` below it); a temporary
    /// directory, removed at the end, if none.
    pub data_dir: Option<PathBuf>,
    /// Poller threads per store.
    pub pollers: usize,
    /// Batch across regions (off: the naive design).
    pub cross_region_batching: bool,
    /// Write and sync raft batches on each store's writer thread.
    pub async_raft_write: bool,
    /// Send followers an append at every commit (see
    /// `StoreConfig::broadcast_commit`).
    pub broadcast_commit: bool,
    /// Bytes of client writes one raft entry takes at most (see
    /// `StoreConfig::proposal_batch_bytes_max`; 0: one entry per write).
    pub proposal_batch_bytes_max: u64,
    /// Payload bytes a region's log holds before it is compacted (see
    /// `StoreConfig::log_gc_threshold_bytes`; 0: by entries only).
    pub log_gc_threshold_bytes: u64,
}

/// A running local cluster.
#[derive(Debug)]
pub struct LocalCluster {
    /// The stores, by id.
    pub stores: Vec<(u64, Running)>,
    /// Every store's raft address.
    pub raft_addrs: BTreeMap<u64, SocketAddr>,
    /// Every store's client address, by id.
    pub client_addrs: BTreeMap<u64, SocketAddr>,
    /// The stores of this process, for an embedded client.
    pub local: Arc<LocalStores>,
    dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl LocalCluster {
    /// Bootstraps (if new) and starts the cluster.
    pub fn start(cfg: &LocalClusterConfig) -> anyhow::Result<LocalCluster> {
        anyhow::ensure!(
            cfg.stores > 0 && cfg.regions > 0,
            "stores and regions must be positive"
        );
        let temp = match &cfg.data_dir {
            Some(_) => None,
            None => Some(tempfile::tempdir().context("creating a temporary data directory")?),
        };
        let dir = match (&cfg.data_dir, &temp) {
            (Some(d), _) => d.clone(),
            (_, Some(t)) => t.path().to_path_buf(),
            (None, None) => anyhow::bail!("no data directory"),
        };
        let ids: Vec<u64> = (1..=cfg.stores).collect();
        let mut listeners = BTreeMap::new();
        for &id in &ids {
            listeners.insert(id, TcpListener::bind("127.0.0.1:0")?);
        }
        let raft_addrs: BTreeMap<u64, SocketAddr> = listeners
            .iter()
            .map(|(id, l)| Ok((*id, l.local_addr()?)))
            .collect::<std::io::Result<_>>()?;
        let local = Arc::new(LocalStores::default());
        let mut stores = Vec::new();
        let mut client_addrs = BTreeMap::new();
        let replicas = usize::try_from(cfg.stores.min(3)).unwrap_or(3);
        for (id, listener) in listeners {
            let mut scfg = StoreConfig::new(id, dir.join(format!("store-{id}")));
            scfg.pool_size = cfg.pollers;
            scfg.cross_region_batching = cfg.cross_region_batching;
            scfg.async_raft_write = cfg.async_raft_write;
            scfg.broadcast_commit = cfg.broadcast_commit;
            scfg.proposal_batch_bytes_max = cfg.proposal_batch_bytes_max;
            scfg.log_gc_threshold_bytes = cfg.log_gc_threshold_bytes;
            scfg.seed = id;
            let peers = raft_addrs
                .iter()
                .filter(|(s, _)| **s != id)
                .map(|(s, a)| (*s, *a))
                .collect();
            let engine = open_engine(&scfg, &ids, cfg.regions, replicas)?;
            let client_listener = TcpListener::bind("127.0.0.1:0")?;
            client_addrs.insert(id, client_listener.local_addr()?);
            let r = run_store(
                scfg,
                TransportConfig::new(id, peers),
                listener,
                Some(client_listener),
                engine,
            )?;
            local.insert(r.store.router());
            stores.push((id, r));
        }
        Ok(LocalCluster {
            stores,
            raft_addrs,
            client_addrs,
            local,
            dir,
            _temp: temp,
        })
    }

    /// Where the stores keep their data.
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// Every store's counters now.
    pub fn stats(&self) -> Vec<(u64, StatsSnapshot)> {
        self.stores
            .iter()
            .map(|(id, r)| (*id, r.store.stats()))
            .collect()
    }

    /// Stops every store.
    pub fn shutdown(&mut self) {
        for (_, r) in &mut self.stores {
            r.shutdown();
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}
