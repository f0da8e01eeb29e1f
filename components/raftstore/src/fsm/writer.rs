//! The store's writer: a thread that writes and syncs the rounds' raft
//! batches, so that a poller's next round runs while the disk syncs the
//! last one, and a leader's appends leave before its own sync.
//!
//! Each round hands over ONE [`WriteTask`]: its raft write batch, the
//! messages that may leave only once it is durable (acknowledgements,
//! vote traffic) and the readies it makes durable. The writer takes every
//! task waiting when it wakes (group commit): their batches go to the
//! engine in order, only the last one synced — the WAL is ordered, so that
//! sync covers the ones before — then each peer's durable mark moves to its
//! latest durable ready, then ONE frame per destination store carries all
//! their messages. A peer reads its mark at the start of each turn and
//! steps its own acknowledgements then; the peers for which the write alone
//! means progress (a leader's or candidate's own acknowledgement, committed
//! entries waiting for this copy, a snapshot) are woken for it
//! ([`PeerMsg::Persisted`]).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use flotilla_batch_system::Router;
use flotilla_engine::{WriteBatch, WriteSink};

use crate::fsm::{PeerFsm, StoreFsm, StoreShared};
use crate::msg::PeerMsg;
use crate::stats::StoreStats;
use crate::transport::Outbox;

/// Tasks waiting for the writer at most: a poller that gets this far ahead
/// of the disk waits for it.
pub(crate) const WRITE_QUEUE_TASKS_MAX: usize = 32;

/// Tasks one group commit takes at most.
const GROUP_TASKS_MAX: usize = 64;

/// One round's raft write, handed from a poller to the writer.
pub(crate) struct WriteTask {
    /// The round's raft batch; `None` when the round wrote nothing.
    pub(crate) batch: Option<WriteBatch>,
    /// Whether the batch must be synced before its messages leave.
    pub(crate) sync: bool,
    /// Log entries in the batch.
    pub(crate) entries: usize,
    /// Payload bytes of those entries.
    pub(crate) entry_bytes: u64,
    /// Messages that leave once the batch is durable.
    pub(crate) outbox: Outbox,
    /// Every ready of the round.
    pub(crate) persisted: Vec<Durable>,
    /// Told once the task is done (a round that installs a snapshot waits).
    pub(crate) done: Option<Sender<()>>,
}

/// What the writer reports to a peer once one of its readies is durable.
pub(crate) struct Durable {
    pub(crate) region_id: u64,
    /// The ready's number.
    pub(crate) number: u64,
    /// The peer's mark of its latest durable ready.
    pub(crate) cell: Arc<AtomicU64>,
    /// Whether the peer must be woken for it ([`PeerMsg::Persisted`]);
    /// otherwise it reads the mark at its next turn.
    pub(crate) wake: bool,
}

/// Starts the store's writer thread; it runs until every sender of `tasks`
/// is gone (the pollers stopped), writing what is still queued first.
pub(crate) fn spawn(
    shared: Arc<StoreShared>,
    router: Router<PeerFsm, StoreFsm>,
    tasks: Receiver<WriteTask>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("store-{}-writer", shared.cfg.store_id))
        .spawn(move || run(&shared, &router, &tasks))
}

fn run(shared: &StoreShared, router: &Router<PeerFsm, StoreFsm>, tasks: &Receiver<WriteTask>) {
    let mut outbox = Outbox::default();
    let mut group = Vec::with_capacity(GROUP_TASKS_MAX);
    let mut wake = BTreeSet::new();
    while let Ok(first) = tasks.recv() {
        group.push(first);
        group.extend(tasks.try_iter().take(GROUP_TASKS_MAX - 1));
        write_group(
            shared.sink.as_ref(),
            &shared.stats,
            shared.cfg.store_id,
            &mut group,
        );
        // Durable: each peer's mark moves first, so that whatever answers
        // the messages below finds it.
        for task in &group {
            for d in &task.persisted {
                d.cell.fetch_max(d.number, Ordering::Release);
            }
        }
        // The messages that waited for the write, in one frame per store.
        for task in &mut group {
            outbox.absorb(&mut task.outbox);
        }
        let snapshots = outbox.flush(
            shared.cfg.store_id,
            shared.transport.as_ref(),
            &shared.stats,
        );
        debug_assert!(snapshots.is_empty(), "snapshots leave from the round");
        // The peers that must be woken hear once each.
        for task in &mut group {
            for d in task.persisted.drain(..).filter(|d| d.wake) {
                wake.insert(d.region_id);
            }
        }
        for region_id in std::mem::take(&mut wake) {
            // A closed mailbox: the store is stopping or the replica went.
            let _ = router.force_send(region_id, PeerMsg::Persisted);
        }
        for task in group.drain(..) {
            if let Some(done) = task.done {
                let _ = done.send(());
            }
        }
    }
}

