//! A deterministic, single-threaded raft cluster driven by one seeded RNG.
//!
//! A run is a sequence of steps. In each step:
//! - the clock may tick: every up peer ticks, except now and then one
//!   (clock skew);
//! - the messages due are delivered (see [`Network`]: per-seed loss,
//!   duplication and delay, hence reordering; partitions); the sender of a
//!   snapshot learns how its transfer ended, and a sender cut off by a
//!   partition sometimes hears that the peer is unreachable;
//! - a client may propose a fresh unique payload to a random up peer;
//! - each up peer, in random order, runs parts of its host loop at random
//!   (see [`crate::node`] for the durability model): take a ready, write a
//!   prefix of its pending writes (releasing their `persisted_messages` at
//!   once, or later), acknowledge a prefix of the durable ones with
//!   `on_persist_ready`, apply a prefix of its committed entries, report
//!   the applied index, flush its state machine, snapshot and compact its
//!   log;
//! - in the chaos phase a fault may strike: a crash (of a leader half of
//!   the time), restarts, a partition (one peer, often a leader, or a
//!   random split) or its healing, a leadership transfer.
//!
//! The settings ([`Knobs`]) are drawn per seed. After the chaos phase,
//! [`Sim::heal`] restores a well-behaved cluster and
//! [`Sim::await_liveness`] requires progress within a bound.
//!
//! The safety properties of [`crate::checker`] are checked as events happen
//! (elections, commits, applies) and over all logs and state machines every
//! [`CHECK_EVERY`] steps; any violation panics with the seed, the step, the
//! peers involved and the state of every peer. Set `FLOTILLA_SIM_TRACE=1`
//! to print every event.

use flotilla_raft::raftpb::{Message, MessageType};
use flotilla_raft::{Config, Error, NO_LIMIT, SnapshotStatus, StateRole};
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::checker::{Checker, check_log_matching, check_prefixes};
use crate::net::{Fate, Network};
use crate::node::{Applied, SimNode};

/// Steps between two full checks of every log and state machine.
pub const CHECK_EVERY: u64 = 16;

/// The election timeout of every peer, in ticks.
pub const ELECTION_TICKS: usize = 10;

/// Per-seed settings of a run.
#[derive(Debug, Clone)]
pub struct Knobs {
    /// Number of peers (ids `1..=nodes`).
    pub nodes: usize,
    /// Pre-vote, per peer.
    pub pre_vote: Vec<bool>,
    /// Check-quorum, per peer.
    pub check_quorum: Vec<bool>,
    /// Whether a peer that leads sends every follower an append when its
    /// commit index moves, per peer (off: the commit rides on the next
    /// append or heartbeat).
    pub broadcast_commit: Vec<bool>,
    /// Heartbeat interval in ticks.
    pub heartbeat_ticks: usize,
    /// Cap on one append's entry bytes.
    pub msg_bytes_max: u64,
    /// Cap on appends in flight per follower.
    pub inflight_msgs_max: usize,
    /// Cap on committed bytes handed out per ready.
    pub committed_bytes_per_ready_max: u64,
    /// Cap on a leader's uncommitted payload bytes.
    pub uncommitted_bytes_max: u64,
    /// Chance that a step carries a clock tick.
    pub p_tick: f64,
    /// Chance that a message is lost.
    pub drop: f64,
    /// Chance that a message is duplicated.
    pub dup: f64,
    /// Largest message delay, in steps.
    pub max_delay: u64,
    /// Per peer and step: chance to take a ready.
    pub p_ready: f64,
    /// Per step, for each peer: chance to write pending writes (a few
    /// seeds give some peers a slow disk).
    pub p_persist: Vec<f64>,
    /// Per step, for each peer: chance to acknowledge durable writes (a
    /// few seeds give some peers a slow notification path).
    pub p_ack: Vec<f64>,
    /// Per peer and step: chance to apply committed entries.
    pub p_apply: f64,
    /// Per step: chance of a client proposal.
    pub p_propose: f64,
    /// Per step: chance that an up peer crashes.
    pub p_crash: f64,
    /// Per down peer and step: chance that it restarts.
    pub p_restart: f64,
    /// Per step: chance that a partition starts (when none is in place).
    pub p_partition: f64,
    /// Per step: chance that the partition heals.
    pub p_heal: f64,
    /// Per peer and step: chance to snapshot and compact the log (or, one
    /// time in five, to make the next snapshot request fail once).
    pub p_compact: f64,
    /// Per step: chance that a leader is asked to hand over to a random peer.
    pub p_transfer: f64,
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, xs: &[T]) -> T {
    xs[rng.random_range(0..xs.len())]
}

