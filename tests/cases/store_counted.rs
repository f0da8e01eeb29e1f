//! The store's batching, counted rather than timed: stores run round by
//! round on the test's thread, and the counts come from the store's
//! counters and the network's per-link counts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use flotilla_proto::cmdpb::{
    CommandHeader, PutRequest, WriteCommand, WriteRequest, write_request::Cmd,
};
use flotilla_proto::metapb::Region;
use flotilla_raftstore::StoreConfig;
use flotilla_raftstore::bootstrap::even_split_keys;
use flotilla_tests::cluster::{ClusterSpec, ManualCluster};
use prost::Message as _;

fn put_cmd(region: &Region, key: &[u8]) -> WriteCommand {
    WriteCommand {
        header: Some(CommandHeader {
            region_id: region.id,
            region_epoch: region.region_epoch,
        }),
        requests: vec![WriteRequest {
            cmd: Some(Cmd::Put(PutRequest {
                key: Bytes::copy_from_slice(key),
                value: Bytes::from_static(b"v"),
            })),
        }],
    }
}

/// A cluster of 3 stores with `regions` regions, every one led by store 1:
/// only store 1's clock runs for 20 ticks, by when every one of its peers
/// has timed out (timeouts are drawn from [10, 20) ticks) and won, as no
/// other peer ever campaigned. From then on every store's clock runs, so
/// that the followers' coalesced heartbeat responses flow.
fn led_by_store_1(regions: u64) -> ManualCluster {
    led_by_store_1_with(regions, |_| {})
}

/// [`led_by_store_1`] with `configure` applied to every store.
fn led_by_store_1_with(regions: u64, configure: fn(&mut StoreConfig)) -> ManualCluster {
    let split = even_split_keys("k", 100_000, 6, regions);
    let mut spec = ClusterSpec::new(3, split);
    spec.configure = configure;
    let mut c = ManualCluster::new(spec);
    for _ in 0..20 {
        c.tick(&[1]);
    }
    for r in c.regions.clone() {
        let st = c.inspect(1, r.id);
        assert!(
            st.is_leader,
            "region {} not led by store 1 after 20 ticks: {st:?}",
            r.id
        );
    }
    c
}

/// The first key of a region (the regions are cut at "k" + a number).
fn key_in(region: &Region) -> Vec<u8> {
    if region.start_key.is_empty() {
        b"k000000".to_vec()
    } else {
        region.start_key.to_vec()
    }
}

/// Store 1 takes one write for every region, then runs ONE round (which
/// must hold them all); the count of writes answered so far comes back.
fn write_every_region_in_one_round(c: &mut ManualCluster) -> Arc<AtomicUsize> {
    let answered = Arc::new(AtomicUsize::new(0));
    let router = c.stores[&1].router();
    for r in &c.regions {
        let answered = answered.clone();
        router.write(
            put_cmd(r, &key_in(r)),
            Box::new(move |res| {
                res.expect("write applies");
                answered.fetch_add(1, Ordering::SeqCst);
            }),
        );
    }
    let handled = c.stores.get_mut(&1).expect("store 1").run_round();
    assert_eq!(handled, c.regions.len(), "every region in one round");
    answered
}

#[test]
fn a_round_in_which_100_regions_write_issues_one_synced_write_and_one_frame_per_store() {
    let mut c = led_by_store_1(100);
    let before = c.stores[&1].stats();
    let sink_before = c.sinks[&1].counts();
    let links_before = (c.net.link_counts(1, 2), c.net.link_counts(1, 3));
    let answered = write_every_region_in_one_round(&mut c);
    let after = c.stores[&1].stats();
    assert_eq!(after.rounds - before.rounds, 1);
    assert_eq!(
        after.synced_writes - before.synced_writes,
        1,
        "one synced write for the round"
    );
    assert_eq!(
        after.entries_synced - before.entries_synced,
        100,
        "holding every region's entry"
    );
    let sink = c.sinks[&1].counts();
    assert_eq!(
        sink.synced_writes - sink_before.synced_writes,
        1,
        "the engine saw one synced write"
    );
    assert_eq!(sink.raft_entries - sink_before.raft_entries, 100);
    for (to, link_before) in [(2, links_before.0), (3, links_before.1)] {
        let link = c.net.link_counts(1, to);
        assert_eq!(
            link.frames - link_before.frames,
            1,
            "one flush to store {to}"
        );
        assert_eq!(
            link.messages - link_before.messages,
            100,
            "carrying 100 appends to store {to}"
        );
    }
    c.settle();
    assert_eq!(
        answered.load(Ordering::SeqCst),
        100,
        "every write applied and answered"
    );
}

