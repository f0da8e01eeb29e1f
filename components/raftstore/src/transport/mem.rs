//! An in-memory network between stores of one process, with filters that
//! drop, partition, isolate and delay frames: the transport of the cluster
//! tests and of simulation.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use flotilla_proto::raftpb::MessageType;
use flotilla_proto::serverpb::StoreBatch;
use parking_lot::{Mutex, RwLock};

use super::{Deliver, Transport, TransportError};
use crate::clock::Clock;

/// What a filter decides for a frame (after editing it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver what is left of the frame now.
    Deliver,
    /// Hold the frame and deliver it after this long.
    Delay(Duration),
}

/// Edits or holds frames on their way between stores.
pub trait Filter: Send + Sync + fmt::Debug + 'static {
    /// Looks at a frame from `batch.from_store` to `batch.to_store`; may drop
    /// any of its messages and heartbeats (or all of them).
    fn filter(&self, batch: &mut StoreBatch) -> Verdict;
}

/// Drops every frame between the two sides of a partition.
#[derive(Debug, Clone)]
pub struct Partition {
    left: HashSet<u64>,
    right: HashSet<u64>,
}

impl Partition {
    /// A partition between the stores of `left` and those of `right`.
    pub fn new(left: impl IntoIterator<Item = u64>, right: impl IntoIterator<Item = u64>) -> Self {
        Partition {
            left: left.into_iter().collect(),
            right: right.into_iter().collect(),
        }
    }
}

impl Filter for Partition {
    fn filter(&self, b: &mut StoreBatch) -> Verdict {
        let across = (self.left.contains(&b.from_store) && self.right.contains(&b.to_store))
            || (self.right.contains(&b.from_store) && self.left.contains(&b.to_store));
        if across {
            clear(b);
        }
        Verdict::Deliver
    }
}

/// Cuts one store off from every other.
#[derive(Debug, Clone, Copy)]
pub struct Isolate(pub u64);

impl Filter for Isolate {
    fn filter(&self, b: &mut StoreBatch) -> Verdict {
        if b.from_store == self.0 || b.to_store == self.0 {
            clear(b);
        }
        Verdict::Deliver
    }
}

/// Drops every message of one type, heartbeats in coalesced frames included.
#[derive(Debug, Clone, Copy)]
pub struct DropType(pub MessageType);

impl Filter for DropType {
    fn filter(&self, b: &mut StoreBatch) -> Verdict {
        let t = self.0;
        b.messages
            .retain(|m| m.message.as_ref().map(|m| m.msg_type()) != Some(t));
        b.heartbeats.retain(|h| {
            let ht = if h.response {
                MessageType::MsgHeartbeatResponse
            } else {
                MessageType::MsgHeartbeat
            };
            ht != t
        });
        Verdict::Deliver
    }
}

/// Drops every frame (a network that is down).
#[derive(Debug, Clone, Copy)]
pub struct DropAll;

impl Filter for DropAll {
    fn filter(&self, b: &mut StoreBatch) -> Verdict {
        clear(b);
        Verdict::Deliver
    }
}

/// Delays every frame to one store (0: to every store).
#[derive(Debug, Clone, Copy)]
pub struct Delay {
    /// The destination store, 0 for all.
    pub to_store: u64,
    /// How long frames are held.
    pub delay: Duration,
}

impl Filter for Delay {
    fn filter(&self, b: &mut StoreBatch) -> Verdict {
        if self.to_store == 0 || self.to_store == b.to_store {
            Verdict::Delay(self.delay)
        } else {
            Verdict::Deliver
        }
    }
}

fn clear(b: &mut StoreBatch) {
    b.messages.clear();
    b.heartbeats.clear();
}

/// Frames and heartbeat frames that crossed the network, per link.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LinkCounts {
    /// Frames sent (each a flush), dropped or not.
    pub frames: u64,
    /// Frames carrying at least one coalesced heartbeat.
    pub heartbeat_frames: u64,
    /// Heartbeat entries in those frames.
    pub heartbeats: u64,
    /// Raft messages in frames.
    pub messages: u64,
}

