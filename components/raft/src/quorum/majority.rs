//! A single voter set that decides by simple majority.

use std::collections::BTreeSet;
use std::fmt;
use std::fmt::Write as _;

use super::{AckedIndexer, VoteResult};

/// Up to this many voters, [`MajorityConfig::committed_index`] sorts on the
/// stack instead of allocating.
const STACK_VOTERS: usize = 7;

/// A set of voters; a decision needs more than half of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MajorityConfig {
    /// The voter ids. Sorted, which keeps every iteration deterministic.
    voters: BTreeSet<u64>,
}

impl MajorityConfig {
    /// A configuration of exactly `voters`.
    pub fn new(voters: BTreeSet<u64>) -> Self {
        Self { voters }
    }

    /// The voter ids, ascending.
    pub fn ids(&self) -> &BTreeSet<u64> {
        &self.voters
    }

    /// The number of voters.
    pub fn len(&self) -> usize {
        self.voters.len()
    }

    /// True when there are no voters.
    pub fn is_empty(&self) -> bool {
        self.voters.is_empty()
    }

    /// True when `id` is a voter.
    pub fn contains(&self, id: u64) -> bool {
        self.voters.contains(&id)
    }

    /// Adds `id`; returns false if it was already a voter.
    pub fn insert(&mut self, id: u64) -> bool {
        self.voters.insert(id)
    }

    /// Removes `id`; returns false if it was not a voter.
    pub fn remove(&mut self, id: u64) -> bool {
        self.voters.remove(&id)
    }

    /// Removes every voter.
    pub fn clear(&mut self) {
        self.voters.clear();
    }

    /// The number of votes or acknowledgements that make a majority.
    fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// The largest index that a majority of voters has acknowledged. Voters
    /// the indexer knows nothing about count as having acknowledged 0.
    ///
    /// An empty configuration returns `u64::MAX`: it places no constraint,
    /// so that a joint configuration whose outgoing half is empty defers
    /// entirely to its incoming half when taking the minimum.
    pub fn committed_index(&self, l: &impl AckedIndexer) -> u64 {
        let n = self.voters.len();
        if n == 0 {
            return u64::MAX;
        }
        let mut on_stack = [0u64; STACK_VOTERS];
        let mut on_heap: Vec<u64>;
        let acked: &mut [u64] = if n <= STACK_VOTERS {
            &mut on_stack[..n]
        } else {
            on_heap = vec![0; n];
            &mut on_heap
        };
        for (slot, id) in acked.iter_mut().zip(&self.voters) {
            *slot = l.acked_index(*id).unwrap_or(0);
        }
        acked.sort_unstable();
        // Ascending order: the entry at `n - quorum` and everything after it
        // (exactly `quorum` voters) have acknowledged at least that index.
        acked[n - self.quorum()]
    }

    /// Counts `votes` (`Some(true)` granted, `Some(false)` rejected, `None`
    /// not yet heard) among the voters. An empty configuration wins, so that
    /// an empty half of a joint configuration never blocks a decision.
    pub fn vote_result(&self, votes: impl Fn(u64) -> Option<bool>) -> VoteResult {
        if self.voters.is_empty() {
            return VoteResult::Won;
        }
        let (mut granted, mut missing) = (0usize, 0usize);
        for &id in &self.voters {
            match votes(id) {
                Some(true) => granted += 1,
                Some(false) => {}
                None => missing += 1,
            }
        }
        let quorum = self.quorum();
        if granted >= quorum {
            VoteResult::Won
        } else if granted + missing >= quorum {
            VoteResult::Pending
        } else {
            VoteResult::Lost
        }
    }

    /// Renders who acknowledged what, for golden tests.
    ///
    /// The first line is the header `     idx`. Then one line per voter,
    /// sorted by acknowledged index descending, then by id ascending:
    ///
    /// ```text
    ///      idx
    /// >      5    (id=1)
    /// >      3    (id=3)
    ///        2    (id=2)
    ///        ?    (id=4)
    /// ```
    ///
    /// The index is right-aligned under `idx` and is `?` when the indexer
    /// knows nothing about the voter. The first column is `>` for voters that
    /// have acknowledged the committed index (they form the committing
    /// majority, and possibly more) and blank otherwise. An empty
    /// configuration renders as `<empty majority quorum>`.
    pub fn describe(&self, l: &impl AckedIndexer) -> String {
        if self.voters.is_empty() {
            return "<empty majority quorum>".to_owned();
        }
        let committed = self.committed_index(l);
        let mut rows: Vec<(Option<u64>, u64)> = self
            .voters
            .iter()
            .map(|&id| (l.acked_index(id), id))
            .collect();
        // Highest index first; unknown (`None`) sorts last; ties by id.
        rows.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut out = String::from("     idx\n");
        for (idx, id) in rows {
            let marker = if idx.unwrap_or(0) >= committed {
                '>'
            } else {
                ' '
            };
            let idx = idx.map_or_else(|| "?".to_owned(), |i| i.to_string());
            // Writing to a String cannot fail.
            let _ = writeln!(out, "{marker}{idx:>7}    (id={id})");
        }
        out.pop();
        out
    }
}

impl From<BTreeSet<u64>> for MajorityConfig {
    fn from(voters: BTreeSet<u64>) -> Self {
        Self::new(voters)
    }
}

