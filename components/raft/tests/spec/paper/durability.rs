//! The paper's acknowledgements are of durable state: "Updated on stable
//! storage before responding to RPCs" (figure 2). In Flotilla's core every
//! acknowledgement waits for the host's report that the write is durable,
//! the peer's own included: its vote for itself and the leader's copy of its
//! own entries count only after `RawNode::advance`.

use bytes::Bytes;
use flotilla_raft::StateRole;
use flotilla_raft::raftpb::{Entry, MessageType};

use super::harness::{PeerSpec, append, append_ack, deliver, drive_to, flush, msg, vote_request};

/// §5.2 with figure 2: a candidate votes for itself, but a vote counts only
/// once durable. Alone in its group, a peer becomes leader only after its
/// host persisted the ready that holds the new term and vote.
#[test]
fn a_lone_peer_becomes_leader_only_once_its_vote_for_itself_is_durable() {
    let mut p = PeerSpec::new(1, &[1]).build();
    p.campaign().expect("campaign");
    assert_eq!(
        (p.raft.state, p.raft.term, p.raft.vote),
        (StateRole::Candidate, 1, 1)
    );
    let rd = p.ready();
    let hs = rd.hard_state.expect("a new term and vote");
    assert_eq!((hs.term, hs.vote), (1, 1));
    assert!(rd.must_sync);
    assert_eq!(
        p.raft.state,
        StateRole::Candidate,
        "handed out, not yet durable"
    );
    p.store().persist_ready(&rd).expect("persist");
    assert_eq!(
        p.raft.state,
        StateRole::Candidate,
        "durable, not yet reported"
    );
    p.advance(rd);
    assert_eq!(p.raft.state, StateRole::Leader);
}

/// §5.2 with figure 2: in a group of three, one granted vote from another
/// peer is not a majority until the candidate's own vote is durable.
#[test]
fn a_candidates_vote_for_itself_counts_only_once_durable() {
    let mut p = PeerSpec::new(1, &[1, 2, 3]).build();
    p.campaign().expect("campaign");
    let rd = p.ready();
    deliver(&mut p, msg(MessageType::MsgRequestVoteResponse, 2, 1, 1));
    assert_eq!(p.raft.state, StateRole::Candidate, "1 durable vote of 3");
    p.store().persist_ready(&rd).expect("persist");
    p.advance(rd);
    assert_eq!(p.raft.state, StateRole::Leader, "2 durable votes of 3");
}

/// Figure 2, "Persistent state on all servers ... (Updated on stable storage
/// before responding to RPCs)": a voter's grant leaves only with the ready
/// that makes its vote durable, as a message to send after persisting.
#[test]
fn a_voter_makes_its_vote_durable_before_granting_it() {
    let mut p = PeerSpec::new(1, &[1, 2, 3]).build();
    p.step(vote_request(MessageType::MsgRequestVote, 2, 1, 1, (0, 0)))
        .expect("step");
    let rd = p.ready();
    let hs = rd.hard_state.expect("a new term and vote");
    assert_eq!((hs.term, hs.vote), (1, 2));
    assert!(rd.must_sync);
    assert!(
        rd.messages.is_empty(),
        "nothing may leave before the vote is durable"
    );
    assert_eq!(rd.persisted_messages.len(), 1);
    let grant = &rd.persisted_messages[0];
    assert_eq!(grant.msg_type(), MessageType::MsgRequestVoteResponse);
    assert_eq!((grant.to, grant.term, grant.reject), (2, 1, false));
}

/// Figure 2 and §5.3: a follower acknowledges entries only with the ready
/// that makes them durable, as a message to send after persisting.
#[test]
fn a_follower_makes_appended_entries_durable_before_acknowledging_them() {
    let mut p = PeerSpec::new(1, &[1, 2, 3]).term(1).build();
    p.step(append(2, 1, 1, (0, 0), &[1, 1], 0)).expect("step");
    let rd = p.ready();
    assert_eq!(rd.entries.len(), 2);
    assert!(rd.must_sync);
    assert!(
        rd.messages.is_empty(),
        "nothing may leave before the entries are durable"
    );
    assert_eq!(rd.persisted_messages.len(), 1);
    let ack = &rd.persisted_messages[0];
    assert_eq!(ack.msg_type(), MessageType::MsgAppendResponse);
    assert_eq!((ack.to, ack.index, ack.reject), (2, 2, false));
}

/// §5.3 with figure 2: alone in its group, a leader commits a proposal only
/// once its host reports the entry durable.
#[test]
fn a_lone_leader_commits_a_proposal_only_once_it_is_durable() {
    let mut p = PeerSpec::new(1, &[1]).build();
    drive_to(&mut p, StateRole::Leader);
    assert_eq!(p.raft.raft_log.committed, 1);
    p.propose(Bytes::new(), Bytes::from_static(b"x"))
        .expect("propose");
    let rd = p.ready();
    assert_eq!(rd.entries.len(), 1);
    assert_eq!(p.raft.raft_log.committed, 1, "handed out, not yet durable");
    p.store().persist_ready(&rd).expect("persist");
    p.advance(rd);
    assert_eq!(p.raft.raft_log.committed, 2);
    let applied = flush(&mut p).applied;
    assert_eq!(applied.len(), 1);
    assert_eq!(&applied[0].data[..], b"x");
}

/// §5.3: a majority of followers can commit an entry the leader has not yet
/// made durable itself, but the leader applies it only once it is durable
/// locally: it cannot apply what it might still lose.
#[test]
fn a_leader_applies_a_committed_entry_only_once_it_holds_it_durably() {
    let mut p = PeerSpec::new(1, &[1, 2, 3]).build();
    drive_to(&mut p, StateRole::Leader);
    p.propose(Bytes::new(), Bytes::from_static(b"x"))
        .expect("propose");
    let rd = p.ready();
    for id in [2, 3] {
        deliver(&mut p, append_ack(id, 1, 1, 2));
    }
    assert_eq!(p.raft.raft_log.committed, 2);
    let indexes = |es: &[Entry]| es.iter().map(|e| e.index).collect::<Vec<_>>();
    let early = p.ready();
    assert_eq!(
        indexes(&early.committed_entries),
        [1],
        "entry 2 is not durable here"
    );
    p.store().persist_ready(&rd).expect("persist");
    p.store().persist_ready(&early).expect("persist");
    p.advance(early);
    assert_eq!(indexes(&flush(&mut p).applied), [2]);
}
