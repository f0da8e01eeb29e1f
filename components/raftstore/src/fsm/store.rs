//! The store's own FSM: store-wide work, the tick above all.

use flotilla_batch_system::Fsm;

use crate::msg::StoreMsg;

/// The store's control FSM.
#[derive(Debug, Default)]
pub struct StoreFsm {
    /// Store ticks handled.
    pub(crate) ticks: u64,
}

impl Fsm for StoreFsm {
    type Message = StoreMsg;

    fn is_stopped(&self) -> bool {
        false
    }
}
