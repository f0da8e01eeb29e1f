//! How a store's messages leave it: the [`Transport`] seam, the per-round
//! [`Outbox`] (one frame per destination store), and the store-wide
//! [`HeartbeatCoalescer`] (one heartbeat list per destination per tick).
//!
//! The in-memory network in [`mem`] implements the seam for tests and
//! simulation; the network transport implements the same trait.

pub mod mem;

use std::collections::BTreeMap;
use std::fmt;

use flotilla_proto::serverpb::{HeartbeatEntry, RaftMessage, StoreBatch};
use parking_lot::Mutex;

use crate::stats::StoreStats;

/// Why a frame could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// No route to the store.
    #[error("store {0} is unreachable")]
    Unreachable(u64),
    /// The transport is shut down.
    #[error("transport is closed")]
    Closed,
    /// The send queue to the store is full; the frame was dropped.
    #[error("send queue to store {0} is full")]
    QueueFull(u64),
}

/// Sends frames to other stores. One call is one flush: the store calls it
/// at most once per destination per round (and once per destination per
/// tick for coalesced heartbeats).
pub trait Transport: Send + Sync + fmt::Debug + 'static {
    /// Sends `batch` to `batch.to_store`. Delivery is best effort: raft
    /// retries what is lost.
    fn send(&self, batch: StoreBatch) -> Result<(), TransportError>;

    /// Sends one region snapshot (`msg` carries a `MsgSnapshot`) from
    /// `from_store` to `to_store`. The default sends it as a frame of its
    /// own and reports it [`SnapshotSend::Sent`]; a transport that streams
    /// snapshots returns [`SnapshotSend::Streaming`] and reports the outcome
    /// later through [`Deliver::snapshot_status`].
    fn send_snapshot(
        &self,
        from_store: u64,
        to_store: u64,
        msg: RaftMessage,
    ) -> Result<SnapshotSend, TransportError> {
        self.send(StoreBatch {
            from_store,
            to_store,
            messages: vec![msg],
            heartbeats: Vec::new(),
        })?;
        Ok(SnapshotSend::Sent)
    }
}

/// What became of a snapshot handed to [`Transport::send_snapshot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotSend {
    /// It left with the frames; raft may consider it sent.
    Sent,
    /// It is being streamed; the transport reports the outcome.
    Streaming,
}

/// Where a store receives frames: the receiving side of a [`Transport`].
pub trait Deliver: Send + Sync + fmt::Debug + 'static {
    /// Hands a frame from another store to this store's regions.
    fn deliver(&self, batch: StoreBatch);

    /// The transport lost (or could not reach) `store_id`: leaders stop
    /// streaming to their followers there and probe instead.
    fn unreachable(&self, store_id: u64) {
        let _ = store_id;
    }

    /// A streamed snapshot of `region_id` to peer `to_peer` reached the
    /// other store (`delivered`) or failed; the region's leader learns it,
    /// so it resumes replication or tries again.
    fn snapshot_status(&self, region_id: u64, to_peer: u64, delivered: bool) {
        let _ = (region_id, to_peer, delivered);
    }
}

/// The raft messages of one round, grouped by destination store, and its
/// snapshots, which travel on their own.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    frames: BTreeMap<u64, StoreBatch>,
    snapshots: Vec<(u64, RaftMessage)>,
    // Messages last sent to each store in one frame: the next frame's
    // vector starts that large instead of growing (and copying) its way
    // there.
    last_frame_len: BTreeMap<u64, usize>,
}

impl Outbox {
    pub(crate) fn push(&mut self, from_store: u64, to_store: u64, msg: RaftMessage) {
        let last_frame_len = &self.last_frame_len;
        self.frames
            .entry(to_store)
            .or_insert_with(|| StoreBatch {
                from_store,
                to_store,
                messages: Vec::with_capacity(last_frame_len.get(&to_store).copied().unwrap_or(0)),
                heartbeats: Vec::new(),
            })
            .messages
            .push(msg);
    }

    /// Takes `other`'s frames and snapshots into this outbox (each store's
    /// messages after the ones already here).
    pub(crate) fn absorb(&mut self, other: &mut Outbox) {
        for (to, mut frame) in std::mem::take(&mut other.frames) {
            match self.frames.get_mut(&to) {
                Some(mine) => mine.messages.append(&mut frame.messages),
                None => {
                    self.frames.insert(to, frame);
                }
            }
        }
        self.snapshots.append(&mut other.snapshots);
    }

    pub(crate) fn push_snapshot(&mut self, to_store: u64, msg: RaftMessage) {
        self.snapshots.push((to_store, msg));
    }

    /// Sends every frame (one flush per destination store), then hands the
    /// snapshots to the transport. Returns the snapshots whose outcome is
    /// already known: `(region, to_peer, sent)`.
    pub(crate) fn flush(
        &mut self,
        from_store: u64,
        transport: &dyn Transport,
        stats: &StoreStats,
    ) -> Vec<(u64, u64, bool)> {
        for (to, frame) in std::mem::take(&mut self.frames) {
            stats.record_flush(frame.messages.len());
            self.last_frame_len.insert(to, frame.messages.len());
            if let Err(e) = transport.send(frame) {
                tracing::debug!(to_store = to, error = %e, "dropping a frame");
            }
        }
        let mut known = Vec::new();
        for (to_store, msg) in std::mem::take(&mut self.snapshots) {
            let (region_id, to_peer) = (msg.region_id, msg.to_peer.map_or(0, |p| p.id));
            match transport.send_snapshot(from_store, to_store, msg) {
                Ok(SnapshotSend::Sent) => known.push((region_id, to_peer, true)),
                Ok(SnapshotSend::Streaming) => {}
                Err(e) => {
                    tracing::info!(region_id, to_store, error = %e, "snapshot not sent");
                    known.push((region_id, to_peer, false));
                }
            }
        }
        known
    }
}

/// Heartbeats and responses of every region, waiting for the next tick's
/// coalesced frame. Shared by the store's pollers.
#[derive(Debug, Default)]
pub(crate) struct HeartbeatCoalescer {
    pending: Mutex<BTreeMap<u64, Vec<HeartbeatEntry>>>,
}

impl HeartbeatCoalescer {
    pub(crate) fn push_all(&self, entries: &mut Vec<(u64, HeartbeatEntry)>) {
        if entries.is_empty() {
            return;
        }
        let mut pending = self.pending.lock();
        for (to_store, e) in entries.drain(..) {
            pending.entry(to_store).or_default().push(e);
        }
    }

    /// Sends one frame per destination store holding everything queued.
    pub(crate) fn flush(&self, from_store: u64, transport: &dyn Transport, stats: &StoreStats) {
        let pending = std::mem::take(&mut *self.pending.lock());
        for (to_store, heartbeats) in pending {
            stats.record_heartbeat_frame(heartbeats.len());
            let frame = StoreBatch {
                from_store,
                to_store,
                messages: Vec::new(),
                heartbeats,
            };
            if let Err(e) = transport.send(frame) {
                tracing::debug!(to_store, error = %e, "dropping a heartbeat frame");
            }
        }
    }
}