/// The in-memory network: stores register their receiving side; each
/// store's [`MemTransport`] sends through it.
#[derive(Debug)]
pub struct MemNetwork {
    stores: RwLock<BTreeMap<u64, Arc<dyn Deliver>>>,
    filters: RwLock<Vec<Arc<dyn Filter>>>,
    // Held frames with the time they are due, in the order they were held.
    delayed: Mutex<Vec<(Duration, StoreBatch)>>,
    counts: Mutex<BTreeMap<(u64, u64), LinkCounts>>,
    clock: Arc<dyn Clock>,
}

impl MemNetwork {
    /// A network with no store; delays are measured on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(MemNetwork {
            stores: RwLock::new(BTreeMap::new()),
            filters: RwLock::new(Vec::new()),
            delayed: Mutex::new(Vec::new()),
            counts: Mutex::new(BTreeMap::new()),
            clock,
        })
    }

    /// The transport store `store_id` sends with.
    pub fn transport(self: &Arc<Self>, store_id: u64) -> Arc<MemTransport> {
        Arc::new(MemTransport {
            store_id,
            net: Arc::clone(self),
        })
    }

    /// Connects a store's receiving side (replacing an earlier one, as a
    /// restarted store does).
    pub fn register(&self, store_id: u64, to: Arc<dyn Deliver>) {
        self.stores.write().insert(store_id, to);
    }

    /// Disconnects a store: frames to it are lost.
    pub fn unregister(&self, store_id: u64) {
        self.stores.write().remove(&store_id);
    }

    /// Adds a filter to every frame from now on.
    pub fn add_filter(&self, f: impl Filter) {
        self.filters.write().push(Arc::new(f));
    }

    /// Removes every filter (held frames stay held until due).
    pub fn clear_filters(&self) {
        self.filters.write().clear();
    }

    /// What has crossed the link from `from` to `to` so far.
    pub fn link_counts(&self, from: u64, to: u64) -> LinkCounts {
        self.counts
            .lock()
            .get(&(from, to))
            .copied()
            .unwrap_or_default()
    }

    /// Delivers the held frames that are due.
    pub fn deliver_due(&self) {
        let now = self.clock.now();
        let due: Vec<StoreBatch> = {
            let mut delayed = self.delayed.lock();
            let (due, held) = std::mem::take(&mut *delayed)
                .into_iter()
                .partition(|(at, _)| *at <= now);
            *delayed = held;
            due.into_iter().map(|(_, b)| b).collect()
        };
        for b in due {
            self.deliver(b);
        }
    }

    fn send(&self, mut batch: StoreBatch) -> Result<(), TransportError> {
        {
            let mut counts = self.counts.lock();
            let c = counts
                .entry((batch.from_store, batch.to_store))
                .or_default();
            c.frames += 1;
            c.messages += batch.messages.len() as u64;
            if !batch.heartbeats.is_empty() {
                c.heartbeat_frames += 1;
                c.heartbeats += batch.heartbeats.len() as u64;
            }
        }
        let mut delay = Duration::ZERO;
        for f in self.filters.read().iter() {
            if let Verdict::Delay(d) = f.filter(&mut batch) {
                delay = delay.max(d);
            }
        }
        self.deliver_due();
        if batch.messages.is_empty() && batch.heartbeats.is_empty() {
            return Ok(());
        }
        if !delay.is_zero() {
            self.delayed.lock().push((self.clock.now() + delay, batch));
            return Ok(());
        }
        self.deliver(batch);
        Ok(())
    }

    fn deliver(&self, batch: StoreBatch) {
        let to = self.stores.read().get(&batch.to_store).cloned();
        match to {
            Some(to) => to.deliver(batch),
            None => tracing::trace!(to_store = batch.to_store, "no such store; frame lost"),
        }
    }
}

