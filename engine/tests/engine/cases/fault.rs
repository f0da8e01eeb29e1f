//! Crash paths through the failing/counting write sink: a write that fails
//! before landing leaves the disk at the previous round, one that fails
//! after landing leaves the round there; either way the host reloads.

use flotilla_engine::{FaultMode, FaultyWriteSink, RegionLogStorage, WriteSink};
use flotilla_proto::raftpb::HardState;
use flotilla_raft::{NO_LIMIT, Storage};

use crate::support::{ents, region, temp_engine};

/// Three rounds of 5 entries each through `sink`; the third write is the
/// faulty one. Returns the storage as the host holds it afterwards.
fn three_rounds(sink: &FaultyWriteSink<flotilla_engine::Engine>) -> RegionLogStorage {
    let engine = sink.inner();
    let mut wb = engine.write_batch();
    let mut s = RegionLogStorage::create(engine, region(1, b"", b"", &[1]), &mut wb);
    s.append(&ents(1..=5, 1), &mut wb);
    sink.write(wb, true).unwrap();
    for round in 1..=2u64 {
        let mut wb = engine.write_batch();
        let last = s.last_index().unwrap();
        s.append(&ents(last + 1..=last + 5, 1), &mut wb);
        s.set_hard_state(
            HardState {
                term: 1,
                vote: 1,
                commit: last,
            },
            &mut wb,
        );
        let result = sink.write(wb, true);
        assert_eq!(result.is_ok(), round == 1, "round {round}: {result:?}");
    }
    s
}

#[test]
fn a_write_failing_before_it_lands_leaves_the_previous_round() {
    let (_dir, engine) = temp_engine();
    let sink = FaultyWriteSink::new(engine.clone());
    sink.fail_nth_write(3, FaultMode::BeforeWrite);
    let in_memory = three_rounds(&sink);
    // Memory ran ahead of the failed batch; the disk did not.
    assert_eq!(in_memory.last_index().unwrap(), 15);
    drop(in_memory);
    let s = RegionLogStorage::load(&engine, 1).unwrap();
    assert_eq!(s.last_index().unwrap(), 10);
    assert_eq!(s.hard_state().commit, 5);
    assert_eq!(s.entries(1, 11, NO_LIMIT).unwrap(), ents(1..=10, 1));
    let counts = sink.counts();
    assert_eq!(
        (counts.writes, counts.synced_writes, counts.failed_writes),
        (3, 3, 1)
    );
    assert_eq!(counts.raft_entries, 10);
    // The engine keeps working after the failure.
    let mut s = s;
    let mut wb = engine.write_batch();
    s.append(&ents(11..=11, 2), &mut wb);
    sink.write(wb, false).unwrap();
    assert_eq!(s.term(11).unwrap(), 2);
}

#[test]
fn a_write_failing_after_it_lands_is_there_on_reload() {
    let (_dir, engine) = temp_engine();
    let sink = FaultyWriteSink::new(engine.clone());
    sink.fail_nth_write(3, FaultMode::AfterWrite);
    drop(three_rounds(&sink));
    let s = RegionLogStorage::load(&engine, 1).unwrap();
    assert_eq!(s.last_index().unwrap(), 15);
    // Round 2 only moved the commit index, which is not written: the
    // stored one is round 1's.
    assert_eq!(s.hard_state().commit, 5);
    assert_eq!(sink.counts().failed_writes, 1);
}

#[test]
fn held_writes_wait_until_released_and_then_land() {
    let (_dir, engine) = temp_engine();
    let sink = std::sync::Arc::new(FaultyWriteSink::new(engine.clone()));
    let mut wb = engine.write_batch();
    let mut s = RegionLogStorage::create(&engine, region(1, b"", b"", &[1]), &mut wb);
    s.append(&ents(1..=3, 1), &mut wb);
    sink.hold_writes();
    let (tx, rx) = std::sync::mpsc::channel();
    let writer = {
        let sink = std::sync::Arc::clone(&sink);
        std::thread::spawn(move || {
            let result = sink.write(wb, true);
            tx.send(()).unwrap();
            result
        })
    };
    // Held: nothing lands, however long we wait.
    assert!(
        rx.recv_timeout(std::time::Duration::from_millis(200))
            .is_err()
    );
    assert_eq!(sink.counts().writes, 0);
    assert!(
        RegionLogStorage::load(&engine, 1).is_err(),
        "nothing on disk"
    );
    sink.release_writes();
    writer.join().unwrap().unwrap();
    assert_eq!(sink.counts().synced_writes, 1);
    let s = RegionLogStorage::load(&engine, 1).unwrap();
    assert_eq!(s.last_index().unwrap(), 3);
}
