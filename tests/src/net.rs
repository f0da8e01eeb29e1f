//! The simulated network: per-message loss, duplication and delay (hence
//! reordering), and partitions.
//!
//! Time is the simulation's step counter. A message sent at step `s` is
//! delivered at `s + delay` with `delay` in `1..=max_delay`; messages due at
//! the same step are delivered in the order they were sent. Loss is decided
//! when a message is sent; partitions are checked when it is delivered, so a
//! partition also cuts messages already in flight.

use flotilla_raft::raftpb::Message;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

/// A message on the wire.
#[derive(Debug, Clone)]
pub struct InFlight {
    /// The step at which it arrives.
    pub deliver_at: u64,
    /// Send order, to break ties deterministically.
    pub seq: u64,
    /// Lost on the way (decided when sent).
    pub lost: bool,
    /// The message.
    pub msg: Message,
}

/// Why a due message did not arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// It arrives.
    Delivered,
    /// Dropped at random.
    Lost,
    /// Sender and receiver are on different sides of a partition.
    Partitioned,
}

/// The network between the peers `1..=n`.
#[derive(Debug)]
pub struct Network {
    inflight: Vec<InFlight>,
    seq: u64,
    // side[id - 1]: peers talk only to peers on the same side.
    side: Vec<u8>,
    /// Chance that a message is lost.
    pub drop: f64,
    /// Chance that a message is delivered twice (with independent delays).
    pub dup: f64,
    /// Largest delay in steps (at least 1).
    pub max_delay: u64,
}

impl Network {
    /// A healed, lossless network for `n` peers.
    pub fn new(n: usize, max_delay: u64) -> Self {
        Network {
            inflight: Vec::new(),
            seq: 0,
            side: vec![0; n],
            drop: 0.0,
            dup: 0.0,
            max_delay: max_delay.max(1),
        }
    }

    /// Puts `m` on the wire at step `now`.
    pub fn send(&mut self, rng: &mut ChaCha8Rng, now: u64, m: Message) {
        if self.dup > 0.0 && rng.random_bool(self.dup) {
            self.enqueue(rng, now, m.clone());
        }
        self.enqueue(rng, now, m);
    }

    fn enqueue(&mut self, rng: &mut ChaCha8Rng, now: u64, msg: Message) {
        let lost = self.drop > 0.0 && rng.random_bool(self.drop);
        let delay = rng.random_range(1..=self.max_delay);
        self.seq += 1;
        self.inflight.push(InFlight {
            deliver_at: now + delay,
            seq: self.seq,
            lost,
            msg,
        });
    }

    /// Removes and returns the messages due at `now` (all of them when
    /// `now` is `u64::MAX`), in delivery order, each with its fate.
    pub fn take_due(&mut self, now: u64) -> Vec<(Message, Fate)> {
        let (mut due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.inflight)
            .into_iter()
            .partition(|f| f.deliver_at <= now);
        self.inflight = rest;
        due.sort_by_key(|f| (f.deliver_at, f.seq));
        due.into_iter()
            .map(|f| {
                let fate = self.fate(&f);
                (f.msg, fate)
            })
            .collect()
    }

    /// Removes and returns the messages on the wire that match `pred`,
    /// whatever their delay, in send order, each with its fate.
    pub fn take_matching(&mut self, pred: impl Fn(&Message) -> bool) -> Vec<(Message, Fate)> {
        let (mut hit, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.inflight)
            .into_iter()
            .partition(|f| pred(&f.msg));
        self.inflight = rest;
        hit.sort_by_key(|f| f.seq);
        hit.into_iter()
            .map(|f| {
                let fate = self.fate(&f);
                (f.msg, fate)
            })
            .collect()
    }

    fn fate(&self, f: &InFlight) -> Fate {
        if f.lost {
            Fate::Lost
        } else if !self.connected(f.msg.from, f.msg.to) {
            Fate::Partitioned
        } else {
            Fate::Delivered
        }
    }

    /// Messages on the wire, in send order.
    pub fn in_flight(&self) -> impl Iterator<Item = &Message> {
        self.inflight.iter().map(|f| &f.msg)
    }

    /// Whether `a` and `b` can talk.
    pub fn connected(&self, a: u64, b: u64) -> bool {
        self.side(a) == self.side(b)
    }

    fn side(&self, id: u64) -> u8 {
        self.side[(id - 1) as usize]
    }

    /// Whether any partition is in place.
    pub fn is_partitioned(&self) -> bool {
        self.side.iter().any(|&s| s != self.side[0])
    }

    /// Cuts the peers in `minority` off from the others.
    pub fn partition(&mut self, minority: &[u64]) {
        self.heal();
        for &id in minority {
            self.side[(id - 1) as usize] = 1;
        }
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        self.side.iter_mut().for_each(|s| *s = 0);
    }
}
