//! Test support for the paper's rules: building a peer in a given state,
//! playing the host of one peer, making messages, and a small in-memory
//! network of peers for the rules that need several of them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use bytes::Bytes;
use flotilla_raft::raftpb::{ConfState, Entry, HardState, Message, MessageType};
use flotilla_raft::{Config, Error, MemStorage, Raft, RawNode, StateRole};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The election timeout every peer here uses, in ticks.
pub const ELECTION_TICKS: usize = 10;

/// A peer of these tests: a raft group's handle over in-memory storage.
pub type Peer = RawNode<MemStorage>;

// ---- building a peer ---------------------------------------------------

/// How to build one peer: membership, durable log, hard state, settings.
/// By default the paper's plain raft: no pre-vote, no check-quorum.
#[derive(Debug, Clone)]
pub struct PeerSpec {
    cfg: Config,
    voters: Vec<u64>,
    log_terms: Vec<u64>,
    term: Option<u64>,
    vote: u64,
    commit: u64,
}

impl PeerSpec {
    /// Peer `id` of a group of `voters`, with an empty log, in term 0.
    pub fn new(id: u64, voters: &[u64]) -> Self {
        let cfg = Config {
            election_ticks: ELECTION_TICKS,
            heartbeat_ticks: 1,
            check_quorum: false,
            pre_vote: false,
            ..Config::new(id)
        };
        PeerSpec {
            cfg,
            voters: voters.to_vec(),
            log_terms: Vec::new(),
            term: None,
            vote: 0,
            commit: 0,
        }
    }

    /// A durable log of one entry per term given, at indexes 1, 2, ...
    /// The current term defaults to the last entry's.
    pub fn log(mut self, terms: &[u64]) -> Self {
        self.log_terms = terms.to_vec();
        self
    }

    /// The current term.
    pub fn term(mut self, term: u64) -> Self {
        self.term = Some(term);
        self
    }

    /// Whom the peer voted for in its current term.
    pub fn vote(mut self, vote: u64) -> Self {
        self.vote = vote;
        self
    }

    /// The durable commit index.
    pub fn commit(mut self, commit: u64) -> Self {
        self.commit = commit;
        self
    }

    /// Turns pre-vote on or off.
    pub fn pre_vote(mut self, on: bool) -> Self {
        self.cfg.pre_vote = on;
        self
    }

    /// Turns check-quorum (and the leader lease) on or off.
    pub fn check_quorum(mut self, on: bool) -> Self {
        self.cfg.check_quorum = on;
        self
    }

    /// Whether a leader sends every follower an append when its commit
    /// index moves (see `Config::broadcast_commit`).
    pub fn broadcast_commit(mut self, on: bool) -> Self {
        self.cfg.broadcast_commit = on;
        self
    }

    /// The heartbeat interval in ticks.
    pub fn heartbeat_ticks(mut self, ticks: usize) -> Self {
        self.cfg.heartbeat_ticks = ticks;
        self
    }

    /// The seed of the randomized election timeout.
    pub fn seed(mut self, seed: u64) -> Self {
        self.cfg.seed = seed;
        self
    }

    /// Opens a peer with this spec's settings over `store`, which holds
    /// what an earlier peer persisted (a restart); the spec's log and hard
    /// state are not used.
    pub fn reopen(self, store: MemStorage) -> Peer {
        RawNode::new(&self.cfg, store).expect("valid storage")
    }

    /// Writes the spec into fresh storage and opens a peer over it.
    pub fn build(self) -> Peer {
        let store = MemStorage::new_with_conf_state(ConfState {
            voters: self.voters.clone(),
            ..Default::default()
        });
        let ents: Vec<Entry> = (1..)
            .zip(&self.log_terms)
            .map(|(index, &term)| entry(index, term))
            .collect();
        let last_term = self.log_terms.last().copied().unwrap_or(0);
        {
            let mut core = store.wl();
            core.append(&ents).expect("append to fresh storage");
            core.set_hard_state(HardState {
                term: self.term.unwrap_or(last_term),
                vote: self.vote,
                commit: self.commit,
            });
        }
        RawNode::new(&self.cfg, store).expect("valid peer spec")
    }
}

