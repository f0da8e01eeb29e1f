//! `flotilla`: run one store from a TOML configuration (`start`), or a
//! whole local cluster on loopback under a short workload (`local`).
#![allow(clippy::print_stdout, clippy::print_stderr)] // A binary: its output is the interface.

mod config;
mod status;
mod workload;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use flotilla_bench::cluster::{LocalCluster, LocalClusterConfig, open_engine, run_store};
use flotilla_raftstore::{Client, ClientConfig, StoreDirectory};
use flotilla_transport::client::{RemoteConfig, RemoteStores};

use crate::config::FileConfig;
use crate::status::StatusServer;
use crate::workload::{KEYS, Load};

// The store allocates and frees many small buffers per replicated entry
// (messages, entries, frames) across threads; mimalloc does that with a
// fraction of the system allocator's CPU. It is built without transparent
// huge pages (the workspace's `no_thp`): see the note there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Measures a cluster under a YCSB-style load: throughput, latency
    /// percentiles, the stores' own counters and the disk's raw ceiling,
    /// in one report (`--json`, `--plot`); `bench sweep` compares batched
    /// and naive stores over region counts.
    Bench(Box<flotilla_bench::BenchCommand>),
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
        Command::Bench(cmd) => flotilla_bench::main(*cmd),
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
    let metrics = status::recorder()?;
    let started = Instant::now();
    let mut cluster = LocalCluster::start(&LocalClusterConfig {
        stores,
        regions,
        data_dir,
        pollers: 2,
        cross_region_batching: true,
        async_raft_write: true,
        broadcast_commit: false,
        proposal_batch_bytes_max: flotilla_raftstore::PROPOSAL_BATCH_BYTES_MAX,
        log_gc_threshold_bytes: flotilla_raftstore::LOG_GC_THRESHOLD_BYTES,
    })?;
    let mut status_servers = Vec::new();
    for (id, r) in &cluster.stores {
        let status = StatusServer::start("127.0.0.1:0".parse()?, metrics.clone(), Some(*id))?;
        println!(
            "store {id}: raft on {}, clients on {}, status on http://{}/metrics, data in {}",
            cluster.raft_addrs[id],
            r.clients
                .as_ref()
                .map_or_else(|| "none".into(), |c| c.local_addr().to_string()),
            status.addr(),
            cluster.data_dir().join(format!("store-{id}")).display()
        );
        status_servers.push(status);
    }
    let client_addrs: Vec<_> = cluster.client_addrs.values().copied().collect();
    let directory = cluster.local.clone();
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
    let before = cluster.stats();
    let out = workload::run(&client, load)?;
    let rows: Vec<_> = before
        .into_iter()
        .zip(cluster.stats())
        .map(|((id, b), (_, a))| (id, b, a))
        .collect();
    print!("{}", workload::report(&load, &out, &rows));
    cluster.shutdown();
    drop(status_servers);
    Ok(())
}
