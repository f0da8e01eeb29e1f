//! `run_round`: rounds driven by the caller's thread, with no poller, are
//! the same rounds, in the order the FSMs became ready.

use std::sync::atomic::Ordering;

use flotilla_batch_system::{HandleResult, Inbox, PollHandler};

use crate::support::{Control, Counting, Msg, Node, Probe, config, system};

/// Records the order FSMs are handled in.
struct Order {
    inner: Counting,
    seen: Vec<u64>,
}

impl PollHandler<Node, Control> for Order {
    fn begin(&mut self, batch_size: usize) {
        self.inner.begin(batch_size);
    }

    fn handle_control(&mut self, c: &mut Control, inbox: &mut Inbox<'_, Msg>) -> HandleResult {
        self.inner.handle_control(c, inbox)
    }

    fn handle_normal(&mut self, node: &mut Node, inbox: &mut Inbox<'_, Msg>) -> HandleResult {
        self.seen.push(node.id);
        self.inner.handle_normal(node, inbox)
    }

    fn end(&mut self, normals: &mut [Option<Box<Node>>]) {
        self.inner.end(normals);
    }
}

#[test]
fn a_caller_driven_round_takes_ready_fsms_in_the_order_they_became_ready() {
    let probe = Probe::new(10);
    let (router, mut system) = system(&config(1, 4, 16), 10);
    let mut handler = Order {
        inner: Counting::new(&probe),
        seen: Vec::new(),
    };
    assert_eq!(
        system.run_round(&mut handler),
        0,
        "nothing ready: no round, no blocking"
    );
    for id in [7, 2, 9, 2, 5, 0] {
        router.send(id, 1).expect("open mailbox");
    }
    assert_eq!(
        system.run_round(&mut handler),
        4,
        "a round is capped at max_batch_size"
    );
    assert_eq!(handler.seen, [7, 2, 9, 5]);
    assert_eq!(system.run_round(&mut handler), 1);
    assert_eq!(handler.seen, [7, 2, 9, 5, 0]);
    assert_eq!(system.run_round(&mut handler), 0);
    assert_eq!(probe.total(), 6, "every message handled once");
    assert_eq!(probe.handled[2].load(Ordering::SeqCst), 2);
    assert_eq!(probe.rounds_ended.load(Ordering::SeqCst), 2);
    router.send_control(3).expect("control mailbox");
    assert_eq!(
        system.run_round(&mut handler),
        1,
        "the control FSM takes part"
    );
    assert_eq!(probe.control_handled.load(Ordering::SeqCst), 1);
    system.shutdown();
    assert!(router.send(1, 1).is_err(), "closed after shutdown");
}
