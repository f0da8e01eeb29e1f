//! The script's output buffer, and a tracing layer that copies the raft
//! core's log events into it.
//!
//! Everything lives in a thread-local, so scripts (or other tests) running
//! on other threads never mix their output. The harness writes its own
//! lines with [`emit`]; events arrive interleaved in the order they happen.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::sync::Once;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};

#[derive(Debug)]
struct State {
    out: String,
    /// The most verbose level captured; `None` captures nothing.
    level: Option<Level>,
    /// The node the harness is driving, named in events without a `raft_id`.
    node: u64,
    indent: usize,
}

thread_local! {
    static STATE: RefCell<State> = const {
        RefCell::new(State { out: String::new(), level: None, node: 0, indent: 0 })
    };
}

/// Installs the capturing subscriber as the process-wide default, once.
///
/// Tracing caches, per call site, whether any subscriber wants its events.
/// A subscriber installed for one thread only races with call sites first
/// reached on other threads (other tests of this binary): a site can cache
/// "nobody wants this" and then never reach the script's capture. A global
/// subscriber is always among the interested, so no site is ever lost. It
/// captures only on threads that asked for it (see [`reset`]): elsewhere
/// the thread-local level is `None` and events are dropped at once.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let subscriber = tracing_subscriber::registry().with(CaptureLayer);
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in the spec binary");
    });
}

/// Starts capturing on this thread with the defaults (log level info, no
/// node, no indent, empty buffer).
pub fn reset() {
    STATE.with(|s| {
        *s.borrow_mut() = State {
            out: String::new(),
            level: Some(Level::INFO),
            node: 0,
            indent: 0,
        }
    });
}

/// Writes one line of harness output at the current indent.
pub fn emit(line: impl AsRef<str>) {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        let pad = s.indent;
        let _ = writeln!(s.out, "{:pad$}{}", "", line.as_ref());
    });
}

/// Takes everything written since the last call.
pub fn take() -> String {
    STATE.with(|s| std::mem::take(&mut s.borrow_mut().out))
}

/// Sets which events are captured: `None` for none, else up to `level`.
pub fn set_level(level: Option<Level>) {
    STATE.with(|s| s.borrow_mut().level = level);
}

/// Names the node the harness is about to drive.
pub fn set_node(id: u64) {
    STATE.with(|s| s.borrow_mut().node = id);
}

/// Runs `f` with the output indented by `by` more columns.
pub fn indented<R>(by: usize, f: impl FnOnce() -> R) -> R {
    STATE.with(|s| s.borrow_mut().indent += by);
    let r = f();
    STATE.with(|s| s.borrow_mut().indent -= by);
    r
}

#[derive(Debug)]
struct CaptureLayer;

impl<S: Subscriber> Layer<S> for CaptureLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        if !meta.target().starts_with("flotilla_raft") {
            return;
        }
        let wanted = STATE.with(|s| s.borrow().level.is_some_and(|max| *meta.level() <= max));
        if !wanted {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let node = fields
            .raft_id
            .unwrap_or_else(|| STATE.with(|s| s.borrow().node));
        let who = if node == 0 {
            String::new()
        } else {
            format!(" {node}")
        };
        emit(format!(
            "{}{who} {}{}",
            meta.level(),
            fields.message,
            fields.rest
        ));
    }
}

/// An event's fields: its message, the id of the raft peer it is about, and
/// the other fields as ` key=value` in the order they were recorded.
#[derive(Debug, Default)]
struct Fields {
    message: String,
    raft_id: Option<u64>,
    rest: String,
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "raft_id" {
            self.raft_id = Some(value);
        } else {
            let _ = write!(self.rest, " {}={value}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            let _ = write!(self.rest, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }
}
