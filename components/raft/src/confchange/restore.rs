//! Rebuilds a configuration from its wire form ([`ConfState`]), as found in
//! a snapshot or in the persisted state of a restarting peer.

use super::Changer;
use crate::raftpb::{ConfChangeSingle, ConfChangeType, ConfState};
use crate::tracker::{Config, ProgressMap, ProgressTracker};
use crate::{Error, Result};

/// One change of `change_type` per id.
fn changes(change_type: ConfChangeType, ids: &[u64]) -> Vec<ConfChangeSingle> {
    ids.iter()
        .map(|&id| ConfChangeSingle {
            change_type: change_type as i32,
            node_id: id,
        })
        .collect()
}

/// `cs` with every list sorted and deduplicated, for comparison.
fn normalized(cs: &ConfState) -> ConfState {
    let norm = |v: &[u64]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v.dedup();
        v
    };
    ConfState {
        voters: norm(&cs.voters),
        learners: norm(&cs.learners),
        voters_outgoing: norm(&cs.voters_outgoing),
        learners_next: norm(&cs.learners_next),
        auto_leave: cs.auto_leave,
    }
}

/// Rebuilds the configuration described by `cs`, with fresh progress for
/// every member (probing from `last_index`, inflight caps taken from
/// `tracker`). `tracker`'s own configuration is ignored and left untouched.
///
/// The configuration is built from empty through ordinary changes, so the
/// result obeys every invariant a [`Changer`] enforces:
/// - not joint: add each voter, then each learner;
/// - joint: add each outgoing voter, then enter the joint configuration by
///   removing all of them again from the incoming half and adding the
///   voters, the learners and the staged learners (`learners_next`, who are
///   outgoing voters and so get staged again).
///
/// Fails if `cs` is not a valid configuration, i.e. if the rebuilt one
/// would not describe itself as `cs` (lists compared sorted and without
/// duplicates).
pub fn restore(
    tracker: &ProgressTracker,
    last_index: u64,
    cs: &ConfState,
) -> Result<(Config, ProgressMap)> {
    let mut work = ProgressTracker::new(tracker.max_inflight_msgs(), tracker.max_inflight_bytes());
    if cs.is_joint() {
        let outgoing = changes(ConfChangeType::AddNode, &cs.voters_outgoing);
        let (cfg, prs) = Changer::new(&work, last_index).apply_unlimited(&outgoing)?;
        work.apply_conf(cfg, prs);
        let mut incoming = changes(ConfChangeType::RemoveNode, &cs.voters_outgoing);
        incoming.extend(changes(ConfChangeType::AddNode, &cs.voters));
        incoming.extend(changes(ConfChangeType::AddLearnerNode, &cs.learners));
        incoming.extend(changes(ConfChangeType::AddLearnerNode, &cs.learners_next));
        let (cfg, prs) = Changer::new(&work, last_index).enter_joint(cs.auto_leave, &incoming)?;
        work.apply_conf(cfg, prs);
    } else {
        let mut all = changes(ConfChangeType::AddNode, &cs.voters);
        all.extend(changes(ConfChangeType::AddLearnerNode, &cs.learners));
        all.extend(changes(ConfChangeType::AddLearnerNode, &cs.learners_next));
        let (cfg, prs) = Changer::new(&work, last_index).apply_unlimited(&all)?;
        work.apply_conf(cfg, prs);
    }
    let got = work.conf_state();
    if got != normalized(cs) {
        return Err(Error::ConfChange(format!(
            "conf state {cs:?} is not a valid configuration (it restores as {got:?})"
        )));
    }
    Ok((work.config, work.progress))
}

#[cfg(test)]
mod tests {
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::confchange::describe;

    fn cs(
        voters: &[u64],
        learners: &[u64],
        outgoing: &[u64],
        next: &[u64],
        auto: bool,
    ) -> ConfState {
        ConfState {
            voters: voters.to_vec(),
            learners: learners.to_vec(),
            voters_outgoing: outgoing.to_vec(),
            learners_next: next.to_vec(),
            auto_leave: auto,
        }
    }

