//! Running the load: one run or a sweep.
#![allow(clippy::print_stdout, clippy::print_stderr)] // Its output is the interface.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use flotilla_raftstore::{Client, ClientConfig, StoreDirectory};
use flotilla_transport::client::{RemoteConfig, RemoteStores};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use parking_lot::Mutex;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::calibrate::{self, DiskCeiling};
use crate::cluster::{LocalCluster, LocalClusterConfig, split_keys};
use crate::opts::{
    BenchArgs, BenchCommand, BenchSub, Common, Mode, RaftWrite, SweepArgs, Workload,
};
use crate::pace::Pacer;
use crate::plot;
use crate::report::{ClientSide, Report, Setting, StoreCounters, ms_at};
use crate::workload::{Keys, Op, key};

/// How long every region may take to take its first write.
const WARM_UP_PATIENCE: Duration = Duration::from_secs(120);

fn is_transient(e: &flotilla_raftstore::Error) -> bool {
    use flotilla_raftstore::Error as E;
    matches!(
        e,
        E::Timeout | E::NotLeader { .. } | E::StaleCommand | E::ServerIsBusy(_)
    )
}

/// The longest a client thread sleeps waiting for a request's due time
/// before it looks whether the run has ended.
const PACE_SLEEP_MAX: Duration = Duration::from_millis(50);

/// The shortest sleep of an open-loop client thread: requests falling due
/// meanwhile go out together when it wakes (still timed from their due
/// times), so the load generator does not wake once per request.
const PACE_SLEEP_MIN: Duration = Duration::from_micros(200);

/// How long a client waits for the answer to a request it sent: every
/// request is answered, this only guards a run against a lost answer.
const ANSWER_PATIENCE: Duration = Duration::from_secs(60);

/// The longest latency recorded, microseconds; slower operations count as
/// this.
const LATENCY_MAX_US: u64 = 60_000_000;

/// Runs `flotilla bench [sweep]`.
pub fn main(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd.sub {
        Some(BenchSub::Sweep(s)) => sweep(&s),
        None => single(&cmd.args),
    }
}

fn single(args: &BenchArgs) -> anyhow::Result<()> {
    let report = run_one(&args.common, args.regions, args.mode, &args.connect)?;
    print!("{}", report.render());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("report written to {}", path.display());
    }
    if let Some(path) = &args.plot {
        plot::draw_run(path, &report)?;
        println!("plot written to {}", path.display());
    }
    Ok(())
}

fn sweep(args: &SweepArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.regions.is_empty(),
        "--regions needs at least one count"
    );
    let mut rows = Vec::new();
    for &regions in &args.regions {
        for mode in [Mode::Batched, Mode::Naive] {
            println!("== {regions} regions, {mode:?}");
            match run_one(&args.common, regions, mode, &[]) {
                Ok(r) => {
                    print!("{}", r.render());
                    rows.push(r);
                }
                Err(e) => {
                    // A cluster that cannot serve is a result too.
                    println!("  failed: {e:#}");
                    rows.push(Report::failed(
                        Setting {
                            mode,
                            raft_write: (mode == Mode::Batched).then_some(args.common.raft_write),
                            broadcast_commit: args.common.broadcast_commit,
                            proposal_batch_bytes_max: args.common.proposal_batch_bytes,
                            log_gc_threshold_bytes: args.common.log_gc_bytes,
                            workload: args.common.workload,
                            distribution: args.common.distribution,
                            stores: args.common.stores,
                            regions,
                            concurrency: args.common.concurrency,
                            rate: args.common.rate,
                            value_bytes: args.common.value_bytes,
                            keys: args.common.keys,
                        },
                        format!("{e:#}"),
                    ));
                }
            }
        }
    }
    println!();
    println!(
        "{:>8} {:>12} {:>12} {:>8} {:>14} {:>14} {:>16} {:>16}",
        "regions",
        "batched op/s",
        "naive op/s",
        "gain",
        "batched sync/r",
        "naive sync/r",
        "batched hb fr/s",
        "naive hb fr/s"
    );
    for pair in rows.chunks(2) {
        let [b, n] = pair else { continue };
        let f = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.2}"));
        let ops = |r: &Report| {
            if r.error.is_some() {
                "failed".to_string()
            } else {
                format!("{:.0}", r.ops_per_sec)
            }
        };
        println!(
            "{:>8} {:>12} {:>12} {:>7.1}x {:>14} {:>14} {:>16} {:>16}",
            b.regions,
            ops(b),
            ops(n),
            b.ops_per_sec / n.ops_per_sec.max(1e-9),
            f(b.syncs_per_round),
            f(n.syncs_per_round),
            f(b.heartbeat_frames_per_sec),
            f(n.heartbeat_frames_per_sec)
        );
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&rows)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("reports written to {}", path.display());
    }
    if let Some(path) = &args.plot {
        plot::draw_sweep(path, &rows)?;
        println!("plot written to {}", path.display());
    }
    Ok(())
}

