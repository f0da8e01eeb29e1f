//! Flotilla's batch system: thousands of finite state machines (FSMs), each
//! with a bounded mailbox, run in rounds on a small pool of poller threads.
//!
//! It is generic: an FSM is anything implementing [`Fsm`], a round's work is
//! whatever a [`PollHandler`] does. This crate must never depend on raft, on
//! a storage engine, on the transport or on any other Flotilla crate; the
//! store builds its region FSMs on top of it.
//!
//! # Pieces
//!
//! - [`Router`]: FSM id (`u64`) to [`Mailbox`], plus one *control* FSM for
//!   store-wide work. `send` refuses with a [`SendError`] that hands the
//!   message back: `Full`, `Disconnected` (closed or shut down), `NotFound`.
//! - [`Mailbox`]: a queue bounded by `mailbox_capacity` and the FSM's atomic
//!   [`ScheduleState`].
//! - [`BatchSystem`]: `pool_size` poller threads sharing one *ready queue*
//!   (FIFO) of FSMs that have work.
//!
//! # Scheduling state machine
//!
//! Each FSM is owned by exactly one party at a time, and its state says which:
//!
//! ```text
//!            send (CAS, one winner)        poller takes it
//!   Idle ───────────────────────▶ Notified ───────────────▶ Running
//!    ▲                               ▲                         │
//!    │      budget spent / StopAt    └─────────────────────────┤
//!    └─────────────────────────────────────────────────────────┘
//!            mailbox empty: parked (re-notified if a message slipped in)
//!
//!   any state ── close / stop / shutdown ──▶ Dropped (terminal)
//! ```
//!
//! - `Idle`: the FSM is parked in its mailbox. A sender pushes its message,
//!   then tries `Idle -> Notified` by compare-and-swap; only the winner moves
//!   the FSM to the back of the ready queue, so a burst of sends to an idle FSM
//!   schedules it exactly once, whatever the number of senders.
//! - `Notified`: in the ready queue. Sends just enqueue.
//! - `Running`: in one poller's batch; no other poller can have it. Sends
//!   just enqueue.
//! - After the round the poller either requeues it (`Running -> Notified`) or
//!   parks it (`Running -> Idle`) and then looks at the mailbox once more: a
//!   sender that saw `Running` relied on that look. A sequentially consistent
//!   fence on both sides (push then look at the state; publish `Idle` then look
//!   at the queue) guarantees that one of the two sees the other.
//! - `Dropped`: closed. Whoever holds the FSM drops it; whoever sees `Dropped`
//!   after pushing drains the mailbox. Every accepted message is therefore
//!   either handed to its FSM or counted in [`BatchSystem::dropped_messages`].
//!
//! # A round
//!
//! A poller takes up to `max_batch_size` ready FSMs, blocking (after
//! [`PollHandler::pause`]) only when none is ready, then:
//!
//! 1. `begin(batch_size)`;
//! 2. `handle_control` if the control FSM is in the batch, then `handle_normal`
//!    for each normal FSM, each taking messages from an [`Inbox`] that yields
//!    at most `messages_per_tick` of them and stops once the turn has run for
//!    `reschedule_duration`;
//! 3. `end` once with the whole batch: where the store writes one batch and
//!    flushes the network once for every FSM of the round;
//! 4. each FSM is dropped if it stopped, put at the back of the ready queue if
//!    it still has messages or returned [`HandleResult::StopAt`], else parked.
//!
//! An FSM that spent its budget queues behind every FSM that was already
//! ready, so a flooded FSM cannot starve the others: with a single poller,
//! an FSM that became ready while `k` others were ahead of it is handled
//! within `k / max_batch_size + 1` rounds.
//!
//! # Shutdown
//!
//! [`BatchSystem::shutdown`] makes routers refuse sends, lets each poller
//! finish its round, joins the pollers, then closes every FSM; messages that
//! were still waiting are counted, never lost silently.
//!
//! # Example
//!
//! ```
//! use flotilla_batch_system::{
//!     Config, Fsm, HandleResult, Inbox, PollHandler, SendError, create_system,
//! };
//!
//! struct Counter { total: u64 }
//! impl Fsm for Counter {
//!     type Message = u64;
//!     fn is_stopped(&self) -> bool { false }
//! }
//!
//! struct Sum;
//! impl PollHandler<Counter, Counter> for Sum {
//!     fn begin(&mut self, _batch_size: usize) {}
//!     fn handle_control(&mut self, c: &mut Counter, inbox: &mut Inbox<'_, u64>) -> HandleResult {
//!         c.total += inbox.sum::<u64>();
//!         HandleResult::KeepProcessing
//!     }
//!     fn handle_normal(&mut self, n: &mut Counter, inbox: &mut Inbox<'_, u64>) -> HandleResult {
//!         n.total += inbox.sum::<u64>();
//!         HandleResult::KeepProcessing
//!     }
//!     fn end(&mut self, _batch: &mut [Option<Box<Counter>>]) {
//!         // One write batch and one network flush for the whole round.
//!     }
//! }
//!
//! let (router, mut system) =
//!     create_system(&Config::default(), Box::new(Counter { total: 0 })).unwrap();
//! router.register(1, Box::new(Counter { total: 0 }));
//! system.spawn("example", || Sum).unwrap();
//! router.send(1, 5).unwrap();
//! assert!(matches!(router.send(2, 5), Err(SendError::NotFound(5))));
//! system.shutdown();
//! assert!(matches!(router.send(1, 6), Err(SendError::Disconnected(6))));
//! ```

#![deny(missing_docs)]

mod batch;
mod config;
mod fsm;
mod mailbox;
pub mod metrics;
mod router;

pub use batch::{BatchSystem, HandleResult, PollHandler, create_system};
pub use config::{Config, ConfigError};
pub use fsm::{Fsm, ScheduleState};
pub use mailbox::{Inbox, Mailbox, SendError};
pub use router::Router;
