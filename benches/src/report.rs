//! The report of a run: what the clients saw, what the stores did, and
//! how that compares with the disk's raw ceiling measured in the same run.

use std::fmt::Write as _;

use flotilla_raftstore::StatsSnapshot;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::calibrate::DiskCeiling;
use crate::opts::{Distribution, Mode, RaftWrite, Workload};

/// Latency percentiles drawn in the plot and kept in the JSON.
pub const PERCENTILES: [f64; 8] = [50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99, 100.0];

/// The stores' counters over the measured run, summed over stores.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StoreCounters {
    /// Rounds that handled at least one region.
    pub rounds: u64,
    /// Regions handled, summed over rounds.
    pub round_regions: u64,
    /// Synced raft writes.
    pub synced_writes: u64,
    /// Log entries in them.
    pub entries_synced: u64,
    /// Those entries' payload bytes (the commands they carry).
    pub entry_bytes_synced: u64,
    /// Frames of raft messages sent.
    pub flushes: u64,
    /// Messages in them.
    pub messages_flushed: u64,
    /// Frames carrying heartbeats (coalesced, or one per heartbeat when
    /// not batching).
    pub heartbeat_frames: u64,
}

impl StoreCounters {
    /// The sum over stores of `after - before`.
    pub fn delta(before: &[(u64, StatsSnapshot)], after: &[(u64, StatsSnapshot)]) -> Self {
        let mut c = StoreCounters::default();
        for ((_, b), (_, a)) in before.iter().zip(after) {
            c.rounds += a.rounds - b.rounds;
            c.round_regions += a.round_regions - b.round_regions;
            c.synced_writes += a.synced_writes - b.synced_writes;
            c.entries_synced += a.entries_synced - b.entries_synced;
            c.entry_bytes_synced += a.entry_bytes_synced - b.entry_bytes_synced;
            c.flushes += a.flushes - b.flushes;
            c.messages_flushed += a.messages_flushed - b.messages_flushed;
            c.heartbeat_frames += a.heartbeat_frames - b.heartbeat_frames;
        }
        c
    }
}

