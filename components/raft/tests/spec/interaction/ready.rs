//! Playing the host: handling `Ready`s (synchronously, or split into an
//! append thread and an apply thread), and delivering messages.

use anyhow::bail;
use flotilla_raft::raftpb::{ConfChangeV2, Entry, EntryType, Message, Snapshot};
use flotilla_raft::{Ready, decode_conf_change, decode_conf_change_v2};

use super::capture::{emit, indented, set_node};
use super::env::{InteractionEnv, Node};
use super::render;

/// `stabilize` gives up after this many rounds without settling.
const MAX_ROUNDS: usize = 200;

/// Prints `title:` and the lines below it, indented, unless there are none.
fn section(title: &str, lines: impl IntoIterator<Item = String>) {
    let lines: Vec<String> = lines.into_iter().collect();
    if lines.is_empty() {
        return;
    }
    emit(format!("{title}:"));
    indented(2, || lines.iter().for_each(emit));
}

fn print_ready(rd: &Ready) {
    if let Some(ss) = &rd.soft_state {
        emit(format!("state: {} lead={}", ss.raft_state, ss.leader_id));
    }
    if let Some(hs) = &rd.hard_state {
        emit(format!("hard state: {}", render::hard_state(hs)));
    }
    if let Some(snap) = &rd.snapshot {
        emit(format!("snapshot: {}", render::snapshot(snap)));
    }
    section("entries", rd.entries.iter().map(render::entry));
    section("committed", rd.committed_entries.iter().map(render::entry));
    section("read states", rd.read_states.iter().map(render::read_state));
    section("messages", rd.messages.iter().map(render::message));
    section(
        "after persist",
        rd.persisted_messages.iter().map(render::message),
    );
}

/// Moves the writes (and the messages that wait for them) out of `rd`.
fn take_writes(rd: &mut Ready) -> Ready {
    let mut work = Ready::default();
    work.hard_state = rd.hard_state.take();
    work.snapshot = rd.snapshot.take();
    work.entries = std::mem::take(&mut rd.entries);
    work.persisted_messages = std::mem::take(&mut rd.persisted_messages);
    work
}

impl Node {
    /// Persists one ready's writes; an installed snapshot replaces the
    /// state machine.
    fn persist(&mut self, rd: &Ready) -> anyhow::Result<()> {
        self.store.persist_ready(rd)?;
        if let Some(snap) = &rd.snapshot {
            self.install_snapshot(snap);
        }
        Ok(())
    }

    fn install_snapshot(&mut self, snap: &Snapshot) {
        let index = snap.index();
        // Entries the snapshot covers must not be applied after it.
        self.apply_work.retain(|e| e.index > index);
        self.applied = vec![(index, "snapshot".to_string())];
        let cs = snap.metadata.as_ref().and_then(|m| m.conf_state.clone());
        self.confs = vec![(index, cs.unwrap_or_default())];
    }

    /// Applies committed entries, membership changes included.
    fn apply(&mut self, entries: &[Entry]) -> anyhow::Result<()> {
        for e in entries {
            let cc: ConfChangeV2 = match e.entry_type() {
                EntryType::EntryNormal => {
                    self.applied.push((e.index, render::data(&e.data)));
                    continue;
                }
                EntryType::EntryConfChange => decode_conf_change(e)?.into_v2(),
                EntryType::EntryConfChangeV2 => decode_conf_change_v2(e)?,
            };
            self.applied.push((e.index, render::conf_change_v2(&cc)));
            match self.raw.apply_conf_change(&cc) {
                Ok(cs) => self.confs.push((e.index, cs)),
                Err(err) => emit(format!("ERROR applying {}: {err}", render::entry(e))),
            }
        }
        Ok(())
    }
}

impl InteractionEnv {
    /// Takes one `Ready` from node `id`, prints it and handles it. In sync
    /// mode: persist, send everything, apply, `advance`. In async mode:
    /// send `messages` now, hand the writes to the append thread and the
    /// committed entries to the apply thread, `advance_append_async`.
    pub fn process_ready(&mut self, id: u64) -> anyhow::Result<()> {
        let node = self.node(id)?;
        if !node.raw.has_ready() {
            emit(format!("> {id} has no ready"));
            return Ok(());
        }
        let mut rd = node.raw.ready();
        let sync = if rd.must_sync { " (must sync)" } else { "" };
        emit(format!("> {id} handling ready #{}{sync}", rd.number()));
        indented(2, || print_ready(&rd));
        let mut out: Vec<Message> = std::mem::take(&mut rd.messages);
        if node.async_writes {
            let work = take_writes(&mut rd);
            node.apply_work
                .extend(std::mem::take(&mut rd.committed_entries));
            node.append_work.push_back((rd.number(), work));
            node.raw.advance_append_async(rd);
        } else {
            node.persist(&rd)?;
            out.append(&mut rd.persisted_messages);
            indented(2, || -> anyhow::Result<()> {
                node.apply(&rd.committed_entries)?;
                node.raw.advance(rd);
                Ok(())
            })?;
        }
        self.send(out);
        Ok(())
    }

