//! The randomized run: random steps with faults, then healing and the
//! liveness check.

use super::*;

/// How many ticks after healing a fresh proposal may take to be applied by
/// every peer: 30 election timeouts.
///
/// Once healed, all peers are up, nothing is lost or partitioned, and a
/// message round trip with its durable writes takes about a tick (see
/// [`Sim::heal`]). A leader that lost its quorum is deposed within about
/// one election timeout (check-quorum, or the higher term of the next
/// candidate). An election round then lasts one to two timeouts (timeouts
/// are drawn from `[10, 20)` ticks) and fails when a peer whose log is not
/// up to date times out first, or two candidates split the vote. Each
/// round starts afresh with new random timeouts, and the peer with the
/// most up-to-date log wins a round in which it times out first by more
/// than a round trip, so rounds fail roughly independently, each with a
/// probability of at most about `1 - 1/n` for `n` peers, and usually far
/// less. Catching up and applying take a few round trips more, plus one
/// per batch of entries a peer lags behind.
///
/// This makes the bound probabilistic, not absolute. Measured: 300 000
/// seeds (of 800 and 1000 chaos steps) took at most 178 ticks; the
/// slowest are runs where only a few peers may win and the others, without
/// pre-vote, keep disrupting them with higher terms. The bound leaves room
/// for about six more failed rounds.
pub const LIVENESS_BOUND_TICKS: u64 = 30 * ELECTION_TICKS as u64;

/// Average steps per tick once healed.
pub const HEALED_TICK_EVERY: f64 = 10.0;

impl Sim {
    /// Runs `steps` random steps with faults, then checks everything.
    pub fn run(&mut self, steps: u64) {
        for _ in 0..steps {
            self.step_once(true);
        }
        self.check_all();
    }

    /// One step of the random schedule; faults and client proposals only
    /// when `chaos`.
    pub fn step_once(&mut self, chaos: bool) {
        self.step += 1;
        self.stats.steps += 1;
        if self.rng.random_bool(self.knobs.p_tick) {
            self.tick_skewed();
        }
        self.deliver_due();
        if chaos
            && self.rng.random_bool(self.knobs.p_propose)
            && let Some(id) = self.random_up()
        {
            self.propose(id);
        }
        let mut order = self.ids();
        order.shuffle(&mut self.rng);
        for id in order {
            self.host_work(id);
        }
        if chaos {
            self.inject_faults();
        }
        if self.step.is_multiple_of(CHECK_EVERY) {
            self.check_all();
        }
    }

    /// A clock tick that now and then misses a peer (clock skew).
    fn tick_skewed(&mut self) {
        self.ticks += 1;
        self.stats.ticks += 1;
        for id in self.ids() {
            if self.rng.random_bool(0.95) {
                self.tick(id);
            }
        }
    }

    fn random_up(&mut self) -> Option<u64> {
        let up: Vec<u64> = self
            .ids()
            .into_iter()
            .filter(|&id| self.node(id).is_up())
            .collect();
        (!up.is_empty()).then(|| up[self.rng.random_range(0..up.len())])
    }

    /// One peer's host loop, each part at random.
    fn host_work(&mut self, id: u64) {
        if !self.node(id).is_up() {
            return;
        }
        let k = &self.knobs;
        let i = (id - 1) as usize;
        let (p_persist, p_ack) = (k.p_persist[i], k.p_ack[i]);
        let (p_ready, p_apply) = (k.p_ready, k.p_apply);
        let p_compact = k.p_compact;
        if self.rng.random_bool(p_ready) {
            self.take_ready(id);
        }
        let unwritten = self.node(id).unwritten();
        if unwritten > 0 && self.rng.random_bool(p_persist) {
            let k = self.rng.random_range(1..=unwritten);
            let send_now = self.rng.random_bool(0.5);
            self.persist(id, k, send_now);
        }
        let unacked = self.node(id).unacked();
        if unacked > 0 && self.rng.random_bool(p_ack) {
            let k = self.rng.random_range(1..=unacked);
            self.acknowledge(id, k);
        }
        let queued = self.node(id).host.as_ref().map_or(0, |h| h.to_apply.len());
        if queued > 0 && self.rng.random_bool(p_apply) {
            let k = self.rng.random_range(1..=queued);
            self.apply(id, k);
        }
        if self.rng.random_bool(0.5) {
            self.node_mut(id).report_applied();
        }
        if self.rng.random_bool(0.1) {
            self.node_mut(id).flush_state_machine();
        }
        if p_compact > 0.0 && self.rng.random_bool(p_compact) {
            if self.rng.random_bool(0.2) {
                self.node(id).storage.wl().trigger_snapshot_unavailable();
            } else {
                self.compact(id);
            }
        }
    }

