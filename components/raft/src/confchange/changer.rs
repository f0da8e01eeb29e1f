//! Applies membership changes to a copy of a tracker's configuration.

use std::collections::BTreeSet;

use crate::raftpb::{ConfChangeSingle, ConfChangeType};
use crate::tracker::{Config, Progress, ProgressMap, ProgressTracker};
use crate::{Error, Result};

/// Shorthand for a membership change error.
fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::ConfChange(msg.into()))
}

/// Computes the configurations that result from membership changes to a
/// tracker, without touching the tracker.
#[derive(Debug, Clone, Copy)]
pub struct Changer<'a> {
    /// The tracker whose configuration is the starting point.
    tracker: &'a ProgressTracker,
    /// The leader's last log index, where new members start probing.
    last_index: u64,
}

impl<'a> Changer<'a> {
    /// A changer starting from `tracker`'s configuration. Members added by
    /// a change start probing at `last_index` (at least 1).
    pub fn new(tracker: &'a ProgressTracker, last_index: u64) -> Self {
        Self {
            tracker,
            last_index,
        }
    }

    /// Enters a joint configuration: the current voters become the outgoing
    /// half, and `ccs` is applied to the incoming half. With `auto_leave`
    /// the configuration is to be left automatically once committed.
    ///
    /// Fails if the configuration is already joint, has no voters, or the
    /// changes remove every incoming voter.
    pub fn enter_joint(
        &self,
        auto_leave: bool,
        ccs: &[ConfChangeSingle],
    ) -> Result<(Config, ProgressMap)> {
        let (mut cfg, mut prs) = self.check_and_copy()?;
        if cfg.is_joint() {
            return err("config is already joint");
        }
        if cfg.voters.incoming.is_empty() {
            return err("can't make a zero-voter config joint");
        }
        cfg.voters.outgoing = cfg.voters.incoming.clone();
        self.apply(&mut cfg, &mut prs, ccs)?;
        require_voters(&cfg)?;
        cfg.auto_leave = auto_leave;
        check_and_return(cfg, prs)
    }

    /// Leaves a joint configuration: the staged `learners_next` become
    /// learners, outgoing voters that are neither incoming voters nor
    /// learners lose their progress, and the outgoing half is dropped.
    ///
    /// Fails if the configuration is not joint.
    pub fn leave_joint(&self) -> Result<(Config, ProgressMap)> {
        let (mut cfg, mut prs) = self.check_and_copy()?;
        if !cfg.is_joint() {
            return err("can't leave a non-joint config");
        }
        for id in std::mem::take(&mut cfg.learners_next) {
            cfg.learners.insert(id);
            prs.get_mut(&id)
                .expect("invariants checked: learners_next have progress")
                .is_learner = true;
        }
        for &id in cfg.voters.outgoing.ids() {
            if !cfg.voters.incoming.contains(id) && !cfg.learners.contains(&id) {
                prs.remove(&id);
            }
        }
        cfg.voters.outgoing.clear();
        cfg.auto_leave = false;
        check_and_return(cfg, prs)
    }

    /// Applies `ccs` directly, without joint consensus. That is only safe
    /// when at most one voter is added or removed, so anything more is
    /// rejected, as is a change in a joint configuration or one that removes
    /// every voter.
    pub fn simple(&self, ccs: &[ConfChangeSingle]) -> Result<(Config, ProgressMap)> {
        let (mut cfg, mut prs) = self.check_and_copy()?;
        if cfg.is_joint() {
            return err("can't apply simple config change in joint config");
        }
        self.apply(&mut cfg, &mut prs, ccs)?;
        let before = self.tracker.config.voters.incoming.ids();
        let after = cfg.voters.incoming.ids();
        if before.symmetric_difference(after).count() > 1 {
            return err("more than one voter changed without entering joint config");
        }
        require_voters(&cfg)?;
        check_and_return(cfg, prs)
    }

    /// Applies `ccs` in order with none of the limits of
    /// [`simple`](Self::simple): any number of voters may change and the
    /// result may have no voters. For rebuilding a configuration that is
    /// already known to be valid (see [`restore`](super::restore)).
    pub(super) fn apply_unlimited(
        &self,
        ccs: &[ConfChangeSingle],
    ) -> Result<(Config, ProgressMap)> {
        let (mut cfg, mut prs) = self.check_and_copy()?;
        self.apply(&mut cfg, &mut prs, ccs)?;
        check_and_return(cfg, prs)
    }

