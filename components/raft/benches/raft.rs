//! Criterion benchmarks of the raft core, in memory (no disk, no network):
//! - `propose_commit/N`: a 3-peer group takes N proposals of 128 B, replicates
//!   and commits them on every peer; throughput in entries/s;
//! - `step_heartbeat` / `step_heartbeat_response`: the cost of stepping the
//!   messages a store will coalesce across thousands of groups.
//!
//! Run: `cargo bench -p flotilla-raft --bench raft`.

use std::collections::BTreeMap;
use std::hint::black_box;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use flotilla_raft::raftpb::{ConfState, Message, MessageType};
use flotilla_raft::{Config, MemStorage, RawNode, StateRole};

type Group = BTreeMap<u64, RawNode<MemStorage>>;

fn new_group(ids: &[u64]) -> Group {
    let cs = ConfState {
        voters: ids.to_vec(),
        ..Default::default()
    };
    ids.iter()
        .map(|&id| {
            let cfg = Config {
                inflight_msgs_max: 4096,
                msg_bytes_max: 4 << 20,
                ..Config::new(id)
            };
            let node = RawNode::new(&cfg, MemStorage::new_with_conf_state(cs.clone()))
                .expect("valid config");
            (id, node)
        })
        .collect()
}

/// Runs host rounds (ready, persist, send, advance) until nothing moves.
fn stabilize(g: &mut Group) {
    loop {
        let mut outbox: Vec<Message> = Vec::new();
        for node in g.values_mut() {
            if !node.has_ready() {
                continue;
            }
            let mut rd = node.ready();
            outbox.append(&mut rd.messages);
            node.store().persist_ready(&rd).expect("in-memory persist");
            outbox.append(&mut rd.persisted_messages);
            node.advance(rd);
        }
        if outbox.is_empty() {
            return;
        }
        for m in outbox {
            if let Some(n) = g.get_mut(&m.to) {
                n.step(m).expect("step");
            }
        }
    }
}

fn elected_group() -> Group {
    let mut g = new_group(&[1, 2, 3]);
    g.get_mut(&1).expect("peer 1").campaign().expect("campaign");
    stabilize(&mut g);
    assert_eq!(g[&1].raft.state, StateRole::Leader);
    g
}

fn bench_propose_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("propose_commit");
    let payload = Bytes::from(vec![b'v'; 128]);
    for batch in [1u64, 64, 1024] {
        group.throughput(Throughput::Elements(batch));
        group.bench_function(format!("{batch}"), |b| {
            b.iter_batched_ref(
                elected_group,
                |g| {
                    let leader = g.get_mut(&1).expect("leader");
                    for _ in 0..batch {
                        leader
                            .propose(Bytes::new(), payload.clone())
                            .expect("propose");
                    }
                    stabilize(g);
                    black_box(g[&3].raft.raft_log.committed)
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn bench_heartbeats(c: &mut Criterion) {
    let mut g = elected_group();
    let term = g[&1].raft.term;
    let commit = g[&1].raft.raft_log.committed;
    let hb = Message {
        msg_type: MessageType::MsgHeartbeat as i32,
        from: 1,
        to: 2,
        term,
        commit,
        ..Default::default()
    };
    let follower = g.get_mut(&2).expect("peer 2");
    c.bench_function("step_heartbeat", |b| {
        b.iter(|| {
            follower.step(black_box(hb.clone())).expect("step");
            follower.raft.msgs.clear();
        })
    });
    let resp = Message {
        msg_type: MessageType::MsgHeartbeatResponse as i32,
        from: 2,
        to: 1,
        term,
        ..Default::default()
    };
    let leader = g.get_mut(&1).expect("peer 1");
    c.bench_function("step_heartbeat_response", |b| {
        b.iter(|| {
            leader.step(black_box(resp.clone())).expect("step");
            leader.raft.msgs.clear();
        })
    });
}

criterion_group!(benches, bench_propose_commit, bench_heartbeats);
criterion_main!(benches);
