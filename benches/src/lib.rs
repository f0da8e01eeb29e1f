//! Flotilla's load generator, run as `flotilla bench`.
//!
//! It starts a local cluster (or connects to one by address), loads it with
//! a YCSB-style workload through the embedded client, and reports what the
//! clients saw (throughput, latency percentiles from an HDR histogram)
//! beside what the stores did (syncs, entries per sync, regions per round,
//! messages per flush, heartbeat frames) and what the disk can do at best,
//! measured in the same run ([`calibrate`]). `--mode naive` runs the same
//! cluster with cross-region batching off, so the gain from batching is
//! measured, not claimed; `flotilla bench sweep` does both modes over a
//! range of region counts.

pub mod calibrate;
pub mod cluster;
pub mod opts;
pub mod pace;
pub mod plot;
pub mod report;
pub mod run;
pub mod workload;

pub use opts::{BenchArgs, BenchCommand, BenchSub, Common, Mode, SweepArgs, Workload};
pub use run::main;
