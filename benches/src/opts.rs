//! The command line of `flotilla bench`. Flag names are stable: scripts and
//! docs rely on them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

/// What the clients do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Puts only.
    Write,
    /// YCSB A: 50% reads, 50% updates.
    A,
    /// YCSB B: 95% reads, 5% updates.
    B,
    /// YCSB C: reads only.
    C,
    /// YCSB E: 95% short scans (1 to 100 keys), 5% puts.
    E,
}

/// How keys are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    /// Every key equally likely.
    Uniform,
    /// Zipfian (constant 0.99), hot keys scattered over the key space.
    Zipfian,
}

/// How the local cluster's stores batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One synced write and one frame per destination per round for all
    /// regions; heartbeats coalesced.
    Batched,
    /// Each region syncs its own writes and sends its own messages;
    /// heartbeats not coalesced.
    Naive,
}

/// Where a local store's raft batches are written and synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RaftWrite {
    /// On the store's writer thread, while the next round runs; a leader's
    /// appends leave before its own sync.
    Writer,
    /// At the end of each round, before it sends anything.
    Round,
}

/// Settings shared by a single run and a sweep.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Stores of the local cluster.
    #[arg(long, default_value_t = 3)]
    pub stores: u64,
    /// The workload.
    #[arg(long, value_enum, default_value_t = Workload::Write)]
    pub workload: Workload,
    /// How keys are chosen.
    #[arg(long, value_enum, default_value_t = Distribution::Uniform)]
    pub distribution: Distribution,
    /// Distinct keys (spread evenly over the key space, hence over every
    /// region). Read workloads write each of them once before the run.
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 128)]
    pub value_bytes: usize,
    /// Requests in flight (with `--rate`: at most).
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Open loop: issue this many requests per second on a fixed schedule,
    /// whether or not earlier ones were answered, and time each from when
    /// it was due (so a stall counts against every request it delays).
    /// Without it the clients keep `--concurrency` requests in flight.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Threads keeping them in flight through the client's asynchronous
    /// calls (workload E's scans, which have none, take a thread per
    /// request in flight instead).
    #[arg(long, default_value_t = 2)]
    pub client_threads: usize,
    /// How long the measured part runs (e.g. 20s, 1m).
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Stop after this many operations instead (the duration still caps it).
    #[arg(long)]
    pub ops: Option<u64>,
    /// Load before measuring, not counted.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Where the local cluster keeps its data (default: a temporary
    /// directory, removed at the end). The disk ceiling is measured here.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Poller threads per store (the local cluster's stores share this
    /// machine: one each keeps threads fewer than a few per core).
    #[arg(long, default_value_t = 1)]
    pub pollers: usize,
    /// Where the local stores write and sync their raft batches (batched
    /// mode; naive stores write in the round).
    #[arg(long, value_enum, default_value_t = RaftWrite::Writer)]
    pub raft_write: RaftWrite,
    /// Local stores send every follower an append each time a region's
    /// commit index moves, instead of letting the commit ride on the next
    /// append or heartbeat (the store's default).
    #[arg(long)]
    pub broadcast_commit: bool,
    /// Client writes a leader takes in one turn join one raft entry up to
    /// this many bytes (0: one entry per write).
    #[arg(long, default_value_t = flotilla_raftstore::PROPOSAL_BATCH_BYTES_MAX)]
    pub proposal_batch_bytes: u64,
    /// Payload bytes a region's raft log may hold before it is compacted
    /// (0: only every 1,024 applied entries).
    #[arg(long, default_value_t = flotilla_raftstore::LOG_GC_THRESHOLD_BYTES)]
    pub log_gc_bytes: u64,
    /// How long each raw-disk measurement runs, before and after the load
    /// (0s: skip the calibration).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub calibrate: Duration,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// `flotilla bench`: one run.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Regions of the local cluster (the key space pre-cut evenly).
    #[arg(long, default_value_t = 1000)]
    pub regions: u64,
    /// Batching of the local cluster's stores.
    #[arg(long, value_enum, default_value_t = Mode::Batched)]
    pub mode: Mode,
    /// Drive an existing cluster instead, by its stores' client addresses
    /// (comma-separated). Store counters are then not in the report.
    #[arg(long, value_delimiter = ',')]
    pub connect: Vec<SocketAddr>,
    /// Write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw throughput over time and the latency distribution here (SVG).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    #[command(flatten)]
    pub common: Common,
}

/// `flotilla bench sweep`: both modes over a range of region counts.
#[derive(Debug, Clone, Args)]
pub struct SweepArgs {
    /// Region counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000,10000")]
    pub regions: Vec<u64>,
    /// Write every run's report as a JSON array here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw throughput against regions for both modes here (SVG).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    #[command(flatten)]
    pub common: Common,
}

/// `flotilla bench [sweep]`.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchCommand {
    /// A sweep instead of one run.
    #[command(subcommand)]
    pub sub: Option<BenchSub>,
    /// One run's settings.
    #[command(flatten)]
    pub args: BenchArgs,
}

/// What `flotilla bench` can do besides one run.
#[derive(Debug, Clone, Subcommand)]
pub enum BenchSub {
    /// Runs both modes for each region count, prints one row per run and
    /// draws the curve.
    Sweep(SweepArgs),
}
