//! The `Storage` trait through which raft reads its stable log, and
//! `MemStorage`, an in-memory implementation for tests and examples.

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use flotilla_proto::raftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};

use crate::errors::{Error, Result, StorageError};
use crate::util::limit_size;

/// What a peer recovers from storage when it starts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RaftState {
    /// The last persisted term, vote and commit index.
    pub hard_state: HardState,
    /// The last persisted membership.
    pub conf_state: ConfState,
}

/// Read access to a group's stable log. Raft never writes through this trait:
/// the host persists what `Ready` hands it, then reports it.
///
/// Entries are numbered from `first_index()` to `last_index()`; the entry just
/// before `first_index()` has been compacted but its term is still known
/// (`term(first_index() - 1)` succeeds).
pub trait Storage {
    /// The persisted hard state and membership.
    fn initial_state(&self) -> Result<RaftState>;
    /// Entries in `[low, high)`, their total size capped at `max_bytes`
    /// (at least one entry is returned when the range is non-empty).
    /// `StorageError::Compacted` if `low < first_index()`; panics if
    /// `high > last_index() + 1`.
    fn entries(&self, low: u64, high: u64, max_bytes: u64) -> Result<Vec<Entry>>;
    /// The term of the entry at `index`, for `index` in
    /// `[first_index() - 1, last_index()]`. `Compacted` below, `Unavailable` above.
    fn term(&self, index: u64) -> Result<u64>;
    /// The index of the first entry still available.
    fn first_index(&self) -> Result<u64>;
    /// The index of the last entry.
    fn last_index(&self) -> Result<u64>;
    /// The most recent snapshot, at an index of at least `request_index`.
    /// `SnapshotTemporarilyUnavailable` if it is not ready yet.
    fn snapshot(&self, request_index: u64) -> Result<Snapshot>;
}

/// The state behind a [`MemStorage`].
///
/// The log is kept as a compaction point (the index and term of the last
/// discarded entry) followed by the entries still held. The latest snapshot
/// (created or applied) is kept apart from the compaction point, as a host
/// may take a snapshot without discarding entries, or discard entries past
/// its last snapshot.
#[derive(Debug)]
pub struct MemStorageCore {
    hard_state: HardState,
    // The latest snapshot, created or applied: what `snapshot()` serves. Its
    // metadata also holds the membership that `initial_state` reports.
    // Invariant: `snapshot.metadata` is always `Some`.
    snapshot: Snapshot,
    // Index and term of the entry just before `entries[0]`: the last entry
    // discarded by compaction or covered by an applied snapshot, (0, 0) when
    // nothing was ever discarded. `term(compacted_index)` reads it.
    compacted_index: u64,
    compacted_term: u64,
    // Invariant: `entries[i].index == compacted_index + 1 + i`.
    entries: Vec<Entry>,
    // When set, the next `snapshot()` call fails once with
    // `SnapshotTemporarilyUnavailable`.
    trigger_snap_unavailable: bool,
}

impl Default for MemStorageCore {
    fn default() -> Self {
        Self {
            hard_state: HardState::default(),
            snapshot: Snapshot {
                data: Bytes::new(),
                metadata: Some(SnapshotMetadata::default()),
            },
            compacted_index: 0,
            compacted_term: 0,
            entries: Vec::new(),
            trigger_snap_unavailable: false,
        }
    }
}

impl MemStorageCore {
    /// The stored hard state.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// Replaces the stored hard state.
    pub fn set_hard_state(&mut self, hs: HardState) {
        self.hard_state = hs;
    }

    /// Replaces the stored membership (kept in the snapshot metadata, which
    /// is where `initial_state` reads it).
    pub fn set_conf_state(&mut self, cs: ConfState) {
        self.metadata_mut().conf_state = Some(cs);
    }

    /// Records `index` as the commit index of the hard state.
    /// `StorageError::Unavailable` if `index` is beyond the last entry.
    pub fn commit_to(&mut self, index: u64) -> Result<()> {
        if index > self.last_index() {
            return Err(Error::Store(StorageError::Unavailable));
        }
        self.hard_state.commit = index;
        Ok(())
    }

    /// The metadata of the latest snapshot (index 0 when there is none).
    pub fn snapshot_metadata(&self) -> &SnapshotMetadata {
        self.snapshot
            .metadata
            .as_ref()
            .expect("MemStorageCore invariant: snapshot metadata is always present")
    }

