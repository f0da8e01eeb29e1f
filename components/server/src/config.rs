//! `store.toml`: one store's configuration, read and checked at start.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use flotilla_raftstore::{LOG_GC_THRESHOLD_BYTES, PROPOSAL_BATCH_BYTES_MAX, StoreConfig};
use flotilla_transport::TransportConfig;
use serde::Deserialize;

/// The file's shape. Unknown keys are errors.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// This store's id, unique in the cluster.
    pub store_id: u64,
    /// Where the store keeps its data.
    pub data_dir: PathBuf,
    /// The raft (store-to-store) address to listen on.
    pub listen: SocketAddr,
    /// The status server's address (`/metrics`, `/health`).
    pub status: SocketAddr,
    /// Where clients reach the store over the network (none: embedded
    /// use only).
    #[serde(default)]
    pub client: Option<SocketAddr>,
    /// Every other store's raft address, by store id.
    #[serde(default)]
    pub peers: BTreeMap<String, SocketAddr>,
    /// The cluster a new data directory is bootstrapped into.
    #[serde(default)]
    pub bootstrap: Bootstrap,
    /// The logical clock.
    #[serde(default)]
    pub raft: Raft,
    /// Thread counts and bounds.
    #[serde(default)]
    pub limits: Limits,
    /// How snapshots travel between stores.
    #[serde(default)]
    pub snapshot: Snapshot,
}

/// Snapshot streaming: chunk size, rate and how many at once.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Data bytes per chunk frame; at most `limits.frame_bytes_max`.
    pub chunk_bytes: usize,
    /// Snapshot bytes sent per second by this store; 0 for no limit.
    pub bytes_per_sec: u64,
    /// Snapshots sent at once.
    pub sends_max: usize,
    /// Snapshots received at once; more are refused and retried later.
    pub receives_max: usize,
    /// The largest snapshot accepted, in bytes.
    pub bytes_max: u64,
    /// How long one write, or the wait for the receiver's answer, may take.
    pub io_timeout_ms: u64,
}

impl Default for Snapshot {
    fn default() -> Self {
        let t = TransportConfig::new(0, BTreeMap::new());
        Snapshot {
            chunk_bytes: t.snapshot_chunk_bytes,
            bytes_per_sec: t.snapshot_bytes_per_sec,
            sends_max: t.snapshot_sends_max,
            receives_max: t.snapshot_receives_max,
            bytes_max: t.snapshot_bytes_max,
            io_timeout_ms: u64::try_from(t.snapshot_io_timeout.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// What an empty data directory is bootstrapped with. Every store of a new
/// cluster must be given the same values: each computes the same plan.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bootstrap {
    /// Initial regions, cutting the key space `k0000000`..`k9999999` evenly
    /// (1: one region for the whole key space).
    pub regions: u64,
    /// Replicas of each region.
    pub replicas: usize,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Bootstrap {
            regions: 1,
            replicas: 3,
        }
    }
}

/// The logical clock and the lease.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raft {
    /// One tick.
    pub tick_ms: u64,
    /// Ticks without a leader before a follower campaigns.
    pub election_ticks: usize,
    /// Ticks between heartbeats.
    pub heartbeat_ticks: usize,
    /// A leader lease; must be shorter than the election timeout
    /// (`tick_ms * election_ticks`), the difference covering clock drift.
    pub lease_ms: u64,
    /// Send every follower an append each time a region's commit index
    /// moves. Off (the default), the commit rides on the next append or
    /// heartbeat, and followers apply up to `heartbeat_ticks` later.
    #[serde(default)]
    pub broadcast_commit: bool,
    /// Client writes a leader takes in one turn join one raft entry up to
    /// this many bytes (0: one entry per write).
    #[serde(default = "proposal_batch_bytes_max")]
    pub proposal_batch_bytes_max: u64,
    /// Payload bytes a region's raft log may hold before it is compacted
    /// (0: only every 1,024 applied entries).
    #[serde(default = "log_gc_threshold_bytes")]
    pub log_gc_threshold_bytes: u64,
}

fn proposal_batch_bytes_max() -> u64 {
    PROPOSAL_BATCH_BYTES_MAX
}

fn log_gc_threshold_bytes() -> u64 {
    LOG_GC_THRESHOLD_BYTES
}

impl Default for Raft {
    fn default() -> Self {
        Raft {
            tick_ms: 100,
            election_ticks: 10,
            heartbeat_ticks: 2,
            lease_ms: 800,
            broadcast_commit: false,
            proposal_batch_bytes_max: proposal_batch_bytes_max(),
            log_gc_threshold_bytes: log_gc_threshold_bytes(),
        }
    }
}

/// Threads and bounds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Poller threads.
    pub pollers: usize,
    /// Regions per round at most.
    pub round_regions_max: usize,
    /// A region's mailbox bound.
    pub mailbox_capacity: usize,
    /// The largest frame between stores, in bytes.
    pub frame_bytes_max: u64,
    /// Bytes queued for one store at most.
    pub send_queue_bytes_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            pollers: 2,
            round_regions_max: 256,
            mailbox_capacity: 4096,
            frame_bytes_max: 64 << 20,
            send_queue_bytes_max: 64 << 20,
        }
    }
}

