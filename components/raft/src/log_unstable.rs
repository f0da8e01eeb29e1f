//! The unstable tail of the raft log: entries and an incoming snapshot that
//! raft holds in memory until the host reports them durable.
//!
//! Everything here is handed to the host through `Ready` to be persisted.
//! Between the hand-off and the host's report the data is "in progress": it
//! stays here (raft still reads it) but is not handed out a second time.

use flotilla_proto::raftpb::{Entry, Snapshot};

/// Log entries and a snapshot that are not yet known to be durable.
#[derive(Debug, Clone, PartialEq)]
pub struct Unstable {
    /// An incoming snapshot not yet persisted. It covers every index up to
    /// its own, so it comes before all of `entries`.
    pub snapshot: Option<Snapshot>,
    /// Entries not yet persisted.
    /// Invariant: `entries[i].index == offset + i`.
    pub entries: Vec<Entry>,
    /// The index of `entries[0]` (or of the next entry when empty). Right
    /// after a snapshot is restored, `offset == snapshot index + 1`.
    pub offset: u64,
    /// `entries[..offset_in_progress - offset]` were handed to the host to
    /// persist and must not be handed out again.
    /// Invariant: `offset <= offset_in_progress <= offset + entries.len()`.
    pub offset_in_progress: u64,
    /// True when `snapshot` was handed to the host to persist.
    /// Invariant: false when `snapshot` is `None`.
    pub snapshot_in_progress: bool,
}

impl Unstable {
    /// An empty unstable log whose first entry will be at `offset`.
    pub fn new(offset: u64) -> Self {
        Self {
            snapshot: None,
            entries: Vec::new(),
            offset,
            offset_in_progress: offset,
            snapshot_in_progress: false,
        }
    }

    /// The first index of the log, if the unstable snapshot fixes it (one
    /// past the snapshot's index). `None` without a snapshot: the first index
    /// is then the stable storage's business.
    pub fn maybe_first_index(&self) -> Option<u64> {
        self.snapshot.as_ref().map(|s| s.index() + 1)
    }

    /// The last index of the log, if the unstable part holds it: the last
    /// entry's index, else the snapshot's index, else `None`.
    pub fn maybe_last_index(&self) -> Option<u64> {
        match self.entries.last() {
            Some(e) => Some(e.index),
            None => self.snapshot.as_ref().map(Snapshot::index),
        }
    }

    /// The term of the entry at `index`, if the unstable part knows it (the
    /// index is one of its entries or the snapshot's index).
    pub fn maybe_term(&self, index: u64) -> Option<u64> {
        if index < self.offset {
            return self
                .snapshot
                .as_ref()
                .filter(|s| s.index() == index)
                .map(Snapshot::term);
        }
        let pos = usize::try_from(index - self.offset).ok()?;
        self.entries.get(pos).map(|e| e.term)
    }

    /// Entries not yet handed to the host for persisting.
    pub fn next_entries(&self) -> &[Entry] {
        &self.entries[self.in_progress_len()..]
    }

    /// True when [`next_entries`](Self::next_entries) is not empty.
    pub fn has_next_entries(&self) -> bool {
        self.in_progress_len() < self.entries.len()
    }

    /// The snapshot, if there is one not yet handed to the host.
    pub fn next_snapshot(&self) -> Option<&Snapshot> {
        if self.snapshot_in_progress {
            return None;
        }
        self.snapshot.as_ref()
    }

    /// True when [`next_snapshot`](Self::next_snapshot) is `Some`.
    pub fn has_next_snapshot(&self) -> bool {
        self.next_snapshot().is_some()
    }

    /// Marks every current entry and the snapshot as handed to the host, so
    /// they are not handed out again.
    pub fn accept_in_progress(&mut self) {
        self.offset_in_progress = self.offset + self.entries.len() as u64;
        self.snapshot_in_progress = self.snapshot.is_some();
    }

