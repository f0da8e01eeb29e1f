//! The in-memory cache of a region's most recent log entries, bounded per
//! region (entries and bytes) and per store (a byte budget all regions
//! share).
//!
//! The leader reads the newest entries again and again (to send them to
//! followers, to apply them); the cache serves those without touching
//! RocksDB. It always holds a contiguous suffix of what was appended.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flotilla_proto::raftpb::Entry;
use flotilla_raft::entry_size;

/// The entry-cache bytes of every region of a store, against one limit.
///
/// A region that appends while the store is over the limit evicts its own
/// oldest entries (never those of the append itself) until the store is
/// back under it or the region holds nothing older. So the limit is soft:
/// it can be passed by the entries of appends in progress, which each
/// region's own bounds cap. Idle regions keep their entries until the host
/// trims them ([`RegionLogStorage::evict_cache_to`]) once applied and
/// replicated.
///
/// [`RegionLogStorage::evict_cache_to`]: crate::RegionLogStorage::evict_cache_to
#[derive(Debug)]
pub struct EntryCacheBudget {
    used_bytes: AtomicU64,
    limit_bytes: u64,
}

impl EntryCacheBudget {
    /// A budget of `limit_bytes`, nothing used.
    pub fn new(limit_bytes: u64) -> Self {
        Self {
            used_bytes: AtomicU64::new(0),
            limit_bytes,
        }
    }

    /// Bytes cached by all regions together.
    pub fn used_bytes(&self) -> u64 {
        self.used_bytes.load(Ordering::Relaxed)
    }

    /// The store-wide limit.
    pub fn limit_bytes(&self) -> u64 {
        self.limit_bytes
    }

    fn over(&self) -> bool {
        self.used_bytes() > self.limit_bytes
    }

    fn add(&self, bytes: u64) {
        self.used_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn sub(&self, bytes: u64) {
        let prev = self.used_bytes.fetch_sub(bytes, Ordering::Relaxed);
        assert!(
            prev >= bytes,
            "entry cache budget underflow: {prev} - {bytes}"
        );
    }
}

/// One region's cached entries.
#[derive(Debug)]
pub(crate) struct EntryCache {
    // Invariant: entries[i].index == entries[0].index + i.
    entries: VecDeque<Entry>,
    // Invariant: bytes == sum of entry_size over entries, and is counted
    // in budget.
    bytes: u64,
    entries_max: usize,
    bytes_max: u64,
    budget: Arc<EntryCacheBudget>,
}

impl EntryCache {
    pub(crate) fn new(entries_max: usize, bytes_max: u64, budget: Arc<EntryCacheBudget>) -> Self {
        Self {
            entries: VecDeque::new(),
            bytes: 0,
            entries_max,
            bytes_max,
            budget,
        }
    }

    /// The index of the oldest cached entry.
    pub(crate) fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|e| e.index)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(crate) fn get(&self, index: u64) -> Option<&Entry> {
        let first = self.first_index()?;
        let offset = index.checked_sub(first)?;
        self.entries.get(usize::try_from(offset).ok()?)
    }

    /// Cached entries from `index` on, oldest first.
    pub(crate) fn iter_from(&self, index: u64) -> impl Iterator<Item = &Entry> {
        let skip = self
            .first_index()
            .map_or(0, |first| index.saturating_sub(first) as usize);
        self.entries.iter().skip(skip)
    }

    /// Adds `ents` (contiguous) as the newest entries: cached entries from
    /// `ents[0].index` on are replaced; if `ents` does not continue or
    /// overlap the cache, the cache restarts from `ents`. Then evicts.
    pub(crate) fn append(&mut self, ents: &[Entry]) {
        let Some(first) = ents.first().map(|e| e.index) else {
            return;
        };
        match self.first_index() {
            Some(cache_first) if first > cache_first => {
                let last = cache_first + self.entries.len() as u64 - 1;
                if first > last + 1 {
                    self.clear();
                } else {
                    self.truncate_from(first);
                }
            }
            _ => self.clear(),
        }
        for e in ents {
            let size = entry_size(e);
            self.bytes += size;
            self.budget.add(size);
            self.entries.push_back(e.clone());
        }
        self.evict(ents.len());
    }

