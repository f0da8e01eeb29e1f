//! Every accepted message is handled exactly once, by one poller at a time.

use std::sync::atomic::Ordering;
use std::thread;

use crate::support::{Counting, Probe, config, finish, system};

#[test]
fn many_senders_many_fsms_every_message_handled_exactly_once() {
    const FSMS: u64 = 1_000;
    const SENDERS: u64 = 4;
    const PER_FSM_PER_SENDER: u64 = 5;
    let probe = Probe::new(FSMS as usize);
    // A small budget and batch so FSMs are rescheduled and batches churn.
    let (router, mut system) = system(&config(2, 32, 3), FSMS);
    system.spawn("delivery", || Counting::new(&probe)).unwrap();
    thread::scope(|s| {
        for sender in 0..SENDERS {
            let router = router.clone();
            s.spawn(move || {
                for round in 0..PER_FSM_PER_SENDER {
                    for id in 0..FSMS {
                        // Half through the router, half through a held mailbox.
                        if (id + round + sender) % 2 == 0 {
                            router.send(id, round).unwrap();
                        } else {
                            router.mailbox(id).unwrap().send(round).unwrap();
                        }
                    }
                }
            });
        }
    });
    finish(&mut system, &probe, FSMS * SENDERS * PER_FSM_PER_SENDER);
    for id in 0..FSMS as usize {
        let handled = probe.handled[id].load(Ordering::SeqCst);
        assert_eq!(handled, SENDERS * PER_FSM_PER_SENDER, "fsm {id}");
    }
    assert_eq!(system.dropped_messages(), 0);
}

#[test]
fn a_burst_to_an_idle_fsm_schedules_it_exactly_once() {
    const FSMS: u64 = 100;
    const BURST_PER_SENDER: u64 = 10;
    let probe = Probe::new(FSMS as usize);
    let (router, mut system) = system(&config(2, 8, 1_000), FSMS);
    // The burst lands while no poller runs: each FSM must be queued once.
    thread::scope(|s| {
        for _ in 0..4 {
            let router = router.clone();
            s.spawn(move || {
                for id in 0..FSMS {
                    (0..BURST_PER_SENDER).for_each(|m| router.send(id, m).unwrap());
                }
            });
        }
    });
    system.spawn("burst", || Counting::new(&probe)).unwrap();
    finish(&mut system, &probe, FSMS * 4 * BURST_PER_SENDER);
    for id in 0..FSMS as usize {
        assert_eq!(probe.turns[id].load(Ordering::SeqCst), 1, "fsm {id} turns");
        assert_eq!(
            probe.handled[id].load(Ordering::SeqCst),
            4 * BURST_PER_SENDER
        );
    }
}
