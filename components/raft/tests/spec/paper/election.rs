//! §5.2: leader election.

use std::collections::BTreeSet;

use flotilla_raft::StateRole;
use flotilla_raft::quorum::VoteResult;
use flotilla_raft::raftpb::{Message, MessageType};

use super::harness::{
    ELECTION_TICKS, Network, Peer, PeerSpec, append, deliver, drive_to, flush, msg, of_type,
    take_queued, ticks_until_it_sends, vote_request,
};

/// §5.2: "When servers start up, they begin as followers."
#[test]
fn a_peer_starts_as_a_follower_that_knows_no_leader() {
    let p = PeerSpec::new(1, &[1, 2, 3]).build();
    assert_eq!(p.raft.state, StateRole::Follower);
    assert_eq!((p.raft.term, p.raft.vote, p.raft.lead), (0, 0, 0));
}

/// §5.2: "If a follower receives no communication over a period of time
/// called the election timeout, then it assumes there is no viable leader
/// and begins an election": it increments its term, votes for itself and
/// asks every other server for its vote. A candidate that times out does the
/// same. With pre-vote (§9.6 of Ongaro's thesis) it first asks whether it
/// could win, without raising its term or voting.
#[test]
fn a_follower_or_candidate_that_times_out_starts_an_election() {
    use MessageType::{MsgRequestPreVote as PreVote, MsgRequestVote as Vote};
    use StateRole::{Candidate, Follower, PreCandidate};
    // (pre-vote, role before, role after, term after, vote after, request, its term)
    let cases = [
        (false, Follower, Candidate, 2, 1, Vote, 2),
        (false, Candidate, Candidate, 3, 1, Vote, 3),
        (true, Follower, PreCandidate, 1, 0, PreVote, 2),
        (true, PreCandidate, PreCandidate, 1, 0, PreVote, 2),
        (true, Candidate, PreCandidate, 2, 1, PreVote, 3),
    ];
    for (pre_vote, before, after, term, vote, ask, ask_term) in cases {
        let case = format!("pre-vote {pre_vote}, {before}");
        let mut p = PeerSpec::new(1, &[1, 2, 3])
            .log(&[1])
            .pre_vote(pre_vote)
            .build();
        drive_to(&mut p, before);
        ticks_until_it_sends(&mut p);
        assert_eq!(p.raft.state, after, "{case}");
        assert_eq!((p.raft.term, p.raft.vote), (term, vote), "{case}");
        // Its own vote is not counted until it is durable.
        assert_eq!(
            p.raft.trk.tally_votes(),
            (0, 0, VoteResult::Pending),
            "{case}"
        );
        let sent = take_queued(&mut p);
        let requests = of_type(&sent, ask);
        let to: BTreeSet<u64> = requests.iter().map(|m| m.to).collect();
        assert_eq!(to, BTreeSet::from([2, 3]), "{case}");
        for m in requests {
            assert_eq!((m.term, m.index, m.log_term), (ask_term, 1, 1), "{case}");
        }
    }
}

