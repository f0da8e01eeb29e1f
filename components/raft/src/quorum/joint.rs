//! Two voter sets deciding together, as joint consensus requires.

use std::collections::BTreeSet;
use std::fmt;

use super::{AckedIndexer, MajorityConfig, VoteResult};

/// The voters of a configuration: the incoming set, plus the outgoing set
/// while a membership change through joint consensus is in progress.
///
/// Invariant: outside joint consensus `outgoing` is empty, and an empty half
/// places no constraint on any decision (see
/// [`MajorityConfig::committed_index`] and [`MajorityConfig::vote_result`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JointConfig {
    /// The voters of the configuration being entered (or the only one).
    pub incoming: MajorityConfig,
    /// The voters of the configuration being left; empty when not joint.
    pub outgoing: MajorityConfig,
}

impl JointConfig {
    /// A non-joint configuration of `voters`.
    pub fn new(voters: BTreeSet<u64>) -> Self {
        Self {
            incoming: MajorityConfig::new(voters),
            outgoing: MajorityConfig::default(),
        }
    }

    /// True when both halves are in force (the outgoing half is non-empty).
    pub fn is_joint(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Every voter of either half, ascending.
    pub fn ids(&self) -> BTreeSet<u64> {
        self.incoming
            .ids()
            .union(self.outgoing.ids())
            .copied()
            .collect()
    }

    /// True when `id` is a voter of either half.
    pub fn contains(&self, id: u64) -> bool {
        self.incoming.contains(id) || self.outgoing.contains(id)
    }

    /// True when the configuration is not joint and has exactly one voter,
    /// who therefore decides everything alone.
    pub fn is_singleton(&self) -> bool {
        self.outgoing.is_empty() && self.incoming.len() == 1
    }

    /// The largest index acknowledged by a majority of both halves.
    pub fn committed_index(&self, l: &impl AckedIndexer) -> u64 {
        let incoming = self.incoming.committed_index(l);
        let outgoing = self.outgoing.committed_index(l);
        incoming.min(outgoing)
    }

    /// Won only when both halves win, lost as soon as either half loses,
    /// pending otherwise.
    pub fn vote_result(&self, votes: impl Fn(u64) -> Option<bool>) -> VoteResult {
        let incoming = self.incoming.vote_result(&votes);
        let outgoing = self.outgoing.vote_result(&votes);
        match (incoming, outgoing) {
            (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
            (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
            _ => VoteResult::Pending,
        }
    }

    /// Removes every voter from both halves.
    pub fn clear(&mut self) {
        self.incoming.clear();
        self.outgoing.clear();
    }
}

impl fmt::Display for JointConfig {
    /// Formats as `(1 2 3)&&(1 2)` when joint, else as `(1 2 3)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_joint() {
            write!(f, "{}&&{}", self.incoming, self.outgoing)
        } else {
            write!(f, "{}", self.incoming)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn joint(incoming: &[u64], outgoing: &[u64]) -> JointConfig {
        JointConfig {
            incoming: MajorityConfig::new(incoming.iter().copied().collect()),
            outgoing: MajorityConfig::new(outgoing.iter().copied().collect()),
        }
    }

    fn acked(pairs: &[(u64, u64)]) -> BTreeMap<u64, u64> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn committed_index_is_the_minimum_of_both_halves() {
        let l = acked(&[(1, 10), (2, 8), (3, 6), (4, 4), (5, 2)]);
        // Incoming alone.
        assert_eq!(joint(&[1, 2, 3], &[]).committed_index(&l), 8);
        // Outgoing (3 4 5) commits 4, incoming (1 2 3) commits 8.
        assert_eq!(joint(&[1, 2, 3], &[3, 4, 5]).committed_index(&l), 4);
        // And the other way round.
        assert_eq!(joint(&[3, 4, 5], &[1, 2, 3]).committed_index(&l), 4);
        // Overlapping halves.
        assert_eq!(joint(&[1, 2], &[1, 2, 3]).committed_index(&l), 8);
        // Both empty: no constraint at all.
        assert_eq!(joint(&[], &[]).committed_index(&l), u64::MAX);
        // A missing voter in the outgoing half holds the commit back.
        assert_eq!(joint(&[1, 2, 3], &[1, 9]).committed_index(&l), 0);
    }

    #[test]
    fn vote_results() {
        use VoteResult::*;
        /// (incoming, outgoing, votes, expected result)
        type Case = (
            &'static [u64],
            &'static [u64],
            &'static [(u64, bool)],
            VoteResult,
        );
        let cases: &[Case] = &[
            (&[], &[], &[], Won),
            (&[1], &[], &[], Pending),
            (&[1], &[], &[(1, true)], Won),
            (&[1, 2, 3], &[1], &[(1, true), (2, true)], Won),
            (&[1, 2, 3], &[4], &[(1, true), (2, true)], Pending),
            (&[1, 2, 3], &[4], &[(1, true), (2, true), (4, false)], Lost),
            (&[1, 2, 3], &[4], &[(1, false), (2, false), (4, true)], Lost),
            (
                &[1, 2, 3],
                &[3, 4, 5],
                &[(1, true), (3, true), (4, true)],
                Won,
            ),
            (
                &[1, 2, 3],
                &[3, 4, 5],
                &[(1, true), (2, true), (3, false)],
                Pending,
            ),
            (&[1, 2, 3], &[3, 4, 5], &[(3, false), (4, false)], Lost),
        ];
        for (inc, out, vs, want) in cases {
            let votes = |id: u64| vs.iter().find(|(v, _)| *v == id).map(|(_, g)| *g);
            let got = joint(inc, out).vote_result(votes);
            assert_eq!(got, *want, "{inc:?}&&{out:?} votes {vs:?}");
        }
    }

    #[test]
    fn ids_singleton_and_display() {
        let j = joint(&[1, 2, 3], &[3, 4]);
        assert_eq!(j.ids(), [1, 2, 3, 4].into_iter().collect());
        assert!(j.contains(4) && j.contains(1) && !j.contains(5));
        assert!(j.is_joint());
        assert!(!j.is_singleton());
        assert_eq!(j.to_string(), "(1 2 3)&&(3 4)");

        let mut j = JointConfig::new([7].into_iter().collect());
        assert!(j.is_singleton());
        assert!(!j.is_joint());
        assert_eq!(j.to_string(), "(7)");
        assert!(!joint(&[7], &[7]).is_singleton());
        j.clear();
        assert_eq!(j, JointConfig::default());
        assert_eq!(j.to_string(), "()");
    }
}
