//! The raft log as one peer sees it: the durable part, read through
//! [`Storage`], followed by the [`Unstable`] tail raft holds in memory until
//! the host persists it, plus the commit and apply cursors.
//!
//! Index layout, from old to new:
//!
//! ```text
//!  first_index-1   applied <= applying <= committed        last_index
//!  (compaction     |          |           |                 |
//!   point)  storage entries ... | unstable.offset .. unstable entries
//! ```
//!
//! Anything below `first_index()` is compacted (its term is known only for
//! `first_index() - 1`); everything from `unstable.offset` on is not yet
//! durable. Committed entries are handed out for applying only once they are
//! durable locally.

use flotilla_proto::raftpb::{Entry, Snapshot};

use crate::errors::{Error, Result, StorageError};
use crate::log_unstable::Unstable;
use crate::storage::Storage;
use crate::util::{NO_LIMIT, entries_size, entry_size, limit_size};

/// A peer's replicated log: stable storage plus the unstable tail, and how
/// far it is committed and applied.
#[derive(Debug)]
pub struct RaftLog<S: Storage> {
    /// The durable log.
    pub store: S,
    /// Entries and a snapshot not yet known durable. Entries from
    /// `unstable.offset` on take precedence over what storage holds.
    pub unstable: Unstable,
    /// The highest index known committed (stored on a quorum).
    /// Invariant: `committed <= last_index()`; it never decreases.
    pub committed: u64,
    /// The highest index handed to the host to apply.
    /// Invariant: `applied <= applying <= committed`.
    pub applying: u64,
    /// The highest index the host reports applied.
    /// Invariant: `applied <= applying`.
    pub applied: u64,
    /// Cap on the total size of the committed entries handed out at once
    /// (per `Ready`); at least one entry is always handed out.
    pub max_applying_bytes: u64,
}

impl<S: Storage> RaftLog<S> {
    /// A log over `store`, with nothing unstable, committed or applied past
    /// the storage's compaction point.
    pub fn new(store: S, max_applying_bytes: u64) -> Result<Self> {
        let first_index = store.first_index()?;
        let last_index = store.last_index()?;
        let start = first_index - 1;
        Ok(Self {
            store,
            unstable: Unstable::new(last_index + 1),
            committed: start,
            applying: start,
            applied: start,
            max_applying_bytes,
        })
    }

    /// The index of the first entry still available (one past an unstable
    /// snapshot, else storage's first index).
    ///
    /// # Panics
    ///
    /// If storage cannot answer: raft cannot run without it.
    pub fn first_index(&self) -> u64 {
        match self.unstable.maybe_first_index() {
            Some(index) => index,
            None => self.store.first_index().unwrap_or_else(|e| {
                panic!("raft log: storage failed to give its first index: {e}")
            }),
        }
    }

    /// The index of the last entry (unstable first, else storage's).
    ///
    /// # Panics
    ///
    /// If storage cannot answer: raft cannot run without it.
    pub fn last_index(&self) -> u64 {
        match self.unstable.maybe_last_index() {
            Some(index) => index,
            None => self
                .store
                .last_index()
                .unwrap_or_else(|e| panic!("raft log: storage failed to give its last index: {e}")),
        }
    }

    /// The term of the entry at `index`, for `index` in
    /// `[first_index() - 1, last_index()]`. `StorageError::Compacted` below,
    /// `StorageError::Unavailable` above; other storage errors are passed on.
    pub fn term(&self, index: u64) -> Result<u64> {
        if index < self.first_index() - 1 {
            return Err(Error::Store(StorageError::Compacted));
        }
        if index > self.last_index() {
            return Err(Error::Store(StorageError::Unavailable));
        }
        if let Some(term) = self.unstable.maybe_term(index) {
            return Ok(term);
        }
        self.store.term(index)
    }

    /// The term of the last entry.
    ///
    /// # Panics
    ///
    /// If storage cannot give the term of its own last entry.
    pub fn last_term(&self) -> u64 {
        let last = self.last_index();
        self.term(last)
            .unwrap_or_else(|e| panic!("raft log: no term for the last index {last}: {e}"))
    }

    /// True when the entry at `index` exists and has `term`.
    pub fn match_term(&self, index: u64, term: u64) -> bool {
        self.term(index).is_ok_and(|t| t == term)
    }

    /// The term from a [`term`](Self::term) lookup, with 0 for an index out
    /// of range (compacted or not yet there).
    ///
    /// # Panics
    ///
    /// On any other storage error.
    pub fn zero_term_on_out_of_range(&self, term: Result<u64>) -> u64 {
        match term {
            Ok(t) => t,
            Err(Error::Store(StorageError::Compacted | StorageError::Unavailable)) => 0,
            Err(e) => panic!("raft log: unexpected error looking up a term: {e}"),
        }
    }

    /// True when a log ending at `last_index` with term `term` is at least
    /// as up-to-date as this one (the voting rule of raft §5.4.1).
    pub fn is_up_to_date(&self, last_index: u64, term: u64) -> bool {
        let our_term = self.last_term();
        term > our_term || (term == our_term && last_index >= self.last_index())
    }

    /// The index of the first of `ents` that conflicts with this log (same
    /// index, different term) or is new (beyond `last_index()`); 0 when every
    /// entry is already present with the same term. `ents` must be contiguous.
    pub fn find_conflict(&self, ents: &[Entry]) -> u64 {
        for e in ents {
            if !self.match_term(e.index, e.term) {
                if e.index <= self.last_index() {
                    let existing = self.zero_term_on_out_of_range(self.term(e.index));
                    tracing::info!(
                        index = e.index,
                        existing_term = existing,
                        conflicting_term = e.term,
                        "raft log: found a conflicting entry"
                    );
                }
                return e.index;
            }
        }
        0
    }

