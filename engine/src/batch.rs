//! `WriteBatch`: everything one round writes, for every region at once,
//! committed atomically by one [`Engine::write`](crate::Engine::write).

use prost::Message as _;

use flotilla_proto::raftpb::{Entry, HardState};
use flotilla_proto::storagepb::{
    RaftApplyState, RaftLocalState, RaftTruncatedState, RegionLocalState,
};

use crate::engine::Engine;
use crate::keys::{self, CF_DATA, CF_RAFT_LOG, CF_RAFT_STATE, CF_REGION_META};
use crate::read::cf_handle;

/// What a write batch holds, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Size of the batch's encoded representation (what goes to the WAL).
    pub bytes: u64,
    /// Put operations, of every kind.
    pub puts: u64,
    /// Point delete operations, of every kind.
    pub deletes: u64,
    /// Range delete operations.
    pub range_deletes: u64,
    /// Raft log entries among the puts.
    pub raft_entries: u64,
    /// User data puts and deletes among the operations.
    pub data_ops: u64,
}

/// An atomic set of writes to one engine: raft entries, hard states, apply
/// and region states of any number of regions, user data puts and deletes,
/// and log-range deletes. Nothing is visible until the engine writes it.
///
/// A batch belongs to the engine that created it (it holds that engine's
/// column family handles); writing it to another engine is a bug and panics.
pub struct WriteBatch {
    engine: Engine,
    raw: rocksdb::WriteBatch,
    stats: WriteStats,
    // Reused for data keys, which need a prefix byte before the user key.
    key_buf: Vec<u8>,
    // Reused for encoded log entries (the batch copies the bytes).
    value_buf: Vec<u8>,
}

impl std::fmt::Debug for WriteBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBatch")
            .field("stats", &self.stats())
            .finish()
    }
}

impl WriteBatch {
    pub(crate) fn new(engine: Engine) -> Self {
        Self {
            engine,
            raw: rocksdb::WriteBatch::default(),
            stats: WriteStats::default(),
            key_buf: Vec::new(),
            value_buf: Vec::new(),
        }
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn into_raw(self) -> rocksdb::WriteBatch {
        self.raw
    }

    /// True when the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// What the batch holds so far.
    pub fn stats(&self) -> WriteStats {
        WriteStats {
            bytes: self.raw.size_in_bytes() as u64,
            ..self.stats
        }
    }

    fn put(&mut self, cf: &str, key: &[u8], value: &[u8]) {
        let handle = cf_handle(self.engine.db(), cf);
        self.raw.put_cf(handle, key, value);
        self.stats.puts += 1;
    }

    fn delete(&mut self, cf: &str, key: &[u8]) {
        let handle = cf_handle(self.engine.db(), cf);
        self.raw.delete_cf(handle, key);
        self.stats.deletes += 1;
    }

    fn delete_range(&mut self, cf: &str, lower: &[u8], upper: &[u8]) {
        let handle = cf_handle(self.engine.db(), cf);
        self.raw.delete_range_cf(handle, lower, upper);
        self.stats.range_deletes += 1;
    }

    /// Puts a user key. The caller has checked that it lies in its region.
    pub fn put_data(&mut self, key: &[u8], value: &[u8]) {
        let mut buf = std::mem::take(&mut self.key_buf);
        keys::data_key_into(&mut buf, key);
        self.put(CF_DATA, &buf, value);
        self.key_buf = buf;
        self.stats.data_ops += 1;
    }

    /// Deletes a user key.
    pub fn delete_data(&mut self, key: &[u8]) {
        let mut buf = std::mem::take(&mut self.key_buf);
        keys::data_key_into(&mut buf, key);
        self.delete(CF_DATA, &buf);
        self.key_buf = buf;
        self.stats.data_ops += 1;
    }

    /// Deletes every user key in `[start_key, end_key)` (empty end:
    /// unbounded), with one range tombstone.
    pub fn delete_data_range(&mut self, start_key: &[u8], end_key: &[u8]) {
        let (lower, upper) = keys::data_range(start_key, end_key);
        self.delete_range(CF_DATA, &lower, &upper);
    }

    pub(crate) fn put_raft_entry(&mut self, region_id: u64, e: &Entry) {
        let key = keys::raft_log_key(region_id, e.index);
        let mut buf = std::mem::take(&mut self.value_buf);
        buf.clear();
        e.encode(&mut buf).expect("a Vec grows as needed");
        self.put(CF_RAFT_LOG, &key, &buf);
        self.value_buf = buf;
        self.stats.raft_entries += 1;
    }

    pub(crate) fn delete_raft_entry(&mut self, region_id: u64, index: u64) {
        self.delete(CF_RAFT_LOG, &keys::raft_log_key(region_id, index));
    }

    /// Deletes the region's log entries in `[from, to)`, with one range
    /// tombstone.
    pub(crate) fn delete_raft_entries(&mut self, region_id: u64, from: u64, to: u64) {
        let lower = keys::raft_log_key(region_id, from);
        let upper = keys::raft_log_key(region_id, to);
        self.delete_range(CF_RAFT_LOG, &lower, &upper);
    }

    /// Deletes every log entry of the region, with one range tombstone.
    pub(crate) fn delete_raft_log(&mut self, region_id: u64) {
        let lower = keys::raft_log_key(region_id, 0);
        let upper = keys::raft_log_region_end(region_id);
        self.delete_range(CF_RAFT_LOG, &lower, &upper);
    }

    pub(crate) fn put_raft_state(
        &mut self,
        region_id: u64,
        hard_state: &HardState,
        last_index: u64,
    ) {
        let state = RaftLocalState {
            hard_state: Some(*hard_state),
            last_index,
        };
        self.put(
            CF_RAFT_STATE,
            &keys::raft_state_key(region_id),
            &state.encode_to_vec(),
        );
    }

    pub(crate) fn put_apply_state(
        &mut self,
        region_id: u64,
        applied: (u64, u64),
        truncated: (u64, u64),
    ) {
        let state = RaftApplyState {
            applied_index: applied.0,
            applied_term: applied.1,
            truncated_state: Some(RaftTruncatedState {
                index: truncated.0,
                term: truncated.1,
            }),
        };
        self.put(
            CF_REGION_META,
            &keys::apply_state_key(region_id),
            &state.encode_to_vec(),
        );
    }

    pub(crate) fn put_region_state(&mut self, region_id: u64, state: &RegionLocalState) {
        self.put(
            CF_REGION_META,
            &keys::region_state_key(region_id),
            &state.encode_to_vec(),
        );
    }

    /// Writes raw bytes under an engine-internal key, for tests that plant
    /// corrupt records.
    #[cfg(test)]
    pub(crate) fn put_raw(&mut self, cf: &str, key: &[u8], value: &[u8]) {
        self.put(cf, key, value);
    }
}
