//! The simulated cluster: nodes with their storage and state machine, the
//! network (one queue per recipient) and its partitions.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use anyhow::{Context as _, bail};
use flotilla_raft::raftpb::{ConfState, Entry, Message, Snapshot, SnapshotMetadata};
use flotilla_raft::{Config, MemStorage, RawNode, Ready};

use super::capture::{emit, set_node};

/// One simulated peer.
#[derive(Debug)]
pub struct Node {
    pub raw: RawNode<MemStorage>,
    /// A handle on the same storage the `RawNode` reads.
    pub store: MemStorage,
    /// The config the node was started with, reused on restart.
    pub cfg: Config,
    /// Persist and apply on separate "threads" (`process-append-thread`,
    /// `process-apply-thread`) instead of inside `process-ready`.
    pub async_writes: bool,
    /// The state machine: what was applied, by index.
    pub applied: Vec<(u64, String)>,
    /// The membership after each applied change or snapshot, by index.
    pub confs: Vec<(u64, ConfState)>,
    /// Async mode: readies taken but not yet persisted (number, writes).
    pub append_work: VecDeque<(u64, Ready)>,
    /// Async mode: committed entries handed out but not yet applied.
    pub apply_work: VecDeque<Entry>,
}

/// Options shared by the nodes of one `add-nodes`.
#[derive(Debug, Clone)]
pub struct NodeOpts {
    pub cfg: Config,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    /// Bootstrap the storage with a snapshot at this index (term 1).
    pub index: Option<u64>,
    pub async_writes: bool,
}

/// The whole simulated cluster.
#[derive(Debug, Default)]
pub struct InteractionEnv {
    pub nodes: BTreeMap<u64, Node>,
    /// Messages sent and not yet delivered, by recipient, in send order.
    pub inbox: BTreeMap<u64, Vec<Message>>,
    /// Nodes cut off from everyone: messages from or to them are dropped.
    pub isolated: BTreeSet<u64>,
}

impl InteractionEnv {
    /// The node `id`; later log events without a `raft_id` are credited to it.
    pub fn node(&mut self, id: u64) -> anyhow::Result<&mut Node> {
        set_node(id);
        self.nodes
            .get_mut(&id)
            .with_context(|| format!("no node {id}"))
    }

    /// Adds `n` nodes with the next free ids.
    pub fn add_nodes(&mut self, n: u64, opts: &NodeOpts) -> anyhow::Result<()> {
        let cs = ConfState {
            voters: opts.voters.clone(),
            learners: opts.learners.clone(),
            ..Default::default()
        };
        for _ in 0..n {
            let id = self.nodes.keys().last().copied().unwrap_or(0) + 1;
            set_node(id);
            let store = MemStorage::new_with_conf_state(cs.clone());
            let index = opts.index.unwrap_or(0);
            if index > 0 {
                let meta = SnapshotMetadata::new(index, 1, cs.clone());
                let snap = Snapshot {
                    metadata: Some(meta),
                    ..Default::default()
                };
                store.wl().apply_snapshot(snap)?;
            }
            let cfg = Config {
                id,
                seed: id,
                ..opts.cfg.clone()
            };
            let raw = RawNode::new(&cfg, store.clone())?;
            let node = Node {
                raw,
                store,
                cfg,
                async_writes: opts.async_writes,
                applied: Vec::new(),
                confs: vec![(index, cs.clone())],
                append_work: VecDeque::new(),
                apply_work: VecDeque::new(),
            };
            self.nodes.insert(id, node);
        }
        Ok(())
    }

    /// Rebuilds node `id` from what its storage holds: everything not yet
    /// persisted (the unstable log, pending async writes) is lost, and the
    /// state machine restarts from the stored snapshot, re-applying the
    /// committed entries after it.
    pub fn restart(&mut self, id: u64) -> anyhow::Result<()> {
        let node = self.node(id)?;
        let snap_index = node.store.rl().snapshot_metadata().index;
        node.applied.retain(|(i, _)| *i <= snap_index);
        node.confs.retain(|(i, _)| *i <= snap_index);
        node.append_work.clear();
        node.apply_work.clear();
        let cfg = Config {
            applied: snap_index,
            ..node.cfg.clone()
        };
        node.raw = RawNode::new(&cfg, node.store.clone())?;
        Ok(())
    }

    /// Queues messages for delivery.
    pub fn send(&mut self, msgs: impl IntoIterator<Item = Message>) {
        for m in msgs {
            self.inbox.entry(m.to).or_default().push(m);
        }
    }

    /// Compacts node `id`'s storage up to `index`, after taking a snapshot
    /// there with the membership in force at that index.
    pub fn compact(&mut self, id: u64, index: u64) -> anyhow::Result<()> {
        let node = self.node(id)?;
        let applied = node.raw.raft.raft_log.applied;
        if index > applied {
            bail!("cannot snapshot node {id} at {index}: only applied to {applied}");
        }
        let cs = node
            .confs
            .iter()
            .rev()
            .find(|(i, _)| *i <= index)
            .map(|(_, cs)| cs.clone())
            .unwrap_or_default();
        let mut core = node.store.wl();
        let snap = core.create_snapshot(index, Some(cs), bytes::Bytes::new())?;
        core.compact(index + 1)?;
        emit(format!(
            "snapshot {}; log now starts at {}",
            super::render::snapshot(&snap),
            core.first_index()
        ));
        Ok(())
    }
}
