//! Seeded random workloads (the testkit convention: `FLOTILLA_SEEDS=N`,
//! `FLOTILLA_SEED=S`). The seed fixes the config, every sender's operations
//! and every handler's choices; the threads' interleaving is left to the OS,
//! and the invariants must hold under any of them:
//! - every accepted message is either handled once or counted as dropped;
//! - a message reaches the FSM it was sent to, in each sender's order;
//! - no message is handled twice.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use flotilla_batch_system::{
    Config, Fsm, HandleResult, Inbox, PollHandler, Router, SendError, create_system,
};
use parking_lot::Mutex;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SENDERS: usize = 2;
const OPS_PER_SENDER: usize = 300;
/// `to` of broadcast messages, whose target the sender cannot know.
const ANY: u64 = u64::MAX;
const CONTROL: u64 = u64::MAX - 1;
/// A hang guard, not an assertion about speed.
const HANG_GUARD: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Msg {
    Data { to: u64, sender: usize, seq: u64 },
    Stop,
}

struct Node {
    id: u64,
    stopped: bool,
    last_seq: [Option<u64>; SENDERS],
}

impl Fsm for Node {
    type Message = Msg;

    fn is_stopped(&self) -> bool {
        self.stopped
    }
}

struct Control;

impl Fsm for Control {
    type Message = Msg;

    fn is_stopped(&self) -> bool {
        false
    }
}

#[derive(Default)]
struct Ledger {
    handled: AtomicU64,
    seen: Mutex<HashSet<(usize, u64)>>,
}

impl Ledger {
    fn record(&self, msg: Msg, expected_to: u64, last_seq: Option<&mut [Option<u64>; SENDERS]>) {
        self.handled.fetch_add(1, Ordering::SeqCst);
        let Msg::Data { to, sender, seq } = msg else {
            return;
        };
        assert!(
            to == expected_to || to == ANY,
            "message for {to} reached {expected_to}"
        );
        assert!(
            self.seen.lock().insert((sender, seq)),
            "({sender}, {seq}) handled twice"
        );
        if let Some(last) = last_seq {
            let previous = last[sender].replace(seq);
            assert!(
                previous < Some(seq),
                "sender {sender} out of order at fsm {expected_to}"
            );
        }
    }
}

struct Handler {
    rng: ChaCha8Rng,
    ledger: Arc<Ledger>,
    budget: usize,
}

impl Handler {
    fn outcome(&mut self, taken: usize) -> HandleResult {
        if self.rng.random_range(0..8) == 0 {
            thread::yield_now();
        }
        if self.rng.random_range(0..8) == 0 {
            HandleResult::StopAt { progress: taken }
        } else {
            HandleResult::KeepProcessing
        }
    }
}

impl PollHandler<Node, Control> for Handler {
    fn begin(&mut self, _batch_size: usize) {}

    fn handle_control(&mut self, _: &mut Control, inbox: &mut Inbox<'_, Msg>) -> HandleResult {
        let ledger = Arc::clone(&self.ledger);
        inbox
            .by_ref()
            .for_each(|msg| ledger.record(msg, CONTROL, None));
        self.outcome(inbox.taken())
    }

    fn handle_normal(&mut self, node: &mut Node, inbox: &mut Inbox<'_, Msg>) -> HandleResult {
        // Sometimes take fewer messages than the budget allows.
        let want = self.rng.random_range(0..=self.budget);
        while inbox.taken() < want {
            let Some(msg) = inbox.recv() else { break };
            self.ledger.record(msg, node.id, Some(&mut node.last_seq));
            if msg == Msg::Stop {
                node.stopped = true;
                break;
            }
        }
        self.outcome(inbox.taken())
    }

    fn end(&mut self, _normals: &mut [Option<Box<Node>>]) {}
}

