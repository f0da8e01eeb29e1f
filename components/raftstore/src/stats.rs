//! The store's counters: kept as atomics the store and its tests can read,
//! and published through the `metrics` crate (`flotilla_store_*`).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};

/// What a store has done since it opened. Read with [`StoreStats::snapshot`].
/// Published with the label `store` (its id), so that stores sharing a
/// process (and its recorder) stay apart.
#[derive(Debug, Default)]
pub struct StoreStats {
    published: Published,
    rounds: AtomicU64,
    round_regions: AtomicU64,
    writes: AtomicU64,
    synced_writes: AtomicU64,
    entries_synced: AtomicU64,
    entry_bytes_synced: AtomicU64,
    apply_writes: AtomicU64,
    flushes: AtomicU64,
    messages_flushed: AtomicU64,
    heartbeat_frames: AtomicU64,
    heartbeats_coalesced: AtomicU64,
    lease_reads: AtomicU64,
    read_index_reads: AtomicU64,
    proposals: AtomicU64,
    applied_commands: AtomicU64,
    snapshots_sent: AtomicU64,
    snapshots_applied: AtomicU64,
    undeliverable: AtomicU64,
}

/// A copy of a store's counters at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Poller rounds that handled at least one region.
    pub rounds: u64,
    /// Regions handled, summed over rounds.
    pub round_regions: u64,
    /// Raft-state writes to the engine (at most one per round).
    pub writes: u64,
    /// Those of them that were synced.
    pub synced_writes: u64,
    /// Log entries in synced writes.
    pub entries_synced: u64,
    /// Their payload bytes (the commands they carry).
    pub entry_bytes_synced: u64,
    /// Apply writes (at most one per round).
    pub apply_writes: u64,
    /// Frames of raft messages sent (one per destination per round).
    pub flushes: u64,
    /// Raft messages in those frames.
    pub messages_flushed: u64,
    /// Coalesced heartbeat frames sent (one per destination per tick);
    /// without cross-region batching, each heartbeat sent (it travels in
    /// its region's own frame).
    pub heartbeat_frames: u64,
    /// Heartbeats and responses carried in them.
    pub heartbeats_coalesced: u64,
    /// Reads served under a leader lease.
    pub lease_reads: u64,
    /// Reads served through ReadIndex.
    pub read_index_reads: u64,
    /// Write commands proposed.
    pub proposals: u64,
    /// Write commands applied.
    pub applied_commands: u64,
    /// Snapshots sent to followers.
    pub snapshots_sent: u64,
    /// Snapshots installed.
    pub snapshots_applied: u64,
    /// Messages from other stores dropped because this store hosts no such
    /// region or the region's mailbox was full (not those refused by a
    /// closed mailbox while the store shuts down).
    pub undeliverable: u64,
}

/// The store's handles into the installed recorder.
struct Published {
    rounds: Counter,
    synced_writes: Counter,
    apply_writes: Counter,
    lease_reads: Counter,
    read_index_reads: Counter,
    undeliverable: Counter,
    leaders: Gauge,
    round_regions: Histogram,
    round_seconds: Histogram,
    entries_per_sync: Histogram,
    messages_per_flush: Histogram,
    heartbeats_per_frame: Histogram,
    propose_to_commit: Histogram,
    propose_to_apply: Histogram,
}

/// Handles that publish nowhere (stats not tied to a store).
impl Default for Published {
    fn default() -> Self {
        Published {
            rounds: Counter::noop(),
            synced_writes: Counter::noop(),
            apply_writes: Counter::noop(),
            lease_reads: Counter::noop(),
            read_index_reads: Counter::noop(),
            undeliverable: Counter::noop(),
            leaders: Gauge::noop(),
            round_regions: Histogram::noop(),
            round_seconds: Histogram::noop(),
            entries_per_sync: Histogram::noop(),
            messages_per_flush: Histogram::noop(),
            heartbeats_per_frame: Histogram::noop(),
            propose_to_commit: Histogram::noop(),
            propose_to_apply: Histogram::noop(),
        }
    }
}