impl Knobs {
    /// Settings drawn from `rng`: 3 to 7 peers, check-quorum on or off,
    /// pre-vote on, off, or mixed per peer (a rolling upgrade), and fault
    /// rates from none to heavy; one seed in five is a churn run instead
    /// (see [`Knobs::churn`]).
    ///
    /// Check-quorum is never mixed: a peer with neither option that raised
    /// its term ignores the leader's lower-term messages, while peers with
    /// check-quorum ignore its votes under their leader lease, so it never
    /// rejoins. That is the rule of the protocol (as in etcd), not a bug.
    pub fn random(rng: &mut ChaCha8Rng) -> Self {
        let knobs = Self::mixed(rng);
        if rng.random_bool(0.2) {
            knobs.churn(rng)
        } else {
            knobs
        }
    }

    fn mixed(rng: &mut ChaCha8Rng) -> Self {
        let nodes = rng.random_range(3..=7);
        let pre_vote = match rng.random_range(0..3) {
            0 => vec![false; nodes],
            1 => vec![true; nodes],
            _ => (0..nodes).map(|_| rng.random_bool(0.5)).collect(),
        };
        let check_quorum = vec![rng.random_bool(0.5); nodes];
        Knobs {
            nodes,
            pre_vote,
            check_quorum,
            heartbeat_ticks: rng.random_range(1..=3),
            msg_bytes_max: pick(rng, &[1 << 20, 100, 40]),
            inflight_msgs_max: pick(rng, &[256, 4, 2]),
            committed_bytes_per_ready_max: pick(rng, &[16 << 20, 64]),
            uncommitted_bytes_max: pick(rng, &[NO_LIMIT, 256]),
            p_tick: pick(rng, &[0.25, 0.4, 0.6, 0.9]),
            drop: pick(rng, &[0.0, 0.02, 0.1, 0.25]),
            dup: pick(rng, &[0.0, 0.05]),
            max_delay: rng.random_range(1..=4),
            p_ready: rng.random_range(0.5..1.0),
            p_persist: (0..nodes)
                .map(|_| match rng.random_bool(0.3) {
                    true => rng.random_range(0.01..0.1),
                    false => rng.random_range(0.3..0.9),
                })
                .collect(),
            p_ack: (0..nodes)
                .map(|_| match rng.random_bool(0.3) {
                    true => rng.random_range(0.01..0.1),
                    false => rng.random_range(0.5..1.0),
                })
                .collect(),
            p_apply: rng.random_range(0.3..1.0),
            p_propose: rng.random_range(0.05..0.4),
            p_crash: pick(rng, &[0.0, 0.005, 0.02]),
            p_restart: rng.random_range(0.03..0.2),
            p_partition: pick(rng, &[0.0, 0.01, 0.03, 0.1]),
            p_heal: rng.random_range(0.02..0.2),
            p_compact: pick(rng, &[0.0, 0.005, 0.02]),
            p_transfer: pick(rng, &[0.0, 0.0, 0.005, 0.02]),
            broadcast_commit: (0..nodes).map(|_| rng.random_bool(0.5)).collect(),
        }
    }

