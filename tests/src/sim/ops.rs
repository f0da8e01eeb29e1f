//! The simulation's single operations, each followed by the checks it can
//! trigger. Scripted tests drive the cluster with these directly.

use bytes::Bytes;

use super::*;

impl Sim {
    /// Ticks every up peer once.
    pub fn tick_all(&mut self) {
        self.ticks += 1;
        self.stats.ticks += 1;
        for id in self.ids() {
            self.tick(id);
        }
    }

    /// Ticks peer `id` once, if up.
    pub fn tick(&mut self, id: u64) {
        if let Some(raw) = self.node_mut(id).raw_mut() {
            raw.tick();
            self.observe(id);
        }
    }

    /// Proposes a fresh unique payload at peer `id`; returns its id, or
    /// `None` when the peer is down or dropped the proposal.
    pub fn propose(&mut self, id: u64) -> Option<u64> {
        let payload = self.next_payload;
        self.next_payload += 1;
        let raw = self.node_mut(id).raw_mut()?;
        match raw.propose(Bytes::new(), Bytes::copy_from_slice(&payload.to_le_bytes())) {
            Ok(()) => {
                self.log(|| format!("node {id}: proposed {payload}"));
                Some(payload)
            }
            Err(Error::ProposalDropped) => None,
            Err(e) => self.fail(&format!("node {id}: propose failed: {e}")),
        }
    }

    /// Puts messages on the wire.
    pub fn send(&mut self, msgs: Vec<Message>) {
        for m in msgs {
            self.log(|| {
                format!(
                    "send {:?} {}->{} term {}",
                    m.msg_type(),
                    m.from,
                    m.to,
                    m.term
                )
            });
            self.net.send(&mut self.rng, self.step, m);
        }
    }

    /// Delivers the messages due at this step.
    pub fn deliver_due(&mut self) {
        for (m, fate) in self.net.take_due(self.step) {
            self.deliver(m, fate);
        }
    }

    /// Delivers every message on the wire, whatever its delay.
    pub fn deliver_all(&mut self) {
        for (m, fate) in self.net.take_due(u64::MAX) {
            self.deliver(m, fate);
        }
    }

    /// Delivers the messages on the wire that match `pred`, whatever their
    /// delay; the others stay. Returns how many were taken.
    pub fn deliver_matching(&mut self, pred: impl Fn(&Message) -> bool) -> usize {
        let hit = self.net.take_matching(pred);
        let n = hit.len();
        for (m, fate) in hit {
            self.deliver(m, fate);
        }
        n
    }

    /// Drops the messages on the wire that match `pred`. Returns how many.
    pub fn drop_matching(&mut self, pred: impl Fn(&Message) -> bool) -> usize {
        self.net.take_matching(pred).len()
    }

    /// Runs peer `id`'s whole host loop once: takes a ready, writes and
    /// acknowledges everything, applies and reports it.
    pub fn flush(&mut self, id: u64) {
        self.take_ready(id);
        self.persist(id, usize::MAX, false);
        self.acknowledge(id, usize::MAX);
        self.apply(id, usize::MAX);
        self.node_mut(id).report_applied();
    }

    fn deliver(&mut self, m: Message, fate: Fate) {
        let (from, to, t) = (m.from, m.to, m.msg_type());
        let arrives = fate == Fate::Delivered && self.node(to).is_up();
        self.log(|| {
            format!(
                "deliver {t:?} {from}->{to} term {}: {fate:?} up {arrives}",
                m.term
            )
        });
        if arrives {
            match self.node_mut(to).raw_mut().expect("up").step(m) {
                Ok(()) | Err(Error::ProposalDropped) => {}
                Err(e) => self.fail(&format!("node {to}: step {t:?} from {from}: {e}")),
            }
            self.observe(to);
        }
        if t == MessageType::MsgSnapshot {
            // The transport tells the sender how a snapshot transfer ended.
            let status = if arrives {
                SnapshotStatus::Finish
            } else {
                SnapshotStatus::Failure
            };
            if let Some(raw) = self.node_mut(from).raw_mut() {
                raw.report_snapshot(to, status);
            }
        } else if fate == Fate::Partitioned && self.rng.random_bool(0.5) {
            // ... and, sometimes, that a peer is unreachable.
            if let Some(raw) = self.node_mut(from).raw_mut() {
                raw.report_unreachable(to);
            }
        }
    }

    /// Peer `id` takes a ready, if it has one, and sends its messages.
    pub fn take_ready(&mut self, id: u64) {
        let before = self.node(id).host.as_ref().map_or(0, |h| h.pending.len());
        let r = self.node_mut(id).handle_ready();
        let msgs = self.ok(r);
        if self.trace {
            let h = self.node(id).host.as_ref();
            if let Some(w) = h
                .and_then(|h| h.pending.back())
                .filter(|_| h.is_some_and(|h| h.pending.len() > before))
            {
                let ents: Vec<_> = w.entries.iter().map(|e| (e.index, e.term)).collect();
                let snap = w.snapshot.as_ref().map(|s| (s.index(), s.term()));
                self.log(|| {
                    format!(
                        "node {id}: ready {} hs {:?} entries {ents:?} snap {snap:?}",
                        w.number, w.hard_state
                    )
                });
            }
        }
        self.send(msgs);
    }

