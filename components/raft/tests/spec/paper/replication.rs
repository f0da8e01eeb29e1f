//! §5.3: log replication.

use bytes::Bytes;
use flotilla_raft::StateRole;
use flotilla_raft::raftpb::{Message, MessageType};

use super::harness::{
    Network, Peer, PeerSpec, append, append_ack, deliver, drive_to, flush, indexed, log_of, msg,
    of_type,
};

/// A leader of term 1 over peers 1..=size whose followers all acknowledged
/// its first (empty) entry, which is therefore committed.
fn leader_with_committed_first_entry(size: u64) -> Peer {
    leader_with_committed_first_entry_of(size, true)
}

fn leader_with_committed_first_entry_of(size: u64, broadcast_commit: bool) -> Peer {
    let ids: Vec<u64> = (1..=size).collect();
    let mut p = PeerSpec::new(1, &ids)
        .broadcast_commit(broadcast_commit)
        .build();
    drive_to(&mut p, StateRole::Leader);
    for &id in &ids[1..] {
        deliver(&mut p, append_ack(id, 1, 1, 1));
    }
    flush(&mut p);
    assert_eq!(p.raft.raft_log.committed, 1);
    p
}

/// The (destination, commit index) of each message of type `t`.
fn commits(msgs: &[Message], t: MessageType) -> Vec<(u64, u64)> {
    of_type(msgs, t).iter().map(|m| (m.to, m.commit)).collect()
}

fn propose(p: &mut Peer, data: &'static str) {
    p.propose(Bytes::new(), Bytes::from_static(data.as_bytes()))
        .expect("propose");
}

/// §5.3: "The leader appends the command to its log as a new entry, then
/// issues AppendEntries RPCs in parallel to each of the other servers to
/// replicate the entry." Its own copy counts once it is durable.
#[test]
fn a_leader_appends_a_proposal_to_its_log_and_sends_it_to_every_follower() {
    let mut net = Network::fresh(&[1, 2, 3], 0);
    net.campaign(1);
    let p = net.peer_mut(1);
    propose(p, "x");
    assert_eq!(log_of(&p.raft), indexed(&[1, 1]));
    assert_eq!(
        p.raft.raft_log.next_unstable_ents().len(),
        1,
        "not yet durable"
    );
    assert_eq!(
        p.raft.trk.get(1).expect("self").matched,
        1,
        "not counted yet"
    );
    // Appends may leave at once, before the leader's own write is durable.
    let sent = std::mem::take(&mut p.raft.msgs);
    let appends = of_type(&sent, MessageType::MsgAppend);
    assert_eq!(appends.iter().map(|m| m.to).collect::<Vec<_>>(), [2, 3]);
    for m in appends {
        assert_eq!((m.term, m.index, m.log_term, m.commit), (1, 1, 1, 1));
        assert_eq!(m.entries.len(), 1);
        let e = &m.entries[0];
        assert_eq!((e.index, e.term, &e.data[..]), (2, 1, &b"x"[..]));
    }
    flush(p);
    assert_eq!(p.raft.trk.get(1).expect("self").matched, 2, "durable now");
}

/// §5.3: "A log entry is committed once the leader that created the entry
/// has replicated it on a majority of the servers." A copy counts once it is
/// durable, the leader's own included; the leader's own is not required.
#[test]
fn a_leader_commits_an_entry_once_a_majority_holds_it_durably() {
    // (cluster size, followers that acknowledge it, leader persisted it, committed)
    let cases: &[(u64, &[u64], bool, bool)] = &[
        (1, &[], true, true),
        (1, &[], false, false),
        (3, &[2], true, true),
        (3, &[2], false, false),
        (3, &[2, 3], false, true),
        (5, &[2], true, false),
        (5, &[2, 3], true, true),
        (5, &[2, 3], false, false),
        (5, &[2, 3, 4], false, true),
    ];
    for &(size, acks, persisted, committed) in cases {
        let case = format!("size {size}, acks {acks:?}, leader persisted {persisted}");
        let mut p = leader_with_committed_first_entry(size);
        propose(&mut p, "x");
        let rd = p.ready();
        if persisted {
            p.store().persist_ready(&rd).expect("persist");
            p.advance(rd);
        }
        for &id in acks {
            deliver(&mut p, append_ack(id, 1, 1, 2));
        }
        let want = if committed { 2 } else { 1 };
        assert_eq!(p.raft.raft_log.committed, want, "{case}");
    }
}

