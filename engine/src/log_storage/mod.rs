//! `RegionLogStorage`: one region's raft log and raft state on the engine,
//! implementing `flotilla_raft::Storage` for reads, with host methods that
//! put every change into the round's shared [`WriteBatch`].
//!
//! The in-memory state moves when a change is put into the batch, before the
//! batch is written: raft still holds those entries as unstable until the
//! host reports them persisted, so its reads stay consistent. If the batch
//! then fails to be written, memory is ahead of disk; the host must treat
//! that as fatal for every region in the batch and reload them
//! ([`RegionLogStorage::load`]) or stop.

mod storage_impl;
#[cfg(test)]
mod tests;

use flotilla_proto::metapb::Region;
use flotilla_proto::raftpb::{Entry, HardState, Snapshot};
use flotilla_proto::storagepb::{RegionLocalState, RegionState};

use crate::batch::WriteBatch;
use crate::engine::Engine;
use crate::entry_cache::EntryCache;
use crate::error::{Error, Result};
use crate::region::conf_state_from_region;
use crate::region_snapshot::RegionSnapshotData;

/// One region's raft log storage.
#[derive(Debug)]
pub struct RegionLogStorage {
    region_id: u64,
    engine: Engine,
    region_state: RegionLocalState,
    hard_state: HardState,
    // The term and vote of the stored RaftLocalState: the record is written
    // only when they change (or at creation and snapshot installation).
    stored_term_vote: (u64, u64),
    // Invariant: truncated_index <= last_index, and every index in
    // (truncated_index, last_index] has an entry on disk (or in the batch
    // being filled).
    last_index: u64,
    // Invariant: truncated_index <= applied_index: an entry is discarded
    // only once applied.
    applied_index: u64,
    applied_term: u64,
    truncated_index: u64,
    truncated_term: u64,
    // Payload bytes of the entries in (truncated_index, last_index]: exact
    // for what was appended since the region was created or loaded (a load
    // starts it at 0), lowered by the average entry's share when entries
    // are discarded or overwritten. A trigger for log GC, not an account.
    log_bytes: u64,
    cache: EntryCache,
}

impl RegionLogStorage {
    fn new_in_memory(engine: &Engine, region_state: RegionLocalState) -> Self {
        let config = engine.config();
        let cache = EntryCache::new(
            config.entry_cache_region_entries_max,
            config.entry_cache_region_bytes_max,
            engine.entry_cache_budget().clone(),
        );
        Self {
            region_id: region_state.region.as_ref().map_or(0, |r| r.id),
            engine: engine.clone(),
            region_state,
            hard_state: HardState::default(),
            stored_term_vote: (0, 0),
            last_index: 0,
            applied_index: 0,
            applied_term: 0,
            truncated_index: 0,
            truncated_term: 0,
            log_bytes: 0,
            cache,
        }
    }

    /// A new replica of `region` on this store, with an empty log starting
    /// at index 1, an empty hard state and nothing applied. Puts its region,
    /// raft and apply states into `wb` (overwriting any stored ones).
    pub fn create(engine: &Engine, region: Region, wb: &mut WriteBatch) -> Self {
        let state = RegionLocalState {
            region: Some(region),
            state: RegionState::Normal as i32,
        };
        let mut s = Self::new_in_memory(engine, state);
        wb.put_region_state(s.region_id, &s.region_state);
        s.put_raft_state(wb);
        s.put_apply_state(wb);
        s
    }

    /// Loads a region's storage from disk, as a restart does. `NotFound` if
    /// any of its states is missing; `Corruption` if they are malformed or
    /// contradict each other or the log.
    pub fn load(engine: &Engine, region_id: u64) -> Result<Self> {
        let reader = engine.reader();
        let missing = |what: &str| Error::not_found(format!("{what} of region {region_id}"));
        let region_state = reader
            .region_state(region_id)?
            .ok_or_else(|| missing("RegionLocalState"))?;
        let raft_state = reader
            .raft_state(region_id)?
            .ok_or_else(|| missing("RaftLocalState"))?;
        let apply = reader
            .apply_state(region_id)?
            .ok_or_else(|| missing("RaftApplyState"))?;
        let stored_id = region_state.region.as_ref().map(|r| r.id);
        if stored_id != Some(region_id) {
            return Err(Error::corruption(format!(
                "RegionLocalState under region {region_id} is of region {stored_id:?}"
            )));
        }
        let truncated = apply.truncated_state.unwrap_or_default();
        let mut s = Self::new_in_memory(engine, region_state);
        let hard_state = raft_state.hard_state.unwrap_or_default();
        s.stored_term_vote = (hard_state.term, hard_state.vote);
        s.hard_state = hard_state;
        (s.applied_index, s.applied_term) = (apply.applied_index, apply.applied_term);
        (s.truncated_index, s.truncated_term) = (truncated.index, truncated.term);
        // The log is authoritative for its last index (appends do not
        // rewrite the raft state), and everything applied was committed.
        let last_stored = reader.last_raft_index(region_id)?;
        s.last_index = last_stored.unwrap_or(0).max(s.truncated_index);
        s.hard_state.commit = s.hard_state.commit.max(s.applied_index);
        s.check_loaded()?;
        Ok(s)
    }

