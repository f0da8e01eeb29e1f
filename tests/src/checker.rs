//! The safety properties of raft, checked against everything the simulation
//! observes over a whole run (including peers that crashed since).
//!
//! - election safety: at most one leader per term, over the whole history;
//! - log matching: two logs holding an entry with the same index and term
//!   hold identical entries up to that index;
//! - leader completeness: an entry committed in term `C` is in the log of
//!   every leader of a term above `C`, as that log was when it took office.
//!   Committed entries are learned from what peers apply; `C` for an index
//!   is the term of the first leader seen with its commit index at or past
//!   it. Checked when a leader takes office (against the entries applied so
//!   far) and when an entry is first applied (against the leaders recorded
//!   so far), so the order of the two events does not matter. (A leader of
//!   a term at or below `C` may take office after the commit, its votes
//!   having been delayed in the network: it is not bound.)
//! - state-machine safety: no index is applied with two different entries,
//!   and the applied sequences of all peers are prefixes of one another.
//!
//! Every check returns `Err(description)` naming the peers and indexes
//! involved; the simulation adds the seed and the step.

use std::collections::BTreeMap;

use flotilla_raft::raftpb::{Entry, EntryType};

/// What the simulation knows of a log entry: its term and its payload id
/// (0 for an entry without payload, such as a new leader's empty entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LogEntry {
    /// The term the entry was proposed in.
    pub term: u64,
    /// The unique payload id, 0 for none.
    pub payload: u64,
}

impl LogEntry {
    /// Reads an entry produced by the simulation: a normal entry carrying an
    /// 8-byte payload id or nothing.
    pub fn of(e: &Entry) -> Result<LogEntry, String> {
        if e.entry_type != EntryType::EntryNormal as i32 {
            return Err(format!(
                "entry {} has unexpected type {}",
                e.index, e.entry_type
            ));
        }
        let payload = match e.data.len() {
            0 => 0,
            8 => u64::from_le_bytes(e.data[..].try_into().expect("8 bytes")),
            n => return Err(format!("entry {} has a corrupt {n}-byte payload", e.index)),
        };
        Ok(LogEntry {
            term: e.term,
            payload,
        })
    }
}

/// A contiguous part of some log: entries `first..first + entries.len()`.
#[derive(Debug, Clone)]
pub struct LogView {
    /// Whose log, for messages ("node 3", "node 3 durable").
    pub owner: String,
    /// The index of `entries[0]`.
    pub first: u64,
    /// The entries.
    pub entries: Vec<LogEntry>,
}

impl LogView {
    /// Builds a view of raft entries (which must be contiguous from `first`).
    pub fn new(owner: String, first: u64, entries: &[Entry]) -> Result<Self, String> {
        let mut out = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            if e.index != first + i as u64 {
                return Err(format!("{owner}: log not contiguous at {}", e.index));
            }
            out.push(LogEntry::of(e)?);
        }
        Ok(LogView {
            owner,
            first,
            entries: out,
        })
    }

    /// The entry at `index`, if this view holds it.
    pub fn get(&self, index: u64) -> Option<LogEntry> {
        let pos = index.checked_sub(self.first)?;
        self.entries.get(usize::try_from(pos).ok()?).copied()
    }

    /// The index of the last entry (`first - 1` when empty).
    pub fn last(&self) -> u64 {
        self.first + self.entries.len() as u64 - 1
    }
}

/// A leader as it was when it took office.
#[derive(Debug, Clone)]
struct LeaderRecord {
    id: u64,
    step: u64,
    log: LogView,
}

/// An index applied somewhere, and by whom first.
#[derive(Debug, Clone, Copy)]
struct AppliedRecord {
    entry: LogEntry,
    node: u64,
    step: u64,
    // The term of the leader that committed it.
    commit_term: u64,
}

/// The history-wide safety checker.
#[derive(Debug, Default)]
pub struct Checker {
    leaders: BTreeMap<u64, LeaderRecord>,
    applied: BTreeMap<u64, AppliedRecord>,
    // (commit index, term) each time a leader was seen with a commit index
    // past all earlier ones: increasing in both.
    commit_marks: Vec<(u64, u64)>,
}

impl Checker {
    /// A checker that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// The leader recorded for `term`, if any.
    pub fn leader_of(&self, term: u64) -> Option<u64> {
        self.leaders.get(&term).map(|r| r.id)
    }

    /// How many leaders took office over the run.
    pub fn leader_count(&self) -> usize {
        self.leaders.len()
    }

    /// How many distinct indexes were applied somewhere.
    pub fn applied_count(&self) -> usize {
        self.applied.len()
    }

    /// The entry applied at `index`, if any peer applied it.
    pub fn applied_at(&self, index: u64) -> Option<LogEntry> {
        self.applied.get(&index).map(|r| r.entry)
    }

    /// Whether a leader for `term` is already recorded as `id` (cheap; call
    /// before building a log view for [`Checker::on_leader`]).
    pub fn knows_leader(&self, term: u64, id: u64) -> bool {
        self.leaders.get(&term).is_some_and(|r| r.id == id)
    }

    /// A leader of `term` has commit index `committed`: remembers in which
    /// term each index was first committed.
    pub fn on_leader_commit(&mut self, term: u64, committed: u64) {
        if self.commit_marks.last().is_none_or(|&(c, _)| committed > c) {
            self.commit_marks.push((committed, term));
        }
    }

