//! The `flotilla` binary from the outside: a local cluster's report,
//! configuration errors, and store processes that serve clients over the
//! network and keep every acknowledged write through `kill -9` and
//! restarts.

// A test that skips a check says why on stdout.
#![allow(clippy::print_stdout)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use flotilla_raftstore::{Client, ClientConfig};
use flotilla_transport::client::{RemoteConfig, RemoteStores};

const BIN: &str = env!("CARGO_BIN_EXE_flotilla");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET `path` from `port`; `None` while nothing answers.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// The command's standard output, after checking it exited 0 (with both
/// outputs in the failure message otherwise).
fn succeeded(out: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_local_cluster_runs_a_workload_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "local",
            "--stores",
            "3",
            "--regions",
            "8",
            "--seconds",
            "1",
            "--clients",
            "4",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = succeeded(&out);
    assert!(stdout.contains("errors: 0"), "{stdout}");
    let status_addrs: std::collections::BTreeSet<&str> = stdout
        .split("status on http://")
        .skip(1)
        .filter_map(|rest| rest.split('/').next())
        .collect();
    assert_eq!(status_addrs.len(), 3, "a status server per store: {stdout}");
    let rows = stdout
        .lines()
        .filter(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            fields.len() == 11 && fields.iter().all(|f| f.parse::<f64>().is_ok())
        })
        .count();
    assert_eq!(rows, 3, "one report row per store: {stdout}");
}

