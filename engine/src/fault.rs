//! The write path as a trait, and a failing/counting wrapper around it, so
//! that the store's crash paths (a write that fails, a write whose outcome
//! is unknown) can be tested without a broken disk.

use parking_lot::{Condvar, Mutex};

use crate::batch::{WriteBatch, WriteStats};
use crate::engine::Engine;
use crate::error::{Error, Result};

/// Where a round's write batch goes. The store writes through this trait so
/// that tests can put a [`FaultyWriteSink`] in the way.
pub trait WriteSink: Send + Sync {
    /// Commits `batch` atomically; with `sync`, durably (see
    /// [`Engine::write`]).
    fn write(&self, batch: WriteBatch, sync: bool) -> Result<WriteStats>;
}

impl WriteSink for Engine {
    fn write(&self, batch: WriteBatch, sync: bool) -> Result<WriteStats> {
        Engine::write(self, batch, sync)
    }
}

/// How an injected write failure behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
    /// The write fails and nothing of the batch lands (a write refused).
    BeforeWrite,
    /// The batch lands but the write reports failure (a sync that failed
    /// after the data reached the log: the outcome is unknown to the caller).
    AfterWrite,
}

/// What a [`FaultyWriteSink`] has seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteCounts {
    /// Writes attempted, failed ones included.
    pub writes: u64,
    /// Attempted writes with `sync` set.
    pub synced_writes: u64,
    /// Writes that reported failure (injected or real).
    pub failed_writes: u64,
    /// Raft entries in the writes that landed.
    pub raft_entries: u64,
    /// Bytes of the writes that landed.
    pub bytes: u64,
}

#[derive(Debug, Default)]
struct FaultState {
    counts: WriteCounts,
    // The 1-based write numbers that fail, and how.
    planned: Vec<(u64, FaultMode)>,
    // Writes wait while held (a disk that stalls).
    held: bool,
}

/// Wraps a [`WriteSink`], counting every write and failing the ones it was
/// told to fail, or holding every write while told to (a stalled disk).
/// Writes that are not planned to fail pass through.
#[derive(Debug)]
pub struct FaultyWriteSink<S> {
    inner: S,
    state: Mutex<FaultState>,
    released: Condvar,
}

impl<S: WriteSink> FaultyWriteSink<S> {
    /// A pass-through wrapper around `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            state: Mutex::new(FaultState::default()),
            released: Condvar::new(),
        }
    }

    /// From now on, writes wait (counted once they go through) until
    /// [`release_writes`](Self::release_writes).
    pub fn hold_writes(&self) {
        self.state.lock().held = true;
    }

    /// Lets held and later writes through.
    pub fn release_writes(&self) {
        self.state.lock().held = false;
        self.released.notify_all();
    }

    /// The wrapped sink.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Makes the `n`th write (counting from 1 since creation) fail.
    pub fn fail_nth_write(&self, n: u64, mode: FaultMode) {
        self.state.lock().planned.push((n, mode));
    }

    /// What the sink has seen so far.
    pub fn counts(&self) -> WriteCounts {
        self.state.lock().counts
    }
}

impl<S: WriteSink> WriteSink for FaultyWriteSink<S> {
    fn write(&self, batch: WriteBatch, sync: bool) -> Result<WriteStats> {
        let fault = {
            let mut st = self.state.lock();
            while st.held {
                self.released.wait(&mut st);
            }
            st.counts.writes += 1;
            st.counts.synced_writes += u64::from(sync);
            let n = st.counts.writes;
            st.planned
                .iter()
                .find(|(at, _)| *at == n)
                .map(|&(_, m)| (n, m))
        };
        let result = match fault {
            Some((n, FaultMode::BeforeWrite)) => Err(injected(n, "before")),
            Some((n, FaultMode::AfterWrite)) => self
                .inner
                .write(batch, sync)
                .and_then(|_| Err(injected(n, "after"))),
            None => self.inner.write(batch, sync),
        };
        let mut st = self.state.lock();
        match &result {
            Ok(stats) => {
                st.counts.raft_entries += stats.raft_entries;
                st.counts.bytes += stats.bytes;
            }
            Err(_) => st.counts.failed_writes += 1,
        }
        result
    }
}

fn injected(n: u64, when: &str) -> Error {
    Error::Io(std::io::Error::other(format!(
        "injected failure of write {n} ({when} writing)"
    )))
}
