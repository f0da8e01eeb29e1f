//! Raft's reads of a region's log: `flotilla_raft::Storage` for
//! [`RegionLogStorage`], served from the entry cache where it can and from
//! RocksDB otherwise.

use prost::Message as _;

use flotilla_proto::raftpb::{Entry, Snapshot, SnapshotMetadata};
use flotilla_raft::{RaftState, Storage, StorageError, entry_size};

use super::RegionLogStorage;
use crate::error::{Error, Result, decode};
use crate::keys::{self, CF_RAFT_LOG};
use crate::read::check_entry_index;
use crate::region::conf_state_from_region;

type RaftResult<T> = flotilla_raft::Result<T>;

/// Collects entries under a byte cap the way raft expects: the first entry
/// always, then more while the running total stays within the cap.
struct Limited {
    entries: Vec<Entry>,
    bytes: u64,
    max_bytes: u64,
    full: bool,
}

impl Limited {
    /// Adds `e` if it fits; false (and marks the collection full) if not.
    fn push(&mut self, e: Entry) -> bool {
        let size = entry_size(&e);
        if !self.entries.is_empty() && self.bytes.saturating_add(size) > self.max_bytes {
            self.full = true;
            return false;
        }
        self.bytes = self.bytes.saturating_add(size);
        self.entries.push(e);
        true
    }
}

impl RegionLogStorage {
    /// The term of the entry at `index`, which must be in
    /// `[truncated_index, last_index]`.
    pub(super) fn entry_term(&self, index: u64) -> Result<u64> {
        if index == self.truncated_index {
            return Ok(self.truncated_term);
        }
        if let Some(e) = self.cache.get(index) {
            return Ok(e.term);
        }
        match self.engine.reader().raft_entry(self.region_id, index)? {
            Some(e) => Ok(e.term),
            None => Err(self.missing_entry(index)),
        }
    }

    fn missing_entry(&self, index: u64) -> Error {
        Error::corruption(format!(
            "region {}: entry {index} is missing (log is ({}, {}])",
            self.region_id, self.truncated_index, self.last_index
        ))
    }

    /// Reads entries `[low, high)` from disk into `out`, stopping early when
    /// `out` is full.
    fn read_disk_entries(&self, low: u64, high: u64, out: &mut Limited) -> Result<()> {
        let id = self.region_id;
        let lower = keys::raft_log_key(id, low);
        let upper = keys::raft_log_key(id, high);
        let mut next = low;
        self.engine
            .reader()
            .for_each(CF_RAFT_LOG, &lower, &upper, |k, v| {
                let (_, index) = keys::decode_raft_log_key(k)?;
                if index != next {
                    return Err(self.missing_entry(next));
                }
                let e: Entry = decode(v, || format!("raft entry {index} of region {id}"))?;
                check_entry_index(id, index, &e)?;
                next += 1;
                Ok(out.push(e))
            })?;
        if next != high && !out.full {
            return Err(self.missing_entry(next));
        }
        Ok(())
    }

    fn read_entries(&self, low: u64, high: u64, max_bytes: u64) -> Result<Vec<Entry>> {
        let mut out = Limited {
            entries: Vec::new(),
            bytes: 0,
            max_bytes,
            full: false,
        };
        // The cache holds a suffix of the log: read below it from disk.
        let cache_first = self.cache.first_index().unwrap_or(high).clamp(low, high);
        if low < cache_first {
            self.read_disk_entries(low, cache_first, &mut out)?;
        }
        if !out.full {
            for e in self
                .cache
                .iter_from(cache_first)
                .take_while(|e| e.index < high)
            {
                if !out.push(e.clone()) {
                    break;
                }
            }
        }
        Ok(out.entries)
    }

    /// A raft snapshot of the region's applied state, from one consistent
    /// view: metadata (applied index and term, membership from the region)
    /// and data (the region's user pairs) agree because the apply state is
    /// written in the same batches as the user data.
    fn generate_snapshot(&self, request_index: u64) -> Result<Option<Snapshot>> {
        let id = self.region_id;
        let view = self.engine.snapshot();
        let apply = view
            .apply_state(id)?
            .ok_or_else(|| Error::not_found(format!("RaftApplyState of region {id}")))?;
        if apply.applied_index < request_index {
            return Ok(None);
        }
        let region = view
            .region_state(id)?
            .and_then(|s| s.region)
            .ok_or_else(|| Error::not_found(format!("RegionLocalState of region {id}")))?;
        let data = view.export_region(&region)?;
        let metadata = SnapshotMetadata::new(
            apply.applied_index,
            apply.applied_term,
            conf_state_from_region(&region),
        );
        tracing::debug!(
            region_id = id,
            index = apply.applied_index,
            data_bytes = data.len(),
            meta_bytes = metadata.encoded_len(),
            "generated region snapshot"
        );
        Ok(Some(Snapshot {
            data,
            metadata: Some(metadata),
        }))
    }
}

fn store_err(e: StorageError) -> flotilla_raft::Error {
    flotilla_raft::Error::Store(e)
}

impl Storage for RegionLogStorage {
    fn initial_state(&self) -> RaftResult<RaftState> {
        Ok(RaftState {
            hard_state: self.hard_state,
            conf_state: conf_state_from_region(self.region()),
        })
    }

    fn entries(&self, low: u64, high: u64, max_bytes: u64) -> RaftResult<Vec<Entry>> {
        if low <= self.truncated_index {
            return Err(store_err(StorageError::Compacted));
        }
        assert!(
            low <= high && high <= self.last_index + 1,
            "region {}: entries [{low}, {high}) out of bounds [{}, {}]",
            self.region_id,
            self.truncated_index + 1,
            self.last_index
        );
        Ok(self.read_entries(low, high, max_bytes)?)
    }

    fn term(&self, index: u64) -> RaftResult<u64> {
        if index < self.truncated_index {
            return Err(store_err(StorageError::Compacted));
        }
        if index > self.last_index {
            return Err(store_err(StorageError::Unavailable));
        }
        Ok(self.entry_term(index)?)
    }

    fn first_index(&self) -> RaftResult<u64> {
        Ok(self.truncated_index + 1)
    }

    fn last_index(&self) -> RaftResult<u64> {
        Ok(self.last_index)
    }

    fn snapshot(&self, request_index: u64) -> RaftResult<Snapshot> {
        match self.generate_snapshot(request_index)? {
            Some(snap) => Ok(snap),
            None => Err(store_err(StorageError::SnapshotTemporarilyUnavailable)),
        }
    }
}