    /// Restores `want` and checks that it describes itself as `want` again.
    fn round_trip(want: &ConfState) {
        let t = ProgressTracker::new(8, u64::MAX);
        let (cfg, prs) = restore(&t, 10, want).unwrap_or_else(|e| panic!("{want:?}: {e}"));
        let mut back = ProgressTracker::new(8, u64::MAX);
        back.apply_conf(cfg, prs);
        assert_eq!(
            back.conf_state(),
            normalized(want),
            "round trip of {want:?}"
        );
        assert!(
            t.config == Config::default() && t.progress.is_empty(),
            "tracker untouched"
        );
    }

    #[test]
    fn restores_fixed_conf_states() {
        let cases = [
            cs(&[], &[], &[], &[], false),
            cs(&[1, 2, 3], &[], &[], &[], false),
            cs(&[1, 2, 3], &[4, 5], &[], &[], false),
            cs(&[], &[4], &[], &[], false),
            cs(&[3, 1, 2], &[5, 4], &[], &[], false),
            cs(&[1, 2, 3], &[], &[1, 2, 3], &[], false),
            cs(&[1, 2, 3], &[], &[1, 2, 3], &[], true),
            cs(&[1, 2, 3], &[6], &[3, 4, 5], &[], true),
            cs(&[1, 2], &[7], &[1, 2, 3], &[3], false),
            cs(&[8], &[1, 2], &[3, 4], &[3, 4], true),
        ];
        for want in &cases {
            round_trip(want);
        }
    }

    #[test]
    fn restored_members_probe_from_last_index() {
        let t = ProgressTracker::new(4, 1000);
        let (cfg, prs) = restore(&t, 7, &cs(&[1, 2], &[3], &[1, 4], &[4], true)).unwrap();
        assert_eq!(
            describe(&cfg, &prs),
            "voters=(1 2)&&(1 4) learners=(3) learners_next=(4) autoleave\n\
             1: StateProbe match=0 next=7\n\
             2: StateProbe match=0 next=7\n\
             3: StateProbe match=0 next=7 learner\n\
             4: StateProbe match=0 next=7"
        );
        assert_eq!(prs[&3].inflights.cap_bytes(), 1000);
    }

    /// A random valid conf state over ids 1..=n.
    fn random_conf_state(rng: &mut ChaCha8Rng, n: u64) -> ConfState {
        let mut c = ConfState::default();
        let joint = rng.random_bool(0.5);
        for id in 1..=n {
            // 0: absent, 1: incoming voter, 2: learner, 3: outgoing voter,
            // 4: incoming and outgoing voter, 5: outgoing voter staged as learner.
            let role = rng.random_range(0..if joint { 6 } else { 3 });
            match role {
                1 => c.voters.push(id),
                2 => c.learners.push(id),
                3 => c.voters_outgoing.push(id),
                4 => {
                    c.voters.push(id);
                    c.voters_outgoing.push(id);
                }
                5 => {
                    c.voters_outgoing.push(id);
                    c.learners_next.push(id);
                }
                _ => {}
            }
        }
        if c.is_joint() {
            if c.voters.is_empty() {
                c.voters.push(n + 1);
            }
            c.auto_leave = rng.random_bool(0.5);
        }
        c
    }

    #[test]
    fn restores_random_conf_states() {
        flotilla_testkit::for_each_seed("restores_random_conf_states", 500, |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let n = rng.random_range(0..10);
            let mut want = random_conf_state(&mut rng, n);
            // Order on the wire does not matter.
            want.voters.reverse();
            round_trip(&want);
        });
    }

    #[test]
    fn rejects_invalid_conf_states() {
        let t = ProgressTracker::new(8, u64::MAX);
        let invalid = [
            // A voter that is also a learner.
            cs(&[1], &[1], &[], &[], false),
            // A learner that votes in the outgoing half.
            cs(&[1], &[2], &[2], &[], false),
            // Staged learners outside joint consensus or outside the
            // outgoing half.
            cs(&[1], &[], &[], &[2], false),
            cs(&[1], &[], &[2], &[3], false),
            // Auto-leave outside joint consensus.
            cs(&[1], &[], &[], &[], true),
            // Joint with no incoming voters.
            cs(&[], &[], &[1], &[], false),
            // Node 0.
            cs(&[0, 1], &[], &[], &[], false),
        ];
        for bad in &invalid {
            match restore(&t, 1, bad) {
                Err(Error::ConfChange(_)) => {}
                other => panic!("{bad:?} should be rejected, got {other:?}"),
            }
        }
    }
}
