//! The window of appends sent to a follower but not yet acknowledged.

use std::collections::VecDeque;

/// A bounded queue of the appends in flight to one follower, limited both
/// by the number of messages and by the bytes they carry.
///
/// Each message is remembered by the index of its last entry and its size;
/// an acknowledgement up to some index frees every message ending at or
/// before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inflights {
    /// `(last_index, bytes)` per message, oldest first.
    /// Invariant: `last_index` strictly increases from front to back, and
    /// `queue.len() <= cap_count`.
    queue: VecDeque<(u64, u64)>,
    /// Invariant: the sum of the `bytes` of every message in `queue`.
    bytes: u64,
    /// The most messages allowed in flight. Invariant: at least 1.
    cap_count: usize,
    /// The most bytes allowed in flight (`u64::MAX` for no limit). A single
    /// message may exceed it; the window is then full until it is freed.
    cap_bytes: u64,
}

impl Inflights {
    /// An empty window of at most `cap_count` messages and `cap_bytes`
    /// bytes (`u64::MAX`: no byte limit).
    pub fn new(cap_count: usize, cap_bytes: u64) -> Self {
        assert!(cap_count > 0, "inflights: cap_count must be at least 1");
        Self {
            queue: VecDeque::new(),
            bytes: 0,
            cap_count,
            cap_bytes,
        }
    }

    /// Records a message whose last entry is `last_index`, carrying `bytes`.
    ///
    /// # Panics
    /// If the window is full, or `last_index` does not exceed the last
    /// index already in flight: both are bugs in the caller.
    pub fn add(&mut self, last_index: u64, bytes: u64) {
        assert!(
            !self.full(),
            "inflights: cannot add index {last_index} ({bytes} bytes): window full \
             ({} of {} messages, {} of {} bytes)",
            self.queue.len(),
            self.cap_count,
            self.bytes,
            self.cap_bytes,
        );
        if let Some(&(back, _)) = self.queue.back() {
            assert!(
                last_index > back,
                "inflights: index {last_index} added after {back}; indexes must increase"
            );
        }
        self.queue.push_back((last_index, bytes));
        self.bytes = self.bytes.saturating_add(bytes);
    }

    /// Frees every message whose last index is `<= to`.
    pub fn free_to(&mut self, to: u64) {
        while let Some(&(last_index, bytes)) = self.queue.front() {
            if last_index > to {
                break;
            }
            self.queue.pop_front();
            self.bytes -= bytes;
        }
    }

    /// Frees the oldest message, if any.
    pub fn free_first_one(&mut self) {
        if let Some((_, bytes)) = self.queue.pop_front() {
            self.bytes -= bytes;
        }
    }

    /// True when no further message may be sent: the message cap is reached
    /// or the bytes in flight reach the byte cap.
    pub fn full(&self) -> bool {
        self.queue.len() >= self.cap_count || self.bytes >= self.cap_bytes
    }

    /// The number of messages in flight.
    pub fn count(&self) -> usize {
        self.queue.len()
    }

    /// The bytes in flight.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The most messages allowed in flight.
    pub fn cap_count(&self) -> usize {
        self.cap_count
    }

    /// The most bytes allowed in flight (`u64::MAX`: no limit).
    pub fn cap_bytes(&self) -> u64 {
        self.cap_bytes
    }

    /// Frees everything.
    pub fn reset(&mut self) {
        self.queue.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_cap_fills_and_frees() {
        let mut ins = Inflights::new(3, u64::MAX);
        assert!(!ins.full());
        ins.add(5, 10);
        ins.add(7, 10);
        assert!(!ins.full());
        ins.add(9, 10);
        assert!(ins.full());
        assert_eq!((ins.count(), ins.bytes()), (3, 30));
        ins.free_to(4);
        assert_eq!(ins.count(), 3, "nothing ends at or before 4");
        ins.free_to(7);
        assert_eq!((ins.count(), ins.bytes()), (1, 10));
        assert!(!ins.full());
        ins.free_to(100);
        assert_eq!((ins.count(), ins.bytes()), (0, 0));
    }

    #[test]
    fn byte_cap_fills_and_frees() {
        let mut ins = Inflights::new(10, 100);
        ins.add(1, 40);
        ins.add(2, 40);
        assert!(!ins.full());
        ins.add(3, 20);
        assert!(ins.full(), "exactly at the byte cap is full");
        ins.free_first_one();
        assert_eq!((ins.count(), ins.bytes()), (2, 60));
        assert!(!ins.full());
        // A single oversized message is allowed but fills the window.
        ins.reset();
        ins.add(4, 500);
        assert!(ins.full());
        ins.free_to(4);
        assert!(!ins.full());
        assert_eq!(ins.cap_count(), 10);
        assert_eq!(ins.cap_bytes(), 100);
    }

    #[test]
    fn free_first_one_on_empty_is_a_no_op() {
        let mut ins = Inflights::new(1, u64::MAX);
        ins.free_first_one();
        ins.add(1, 0);
        assert!(ins.full());
        ins.free_first_one();
        assert_eq!(ins.count(), 0);
    }

    #[test]
    #[should_panic(expected = "window full")]
    fn adding_to_a_full_window_panics() {
        let mut ins = Inflights::new(1, u64::MAX);
        ins.add(1, 1);
        ins.add(2, 1);
    }

    #[test]
    #[should_panic(expected = "indexes must increase")]
    fn adding_a_non_increasing_index_panics() {
        let mut ins = Inflights::new(4, u64::MAX);
        ins.add(5, 1);
        ins.add(5, 1);
    }
}
