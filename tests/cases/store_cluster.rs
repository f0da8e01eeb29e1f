//! The store through its public face: a cluster of stores on threads, real
//! RocksDB, the in-memory network with filters, the embedded client.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::{bounded, unbounded};
use flotilla_engine::{Engine, FaultyWriteSink};
use flotilla_proto::cmdpb::{
    CommandHeader, PutRequest, WriteCommand, WriteRequest, write_request::Cmd,
};
use flotilla_proto::metapb::{Region, RegionEpoch};
use flotilla_raftstore::bootstrap::even_split_keys;
use flotilla_raftstore::{Client, ClientConfig, Error, Mutation, ReadRequest};
use flotilla_tests::cluster::{Cluster, ClusterSpec};

const WAIT: Duration = Duration::from_secs(30);

fn key(i: u64) -> Vec<u8> {
    format!("k{i:06}").into_bytes()
}

/// A command putting `k = v` into `region`, routed with `epoch`.
fn put_command(region: &Region, epoch: Option<RegionEpoch>, k: &[u8], v: &[u8]) -> WriteCommand {
    WriteCommand {
        header: Some(CommandHeader {
            region_id: region.id,
            region_epoch: epoch,
        }),
        requests: vec![WriteRequest {
            cmd: Some(Cmd::Put(PutRequest {
                key: Bytes::copy_from_slice(k),
                value: Bytes::copy_from_slice(v),
            })),
        }],
    }
}