    /// The term of the first leader seen committing `index`.
    fn commit_term(&self, index: u64) -> Option<u64> {
        let pos = self.commit_marks.partition_point(|&(c, _)| c < index);
        self.commit_marks.get(pos).map(|&(_, t)| t)
    }

    /// Peer `id` takes office as leader of `term`, with `log` as its log.
    /// Checks election safety, and leader completeness against every entry
    /// applied so far that was committed in a lower term.
    pub fn on_leader(&mut self, step: u64, id: u64, term: u64, log: LogView) -> Result<(), String> {
        if let Some(r) = self.leaders.get(&term) {
            if r.id == id {
                return Ok(());
            }
            return Err(format!(
                "election safety: nodes {} (since step {}) and {id} both lead term {term}",
                r.id, r.step
            ));
        }
        for (&index, a) in &self.applied {
            if a.commit_term < term {
                check_has(&log, term, index, a)?;
            }
        }
        self.leaders.insert(term, LeaderRecord { id, step, log });
        Ok(())
    }

    /// Peer `node` applied `entry` at `index`. Checks that no other entry
    /// was applied there and, the first time, leader completeness against
    /// every leader of a term above the one the index was committed in.
    pub fn on_applied(
        &mut self,
        step: u64,
        node: u64,
        index: u64,
        entry: LogEntry,
    ) -> Result<(), String> {
        if let Some(a) = self.applied.get(&index) {
            if a.entry != entry {
                return Err(format!(
                    "state-machine safety: index {index} applied as {entry:?} by node {node} \
                     but as {:?} by node {} at step {}",
                    a.entry, a.node, a.step
                ));
            }
            return Ok(());
        }
        let Some(commit_term) = self.commit_term(index) else {
            return Err(format!(
                "commit: node {node} applied index {index}, which no leader was seen committing"
            ));
        };
        let a = AppliedRecord {
            entry,
            node,
            step,
            commit_term,
        };
        for (&term, leader) in self.leaders.range(commit_term + 1..) {
            check_has(&leader.log, term, index, &a)?;
        }
        self.applied.insert(index, a);
        Ok(())
    }

    /// Checks that entries a peer holds as committed agree with what was
    /// applied anywhere at the same index.
    pub fn check_committed(&self, log: &LogView, committed: u64) -> Result<(), String> {
        let hi = committed.min(log.last());
        if hi < log.first {
            return Ok(());
        }
        for (&index, a) in self.applied.range(log.first..=hi) {
            let have = log.get(index).expect("in range");
            if have != a.entry {
                return Err(format!(
                    "commit safety: {} holds {have:?} at committed index {index} \
                     (commit {committed}) but node {} applied {:?} there at step {}",
                    log.owner, a.node, a.entry, a.step
                ));
            }
        }
        Ok(())
    }
}

fn check_has(log: &LogView, term: u64, index: u64, a: &AppliedRecord) -> Result<(), String> {
    if index < log.first {
        // Compacted away by the leader: covered by its snapshot, which the
        // state-machine checks compare.
        return Ok(());
    }
    match log.get(index) {
        Some(e) if e == a.entry => Ok(()),
        found => Err(format!(
            "leader completeness: {} became leader of term {term} with {found:?} at index \
             {index} (log {}..={}), but node {} applied {:?} there at step {}, committed in \
             term {}",
            log.owner,
            log.first,
            log.last(),
            a.node,
            a.entry,
            a.step,
            a.commit_term
        )),
    }
}

/// Log matching over every pair of `logs`: for the highest index at which
/// two logs hold entries of the same term, their common part up to it must
/// be identical.
pub fn check_log_matching(logs: &[LogView]) -> Result<(), String> {
    for (i, a) in logs.iter().enumerate() {
        for b in &logs[i + 1..] {
            check_pair(a, b)?;
        }
    }
    Ok(())
}

fn check_pair(a: &LogView, b: &LogView) -> Result<(), String> {
    let lo = a.first.max(b.first);
    let hi = a.last().min(b.last());
    let Some(top) = (lo..=hi)
        .rev()
        .find(|&i| a.get(i).map(|e| e.term) == b.get(i).map(|e| e.term))
    else {
        return Ok(());
    };
    for i in lo..=top {
        let (x, y) = (a.get(i), b.get(i));
        if x != y {
            return Err(format!(
                "log matching: {} and {} agree on the term {} at index {top} but differ \
                 at index {i}: {x:?} vs {y:?}",
                a.owner,
                b.owner,
                a.get(top).map_or(0, |e| e.term)
            ));
        }
    }
    Ok(())
}

/// State-machine safety over peers' applied sequences (entry `i` applied
/// at index `i + 1`): each must be a prefix of the longer ones.
pub fn check_prefixes(sms: &[(u64, &[LogEntry])]) -> Result<(), String> {
    for (i, &(a, sa)) in sms.iter().enumerate() {
        for &(b, sb) in &sms[i + 1..] {
            let n = sa.len().min(sb.len());
            if let Some(k) = (0..n).find(|&k| sa[k] != sb[k]) {
                return Err(format!(
                    "state-machine safety: nodes {a} and {b} applied different entries at \
                     index {}: {:?} vs {:?}",
                    k + 1,
                    sa[k],
                    sb[k]
                ));
            }
        }
    }
    Ok(())
}