// ---- playing the host of one peer --------------------------------------

/// What the host did with a peer's readies.
#[derive(Debug, Default)]
pub struct Flushed {
    /// Messages for other peers, all sent after their ready was durable.
    pub sent: Vec<Message>,
    /// Committed entries handed out to apply, in order.
    pub applied: Vec<Entry>,
}

/// Plays a synchronous host until the peer has nothing left to do: persist
/// each ready, collect its messages and committed entries, advance.
pub fn flush(peer: &mut Peer) -> Flushed {
    let mut out = Flushed::default();
    while peer.has_ready() {
        let rd = peer.ready();
        peer.store().persist_ready(&rd).expect("persist ready");
        out.sent.extend(rd.messages.iter().cloned());
        out.sent.extend(rd.persisted_messages.iter().cloned());
        out.applied.extend(rd.committed_entries.iter().cloned());
        peer.advance(rd);
    }
    out
}

/// Steps a message into a peer, as its host would on receiving it.
pub fn deliver(peer: &mut Peer, m: Message) {
    match peer.step(m) {
        Ok(()) | Err(Error::ProposalDropped) | Err(Error::StepPeerNotFound(_)) => {}
        Err(e) => panic!("peer {}: unexpected step error: {e}", peer.raft.id),
    }
}

/// Grants `peer` the (pre-)vote it asks for from every other voter.
pub fn grant_all(peer: &mut Peer) {
    let (resp, term) = match peer.raft.state {
        StateRole::PreCandidate => (MessageType::MsgRequestPreVoteResponse, peer.raft.term + 1),
        StateRole::Candidate => (MessageType::MsgRequestVoteResponse, peer.raft.term),
        role => panic!("peer {}: {role} asks for no vote", peer.raft.id),
    };
    for voter in peer.raft.trk.voter_nodes() {
        if voter != peer.raft.id {
            deliver(peer, msg(resp, voter, peer.raft.id, term));
        }
    }
}

/// Drives a fresh follower into `role` (pre-vote must be on for a
/// pre-candidate), persisting everything and dropping what it sends.
pub fn drive_to(peer: &mut Peer, role: StateRole) {
    if role == StateRole::Follower {
        return;
    }
    peer.campaign().expect("campaign");
    flush(peer);
    // At most two rounds of votes: pre-candidate, candidate, leader.
    for _ in 0..2 {
        if peer.raft.state == role || peer.raft.state == StateRole::Leader {
            break;
        }
        grant_all(peer);
        flush(peer);
    }
    assert_eq!(
        peer.raft.state, role,
        "peer {} did not become {role}",
        peer.raft.id
    );
}

/// Ticks until the peer sends something (at most two election timeouts)
/// and returns the number of ticks taken.
pub fn ticks_until_it_sends(peer: &mut Peer) -> usize {
    for ticks in 1..=2 * ELECTION_TICKS {
        peer.tick();
        if !peer.raft.msgs.is_empty() || !peer.raft.msgs_after_append.is_empty() {
            return ticks;
        }
    }
    panic!(
        "peer {} sent nothing in two election timeouts",
        peer.raft.id
    );
}

/// Every message the peer has queued, to be sent at once or after persisting.
pub fn take_queued(peer: &mut Peer) -> Vec<Message> {
    let mut all = std::mem::take(&mut peer.raft.msgs);
    all.append(&mut peer.raft.msgs_after_append);
    all
}

// ---- messages and entries ----------------------------------------------

/// The entry at `index` of `term`; its payload names both, so equal
/// (index, term) pairs carry equal commands, as in the paper.
pub fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: Bytes::from(format!("{index}@{term}")),
        ..Default::default()
    }
}

/// A bare message of type `t`.
pub fn msg(t: MessageType, from: u64, to: u64, term: u64) -> Message {
    Message {
        msg_type: t as i32,
        from,
        to,
        term,
        ..Default::default()
    }
}

