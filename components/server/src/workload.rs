//! A short workload through the embedded client, and its report.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use flotilla_raftstore::{Client, StatsSnapshot};

/// Keys are `k` + 7 digits, uniformly drawn from this many.
pub const KEYS: u64 = 10_000_000;

/// The key with number `n`.
pub fn key(n: u64) -> Bytes {
    Bytes::from(format!("k{:07}", n % KEYS))
}

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Client threads, each with one request in flight.
    pub clients: u64,
    /// How long.
    pub duration: Duration,
    /// Value size.
    pub value_bytes: usize,
    /// Share of reads, in percent.
    pub reads_percent: u64,
}

/// What a run measured.
#[derive(Debug)]
pub struct Outcome {
    /// Latencies of the operations that succeeded, sorted.
    pub latencies: Vec<Duration>,
    /// Operations that failed.
    pub errors: u64,
    /// How long the load ran.
    pub elapsed: Duration,
}

impl Outcome {
    /// The `p`-quantile latency (0.0 to 1.0).
    pub fn quantile(&self, p: f64) -> Duration {
        let n = self.latencies.len();
        if n == 0 {
            return Duration::ZERO;
        }
        self.latencies[((n as f64 * p) as usize).min(n - 1)]
    }
}

/// Runs `load` through `client`.
pub fn run(client: &Arc<Client>, load: Load) -> anyhow::Result<Outcome> {
    let stop = Arc::new(AtomicBool::new(false));
    let value = Bytes::from(vec![b'v'; load.value_bytes]);
    let started = Instant::now();
    let mut workers = Vec::new();
    for c in 0..load.clients {
        let (client, stop, value) = (Arc::clone(client), Arc::clone(&stop), value.clone());
        workers.push(std::thread::spawn(move || {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut x = c.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            while !stop.load(Ordering::Relaxed) {
                // xorshift: a cheap, seeded key choice.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let t = Instant::now();
                let ok = if x % 100 < load.reads_percent {
                    client.get(key(x)).is_ok()
                } else {
                    client.put(key(x), value.clone()).is_ok()
                };
                if ok {
                    latencies.push(t.elapsed());
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    std::thread::sleep(load.duration);
    stop.store(true, Ordering::Relaxed);
    let mut out = Outcome {
        latencies: Vec::new(),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for w in workers {
        let (l, e) = w
            .join()
            .map_err(|_| anyhow::anyhow!("a client thread panicked"))?;
        out.latencies.extend(l);
        out.errors += e;
    }
    out.elapsed = started.elapsed();
    out.latencies.sort();
    Ok(out)
}

/// The report: throughput, latency, and per store what the rounds did
/// between `before` and `after`.
pub fn report(
    load: &Load,
    out: &Outcome,
    stores: &[(u64, StatsSnapshot, StatsSnapshot)],
) -> String {
    let mut s = String::new();
    let secs = out.elapsed.as_secs_f64();
    s += &format!(
        "load: {} client threads for {:.1}s, {} B values, {}% reads\n",
        load.clients, secs, load.value_bytes, load.reads_percent
    );
    s += &format!(
        "  ops: {} ({:.0}/s), errors: {}\n",
        out.latencies.len(),
        out.latencies.len() as f64 / secs,
        out.errors
    );
    s += &format!(
        "  latency: p50 {:.2?}  p99 {:.2?}  max {:.2?}\n\n",
        out.quantile(0.50),
        out.quantile(0.99),
        out.quantile(1.0)
    );
    s += "store  rounds  regions/round  synced writes  entries/sync  flushes  msgs/flush  hb frames  hb/frame  lease reads  read-index reads\n";
    for (id, b, a) in stores {
        let ratio = |x: u64, y: u64| if y == 0 { 0.0 } else { x as f64 / y as f64 };
        let rounds = a.rounds - b.rounds;
        let syncs = a.synced_writes - b.synced_writes;
        let flushes = a.flushes - b.flushes;
        let hb_frames = a.heartbeat_frames - b.heartbeat_frames;
        s += &format!(
            "{:>5}  {:>6}  {:>13.1}  {:>13}  {:>12.1}  {:>7}  {:>10.1}  {:>9}  {:>8.1}  {:>11}  {:>16}\n",
            id,
            rounds,
            ratio(a.round_regions - b.round_regions, rounds),
            syncs,
            ratio(a.entries_synced - b.entries_synced, syncs),
            flushes,
            ratio(a.messages_flushed - b.messages_flushed, flushes),
            hb_frames,
            ratio(a.heartbeats_coalesced - b.heartbeats_coalesced, hb_frames),
            a.lease_reads - b.lease_reads,
            a.read_index_reads - b.read_index_reads,
        );
    }
    s
}
