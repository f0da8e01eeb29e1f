//! The transport's counters, readable by tests and published through the
//! `metrics` crate (`flotilla_transport_*`).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// What a transport has done since it started. Published with the label
/// `store` (its store's id).
#[derive(Debug, Default)]
pub struct TransportStats {
    published: Published,
    frames_sent: AtomicU64,
    frames_received: AtomicU64,
    frames_rejected: AtomicU64,
    frames_dropped: AtomicU64,
    connects: AtomicU64,
    connections_closed: AtomicU64,
    snapshots_sent: AtomicU64,
    snapshots_failed: AtomicU64,
    snapshot_chunks_sent: AtomicU64,
    snapshot_sent_bytes: AtomicU64,
    snapshot_throttled_us: AtomicU64,
    snapshots_received: AtomicU64,
    snapshots_refused: AtomicU64,
    snapshots_receiving: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TransportStatsSnapshot {
    /// Frames written to sockets.
    pub frames_sent: u64,
    /// Valid frames received and delivered.
    pub frames_received: u64,
    /// Frames or streams refused: malformed, oversized, bad checksum,
    /// undecodable, or from the wrong store. Each closes its connection.
    pub frames_rejected: u64,
    /// Frames dropped because a send queue was full.
    pub frames_dropped: u64,
    /// Outgoing connections established.
    pub connects: u64,
    /// Connections closed on error or by the other side.
    pub connections_closed: u64,
    /// Snapshots streamed whole and acknowledged by the receiver.
    pub snapshots_sent: u64,
    /// Snapshot sends that failed (connect, write, timeout, refused or busy).
    pub snapshots_failed: u64,
    /// Snapshot chunk frames written.
    pub snapshot_chunks_sent: u64,
    /// Snapshot data bytes written.
    pub snapshot_sent_bytes: u64,
    /// Microseconds snapshot sends waited for the rate limit.
    pub snapshot_throttled_us: u64,
    /// Snapshots received whole and handed to the regions.
    pub snapshots_received: u64,
    /// Snapshot connections refused because the store was receiving its maximum.
    pub snapshots_refused: u64,
    /// Snapshots being received now.
    pub snapshots_receiving: u64,
}

/// Describes the transport's metrics to the installed recorder.
pub fn describe() {
    use metrics::describe_counter;
    describe_counter!(
        "flotilla_transport_frames_sent_total",
        "Frames written to peer stores"
    );
    describe_counter!(
        "flotilla_transport_frames_received_total",
        "Valid frames received and delivered"
    );
    describe_counter!(
        "flotilla_transport_frames_rejected_total",
        "Frames or streams refused (malformed, oversized, bad checksum, misaddressed); each closes its connection"
    );
    describe_counter!(
        "flotilla_transport_frames_dropped_total",
        "Frames dropped because a send queue was full"
    );
    describe_counter!(
        "flotilla_transport_connects_total",
        "Connections established to peer stores"
    );
    describe_counter!(
        "flotilla_transport_connections_closed_total",
        "Connections closed on error or by the other side"
    );
    describe_counter!(
        "flotilla_transport_snapshots_sent_total",
        "Snapshots streamed whole and acknowledged by the receiver"
    );
    describe_counter!(
        "flotilla_transport_snapshots_failed_total",
        "Snapshot sends that failed (connect, write, timeout, refused or busy)"
    );
    describe_counter!(
        "flotilla_transport_snapshot_chunks_sent_total",
        "Snapshot chunk frames written"
    );
    describe_counter!(
        "flotilla_transport_snapshot_sent_bytes_total",
        "Snapshot data bytes written"
    );
    metrics::describe_gauge!(
        "flotilla_transport_snapshots_receiving",
        "Snapshots being received now"
    );
    metrics::describe_histogram!(
        "flotilla_transport_snapshot_throttle_wait_seconds",
        metrics::Unit::Seconds,
        "How long each snapshot chunk waited for the rate limit"
    );
    describe_counter!(
        "flotilla_transport_snapshots_received_total",
        "Snapshots received whole and handed to the regions"
    );
    describe_counter!(
        "flotilla_transport_snapshots_refused_total",
        "Snapshot connections refused because the store was receiving its maximum"
    );
}

/// The transport's handles into the installed recorder.
struct Published {
    frames_sent_total: metrics::Counter,
    frames_received_total: metrics::Counter,
    frames_rejected_total: metrics::Counter,
    frames_dropped_total: metrics::Counter,
    connects_total: metrics::Counter,
    connections_closed_total: metrics::Counter,
    snapshots_sent_total: metrics::Counter,
    snapshots_failed_total: metrics::Counter,
    snapshot_chunks_sent_total: metrics::Counter,
    snapshot_sent_bytes_total: metrics::Counter,
    snapshot_throttle_wait_seconds: metrics::Histogram,
    snapshots_received_total: metrics::Counter,
    snapshots_refused_total: metrics::Counter,
    snapshots_receiving: metrics::Gauge,
}

/// Handles that publish nowhere (stats not tied to a store).
impl Default for Published {
    fn default() -> Self {
        Published {
            frames_sent_total: metrics::Counter::noop(),
            frames_received_total: metrics::Counter::noop(),
            frames_rejected_total: metrics::Counter::noop(),
            frames_dropped_total: metrics::Counter::noop(),
            connects_total: metrics::Counter::noop(),
            connections_closed_total: metrics::Counter::noop(),
            snapshots_sent_total: metrics::Counter::noop(),
            snapshots_failed_total: metrics::Counter::noop(),
            snapshot_chunks_sent_total: metrics::Counter::noop(),
            snapshot_sent_bytes_total: metrics::Counter::noop(),
            snapshot_throttle_wait_seconds: metrics::Histogram::noop(),
            snapshots_received_total: metrics::Counter::noop(),
            snapshots_refused_total: metrics::Counter::noop(),
            snapshots_receiving: metrics::Gauge::noop(),
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
        Published {
            frames_sent_total: metrics::counter!("flotilla_transport_frames_sent_total", "store" => store.clone()),
            frames_received_total: metrics::counter!("flotilla_transport_frames_received_total", "store" => store.clone()),
            frames_rejected_total: metrics::counter!("flotilla_transport_frames_rejected_total", "store" => store.clone()),
            frames_dropped_total: metrics::counter!("flotilla_transport_frames_dropped_total", "store" => store.clone()),
            connects_total: metrics::counter!("flotilla_transport_connects_total", "store" => store.clone()),
            connections_closed_total: metrics::counter!("flotilla_transport_connections_closed_total", "store" => store.clone()),
            snapshots_sent_total: metrics::counter!("flotilla_transport_snapshots_sent_total", "store" => store.clone()),
            snapshots_failed_total: metrics::counter!("flotilla_transport_snapshots_failed_total", "store" => store.clone()),
            snapshot_chunks_sent_total: metrics::counter!("flotilla_transport_snapshot_chunks_sent_total", "store" => store.clone()),
            snapshot_sent_bytes_total: metrics::counter!("flotilla_transport_snapshot_sent_bytes_total", "store" => store.clone()),
            snapshot_throttle_wait_seconds: metrics::histogram!("flotilla_transport_snapshot_throttle_wait_seconds", "store" => store.clone()),
            snapshots_received_total: metrics::counter!("flotilla_transport_snapshots_received_total", "store" => store.clone()),
            snapshots_refused_total: metrics::counter!("flotilla_transport_snapshots_refused_total", "store" => store.clone()),
            snapshots_receiving: metrics::gauge!("flotilla_transport_snapshots_receiving", "store" => store.clone()),
        }
    }
}

impl TransportStats {
    /// Counters for store `store_id`'s transport, published under its label.
    pub fn new(store_id: u64) -> Self {
        TransportStats {
            published: Published::new(store_id),
            ..Default::default()
        }
    }
    /// The counters now.
    pub fn snapshot(&self) -> TransportStatsSnapshot {
        TransportStatsSnapshot {
            frames_sent: self.frames_sent.load(Relaxed),
            frames_received: self.frames_received.load(Relaxed),
            frames_rejected: self.frames_rejected.load(Relaxed),
            frames_dropped: self.frames_dropped.load(Relaxed),
            connects: self.connects.load(Relaxed),
            connections_closed: self.connections_closed.load(Relaxed),
            snapshots_sent: self.snapshots_sent.load(Relaxed),
            snapshots_failed: self.snapshots_failed.load(Relaxed),
            snapshot_chunks_sent: self.snapshot_chunks_sent.load(Relaxed),
            snapshot_sent_bytes: self.snapshot_sent_bytes.load(Relaxed),
            snapshot_throttled_us: self.snapshot_throttled_us.load(Relaxed),
            snapshots_received: self.snapshots_received.load(Relaxed),
            snapshots_refused: self.snapshots_refused.load(Relaxed),
            snapshots_receiving: self.snapshots_receiving.load(Relaxed),
        }
    }