/// One store's way into a [`MemNetwork`].
#[derive(Debug)]
pub struct MemTransport {
    store_id: u64,
    net: Arc<MemNetwork>,
}

impl Transport for MemTransport {
    fn send(&self, mut batch: StoreBatch) -> Result<(), TransportError> {
        batch.from_store = self.store_id;
        self.net.send(batch)
    }
}

#[cfg(test)]
mod tests {
    use flotilla_proto::raftpb::Message;
    use flotilla_proto::serverpb::{HeartbeatEntry, RaftMessage};

    use super::*;
    use crate::clock::ManualClock;

    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<StoreBatch>>);

    impl Deliver for Recorder {
        fn deliver(&self, batch: StoreBatch) {
            self.0.lock().push(batch);
        }
    }

    fn frame(to: u64, t: MessageType, heartbeats: usize) -> StoreBatch {
        StoreBatch {
            from_store: 0,
            to_store: to,
            messages: vec![RaftMessage {
                message: Some(Message {
                    msg_type: t as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }],
            heartbeats: vec![HeartbeatEntry::default(); heartbeats],
        }
    }

    fn net() -> (
        Arc<MemNetwork>,
        Arc<ManualClock>,
        Arc<Recorder>,
        Arc<Recorder>,
    ) {
        let clock = Arc::new(ManualClock::default());
        let net = MemNetwork::new(clock.clone());
        let (a, b) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
        net.register(1, a.clone());
        net.register(2, b.clone());
        (net, clock, a, b)
    }

    #[test]
    fn frames_reach_their_store_and_are_counted_per_link() {
        let (net, _, a, b) = net();
        net.transport(1)
            .send(frame(2, MessageType::MsgAppend, 3))
            .unwrap();
        net.transport(2)
            .send(frame(1, MessageType::MsgAppend, 0))
            .unwrap();
        net.transport(1)
            .send(frame(3, MessageType::MsgAppend, 0))
            .unwrap();
        assert_eq!(b.0.lock().len(), 1);
        assert_eq!(
            b.0.lock()[0].from_store,
            1,
            "the sender is stamped by its transport"
        );
        assert_eq!(a.0.lock().len(), 1);
        let c = net.link_counts(1, 2);
        assert_eq!(
            (c.frames, c.heartbeat_frames, c.heartbeats, c.messages),
            (1, 1, 3, 1)
        );
        assert_eq!(
            net.link_counts(1, 3).frames,
            1,
            "a frame to an unknown store is lost, but was sent"
        );
    }

    #[test]
    fn isolate_partition_and_drop_type_remove_what_they_match() {
        let (net, _, a, b) = net();
        net.add_filter(Isolate(2));
        net.transport(1)
            .send(frame(2, MessageType::MsgAppend, 1))
            .unwrap();
        net.clear_filters();
        net.add_filter(Partition::new([1], [2]));
        net.transport(2)
            .send(frame(1, MessageType::MsgAppend, 1))
            .unwrap();
        assert!(a.0.lock().is_empty() && b.0.lock().is_empty());
        net.clear_filters();
        net.add_filter(DropType(MessageType::MsgHeartbeat));
        net.transport(1)
            .send(frame(2, MessageType::MsgAppend, 2))
            .unwrap();
        let got = b.0.lock();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].messages.len(), 1, "appends pass");
        assert!(
            got[0].heartbeats.is_empty(),
            "coalesced heartbeats are dropped by type too"
        );
    }

    #[test]
    fn a_delayed_frame_arrives_once_its_time_has_come() {
        let (net, clock, _, b) = net();
        net.add_filter(Delay {
            to_store: 2,
            delay: Duration::from_millis(50),
        });
        net.transport(1)
            .send(frame(2, MessageType::MsgAppend, 0))
            .unwrap();
        net.deliver_due();
        assert!(b.0.lock().is_empty());
        clock.advance(Duration::from_millis(50));
        net.deliver_due();
        assert_eq!(b.0.lock().len(), 1);
    }
}
