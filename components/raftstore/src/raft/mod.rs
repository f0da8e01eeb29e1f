//! A region's peer: the raft group and the region state, free of
//! batch-system types. Its behaviour is split by feature under
//! `operation/`.

mod lease;
mod peer;

pub(crate) use lease::Lease;
pub use peer::Peer;
pub(crate) use peer::{PendingRead, Proposal, ProposalBatch};