    fn inject_faults(&mut self) {
        let k = &self.knobs;
        let (p_crash, p_restart) = (k.p_crash, k.p_restart);
        let (p_partition, p_heal, p_transfer) = (k.p_partition, k.p_heal, k.p_transfer);
        if p_crash > 0.0
            && self.rng.random_bool(p_crash)
            && let Some(id) = self.random_victim()
        {
            self.crash(id);
        }
        for id in self.ids() {
            if !self.node(id).is_up() && self.rng.random_bool(p_restart) {
                self.restart(id);
            }
        }
        if p_transfer > 0.0 && self.rng.random_bool(p_transfer) {
            self.transfer_random();
        }
        if self.net.is_partitioned() {
            if self.rng.random_bool(p_heal) {
                self.net.heal();
                self.log(|| "partition healed".to_string());
            }
        } else if p_partition > 0.0 && self.rng.random_bool(p_partition) {
            self.partition_random();
        }
    }

    fn random_leader(&mut self) -> Option<u64> {
        let leaders: Vec<u64> = self
            .ids()
            .into_iter()
            .filter(|&id| {
                self.node(id)
                    .raw()
                    .is_some_and(|r| r.raft.state == StateRole::Leader)
            })
            .collect();
        (!leaders.is_empty()).then(|| leaders[self.rng.random_range(0..leaders.len())])
    }

    /// A peer to crash or cut off: a leader half of the time (faults that
    /// strike a leader with a fresh, uncommitted tail are the interesting
    /// ones), else any up peer.
    fn random_victim(&mut self) -> Option<u64> {
        match self.rng.random_bool(0.5) {
            true => self.random_leader().or_else(|| self.random_up()),
            false => self.random_up(),
        }
    }

    /// Asks a random up peer that leads to hand over to a random other peer.
    fn transfer_random(&mut self) {
        let Some(from) = self.random_leader() else {
            return;
        };
        let to = self.rng.random_range(1..=self.nodes.len() as u64);
        self.log(|| format!("node {from}: asked to transfer leadership to {to}"));
        if let Some(raw) = self.node_mut(from).raw_mut() {
            raw.transfer_leader(to);
        }
        self.observe(from);
    }

    /// Cuts off one peer (often a leader), or a random proper subset.
    fn partition_random(&mut self) {
        let mut ids = self.ids();
        if self.rng.random_bool(0.5) {
            ids = self.random_victim().into_iter().collect();
        } else {
            ids.shuffle(&mut self.rng);
            ids.truncate(self.rng.random_range(1..ids.len()));
        }
        self.net.partition(&ids);
        self.stats.partitions += 1;
        self.log(|| format!("partitioned {ids:?} from the rest"));
    }

    /// Heals everything: restarts every down peer, removes partitions,
    /// stops message loss and duplication, and speeds up slow disks and
    /// slow acknowledgements. Delays, reordering and the random timing of
    /// writes and applies stay, but the clock slows to a
    /// tick every [`HEALED_TICK_EVERY`] steps on average, so that a round
    /// trip with its durable writes takes about a tick: raft's timing
    /// requirement (broadcast time well below the election timeout).
    pub fn heal(&mut self) {
        self.net.heal();
        self.net.drop = 0.0;
        self.net.dup = 0.0;
        self.knobs.p_tick = self.knobs.p_tick.min(1.0 / HEALED_TICK_EVERY);
        for p in self.knobs.p_persist.iter_mut().chain(&mut self.knobs.p_ack) {
            *p = p.max(0.3);
        }
        for id in self.ids() {
            if !self.node(id).is_up() {
                self.restart(id);
            }
        }
        self.log(|| "healed everything".to_string());
    }

    /// After [`Sim::heal`]: runs fault-free steps until a leader is elected
    /// and a fresh proposal made through it is applied by every peer.
    /// Fails if that takes more than `bound` ticks; returns the ticks taken.
    pub fn await_liveness(&mut self, bound: u64) -> u64 {
        let start = self.ticks;
        let mut proposals = Vec::new();
        let mut proposed_to = None;
        loop {
            if proposals.iter().any(|&p| self.applied_everywhere(p)) {
                let used = self.ticks - start;
                self.stats.liveness_ticks = used;
                return used;
            }
            if self.ticks - start > bound {
                self.fail(&format!(
                    "liveness: no fresh proposal applied by every node within {bound} ticks \
                     of healing (proposed {proposals:?})"
                ));
            }
            if let Some((id, term)) = self.current_leader()
                && proposed_to != Some((id, term))
                && let Some(p) = self.propose(id)
            {
                proposals.push(p);
                proposed_to = Some((id, term));
            }
            self.step_once(false);
        }
    }

    /// A leader whose term no up peer has passed, and its term.
    pub fn current_leader(&self) -> Option<(u64, u64)> {
        let up = self.nodes.iter().filter_map(|n| n.raw());
        let max_term = up.clone().map(|r| r.raft.term).max()?;
        up.filter(|r| r.raft.state == StateRole::Leader && r.raft.term == max_term)
            .map(|r| (r.raft.id, max_term))
            .next()
    }

    /// Whether every peer has applied the entry carrying `payload`.
    pub fn applied_everywhere(&self, payload: u64) -> bool {
        self.nodes
            .iter()
            .all(|n| n.sm.iter().rev().any(|e| e.payload == payload))
    }
}