    /// Checks what `load` read: the states agree with each other and with
    /// the log.
    fn check_loaded(&self) -> Result<()> {
        let id = self.region_id;
        if self.truncated_index > self.applied_index {
            return Err(Error::corruption(format!(
                "region {id}: truncated index {} above applied index {}",
                self.truncated_index, self.applied_index
            )));
        }
        if self.applied_index > self.last_index || self.hard_state.commit > self.last_index {
            return Err(Error::corruption(format!(
                "region {id}: applied index {} or commit index {} past the log's last index {}",
                self.applied_index, self.hard_state.commit, self.last_index
            )));
        }
        let first = self.truncated_index + 1;
        if self.last_index >= first && self.engine.reader().raft_entry(id, first)?.is_none() {
            return Err(Error::corruption(format!(
                "region {id}: the log ends at {} but has no entry at its first index {first}",
                self.last_index
            )));
        }
        Ok(())
    }

    /// The region's id.
    pub fn region_id(&self) -> u64 {
        self.region_id
    }

    /// The region as last set (range, epoch, peers).
    pub fn region(&self) -> &Region {
        self.region_state
            .region
            .as_ref()
            .expect("RegionLogStorage invariant: region_state.region is set")
    }

    /// The region's lifecycle state and metadata.
    pub fn region_state(&self) -> &RegionLocalState {
        &self.region_state
    }

    /// The hard state as last set.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// The index and term of the last applied entry.
    pub fn applied(&self) -> (u64, u64) {
        (self.applied_index, self.applied_term)
    }

    /// The index and term of the last discarded entry.
    pub fn truncated(&self) -> (u64, u64) {
        (self.truncated_index, self.truncated_term)
    }

    /// About how many payload bytes the log holds past its truncation
    /// point: counted on append, lowered by the average entry's share when
    /// entries are discarded; 0 right after a load.
    pub fn log_bytes(&self) -> u64 {
        self.log_bytes
    }

    /// `log_bytes` less the average entry's share for `count` entries.
    fn log_bytes_without(&self, count: u64) -> u64 {
        let held = self.last_index - self.truncated_index;
        if count >= held {
            return 0;
        }
        let share = u128::from(self.log_bytes) * u128::from(count) / u128::from(held);
        self.log_bytes - share as u64
    }

    /// Entries and bytes in this region's entry cache.
    pub fn cache_usage(&self) -> (usize, u64) {
        (self.cache.len(), self.cache.bytes())
    }

    fn put_raft_state(&mut self, wb: &mut WriteBatch) {
        wb.put_raft_state(self.region_id, &self.hard_state, self.last_index);
        self.stored_term_vote = (self.hard_state.term, self.hard_state.vote);
    }

    fn put_apply_state(&self, wb: &mut WriteBatch) {
        wb.put_apply_state(
            self.region_id,
            (self.applied_index, self.applied_term),
            (self.truncated_index, self.truncated_term),
        );
    }