    /// The host reports the entries up to `index`, the last of them with
    /// `term`, durable. Ignored (with a debug log) when `index` is not one of
    /// the unstable entries or its term differs: the entry was replaced after
    /// the host took it, and the newer one is still to be persisted.
    pub fn stable_to(&mut self, index: u64, term: u64) {
        let Some(found) = self.maybe_term(index) else {
            tracing::debug!(
                index,
                term,
                "unstable: stable_to for an index not in the unstable log; ignored"
            );
            return;
        };
        if found != term || index < self.offset {
            tracing::debug!(
                index,
                term,
                found,
                offset = self.offset,
                "unstable: stable_to does not match an unstable entry; ignored"
            );
            return;
        }
        let persisted = (index + 1 - self.offset) as usize;
        self.entries.drain(..persisted);
        self.offset = index + 1;
        self.offset_in_progress = self.offset_in_progress.max(self.offset);
        self.shrink_entries();
        self.check_invariants();
    }

    /// Releases memory when most of `entries`' allocation is unused.
    fn shrink_entries(&mut self) {
        const WASTE_FACTOR: usize = 2;
        if self.entries.is_empty() {
            self.entries = Vec::new();
        } else if self.entries.len() * WASTE_FACTOR < self.entries.capacity() {
            self.entries.shrink_to_fit();
        }
    }

    /// The host reports the snapshot at `index` durable: drop it if it is
    /// still the unstable snapshot.
    pub fn stable_snap_to(&mut self, index: u64) {
        if self.snapshot.as_ref().is_some_and(|s| s.index() == index) {
            self.snapshot = None;
            self.snapshot_in_progress = false;
        }
    }

    /// Replaces everything with `snap`: the log now continues right after it.
    pub fn restore(&mut self, snap: Snapshot) {
        self.offset = snap.index() + 1;
        self.offset_in_progress = self.offset;
        self.entries.clear();
        self.snapshot = Some(snap);
        self.snapshot_in_progress = false;
    }

    /// Appends `ents` (contiguous), first dropping every unstable entry at or
    /// after `ents[0].index`. Entries handed to the host that get replaced
    /// are no longer counted as in progress.
    ///
    /// # Panics
    ///
    /// If `ents` would leave a gap after the last unstable entry.
    pub fn truncate_and_append(&mut self, ents: &[Entry]) {
        let Some(first) = ents.first() else {
            return;
        };
        let after = first.index;
        let end = self.offset + self.entries.len() as u64;
        assert!(
            after <= end,
            "unstable: appending from index {after} would leave a gap after index {} (offset {})",
            end.saturating_sub(1),
            self.offset
        );
        if after == end {
            // The common case: ents directly follow the unstable entries.
            self.entries.extend_from_slice(ents);
        } else if after <= self.offset {
            // Replace every unstable entry; the log now diverges from stable
            // storage at `after`, so persisting restarts from there.
            tracing::info!(
                after,
                offset = self.offset,
                "unstable: replacing unstable entries"
            );
            self.entries.clear();
            self.entries.extend_from_slice(ents);
            self.offset = after;
            self.offset_in_progress = after;
        } else {
            // Keep the prefix before `after`, replace the rest.
            tracing::info!(
                after,
                offset = self.offset,
                "unstable: truncating unstable entries"
            );
            self.entries.truncate((after - self.offset) as usize);
            self.entries.extend_from_slice(ents);
            self.offset_in_progress = self.offset_in_progress.min(after);
        }
        self.check_invariants();
    }

    /// The unstable entries in `[lo, hi)`.
    ///
    /// # Panics
    ///
    /// Unless `offset <= lo <= hi <= offset + entries.len()`.
    pub fn slice(&self, lo: u64, hi: u64) -> &[Entry] {
        let end = self.offset + self.entries.len() as u64;
        assert!(
            self.offset <= lo && lo <= hi && hi <= end,
            "unstable: slice [{lo}, {hi}) out of bounds [{}, {end})",
            self.offset
        );
        &self.entries[(lo - self.offset) as usize..(hi - self.offset) as usize]
    }

