//! Synced write-batch commits: batches of 1, 16, 256 and 4096 user puts of
//! 16-byte keys and 128-byte values, one `Engine::write(batch, sync=true)`
//! per iteration. Two views of the same measurement: commits per second
//! (`commits/`) and entries per second (`entries/`).
//!
//! Run: `cargo bench -p flotilla-engine --bench write_batch`
//! (add `-- --measurement-time 3 --warm-up-time 1` for a short run).

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use flotilla_engine::{Engine, EngineConfig, RegionLogStorage};
use flotilla_proto::metapb::Region;
use flotilla_proto::raftpb::{Entry, HardState};

const BATCH_SIZES: [u64; 4] = [1, 16, 256, 4096];
const VALUE: [u8; 128] = [0x5a; 128];

/// A 16-byte key: a big-endian counter, then padding.
fn key(n: u64) -> [u8; 16] {
    let mut k = [0x2d; 16];
    k[..8].copy_from_slice(&n.to_be_bytes());
    k
}

fn commit(engine: &Engine, next: &mut u64, entries: u64) {
    let mut wb = engine.write_batch();
    for _ in 0..entries {
        wb.put_data(&key(*next), &VALUE);
        *next += 1;
    }
    engine.write(wb, true).expect("synced write");
}

fn bench_group(c: &mut Criterion, name: &str, per_commit: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::open(dir.path(), &EngineConfig::default()).expect("open");
    let mut next = 0u64;
    let mut group = c.benchmark_group(name);
    for entries in BATCH_SIZES {
        let throughput = if per_commit { 1 } else { entries };
        group.throughput(Throughput::Elements(throughput));
        group.bench_with_input(BenchmarkId::from_parameter(entries), &entries, |b, &n| {
            b.iter(|| commit(&engine, &mut next, n));
        });
    }
    group.finish();
}

/// The store's real round: 64 regions each append 16 raft entries (128-byte
/// payloads) and a hard state into one batch, one synced write.
fn raft_rounds(c: &mut Criterion) {
    const REGIONS: u64 = 64;
    const PER_REGION: u64 = 16;
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::open(dir.path(), &EngineConfig::default()).expect("open");
    let mut wb = engine.write_batch();
    let mut stores: Vec<_> = (1..=REGIONS)
        .map(|id| {
            let region = Region {
                id,
                ..Default::default()
            };
            RegionLogStorage::create(&engine, region, &mut wb)
        })
        .collect();
    engine.write(wb, true).expect("create regions");
    let payload = Bytes::from_static(&VALUE);
    let mut next = 1u64;
    let mut group = c.benchmark_group("raft_round");
    group.throughput(Throughput::Elements(REGIONS * PER_REGION));
    group.bench_function(format!("{REGIONS}x{PER_REGION}"), |b| {
        b.iter(|| {
            let mut wb = engine.write_batch();
            let ents: Vec<_> = (next..next + PER_REGION)
                .map(|index| Entry {
                    index,
                    term: 1,
                    data: payload.clone(),
                    ..Default::default()
                })
                .collect();
            for s in &mut stores {
                s.append(&ents, &mut wb);
                s.set_hard_state(
                    HardState {
                        term: 1,
                        vote: 1,
                        commit: next,
                    },
                    &mut wb,
                );
            }
            next += PER_REGION;
            engine.write(wb, true).expect("synced round");
        });
    });
    group.finish();
}

fn synced_write_batches(c: &mut Criterion) {
    bench_group(c, "commits", true);
    bench_group(c, "entries", false);
    raft_rounds(c);
}

criterion_group!(benches, synced_write_batches);
criterion_main!(benches);
