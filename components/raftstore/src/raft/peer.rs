//! [`Peer`]: one replica of a region on this store.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use flotilla_engine::{Engine, RegionLogStorage};
use flotilla_proto::cmdpb::WriteCommand;
use flotilla_proto::metapb::{Peer as PeerMeta, Region};
use flotilla_raft::{Config, RawNode, ReadOnlyOption, StateRole};

use crate::config::StoreConfig;
use crate::errors::{Error, Result};
use crate::msg::{Callback, ReadRequest, ReadResponse, RegionStatus};
use crate::raft::Lease;

/// A write waiting for its entry to apply.
pub(crate) struct Proposal {
    pub(crate) index: u64,
    pub(crate) term: u64,
    pub(crate) proposed_at: Duration,
    /// Whether its commit was seen (for the propose-to-commit latency).
    pub(crate) committed: bool,
    pub(crate) cb: Callback<()>,
}

/// Client writes taken in one turn, waiting to be proposed as one entry.
pub(crate) struct ProposalBatch {
    pub(crate) cmd: WriteCommand,
    /// The command's encoded size so far.
    pub(crate) bytes: u64,
    /// One per write joined, in order.
    pub(crate) cbs: Vec<Callback<()>>,
}

/// A read waiting for its ReadIndex, then for the apply to reach it.
pub(crate) struct PendingRead {
    pub(crate) ctx: u64,
    pub(crate) issued_at: Duration,
    /// Set once the ReadIndex is known; the read is served once the
    /// applied index reaches it.
    pub(crate) index: Option<u64>,
    pub(crate) req: ReadRequest,
    pub(crate) cb: Callback<ReadResponse>,
}

/// One replica of a region: its raft group (over the region's log in the
/// store's engine) and what waits on it.
pub struct Peer {
    pub(crate) store_id: u64,
    pub(crate) region_id: u64,
    pub(crate) peer_id: u64,
    pub(crate) raft: RawNode<RegionLogStorage>,
    pub(crate) engine: Engine,
    /// Invariant: indexes are increasing.
    pub(crate) proposals: VecDeque<Proposal>,
    pub(crate) reads: VecDeque<PendingRead>,
    pub(crate) next_read_ctx: u64,
    pub(crate) lease: Lease,
    /// Whether the peer led at its last ready (for the leader gauge).
    pub(crate) leading: bool,
    pub(crate) lease_length: Duration,
    /// The region's peers by id, rebuilt when the region changes.
    pub(crate) peers: HashMap<u64, PeerMeta>,
    pub(crate) gc_threshold_entries: u64,
    pub(crate) gc_keep_entries: u64,
    pub(crate) gc_threshold_bytes: u64,
    /// The latest ready the store's writer made durable: set by the
    /// writer, read at the start of each of the peer's turns.
    pub(crate) durable: Arc<AtomicU64>,
    /// The latest durable ready raft has been told of.
    pub(crate) durable_seen: u64,
    /// Writes of this turn not yet proposed.
    pub(crate) batch: Option<ProposalBatch>,
    pub(crate) proposal_batch_bytes_max: u64,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("store_id", &self.store_id)
            .field("region_id", &self.region_id)
            .field("peer_id", &self.peer_id)
            .field("role", &self.raft.raft.state)
            .field("term", &self.raft.raft.term)
            .finish()
    }
}

impl Peer {
    /// Opens the replica on `store_id` of the region whose storage is
    /// `storage` (created by bootstrap or loaded at restart).
    pub fn open(cfg: &StoreConfig, engine: &Engine, storage: RegionLogStorage) -> Result<Peer> {
        let region = storage.region().clone();
        let me = region
            .peers
            .iter()
            .find(|p| p.store_id == cfg.store_id)
            .cloned()
            .ok_or_else(|| {
                Error::InvalidRequest(format!(
                    "region {} has no peer on store {}",
                    region.id, cfg.store_id
                ))
            })?;
        let mut rc = Config::new(me.id);
        rc.election_ticks = cfg.election_ticks;
        rc.heartbeat_ticks = cfg.heartbeat_ticks;
        rc.applied = storage.applied().0;
        rc.msg_bytes_max = cfg.append_bytes_max;
        rc.inflight_msgs_max = cfg.inflight_msgs_max;
        rc.uncommitted_bytes_max = cfg.uncommitted_bytes_max;
        rc.check_quorum = true;
        rc.pre_vote = true;
        rc.read_only_option = ReadOnlyOption::Safe;
        rc.disable_proposal_forwarding = true;
        rc.broadcast_commit = cfg.broadcast_commit;
        rc.seed = cfg.seed ^ region.id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let raft = RawNode::new(&rc, storage)
            .map_err(|e| Error::InvalidRequest(format!("region {}: {e}", region.id)))?;
        let mut peer = Peer {
            store_id: cfg.store_id,
            region_id: region.id,
            peer_id: me.id,
            raft,
            engine: engine.clone(),
            proposals: VecDeque::new(),
            reads: VecDeque::new(),
            next_read_ctx: 1,
            lease: Lease::default(),
            leading: false,
            lease_length: cfg.lease_duration(),
            peers: HashMap::new(),
            gc_threshold_entries: cfg.log_gc_threshold_entries,
            gc_keep_entries: cfg.log_gc_keep_entries,
            gc_threshold_bytes: cfg.log_gc_threshold_bytes,
            durable: Arc::new(AtomicU64::new(0)),
            durable_seen: 0,
            batch: None,
            proposal_batch_bytes_max: cfg.proposal_batch_bytes_max,
        };
        peer.refresh_peers();
        Ok(peer)
    }

    /// The region as this replica knows it.
    pub fn region(&self) -> &Region {
        self.raft.store().region()
    }

    /// This replica's peer id.
    pub fn peer_id(&self) -> u64 {
        self.peer_id
    }

    /// Whether this replica leads its region.
    pub fn is_leader(&self) -> bool {
        self.raft.raft.state == StateRole::Leader
    }

    /// The leader this replica knows of, if any.
    pub(crate) fn leader(&self) -> Option<PeerMeta> {
        self.peers.get(&self.raft.raft.lead).cloned()
    }

    pub(crate) fn not_leader(&self) -> Error {
        Error::NotLeader {
            region_id: self.region_id,
            leader: self.leader(),
        }
    }

    /// The replica's state, for inspection.
    pub fn status(&self) -> RegionStatus {
        let r = &self.raft.raft;
        let store = self.raft.store();
        RegionStatus {
            region: self.region().clone(),
            peer_id: self.peer_id,
            is_leader: self.is_leader(),
            leader_id: r.lead,
            term: r.term,
            commit: r.raft_log.committed,
            applied: r.raft_log.applied,
            log_range: (store.truncated().0 + 1, r.raft_log.last_index()),
        }
    }

    /// Tells raft of the readies the store's writer made durable since
    /// the peer's last turn: its own acknowledgements count now.
    pub(crate) fn absorb_durable(&mut self) {
        let durable = self.durable.load(Ordering::Acquire);
        if durable > self.durable_seen {
            self.durable_seen = durable;
            self.raft.on_persist_ready(durable);
        }
    }

    pub(crate) fn refresh_peers(&mut self) {
        self.peers = self.region().peers.iter().map(|p| (p.id, *p)).collect();
    }
}