/// One run, as printed and as written by `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `batched` or `naive` (for a remote cluster: whatever it runs;
    /// reported as asked).
    pub mode: Mode,
    /// Where the local stores wrote their raft batches (`writer` or
    /// `round`; none for naive stores and remote clusters).
    pub raft_write: Option<RaftWrite>,
    /// Whether local stores sent every follower an append each time a
    /// commit index moved (otherwise the commit rides on the next append
    /// or heartbeat).
    pub broadcast_commit: bool,
    /// Bytes of client writes one raft entry took at most (0: one entry
    /// per write).
    pub proposal_batch_bytes_max: u64,
    /// Payload bytes at which a region compacted its raft log before the
    /// entry count did (0: compacted by entries only).
    pub log_gc_threshold_bytes: u64,
    /// The workload.
    pub workload: Workload,
    /// Key choice.
    pub distribution: Distribution,
    /// Stores.
    pub stores: u64,
    /// Regions.
    pub regions: u64,
    /// Requests in flight (with `rate`: at most).
    pub concurrency: usize,
    /// Requests per second asked for on an open-loop schedule (`--rate`);
    /// none for a closed loop.
    pub rate: Option<f64>,
    /// Value size.
    pub value_bytes: usize,
    /// Distinct keys.
    pub keys: u64,
    /// Length of the measured part.
    pub duration_secs: f64,
    /// Operations that succeeded.
    pub ops: u64,
    /// Operations that failed.
    pub errors: u64,
    /// Successful operations per second.
    pub ops_per_sec: f64,
    /// Latency percentiles, milliseconds.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// The slowest.
    pub max_ms: f64,
    /// `(percentile, milliseconds)` for [`PERCENTILES`].
    pub latency_ms: Vec<(f64, f64)>,
    /// Successful operations in each second of the run.
    pub timeline_ops_per_sec: Vec<f64>,
    /// The 99th percentile latency of the requests answered in each whole
    /// second of the run, milliseconds: a stall shows as one bad second
    /// (0 for a second in which none was answered, which
    /// `timeline_ops_per_sec` shows).
    pub timeline_p99_ms: Vec<f64>,
    /// Synced writes per second, all stores.
    pub syncs_per_sec: Option<f64>,
    /// Synced writes per round (at most 1 when batching).
    pub syncs_per_round: Option<f64>,
    /// Log entries per synced write.
    pub entries_per_sync: Option<f64>,
    /// Regions handled per round.
    pub regions_per_round: Option<f64>,
    /// Messages per frame.
    pub messages_per_flush: Option<f64>,
    /// Frames carrying heartbeats per second from one store to another
    /// (averaged over ordered pairs of stores).
    pub heartbeat_frames_per_sec: Option<f64>,
    /// Rounds per second, all stores.
    pub rounds_per_sec: Option<f64>,
    /// Log entries made durable per second, all stores.
    pub persisted_entries_per_sec: Option<f64>,
    /// CPU seconds of this process per 1,000 operations (with a local
    /// cluster: stores and clients together).
    pub cpu_seconds_per_1000_ops: Option<f64>,
    /// The disk's raw ceiling before the load.
    pub ceiling_before: Option<DiskCeiling>,
    /// And after it.
    pub ceiling_after: Option<DiskCeiling>,
    /// Persisted entries per second over the ceiling's entries per second
    /// at the batch size reached (mean of before and after).
    pub ceiling_fraction: Option<f64>,
    /// Rounds per second over the raw 4 KiB fdatasync rate (mean of before
    /// and after).
    pub rounds_fraction_of_raw_sync_rate: Option<f64>,
    /// The stores' raw counters over the run.
    pub counters: Option<StoreCounters>,
    /// Why the run could not be made (in a sweep, which goes on); every
    /// figure is then zero or null.
    pub error: Option<String>,
}

/// Latency (microseconds) at percentile `p`, in milliseconds.
pub fn ms_at(h: &Histogram<u64>, p: f64) -> f64 {
    if h.is_empty() {
        return 0.0;
    }
    h.value_at_percentile(p) as f64 / 1000.0
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// What the clients measured.
#[derive(Debug, Clone)]
pub struct ClientSide {
    /// Latencies of successful operations, microseconds.
    pub hist: Histogram<u64>,
    /// Failed operations.
    pub errors: u64,
    /// Length of the measured part, seconds.
    pub secs: f64,
    /// Successful operations per second of the run.
    pub timeline: Vec<f64>,
    /// 99th percentile latency of each whole second's answers, ms.
    pub timeline_p99_ms: Vec<f64>,
    /// CPU seconds the process used during it.
    pub cpu_secs: Option<f64>,
}

/// The settings a report describes.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// Batching mode.
    pub mode: Mode,
    /// Where the local stores wrote their raft batches.
    pub raft_write: Option<RaftWrite>,
    /// Whether local stores sent followers an append at every commit.
    pub broadcast_commit: bool,
    /// Bytes of client writes one raft entry took at most (0: one entry
    /// per write).
    pub proposal_batch_bytes_max: u64,
    /// Payload bytes at which a region compacted its raft log before the
    /// entry count did (0: compacted by entries only).
    pub log_gc_threshold_bytes: u64,
    /// Workload.
    pub workload: Workload,
    /// Key choice.
    pub distribution: Distribution,
    /// Stores.
    pub stores: u64,
    /// Regions.
    pub regions: u64,
    /// In flight.
    pub concurrency: usize,
    /// Open-loop rate.
    pub rate: Option<f64>,
    /// Value size.
    pub value_bytes: usize,
    /// Keys.
    pub keys: u64,
}