fn write_to(
    c: &Cluster,
    store: u64,
    region: &Region,
    epoch: Option<RegionEpoch>,
    k: &[u8],
) -> Result<(), Error> {
    let (tx, rx) = bounded(1);
    let cmd = put_command(region, epoch, k, b"x");
    c.router(store).write(
        cmd,
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    rx.recv_timeout(WAIT).expect("answered")
}

#[test]
fn three_stores_with_1000_regions_commit_writes_to_every_region_and_every_replica_has_them() {
    let mut spec = ClusterSpec::new(3, even_split_keys("k", 1000, 6, 1000));
    spec.configure = |cfg| cfg.tick_interval = Duration::from_millis(50);
    let c = Cluster::start(spec);
    assert_eq!(c.regions.len(), 1000);
    c.wait_for_leaders(Duration::from_secs(120));
    std::thread::scope(|s| {
        for t in 0..8 {
            let client = &c.client;
            s.spawn(move || {
                for i in (t..1000).step_by(8) {
                    client
                        .put(key(i), format!("v{i}"))
                        .unwrap_or_else(|e| panic!("put {i}: {e}"));
                }
            });
        }
    });
    for i in 0..1000 {
        let want = format!("v{i}");
        assert_eq!(c.must_get(&key(i)).as_deref(), Some(want.as_bytes()));
        c.must_replicate(&key(i), Some(want.as_bytes()), WAIT);
    }
    let stats = c.stores[&1].stats();
    assert!(
        stats.synced_writes <= stats.rounds,
        "at most one synced write per round: {stats:?}"
    );
}

#[test]
fn a_client_rides_out_the_first_elections_of_a_new_cluster() {
    // No wait for leaders: the first writes meet regions still electing,
    // followers that know no leader, and hints that go stale.
    let c = Cluster::start(ClusterSpec::new(3, even_split_keys("k", 200, 6, 50)));
    for i in (0..200).step_by(4) {
        c.must_put(&key(i), b"early");
    }
    for i in (0..200).step_by(4) {
        assert_eq!(c.must_get(&key(i)).as_deref(), Some(&b"early"[..]));
    }
}

#[test]
fn writes_continue_on_new_leaders_when_a_leaders_store_is_isolated_and_it_catches_up_after() {
    let c = Cluster::start(ClusterSpec::new(3, even_split_keys("k", 100, 6, 10)));
    c.wait_for_leaders(WAIT);
    for i in 0..100 {
        c.must_put(&key(i), b"before");
    }
    let first = c.client.locate(&key(0)).expect("locate");
    let isolated = c.leader_of(first.id).expect("a leader");
    c.isolate(isolated);
    for i in 0..100 {
        c.must_put(&key(i), b"after");
    }
    let new_leader = c.leader_of(first.id).expect("a leader");
    assert_ne!(
        new_leader, isolated,
        "leadership moved off the isolated store"
    );
    c.clear_filters();
    for i in 0..100 {
        assert_eq!(c.must_get(&key(i)).as_deref(), Some(&b"after"[..]));
        c.must_replicate(&key(i), Some(b"after"), WAIT);
    }
}

#[test]
fn a_restarted_store_catches_up_from_the_log() {
    let mut c = Cluster::start(ClusterSpec::new(3, vec![]));
    c.wait_for_leaders(WAIT);
    c.must_put(b"a", b"1");
    c.must_replicate(b"a", Some(b"1"), WAIT);
    let follower = 3;
    c.stop_store(follower);
    for i in 0..20 {
        c.must_put(&key(i), b"while-down");
    }
    c.run_store(follower);
    for i in 0..20 {
        c.must_replicate(&key(i), Some(b"while-down"), WAIT);
    }
    assert_eq!(
        c.stores[&follower].stats().snapshots_applied,
        0,
        "caught up by log, not snapshot"
    );
}

#[test]
fn a_restarted_store_catches_up_by_snapshot_once_the_log_it_needs_is_compacted() {
    let mut spec = ClusterSpec::new(3, vec![]);
    spec.configure = |cfg| {
        cfg.log_gc_threshold_entries = 10;
        cfg.log_gc_keep_entries = 2;
    };
    let mut c = Cluster::start(spec);
    c.wait_for_leaders(WAIT);
    let region = c.regions[0].clone();
    let leader = c.leader_of(region.id).expect("leader");
    let follower = c.follower_of(&region);
    c.must_put(b"a", b"1");
    c.stop_store(follower);
    for i in 0..50 {
        c.must_put(&key(i), b"while-down");
    }
    let st = c.inspect(leader, region.id).expect("leader status");
    assert!(st.log_range.0 > 10, "the leader compacted its log: {st:?}");
    c.run_store(follower);
    for i in 0..50 {
        c.must_replicate(&key(i), Some(b"while-down"), WAIT);
    }
    c.must_replicate(b"a", Some(b"1"), WAIT);
    assert!(
        c.stores[&follower].stats().snapshots_applied >= 1,
        "caught up by snapshot"
    );
}

#[test]
fn a_log_is_compacted_by_its_bytes_but_never_past_what_a_stopped_follower_holds() {
    let mut spec = ClusterSpec::new(3, vec![]);
    // Entries of ~230 bytes: the byte threshold comes long before the
    // count one.
    spec.configure = |cfg| cfg.log_gc_threshold_bytes = 2048;
    let mut c = Cluster::start(spec);
    c.wait_for_leaders(WAIT);
    let region = c.regions[0].clone();
    let leader = c.leader_of(region.id).expect("leader");
    let value = [b'v'; 200];
    for i in 0..40 {
        c.must_put(&key(i), &value);
    }
    for i in 0..40 {
        c.must_replicate(&key(i), Some(&value[..]), WAIT);
    }
    let st = c.inspect(leader, region.id).expect("leader status");
    assert!(
        st.log_range.0 > 20,
        "40 entries of ~230 bytes against a 2 KiB threshold: {st:?}"
    );
    // Every replica holds everything, so the leader may discard all of it;
    // a stopped follower then holds the log where it stopped.
    let follower = c.follower_of(&region);
    let held = st.log_range.1;
    c.stop_store(follower);
    for i in 40..80 {
        c.must_put(&key(i), &value);
    }
    let st = c.inspect(leader, region.id).expect("leader status");
    assert!(
        st.log_range.0 <= held + 1 && st.log_range.1 >= held + 40,
        "compacted no further than the stopped follower's {held}: {st:?}"
    );
    c.run_store(follower);
    for i in 0..80 {
        c.must_replicate(&key(i), Some(&value[..]), WAIT);
    }
    for s in 1..=3 {
        assert_eq!(
            c.stores[&s].stats().snapshots_applied,
            0,
            "store {s} caught up from the log"
        );
    }
}

#[test]
fn acknowledged_writes_survive_a_restart_of_every_store() {
    let mut c = Cluster::start(ClusterSpec::new(3, even_split_keys("k", 100, 6, 4)));
    c.wait_for_leaders(WAIT);
    for i in 0..100 {
        c.must_put(&key(i), format!("v{i}").as_bytes());
    }
    c.client
        .write(vec![
            Mutation::Put(Bytes::from(key(1)), Bytes::from_static(b"batch")),
            Mutation::Delete(Bytes::from(key(2))),
        ])
        .expect("atomic write in one region");
    for s in 1..=3 {
        c.stop_store(s);
    }
    for s in 1..=3 {
        c.run_store(s);
    }
    c.wait_for_leaders(WAIT);
    for i in 0..100 {
        let want = match i {
            1 => Some(b"batch".to_vec()),
            2 => None,
            _ => Some(format!("v{i}").into_bytes()),
        };
        assert_eq!(c.must_get(&key(i)).map(|v| v.to_vec()), want, "key {i}");
    }
    let pairs = c
        .client
        .scan(Bytes::from(key(0)), Bytes::new(), 1000)
        .expect("scan");
    assert_eq!(
        pairs.len(),
        99,
        "a scan across all regions sees every key but the deleted one"
    );
    assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0), "in key order");
}