/// An append in `term` after the entry `prev = (index, term)`, carrying
/// entries of the given terms at the following indexes, and `commit`.
pub fn append(
    from: u64,
    to: u64,
    term: u64,
    prev: (u64, u64),
    ents: &[u64],
    commit: u64,
) -> Message {
    Message {
        index: prev.0,
        log_term: prev.1,
        entries: (prev.0 + 1..)
            .zip(ents)
            .map(|(i, &t)| entry(i, t))
            .collect(),
        commit,
        ..msg(MessageType::MsgAppend, from, to, term)
    }
}

/// A (pre-)vote request of type `t` for `term` from a candidate whose log
/// ends at `last = (index, term)`.
pub fn vote_request(t: MessageType, from: u64, to: u64, term: u64, last: (u64, u64)) -> Message {
    Message {
        index: last.0,
        log_term: last.1,
        ..msg(t, from, to, term)
    }
}

/// An acknowledgement that `from` holds the leader's log up to `index`.
pub fn append_ack(from: u64, to: u64, term: u64, index: u64) -> Message {
    Message {
        index,
        ..msg(MessageType::MsgAppendResponse, from, to, term)
    }
}

/// The (index, term) pairs of a raft's whole log.
pub fn log_of(raft: &Raft<MemStorage>) -> Vec<(u64, u64)> {
    raft.raft_log
        .all_entries()
        .iter()
        .map(|e| (e.index, e.term))
        .collect()
}

/// The (index, term) pairs of a log whose entry terms are given from index 1.
pub fn indexed(terms: &[u64]) -> Vec<(u64, u64)> {
    (1..).zip(terms.iter().copied()).collect()
}

/// The messages of type `t` among `msgs`.
pub fn of_type(msgs: &[Message], t: MessageType) -> Vec<&Message> {
    msgs.iter().filter(|m| m.msg_type() == t).collect()
}

// ---- a network of peers ------------------------------------------------

/// Rounds of delivery after which a network that is still busy is broken.
const MAX_ROUNDS: usize = 10_000;

/// Peers wired together in memory. Messages to an id with no peer vanish,
/// so a test can stand in for a peer by sending its messages itself.
#[derive(Debug)]
pub struct Network {
    peers: BTreeMap<u64, Peer>,
    applied: BTreeMap<u64, Vec<Entry>>,
    drop_rates: HashMap<(u64, u64), f64>,
    ignored: HashSet<MessageType>,
    leaders: BTreeMap<u64, BTreeSet<u64>>,
    rng: ChaCha8Rng,
}

impl Network {
    /// A network of the given peers; lossy links draw from seed 0.
    pub fn new(peers: Vec<Peer>) -> Self {
        Network {
            peers: peers.into_iter().map(|p| (p.raft.id, p)).collect(),
            applied: BTreeMap::new(),
            drop_rates: HashMap::new(),
            ignored: HashSet::new(),
            leaders: BTreeMap::new(),
            rng: ChaCha8Rng::seed_from_u64(0),
        }
    }

    /// A network of fresh peers forming one group, timeouts seeded by `seed`.
    pub fn fresh(ids: &[u64], seed: u64) -> Self {
        let peers = ids
            .iter()
            .map(|&id| PeerSpec::new(id, ids).seed(seed).build())
            .collect();
        let mut net = Network::new(peers);
        net.rng = ChaCha8Rng::seed_from_u64(seed);
        net
    }

    /// Peer `id`'s state machine.
    pub fn raft(&self, id: u64) -> &Raft<MemStorage> {
        &self.peers[&id].raft
    }

    /// Peer `id`'s handle.
    pub fn peer_mut(&mut self, id: u64) -> &mut Peer {
        self.peers.get_mut(&id).expect("no such peer")
    }

    /// The ids of the peers in the network.
    pub fn ids(&self) -> Vec<u64> {
        self.peers.keys().copied().collect()
    }

