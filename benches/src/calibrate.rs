//! The raw ceiling, measured inside every run: how fast this disk takes
//! synced RocksDB write batches of the size the store reached, and 4 KiB
//! appends each followed by `fdatasync`, in the cluster's own data
//! directory. Shared machines' disks vary several-fold from minute to
//! minute, so a ceiling measured another day means nothing.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use flotilla_engine::{Engine, EngineConfig};
use serde::Serialize;

/// What the disk did, raw.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct DiskCeiling {
    /// Entries per synced RocksDB write batch.
    pub batch_entries: u64,
    /// Synced batches per second.
    pub rocksdb_syncs_per_sec: f64,
    /// Entries per second in them.
    pub rocksdb_entries_per_sec: f64,
    /// 4 KiB appends, each followed by `fdatasync`, per second.
    pub fdatasync_4k_per_sec: f64,
}

/// Measures for `time` in all (half RocksDB, half fdatasync) in a new
/// directory under `dir`, removed afterwards.
pub fn measure(
    dir: &Path,
    batch_entries: u64,
    value_bytes: usize,
    time: Duration,
) -> anyhow::Result<DiskCeiling> {
    let scratch = tempfile::Builder::new()
        .prefix("calibrate-")
        .tempdir_in(dir)
        .with_context(|| format!("a scratch directory in {}", dir.display()))?;
    let batch_entries = batch_entries.max(1);
    let half = time / 2;

    let engine = Engine::open(scratch.path().join("rocksdb"), &EngineConfig::default())?;
    let value = vec![0x5a_u8; value_bytes];
    let (mut batches, mut next) = (0u64, 0u64);
    let started = Instant::now();
    while started.elapsed() < half {
        let mut wb = engine.write_batch();
        for _ in 0..batch_entries {
            wb.put_data(format!("calibrate-{next:016}").as_bytes(), &value);
            next += 1;
        }
        engine.write(wb, true)?;
        batches += 1;
    }
    let rocksdb_secs = started.elapsed().as_secs_f64();
    drop(engine);

    let mut file = std::fs::File::create(scratch.path().join("append"))?;
    let page = [0xa5_u8; 4096];
    let mut syncs = 0u64;
    let started = Instant::now();
    while started.elapsed() < half {
        file.write_all(&page)?;
        file.sync_data()?;
        syncs += 1;
    }
    let fsync_secs = started.elapsed().as_secs_f64();

    Ok(DiskCeiling {
        batch_entries,
        rocksdb_syncs_per_sec: batches as f64 / rocksdb_secs,
        rocksdb_entries_per_sec: (batches * batch_entries) as f64 / rocksdb_secs,
        fdatasync_4k_per_sec: syncs as f64 / fsync_secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_calibration_counts_batches_and_syncs_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let c = measure(dir.path(), 8, 128, Duration::from_millis(200)).unwrap();
        assert_eq!(c.batch_entries, 8);
        assert!(
            c.rocksdb_syncs_per_sec > 0.0 && c.fdatasync_4k_per_sec > 0.0,
            "{c:?}"
        );
        let ratio = c.rocksdb_entries_per_sec / c.rocksdb_syncs_per_sec;
        assert!(
            (ratio - 8.0).abs() < 1e-6,
            "entries are batches times 8: {c:?}"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing left behind"
        );
    }
}
