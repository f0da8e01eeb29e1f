//! The transport's counters, readable by tests and published through the
//! `metrics` crate (`flotilla_transport_*`).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// What a transport has done since it started.
#[derive(Debug, Default)]
pub struct TransportStats {
    frames_sent: AtomicU64,
    frames_received: AtomicU64,
    frames_rejected: AtomicU64,
    frames_dropped: AtomicU64,
    connects: AtomicU64,
    connections_closed: AtomicU64,
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
}

impl TransportStats {
    /// The counters now.
    pub fn snapshot(&self) -> TransportStatsSnapshot {
        TransportStatsSnapshot {
            frames_sent: self.frames_sent.load(Relaxed),
            frames_received: self.frames_received.load(Relaxed),
            frames_rejected: self.frames_rejected.load(Relaxed),
            frames_dropped: self.frames_dropped.load(Relaxed),
            connects: self.connects.load(Relaxed),
            connections_closed: self.connections_closed.load(Relaxed),
        }
    }

    pub(crate) fn sent(&self, frames: u64) {
        self.frames_sent.fetch_add(frames, Relaxed);
        metrics::counter!("flotilla_transport_frames_sent_total").increment(frames);
    }

    pub(crate) fn received(&self) {
        self.frames_received.fetch_add(1, Relaxed);
        metrics::counter!("flotilla_transport_frames_received_total").increment(1);
    }

    pub(crate) fn rejected(&self) {
        self.frames_rejected.fetch_add(1, Relaxed);
        metrics::counter!("flotilla_transport_frames_rejected_total").increment(1);
    }

    pub(crate) fn dropped(&self) {
        self.frames_dropped.fetch_add(1, Relaxed);
        metrics::counter!("flotilla_transport_frames_dropped_total").increment(1);
    }

    pub(crate) fn connected(&self) {
        self.connects.fetch_add(1, Relaxed);
        metrics::counter!("flotilla_transport_connects_total").increment(1);
    }

    pub(crate) fn closed(&self) {
        self.connections_closed.fetch_add(1, Relaxed);
        metrics::counter!("flotilla_transport_connections_closed_total").increment(1);
    }
}
