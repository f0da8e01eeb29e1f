//! The leader lease: while it holds, no other peer can have been elected,
//! so the leader may serve reads from its applied state without a round
//! trip.
//!
//! A lease is renewed by something a quorum acknowledged that was sent at a
//! known time `t`: a ReadIndex confirmation, or a committed proposal of this
//! term. Every follower in that quorum heard from the leader after `t` and
//! refuses to vote for anyone else for an election timeout (the raft core's
//! leader-lease vote check), so no new leader exists before
//! `t + election timeout`. The lease ends `lease_drift_margin` earlier, for
//! clock drift between stores. A leadership transfer bypasses the vote
//! check, so a leader that is transferring holds no lease.

use std::time::Duration;

/// A leader's lease, valid in one term until a time on the store's clock.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lease {
    term: u64,
    until: Duration,
}

impl Lease {
    /// Something sent at `sent_at` in `term` was acknowledged by a quorum.
    pub(crate) fn renew(&mut self, term: u64, sent_at: Duration, length: Duration) {
        let until = sent_at + length;
        if term > self.term || (term == self.term && until > self.until) {
            *self = Lease { term, until };
        }
    }

    /// Whether the lease holds at `now` for a leader of `term`.
    pub(crate) fn is_valid(&self, term: u64, now: Duration) -> bool {
        self.term == term && now < self.until
    }

    /// Gives the lease up (leadership lost or being transferred).
    pub(crate) fn expire(&mut self) {
        self.until = Duration::ZERO;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_lease_holds_in_its_term_until_its_end() {
        let mut l = Lease::default();
        assert!(!l.is_valid(0, Duration::ZERO), "no lease before a renewal");
        l.renew(3, 100 * MS, 900 * MS);
        assert!(l.is_valid(3, 999 * MS));
        assert!(!l.is_valid(3, 1000 * MS), "ends at sent_at + length");
        assert!(!l.is_valid(4, 500 * MS), "a lease is of one term");
    }

    #[test]
    fn an_older_confirmation_never_shortens_a_lease_and_expire_ends_it() {
        let mut l = Lease::default();
        l.renew(3, 500 * MS, 900 * MS);
        l.renew(3, 100 * MS, 900 * MS);
        assert!(l.is_valid(3, 1300 * MS));
        l.expire();
        assert!(!l.is_valid(3, 600 * MS));
    }
}