/// Coalesced heartbeat frames from store 1 to store 2 and the heartbeats
/// in them over 20 ticks of every store, once leaders are stable.
fn heartbeat_traffic(regions: u64) -> (u64, u64) {
    let mut c = led_by_store_1(regions);
    let before = c.net.link_counts(1, 2);
    for _ in 0..20 {
        c.tick(&[1, 2, 3]);
    }
    let after = c.net.link_counts(1, 2);
    for r in c.regions.clone() {
        assert!(c.inspect(1, r.id).is_leader, "leadership stayed on store 1");
    }
    (
        after.heartbeat_frames - before.heartbeat_frames,
        after.heartbeats - before.heartbeats,
    )
}

#[test]
fn heartbeat_frames_per_tick_between_two_stores_do_not_grow_with_regions() {
    let (frames_10, beats_10) = heartbeat_traffic(10);
    let (frames_1000, beats_1000) = heartbeat_traffic(1000);
    assert!(
        frames_10 > 0 && frames_10 <= 20,
        "at most one frame per tick: {frames_10}"
    );
    assert_eq!(
        frames_10, frames_1000,
        "frames depend on stores, not regions"
    );
    assert_eq!(
        beats_1000,
        beats_10 * 100,
        "each frame carries every region's heartbeat"
    );
}

fn naive(cfg: &mut StoreConfig) {
    cfg.cross_region_batching = false;
}

#[test]
fn without_cross_region_batching_each_region_syncs_and_sends_on_its_own() {
    let mut c = led_by_store_1_with(100, naive);
    let before = c.stores[&1].stats();
    let sink_before = c.sinks[&1].counts();
    let link_before = c.net.link_counts(1, 2);
    let answered = write_every_region_in_one_round(&mut c);
    let after = c.stores[&1].stats();
    assert_eq!(after.rounds - before.rounds, 1);
    assert_eq!(
        after.synced_writes - before.synced_writes,
        100,
        "one synced write per region"
    );
    assert_eq!(
        c.sinks[&1].counts().synced_writes - sink_before.synced_writes,
        100
    );
    let link = c.net.link_counts(1, 2);
    assert_eq!(
        link.frames - link_before.frames,
        100,
        "one frame per region"
    );
    assert_eq!(link.messages - link_before.messages, 100);
    c.settle();
    assert_eq!(
        answered.load(Ordering::SeqCst),
        100,
        "and all of them apply"
    );
}

#[test]
fn without_cross_region_batching_heartbeats_grow_with_regions() {
    let traffic = |regions| {
        let mut c = led_by_store_1_with(regions, naive);
        let before = c.net.link_counts(1, 2);
        for _ in 0..20 {
            c.tick(&[1, 2, 3]);
        }
        let after = c.net.link_counts(1, 2);
        (
            after.frames - before.frames,
            after.heartbeat_frames - before.heartbeat_frames,
        )
    };
    let (frames_10, coalesced_10) = traffic(10);
    let (frames_100, coalesced_100) = traffic(100);
    assert_eq!(
        (coalesced_10, coalesced_100),
        (0, 0),
        "nothing is coalesced"
    );
    assert_eq!(
        frames_100,
        frames_10 * 10,
        "one frame per region per heartbeat: {frames_10} vs {frames_100}"
    );
}

#[test]
fn a_committed_write_is_answered_before_the_rounds_own_sync() {
    let mut c = led_by_store_1(1);
    let region = c.regions[0].clone();
    let sink = c.sinks[&1].clone();
    let router = c.stores[&1].router();
    // What store 1 had written when the first write was answered.
    let seen = Arc::new(std::sync::Mutex::new(None));
    {
        let (seen, sink) = (seen.clone(), sink.clone());
        router.write(
            put_cmd(&region, b"k000001"),
            Box::new(move |res| {
                res.expect("write applies");
                *seen.lock().expect("not poisoned") = Some(sink.counts());
            }),
        );
    }
    // The leader appends and syncs it; the followers append, sync and
    // acknowledge (the in-memory network delivers at once).
    assert_eq!(c.stores.get_mut(&1).expect("store 1").run_round(), 1);
    for id in [2, 3] {
        assert_eq!(c.stores.get_mut(&id).expect("follower").run_round(), 1);
    }
    assert!(
        seen.lock().expect("not poisoned").is_none(),
        "not committed yet"
    );
    // The leader's next round commits the first write and has a second
    // one to append, so it must sync.
    router.write(
        put_cmd(&region, b"k000002"),
        Box::new(|res| res.expect("applies")),
    );
    let before = sink.counts();
    assert_eq!(c.stores.get_mut(&1).expect("store 1").run_round(), 1);
    let after = sink.counts();
    let at_answer = seen
        .lock()
        .expect("not poisoned")
        .expect("answered in this round");
    assert_eq!(
        after.synced_writes - before.synced_writes,
        1,
        "the round synced the second write"
    );
    assert_eq!(
        at_answer.synced_writes, before.synced_writes,
        "the answer did not wait for that sync"
    );
    assert_eq!(
        at_answer.writes,
        before.writes + 1,
        "it waited for the apply write only"
    );
    c.settle();
}

