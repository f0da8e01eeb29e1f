//! Throughput of the batch system: messages through the router to FSMs, and
//! FSM turns (rounds) with 10,000 FSMs. Run:
//! `cargo bench -p flotilla-batch-system --bench batch`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flotilla_batch_system::{
    BatchSystem, Config, Fsm, HandleResult, Inbox, PollHandler, Router, SendError, create_system,
};
use parking_lot::{Condvar, Mutex};

struct Node;

impl Fsm for Node {
    type Message = u64;

    fn is_stopped(&self) -> bool {
        false
    }
}

struct Control;

impl Fsm for Control {
    type Message = u64;

    fn is_stopped(&self) -> bool {
        false
    }
}

/// Messages handled and rounds run, with a way to wait for a total.
#[derive(Default)]
struct Progress {
    handled: AtomicU64,
    rounds: AtomicU64,
    target: AtomicU64,
    lock: Mutex<()>,
    reached: Condvar,
}

impl Progress {
    fn add(&self, handled: u64) {
        self.rounds.fetch_add(1, Ordering::Relaxed);
        let now = self.handled.fetch_add(handled, Ordering::AcqRel) + handled;
        if now >= self.target.load(Ordering::Acquire) {
            let _guard = self.lock.lock();
            self.reached.notify_all();
        }
    }

    /// Raises the target by `more` and returns it.
    fn expect(&self, more: u64) -> u64 {
        self.target.fetch_add(more, Ordering::AcqRel) + more
    }

    fn wait(&self, target: u64) {
        let mut guard = self.lock.lock();
        while self.handled.load(Ordering::Acquire) < target {
            self.reached.wait(&mut guard);
        }
    }
}

struct Counter {
    progress: Arc<Progress>,
    round: u64,
}

impl PollHandler<Node, Control> for Counter {
    fn begin(&mut self, _batch_size: usize) {}

    fn handle_control(&mut self, _: &mut Control, inbox: &mut Inbox<'_, u64>) -> HandleResult {
        self.round += inbox.count() as u64;
        HandleResult::KeepProcessing
    }

    fn handle_normal(&mut self, _: &mut Node, inbox: &mut Inbox<'_, u64>) -> HandleResult {
        self.round += inbox.count() as u64;
        HandleResult::KeepProcessing
    }

    fn end(&mut self, _normals: &mut [Option<Box<Node>>]) {
        self.progress.add(std::mem::take(&mut self.round));
    }
}

type System = (
    Router<Node, Control>,
    BatchSystem<Node, Control>,
    Arc<Progress>,
);

fn start(fsms: u64) -> System {
    let (router, mut system) = create_system(&Config::default(), Box::new(Control)).unwrap();
    router.register_all((0..fsms).map(|id| (id, Box::new(Node))));
    let progress = Arc::new(Progress::default());
    system
        .spawn("bench", || Counter {
            progress: Arc::clone(&progress),
            round: 0,
        })
        .unwrap();
    (router, system, progress)
}

fn messages_through_router(c: &mut Criterion) {
    const FSMS: u64 = 1_000;
    const MESSAGES: u64 = 100_000;
    let (router, mut system, progress) = start(FSMS);
    let mut group = c.benchmark_group("router");
    group.throughput(Throughput::Elements(MESSAGES));
    group.bench_function("send_1k_fsms", |b| {
        b.iter(|| {
            let target = progress.expect(MESSAGES);
            for i in 0..MESSAGES {
                let mut msg = i;
                while let Err(SendError::Full(back)) = router.send(i % FSMS, msg) {
                    msg = back;
                    thread::yield_now();
                }
            }
            progress.wait(target);
        })
    });
    group.finish();
    system.shutdown();
}

fn rounds_with_10k_fsms(c: &mut Criterion) {
    const FSMS: u64 = 10_000;
    let (router, mut system, progress) = start(FSMS);
    let mut group = c.benchmark_group("rounds");
    // One element per FSM turn: every FSM is ready once per iteration.
    group.throughput(Throughput::Elements(FSMS));
    group.bench_function("broadcast_10k_fsms", |b| {
        b.iter(|| {
            let target = progress.expect(FSMS);
            assert_eq!(router.broadcast_normal(|| 1), FSMS as usize);
            progress.wait(target);
        })
    });
    group.finish();
    system.shutdown();
    report_rounds(&progress, FSMS);
}

/// Criterion counts FSM turns; this converts them to poller rounds.
#[allow(clippy::print_stderr)]
fn report_rounds(progress: &Progress, fsms: u64) {
    let rounds = progress.rounds.load(Ordering::Relaxed).max(1);
    let turns = progress.handled.load(Ordering::Relaxed);
    eprintln!(
        "rounds/broadcast_10k_fsms: {:.1} FSMs per round ({} rounds for {} broadcasts)",
        turns as f64 / rounds as f64,
        rounds,
        turns / fsms
    );
}

criterion_group!(benches, messages_through_router, rounds_with_10k_fsms);
criterion_main!(benches);
