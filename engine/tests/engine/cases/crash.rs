//! A real crash: a child process writes synced batches and acknowledges
//! each one on stdout; the parent kills it with SIGKILL at an arbitrary
//! point, reopens the data directory and checks that every acknowledged
//! batch is there and that what is there is a prefix of the batches (no
//! batch in part). Each batch's user data goes in an unsynced write just
//! before its synced raft part, as the store's apply writes do: the sync
//! must make it durable too (the WAL is ordered), whether the engine writes
//! unsynced writes to the OS at once or keeps them in the WAL buffer.
//!
//! The child is this same test binary, re-executed to run
//! `kill9_writer_child` with `CRASH_DIR_ENV` set.
//!
//! A second case runs the same crashes with memtables and a WAL limit so
//! small that WAL files go obsolete every few batches and are written over
//! by later ones (`EngineConfig::wal_recycle_files`): recovery must tell the
//! new records of a recycled file from the old ones behind them.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use flotilla_engine::{Engine, EngineConfig, RegionLogStorage};
use flotilla_proto::raftpb::HardState;
use flotilla_raft::{NO_LIMIT, Storage};

use crate::support::{ent, region};

const CRASH_DIR_ENV: &str = "FLOTILLA_ENGINE_CRASH_DIR";
/// Set (to anything) for the child to run with [`recycling_config`].
const CRASH_RECYCLE_ENV: &str = "FLOTILLA_ENGINE_CRASH_RECYCLE";
const KEYS_PER_BATCH: u64 = 16;
/// The child stops by itself after this many batches or this long, should
/// the parent fail to kill it.
const CHILD_BATCHES_MAX: u64 = 200_000;
const CHILD_RUN_MAX: Duration = Duration::from_secs(60);

fn data_key(batch: u64, j: u64) -> Vec<u8> {
    format!("b{batch:010}/{j:02}").into_bytes()
}

/// The smallest memtables RocksDB takes and a WAL limit of a few of them:
/// with [`Scenario::Recycling`]'s values, a memtable fills every few
/// batches, each flush starts a WAL file and the old ones go obsolete, to
/// be written over.
fn recycling_config() -> EngineConfig {
    EngineConfig {
        write_buffer_bytes: 64 << 10,
        raft_log_write_buffer_bytes: 64 << 10,
        state_write_buffer_bytes: 64 << 10,
        wal_total_bytes_max: 256 << 10,
        wal_recycle_files: 4,
        ..EngineConfig::for_tests()
    }
}

#[derive(Clone, Copy)]
enum Scenario {
    /// The test configuration, small values.
    Plain,
    /// [`recycling_config`], values of [`RECYCLING_VALUE_BYTES`].
    Recycling,
}

const RECYCLING_VALUE_BYTES: usize = 1024;

impl Scenario {
    fn from_env() -> Scenario {
        if std::env::var_os(CRASH_RECYCLE_ENV).is_some() {
            Scenario::Recycling
        } else {
            Scenario::Plain
        }
    }

    fn open(self, dir: &Path) -> Engine {
        let config = match self {
            Scenario::Plain => EngineConfig::for_tests(),
            Scenario::Recycling => recycling_config(),
        };
        Engine::open(dir, &config).expect("open engine")
    }

    /// Batch `i`'s value: its number, padded in the recycling scenario.
    fn value(self, i: u64) -> Vec<u8> {
        let mut v = i.to_be_bytes().to_vec();
        if let Scenario::Recycling = self {
            v.resize(RECYCLING_VALUE_BYTES, (i % 251) as u8);
        }
        v
    }
}

/// One batch numbered `i`: 16 user keys in an unsynced write, then a log
/// entry, the commit index, the applied index and the `last` marker in a
/// synced one.
fn write_batch_number(engine: &Engine, s: &mut RegionLogStorage, i: u64, scenario: Scenario) {
    let mut data = engine.write_batch();
    let value = scenario.value(i);
    for j in 0..KEYS_PER_BATCH {
        data.put_data(&data_key(i, j), &value);
    }
    engine.write(data, false).expect("child data write");
    let mut wb = engine.write_batch();
    s.append(&[ent(i, 1)], &mut wb);
    s.set_hard_state(
        HardState {
            term: 1,
            vote: 1,
            commit: i,
        },
        &mut wb,
    );
    wb.put_data(b"last", &i.to_be_bytes());
    s.set_applied(i, 1, &mut wb);
    engine.write(wb, true).expect("child write");
}