    /// Appends `entries` (contiguous, as raft hands them out) to the log:
    /// puts them into `wb` and the cache, and deletes the entries of the
    /// old log past the new last index (a conflicting suffix). Entries at or
    /// below the truncation point are skipped.
    ///
    /// # Panics
    ///
    /// If `entries` are not contiguous or would leave a gap after the last
    /// index.
    pub fn append(&mut self, entries: &[Entry], wb: &mut WriteBatch) {
        let Some(first) = entries.first().map(|e| e.index) else {
            return;
        };
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(
                e.index,
                first + i as u64,
                "region {}: appended entries are not contiguous",
                self.region_id
            );
        }
        assert!(
            first <= self.last_index + 1,
            "region {}: appending [{first}, ..] would leave a gap after last index {}",
            self.region_id,
            self.last_index
        );
        let skip = (self.truncated_index + 1).saturating_sub(first) as usize;
        let Some(ents) = entries.get(skip..).filter(|e| !e.is_empty()) else {
            return;
        };
        for e in ents {
            wb.put_raft_entry(self.region_id, e);
        }
        let new_last = first + entries.len() as u64 - 1;
        for index in new_last + 1..=self.last_index {
            wb.delete_raft_entry(self.region_id, index);
        }
        // Entries from the first new index on are replaced.
        let kept_from = first.max(self.truncated_index + 1);
        let replaced = (self.last_index + 1).saturating_sub(kept_from);
        let added: u64 = ents.iter().map(entry_payload_bytes).sum();
        self.log_bytes = self.log_bytes_without(replaced) + added;
        // No raft state write: a restart reads the last index off the log.
        self.last_index = new_last;
        self.cache.append(ents);
    }

    /// Records a new hard state. Only a new term or vote is written (raft
    /// needs those durable before it answers); a commit index alone stays in
    /// memory, which saves a write per region per round.
    pub fn set_hard_state(&mut self, hard_state: HardState, wb: &mut WriteBatch) {
        self.hard_state = hard_state;
        if (hard_state.term, hard_state.vote) != self.stored_term_vote {
            self.put_raft_state(wb);
        }
    }

    /// Records that entries up to `index` (of `term`) are applied. Put it
    /// in the batch that holds the user data writes of those entries.
    ///
    /// # Panics
    ///
    /// If `index` goes back.
    pub fn set_applied(&mut self, index: u64, term: u64, wb: &mut WriteBatch) {
        assert!(
            index >= self.applied_index,
            "region {}: applied index goes back from {} to {index}",
            self.region_id,
            self.applied_index
        );
        (self.applied_index, self.applied_term) = (index, term);
        self.put_apply_state(wb);
    }

    /// Records new region metadata or lifecycle state (after a split, a
    /// membership change, a removal). `initial_state` derives the raft
    /// membership from it from now on.
    ///
    /// # Panics
    ///
    /// If the state has no region or the region's id is not this one.
    pub fn set_region_state(&mut self, state: RegionLocalState, wb: &mut WriteBatch) {
        let id = state.region.as_ref().map(|r| r.id);
        assert_eq!(id, Some(self.region_id), "region state of another region");
        self.region_state = state;
        wb.put_region_state(self.region_id, &self.region_state);
    }

    /// Log garbage collection: discards the entries before `index`, so the
    /// first index becomes `index`, and records the truncation point (the
    /// index and term of the entry at `index - 1`). A no-op when they are
    /// already discarded.
    ///
    /// # Panics
    ///
    /// If `index > last_index() + 1`, or if it would discard an entry that
    /// is not applied yet.
    pub fn compact_to(&mut self, index: u64, wb: &mut WriteBatch) -> Result<()> {
        let first = self.truncated_index + 1;
        if index <= first {
            return Ok(());
        }
        assert!(
            index <= self.last_index + 1 && index - 1 <= self.applied_index,
            "region {}: cannot compact to {index}: last index {}, applied index {}",
            self.region_id,
            self.last_index,
            self.applied_index
        );
        let term = self.entry_term(index - 1)?;
        // One range tombstone, not one per entry: the flush of a memtable
        // that still holds the entries drops them all for one record.
        wb.delete_raft_entries(self.region_id, first, index);
        self.log_bytes = self.log_bytes_without(index - first);
        (self.truncated_index, self.truncated_term) = (index - 1, term);
        self.cache.compact_to(index);
        self.put_apply_state(wb);
        Ok(())
    }

    /// Drops cached entries before `index` (the host calls this once they
    /// are applied and replicated, to free the store's cache budget).
    pub fn evict_cache_to(&mut self, index: u64) {
        self.cache.compact_to(index);
    }

    /// Installs a raft snapshot received from another store: replaces the
    /// region's user data with the snapshot's (clearing the range first),
    /// drops the whole log, and moves the truncation point, applied state
    /// and last index to the snapshot; raises the hard state's term and
    /// commit to it; takes the snapshot's region as the region's. All in
    /// `wb`, so it is atomic with the rest of the round.
    ///
    /// `OutOfRange` if the snapshot is not past the applied index or is of
    /// another region; `Corruption` if its data is malformed or its
    /// membership does not match its region.
    pub fn apply_snapshot(&mut self, snapshot: &Snapshot, wb: &mut WriteBatch) -> Result<()> {
        let (index, term) = (snapshot.index(), snapshot.term());
        if index <= self.applied_index {
            return Err(Error::out_of_range(format!(
                "region {}: snapshot at {index} is not past applied index {}",
                self.region_id, self.applied_index
            )));
        }
        let data = RegionSnapshotData::decode(&snapshot.data)?;
        self.check_snapshot_region(snapshot, data.region())?;
        wb.ingest_region(&data);
        wb.delete_raft_log(self.region_id);
        self.cache.clear();
        self.log_bytes = 0;
        self.last_index = index;
        (self.applied_index, self.applied_term) = (index, term);
        (self.truncated_index, self.truncated_term) = (index, term);
        self.hard_state.commit = self.hard_state.commit.max(index);
        self.hard_state.term = self.hard_state.term.max(term);
        self.region_state = RegionLocalState {
            region: Some(data.region().clone()),
            state: RegionState::Normal as i32,
        };
        wb.put_region_state(self.region_id, &self.region_state);
        self.put_raft_state(wb);
        self.put_apply_state(wb);
        Ok(())
    }

    fn check_snapshot_region(&self, snapshot: &Snapshot, region: &Region) -> Result<()> {
        if region.id != self.region_id {
            return Err(Error::out_of_range(format!(
                "snapshot of region {} given to region {}",
                region.id, self.region_id
            )));
        }
        let meta_cs = snapshot
            .metadata
            .as_ref()
            .and_then(|m| m.conf_state.as_ref());
        if meta_cs != Some(&conf_state_from_region(region)) {
            return Err(Error::corruption(format!(
                "region {}: snapshot membership does not match its region's peers",
                self.region_id
            )));
        }
        Ok(())
    }
}

/// An entry's payload as the log GC counts it.
fn entry_payload_bytes(e: &Entry) -> u64 {
    (e.data.len() + e.context.len()) as u64
}
