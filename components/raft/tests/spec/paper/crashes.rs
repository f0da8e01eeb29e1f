//! §5.5: follower and candidate crashes. Requests to a crashed peer are
//! retried until it answers, and answering a request twice does no harm.

use flotilla_raft::StateRole;
use flotilla_raft::raftpb::MessageType;

use super::harness::{
    ELECTION_TICKS, Network, PeerSpec, append, flush, indexed, log_of, vote_request,
};

/// §5.5: "If a follower or candidate crashes, then future RequestVote and
/// AppendEntries RPCs sent to it will fail. Raft handles these failures by
/// retrying indefinitely; if the crashed server restarts, then the RPC will
/// complete successfully."
#[test]
fn a_leader_keeps_retrying_a_crashed_follower_until_it_catches_up() {
    let mut net = Network::fresh(&[1, 2, 3], 0);
    net.campaign(1);
    // Peer 3 crashes: it hears nothing and its clock stands still.
    net.isolate(3);
    for data in ["a", "b", "c"] {
        net.propose(1, data);
    }
    for _ in 0..3 * ELECTION_TICKS {
        net.tick(&[1, 2]);
    }
    assert_eq!(
        net.raft(1).raft_log.committed,
        4,
        "peers 1 and 2 are a majority"
    );
    assert_eq!(log_of(net.raft(3)), indexed(&[1]), "peer 3 is cut off");
    net.recover();
    net.tick_all();
    assert_eq!(net.raft(1).state, StateRole::Leader);
    assert_eq!(log_of(net.raft(3)), log_of(net.raft(1)));
    assert_eq!(net.raft(3).raft_log.committed, 4);
    assert_eq!(net.applied(3), net.applied(1));
}

/// §5.5: "Raft RPCs are idempotent, so this causes no harm. For example, if
/// a follower receives an AppendEntries request that includes log entries
/// already present in its log, it ignores those entries in the new request."
#[test]
fn a_follower_accepts_a_repeated_append_without_changing_its_log() {
    let mut p = PeerSpec::new(1, &[1, 2, 3]).term(1).build();
    let m = append(2, 1, 1, (0, 0), &[1, 1], 1);
    p.step(m.clone()).expect("step");
    let first = flush(&mut p);
    p.step(m).expect("step");
    let again = flush(&mut p);
    assert_eq!(first.sent.len(), 1);
    assert_eq!(again.sent.len(), 1);
    let (a, b) = (&first.sent[0], &again.sent[0]);
    assert_eq!(
        (a.msg_type(), a.reject, a.index),
        (MessageType::MsgAppendResponse, false, 2)
    );
    // The repeat may be acknowledged up to the commit index only: no claim
    // beyond what the append showed to match.
    assert_eq!(b.msg_type(), MessageType::MsgAppendResponse);
    assert!(!b.reject && (1..=2).contains(&b.index), "{b:?}");
    assert!(again.applied.is_empty(), "entry 1 is applied once");
    assert_eq!(log_of(&p.raft), indexed(&[1, 1]));
}

/// §5.5 with figure 2's persistent state: a peer that crashes and restarts
/// keeps its current term, its vote and its log, so it cannot vote twice in
/// a term by forgetting it voted.
#[test]
fn a_restarted_peer_keeps_its_term_vote_and_log() {
    let mut p = PeerSpec::new(1, &[1, 2, 3]).build();
    p.step(append(2, 1, 1, (0, 0), &[1], 0)).expect("step");
    p.step(vote_request(MessageType::MsgRequestVote, 2, 1, 2, (1, 1)))
        .expect("step");
    flush(&mut p);
    let store = p.store().clone();
    drop(p);
    let mut p = PeerSpec::new(1, &[1, 2, 3]).reopen(store);
    assert_eq!((p.raft.term, p.raft.vote), (2, 2));
    assert_eq!(log_of(&p.raft), indexed(&[1]));
    p.step(vote_request(MessageType::MsgRequestVote, 3, 1, 2, (1, 1)))
        .expect("step");
    let replies = flush(&mut p).sent;
    assert_eq!(replies.len(), 1);
    assert!(replies[0].reject, "already voted for 2 in term 2");
}
