//! A store's configuration.

use std::path::PathBuf;
use std::time::Duration;

use flotilla_engine::EngineConfig;

/// The default of [`StoreConfig::proposal_batch_bytes_max`].
pub const PROPOSAL_BATCH_BYTES_MAX: u64 = 64 << 10;

/// The default of [`StoreConfig::log_gc_threshold_bytes`].
pub const LOG_GC_THRESHOLD_BYTES: u64 = 256 << 10;

/// Everything a store is opened with. Field names carry their units last.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// This store's id, unique in the cluster; never 0.
    pub store_id: u64,
    /// Where the store's RocksDB lives.
    pub data_dir: PathBuf,
    /// The engine's own settings.
    pub engine: EngineConfig,
    /// One logical clock tick of every region on the store.
    pub tick_interval: Duration,
    /// Ticks without a leader before a follower campaigns.
    pub election_ticks: usize,
    /// Ticks between a leader's heartbeats.
    pub heartbeat_ticks: usize,
    /// Poller threads running the regions' rounds.
    pub pool_size: usize,
    /// Regions (FSMs) per round at most.
    pub round_regions_max: usize,
    /// Messages one region takes from its mailbox per turn.
    pub messages_per_turn: usize,
    /// A region's mailbox bound.
    pub mailbox_capacity: usize,
    /// Cap on entry bytes of one append message.
    pub append_bytes_max: u64,
    /// Append messages in flight to one follower.
    pub inflight_msgs_max: usize,
    /// Cap on a leader's uncommitted entry bytes; proposals beyond it are
    /// refused with `ServerIsBusy`.
    pub uncommitted_bytes_max: u64,
    /// How much of an election timeout a leader lease gives up to clock
    /// drift between stores: the lease lasts
    /// `election_ticks * tick_interval - lease_drift_margin`.
    pub lease_drift_margin: Duration,
    /// Applied entries a region keeps in its log before compacting.
    pub log_gc_threshold_entries: u64,
    /// Entries a compaction leaves behind the applied index, so that
    /// followers a little behind catch up from the log, not a snapshot.
    pub log_gc_keep_entries: u64,
    /// Payload bytes a region's log may hold before it is compacted
    /// earlier than `log_gc_threshold_entries` (0: by entries only). A
    /// leader then discards what every follower already holds, a follower
    /// the older three quarters of its applied log. Kept well below the
    /// raft log memtable divided by the regions writing, the entries are
    /// deleted while the memtable still holds them, and its flush drops
    /// them instead of writing them out to be compacted away.
    pub log_gc_threshold_bytes: u64,
    /// Seed for the regions' randomized election timeouts.
    pub seed: u64,
    /// Batch across regions: one synced write and one frame per
    /// destination store for all regions of a round, heartbeats coalesced
    /// per tick. Off (the naive design, kept to measure the gain), each
    /// region writes and syncs its own ready, sends its own frames, and its
    /// heartbeats travel as ordinary messages.
    pub cross_region_batching: bool,
    /// Write and sync the rounds' raft batches on a store writer thread
    /// (with cross-region batching, on a started store): the next round
    /// runs while the last one syncs, rounds waiting for the disk share
    /// one sync, and a leader's appends leave before its own sync. Off,
    /// each round writes and syncs before it sends anything (always so
    /// for rounds run by hand, [`crate::Store::run_round`]).
    pub async_raft_write: bool,
    /// Send every follower an append, an empty one if need be, each time
    /// a region's commit index moves. Off (the default), the commit
    /// reaches a follower on the next append that carries entries to it,
    /// or on the next heartbeat (at most `heartbeat_ticks` later) if the
    /// region goes quiet: under load that halves the messages between
    /// stores (each commit otherwise costs an empty append and its
    /// acknowledgement per follower). A leader applies and answers as soon
    /// as it knows the commit either way; only followers apply later.
    pub broadcast_commit: bool,
    /// Client writes a leader takes from its mailbox in one turn join one
    /// raft entry (one command, its requests in arrival order, applied
    /// atomically) until it holds this many bytes; each writer still gets
    /// its own answer. 0: one entry per write.
    pub proposal_batch_bytes_max: u64,
}

impl StoreConfig {
    /// Defaults for a store with id `store_id` in `data_dir`.
    pub fn new(store_id: u64, data_dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            store_id,
            data_dir: data_dir.into(),
            engine: EngineConfig::default(),
            tick_interval: Duration::from_millis(100),
            election_ticks: 10,
            heartbeat_ticks: 2,
            pool_size: 2,
            round_regions_max: 256,
            messages_per_turn: 1024,
            mailbox_capacity: 4096,
            append_bytes_max: 1 << 20,
            inflight_msgs_max: 256,
            uncommitted_bytes_max: 64 << 20,
            lease_drift_margin: Duration::from_millis(200),
            log_gc_threshold_entries: 1024,
            log_gc_keep_entries: 256,
            log_gc_threshold_bytes: LOG_GC_THRESHOLD_BYTES,
            seed: 0,
            cross_region_batching: true,
            async_raft_write: true,
            broadcast_commit: false,
            proposal_batch_bytes_max: PROPOSAL_BATCH_BYTES_MAX,
        }
    }

    /// How long a leader's lease lasts from the moment a quorum confirmed it.
    pub fn lease_duration(&self) -> Duration {
        let election = self.tick_interval * self.election_ticks as u32;
        election.saturating_sub(self.lease_drift_margin)
    }

    /// Checks the settings against each other.
    pub fn validate(&self) -> Result<(), String> {
        if self.store_id == 0 {
            return Err("store_id must not be 0".into());
        }
        if self.heartbeat_ticks == 0 || self.heartbeat_ticks >= self.election_ticks {
            return Err(format!(
                "heartbeat_ticks ({}) must be in 1..election_ticks ({})",
                self.heartbeat_ticks, self.election_ticks
            ));
        }
        if self.tick_interval.is_zero() {
            return Err("tick_interval must not be zero".into());
        }
        if self.pool_size == 0 || self.round_regions_max == 0 || self.messages_per_turn == 0 {
            return Err(
                "pool_size, round_regions_max and messages_per_turn must be positive".into(),
            );
        }
        if self.log_gc_keep_entries >= self.log_gc_threshold_entries {
            return Err("log_gc_keep_entries must be below log_gc_threshold_entries".into());
        }
        Ok(())
    }
}