/// One run: a cluster (started here, or reached at `connect`), loaded,
/// warmed up, calibrated, measured, calibrated again.
pub fn run_one(
    common: &Common,
    regions: u64,
    mode: Mode,
    connect: &[SocketAddr],
) -> anyhow::Result<Report> {
    anyhow::ensure!(common.concurrency > 0, "--concurrency must be positive");
    anyhow::ensure!(
        common.rate.is_none_or(|r| r.is_finite() && r >= 1.0),
        "--rate must be at least 1 request per second"
    );
    let keys = Keys::new(common.keys, common.distribution)?;
    let value = Bytes::from(vec![b'v'; common.value_bytes]);
    let mut cluster = None;
    let directory: Arc<dyn StoreDirectory> = if connect.is_empty() {
        let c = LocalCluster::start(&LocalClusterConfig {
            stores: common.stores,
            regions,
            data_dir: common.data_dir.clone(),
            pollers: common.pollers,
            cross_region_batching: mode == Mode::Batched,
            async_raft_write: common.raft_write == RaftWrite::Writer,
            broadcast_commit: common.broadcast_commit,
            proposal_batch_bytes_max: common.proposal_batch_bytes,
            log_gc_threshold_bytes: common.log_gc_bytes,
        })?;
        let local = c.local.clone();
        cluster = Some(c);
        local
    } else {
        Arc::new(RemoteStores::connect(connect, &RemoteConfig::default())?)
    };
    let stores = cluster
        .as_ref()
        .map_or(connect.len() as u64, |_| common.stores);
    let client = Arc::new(Client::new(directory, ClientConfig::default()));
    let started = Instant::now();
    if cluster.is_some() {
        // Every region elects and takes one write before anything counts.
        let starts: Vec<Bytes> = std::iter::once(Bytes::from_static(b"k0000000"))
            .chain(split_keys(regions))
            .collect();
        // Many regions elect slowly on a small machine: keep trying each
        // for a while before calling the cluster unable to serve.
        let patience = Instant::now() + WARM_UP_PATIENCE;
        each_in_parallel(&starts, common.concurrency.min(64), |k| {
            loop {
                match client.put(k.clone(), Bytes::from_static(b"warm")) {
                    Err(e) if Instant::now() < patience && is_transient(&e) => {}
                    r => return r,
                }
            }
        })
        .context("writing every region once")?;
    }
    if common.workload.needs_load() {
        let all: Vec<u64> = (0..keys.len()).collect();
        each_in_parallel(&all, common.concurrency, |i| {
            client.put(key(*i, keys.len()), value.clone()).map(drop)
        })
        .context("loading the keys")?;
    }
    say(
        common,
        &format!(
            "ready in {:.1?}: {stores} stores, {regions} regions, {} keys{}",
            started.elapsed(),
            keys.len(),
            if common.workload.needs_load() {
                " loaded"
            } else {
                ""
            }
        ),
    );

    let counters = |c: &Option<LocalCluster>| c.as_ref().map(LocalCluster::stats);
    let driver = Driver {
        client: &client,
        workload: common.workload,
        keys: &keys,
        value: &value,
        concurrency: common.concurrency,
        rate: common.rate,
        threads: if common.workload == Workload::E {
            common.concurrency
        } else {
            common.client_threads.clamp(1, common.concurrency)
        },
    };
    let warm_before = counters(&cluster);
    driver.drive(common.warmup, None, !common.quiet, "warm-up", 1);
    let warm_after = counters(&cluster);
    let calibrate_in = cluster
        .as_ref()
        .map(|c| c.data_dir().to_path_buf())
        .or_else(|| common.data_dir.clone());
    let measure_disk = |counts: Option<StoreCounters>| -> anyhow::Result<Option<DiskCeiling>> {
        let Some(dir) = &calibrate_in else {
            return Ok(None);
        };
        if common.calibrate.is_zero() {
            return Ok(None);
        }
        // Batches of as many entries as the stores' syncs held, each of
        // their entries' average payload (a leader's entry carries the
        // writes of a turn: several values, not one).
        let batch = counts
            .and_then(|c| (c.synced_writes > 0).then(|| c.entries_synced / c.synced_writes))
            .unwrap_or(1);
        let entry_bytes = counts
            .and_then(|c| (c.entries_synced > 0).then(|| c.entry_bytes_synced / c.entries_synced))
            .map_or(common.value_bytes, |b| b as usize);
        let c = calibrate::measure(dir, batch, entry_bytes, common.calibrate)?;
        Ok(Some(c))
    };
    let warm_counts = warm_before
        .zip(warm_after)
        .map(|(b, a)| StoreCounters::delta(&b, &a));
    let ceiling_before = measure_disk(warm_counts)?;

    let before = counters(&cluster);
    let cpu_before = process_cpu_seconds();
    let measured = driver.drive(common.duration, common.ops, !common.quiet, "run", 2);
    let cpu_after = process_cpu_seconds();
    let after = counters(&cluster);
    let run_counts = before.zip(after).map(|(b, a)| StoreCounters::delta(&b, &a));
    let ceiling_after = measure_disk(run_counts)?;
    if let Some(mut c) = cluster.take() {
        c.shutdown();
    }
    let client_side = ClientSide {
        cpu_secs: cpu_before.zip(cpu_after).map(|(b, a)| a - b),
        ..measured
    };
    Ok(Report::build(
        Setting {
            mode,
            raft_write: (mode == Mode::Batched).then_some(common.raft_write),
            broadcast_commit: common.broadcast_commit,
            proposal_batch_bytes_max: common.proposal_batch_bytes,
            log_gc_threshold_bytes: common.log_gc_bytes,
            workload: common.workload,
            distribution: common.distribution,
            stores,
            regions,
            concurrency: common.concurrency,
            rate: common.rate,
            value_bytes: common.value_bytes,
            keys: keys.len(),
        },
        &client_side,
        run_counts,
        ceiling_before,
        ceiling_after,
    ))
}

