//! The [`Fsm`] trait and the scheduling state every FSM's mailbox carries.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};

/// A finite state machine driven by the batch system.
///
/// An FSM owns its state and is handed, one turn at a time, to exactly one
/// poller thread together with the messages waiting in its mailbox. The batch
/// system never looks inside an FSM: it only moves it between its mailbox, the
/// ready queue and a poller's batch.
pub trait Fsm: Send + 'static {
    /// What the FSM's mailbox carries.
    type Message: Send + 'static;

    /// Whether the FSM has finished for good. Checked after each round: a
    /// stopped FSM is unregistered, dropped, and any messages still in its
    /// mailbox are counted as dropped.
    fn is_stopped(&self) -> bool;
}

/// Where an FSM is in its scheduling life; see the crate docs for the
/// transitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleState {
    /// Parked in its mailbox: no message is waiting, or one was just sent and
    /// its sender is about to schedule the FSM.
    Idle,
    /// In the ready queue (or being put there by the one caller that moved it
    /// out of `Idle`); a poller will pick it up.
    Notified,
    /// In a poller's batch, being handled.
    Running,
    /// Closed: its mailbox refuses messages and the FSM has been (or is about
    /// to be) dropped by whoever holds it. Terminal.
    Dropped,
}

const IDLE: u8 = 0;
const NOTIFIED: u8 = 1;
const RUNNING: u8 = 2;
const DROPPED: u8 = 3;

fn decode(raw: u8) -> ScheduleState {
    match raw {
        IDLE => ScheduleState::Idle,
        NOTIFIED => ScheduleState::Notified,
        RUNNING => ScheduleState::Running,
        DROPPED => ScheduleState::Dropped,
        _ => unreachable!("corrupt schedule state {raw}"),
    }
}

/// The atomic [`ScheduleState`] of one FSM.
///
/// Invariant: exactly one party owns the FSM at any time, and the state says
/// which: the mailbox's slot (`Idle`), the ready queue or the one notifier on
/// its way there (`Notified`), a poller (`Running`). Only the owner moves the
/// state, except that anyone may move `Idle` to `Notified` (winning ownership,
/// by compare-and-swap, so an idle FSM is scheduled exactly once) and anyone
/// may close (`Dropped`, after which the owner drops the FSM).
pub(crate) struct FsmState {
    raw: AtomicU8,
}

impl FsmState {
    /// A freshly registered FSM: parked in its mailbox.
    pub(crate) fn new_idle() -> Self {
        FsmState {
            raw: AtomicU8::new(IDLE),
        }
    }

    pub(crate) fn get(&self) -> ScheduleState {
        decode(self.raw.load(Ordering::Acquire))
    }

    /// `Idle -> Notified`. `Ok` means this caller won the FSM and must take it
    /// out of the slot and schedule it; `Err` carries the state that made the
    /// move unnecessary (`Notified`, `Running`) or impossible (`Dropped`).
    pub(crate) fn notify(&self) -> Result<(), ScheduleState> {
        self.raw
            .compare_exchange(IDLE, NOTIFIED, Ordering::AcqRel, Ordering::Acquire)
            .map(drop)
            .map_err(decode)
    }

    /// `Notified -> Running`: a poller took the FSM out of the ready queue.
    /// Returns false if the FSM was closed meanwhile (the poller drops it).
    pub(crate) fn start(&self, id: u64) -> bool {
        self.owner_moves(id, NOTIFIED, RUNNING, "taken from the ready queue")
    }

    /// `Running -> Notified`: the poller puts the FSM back in the ready queue.
    /// Returns false if the FSM was closed meanwhile.
    pub(crate) fn requeue(&self, id: u64) -> bool {
        self.owner_moves(id, RUNNING, NOTIFIED, "rescheduled")
    }

    /// `Running -> Idle`: the poller has parked the FSM back in its slot.
    /// Returns false if the FSM was closed meanwhile.
    pub(crate) fn release(&self, id: u64) -> bool {
        self.owner_moves(id, RUNNING, IDLE, "released")
    }

    /// Any state `-> Dropped`; returns the state it left.
    pub(crate) fn close(&self) -> ScheduleState {
        decode(self.raw.swap(DROPPED, Ordering::AcqRel))
    }

    fn owner_moves(&self, id: u64, from: u8, to: u8, what: &str) -> bool {
        match self
            .raw
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(DROPPED) => false,
            Err(other) => panic!(
                "fsm {id} {what} in state {:?}, expected {:?}: two owners",
                decode(other),
                decode(from)
            ),
        }
    }
}

impl fmt::Debug for FsmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("FsmState").field(&self.get()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_walks_the_cycle() {
        let s = FsmState::new_idle();
        assert_eq!(s.notify(), Ok(()));
        assert_eq!(s.notify(), Err(ScheduleState::Notified));
        assert!(s.start(1));
        assert_eq!(s.notify(), Err(ScheduleState::Running));
        assert!(s.requeue(1));
        assert!(s.start(1));
        assert!(s.release(1));
        assert_eq!(s.get(), ScheduleState::Idle);
    }

    #[test]
    fn closing_wins_over_every_owner_move() {
        let s = FsmState::new_idle();
        assert_eq!(s.notify(), Ok(()));
        assert_eq!(s.close(), ScheduleState::Notified);
        assert!(!s.start(1));
        assert!(!s.requeue(1));
        assert!(!s.release(1));
        assert_eq!(s.notify(), Err(ScheduleState::Dropped));
        assert_eq!(s.close(), ScheduleState::Dropped);
    }

    #[test]
    #[should_panic(expected = "two owners")]
    fn a_second_owner_is_a_bug() {
        let s = FsmState::new_idle();
        s.release(7);
    }
}