    /// Peer `id` writes its next `k` pending writes to storage; with
    /// `send_now` it sends what they held back at once.
    pub fn persist(&mut self, id: u64, k: usize, send_now: bool) {
        let r = self.node_mut(id).persist(k, send_now);
        self.log(|| format!("node {id}: persisted {k} writes (send now {send_now})"));
        let w = self.ok(r);
        if let Some(index) = w.snapshot {
            self.stats.snapshots_installed += 1;
            self.log(|| format!("node {id}: installed snapshot at {index}"));
        }
        self.record_applied(id, w.applied);
        self.send(w.messages);
    }

    /// Peer `id` acknowledges up to `k` durable writes and sends what they
    /// held back.
    pub fn acknowledge(&mut self, id: u64, k: usize) {
        let msgs = self.node_mut(id).acknowledge(k);
        self.log(|| format!("node {id}: acknowledged {k} writes"));
        self.observe(id);
        self.send(msgs);
    }

    /// Peer `id` applies up to `k` committed entries.
    pub fn apply(&mut self, id: u64, k: usize) {
        let r = self.node_mut(id).apply(k);
        let applied = self.ok(r);
        self.record_applied(id, applied);
    }

    fn record_applied(&mut self, id: u64, applied: Vec<Applied>) {
        for (index, e) in applied {
            let r = self.checker.on_applied(self.step, id, index, e);
            self.ok(r);
        }
    }

    /// Peer `id` snapshots and compacts its log, if it has applied enough.
    pub fn compact(&mut self, id: u64) {
        let through = self.rng.random_bool(0.5);
        let r = self.node_mut(id).compact(through);
        if let Some(at) = self.ok(r) {
            self.stats.compactions += 1;
            self.log(|| format!("node {id}: compacted at {at} (through {through})"));
        }
    }

    /// Crashes peer `id`: it loses everything not durable.
    pub fn crash(&mut self, id: u64) {
        let r = self.node_mut(id).crash();
        self.ok(r);
        self.stats.crashes += 1;
        self.log(|| {
            format!(
                "node {id}: crashed, applied back to {}",
                self.node(id).sm.len()
            )
        });
    }

    /// Restarts peer `id` from its durable state.
    pub fn restart(&mut self, id: u64) {
        let seed = self.rng.random();
        self.node_mut(id).start(seed);
        self.log(|| format!("node {id}: restarted"));
        self.observe(id);
    }

    /// Runs the host loop of every up peer with no delay and no fault until
    /// nothing is left to do: no ready, no pending write, nothing to apply,
    /// nothing on the wire. Ticks are not taken.
    pub fn stabilize(&mut self) {
        for _ in 0..10_000 {
            let mut busy = false;
            for id in self.ids() {
                let n = self.node(id);
                let Some(h) = n.host.as_ref() else { continue };
                busy |= h.raw.has_ready() || !h.pending.is_empty() || !h.to_apply.is_empty();
                self.take_ready(id);
                self.persist(id, usize::MAX, false);
                self.acknowledge(id, usize::MAX);
                self.apply(id, usize::MAX);
                self.node_mut(id).report_applied();
            }
            busy |= self.net.in_flight().next().is_some();
            self.deliver_all();
            if !busy {
                return;
            }
        }
        self.fail("stabilize: the cluster never went quiet");
    }

    /// Records peer `id` as the leader of its term if it leads: checks
    /// election safety and leader completeness.
    pub fn observe(&mut self, id: u64) {
        let Some(raw) = self.node(id).raw() else {
            return;
        };
        let term = raw.raft.term;
        if raw.raft.state != StateRole::Leader {
            return;
        }
        let committed = raw.raft.raft_log.committed;
        self.checker.on_leader_commit(term, committed);
        if self.checker.knows_leader(term, id) {
            return;
        }
        let view = self.node(id).log_view().map(|v| v.expect("up"));
        let view = self.ok(view);
        self.log(|| format!("node {id}: leader of term {term}, log to {}", view.last()));
        let r = self.checker.on_leader(self.step, id, term, view);
        self.ok(r);
        self.stats.leaders += 1;
    }

    /// Checks log matching over every live and durable log, commit safety
    /// on each, and that all applied sequences are prefixes of each other.
    pub fn check_all(&mut self) {
        let mut logs = Vec::new();
        for n in &self.nodes {
            let durable = self.ok(n.durable_view());
            let commit = n.storage.rl().hard_state().commit;
            self.ok(self.checker.check_committed(&durable, commit));
            logs.push(durable);
            if let Some(live) = self.ok(n.log_view()) {
                let commit = n.raw().expect("up").raft.raft_log.committed;
                self.ok(self.checker.check_committed(&live, commit));
                logs.push(live);
            }
        }
        self.ok(check_log_matching(&logs));
        let sms: Vec<_> = self.nodes.iter().map(|n| (n.id, &n.sm[..])).collect();
        self.ok(check_prefixes(&sms));
        self.stats.applied = self.checker.applied_count() as u64;
    }
}