fn say(common: &Common, line: &str) {
    if !common.quiet {
        eprintln!("{line}");
    }
}

/// Runs `f` on every item, `threads` at a time; the first error stops it.
fn each_in_parallel<T: Sync>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> flotilla_raftstore::Result<()> + Sync,
) -> anyhow::Result<()> {
    let next = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let first_error = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(item) = items.get(i) else { return };
                    if let Err(e) = f(item) {
                        failed.store(true, Ordering::Relaxed);
                        first_error.lock().get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    match first_error.into_inner() {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// The clients of a run.
struct Driver<'a> {
    client: &'a Arc<Client>,
    workload: Workload,
    keys: &'a Keys,
    value: &'a Bytes,
    /// Requests in flight (with `rate`: at most).
    concurrency: usize,
    /// Requests per second on an open-loop schedule, if any.
    rate: Option<f64>,
    /// Threads keeping them in flight: as many as requests for blocking
    /// calls, fewer for asynchronous ones.
    threads: usize,
}

impl Driver<'_> {
    /// Runs the workload for `duration` (or `ops` operations, if fewer):
    /// `concurrency` requests in flight (at most, with a rate) over
    /// `threads` threads.
    fn drive(
        &self,
        duration: Duration,
        ops: Option<u64>,
        progress: bool,
        label: &str,
        phase: u64,
    ) -> ClientSide {
        let stop = AtomicBool::new(false);
        let done = AtomicU64::new(0);
        let claimed = AtomicU64::new(0);
        let budget = ops.unwrap_or(u64::MAX);
        let bar = if progress {
            let b = ProgressBar::new(duration.as_secs().max(1));
            b.set_style(
                ProgressStyle::with_template("{prefix:>8} [{bar:30}] {elapsed}/{duration} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b.set_prefix(label.to_string());
            b
        } else {
            ProgressBar::hidden()
        };
        let started = Instant::now();
        let seconds = Seconds::new(started);
        let mut timeline = Vec::new();
        let results: Vec<Measured> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..self.threads)
                .map(|t| {
                    let (stop, done, claimed, seconds) = (&stop, &done, &claimed, &seconds);
                    // This thread's share of the requests in flight.
                    let share = self.concurrency / self.threads
                        + usize::from(t < self.concurrency % self.threads);
                    s.spawn(move || {
                        let mut rng = ChaCha8Rng::seed_from_u64(phase << 32 | t as u64);
                        let claim = || {
                            !stop.load(Ordering::Relaxed)
                                && claimed.fetch_add(1, Ordering::Relaxed) < budget
                        };
                        // This thread's share of the rate, as of the
                        // requests in flight.
                        let pacer = self.rate.map(|r| {
                            Pacer::new(started, r * share as f64 / self.concurrency as f64)
                        });
                        let tally = Tally::new(seconds, done);
                        match pacer {
                            _ if share == 1 => {
                                self.blocking_loop(&mut rng, pacer, stop, claim, tally)
                            }
                            Some(p) => self.paced_loop(&mut rng, share, p, stop, claim, tally),
                            None => self.async_loop(&mut rng, share, claim, tally),
                        }
                    })
                })
                .collect();
            let mut last = (0u64, started);
            loop {
                std::thread::sleep(Duration::from_millis(100));
                let now = Instant::now();
                let finished = workers.iter().all(|w| w.is_finished());
                if now.duration_since(last.1) >= Duration::from_secs(1) {
                    let n = done.load(Ordering::Relaxed);
                    let rate = (n - last.0) as f64 / now.duration_since(last.1).as_secs_f64();
                    timeline.push(rate);
                    bar.set_message(format!("{rate:.0} ops/s"));
                    last = (n, now);
                }
                bar.set_position(started.elapsed().as_secs());
                if finished || started.elapsed() >= duration {
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
            }
            workers
                .into_iter()
                .map(|w| w.join().expect("a client thread panicked"))
                .collect()
        });
        let secs = started.elapsed().as_secs_f64();
        bar.finish_and_clear();
        let mut hist = new_histogram();
        let mut errors = 0;
        for m in results {
            let _ = hist.add(m.hist);
            errors += m.errors;
        }
        ClientSide {
            hist,
            errors,
            secs,
            timeline,
            // The last second is cut short by the end of the run.
            timeline_p99_ms: seconds.p99_ms(secs.floor() as usize),
            cpu_secs: None,
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, LATENCY_MAX_US, 3).expect("valid histogram bounds")
}

impl Driver<'_> {
    /// One request in flight, through the blocking calls; with a schedule,
    /// each waits for its due time and is timed from it.
    fn blocking_loop(
        &self,
        rng: &mut ChaCha8Rng,
        mut pacer: Option<Pacer>,
        stop: &AtomicBool,
        claim: impl Fn() -> bool,
        mut tally: Tally<'_>,
    ) -> Measured {
        loop {
            let t0 = match &mut pacer {
                None => Instant::now(),
                Some(p) => loop {
                    let now = Instant::now();
                    if let Some(due) = p.take_due(now) {
                        break due;
                    }
                    if stop.load(Ordering::Relaxed) {
                        return tally.into_parts();
                    }
                    std::thread::sleep((p.next_due() - now).min(PACE_SLEEP_MAX));
                },
            };
            if !claim() {
                break;
            }
            let ok = match self.workload.next(self.keys, rng) {
                Op::Put(k) => self.client.put(k, self.value.clone()).is_ok(),
                Op::Get(k) => self.client.get(k).is_ok(),
                Op::Scan(k, n) => self.client.scan(k, Bytes::new(), n).is_ok(),
            };
            tally.answered(Answer::timed(t0, ok));
        }
        tally.into_parts()
    }

    /// Sends one request through the asynchronous calls; its answer comes
    /// back on `answers`, timed (from `t0`) when the client hands it over,
    /// not when this thread gets to it.
    fn issue(&self, rng: &mut ChaCha8Rng, t0: Instant, answers: &Sender<Answer>) {
        let tx = answers.clone();
        match self.workload.next(self.keys, rng) {
            Op::Put(k) => self.client.put_async(
                k,
                self.value.clone(),
                Box::new(move |r| {
                    let _ = tx.send(Answer::timed(t0, r.is_ok()));
                }),
            ),
            Op::Get(k) => self.client.get_async(
                k,
                Box::new(move |r| {
                    let _ = tx.send(Answer::timed(t0, r.is_ok()));
                }),
            ),
            Op::Scan(k, n) => {
                let ok = self.client.scan(k, Bytes::new(), n).is_ok();
                let _ = tx.send(Answer::timed(t0, ok));
            }
        }
    }

    /// `share` requests in flight through the asynchronous calls: each
    /// answer (timed from its request) makes room for the next request.
    fn async_loop(
        &self,
        rng: &mut ChaCha8Rng,
        share: usize,
        claim: impl Fn() -> bool,
        mut tally: Tally<'_>,
    ) -> Measured {
        let (tx, rx) = crossbeam_channel::unbounded::<Answer>();
        let mut in_flight = 0usize;
        while in_flight < share && claim() {
            self.issue(rng, Instant::now(), &tx);
            in_flight += 1;
        }
        while in_flight > 0 {
            if !tally.wait_for_answer(&rx, &mut in_flight) {
                break;
            }
            if claim() {
                self.issue(rng, Instant::now(), &tx);
                in_flight += 1;
            }
        }
        tally.into_parts()
    }

    /// The open loop through the asynchronous calls: requests go out when
    /// due (while fewer than `share` are in flight) and are timed from
    /// their due time. The thread sleeps between due times rather than
    /// waiting on the answers, so answers do not wake it; it collects them
    /// when it wakes to send.
    fn paced_loop(
        &self,
        rng: &mut ChaCha8Rng,
        share: usize,
        mut pacer: Pacer,
        stop: &AtomicBool,
        claim: impl Fn() -> bool,
        mut tally: Tally<'_>,
    ) -> Measured {
        let (tx, rx) = crossbeam_channel::unbounded::<Answer>();
        let mut in_flight = 0usize;
        'run: while !stop.load(Ordering::Relaxed) {
            for answer in rx.try_iter() {
                in_flight -= 1;
                tally.answered(answer);
            }
            let now = Instant::now();
            while in_flight < share {
                let Some(due) = pacer.take_due(now) else {
                    break;
                };
                if !claim() {
                    break 'run;
                }
                self.issue(rng, due, &tx);
                in_flight += 1;
            }
            let wait = pacer.next_due().saturating_duration_since(now);
            std::thread::sleep(wait.clamp(PACE_SLEEP_MIN, PACE_SLEEP_MAX));
        }
        while in_flight > 0 && tally.wait_for_answer(&rx, &mut in_flight) {}
        tally.into_parts()
    }
}