    /// Turns these settings into a storm of leader changes over peers whose
    /// writes are fast but whose acknowledgements to raft are often slow:
    /// 5 to 7 peers without pre-vote or check-quorum, a fast clock, and
    /// frequent transfers, crashes and partitions. Uncommitted tails are
    /// then overwritten and brought back while older writes of them are
    /// still unacknowledged.
    pub fn churn(mut self, rng: &mut ChaCha8Rng) -> Self {
        let nodes = rng.random_range(5..=7);
        self.nodes = nodes;
        self.pre_vote = vec![false; nodes];
        self.check_quorum = vec![false; nodes];
        self.p_tick = 0.9;
        self.p_persist = (0..nodes).map(|_| rng.random_range(0.5..1.0)).collect();
        self.p_ack = (0..nodes)
            .map(|_| match rng.random_bool(0.8) {
                true => rng.random_range(0.01..0.05),
                false => rng.random_range(0.5..1.0),
            })
            .collect();
        self.p_propose = 0.3;
        self.p_crash = 0.02;
        self.p_restart = 0.1;
        self.p_partition = 0.1;
        self.p_heal = 0.2;
        self.p_transfer = 0.05;
        self.broadcast_commit = (0..nodes).map(|_| rng.random_bool(0.5)).collect();
        self
    }

    /// Fault-free settings for scripted tests: no loss, one-step delay,
    /// pre-vote and check-quorum on.
    pub fn calm(nodes: usize) -> Self {
        Knobs {
            nodes,
            pre_vote: vec![true; nodes],
            check_quorum: vec![true; nodes],
            heartbeat_ticks: 1,
            msg_bytes_max: 1 << 20,
            inflight_msgs_max: 256,
            committed_bytes_per_ready_max: 16 << 20,
            uncommitted_bytes_max: NO_LIMIT,
            p_tick: 0.5,
            drop: 0.0,
            dup: 0.0,
            max_delay: 1,
            p_ready: 1.0,
            p_persist: vec![1.0; nodes],
            p_ack: vec![1.0; nodes],
            p_apply: 1.0,
            p_propose: 0.0,
            p_crash: 0.0,
            p_restart: 0.0,
            p_partition: 0.0,
            p_heal: 0.0,
            p_compact: 0.0,
            p_transfer: 0.0,
            broadcast_commit: vec![true; nodes],
        }
    }

    fn config(&self, id: u64) -> Config {
        let i = (id - 1) as usize;
        Config {
            election_ticks: ELECTION_TICKS,
            heartbeat_ticks: self.heartbeat_ticks,
            msg_bytes_max: self.msg_bytes_max,
            inflight_msgs_max: self.inflight_msgs_max,
            committed_bytes_per_ready_max: self.committed_bytes_per_ready_max,
            uncommitted_bytes_max: self.uncommitted_bytes_max,
            pre_vote: self.pre_vote[i],
            check_quorum: self.check_quorum[i],
            broadcast_commit: self.broadcast_commit[i],
            ..Config::new(id)
        }
    }
}

/// What happened in a run, for coverage.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Steps run.
    pub steps: u64,
    /// Clock ticks.
    pub ticks: u64,
    /// Crashes.
    pub crashes: u64,
    /// Partitions started.
    pub partitions: u64,
    /// Snapshots taken by compaction.
    pub compactions: u64,
    /// Snapshots received from a leader and installed.
    pub snapshots_installed: u64,
    /// Leaders elected.
    pub leaders: u64,
    /// Distinct indexes applied.
    pub applied: u64,
    /// Ticks the liveness check took, if it ran.
    pub liveness_ticks: u64,
}

impl Stats {
    /// Adds another run's counters to these (the liveness ticks keep the
    /// maximum).
    pub fn absorb(&mut self, s: &Stats) {
        self.steps += s.steps;
        self.ticks += s.ticks;
        self.crashes += s.crashes;
        self.partitions += s.partitions;
        self.compactions += s.compactions;
        self.snapshots_installed += s.snapshots_installed;
        self.leaders += s.leaders;
        self.applied += s.applied;
        self.liveness_ticks = self.liveness_ticks.max(s.liveness_ticks);
    }
}

