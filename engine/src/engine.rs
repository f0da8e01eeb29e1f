//! `Engine`: one RocksDB instance per store, its column families, the write
//! path and the reads of the latest state.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use rocksdb::{
    ColumnFamilyDescriptor, DB, DBCompressionType, DBRecoveryMode, Options, WriteOptions,
};
use tracing::info;

use flotilla_proto::metapb::Region;
use flotilla_proto::storagepb::{RaftApplyState, RaftLocalState, RegionLocalState};

use crate::batch::{WriteBatch, WriteStats};
use crate::config::EngineConfig;
use crate::entry_cache::EntryCacheBudget;
use crate::error::{Error, Result};
use crate::keys::{self, ALL_CFS, CF_DATA, CF_DEFAULT, CF_RAFT_LOG, CF_RAFT_STATE, CF_REGION_META};
use crate::read::{KvPair, Reader, cf_handle};
use crate::snapshot::EngineSnapshot;

/// A store's storage engine: cheap to clone (clones share one database)
/// and safe to use from many threads.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    db: DB,
    path: PathBuf,
    // Built once, explicitly, at open: the sync flag of every write is the
    // caller's explicit choice between these two.
    write_synced: WriteOptions,
    write_unsynced: WriteOptions,
    cache_budget: Arc<EntryCacheBudget>,
    config: EngineConfig,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing writes the WAL buffer out; syncing it too leaves nothing
        // of a clean close to chance.
        if self.config.manual_wal_flush
            && let Err(e) = self.db.flush_wal(true)
        {
            tracing::warn!(path = %self.path.display(), error = %e, "WAL not synced at close");
        }
    }
}

fn db_options(config: &EngineConfig) -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(config.create_if_missing);
    opts.create_missing_column_families(config.create_if_missing);
    // Durability settings, all explicit. A crash loses at most the writes
    // that were not synced; recovery replays the WAL up to the first torn or
    // corrupt record and stops there, so the result is a prefix of the
    // acknowledged writes (never a batch in part).
    opts.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
    opts.set_manual_wal_flush(config.manual_wal_flush);
    // Allowed with point-in-time recovery (RocksDB turns recycling off for
    // the two recovery modes it is unsafe with).
    opts.set_recycle_log_file_num(config.wal_recycle_files);
    opts.set_use_fsync(false); // fdatasync, enough for the WAL's appends
    opts.set_paranoid_checks(true);
    // Every write goes through the WAL, which makes a batch spanning column
    // families atomic on recovery; atomic flush is only needed without WAL.
    opts.set_atomic_flush(false);
    opts.set_max_total_wal_size(config.wal_total_bytes_max);
    opts.set_max_background_jobs(config.background_jobs);
    if config.background_write_bytes_per_sec > 0 {
        let rate = i64::try_from(config.background_write_bytes_per_sec).unwrap_or(i64::MAX);
        opts.set_ratelimiter(rate, BACKGROUND_WRITE_REFILL_MICROS, 10);
    }
    opts
}

/// How often the background write budget is refilled: small slices keep
/// a paced compaction from writing in bursts.
const BACKGROUND_WRITE_REFILL_MICROS: i64 = 10_000;

/// How many leading bytes of a key name its region in the CFs keyed by
/// region: the CF's tag byte and the region id (`docs/storage-format.md`).
const REGION_PREFIX_BYTES: usize = 9;

fn cf_options(name: &str, config: &EngineConfig) -> Result<Options> {
    let mut opts = Options::default();
    opts.set_write_buffer_size(match name {
        CF_RAFT_STATE | CF_REGION_META => config.state_write_buffer_bytes,
        CF_RAFT_LOG => config.raft_log_write_buffer_bytes,
        _ => config.write_buffer_bytes,
    });
    opts.set_max_write_buffer_number(config.write_buffers_max);
    let compress = config.compression && (name == CF_DATA || name == CF_RAFT_LOG);
    if compress {
        // The first two levels are rewritten soonest (and the raft log
        // rarely lives past them): compressing them costs CPU on every
        // flush and compaction for little space.
        use DBCompressionType::{Lz4, None as Plain};
        opts.set_compression_per_level(&[Plain, Plain, Lz4, Lz4, Lz4, Lz4, Lz4]);
    } else {
        opts.set_compression_type(DBCompressionType::None);
    }
    if matches!(name, CF_RAFT_LOG | CF_RAFT_STATE | CF_REGION_META) {
        // Each region's keys are written in order (log appends) or in place
        // (state records), interleaved with other regions' in one batch: the
        // memtable keeps, per region prefix, where its last insert landed and
        // starts the next one's skip-list search there instead of at the top.
        // RocksDB uses these hints when it inserts a write group serially
        // (the writer threads' raft batches go that way, per `perf`); a group
        // inserted in parallel goes without. Only settable through RocksDB's
        // option string.
        opts = opts.get_options_from_string(format!(
            "memtable_insert_with_hint_prefix_extractor=rocksdb.FixedPrefix.{REGION_PREFIX_BYTES}"
        ))?;
    }
    Ok(opts)
}