/// §5.3: "The leader keeps track of the highest index it knows to be
/// committed, and it includes that index in future AppendEntries RPCs
/// (including heartbeats)." A heartbeat never claims more than the follower
/// is known to hold.
#[test]
fn a_leader_announces_its_commit_index_in_appends_and_heartbeats() {
    let mut p = leader_with_committed_first_entry(3);
    propose(&mut p, "x");
    flush(&mut p);
    deliver(&mut p, append_ack(2, 1, 1, 2));
    assert_eq!(p.raft.raft_log.committed, 2);
    let sent = flush(&mut p).sent;
    assert_eq!(commits(&sent, MessageType::MsgAppend), [(2, 2), (3, 2)]);
    p.tick();
    let sent = flush(&mut p).sent;
    // Peer 3 is only known to hold entry 1.
    assert_eq!(commits(&sent, MessageType::MsgHeartbeat), [(2, 2), (3, 1)]);
}

/// Without the commit broadcast, a commit sends nothing by itself: the
/// followers learn it from the next append that carries them entries, or
/// from the next heartbeat.
#[test]
fn without_commit_broadcast_the_commit_rides_on_the_next_append_or_heartbeat() {
    let mut p = leader_with_committed_first_entry_of(3, false);
    propose(&mut p, "x");
    flush(&mut p);
    deliver(&mut p, append_ack(2, 1, 1, 2));
    assert_eq!(p.raft.raft_log.committed, 2);
    let sent = flush(&mut p).sent;
    assert_eq!(
        commits(&sent, MessageType::MsgAppend),
        [],
        "no empty appends for the commit alone"
    );
    deliver(&mut p, append_ack(3, 1, 1, 2));
    assert!(flush(&mut p).sent.is_empty(), "nothing new for anyone");

    // New entries carry the commit.
    propose(&mut p, "y");
    let sent = flush(&mut p).sent;
    assert_eq!(commits(&sent, MessageType::MsgAppend), [(2, 2), (3, 2)]);
    deliver(&mut p, append_ack(2, 1, 1, 3));
    deliver(&mut p, append_ack(3, 1, 1, 3));
    assert_eq!(p.raft.raft_log.committed, 3);
    assert!(flush(&mut p).sent.is_empty());
    // A quiet group's followers learn it from the heartbeat.
    p.tick();
    let sent = flush(&mut p).sent;
    assert_eq!(commits(&sent, MessageType::MsgHeartbeat), [(2, 3), (3, 3)]);

    // With the broadcast, the same commit sends both followers an append.
    let mut p = leader_with_committed_first_entry_of(3, true);
    propose(&mut p, "x");
    flush(&mut p);
    deliver(&mut p, append_ack(2, 1, 1, 2));
    deliver(&mut p, append_ack(3, 1, 1, 2));
    let sent = flush(&mut p).sent;
    let appends = of_type(&sent, MessageType::MsgAppend);
    assert_eq!(commits(&sent, MessageType::MsgAppend), [(2, 2), (3, 2)]);
    assert!(appends.iter().all(|m| m.entries.is_empty()));
}