    /// Copies the tracker's configuration and progress, after checking that
    /// they are consistent to begin with.
    fn check_and_copy(&self) -> Result<(Config, ProgressMap)> {
        let cfg = self.tracker.config.clone();
        let prs = self.tracker.progress.clone();
        check_invariants(&cfg, &prs)?;
        Ok((cfg, prs))
    }

    /// Applies each change in turn to `cfg` and `prs`; changes to node 0 are
    /// ignored.
    fn apply(
        &self,
        cfg: &mut Config,
        prs: &mut ProgressMap,
        ccs: &[ConfChangeSingle],
    ) -> Result<()> {
        for cc in ccs {
            if cc.node_id == 0 {
                continue;
            }
            let Ok(change_type) = ConfChangeType::try_from(cc.change_type) else {
                return err(format!(
                    "unknown change type {} for node {}",
                    cc.change_type, cc.node_id
                ));
            };
            match change_type {
                ConfChangeType::AddNode => self.make_voter(cfg, prs, cc.node_id),
                ConfChangeType::AddLearnerNode => self.make_learner(cfg, prs, cc.node_id),
                ConfChangeType::RemoveNode => remove(cfg, prs, cc.node_id),
            }
        }
        Ok(())
    }

    /// Makes `id` an incoming voter, adding it if it is unknown.
    fn make_voter(&self, cfg: &mut Config, prs: &mut ProgressMap, id: u64) {
        match prs.get_mut(&id) {
            None => {
                prs.insert(id, self.new_progress(false));
            }
            Some(pr) => {
                pr.is_learner = false;
                cfg.learners.remove(&id);
                cfg.learners_next.remove(&id);
            }
        }
        cfg.voters.incoming.insert(id);
    }

    /// Makes `id` a learner, adding it if it is unknown. A voter of the
    /// outgoing half cannot stop voting before the joint configuration is
    /// left, so it is staged in `learners_next` instead.
    fn make_learner(&self, cfg: &mut Config, prs: &mut ProgressMap, id: u64) {
        let Some(pr) = prs.get(&id) else {
            prs.insert(id, self.new_progress(true));
            cfg.learners.insert(id);
            return;
        };
        if pr.is_learner {
            return;
        }
        // An existing voter (or staged learner): it keeps its progress.
        cfg.voters.incoming.remove(id);
        cfg.learners_next.remove(&id);
        if cfg.voters.outgoing.contains(id) {
            cfg.learners_next.insert(id);
        } else {
            prs.get_mut(&id)
                .expect("progress looked up above")
                .is_learner = true;
            cfg.learners.insert(id);
        }
    }

    /// The progress of a member just added: probing from the last index,
    /// and counted as active so that it does not weigh against the quorum
    /// before it had a chance to answer.
    fn new_progress(&self, is_learner: bool) -> Progress {
        let mut pr = Progress::new(
            self.last_index.max(1),
            self.tracker.max_inflight_msgs(),
            self.tracker.max_inflight_bytes(),
        );
        pr.recent_active = true;
        pr.is_learner = is_learner;
        pr
    }
}

/// Removes `id` from the incoming voters and the learners. Its progress is
/// dropped unless it still votes in the outgoing half.
fn remove(cfg: &mut Config, prs: &mut ProgressMap, id: u64) {
    if !prs.contains_key(&id) {
        return;
    }
    cfg.voters.incoming.remove(id);
    cfg.learners.remove(&id);
    cfg.learners_next.remove(&id);
    if !cfg.voters.outgoing.contains(id) {
        prs.remove(&id);
    }
}

/// Fails when the incoming half has no voters left.
fn require_voters(cfg: &Config) -> Result<()> {
    if cfg.voters.incoming.is_empty() {
        return err("removed all voters");
    }
    Ok(())
}

/// Checks the result of a change before handing it out.
fn check_and_return(cfg: Config, prs: ProgressMap) -> Result<(Config, ProgressMap)> {
    check_invariants(&cfg, &prs)?;
    Ok((cfg, prs))
}

