//! The engine's configuration. Everything that affects durability is set
//! explicitly when the database is opened; nothing is left to RocksDB's
//! defaults by accident.

/// How to open an [`Engine`](crate::Engine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Create the database (and its column families) if it does not exist.
    /// When false, opening a missing database is an error.
    pub create_if_missing: bool,
    /// Memtable size of the data column family (and the default one), in bytes.
    /// Smaller memtables make each insert a little cheaper (a shallower
    /// skip list), but flush more often: at 4 MiB a local 3-store cluster
    /// writing ~60k puts/s filled them faster than the one flush thread
    /// the stores share could write them out, RocksDB stopped every write
    /// (raft log and acknowledgements included) for over a second, and
    /// leaders stepped down for want of a quorum. At 32 MiB the same load
    /// ran without a stop (docs/benchmarks.md, "Writes that share an
    /// entry").
    pub write_buffer_bytes: usize,
    /// Memtable size of the raft log column family, in bytes. Entries are
    /// deleted soon after they apply (log garbage collection); a memtable
    /// that outlives them flushes only the deletion instead of writing the
    /// entries to an SST and compacting them away later. Appends are
    /// sequential per region, so the size hardly affects insert cost.
    pub raft_log_write_buffer_bytes: usize,
    /// Memtable size of the two state column families (raft state, region
    /// metadata), in bytes. They hold one small record per region that is
    /// rewritten every round the region writes, so a large memtable is
    /// mostly old versions of the same keys: a small one keeps the skip list
    /// shallow and flushes to a few bytes.
    pub state_write_buffer_bytes: usize,
    /// Memtables a column family may hold at once, the one written and
    /// those waiting to be flushed. When a flush is late (the flush thread
    /// busy with another column family or deleting obsolete WAL files) and
    /// this many are full, RocksDB stops every write until one is flushed.
    pub write_buffers_max: i32,
    /// Total WAL size past which RocksDB flushes the column families that
    /// pin the oldest WAL file, in bytes. The state column families rarely
    /// fill a memtable, so this is what frees old WAL files; the larger it
    /// is, the more files one such flush deletes at once (at 512 MiB, ~90
    /// files: ~0.4 s of the flush thread, long enough for writes to stop,
    /// docs/benchmarks.md) and the more a restart replays.
    pub wal_total_bytes_max: u64,
    /// Keep unsynced writes in RocksDB's WAL buffer (no system call) until
    /// the next synced write, which writes the buffer out and syncs it
    /// outside RocksDB's write queue: writes made meanwhile by other
    /// threads do not wait for that sync. Unsynced writes then survive
    /// neither a machine crash nor a process crash until a synced write
    /// (or a clean close) follows; the store never relies on them
    /// surviving either.
    pub manual_wal_flush: bool,
    /// Obsolete WAL files kept to be written over by later WALs instead of
    /// deleted (0: never). A sync of a write into a file's existing blocks
    /// changes neither the file's size nor its blocks, so the file system
    /// writes no metadata with it: on the reference machine a 4 KiB write and
    /// `fdatasync` took ~160 µs and ~60 µs of CPU over existing blocks
    /// against ~230 µs and ~90 µs appended (docs/benchmarks.md). Recovery
    /// tells a recycled file's old records from new ones by the log number
    /// each record carries.
    pub wal_recycle_files: usize,
    /// RocksDB background threads for flushes and compactions.
    pub background_jobs: i32,
    /// Bytes per second that flushes and compactions together may write
    /// (RocksDB's rate limiter, refilled every 10 ms, flushes served
    /// first); 0: no limit. A compaction otherwise runs as fast as a core
    /// allows and takes that core from the raft threads for its whole
    /// length (~0.1-0.2 s every ~2 s per store at 45k puts/s on the
    /// reference machine); paced, it shares it. Set above what the load
    /// needs on average — a store whose compactions fall behind collects
    /// level-0 files and RocksDB slows its writes (docs/benchmarks.md).
    pub background_write_bytes_per_sec: u64,
    /// Compress user data and raft log blocks with LZ4.
    pub compression: bool,
    /// Entry cache: the most entries one region keeps in memory.
    pub entry_cache_region_entries_max: usize,
    /// Entry cache: the most bytes (encoded entry sizes) one region keeps.
    pub entry_cache_region_bytes_max: u64,
    /// Entry cache: the bytes all regions of the store keep together. A
    /// region that appends while the store is over this budget evicts its
    /// own oldest entries (see [`EntryCacheBudget`](crate::EntryCacheBudget)).
    pub entry_cache_store_bytes_max: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            create_if_missing: true,
            write_buffer_bytes: 32 << 20,
            raft_log_write_buffer_bytes: 32 << 20,
            state_write_buffer_bytes: 2 << 20,
            write_buffers_max: 4,
            wal_total_bytes_max: 128 << 20,
            manual_wal_flush: true,
            wal_recycle_files: 4,
            background_jobs: 2,
            background_write_bytes_per_sec: 64 << 20,
            compression: true,
            entry_cache_region_entries_max: 1024,
            entry_cache_region_bytes_max: 4 << 20,
            entry_cache_store_bytes_max: 256 << 20,
        }
    }
}

impl EngineConfig {
    /// A small configuration for tests: small memtables so that tests also
    /// exercise flushed (SST) data, and a small entry cache.
    pub fn for_tests() -> Self {
        Self {
            write_buffer_bytes: 1 << 20,
            raft_log_write_buffer_bytes: 1 << 20,
            state_write_buffer_bytes: 256 << 10,
            wal_total_bytes_max: 16 << 20,
            entry_cache_region_entries_max: 64,
            entry_cache_region_bytes_max: 64 << 10,
            entry_cache_store_bytes_max: 1 << 20,
            ..Self::default()
        }
    }
}
