//! The leader's bookkeeping of the group: the current membership
//! ([`Config`]), one [`Progress`] per member, and the votes of an election.
//!
//! The tracker only records; deciding what to send is the raft core's job,
//! and computing a new membership is [`crate::confchange`]'s.

mod inflights;
mod progress;
mod state;

use std::collections::{BTreeMap, BTreeSet, btree_map};
use std::fmt;

pub use inflights::Inflights;
pub use progress::Progress;
pub use state::ProgressState;

use crate::quorum::{AckedIndexer, JointConfig, VoteResult};
use crate::raftpb::ConfState;

/// One [`Progress`] per member, by id.
pub type ProgressMap = BTreeMap<u64, Progress>;

/// The leader's acknowledged index per voter is its progress' `matched`.
impl AckedIndexer for ProgressMap {
    fn acked_index(&self, voter_id: u64) -> Option<u64> {
        self.get(&voter_id).map(|pr| pr.matched)
    }
}

/// A group's membership.
///
/// Invariants (checked by [`crate::confchange::check_invariants`]):
/// `learners` and the voters of both halves are disjoint; `learners_next`
/// is a subset of the outgoing voters (voters being demoted, who become
/// learners when the joint configuration is left) and is empty when not
/// joint; `auto_leave` is only set when joint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// The voters, in one or (during joint consensus) two halves.
    pub voters: JointConfig,
    /// Members that receive the log but do not vote.
    pub learners: BTreeSet<u64>,
    /// Outgoing voters that become learners when the joint configuration is
    /// left. They cannot be learners yet because they still vote in the
    /// outgoing half.
    pub learners_next: BTreeSet<u64>,
    /// Leave the joint configuration automatically once it is committed.
    pub auto_leave: bool,
}

impl Config {
    /// A non-joint configuration of `voters` and `learners`.
    pub fn new(voters: BTreeSet<u64>, learners: BTreeSet<u64>) -> Self {
        Self {
            voters: JointConfig::new(voters),
            learners,
            ..Self::default()
        }
    }

    /// True during joint consensus.
    pub fn is_joint(&self) -> bool {
        self.voters.is_joint()
    }
}

/// Writes `(1 2 3)`.
fn write_ids(f: &mut fmt::Formatter<'_>, ids: &BTreeSet<u64>) -> fmt::Result {
    f.write_str("(")?;
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            f.write_str(" ")?;
        }
        write!(f, "{id}")?;
    }
    f.write_str(")")
}

impl fmt::Display for Config {
    /// Formats as `voters=(1 2 3)&&(1 2) learners=(4) learners_next=(5)
    /// autoleave`; the voters always appear, the other parts only when
    /// non-empty (or set).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "voters={}", self.voters)?;
        if !self.learners.is_empty() {
            f.write_str(" learners=")?;
            write_ids(f, &self.learners)?;
        }
        if !self.learners_next.is_empty() {
            f.write_str(" learners_next=")?;
            write_ids(f, &self.learners_next)?;
        }
        if self.auto_leave {
            f.write_str(" autoleave")?;
        }
        Ok(())
    }
}

/// The membership, the progress of every member and the votes of the
/// current election.
///
/// Invariant: `progress` holds exactly the members of `config` (voters of
/// either half and learners), with `is_learner` set for the learners only.
#[derive(Debug, Clone)]
pub struct ProgressTracker {
    /// The current membership.
    pub config: Config,
    /// One entry per member of `config`.
    pub progress: ProgressMap,
    /// The votes received in the current election: granted or rejected.
    votes: BTreeMap<u64, bool>,
    /// The inflight message cap given to new progress.
    max_inflight_msgs: usize,
    /// The inflight byte cap given to new progress (`u64::MAX`: no limit).
    max_inflight_bytes: u64,
}

impl ProgressTracker {
    /// An empty tracker whose new members get inflight windows of
    /// `max_inflight_msgs` messages and `max_inflight_bytes` bytes.
    pub fn new(max_inflight_msgs: usize, max_inflight_bytes: u64) -> Self {
        Self {
            config: Config::default(),
            progress: ProgressMap::new(),
            votes: BTreeMap::new(),
            max_inflight_msgs,
            max_inflight_bytes,
        }
    }

