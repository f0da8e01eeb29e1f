//! Test FSMs, a counting handler, and helpers shared by the cases.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flotilla_batch_system::{
    BatchSystem, Config, Fsm, HandleResult, Inbox, PollHandler, Router, create_system,
};
use parking_lot::{Condvar, Mutex};

/// A message: `STOP` makes a [`Node`] stop; anything else is counted.
pub type Msg = u64;
/// Tells a [`Node`] to stop; messages after it in its mailbox are dropped.
pub const STOP: Msg = u64::MAX;

/// A hang guard, not an assertion about speed: a test that waits this long
/// for its messages has a lost message or a dead poller.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// What the pollers saw, shared with the test.
pub struct Probe {
    /// Messages handled, per FSM id.
    pub handled: Vec<AtomicU64>,
    /// Turns taken (calls to `handle_normal`), per FSM id.
    pub turns: Vec<AtomicU64>,
    /// Set while an FSM is in a poller's batch: from `handle_normal` to `end`.
    pub busy: Vec<AtomicBool>,
    /// Messages handled by the control FSM.
    pub control_handled: AtomicU64,
    /// Rounds begun and ended, over all pollers.
    pub rounds_begun: AtomicU64,
    /// Rounds ended.
    pub rounds_ended: AtomicU64,
    total: Mutex<u64>,
    progress: Condvar,
}

impl Probe {
    /// A probe for FSM ids `0..fsms`.
    pub fn new(fsms: usize) -> Arc<Self> {
        let atomics = |n| (0..n).map(|_| AtomicU64::new(0)).collect();
        Arc::new(Probe {
            handled: atomics(fsms),
            turns: atomics(fsms),
            busy: (0..fsms).map(|_| AtomicBool::new(false)).collect(),
            control_handled: AtomicU64::new(0),
            rounds_begun: AtomicU64::new(0),
            rounds_ended: AtomicU64::new(0),
            total: Mutex::new(0),
            progress: Condvar::new(),
        })
    }

    /// Adds `count` handled messages (normal and control) to the total.
    pub fn add_total(&self, count: u64) {
        if count == 0 {
            return;
        }
        *self.total.lock() += count;
        self.progress.notify_all();
    }

    /// Messages handled so far, normal and control.
    pub fn total(&self) -> u64 {
        *self.total.lock()
    }

    /// Waits until `total` messages were handled; false on the hang guard.
    pub fn wait_total(&self, total: u64) -> bool {
        let deadline = Instant::now() + HANG_GUARD;
        let mut seen = self.total.lock();
        while *seen < total {
            if self.progress.wait_until(&mut seen, deadline).timed_out() {
                return false;
            }
        }
        true
    }
}

/// A normal FSM that counts its messages and stops on [`STOP`].
pub struct Node {
    pub id: u64,
    pub stopped: bool,
}

impl Node {
    pub fn boxed(id: u64) -> Box<Self> {
        Box::new(Node { id, stopped: false })
    }
}

impl Fsm for Node {
    type Message = Msg;

    fn is_stopped(&self) -> bool {
        self.stopped
    }
}

/// The control FSM: counts its messages.
pub struct Control;

impl Fsm for Control {
    type Message = Msg;

    fn is_stopped(&self) -> bool {
        false
    }
}

/// Counts every message into a [`Probe`] and checks that an FSM is in at
/// most one batch at a time.
pub struct Counting {
    pub probe: Arc<Probe>,
    round_handled: u64,
}

impl Counting {
    pub fn new(probe: &Arc<Probe>) -> Self {
        Counting {
            probe: Arc::clone(probe),
            round_handled: 0,
        }
    }
}

impl PollHandler<Node, Control> for Counting {
    fn begin(&mut self, _batch_size: usize) {
        self.probe.rounds_begun.fetch_add(1, Ordering::SeqCst);
    }

    fn handle_control(&mut self, _: &mut Control, inbox: &mut Inbox<'_, Msg>) -> HandleResult {
        let n = inbox.by_ref().count() as u64;
        self.probe.control_handled.fetch_add(n, Ordering::SeqCst);
        self.round_handled += n;
        HandleResult::KeepProcessing
    }

    fn handle_normal(&mut self, node: &mut Node, inbox: &mut Inbox<'_, Msg>) -> HandleResult {
        let id = node.id as usize;
        let was_busy = self.probe.busy[id].swap(true, Ordering::SeqCst);
        assert!(!was_busy, "fsm {id} handled by two pollers at once");
        self.probe.turns[id].fetch_add(1, Ordering::SeqCst);
        while let Some(msg) = inbox.recv() {
            if msg == STOP {
                node.stopped = true;
                break;
            }
            self.probe.handled[id].fetch_add(1, Ordering::SeqCst);
            self.round_handled += 1;
        }
        HandleResult::KeepProcessing
    }

    fn end(&mut self, normals: &mut [Option<Box<Node>>]) {
        for node in normals.iter().flatten() {
            self.probe.busy[node.id as usize].store(false, Ordering::SeqCst);
        }
        self.probe.rounds_ended.fetch_add(1, Ordering::SeqCst);
        self.probe
            .add_total(std::mem::take(&mut self.round_handled));
    }
}

/// A small config; tests override what they exercise.
pub fn config(pool_size: usize, max_batch_size: usize, messages_per_tick: usize) -> Config {
    Config {
        pool_size,
        max_batch_size,
        messages_per_tick,
        // Long enough never to cut a turn in these tests.
        reschedule_duration: Duration::from_secs(3600),
        mailbox_capacity: 1 << 16,
        control_mailbox_capacity: 1 << 16,
        router_cache_capacity: 64,
    }
}

/// A system with `fsms` nodes (ids `0..fsms`) registered and no poller yet.
pub fn system(cfg: &Config, fsms: u64) -> (Router<Node, Control>, BatchSystem<Node, Control>) {
    let (router, system) = create_system(cfg, Box::new(Control)).expect("valid config");
    router.register_all((0..fsms).map(|id| (id, Node::boxed(id))));
    (router, system)
}

/// Waits for `total` handled messages, then shuts down (re-raising a poller
/// panic first, which is the more useful failure).
pub fn finish(system: &mut BatchSystem<Node, Control>, probe: &Probe, total: u64) {
    let done = probe.wait_total(total);
    system.shutdown();
    assert!(done, "only {} of {total} messages handled", probe.total());
}