/// Checks that `cfg` and `prs` are consistent:
/// - every member (voter of either half, learner, staged learner) has
///   progress, and every progress belongs to a member;
/// - `learners_next` are outgoing voters, and not marked as learners;
/// - learners vote in neither half, and are marked as learners;
/// - voters that are not staged learners are not marked as learners;
/// - outside joint consensus, `learners_next` is empty and `auto_leave` is
///   unset.
pub fn check_invariants(cfg: &Config, prs: &ProgressMap) -> Result<()> {
    let voters = cfg.voters.ids();
    let members: BTreeSet<u64> = voters
        .iter()
        .chain(&cfg.learners)
        .chain(&cfg.learners_next)
        .copied()
        .collect();
    if let Some(id) = members.iter().find(|id| !prs.contains_key(id)) {
        return err(format!("no progress for {id}"));
    }
    if let Some(id) = prs.keys().find(|id| !members.contains(id)) {
        return err(format!("progress for {id}, which is not a member"));
    }
    for &id in &cfg.learners_next {
        if !cfg.voters.outgoing.contains(id) {
            return err(format!(
                "{id} is in learners_next but is not an outgoing voter"
            ));
        }
        if prs[&id].is_learner {
            return err(format!(
                "{id} is in learners_next but is already marked as learner"
            ));
        }
    }
    for &id in &cfg.learners {
        if cfg.voters.incoming.contains(id) {
            return err(format!("{id} is both a learner and an incoming voter"));
        }
        if cfg.voters.outgoing.contains(id) {
            return err(format!("{id} is both a learner and an outgoing voter"));
        }
        if !prs[&id].is_learner {
            return err(format!("{id} is a learner but is not marked as learner"));
        }
    }
    if let Some(id) = voters.iter().find(|id| prs[id].is_learner) {
        return err(format!("{id} is a voter but is marked as learner"));
    }
    if !cfg.is_joint() && cfg.auto_leave {
        return err("auto_leave is set but the config is not joint");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::confchange::describe;

    /// Parses `"v1 l2 r3"`: `v` adds a voter, `l` a learner, `r` removes.
    fn ccs(s: &str) -> Vec<ConfChangeSingle> {
        s.split_whitespace()
            .map(|tok| {
                let change_type = match &tok[..1] {
                    "v" => ConfChangeType::AddNode,
                    "l" => ConfChangeType::AddLearnerNode,
                    "r" => ConfChangeType::RemoveNode,
                    other => panic!("bad change {other}"),
                };
                ConfChangeSingle {
                    change_type: change_type as i32,
                    node_id: tok[1..].parse().unwrap(),
                }
            })
            .collect()
    }

    /// Which changer operation a step runs.
    enum Op<'s> {
        Simple(&'s str),
        Enter(bool, &'s str),
        Leave,
    }

    /// Runs `op` against `t` at `last_index`, installing the result on
    /// success. Returns the description, or the error message.
    fn step(t: &mut ProgressTracker, last_index: u64, op: Op<'_>) -> String {
        let before = t.clone();
        let changer = Changer::new(t, last_index);
        let res = match op {
            Op::Simple(s) => changer.simple(&ccs(s)),
            Op::Enter(auto_leave, s) => changer.enter_joint(auto_leave, &ccs(s)),
            Op::Leave => changer.leave_joint(),
        };
        assert_eq!(
            t.config, before.config,
            "the changer must not touch the tracker"
        );
        assert_eq!(
            t.progress, before.progress,
            "the changer must not touch the tracker"
        );
        match res {
            Ok((cfg, prs)) => {
                let out = describe(&cfg, &prs);
                t.apply_conf(cfg, prs);
                out
            }
            Err(Error::ConfChange(msg)) => msg,
            Err(e) => panic!("unexpected error kind {e}"),
        }
    }

    fn tracker() -> ProgressTracker {
        ProgressTracker::new(16, 1 << 20)
    }

    #[test]
    fn simple_adds_and_removes_one_voter_at_a_time() {
        let mut t = tracker();
        assert_eq!(
            step(&mut t, 0, Op::Simple("v1")),
            "voters=(1)\n1: StateProbe match=0 next=1"
        );
        assert_eq!(
            step(&mut t, 10, Op::Simple("v2 l3")),
            "voters=(1 2) learners=(3)\n\
             1: StateProbe match=0 next=1\n\
             2: StateProbe match=0 next=10\n\
             3: StateProbe match=0 next=10 learner"
        );
        // Promoting a learner is a one-voter change.
        assert_eq!(
            step(&mut t, 11, Op::Simple("v3")),
            "voters=(1 2 3)\n\
             1: StateProbe match=0 next=1\n\
             2: StateProbe match=0 next=10\n\
             3: StateProbe match=0 next=10"
        );
        // Demoting a voter too; it keeps its progress.
        assert_eq!(
            step(&mut t, 12, Op::Simple("l3")),
            "voters=(1 2) learners=(3)\n\
             1: StateProbe match=0 next=1\n\
             2: StateProbe match=0 next=10\n\
             3: StateProbe match=0 next=10 learner"
        );
        assert_eq!(
            step(&mut t, 12, Op::Simple("r2 r3")),
            "voters=(1)\n1: StateProbe match=0 next=1"
        );
        // Adding and removing the same voter is no voter change at all.
        assert_eq!(
            step(&mut t, 12, Op::Simple("v4 r4 l5 r5")),
            "voters=(1)\n1: StateProbe match=0 next=1"
        );
        // Changes to node 0 are ignored.
        assert_eq!(
            step(&mut t, 12, Op::Simple("v0 r0")),
            "voters=(1)\n1: StateProbe match=0 next=1"
        );
    }

    #[test]
    fn simple_rejections() {
        let mut t = tracker();
        assert_eq!(step(&mut t, 1, Op::Simple("l1")), "removed all voters");
        assert_eq!(
            step(&mut t, 1, Op::Simple("v1 v2")),
            "more than one voter changed without entering joint config"
        );
        step(&mut t, 1, Op::Simple("v1"));
        step(&mut t, 1, Op::Simple("v2"));
        assert_eq!(
            step(&mut t, 1, Op::Simple("r1 v3")),
            "more than one voter changed without entering joint config"
        );
        assert_eq!(
            step(&mut t, 1, Op::Simple("l1 l2")),
            "more than one voter changed without entering joint config"
        );
        step(&mut t, 1, Op::Simple("r2"));
        assert_eq!(step(&mut t, 1, Op::Simple("r1")), "removed all voters");
        assert_eq!(step(&mut t, 1, Op::Simple("l1")), "removed all voters");
        step(&mut t, 1, Op::Enter(false, "v2"));
        assert_eq!(
            step(&mut t, 1, Op::Simple("v3")),
            "can't apply simple config change in joint config"
        );
    }

    #[test]
    fn unknown_change_type_is_rejected() {
        let t = tracker();
        let bad = [ConfChangeSingle {
            change_type: 42,
            node_id: 1,
        }];
        let e = Changer::new(&t, 1).simple(&bad).unwrap_err();
        assert_eq!(
            e,
            Error::ConfChange("unknown change type 42 for node 1".into())
        );
    }

    #[test]
    fn enter_and_leave_joint_with_demotion_and_removal() {
        let mut t = tracker();
        step(&mut t, 1, Op::Simple("v1"));
        step(&mut t, 1, Op::Simple("v2"));
        step(&mut t, 1, Op::Simple("v3"));
        step(&mut t, 1, Op::Simple("l5"));
        assert_eq!(
            step(&mut t, 7, Op::Enter(true, "v4 l3 r2 v5")),
            "voters=(1 4 5)&&(1 2 3) learners_next=(3) autoleave\n\
             1: StateProbe match=0 next=1\n\
             2: StateProbe match=0 next=1\n\
             3: StateProbe match=0 next=1\n\
             4: StateProbe match=0 next=7\n\
             5: StateProbe match=0 next=1"
        );
        assert_eq!(t.conf_state().learners_next, vec![3]);
        assert_eq!(
            step(&mut t, 8, Op::Leave),
            "voters=(1 4 5) learners=(3)\n\
             1: StateProbe match=0 next=1\n\
             3: StateProbe match=0 next=1 learner\n\
             4: StateProbe match=0 next=7\n\
             5: StateProbe match=0 next=1"
        );
    }

    #[test]
    fn enter_joint_demote_then_promote_again() {
        let mut t = tracker();
        step(&mut t, 1, Op::Simple("v1"));
        step(&mut t, 1, Op::Simple("v2"));
        assert_eq!(
            step(&mut t, 1, Op::Enter(false, "l2 v2 l3 r3")),
            "voters=(1 2)&&(1 2)\n\
             1: StateProbe match=0 next=1\n\
             2: StateProbe match=0 next=1"
        );
        assert_eq!(
            step(&mut t, 1, Op::Leave),
            "voters=(1 2)\n1: StateProbe match=0 next=1\n2: StateProbe match=0 next=1"
        );
    }

    #[test]
    fn enter_joint_demote_and_remove_staged_learner() {
        let mut t = tracker();
        step(&mut t, 1, Op::Simple("v1"));
        step(&mut t, 1, Op::Simple("v2"));
        // 2 is staged, then removed outright: it leaves learners_next but
        // keeps progress while it votes in the outgoing half.
        assert_eq!(
            step(&mut t, 1, Op::Enter(false, "l2 r2 v3")),
            "voters=(1 3)&&(1 2)\n\
             1: StateProbe match=0 next=1\n\
             2: StateProbe match=0 next=1\n\
             3: StateProbe match=0 next=1"
        );
        assert_eq!(
            step(&mut t, 1, Op::Leave),
            "voters=(1 3)\n1: StateProbe match=0 next=1\n3: StateProbe match=0 next=1"
        );
    }

    #[test]
    fn enter_joint_promotes_learners_directly() {
        let mut t = tracker();
        step(&mut t, 1, Op::Simple("v1"));
        step(&mut t, 1, Op::Simple("l2"));
        step(&mut t, 1, Op::Simple("l3"));
        assert_eq!(
            step(&mut t, 1, Op::Enter(false, "v2 l1 l3")),
            "voters=(2)&&(1) learners=(3) learners_next=(1)\n\
             1: StateProbe match=0 next=1\n\
             2: StateProbe match=0 next=1\n\
             3: StateProbe match=0 next=1 learner"
        );
        assert_eq!(
            step(&mut t, 1, Op::Leave),
            "voters=(2) learners=(1 3)\n\
             1: StateProbe match=0 next=1 learner\n\
             2: StateProbe match=0 next=1\n\
             3: StateProbe match=0 next=1 learner"
        );
    }

    #[test]
    fn joint_rejections() {
        let mut t = tracker();
        assert_eq!(
            step(&mut t, 1, Op::Enter(false, "v1")),
            "can't make a zero-voter config joint"
        );
        assert_eq!(step(&mut t, 1, Op::Leave), "can't leave a non-joint config");
        step(&mut t, 1, Op::Simple("v1"));
        step(&mut t, 1, Op::Simple("v2"));
        assert_eq!(
            step(&mut t, 1, Op::Enter(false, "r1 l2")),
            "removed all voters"
        );
        assert_eq!(step(&mut t, 1, Op::Leave), "can't leave a non-joint config");
        step(&mut t, 1, Op::Enter(true, "v3"));
        assert_eq!(
            step(&mut t, 1, Op::Enter(false, "v4")),
            "config is already joint"
        );
        assert_eq!(
            step(&mut t, 1, Op::Enter(true, "")),
            "config is already joint"
        );
        step(&mut t, 1, Op::Leave);
        assert_eq!(t.config.to_string(), "voters=(1 2 3)");
    }

    #[test]
    fn enter_joint_without_changes() {
        let mut t = tracker();
        step(&mut t, 1, Op::Simple("v1"));
        assert_eq!(
            step(&mut t, 1, Op::Enter(true, "")),
            "voters=(1)&&(1) autoleave\n1: StateProbe match=0 next=1"
        );
        assert!(!t.is_singleton());
        step(&mut t, 1, Op::Leave);
        assert!(t.is_singleton());
    }

    #[test]
    fn new_members_start_active_with_the_trackers_caps() {
        let t = ProgressTracker::new(3, 500);
        let (_, prs) = Changer::new(&t, 9).simple(&ccs("v1")).unwrap();
        let pr = &prs[&1];
        assert_eq!(
            (pr.matched, pr.next_idx, pr.state),
            (0, 9, crate::tracker::ProgressState::Probe)
        );
        assert!(pr.recent_active && !pr.is_learner && !pr.probe_sent);
        assert_eq!(
            (pr.inflights.cap_count(), pr.inflights.cap_bytes()),
            (3, 500)
        );
    }

    #[test]
    fn existing_progress_is_kept_across_changes() {
        let mut t = tracker();
        step(&mut t, 1, Op::Simple("v1"));
        step(&mut t, 1, Op::Simple("v2"));
        t.get_mut(2).unwrap().maybe_update(5);
        t.get_mut(2).unwrap().become_replicate();
        assert_eq!(
            step(&mut t, 9, Op::Simple("l2")),
            "voters=(1) learners=(2)\n\
             1: StateProbe match=0 next=1\n\
             2: StateReplicate match=5 next=6 learner"
        );
    }

    #[test]
    fn invariant_violations_are_reported() {
        let ids = |v: &[u64]| v.iter().copied().collect::<BTreeSet<u64>>();
        let pr = |learner: bool| {
            let mut pr = Progress::new(1, 4, u64::MAX);
            pr.is_learner = learner;
            pr
        };
        let prs = |v: &[(u64, bool)]| {
            v.iter()
                .map(|&(id, l)| (id, pr(l)))
                .collect::<ProgressMap>()
        };
        let joint = |inc: &[u64], out: &[u64]| {
            let mut c = Config::new(ids(inc), BTreeSet::new());
            c.voters.outgoing = ids(out).into();
            c
        };
        let msg = |cfg: &Config, p: &ProgressMap| match check_invariants(cfg, p) {
            Err(Error::ConfChange(m)) => m,
            other => panic!("expected an error for {cfg}, got {other:?}"),
        };

        let cfg = Config::new(ids(&[1, 2]), BTreeSet::new());
        assert_eq!(msg(&cfg, &prs(&[(1, false)])), "no progress for 2");
        assert_eq!(
            msg(&cfg, &prs(&[(1, false), (2, false), (3, false)])),
            "progress for 3, which is not a member"
        );
        assert_eq!(
            msg(&cfg, &prs(&[(1, false), (2, true)])),
            "2 is a voter but is marked as learner"
        );

        let cfg = Config::new(ids(&[1]), ids(&[1]));
        assert_eq!(
            msg(&cfg, &prs(&[(1, true)])),
            "1 is both a learner and an incoming voter"
        );
        let cfg = Config::new(ids(&[1]), ids(&[2]));
        assert_eq!(
            msg(&cfg, &prs(&[(1, false), (2, false)])),
            "2 is a learner but is not marked as learner"
        );

        let mut cfg = joint(&[1], &[2]);
        cfg.learners = ids(&[2]);
        assert_eq!(
            msg(&cfg, &prs(&[(1, false), (2, true)])),
            "2 is both a learner and an outgoing voter"
        );

        let mut cfg = joint(&[1], &[2]);
        cfg.learners_next = ids(&[1]);
        assert_eq!(
            msg(&cfg, &prs(&[(1, false), (2, false)])),
            "1 is in learners_next but is not an outgoing voter"
        );
        cfg.learners_next = ids(&[2]);
        assert_eq!(
            msg(&cfg, &prs(&[(1, false), (2, true)])),
            "2 is in learners_next but is already marked as learner"
        );

        let mut cfg = Config::new(ids(&[1]), BTreeSet::new());
        cfg.auto_leave = true;
        assert_eq!(
            msg(&cfg, &prs(&[(1, false)])),
            "auto_leave is set but the config is not joint"
        );

        // A broken tracker is refused before any change is computed.
        let mut t = tracker();
        t.config = Config::new(ids(&[1]), BTreeSet::new());
        assert_eq!(
            Changer::new(&t, 1).simple(&[]).unwrap_err(),
            Error::ConfChange("no progress for 1".into())
        );
    }
}