impl std::fmt::Debug for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Published")
    }
}

impl Published {
    fn new(store_id: u64) -> Self {
        let store = store_id.to_string();
        macro_rules! h {
            ($kind:ident, $name:literal) => {
                metrics::$kind!($name, "store" => store.clone())
            };
        }
        Published {
            rounds: h!(counter, "flotilla_store_rounds_total"),
            synced_writes: h!(counter, "flotilla_store_synced_writes_total"),
            apply_writes: h!(counter, "flotilla_store_apply_writes_total"),
            lease_reads: h!(counter, "flotilla_store_lease_reads_total"),
            read_index_reads: h!(counter, "flotilla_store_read_index_reads_total"),
            undeliverable: h!(counter, "flotilla_store_undeliverable_messages_total"),
            leaders: h!(gauge, "flotilla_store_leaders"),
            round_regions: h!(histogram, "flotilla_store_round_regions"),
            round_seconds: h!(histogram, "flotilla_store_round_seconds"),
            entries_per_sync: h!(histogram, "flotilla_store_entries_per_sync"),
            messages_per_flush: h!(histogram, "flotilla_store_messages_per_flush"),
            heartbeats_per_frame: h!(histogram, "flotilla_store_heartbeats_per_frame"),
            propose_to_commit: h!(histogram, "flotilla_store_propose_to_commit_seconds"),
            propose_to_apply: h!(histogram, "flotilla_store_propose_to_apply_seconds"),
        }
    }
}

impl StoreStats {
    /// Counters for store `store_id`, published under its label.
    pub fn new(store_id: u64) -> Self {
        StoreStats {
            published: Published::new(store_id),
            ..Default::default()
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            rounds: self.rounds.load(Relaxed),
            round_regions: self.round_regions.load(Relaxed),
            writes: self.writes.load(Relaxed),
            synced_writes: self.synced_writes.load(Relaxed),
            entries_synced: self.entries_synced.load(Relaxed),
            entry_bytes_synced: self.entry_bytes_synced.load(Relaxed),
            apply_writes: self.apply_writes.load(Relaxed),
            flushes: self.flushes.load(Relaxed),
            messages_flushed: self.messages_flushed.load(Relaxed),
            heartbeat_frames: self.heartbeat_frames.load(Relaxed),
            heartbeats_coalesced: self.heartbeats_coalesced.load(Relaxed),
            lease_reads: self.lease_reads.load(Relaxed),
            read_index_reads: self.read_index_reads.load(Relaxed),
            proposals: self.proposals.load(Relaxed),
            applied_commands: self.applied_commands.load(Relaxed),
            snapshots_sent: self.snapshots_sent.load(Relaxed),
            snapshots_applied: self.snapshots_applied.load(Relaxed),
            undeliverable: self.undeliverable.load(Relaxed),
        }
    }

    pub(crate) fn record_round(&self, regions: usize, elapsed: Duration) {
        self.rounds.fetch_add(1, Relaxed);
        self.round_regions.fetch_add(regions as u64, Relaxed);
        self.published.rounds.increment(1);
        self.published.round_regions.record(regions as f64);
        self.published.round_seconds.record(elapsed.as_secs_f64());
    }

    pub(crate) fn record_write(&self, sync: bool, entries: usize, entry_bytes: u64) {
        self.writes.fetch_add(1, Relaxed);
        if sync {
            self.synced_writes.fetch_add(1, Relaxed);
            self.entries_synced.fetch_add(entries as u64, Relaxed);
            self.entry_bytes_synced.fetch_add(entry_bytes, Relaxed);
            self.published.synced_writes.increment(1);
            self.published.entries_per_sync.record(entries as f64);
        }
    }

