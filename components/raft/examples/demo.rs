//! A 3-peer raft group in memory: elect a leader, replicate and commit a few
//! entries, fail the leader, elect another, and print each step.
//!
//! Run with `make run` or `cargo run --release -p flotilla-raft --example demo`.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;

use bytes::Bytes;
use flotilla_raft::raftpb::{ConfState, EntryType, Message};
use flotilla_raft::{Config, MemStorage, RawNode, StateRole};

struct Group {
    nodes: BTreeMap<u64, RawNode<MemStorage>>,
    down: Option<u64>,
    applied: BTreeMap<u64, Vec<String>>,
    delivered: usize,
}

impl Group {
    fn new(ids: &[u64]) -> anyhow::Result<Self> {
        let cs = ConfState {
            voters: ids.to_vec(),
            ..Default::default()
        };
        let mut nodes = BTreeMap::new();
        for &id in ids {
            let store = MemStorage::new_with_conf_state(cs.clone());
            let cfg = Config {
                election_ticks: 10,
                heartbeat_ticks: 1,
                seed: 42,
                ..Config::new(id)
            };
            nodes.insert(id, RawNode::new(&cfg, store)?);
        }
        Ok(Group {
            nodes,
            down: None,
            applied: BTreeMap::new(),
            delivered: 0,
        })
    }

    /// Processes every ready and delivers every message until nothing moves.
    fn stabilize(&mut self) -> anyhow::Result<()> {
        loop {
            let mut outbox: Vec<Message> = Vec::new();
            for (&id, node) in self.nodes.iter_mut() {
                if Some(id) == self.down || !node.has_ready() {
                    continue;
                }
                let rd = node.ready();
                outbox.extend(rd.messages.iter().cloned());
                node.store().persist_ready(&rd)?;
                outbox.extend(rd.persisted_messages.iter().cloned());
                for e in &rd.committed_entries {
                    if e.entry_type == EntryType::EntryNormal as i32 && !e.data.is_empty() {
                        let s = String::from_utf8_lossy(&e.data).into_owned();
                        self.applied.entry(id).or_default().push(s);
                    }
                }
                node.advance(rd);
            }
            if outbox.is_empty() && self.nodes.values().all(|n| !n.has_ready()) {
                return Ok(());
            }
            for m in outbox {
                if Some(m.to) == self.down || Some(m.from) == self.down {
                    continue;
                }
                self.delivered += 1;
                if let Some(n) = self.nodes.get_mut(&m.to) {
                    n.step(m)?;
                }
            }
        }
    }

    fn leader(&self) -> Option<u64> {
        self.nodes
            .iter()
            .find(|(id, n)| Some(**id) != self.down && n.raft.state == StateRole::Leader)
            .map(|(id, _)| *id)
    }

    fn tick_until_leader(&mut self) -> anyhow::Result<(u64, usize)> {
        for ticks in 1..=1000 {
            for (&id, n) in self.nodes.iter_mut() {
                if Some(id) != self.down {
                    n.tick();
                }
            }
            self.stabilize()?;
            if let Some(l) = self.leader() {
                return Ok((l, ticks));
            }
        }
        anyhow::bail!("no leader after 1000 ticks")
    }
}

fn main() -> anyhow::Result<()> {
    let mut g = Group::new(&[1, 2, 3])?;
    println!("flotilla raft demo: 3 peers in memory, election timeout 10-19 ticks");
    let (leader, ticks) = g.tick_until_leader()?;
    println!(
        "peer {leader} elected leader of term {} after {ticks} ticks",
        g.nodes[&leader].raft.term
    );

    for i in 1..=5 {
        let leader = g.leader().expect("leader");
        g.nodes
            .get_mut(&leader)
            .expect("leader")
            .propose(Bytes::new(), Bytes::from(format!("put k{i}=v{i}")))?;
        g.stabilize()?;
    }
    for (id, n) in &g.nodes {
        println!(
            "peer {id}: {} commit={} applied {:?}",
            n.raft.state,
            n.raft.raft_log.committed,
            g.applied.get(id).map(Vec::len).unwrap_or(0)
        );
    }

    let old = g.leader().expect("leader");
    g.down = Some(old);
    println!("peer {old} fails");
    let (leader, ticks) = g.tick_until_leader()?;
    println!(
        "peer {leader} elected leader of term {} after {ticks} ticks",
        g.nodes[&leader].raft.term
    );
    g.nodes
        .get_mut(&leader)
        .expect("leader")
        .propose(Bytes::new(), Bytes::from_static(b"put k6=v6"))?;
    g.stabilize()?;

    g.down = None;
    println!("peer {old} recovers");
    for _ in 0..3 {
        for n in g.nodes.values_mut() {
            n.tick();
        }
        g.stabilize()?;
    }
    for (id, n) in &g.nodes {
        let log = g.applied.get(id).cloned().unwrap_or_default();
        println!(
            "peer {id}: {} term={} commit={} applied {:?}",
            n.raft.state, n.raft.term, n.raft.raft_log.committed, log
        );
    }
    let reference = g.applied.get(&leader).cloned().unwrap_or_default();
    anyhow::ensure!(
        g.applied.values().all(|l| *l == reference),
        "state machines diverged"
    );
    println!(
        "all peers applied the same {} commands; {} messages delivered",
        reference.len(),
        g.delivered
    );
    Ok(())
}