    /// Fast log backtracking: the largest index `<= index` whose entry has a
    /// term `<= term`, with that term. A leader whose entry at some index has
    /// term `term` knows that every entry of ours in between with a larger
    /// term must be overwritten, so it can skip them in one round trip.
    ///
    /// Returns `(index, 0)` when `index` is beyond `last_index()`, and
    /// `(probe, 0)` for the first probed index whose term cannot be read
    /// (below `first_index() - 1`); `(0, 0)` when the search reaches index 0.
    pub fn find_conflict_by_term(&self, index: u64, term: u64) -> (u64, u64) {
        let last = self.last_index();
        if index > last {
            tracing::warn!(
                index,
                last,
                "raft log: find_conflict_by_term beyond the last index"
            );
            return (index, 0);
        }
        let mut probe = index;
        while probe > 0 {
            match self.term(probe) {
                Ok(t) if t <= term => return (probe, t),
                Ok(_) => probe -= 1,
                Err(_) => return (probe, 0),
            }
        }
        (0, 0)
    }

    /// Handles an append from the leader: `ents` follow the entry at `index`
    /// with term `log_term`, and the leader has committed up to `committed`.
    /// Returns the index of the last entry now known to match the leader's
    /// log (`index + ents.len()`), or `None` when the log does not contain
    /// the entry at `index` with `log_term` (the append is rejected).
    ///
    /// # Panics
    ///
    /// If the append would overwrite a committed entry.
    pub fn maybe_append(
        &mut self,
        index: u64,
        log_term: u64,
        committed: u64,
        ents: &[Entry],
    ) -> Option<u64> {
        if !self.match_term(index, log_term) {
            return None;
        }
        let last_new = index + ents.len() as u64;
        let conflict = self.find_conflict(ents);
        if conflict != 0 {
            assert!(
                conflict > self.committed,
                "raft log: entry {conflict} conflicts with a committed entry (committed {})",
                self.committed
            );
            let start = (conflict - (index + 1)) as usize;
            self.append(&ents[start..]);
        }
        self.commit_to(committed.min(last_new));
        Some(last_new)
    }

    /// Appends `ents` (contiguous) to the unstable tail, replacing any entry
    /// from `ents[0].index` on. Returns the new last index.
    ///
    /// # Panics
    ///
    /// If `ents` would replace a committed entry.
    pub fn append(&mut self, ents: &[Entry]) -> u64 {
        let Some(first) = ents.first() else {
            return self.last_index();
        };
        let after = first.index - 1;
        assert!(
            after >= self.committed,
            "raft log: appending after index {after} would overwrite committed entries (committed {})",
            self.committed
        );
        self.unstable.truncate_and_append(ents);
        self.last_index()
    }

    /// Raises the commit index to `to_commit`; never lowers it.
    ///
    /// # Panics
    ///
    /// If `to_commit` is beyond the last index: the log would be corrupt,
    /// truncated or lost.
    pub fn commit_to(&mut self, to_commit: u64) {
        if to_commit <= self.committed {
            return;
        }
        let last = self.last_index();
        assert!(
            to_commit <= last,
            "raft log: commit index {to_commit} is out of range [committed {}, last {last}]; \
             was the raft log corrupted, truncated or lost?",
            self.committed
        );
        self.committed = to_commit;
    }

    /// Commits up to `max_index` if it is past the commit index and its entry
    /// has `term` (a leader only commits entries of its own term by
    /// counting). Returns whether the commit index moved.
    pub fn maybe_commit(&mut self, max_index: u64, term: u64) -> bool {
        if max_index > self.committed
            && self.zero_term_on_out_of_range(self.term(max_index)) == term
        {
            self.commit_to(max_index);
            return true;
        }
        false
    }

    /// Unstable entries not yet handed to the host for persisting.
    pub fn next_unstable_ents(&self) -> &[Entry] {
        self.unstable.next_entries()
    }

    /// True when [`next_unstable_ents`](Self::next_unstable_ents) is not empty.
    pub fn has_next_unstable_ents(&self) -> bool {
        self.unstable.has_next_entries()
    }

    /// The unstable snapshot, if not yet handed to the host for persisting.
    pub fn next_unstable_snapshot(&self) -> Option<&Snapshot> {
        self.unstable.next_snapshot()
    }

    /// True when [`next_unstable_snapshot`](Self::next_unstable_snapshot) is `Some`.
    pub fn has_next_unstable_snapshot(&self) -> bool {
        self.unstable.has_next_snapshot()
    }

    /// Marks every unstable entry and the unstable snapshot as handed to the
    /// host, so later `Ready`s do not hand them out again.
    pub fn accept_unstable(&mut self) {
        self.unstable.accept_in_progress();
    }

    /// Every entry up to this index is durable locally.
    pub fn persisted_index(&self) -> u64 {
        self.unstable.offset - 1
    }

    /// The highest index that may be applied: committed and durable locally.
    pub fn max_appliable_index(&self) -> u64 {
        self.committed.min(self.persisted_index())
    }

    /// True when there are committed entries to hand out for applying. Never
    /// while an unstable snapshot waits: it must be applied first.
    pub fn has_next_committed_ents(&self) -> bool {
        if self.unstable.snapshot.is_some() {
            return false;
        }
        self.applying < self.max_appliable_index()
    }

    /// The committed entries to hand out for applying next:
    /// `(applying, max_appliable_index()]`, their total size capped at
    /// `max_applying_bytes` but at least one entry. Empty when there are none.
    ///
    /// # Panics
    ///
    /// If the entries cannot be read: they were compacted before being
    /// applied, or storage failed.
    pub fn next_committed_ents(&self) -> Vec<Entry> {
        if !self.has_next_committed_ents() {
            return Vec::new();
        }
        let (lo, hi) = (self.applying + 1, self.max_appliable_index() + 1);
        self.slice(lo, hi, self.max_applying_bytes)
            .unwrap_or_else(|e| {
                panic!("raft log: cannot read committed entries [{lo}, {hi}) to apply: {e}")
            })
    }

    /// Records that entries up to `index` were handed to the host to apply.
    ///
    /// # Panics
    ///
    /// If `index` is not committed.
    pub fn accept_applying(&mut self, index: u64) {
        assert!(
            index <= self.committed,
            "raft log: applying index {index} beyond committed {}",
            self.committed
        );
        self.applying = index;
    }

    /// Records that the host applied entries up to `index`. Index 0 means
    /// nothing was applied and is ignored.
    ///
    /// # Panics
    ///
    /// If `index` is beyond the commit index or below the applied index.
    pub fn applied_to(&mut self, index: u64) {
        if index == 0 {
            return;
        }
        assert!(
            self.committed >= index && index >= self.applied,
            "raft log: applied index {index} out of range [prev applied {}, committed {}]",
            self.applied,
            self.committed
        );
        self.applied = index;
        self.applying = self.applying.max(index);
    }

