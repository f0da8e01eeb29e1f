//! Flotilla's network transport: stores talk over TCP.
//!
//! One mio event-loop thread per store implements the store's
//! [`Transport`](flotilla_raftstore::transport::Transport): each round's
//! frame to a store is one length-prefixed, checksummed prost frame
//! ([`frame`]) on the one connection to that store; connections introduce
//! themselves with a `Hello` naming both stores; incoming frames are handed
//! to the store's regions through its
//! [`Deliver`](flotilla_raftstore::transport::Deliver) side. Snapshots
//! stream in chunks on connections of their own, rate-limited and capped
//! in number per store. Clients reach a store's regions over the network
//! through [`client`].
//!
//! This crate knows the store only through those two traits and must never
//! depend on the engine or the raft core.

#![deny(missing_docs)]

pub mod client;
mod config;
pub mod frame;
mod snapshot;
mod stats;
mod tcp;

pub use config::TransportConfig;
pub use stats::{TransportStats, TransportStatsSnapshot};
pub use tcp::TcpTransport;