    pub(crate) fn record_apply_write(&self, commands: usize) {
        self.apply_writes.fetch_add(1, Relaxed);
        self.applied_commands.fetch_add(commands as u64, Relaxed);
        self.published.apply_writes.increment(1);
    }

    pub(crate) fn record_flush(&self, messages: usize) {
        self.flushes.fetch_add(1, Relaxed);
        self.messages_flushed.fetch_add(messages as u64, Relaxed);
        self.published.messages_per_flush.record(messages as f64);
    }

    pub(crate) fn record_heartbeat_frame(&self, heartbeats: usize) {
        self.heartbeat_frames.fetch_add(1, Relaxed);
        self.heartbeats_coalesced
            .fetch_add(heartbeats as u64, Relaxed);
        self.published
            .heartbeats_per_frame
            .record(heartbeats as f64);
    }

    pub(crate) fn record_read(&self, lease: bool) {
        if lease {
            self.lease_reads.fetch_add(1, Relaxed);
            self.published.lease_reads.increment(1);
        } else {
            self.read_index_reads.fetch_add(1, Relaxed);
            self.published.read_index_reads.increment(1);
        }
    }

    pub(crate) fn record_commit_latency(&self, d: Duration) {
        self.published.propose_to_commit.record(d.as_secs_f64());
    }

    pub(crate) fn record_apply_latency(&self, d: Duration) {
        self.published.propose_to_apply.record(d.as_secs_f64());
    }

    pub(crate) fn leaders_changed(&self, delta: f64) {
        self.published.leaders.increment(delta);
    }

    pub(crate) fn record_proposal(&self) {
        self.proposals.fetch_add(1, Relaxed);
    }

    /// Counts a dropped incoming message; true for the store's first, which
    /// the caller logs (later ones are only counted).
    pub(crate) fn record_undeliverable(&self) -> bool {
        self.published.undeliverable.increment(1);
        self.undeliverable.fetch_add(1, Relaxed) == 0
    }

    pub(crate) fn record_snapshot(&self, sent: bool) {
        if sent {
            self.snapshots_sent.fetch_add(1, Relaxed);
        } else {
            self.snapshots_applied.fetch_add(1, Relaxed);
        }
    }
}

/// Describes the store's metrics to the installed recorder (help texts and
/// units). Called when a store opens; harmless to repeat.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "flotilla_store_rounds_total",
        "Poller rounds that handled at least one region"
    );
    describe_counter!(
        "flotilla_store_synced_writes_total",
        "Synced raft writes (at most one per round)"
    );
    describe_counter!(
        "flotilla_store_apply_writes_total",
        "Apply writes (at most one per round)"
    );
    describe_counter!(
        "flotilla_store_lease_reads_total",
        "Reads served under a leader lease"
    );
    describe_counter!(
        "flotilla_store_read_index_reads_total",
        "Reads served through ReadIndex"
    );
    describe_gauge!("flotilla_store_leaders", "Regions this store leads");
    describe_counter!(
        "flotilla_store_undeliverable_messages_total",
        "Messages from other stores dropped: no such region here, or its mailbox full"
    );
    describe_histogram!("flotilla_store_round_regions", "Regions handled per round");
    describe_histogram!(
        "flotilla_store_round_seconds",
        Unit::Seconds,
        "Duration of a round"
    );
    describe_histogram!(
        "flotilla_store_entries_per_sync",
        "Raft log entries per synced write"
    );
    describe_histogram!(
        "flotilla_store_messages_per_flush",
        "Raft messages per frame to one store"
    );
    describe_histogram!(
        "flotilla_store_heartbeats_per_frame",
        "Heartbeats per coalesced frame"
    );
    describe_histogram!(
        "flotilla_store_propose_to_commit_seconds",
        Unit::Seconds,
        "From a write's proposal to its commit, at the leader"
    );
    describe_histogram!(
        "flotilla_store_propose_to_apply_seconds",
        Unit::Seconds,
        "From a write's proposal to its apply, at the leader"
    );
}
