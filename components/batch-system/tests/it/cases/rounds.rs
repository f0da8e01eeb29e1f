//! `end` runs once per round and sees exactly the FSMs that round handled.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

use flotilla_batch_system::{HandleResult, Inbox, PollHandler};

use crate::support::{Control, Counting, Msg, Node, Probe, config, finish, system};

/// Checks the shape of every round against what `handle_*` saw.
struct RoundChecker {
    inner: Counting,
    batch_size: Option<usize>,
    handled_ids: Vec<u64>,
    control_in_round: bool,
    largest_batch: Arc<AtomicU64>,
}

impl PollHandler<Node, Control> for RoundChecker {
    fn begin(&mut self, batch_size: usize) {
        assert!(self.batch_size.is_none(), "begin twice without end");
        assert!(batch_size >= 1, "empty round");
        self.batch_size = Some(batch_size);
        self.inner.begin(batch_size);
    }

    fn handle_control(&mut self, c: &mut Control, inbox: &mut Inbox<'_, Msg>) -> HandleResult {
        assert!(self.handled_ids.is_empty(), "control is handled first");
        assert!(!self.control_in_round, "control twice in one round");
        self.control_in_round = true;
        self.inner.handle_control(c, inbox)
    }

    fn handle_normal(&mut self, node: &mut Node, inbox: &mut Inbox<'_, Msg>) -> HandleResult {
        assert!(self.batch_size.is_some(), "handle outside a round");
        self.handled_ids.push(node.id);
        self.inner.handle_normal(node, inbox)
    }

    fn end(&mut self, normals: &mut [Option<Box<Node>>]) {
        let batch_size = self.batch_size.take().expect("end without begin");
        let ids: Vec<u64> = normals
            .iter()
            .map(|n| n.as_ref().expect("slot filled").id)
            .collect();
        assert_eq!(
            ids, self.handled_ids,
            "end sees the round's batch, in order"
        );
        assert_eq!(batch_size, ids.len() + usize::from(self.control_in_round));
        assert!(batch_size <= 8, "batch over max_batch_size");
        self.largest_batch
            .fetch_max(batch_size as u64, Ordering::SeqCst);
        self.handled_ids.clear();
        self.control_in_round = false;
        self.inner.end(normals);
    }
}

#[test]
fn end_is_called_once_per_round_with_the_whole_batch() {
    const FSMS: u64 = 200;
    let probe = Probe::new(FSMS as usize);
    let largest = Arc::new(AtomicU64::new(0));
    let (router, mut system) = system(&config(2, 8, 2), FSMS);
    // A backlog before the pollers start, so rounds are full.
    (0..FSMS).for_each(|id| (0..3).for_each(|m| router.send(id, m).unwrap()));
    system
        .spawn("rounds", || RoundChecker {
            inner: Counting::new(&probe),
            batch_size: None,
            handled_ids: Vec::new(),
            control_in_round: false,
            largest_batch: Arc::clone(&largest),
        })
        .unwrap();
    thread::scope(|s| {
        let control = router.clone();
        s.spawn(move || (0..50).for_each(|m| control.send_control(m).unwrap()));
        (0..FSMS).for_each(|id| router.send(id, 9).unwrap());
    });
    finish(&mut system, &probe, FSMS * 4 + 50);
    let begun = probe.rounds_begun.load(Ordering::SeqCst);
    assert_eq!(begun, probe.rounds_ended.load(Ordering::SeqCst));
    assert_eq!(
        largest.load(Ordering::SeqCst),
        8,
        "a full backlog fills batches"
    );
    assert_eq!(probe.control_handled.load(Ordering::SeqCst), 50);
}