impl fmt::Display for MajorityConfig {
    /// Formats as `(1 2 3)`; an empty configuration is `()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (i, id) in self.voters.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{id}")?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn cfg(ids: &[u64]) -> MajorityConfig {
        MajorityConfig::new(ids.iter().copied().collect())
    }

    fn acked(pairs: &[(u64, u64)]) -> BTreeMap<u64, u64> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn committed_index_of_empty_config_is_unbounded() {
        assert_eq!(cfg(&[]).committed_index(&acked(&[])), u64::MAX);
    }

    #[test]
    fn committed_index_across_sizes() {
        /// (voters, acked indexes, expected commit)
        type Case = (&'static [u64], &'static [(u64, u64)], u64);
        let cases: &[Case] = &[
            (&[1], &[(1, 12)], 12),
            (&[1], &[], 0),
            (&[1, 2], &[(1, 10), (2, 5)], 5),
            (&[1, 2, 3], &[(1, 10), (2, 5), (3, 7)], 7),
            (&[1, 2, 3, 4], &[(1, 10), (2, 5), (3, 7), (4, 9)], 7),
            (
                &[1, 2, 3, 4, 5],
                &[(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)],
                3,
            ),
            (
                &[1, 2, 3, 4, 5, 6, 7],
                &[(1, 7), (2, 6), (3, 5), (4, 4), (5, 3), (6, 2), (7, 1)],
                4,
            ),
        ];
        for (voters, pairs, want) in cases {
            let got = cfg(voters).committed_index(&acked(pairs));
            assert_eq!(got, *want, "voters {voters:?} acked {pairs:?}");
        }
    }

    #[test]
    fn committed_index_beyond_the_stack_buffer() {
        // Nine voters acking 1..=9: five of them have at least 5.
        let voters: Vec<u64> = (1..=9).collect();
        let pairs: Vec<(u64, u64)> = voters.iter().map(|&id| (id, id)).collect();
        assert_eq!(cfg(&voters).committed_index(&acked(&pairs)), 5);
        // Eight voters: five needed, so the fifth highest (4) is committed.
        let pairs: Vec<(u64, u64)> = (1..=8).map(|id| (id, id)).collect();
        assert_eq!(cfg(&voters[..8]).committed_index(&acked(&pairs)), 4);
    }

    #[test]
    fn committed_index_counts_missing_voters_as_zero() {
        assert_eq!(cfg(&[1, 2, 3]).committed_index(&acked(&[(1, 9)])), 0);
        assert_eq!(
            cfg(&[1, 2, 3]).committed_index(&acked(&[(1, 9), (3, 4)])),
            4
        );
        // Acks from non-voters are ignored.
        assert_eq!(
            cfg(&[1, 2, 3]).committed_index(&acked(&[(1, 9), (7, 9), (8, 9)])),
            0
        );
        assert_eq!(
            cfg(&[1, 2, 3, 4, 5]).committed_index(&acked(&[(1, 9), (2, 8)])),
            0
        );
    }

    fn votes(pairs: &[(u64, bool)]) -> impl Fn(u64) -> Option<bool> + '_ {
        move |id| pairs.iter().find(|(v, _)| *v == id).map(|(_, g)| *g)
    }

    #[test]
    fn vote_results() {
        use VoteResult::*;
        /// (voters, votes, expected result)
        type Case = (&'static [u64], &'static [(u64, bool)], VoteResult);
        let cases: &[Case] = &[
            (&[], &[], Won),
            (&[], &[(1, false)], Won),
            (&[1], &[], Pending),
            (&[1], &[(1, true)], Won),
            (&[1], &[(1, false)], Lost),
            (&[1, 2], &[(1, true)], Pending),
            (&[1, 2], &[(1, true), (2, true)], Won),
            (&[1, 2], &[(1, false)], Lost),
            (&[1, 2, 3], &[], Pending),
            (&[1, 2, 3], &[(1, true)], Pending),
            (&[1, 2, 3], &[(1, true), (2, false)], Pending),
            (&[1, 2, 3], &[(1, true), (2, true)], Won),
            (&[1, 2, 3], &[(1, false), (2, false)], Lost),
            (&[1, 2, 3], &[(1, true), (2, false), (3, false)], Lost),
            // Votes from non-voters do not count.
            (&[1, 2, 3], &[(1, true), (4, true), (5, true)], Pending),
            (&[1, 2, 3, 4], &[(1, true), (2, true)], Pending),
            (&[1, 2, 3, 4], &[(1, true), (2, true), (3, false)], Pending),
            (&[1, 2, 3, 4], &[(1, false), (2, false)], Lost),
            (&[1, 2, 3, 4], &[(1, true), (2, true), (3, true)], Won),
        ];
        for (voters, vs, want) in cases {
            let got = cfg(voters).vote_result(votes(vs));
            assert_eq!(got, *want, "voters {voters:?} votes {vs:?}");
        }
    }

    #[test]
    fn describe_lists_voters_by_index() {
        let l = acked(&[(1, 5), (2, 2), (3, 5), (5, 3)]);
        let want = "     idx\n\
                    >      5    (id=1)\n\
                    >      5    (id=3)\n\
                    >      3    (id=5)\n\
                    \x20      2    (id=2)\n\
                    \x20      ?    (id=4)";
        assert_eq!(cfg(&[1, 2, 3, 4, 5]).describe(&l), want);
        assert_eq!(cfg(&[]).describe(&l), "<empty majority quorum>");
    }

    #[test]
    fn display_and_membership() {
        let mut c = cfg(&[3, 1, 2]);
        assert_eq!(c.to_string(), "(1 2 3)");
        assert!(c.contains(2));
        assert!(c.remove(2));
        assert!(!c.remove(2));
        assert!(c.insert(7));
        assert_eq!(c.to_string(), "(1 3 7)");
        assert_eq!(c.len(), 3);
        c.clear();
        assert!(c.is_empty());
        assert_eq!(c.to_string(), "()");
    }
}