fn random_config(rng: &mut ChaCha8Rng) -> Config {
    Config {
        pool_size: rng.random_range(1..=2),
        max_batch_size: rng.random_range(1..=6),
        messages_per_tick: rng.random_range(1..=5),
        mailbox_capacity: rng.random_range(1..=8),
        control_mailbox_capacity: rng.random_range(1..=8),
        router_cache_capacity: rng.random_range(1..=4),
        ..Config::default()
    }
}

fn node(id: u64) -> Box<Node> {
    Box::new(Node {
        id,
        stopped: false,
        last_seq: [None; SENDERS],
    })
}

/// One sender's operations; returns how many messages were accepted.
fn run_sender(router: &Router<Node, Control>, sender: usize, ids: u64, seed: u64) -> u64 {
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(31).wrapping_add(sender as u64));
    let mut seq = 0;
    let mut accepted = 0;
    let mut next = |to| {
        seq += 1;
        Msg::Data { to, sender, seq }
    };
    for _ in 0..OPS_PER_SENDER {
        if rng.random_range(0..4) == 0 {
            thread::yield_now();
        }
        // Ids past `ids` are never registered.
        let id = rng.random_range(0..ids + 2);
        let (msg, result) = match rng.random_range(0..100) {
            0..45 => {
                let msg = next(id);
                (msg, router.send(id, msg))
            }
            45..60 => {
                let msg = next(id);
                (msg, router.force_send(id, msg))
            }
            60..70 => {
                let msg = next(CONTROL);
                (msg, router.send_control(msg))
            }
            70..78 => {
                let msg = next(id);
                let sent = router.mailbox(id).map(|m| m.send(msg));
                (msg, sent.unwrap_or(Err(SendError::NotFound(msg))))
            }
            78..82 => (Msg::Stop, router.send(id, Msg::Stop)),
            82..87 => {
                accepted += router.broadcast_normal(|| next(ANY)) as u64;
                continue;
            }
            87..93 => {
                router.close(id);
                continue;
            }
            _ => {
                router.register(id % ids, node(id % ids));
                continue;
            }
        };
        match result {
            Ok(()) => accepted += 1,
            Err(e) => assert_eq!(e.into_inner(), msg, "a refused send returns its message"),
        }
    }
    accepted
}

fn run_seed(seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let cfg = random_config(&mut rng);
    let ids = rng.random_range(3..=20);
    let ledger = Arc::new(Ledger::default());
    let (router, mut system) = create_system(&cfg, Box::new(Control)).unwrap();
    router.register_all((0..ids).map(|id| (id, node(id))));
    let pollers = AtomicUsize::new(0);
    system
        .spawn("random", || Handler {
            rng: ChaCha8Rng::seed_from_u64(seed ^ (pollers.fetch_add(1, Ordering::SeqCst) as u64)),
            ledger: Arc::clone(&ledger),
            budget: cfg.messages_per_tick,
        })
        .unwrap();
    let accepted: u64 = thread::scope(|s| {
        let senders: Vec<_> = (0..SENDERS)
            .map(|sender| {
                let router = router.clone();
                s.spawn(move || run_sender(&router, sender, ids, seed))
            })
            .collect();
        senders.into_iter().map(|h| h.join().unwrap()).sum()
    });
    if rng.random_range(0..2) == 0 {
        // Let the pollers catch up, so that shutdown finds idle FSMs.
        let deadline = Instant::now() + HANG_GUARD;
        while ledger.handled.load(Ordering::SeqCst) + system.dropped_messages() < accepted {
            assert!(Instant::now() < deadline, "pollers stalled, {cfg:?}");
            thread::yield_now();
        }
    }
    system.shutdown();
    let handled = ledger.handled.load(Ordering::SeqCst);
    let dropped = system.dropped_messages();
    assert_eq!(
        handled + dropped,
        accepted,
        "handled {handled} + dropped {dropped}, {cfg:?}"
    );
}

#[test]
fn random_workloads_lose_and_duplicate_nothing() {
    flotilla_testkit::for_each_seed("random_workloads_lose_and_duplicate_nothing", 20, run_seed);
}
