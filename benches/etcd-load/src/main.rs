//! `etcd-load`: puts at a fixed number of requests in flight against an
//! etcd cluster, reporting throughput and latency percentiles the way
//! `flotilla bench` does (same key space, value size and key choice).
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use etcd_client::Client;
use hdrhistogram::Histogram;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Parser)]
struct Args {
    /// The cluster's client endpoints.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379"
    )]
    endpoints: Vec<String>,
    /// Requests in flight.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// gRPC connections the requests are spread over.
    #[arg(long, default_value_t = 8)]
    conns: usize,
    /// Distinct keys, spread over `k0000000`..`k9999999`.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Value size.
    #[arg(long, default_value_t = 128)]
    value_bytes: usize,
    /// Measured time.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Load before measuring.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Client threads of the runtime.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut clients = Vec::new();
    for _ in 0..args.conns.max(1) {
        clients.push(Client::connect(&args.endpoints, None).await?);
    }
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let value = vec![b'v'; args.value_bytes];
    let step = (10_000_000 / args.keys.max(1)).max(1);
    let mut tasks = Vec::new();
    for t in 0..args.concurrency {
        let mut kv = clients[t % clients.len()].kv_client();
        let (measuring, stop, value) = (measuring.clone(), stop.clone(), value.clone());
        let keys = args.keys;
        tasks.push(tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(t as u64);
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
            let mut errors = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let k = format!("k{:07}", (rng.random_range(0..keys) * step) % 10_000_000);
                let t0 = Instant::now();
                let ok = kv.put(k, value.clone(), None).await.is_ok();
                if measuring.load(Ordering::Relaxed) {
                    if ok {
                        hist.saturating_record((t0.elapsed().as_micros() as u64).max(1));
                    } else {
                        errors += 1;
                    }
                }
            }
            (hist, errors)
        }));
    }
    tokio::time::sleep(args.warmup).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(args.duration).await;
    measuring.store(false, Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut errors = 0;
    for t in tasks {
        let (h, e) = t.await?;
        hist.add(h)?;
        errors += e;
    }
    let ms = |p: f64| hist.value_at_percentile(p) as f64 / 1000.0;
    let report = serde_json::json!({
        "target": "etcd",
        "concurrency": args.concurrency,
        "value_bytes": args.value_bytes,
        "keys": args.keys,
        "duration_secs": secs,
        "ops": hist.len(),
        "errors": errors,
        "ops_per_sec": hist.len() as f64 / secs,
        "p50_ms": ms(50.0),
        "p99_ms": ms(99.0),
        "p999_ms": ms(99.9),
    });
    println!("{report}");
    Ok(())
}
