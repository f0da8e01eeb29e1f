//! The metrics reach an installed recorder under their documented names.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use flotilla_batch_system::metrics as names;
use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use parking_lot::Mutex;

use crate::support::{Counting, Probe, STOP, config, system};

/// Keeps every counter's value and every histogram's sample count, by
/// `name{system}`.
#[derive(Default)]
struct Capture {
    counters: Mutex<HashMap<String, Arc<AtomicU64>>>,
    histograms: Mutex<HashMap<String, Arc<Samples>>>,
}

#[derive(Default)]
struct Samples(AtomicU64);

impl HistogramFn for Samples {
    fn record(&self, _value: f64) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn key_of(key: &Key) -> String {
    let system = key
        .labels()
        .find(|l| l.key() == "system")
        .map_or("", |l| l.value());
    format!("{}{{{system}}}", key.name())
}

#[derive(Clone, Default)]
struct Shared(Arc<Capture>);

impl Recorder for Shared {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut counters = self.0.counters.lock();
        Counter::from_arc(Arc::clone(counters.entry(key_of(key)).or_default()))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let mut histograms = self.0.histograms.lock();
        Histogram::from_arc(Arc::clone(histograms.entry(key_of(key)).or_default()))
    }
}

/// The process-wide recorder, installed once for the whole test binary.
fn capture() -> &'static Shared {
    static CAPTURE: OnceLock<Shared> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let shared = Shared::default();
        metrics::set_global_recorder(shared.clone()).expect("no other recorder in this binary");
        shared
    })
}

impl Shared {
    fn counter(&self, name: &str, system: &str) -> u64 {
        let counters = self.0.counters.lock();
        counters
            .get(&format!("{name}{{{system}}}"))
            .map_or(0, |c| c.load(Ordering::SeqCst))
    }

    fn samples(&self, name: &str, system: &str) -> u64 {
        let histograms = self.0.histograms.lock();
        histograms
            .get(&format!("{name}{{{system}}}"))
            .map_or(0, |h| h.0.load(Ordering::SeqCst))
    }
}

#[test]
fn metrics_are_recorded_under_their_names() {
    const SYSTEM: &str = "metrics-case";
    let capture = capture();
    let probe = Probe::new(3);
    // One message per turn. FSM 2 takes 1, then STOP, and stops with four
    // messages left; FSM 0 takes three turns. Both wait for the spawn.
    let (router, mut system) = system(&config(1, 4, 1), 3);
    [1, STOP, 2, 3, 4, 5]
        .into_iter()
        .for_each(|m| router.send(2, m).unwrap());
    (0..3).for_each(|m| router.send(0, m).unwrap());
    system.spawn(SYSTEM, || Counting::new(&probe)).unwrap();
    assert!(probe.wait_total(4));
    while router.mailbox(2).is_some() {
        std::thread::yield_now();
    }
    system.shutdown();

    // STOP counts as handled: the FSM took it.
    assert_eq!(capture.counter(names::MESSAGES_HANDLED_TOTAL, SYSTEM), 5);
    assert_eq!(capture.counter(names::RESCHEDULES_TOTAL, SYSTEM), 3);
    assert_eq!(capture.counter(names::MESSAGES_DROPPED_TOTAL, SYSTEM), 4);
    let rounds = probe.rounds_ended.load(Ordering::SeqCst);
    assert_eq!(rounds, 3);
    assert_eq!(capture.samples(names::ROUND_FSMS, SYSTEM), rounds);
    assert_eq!(
        capture.samples(names::ROUND_DURATION_SECONDS, SYSTEM),
        rounds
    );
    assert_eq!(capture.samples(names::MAILBOX_DEPTH_MAX, SYSTEM), rounds);
    assert!(names::MESSAGES_DROPPED_TOTAL.starts_with("flotilla_batch_"));
}