/// A checked configuration, split for the crates that take it.
#[derive(Debug)]
pub struct Checked {
    pub store: StoreConfig,
    pub transport: TransportConfig,
    pub listen: SocketAddr,
    pub status: SocketAddr,
    pub client: Option<SocketAddr>,
    pub bootstrap: Bootstrap,
    /// Every store of the cluster, this one included.
    pub store_ids: Vec<u64>,
}

impl FileConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> anyhow::Result<Checked> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: FileConfig =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        file.check()
    }

    /// Checks the values against each other.
    pub fn check(self) -> anyhow::Result<Checked> {
        ensure!(self.store_id != 0, "store_id must not be 0");
        let r = &self.raft;
        ensure!(r.tick_ms > 0, "raft.tick_ms must be positive");
        ensure!(
            r.election_ticks > 0 && r.heartbeat_ticks > 0,
            "raft ticks must be positive"
        );
        let election_ms = r.tick_ms * r.election_ticks as u64;
        ensure!(
            r.lease_ms < election_ms,
            "raft.lease_ms ({}) must be shorter than the election timeout ({election_ms} ms)",
            r.lease_ms
        );
        let mut peers = BTreeMap::new();
        for (id, addr) in &self.peers {
            let id: u64 = id
                .parse()
                .with_context(|| format!("peers: {id:?} is not a store id"))?;
            ensure!(id != 0 && id != self.store_id, "peers: bad store id {id}");
            peers.insert(id, *addr);
        }
        ensure!(
            self.bootstrap.regions > 0 && self.bootstrap.replicas > 0,
            "bootstrap needs regions and replicas"
        );
        if self.data_dir.exists() && !self.data_dir.is_dir() {
            bail!("data_dir {} is not a directory", self.data_dir.display());
        }
        let mut store = StoreConfig::new(self.store_id, &self.data_dir);
        store.tick_interval = Duration::from_millis(r.tick_ms);
        store.election_ticks = r.election_ticks;
        store.heartbeat_ticks = r.heartbeat_ticks;
        store.broadcast_commit = r.broadcast_commit;
        store.proposal_batch_bytes_max = r.proposal_batch_bytes_max;
        store.log_gc_threshold_bytes = r.log_gc_threshold_bytes;
        store.lease_drift_margin = Duration::from_millis(election_ms - r.lease_ms);
        store.pool_size = self.limits.pollers;
        store.round_regions_max = self.limits.round_regions_max;
        store.mailbox_capacity = self.limits.mailbox_capacity;
        store.seed = self.store_id;
        store.validate().map_err(anyhow::Error::msg)?;
        let snap = &self.snapshot;
        ensure!(
            snap.chunk_bytes > 0 && snap.chunk_bytes as u64 <= self.limits.frame_bytes_max,
            "snapshot.chunk_bytes ({}) must be positive and at most limits.frame_bytes_max ({})",
            snap.chunk_bytes,
            self.limits.frame_bytes_max
        );
        ensure!(
            snap.sends_max > 0 && snap.receives_max > 0 && snap.io_timeout_ms > 0,
            "snapshot.sends_max, receives_max and io_timeout_ms must be positive"
        );
        let mut transport = TransportConfig::new(self.store_id, peers.clone());
        transport.frame_bytes_max = self.limits.frame_bytes_max;
        transport.send_queue_bytes_max = self.limits.send_queue_bytes_max;
        transport.snapshot_chunk_bytes = snap.chunk_bytes;
        transport.snapshot_bytes_per_sec = snap.bytes_per_sec;
        transport.snapshot_sends_max = snap.sends_max;
        transport.snapshot_receives_max = snap.receives_max;
        transport.snapshot_bytes_max = snap.bytes_max;
        transport.snapshot_io_timeout = Duration::from_millis(snap.io_timeout_ms);
        let mut store_ids: Vec<u64> = peers.keys().copied().collect();
        store_ids.push(self.store_id);
        store_ids.sort_unstable();
        Ok(Checked {
            store,
            transport,
            listen: self.listen,
            status: self.status,
            client: self.client,
            bootstrap: self.bootstrap,
            store_ids,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        store_id = 1
        data_dir = "/tmp/flotilla-config-test"
        listen = "127.0.0.1:20161"
        status = "127.0.0.1:20181"
        [peers]
        2 = "127.0.0.1:20162"
        3 = "127.0.0.1:20163"
        [raft]
        tick_ms = 50
        election_ticks = 10
        heartbeat_ticks = 2
        lease_ms = 400
    "#;

    fn check(text: &str) -> anyhow::Result<Checked> {
        toml::from_str::<FileConfig>(text)?.check()
    }

    #[test]
    fn a_good_file_becomes_store_and_transport_settings() {
        let c = check(GOOD).unwrap();
        assert_eq!(c.store_ids, [1, 2, 3]);
        assert_eq!(c.store.tick_interval, Duration::from_millis(50));
        assert_eq!(c.store.lease_duration(), Duration::from_millis(400));
        assert_eq!(c.transport.peers.len(), 2);
        assert_eq!(c.transport.snapshot_chunk_bytes, 1 << 20, "defaults apply");
        assert!(!c.store.broadcast_commit, "defaults apply");
        let on = GOOD.replace("lease_ms = 400", "lease_ms = 400\nbroadcast_commit = true");
        assert!(check(&on).unwrap().store.broadcast_commit);
        assert_eq!(
            c.store.proposal_batch_bytes_max, PROPOSAL_BATCH_BYTES_MAX,
            "defaults apply"
        );
        let off = GOOD.replace(
            "lease_ms = 400",
            "lease_ms = 400\nproposal_batch_bytes_max = 0",
        );
        assert_eq!(check(&off).unwrap().store.proposal_batch_bytes_max, 0);
        assert_eq!(
            c.store.log_gc_threshold_bytes, LOG_GC_THRESHOLD_BYTES,
            "defaults apply"
        );
        let by_count = GOOD.replace(
            "lease_ms = 400",
            "lease_ms = 400\nlog_gc_threshold_bytes = 0",
        );
        assert_eq!(check(&by_count).unwrap().store.log_gc_threshold_bytes, 0);
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let cases = [
            (
                GOOD.replace("lease_ms = 400", "lease_ms = 500"),
                "shorter than the election timeout",
            ),
            (GOOD.replace("tick_ms = 50", "tick_ms = 0"), "tick_ms"),
            (
                GOOD.replace("heartbeat_ticks = 2", "heartbeat_ticks = 0"),
                "ticks must be positive",
            ),
            (
                GOOD.replace("store_id = 1", "store_id = 1\nstore_name = \"x\""),
                "unknown field",
            ),
            (GOOD.replace("2 = ", "two = "), "not a store id"),
            (
                format!("{GOOD}\n[snapshot]\nchunk_bytes = 0"),
                "missing field",
            ),
            (
                format!(
                    "{GOOD}\n[snapshot]\nchunk_bytes = 0\nbytes_per_sec = 0\nsends_max = 1\n\
                     receives_max = 1\nbytes_max = 1024\nio_timeout_ms = 1000"
                ),
                "snapshot.chunk_bytes (0) must be positive",
            ),
        ];
        for (text, want) in cases {
            let err = format!("{:#}", check(&text).unwrap_err());
            assert!(err.contains(want), "{want:?} not in {err:?}");
        }
        let missing = FileConfig::load(Path::new("/nonexistent/store.toml")).unwrap_err();
        assert!(format!("{missing:#}").contains("reading /nonexistent/store.toml"));
    }
}
