//! One FSM's mailbox: a bounded queue of messages plus the atomic scheduling
//! state that makes a send to an idle FSM schedule it exactly once.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use crate::fsm::{Fsm, FsmState, ScheduleState};
use crate::metrics::Stats;

/// Why a message was not accepted. Every variant hands the message back, so
/// nothing is lost silently.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum SendError<M> {
    /// The mailbox holds `mailbox_capacity` messages already.
    #[error("mailbox is full")]
    Full(M),
    /// The FSM was closed, or the batch system is shut down.
    #[error("mailbox is closed")]
    Disconnected(M),
    /// No FSM is registered under the id.
    #[error("no FSM registered under this id")]
    NotFound(M),
}

impl<M> SendError<M> {
    /// The message that was not sent.
    pub fn into_inner(self) -> M {
        match self {
            SendError::Full(m) | SendError::Disconnected(m) | SendError::NotFound(m) => m,
        }
    }
}

// Written by hand so that `M` need not be `Debug` and message contents (user
// values) never reach a log.
impl<M> fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let variant = match self {
            SendError::Full(_) => "Full",
            SendError::Disconnected(_) => "Disconnected",
            SendError::NotFound(_) => "NotFound",
        };
        write!(f, "{variant}(..)")
    }
}

/// Puts an FSM, now `Notified`, at the back of the ready queue.
pub(crate) trait Schedule<F: Fsm>: Send + Sync {
    /// Takes ownership of `fsm`. If the system is gone, the implementation
    /// closes the mailbox with [`Mailbox::close_owned`].
    fn schedule(&self, fsm: Box<F>, mailbox: Mailbox<F>);
}

/// A handle on one FSM's mailbox. Cheap to clone; sending through a held
/// `Mailbox` skips the router's lookup.
///
/// The queue is bounded by `mailbox_capacity` for [`send`](Self::send). The
/// check and the push are not one atomic step, so concurrent senders may
/// overshoot the bound by at most their number; [`force_send`](Self::force_send)
/// ignores it, for messages that must not be refused.
pub struct Mailbox<F: Fsm> {
    core: Arc<Core<F>>,
}

struct Core<F: Fsm> {
    id: u64,
    state: FsmState,
    /// The FSM while it is parked. Invariant: `Some` while the state is
    /// `Idle`; `None` while `Notified` or `Running`, except between a poller
    /// parking the FSM and moving the state to `Idle`.
    slot: Mutex<Option<Box<F>>>,
    sender: Sender<F::Message>,
    receiver: Receiver<F::Message>,
    capacity: usize,
    scheduler: Arc<dyn Schedule<F>>,
    stats: Arc<Stats>,
}

impl<F: Fsm> Clone for Mailbox<F> {
    fn clone(&self) -> Self {
        Mailbox {
            core: Arc::clone(&self.core),
        }
    }
}

impl<F: Fsm> fmt::Debug for Mailbox<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailbox")
            .field("id", &self.core.id)
            .field("state", &self.core.state.get())
            .field("len", &self.len())
            .field("capacity", &self.core.capacity)
            .finish()
    }
}

impl<F: Fsm> Mailbox<F> {
    /// A mailbox with `fsm` parked in it (`Idle`).
    pub(crate) fn new(
        id: u64,
        fsm: Box<F>,
        capacity: usize,
        scheduler: Arc<dyn Schedule<F>>,
        stats: Arc<Stats>,
    ) -> Self {
        // Unbounded underneath, bounded by the length check in `send`: a
        // crossbeam array channel would allocate `capacity` slots up front for
        // each of thousands of mostly idle FSMs.
        let (sender, receiver) = crossbeam_channel::unbounded();
        let core = Core {
            id,
            state: FsmState::new_idle(),
            slot: Mutex::new(Some(fsm)),
            sender,
            receiver,
            capacity,
            scheduler,
            stats,
        };
        Mailbox {
            core: Arc::new(core),
        }
    }

