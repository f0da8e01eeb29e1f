//! A region's FSM: its [`Peer`] in a batch-system mailbox.

use flotilla_batch_system::Fsm;

use crate::msg::PeerMsg;
use crate::raft::Peer;

/// A region's FSM.
#[derive(Debug)]
pub struct PeerFsm {
    pub(crate) peer: Peer,
}

impl PeerFsm {
    /// Wraps a peer.
    pub fn new(peer: Peer) -> Box<Self> {
        Box::new(PeerFsm { peer })
    }
}

impl Fsm for PeerFsm {
    type Message = PeerMsg;

    fn is_stopped(&self) -> bool {
        false
    }
}