impl Report {
    /// Builds the report from the client's and the stores' view.
    pub fn build(
        s: Setting,
        client: &ClientSide,
        counters: Option<StoreCounters>,
        ceiling_before: Option<DiskCeiling>,
        ceiling_after: Option<DiskCeiling>,
    ) -> Report {
        let ops = client.hist.len();
        let secs = client.secs.max(1e-9);
        let per_sec = |n: u64| n as f64 / secs;
        let pairs = (s.stores * s.stores.saturating_sub(1)).max(1);
        let persisted = counters.map(|c| per_sec(c.entries_synced));
        let rounds_per_sec = counters.map(|c| per_sec(c.rounds));
        let both = |f: fn(&DiskCeiling) -> f64| match (ceiling_before, ceiling_after) {
            (Some(b), Some(a)) => Some((f(&b) + f(&a)) / 2.0),
            (Some(x), None) | (None, Some(x)) => Some(f(&x)),
            (None, None) => None,
        };
        let ceiling_entries = both(|c| c.rocksdb_entries_per_sec);
        let raw_syncs = both(|c| c.fdatasync_4k_per_sec);
        Report {
            mode: s.mode,
            raft_write: s.raft_write,
            broadcast_commit: s.broadcast_commit,
            proposal_batch_bytes_max: s.proposal_batch_bytes_max,
            log_gc_threshold_bytes: s.log_gc_threshold_bytes,
            workload: s.workload,
            distribution: s.distribution,
            stores: s.stores,
            regions: s.regions,
            concurrency: s.concurrency,
            rate: s.rate,
            value_bytes: s.value_bytes,
            keys: s.keys,
            duration_secs: client.secs,
            ops,
            errors: client.errors,
            ops_per_sec: per_sec(ops),
            p50_ms: ms_at(&client.hist, 50.0),
            p95_ms: ms_at(&client.hist, 95.0),
            p99_ms: ms_at(&client.hist, 99.0),
            p999_ms: ms_at(&client.hist, 99.9),
            max_ms: client.hist.max() as f64 / 1000.0,
            latency_ms: PERCENTILES
                .iter()
                .map(|&p| (p, ms_at(&client.hist, p)))
                .collect(),
            timeline_ops_per_sec: client.timeline.clone(),
            timeline_p99_ms: client.timeline_p99_ms.clone(),
            syncs_per_sec: counters.map(|c| per_sec(c.synced_writes)),
            syncs_per_round: counters.and_then(|c| ratio(c.synced_writes, c.rounds)),
            entries_per_sync: counters.and_then(|c| ratio(c.entries_synced, c.synced_writes)),
            regions_per_round: counters.and_then(|c| ratio(c.round_regions, c.rounds)),
            messages_per_flush: counters.and_then(|c| ratio(c.messages_flushed, c.flushes)),
            heartbeat_frames_per_sec: counters.map(|c| per_sec(c.heartbeat_frames) / pairs as f64),
            rounds_per_sec,
            persisted_entries_per_sec: persisted,
            cpu_seconds_per_1000_ops: client
                .cpu_secs
                .filter(|_| ops > 0)
                .map(|c| c * 1000.0 / ops as f64),
            ceiling_before,
            ceiling_after,
            ceiling_fraction: persisted.zip(ceiling_entries).map(|(p, c)| p / c),
            rounds_fraction_of_raw_sync_rate: rounds_per_sec.zip(raw_syncs).map(|(r, c)| r / c),
            counters,
            error: None,
        }
    }

    /// A run that could not be made, and why.
    pub fn failed(s: Setting, error: String) -> Report {
        let client = ClientSide {
            hist: Histogram::new(3).expect("valid histogram"),
            errors: 0,
            secs: 0.0,
            timeline: Vec::new(),
            timeline_p99_ms: Vec::new(),
            cpu_secs: None,
        };
        Report {
            error: Some(error),
            ..Report::build(s, &client, None, None, None)
        }
    }