/// §5.3: "Once a follower learns that a log entry is committed, it applies
/// the entry to its local state machine (in log order)."
#[test]
fn every_peer_applies_committed_entries_in_log_order() {
    let mut net = Network::fresh(&[1, 2, 3], 0);
    net.campaign(1);
    for data in ["a", "b", "c"] {
        net.propose(1, data);
    }
    net.tick_all();
    for id in net.ids() {
        let applied = net.applied(id);
        let got: Vec<(u64, &[u8])> = applied.iter().map(|e| (e.index, &e.data[..])).collect();
        let want: [(u64, &[u8]); 4] = [(1, b""), (2, b"a"), (3, b"b"), (4, b"c")];
        assert_eq!(got, want, "peer {id}");
        assert_eq!(net.raft(id).raft_log.committed, 4, "peer {id}");
    }
}

/// §5.3: committing an entry "also commits all preceding entries in the
/// leader's log, including entries created by previous leaders."
#[test]
fn a_leader_commits_every_entry_that_precedes_one_it_commits() {
    let logs: &[&[u64]] = &[&[], &[1], &[1, 1], &[1, 2], &[2, 2]];
    for &log in logs {
        let mut p = PeerSpec::new(1, &[1, 2, 3]).log(log).term(2).build();
        drive_to(&mut p, StateRole::Leader);
        propose(&mut p, "x");
        flush(&mut p);
        let last = log.len() as u64 + 2;
        deliver(&mut p, append_ack(2, 1, 3, last));
        let applied = flush(&mut p).applied;
        let got: Vec<(u64, u64)> = applied.iter().map(|e| (e.index, e.term)).collect();
        let mut want = log.to_vec();
        want.extend([3, 3]);
        assert_eq!(got, indexed(&want), "log {log:?}");
        assert_eq!(&applied[applied.len() - 1].data[..], b"x");
    }
}

/// §5.3: "If leaderCommit > commitIndex, set commitIndex = min(leaderCommit,
/// index of last new entry)": a follower commits what the leader committed,
/// but only as far as the append showed its log to match the leader's.
#[test]
fn a_follower_commits_what_the_leader_committed_as_far_as_its_log_matches() {
    // (follower log, append: prev, entry terms, leader commit; follower commit)
    type Case = (&'static [u64], (u64, u64), &'static [u64], u64, u64);
    let cases: &[Case] = &[
        (&[], (0, 0), &[1], 1, 1),
        (&[], (0, 0), &[1, 1], 2, 2),
        (&[], (0, 0), &[1, 1], 1, 1),
        (&[], (0, 0), &[1, 1], 5, 2),
        (&[1, 1, 1], (1, 1), &[], 3, 1),
        (&[1, 1, 1], (1, 1), &[1], 3, 2),
    ];
    for &(log, prev, ents, commit, want) in cases {
        let case = format!("log {log:?}, append after {prev:?} of {ents:?} committed to {commit}");
        let mut p = PeerSpec::new(1, &[1, 2, 3]).log(log).term(1).build();
        p.step(append(2, 1, 1, prev, ents, commit)).expect("step");
        assert_eq!(p.raft.raft_log.committed, want, "{case}");
        let applied = flush(&mut p).applied;
        let indexes: Vec<u64> = applied.iter().map(|e| e.index).collect();
        assert_eq!(indexes, (1..=want).collect::<Vec<_>>(), "{case}");
    }
}

/// §5.3: "If the follower does not find an entry in its log with the same
/// index and term, then it refuses the new entries" (the consistency check).
/// A refusal names the refused previous index and hints no further than
/// where the logs may still agree.
#[test]
fn a_follower_refuses_an_append_whose_previous_entry_it_does_not_hold() {
    // (previous entry of the append, accepted)
    let cases = [
        ((0, 0), true),
        ((1, 1), true),
        ((2, 2), true),
        ((1, 2), false),
        ((2, 1), false),
        ((3, 2), false),
    ];
    for (prev, accepted) in cases {
        let mut p = PeerSpec::new(1, &[1, 2, 3]).log(&[1, 2]).build();
        p.step(append(2, 1, 2, prev, &[], 0)).expect("step");
        let sent = flush(&mut p).sent;
        assert_eq!(sent.len(), 1, "prev {prev:?}");
        let r = &sent[0];
        assert_eq!(
            (r.msg_type(), r.to, r.term),
            (MessageType::MsgAppendResponse, 2, 2)
        );
        assert_eq!((r.reject, r.index), (!accepted, prev.0), "prev {prev:?}");
        if !accepted {
            // Everything between the hint and the refused index conflicts.
            assert!(
                r.reject_hint <= prev.0.min(2),
                "prev {prev:?}: hint {}",
                r.reject_hint
            );
            assert!(
                r.log_term <= prev.1,
                "prev {prev:?}: hint term {}",
                r.log_term
            );
        }
        assert_eq!(log_of(&p.raft), indexed(&[1, 2]), "prev {prev:?}");
    }
}