/// Store 1 takes `writes` writes to the one region of `c` (keys 0..writes,
/// values "v"), with a write addressed to another region among them, then
/// runs one round. Returns how many raft entries that round synced and
/// their payload bytes, and each writer's outcome once the cluster settled
/// (the stray one last).
fn writes_in_one_turn(c: &mut ManualCluster, writes: usize) -> (u64, u64, Vec<bool>) {
    let region = c.regions[0].clone();
    let router = c.stores[&1].router();
    let outcomes = Arc::new(std::sync::Mutex::new(vec![None; writes + 1]));
    let answer = |i: usize| {
        let outcomes = outcomes.clone();
        Box::new(move |res: flotilla_raftstore::Result<()>| {
            outcomes.lock().expect("outcomes")[i] = Some(res.is_ok());
        })
    };
    for i in 0..writes {
        if i == writes / 2 {
            let mut stray = put_cmd(&region, b"k000001");
            stray.header.as_mut().expect("header").region_id = region.id + 1000;
            router.write(stray, answer(writes));
        }
        router.write(put_cmd(&region, format!("k{i:06}").as_bytes()), answer(i));
    }
    let before = c.stores[&1].stats();
    c.stores.get_mut(&1).expect("store 1").run_round();
    let after = c.stores[&1].stats();
    let entries = after.entries_synced - before.entries_synced;
    let bytes = after.entry_bytes_synced - before.entry_bytes_synced;
    c.settle();
    let outcomes = outcomes
        .lock()
        .expect("outcomes")
        .iter()
        .map(|o| o.expect("every writer answered"))
        .collect();
    (entries, bytes, outcomes)
}

#[test]
fn writes_a_leader_takes_in_one_turn_share_one_entry_and_each_is_answered() {
    let mut c = led_by_store_1(1);
    let (entries, bytes, outcomes) = writes_in_one_turn(&mut c, 50);
    assert_eq!(entries, 1, "50 writes of one turn in one entry");
    // The entry is one command: the first write's header, every request.
    let region = c.regions[0].clone();
    let mut merged = put_cmd(&region, b"k000000");
    for i in 1..50 {
        merged
            .requests
            .extend(put_cmd(&region, format!("k{i:06}").as_bytes()).requests);
    }
    assert_eq!(bytes, merged.encoded_len() as u64, "its payload counted");
    assert!(outcomes[..50].iter().all(|ok| *ok), "every write applied");
    assert!(!outcomes[50], "the stray write refused on its own");
    // Every replica holds every write: the entry applied everywhere.
    for _ in 0..4 {
        c.tick(&[1, 2, 3]);
    }
    for store in [1, 2, 3] {
        let engine = c.stores[&store].engine();
        for i in 0..50 {
            let key = format!("k{i:06}");
            assert_eq!(
                engine
                    .get(&region, key.as_bytes())
                    .expect("read")
                    .as_deref(),
                Some(&b"v"[..]),
                "{key} on store {store}"
            );
        }
    }
}

#[test]
fn a_turns_writes_split_into_entries_at_the_byte_cap_or_one_entry_each_without_batching() {
    let mut c = led_by_store_1_with(1, |cfg| cfg.proposal_batch_bytes_max = 100);
    // Every put of the test encodes to the same size.
    let one = put_cmd(&c.regions[0], b"k000000").encoded_len();
    let per_entry = 100 / one;
    assert!(per_entry >= 2, "a put of {one} bytes");
    let (entries, _, outcomes) = writes_in_one_turn(&mut c, 20);
    assert_eq!(
        entries,
        20_u64.div_ceil(per_entry as u64),
        "20 writes, {per_entry} to an entry"
    );
    assert!(outcomes[..20].iter().all(|ok| *ok));
    let mut c = led_by_store_1_with(1, |cfg| cfg.proposal_batch_bytes_max = 0);
    let (entries, _, outcomes) = writes_in_one_turn(&mut c, 20);
    assert_eq!(entries, 20, "one entry per write");
    assert!(outcomes[..20].iter().all(|ok| *ok));
}
