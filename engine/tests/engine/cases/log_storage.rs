//! `RegionLogStorage` as raft and the host see it: append, hard state,
//! compaction, restart, membership, and the shared entry-cache budget.

use flotilla_engine::{Engine, EngineConfig, RegionLogStorage};
use flotilla_proto::metapb::PeerRole;
use flotilla_proto::raftpb::{ConfState, HardState};
use flotilla_proto::storagepb::{RegionLocalState, RegionState};
use flotilla_raft::{NO_LIMIT, Storage, StorageError};

use crate::support::{ents, open, region, temp_engine};

fn store_err<T: std::fmt::Debug>(r: flotilla_raft::Result<T>) -> StorageError {
    match r {
        Err(flotilla_raft::Error::Store(e)) => e,
        other => panic!("expected a storage error, got {other:?}"),
    }
}

#[test]
fn a_new_region_is_empty_at_index_one_with_membership_from_its_peers() {
    let (_dir, engine) = temp_engine();
    let mut wb = engine.write_batch();
    let s = RegionLogStorage::create(&engine, region(7, b"a", b"m", &[1, 2, 3]), &mut wb);
    engine.write(wb, true).unwrap();
    assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (1, 0));
    assert_eq!(s.term(0).unwrap(), 0);
    assert_eq!(store_err(s.term(1)), StorageError::Unavailable);
    let init = s.initial_state().unwrap();
    assert_eq!(init.hard_state, HardState::default());
    assert_eq!(init.conf_state.voters, vec![1, 2, 3]);
    let loaded = RegionLogStorage::load(&engine, 7).unwrap();
    assert_eq!(loaded.initial_state().unwrap(), init);
    assert_eq!(loaded.region(), s.region());
}

#[test]
fn append_hard_state_and_compaction_survive_a_restart() {
    let (dir, engine) = temp_engine();
    let mut wb = engine.write_batch();
    let mut s = RegionLogStorage::create(&engine, region(1, b"", b"", &[1, 2]), &mut wb);
    s.append(&[ents(1..=4, 1), ents(5..=9, 2)].concat(), &mut wb);
    let hs = HardState {
        term: 2,
        vote: 2,
        commit: 8,
    };
    s.set_hard_state(hs, &mut wb);
    s.set_applied(7, 2, &mut wb);
    s.compact_to(6, &mut wb).unwrap();
    engine.write(wb, true).unwrap();
    let check = |s: &RegionLogStorage| {
        assert_eq!(s.first_index().unwrap(), 6);
        assert_eq!(s.last_index().unwrap(), 9);
        assert_eq!(s.truncated(), (5, 2));
        assert_eq!(s.term(5).unwrap(), 2);
        assert_eq!(store_err(s.term(4)), StorageError::Compacted);
        assert_eq!(store_err(s.term(10)), StorageError::Unavailable);
        assert_eq!(
            store_err(s.entries(5, 7, NO_LIMIT)),
            StorageError::Compacted
        );
        assert_eq!(s.entries(6, 10, NO_LIMIT).unwrap(), ents(6..=9, 2));
        assert_eq!(s.hard_state(), hs);
        assert_eq!(s.applied(), (7, 2));
    };
    check(&s);
    drop(s);
    drop(engine);
    let engine = open(dir.path());
    check(&RegionLogStorage::load(&engine, 1).unwrap());
}

#[test]
fn compaction_is_idempotent_and_can_empty_the_log() {
    let (_dir, engine) = temp_engine();
    let mut wb = engine.write_batch();
    let mut s = RegionLogStorage::create(&engine, region(1, b"", b"", &[1]), &mut wb);
    s.append(&ents(1..=5, 3), &mut wb);
    s.set_applied(5, 3, &mut wb);
    s.compact_to(3, &mut wb).unwrap();
    s.compact_to(2, &mut wb).unwrap();
    assert_eq!(s.first_index().unwrap(), 3);
    s.compact_to(6, &mut wb).unwrap();
    engine.write(wb, true).unwrap();
    assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (6, 5));
    assert_eq!(s.term(5).unwrap(), 3);
    assert_eq!(s.entries(6, 6, NO_LIMIT).unwrap(), vec![]);
    let s = RegionLogStorage::load(&engine, 1).unwrap();
    assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (6, 5));
    // Entries at or below the truncation point are skipped on append.
    let mut s = s;
    let mut wb = engine.write_batch();
    s.append(&[ents(4..=5, 9), ents(6..=6, 4)].concat(), &mut wb);
    engine.write(wb, true).unwrap();
    assert_eq!(s.term(5).unwrap(), 3);
    assert_eq!(s.entries(6, 7, NO_LIMIT).unwrap(), ents(6..=6, 4));
}

