//! Metrics, through the `metrics` facade: whatever recorder the process
//! installs (Prometheus exporter, a test recorder) receives them; with none
//! installed they cost a few branches.
//!
//! Every metric carries the label `system` with the name given to
//! [`BatchSystem::spawn`](crate::BatchSystem::spawn) (`unspawned` for
//! messages dropped before the system was spawned).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ::metrics::{Counter, Histogram, Unit};

/// Histogram: FSMs handled in one round (normal FSMs plus the control FSM).
pub const ROUND_FSMS: &str = "flotilla_batch_round_fsms";
/// Histogram: wall time of one round, from `begin` to the end of `end`.
pub const ROUND_DURATION_SECONDS: &str = "flotilla_batch_round_duration_seconds";
/// Histogram: the deepest mailbox seen at the start of an FSM's turn, one
/// sample per round.
pub const MAILBOX_DEPTH_MAX: &str = "flotilla_batch_mailbox_depth_max";
/// Counter: FSMs put back at the end of the ready queue with work left (their
/// message budget or time slice used up, or `StopAt` returned).
pub const RESCHEDULES_TOTAL: &str = "flotilla_batch_reschedules_total";
/// Counter: messages handed to FSMs.
pub const MESSAGES_HANDLED_TOTAL: &str = "flotilla_batch_messages_handled_total";
/// Counter: messages accepted by a mailbox but never handed to an FSM,
/// because the FSM was closed or the system shut down first.
pub const MESSAGES_DROPPED_TOTAL: &str = "flotilla_batch_messages_dropped_total";

const LABEL: &str = "system";
const UNNAMED: &str = "unspawned";

/// Registers the unit and description of every metric with the installed
/// recorder. Optional: the metrics are recorded either way.
pub fn describe() {
    ::metrics::describe_histogram!(ROUND_FSMS, Unit::Count, "FSMs handled in one round");
    ::metrics::describe_histogram!(
        ROUND_DURATION_SECONDS,
        Unit::Seconds,
        "Wall time of one poller round, begin to end"
    );
    ::metrics::describe_histogram!(
        MAILBOX_DEPTH_MAX,
        Unit::Count,
        "Deepest mailbox at the start of a turn, per round"
    );
    ::metrics::describe_counter!(
        RESCHEDULES_TOTAL,
        Unit::Count,
        "FSMs put back at the end of the ready queue with work left"
    );
    ::metrics::describe_counter!(
        MESSAGES_HANDLED_TOTAL,
        Unit::Count,
        "Messages handed to FSMs"
    );
    ::metrics::describe_counter!(
        MESSAGES_DROPPED_TOTAL,
        Unit::Count,
        "Messages accepted but never handled (FSM closed or system shut down)"
    );
}

/// System-wide counters that must be readable without a recorder.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    dropped_messages: AtomicU64,
    system: OnceLock<String>,
}

impl Stats {
    pub(crate) fn set_name(&self, name: &str) {
        // Only the first name sticks: `spawn` runs once per system.
        let _ = self.system.set(name.to_owned());
    }

    fn name(&self) -> String {
        self.system.get().map_or(UNNAMED, String::as_str).to_owned()
    }

    pub(crate) fn on_dropped(&self, count: u64) {
        if count == 0 {
            return;
        }
        self.dropped_messages.fetch_add(count, Ordering::Relaxed);
        ::metrics::counter!(MESSAGES_DROPPED_TOTAL, LABEL => self.name()).increment(count);
    }

    pub(crate) fn dropped_messages(&self) -> u64 {
        self.dropped_messages.load(Ordering::Relaxed)
    }
}

/// One poller's metric handles, registered once when the poller starts.
pub(crate) struct PollerMetrics {
    round_fsms: Histogram,
    round_duration: Histogram,
    mailbox_depth_max: Histogram,
    reschedules: Counter,
    messages_handled: Counter,
}

/// What one round did, recorded in one go at its end.
#[derive(Debug, Default)]
pub(crate) struct RoundStats {
    pub(crate) fsms: usize,
    pub(crate) mailbox_depth_max: usize,
    pub(crate) reschedules: u64,
    pub(crate) messages_handled: u64,
}

impl PollerMetrics {
    pub(crate) fn new(system: &str) -> Self {
        let name = system.to_owned();
        PollerMetrics {
            round_fsms: ::metrics::histogram!(ROUND_FSMS, LABEL => name.clone()),
            round_duration: ::metrics::histogram!(ROUND_DURATION_SECONDS, LABEL => name.clone()),
            mailbox_depth_max: ::metrics::histogram!(MAILBOX_DEPTH_MAX, LABEL => name.clone()),
            reschedules: ::metrics::counter!(RESCHEDULES_TOTAL, LABEL => name.clone()),
            messages_handled: ::metrics::counter!(MESSAGES_HANDLED_TOTAL, LABEL => name),
        }
    }

    pub(crate) fn record(&self, round: &RoundStats, duration: Duration) {
        self.round_fsms.record(round.fsms as f64);
        self.round_duration.record(duration.as_secs_f64());
        self.mailbox_depth_max
            .record(round.mailbox_depth_max as f64);
        if round.reschedules > 0 {
            self.reschedules.increment(round.reschedules);
        }
        if round.messages_handled > 0 {
            self.messages_handled.increment(round.messages_handled);
        }
    }
}