/// §5.2: "A candidate wins an election if it receives votes from a majority
/// of the servers in the full cluster for the same term." It loses once a
/// majority refused, and waits while neither is settled.
#[test]
fn a_candidate_wins_with_a_majority_of_votes_and_loses_with_a_majority_of_refusals() {
    use StateRole::{Candidate, Follower, Leader};
    // (cluster size, votes of the others: (peer, granted), outcome)
    type Case = (u64, &'static [(u64, bool)], StateRole);
    let cases: &[Case] = &[
        (1, &[], Leader),
        (3, &[(2, true), (3, true)], Leader),
        (3, &[(2, true)], Leader),
        (5, &[(2, true), (3, true), (4, true), (5, true)], Leader),
        (5, &[(2, true), (3, true), (4, true)], Leader),
        (5, &[(2, true), (3, true)], Leader),
        (3, &[], Candidate),
        (5, &[(2, true)], Candidate),
        (5, &[(2, false), (3, false)], Candidate),
        (5, &[(2, true), (3, false), (4, false)], Candidate),
        (3, &[(2, false), (3, false)], Follower),
        (5, &[(2, false), (3, false), (4, false)], Follower),
        (
            5,
            &[(2, true), (3, false), (4, false), (5, false)],
            Follower,
        ),
    ];
    for &(size, votes, outcome) in cases {
        let ids: Vec<u64> = (1..=size).collect();
        let mut p = PeerSpec::new(1, &ids).build();
        p.campaign().expect("campaign");
        flush(&mut p);
        for &(from, granted) in votes {
            let mut m = msg(MessageType::MsgRequestVoteResponse, from, 1, 1);
            m.reject = !granted;
            deliver(&mut p, m);
        }
        flush(&mut p);
        assert_eq!(p.raft.state, outcome, "size {size}, votes {votes:?}");
        assert_eq!(p.raft.term, 1, "size {size}, votes {votes:?}");
    }
}

/// A vote request to peer 1 from `candidate` for term 1, with an empty log.
fn ask_in_term_1(candidate: u64) -> Message {
    vote_request(MessageType::MsgRequestVote, candidate, 1, 1, (0, 0))
}

/// The one reply to `candidate` that `p` sends once its ready is durable.
fn vote_reply(p: &mut Peer, candidate: u64) -> Message {
    let sent = flush(p).sent;
    let replies = of_type(&sent, MessageType::MsgRequestVoteResponse);
    assert_eq!(replies.len(), 1, "one reply to {candidate}");
    assert_eq!(replies[0].to, candidate);
    replies[0].clone()
}

/// §5.2: "Each server will vote for at most one candidate in a given term,
/// on a first-come-first-served basis." Asking again is not voting twice.
#[test]
fn a_voter_grants_at_most_one_vote_per_term() {
    // (already voted for, candidate asking, granted)
    let cases = [
        (0, 2, true),
        (0, 3, true),
        (2, 2, true),
        (3, 3, true),
        (2, 3, false),
        (3, 2, false),
    ];
    for (voted, candidate, granted) in cases {
        let mut p = PeerSpec::new(1, &[1, 2, 3]).term(1).vote(voted).build();
        p.step(ask_in_term_1(candidate)).expect("step");
        let reply = vote_reply(&mut p, candidate);
        assert_eq!(
            reply.reject, !granted,
            "voted for {voted}, asked by {candidate}"
        );
        assert_eq!(reply.term, 1);
        let vote = if voted == 0 { candidate } else { voted };
        assert_eq!(p.raft.vote, vote, "voted for {voted}, asked by {candidate}");
    }
}

/// §5.2: first come, first served: of two candidates of one term, the first
/// to ask gets the vote and keeps it.
#[test]
fn a_voter_gives_its_vote_to_the_first_candidate_that_asks() {
    let mut p = PeerSpec::new(1, &[1, 2, 3]).build();
    let asks = [(2, true), (3, false), (2, true), (3, false)];
    for (candidate, granted) in asks {
        p.step(ask_in_term_1(candidate)).expect("step");
        let reply = vote_reply(&mut p, candidate);
        assert_eq!(reply.reject, !granted, "asked by {candidate}");
        assert_eq!(p.store().rl().hard_state().vote, 2, "the durable vote");
    }
}

/// §5.2: "If the leader's term (included in its RPC) is at least as large as
/// the candidate's current term, then the candidate recognizes the leader as
/// legitimate and returns to follower state. If the term in the RPC is
/// smaller than the candidate's current term, then the candidate rejects the
/// RPC and continues in candidate state."
#[test]
fn a_candidate_steps_down_for_a_leader_of_its_term_or_newer() {
    let heartbeat = |term| msg(MessageType::MsgHeartbeat, 2, 1, term);
    let append = |term| append(2, 1, term, (0, 0), &[], 0);
    // The candidate campaigns in term 2.
    let cases = [
        (append(2), StateRole::Follower, 2, 2),
        (append(3), StateRole::Follower, 3, 2),
        (heartbeat(2), StateRole::Follower, 2, 2),
        (heartbeat(3), StateRole::Follower, 3, 2),
        (append(1), StateRole::Candidate, 2, 0),
        (heartbeat(1), StateRole::Candidate, 2, 0),
    ];
    for (m, role, term, lead) in cases {
        let case = format!("{:?} of term {}", m.msg_type(), m.term);
        let mut p = PeerSpec::new(1, &[1, 2, 3]).term(1).build();
        drive_to(&mut p, StateRole::Candidate);
        p.step(m).expect("step");
        assert_eq!(p.raft.state, role, "{case}");
        assert_eq!((p.raft.term, p.raft.lead), (term, lead), "{case}");
    }
}

/// How many ticks a fresh peer seeded with `seed` waits before it
/// campaigns, and then before it campaigns again as a candidate.
fn timeouts(seed: u64) -> (usize, usize) {
    let mut p = PeerSpec::new(1, &[1, 2, 3]).seed(seed).build();
    let as_follower = ticks_until_it_sends(&mut p);
    assert_eq!(p.raft.state, StateRole::Candidate);
    take_queued(&mut p);
    let as_candidate = ticks_until_it_sends(&mut p);
    (as_follower, as_candidate)
}

/// §5.2: "election timeouts are chosen randomly from a fixed interval";
/// here from [election timeout, 2 × election timeout), drawn anew for every
/// wait, as a follower and as a candidate. Measured over many seeds: no wait
/// falls outside the interval, and every value in it occurs.
#[test]
fn election_timeouts_are_randomized_over_one_to_two_election_timeouts() {
    let range = ELECTION_TICKS..2 * ELECTION_TICKS;
    let (mut seen_follower, mut seen_candidate) = (BTreeSet::new(), BTreeSet::new());
    for seed in 0..300 {
        let (f, c) = timeouts(seed);
        assert!(
            range.contains(&f),
            "seed {seed}: a follower waited {f} ticks"
        );
        assert!(
            range.contains(&c),
            "seed {seed}: a candidate waited {c} ticks"
        );
        seen_follower.insert(f);
        seen_candidate.insert(c);
    }
    let all: BTreeSet<usize> = range.collect();
    assert_eq!(seen_follower, all, "follower timeouts");
    assert_eq!(seen_candidate, all, "candidate timeouts");
}

/// §5.2: randomized timeouts spread the servers out "so that in most cases
/// only a single server will time out". Five fresh followers, many seeds:
/// the first to time out is usually alone.
#[test]
fn randomized_timeouts_usually_let_a_single_follower_time_out_first() {
    let ids = [1, 2, 3, 4, 5];
    let rounds = 1000;
    let mut together = 0;
    for seed in 0..rounds {
        let waits: Vec<usize> = ids
            .iter()
            .map(|&id| ticks_until_it_sends(&mut PeerSpec::new(id, &ids).seed(seed).build()))
            .collect();
        let first = waits.iter().min().expect("five peers");
        if waits.iter().filter(|&w| w == first).count() > 1 {
            together += 1;
        }
    }
    assert!(
        together * 10 <= rounds * 3,
        "{together} of {rounds} rounds had a tie"
    );
}

/// §5.2: "Leaders send periodic heartbeats (AppendEntries RPCs that carry no
/// log entries) to all followers in order to maintain their authority."
#[test]
fn a_leader_sends_heartbeats_to_every_follower_each_heartbeat_interval() {
    let mut p = PeerSpec::new(1, &[1, 2, 3]).heartbeat_ticks(3).build();
    drive_to(&mut p, StateRole::Leader);
    take_queued(&mut p);
    for tick in 1..=4 * ELECTION_TICKS {
        p.tick();
        let sent = take_queued(&mut p);
        let beats = of_type(&sent, MessageType::MsgHeartbeat);
        if tick % 3 == 0 {
            let to: Vec<u64> = beats.iter().map(|m| m.to).collect();
            assert_eq!(to, [2, 3], "tick {tick}: one heartbeat to each follower");
            assert!(beats.iter().all(|m| m.term == 1 && m.entries.is_empty()));
        } else {
            assert!(beats.is_empty(), "tick {tick}: {beats:?}");
        }
        assert_eq!(p.raft.state, StateRole::Leader, "a leader never times out");
    }
}

/// §5.2: "A server remains in follower state as long as it receives valid
/// RPCs from a leader or candidate."
#[test]
fn a_follower_that_keeps_hearing_from_its_leader_never_campaigns() {
    let mut p = PeerSpec::new(1, &[1, 2, 3]).term(1).build();
    for tick in 1..=10 * ELECTION_TICKS {
        p.tick();
        if tick % (ELECTION_TICKS - 1) == 0 {
            p.step(msg(MessageType::MsgHeartbeat, 2, 1, 1))
                .expect("step");
        }
        assert_eq!(p.raft.state, StateRole::Follower, "tick {tick}");
    }
    assert_eq!((p.raft.term, p.raft.lead), (1, 2));
}

/// Ticks every peer until some leader is known to all of `ids` in one term.
fn tick_until_agreed_leader(net: &mut Network, ids: &[u64]) -> u64 {
    for _ in 0..100 * ELECTION_TICKS {
        net.tick_all();
        let leads: BTreeSet<(u64, u64)> = ids
            .iter()
            .map(|&id| (net.raft(id).lead, net.raft(id).term))
            .collect();
        match leads.first() {
            Some(&(lead, _)) if lead != 0 && leads.len() == 1 => return lead,
            _ => {}
        }
    }
    panic!("{ids:?} never agreed on a leader");
}

/// §5.2: a partition with a majority elects a leader; a minority cannot
/// ("votes from a majority of the servers in the full cluster"). Once the
/// partition heals, the whole cluster follows a single leader.
#[test]
fn only_a_partition_with_a_majority_can_elect_a_leader() {
    let ids = [1, 2, 3, 4, 5];
    let mut net = Network::fresh(&ids, 7);
    for a in [1, 2] {
        for b in [3, 4, 5] {
            net.cut(a, b);
        }
    }
    let leader = tick_until_agreed_leader(&mut net, &[3, 4, 5]);
    assert!([3, 4, 5].contains(&leader));
    for _ in 0..10 * ELECTION_TICKS {
        net.tick_all();
    }
    for id in [1, 2] {
        assert_ne!(
            net.raft(id).state,
            StateRole::Leader,
            "peer {id} of the minority"
        );
    }
    net.recover();
    tick_until_agreed_leader(&mut net, &ids);
    let leaders = net.leaders_by_term();
    assert!(leaders.values().all(|l| l.len() == 1), "{leaders:?}");
}