    /// Sends `msg`, scheduling the FSM if it was idle. Refuses with
    /// [`SendError::Full`] when `mailbox_capacity` messages are waiting, and
    /// with [`SendError::Disconnected`] once the FSM is closed.
    pub fn send(&self, msg: F::Message) -> Result<(), SendError<F::Message>> {
        if self.is_closed() {
            return Err(SendError::Disconnected(msg));
        }
        if self.core.sender.len() >= self.core.capacity {
            return Err(SendError::Full(msg));
        }
        self.push(msg)
    }

    /// Like [`send`](Self::send) but ignores the capacity.
    pub fn force_send(&self, msg: F::Message) -> Result<(), SendError<F::Message>> {
        if self.is_closed() {
            return Err(SendError::Disconnected(msg));
        }
        self.push(msg)
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.core.receiver.len()
    }

    /// Whether no message is waiting.
    pub fn is_empty(&self) -> bool {
        self.core.receiver.is_empty()
    }

    /// The bound [`send`](Self::send) enforces.
    pub fn capacity(&self) -> usize {
        self.core.capacity
    }

    /// Whether the FSM was closed (explicitly, because it stopped, or by
    /// shutdown). A closed mailbox refuses every message.
    pub fn is_closed(&self) -> bool {
        self.core.state.get() == ScheduleState::Dropped
    }

    /// The FSM's scheduling state right now (it may change at once).
    pub fn state(&self) -> ScheduleState {
        self.core.state.get()
    }

    pub(crate) fn id(&self) -> u64 {
        self.core.id
    }

    pub(crate) fn receiver(&self) -> &Receiver<F::Message> {
        &self.core.receiver
    }

    pub(crate) fn same(&self, other: &Mailbox<F>) -> bool {
        Arc::ptr_eq(&self.core, &other.core)
    }

    fn push(&self, msg: F::Message) -> Result<(), SendError<F::Message>> {
        if let Err(e) = self.core.sender.send(msg) {
            // Unreachable while the core holds the receiver; kept total.
            return Err(SendError::Disconnected(e.into_inner()));
        }
        // Pairs with the fence in `release` and `close`: either this load sees
        // `Idle`/`Dropped`, or the poller/closer sees the message we pushed.
        fence(Ordering::SeqCst);
        self.notify();
        Ok(())
    }

    /// Schedules the FSM if it is idle. Exactly one caller wins `Idle ->
    /// Notified`; everyone else sees the FSM already on its way.
    fn notify(&self) {
        match self.core.state.get() {
            ScheduleState::Notified | ScheduleState::Running => return,
            ScheduleState::Dropped => return self.drain_dropped(),
            ScheduleState::Idle => {}
        }
        match self.core.state.notify() {
            Ok(()) => {
                let fsm = self.core.slot.lock().take();
                let fsm = fsm
                    .unwrap_or_else(|| panic!("fsm {} was Idle with an empty slot", self.core.id));
                self.core.scheduler.schedule(fsm, self.clone());
            }
            Err(ScheduleState::Dropped) => self.drain_dropped(),
            Err(_) => {}
        }
    }

    /// A poller took the FSM from the ready queue. False if it was closed
    /// meanwhile: the caller then hands it to [`close_owned`](Self::close_owned).
    pub(crate) fn start(&self) -> bool {
        self.core.state.start(self.core.id)
    }

    /// Ends the FSM's turn: back to the end of the ready queue if `again`,
    /// else parked idle (and rescheduled at once if a message slipped in).
    pub(crate) fn finish_turn(&self, fsm: Box<F>, again: bool) {
        if again {
            self.requeue(fsm);
        } else {
            self.release(fsm);
        }
    }

    fn requeue(&self, fsm: Box<F>) {
        if self.core.state.requeue(self.core.id) {
            self.core.scheduler.schedule(fsm, self.clone());
        } else {
            self.close_owned(Some(fsm));
        }
    }

    fn release(&self, fsm: Box<F>) {
        {
            let mut slot = self.core.slot.lock();
            assert!(
                slot.is_none(),
                "fsm {} released into a full slot",
                self.core.id
            );
            *slot = Some(fsm);
        }
        if !self.core.state.release(self.core.id) {
            // Closed while running: the closer left the FSM to us.
            let fsm = self.core.slot.lock().take();
            return self.close_owned(fsm);
        }
        // Pairs with the fence in `push`: a message sent while we were
        // running is either seen here or its sender saw `Idle`.
        fence(Ordering::SeqCst);
        if !self.core.receiver.is_empty() {
            self.notify();
        }
    }