fn write_options(sync: bool) -> WriteOptions {
    let mut opts = WriteOptions::default();
    opts.set_sync(sync);
    opts.disable_wal(false);
    opts
}

impl Engine {
    /// Opens (or, with `create_if_missing`, creates) the database at `path`
    /// with all of the engine's column families, and checks its format.
    pub fn open(path: impl AsRef<Path>, config: &EngineConfig) -> Result<Engine> {
        let path = path.as_ref().to_path_buf();
        let cfs = ALL_CFS
            .iter()
            .map(|name| {
                Ok(ColumnFamilyDescriptor::new(
                    *name,
                    cf_options(name, config)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let db = DB::open_cf_descriptors(&db_options(config), &path, cfs)?;
        check_format(&db)?;
        info!(path = %path.display(), "engine opened");
        Ok(Engine {
            inner: Arc::new(Inner {
                db,
                path,
                write_synced: write_options(true),
                write_unsynced: write_options(false),
                cache_budget: Arc::new(EntryCacheBudget::new(config.entry_cache_store_bytes_max)),
                config: config.clone(),
            }),
        })
    }

    pub(crate) fn db(&self) -> &DB {
        &self.inner.db
    }

    pub(crate) fn reader(&self) -> Reader<'_> {
        Reader {
            db: &self.inner.db,
            snapshot: None,
        }
    }

    /// The directory of the database.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The configuration the engine was opened with.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The entry-cache byte budget shared by every region of this store.
    pub fn entry_cache_budget(&self) -> &Arc<EntryCacheBudget> {
        &self.inner.cache_budget
    }

    /// A new, empty batch for this engine.
    pub fn write_batch(&self) -> WriteBatch {
        WriteBatch::new(self.clone())
    }

    /// Commits `batch` atomically: after a crash either all of it or none
    /// of it is there. With `sync`, the WAL is synced to disk before this
    /// returns, so the batch (and every earlier one) survives a crash;
    /// without, it survives a process crash but not a machine crash, or,
    /// with [`EngineConfig::manual_wal_flush`], neither until a later
    /// synced write (or a clean close).
    ///
    /// With `manual_wal_flush`, a synced write goes into the WAL buffer
    /// like any other, then the buffer is written out and synced outside
    /// RocksDB's write queue, so that other threads' writes do not wait
    /// for the sync.
    ///
    /// An empty batch with `sync` still syncs the WAL, making earlier
    /// unsynced writes durable.
    ///
    /// # Panics
    ///
    /// If `batch` was created by another engine.
    pub fn write(&self, batch: WriteBatch, sync: bool) -> Result<WriteStats> {
        assert!(
            Arc::ptr_eq(&batch.engine().inner, &self.inner),
            "write batch of engine {} written to engine {}",
            batch.engine().path().display(),
            self.path().display()
        );
        let stats = batch.stats();
        if batch.is_empty() {
            if sync {
                self.inner.db.flush_wal(true)?;
            }
            return Ok(stats);
        }
        // With a buffered WAL the sync is `FlushWAL`'s, after the write.
        let flush_and_sync = sync && self.inner.config.manual_wal_flush;
        let opts = if sync && !flush_and_sync {
            &self.inner.write_synced
        } else {
            &self.inner.write_unsynced
        };
        self.inner.db.write_opt(batch.into_raw(), opts)?;
        if flush_and_sync {
            self.inner.db.flush_wal(true)?;
        }
        Ok(stats)
    }

    /// A consistent, point-in-time view of the whole engine.
    pub fn snapshot(&self) -> EngineSnapshot<'_> {
        EngineSnapshot::new(self)
    }

    /// The value of user key `key`; `OutOfRange` unless `key` lies in
    /// `region`.
    pub fn get(&self, region: &Region, key: &[u8]) -> Result<Option<Bytes>> {
        self.reader().get_data(region, key)
    }

    /// Up to `limit` user pairs of `region` in key order, from `start` on
    /// (`start` empty: from the region's start). `OutOfRange` if a
    /// non-empty `start` lies outside the region.
    pub fn scan(&self, region: &Region, start: &[u8], limit: usize) -> Result<Vec<KvPair>> {
        self.reader().scan_data(region, start, limit)
    }

    /// The `RegionLocalState` of every region stored, in region id order:
    /// what a store recovers on restart.
    pub fn region_states(&self) -> Result<Vec<RegionLocalState>> {
        self.reader().region_states()
    }

    /// A region's `RegionLocalState`, if stored.
    pub fn region_state(&self, region_id: u64) -> Result<Option<RegionLocalState>> {
        self.reader().region_state(region_id)
    }

    /// A region's `RaftLocalState`, if stored.
    pub fn raft_state(&self, region_id: u64) -> Result<Option<RaftLocalState>> {
        self.reader().raft_state(region_id)
    }

    /// A region's `RaftApplyState`, if stored.
    pub fn apply_state(&self, region_id: u64) -> Result<Option<RaftApplyState>> {
        self.reader().apply_state(region_id)
    }

    /// The indexes of every log entry stored for a region, in order, read
    /// from disk (keys only). A diagnostic for tools and tests: a healthy
    /// region has exactly `first_index..=last_index`.
    pub fn raft_log_indexes(&self, region_id: u64) -> Result<Vec<u64>> {
        let lower = keys::raft_log_key(region_id, 0);
        let upper = keys::raft_log_region_end(region_id);
        let mut out = Vec::new();
        self.reader()
            .for_each(CF_RAFT_LOG, &lower, &upper, |k, _| {
                out.push(keys::decode_raft_log_key(k)?.1);
                Ok(true)
            })?;
        Ok(out)
    }
}

/// Writes the format marker into a new database, or checks that an
/// existing one has the format this code reads.
fn check_format(db: &DB) -> Result<()> {
    let cf = cf_handle(db, CF_DEFAULT);
    match db.get_cf(cf, keys::FORMAT_VERSION_KEY)? {
        Some(v) => {
            let version = <[u8; 4]>::try_from(v.as_slice())
                .map(u32::from_be_bytes)
                .map_err(|_| Error::corruption(format!("format marker of {} bytes", v.len())))?;
            if version != keys::FORMAT_VERSION {
                return Err(Error::corruption(format!(
                    "on-disk format version {version}, this build reads {}",
                    keys::FORMAT_VERSION
                )));
            }
            Ok(())
        }
        None => {
            let mut batch = rocksdb::WriteBatch::default();
            batch.put_cf(
                cf,
                keys::FORMAT_VERSION_KEY,
                keys::FORMAT_VERSION.to_be_bytes(),
            );
            db.write_opt(batch, &write_options(true))?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_keyed_cfs_insert_with_a_per_region_hint() {
        // The hint's prefix is exactly the part of each key naming the region.
        let (a, b) = (keys::raft_log_key(7, 1), keys::raft_log_key(7, u64::MAX));
        assert_eq!(a[..REGION_PREFIX_BYTES], b[..REGION_PREFIX_BYTES]);
        assert_ne!(
            a[..REGION_PREFIX_BYTES],
            keys::raft_log_key(8, 1)[..REGION_PREFIX_BYTES]
        );
        assert_eq!(keys::raft_state_key(7).len(), REGION_PREFIX_BYTES);
        assert_eq!(
            keys::region_state_key(7)[..REGION_PREFIX_BYTES],
            keys::apply_state_key(7)[..REGION_PREFIX_BYTES]
        );

        // RocksDB took the option: its options file records it per CF.
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), &EngineConfig::for_tests()).unwrap();
        let options_file = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("OPTIONS-")
            })
            .expect("an OPTIONS file");
        let text = std::fs::read_to_string(options_file).unwrap();
        let hint_of = |cf: &str| {
            let section = text.split(&format!("[CFOptions \"{cf}\"]")).nth(1).unwrap();
            let section = section.split("[CFOptions").next().unwrap();
            section
                .lines()
                .find_map(|l| {
                    l.trim()
                        .strip_prefix("memtable_insert_with_hint_prefix_extractor=")
                })
                .unwrap()
                .to_string()
        };
        for cf in [CF_RAFT_LOG, CF_RAFT_STATE, CF_REGION_META] {
            assert_eq!(hint_of(cf), "rocksdb.FixedPrefix.9", "{cf}");
        }
        assert_eq!(hint_of(CF_DATA), "nullptr");
        drop(engine);
    }

