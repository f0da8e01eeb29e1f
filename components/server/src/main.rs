//! `flotilla`: run one store from a TOML configuration (`start`), or a
//! whole local cluster on loopback under a short workload (`local`).
#![allow(clippy::print_stdout, clippy::print_stderr)] // A binary: its output is the interface.

mod config;
mod status;
mod workload;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use flotilla_engine::Engine;
use flotilla_raftstore::bootstrap::{CounterIds, bootstrap_store, even_split_keys, plan_regions};
use flotilla_raftstore::{
    Client, ClientConfig, LocalStores, Store, StoreConfig, StoreDeps, StoreDirectory,
};
use flotilla_transport::client::{ClientService, ClientServiceConfig, RemoteConfig, RemoteStores};
use flotilla_transport::{TcpTransport, TransportConfig};

use crate::config::FileConfig;
use crate::status::StatusServer;
use crate::workload::{KEYS, Load};

#[derive(Debug, Parser)]
#[command(
    name = "flotilla",
    version,
    about = "A multi-raft sharded storage engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs one store until SIGTERM or Ctrl-C.
    Start {
        /// The store's TOML configuration.
        #[arg(long)]
        config: PathBuf,
    },
    /// Runs a local cluster on loopback (the stores as threads of this
    /// process, over real TCP), drives a workload through the embedded
    /// client, prints a report and stops.
    Local {
        /// Stores.
        #[arg(long, default_value_t = 3)]
        stores: u64,
        /// Initial regions (the key space pre-cut evenly).
        #[arg(long, default_value_t = 64)]
        regions: u64,
        /// Where each store keeps its data (`store-N` below it); reused if
        /// it holds a cluster already. Default: a new temporary directory,
        /// removed at the end.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// How long the workload runs, in seconds.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Client threads.
        #[arg(long, default_value_t = 64)]
        clients: u64,
        /// Value size in bytes.
        #[arg(long, default_value_t = 128)]
        value_bytes: usize,
        /// Share of reads, in percent.
        #[arg(long, default_value_t = 0)]
        reads_percent: u64,
        /// Drive the workload through each store's client service over
        /// TCP instead of the embedded API.
        #[arg(long)]
        network_client: bool,
    },
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Start { config } => start(&config),
        Command::Local {
            stores,
            regions,
            data_dir,
            seconds,
            clients,
            value_bytes,
            reads_percent,
            network_client,
        } => local(
            stores,
            regions,
            data_dir,
            network_client,
            Load {
                clients,
                duration: Duration::from_secs(seconds),
                value_bytes,
                reads_percent: reads_percent.min(100),
            },
        ),
    };
    if let Err(e) = result {
        eprintln!("flotilla: {e:#}");
        std::process::exit(1);
    }
}

/// Opens a store's engine, bootstrapping it into the planned cluster if it
/// is new.
fn open_engine(
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
        let split = even_split_keys("k", KEYS, 7, regions);
        let plan = plan_regions(store_ids, &split, replicas, &CounterIds::default())?;
        let n = bootstrap_store(&engine, cfg.store_id, &plan)?;
        tracing::info!(store_id = cfg.store_id, regions = n, "bootstrapped");
    }
    Ok(engine)
}

/// One running store: the store, its transport and its client service.
struct Running {
    store: Store,
    transport: Arc<TcpTransport>,
    clients: Option<ClientService>,
}

impl Running {
    /// Stops taking requests, then the store, then its transport.
    fn shutdown(&mut self) {
        if let Some(c) = &self.clients {
            c.shutdown();
        }
        self.store.shutdown();
        self.transport.shutdown();
    }
}

