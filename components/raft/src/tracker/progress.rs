//! What the leader knows about one follower's log, and how it is sending
//! the log to it.

use std::fmt;

use super::{Inflights, ProgressState};

/// The leader's view of one peer (voter or learner).
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// The highest index known to be in the peer's log and matching ours.
    pub matched: u64,
    /// The next index to send. Invariant: `matched < next_idx`.
    pub next_idx: u64,
    /// How the log is currently being sent.
    pub state: ProgressState,
    /// In [`ProgressState::Snapshot`], the index of the snapshot being sent;
    /// 0 otherwise.
    pub pending_snapshot: u64,
    /// True when the peer has been heard from since the last check-quorum
    /// round. Fresh peers start active so that a new member is not counted
    /// against the quorum before it had a chance to answer.
    pub recent_active: bool,
    /// In [`ProgressState::Probe`]: a message was sent since the last
    /// response, so sending is paused until a response or a heartbeat.
    /// Meaningless in the other states.
    pub probe_sent: bool,
    /// The appends sent but not yet acknowledged, in
    /// [`ProgressState::Replicate`]. Empty in the other states.
    pub inflights: Inflights,
    /// True when the peer is a learner (receives the log, never votes).
    pub is_learner: bool,
    /// The commit index last sent to this peer, so heartbeats and appends
    /// can tell whether it needs bumping.
    pub committed_index: u64,
}

impl Progress {
    /// A probing peer that has matched nothing, to be sent `next_idx` next,
    /// with an inflight window of `cap_count` messages and `cap_bytes` bytes.
    pub fn new(next_idx: u64, cap_count: usize, cap_bytes: u64) -> Self {
        assert!(
            next_idx > 0,
            "progress: next_idx must be at least 1 (matched 0 < next_idx)"
        );
        Self {
            matched: 0,
            next_idx,
            state: ProgressState::Probe,
            pending_snapshot: 0,
            recent_active: false,
            probe_sent: false,
            inflights: Inflights::new(cap_count, cap_bytes),
            is_learner: false,
            committed_index: 0,
        }
    }

    /// Switches to `state`, clearing the per-state fields: the probe pause,
    /// the pending snapshot and the inflight window.
    pub fn reset_state(&mut self, state: ProgressState) {
        self.probe_sent = false;
        self.pending_snapshot = 0;
        self.state = state;
        self.inflights.reset();
    }

    /// Switches to probing from just past what is known to match. Coming
    /// out of a snapshot, the snapshot is assumed applied, so probing starts
    /// past it if that is further.
    pub fn become_probe(&mut self) {
        if self.state == ProgressState::Snapshot {
            let pending = self.pending_snapshot;
            self.reset_state(ProgressState::Probe);
            self.next_idx = self.matched.max(pending) + 1;
        } else {
            self.reset_state(ProgressState::Probe);
            self.next_idx = self.matched + 1;
        }
    }

    /// Switches to streaming appends from just past what is known to match.
    pub fn become_replicate(&mut self) {
        self.reset_state(ProgressState::Replicate);
        self.next_idx = self.matched + 1;
    }

    /// Switches to sending the snapshot at `snapshot_index`.
    pub fn become_snapshot(&mut self, snapshot_index: u64) {
        self.reset_state(ProgressState::Snapshot);
        self.pending_snapshot = snapshot_index;
    }

    /// Handles an acknowledgement of the log up to `n`. Raises `matched`
    /// (resuming a paused probe) if `n` is newer, and makes sure `next_idx`
    /// lies past `n`. Returns whether `matched` changed.
    pub fn maybe_update(&mut self, n: u64) -> bool {
        let updated = n > self.matched;
        if updated {
            self.matched = n;
            self.resume();
        }
        self.next_idx = self.next_idx.max(n + 1);
        updated
    }

    /// Assumes the entries up to `n` will be accepted: the next append
    /// starts at `n + 1`.
    pub fn optimistic_update(&mut self, n: u64) {
        assert!(
            n >= self.matched,
            "progress: optimistic update to {n} below matched {}",
            self.matched
        );
        self.next_idx = n + 1;
    }

    /// Handles a rejection of the append whose previous index was
    /// `rejected`; `match_hint` is the follower's guess of the last index
    /// where the logs may agree. Returns false when the rejection is stale
    /// (it answers an append this progress has moved past) and nothing
    /// changed.
    ///
    /// In [`ProgressState::Replicate`] the rejection is stale when
    /// `rejected <= matched`; otherwise sending restarts from `matched + 1`.
    /// In the other states only the rejection of the latest probe
    /// (`rejected == next_idx - 1`) counts; `next_idx` then moves back to
    /// `min(rejected, match_hint + 1)`, never below `matched + 1`, and the
    /// probe pause is lifted.
    pub fn maybe_decr_to(&mut self, rejected: u64, match_hint: u64) -> bool {
        if self.state == ProgressState::Replicate {
            if rejected <= self.matched {
                return false;
            }
            self.next_idx = self.matched + 1;
            return true;
        }
        if self.next_idx - 1 != rejected {
            return false;
        }
        let target = rejected.min(match_hint.saturating_add(1));
        self.next_idx = target.max(self.matched + 1);
        self.probe_sent = false;
        true
    }