#[test]
fn stale_epoch_wrong_leader_and_foreign_keys_get_typed_errors() {
    let c = Cluster::start(ClusterSpec::new(3, vec![Bytes::from_static(b"m")]));
    c.wait_for_leaders(WAIT);
    let region = c.client.locate(b"a").expect("locate");
    let leader = c.leader_of(region.id).expect("leader");
    let follower = c.follower_of(&region);

    let stale = RegionEpoch {
        conf_ver: 1,
        version: 0,
    };
    match write_to(&c, leader, &region, Some(stale), b"a") {
        Err(Error::EpochNotMatch { current, .. }) => assert_eq!(*current, region),
        other => panic!("stale epoch: {other:?}"),
    }
    match write_to(&c, follower, &region, region.region_epoch, b"a") {
        Err(Error::NotLeader {
            leader: Some(hint), ..
        }) => assert_eq!(hint.store_id, leader),
        other => panic!("write to a follower: {other:?}"),
    }
    match write_to(&c, leader, &region, region.region_epoch, b"z") {
        Err(Error::KeyNotInRegion { key, .. }) => assert_eq!(key.as_ref(), b"z"),
        other => panic!("foreign key: {other:?}"),
    }
    let missing = Region {
        id: 9_999,
        ..region.clone()
    };
    match write_to(&c, leader, &missing, region.region_epoch, b"a") {
        Err(Error::RegionNotFound {
            region_id: 9_999, ..
        }) => {}
        other => panic!("unknown region: {other:?}"),
    }
    let (tx, rx) = bounded(1);
    c.router(follower).read(
        region.id,
        region.region_epoch.unwrap_or_default(),
        ReadRequest::Get {
            key: Bytes::from_static(b"a"),
        },
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    assert!(matches!(
        rx.recv_timeout(WAIT).expect("answered"),
        Err(Error::NotLeader { .. })
    ));
    let err = c
        .client
        .write(vec![
            Mutation::Put(Bytes::from_static(b"a"), Bytes::from_static(b"1")),
            Mutation::Put(Bytes::from_static(b"z"), Bytes::from_static(b"1")),
        ])
        .expect_err("a write across regions is refused");
    assert!(matches!(err, Error::InvalidRequest(_)), "{err:?}");
    assert_eq!(c.must_get(b"a"), None, "and nothing of it was written");
}

#[test]
fn reads_are_served_under_the_lease_and_through_read_index() {
    // A lease of 50 ms * 10 ticks - 40 ms = 460 ms: long enough for the
    // reads below to fall inside it even on a loaded machine.
    let mut spec = ClusterSpec::new(3, vec![]);
    spec.configure = |cfg| cfg.tick_interval = Duration::from_millis(50);
    let c = Cluster::start(spec);
    c.wait_for_leaders(WAIT);
    c.must_put(b"a", b"1");
    let leader = c.leader_of(c.regions[0].id).expect("leader");
    let before = c.stores[&leader].stats();
    for _ in 0..20 {
        assert_eq!(c.must_get(b"a").as_deref(), Some(&b"1"[..]));
    }
    let after = c.stores[&leader].stats();
    assert!(
        after.lease_reads > before.lease_reads,
        "a fresh leader serves reads under its lease: {after:?}"
    );
    // Without writes the lease lapses and reads confirm leadership first.
    std::thread::sleep(Duration::from_millis(1500));
    let before = c.stores[&leader].stats();
    assert_eq!(c.must_get(b"a").as_deref(), Some(&b"1"[..]));
    let after = c.stores[&leader].stats();
    assert_eq!(
        after.read_index_reads - before.read_index_reads,
        1,
        "{after:?}"
    );
}

#[test]
fn asynchronous_puts_and_gets_answer_every_request_even_across_a_lost_leader() {
    let c = Cluster::start(ClusterSpec::new(3, even_split_keys("k", 100, 6, 4)));
    c.wait_for_leaders(WAIT);
    let client = Arc::new(Client::new(c.directory.clone(), ClientConfig::default()));
    client.refresh();
    let (tx, rx) = unbounded();
    let put_all = |value: &'static [u8]| {
        for i in 0..100 {
            let tx = tx.clone();
            client.put_async(
                Bytes::from(key(i)),
                Bytes::from_static(value),
                Box::new(move |r| tx.send(r).expect("the test listens")),
            );
        }
        for i in 0..100 {
            let answer = rx.recv_timeout(WAIT).expect("every request is answered");
            answer.unwrap_or_else(|e| panic!("write {i} failed: {e}"));
        }
    };
    put_all(b"first");
    // Cut off the first region's leader while the cache still points at
    // it: its proposals cannot commit, it steps down, they hear
    // StaleCommand, and the client finishes them at the new leader.
    let first = c.regions[0].clone();
    let isolated = c.leader_of(first.id).expect("a leader");
    c.isolate(isolated);
    put_all(b"second");
    c.clear_filters();
    let (gtx, grx) = unbounded();
    for i in 0..100 {
        let gtx = gtx.clone();
        client.get_async(
            Bytes::from(key(i)),
            Box::new(move |r| gtx.send((i, r)).expect("the test listens")),
        );
    }
    for _ in 0..100 {
        let (i, r) = grx.recv_timeout(WAIT).expect("every read is answered");
        assert_eq!(r.expect("read").as_deref(), Some(&b"second"[..]), "key {i}");
    }
}

