//! Helpers shared by the cases: engines in temporary directories, regions
//! and entries.

use std::path::Path;

use bytes::Bytes;
use flotilla_engine::{Engine, EngineConfig};
use flotilla_proto::metapb::{Peer, PeerRole, Region, RegionEpoch};
use flotilla_proto::raftpb::Entry;

/// A fresh engine in its own temporary directory (kept alive by the
/// returned guard).
pub fn temp_engine() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(dir.path());
    (dir, engine)
}

/// Opens (creating if needed) the engine at `path` with the test config.
pub fn open(path: &Path) -> Engine {
    Engine::open(path, &EngineConfig::for_tests()).expect("open engine")
}

/// Region `id` over `[start, end)` with voters `voters` (peer id = store id).
pub fn region(id: u64, start: &[u8], end: &[u8], voters: &[u64]) -> Region {
    Region {
        id,
        start_key: Bytes::copy_from_slice(start),
        end_key: Bytes::copy_from_slice(end),
        region_epoch: Some(RegionEpoch {
            conf_ver: 1,
            version: 1,
        }),
        peers: voters
            .iter()
            .map(|&id| Peer {
                id,
                store_id: id,
                role: PeerRole::Voter as i32,
            })
            .collect(),
    }
}

/// An entry whose payload depends on its index and term, so that an entry
/// read back from the wrong place or of the wrong term shows.
pub fn ent(index: u64, term: u64) -> Entry {
    let mut data = index.to_be_bytes().to_vec();
    data.extend_from_slice(&term.to_be_bytes());
    data.resize(48, 0xab);
    Entry {
        index,
        term,
        data: Bytes::from(data),
        ..Default::default()
    }
}

/// Entries `range` of `term`.
pub fn ents(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    range.map(|i| ent(i, term)).collect()
}