    /// True when nothing more should be sent for now: a probe is
    /// outstanding, the inflight window is full, or a snapshot is pending.
    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.full(),
            ProgressState::Snapshot => true,
        }
    }

    /// Marks a probe as outstanding.
    pub fn pause(&mut self) {
        self.probe_sent = true;
    }

    /// Clears the outstanding-probe mark.
    pub fn resume(&mut self) {
        self.probe_sent = false;
    }

    /// Records that an append whose entries end at `last_index` and carry
    /// `bytes` was just sent. In [`ProgressState::Replicate`] the entries are
    /// assumed accepted and enter the inflight window; an append without new
    /// entries (`last_index < next_idx`) changes nothing. In
    /// [`ProgressState::Probe`] sending pauses until the peer answers.
    ///
    /// # Panics
    /// In [`ProgressState::Snapshot`]: nothing may be sent then.
    pub fn update_on_entries_send(&mut self, last_index: u64, bytes: u64) {
        match self.state {
            ProgressState::Replicate => {
                if last_index < self.next_idx {
                    return;
                }
                self.optimistic_update(last_index);
                self.inflights.add(last_index, bytes);
            }
            ProgressState::Probe => self.pause(),
            ProgressState::Snapshot => panic!(
                "progress: append up to {last_index} ({bytes} bytes) sent in {self}; \
                 nothing may be sent while a snapshot is pending"
            ),
        }
    }

    /// Raises the commit index last sent to this peer to `committed`, if
    /// that is newer.
    pub fn update_committed(&mut self, committed: u64) {
        self.committed_index = self.committed_index.max(committed);
    }

    /// True in [`ProgressState::Snapshot`] once the peer has acknowledged
    /// the pending snapshot's index.
    pub fn is_snapshot_caught_up(&self) -> bool {
        self.state == ProgressState::Snapshot && self.matched >= self.pending_snapshot
    }
}

