//! No message a peer can send panics a raft peer. Random messages of every
//! type that may arrive from the network, with random terms, indexes,
//! entries and snapshots, are thrown at peers in every role, between ticks
//! and handled readies. `FLOTILLA_SEEDS` sets the number of seeds.

use bytes::Bytes;
use flotilla_raft::raftpb::{ConfState, Entry, Message, MessageType, Snapshot, SnapshotMetadata};
use flotilla_raft::{Config, MemStorage, RawNode};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const NETWORK_TYPES: [MessageType; 14] = [
    MessageType::MsgPropose,
    MessageType::MsgAppend,
    MessageType::MsgAppendResponse,
    MessageType::MsgRequestVote,
    MessageType::MsgRequestVoteResponse,
    MessageType::MsgSnapshot,
    MessageType::MsgHeartbeat,
    MessageType::MsgHeartbeatResponse,
    MessageType::MsgTransferLeader,
    MessageType::MsgTimeoutNow,
    MessageType::MsgReadIndex,
    MessageType::MsgReadIndexResponse,
    MessageType::MsgRequestPreVote,
    MessageType::MsgRequestPreVoteResponse,
];

fn random_entries(rng: &mut ChaCha8Rng, after: u64) -> Vec<Entry> {
    let n = rng.random_range(0..4u64);
    let contiguous = rng.random_bool(0.8);
    (0..n)
        .map(|i| Entry {
            index: if contiguous {
                after + 1 + i
            } else {
                rng.random_range(0..30)
            },
            term: rng.random_range(0..6),
            entry_type: rng.random_range(0..3),
            data: Bytes::from(vec![b'x'; rng.random_range(0..16)]),
            ..Default::default()
        })
        .collect()
}

fn random_snapshot(rng: &mut ChaCha8Rng) -> Option<Snapshot> {
    if rng.random_bool(0.3) {
        return None;
    }
    let voters: Vec<u64> = (1..=rng.random_range(0..5u64)).collect();
    let cs = ConfState {
        voters,
        ..Default::default()
    };
    let meta = SnapshotMetadata::new(rng.random_range(0..30), rng.random_range(0..6), cs);
    Some(Snapshot {
        data: Bytes::new(),
        metadata: rng.random_bool(0.9).then_some(meta),
    })
}

fn random_message(rng: &mut ChaCha8Rng) -> Message {
    let t = NETWORK_TYPES[rng.random_range(0..NETWORK_TYPES.len())];
    let index = rng.random_range(0..30);
    Message {
        msg_type: t as i32,
        to: 1,
        from: [2, 3, 9][rng.random_range(0..3)],
        term: rng.random_range(0..6),
        log_term: rng.random_range(0..6),
        index,
        entries: random_entries(rng, index),
        commit: rng.random_range(0..30),
        snapshot: if t == MessageType::MsgSnapshot {
            random_snapshot(rng).map(Box::new)
        } else {
            None
        },
        reject: rng.random_bool(0.3),
        reject_hint: rng.random_range(0..30),
        context: Bytes::new(),
    }
}

fn drain(n: &mut RawNode<MemStorage>) {
    while n.has_ready() {
        let rd = n.ready();
        n.store().persist_ready(&rd).expect("persist");
        n.advance(rd);
    }
}

#[test]
fn random_peer_messages_never_panic_a_peer() {
    flotilla_testkit::for_each_seed("random_peer_messages_never_panic_a_peer", 200, |seed| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let cs = ConfState {
            voters: vec![1, 2, 3],
            ..Default::default()
        };
        let cfg = Config {
            pre_vote: rng.random_bool(0.5),
            check_quorum: rng.random_bool(0.5),
            seed,
            ..Config::new(1)
        };
        let mut n = RawNode::new(&cfg, MemStorage::new_with_conf_state(cs)).expect("config");
        if rng.random_bool(0.5) {
            // Sometimes start as a leader with a few entries of its own.
            n.raft.become_candidate();
            n.raft.become_leader();
            drain(&mut n);
        }
        for _ in 0..300 {
            match rng.random_range(0..10) {
                0 => n.tick(),
                1 => drain(&mut n),
                _ => {
                    // Errors are fine; panics are not.
                    let _ = n.step(random_message(&mut rng));
                }
            }
        }
        drain(&mut n);
    });
}
