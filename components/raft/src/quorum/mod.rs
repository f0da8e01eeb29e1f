//! Quorum arithmetic: how many acknowledgements or votes a set of voters
//! needs before the leader may commit an index or a candidate wins.
//!
//! [`MajorityConfig`] is one voter set deciding by simple majority;
//! [`JointConfig`] pairs two of them for joint consensus, where every
//! decision needs a majority of both halves. Nothing here knows about
//! progress, messages or terms: acknowledgements come in through
//! [`AckedIndexer`] and votes through a closure.

mod joint;
mod majority;

use std::collections::BTreeMap;
use std::fmt;

pub use joint::JointConfig;
pub use majority::MajorityConfig;

/// The outcome of counting votes against a quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoteResult {
    /// Not decided yet: the missing votes could still swing either way.
    Pending,
    /// Decided against: even if every missing vote were granted there would
    /// be no majority.
    Lost,
    /// Decided in favour: a majority granted.
    Won,
}

impl fmt::Display for VoteResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            VoteResult::Pending => "VotePending",
            VoteResult::Lost => "VoteLost",
            VoteResult::Won => "VoteWon",
        };
        f.write_str(s)
    }
}

/// A source of acknowledged log indexes, one per voter.
pub trait AckedIndexer {
    /// The highest index `voter_id` is known to have durably appended, or
    /// `None` when nothing is known about that voter (counts as 0).
    fn acked_index(&self, voter_id: u64) -> Option<u64>;
}

/// A plain map from voter id to acknowledged index; handy in tests.
impl AckedIndexer for BTreeMap<u64, u64> {
    fn acked_index(&self, voter_id: u64) -> Option<u64> {
        self.get(&voter_id).copied()
    }
}