    /// The report for a terminal.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let opt = |v: Option<f64>, digits: usize| {
            v.map_or_else(|| "-".to_string(), |v| format!("{v:.digits$}"))
        };
        let _ = writeln!(
            s,
            "{:?} workload, {:?} keys ({}), {} B values, {}, {} stores, {} regions, mode {:?}{}{}{}",
            self.workload,
            self.distribution,
            self.keys,
            self.value_bytes,
            match self.rate {
                Some(r) => format!(
                    "open loop at {r:.0} ops/s with at most {} in flight",
                    self.concurrency
                ),
                None => format!("{} in flight", self.concurrency),
            },
            self.stores,
            self.regions,
            self.mode,
            self.raft_write
                .map_or_else(String::new, |w| format!(", raft write in the {w:?}")),
            if self.broadcast_commit {
                ", commit broadcast"
            } else {
                ""
            },
            if self.proposal_batch_bytes_max == 0 {
                ", one entry per write"
            } else {
                ""
            },
        );
        let _ = writeln!(
            s,
            "  ops: {} in {:.1}s = {:.0} ops/s, errors: {}",
            self.ops, self.duration_secs, self.ops_per_sec, self.errors
        );
        let _ = writeln!(
            s,
            "  latency ms: p50 {:.2}  p95 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            self.p50_ms, self.p95_ms, self.p99_ms, self.p999_ms, self.max_ms
        );
        let answered: Vec<(usize, f64)> = (1..)
            .zip(self.timeline_p99_ms.iter().copied())
            .filter(|&(_, p99)| p99 > 0.0)
            .collect();
        if let Some(&(worst_at, worst)) = answered.iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
            let mut sorted: Vec<f64> = answered.iter().map(|&(_, p99)| p99).collect();
            sorted.sort_by(f64::total_cmp);
            let _ = writeln!(
                s,
                "  each second's p99 ms: best {:.2}  median {:.2}  worst {:.2} (second {worst_at})",
                sorted[0],
                sorted[sorted.len() / 2],
                worst,
            );
        }
        let _ = writeln!(
            s,
            "  stores: {} syncs/s, {} syncs/round, {} entries/sync, {} regions/round, {} msgs/flush, {} heartbeat frames/s per store pair",
            opt(self.syncs_per_sec, 0),
            opt(self.syncs_per_round, 3),
            opt(self.entries_per_sync, 1),
            opt(self.regions_per_round, 1),
            opt(self.messages_per_flush, 1),
            opt(self.heartbeat_frames_per_sec, 1),
        );
        let _ = writeln!(
            s,
            "  cpu: {} s per 1,000 ops",
            opt(self.cpu_seconds_per_1000_ops, 3)
        );
        for (when, c) in [
            ("before", self.ceiling_before),
            ("after", self.ceiling_after),
        ] {
            if let Some(c) = c {
                let _ = writeln!(
                    s,
                    "  disk {when}: {:.0} synced RocksDB batches/s of {} entries of {} B = {:.0} entries/s; {:.0} 4 KiB fdatasyncs/s",
                    c.rocksdb_syncs_per_sec,
                    c.batch_entries,
                    c.entry_bytes,
                    c.rocksdb_entries_per_sec,
                    c.fdatasync_4k_per_sec
                );
            }
        }
        let _ = writeln!(
            s,
            "  persisted {} entries/s = {} of the ceiling; {} rounds/s = {} of the raw sync rate",
            opt(self.persisted_entries_per_sec, 0),
            opt(self.ceiling_fraction, 3),
            opt(self.rounds_per_sec, 0),
            opt(self.rounds_fraction_of_raw_sync_rate, 3),
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting() -> Setting {
        Setting {
            mode: Mode::Batched,
            raft_write: Some(RaftWrite::Writer),
            broadcast_commit: false,
            proposal_batch_bytes_max: 64 << 10,
            log_gc_threshold_bytes: 256 << 10,
            workload: Workload::Write,
            distribution: Distribution::Uniform,
            stores: 3,
            regions: 10,
            concurrency: 4,
            rate: None,
            value_bytes: 128,
            keys: 1000,
        }
    }

    #[test]
    fn a_report_derives_its_ratios_from_the_counts() {
        let mut hist = Histogram::<u64>::new(3).unwrap();
        for us in 1..=1000 {
            hist.record(us * 10).unwrap();
        }
        let client = ClientSide {
            hist,
            errors: 2,
            secs: 2.0,
            timeline: vec![500.0, 500.0],
            timeline_p99_ms: vec![1.5, 0.0, 9.0],
            cpu_secs: Some(1.0),
        };
        let counters = StoreCounters {
            rounds: 400,
            round_regions: 2000,
            synced_writes: 400,
            entries_synced: 3000,
            entry_bytes_synced: 3000 * 170,
            flushes: 800,
            messages_flushed: 4000,
            heartbeat_frames: 120,
        };
        let ceiling = DiskCeiling {
            batch_entries: 8,
            entry_bytes: 170,
            rocksdb_batches: 1000,
            rocksdb_syncs_per_sec: 1000.0,
            rocksdb_entries_per_sec: 3000.0,
            fdatasync_4k_per_sec: 2000.0,
        };
        let r = Report::build(
            setting(),
            &client,
            Some(counters),
            Some(ceiling),
            Some(ceiling),
        );
        assert_eq!(r.ops, 1000);
        assert!((r.ops_per_sec - 500.0).abs() < 1e-9);
        assert!((r.p50_ms - 5.0).abs() < 0.01, "{}", r.p50_ms);
        assert_eq!(r.syncs_per_round, Some(1.0));
        assert_eq!(r.entries_per_sync, Some(7.5));
        assert_eq!(r.regions_per_round, Some(5.0));
        assert_eq!(r.messages_per_flush, Some(5.0));
        assert_eq!(
            r.heartbeat_frames_per_sec,
            Some(10.0),
            "120 frames / 2 s / 6 pairs"
        );
        assert_eq!(r.persisted_entries_per_sec, Some(1500.0));
        assert_eq!(r.ceiling_fraction, Some(0.5));
        assert_eq!(r.rounds_fraction_of_raw_sync_rate, Some(0.1));
        assert_eq!(r.cpu_seconds_per_1000_ops, Some(1.0));
        let json = serde_json::to_value(&r).unwrap();
        for k in [
            "ops_per_sec",
            "p50_ms",
            "p99_ms",
            "syncs_per_sec",
            "syncs_per_round",
            "entries_per_sync",
            "messages_per_flush",
            "heartbeat_frames_per_sec",
            "regions",
            "stores",
            "mode",
            "raft_write",
            "broadcast_commit",
            "proposal_batch_bytes_max",
            "log_gc_threshold_bytes",
            "ceiling_fraction",
        ] {
            assert!(json.get(k).is_some(), "{k} missing from the JSON");
        }
        assert_eq!(json["mode"], "batched");
        assert_eq!(json["raft_write"], "writer");
        assert!(r.render().contains("500 ops/s"));
        assert_eq!(json["timeline_p99_ms"], serde_json::json!([1.5, 0.0, 9.0]));
        // The second without answers is left out.
        assert!(
            r.render()
                .contains("each second's p99 ms: best 1.50  median 9.00  worst 9.00 (second 3)"),
            "{}",
            r.render()
        );
    }

    #[test]
    fn without_store_counters_the_store_columns_are_null() {
        let client = ClientSide {
            hist: Histogram::<u64>::new(3).unwrap(),
            errors: 0,
            secs: 1.0,
            timeline: vec![],
            timeline_p99_ms: vec![],
            cpu_secs: None,
        };
        let r = Report::build(setting(), &client, None, None, None);
        let json = serde_json::to_value(&r).unwrap();
        assert!(json["syncs_per_sec"].is_null() && json["ceiling_fraction"].is_null());
        assert_eq!(r.ops_per_sec, 0.0);
        let failed = Report::failed(setting(), "no leader".into());
        assert_eq!(serde_json::to_value(&failed).unwrap()["error"], "no leader");
        assert_eq!(failed.ops, 0);
    }
}
