//! The rules of the Raft paper's section 5, one test each.
//!
//! Ongaro and Ousterhout, "In Search of an Understandable Consensus
//! Algorithm (Extended Version)", 2014. Section numbers in the comments
//! refer to it. Each test's name states the rule it checks.
//!
//! Flotilla's core differs from the paper in one place these tests care
//! about: a peer's own acknowledgements (its vote for itself, the leader's
//! append to its own log) count only once the host reports them durable,
//! through `RawNode::advance`. So the tests drive peers through their
//! `Ready`s, as a host would (`harness::flush`, `harness::Network`).
//!
//! Unless a test says otherwise, peers run the paper's plain raft: no
//! pre-vote, no check-quorum.

mod harness;

mod crashes;
mod durability;
mod election;
mod replication;
mod safety;
mod terms;
