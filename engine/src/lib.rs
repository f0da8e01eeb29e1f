//! Flotilla's storage engine: one RocksDB instance per store, shared by the
//! thousands of raft groups (regions) the store hosts.
//!
//! This is the only crate in the workspace that links RocksDB; everything
//! above it sees the types here (`Engine`, `WriteBatch`, `EngineSnapshot`,
//! `RegionLogStorage`, `Error`) and plain protobuf types, never a RocksDB
//! type. It must never depend on the store (`raftstore`, `batch-system`),
//! the transport or any other crate above it: only on `flotilla-proto` and
//! the raft core's `Storage` trait.
//!
//! - [`Engine`]: open with column families for raft log entries, raft
//!   state, region metadata + apply state, and user data (layouts byte by
//!   byte in `docs/storage-format.md`); reads of user data, bounded by a
//!   region's range; consistent snapshots ([`EngineSnapshot`]).
//! - [`WriteBatch`]: everything one round writes for every region, committed
//!   by one [`Engine::write`] with an explicit sync flag.
//! - [`RegionLogStorage`]: one region's raft log and states, implementing
//!   `flotilla_raft::Storage`, with an entry cache bounded per region and
//!   per store ([`EntryCacheBudget`]).
//! - Region snapshots: a region's range exported from a consistent view
//!   ([`EngineSnapshot::export_region`]) and ingested on another store
//!   ([`RegionSnapshotData`], [`WriteBatch::ingest_region`]).
//! - [`WriteSink`] and [`FaultyWriteSink`]: the write path as a trait, and a
//!   failing/counting wrapper for crash-path tests.
//!
//! Data read back from disk never causes a panic: what fails to decode is
//! [`Error::Corruption`]. Panics are reserved for callers breaking a
//! documented contract (a gap in appended entries, compacting unapplied
//! entries), which are bugs.

#![deny(missing_docs)]

mod batch;
mod config;
mod crc;
mod engine;
mod entry_cache;
mod error;
mod fault;
pub mod keys;
mod log_storage;
mod read;
mod region;
mod region_snapshot;
mod snapshot;

pub use batch::{WriteBatch, WriteStats};
pub use config::EngineConfig;
pub use engine::Engine;
pub use entry_cache::EntryCacheBudget;
pub use error::{Error, Result};
pub use fault::{FaultMode, FaultyWriteSink, WriteCounts, WriteSink};
pub use log_storage::RegionLogStorage;
pub use read::KvPair;
pub use region::{check_key_in_region, conf_state_from_region, region_contains};
pub use region_snapshot::RegionSnapshotData;
pub use snapshot::EngineSnapshot;
