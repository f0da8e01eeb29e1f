//! `EngineSnapshot`: a consistent, point-in-time view of the engine, for
//! reads that must not see later writes and for exporting a region.

use bytes::Bytes;

use flotilla_proto::metapb::Region;
use flotilla_proto::storagepb::{RaftApplyState, RaftLocalState, RegionLocalState};

use crate::engine::Engine;
use crate::error::Result;
use crate::read::{KvPair, Reader};
use crate::region_snapshot;

/// A consistent view of the whole engine as of its creation: user data,
/// log and region states all at one point of the write sequence. It pins
/// the versions it sees; hold it only as long as needed.
pub struct EngineSnapshot<'a> {
    engine: &'a Engine,
    snapshot: rocksdb::Snapshot<'a>,
}

impl std::fmt::Debug for EngineSnapshot<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineSnapshot")
            .field("engine", self.engine)
            .field("sequence_number", &self.snapshot.sequence_number())
            .finish()
    }
}

impl<'a> EngineSnapshot<'a> {
    pub(crate) fn new(engine: &'a Engine) -> Self {
        Self {
            engine,
            snapshot: engine.db().snapshot(),
        }
    }

    fn reader(&self) -> Reader<'_> {
        Reader {
            db: self.engine.db(),
            snapshot: Some(&self.snapshot),
        }
    }

    /// The engine this is a view of.
    pub fn engine(&self) -> &Engine {
        self.engine
    }

    /// The value of user key `key` in this view; `OutOfRange` unless `key`
    /// lies in `region`.
    pub fn get(&self, region: &Region, key: &[u8]) -> Result<Option<Bytes>> {
        self.reader().get_data(region, key)
    }

    /// Up to `limit` user pairs of `region` in this view, from `start` on
    /// (see [`Engine::scan`]).
    pub fn scan(&self, region: &Region, start: &[u8], limit: usize) -> Result<Vec<KvPair>> {
        self.reader().scan_data(region, start, limit)
    }

    /// A region's `RegionLocalState` in this view.
    pub fn region_state(&self, region_id: u64) -> Result<Option<RegionLocalState>> {
        self.reader().region_state(region_id)
    }

    /// A region's `RaftApplyState` in this view.
    pub fn apply_state(&self, region_id: u64) -> Result<Option<RaftApplyState>> {
        self.reader().apply_state(region_id)
    }

    /// A region's `RaftLocalState` in this view.
    pub fn raft_state(&self, region_id: u64) -> Result<Option<RaftLocalState>> {
        self.reader().raft_state(region_id)
    }

    /// Exports `region` (its metadata and every user pair in its range, as
    /// of this view) in the region snapshot format of
    /// `docs/storage-format.md`, ready for
    /// [`WriteBatch::ingest_region`](crate::WriteBatch::ingest_region) on
    /// another store.
    pub fn export_region(&self, region: &Region) -> Result<Bytes> {
        region_snapshot::export(&self.reader(), region)
    }
}
