//! §5.4: safety. The election restriction, committing entries from previous
//! terms (figure 8), and the section's properties (figure 3) checked over
//! randomized runs. Leader completeness over randomized elections is
//! checked elsewhere.

use flotilla_raft::StateRole;
use flotilla_raft::raftpb::{Entry, MessageType};
use flotilla_raft::vote_resp_type;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::harness::{
    ELECTION_TICKS, Network, PeerSpec, append_ack, deliver, drive_to, flush, indexed, log_of,
    vote_request,
};

/// §5.4.1: "the voter denies its vote if its own log is more up-to-date than
/// that of the candidate": a later last term wins, and with equal last terms
/// the longer log. Pre-votes follow the same rule.
#[test]
fn a_voter_refuses_a_candidate_whose_log_is_less_up_to_date() {
    // The voter's log ends at (index 2, term 2).
    // (candidate's last index, last term, granted)
    let cases = [
        (1, 1, false),
        (2, 1, false),
        (3, 1, false),
        (1, 2, false),
        (2, 2, true),
        (3, 2, true),
        (1, 3, true),
        (2, 3, true),
        (3, 3, true),
    ];
    for t in [MessageType::MsgRequestVote, MessageType::MsgRequestPreVote] {
        for (index, term, granted) in cases {
            let case = format!("{t:?} from a log ending at ({index}, {term})");
            let pre_vote = t == MessageType::MsgRequestPreVote;
            let mut p = PeerSpec::new(1, &[1, 2, 3])
                .log(&[1, 2])
                .pre_vote(pre_vote)
                .build();
            p.step(vote_request(t, 2, 1, 3, (index, term)))
                .expect("step");
            let sent = flush(&mut p).sent;
            assert_eq!(sent.len(), 1, "{case}");
            assert_eq!(sent[0].msg_type(), vote_resp_type(t), "{case}");
            assert_eq!(sent[0].reject, !granted, "{case}");
        }
    }
}

/// §5.4.2: "Raft never commits log entries from previous terms by counting
/// replicas. Only log entries from the leader's current term are committed by
/// counting replicas." A leader of term 3 whose log holds entries of terms 1
/// and 2 commits nothing until a majority holds its own entry 3.
#[test]
fn a_leader_commits_by_counting_replicas_only_entries_of_its_own_term() {
    // (index follower 2 acknowledges, commit index after)
    let cases = [(1, 0), (2, 0), (3, 3)];
    for (index, committed) in cases {
        let mut p = PeerSpec::new(1, &[1, 2, 3]).log(&[1, 2]).build();
        drive_to(&mut p, StateRole::Leader);
        flush(&mut p);
        assert_eq!(log_of(&p.raft), indexed(&[1, 2, 3]));
        deliver(&mut p, append_ack(2, 1, 3, index));
        assert_eq!(
            p.raft.raft_log.committed, committed,
            "peer 2 holds up to {index}"
        );
    }
}

/// Figure 8's peers at (c), minus the leader's replication: entry 2 of term
/// 2 is on S1, S2 and S3, a majority; S5 holds entry 2 of term 3.
fn figure_8() -> Network {
    let ids = [1, 2, 3, 4, 5];
    let logs: [&[u64]; 5] = [&[1, 2], &[1, 2], &[1, 2], &[1], &[1, 3]];
    let peers = ids
        .iter()
        .zip(logs)
        .map(|(&id, log)| PeerSpec::new(id, &ids).log(log).term(3).commit(1).build())
        .collect();
    Network::new(peers)
}

/// Every pair of peers applied the same entry at every index both applied.
fn assert_applied_agree(net: &Network) {
    for a in net.ids() {
        for b in net.ids() {
            let (x, y) = (net.applied(a), net.applied(b));
            let n = x.len().min(y.len());
            assert_eq!(
                x[..n],
                y[..n],
                "peers {a} and {b} applied different entries"
            );
        }
    }
}

/// §5.4.2, figure 8 (c) and (d): S1, leader of term 4, knows that a majority
/// holds its entry 2 of term 2, yet must not commit it: S5 can still be
/// elected and overwrite it. The core indeed leaves it uncommitted, and no
/// peer ever applies it.
#[test]
fn an_old_term_entry_on_a_majority_is_not_committed_because_it_can_still_be_overwritten() {
    let mut net = figure_8();
    net.ignore(MessageType::MsgAppend);
    net.campaign(1);
    assert_eq!(
        (net.raft(1).state, net.raft(1).term),
        (StateRole::Leader, 4)
    );
    // S2 and S3 tell S1 they hold its entry 2, as they would on receiving it.
    net.send(vec![append_ack(2, 1, 4, 2), append_ack(3, 1, 4, 2)]);
    assert_eq!(net.raft(1).raft_log.committed, 1, "entry 2 is of term 2");
    // (d): S1 crashes; S5 is elected with the votes of S2, S3 and S4.
    net.recover();
    net.isolate(1);
    net.campaign(5);
    assert_eq!(
        (net.raft(5).state, net.raft(5).term),
        (StateRole::Leader, 5)
    );
    for id in 2..=5 {
        assert_eq!(log_of(net.raft(id)), [(1, 1), (2, 3), (3, 5)], "peer {id}");
    }
    // S1 comes back and its log is overwritten too.
    net.recover();
    net.tick_all();
    assert_eq!(log_of(net.raft(1)), [(1, 1), (2, 3), (3, 5)]);
    assert_applied_agree(&net);
    assert_eq!(net.applied(1)[1].term, 3, "the applied entry 2 is S5's");
}

