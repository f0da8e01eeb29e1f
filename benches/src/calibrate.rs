//! The raw ceiling, measured inside every run: how fast this disk takes
//! synced RocksDB write batches of the size the store reached (entries per
//! batch, and each entry the size of the stores' average entry), and 4 KiB
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
    /// Value bytes of each entry.
    pub entry_bytes: u64,
    /// Synced batches written (the measurement stops early, before its
    /// time is up, once it has written `CEILING_DATA_BYTES_MAX`).
    pub rocksdb_batches: u64,
    /// Synced batches per second.
    pub rocksdb_syncs_per_sec: f64,
    /// Entries per second in them.
    pub rocksdb_entries_per_sec: f64,
    /// 4 KiB appends, each followed by `fdatasync`, per second.
    pub fdatasync_4k_per_sec: f64,
}

/// The data one RocksDB measurement writes at most: it stops early rather
/// than fill its memtable.
const CEILING_DATA_BYTES_MAX: u64 = 128 << 20;

/// The scratch engine's settings: memtables large enough that the whole
/// measurement fits in one, so no flush (and no write stall behind a late
/// one) happens during it. RocksDB's background threads are shared by
/// every engine of the process: right after a load the stores' own
/// compactions hold them, and a scratch engine with the stores' small
/// memtables waited for its flushes behind them (runs at 1,000 regions
/// measured 300-800 synced batches/s instead of ~2,300). The ceiling is the
/// disk's and the WAL's, not the flush threads'.
fn ceiling_engine_config() -> EngineConfig {
    EngineConfig {
        write_buffer_bytes: 256 << 20,
        write_buffers_max: 2,
        wal_total_bytes_max: 1 << 30,
        ..EngineConfig::default()
    }
}

/// Measures for `time` in all (half RocksDB, half fdatasync) in a new
/// directory under `dir`, removed afterwards.
pub fn measure(
    dir: &Path,
    batch_entries: u64,
    value_bytes: usize,
    time: Duration,
) -> anyhow::Result<DiskCeiling> {
    measure_up_to(
        dir,
        batch_entries,
        value_bytes,
        time,
        CEILING_DATA_BYTES_MAX,
    )
}

/// [`measure`], the RocksDB half writing at most `data_bytes_max` (and at
/// least one batch).
fn measure_up_to(
    dir: &Path,
    batch_entries: u64,
    value_bytes: usize,
    time: Duration,
    data_bytes_max: u64,
) -> anyhow::Result<DiskCeiling> {
    let scratch = tempfile::Builder::new()
        .prefix("calibrate-")
        .tempdir_in(dir)
        .with_context(|| format!("a scratch directory in {}", dir.display()))?;
    let batch_entries = batch_entries.max(1);
    let half = time / 2;

    let engine = Engine::open(scratch.path().join("rocksdb"), &ceiling_engine_config())?;
    let value = vec![0x5a_u8; value_bytes];
    let (mut batches, mut next) = (0u64, 0u64);
    // Each entry: its value and a 26-byte key, plus RocksDB's few bytes.
    let per_batch = batch_entries * (value_bytes as u64 + 32);
    let started = Instant::now();
    while batches == 0 || (started.elapsed() < half && (batches + 1) * per_batch <= data_bytes_max)
    {
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
        entry_bytes: value_bytes as u64,
        rocksdb_batches: batches,
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
        assert_eq!((c.batch_entries, c.entry_bytes), (8, 128));
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

    #[test]
    fn the_rocksdb_measurement_stops_at_its_data_budget() {
        let dir = tempfile::tempdir().unwrap();
        // 64 entries of ~1 KiB a batch: a 1 MiB budget holds 15 batches.
        let c = measure_up_to(dir.path(), 64, 1024, Duration::from_secs(2), 1 << 20).unwrap();
        assert_eq!(c.rocksdb_batches, 15, "{c:?}");
        // A batch larger than the budget is still measured once.
        let c = measure_up_to(dir.path(), 64, 1024, Duration::from_millis(20), 1 << 10).unwrap();
        assert_eq!(c.rocksdb_batches, 1, "{c:?}");
    }
}
