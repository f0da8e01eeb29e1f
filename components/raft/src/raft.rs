//! The raft state machine of one peer: roles, the logical clock, and the
//! central `step` that checks terms once and dispatches on the role.
//!
//! Elections and terms live here; replication, reads and membership are
//! handled in `replication.rs`, `reads.rs` and `membership.rs`, each an
//! `impl Raft` block of its own.

use std::fmt;

use bytes::Bytes;
use flotilla_proto::raftpb::{Entry, HardState, Message, MessageType};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tracing::{debug, info, warn};

use crate::confchange;
use crate::config::Config;
use crate::errors::{Error, Result};
use crate::raft_log::RaftLog;
use crate::read_only::{ReadOnly, ReadState};
use crate::storage::Storage;
use crate::tracker::ProgressTracker;

/// The context of a `MsgRequestVote` sent because of a leader transfer: it
/// bypasses the voters' leader lease.
pub const CAMPAIGN_TRANSFER: &[u8] = b"CampaignTransfer";

/// A peer's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StateRole {
    /// Follows a leader (or waits for one).
    #[default]
    Follower,
    /// Asks for votes in a new term.
    Candidate,
    /// Leads its term.
    Leader,
    /// Asks whether it could win an election, without raising its term.
    PreCandidate,
}

impl fmt::Display for StateRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            StateRole::Follower => "StateFollower",
            StateRole::Candidate => "StateCandidate",
            StateRole::Leader => "StateLeader",
            StateRole::PreCandidate => "StatePreCandidate",
        };
        f.write_str(s)
    }
}

/// The volatile state the host may want to observe: who leads, and our role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SoftState {
    /// The leader's id, 0 when unknown.
    pub leader_id: u64,
    /// This peer's role.
    pub raft_state: StateRole,
}

/// Why an election starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignType {
    /// A pre-election: raises no term.
    PreElection,
    /// A normal election.
    Election,
    /// An election ordered by the leader during a transfer.
    Transfer,
}

/// One raft peer. Driven by `RawNode`; tests may reach in.
pub struct Raft<S: Storage> {
    /// This peer's id.
    pub id: u64,
    /// The current term.
    pub term: u64,
    /// Who this peer voted for in `term`, 0 for nobody.
    pub vote: u64,
    /// The log: stable entries through `Storage`, the rest unstable.
    pub raft_log: RaftLog<S>,
    /// Membership and every peer's replication progress.
    pub trk: ProgressTracker,
    /// This peer's role.
    pub state: StateRole,
    /// Whether this peer is a learner in the current configuration.
    pub is_learner: bool,
    /// The leader of `term`, 0 when unknown.
    pub lead: u64,
    /// The peer leadership is being transferred to, 0 when none.
    pub lead_transferee: u64,
    /// Messages that may be sent at once.
    pub msgs: Vec<Message>,
    /// Messages that may be sent only after everything appended so far (and
    /// the hard state) is durable: append and vote responses, and messages
    /// to this peer itself (its own acknowledgements).
    pub msgs_after_append: Vec<Message>,
    /// Reads that may be served once applied up to their index.
    pub read_states: Vec<ReadState>,
    /// The leader's pending reads.
    pub read_only: ReadOnly,
    /// Reads that arrived before this leader committed an entry of its term.
    pub pending_read_index_messages: Vec<Message>,
    /// Index of the last membership change proposed; a new one is refused
    /// until the applied index reaches it.
    pub pending_conf_index: u64,
    /// Payload bytes appended by this leader and not yet committed.
    pub uncommitted_bytes: u64,
    /// Ticks since the last election timeout reset (leader: since the last
    /// check-quorum).
    pub election_elapsed: usize,
    /// Ticks since the last heartbeat (leader only).
    pub heartbeat_elapsed: usize,
    /// Whether check-quorum and the leader lease are on.
    pub check_quorum: bool,
    /// Whether pre-vote is on.
    pub pre_vote: bool,
    pub(crate) election_ticks: usize,
    pub(crate) heartbeat_ticks: usize,
    // Invariant: election_ticks <= randomized_election_ticks < 2 * election_ticks.
    pub(crate) randomized_election_ticks: usize,
    pub(crate) msg_bytes_max: u64,
    pub(crate) uncommitted_bytes_max: u64,
    pub(crate) disable_proposal_forwarding: bool,
    pub(crate) broadcast_commit: bool,
    rng: ChaCha8Rng,
}