/// §5.4.2, figure 8 (e): once S1 has an entry of its own term 4 on a
/// majority, that entry and the entry 2 of term 2 before it are committed,
/// and S5 can no longer be elected: every member of that majority refuses it.
#[test]
fn once_an_entry_of_the_leaders_term_is_on_a_majority_earlier_entries_are_committed_for_good() {
    let mut net = figure_8();
    net.isolate(5);
    net.campaign(1);
    assert_eq!(net.raft(1).raft_log.committed, 3);
    assert_eq!(log_of(net.raft(1)), [(1, 1), (2, 2), (3, 4)]);
    // S5 campaigns alone in term 4 and loses. Then S1 crashes and S5
    // campaigns in term 5, where nobody has voted: S2, S3 and S4 refuse it
    // all the same, as their logs end in term 4 and S5's in term 3.
    net.campaign(5);
    net.recover();
    net.isolate(1);
    net.campaign(5);
    assert_eq!(net.raft(5).term, 5);
    assert_eq!(
        net.raft(5).state,
        StateRole::Follower,
        "refused by a majority"
    );
    assert!(net.leaders_by_term().get(&5).is_none());
    // The others elect one of them, which brings S5 in line; then S1 returns.
    for _ in 0..5 * ELECTION_TICKS {
        net.tick_all();
    }
    net.recover();
    net.tick_all();
    for id in net.ids() {
        assert_eq!(
            &log_of(net.raft(id))[..3],
            [(1, 1), (2, 2), (3, 4)],
            "peer {id}"
        );
    }
    assert_applied_agree(&net);
}

/// §5.3, figure 3's Log Matching: "if two logs contain an entry with the same
/// index and term, then the logs are identical in all entries up through the
/// given index."
fn assert_logs_match(net: &Network) {
    let logs: Vec<(u64, Vec<Entry>)> = net
        .ids()
        .into_iter()
        .map(|id| (id, net.raft(id).raft_log.all_entries()))
        .collect();
    for (a, x) in &logs {
        for (b, y) in &logs {
            let n = x.len().min(y.len());
            if let Some(i) = (0..n).rev().find(|&i| x[i].term == y[i].term) {
                assert_eq!(x[..=i], y[..=i], "peers {a} and {b} share entry {}", i + 1);
            }
        }
    }
}

/// Gives every link of `net` a random loss rate below 30%.
fn make_lossy(net: &mut Network, rng: &mut ChaCha8Rng) {
    for a in net.ids() {
        for b in net.ids() {
            if a != b {
                net.drop_link(a, b, rng.random_range(0.0..0.3));
            }
        }
    }
}

/// §5.2 and §5.4, figure 3: Election Safety ("at most one leader can be
/// elected in a given term"), Log Matching and State Machine Safety hold
/// while peers time out at random, links lose messages, peers are cut off
/// and come back, and clients propose.
#[test]
fn election_safety_log_matching_and_state_machine_safety_hold_on_a_lossy_network() {
    flotilla_testkit::for_each_seed("paper::safety::election_safety", 8, |seed| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut net = Network::fresh(&[1, 2, 3, 4, 5], seed);
        make_lossy(&mut net, &mut rng);
        for step in 0..30 * ELECTION_TICKS {
            match rng.random_range(0..100) {
                0..3 => net.isolate(rng.random_range(1..=5)),
                3..6 => {
                    net.recover();
                    make_lossy(&mut net, &mut rng);
                }
                6..40 => {
                    if let Some(leader) = net.leader() {
                        net.propose(leader, &format!("{seed}/{step}"));
                    }
                }
                _ => {}
            }
            net.tick_all();
            assert_logs_match(&net);
            assert_applied_agree(&net);
        }
        let leaders = net.leaders_by_term();
        assert!(leaders.values().all(|l| l.len() == 1), "{leaders:?}");
        assert!(!leaders.is_empty(), "no leader was ever elected");
        assert!(
            net.ids().iter().any(|&id| net.applied(id).len() > 1),
            "nothing was applied"
        );
    });
}