    /// The host reports unstable entries up to `index` (the last with
    /// `term`) durable.
    pub fn stable_to(&mut self, index: u64, term: u64) {
        self.unstable.stable_to(index, term);
    }

    /// The host reports the unstable snapshot at `index` durable. The host
    /// installs a snapshot in the same write that persists it, so the
    /// snapshot also counts as applied: `applied` and `applying` move up to
    /// `index` (otherwise the next committed entries would be looked for
    /// below the new first index).
    pub fn stable_snap_to(&mut self, index: u64) {
        let matches = self
            .unstable
            .snapshot
            .as_ref()
            .is_some_and(|s| s.index() == index);
        self.unstable.stable_snap_to(index);
        if matches && index > self.applied {
            self.applied_to(index);
        }
    }

    /// The latest snapshot: the unstable one if any, else storage's, which
    /// must reach at least the last compacted index to be of use to a
    /// follower that needs compacted entries.
    pub fn snapshot(&self) -> Result<Snapshot> {
        match &self.unstable.snapshot {
            Some(snap) => Ok(snap.clone()),
            None => self.store.snapshot(self.first_index() - 1),
        }
    }

    /// The entries from `low` to the last index, their total size capped at
    /// `max_bytes` (at least one entry). Empty when `low > last_index()`.
    pub fn entries(&self, low: u64, max_bytes: u64) -> Result<Vec<Entry>> {
        let last = self.last_index();
        if low > last {
            return Ok(Vec::new());
        }
        self.slice(low, last + 1, max_bytes)
    }

    /// Every entry from the first index to the last, for tests.
    ///
    /// # Panics
    ///
    /// On a storage error other than a concurrent compaction.
    pub fn all_entries(&self) -> Vec<Entry> {
        loop {
            match self.entries(self.first_index(), NO_LIMIT) {
                Ok(ents) => return ents,
                // Storage was compacted between the two reads: try again.
                Err(Error::Store(StorageError::Compacted)) => continue,
                Err(e) => panic!("raft log: cannot read all entries: {e}"),
            }
        }
    }

    /// The entries in `[low, high)`, their total size capped at `max_bytes`
    /// (at least one entry when the range is not empty). The part below
    /// `unstable.offset` comes from storage, the rest from the unstable tail.
    /// `StorageError::Compacted` if `low < first_index()`; other storage
    /// errors are passed on.
    ///
    /// # Panics
    ///
    /// If `low > high` or `high > last_index() + 1`.
    pub fn slice(&self, low: u64, high: u64, max_bytes: u64) -> Result<Vec<Entry>> {
        self.check_bounds(low, high)?;
        if low == high {
            return Ok(Vec::new());
        }
        let offset = self.unstable.offset;
        if low >= offset {
            let mut ents = self.unstable.slice(low, high).to_vec();
            limit_size(&mut ents, max_bytes);
            return Ok(ents);
        }
        let cut = high.min(offset);
        let mut ents = self.store.entries(low, cut, max_bytes)?;
        if high <= offset || (ents.len() as u64) < cut - low {
            // Wholly stable, or storage already hit the size cap.
            return Ok(ents);
        }
        let mut size = entries_size(&ents);
        for e in self.unstable.slice(offset, high) {
            size = size.saturating_add(entry_size(e));
            if size > max_bytes {
                break;
            }
            ents.push(e.clone());
        }
        Ok(ents)
    }

    /// `Compacted` if `low` is below the first index; panics if the range is
    /// inverted or reaches past the last index.
    fn check_bounds(&self, low: u64, high: u64) -> Result<()> {
        assert!(
            low <= high,
            "raft log: invalid slice [{low}, {high}): low > high"
        );
        let first = self.first_index();
        if low < first {
            return Err(Error::Store(StorageError::Compacted));
        }
        let last = self.last_index();
        assert!(
            high <= last + 1,
            "raft log: slice [{low}, {high}) out of bound [{first}, {last}]"
        );
        Ok(())
    }