/// Writes the group's batches in order, syncing only the last one (if any
/// must be synced). A failed write leaves raft believing in state that is
/// not on disk; the store cannot go on without risking acknowledged data.
fn write_group(sink: &dyn WriteSink, stats: &StoreStats, store_id: u64, group: &mut [WriteTask]) {
    let sync = group.iter().any(|t| t.batch.is_some() && t.sync);
    let entries: usize = group.iter().map(|t| t.entries).sum();
    let entry_bytes: u64 = group.iter().map(|t| t.entry_bytes).sum();
    let last = group.iter().rposition(|t| t.batch.is_some());
    for (i, task) in group.iter_mut().enumerate() {
        let Some(batch) = task.batch.take() else {
            continue;
        };
        let sync_this = sync && Some(i) == last;
        if let Err(e) = sink.write(batch, sync_this) {
            panic!("store {store_id}: raft write failed, cannot continue: {e}");
        }
    }
    if last.is_some() {
        // One write as the store counts them: one sync for the group.
        stats.record_write(sync, entries, entry_bytes);
    }
}

#[cfg(test)]
mod tests {
    use flotilla_engine::{Engine, EngineConfig, WriteStats};
    use parking_lot::Mutex;

    use super::*;

    /// Writes through to the engine, noting each write's sync flag.
    struct Recording(Engine, Mutex<Vec<bool>>);

    impl WriteSink for Recording {
        fn write(&self, batch: WriteBatch, sync: bool) -> flotilla_engine::Result<WriteStats> {
            self.1.lock().push(sync);
            self.0.write(batch, sync)
        }
    }

    fn task(engine: &Engine, key: Option<&[u8]>, sync: bool) -> WriteTask {
        WriteTask {
            batch: key.map(|k| {
                let mut wb = engine.write_batch();
                wb.put_data(k, b"v");
                wb
            }),
            sync,
            entries: usize::from(key.is_some()),
            entry_bytes: 0,
            outbox: Outbox::default(),
            persisted: Vec::new(),
            done: None,
        }
    }

    #[test]
    fn a_group_of_rounds_is_written_in_order_with_one_sync_at_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), &EngineConfig::for_tests()).unwrap();
        let sink = Recording(engine.clone(), Mutex::new(Vec::new()));
        let stats = StoreStats::new(1);
        // The second task must be synced; the last has nothing to write.
        let mut group = vec![
            task(&engine, Some(b"a"), false),
            task(&engine, Some(b"b"), true),
            task(&engine, Some(b"c"), false),
            task(&engine, None, false),
        ];
        write_group(&sink, &stats, 1, &mut group);
        assert_eq!(*sink.1.lock(), [false, false, true], "the last write syncs");
        assert!(
            group.iter().all(|t| t.batch.is_none()),
            "every batch written"
        );
        let s = stats.snapshot();
        assert_eq!((s.writes, s.synced_writes, s.entries_synced), (1, 1, 3));
        // Nothing needs a sync: none is made.
        sink.1.lock().clear();
        let mut group = vec![task(&engine, Some(b"d"), false), task(&engine, None, true)];
        write_group(&sink, &stats, 1, &mut group);
        assert_eq!(*sink.1.lock(), [false]);
        assert_eq!(stats.snapshot().synced_writes, 1);
    }
}
