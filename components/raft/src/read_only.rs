//! Bookkeeping for linearizable reads (ReadIndex).
//!
//! A read request is identified by a context chosen by the host (unique per
//! request). In `Safe` mode the leader records its commit index when the
//! request arrives and answers once a quorum has acknowledged a heartbeat
//! carrying the request's context: at that moment it knows it was still the
//! leader when the read arrived. In `LeaseBased` mode the leader answers at
//! once, trusting its lease (which needs `check_quorum` and bounded clock drift).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use flotilla_proto::raftpb::Message;

/// How read-index requests are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadOnlyOption {
    /// Confirm leadership with a quorum heartbeat round for each batch of reads.
    #[default]
    Safe,
    /// Serve from the leader's lease without a round trip.
    LeaseBased,
}

/// A read that may now be served: once the host has applied up to `index`,
/// reading its state machine is linearizable.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadState {
    /// The commit index at the time the read was received.
    pub index: u64,
    /// The context the host passed to `read_index`.
    pub request_ctx: Bytes,
}

/// A read waiting for its quorum acknowledgement.
#[derive(Debug, Clone)]
pub struct ReadIndexStatus {
    /// The original request (local or forwarded by a follower).
    pub req: Message,
    /// The leader's commit index when the request arrived.
    pub index: u64,
    /// Peers that acknowledged a heartbeat carrying this request's context.
    pub acks: BTreeSet<u64>,
}

/// The leader's queue of pending reads.
#[derive(Debug, Clone, Default)]
pub struct ReadOnly {
    /// The mode reads are served in.
    pub option: ReadOnlyOption,
    // Invariant: `pending` and `queue` hold the same contexts; `queue` keeps
    // arrival order, so acknowledging one read also releases all older ones.
    pending: BTreeMap<Bytes, ReadIndexStatus>,
    queue: VecDeque<Bytes>,
}

impl ReadOnly {
    /// An empty queue in the given mode.
    pub fn new(option: ReadOnlyOption) -> Self {
        ReadOnly {
            option,
            ..Default::default()
        }
    }

    /// Queues a read that arrived when the commit index was `index`. A
    /// context already queued is ignored.
    pub fn add_request(&mut self, index: u64, req: Message, self_id: u64) {
        let Some(ctx) = req.entries.first().map(|e| e.data.clone()) else {
            return;
        };
        if self.pending.contains_key(&ctx) {
            return;
        }
        let acks = BTreeSet::from([self_id]);
        self.pending
            .insert(ctx.clone(), ReadIndexStatus { req, index, acks });
        self.queue.push_back(ctx);
    }

    /// Records that `id` acknowledged the heartbeat carrying `ctx`, and
    /// returns who has acknowledged it so far (None for an unknown context).
    pub fn recv_ack(&mut self, id: u64, ctx: &[u8]) -> Option<&BTreeSet<u64>> {
        let status = self.pending.get_mut(ctx)?;
        status.acks.insert(id);
        Some(&status.acks)
    }

    /// Removes and returns every read queued up to and including `ctx`, in
    /// arrival order (reads queued before it are confirmed by the same
    /// quorum round).
    pub fn advance(&mut self, ctx: &[u8]) -> Vec<ReadIndexStatus> {
        let Some(pos) = self.queue.iter().position(|c| c.as_ref() == ctx) else {
            return Vec::new();
        };
        let released: Vec<Bytes> = self.queue.drain(..=pos).collect();
        released
            .into_iter()
            .map(|c| {
                let status = self.pending.remove(&c);
                status.unwrap_or_else(|| panic!("read queue and pending map disagree on {c:?}"))
            })
            .collect()
    }

    /// The context of the newest pending read, carried by heartbeats.
    pub fn last_pending_request_ctx(&self) -> Option<Bytes> {
        self.queue.back().cloned()
    }

    /// The number of reads waiting for a quorum.
    pub fn pending_read_count(&self) -> usize {
        self.queue.len()
    }

    /// Drops every pending read (on losing leadership).
    pub fn clear(&mut self) {
        self.pending.clear();
        self.queue.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_proto::raftpb::Entry;

    fn req(ctx: &'static [u8]) -> Message {
        Message {
            entries: vec![Entry {
                data: Bytes::from_static(ctx),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn acknowledging_a_read_releases_it_and_all_older_reads() {
        let mut ro = ReadOnly::new(ReadOnlyOption::Safe);
        ro.add_request(5, req(b"a"), 1);
        ro.add_request(6, req(b"b"), 1);
        ro.add_request(7, req(b"c"), 1);
        assert_eq!(ro.last_pending_request_ctx().as_deref(), Some(&b"c"[..]));
        let acks = ro.recv_ack(2, b"b").expect("pending");
        assert_eq!(acks, &BTreeSet::from([1, 2]));
        let done = ro.advance(b"b");
        assert_eq!(done.iter().map(|s| s.index).collect::<Vec<_>>(), vec![5, 6]);
        assert_eq!(ro.pending_read_count(), 1);
    }

    #[test]
    fn unknown_and_duplicate_contexts_are_ignored() {
        let mut ro = ReadOnly::new(ReadOnlyOption::Safe);
        ro.add_request(5, req(b"a"), 1);
        ro.add_request(9, req(b"a"), 1);
        assert_eq!(ro.pending_read_count(), 1);
        assert!(ro.recv_ack(2, b"zz").is_none());
        assert!(ro.advance(b"zz").is_empty());
        ro.add_request(5, Message::default(), 1);
        assert_eq!(ro.pending_read_count(), 1);
    }
}
