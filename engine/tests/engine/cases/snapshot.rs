//! Raft snapshots of a region: generated from a consistent view of the
//! applied state, exported as the region's key range, and installed on
//! another store, replacing the target range and resetting the log.

use bytes::Bytes;
use flotilla_engine::{Engine, Error, RegionLogStorage, RegionSnapshotData};
use flotilla_proto::raftpb::{HardState, Snapshot};
use flotilla_raft::{NO_LIMIT, Storage, StorageError};

use crate::support::{ents, open, region, temp_engine};

/// Region 1 over [b, m) on voters 1-3 with entries 1..=10 (term 2), 1..=8
/// applied: keys b0..b7 written by the applied entries.
fn source(engine: &Engine) -> RegionLogStorage {
    let mut wb = engine.write_batch();
    let mut s = RegionLogStorage::create(engine, region(1, b"b", b"m", &[1, 2, 3]), &mut wb);
    s.append(&ents(1..=10, 2), &mut wb);
    s.set_hard_state(
        HardState {
            term: 2,
            vote: 1,
            commit: 9,
        },
        &mut wb,
    );
    engine.write(wb, true).unwrap();
    let mut wb = engine.write_batch();
    for i in 0..8u8 {
        wb.put_data(&[b'b', b'0' + i], &[i]);
    }
    wb.put_data(b"a", b"outside");
    wb.put_data(b"m", b"outside");
    s.set_applied(8, 2, &mut wb);
    engine.write(wb, true).unwrap();
    s
}

#[test]
fn snapshot_is_of_the_applied_state_and_not_ready_below_it() {
    let (_dir, engine) = temp_engine();
    let s = source(&engine);
    let snap = s.snapshot(5).unwrap();
    let meta = snap.metadata.clone().unwrap();
    assert_eq!((meta.index, meta.term), (8, 2));
    assert_eq!(meta.conf_state.unwrap().voters, vec![1, 2, 3]);
    let data = RegionSnapshotData::decode(&snap.data).unwrap();
    assert_eq!(data.region(), s.region());
    assert_eq!(data.pairs().len(), 8);
    assert!(matches!(
        s.snapshot(9),
        Err(flotilla_raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable
        ))
    ));
}

#[test]
fn installing_a_snapshot_replaces_the_range_and_resets_the_log() {
    let (_d1, engine1) = temp_engine();
    let snap = source(&engine1).snapshot(0).unwrap();
    let (dir2, engine2) = temp_engine();
    // The target has an uninitialized replica, stale keys in the range and
    // a neighbour's key outside it.
    let mut wb = engine2.write_batch();
    let mut target = RegionLogStorage::create(&engine2, region(1, b"", b"", &[]), &mut wb);
    target.append(&ents(1..=3, 1), &mut wb);
    target.set_hard_state(
        HardState {
            term: 3,
            vote: 2,
            commit: 1,
        },
        &mut wb,
    );
    wb.put_data(b"c-stale", b"x");
    wb.put_data(b"z-neighbour", b"y");
    engine2.write(wb, true).unwrap();
    let mut wb = engine2.write_batch();
    target.apply_snapshot(&snap, &mut wb).unwrap();
    engine2.write(wb, true).unwrap();
    let check = |t: &RegionLogStorage, e: &Engine| {
        assert_eq!((t.first_index().unwrap(), t.last_index().unwrap()), (9, 8));
        assert_eq!(t.term(8).unwrap(), 2);
        assert_eq!(t.applied(), (8, 2));
        assert_eq!(
            t.hard_state(),
            HardState {
                term: 3,
                vote: 2,
                commit: 8
            }
        );
        assert_eq!(t.initial_state().unwrap().conf_state.voters, vec![1, 2, 3]);
        let r = t.region().clone();
        assert_eq!(r.start_key, Bytes::from_static(b"b"));
        assert_eq!(e.scan(&r, b"", 100).unwrap().len(), 8);
        let all = region(9, b"", b"", &[]);
        assert_eq!(e.get(&all, b"c-stale").unwrap(), None);
        assert!(e.get(&all, b"z-neighbour").unwrap().is_some());
        // The old log is gone from disk too.
        assert_eq!(t.entries(9, 9, NO_LIMIT).unwrap(), vec![]);
        assert!(e.raft_log_indexes(1).unwrap().is_empty());
    };
    check(&target, &engine2);
    // The log continues after the snapshot, and all of it survives a restart.
    let mut wb = engine2.write_batch();
    target.append(&ents(9..=9, 3), &mut wb);
    engine2.write(wb, true).unwrap();
    drop(target);
    drop(engine2);
    let engine2 = open(dir2.path());
    let target = RegionLogStorage::load(&engine2, 1).unwrap();
    assert_eq!(target.entries(9, 10, NO_LIMIT).unwrap(), ents(9..=9, 3));
    // A snapshot of the installed replica is the same as the source's.
    let again = target.snapshot(8).unwrap();
    assert_eq!(again, snap);
}

#[test]
fn stale_foreign_or_damaged_snapshots_are_refused() {
    let (_d1, engine1) = temp_engine();
    let snap = source(&engine1).snapshot(0).unwrap();
    let (_d2, engine2) = temp_engine();
    let mut wb = engine2.write_batch();
    let mut other = RegionLogStorage::create(&engine2, region(2, b"", b"", &[]), &mut wb);
    assert!(matches!(
        other.apply_snapshot(&snap, &mut wb),
        Err(Error::OutOfRange { .. })
    ));
    let mut target = RegionLogStorage::create(&engine2, region(1, b"", b"", &[]), &mut wb);
    target.set_applied(8, 2, &mut wb);
    assert!(matches!(
        target.apply_snapshot(&snap, &mut wb),
        Err(Error::OutOfRange { .. })
    ));
    let mut target = RegionLogStorage::create(&engine2, region(1, b"", b"", &[]), &mut wb);
    // Every single-byte flip and every truncation is caught.
    for i in 0..snap.data.len() {
        let mut bad = snap.data.to_vec();
        bad[i] ^= 0x40;
        let bad = Snapshot {
            data: bad.into(),
            ..snap.clone()
        };
        let err = target.apply_snapshot(&bad, &mut wb).unwrap_err();
        assert!(err.is_corruption(), "flip at {i}: {err}");
        let cut = Snapshot {
            data: snap.data.slice(..i),
            ..snap.clone()
        };
        assert!(
            target
                .apply_snapshot(&cut, &mut wb)
                .unwrap_err()
                .is_corruption()
        );
    }
    // Membership that disagrees with the region's peers.
    let mut wrong = snap.clone();
    wrong
        .metadata
        .as_mut()
        .unwrap()
        .conf_state
        .as_mut()
        .unwrap()
        .voters = vec![7];
    assert!(
        target
            .apply_snapshot(&wrong, &mut wb)
            .unwrap_err()
            .is_corruption()
    );
    assert_eq!(target.last_index().unwrap(), 0);
}
