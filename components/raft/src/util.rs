//! Small helpers shared by the core's modules.

use flotilla_proto::raftpb::Entry;
use prost::Message as _;

/// No limit, for byte caps.
pub const NO_LIMIT: u64 = u64::MAX;

/// The size an entry counts for in byte caps: its encoded length.
pub fn entry_size(e: &Entry) -> u64 {
    e.encoded_len() as u64
}

/// The total of [`entry_size`] over `ents`.
pub fn entries_size(ents: &[Entry]) -> u64 {
    ents.iter().map(entry_size).sum()
}

/// Truncates `ents` so that their total size stays within `max_bytes`, but
/// always keeps at least the first entry (so progress is always possible).
pub fn limit_size(ents: &mut Vec<Entry>, max_bytes: u64) {
    if ents.len() <= 1 || max_bytes == NO_LIMIT {
        return;
    }
    let mut size = 0u64;
    let keep = ents
        .iter()
        .take_while(|e| {
            if size == 0 {
                size = entry_size(e);
                return true;
            }
            size = size.saturating_add(entry_size(e));
            size <= max_bytes
        })
        .count();
    ents.truncate(keep);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ent(index: u64, data_len: usize) -> Entry {
        Entry {
            index,
            term: 1,
            data: vec![7u8; data_len].into(),
            ..Default::default()
        }
    }

    #[test]
    fn limit_size_keeps_at_least_one_entry() {
        let mut ents = vec![ent(1, 100), ent(2, 100)];
        limit_size(&mut ents, 0);
        assert_eq!(ents.len(), 1);
    }

    #[test]
    fn limit_size_stops_at_the_cap() {
        let one = entry_size(&ent(1, 100));
        let mut ents = vec![ent(1, 100), ent(2, 100), ent(3, 100)];
        limit_size(&mut ents, one * 2);
        assert_eq!(ents.len(), 2);
        let mut ents = vec![ent(1, 100), ent(2, 100), ent(3, 100)];
        limit_size(&mut ents, one * 2 - 1);
        assert_eq!(ents.len(), 1);
        let mut ents = vec![ent(1, 100), ent(2, 100), ent(3, 100)];
        limit_size(&mut ents, NO_LIMIT);
        assert_eq!(ents.len(), 3);
    }
}