fn config(dir: &Path, id: u64, raft: &[u16], status: u16, extra: &str) -> std::path::PathBuf {
    let mut peers = String::new();
    for (i, port) in raft.iter().enumerate() {
        if i as u64 + 1 != id {
            peers += &format!("{} = \"127.0.0.1:{port}\"\n", i + 1);
        }
    }
    let text = format!(
        "store_id = {id}\ndata_dir = \"{}\"\nlisten = \"127.0.0.1:{}\"\nstatus = \"127.0.0.1:{status}\"\n{extra}\n[peers]\n{peers}\n[raft]\ntick_ms = 50\nelection_ticks = 10\nheartbeat_ticks = 2\nlease_ms = 400\n",
        dir.join(format!("store-{id}")).display(),
        raft[id as usize - 1],
    );
    let path = dir.join(format!("store-{id}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn bad_configurations_exit_non_zero_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = config(dir.path(), 1, &[free_port()], free_port(), "");
    let text = std::fs::read_to_string(&good).unwrap();
    let cases = [
        (
            text.replace("lease_ms = 400", "lease_ms = 600"),
            "shorter than the election timeout",
        ),
        (text.replace("tick_ms = 50", "tick_ms = 0"), "tick_ms"),
        (format!("colour = \"blue\"\n{text}"), "unknown field"),
    ];
    for (i, (bad, want)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad-{i}.toml"));
        std::fs::write(&path, bad).unwrap();
        let out = Command::new(BIN)
            .arg("start")
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {i} started");
        assert!(
            stderr.contains(want),
            "case {i}: {want:?} not in {stderr:?}"
        );
    }
    let out = Command::new(BIN)
        .args(["start", "--config", "/nonexistent/store.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("reading /nonexistent/store.toml"));
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(path: &Path) -> Proc {
    Proc(
        Command::new(BIN)
            .arg("start")
            .arg("--config")
            .arg(path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn key(i: u64) -> Bytes {
    Bytes::from(format!("k{i:07}"))
}

/// Kills a store process the hard way: no shutdown, no flush.
fn kill_9(p: Proc) {
    let mut p = std::mem::ManuallyDrop::new(p);
    p.0.kill().unwrap();
    p.0.wait().unwrap();
}

#[test]
fn store_processes_serve_clients_and_keep_every_acknowledged_write_through_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let raft = [free_port(), free_port(), free_port()];
    let status = [free_port(), free_port(), free_port()];
    let client_ports = [free_port(), free_port(), free_port()];
    let paths: Vec<_> = (1..=3)
        .map(|id| {
            let i = id as usize - 1;
            config(
                dir.path(),
                id,
                &raft,
                status[i],
                &format!(
                    "client = \"127.0.0.1:{}\"\n[bootstrap]\nregions = 4\nreplicas = 3",
                    client_ports[i]
                ),
            )
        })
        .collect();
    let mut procs: Vec<Proc> = paths.iter().map(|p| spawn(p)).collect();
    for &port in &status {
        wait_for("/health", || {
            http_get(port, "/health").is_some_and(|r| r.contains("200 OK") && r.ends_with("ok\n"))
        });
    }
    // Elections and heartbeats run: the stores' rounds and frames show up.
    wait_for("store metrics", || {
        http_get(status[0], "/metrics").is_some_and(|m| {
            m.contains("flotilla_store_rounds_total{store=\"1\"}")
                && m.contains("flotilla_transport_frames_received_total{store=\"1\"}")
        })
    });
    let metrics = http_get(status[0], "/metrics").unwrap();
    check_with_promtool(&metrics);

    // A client over the network, writing through every store.
    let addrs: Vec<SocketAddr> = client_ports
        .iter()
        .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
        .collect();
    let stores = RemoteStores::connect(&addrs, &RemoteConfig::default()).expect("connect");
    let kv = Client::new(Arc::new(stores), ClientConfig::default());
    for i in 0..100 {
        kv.put(key(i), "before").expect("acknowledged");
    }

    // kill -9 store 3; writes go on; it restarts from its data directory.
    kill_9(procs.pop().unwrap());
    for i in 100..200 {
        kv.put(key(i), "while-3-was-down")
            .expect("acknowledged with a store down");
    }
    procs.push(spawn(&paths[2]));
    wait_for("the restarted store's health", || {
        http_get(status[2], "/health").is_some_and(|r| r.ends_with("ok\n"))
    });
    wait_for("the restarted store to rejoin", || {
        http_get(status[2], "/metrics")
            .is_some_and(|m| m.contains("flotilla_transport_frames_received_total"))
    });

    // kill -9 store 1 as well: stores 2 and 3 (one of them restarted) must
    // now hold every acknowledged write between them.
    kill_9(procs.remove(0));
    for i in 0..200 {
        let want: &[u8] = if i < 100 {
            b"before"
        } else {
            b"while-3-was-down"
        };
        assert_eq!(
            kv.get(key(i)).expect("read with store 1 gone").as_deref(),
            Some(want),
            "key {i}"
        );
    }
    let scanned = kv.scan("k", "", 1000).expect("scan across regions");
    assert_eq!(scanned.len(), 200, "nothing more, nothing less");
    procs.insert(0, spawn(&paths[0]));
    wait_for("store 1 back", || {
        http_get(status[0], "/health").is_some_and(|r| r.ends_with("ok\n"))
    });
    kv.put(key(200), "after")
        .expect("a write with every store back");

    // The load generator drives this cluster by its client addresses.
    let json = dir.path().join("remote.json");
    let list = addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let out = Command::new(BIN)
        .args([
            "bench",
            "--connect",
            &list,
            "--duration",
            "1s",
            "--warmup",
            "0s",
        ])
        .args(["--concurrency", "8", "--keys", "1000", "--quiet", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    succeeded(&out);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(report["ops_per_sec"].as_f64().unwrap() > 0.0, "{report}");
    assert_eq!(report["stores"], 3);
    assert!(
        report["syncs_per_sec"].is_null(),
        "a remote cluster's counters are not the client's to read"
    );
}

fn bench_json(dir: &Path, name: &str, args: &[&str]) -> serde_json::Value {
    let json = dir.join(name);
    let out = Command::new(BIN)
        .arg("bench")
        .args(args)
        .args(["--quiet", "--calibrate", "200ms", "--data-dir"])
        .arg(dir.join(name.replace(".json", "")))
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    succeeded(&out);
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

#[test]
fn bench_reports_a_run_as_json_and_svg_with_the_stores_counters_and_the_disk_ceiling() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("run.svg");
    let r = bench_json(
        dir.path(),
        "run.json",
        &[
            "--regions",
            "8",
            "--workload",
            "a",
            "--keys",
            "2000",
            "--concurrency",
            "16",
            "--duration",
            "2s",
            "--warmup",
            "1s",
            "--plot",
            svg.to_str().unwrap(),
        ],
    );
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
        "ceiling_fraction",
        "cpu_seconds_per_1000_ops",
    ] {
        assert!(!r[k].is_null(), "{k} missing: {r}");
    }
    assert_eq!(
        (r["regions"].as_u64(), r["stores"].as_u64()),
        (Some(8), Some(3))
    );
    assert_eq!(r["mode"], "batched");
    assert_eq!(r["errors"], 0, "{r}");
    assert!(r["ops_per_sec"].as_f64().unwrap() > 0.0);
    assert!(
        r["syncs_per_round"].as_f64().unwrap() <= 1.0,
        "at most one synced write per store per round: {r}"
    );
    assert!(
        r["ceiling_before"]["fdatasync_4k_per_sec"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let picture = std::fs::read_to_string(&svg).unwrap();
    assert!(picture.starts_with("<svg") && picture.contains("ops/s"));
}

#[test]
fn an_open_loop_bench_holds_its_rate_and_refuses_a_rate_of_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let r = bench_json(
        dir.path(),
        "paced.json",
        &[
            "--regions",
            "4",
            "--rate",
            "300",
            "--concurrency",
            "64",
            "--duration",
            "2s",
            "--warmup",
            "0s",
        ],
    );
    assert_eq!(r["rate"].as_f64(), Some(300.0), "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    let rate = r["ops_per_sec"].as_f64().unwrap();
    // Far more requests could be in flight than 300/s needs: a closed loop
    // of 64 would run thousands per second. The schedule holds it.
    assert!(
        (150.0..=310.0).contains(&rate),
        "an open loop at 300/s ran at {rate}/s"
    );
    // A slow schedule: the client thread sleeps 50 ms at a time between
    // requests, yet each answer is timed when it comes, not when the thread
    // wakes to send the next one.
    let slow = bench_json(
        dir.path(),
        "slow.json",
        &[
            "--regions",
            "1",
            "--rate",
            "4",
            "--client-threads",
            "1",
            "--concurrency",
            "4",
            "--duration",
            "2s",
            "--warmup",
            "0s",
        ],
    );
    assert!(slow["ops"].as_u64().unwrap() >= 4, "{slow}");
    assert!(
        slow["p50_ms"].as_f64().unwrap() < 25.0,
        "answers timed when the client woke: {slow}"
    );
    let out = Command::new(BIN)
        .args(["bench", "--regions", "1", "--rate", "0", "--quiet"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--rate"), "{stderr}");
}

#[test]
fn a_bench_sweep_runs_both_modes_for_each_region_count() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("sweep.svg");
    let json = dir.path().join("sweep.json");
    let out = Command::new(BIN)
        .args(["bench", "sweep", "--regions", "1,4", "--concurrency", "8"])
        .args([
            "--duration",
            "1s",
            "--warmup",
            "0s",
            "--calibrate",
            "0s",
            "--quiet",
        ])
        .arg("--json")
        .arg(&json)
        .arg("--plot")
        .arg(&svg)
        .output()
        .unwrap();
    let stdout = succeeded(&out);
    assert!(stdout.contains("gain"), "a summary table: {stdout}");
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let seen: Vec<(u64, String)> = rows
        .iter()
        .map(|r| {
            (
                r["regions"].as_u64().unwrap(),
                r["mode"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (1, "batched".to_string()),
            (1, "naive".to_string()),
            (4, "batched".to_string()),
            (4, "naive".to_string())
        ]
    );
    assert!(
        rows.iter()
            .all(|r| r["ops_per_sec"].as_f64().unwrap() > 0.0)
    );
    assert!(
        rows.iter().all(|r| r["ceiling_fraction"].is_null()),
        "no calibration asked"
    );
    assert!(std::fs::read_to_string(&svg).unwrap().contains("Naive"));
}

/// Runs `promtool check metrics` on the exposition when promtool is
/// installed (`make deps` installs it); says why when it is not.
fn check_with_promtool(metrics: &str) {
    let body = metrics.split("\r\n\r\n").nth(1).unwrap_or_default();
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        println!(
            "promtool not installed: the metrics format is not checked (make deps installs it)"
        );
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Lint notes (for example, counters without a description) are not
    // format errors; promtool exits non-zero only on those too, so look for
    // parse errors.
    assert!(
        !said.contains("error while linting") && !said.contains("text format parsing error"),
        "promtool: {said}"
    );
}