    #[test]
    fn a_database_of_another_format_version_does_not_open() {
        let dir = tempfile::tempdir().unwrap();
        let config = EngineConfig::for_tests();
        let engine = Engine::open(dir.path(), &config).unwrap();
        let mut wb = engine.write_batch();
        wb.put_raw(CF_DEFAULT, keys::FORMAT_VERSION_KEY, &2u32.to_be_bytes());
        engine.write(wb, true).unwrap();
        drop(engine);
        let err = Engine::open(dir.path(), &config).unwrap_err();
        assert!(err.is_corruption(), "{err}");
        assert!(err.to_string().contains("version 2"), "{err}");
    }

    #[test]
    fn write_reports_what_the_batch_held() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), &EngineConfig::for_tests()).unwrap();
        let mut wb = engine.write_batch();
        wb.put_data(b"k", b"v");
        wb.delete_data(b"j");
        wb.put_raft_entry(1, &Default::default());
        let stats = engine.write(wb, true).unwrap();
        assert_eq!(
            (
                stats.puts,
                stats.deletes,
                stats.raft_entries,
                stats.data_ops
            ),
            (2, 1, 1, 2)
        );
        assert!(stats.bytes > 0);
        // An empty synced write is a WAL sync and reports nothing.
        let stats = engine.write(engine.write_batch(), true).unwrap();
        assert_eq!(
            stats,
            WriteStats {
                bytes: stats.bytes,
                ..Default::default()
            }
        );
    }

    #[test]
    #[should_panic(expected = "written to engine")]
    fn a_batch_of_another_engine_is_refused() {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let e1 = Engine::open(d1.path(), &EngineConfig::for_tests()).unwrap();
        let e2 = Engine::open(d2.path(), &EngineConfig::for_tests()).unwrap();
        let _ = e2.write(e1.write_batch(), false);
    }
}
