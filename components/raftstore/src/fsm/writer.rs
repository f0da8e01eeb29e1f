//! The store's writer: a thread that writes and syncs the rounds' raft
//! batches, so that a poller's next round runs while the disk syncs the
//! last one, and a leader's appends leave before its own sync.
//!
//! Each round hands over ONE [`WriteTask`]: its raft write batch, the
//! messages that may leave only once it is durable (acknowledgements,
//! vote traffic) and the readies it makes durable. The writer takes every
//! task waiting when it wakes (group commit): their batches go to the
//! engine in order, only the last one synced — the WAL is ordered, so that
//! sync covers the ones before — then ONE frame per destination store for
//! all their messages, then each region hears which of its readies are
//! durable ([`PeerMsg::Persisted`]) and steps its own acknowledgements in
//! its next round.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use flotilla_batch_system::Router;
use flotilla_engine::WriteBatch;

use crate::fsm::{PeerFsm, StoreFsm, StoreShared};
use crate::msg::PeerMsg;
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
    /// Messages that leave once the batch is durable.
    pub(crate) outbox: Outbox,
    /// `(region, ready number)` for every ready of the round.
    pub(crate) persisted: Vec<(u64, u64)>,
    /// Told once the task is done (a round that installs a snapshot waits).
    pub(crate) done: Option<Sender<()>>,
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
    let mut persisted = BTreeMap::new();
    while let Ok(first) = tasks.recv() {
        group.push(first);
        group.extend(tasks.try_iter().take(GROUP_TASKS_MAX - 1));
        write_group(shared, &mut group);
        // Durable: the messages that waited for it, in one frame per store.
        for task in &mut group {
            outbox.absorb(&mut task.outbox);
        }
        let snapshots = outbox.flush(
            shared.cfg.store_id,
            shared.transport.as_ref(),
            &shared.stats,
        );
        debug_assert!(snapshots.is_empty(), "snapshots leave from the round");
        // Each region hears once, of its latest durable ready.
        for task in &mut group {
            for (region_id, number) in task.persisted.drain(..) {
                persisted.insert(region_id, number);
            }
        }
        for (region_id, number) in std::mem::take(&mut persisted) {
            // A closed mailbox: the store is stopping or the replica went.
            let _ = router.force_send(region_id, PeerMsg::Persisted(number));
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
fn write_group(shared: &StoreShared, group: &mut [WriteTask]) {
    let sync = group.iter().any(|t| t.batch.is_some() && t.sync);
    let entries: usize = group.iter().map(|t| t.entries).sum();
    let last = group.iter().rposition(|t| t.batch.is_some());
    for (i, task) in group.iter_mut().enumerate() {
        let Some(batch) = task.batch.take() else {
            continue;
        };
        let sync_this = sync && Some(i) == last;
        if let Err(e) = shared.sink.write(batch, sync_this) {
            panic!(
                "store {}: raft write failed, cannot continue: {e}",
                shared.cfg.store_id
            );
        }
    }
    if last.is_some() {
        // One write as the store counts them: one sync for the group.
        shared.stats.record_write(sync, entries);
    }
}