    pub(crate) fn sent(&self, frames: u64) {
        self.frames_sent.fetch_add(frames, Relaxed);
        self.published.frames_sent_total.increment(frames);
    }

    pub(crate) fn received(&self) {
        self.frames_received.fetch_add(1, Relaxed);
        self.published.frames_received_total.increment(1);
    }

    pub(crate) fn rejected(&self) {
        self.frames_rejected.fetch_add(1, Relaxed);
        self.published.frames_rejected_total.increment(1);
    }

    pub(crate) fn dropped(&self) {
        self.frames_dropped.fetch_add(1, Relaxed);
        self.published.frames_dropped_total.increment(1);
    }

    pub(crate) fn connected(&self) {
        self.connects.fetch_add(1, Relaxed);
        self.published.connects_total.increment(1);
    }

    pub(crate) fn closed(&self) {
        self.connections_closed.fetch_add(1, Relaxed);
        self.published.connections_closed_total.increment(1);
    }

    pub(crate) fn add_snapshots_sent(&self, n: u64) {
        self.snapshots_sent.fetch_add(n, Relaxed);
        self.published.snapshots_sent_total.increment(n);
    }

    pub(crate) fn add_snapshots_failed(&self, n: u64) {
        self.snapshots_failed.fetch_add(n, Relaxed);
        self.published.snapshots_failed_total.increment(n);
    }