    /// The inflight message cap of new members.
    pub fn max_inflight_msgs(&self) -> usize {
        self.max_inflight_msgs
    }

    /// The inflight byte cap of new members.
    pub fn max_inflight_bytes(&self) -> u64 {
        self.max_inflight_bytes
    }

    /// The membership as the wire type, every list ascending.
    pub fn conf_state(&self) -> ConfState {
        ConfState {
            voters: self.config.voters.incoming.ids().iter().copied().collect(),
            learners: self.config.learners.iter().copied().collect(),
            voters_outgoing: self.config.voters.outgoing.ids().iter().copied().collect(),
            learners_next: self.config.learners_next.iter().copied().collect(),
            auto_leave: self.config.auto_leave,
        }
    }

    /// True when a single voter decides everything (not joint, one voter).
    pub fn is_singleton(&self) -> bool {
        self.config.voters.is_singleton()
    }

    /// The progress of member `id`.
    pub fn get(&self, id: u64) -> Option<&Progress> {
        self.progress.get(&id)
    }

    /// The progress of member `id`, mutably.
    pub fn get_mut(&mut self, id: u64) -> Option<&mut Progress> {
        self.progress.get_mut(&id)
    }

    /// Every member's progress, by ascending id.
    pub fn iter(&self) -> btree_map::Iter<'_, u64, Progress> {
        self.progress.iter()
    }

    /// Every member's progress, mutably, by ascending id.
    pub fn iter_mut(&mut self) -> btree_map::IterMut<'_, u64, Progress> {
        self.progress.iter_mut()
    }

    /// The largest index the voters' `matched` show committed by the
    /// configuration's quorum. `u64::MAX` when there are no voters at all.
    pub fn committed(&self) -> u64 {
        self.config.voters.committed_index(&self.progress)
    }

    /// True when a quorum of voters has been recently active.
    pub fn quorum_active(&self) -> bool {
        let result = self
            .config
            .voters
            .vote_result(|id| self.progress.get(&id).map(|pr| pr.recent_active));
        result == VoteResult::Won
    }

    /// The voters of both halves, ascending.
    pub fn voter_nodes(&self) -> Vec<u64> {
        self.config.voters.ids().into_iter().collect()
    }

    /// The learners, ascending (not including `learners_next`, who are
    /// still voters).
    pub fn learner_nodes(&self) -> Vec<u64> {
        self.config.learners.iter().copied().collect()
    }

    /// Forgets the votes of the previous election.
    pub fn reset_votes(&mut self) {
        self.votes.clear();
    }

    /// Records `id`'s vote; only its first vote in an election counts.
    pub fn record_vote(&mut self, id: u64, granted: bool) {
        self.votes.entry(id).or_insert(granted);
    }

    /// `id`'s vote in the current election, if it has voted.
    pub fn vote_of(&self, id: u64) -> Option<bool> {
        self.votes.get(&id).copied()
    }

    /// Counts the current voters' votes: `(granted, rejected, result)`.
    /// Votes recorded from non-voters are ignored.
    pub fn tally_votes(&self) -> (usize, usize, VoteResult) {
        let (mut granted, mut rejected) = (0, 0);
        for id in self.config.voters.ids() {
            match self.votes.get(&id) {
                Some(true) => granted += 1,
                Some(false) => rejected += 1,
                None => {}
            }
        }
        let result = self
            .config
            .voters
            .vote_result(|id| self.votes.get(&id).copied());
        (granted, rejected, result)
    }

    /// Replaces the membership and the progress, typically with the result
    /// of a [`crate::confchange::Changer`].
    ///
    /// # Panics
    /// If `cfg` and `prs` break the tracker's invariants.
    pub fn apply_conf(&mut self, cfg: Config, prs: ProgressMap) {
        if let Err(e) = crate::confchange::check_invariants(&cfg, &prs) {
            panic!("tracker: applying an inconsistent configuration {cfg}: {e}");
        }
        tracing::debug!(config = %cfg, "tracker: configuration applied");
        self.config = cfg;
        self.progress = prs;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[u64]) -> BTreeSet<u64> {
        v.iter().copied().collect()
    }

    /// A tracker with the given voters and learners, every member probing
    /// from index 1.
    fn tracker(voters: &[u64], learners: &[u64]) -> ProgressTracker {
        let mut t = ProgressTracker::new(8, u64::MAX);
        let mut prs = ProgressMap::new();
        for &id in voters.iter().chain(learners) {
            let mut pr = Progress::new(1, 8, u64::MAX);
            pr.is_learner = learners.contains(&id);
            prs.insert(id, pr);
        }
        t.apply_conf(Config::new(ids(voters), ids(learners)), prs);
        t
    }

    #[test]
    fn config_display() {
        let mut c = Config::new(ids(&[1, 2, 3]), BTreeSet::new());
        assert_eq!(c.to_string(), "voters=(1 2 3)");
        c.voters.outgoing = ids(&[1, 2, 5]).into();
        c.learners = ids(&[4]);
        c.learners_next = ids(&[5]);
        c.auto_leave = true;
        assert_eq!(
            c.to_string(),
            "voters=(1 2 3)&&(1 2 5) learners=(4) learners_next=(5) autoleave"
        );
        assert_eq!(Config::default().to_string(), "voters=()");
    }

    #[test]
    fn committed_uses_voters_matched_only() {
        let mut t = tracker(&[1, 2, 3], &[4]);
        for (id, m) in [(1, 10), (2, 7), (3, 3), (4, 100)] {
            t.get_mut(id).unwrap().maybe_update(m);
        }
        assert_eq!(t.committed(), 7);
        t.get_mut(2).unwrap().matched = 2;
        assert_eq!(t.committed(), 3);
    }

    #[test]
    fn quorum_active_counts_recent_activity_of_voters() {
        let mut t = tracker(&[1, 2, 3], &[4]);
        assert!(!t.quorum_active());
        t.get_mut(1).unwrap().recent_active = true;
        t.get_mut(4).unwrap().recent_active = true;
        assert!(!t.quorum_active(), "a learner does not count");
        t.get_mut(3).unwrap().recent_active = true;
        assert!(t.quorum_active());
    }

    #[test]
    fn votes_are_tallied_over_current_voters() {
        let mut t = tracker(&[1, 2, 3, 4, 5], &[6]);
        t.record_vote(1, true);
        t.record_vote(1, false);
        t.record_vote(6, true);
        t.record_vote(9, true);
        assert_eq!(
            t.tally_votes(),
            (1, 0, VoteResult::Pending),
            "first vote wins"
        );
        t.record_vote(2, false);
        t.record_vote(3, false);
        assert_eq!(t.tally_votes(), (1, 2, VoteResult::Pending));
        t.record_vote(4, false);
        assert_eq!(t.tally_votes(), (1, 3, VoteResult::Lost));
        t.reset_votes();
        for id in [1, 2, 3] {
            t.record_vote(id, true);
        }
        assert_eq!(t.tally_votes(), (3, 0, VoteResult::Won));
    }

    #[test]
    fn conf_state_and_node_lists_are_sorted() {
        let t = tracker(&[3, 1, 2], &[5, 4]);
        let cs = t.conf_state();
        assert_eq!(cs.voters, vec![1, 2, 3]);
        assert_eq!(cs.learners, vec![4, 5]);
        assert!(cs.voters_outgoing.is_empty() && cs.learners_next.is_empty() && !cs.auto_leave);
        assert_eq!(t.voter_nodes(), vec![1, 2, 3]);
        assert_eq!(t.learner_nodes(), vec![4, 5]);
        assert!(!t.is_singleton());
        assert!(tracker(&[7], &[8]).is_singleton());
        let order: Vec<u64> = t.iter().map(|(id, _)| *id).collect();
        assert_eq!(order, vec![1, 2, 3, 4, 5]);
    }

    #[test]
    #[should_panic(expected = "no progress for 2")]
    fn apply_conf_rejects_missing_progress() {
        let mut t = ProgressTracker::new(8, u64::MAX);
        let mut prs = ProgressMap::new();
        prs.insert(1, Progress::new(1, 8, u64::MAX));
        t.apply_conf(Config::new(ids(&[1, 2]), BTreeSet::new()), prs);
    }
}