    /// Evicts from the oldest end: while over the region's bounds (hard),
    /// then while the store is over its budget (keeping the `protect`
    /// newest entries).
    fn evict(&mut self, protect: usize) {
        while !self.entries.is_empty()
            && (self.entries.len() > self.entries_max || self.bytes > self.bytes_max)
        {
            self.pop_front();
        }
        while self.entries.len() > protect && self.budget.over() {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some(e) = self.entries.pop_front() {
            self.release(entry_size(&e));
        }
    }

    fn release(&mut self, size: u64) {
        self.bytes -= size;
        self.budget.sub(size);
    }

    /// Drops cached entries at `index` and after.
    pub(crate) fn truncate_from(&mut self, index: u64) {
        while self.entries.back().is_some_and(|e| e.index >= index) {
            if let Some(e) = self.entries.pop_back() {
                self.release(entry_size(&e));
            }
        }
    }

    /// Drops cached entries before `index`.
    pub(crate) fn compact_to(&mut self, index: u64) {
        while self.entries.front().is_some_and(|e| e.index < index) {
            self.pop_front();
        }
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        let bytes = std::mem::take(&mut self.bytes);
        self.budget.sub(bytes);
    }
}

impl Drop for EntryCache {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ent(index: u64, term: u64, len: usize) -> Entry {
        Entry {
            index,
            term,
            data: vec![1u8; len].into(),
            ..Default::default()
        }
    }

    fn ents(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
        range.map(|i| ent(i, term, 10)).collect()
    }

    fn indexes(c: &EntryCache) -> Vec<(u64, u64)> {
        c.entries.iter().map(|e| (e.index, e.term)).collect()
    }

    fn cache(entries_max: usize, bytes_max: u64, budget: &Arc<EntryCacheBudget>) -> EntryCache {
        EntryCache::new(entries_max, bytes_max, budget.clone())
    }

    #[test]
    fn append_extends_overwrites_and_restarts_after_a_gap() {
        let budget = Arc::new(EntryCacheBudget::new(u64::MAX));
        let mut c = cache(100, u64::MAX, &budget);
        c.append(&ents(1..=3, 1));
        c.append(&ents(4..=5, 1));
        assert_eq!(c.first_index(), Some(1));
        c.append(&ents(3..=3, 2));
        assert_eq!(indexes(&c), vec![(1, 1), (2, 1), (3, 2)]);
        c.append(&ents(7..=8, 3));
        assert_eq!(indexes(&c), vec![(7, 3), (8, 3)]);
        c.append(&ents(5..=6, 4));
        assert_eq!(indexes(&c), vec![(5, 4), (6, 4)]);
        assert_eq!(c.get(6).map(|e| e.term), Some(4));
        assert!(c.get(4).is_none() && c.get(7).is_none());
        assert_eq!(budget.used_bytes(), c.bytes());
    }

    #[test]
    fn region_bounds_evict_the_oldest() {
        let budget = Arc::new(EntryCacheBudget::new(u64::MAX));
        let mut c = cache(3, u64::MAX, &budget);
        c.append(&ents(1..=5, 1));
        assert_eq!(c.first_index(), Some(3));
        let one = entry_size(&ent(1, 1, 10));
        let mut c = cache(100, one * 2, &budget);
        c.append(&ents(1..=5, 1));
        assert_eq!(c.len(), 2);
        assert_eq!(budget.used_bytes(), 3 * one + 2 * one);
    }

    #[test]
    fn store_budget_evicts_own_oldest_but_not_the_new_append() {
        let one = entry_size(&ent(1, 1, 10));
        let budget = Arc::new(EntryCacheBudget::new(4 * one));
        let mut a = cache(100, u64::MAX, &budget);
        let mut b = cache(100, u64::MAX, &budget);
        a.append(&ents(1..=4, 1));
        assert_eq!(budget.used_bytes(), 4 * one);
        // b's append puts the store over: b keeps its new entries (nothing
        // older to evict), the budget is passed by them.
        b.append(&ents(1..=2, 1));
        assert_eq!(b.len(), 2);
        assert_eq!(budget.used_bytes(), 6 * one);
        // a appends again: it evicts its own oldest to get back under.
        a.append(&ents(5..=5, 1));
        assert_eq!(a.first_index(), Some(4));
        assert_eq!(budget.used_bytes(), 4 * one);
        drop(a);
        assert_eq!(budget.used_bytes(), 2 * one);
        drop(b);
        assert_eq!(budget.used_bytes(), 0);
    }

    #[test]
    fn compact_and_truncate_release_bytes() {
        let budget = Arc::new(EntryCacheBudget::new(u64::MAX));
        let mut c = cache(100, u64::MAX, &budget);
        c.append(&ents(1..=6, 1));
        c.compact_to(3);
        c.truncate_from(6);
        assert_eq!(indexes(&c), vec![(3, 1), (4, 1), (5, 1)]);
        assert_eq!(
            c.iter_from(4).map(|e| e.index).collect::<Vec<_>>(),
            vec![4, 5]
        );
        assert_eq!(budget.used_bytes(), c.bytes());
        c.compact_to(10);
        assert_eq!(c.first_index(), None);
        assert_eq!(budget.used_bytes(), 0);
    }

    #[test]
    fn a_zero_bound_disables_the_cache() {
        let budget = Arc::new(EntryCacheBudget::new(u64::MAX));
        let mut c = cache(0, u64::MAX, &budget);
        c.append(&ents(1..=3, 1));
        assert_eq!(c.len(), 0);
        assert_eq!(budget.used_bytes(), 0);
    }
}