/// The simulated cluster.
#[derive(Debug)]
pub struct Sim {
    /// The seed of this run.
    pub seed: u64,
    /// Steps run so far.
    pub step: u64,
    /// Clock ticks so far.
    pub ticks: u64,
    /// The one source of randomness.
    pub rng: ChaCha8Rng,
    /// The run's settings.
    pub knobs: Knobs,
    /// The peers; peer `id` is `nodes[id - 1]`.
    pub nodes: Vec<SimNode>,
    /// The network.
    pub net: Network,
    /// The history-wide safety checker.
    pub checker: Checker,
    /// Coverage counters.
    pub stats: Stats,
    next_payload: u64,
    trace: bool,
}

impl Sim {
    /// A run whose settings are drawn from `seed`.
    pub fn random(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let knobs = Knobs::random(&mut rng);
        Self::with_rng(seed, knobs, rng)
    }

    /// A run with the given settings.
    pub fn new(seed: u64, knobs: Knobs) -> Self {
        Self::with_rng(seed, knobs, ChaCha8Rng::seed_from_u64(seed))
    }

    fn with_rng(seed: u64, knobs: Knobs, mut rng: ChaCha8Rng) -> Self {
        let ids: Vec<u64> = (1..=knobs.nodes as u64).collect();
        let nodes = ids
            .iter()
            .map(|&id| SimNode::new(knobs.config(id), &ids, rng.random()))
            .collect();
        let mut net = Network::new(knobs.nodes, knobs.max_delay);
        net.drop = knobs.drop;
        net.dup = knobs.dup;
        let trace = std::env::var_os("FLOTILLA_SIM_TRACE").is_some();
        let sim = Sim {
            seed,
            step: 0,
            ticks: 0,
            rng,
            knobs,
            nodes,
            net,
            checker: Checker::new(),
            stats: Stats::default(),
            next_payload: 1,
            trace,
        };
        sim.log(|| format!("knobs {:?}", sim.knobs));
        sim
    }

    /// Every peer's id.
    pub fn ids(&self) -> Vec<u64> {
        (1..=self.nodes.len() as u64).collect()
    }

    /// Peer `id`.
    pub fn node(&self, id: u64) -> &SimNode {
        &self.nodes[(id - 1) as usize]
    }

    /// Peer `id`, mutably.
    pub fn node_mut(&mut self, id: u64) -> &mut SimNode {
        &mut self.nodes[(id - 1) as usize]
    }

    /// Panics with the seed, step and `what`.
    pub fn fail(&self, what: &str) -> ! {
        panic!(
            "raft_sim seed {} step {} (tick {}): {what}\n{}",
            self.seed,
            self.step,
            self.ticks,
            self.describe()
        )
    }

    /// Unwraps a check's result, failing the run on a violation.
    pub fn ok<T>(&self, r: Result<T, String>) -> T {
        r.unwrap_or_else(|e| self.fail(&e))
    }

    /// One line per peer: role, term, leader, log and apply positions.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for n in &self.nodes {
            let line = match n.raw() {
                None => format!("  node {}: down, applied {}\n", n.id, n.sm.len()),
                Some(raw) => {
                    let r = &raw.raft;
                    let log = &r.raft_log;
                    format!(
                        "  node {}: {} term {} lead {} commit {} applying {} applied {} \
                         persisted {} last {} unstable snapshot {:?} sm {} to apply {} \
                         unwritten {} unacked {}\n",
                        n.id,
                        r.state,
                        r.term,
                        r.lead,
                        log.committed,
                        log.applying,
                        log.applied,
                        log.persisted_index(),
                        log.last_index(),
                        log.unstable.snapshot.as_ref().map(|s| s.index()),
                        n.sm.len(),
                        n.host.as_ref().map_or(0, |h| h.to_apply.len()),
                        n.unwritten(),
                        n.unacked()
                    )
                }
            };
            s.push_str(&line);
        }
        s
    }

    #[allow(clippy::print_stderr)]
    fn log(&self, what: impl FnOnce() -> String) {
        if self.trace {
            eprintln!(
                "[seed {} step {} tick {}] {}",
                self.seed,
                self.step,
                self.ticks,
                what()
            );
        }
    }
}

mod driver;
mod ops;

pub use driver::{HEALED_TICK_EVERY, LIVENESS_BOUND_TICKS};
