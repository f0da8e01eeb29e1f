//! Flotilla's multi-raft store: the regions of one store, each a raft
//! group, run by a pool of pollers in rounds. In each round every region of
//! the round steps its messages and hands its ready to the round; at the
//! end the round issues ONE engine write with ONE sync for all of them,
//! ONE frame per destination store, and ONE apply write; heartbeats of all
//! regions travel between two stores in ONE coalesced frame per tick.
//!
//! - [`Store`]: a store opened from its data directory; run by threads
//!   ([`Store::start`]) or round by round ([`Store::run_round`],
//!   [`Store::tick`]) by a single-threaded scheduler.
//! - [`Client`]: the embedded KV API (`put`, `delete`, `get`, `scan`,
//!   atomic multi-key `write`) with routing and retries.
//! - [`bootstrap`]: a new cluster's initial regions and ids.
//! - [`transport`]: the [`Transport`](transport::Transport) seam and the
//!   in-memory network with filters.
//! - Seams for simulation: [`Clock`], [`Transport`](transport::Transport)
//!   and the engine's `WriteSink`, given in [`StoreDeps`].
//!
//! This crate reaches RocksDB only through `flotilla-engine` and must never
//! link it directly; it must never depend on a network library (the
//! network transport implements [`transport::Transport`] from outside).

#![deny(missing_docs)]

pub mod bootstrap;
mod client;
mod clock;
mod config;
mod errors;
mod fsm;
mod msg;
mod operation;
mod raft;
mod stats;
mod store;
pub mod transport;

pub use client::{Client, ClientConfig, LocalStores, Mutation, StoreDirectory, StoreHandle};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{LOG_GC_THRESHOLD_BYTES, PROPOSAL_BATCH_BYTES_MAX, StoreConfig};
pub use errors::{Error, Result};
pub use fsm::{PeerFsm, StoreFsm};
pub use msg::{Callback, PeerMsg, ReadRequest, ReadResponse, RegionStatus, StoreMsg};
pub use raft::Peer;
pub use stats::{StatsSnapshot, StoreStats, describe as describe_metrics};
pub use store::{Store, StoreDeps, StoreRouter};