/// An answer to a request: when it came and, if the request succeeded,
/// its latency in microseconds.
struct Answer {
    at: Instant,
    latency_us: Option<u64>,
}

impl Answer {
    /// Timed now, from `t0`.
    fn timed(t0: Instant, ok: bool) -> Answer {
        let at = Instant::now();
        let us = u64::try_from(at.saturating_duration_since(t0).as_micros()).unwrap_or(u64::MAX);
        Answer {
            at,
            latency_us: ok.then_some(us.max(1)),
        }
    }
}

/// What one client thread measured.
struct Measured {
    /// Latencies of the successful requests, microseconds.
    hist: Histogram<u64>,
    errors: u64,
}

/// The latencies of each second of the run, every client thread's
/// together, at two significant digits (~20 KB a second: an hour's run
/// keeps ~70 MB).
struct Seconds {
    /// The start of the run, from which answers are put in seconds.
    started: Instant,
    hists: Mutex<Vec<Histogram<u64>>>,
}

impl Seconds {
    fn new(started: Instant) -> Self {
        Seconds {
            started,
            hists: Mutex::new(Vec::new()),
        }
    }

    fn histogram() -> Histogram<u64> {
        Histogram::<u64>::new_with_bounds(1, LATENCY_MAX_US, 2).expect("valid histogram bounds")
    }