    fn metadata_mut(&mut self) -> &mut SnapshotMetadata {
        self.snapshot
            .metadata
            .get_or_insert_with(SnapshotMetadata::default)
    }

    /// The index of the first entry still held (one past the compaction point).
    pub fn first_index(&self) -> u64 {
        self.compacted_index + 1
    }

    /// The index of the last entry (the compaction point when no entry is held).
    pub fn last_index(&self) -> u64 {
        self.compacted_index + self.entries.len() as u64
    }

    /// The entries still held, from `first_index()` to `last_index()`.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Makes the next `snapshot()` call fail once with
    /// `SnapshotTemporarilyUnavailable`, as a host still generating one would.
    pub fn trigger_snapshot_unavailable(&mut self) {
        self.trigger_snap_unavailable = true;
    }

    fn term(&self, index: u64) -> Result<u64> {
        if index < self.compacted_index {
            return Err(Error::Store(StorageError::Compacted));
        }
        if index > self.last_index() {
            return Err(Error::Store(StorageError::Unavailable));
        }
        if index == self.compacted_index {
            return Ok(self.compacted_term);
        }
        Ok(self.entries[(index - self.first_index()) as usize].term)
    }

    /// Appends `ents`, which must be contiguous. Entries that overlap the log
    /// replace it from the first overlapping index on; entries below
    /// `first_index()` (already compacted) are skipped.
    ///
    /// # Panics
    ///
    /// If `ents` would leave a gap after `last_index()`.
    pub fn append(&mut self, ents: &[Entry]) -> Result<()> {
        let (Some(first), Some(last)) = (ents.first(), ents.last()) else {
            return Ok(());
        };
        let first_index = self.first_index();
        if last.index < first_index {
            // Everything given is already covered by the compaction point.
            return Ok(());
        }
        assert!(
            first.index <= self.last_index() + 1,
            "MemStorage: appending entries [{}, {}] would leave a gap after last index {}",
            first.index,
            last.index,
            self.last_index()
        );
        // Skip the part that compaction already covers.
        let skip = first_index.saturating_sub(first.index) as usize;
        let ents = &ents[skip..];
        let keep = (ents[0].index - first_index) as usize;
        self.entries.truncate(keep);
        self.entries.extend_from_slice(ents);
        Ok(())
    }

    /// Replaces the whole log with `snapshot`: every entry is dropped, the
    /// compaction point moves to the snapshot, and the hard state's commit
    /// and term are raised to the snapshot's if they were lower.
    /// `SnapshotOutOfDate` if `snapshot` is not newer than the stored one.
    pub fn apply_snapshot(&mut self, mut snapshot: Snapshot) -> Result<()> {
        let (index, term) = (snapshot.index(), snapshot.term());
        if index <= self.snapshot_metadata().index {
            return Err(Error::Store(StorageError::SnapshotOutOfDate));
        }
        let meta = snapshot
            .metadata
            .get_or_insert_with(SnapshotMetadata::default);
        if meta.conf_state.is_none() {
            meta.conf_state = self.snapshot_metadata().conf_state.clone();
        }
        self.snapshot = snapshot;
        self.compacted_index = index;
        self.compacted_term = term;
        self.entries.clear();
        self.hard_state.commit = self.hard_state.commit.max(index);
        self.hard_state.term = self.hard_state.term.max(term);
        Ok(())
    }

    /// Discards the entries before `compact_index`, so that `first_index()`
    /// becomes `compact_index`. A no-op when they are already discarded.
    /// The stored snapshot is left alone.
    ///
    /// # Panics
    ///
    /// If `compact_index > last_index() + 1`.
    pub fn compact(&mut self, compact_index: u64) -> Result<()> {
        let first_index = self.first_index();
        if compact_index <= first_index {
            return Ok(());
        }
        assert!(
            compact_index <= self.last_index() + 1,
            "MemStorage: compact index {compact_index} is beyond last index {}",
            self.last_index()
        );
        let drop = (compact_index - first_index) as usize;
        self.compacted_term = self.entries[drop - 1].term;
        self.compacted_index = compact_index - 1;
        self.entries.drain(..drop);
        Ok(())
    }

