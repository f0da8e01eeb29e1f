//! A local cluster under load: 3 stores in this process (each on its own
//! RocksDB in a temporary directory, over the in-memory network), the key
//! space pre-cut into regions, client threads writing and reading through
//! the embedded API for a fixed time, then a report.
//!
//! `make run`, or `cargo run --release -p flotilla-raftstore --example
//! local_cluster -- [--stores N] [--regions N] [--clients N] [--seconds N]
//! [--value-bytes N] [--reads-percent N]`.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use flotilla_raftstore::bootstrap::{CounterIds, bootstrap_store, even_split_keys, plan_regions};
use flotilla_raftstore::transport::mem::MemNetwork;
use flotilla_raftstore::{
    Client, ClientConfig, LocalStores, Store, StoreConfig, StoreDeps, SystemClock,
};

struct Args {
    stores: u64,
    regions: u64,
    clients: u64,
    seconds: u64,
    value_bytes: usize,
    reads_percent: u64,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        stores: 3,
        regions: 64,
        clients: 64,
        seconds: 10,
        value_bytes: 128,
        reads_percent: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        let n: u64 = value
            .parse()
            .map_err(|_| anyhow::anyhow!("{flag}: not a number: {value}"))?;
        match flag.as_str() {
            "--stores" => a.stores = n,
            "--regions" => a.regions = n,
            "--clients" => a.clients = n,
            "--seconds" => a.seconds = n,
            "--value-bytes" => a.value_bytes = usize::try_from(n)?,
            "--reads-percent" => a.reads_percent = n.min(100),
            _ => anyhow::bail!("unknown flag {flag}"),
        }
    }
    anyhow::ensure!(
        a.stores > 0 && a.regions > 0 && a.clients > 0,
        "counts must be positive"
    );
    Ok(a)
}

const KEYS: u64 = 1_000_000;

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let root = tempfile::tempdir()?;
    let net = MemNetwork::new(Arc::new(SystemClock::default()));
    let store_ids: Vec<u64> = (1..=args.stores).collect();
    let split = even_split_keys("k", KEYS, 7, args.regions);
    let regions = plan_regions(&store_ids, &split, 3, &CounterIds::default())?;
    let directory = Arc::new(LocalStores::default());
    let mut stores = Vec::new();
    for &id in &store_ids {
        let cfg = StoreConfig::new(id, root.path().join(format!("store-{id}")));
        let engine = flotilla_engine::Engine::open(&cfg.data_dir, &cfg.engine)?;
        bootstrap_store(&engine, id, &regions)?;
        let mut store = Store::with_engine(cfg, engine, StoreDeps::new(net.transport(id)))?;
        net.register(id, Arc::new(store.router()));
        directory.insert(store.router());
        store.start()?;
        stores.push(store);
    }
    println!(
        "cluster: {} stores, {} regions x 3 replicas, data in {}",
        args.stores,
        regions.len(),
        root.path().display()
    );
    let client = Arc::new(Client::new(directory, ClientConfig::default()));
    let started = Instant::now();
    // Every region elects a leader: one write to each.
    for r in &regions {
        let key = if r.start_key.is_empty() {
            Bytes::from_static(b"k0000000")
        } else {
            r.start_key.clone()
        };
        client.put(key, Bytes::from_static(b"warm-up"))?;
    }
    println!(
        "leaders elected and warm-up written in {:.2?}",
        started.elapsed()
    );

    let before: Vec<_> = stores.iter().map(Store::stats).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let value = Bytes::from(vec![b'v'; args.value_bytes]);
    let mut workers = Vec::new();
    for c in 0..args.clients {
        let (client, stop, value) = (Arc::clone(&client), Arc::clone(&stop), value.clone());
        let reads_percent = args.reads_percent;
        workers.push(std::thread::spawn(move || {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut x = c.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            while !stop.load(Ordering::Relaxed) {
                // xorshift: a cheap, seeded key choice.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let key = Bytes::from(format!("k{:07}", x % KEYS));
                let t = Instant::now();
                let ok = if x % 100 < reads_percent {
                    client.get(key).is_ok()
                } else {
                    client.put(key, value.clone()).is_ok()
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
    let run = Duration::from_secs(args.seconds);
    std::thread::sleep(run);
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w
            .join()
            .map_err(|_| anyhow::anyhow!("a client thread panicked"))?;
        latencies.extend(l);
        errors += e;
    }
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!();
    println!(
        "load: {} client threads for {}s, {} B values, {}% reads",
        args.clients, args.seconds, args.value_bytes, args.reads_percent
    );
    println!(
        "  ops: {} ({:.0}/s), errors: {errors}",
        latencies.len(),
        latencies.len() as f64 / run.as_secs_f64()
    );
    println!(
        "  latency: p50 {:.2?}  p99 {:.2?}  max {:.2?}",
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    println!();
    println!(
        "store  rounds  regions/round  synced writes  entries/sync  flushes  msgs/flush  hb frames  hb/frame  lease reads  read-index reads"
    );
    for (s, b) in stores.iter().zip(before) {
        let a = s.stats();
        let d = |x: u64, y: u64| x - y;
        let ratio = |x: u64, y: u64| if y == 0 { 0.0 } else { x as f64 / y as f64 };
        let rounds = d(a.rounds, b.rounds);
        let syncs = d(a.synced_writes, b.synced_writes);
        let flushes = d(a.flushes, b.flushes);
        let hb_frames = d(a.heartbeat_frames, b.heartbeat_frames);
        println!(
            "{:>5}  {:>6}  {:>13.1}  {:>13}  {:>12.1}  {:>7}  {:>10.1}  {:>9}  {:>8.1}  {:>11}  {:>16}",
            s.router().store_id(),
            rounds,
            ratio(d(a.round_regions, b.round_regions), rounds),
            syncs,
            ratio(d(a.entries_synced, b.entries_synced), syncs),
            flushes,
            ratio(d(a.messages_flushed, b.messages_flushed), flushes),
            hb_frames,
            ratio(d(a.heartbeats_coalesced, b.heartbeats_coalesced), hb_frames),
            d(a.lease_reads, b.lease_reads),
            d(a.read_index_reads, b.read_index_reads),
        );
    }
    for mut s in stores {
        s.shutdown();
    }
    Ok(())
}