fn run_store(
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

fn start(path: &Path) -> anyhow::Result<()> {
    let c = FileConfig::load(path)?;
    let metrics = status::recorder()?;
    let engine = open_engine(
        &c.store,
        &c.store_ids,
        c.bootstrap.regions,
        c.bootstrap.replicas,
    )?;
    let listener =
        TcpListener::bind(c.listen).with_context(|| format!("listening on {}", c.listen))?;
    let client_listener = match c.client {
        Some(a) => Some(TcpListener::bind(a).with_context(|| format!("listening on {a}"))?),
        None => None,
    };
    let store_id = c.store.store_id;
    let mut running = run_store(c.store, c.transport, listener, client_listener, engine)?;
    let status = StatusServer::start(c.status, metrics, None)?;
    let clients = running
        .clients
        .as_ref()
        .map_or_else(|| "none".to_string(), |c| c.local_addr().to_string());
    println!(
        "store {store_id}: raft on {}, clients on {clients}, status on http://{}/metrics",
        c.listen,
        status.addr()
    );
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("store {store_id}: shutting down");
    running.shutdown();
    Ok(())
}

fn local(
    stores: u64,
    regions: u64,
    data_dir: Option<PathBuf>,
    network_client: bool,
    load: Load,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        stores > 0 && regions > 0,
        "--stores and --regions must be positive"
    );
    let temp = match data_dir {
        Some(_) => None,
        None => Some(tempfile::tempdir().context("creating a temporary data directory")?),
    };
    let data_dir: &Path = match (&data_dir, &temp) {
        (Some(d), _) => d,
        (None, Some(t)) => t.path(),
        (None, None) => unreachable!("a temporary directory was made"),
    };
    let metrics = status::recorder()?;
    let ids: Vec<u64> = (1..=stores).collect();
    let mut listeners = BTreeMap::new();
    for &id in &ids {
        listeners.insert(id, TcpListener::bind("127.0.0.1:0")?);
    }
    let addrs: BTreeMap<u64, _> = listeners
        .iter()
        .map(|(id, l)| Ok((*id, l.local_addr()?)))
        .collect::<std::io::Result<_>>()?;
    let directory = Arc::new(LocalStores::default());
    let mut client_addrs = Vec::new();
    let mut running = Vec::new();
    let started = Instant::now();
    for (id, listener) in listeners {
        let cfg = StoreConfig::new(id, data_dir.join(format!("store-{id}")));
        let peers = addrs
            .iter()
            .filter(|(s, _)| **s != id)
            .map(|(s, a)| (*s, *a))
            .collect();
        let engine = open_engine(&cfg, &ids, regions, 3)?;
        let client_listener = TcpListener::bind("127.0.0.1:0")?;
        let r = run_store(
            cfg,
            TransportConfig::new(id, peers),
            listener,
            Some(client_listener),
            engine,
        )?;
        directory.insert(r.store.router());
        let status = StatusServer::start("127.0.0.1:0".parse()?, metrics.clone(), Some(id))?;
        let client_addr = r.clients.as_ref().map(ClientService::local_addr);
        if let Some(a) = client_addr {
            client_addrs.push(a);
        }
        println!(
            "store {id}: raft on {}, clients on {}, status on http://{}/metrics, data in {}",
            addrs[&id],
            client_addr.map_or_else(|| "none".into(), |a| a.to_string()),
            status.addr(),
            data_dir.join(format!("store-{id}")).display()
        );
        running.push((id, r, status));
    }
    let stores_dir: Arc<dyn StoreDirectory> = if network_client {
        Arc::new(RemoteStores::connect(
            &client_addrs,
            &RemoteConfig::default(),
        )?)
    } else {
        directory
    };
    let client = Arc::new(Client::new(stores_dir, ClientConfig::default()));
    for i in 0..regions {
        client.put(workload::key(i * (KEYS / regions)), "warm-up")?;
    }
    println!(
        "{stores} stores, {regions} regions: leaders elected and every region written in {:.2?}\n",
        started.elapsed()
    );
    let before: Vec<_> = running
        .iter()
        .map(|(id, r, _)| (*id, r.store.stats()))
        .collect();
    let out = workload::run(&client, load)?;
    let rows: Vec<_> = before
        .into_iter()
        .zip(&running)
        .map(|((id, b), (_, r, _))| (id, b, r.store.stats()))
        .collect();
    print!("{}", workload::report(&load, &out, &rows));
    for (_, mut r, _status) in running {
        r.shutdown();
    }
    Ok(())
}