    /// Records a snapshot of the state at `index` with `data`, the membership
    /// `cs` (the current one when `None`) and the term of the entry at
    /// `index`, and returns it. Entries are not discarded: call
    /// [`compact`](Self::compact) for that.
    ///
    /// `SnapshotOutOfDate` if `index` is not past the stored snapshot;
    /// `Compacted` if the entry at `index` was discarded.
    ///
    /// # Panics
    ///
    /// If `index > last_index()`.
    pub fn create_snapshot(
        &mut self,
        index: u64,
        cs: Option<ConfState>,
        data: Bytes,
    ) -> Result<Snapshot> {
        if index <= self.snapshot_metadata().index {
            return Err(Error::Store(StorageError::SnapshotOutOfDate));
        }
        assert!(
            index <= self.last_index(),
            "MemStorage: snapshot index {index} is beyond last index {}",
            self.last_index()
        );
        let term = self.term(index)?;
        let conf_state = cs.or_else(|| self.snapshot_metadata().conf_state.clone());
        self.snapshot = Snapshot {
            data,
            metadata: Some(SnapshotMetadata {
                conf_state,
                index,
                term,
            }),
        };
        Ok(self.snapshot.clone())
    }
}

/// An in-memory [`Storage`], cheap to clone: clones share one log, so a test
/// can hold a handle while a `RawNode` owns another.
#[derive(Debug, Clone, Default)]
pub struct MemStorage {
    core: Arc<RwLock<MemStorageCore>>,
}

impl MemStorage {
    /// An empty storage: no entries, no snapshot, empty membership.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty storage whose recorded membership is `cs`, the way a new
    /// group is bootstrapped. The log still starts at index 1.
    pub fn new_with_conf_state(cs: ConfState) -> Self {
        let store = Self::new();
        store.wl().set_conf_state(cs);
        store
    }

    /// Locks the state for reading.
    pub fn rl(&self) -> RwLockReadGuard<'_, MemStorageCore> {
        self.core.read()
    }

    /// Locks the state for writing.
    pub fn wl(&self) -> RwLockWriteGuard<'_, MemStorageCore> {
        self.core.write()
    }

    /// Persists what a `Ready` hands out, in the order raft requires:
    /// snapshot, then entries, then hard state. This is how tests and
    /// examples play the host.
    pub fn persist_ready(&self, rd: &crate::Ready) -> Result<()> {
        let mut core = self.wl();
        if let Some(snap) = &rd.snapshot {
            core.apply_snapshot(snap.clone())?;
        }
        if !rd.entries.is_empty() {
            core.append(&rd.entries)?;
        }
        if let Some(hs) = rd.hard_state {
            core.set_hard_state(hs);
        }
        Ok(())
    }
}

impl Storage for MemStorage {
    fn initial_state(&self) -> Result<RaftState> {
        let core = self.rl();
        Ok(RaftState {
            hard_state: core.hard_state,
            conf_state: core
                .snapshot_metadata()
                .conf_state
                .clone()
                .unwrap_or_default(),
        })
    }

    fn entries(&self, low: u64, high: u64, max_bytes: u64) -> Result<Vec<Entry>> {
        let core = self.rl();
        if low < core.first_index() {
            return Err(Error::Store(StorageError::Compacted));
        }
        assert!(
            low <= high && high <= core.last_index() + 1,
            "MemStorage: entries [{low}, {high}) out of bounds [{}, {}]",
            core.first_index(),
            core.last_index()
        );
        let lo = (low - core.first_index()) as usize;
        let hi = (high - core.first_index()) as usize;
        let mut ents = core.entries[lo..hi].to_vec();
        limit_size(&mut ents, max_bytes);
        Ok(ents)
    }

    fn term(&self, index: u64) -> Result<u64> {
        self.rl().term(index)
    }

    fn first_index(&self) -> Result<u64> {
        Ok(self.rl().first_index())
    }

    fn last_index(&self) -> Result<u64> {
        Ok(self.rl().last_index())
    }