    fn second_of(&self, at: Instant) -> usize {
        at.saturating_duration_since(self.started).as_secs() as usize
    }

    /// Runs `f` on second `second`'s histogram.
    fn with_second(&self, second: usize, f: impl FnOnce(&mut Histogram<u64>)) {
        let mut hists = self.hists.lock();
        if hists.len() <= second {
            hists.resize_with(second + 1, Self::histogram);
        }
        f(&mut hists[second]);
    }

    /// The 99th percentile of each of the first `whole` seconds, ms.
    fn p99_ms(self, whole: usize) -> Vec<f64> {
        let hists = self.hists.into_inner();
        (0..whole)
            .map(|s| hists.get(s).map_or(0.0, |h| ms_at(h, 99.0)))
            .collect()
    }
}

/// One client thread's count of answers. The thread keeps the latencies
/// of the current second and hands them to [`Seconds`] when the next one
/// begins.
struct Tally<'a> {
    m: Measured,
    seconds: &'a Seconds,
    second: usize,
    this_second: Histogram<u64>,
    done: &'a AtomicU64,
}

impl<'a> Tally<'a> {
    fn new(seconds: &'a Seconds, done: &'a AtomicU64) -> Self {
        Tally {
            m: Measured {
                hist: new_histogram(),
                errors: 0,
            },
            seconds,
            second: 0,
            this_second: Seconds::histogram(),
            done,
        }
    }

