//! Flotilla's workspace-level integration tests, linked into one binary.

mod raft_sim;
