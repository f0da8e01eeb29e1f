//! The open-loop schedule of `--rate`: requests are due at fixed times,
//! whether or not earlier ones have been answered.
//!
//! A closed loop (a fixed number of requests in flight, each answer making
//! room for the next) runs at whatever throughput that number reaches, and
//! slows down with the system it measures: a stall delays the next requests
//! instead of piling them up, so their wait is never timed. An open loop
//! issues at the rate asked for and times each request from the moment it
//! was due, so latency at a given throughput is measured honestly, stalls
//! included.

use std::time::{Duration, Instant};

/// When each request of one client thread is due.
#[derive(Debug, Clone)]
pub struct Pacer {
    start: Instant,
    interval: Duration,
    /// Requests already taken off the schedule.
    taken: u32,
}

impl Pacer {
    /// A schedule of `per_sec` requests per second from `start` on (the
    /// first is due at `start`). `per_sec` must be positive and finite.
    pub fn new(start: Instant, per_sec: f64) -> Pacer {
        debug_assert!(per_sec > 0.0 && per_sec.is_finite());
        Pacer {
            start,
            interval: Duration::from_secs_f64(1.0 / per_sec),
            taken: 0,
        }
    }

    /// When the next request is due.
    pub fn next_due(&self) -> Instant {
        self.start + self.interval * self.taken
    }

    /// Takes the next request off the schedule if it is due at `now`, and
    /// returns the time it was due (the time its latency counts from).
    pub fn take_due(&mut self, now: Instant) -> Option<Instant> {
        let due = self.next_due();
        (due <= now).then(|| {
            self.taken = self.taken.saturating_add(1);
            due
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_fall_due_at_the_rate_and_late_ones_keep_their_times() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, 1000.0);
        assert_eq!(p.take_due(t0), Some(t0), "the first is due at once");
        assert_eq!(p.take_due(t0), None, "the second only a millisecond later");
        assert_eq!(p.next_due(), t0 + Duration::from_millis(1));
        // Ten milliseconds late: the nine requests due meanwhile all come
        // out at once, each with the time it was due, not the time taken.
        let late = t0 + Duration::from_millis(10);
        let dues: Vec<_> = std::iter::from_fn(|| p.take_due(late)).collect();
        assert_eq!(dues.len(), 10, "due at 1, 2, ..., 10 ms");
        for (i, d) in dues.iter().enumerate() {
            assert_eq!(*d, t0 + Duration::from_millis(i as u64 + 1));
        }
        assert_eq!(p.take_due(late), None);
    }

    #[test]
    fn a_second_of_schedule_holds_the_rate() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, 2500.0);
        let end = t0 + Duration::from_secs(1);
        let n = std::iter::from_fn(|| p.take_due(end)).count();
        assert!((2500..=2501).contains(&n), "{n}");
    }
}