impl<S: Storage> fmt::Debug for Raft<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Raft")
            .field("id", &self.id)
            .field("term", &self.term)
            .field("vote", &self.vote)
            .field("state", &self.state)
            .field("lead", &self.lead)
            .field("committed", &self.raft_log.committed)
            .field("last_index", &self.raft_log.last_index())
            .finish()
    }
}

impl<S: Storage> Raft<S> {
    /// Builds a peer from its config and recovers its state from `store`.
    pub fn new(c: &Config, store: S) -> Result<Self> {
        c.validate()?;
        let rs = store.initial_state()?;
        let raft_log = RaftLog::new(store, c.committed_bytes_per_ready_max)?;
        let seed = c.seed ^ c.id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut r = Raft {
            id: c.id,
            term: 0,
            vote: 0,
            raft_log,
            trk: ProgressTracker::new(c.inflight_msgs_max, c.inflight_bytes_max),
            state: StateRole::Follower,
            is_learner: false,
            lead: 0,
            lead_transferee: 0,
            msgs: Vec::new(),
            msgs_after_append: Vec::new(),
            read_states: Vec::new(),
            read_only: ReadOnly::new(c.read_only_option),
            pending_read_index_messages: Vec::new(),
            pending_conf_index: 0,
            uncommitted_bytes: 0,
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            check_quorum: c.check_quorum,
            pre_vote: c.pre_vote,
            election_ticks: c.election_ticks,
            heartbeat_ticks: c.heartbeat_ticks,
            randomized_election_ticks: c.election_ticks,
            msg_bytes_max: c.msg_bytes_max,
            uncommitted_bytes_max: c.uncommitted_bytes_max,
            disable_proposal_forwarding: c.disable_proposal_forwarding,
            broadcast_commit: c.broadcast_commit,
            rng: ChaCha8Rng::seed_from_u64(seed),
        };
        let last_index = r.raft_log.last_index();
        let (cfg, prs) = confchange::restore(&r.trk, last_index, &rs.conf_state)?;
        r.switch_to_config(cfg, prs);
        if !rs.hard_state.is_empty() {
            r.load_state(&rs.hard_state)?;
        }
        if c.applied > 0 {
            if c.applied > r.raft_log.committed {
                return Err(Error::ConfigInvalid(format!(
                    "applied {} is beyond the persisted commit index {}",
                    c.applied, r.raft_log.committed
                )));
            }
            r.raft_log.applied_to(c.applied);
        }
        let term = r.term;
        r.become_follower(term, 0);
        info!(
            raft_id = r.id,
            term = r.term,
            commit = r.raft_log.committed,
            applied = r.raft_log.applied,
            last_index = r.raft_log.last_index(),
            "raft peer started"
        );
        Ok(r)
    }

    fn load_state(&mut self, hs: &HardState) -> Result<()> {
        let last = self.raft_log.last_index();
        if hs.commit < self.raft_log.committed || hs.commit > last {
            return Err(Error::ConfigInvalid(format!(
                "persisted commit {} is out of range [{}, {}]",
                hs.commit, self.raft_log.committed, last
            )));
        }
        self.raft_log.committed = hs.commit;
        self.raft_log.applying = self.raft_log.applying.max(self.raft_log.applied);
        self.term = hs.term;
        self.vote = hs.vote;
        Ok(())
    }

