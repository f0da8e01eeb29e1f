//! A full mailbox refuses with `Full` and hands the message back.

use flotilla_batch_system::{Config, SendError};

use crate::support::{Counting, Probe, config, finish, system};

fn small() -> Config {
    Config {
        mailbox_capacity: 4,
        control_mailbox_capacity: 2,
        ..config(1, 4, 4)
    }
}

#[test]
fn a_full_mailbox_returns_the_message() {
    let probe = Probe::new(2);
    let (router, mut system) = system(&small(), 2);
    (0..4).for_each(|m| router.send(1, m).unwrap());
    match router.send(1, 40) {
        Err(SendError::Full(msg)) => assert_eq!(msg, 40),
        other => panic!("expected Full(40), got {other:?}"),
    }
    let mailbox = router.mailbox(1).unwrap();
    assert!(matches!(mailbox.send(41), Err(SendError::Full(41))));
    assert_eq!((mailbox.len(), mailbox.capacity()), (4, 4));
    // Forcing ignores the bound; other mailboxes are unaffected.
    router.force_send(1, 42).unwrap();
    router.send(0, 0).unwrap();
    router.send_control(1).unwrap();
    router.send_control(2).unwrap();
    assert!(matches!(router.send_control(3), Err(SendError::Full(3))));
    system.spawn("full", || Counting::new(&probe)).unwrap();
    finish(&mut system, &probe, 4 + 1 + 1 + 2);
    assert_eq!(system.dropped_messages(), 0);
}

#[test]
fn an_unknown_id_returns_the_message() {
    let (router, _system) = system(&small(), 2);
    assert!(matches!(router.send(99, 5), Err(SendError::NotFound(5))));
    assert!(matches!(
        router.force_send(99, 6),
        Err(SendError::NotFound(6))
    ));
    assert_eq!(router.send(99, 7).unwrap_err().into_inner(), 7);
}
