//! Support for Flotilla's workspace-level integration tests (`cases/`).
//!
//! Test-only code; never a dependency of production crates.
//!
//! The raft cluster simulation lives here: [`node`] (one peer and its host:
//! durable storage, asynchronous persistence, the applied state machine),
//! [`net`] (the faulty network), [`checker`] (the safety properties) and
//! [`sim`] (the seeded cluster that drives them all).
//!
//! The store's cluster harness is [`cluster`]: stores on real RocksDB in
//! temporary directories over the in-memory network with filters.

#![deny(missing_docs)]

pub mod checker;
pub mod cluster;
pub mod net;
pub mod node;
pub mod sim;
pub mod tcp_cluster;