/// §5.3: "If an existing entry conflicts with a new one (same index but
/// different terms), delete the existing entry and all that follow it.
/// Append any new entries not already in the log." Entries that agree are
/// kept, even past the end of the append (it may be old and reordered).
#[test]
fn a_follower_deletes_conflicting_entries_and_appends_new_ones() {
    // (append: prev, entry terms; follower log after)
    type Case = ((u64, u64), &'static [u64], &'static [u64]);
    let cases: &[Case] = &[
        ((2, 2), &[3], &[1, 2, 3]),
        ((1, 1), &[3, 4], &[1, 3, 4]),
        ((0, 0), &[3], &[3]),
        ((0, 0), &[1], &[1, 2]),
        ((1, 1), &[2], &[1, 2]),
        ((1, 1), &[2, 4], &[1, 2, 4]),
    ];
    for &(prev, ents, want) in cases {
        let case = format!("append after {prev:?} of {ents:?}");
        let mut p = PeerSpec::new(1, &[1, 2, 3]).log(&[1, 2]).build();
        p.step(append(2, 1, 4, prev, ents, 0)).expect("step");
        flush(&mut p);
        assert_eq!(log_of(&p.raft), indexed(want), "{case}");
        let stored: Vec<(u64, u64)> = p
            .store()
            .rl()
            .entries()
            .iter()
            .map(|e| (e.index, e.term))
            .collect();
        assert_eq!(stored, indexed(want), "{case}: durable log");
    }
}

/// §5.3, figure 7: "the leader handles inconsistencies by forcing the
/// followers' logs to duplicate its own". A leader of term 8 meets each of
/// the figure's followers (a)-(f); missing entries are filled in, extra and
/// conflicting ones removed, and both end with the same committed log.
#[test]
fn a_leader_forces_every_divergent_follower_log_to_duplicate_its_own() {
    let leader_log: &[u64] = &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    let followers: &[&[u64]] = &[
        &[1, 1, 1, 4, 4, 5, 5, 6, 6],
        &[1, 1, 1, 4],
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
        &[1, 1, 1, 4, 4, 4, 4],
        &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
    ];
    for &follower in followers {
        let leader = PeerSpec::new(1, &[1, 2, 3]).log(leader_log).term(7).build();
        let other = PeerSpec::new(2, &[1, 2, 3]).log(follower).term(7).build();
        // Peer 3 is absent; it only votes for the leader.
        let mut net = Network::new(vec![leader, other]);
        net.campaign(1);
        net.send(vec![msg(MessageType::MsgRequestVoteResponse, 3, 1, 8)]);
        assert_eq!(net.raft(1).state, StateRole::Leader, "against {follower:?}");
        net.propose(1, "x");
        let mut want = leader_log.to_vec();
        want.extend([8, 8]);
        assert_eq!(log_of(net.raft(1)), indexed(&want), "against {follower:?}");
        assert_eq!(log_of(net.raft(2)), indexed(&want), "follower {follower:?}");
        net.tick_all();
        assert_eq!(net.raft(2).raft_log.committed, 12, "follower {follower:?}");
        assert_eq!(net.applied(1), net.applied(2), "follower {follower:?}");
    }
}