    /// Closes the mailbox: later sends fail with `Disconnected`, the FSM is
    /// dropped by whoever holds it, waiting messages are counted as dropped.
    /// Idempotent.
    pub(crate) fn close(&self) {
        let previous = self.core.state.close();
        if previous == ScheduleState::Dropped {
            return;
        }
        let fsm = if previous == ScheduleState::Idle {
            self.core.slot.lock().take()
        } else {
            None
        };
        drop(fsm);
        fence(Ordering::SeqCst);
        self.drain_dropped();
    }

    /// Closes the mailbox of an FSM the caller owns (it stopped, was closed
    /// while running, or cannot be scheduled any more) and drops the FSM.
    pub(crate) fn close_owned(&self, fsm: Option<Box<F>>) {
        self.core.state.close();
        drop(fsm);
        fence(Ordering::SeqCst);
        self.drain_dropped();
    }

    fn drain_dropped(&self) {
        let mut count = 0;
        while let Ok(msg) = self.core.receiver.try_recv() {
            drop(msg);
            count += 1;
        }
        self.core.stats.on_dropped(count);
    }
}

/// The messages an FSM may take in one turn: at most `messages_per_tick`,
/// and no more once its turn has run for `reschedule_duration`. An FSM that
/// stops with messages left is put back at the end of the ready queue, behind
/// every FSM that was already waiting.
pub struct Inbox<'a, M> {
    receiver: &'a Receiver<M>,
    budget: usize,
    taken: usize,
    time_slice: Duration,
    started: Option<Instant>,
    until_clock_check: usize,
}

/// How many messages pass between two reads of the clock.
const CLOCK_CHECK_MESSAGES: usize = 8;

impl<M> fmt::Debug for Inbox<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbox")
            .field("budget", &self.budget)
            .field("taken", &self.taken)
            .field("pending", &self.pending())
            .finish()
    }
}

impl<'a, M> Inbox<'a, M> {
    pub(crate) fn new(receiver: &'a Receiver<M>, budget: usize, time_slice: Duration) -> Self {
        Inbox {
            receiver,
            budget,
            taken: 0,
            time_slice,
            started: None,
            until_clock_check: CLOCK_CHECK_MESSAGES,
        }
    }

    /// The next message, or `None` if the mailbox is empty or this turn's
    /// budget (messages or time) is spent.
    pub fn recv(&mut self) -> Option<M> {
        if self.budget == 0 {
            return None;
        }
        match self.started {
            None => self.started = Some(Instant::now()),
            Some(started) if self.until_clock_check == 0 => {
                self.until_clock_check = CLOCK_CHECK_MESSAGES;
                if started.elapsed() >= self.time_slice {
                    self.budget = 0;
                    return None;
                }
            }
            Some(_) => {}
        }
        let msg = self.receiver.try_recv().ok()?;
        self.budget -= 1;
        self.taken += 1;
        self.until_clock_check = self.until_clock_check.saturating_sub(1);
        Some(msg)
    }

    /// Messages taken so far this turn.
    pub fn taken(&self) -> usize {
        self.taken
    }

    /// Whether this turn's budget is spent: [`recv`](Self::recv) returns
    /// `None` from now on even if messages are waiting.
    pub fn is_exhausted(&self) -> bool {
        self.budget == 0
    }

    /// Messages waiting in the mailbox, beyond those already taken.
    pub fn pending(&self) -> usize {
        self.receiver.len()
    }
}