impl fmt::Display for Progress {
    /// Formats as `StateReplicate match=5 next=6`, followed when relevant by
    /// ` learner`, ` paused`, ` pending_snap=N`, ` inactive` and
    /// ` inflight=N` (with `[full]` when the window is full).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} match={} next={}",
            self.state, self.matched, self.next_idx
        )?;
        if self.is_learner {
            f.write_str(" learner")?;
        }
        if self.is_paused() {
            f.write_str(" paused")?;
        }
        if self.state == ProgressState::Snapshot {
            write!(f, " pending_snap={}", self.pending_snapshot)?;
        }
        if !self.recent_active {
            f.write_str(" inactive")?;
        }
        let n = self.inflights.count();
        if n > 0 {
            write!(f, " inflight={n}")?;
            if self.inflights.full() {
                f.write_str("[full]")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(state: ProgressState, matched: u64, next_idx: u64) -> Progress {
        let mut pr = Progress::new(next_idx, 4, u64::MAX);
        pr.state = state;
        pr.matched = matched;
        pr.recent_active = true;
        pr
    }

    #[test]
    fn become_probe_restarts_past_match_or_snapshot() {
        let mut pr = progress(ProgressState::Replicate, 1, 5);
        pr.become_probe();
        assert_eq!((pr.state, pr.next_idx), (ProgressState::Probe, 2));

        let mut pr = progress(ProgressState::Snapshot, 1, 5);
        pr.pending_snapshot = 10;
        pr.become_probe();
        assert_eq!(
            (pr.state, pr.next_idx, pr.pending_snapshot),
            (ProgressState::Probe, 11, 0)
        );

        let mut pr = progress(ProgressState::Snapshot, 12, 13);
        pr.pending_snapshot = 10;
        pr.become_probe();
        assert_eq!(pr.next_idx, 13);
    }

    #[test]
    fn become_replicate_and_snapshot_reset_state() {
        let mut pr = progress(ProgressState::Probe, 1, 5);
        pr.pause();
        pr.become_replicate();
        assert_eq!(
            (pr.state, pr.next_idx, pr.probe_sent),
            (ProgressState::Replicate, 2, false)
        );
        pr.update_on_entries_send(3, 100);
        assert_eq!(pr.inflights.count(), 1);
        pr.become_snapshot(20);
        assert_eq!(
            (pr.state, pr.pending_snapshot),
            (ProgressState::Snapshot, 20)
        );
        assert_eq!(pr.inflights.count(), 0);
        assert!(pr.is_paused());
        assert!(!pr.is_snapshot_caught_up());
        pr.maybe_update(20);
        assert!(pr.is_snapshot_caught_up());
    }

    #[test]
    fn maybe_update_raises_match_and_next() {
        let (prev_m, prev_n) = (3u64, 5u64);
        // (update, want matched, want next, want updated)
        let cases = [
            (prev_m - 1, prev_m, prev_n, false),
            (prev_m, prev_m, prev_n, false),
            (prev_m + 1, prev_m + 1, prev_n, true),
            (prev_m + 2, prev_m + 2, prev_n + 1, true),
        ];
        for (update, wm, wn, wok) in cases {
            let mut pr = progress(ProgressState::Probe, prev_m, prev_n);
            pr.pause();
            let ok = pr.maybe_update(update);
            assert_eq!(
                (ok, pr.matched, pr.next_idx),
                (wok, wm, wn),
                "update {update}"
            );
            assert_eq!(
                pr.probe_sent, !wok,
                "update {update} resumes only on progress"
            );
        }
    }

    #[test]
    fn maybe_decr_to_in_each_state() {
        use ProgressState::*;
        // (state, matched, next, rejected, hint, want ok, want next)
        let cases = [
            // Replicate: stale when rejected <= matched.
            (Replicate, 5, 10, 5, 5, false, 10),
            (Replicate, 5, 10, 4, 4, false, 10),
            // Replicate: fall back to matched + 1.
            (Replicate, 5, 10, 9, 9, true, 6),
            // Probe: stale unless it answers the latest probe.
            (Probe, 0, 10, 5, 5, false, 10),
            (Probe, 0, 10, 9, 9, true, 9),
            (Probe, 0, 2, 1, 1, true, 1),
            (Probe, 0, 1, 0, 0, true, 1),
            // The hint moves next further back.
            (Probe, 0, 10, 9, 2, true, 3),
            (Probe, 0, 10, 9, 0, true, 1),
            // But never below matched + 1.
            (Probe, 4, 10, 9, 1, true, 5),
            // Snapshot behaves like probe.
            (Snapshot, 0, 10, 9, 3, true, 4),
        ];
        for (i, (state, m, n, rejected, hint, wok, wn)) in cases.into_iter().enumerate() {
            let mut pr = progress(state, m, n);
            pr.probe_sent = true;
            let ok = pr.maybe_decr_to(rejected, hint);
            assert_eq!((ok, pr.next_idx), (wok, wn), "case {i}");
            if state != Replicate && ok {
                assert!(!pr.probe_sent, "case {i}: an answered probe resumes");
            }
        }
    }

    #[test]
    fn is_paused_per_state() {
        let mut pr = progress(ProgressState::Probe, 0, 1);
        assert!(!pr.is_paused());
        pr.update_on_entries_send(1, 10);
        assert!(pr.is_paused(), "a probe pauses until answered");
        assert_eq!(pr.next_idx, 1, "probing does not advance next");

        let mut pr = Progress::new(1, 2, 100);
        pr.become_replicate();
        assert!(!pr.is_paused());
        pr.update_on_entries_send(1, 10);
        pr.update_on_entries_send(2, 10);
        assert!(pr.is_paused(), "two messages fill a window of two");
        pr.maybe_update(1);
        pr.inflights.free_to(1);
        assert!(!pr.is_paused());
        pr.update_on_entries_send(5, 200);
        assert!(pr.is_paused(), "the byte cap fills the window");

        let mut pr = progress(ProgressState::Snapshot, 0, 1);
        assert!(pr.is_paused());
        pr.resume();
        assert!(pr.is_paused(), "snapshot stays paused");
    }

    #[test]
    fn empty_append_changes_nothing_in_replicate() {
        let mut pr = progress(ProgressState::Replicate, 5, 8);
        let before = pr.clone();
        pr.update_on_entries_send(7, 0);
        assert_eq!(pr, before);
        pr.update_on_entries_send(9, 30);
        assert_eq!(
            (pr.next_idx, pr.inflights.count(), pr.inflights.bytes()),
            (10, 1, 30)
        );
    }

    #[test]
    #[should_panic(expected = "snapshot is pending")]
    fn sending_in_snapshot_panics() {
        let mut pr = progress(ProgressState::Snapshot, 0, 1);
        pr.update_on_entries_send(3, 1);
    }

    #[test]
    fn update_committed_only_rises() {
        let mut pr = progress(ProgressState::Probe, 0, 1);
        pr.update_committed(5);
        pr.update_committed(3);
        assert_eq!(pr.committed_index, 5);
    }

    #[test]
    fn display() {
        let mut pr = progress(ProgressState::Replicate, 5, 6);
        assert_eq!(pr.to_string(), "StateReplicate match=5 next=6");
        pr.is_learner = true;
        pr.recent_active = false;
        pr.update_on_entries_send(6, 1);
        assert_eq!(
            pr.to_string(),
            "StateReplicate match=5 next=7 learner inactive inflight=1"
        );
        for i in 7..10 {
            pr.update_on_entries_send(i, 1);
        }
        assert_eq!(
            pr.to_string(),
            "StateReplicate match=5 next=10 learner paused inactive inflight=4[full]"
        );
        let mut pr = progress(ProgressState::Probe, 0, 1);
        pr.become_snapshot(9);
        assert_eq!(
            pr.to_string(),
            "StateSnapshot match=0 next=1 paused pending_snap=9"
        );
    }
}