/// The child's body; a no-op test unless re-executed by the parent.
#[test]
fn kill9_writer_child() {
    let Ok(dir) = std::env::var(CRASH_DIR_ENV) else {
        return;
    };
    let scenario = Scenario::from_env();
    let engine = scenario.open(Path::new(&dir));
    let mut s = match RegionLogStorage::load(&engine, 1) {
        Ok(s) => s,
        Err(_) => {
            let mut wb = engine.write_batch();
            let s = RegionLogStorage::create(&engine, region(1, b"", b"", &[1]), &mut wb);
            engine.write(wb, true).expect("child create");
            s
        }
    };
    let start = s.last_index().unwrap() + 1;
    let deadline = Instant::now() + CHILD_RUN_MAX;
    let mut out = std::io::stdout().lock();
    for i in start..start + CHILD_BATCHES_MAX {
        write_batch_number(&engine, &mut s, i, scenario);
        // Acknowledged only once the synced write has returned.
        writeln!(out, "ack {i}")
            .and_then(|_| out.flush())
            .expect("stdout");
        if Instant::now() > deadline {
            break;
        }
    }
}

/// Runs a child until it has acknowledged `acks` more batches, kills it
/// with SIGKILL and returns the highest batch number it acknowledged.
fn run_and_kill_child(dir: &Path, acks: usize, scenario: Scenario) -> u64 {
    let exe = std::env::current_exe().expect("current exe");
    let mut command = Command::new(exe);
    command
        .args(["--exact", "cases::crash::kill9_writer_child", "--nocapture"])
        .env(CRASH_DIR_ENV, dir)
        .env_remove("FLOTILLA_SEED")
        .env_remove(CRASH_RECYCLE_ENV);
    if let Scenario::Recycling = scenario {
        command.env(CRASH_RECYCLE_ENV, "1");
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut highest = 0;
    let mut seen = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read child stdout");
        if let Some(n) = line.strip_prefix("ack ") {
            highest = n.parse().expect("ack number");
            seen += 1;
            if seen == acks {
                break;
            }
        }
    }
    child.kill().expect("SIGKILL child"); // SIGKILL on unix
    let status = child.wait().expect("wait child");
    assert!(
        seen == acks,
        "child exited after {seen} of {acks} acks: {status:?}"
    );
    highest
}

/// Checks the reopened store holds batches 1..=L for some L >= `acked`,
/// each whole, and nothing of any later batch but perhaps the user data
/// of L + 1 (written, unsynced, before the crash came), whole. Returns L.
fn check_prefix(engine: &Engine, acked: u64, scenario: Scenario) -> u64 {
    let all = region(1, b"", b"", &[1]);
    let last = engine.get(&all, b"last").unwrap().expect("last marker");
    let last = u64::from_be_bytes(last.as_ref().try_into().expect("8 bytes"));
    assert!(
        last >= acked,
        "acknowledged batch {acked} lost: store ends at {last}"
    );
    let pairs = engine.scan(&all, b"", usize::MAX).unwrap();
    let next = pairs
        .iter()
        .filter(|(k, _)| k.as_ref() != b"last")
        .filter(|(k, _)| k.starts_with(format!("b{:010}/", last + 1).as_bytes()))
        .count() as u64;
    assert!(
        next == 0 || next == KEYS_PER_BATCH,
        "torn user data of batch {}: {next} keys",
        last + 1
    );
    assert_eq!(
        pairs.len() as u64,
        last * KEYS_PER_BATCH + next + 1,
        "a torn or extra batch"
    );
    for (k, v) in &pairs[..pairs.len() - 1] {
        let batch: u64 = std::str::from_utf8(&k[1..11]).unwrap().parse().unwrap();
        assert!((1..=last + 1).contains(&batch));
        assert_eq!(v, &Bytes::from(scenario.value(batch)));
    }
    let s = RegionLogStorage::load(engine, 1).unwrap();
    assert_eq!(s.last_index().unwrap(), last);
    assert_eq!(s.hard_state().commit, last);
    assert_eq!(s.applied(), (last, 1));
    let entries = s.entries(1, last + 1, NO_LIMIT).unwrap();
    assert_eq!(entries, (1..=last).map(|i| ent(i, 1)).collect::<Vec<_>>());
    last
}

/// Three crashes in a row, each child resuming from what the last left.
fn crash_three_times(dir: &Path, scenario: Scenario) {
    let mut floor = 0;
    for acks in [40, 150, 300] {
        let acked = run_and_kill_child(dir, acks, scenario);
        assert!(acked > floor);
        let engine = scenario.open(dir);
        floor = check_prefix(&engine, acked, scenario);
    }
}

#[test]
fn kill_9_keeps_every_acknowledged_batch_and_no_torn_one() {
    let dir = tempfile::tempdir().unwrap();
    crash_three_times(dir.path(), Scenario::Plain);
}

#[test]
fn kill_9_over_recycled_wal_files_keeps_every_acknowledged_batch() {
    let dir = tempfile::tempdir().unwrap();
    crash_three_times(dir.path(), Scenario::Recycling);
    // The case means something only if files were in fact written over;
    // RocksDB says so in its info log (kept across opens as LOG.old.*).
    let reused = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("LOG"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .map(|log| log.matches("from recycle list").count())
        .sum::<usize>();
    assert!(
        reused > 0,
        "no WAL file was recycled: the case tests nothing"
    );
}
