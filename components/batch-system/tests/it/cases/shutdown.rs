//! Shutdown and close: sends fail afterwards, nothing is lost silently.

use std::sync::atomic::Ordering;
use std::thread;

use crossbeam_channel::{Receiver, Sender};
use flotilla_batch_system::{HandleResult, Inbox, PollHandler, ScheduleState, SendError};

use crate::support::{Control, Counting, Msg, Node, Probe, STOP, config, finish, system};

#[test]
fn messages_waiting_at_shutdown_are_counted_and_later_sends_fail() {
    let (router, mut system) = system(&config(2, 4, 4), 10);
    (0..10).for_each(|id| (0..3).for_each(|m| router.send(id, m).unwrap()));
    router.send_control(1).unwrap();
    let held = router.mailbox(3).unwrap();
    let control = router.control_mailbox();
    // Never spawned: nothing was handled.
    system.shutdown();
    assert_eq!(system.dropped_messages(), 31);
    assert_eq!(router.dropped_messages(), 31);
    assert!(router.is_shutdown());
    assert!(matches!(router.send(3, 8), Err(SendError::Disconnected(8))));
    assert!(matches!(
        router.force_send(3, 8),
        Err(SendError::Disconnected(8))
    ));
    assert!(matches!(
        router.send_control(9),
        Err(SendError::Disconnected(9))
    ));
    assert!(matches!(held.send(10), Err(SendError::Disconnected(10))));
    assert!(matches!(
        control.force_send(11),
        Err(SendError::Disconnected(11))
    ));
    assert_eq!(held.state(), ScheduleState::Dropped);
    assert_eq!(router.broadcast_normal(|| 0), 0);
    // Registering after shutdown drops the FSM at once.
    router.register(50, Node::boxed(50));
    assert!(router.mailbox(50).is_none());
    system.shutdown();
    assert_eq!(system.dropped_messages(), 31, "idempotent");
}

/// Takes one message per turn; FSM 1's first turn blocks until released.
struct Gated {
    inner: Counting,
    entered: Sender<()>,
    gate: Receiver<()>,
}

impl PollHandler<Node, Control> for Gated {
    fn begin(&mut self, batch_size: usize) {
        self.inner.begin(batch_size);
    }

    fn handle_control(&mut self, c: &mut Control, inbox: &mut Inbox<'_, Msg>) -> HandleResult {
        self.inner.handle_control(c, inbox)
    }

    fn handle_normal(&mut self, node: &mut Node, inbox: &mut Inbox<'_, Msg>) -> HandleResult {
        let result = self.inner.handle_normal(node, inbox);
        if node.id == 1 && self.entered.try_send(()).is_ok() {
            self.gate.recv().unwrap();
        }
        result
    }

    fn end(&mut self, normals: &mut [Option<Box<Node>>]) {
        self.inner.end(normals);
    }
}

#[test]
fn shutdown_lets_the_running_round_finish_and_counts_the_rest() {
    let probe = Probe::new(3);
    let (router, mut system) = system(&config(1, 4, 1), 3);
    let (entered_tx, entered) = crossbeam_channel::bounded(1);
    let (open, gate) = crossbeam_channel::bounded(1);
    system
        .spawn("gated", || Gated {
            inner: Counting::new(&probe),
            entered: entered_tx.clone(),
            gate: gate.clone(),
        })
        .unwrap();
    router.send(1, 0).unwrap();
    entered.recv().unwrap();
    // The only poller is stuck in FSM 1's turn; these wait in mailboxes.
    (1..=10).for_each(|m| router.send(1, m).unwrap());
    (0..5).for_each(|m| router.send(2, m).unwrap());
    let stopper = thread::spawn(move || {
        system.shutdown();
        system
    });
    while !router.is_shutdown() {
        thread::yield_now();
    }
    assert!(matches!(
        router.send(2, 99),
        Err(SendError::Disconnected(99))
    ));
    open.send(()).unwrap();
    let system = stopper.join().unwrap();
    assert_eq!(probe.total(), 1, "only the message taken before shutdown");
    assert_eq!(probe.rounds_begun.load(Ordering::SeqCst), 1);
    assert_eq!(system.dropped_messages(), 15);
}

#[test]
fn close_drops_the_fsm_and_later_sends_return_the_message() {
    let probe = Probe::new(3);
    let (router, mut system) = system(&config(1, 4, 4), 3);
    (0..3).for_each(|m| router.send(1, m).unwrap());
    let held = router.mailbox(1).unwrap();
    assert!(router.close(1));
    assert!(!router.close(1), "already closed");
    assert_eq!(router.dropped_messages(), 3);
    assert!(matches!(router.send(1, 7), Err(SendError::NotFound(7))));
    assert!(matches!(held.send(8), Err(SendError::Disconnected(8))));
    assert_eq!(router.len(), 2);
    // The id can be registered anew; the router's cached handle is not reused.
    router.register(1, Node::boxed(1));
    router.send(1, 9).unwrap();
    system.spawn("close", || Counting::new(&probe)).unwrap();
    finish(&mut system, &probe, 1);
    assert_eq!(probe.handled[1].load(Ordering::SeqCst), 1);
    assert_eq!(system.dropped_messages(), 3);
}

#[test]
fn a_stopped_fsm_is_unregistered_and_its_leftovers_counted() {
    let probe = Probe::new(2);
    let (router, mut system) = system(&config(1, 4, 100), 2);
    for msg in [1, STOP, 2, 3] {
        router.send(1, msg).unwrap();
    }
    router.send(0, 1).unwrap();
    system.spawn("stop", || Counting::new(&probe)).unwrap();
    // FSM 0's message and FSM 1's first one are handled in the same round.
    assert!(probe.wait_total(2));
    while router.mailbox(1).is_some() {
        thread::yield_now();
    }
    assert!(matches!(router.send(1, 4), Err(SendError::NotFound(4))));
    system.shutdown();
    assert_eq!(probe.handled[1].load(Ordering::SeqCst), 1);
    assert_eq!(system.dropped_messages(), 2, "the two messages after STOP");
}

#[test]
fn repeated_spawn_and_shutdown_never_hangs_or_loses_a_message() {
    for round in 0..50 {
        let probe = Probe::new(8);
        let (router, mut system) = system(&config(3, 2, 1), 8);
        system.spawn("churn", || Counting::new(&probe)).unwrap();
        let sent = (0..round % 7)
            .filter(|&m| router.send(m % 8, m).is_ok())
            .count() as u64;
        system.shutdown();
        assert_eq!(
            probe.total() + system.dropped_messages(),
            sent,
            "round {round}"
        );
    }
}