#[test]
#[should_panic(expected = "cannot compact")]
fn compacting_unapplied_entries_panics() {
    let (_dir, engine) = temp_engine();
    let mut wb = engine.write_batch();
    let mut s = RegionLogStorage::create(&engine, region(1, b"", b"", &[1]), &mut wb);
    s.append(&ents(1..=5, 1), &mut wb);
    s.set_applied(2, 1, &mut wb);
    let _ = s.compact_to(5, &mut wb);
}

#[test]
#[should_panic(expected = "gap")]
fn appending_with_a_gap_panics() {
    let (_dir, engine) = temp_engine();
    let mut wb = engine.write_batch();
    let mut s = RegionLogStorage::create(&engine, region(1, b"", b"", &[1]), &mut wb);
    s.append(&ents(3..=4, 1), &mut wb);
}

#[test]
fn membership_follows_the_region_state() {
    let (_dir, engine) = temp_engine();
    let mut wb = engine.write_batch();
    let mut s = RegionLogStorage::create(&engine, region(1, b"", b"", &[1, 2]), &mut wb);
    let mut r = region(1, b"", b"", &[1, 2]);
    r.peers[1].role = PeerRole::DemotingVoter as i32;
    r.peers.push(flotilla_proto::metapb::Peer {
        id: 3,
        store_id: 3,
        role: PeerRole::IncomingVoter as i32,
    });
    let state = RegionLocalState {
        region: Some(r),
        state: RegionState::Normal as i32,
    };
    s.set_region_state(state.clone(), &mut wb);
    engine.write(wb, true).unwrap();
    let joint = ConfState {
        voters: vec![1, 3],
        voters_outgoing: vec![1, 2],
        learners_next: vec![2],
        ..Default::default()
    };
    assert_eq!(s.initial_state().unwrap().conf_state, joint);
    let s = RegionLogStorage::load(&engine, 1).unwrap();
    assert_eq!(s.initial_state().unwrap().conf_state, joint);
    assert_eq!(engine.region_state(1).unwrap(), Some(state));
}

#[test]
fn many_regions_share_one_batch_and_the_store_cache_budget() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        entry_cache_region_entries_max: 1000,
        entry_cache_region_bytes_max: u64::MAX,
        entry_cache_store_bytes_max: 64 << 10,
        ..EngineConfig::for_tests()
    };
    let engine = Engine::open(dir.path(), &config).unwrap();
    let budget = engine.entry_cache_budget().clone();
    let mut wb = engine.write_batch();
    let mut stores: Vec<_> = (1..=50)
        .map(|id| RegionLogStorage::create(&engine, region(id, b"", b"", &[1]), &mut wb))
        .collect();
    for round in 0..20u64 {
        for s in &mut stores {
            s.append(&ents(round * 4 + 1..=round * 4 + 4, 1), &mut wb);
        }
        let stats = engine
            .write(std::mem::replace(&mut wb, engine.write_batch()), false)
            .unwrap();
        assert_eq!(stats.raft_entries, 200);
        // Over the budget by at most the newest append of each region.
        let slack: u64 = stores.iter().map(|s| s.cache_usage().1.min(4 * 100)).sum();
        assert!(budget.used_bytes() <= budget.limit_bytes() + slack);
    }
    let cached: u64 = stores.iter().map(|s| s.cache_usage().1).sum();
    assert_eq!(budget.used_bytes(), cached);
    // Every region still reads its whole log, from cache or disk.
    for s in &stores {
        assert_eq!(s.entries(1, 81, NO_LIMIT).unwrap(), ents(1..=80, 1));
    }
    stores[0].evict_cache_to(81);
    assert_eq!(stores[0].cache_usage(), (0, 0));
    drop(stores);
    assert_eq!(budget.used_bytes(), 0);
}