    /// Async mode: persists every ready handed to the append thread, reports
    /// them durable (`on_persist_ready`), then sends the messages that
    /// waited for it.
    pub fn append_thread(&mut self, id: u64) -> anyhow::Result<()> {
        let node = self.node(id)?;
        let work: Vec<(u64, Ready)> = node.append_work.drain(..).collect();
        let Some(&(last, _)) = work.last() else {
            emit(format!("> {id} append thread: nothing to persist"));
            return Ok(());
        };
        emit(format!("> {id} append thread"));
        let mut out = Vec::new();
        indented(2, || -> anyhow::Result<()> {
            for (number, mut rd) in work {
                node.persist(&rd)?;
                emit(format!("ready #{number} durable: {}", writes(&rd)));
                out.append(&mut rd.persisted_messages);
            }
            section("send", out.iter().map(render::message));
            node.raw.on_persist_ready(last);
            Ok(())
        })?;
        self.send(out);
        Ok(())
    }

    /// Async mode: applies every committed entry handed to the apply thread,
    /// then reports them applied (`advance_apply_to`).
    pub fn apply_thread(&mut self, id: u64) -> anyhow::Result<()> {
        let node = self.node(id)?;
        let entries: Vec<Entry> = node.apply_work.drain(..).collect();
        let Some(last) = entries.last().map(|e| e.index) else {
            emit(format!("> {id} apply thread: nothing to apply"));
            return Ok(());
        };
        emit(format!("> {id} apply thread"));
        indented(2, || -> anyhow::Result<()> {
            section("apply", entries.iter().map(render::entry));
            node.apply(&entries)?;
            node.raw.advance_apply_to(last);
            Ok(())
        })
    }

    /// Delivers node `id`'s queued messages, printing each with what
    /// stepping it logged. Messages from or to an isolated node are dropped.
    pub fn deliver(&mut self, id: u64) {
        for m in self.inbox.remove(&id).unwrap_or_default() {
            let line = render::message(&m);
            if self.isolated.contains(&m.from) || self.isolated.contains(&m.to) {
                emit(format!("{line} (dropped: partitioned)"));
                continue;
            }
            let Some(node) = self.nodes.get_mut(&id) else {
                emit(format!("{line} (dropped: no node {id})"));
                continue;
            };
            emit(line);
            set_node(id);
            indented(2, || {
                if let Err(e) = node.raw.step(m) {
                    emit(format!("ERROR {e}"));
                }
            });
        }
    }

    /// Discards node `id`'s queued messages.
    pub fn drop_msgs(&mut self, id: u64) {
        for m in self.inbox.remove(&id).unwrap_or_default() {
            emit(format!("dropped: {}", render::message(&m)));
        }
    }

    fn has_msgs(&self, id: u64) -> bool {
        self.inbox.get(&id).is_some_and(|q| !q.is_empty())
    }

    /// Handles readies (and in async mode the append and apply threads) and
    /// delivers messages among `ids` until nothing moves.
    pub fn stabilize(&mut self, ids: &[u64]) -> anyhow::Result<()> {
        for _ in 0..MAX_ROUNDS {
            let mut moved = false;
            for &id in ids {
                let node = self.node(id)?;
                let (ready, writes, applies) = (
                    node.raw.has_ready(),
                    !node.append_work.is_empty(),
                    !node.apply_work.is_empty(),
                );
                if ready {
                    self.process_ready(id)?;
                }
                if writes || (ready && self.nodes[&id].async_writes) {
                    self.append_thread(id)?;
                }
                if applies || !self.nodes[&id].apply_work.is_empty() {
                    self.apply_thread(id)?;
                }
                moved |= ready || writes || applies;
            }
            for &id in ids {
                if self.has_msgs(id) {
                    emit(format!("> {id} receiving messages"));
                    indented(2, || self.deliver(id));
                    moved = true;
                }
            }
            if !moved {
                return Ok(());
            }
        }
        bail!("stabilize: still busy after {MAX_ROUNDS} rounds (a livelock?)")
    }
}

/// What a ready asked to persist: `hard state term=2 vote=1 commit=5,
/// entries 6..8, snapshot index=4`; `nothing` when empty.
fn writes(rd: &Ready) -> String {
    let mut parts = Vec::new();
    if let Some(hs) = &rd.hard_state {
        parts.push(format!("hard state {}", render::hard_state(hs)));
    }
    if let Some(snap) = &rd.snapshot {
        parts.push(format!("snapshot index={}", snap.index()));
    }
    match (rd.entries.first(), rd.entries.last()) {
        (Some(a), Some(b)) if a.index == b.index => parts.push(format!("entry {}", a.index)),
        (Some(a), Some(b)) => parts.push(format!("entries {}..{}", a.index, b.index)),
        _ => {}
    }
    if parts.is_empty() {
        return "nothing".to_string();
    }
    parts.join(", ")
}