    fn answered(&mut self, answer: Answer) {
        let Some(us) = answer.latency_us else {
            self.m.errors += 1;
            return;
        };
        self.m.hist.saturating_record(us);
        let second = self.seconds.second_of(answer.at);
        if second > self.second {
            self.end_second();
            self.second = second;
        }
        if second == self.second {
            self.this_second.saturating_record(us);
        } else {
            // Answers are taken a little out of order around a second's end.
            self.seconds
                .with_second(second, |h| h.saturating_record(us));
        }
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    fn end_second(&mut self) {
        if !self.this_second.is_empty() {
            let this_second = &self.this_second;
            self.seconds.with_second(self.second, |h| {
                let _ = h.add(this_second);
            });
            self.this_second.reset();
        }
    }

    /// Waits for one of `in_flight` requests' answers and counts it; false
    /// if none came (every request is answered — applied, failed after the
    /// client's retries, or dropped by a leader that lost its place — so
    /// this only guards the run against a lost answer; the requests still
    /// out then count as errors).
    fn wait_for_answer(&mut self, answers: &Receiver<Answer>, in_flight: &mut usize) -> bool {
        let Ok(answer) = answers.recv_timeout(ANSWER_PATIENCE) else {
            self.m.errors += *in_flight as u64;
            return false;
        };
        *in_flight -= 1;
        self.answered(answer);
        true
    }

    fn into_parts(mut self) -> Measured {
        self.end_second();
        self.m
    }
}

/// CPU seconds (user + system) this process has used, from
/// `/proc/self/stat` (Linux; clock ticks of 1/100 s).
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after
    // the name and state.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_counted_in_the_second_they_came() {
        let done = AtomicU64::new(0);
        let started = Instant::now();
        let seconds = Seconds::new(started);
        let answer = |after_ms: u64, latency_us: u64| Answer {
            at: started + Duration::from_millis(after_ms),
            latency_us: Some(latency_us),
        };
        let mut a = Tally::new(&seconds, &done);
        let mut b = Tally::new(&seconds, &done);
        a.answered(answer(10, 1_000));
        a.answered(answer(2_500, 50_000));
        b.answered(answer(2_600, 40_000));
        // Late: taken after a later second's answer.
        a.answered(answer(3_100, 2_000));
        a.answered(answer(2_900, 60_000));
        b.answered(Answer {
            at: started,
            latency_us: None,
        });
        let (a, b) = (a.into_parts(), b.into_parts());
        assert_eq!(done.load(Ordering::Relaxed), 5);
        assert_eq!((a.errors, b.errors), (0, 1));
        assert_eq!(a.hist.len() + b.hist.len(), 5);
        let counts: Vec<u64> = seconds.hists.lock().iter().map(|h| h.len()).collect();
        assert_eq!(counts, [1, 0, 3, 1], "by the second each answer came in");
        let p99 = seconds.p99_ms(3);
        assert_eq!(p99.len(), 3, "whole seconds only");
        assert!((p99[0] - 1.0).abs() < 0.02, "{p99:?}");
        assert_eq!(p99[1], 0.0, "a second without answers");
        assert!((p99[2] - 60.0).abs() < 0.6, "{p99:?}");
    }

    #[test]
    fn process_cpu_time_is_read_and_grows() {
        let a = process_cpu_seconds().expect("Linux /proc");
        let mut x = 0u64;
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(300) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let b = process_cpu_seconds().unwrap();
        assert!(b > a, "{a} then {b}");
    }
}
