//! The glue between peers and the batch system: the FSMs, and the poller
//! whose round batches every region's writes and messages.

mod peer;
mod poller;
mod store;
pub(crate) mod writer;

pub use peer::PeerFsm;
pub(crate) use poller::{RaftPoller, RoundCtx, StoreShared};
pub use store::StoreFsm;