    pub(crate) fn add_snapshot_chunks_sent(&self, n: u64) {
        self.snapshot_chunks_sent.fetch_add(n, Relaxed);
        self.published.snapshot_chunks_sent_total.increment(n);
    }

    pub(crate) fn add_snapshot_sent_bytes(&self, n: u64) {
        self.snapshot_sent_bytes.fetch_add(n, Relaxed);
        self.published.snapshot_sent_bytes_total.increment(n);
    }

    pub(crate) fn add_snapshot_throttled_us(&self, n: u64) {
        self.snapshot_throttled_us.fetch_add(n, Relaxed);
        self.published
            .snapshot_throttle_wait_seconds
            .record(n as f64 / 1e6);
    }

    pub(crate) fn add_snapshots_received(&self, n: u64) {
        self.snapshots_received.fetch_add(n, Relaxed);
        self.published.snapshots_received_total.increment(n);
    }

    pub(crate) fn add_snapshots_refused(&self, n: u64) {
        self.snapshots_refused.fetch_add(n, Relaxed);
        self.published.snapshots_refused_total.increment(n);
    }

    pub(crate) fn set_snapshots_receiving(&self, n: usize) {
        self.snapshots_receiving.store(n as u64, Relaxed);
        self.published.snapshots_receiving.set(n as f64);
    }
}
