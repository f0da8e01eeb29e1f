//! The transport's configuration.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// How a store's transport connects and what it accepts.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// This store's id: frames must be addressed to it.
    pub store_id: u64,
    /// Every other store's raft address. Connections from a store not
    /// listed here are refused.
    pub peers: BTreeMap<u64, SocketAddr>,
    /// The largest frame payload sent or accepted.
    pub frame_bytes_max: u64,
    /// Bytes queued for one store at most; frames beyond it are dropped
    /// (raft resends what matters).
    pub send_queue_bytes_max: usize,
    /// First pause before reconnecting to a store; doubles per failure.
    pub reconnect_backoff_min: Duration,
    /// The longest pause before reconnecting.
    pub reconnect_backoff_max: Duration,
    /// Snapshot data per chunk frame.
    pub snapshot_chunk_bytes: usize,
    /// Snapshot bytes sent per second, across all of the store's snapshot
    /// sends; 0 for no limit.
    pub snapshot_bytes_per_sec: u64,
    /// Snapshots this store sends at once (each on its own connection);
    /// more wait in a queue of the same length, beyond which a send fails
    /// and raft retries later.
    pub snapshot_sends_max: usize,
    /// Snapshots this store receives at once; a snapshot connection beyond
    /// it is refused (its sender retries later).
    pub snapshot_receives_max: usize,
    /// The largest snapshot accepted.
    pub snapshot_bytes_max: u64,
    /// How long a snapshot send may block on one write, or wait for the
    /// receiver's answer, before it fails.
    pub snapshot_io_timeout: Duration,
}

impl TransportConfig {
    /// Defaults for store `store_id` talking to `peers`.
    pub fn new(store_id: u64, peers: BTreeMap<u64, SocketAddr>) -> Self {
        TransportConfig {
            store_id,
            peers,
            frame_bytes_max: 64 << 20,
            send_queue_bytes_max: 64 << 20,
            reconnect_backoff_min: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_secs(2),
            snapshot_chunk_bytes: 1 << 20,
            snapshot_bytes_per_sec: 100 << 20,
            snapshot_sends_max: 2,
            snapshot_receives_max: 2,
            snapshot_bytes_max: 4 << 30,
            snapshot_io_timeout: Duration::from_secs(30),
        }
    }
}