impl<M> Iterator for Inbox<'_, M> {
    type Item = M;

    fn next(&mut self) -> Option<M> {
        self.recv()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::thread;

    use super::*;

    struct Probe;

    impl Fsm for Probe {
        type Message = u64;

        fn is_stopped(&self) -> bool {
            false
        }
    }

    /// Records what a real scheduler would queue.
    #[derive(Default)]
    struct Queue {
        scheduled: AtomicUsize,
        held: Mutex<Vec<(Box<Probe>, Mailbox<Probe>)>>,
    }

    impl Schedule<Probe> for Queue {
        fn schedule(&self, fsm: Box<Probe>, mailbox: Mailbox<Probe>) {
            self.scheduled.fetch_add(1, Ordering::SeqCst);
            self.held.lock().push((fsm, mailbox));
        }
    }

    fn mailbox(capacity: usize) -> (Mailbox<Probe>, Arc<Queue>, Arc<Stats>) {
        let queue = Arc::new(Queue::default());
        let stats = Arc::new(Stats::default());
        let mb = Mailbox::new(9, Box::new(Probe), capacity, queue.clone(), stats.clone());
        (mb, queue, stats)
    }

    /// Plays the poller: takes the queued FSM, drains, releases it.
    fn run_once(queue: &Queue) -> usize {
        let (fsm, mb) = queue.held.lock().pop().expect("fsm was scheduled");
        assert!(mb.start());
        let mut inbox = Inbox::new(mb.receiver(), usize::MAX, Duration::MAX);
        let taken = inbox.by_ref().count();
        mb.finish_turn(fsm, false);
        taken
    }

    #[test]
    fn concurrent_senders_schedule_an_idle_fsm_exactly_once_per_burst() {
        let (mb, queue, _) = mailbox(usize::MAX);
        for burst in 1..=20 {
            thread::scope(|s| {
                for t in 0..4 {
                    let mb = mb.clone();
                    s.spawn(move || (0..50).for_each(|i| mb.send(t * 1000 + i).unwrap()));
                }
            });
            assert_eq!(
                queue.scheduled.load(Ordering::SeqCst),
                burst,
                "burst {burst}"
            );
            assert_eq!(mb.state(), ScheduleState::Notified);
            assert_eq!(run_once(&queue), 200);
            assert_eq!(mb.state(), ScheduleState::Idle);
        }
    }

    #[test]
    fn a_message_sent_while_running_reschedules_on_release() {
        let (mb, queue, _) = mailbox(8);
        mb.send(1).unwrap();
        let (fsm, held) = queue.held.lock().pop().unwrap();
        assert!(held.start());
        mb.send(2).unwrap();
        assert_eq!(
            queue.scheduled.load(Ordering::SeqCst),
            1,
            "running: no second schedule"
        );
        held.finish_turn(fsm, false);
        assert_eq!(queue.scheduled.load(Ordering::SeqCst), 2);
        assert_eq!(run_once(&queue), 2);
    }

    #[test]
    fn full_and_closed_mailboxes_hand_the_message_back() {
        let (mb, _queue, stats) = mailbox(2);
        mb.send(1).unwrap();
        mb.send(2).unwrap();
        assert!(matches!(mb.send(3), Err(SendError::Full(3))));
        mb.force_send(4).unwrap();
        mb.close();
        assert!(matches!(mb.send(5), Err(SendError::Disconnected(5))));
        assert!(matches!(mb.force_send(6), Err(SendError::Disconnected(6))));
        assert_eq!(stats.dropped_messages(), 3);
    }

    #[test]
    fn the_inbox_stops_at_its_budget() {
        let (mb, queue, _) = mailbox(100);
        (0..10).for_each(|i| mb.send(i).unwrap());
        let (_fsm, held) = queue.held.lock().pop().unwrap();
        let mut inbox = Inbox::new(held.receiver(), 4, Duration::MAX);
        assert_eq!(inbox.by_ref().collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        assert!(inbox.is_exhausted());
        assert_eq!((inbox.taken(), inbox.pending()), (4, 6));
    }

    #[test]
    fn the_inbox_stops_when_its_time_slice_is_spent() {
        let (mb, queue, _) = mailbox(100);
        (0..20).for_each(|i| mb.send(i).unwrap());
        let (_fsm, held) = queue.held.lock().pop().unwrap();
        // A zero slice is spent at the first clock check.
        let mut inbox = Inbox::new(held.receiver(), 100, Duration::ZERO);
        assert_eq!(inbox.by_ref().count(), CLOCK_CHECK_MESSAGES);
        assert!(inbox.is_exhausted());
    }
}
