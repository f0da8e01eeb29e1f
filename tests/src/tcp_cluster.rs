//! A cluster of stores on threads of this process talking over real TCP on
//! 127.0.0.1, for the network transport's tests.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use flotilla_engine::Engine;
use flotilla_proto::metapb::Region;
use flotilla_raftstore::{Client, ClientConfig, LocalStores, Store, StoreDeps};
use flotilla_transport::{TcpTransport, TransportConfig};
use tempfile::TempDir;

use crate::cluster::ClusterSpec;

/// Stores over TCP, each with its transport.
#[derive(Debug)]
pub struct TcpCluster {
    /// The running stores and their transports, by id.
    pub stores: BTreeMap<u64, (Store, Arc<TcpTransport>)>,
    /// Every store's raft address.
    pub addrs: BTreeMap<u64, SocketAddr>,
    /// The initial regions.
    pub regions: Vec<Region>,
    /// A client over every running store.
    pub client: Client,
    directory: Arc<LocalStores>,
    spec: ClusterSpec,
    configure_transport: fn(&mut TransportConfig),
    dirs: BTreeMap<u64, TempDir>,
}

impl TcpCluster {
    /// Bootstraps and starts a cluster on loopback ports chosen by the OS.
    pub fn start(spec: ClusterSpec) -> TcpCluster {
        Self::start_with(spec, |_| {})
    }

    /// [`start`](Self::start), with `configure_transport` applied to every
    /// store's transport settings (now and at restarts).
    pub fn start_with(
        spec: ClusterSpec,
        configure_transport: fn(&mut TransportConfig),
    ) -> TcpCluster {
        let regions = spec.plan();
        let mut listeners = BTreeMap::new();
        for id in 1..=spec.stores {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
            listeners.insert(id, l);
        }
        let addrs = listeners
            .iter()
            .map(|(id, l)| (*id, l.local_addr().expect("local address")))
            .collect();
        let directory = Arc::new(LocalStores::default());
        let mut c = TcpCluster {
            stores: BTreeMap::new(),
            addrs,
            regions,
            client: Client::new(directory.clone(), ClientConfig::default()),
            directory,
            spec,
            configure_transport,
            dirs: BTreeMap::new(),
        };
        for (id, listener) in listeners {
            let (dir, _, engine) = c.spec.bootstrap(id, &c.regions);
            drop(engine);
            c.dirs.insert(id, dir);
            c.run_store(id, listener);
        }
        c
    }

    /// Opens store `id` from its data directory on `listener` and starts it.
    pub fn run_store(&mut self, id: u64, listener: TcpListener) {
        let cfg = self.spec.config(id, self.dirs[&id].path());
        let peers = self
            .addrs
            .iter()
            .filter(|(s, _)| **s != id)
            .map(|(s, a)| (*s, *a))
            .collect();
        let mut tcfg = TransportConfig::new(id, peers);
        (self.configure_transport)(&mut tcfg);
        let transport = TcpTransport::bind(tcfg, listener).expect("transport");
        let engine = Engine::open(&cfg.data_dir, &cfg.engine).expect("open engine");
        let mut store =
            Store::with_engine(cfg, engine, StoreDeps::new(transport.clone())).expect("open store");
        transport.serve(Arc::new(store.router())).expect("serve");
        self.directory.insert(store.router());
        store.start().expect("start store");
        self.stores.insert(id, (store, transport));
    }

    /// Stops store `id`: its threads and its transport; its data stays.
    pub fn stop_store(&mut self, id: u64) {
        self.directory.remove(id);
        if let Some((mut store, transport)) = self.stores.remove(&id) {
            store.shutdown();
            transport.shutdown();
        }
    }

    /// Restarts a stopped store on its old address.
    pub fn restart_store(&mut self, id: u64) {
        let listener = TcpListener::bind(self.addrs[&id]).expect("rebind the store's address");
        self.run_store(id, listener);
    }
}
