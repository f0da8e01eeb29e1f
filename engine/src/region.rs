//! Helpers over `metapb::Region`: key-range checks and the raft membership
//! a region's peers describe.

use flotilla_proto::metapb::{PeerRole, Region};
use flotilla_proto::raftpb::ConfState;

use crate::error::{Error, Result};

/// True when `key` lies in the region's range `[start_key, end_key)`
/// (an empty `end_key` is unbounded).
pub fn region_contains(region: &Region, key: &[u8]) -> bool {
    key >= region.start_key.as_ref() && (region.end_key.is_empty() || key < region.end_key.as_ref())
}

/// `Error::OutOfRange` unless `key` lies in the region. The key itself is
/// not put in the message: user keys are never logged by default.
pub fn check_key_in_region(region: &Region, key: &[u8]) -> Result<()> {
    if region_contains(region, key) {
        Ok(())
    } else {
        Err(Error::out_of_range(format!(
            "key ({} bytes) is outside region {}",
            key.len(),
            region.id
        )))
    }
}

/// The raft membership the region's peers describe.
///
/// Without a transitional role the configuration is simple: `Voter`s are
/// voters and `Learner`s learners. With an `IncomingVoter` or a
/// `DemotingVoter` present it is joint: the incoming voters are the voters
/// and incoming voters; the outgoing voters are the voters and demoting
/// voters; demoting voters become learners when the joint configuration is
/// left (`learners_next`). `auto_leave` is not recorded in the region and is
/// reported as false: the store leaves a joint configuration explicitly.
pub fn conf_state_from_region(region: &Region) -> ConfState {
    let joint = region
        .peers
        .iter()
        .any(|p| matches!(p.role(), PeerRole::IncomingVoter | PeerRole::DemotingVoter));
    let mut cs = ConfState::default();
    for p in &region.peers {
        match p.role() {
            PeerRole::Voter => {
                cs.voters.push(p.id);
                if joint {
                    cs.voters_outgoing.push(p.id);
                }
            }
            PeerRole::Learner => cs.learners.push(p.id),
            PeerRole::IncomingVoter => cs.voters.push(p.id),
            PeerRole::DemotingVoter => {
                cs.voters_outgoing.push(p.id);
                cs.learners_next.push(p.id);
            }
        }
    }
    cs
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use flotilla_proto::metapb::Peer;

    fn peer(id: u64, role: PeerRole) -> Peer {
        Peer {
            id,
            store_id: id,
            role: role as i32,
        }
    }

    fn region(start: &'static [u8], end: &'static [u8]) -> Region {
        Region {
            id: 1,
            start_key: Bytes::from_static(start),
            end_key: Bytes::from_static(end),
            ..Default::default()
        }
    }

    #[test]
    fn range_is_half_open_and_empty_end_is_unbounded() {
        let r = region(b"b", b"d");
        assert!(!region_contains(&r, b"a"));
        assert!(region_contains(&r, b"b"));
        assert!(region_contains(&r, b"c\xff"));
        assert!(!region_contains(&r, b"d"));
        let all = region(b"", b"");
        assert!(region_contains(&all, b""));
        assert!(region_contains(&all, b"\xff\xff"));
        assert!(check_key_in_region(&r, b"e").is_err());
    }

    #[test]
    fn simple_membership_from_voters_and_learners() {
        let mut r = region(b"", b"");
        r.peers = vec![
            peer(1, PeerRole::Voter),
            peer(2, PeerRole::Learner),
            peer(3, PeerRole::Voter),
        ];
        let cs = conf_state_from_region(&r);
        assert_eq!(cs.voters, vec![1, 3]);
        assert_eq!(cs.learners, vec![2]);
        assert!(!cs.is_joint());
    }

    #[test]
    fn joint_membership_from_transitional_roles() {
        let mut r = region(b"", b"");
        r.peers = vec![
            peer(1, PeerRole::Voter),
            peer(2, PeerRole::IncomingVoter),
            peer(3, PeerRole::DemotingVoter),
            peer(4, PeerRole::Learner),
        ];
        let cs = conf_state_from_region(&r);
        assert_eq!(cs.voters, vec![1, 2]);
        assert_eq!(cs.voters_outgoing, vec![1, 3]);
        assert_eq!(cs.learners, vec![4]);
        assert_eq!(cs.learners_next, vec![3]);
        assert!(!cs.auto_leave);
    }
}
