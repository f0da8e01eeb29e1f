//! A flooded FSM cannot starve the others: once it spends its message budget
//! it queues behind every FSM already ready. Counted in rounds, not time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

use flotilla_batch_system::{HandleResult, Inbox, PollHandler};

use crate::support::{Control, Counting, Msg, Node, Probe, config, finish, system};

const HOT: u64 = 0;
const COLD: u64 = 100;
const BATCH: usize = 4;
const BUDGET: usize = 8;
const HOT_BACKLOG: u64 = 2_000;

/// Numbers rounds globally (in `begin` order) and notes the first round each
/// FSM was handled in.
struct RoundTracker {
    inner: Counting,
    rounds: Arc<AtomicU64>,
    first_round: Arc<Vec<AtomicU64>>,
    current: u64,
}

impl PollHandler<Node, Control> for RoundTracker {
    fn begin(&mut self, batch_size: usize) {
        self.current = self.rounds.fetch_add(1, Ordering::SeqCst) + 1;
        self.inner.begin(batch_size);
    }

    fn handle_control(&mut self, c: &mut Control, inbox: &mut Inbox<'_, Msg>) -> HandleResult {
        self.inner.handle_control(c, inbox)
    }

    fn handle_normal(&mut self, node: &mut Node, inbox: &mut Inbox<'_, Msg>) -> HandleResult {
        let first = &self.first_round[node.id as usize];
        let _ = first.compare_exchange(0, self.current, Ordering::SeqCst, Ordering::SeqCst);
        self.inner.handle_normal(node, inbox)
    }

    fn end(&mut self, normals: &mut [Option<Box<Node>>]) {
        self.inner.end(normals);
    }
}

struct Setup {
    probe: Arc<Probe>,
    rounds: Arc<AtomicU64>,
    first_round: Arc<Vec<AtomicU64>>,
}

impl Setup {
    fn new() -> Self {
        Setup {
            probe: Probe::new(COLD as usize + 1),
            rounds: Arc::new(AtomicU64::new(0)),
            first_round: Arc::new((0..=COLD).map(|_| AtomicU64::new(0)).collect()),
        }
    }

    fn handler(&self) -> RoundTracker {
        RoundTracker {
            inner: Counting::new(&self.probe),
            rounds: Arc::clone(&self.rounds),
            first_round: Arc::clone(&self.first_round),
            current: 0,
        }
    }

    fn cold_done(&self) -> bool {
        (1..=COLD as usize).all(|id| self.probe.handled[id].load(Ordering::SeqCst) == 1)
    }

    /// Every cold FSM was first handled within `bound` rounds.
    fn assert_cold_within(&self, bound: u64) {
        for id in 1..=COLD as usize {
            let round = self.first_round[id].load(Ordering::SeqCst);
            assert!(
                round >= 1 && round <= bound,
                "cold fsm {id} first handled in round {round}"
            );
        }
    }
}

/// Rounds needed to take `ready` FSMs from the ready queue, `BATCH` a round.
fn rounds_for(ready: u64) -> u64 {
    ready.div_ceil(BATCH as u64)
}

#[test]
fn a_flooded_fsm_does_not_starve_cold_ones() {
    let setup = Setup::new();
    let (router, mut system) = system(&config(1, BATCH, BUDGET), COLD + 1);
    // The hot FSM is ready first, then every cold FSM behind it.
    (0..HOT_BACKLOG).for_each(|m| router.send(HOT, m).unwrap());
    (1..=COLD).for_each(|id| router.send(id, 0).unwrap());
    system.spawn("fair", || setup.handler()).unwrap();
    finish(&mut system, &setup.probe, HOT_BACKLOG + COLD);
    // One poller: the hot FSM's second turn comes only after every cold FSM.
    setup.assert_cold_within(rounds_for(COLD + 1));
    let hot_turns = setup.probe.turns[HOT as usize].load(Ordering::SeqCst);
    assert_eq!(
        hot_turns,
        HOT_BACKLOG / BUDGET as u64,
        "one turn per budget's worth"
    );
}

#[test]
fn a_flooded_fsm_still_being_flooded_does_not_starve_cold_ones() {
    const POOL: usize = 2;
    const FLOOD_MAX: u64 = 20_000;
    let setup = Setup::new();
    let (router, mut system) = system(&config(POOL, BATCH, BUDGET), COLD + 1);
    (0..HOT_BACKLOG).for_each(|m| router.send(HOT, m).unwrap());
    (1..=COLD).for_each(|id| router.send(id, 0).unwrap());
    system.spawn("fair-flood", || setup.handler()).unwrap();
    let flooded = thread::scope(|s| {
        let (router, setup) = (router.clone(), &setup);
        let flooder = s.spawn(move || {
            let mut sent = 0;
            while sent < FLOOD_MAX && !setup.cold_done() {
                router.force_send(HOT, sent).unwrap();
                sent += 1;
            }
            sent
        });
        flooder.join().unwrap()
    });
    finish(&mut system, &setup.probe, HOT_BACKLOG + flooded + COLD);
    // Two pollers may begin their rounds out of fetch order: one round slack
    // per extra poller.
    setup.assert_cold_within(rounds_for(COLD + 1) + POOL as u64 - 1);
}