    /// Everything peer `id` applied so far, in order.
    pub fn applied(&self, id: u64) -> &[Entry] {
        self.applied.get(&id).map_or(&[], Vec::as_slice)
    }

    /// Every peer seen leading, by term, since the network was built.
    pub fn leaders_by_term(&self) -> &BTreeMap<u64, BTreeSet<u64>> {
        &self.leaders
    }

    /// The peer that leads the highest term, if any.
    pub fn leader(&self) -> Option<u64> {
        let leading = self
            .peers
            .values()
            .filter(|p| p.raft.state == StateRole::Leader);
        leading.max_by_key(|p| p.raft.term).map(|p| p.raft.id)
    }

    /// Peer `id` campaigns; everything that follows is delivered.
    pub fn campaign(&mut self, id: u64) {
        self.peer_mut(id).campaign().expect("campaign");
        self.send(Vec::new());
    }

    /// Proposes `data` at peer `id` and delivers what follows.
    pub fn propose(&mut self, id: u64, data: &str) {
        self.peer_mut(id)
            .propose(Bytes::new(), Bytes::from(data.to_string()))
            .expect("propose");
        self.send(Vec::new());
    }

    /// Ticks every peer once, then delivers what follows.
    pub fn tick_all(&mut self) {
        self.tick(&self.ids());
    }

    /// Ticks the given peers once (the others are down, say), then
    /// delivers what follows.
    pub fn tick(&mut self, ids: &[u64]) {
        for id in ids {
            self.peer_mut(*id).tick();
        }
        self.send(Vec::new());
    }

    /// Drops every message from `from` to `to` with probability `rate`.
    pub fn drop_link(&mut self, from: u64, to: u64, rate: f64) {
        self.drop_rates.insert((from, to), rate);
    }

    /// Cuts the link between `a` and `b` both ways.
    pub fn cut(&mut self, a: u64, b: u64) {
        self.drop_link(a, b, 1.0);
        self.drop_link(b, a, 1.0);
    }

    /// Cuts peer `id` off from every other peer.
    pub fn isolate(&mut self, id: u64) {
        for other in self.ids() {
            if other != id {
                self.cut(id, other);
            }
        }
    }

    /// Drops every message of type `t`.
    pub fn ignore(&mut self, t: MessageType) {
        self.ignored.insert(t);
    }

    /// Heals every link and stops ignoring message types.
    pub fn recover(&mut self) {
        self.drop_rates.clear();
        self.ignored.clear();
    }

    /// Delivers `msgs`, then keeps persisting every ready and delivering
    /// what it sends until the network is quiet.
    pub fn send(&mut self, msgs: Vec<Message>) {
        let mut queue = msgs;
        for _ in 0..MAX_ROUNDS {
            queue.extend(self.flush_all());
            if queue.is_empty() {
                return;
            }
            for m in std::mem::take(&mut queue) {
                self.deliver(m);
            }
        }
        panic!("the network is still busy after {MAX_ROUNDS} rounds");
    }

    fn flush_all(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        let ids = self.ids();
        for id in ids {
            let peer = self.peers.get_mut(&id).expect("listed");
            let flushed = flush(peer);
            out.extend(flushed.sent);
            self.applied.entry(id).or_default().extend(flushed.applied);
            self.observe(id);
        }
        out
    }

    fn deliver(&mut self, m: Message) {
        if self.ignored.contains(&m.msg_type()) {
            return;
        }
        let rate = self.drop_rates.get(&(m.from, m.to)).copied().unwrap_or(0.0);
        if rate > 0.0 && self.rng.random_bool(rate) {
            return;
        }
        let to = m.to;
        let Some(peer) = self.peers.get_mut(&to) else {
            return;
        };
        deliver(peer, m);
        self.observe(to);
    }

    fn observe(&mut self, id: u64) {
        let raft = &self.peers[&id].raft;
        if raft.state == StateRole::Leader {
            self.leaders.entry(raft.term).or_default().insert(id);
        }
    }
}