#[test]
fn a_leader_commits_through_its_followers_while_its_own_disk_stalls_and_answers_once_it_syncs() {
    let c = Cluster::start(ClusterSpec::new(3, vec![]));
    c.wait_for_leaders(WAIT);
    c.must_put(b"k0", b"warm");
    let region = c.client.locate(b"k1").expect("locate");
    let leader = c.leader_of(region.id).expect("a leader");
    // The leader's disk stalls: its round hands the write to its writer,
    // which waits; the round's appends left already. (Released however
    // the test ends, so that the stores can shut down.)
    struct Release(Arc<FaultyWriteSink<Engine>>);
    impl Drop for Release {
        fn drop(&mut self) {
            self.0.release_writes();
        }
    }
    let held = Release(Arc::clone(&c.sinks[&leader]));
    held.0.hold_writes();
    let (tx, rx) = bounded(1);
    let cmd = put_command(&region, region.region_epoch, b"k1", b"v1");
    c.router(leader).write(
        cmd,
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    // Both followers persist it, the leader commits it on their two
    // acknowledgements alone and tells them: they apply it.
    let deadline = std::time::Instant::now() + WAIT;
    for p in region.peers.iter().filter(|p| p.store_id != leader) {
        let engine = c.stores[&p.store_id].engine();
        while engine.get(&region, b"k1").expect("engine get").as_deref() != Some(&b"v1"[..]) {
            assert!(
                std::time::Instant::now() < deadline,
                "store {} never applied the write",
                p.store_id
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // The leader applies only what is durable on its own disk: no answer
    // yet, and nothing of the write on its disk.
    assert!(rx.try_recv().is_err(), "answered before the leader's sync");
    let leader_engine = c.stores[&leader].engine();
    assert_eq!(leader_engine.get(&region, b"k1").expect("engine get"), None);
    drop(held);
    rx.recv_timeout(WAIT)
        .expect("answered once the leader's write is durable")
        .expect("the write succeeds");
    c.must_replicate(b"k1", Some(b"v1"), WAIT);
}
