//! Flotilla's workspace-level integration tests, linked into one binary.

mod net_transport;
mod raft_sim;
mod store_cluster;
mod store_counted;
