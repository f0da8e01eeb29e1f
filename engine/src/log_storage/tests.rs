//! Unit tests that need the crate's internals: corrupt records planted
//! under the engine's own keys, and the cache/disk split of reads.

use bytes::Bytes;
use prost::Message as _;

use flotilla_proto::metapb::{Peer, Region};
use flotilla_proto::raftpb::{Entry, HardState};
use flotilla_raft::{NO_LIMIT, Storage, StorageError, entry_size};

use super::RegionLogStorage;
use crate::config::EngineConfig;
use crate::engine::Engine;
use crate::keys::{self, CF_RAFT_LOG, CF_RAFT_STATE};

fn open(config: &EngineConfig) -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::open(dir.path(), config).expect("open");
    (dir, engine)
}

fn region(id: u64) -> Region {
    Region {
        id,
        peers: vec![Peer {
            id: 1,
            store_id: 1,
            role: 0,
        }],
        ..Default::default()
    }
}

fn ent(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: Bytes::from(vec![index as u8; 32]),
        ..Default::default()
    }
}

/// A region with entries 1..=n of term 1, written and synced.
fn region_with_entries(engine: &Engine, n: u64) -> RegionLogStorage {
    let mut wb = engine.write_batch();
    let mut s = RegionLogStorage::create(engine, region(1), &mut wb);
    let ents: Vec<_> = (1..=n).map(|i| ent(i, 1)).collect();
    s.append(&ents, &mut wb);
    engine.write(wb, true).expect("write");
    s
}

fn plant(engine: &Engine, cf: &str, key: &[u8], value: &[u8]) {
    let mut wb = engine.write_batch();
    wb.put_raw(cf, key, value);
    engine.write(wb, true).expect("write");
}