    /// Replaces the log with `snapshot`: it becomes the unstable snapshot and
    /// everything up to its index is committed. The apply cursors are left
    /// alone; the host reports the snapshot applied through `applied_to`.
    ///
    /// # Panics
    ///
    /// If the snapshot is older than the commit index.
    pub fn restore(&mut self, snapshot: Snapshot) {
        let index = snapshot.index();
        assert!(
            index >= self.committed,
            "raft log: restoring snapshot at {index} below commit index {}",
            self.committed
        );
        tracing::info!(
            index,
            term = snapshot.term(),
            last_index = self.last_index(),
            "raft log: restoring a snapshot"
        );
        self.committed = index;
        self.unstable.restore(snapshot);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use flotilla_proto::raftpb::{ConfState, SnapshotMetadata};

    use super::*;
    use crate::storage::MemStorage;

    fn ent(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    /// Entries `(index, term)` in order.
    fn ents(pairs: &[(u64, u64)]) -> Vec<Entry> {
        pairs.iter().map(|&(i, t)| ent(i, t)).collect()
    }

    /// An entry with a payload, so that byte caps bite.
    fn big(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: Bytes::from(vec![1u8; 100]),
            ..Default::default()
        }
    }

    fn snap(index: u64, term: u64) -> Snapshot {
        Snapshot {
            metadata: Some(SnapshotMetadata::new(index, term, ConfState::default())),
            ..Default::default()
        }
    }

    fn compacted() -> Error {
        Error::Store(StorageError::Compacted)
    }

    fn unavailable() -> Error {
        Error::Store(StorageError::Unavailable)
    }

    /// A log whose storage holds `stable` and whose unstable tail holds
    /// `unstable`, with an unlimited applying cap.
    fn log_with(stable: &[Entry], unstable: &[Entry]) -> RaftLog<MemStorage> {
        let store = MemStorage::new();
        store.wl().append(stable).unwrap();
        let mut log = RaftLog::new(store, NO_LIMIT).unwrap();
        log.append(unstable);
        log
    }

    /// A log whose storage starts after a snapshot at `index`/`term`, holds
    /// `stable` after it, with `unstable` on top.
    fn log_after_snapshot(
        index: u64,
        term: u64,
        stable: &[Entry],
        unstable: &[Entry],
    ) -> RaftLog<MemStorage> {
        let store = MemStorage::new();
        store.wl().apply_snapshot(snap(index, term)).unwrap();
        store.wl().append(stable).unwrap();
        let mut log = RaftLog::new(store, NO_LIMIT).unwrap();
        log.append(unstable);
        log
    }

    /// Plays the host: persists what the log hands out and reports it.
    fn persist_all(log: &mut RaftLog<MemStorage>) {
        if let Some(snap) = log.next_unstable_snapshot().cloned() {
            log.store.wl().apply_snapshot(snap.clone()).unwrap();
            log.stable_snap_to(snap.index());
        }
        let ents = log.next_unstable_ents().to_vec();
        log.accept_unstable();
        if let Some(last) = ents.last() {
            log.store.wl().append(&ents).unwrap();
            log.stable_to(last.index, last.term);
        }
    }

    #[test]
    fn new_starts_at_the_storage_compaction_point() {
        let log = log_after_snapshot(5, 2, &ents(&[(6, 2), (7, 3)]), &[]);
        assert_eq!(log.first_index(), 6);
        assert_eq!(log.last_index(), 7);
        assert_eq!((log.committed, log.applying, log.applied), (5, 5, 5));
        assert_eq!(log.unstable.offset, 8);
        assert_eq!(log.persisted_index(), 7);
    }

    #[test]
    fn new_over_empty_storage_starts_at_zero() {
        let log = log_with(&[], &[]);
        assert_eq!(log.first_index(), 1);
        assert_eq!(log.last_index(), 0);
        assert_eq!(log.last_term(), 0);
        assert_eq!((log.committed, log.applying, log.applied), (0, 0, 0));
    }

    #[test]
    fn first_index_prefers_the_unstable_snapshot() {
        let mut log = log_with(&ents(&[(1, 1), (2, 1)]), &[]);
        assert_eq!(log.first_index(), 1);
        log.restore(snap(10, 3));
        assert_eq!(log.first_index(), 11);
    }

    #[test]
    fn last_index_prefers_unstable_entries_then_snapshot_then_storage() {
        let mut log = log_with(&ents(&[(1, 1), (2, 1)]), &[]);
        assert_eq!(log.last_index(), 2);
        log.append(&ents(&[(3, 1), (4, 1)]));
        assert_eq!(log.last_index(), 4);
        log.restore(snap(10, 3));
        assert_eq!(log.last_index(), 10);
        log.append(&ents(&[(11, 3)]));
        assert_eq!(log.last_index(), 11);
    }

    #[test]
    fn term_reads_storage_and_unstable_entries() {
        let log = log_after_snapshot(3, 1, &ents(&[(4, 1), (5, 2)]), &ents(&[(6, 2), (7, 3)]));
        assert_eq!(log.term(2), Err(compacted()));
        assert_eq!(log.term(3), Ok(1));
        assert_eq!(log.term(4), Ok(1));
        assert_eq!(log.term(5), Ok(2));
        assert_eq!(log.term(6), Ok(2));
        assert_eq!(log.term(7), Ok(3));
        assert_eq!(log.term(8), Err(unavailable()));
    }

    #[test]
    fn term_reads_the_unstable_snapshot() {
        let mut log = log_with(&ents(&[(1, 1)]), &[]);
        log.restore(snap(5, 2));
        assert_eq!(log.term(5), Ok(2));
        assert_eq!(log.term(4), Err(compacted()));
        assert_eq!(log.term(6), Err(unavailable()));
        assert_eq!(log.last_term(), 2);
    }

    #[test]
    fn term_sees_unstable_entries_that_replace_stable_ones() {
        let mut log = log_with(&ents(&[(1, 1), (2, 1), (3, 1), (4, 1)]), &[]);
        log.append(&ents(&[(3, 2)]));
        assert_eq!(log.last_index(), 3);
        assert_eq!(log.term(2), Ok(1));
        assert_eq!(log.term(3), Ok(2));
        // Entry 4 still sits in storage but is no longer part of the log.
        assert_eq!(log.term(4), Err(unavailable()));
        assert_eq!(log.persisted_index(), 2);
    }

    #[test]
    fn last_term_is_the_term_of_the_last_entry() {
        assert_eq!(log_with(&ents(&[(1, 1), (2, 4)]), &[]).last_term(), 4);
        assert_eq!(log_with(&ents(&[(1, 1)]), &ents(&[(2, 5)])).last_term(), 5);
        assert_eq!(log_after_snapshot(5, 3, &[], &[]).last_term(), 3);
    }

    #[test]
    fn match_term_is_false_out_of_range() {
        let log = log_after_snapshot(3, 1, &ents(&[(4, 2)]), &ents(&[(5, 3)]));
        assert!(log.match_term(3, 1));
        assert!(log.match_term(4, 2));
        assert!(log.match_term(5, 3));
        assert!(!log.match_term(5, 2));
        assert!(!log.match_term(2, 0));
        assert!(!log.match_term(6, 0));
    }

    #[test]
    fn zero_term_on_out_of_range_maps_range_errors_to_zero() {
        let log = log_with(&ents(&[(1, 1)]), &[]);
        assert_eq!(log.zero_term_on_out_of_range(Ok(7)), 7);
        assert_eq!(log.zero_term_on_out_of_range(Err(compacted())), 0);
        assert_eq!(log.zero_term_on_out_of_range(Err(unavailable())), 0);
    }

    #[test]
    #[should_panic(expected = "unexpected error")]
    fn zero_term_on_out_of_range_panics_on_other_errors() {
        let log = log_with(&[], &[]);
        let err = Error::Store(StorageError::Other("disk on fire".into()));
        log.zero_term_on_out_of_range(Err(err));
    }

    #[test]
    fn is_up_to_date_compares_last_term_then_last_index() {
        let log = log_with(&ents(&[(1, 1), (2, 2), (3, 3)]), &[]);
        // (candidate last index, candidate last term, expected)
        let cases = [
            (2, 4, true), // higher term wins whatever the index
            (3, 4, true),
            (4, 4, true),
            (2, 2, false), // lower term loses whatever the index
            (3, 2, false),
            (4, 2, false),
            (2, 3, false), // same term: longer or equal wins
            (3, 3, true),
            (4, 3, true),
        ];
        for (index, term, want) in cases {
            assert_eq!(
                log.is_up_to_date(index, term),
                want,
                "candidate ({index}, {term})"
            );
        }
    }

    #[test]
    fn find_conflict_returns_first_mismatching_index() {
        let log = log_with(&ents(&[(1, 1), (2, 2), (3, 3)]), &[]);
        let cases: [(&[(u64, u64)], u64); 6] = [
            (&[(1, 4), (2, 4)], 1),
            (&[(2, 1), (3, 4), (4, 4)], 2),
            (&[(3, 1), (4, 2), (5, 4)], 3),
            (&[(2, 2), (3, 4)], 3),
            (&[(1, 1), (2, 2), (3, 3), (4, 4)], 4),
            (&[(3, 3), (4, 4), (5, 5)], 4),
        ];
        for (given, want) in cases {
            assert_eq!(log.find_conflict(&ents(given)), want, "entries {given:?}");
        }
    }

    #[test]
    fn find_conflict_returns_zero_when_everything_matches() {
        let log = log_with(&ents(&[(1, 1), (2, 2)]), &ents(&[(3, 3)]));
        assert_eq!(log.find_conflict(&[]), 0);
        assert_eq!(log.find_conflict(&ents(&[(1, 1), (2, 2), (3, 3)])), 0);
        assert_eq!(log.find_conflict(&ents(&[(2, 2), (3, 3)])), 0);
        assert_eq!(log.find_conflict(&ents(&[(3, 3)])), 0);
    }

    #[test]
    fn find_conflict_by_term_finds_the_last_index_with_a_term_not_above() {
        // Index: 1 2 3 4 5 6
        // Term:  1 1 2 2 4 4
        let log = log_with(
            &ents(&[(1, 1), (2, 1), (3, 2), (4, 2)]),
            &ents(&[(5, 4), (6, 4)]),
        );
        let cases = [
            ((6, 4), (6, 4)),
            ((6, 5), (6, 4)),
            ((6, 3), (4, 2)),
            ((5, 3), (4, 2)),
            ((6, 1), (2, 1)),
            ((3, 1), (2, 1)),
            ((6, 0), (0, 0)),
            ((0, 0), (0, 0)),
            // Beyond the last index: the index itself, with no term.
            ((7, 4), (7, 0)),
        ];
        for ((index, term), want) in cases {
            assert_eq!(
                log.find_conflict_by_term(index, term),
                want,
                "probe ({index}, {term})"
            );
        }
    }

    #[test]
    fn find_conflict_by_term_stops_at_the_compaction_point() {
        // Compacted through 3 (term 2); then 4:3, 5:3.
        let log = log_after_snapshot(3, 2, &ents(&[(4, 3), (5, 3)]), &[]);
        assert_eq!(log.find_conflict_by_term(5, 2), (3, 2));
        // Nothing at or below the compaction point has a low enough known
        // term: the first unreadable probe comes back without a term.
        assert_eq!(log.find_conflict_by_term(5, 1), (2, 0));
    }

    #[test]
    fn maybe_append_rejects_a_mismatched_previous_entry() {
        let mut log = log_with(&ents(&[(1, 1), (2, 2), (3, 3)]), &[]);
        assert_eq!(log.maybe_append(3, 2, 3, &ents(&[(4, 4)])), None);
        assert_eq!(log.maybe_append(4, 3, 3, &ents(&[(5, 4)])), None);
        assert_eq!(log.last_index(), 3);
        assert_eq!(log.committed, 0);
    }

    #[test]
    fn maybe_append_appends_new_entries_and_commits() {
        let mut log = log_with(&ents(&[(1, 1), (2, 2), (3, 3)]), &[]);
        assert_eq!(log.maybe_append(3, 3, 4, &ents(&[(4, 4), (5, 4)])), Some(5));
        assert_eq!(log.last_index(), 5);
        assert_eq!(log.committed, 4);
        // The leader's commit index is capped at the last entry it sent.
        assert_eq!(log.maybe_append(5, 4, 9, &[]), Some(5));
        assert_eq!(log.committed, 5);
    }

    #[test]
    fn maybe_append_commit_is_capped_by_what_matched_not_by_last_index() {
        let mut log = log_with(&ents(&[(1, 1), (2, 2), (3, 3), (4, 3)]), &[]);
        // Only entries up to 2 are known to match the leader's log.
        assert_eq!(log.maybe_append(1, 1, 4, &ents(&[(2, 2)])), Some(2));
        assert_eq!(log.committed, 2);
        assert_eq!(log.last_index(), 4);
    }

    #[test]
    fn maybe_append_replaces_conflicting_entries() {
        let mut log = log_with(&ents(&[(1, 1), (2, 2), (3, 3)]), &[]);
        assert_eq!(
            log.maybe_append(1, 1, 1, &ents(&[(2, 2), (3, 4), (4, 4)])),
            Some(4)
        );
        assert_eq!(log.all_entries(), ents(&[(1, 1), (2, 2), (3, 4), (4, 4)]));
        assert_eq!(log.committed, 1);
        // Only the entries from the conflict on are new to persist.
        assert_eq!(log.next_unstable_ents(), &ents(&[(3, 4), (4, 4)])[..]);
    }

    #[test]
    fn maybe_append_of_already_present_entries_changes_nothing() {
        let mut log = log_with(&ents(&[(1, 1), (2, 2), (3, 3)]), &[]);
        assert_eq!(log.maybe_append(1, 1, 2, &ents(&[(2, 2)])), Some(2));
        assert_eq!(log.last_index(), 3);
        assert!(!log.has_next_unstable_ents());
        assert_eq!(log.committed, 2);
    }

    #[test]
    #[should_panic(expected = "conflicts with a committed entry")]
    fn maybe_append_over_a_committed_entry_panics() {
        let mut log = log_with(&ents(&[(1, 1), (2, 2), (3, 3)]), &[]);
        log.commit_to(3);
        log.maybe_append(1, 1, 3, &ents(&[(2, 2), (3, 4)]));
    }

    #[test]
    fn append_returns_the_new_last_index() {
        let mut log = log_with(&ents(&[(1, 1), (2, 2)]), &[]);
        assert_eq!(log.append(&[]), 2);
        assert_eq!(log.append(&ents(&[(3, 2)])), 3);
        assert_eq!(log.append(&ents(&[(2, 3), (3, 3), (4, 3)])), 4);
        assert_eq!(log.all_entries(), ents(&[(1, 1), (2, 3), (3, 3), (4, 3)]));
        assert_eq!(log.unstable.offset, 2);
        assert_eq!(log.append(&ents(&[(1, 4)])), 1);
        assert_eq!(log.all_entries(), ents(&[(1, 4)]));
    }

    #[test]
    #[should_panic(expected = "overwrite committed entries")]
    fn append_before_the_commit_index_panics() {
        let mut log = log_with(&ents(&[(1, 1), (2, 1)]), &[]);
        log.commit_to(2);
        log.append(&ents(&[(2, 2)]));
    }

    #[test]
    fn commit_to_never_decreases() {
        let mut log = log_with(&ents(&[(1, 1), (2, 2), (3, 3)]), &[]);
        log.commit_to(3);
        assert_eq!(log.committed, 3);
        log.commit_to(1);
        assert_eq!(log.committed, 3);
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn commit_to_beyond_the_last_index_panics() {
        let mut log = log_with(&ents(&[(1, 1), (2, 2), (3, 3)]), &[]);
        log.commit_to(4);
    }

    #[test]
    fn maybe_commit_needs_a_higher_index_with_the_given_term() {
        let mut log = log_with(&ents(&[(1, 1), (2, 2)]), &ents(&[(3, 3), (4, 3)]));
        assert!(!log.maybe_commit(3, 2), "wrong term");
        assert!(!log.maybe_commit(5, 3), "beyond the last index");
        assert!(log.maybe_commit(3, 3));
        assert_eq!(log.committed, 3);
        assert!(!log.maybe_commit(3, 3), "not past the commit index");
        assert!(!log.maybe_commit(2, 2), "below the commit index");
        assert!(log.maybe_commit(4, 3));
        assert_eq!(log.committed, 4);
    }

    #[test]
    fn unstable_entries_are_handed_out_once() {
        let mut log = log_with(&ents(&[(1, 1)]), &ents(&[(2, 1), (3, 1)]));
        assert!(log.has_next_unstable_ents());
        assert_eq!(log.next_unstable_ents(), &ents(&[(2, 1), (3, 1)])[..]);
        log.accept_unstable();
        assert!(!log.has_next_unstable_ents());
        assert!(log.next_unstable_ents().is_empty());
        // Handed out but not yet durable: still part of the log.
        assert_eq!(log.persisted_index(), 1);
        assert_eq!(log.term(3), Ok(1));
        log.append(&ents(&[(4, 1)]));
        assert_eq!(log.next_unstable_ents(), &ents(&[(4, 1)])[..]);
    }

    #[test]
    fn stable_to_moves_the_persisted_index() {
        let mut log = log_with(&ents(&[(1, 1)]), &ents(&[(2, 1), (3, 2)]));
        log.accept_unstable();
        log.store.wl().append(&ents(&[(2, 1), (3, 2)])).unwrap();
        log.stable_to(2, 1);
        assert_eq!(log.persisted_index(), 2);
        assert!(!log.has_next_unstable_ents());
        log.stable_to(3, 2);
        assert_eq!(log.persisted_index(), 3);
        assert!(log.unstable.entries.is_empty());
        assert_eq!(log.last_index(), 3);
        assert_eq!(log.term(3), Ok(2));
    }

    #[test]
    fn stable_to_for_a_replaced_entry_is_ignored() {
        let mut log = log_with(&ents(&[(1, 1)]), &ents(&[(2, 1), (3, 1)]));
        log.accept_unstable();
        // A new leader replaces entry 3 before the write completes.
        log.append(&ents(&[(3, 2)]));
        assert_eq!(log.next_unstable_ents(), &ents(&[(3, 2)])[..]);
        log.stable_to(3, 1);
        assert_eq!(log.persisted_index(), 1);
        assert_eq!(log.next_unstable_ents(), &ents(&[(3, 2)])[..]);
        log.stable_to(2, 1);
        assert_eq!(log.persisted_index(), 2);
    }

    #[test]
    fn unstable_snapshot_is_handed_out_once_and_dropped_when_stable() {
        let mut log = log_with(&ents(&[(1, 1)]), &[]);
        log.restore(snap(5, 2));
        assert!(log.has_next_unstable_snapshot());
        assert_eq!(log.next_unstable_snapshot(), Some(&snap(5, 2)));
        log.accept_unstable();
        assert!(!log.has_next_unstable_snapshot());
        assert_eq!(log.next_unstable_snapshot(), None);
        log.stable_snap_to(4);
        assert!(log.unstable.snapshot.is_some());
        log.stable_snap_to(5);
        assert!(log.unstable.snapshot.is_none());
    }

    #[test]
    fn committed_entries_wait_until_persisted() {
        let mut log = log_with(&ents(&[(1, 1), (2, 1)]), &ents(&[(3, 1), (4, 1)]));
        log.commit_to(4);
        assert_eq!(log.persisted_index(), 2);
        assert_eq!(log.max_appliable_index(), 2);
        assert_eq!(log.next_committed_ents(), ents(&[(1, 1), (2, 1)]));
        persist_all(&mut log);
        assert_eq!(log.max_appliable_index(), 4);
        assert_eq!(
            log.next_committed_ents(),
            ents(&[(1, 1), (2, 1), (3, 1), (4, 1)])
        );
    }

    #[test]
    fn max_appliable_index_is_bounded_by_committed() {
        let mut log = log_with(&ents(&[(1, 1), (2, 1), (3, 1)]), &[]);
        assert_eq!(log.max_appliable_index(), 0);
        log.commit_to(2);
        assert_eq!(log.max_appliable_index(), 2);
        assert_eq!(log.persisted_index(), 3);
    }

    #[test]
    fn committed_entries_are_handed_out_from_applying() {
        let mut log = log_with(&ents(&[(1, 1), (2, 1), (3, 1), (4, 1)]), &[]);
        assert!(!log.has_next_committed_ents());
        assert!(log.next_committed_ents().is_empty());
        log.commit_to(3);
        assert!(log.has_next_committed_ents());
        assert_eq!(log.next_committed_ents(), ents(&[(1, 1), (2, 1), (3, 1)]));
        log.accept_applying(3);
        assert!(!log.has_next_committed_ents());
        assert!(log.next_committed_ents().is_empty());
        log.commit_to(4);
        assert_eq!(log.next_committed_ents(), ents(&[(4, 1)]));
        // Applying again from an earlier index is the host's prerogative.
        log.applied_to(2);
        assert_eq!((log.applied, log.applying), (2, 3));
    }

    #[test]
    fn next_committed_ents_respects_max_applying_bytes() {
        let store = MemStorage::new();
        let all: Vec<Entry> = (1..=5).map(|i| big(i, 1)).collect();
        store.wl().append(&all).unwrap();
        let one = entry_size(&all[0]);
        let mut log = RaftLog::new(store, one * 2).unwrap();
        log.commit_to(5);
        assert_eq!(log.next_committed_ents(), all[..2].to_vec());
        log.accept_applying(2);
        assert_eq!(log.next_committed_ents(), all[2..4].to_vec());
        log.accept_applying(4);
        assert_eq!(log.next_committed_ents(), all[4..].to_vec());
        log.accept_applying(5);
        assert!(!log.has_next_committed_ents());
    }

    #[test]
    fn next_committed_ents_hands_out_one_entry_larger_than_the_cap() {
        let store = MemStorage::new();
        store.wl().append(&[big(1, 1), big(2, 1)]).unwrap();
        let mut log = RaftLog::new(store, 1).unwrap();
        log.commit_to(2);
        assert_eq!(log.next_committed_ents(), vec![big(1, 1)]);
    }

    #[test]
    fn no_committed_entries_while_an_unstable_snapshot_waits() {
        let mut log = log_with(&[], &[]);
        log.restore(snap(5, 1));
        log.append(&ents(&[(6, 1)]));
        log.commit_to(6);
        assert!(!log.has_next_committed_ents());
        assert!(log.next_committed_ents().is_empty());
        persist_all(&mut log);
        // Persisting the snapshot applied it; entry 6 follows.
        assert_eq!((log.applied, log.applying), (5, 5));
        assert!(log.has_next_committed_ents());
        assert_eq!(log.next_committed_ents(), ents(&[(6, 1)]));
    }

    #[test]
    fn stable_snap_to_counts_the_snapshot_as_applied() {
        let mut log = log_with(&ents(&[(1, 1), (2, 1)]), &[]);
        log.commit_to(2);
        log.applied_to(1);
        log.restore(snap(8, 2));
        log.accept_unstable();
        // A report for another snapshot changes nothing.
        log.stable_snap_to(7);
        assert_eq!((log.applied, log.applying), (1, 1));
        log.store.wl().apply_snapshot(snap(8, 2)).unwrap();
        log.stable_snap_to(8);
        assert_eq!((log.applied, log.applying, log.committed), (8, 8, 8));
        assert!(!log.has_next_committed_ents());
        // A repeated report is harmless.
        log.stable_snap_to(8);
        assert_eq!(log.applied, 8);
    }

    #[test]
    #[should_panic(expected = "beyond committed")]
    fn accept_applying_beyond_committed_panics() {
        let mut log = log_with(&ents(&[(1, 1), (2, 1)]), &[]);
        log.commit_to(1);
        log.accept_applying(2);
    }

    #[test]
    fn applied_to_raises_applying_with_it() {
        let mut log = log_with(&ents(&[(1, 1), (2, 1), (3, 1)]), &[]);
        log.commit_to(3);
        log.applied_to(2);
        assert_eq!((log.applied, log.applying), (2, 2));
        log.accept_applying(3);
        log.applied_to(2);
        assert_eq!((log.applied, log.applying), (2, 3));
        log.applied_to(0);
        assert_eq!(log.applied, 2, "index 0 is ignored");
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn applied_to_below_applied_panics() {
        let mut log = log_with(&ents(&[(1, 1), (2, 1)]), &[]);
        log.commit_to(2);
        log.applied_to(2);
        log.applied_to(1);
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn applied_to_beyond_committed_panics() {
        let mut log = log_with(&ents(&[(1, 1), (2, 1)]), &[]);
        log.commit_to(1);
        log.applied_to(2);
    }

    #[test]
    fn snapshot_prefers_the_unstable_one() {
        let mut log = log_with(&ents(&[(1, 1), (2, 1)]), &[]);
        log.store
            .wl()
            .create_snapshot(2, None, Bytes::from_static(b"s"))
            .unwrap();
        assert_eq!(log.snapshot().unwrap().index(), 2);
        log.restore(snap(7, 3));
        assert_eq!(log.snapshot().unwrap(), snap(7, 3));
    }

    #[test]
    fn snapshot_older_than_the_compacted_prefix_is_temporarily_unavailable() {
        let log = log_with(&ents(&[(1, 1), (2, 1), (3, 1)]), &[]);
        log.store
            .wl()
            .create_snapshot(2, None, Bytes::new())
            .unwrap();
        log.store.wl().compact(3).unwrap();
        assert_eq!(log.snapshot().unwrap().index(), 2);
        log.store.wl().compact(4).unwrap();
        let err = Error::Store(StorageError::SnapshotTemporarilyUnavailable);
        assert_eq!(log.snapshot(), Err(err));
    }

    #[test]
    fn entries_run_from_low_to_the_last_index() {
        let log = log_with(&ents(&[(1, 1), (2, 1)]), &ents(&[(3, 2)]));
        assert_eq!(log.entries(2, NO_LIMIT).unwrap(), ents(&[(2, 1), (3, 2)]));
        assert_eq!(log.entries(3, NO_LIMIT).unwrap(), ents(&[(3, 2)]));
        assert!(log.entries(4, NO_LIMIT).unwrap().is_empty());
        assert_eq!(log.entries(1, 0).unwrap(), ents(&[(1, 1)]));
    }

    #[test]
    fn entries_below_the_first_index_are_compacted() {
        let log = log_after_snapshot(3, 1, &ents(&[(4, 1)]), &[]);
        assert_eq!(log.entries(3, NO_LIMIT), Err(compacted()));
        assert_eq!(log.entries(4, NO_LIMIT).unwrap(), ents(&[(4, 1)]));
    }

    #[test]
    fn all_entries_spans_storage_and_unstable() {
        let log = log_after_snapshot(2, 1, &ents(&[(3, 1), (4, 2)]), &ents(&[(5, 2), (6, 3)]));
        assert_eq!(log.all_entries(), ents(&[(3, 1), (4, 2), (5, 2), (6, 3)]));
        assert!(log_with(&[], &[]).all_entries().is_empty());
    }

    #[test]
    fn slice_draws_from_storage_then_unstable() {
        let log = log_after_snapshot(2, 1, &ents(&[(3, 1), (4, 2)]), &ents(&[(5, 2), (6, 3)]));
        let cases = [
            ((3, 3), vec![]),
            ((3, 4), ents(&[(3, 1)])),
            ((3, 5), ents(&[(3, 1), (4, 2)])),
            ((3, 6), ents(&[(3, 1), (4, 2), (5, 2)])),
            ((4, 7), ents(&[(4, 2), (5, 2), (6, 3)])),
            ((5, 7), ents(&[(5, 2), (6, 3)])),
            ((6, 7), ents(&[(6, 3)])),
            ((7, 7), vec![]),
        ];
        for ((lo, hi), want) in cases {
            assert_eq!(
                log.slice(lo, hi, NO_LIMIT).unwrap(),
                want,
                "slice [{lo}, {hi})"
            );
        }
    }

    #[test]
    fn slice_caps_bytes_across_the_storage_and_unstable_boundary() {
        let store = MemStorage::new();
        store.wl().append(&[big(1, 1), big(2, 1)]).unwrap();
        let mut log = RaftLog::new(store, NO_LIMIT).unwrap();
        log.append(&[big(3, 1), big(4, 1)]);
        let one = entry_size(&big(1, 1));
        let indexes = |v: Vec<Entry>| v.iter().map(|e| e.index).collect::<Vec<_>>();
        // Cap inside the storage part.
        assert_eq!(indexes(log.slice(1, 5, one).unwrap()), [1]);
        assert_eq!(indexes(log.slice(1, 5, one * 2 - 1).unwrap()), [1]);
        // Cap inside the unstable part.
        assert_eq!(indexes(log.slice(1, 5, one * 3).unwrap()), [1, 2, 3]);
        assert_eq!(indexes(log.slice(1, 5, one * 4 - 1).unwrap()), [1, 2, 3]);
        assert_eq!(indexes(log.slice(1, 5, one * 4).unwrap()), [1, 2, 3, 4]);
        // Purely unstable, and always at least one entry.
        assert_eq!(indexes(log.slice(3, 5, one).unwrap()), [3]);
        assert_eq!(indexes(log.slice(3, 5, 0).unwrap()), [3]);
        assert_eq!(indexes(log.slice(2, 5, 0).unwrap()), [2]);
    }

    #[test]
    fn slice_below_the_first_index_is_compacted() {
        let log = log_after_snapshot(3, 1, &ents(&[(4, 1)]), &ents(&[(5, 1)]));
        assert_eq!(log.slice(3, 5, NO_LIMIT), Err(compacted()));
        assert_eq!(log.slice(1, 1, NO_LIMIT), Err(compacted()));
    }

    #[test]
    #[should_panic(expected = "out of bound")]
    fn slice_beyond_the_last_index_panics() {
        let log = log_with(&ents(&[(1, 1)]), &ents(&[(2, 1)]));
        let _ = log.slice(1, 4, NO_LIMIT);
    }

    #[test]
    #[should_panic(expected = "low > high")]
    fn slice_with_low_above_high_panics() {
        let log = log_with(&ents(&[(1, 1), (2, 1)]), &[]);
        let _ = log.slice(2, 1, NO_LIMIT);
    }

    #[test]
    fn restore_commits_through_the_snapshot_and_drops_unstable_entries() {
        let mut log = log_with(&ents(&[(1, 1), (2, 1)]), &ents(&[(3, 1)]));
        log.commit_to(1);
        log.applied_to(1);
        log.restore(snap(10, 4));
        assert_eq!(log.committed, 10);
        assert_eq!((log.applied, log.applying), (1, 1));
        assert_eq!(log.first_index(), 11);
        assert_eq!(log.last_index(), 10);
        assert_eq!(log.last_term(), 4);
        assert_eq!(log.unstable.offset, 11);
        assert!(log.unstable.entries.is_empty());
        assert_eq!(log.persisted_index(), 10);
        assert!(log.all_entries().is_empty());
        // The log carries on after the snapshot once it is persisted.
        persist_all(&mut log);
        log.append(&ents(&[(11, 4)]));
        assert_eq!(log.all_entries(), ents(&[(11, 4)]));
        assert_eq!(log.store.first_index().unwrap(), 11);
    }

    #[test]
    #[should_panic(expected = "below commit index")]
    fn restore_below_the_commit_index_panics() {
        let mut log = log_with(&ents(&[(1, 1), (2, 1)]), &[]);
        log.commit_to(2);
        log.restore(snap(1, 1));
    }

    #[test]
    fn host_round_trip_keeps_storage_and_log_in_step() {
        let mut log = log_with(&[], &[]);
        for round in 1..=3u64 {
            let base = log.last_index();
            log.append(&[ent(base + 1, round), ent(base + 2, round)]);
            persist_all(&mut log);
            log.commit_to(log.last_index());
            let applied = log.next_committed_ents();
            let last = applied.last().expect("entries to apply").index;
            log.accept_applying(last);
            log.applied_to(last);
        }
        assert_eq!(log.last_index(), 6);
        assert_eq!(log.store.last_index().unwrap(), 6);
        assert_eq!((log.committed, log.applying, log.applied), (6, 6, 6));
        assert!(log.unstable.entries.is_empty());
        assert_eq!(
            log.all_entries(),
            ents(&[(1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (6, 3)])
        );
    }
}
