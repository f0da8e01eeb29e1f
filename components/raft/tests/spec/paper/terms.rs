//! §5.1: terms act as a logical clock.

use flotilla_raft::StateRole;
use flotilla_raft::raftpb::MessageType;

use super::harness::{
    PeerSpec, append, drive_to, flush, indexed, log_of, msg, take_queued, vote_request,
};

/// §5.1: "If one server's current term is smaller than the other's, then it
/// updates its current term to the larger value. If a candidate or leader
/// discovers that its term is out of date, it immediately reverts to
/// follower state."
#[test]
fn a_peer_of_any_role_that_sees_a_higher_term_adopts_it_and_follows() {
    let roles = [
        StateRole::Follower,
        StateRole::PreCandidate,
        StateRole::Candidate,
        StateRole::Leader,
    ];
    // The message of term 5 from peer 2, and the leader it reveals.
    let messages = [
        (append(2, 1, 5, (0, 0), &[], 0), 2),
        (msg(MessageType::MsgHeartbeat, 2, 1, 5), 2),
        (
            vote_request(MessageType::MsgRequestVote, 2, 1, 5, (9, 4)),
            0,
        ),
        (msg(MessageType::MsgAppendResponse, 2, 1, 5), 0),
        (msg(MessageType::MsgHeartbeatResponse, 2, 1, 5), 0),
    ];
    for role in roles {
        for (m, lead) in &messages {
            let t = m.msg_type();
            let pre_vote = role == StateRole::PreCandidate;
            let mut p = PeerSpec::new(1, &[1, 2, 3])
                .term(1)
                .pre_vote(pre_vote)
                .build();
            drive_to(&mut p, role);
            p.step(m.clone()).expect("step");
            let r = &p.raft;
            assert_eq!(r.term, 5, "{role} stepping {t:?}");
            assert_eq!(r.state, StateRole::Follower, "{role} stepping {t:?}");
            assert_eq!(r.lead, *lead, "{role} stepping {t:?}");
            if t != MessageType::MsgRequestVote {
                assert_eq!(
                    r.vote, 0,
                    "{role} stepping {t:?}: a new term starts unvoted"
                );
            }
        }
    }
}

/// §5.1: "If a server receives a request with a stale term number, it
/// rejects the request." Nothing about the peer changes, and in plain raft
/// it does not even answer.
#[test]
fn a_peer_ignores_requests_from_a_stale_term() {
    let stale = [
        // Would replace entry 2 and commit it.
        append(2, 1, 1, (1, 1), &[1], 2),
        // Would commit entry 2.
        msg(MessageType::MsgHeartbeat, 2, 1, 1),
        // Would win our vote: its log is longer.
        vote_request(MessageType::MsgRequestVote, 2, 1, 1, (5, 2)),
    ];
    for m in stale {
        let t = m.msg_type();
        let mut p = PeerSpec::new(1, &[1, 2, 3])
            .log(&[1, 2])
            .term(3)
            .commit(1)
            .build();
        p.step(m).expect("step");
        let r = &p.raft;
        assert_eq!((r.term, r.vote, r.lead), (3, 0, 0), "after a stale {t:?}");
        assert_eq!(r.state, StateRole::Follower, "after a stale {t:?}");
        assert_eq!(log_of(r), indexed(&[1, 2]), "after a stale {t:?}");
        assert_eq!(r.raft_log.committed, 1, "after a stale {t:?}");
        assert_eq!(take_queued(&mut p), vec![], "after a stale {t:?}");
    }
}

/// §5.1 with check-quorum or pre-vote on: a peer that ignores a stale
/// leader still tells it the newer term, and the stale leader steps down
/// (otherwise neither would ever accept the other).
#[test]
fn a_stale_leader_learns_the_newer_term_and_steps_down() {
    for (check_quorum, pre_vote) in [(true, false), (false, true)] {
        let mut leader = PeerSpec::new(1, &[1, 2, 3]).term(1).build();
        drive_to(&mut leader, StateRole::Leader);
        let mut newer = PeerSpec::new(2, &[1, 2, 3])
            .term(5)
            .check_quorum(check_quorum)
            .pre_vote(pre_vote)
            .build();
        newer
            .step(msg(MessageType::MsgHeartbeat, 1, 2, leader.raft.term))
            .expect("step");
        let replies = flush(&mut newer).sent;
        assert_eq!(newer.raft.term, 5);
        assert_eq!(newer.raft.lead, 0, "a stale leader is not followed");
        assert_eq!(replies.len(), 1);
        assert_eq!(replies[0].term, 5);
        leader.step(replies[0].clone()).expect("step");
        assert_eq!(leader.raft.state, StateRole::Follower);
        assert_eq!(leader.raft.term, 5);
    }
}