    /// The state to persist: term, vote and commit index.
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.raft_log.committed,
        }
    }

    /// The role and the known leader.
    pub fn soft_state(&self) -> SoftState {
        SoftState {
            leader_id: self.lead,
            raft_state: self.state,
        }
    }

    /// Whether this peer may campaign: a voter of the current configuration.
    pub fn promotable(&self) -> bool {
        self.trk.get(self.id).is_some_and(|pr| !pr.is_learner)
    }

    /// The randomized election timeout in ticks.
    pub fn randomized_election_ticks(&self) -> usize {
        self.randomized_election_ticks
    }

    /// The configured election timeout in ticks.
    pub fn election_ticks(&self) -> usize {
        self.election_ticks
    }

    /// The configured heartbeat interval in ticks.
    pub fn heartbeat_ticks(&self) -> usize {
        self.heartbeat_ticks
    }

    // ---- sending ---------------------------------------------------------

    /// Stamps `m` with our id and term and queues it: at once, or after the
    /// next persistence when it acknowledges state that must be durable.
    pub(crate) fn send(&mut self, mut m: Message) {
        m.from = self.id;
        let t = m.msg_type();
        if matches!(
            t,
            MessageType::MsgRequestVote
                | MessageType::MsgRequestVoteResponse
                | MessageType::MsgRequestPreVote
                | MessageType::MsgRequestPreVoteResponse
        ) {
            // Vote traffic carries the term of the election it is about,
            // which may differ from ours (pre-votes, rejections).
            assert!(m.term != 0, "{t:?} must carry a term");
        } else if t != MessageType::MsgPropose && t != MessageType::MsgReadIndex {
            // Proposals and reads forwarded to the leader are local traffic
            // and carry no term, so they are never dropped as stale.
            m.term = self.term;
        }
        // Held until durable: acknowledgements of appended entries and of
        // votes, our own acknowledgements, and vote requests. A candidate
        // that asked for votes in a term it had not persisted could crash,
        // forget the term, win it a second time with a different log and
        // break log matching.
        let after_append = m.to == self.id
            || matches!(
                t,
                MessageType::MsgAppendResponse
                    | MessageType::MsgRequestVote
                    | MessageType::MsgRequestVoteResponse
                    | MessageType::MsgRequestPreVoteResponse
            );
        if after_append {
            self.msgs_after_append.push(m);
        } else {
            self.msgs.push(m);
        }
    }

    // ---- roles -----------------------------------------------------------

    fn reset(&mut self, term: u64) {
        if self.term != term {
            self.term = term;
            self.vote = 0;
        }
        self.lead = 0;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.reset_randomized_election_timeout();
        self.abort_leader_transfer();
        self.trk.reset_votes();
        let next = self.raft_log.last_index() + 1;
        let persisted = self.raft_log.persisted_index();
        let id = self.id;
        for (&pid, pr) in self.trk.iter_mut() {
            let is_learner = pr.is_learner;
            pr.reset_state(crate::tracker::ProgressState::Probe);
            pr.matched = if pid == id { persisted } else { 0 };
            pr.next_idx = next;
            pr.pending_snapshot = 0;
            pr.recent_active = pid == id;
            pr.is_learner = is_learner;
            pr.inflights.reset();
        }
        self.pending_conf_index = 0;
        self.uncommitted_bytes = 0;
        self.read_only.clear();
    }

    /// Becomes a follower of `lead` (0 when unknown) in `term`.
    pub fn become_follower(&mut self, term: u64, lead: u64) {
        self.reset(term);
        self.lead = lead;
        self.state = StateRole::Follower;
        self.pending_read_index_messages.clear();
        info!(raft_id = self.id, term, leader = lead, "became follower");
    }

    /// Becomes a candidate: raises the term and votes for itself (the vote
    /// counts once it is durable).
    pub fn become_candidate(&mut self) {
        assert!(
            self.state != StateRole::Leader,
            "raft {}: leader cannot become candidate",
            self.id
        );
        let term = self.term + 1;
        self.reset(term);
        self.vote = self.id;
        self.state = StateRole::Candidate;
        info!(raft_id = self.id, term, "became candidate");
    }

    /// Becomes a pre-candidate: asks for pre-votes without changing term or vote.
    pub fn become_pre_candidate(&mut self) {
        assert!(
            self.state != StateRole::Leader,
            "raft {}: leader cannot become pre-candidate",
            self.id
        );
        // Unlike `reset`, keep the term and the vote. A fresh timeout keeps
        // two pre-candidates from retrying in lockstep.
        self.trk.reset_votes();
        self.lead = 0;
        self.reset_randomized_election_timeout();
        self.state = StateRole::PreCandidate;
        info!(raft_id = self.id, term = self.term, "became pre-candidate");
    }

    /// Becomes the leader of the current term and appends an empty entry,
    /// whose commit also commits every earlier entry.
    pub fn become_leader(&mut self) {
        assert!(
            self.state != StateRole::Follower,
            "raft {}: follower cannot become leader without an election",
            self.id
        );
        let term = self.term;
        self.reset(term);
        self.lead = self.id;
        self.state = StateRole::Leader;
        if let Some(pr) = self.trk.get_mut(self.id) {
            pr.become_replicate();
            pr.recent_active = true;
        }
        // Conservatively treat every unapplied entry as a possible pending
        // membership change.
        self.pending_conf_index = self.raft_log.last_index();
        let appended = self.append_entry(vec![Entry::default()]);
        assert!(
            appended,
            "raft {}: the empty leader entry is never dropped",
            self.id
        );
        info!(raft_id = self.id, term, "became leader");
    }

    fn reset_randomized_election_timeout(&mut self) {
        let lo = self.election_ticks;
        self.randomized_election_ticks = self.rng.random_range(lo..2 * lo);
    }

    /// Whether the randomized election timeout has elapsed.
    pub fn past_election_timeout(&self) -> bool {
        self.election_elapsed >= self.randomized_election_ticks
    }

    // ---- the logical clock -----------------------------------------------

    /// Advances the logical clock by one tick.
    pub fn tick(&mut self) {
        match self.state {
            StateRole::Leader => self.tick_heartbeat(),
            _ => self.tick_election(),
        }
    }

    /// Followers and candidates: campaign when the election timeout passes.
    fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.promotable() && self.past_election_timeout() {
            self.election_elapsed = 0;
            let m = local_msg(MessageType::MsgHup, self.id);
            if let Err(e) = self.step(m) {
                debug!(raft_id = self.id, "election tick: {e}");
            }
        }
    }

    /// Leaders: heartbeat every heartbeat interval; every election timeout
    /// check that a quorum is still active and abort a stalled transfer.
    fn tick_heartbeat(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.election_ticks {
            self.election_elapsed = 0;
            if self.check_quorum {
                let m = local_msg(MessageType::MsgCheckQuorum, self.id);
                if let Err(e) = self.step(m) {
                    debug!(raft_id = self.id, "check quorum: {e}");
                }
            }
            if self.state == StateRole::Leader && self.lead_transferee != 0 {
                self.abort_leader_transfer();
            }
        }
        if self.state != StateRole::Leader {
            return;
        }
        if self.heartbeat_elapsed >= self.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            let m = local_msg(MessageType::MsgBeat, self.id);
            if let Err(e) = self.step(m) {
                debug!(raft_id = self.id, "heartbeat: {e}");
            }
        }
    }

    // ---- step ------------------------------------------------------------

    /// Feeds one message to the state machine. Terms are checked here, once;
    /// then the message goes to the handler of the current role.
    pub fn step(&mut self, m: Message) -> Result<()> {
        if m.term > self.term {
            if !self.step_higher_term(&m) {
                return Ok(());
            }
        } else if m.term < self.term && m.term != 0 {
            self.step_lower_term(&m);
            return Ok(());
        }
        match m.msg_type() {
            MessageType::MsgHup => {
                self.hup(false);
                Ok(())
            }
            MessageType::MsgRequestVote | MessageType::MsgRequestPreVote => {
                self.step_vote_request(&m);
                Ok(())
            }
            _ => match self.state {
                StateRole::Leader => self.step_leader(m),
                StateRole::Candidate | StateRole::PreCandidate => self.step_candidate(m),
                StateRole::Follower => self.step_follower(m),
            },
        }
    }

    /// Handles a message from a higher term. Returns whether to go on
    /// processing it.
    fn step_higher_term(&mut self, m: &Message) -> bool {
        let t = m.msg_type();
        if matches!(
            t,
            MessageType::MsgRequestVote | MessageType::MsgRequestPreVote
        ) {
            let force = m.context.as_ref() == CAMPAIGN_TRANSFER;
            let in_lease =
                self.check_quorum && self.lead != 0 && self.election_elapsed < self.election_ticks;
            if !force && in_lease {
                // Leader lease: we heard from a leader recently, so this
                // candidate cannot be legitimate yet. Neither vote nor raise
                // our term.
                info!(
                    raft_id = self.id,
                    term = self.term,
                    from = m.from,
                    msg_term = m.term,
                    remaining_ticks = self.election_ticks - self.election_elapsed,
                    "ignored {t:?}: lease not expired"
                );
                return false;
            }
        }
        match t {
            // A pre-vote never changes the voter's term.
            MessageType::MsgRequestPreVote => {}
            // A granted pre-vote comes back with the future term of the
            // election; a rejection carries the voter's real, higher term.
            MessageType::MsgRequestPreVoteResponse if !m.reject => {}
            MessageType::MsgAppend | MessageType::MsgHeartbeat | MessageType::MsgSnapshot => {
                info!(
                    raft_id = self.id,
                    term = self.term,
                    from = m.from,
                    msg_term = m.term,
                    "received {t:?} with higher term"
                );
                self.become_follower(m.term, m.from);
            }
            _ => {
                info!(
                    raft_id = self.id,
                    term = self.term,
                    from = m.from,
                    msg_term = m.term,
                    "received {t:?} with higher term"
                );
                self.become_follower(m.term, 0);
            }
        }
        true
    }

    /// Handles a message from a lower term: mostly ignored, but answered
    /// where silence would leave the sender stuck (etcd issues 5451, 8501).
    fn step_lower_term(&mut self, m: &Message) {
        let t = m.msg_type();
        if (self.check_quorum || self.pre_vote)
            && matches!(t, MessageType::MsgHeartbeat | MessageType::MsgAppend)
        {
            // A leader cut off from us while our term rose (we campaigned in
            // a minority partition, or we pre-voted then got partitioned)
            // must learn our term and step down, or neither side would ever
            // accept the other: with check-quorum our votes are refused by
            // the lease, with pre-vote our log may be too short to win.
            self.send(Message {
                to: m.from,
                msg_type: MessageType::MsgAppendResponse as i32,
                ..Default::default()
            });
        } else if t == MessageType::MsgRequestPreVote {
            // A pre-candidate with a stale term but possibly a longer log
            // (for example after pre-vote was switched on in a rolling
            // upgrade) learns our term, so the group cannot deadlock.
            self.send(Message {
                to: m.from,
                term: self.term,
                msg_type: MessageType::MsgRequestPreVoteResponse as i32,
                reject: true,
                ..Default::default()
            });
        } else {
            debug!(
                raft_id = self.id,
                term = self.term,
                from = m.from,
                msg_term = m.term,
                "ignored {t:?} with lower term"
            );
        }
    }

    fn step_vote_request(&mut self, m: &Message) {
        let t = m.msg_type();
        let resp_type = vote_resp_type(t);
        // We may vote again for the same candidate (a retransmission), vote
        // if we have not voted and know no leader, or pre-vote for a future term.
        let can_vote = self.vote == m.from
            || (self.vote == 0 && self.lead == 0)
            || (t == MessageType::MsgRequestPreVote && m.term > self.term);
        if can_vote && self.raft_log.is_up_to_date(m.index, m.log_term) {
            info!(
                raft_id = self.id,
                term = self.term,
                candidate = m.from,
                msg_term = m.term,
                "cast {t:?} for candidate"
            );
            // The response carries the election's term: a pre-vote
            // response must not look like it comes from a stale term.
            self.send(Message {
                to: m.from,
                term: m.term,
                msg_type: resp_type as i32,
                ..Default::default()
            });
            if t == MessageType::MsgRequestVote {
                self.election_elapsed = 0;
                self.vote = m.from;
            }
        } else {
            info!(
                raft_id = self.id,
                term = self.term,
                candidate = m.from,
                msg_term = m.term,
                vote = self.vote,
                "rejected {t:?} from candidate"
            );
            self.send(Message {
                to: m.from,
                term: self.term,
                msg_type: resp_type as i32,
                reject: true,
                ..Default::default()
            });
        }
    }

    // ---- elections -------------------------------------------------------

    /// Starts an election (a pre-election first when pre-vote is on), unless
    /// this peer leads already or cannot campaign. `transfer` marks an
    /// election ordered by the outgoing leader.
    pub fn hup(&mut self, transfer: bool) {
        if self.state == StateRole::Leader {
            debug!(raft_id = self.id, "ignoring MsgHup: already leader");
            return;
        }
        if !self.promotable() {
            warn!(raft_id = self.id, "is not promotable and cannot campaign");
            return;
        }
        if self.has_unapplied_conf_changes() {
            warn!(
                raft_id = self.id,
                "cannot campaign: unapplied configuration changes"
            );
            return;
        }
        info!(
            raft_id = self.id,
            term = self.term,
            "starting a new election"
        );
        if transfer {
            self.campaign(CampaignType::Transfer);
        } else if self.pre_vote {
            self.campaign(CampaignType::PreElection);
        } else {
            self.campaign(CampaignType::Election);
        }
    }

    fn has_unapplied_conf_changes(&self) -> bool {
        let log = &self.raft_log;
        if log.applied >= log.committed {
            return false;
        }
        // Scan the committed but unapplied entries, a page at a time.
        let mut lo = log.applied + 1;
        let hi = log.committed + 1;
        while lo < hi {
            let Ok(ents) = log.slice(lo, hi, 8 << 20) else {
                // Unreadable entries are treated as possible conf changes.
                return true;
            };
            if ents.iter().any(|e| e.entry_type != 0) {
                return true;
            }
            lo += ents.len().max(1) as u64;
        }
        false
    }

    /// Runs an election of the given type.
    pub fn campaign(&mut self, ct: CampaignType) {
        let (vote_msg, term) = if ct == CampaignType::PreElection {
            self.become_pre_candidate();
            // Pre-votes ask about the term we would campaign in.
            (MessageType::MsgRequestPreVote, self.term + 1)
        } else {
            self.become_candidate();
            (MessageType::MsgRequestVote, self.term)
        };
        let ids = self.trk.config.voters.ids();
        let last_index = self.raft_log.last_index();
        let last_term = self.raft_log.last_term();
        for id in ids {
            if id == self.id {
                // Our own vote counts once our term and vote are durable.
                self.send(Message {
                    to: id,
                    term,
                    msg_type: vote_resp_type(vote_msg) as i32,
                    ..Default::default()
                });
                continue;
            }
            info!(
                raft_id = self.id,
                term = self.term,
                to = id,
                last_index,
                last_term,
                "sent {vote_msg:?}"
            );
            let context = if ct == CampaignType::Transfer {
                Bytes::from_static(CAMPAIGN_TRANSFER)
            } else {
                Bytes::new()
            };
            self.send(Message {
                to: id,
                term,
                msg_type: vote_msg as i32,
                index: last_index,
                log_term: last_term,
                context,
                ..Default::default()
            });
        }
    }

    /// Counts a vote; returns the tally.
    fn poll(&mut self, id: u64, t: MessageType, granted: bool) -> crate::quorum::VoteResult {
        if granted {
            info!(
                raft_id = self.id,
                term = self.term,
                from = id,
                "received {t:?} granted"
            );
        } else {
            info!(
                raft_id = self.id,
                term = self.term,
                from = id,
                "received {t:?} rejected"
            );
        }
        self.trk.record_vote(id, granted);
        let (_, _, result) = self.trk.tally_votes();
        result
    }

    fn step_candidate(&mut self, m: Message) -> Result<()> {
        let my_resp = if self.state == StateRole::PreCandidate {
            MessageType::MsgRequestPreVoteResponse
        } else {
            MessageType::MsgRequestVoteResponse
        };
        match m.msg_type() {
            MessageType::MsgPropose => {
                info!(
                    raft_id = self.id,
                    term = self.term,
                    "no leader; dropping proposal"
                );
                return Err(Error::ProposalDropped);
            }
            MessageType::MsgAppend => {
                self.become_follower(m.term, m.from);
                self.handle_append_entries(&m);
            }
            MessageType::MsgHeartbeat => {
                self.become_follower(m.term, m.from);
                self.handle_heartbeat(&m);
            }
            MessageType::MsgSnapshot => {
                self.become_follower(m.term, m.from);
                self.handle_snapshot(m);
            }
            t if t == my_resp => {
                use crate::quorum::VoteResult;
                match self.poll(m.from, t, !m.reject) {
                    VoteResult::Won => {
                        if self.state == StateRole::PreCandidate {
                            self.campaign(CampaignType::Election);
                        } else if self.trk.vote_of(self.id) == Some(true) {
                            self.become_leader();
                            self.bcast_append();
                        }
                        // Else wait for our own vote, which arrives once our
                        // term and vote are durable: leading before, a crash
                        // could lose them and let us lead this term again,
                        // with another log.
                    }
                    VoteResult::Lost => {
                        // A rejection from a higher term already made us a
                        // follower in `step`; here the term is unchanged.
                        let term = self.term;
                        self.become_follower(term, 0);
                    }
                    VoteResult::Pending => {}
                }
            }
            MessageType::MsgTimeoutNow => {
                debug!(
                    raft_id = self.id,
                    term = self.term,
                    from = m.from,
                    "ignored MsgTimeoutNow as a candidate"
                );
            }
            _ => {}
        }
        Ok(())
    }

    fn step_follower(&mut self, mut m: Message) -> Result<()> {
        match m.msg_type() {
            MessageType::MsgPropose => {
                if self.lead == 0 {
                    info!(
                        raft_id = self.id,
                        term = self.term,
                        "no leader; dropping proposal"
                    );
                    return Err(Error::ProposalDropped);
                }
                if self.disable_proposal_forwarding {
                    info!(
                        raft_id = self.id,
                        term = self.term,
                        "forwarding disabled; dropping proposal"
                    );
                    return Err(Error::ProposalDropped);
                }
                m.to = self.lead;
                self.send(m);
            }
            MessageType::MsgAppend => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_append_entries(&m);
            }
            MessageType::MsgHeartbeat => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_heartbeat(&m);
            }
            MessageType::MsgSnapshot => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_snapshot(m);
            }
            MessageType::MsgTransferLeader => {
                if self.lead == 0 {
                    info!(
                        raft_id = self.id,
                        term = self.term,
                        "no leader; dropping leader transfer"
                    );
                    return Ok(());
                }
                m.to = self.lead;
                self.send(m);
            }
            MessageType::MsgTimeoutNow => {
                info!(
                    raft_id = self.id,
                    term = self.term,
                    from = m.from,
                    "received MsgTimeoutNow; campaigning to take over leadership"
                );
                // Leadership transfer skips pre-vote: the leader asked for it.
                self.hup(true);
            }
            MessageType::MsgReadIndex => {
                if self.lead == 0 {
                    info!(
                        raft_id = self.id,
                        term = self.term,
                        "no leader; dropping read index"
                    );
                    return Err(Error::ProposalDropped);
                }
                m.to = self.lead;
                self.send(m);
            }
            MessageType::MsgReadIndexResponse => {
                let Some(ctx) = m.entries.first().map(|e| e.data.clone()) else {
                    warn!(
                        raft_id = self.id,
                        from = m.from,
                        "read index response without context"
                    );
                    return Ok(());
                };
                self.read_states.push(ReadState {
                    index: m.index,
                    request_ctx: ctx,
                });
            }
            _ => {}
        }
        Ok(())
    }

    /// Aborts a leadership transfer in progress.
    pub fn abort_leader_transfer(&mut self) {
        self.lead_transferee = 0;
    }
}

/// A local message of type `t` to and from `id`.
pub(crate) fn local_msg(t: MessageType, id: u64) -> Message {
    Message {
        msg_type: t as i32,
        from: id,
        to: id,
        ..Default::default()
    }
}

/// The response type for a vote request type.
pub fn vote_resp_type(t: MessageType) -> MessageType {
    match t {
        MessageType::MsgRequestVote => MessageType::MsgRequestVoteResponse,
        MessageType::MsgRequestPreVote => MessageType::MsgRequestPreVoteResponse,
        _ => panic!("not a vote message: {t:?}"),
    }
}
