//! Reopening an engine gives back exactly what the last successful writes
//! left: every region's states, log and user data.

use flotilla_engine::{Engine, EngineConfig, RegionLogStorage};
use flotilla_proto::raftpb::HardState;
use flotilla_raft::{NO_LIMIT, Storage};

use crate::support::{ents, open, region, temp_engine};

/// Everything observable about a store's regions, for exact comparison.
#[derive(Debug, PartialEq)]
struct StoreImage {
    regions: Vec<String>,
    data: Vec<(bytes::Bytes, bytes::Bytes)>,
}

fn image(engine: &Engine) -> StoreImage {
    let mut regions = Vec::new();
    for state in engine.region_states().unwrap() {
        let id = state.region.as_ref().unwrap().id;
        let s = RegionLogStorage::load(engine, id).unwrap();
        let (first, last) = (s.first_index().unwrap(), s.last_index().unwrap());
        regions.push(format!(
            "{state:?} {:?} applied={:?} truncated={:?} first={first} last={last} \
             entries={:?} init={:?}",
            s.hard_state(),
            s.applied(),
            s.truncated(),
            s.entries(first, last + 1, NO_LIMIT).unwrap(),
            s.initial_state().unwrap(),
        ));
    }
    let all = region(0, b"", b"", &[]);
    let data = engine.scan(&all, b"", usize::MAX).unwrap();
    StoreImage { regions, data }
}

#[test]
fn synced_batches_survive_drop_and_reopen_exactly() {
    let (dir, engine) = temp_engine();
    let mut wb = engine.write_batch();
    let mut stores: Vec<_> = (1..=8u64)
        .map(|id| {
            let start = [id as u8];
            let end = [id as u8 + 1];
            RegionLogStorage::create(&engine, region(id, &start, &end, &[1, 2, 3]), &mut wb)
        })
        .collect();
    engine.write(wb, true).unwrap();
    // Rounds: every region appends, some commit, apply and compact, all in
    // one batch per round.
    for round in 0..20u64 {
        let mut wb = engine.write_batch();
        for s in &mut stores {
            let id = s.region_id();
            let last = s.last_index().unwrap();
            s.append(&ents(last + 1..=last + 5, 1 + round / 7), &mut wb);
            let commit = last + 3;
            s.set_hard_state(
                HardState {
                    term: 1 + round / 7,
                    vote: 1,
                    commit,
                },
                &mut wb,
            );
            wb.put_data(&[id as u8, round as u8], &round.to_be_bytes());
            s.set_applied(commit, 1 + round / 7, &mut wb);
            if round % 6 == 5 {
                s.compact_to(commit - 2, &mut wb).unwrap();
            }
        }
        engine.write(wb, true).unwrap();
    }
    let before = image(&engine);
    drop(stores);
    drop(engine);
    let engine = open(dir.path());
    assert_eq!(image(&engine), before);
    assert_eq!(engine.region_states().unwrap().len(), 8);
}

#[test]
fn a_conflicting_suffix_stays_deleted_after_reopen() {
    let (dir, engine) = temp_engine();
    let mut wb = engine.write_batch();
    let mut s = RegionLogStorage::create(&engine, region(1, b"", b"", &[1]), &mut wb);
    s.append(&ents(1..=10, 1), &mut wb);
    engine.write(wb, true).unwrap();
    let mut wb = engine.write_batch();
    s.append(&ents(6..=7, 2), &mut wb);
    engine.write(wb, true).unwrap();
    drop(s);
    drop(engine);
    let engine = open(dir.path());
    let s = RegionLogStorage::load(&engine, 1).unwrap();
    assert_eq!(s.last_index().unwrap(), 7);
    assert_eq!(
        s.entries(1, 8, NO_LIMIT).unwrap(),
        [ents(1..=5, 1), ents(6..=7, 2)].concat()
    );
    assert_eq!(
        engine.raft_log_indexes(1).unwrap(),
        (1..=7).collect::<Vec<_>>()
    );
    // The log can grow over the deleted suffix again.
    let mut s = s;
    let mut wb = engine.write_batch();
    s.append(&ents(8..=8, 2), &mut wb);
    engine.write(wb, false).unwrap();
    assert_eq!(s.term(8).unwrap(), 2);
}

#[test]
fn with_flushes_and_compactions_paced_every_write_is_read_back_and_survives_reopen() {
    // Memtables of 64 KiB and 1 MiB of user data: about a dozen flushes of
    // the data column family (and compactions of their level-0 files),
    // each paced by a budget of 1 MiB per second.
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        write_buffer_bytes: 64 << 10,
        background_write_bytes_per_sec: 1 << 20,
        ..EngineConfig::for_tests()
    };
    let engine = Engine::open(dir.path(), &config).unwrap();
    let value = |i: u32| vec![(i % 251) as u8; 512];
    for batch in 0..64u32 {
        let mut wb = engine.write_batch();
        for j in 0..32u32 {
            let i = batch * 32 + j;
            wb.put_data(format!("k{i:06}").as_bytes(), &value(i));
        }
        engine.write(wb, batch % 8 == 7).unwrap();
    }
    let all = region(0, b"", b"", &[]);
    let check = |engine: &Engine| {
        let pairs = engine.scan(&all, b"", usize::MAX).unwrap();
        assert_eq!(pairs.len(), 64 * 32);
        for (i, (k, v)) in pairs.iter().enumerate() {
            assert_eq!(k.as_ref(), format!("k{i:06}").as_bytes());
            assert_eq!(v.as_ref(), value(i as u32).as_slice());
        }
    };
    check(&engine);
    let ssts = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension() == Some("sst".as_ref()))
            .count()
    };
    drop(engine);
    assert!(
        ssts() > 0,
        "no memtable was flushed: the pacing was not exercised"
    );
    let engine = Engine::open(dir.path(), &config).unwrap();
    check(&engine);
}

#[test]
fn opening_a_missing_database_without_create_fails() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        create_if_missing: false,
        ..EngineConfig::for_tests()
    };
    assert!(Engine::open(dir.path().join("absent"), &config).is_err());
}

#[test]
fn engine_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Engine>();
    let (_dir, engine) = temp_engine();
    let all = region(0, b"", b"", &[]);
    std::thread::scope(|scope| {
        for t in 0..4u8 {
            let engine = engine.clone();
            scope.spawn(move || {
                for i in 0..50u8 {
                    let mut wb = engine.write_batch();
                    wb.put_data(&[t, i], &[i]);
                    engine.write(wb, i % 10 == 0).unwrap();
                }
            });
        }
    });
    assert_eq!(engine.scan(&all, b"", usize::MAX).unwrap().len(), 200);
}
