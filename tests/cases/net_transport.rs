//! Stores over real TCP on 127.0.0.1: the network transport carries the
//! cluster, survives a store's restart, and refuses bad input without
//! disturbing anyone else.

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use flotilla_proto::ProstMessage;
use flotilla_proto::serverpb::{Hello, StoreBatch};
use flotilla_raftstore::bootstrap::even_split_keys;
use flotilla_tests::cluster::ClusterSpec;
use flotilla_tests::tcp_cluster::TcpCluster;
use flotilla_transport::frame::{FrameKind, encode_into};

const WAIT: Duration = Duration::from_secs(30);

fn key(i: u64) -> Bytes {
    Bytes::from(format!("k{i:06}"))
}

fn frame(kind: FrameKind, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(kind, payload, &mut out);
    out
}

fn hello(from: u64, to: u64) -> Vec<u8> {
    frame(
        FrameKind::Hello,
        &Hello {
            from_store: from,
            to_store: to,
        }
        .encode_to_vec(),
    )
}

/// Waits until `cond` holds, or panics with `what` after the hang guard.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_cluster_over_tcp_serves_writes_and_a_restarted_store_catches_up() {
    let mut c = TcpCluster::start(ClusterSpec::new(3, even_split_keys("k", 200, 6, 8)));
    for i in 0..100 {
        c.client.put(key(i), "one").expect("put over tcp");
    }
    c.stop_store(3);
    for i in 100..200 {
        c.client.put(key(i), "two").expect("put with a store down");
    }
    c.restart_store(3);
    let regions = c.regions.clone();
    for i in 0..200 {
        let want: &[u8] = if i < 100 { b"one" } else { b"two" };
        assert_eq!(c.client.get(key(i)).expect("get").as_deref(), Some(want));
        let k = key(i);
        let region = regions
            .iter()
            .find(|r| k >= r.start_key && (r.end_key.is_empty() || k < r.end_key))
            .expect("a region holds every key");
        let engine = c.stores[&3].0.engine();
        wait_until("the restarted store has every write", || {
            engine.get(region, &k).expect("engine get").as_deref() == Some(want)
        });
    }
    let t = c.stores[&1].1.stats();
    assert!(t.frames_sent > 0 && t.frames_received > 0, "{t:?}");
    assert_eq!(t.frames_rejected, 0, "peers send only valid frames: {t:?}");
}

#[test]
fn a_store_behind_a_compacted_log_catches_up_by_a_snapshot_streamed_in_chunks() {
    let mut spec = ClusterSpec::new(3, vec![]);
    spec.configure = |cfg| {
        cfg.log_gc_threshold_entries = 10;
        cfg.log_gc_keep_entries = 2;
    };
    let mut c = TcpCluster::start_with(spec, |t| {
        t.snapshot_chunk_bytes = 1024;
        t.snapshot_bytes_per_sec = 4 << 20;
    });
    let value = Bytes::from(vec![b'v'; 512]);
    c.client.put(key(0), value.clone()).expect("first put");
    c.stop_store(3);
    for i in 1..60 {
        c.client
            .put(key(i), value.clone())
            .expect("put with a store down");
    }
    c.restart_store(3);
    let region = c.regions[0].clone();
    let engine = c.stores[&3].0.engine();
    for i in 0..60 {
        wait_until("the restarted store has every write", || {
            engine.get(&region, &key(i)).expect("engine get").as_deref() == Some(&value[..])
        });
    }
    assert!(
        c.stores[&3].0.stats().snapshots_applied >= 1,
        "caught up by snapshot"
    );
    let sent: Vec<_> = [1, 2].iter().map(|s| c.stores[s].1.stats()).collect();
    let chunks: u64 = sent.iter().map(|t| t.snapshot_chunks_sent).sum();
    let bytes: u64 = sent.iter().map(|t| t.snapshot_sent_bytes).sum();
    assert!(
        sent.iter().map(|t| t.snapshots_sent).sum::<u64>() >= 1,
        "{sent:?}"
    );
    assert!(
        bytes > 60 * 512 && chunks >= bytes / 1024,
        "60 values of 512 bytes travel in 1 KiB chunks: {sent:?}"
    );
    let received = c.stores[&3].1.stats();
    assert!(received.snapshots_received >= 1, "{received:?}");
    assert_eq!(received.frames_rejected, 0, "{received:?}");
}

#[test]
fn bad_input_on_the_raft_port_is_refused_while_a_workload_goes_on() {
    let c = TcpCluster::start(ClusterSpec::new(3, even_split_keys("k", 100, 6, 4)));
    c.client.put(key(0), "warm").expect("first put");
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    std::thread::scope(|s| {
        let (stop2, done2, client) = (stop.clone(), done.clone(), &c.client);
        s.spawn(move || {
            let mut i = 0;
            while !stop2.load(Ordering::Relaxed) {
                client
                    .put(key(i % 100), "load")
                    .expect("the workload keeps going");
                done2.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        });
        let target = c.addrs[&1];
        let transport = c.stores[&1].1.clone();
        let mut four_gib = frame(FrameKind::Batch, b"");
        four_gib[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        let good_batch = |from, to| {
            frame(
                FrameKind::Batch,
                &StoreBatch {
                    from_store: from,
                    to_store: to,
                    ..Default::default()
                }
                .encode_to_vec(),
            )
        };
        let attacks: Vec<(&str, Vec<u8>)> = vec![
            (
                "random bytes",
                (0..4096u32)
                    .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                    .collect(),
            ),
            ("a frame declaring 4 GiB", [hello(2, 1), four_gib].concat()),
            ("a hello for another store", hello(2, 99)),
            ("a hello from an unknown store", hello(42, 1)),
            ("a batch before any hello", good_batch(2, 1)),
            (
                "garbage protobuf",
                [hello(2, 1), frame(FrameKind::Batch, &[0xff; 64])].concat(),
            ),
            (
                "a batch claiming another sender",
                [hello(2, 1), good_batch(3, 1)].concat(),
            ),
        ];
        for (what, bytes) in attacks {
            let before = transport.stats().frames_rejected;
            let mut s = TcpStream::connect(target).expect("connect to the raft port");
            s.write_all(&bytes).expect("send");
            wait_until(&format!("{what} is rejected"), || {
                transport.stats().frames_rejected > before
            });
        }
        // A well-formed batch for a region store 1 does not host is
        // dropped and counted, and the connection stays up.
        let stray = StoreBatch {
            from_store: 2,
            to_store: 1,
            heartbeats: vec![flotilla_proto::serverpb::HeartbeatEntry {
                region_id: 9_999,
                ..Default::default()
            }],
            ..Default::default()
        };
        let before = c.stores[&1].0.stats().undeliverable;
        let mut s = TcpStream::connect(target).expect("connect");
        s.write_all(&[hello(2, 1), frame(FrameKind::Batch, &stray.encode_to_vec())].concat())
            .expect("send");
        wait_until("the stray message is counted", || {
            c.stores[&1].0.stats().undeliverable > before
        });
        // A truncated frame: half a hello, then the connection closes.
        let half = hello(2, 1);
        let mut s = TcpStream::connect(target).expect("connect");
        s.write_all(&half[..half.len() / 2]).expect("send");
        drop(s);
        let progress = done.load(Ordering::Relaxed);
        wait_until("the workload progresses after the attacks", || {
            done.load(Ordering::Relaxed) > progress + 20
        });
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(
        c.client.get(key(0)).expect("get").as_deref(),
        Some(&b"load"[..])
    );
}