    /// How many entries, from the front, are in progress.
    fn in_progress_len(&self) -> usize {
        (self.offset_in_progress - self.offset) as usize
    }

    fn check_invariants(&self) {
        let end = self.offset + self.entries.len() as u64;
        assert!(
            self.offset <= self.offset_in_progress && self.offset_in_progress <= end,
            "unstable: offset_in_progress {} outside [{}, {end}]",
            self.offset_in_progress,
            self.offset
        );
        debug_assert!(
            self.entries.first().is_none_or(|e| e.index == self.offset),
            "unstable: first entry index {:?} differs from offset {}",
            self.entries.first().map(|e| e.index),
            self.offset
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_proto::raftpb::{ConfState, SnapshotMetadata};

    fn ent(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    fn snap(index: u64, term: u64) -> Snapshot {
        Snapshot {
            metadata: Some(SnapshotMetadata::new(index, term, ConfState::default())),
            ..Default::default()
        }
    }

    /// An unstable log holding `ents` (which must start at `offset`) and
    /// optionally a snapshot, with `in_progress` entries handed out.
    fn unstable(
        offset: u64,
        ents: &[Entry],
        snapshot: Option<Snapshot>,
        in_progress: u64,
    ) -> Unstable {
        let u = Unstable {
            snapshot,
            entries: ents.to_vec(),
            offset,
            offset_in_progress: offset + in_progress,
            snapshot_in_progress: false,
        };
        u.check_invariants();
        u
    }

    #[test]
    fn new_starts_empty_at_offset() {
        let u = Unstable::new(7);
        assert_eq!(u.offset, 7);
        assert_eq!(u.offset_in_progress, 7);
        assert!(u.entries.is_empty());
        assert!(u.snapshot.is_none());
        assert!(!u.has_next_entries());
        assert!(!u.has_next_snapshot());
    }

    #[test]
    fn maybe_first_index_comes_only_from_the_snapshot() {
        assert_eq!(unstable(5, &[ent(5, 1)], None, 0).maybe_first_index(), None);
        assert_eq!(unstable(0, &[], None, 0).maybe_first_index(), None);
        assert_eq!(
            unstable(5, &[ent(5, 1)], Some(snap(4, 1)), 0).maybe_first_index(),
            Some(5)
        );
        assert_eq!(
            unstable(5, &[], Some(snap(4, 1)), 0).maybe_first_index(),
            Some(5)
        );
    }

    #[test]
    fn maybe_last_index_prefers_entries_then_snapshot() {
        assert_eq!(
            unstable(5, &[ent(5, 1)], None, 0).maybe_last_index(),
            Some(5)
        );
        assert_eq!(
            unstable(5, &[ent(5, 1)], Some(snap(4, 1)), 0).maybe_last_index(),
            Some(5)
        );
        assert_eq!(
            unstable(5, &[], Some(snap(4, 1)), 0).maybe_last_index(),
            Some(4)
        );
        assert_eq!(unstable(0, &[], None, 0).maybe_last_index(), None);
    }

    #[test]
    fn maybe_term_reads_entries_and_snapshot() {
        let only_ents = unstable(5, &[ent(5, 1)], None, 0);
        assert_eq!(only_ents.maybe_term(5), Some(1));
        assert_eq!(only_ents.maybe_term(6), None);
        assert_eq!(only_ents.maybe_term(4), None);

        let both = unstable(5, &[ent(5, 1)], Some(snap(4, 1)), 0);
        assert_eq!(both.maybe_term(5), Some(1));
        assert_eq!(both.maybe_term(6), None);
        assert_eq!(both.maybe_term(4), Some(1));
        assert_eq!(both.maybe_term(3), None);

        let only_snap = unstable(5, &[], Some(snap(4, 2)), 0);
        assert_eq!(only_snap.maybe_term(5), None);
        assert_eq!(only_snap.maybe_term(4), Some(2));
        assert_eq!(only_snap.maybe_term(3), None);

        assert_eq!(unstable(0, &[], None, 0).maybe_term(5), None);
        assert_eq!(unstable(0, &[], None, 0).maybe_term(u64::MAX), None);
    }

    #[test]
    fn restore_replaces_everything_with_the_snapshot() {
        let mut u = unstable(5, &[ent(5, 1), ent(6, 1)], Some(snap(4, 1)), 2);
        u.snapshot_in_progress = true;
        u.restore(snap(6, 2));
        assert_eq!(u.offset, 7);
        assert_eq!(u.offset_in_progress, 7);
        assert!(u.entries.is_empty());
        assert_eq!(u.snapshot, Some(snap(6, 2)));
        assert!(!u.snapshot_in_progress);
        assert!(u.has_next_snapshot());
    }

    #[test]
    fn next_entries_skips_the_ones_in_progress() {
        let ents = [ent(5, 1), ent(6, 1)];
        assert_eq!(unstable(5, &ents, None, 0).next_entries(), &ents);
        assert_eq!(unstable(5, &ents, None, 1).next_entries(), &ents[1..]);
        assert!(unstable(5, &ents, None, 2).next_entries().is_empty());
        assert!(unstable(5, &ents, None, 1).has_next_entries());
        assert!(!unstable(5, &ents, None, 2).has_next_entries());
    }

    #[test]
    fn next_snapshot_is_hidden_while_in_progress() {
        let mut u = unstable(5, &[], Some(snap(4, 1)), 0);
        assert_eq!(u.next_snapshot(), Some(&snap(4, 1)));
        assert!(u.has_next_snapshot());
        u.snapshot_in_progress = true;
        assert_eq!(u.next_snapshot(), None);
        assert!(!u.has_next_snapshot());
        assert_eq!(unstable(5, &[], None, 0).next_snapshot(), None);
    }

    #[test]
    fn accept_in_progress_marks_entries_and_snapshot() {
        let mut u = unstable(5, &[ent(5, 1), ent(6, 1)], Some(snap(4, 1)), 1);
        u.accept_in_progress();
        assert_eq!(u.offset_in_progress, 7);
        assert!(u.snapshot_in_progress);
        assert!(!u.has_next_entries());
        assert!(!u.has_next_snapshot());
        // Entries appended afterwards are handed out again.
        u.truncate_and_append(&[ent(7, 1)]);
        assert_eq!(u.next_entries(), &[ent(7, 1)]);

        let mut empty = Unstable::new(3);
        empty.accept_in_progress();
        assert_eq!(empty.offset_in_progress, 3);
        assert!(!empty.snapshot_in_progress);
    }

    #[test]
    fn stable_to_drops_persisted_entries() {
        let mut u = unstable(5, &[ent(5, 1), ent(6, 1), ent(7, 2)], None, 3);
        u.stable_to(6, 1);
        assert_eq!(u.offset, 7);
        // Entry 7 is still in progress.
        assert_eq!(u.offset_in_progress, 8);
        assert_eq!(u.entries, vec![ent(7, 2)]);
        assert!(!u.has_next_entries());
        u.stable_to(7, 2);
        assert_eq!(u.offset, 8);
        assert_eq!(u.offset_in_progress, 8);
        assert!(u.entries.is_empty());
    }

    #[test]
    fn stable_to_keeps_later_in_progress_entries_in_progress() {
        let mut u = unstable(5, &[ent(5, 1), ent(6, 1), ent(7, 1)], None, 2);
        u.stable_to(5, 1);
        assert_eq!(u.offset, 6);
        assert_eq!(u.offset_in_progress, 7);
        assert_eq!(u.next_entries(), &[ent(7, 1)]);
    }

    #[test]
    fn stable_to_beyond_in_progress_advances_it() {
        // The host may persist more than it was handed (it never does in
        // practice, but the bookkeeping must stay within bounds).
        let mut u = unstable(5, &[ent(5, 1), ent(6, 1), ent(7, 1)], None, 0);
        u.stable_to(6, 1);
        assert_eq!(u.offset_in_progress, 7);
        assert_eq!(u.next_entries(), &[ent(7, 1)]);
    }

    #[test]
    fn stable_to_with_a_mismatched_term_is_ignored() {
        let mut u = unstable(5, &[ent(5, 1), ent(6, 2)], None, 2);
        let before = u.clone();
        u.stable_to(6, 1);
        assert_eq!(u, before);
    }

    #[test]
    fn stable_to_outside_the_unstable_entries_is_ignored() {
        let mut u = unstable(5, &[ent(5, 1)], Some(snap(4, 1)), 1);
        let before = u.clone();
        // The snapshot's index: its term matches, but it is not an entry.
        u.stable_to(4, 1);
        assert_eq!(u, before);
        u.stable_to(6, 1);
        assert_eq!(u, before);
        u.stable_to(3, 1);
        assert_eq!(u, before);
    }

    #[test]
    fn stable_to_after_a_replacement_ignores_the_old_write() {
        // Entries 5..=6 at term 1 are handed out, then replaced by a term 2
        // leader; the host's report for the old write must not drop the new.
        let mut u = unstable(5, &[ent(5, 1), ent(6, 1)], None, 0);
        u.accept_in_progress();
        u.truncate_and_append(&[ent(6, 2)]);
        assert_eq!(u.offset_in_progress, 6);
        u.stable_to(6, 1);
        assert_eq!(u.entries, vec![ent(5, 1), ent(6, 2)]);
        assert_eq!(u.next_entries(), &[ent(6, 2)]);
        // Entry 5 of the old write is durable all the same.
        u.stable_to(5, 1);
        assert_eq!(u.offset, 6);
        assert_eq!(u.offset_in_progress, 6);
        assert_eq!(u.next_entries(), &[ent(6, 2)]);
    }

    #[test]
    fn stable_to_releases_unused_capacity() {
        let ents: Vec<Entry> = (1..=64).map(|i| ent(i, 1)).collect();
        let mut u = unstable(1, &ents, None, 64);
        u.stable_to(60, 1);
        assert_eq!(u.entries.len(), 4);
        assert!(
            u.entries.capacity() < 8,
            "capacity {}",
            u.entries.capacity()
        );
        u.stable_to(64, 1);
        assert_eq!(u.entries.capacity(), 0);
    }

    #[test]
    fn stable_snap_to_drops_only_the_matching_snapshot() {
        let mut u = unstable(5, &[], Some(snap(4, 1)), 0);
        u.snapshot_in_progress = true;
        u.stable_snap_to(3);
        assert_eq!(u.snapshot, Some(snap(4, 1)));
        assert!(u.snapshot_in_progress);
        u.stable_snap_to(4);
        assert_eq!(u.snapshot, None);
        assert!(!u.snapshot_in_progress);
        // Nothing to drop: a no-op.
        u.stable_snap_to(4);
        assert_eq!(u.snapshot, None);
    }

    #[test]
    fn truncate_and_append_appends_directly_after() {
        let mut u = unstable(5, &[ent(5, 1)], None, 1);
        u.truncate_and_append(&[ent(6, 1), ent(7, 1)]);
        assert_eq!(u.offset, 5);
        assert_eq!(u.offset_in_progress, 6);
        assert_eq!(u.entries, vec![ent(5, 1), ent(6, 1), ent(7, 1)]);
        assert_eq!(u.next_entries(), &[ent(6, 1), ent(7, 1)]);
    }

    #[test]
    fn truncate_and_append_to_empty_unstable_log() {
        let mut u = Unstable::new(3);
        u.truncate_and_append(&[ent(3, 1), ent(4, 1)]);
        assert_eq!(u.entries, vec![ent(3, 1), ent(4, 1)]);
        assert_eq!(u.offset, 3);
        u.truncate_and_append(&[]);
        assert_eq!(u.entries.len(), 2);
    }

    #[test]
    fn truncate_and_append_at_or_before_offset_replaces_everything() {
        let mut u = unstable(5, &[ent(5, 1)], None, 1);
        u.truncate_and_append(&[ent(5, 2), ent(6, 2)]);
        assert_eq!(u.offset, 5);
        assert_eq!(u.offset_in_progress, 5);
        assert_eq!(u.entries, vec![ent(5, 2), ent(6, 2)]);

        let mut u = unstable(5, &[ent(5, 1)], None, 1);
        u.truncate_and_append(&[ent(4, 2), ent(5, 2), ent(6, 2)]);
        assert_eq!(u.offset, 4);
        assert_eq!(u.offset_in_progress, 4);
        assert_eq!(u.entries, vec![ent(4, 2), ent(5, 2), ent(6, 2)]);
        assert_eq!(u.next_entries().len(), 3);
    }

    #[test]
    fn truncate_and_append_in_the_middle_keeps_the_prefix() {
        let mut u = unstable(5, &[ent(5, 1), ent(6, 1), ent(7, 1)], None, 0);
        u.truncate_and_append(&[ent(6, 2)]);
        assert_eq!(u.offset, 5);
        assert_eq!(u.offset_in_progress, 5);
        assert_eq!(u.entries, vec![ent(5, 1), ent(6, 2)]);

        let mut u = unstable(5, &[ent(5, 1), ent(6, 1), ent(7, 1)], None, 0);
        u.truncate_and_append(&[ent(7, 2), ent(8, 2)]);
        assert_eq!(u.entries, vec![ent(5, 1), ent(6, 1), ent(7, 2), ent(8, 2)]);
    }

    #[test]
    fn truncate_and_append_pulls_back_in_progress_past_the_cut() {
        // All three in progress; cutting at 6 leaves only 5 in progress.
        let mut u = unstable(5, &[ent(5, 1), ent(6, 1), ent(7, 1)], None, 3);
        u.truncate_and_append(&[ent(6, 2)]);
        assert_eq!(u.offset_in_progress, 6);
        assert_eq!(u.next_entries(), &[ent(6, 2)]);

        // Only 5 in progress; cutting at 7 leaves it so.
        let mut u = unstable(5, &[ent(5, 1), ent(6, 1), ent(7, 1)], None, 1);
        u.truncate_and_append(&[ent(7, 2)]);
        assert_eq!(u.offset_in_progress, 6);
        assert_eq!(u.next_entries(), &[ent(6, 1), ent(7, 2)]);
    }

    #[test]
    #[should_panic(expected = "gap")]
    fn truncate_and_append_with_a_gap_panics() {
        let mut u = unstable(5, &[ent(5, 1)], None, 0);
        u.truncate_and_append(&[ent(7, 1)]);
    }

    #[test]
    fn slice_returns_the_half_open_range() {
        let u = unstable(5, &[ent(5, 1), ent(6, 1), ent(7, 2)], None, 0);
        assert_eq!(u.slice(5, 8), &u.entries[..]);
        assert_eq!(u.slice(6, 7), &[ent(6, 1)]);
        assert!(u.slice(8, 8).is_empty());
        assert!(u.slice(5, 5).is_empty());
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn slice_below_offset_panics() {
        let u = unstable(5, &[ent(5, 1)], None, 0);
        let _ = u.slice(4, 5);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn slice_beyond_the_last_entry_panics() {
        let u = unstable(5, &[ent(5, 1)], None, 0);
        let _ = u.slice(5, 7);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn slice_with_lo_above_hi_panics() {
        let u = unstable(5, &[ent(5, 1), ent(6, 1)], None, 0);
        let _ = u.slice(6, 5);
    }
}