    fn snapshot(&self, request_index: u64) -> Result<Snapshot> {
        let mut core = self.wl();
        if core.trigger_snap_unavailable {
            core.trigger_snap_unavailable = false;
            return Err(Error::Store(StorageError::SnapshotTemporarilyUnavailable));
        }
        if core.snapshot.index() < request_index {
            return Err(Error::Store(StorageError::SnapshotTemporarilyUnavailable));
        }
        Ok(core.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NO_LIMIT;
    use crate::util::entry_size;

    fn ent(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    fn ents(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
        range.map(|i| ent(i, term)).collect()
    }

    fn voters(ids: &[u64]) -> ConfState {
        ConfState {
            voters: ids.to_vec(),
            ..Default::default()
        }
    }

    /// Entries 1..=5 with terms 1, 1, 2, 2, 3.
    fn store_1_to_5() -> MemStorage {
        let s = MemStorage::new();
        s.wl()
            .append(&[ent(1, 1), ent(2, 1), ent(3, 2), ent(4, 2), ent(5, 3)])
            .unwrap();
        s
    }

    fn store_err(kind: StorageError) -> Error {
        Error::Store(kind)
    }

    #[test]
    fn new_storage_is_empty_and_knows_term_zero() {
        let s = MemStorage::new();
        assert_eq!(s.first_index().unwrap(), 1);
        assert_eq!(s.last_index().unwrap(), 0);
        assert_eq!(s.term(0).unwrap(), 0);
        assert_eq!(s.term(1), Err(store_err(StorageError::Unavailable)));
        assert_eq!(s.entries(1, 1, NO_LIMIT).unwrap(), vec![]);
        assert_eq!(s.initial_state().unwrap(), RaftState::default());
        assert!(s.snapshot(0).unwrap().is_empty());
    }

    #[test]
    fn new_with_conf_state_reports_it_in_initial_state() {
        let s = MemStorage::new_with_conf_state(voters(&[1, 2, 3]));
        let st = s.initial_state().unwrap();
        assert_eq!(st.conf_state, voters(&[1, 2, 3]));
        assert_eq!(st.hard_state, HardState::default());
        assert_eq!(s.first_index().unwrap(), 1);
        assert_eq!(s.last_index().unwrap(), 0);
    }

    #[test]
    fn term_covers_compaction_point_to_last_index() {
        let s = store_1_to_5();
        s.wl().compact(3).unwrap();
        assert_eq!(s.term(1), Err(store_err(StorageError::Compacted)));
        assert_eq!(s.term(2).unwrap(), 1);
        assert_eq!(s.term(3).unwrap(), 2);
        assert_eq!(s.term(5).unwrap(), 3);
        assert_eq!(s.term(6), Err(store_err(StorageError::Unavailable)));
    }

    #[test]
    fn entries_returns_the_half_open_range() {
        let s = store_1_to_5();
        assert_eq!(
            s.entries(2, 4, NO_LIMIT).unwrap(),
            vec![ent(2, 1), ent(3, 2)]
        );
        assert_eq!(s.entries(3, 3, NO_LIMIT).unwrap(), vec![]);
        assert_eq!(s.entries(1, 6, NO_LIMIT).unwrap().len(), 5);
    }

    #[test]
    fn entries_below_first_index_are_compacted() {
        let s = store_1_to_5();
        s.wl().compact(3).unwrap();
        assert_eq!(
            s.entries(2, 4, NO_LIMIT),
            Err(store_err(StorageError::Compacted))
        );
        assert_eq!(s.entries(3, 4, NO_LIMIT).unwrap(), vec![ent(3, 2)]);
    }

    #[test]
    fn entries_respects_max_bytes_but_returns_at_least_one() {
        let s = store_1_to_5();
        let one = entry_size(&ent(1, 1));
        assert_eq!(s.entries(1, 6, 0).unwrap().len(), 1);
        assert_eq!(s.entries(1, 6, one * 2).unwrap().len(), 2);
        assert_eq!(s.entries(1, 6, one * 3 - 1).unwrap().len(), 2);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn entries_beyond_last_index_panics() {
        let _ = store_1_to_5().entries(4, 7, NO_LIMIT);
    }

    #[test]
    fn append_extends_the_log() {
        let s = store_1_to_5();
        s.wl().append(&[ent(6, 3), ent(7, 4)]).unwrap();
        assert_eq!(s.last_index().unwrap(), 7);
        assert_eq!(s.term(7).unwrap(), 4);
    }

    #[test]
    fn append_truncates_overlapping_entries() {
        let s = store_1_to_5();
        s.wl().append(&[ent(3, 5), ent(4, 5)]).unwrap();
        assert_eq!(
            s.rl().entries(),
            &[ent(1, 1), ent(2, 1), ent(3, 5), ent(4, 5)]
        );
        s.wl().append(&[ent(1, 6)]).unwrap();
        assert_eq!(s.rl().entries(), &[ent(1, 6)]);
    }

    #[test]
    fn append_skips_entries_already_compacted() {
        let s = store_1_to_5();
        s.wl().compact(4).unwrap();
        // Wholly below the first index: nothing happens.
        s.wl().append(&[ent(2, 9), ent(3, 9)]).unwrap();
        assert_eq!(s.rl().entries(), &[ent(4, 2), ent(5, 3)]);
        // Straddling it: only the part from the first index on is applied.
        s.wl()
            .append(&[ent(3, 9), ent(4, 9), ent(5, 9), ent(6, 9)])
            .unwrap();
        assert_eq!(s.rl().entries(), &[ent(4, 9), ent(5, 9), ent(6, 9)]);
        assert_eq!(s.term(3).unwrap(), 2);
    }

    #[test]
    fn append_of_nothing_is_a_no_op() {
        let s = store_1_to_5();
        s.wl().append(&[]).unwrap();
        assert_eq!(s.last_index().unwrap(), 5);
    }

    #[test]
    #[should_panic(expected = "gap")]
    fn append_with_a_gap_panics() {
        let s = store_1_to_5();
        let _ = s.wl().append(&[ent(7, 3)]);
    }

    #[test]
    fn compact_moves_the_first_index() {
        let s = store_1_to_5();
        s.wl().compact(4).unwrap();
        assert_eq!(s.first_index().unwrap(), 4);
        assert_eq!(s.last_index().unwrap(), 5);
        assert_eq!(s.term(3).unwrap(), 2);
        // Compacting everything keeps the term of the last entry.
        s.wl().compact(6).unwrap();
        assert_eq!(s.first_index().unwrap(), 6);
        assert_eq!(s.last_index().unwrap(), 5);
        assert_eq!(s.term(5).unwrap(), 3);
        assert!(s.rl().entries().is_empty());
    }

    #[test]
    fn compact_at_or_below_first_index_is_a_no_op() {
        let s = store_1_to_5();
        s.wl().compact(3).unwrap();
        s.wl().compact(3).unwrap();
        s.wl().compact(1).unwrap();
        assert_eq!(s.first_index().unwrap(), 3);
        assert_eq!(s.rl().entries().len(), 3);
    }

    #[test]
    #[should_panic(expected = "beyond last index")]
    fn compact_beyond_last_index_plus_one_panics() {
        let _ = store_1_to_5().wl().compact(7);
    }

    #[test]
    fn create_snapshot_records_index_term_and_membership_without_compacting() {
        let s = store_1_to_5();
        let snap = s
            .wl()
            .create_snapshot(4, Some(voters(&[1, 2])), Bytes::from_static(b"d"))
            .unwrap();
        assert_eq!(
            snap.metadata,
            Some(SnapshotMetadata::new(4, 2, voters(&[1, 2])))
        );
        assert_eq!(snap.data, Bytes::from_static(b"d"));
        assert_eq!(s.first_index().unwrap(), 1);
        assert_eq!(s.snapshot(4).unwrap(), snap);
        assert_eq!(s.initial_state().unwrap().conf_state, voters(&[1, 2]));
        // Without a membership the current one is kept.
        let snap = s.wl().create_snapshot(5, None, Bytes::new()).unwrap();
        assert_eq!(
            snap.metadata,
            Some(SnapshotMetadata::new(5, 3, voters(&[1, 2])))
        );
    }

    #[test]
    fn create_snapshot_not_newer_than_stored_is_out_of_date() {
        let s = store_1_to_5();
        s.wl().create_snapshot(3, None, Bytes::new()).unwrap();
        let err = s.wl().create_snapshot(3, None, Bytes::new());
        assert_eq!(err, Err(store_err(StorageError::SnapshotOutOfDate)));
        let err = s.wl().create_snapshot(2, None, Bytes::new());
        assert_eq!(err, Err(store_err(StorageError::SnapshotOutOfDate)));
    }

    #[test]
    fn create_snapshot_of_a_discarded_entry_is_compacted() {
        let s = store_1_to_5();
        s.wl().compact(5).unwrap();
        let err = s.wl().create_snapshot(3, None, Bytes::new());
        assert_eq!(err, Err(store_err(StorageError::Compacted)));
        // The compaction point itself still has a known term.
        assert_eq!(
            s.wl()
                .create_snapshot(4, None, Bytes::new())
                .unwrap()
                .term(),
            2
        );
    }

    #[test]
    #[should_panic(expected = "beyond last index")]
    fn create_snapshot_beyond_last_index_panics() {
        let _ = store_1_to_5().wl().create_snapshot(6, None, Bytes::new());
    }

    #[test]
    fn apply_snapshot_replaces_the_log_and_raises_the_hard_state() {
        let s = store_1_to_5();
        s.wl().set_hard_state(HardState {
            term: 3,
            vote: 2,
            commit: 4,
        });
        let snap = Snapshot {
            data: Bytes::from_static(b"state"),
            metadata: Some(SnapshotMetadata::new(10, 4, voters(&[1, 2, 3]))),
        };
        s.wl().apply_snapshot(snap.clone()).unwrap();
        assert_eq!(s.first_index().unwrap(), 11);
        assert_eq!(s.last_index().unwrap(), 10);
        assert_eq!(s.term(10).unwrap(), 4);
        assert_eq!(s.term(9), Err(store_err(StorageError::Compacted)));
        assert_eq!(
            *s.rl().hard_state(),
            HardState {
                term: 4,
                vote: 2,
                commit: 10
            }
        );
        assert_eq!(s.snapshot(10).unwrap(), snap);
        assert_eq!(s.initial_state().unwrap().conf_state, voters(&[1, 2, 3]));
        // The log continues after the snapshot.
        s.wl().append(&[ent(11, 4)]).unwrap();
        assert_eq!(s.entries(11, 12, NO_LIMIT).unwrap(), vec![ent(11, 4)]);
    }

    #[test]
    fn apply_snapshot_keeps_higher_hard_state_values() {
        let s = MemStorage::new();
        s.wl().set_hard_state(HardState {
            term: 9,
            vote: 1,
            commit: 0,
        });
        let snap = Snapshot {
            metadata: Some(SnapshotMetadata::new(3, 2, voters(&[1]))),
            ..Default::default()
        };
        s.wl().apply_snapshot(snap).unwrap();
        assert_eq!(
            *s.rl().hard_state(),
            HardState {
                term: 9,
                vote: 1,
                commit: 3
            }
        );
    }

    #[test]
    fn apply_snapshot_not_newer_than_stored_is_out_of_date() {
        let s = MemStorage::new();
        let snap = |index| Snapshot {
            metadata: Some(SnapshotMetadata::new(index, 1, voters(&[1]))),
            ..Default::default()
        };
        s.wl().apply_snapshot(snap(5)).unwrap();
        let out_of_date = Err(store_err(StorageError::SnapshotOutOfDate));
        assert_eq!(s.wl().apply_snapshot(snap(5)), out_of_date);
        assert_eq!(s.wl().apply_snapshot(snap(4)), out_of_date);
        assert_eq!(s.wl().apply_snapshot(Snapshot::default()), out_of_date);
        assert_eq!(s.first_index().unwrap(), 6);
    }

    #[test]
    fn snapshot_older_than_requested_is_temporarily_unavailable() {
        let s = store_1_to_5();
        s.wl().create_snapshot(3, None, Bytes::new()).unwrap();
        assert_eq!(s.snapshot(3).unwrap().index(), 3);
        assert_eq!(s.snapshot(0).unwrap().index(), 3);
        assert_eq!(
            s.snapshot(4),
            Err(store_err(StorageError::SnapshotTemporarilyUnavailable))
        );
    }

    #[test]
    fn trigger_snapshot_unavailable_fails_the_next_call_only() {
        let s = store_1_to_5();
        s.wl().trigger_snapshot_unavailable();
        assert_eq!(
            s.snapshot(0),
            Err(store_err(StorageError::SnapshotTemporarilyUnavailable))
        );
        assert!(s.snapshot(0).is_ok());
    }

    #[test]
    fn commit_to_records_the_commit_index_up_to_last_index() {
        let s = store_1_to_5();
        s.wl().commit_to(5).unwrap();
        assert_eq!(s.rl().hard_state().commit, 5);
        assert_eq!(
            s.wl().commit_to(6),
            Err(store_err(StorageError::Unavailable))
        );
        assert_eq!(s.initial_state().unwrap().hard_state.commit, 5);
    }

    #[test]
    fn set_conf_state_is_reported_by_initial_state() {
        let s = store_1_to_5();
        s.wl().set_conf_state(voters(&[4, 5]));
        assert_eq!(s.initial_state().unwrap().conf_state, voters(&[4, 5]));
        assert_eq!(s.rl().snapshot_metadata().conf_state, Some(voters(&[4, 5])));
        assert_eq!(s.rl().snapshot_metadata().index, 0);
    }

    #[test]
    fn clones_share_one_log() {
        let s = MemStorage::new();
        let other = s.clone();
        s.wl().append(&ents(1..=3, 1)).unwrap();
        assert_eq!(other.last_index().unwrap(), 3);
    }
}