fn assert_corruption<T: std::fmt::Debug>(r: flotilla_raft::Result<T>) {
    match r {
        Err(flotilla_raft::Error::Store(StorageError::Other(e))) => {
            let e = e.downcast_ref::<crate::Error>().expect("an engine error");
            assert!(e.is_corruption(), "not corruption: {e}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn garbage_entry_on_disk_is_corruption_not_a_panic() {
    let mut config = EngineConfig::for_tests();
    config.entry_cache_region_entries_max = 0;
    let (_dir, engine) = open(&config);
    let s = region_with_entries(&engine, 5);
    plant(
        &engine,
        CF_RAFT_LOG,
        &keys::raft_log_key(1, 3),
        b"\xff\xff\xff\xff",
    );
    assert_corruption(s.entries(1, 6, NO_LIMIT));
    assert_corruption(s.term(3));
    assert_eq!(s.term(2).unwrap(), 1);
}

#[test]
fn entry_under_the_wrong_index_is_corruption() {
    let mut config = EngineConfig::for_tests();
    config.entry_cache_region_entries_max = 0;
    let (_dir, engine) = open(&config);
    let s = region_with_entries(&engine, 5);
    plant(
        &engine,
        CF_RAFT_LOG,
        &keys::raft_log_key(1, 4),
        &ent(9, 1).encode_to_vec(),
    );
    assert_corruption(s.entries(3, 6, NO_LIMIT));
    assert_corruption(s.term(4));
}

#[test]
fn a_hole_in_the_log_is_corruption() {
    let mut config = EngineConfig::for_tests();
    config.entry_cache_region_entries_max = 0;
    let (_dir, engine) = open(&config);
    let s = region_with_entries(&engine, 5);
    let mut wb = engine.write_batch();
    wb.delete_raft_entry(1, 3);
    engine.write(wb, true).unwrap();
    assert_corruption(s.entries(1, 6, NO_LIMIT));
    assert_corruption(s.entries(3, 4, NO_LIMIT));
    // Reads that stop before the hole are fine.
    assert_eq!(s.entries(1, 3, NO_LIMIT).unwrap().len(), 2);
}

#[test]
fn load_reports_malformed_or_inconsistent_state_as_corruption() {
    let (_dir, engine) = open(&EngineConfig::for_tests());
    drop(region_with_entries(&engine, 5));
    plant(
        &engine,
        CF_RAFT_STATE,
        &keys::raft_state_key(1),
        b"\x0a\xff",
    );
    assert!(
        RegionLogStorage::load(&engine, 1)
            .unwrap_err()
            .is_corruption()
    );
    // A commit index past the log's end.
    let past_end = HardState {
        term: 1,
        vote: 1,
        commit: 9,
    };
    let mut wb = engine.write_batch();
    wb.put_raft_state(1, &past_end, 9);
    engine.write(wb, true).unwrap();
    assert!(
        RegionLogStorage::load(&engine, 1)
            .unwrap_err()
            .is_corruption()
    );
    // A log that does not start right after the truncation point.
    let mut wb = engine.write_batch();
    wb.put_raft_state(1, &HardState::default(), 5);
    wb.delete_raft_entry(1, 1);
    engine.write(wb, true).unwrap();
    assert!(
        RegionLogStorage::load(&engine, 1)
            .unwrap_err()
            .is_corruption()
    );
    assert!(matches!(
        RegionLogStorage::load(&engine, 2),
        Err(crate::Error::NotFound { .. })
    ));
}

#[test]
fn reads_span_disk_and_cache_and_respect_max_bytes() {
    let mut config = EngineConfig::for_tests();
    config.entry_cache_region_entries_max = 4;
    let (_dir, engine) = open(&config);
    let s = region_with_entries(&engine, 10);
    assert_eq!(s.cache_usage().0, 4);
    let all = s.entries(1, 11, NO_LIMIT).unwrap();
    assert_eq!(all, (1..=10).map(|i| ent(i, 1)).collect::<Vec<_>>());
    let one = entry_size(&ent(1, 1));
    // Cut inside the disk part, at the seam and inside the cache part.
    assert_eq!(s.entries(1, 11, 3 * one).unwrap().len(), 3);
    assert_eq!(s.entries(4, 11, 3 * one).unwrap().len(), 3);
    assert_eq!(s.entries(7, 11, 3 * one + 1).unwrap().len(), 3);
    assert_eq!(s.entries(5, 11, 0).unwrap(), vec![ent(5, 1)]);
    assert_eq!(s.entries(8, 9, NO_LIMIT).unwrap(), vec![ent(8, 1)]);
    assert_eq!(s.entries(9, 9, NO_LIMIT).unwrap(), vec![]);
}

#[test]
fn appends_and_commit_only_changes_write_no_raft_state() {
    let (_dir, engine) = open(&EngineConfig::for_tests());
    let mut s = region_with_entries(&engine, 0);
    let hs = |vote, commit| HardState {
        term: 1,
        vote,
        commit,
    };
    // A new term and vote are written with the entries: 3 + 1 records.
    let mut wb = engine.write_batch();
    s.append(&[ent(1, 1), ent(2, 1), ent(3, 1)], &mut wb);
    s.set_hard_state(hs(1, 0), &mut wb);
    assert_eq!((wb.stats().puts, wb.stats().raft_entries), (4, 3));
    engine.write(wb, true).unwrap();
    // Entries and a commit-only change: the entries alone.
    let mut wb = engine.write_batch();
    s.append(&[ent(4, 1), ent(5, 1)], &mut wb);
    s.set_hard_state(hs(1, 4), &mut wb);
    assert_eq!((wb.stats().puts, wb.stats().raft_entries), (2, 2));
    engine.write(wb, true).unwrap();

    // A restart reads the last index off the log; the commit index is the
    // stored one until something past it is applied.
    let loaded = RegionLogStorage::load(&engine, 1).unwrap();
    assert_eq!(loaded.last_index().unwrap(), 5);
    assert_eq!(loaded.hard_state(), hs(1, 0));
    let mut wb = engine.write_batch();
    s.set_applied(3, 1, &mut wb);
    engine.write(wb, false).unwrap();
    let loaded = RegionLogStorage::load(&engine, 1).unwrap();
    assert_eq!(loaded.hard_state(), hs(1, 3));
    assert_eq!(loaded.entries(1, 6, NO_LIMIT).unwrap().len(), 5);

    // A conflicting suffix replaced by a shorter one: the log ends earlier.
    let mut wb = engine.write_batch();
    s.append(&[ent(4, 2)], &mut wb);
    s.set_hard_state(
        HardState {
            term: 2,
            vote: 2,
            commit: 3,
        },
        &mut wb,
    );
    engine.write(wb, true).unwrap();
    let loaded = RegionLogStorage::load(&engine, 1).unwrap();
    assert_eq!(loaded.last_index().unwrap(), 4);
    assert_eq!(loaded.term(4).unwrap(), 2);
    assert_eq!((loaded.hard_state().term, loaded.hard_state().vote), (2, 2));
}

#[test]
fn log_gc_deletes_with_one_range_tombstone() {
    let (_dir, engine) = open(&EngineConfig::for_tests());
    let mut s = region_with_entries(&engine, 20);
    let mut wb = engine.write_batch();
    s.set_applied(15, 1, &mut wb);
    engine.write(wb, false).unwrap();
    let mut wb = engine.write_batch();
    s.compact_to(11, &mut wb).unwrap();
    let stats = wb.stats();
    assert_eq!((stats.range_deletes, stats.deletes), (1, 0));
    engine.write(wb, true).unwrap();
    assert_eq!(
        engine.raft_log_indexes(1).unwrap(),
        (11..=20).collect::<Vec<_>>()
    );
    let loaded = RegionLogStorage::load(&engine, 1).unwrap();
    assert_eq!(
        (loaded.first_index().unwrap(), loaded.last_index().unwrap()),
        (11, 20)
    );
}

#[test]
fn the_log_counts_its_payload_bytes_through_appends_conflicts_and_gc() {
    let (_dir, engine) = open(&EngineConfig::for_tests());
    // Twenty entries of 32 payload bytes each.
    let mut s = region_with_entries(&engine, 20);
    assert_eq!(s.log_bytes(), 20 * 32);
    // A new leader's entries replace 16..=20 with two of term 2.
    let mut wb = engine.write_batch();
    s.append(&[ent(16, 2), ent(17, 2)], &mut wb);
    engine.write(wb, true).unwrap();
    assert_eq!(s.log_bytes(), 17 * 32);
    // GC of 1..=10 leaves the seven entries 11..=17.
    let mut wb = engine.write_batch();
    s.set_applied(15, 1, &mut wb);
    s.compact_to(11, &mut wb).unwrap();
    engine.write(wb, true).unwrap();
    assert_eq!(s.log_bytes(), 7 * 32);
    // New entries count in full.
    let mut wb = engine.write_batch();
    s.append(&[ent(18, 2), ent(19, 2)], &mut wb);
    assert_eq!(s.log_bytes(), 9 * 32);
    // Everything discarded: nothing held.
    s.set_applied(19, 2, &mut wb);
    s.compact_to(20, &mut wb).unwrap();
    engine.write(wb, true).unwrap();
    assert_eq!(s.log_bytes(), 0);
}
