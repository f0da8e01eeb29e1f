//! The control FSM gets control messages; broadcasts reach every normal FSM.

use std::sync::atomic::Ordering;

use crate::support::{Counting, Probe, config, finish, system};

#[test]
fn control_messages_reach_the_control_fsm() {
    let probe = Probe::new(1);
    let (router, mut system) = system(&config(2, 4, 4), 1);
    system.spawn("control", || Counting::new(&probe)).unwrap();
    (0..100).for_each(|m| router.send_control(m).unwrap());
    router.control_mailbox().force_send(100).unwrap();
    finish(&mut system, &probe, 101);
    assert_eq!(probe.control_handled.load(Ordering::SeqCst), 101);
    assert_eq!(
        probe.handled[0].load(Ordering::SeqCst),
        0,
        "normal FSMs got none"
    );
}

#[test]
fn broadcast_normal_reaches_every_normal_fsm_once() {
    const FSMS: u64 = 300;
    let probe = Probe::new(FSMS as usize);
    let (router, mut system) = system(&config(2, 16, 4), FSMS);
    system.spawn("broadcast", || Counting::new(&probe)).unwrap();
    let mut made = 0;
    let sent = router.broadcast_normal(|| {
        made += 1;
        7
    });
    assert_eq!((sent, made), (FSMS as usize, FSMS as usize));
    finish(&mut system, &probe, FSMS);
    assert!(probe.handled.iter().all(|h| h.load(Ordering::SeqCst) == 1));
    assert_eq!(probe.control_handled.load(Ordering::SeqCst), 0);
}
