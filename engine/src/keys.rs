//! Column family names and key encodings. `docs/storage-format.md` is the
//! byte-by-byte description of what is here; change both together.
//!
//! Every integer in a key is big-endian, so that RocksDB's bytewise order is
//! numeric order: one region's log entries are adjacent and sorted by index,
//! and all keys of one region sort before those of the next region.

use crate::error::{Error, Result};

/// The column family RocksDB always has; holds only the format marker.
pub const CF_DEFAULT: &str = "default";
/// User data: user keys stored as given, no prefix.
pub const CF_DATA: &str = "data";
/// Raft log entries of every region.
pub const CF_RAFT_LOG: &str = "raft_log";
/// One `RaftLocalState` (hard state + last index) per region.
pub const CF_RAFT_STATE: &str = "raft_state";
/// `RegionLocalState` and `RaftApplyState` per region.
pub const CF_REGION_META: &str = "region_meta";

/// Every column family the engine opens, in a fixed order.
pub const ALL_CFS: [&str; 5] = [
    CF_DEFAULT,
    CF_DATA,
    CF_RAFT_LOG,
    CF_RAFT_STATE,
    CF_REGION_META,
];

/// The key of the format marker in [`CF_DEFAULT`].
pub const FORMAT_VERSION_KEY: &[u8] = b"flotilla.format_version";
/// The on-disk format this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// First byte of every key in [`CF_RAFT_LOG`].
pub const RAFT_LOG_PREFIX: u8 = 0x01;
/// First byte of every key in [`CF_RAFT_STATE`].
pub const RAFT_STATE_PREFIX: u8 = 0x02;
/// First byte of every key in [`CF_REGION_META`].
pub const REGION_META_PREFIX: u8 = 0x03;
/// First byte of every key in [`CF_DATA`], before the user key.
pub const DATA_PREFIX: u8 = 0x04;
/// Last byte of a region-meta key holding a `RegionLocalState`.
pub const REGION_STATE_SUFFIX: u8 = 0x01;
/// Last byte of a region-meta key holding a `RaftApplyState`.
pub const APPLY_STATE_SUFFIX: u8 = 0x02;

/// Length of a raft log key: prefix, region id, index.
pub const RAFT_LOG_KEY_LEN: usize = 1 + 8 + 8;
/// Length of a region-meta key: prefix, region id, suffix.
pub const REGION_META_KEY_LEN: usize = 1 + 8 + 1;

/// `0x01 | region_id | index`: the key of one log entry.
pub fn raft_log_key(region_id: u64, index: u64) -> [u8; RAFT_LOG_KEY_LEN] {
    let mut k = [0u8; RAFT_LOG_KEY_LEN];
    k[0] = RAFT_LOG_PREFIX;
    k[1..9].copy_from_slice(&region_id.to_be_bytes());
    k[9..17].copy_from_slice(&index.to_be_bytes());
    k
}

/// The exclusive end of every log key of `region_id`: the first log key of
/// the next region id (or the next prefix for the largest id).
pub fn raft_log_region_end(region_id: u64) -> Vec<u8> {
    match region_id.checked_add(1) {
        Some(next) => raft_log_key(next, 0).to_vec(),
        None => vec![RAFT_LOG_PREFIX + 1],
    }
}

/// Decodes a log key into (region id, index).
pub fn decode_raft_log_key(key: &[u8]) -> Result<(u64, u64)> {
    if key.len() != RAFT_LOG_KEY_LEN || key[0] != RAFT_LOG_PREFIX {
        return Err(Error::corruption(format!(
            "raft log key {:?} is not 0x01 + region id + index",
            HexKey(key)
        )));
    }
    Ok((be_u64(&key[1..9]), be_u64(&key[9..17])))
}

/// `0x02 | region_id`: the key of a region's `RaftLocalState`.
pub fn raft_state_key(region_id: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = RAFT_STATE_PREFIX;
    k[1..9].copy_from_slice(&region_id.to_be_bytes());
    k
}

/// `0x03 | region_id | 0x01`: the key of a region's `RegionLocalState`.
pub fn region_state_key(region_id: u64) -> [u8; REGION_META_KEY_LEN] {
    region_meta_key(region_id, REGION_STATE_SUFFIX)
}

/// `0x03 | region_id | 0x02`: the key of a region's `RaftApplyState`.
pub fn apply_state_key(region_id: u64) -> [u8; REGION_META_KEY_LEN] {
    region_meta_key(region_id, APPLY_STATE_SUFFIX)
}

fn region_meta_key(region_id: u64, suffix: u8) -> [u8; REGION_META_KEY_LEN] {
    let mut k = [0u8; REGION_META_KEY_LEN];
    k[0] = REGION_META_PREFIX;
    k[1..9].copy_from_slice(&region_id.to_be_bytes());
    k[9] = suffix;
    k
}

/// Decodes a region-meta key into (region id, suffix).
pub fn decode_region_meta_key(key: &[u8]) -> Result<(u64, u8)> {
    if key.len() != REGION_META_KEY_LEN || key[0] != REGION_META_PREFIX {
        return Err(Error::corruption(format!(
            "region meta key {:?} is not 0x03 + region id + suffix",
            HexKey(key)
        )));
    }
    Ok((be_u64(&key[1..9]), key[9]))
}

/// `0x04 | user_key`, written into `buf` (cleared first) so that a batch
/// can reuse one buffer for all its keys.
pub fn data_key_into(buf: &mut Vec<u8>, user_key: &[u8]) {
    buf.clear();
    buf.reserve(1 + user_key.len());
    buf.push(DATA_PREFIX);
    buf.extend_from_slice(user_key);
}

/// `0x04 | user_key`.
pub fn data_key(user_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::new();
    data_key_into(&mut k, user_key);
    k
}

/// The data-CF key range `[start, end)` of the user range
/// `[start_key, end_key)`; an empty `end_key` (unbounded) maps to the next
/// prefix, past every data key.
pub fn data_range(start_key: &[u8], end_key: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let end = if end_key.is_empty() {
        vec![DATA_PREFIX + 1]
    } else {
        data_key(end_key)
    };
    (data_key(start_key), end)
}

/// The user key of a data-CF key.
pub fn decode_data_key(key: &[u8]) -> Result<&[u8]> {
    match key.split_first() {
        Some((&DATA_PREFIX, user_key)) => Ok(user_key),
        _ => Err(Error::corruption(format!(
            "data key of {} bytes does not start with 0x04",
            key.len()
        ))),
    }
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_be_bytes(a)
}

/// Formats a key as hex for error messages and logs (keys of the engine's
/// own column families only: user keys are never logged).
pub struct HexKey<'a>(pub &'a [u8]);

impl std::fmt::Debug for HexKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_sort_by_region_then_index() {
        let mut keys = [
            raft_log_key(2, 1),
            raft_log_key(1, 256),
            raft_log_key(1, 255),
            raft_log_key(256, 0),
            raft_log_key(1, u64::MAX),
        ];
        keys.sort();
        let decoded: Vec<_> = keys
            .iter()
            .map(|k| decode_raft_log_key(k).unwrap())
            .collect();
        assert_eq!(
            decoded,
            vec![(1, 255), (1, 256), (1, u64::MAX), (2, 1), (256, 0)]
        );
    }

    #[test]
    fn log_region_end_bounds_exactly_one_region() {
        assert!(raft_log_key(7, u64::MAX).as_slice() < raft_log_region_end(7).as_slice());
        assert_eq!(raft_log_region_end(7), raft_log_key(8, 0).to_vec());
        assert!(
            raft_log_key(u64::MAX, u64::MAX).as_slice() < raft_log_region_end(u64::MAX).as_slice()
        );
    }

    #[test]
    fn keys_have_the_documented_bytes() {
        assert_eq!(
            raft_log_key(0x0102, 0x0a0b),
            [1, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0x0a, 0x0b]
        );
        assert_eq!(raft_state_key(5), [2, 0, 0, 0, 0, 0, 0, 0, 5]);
        assert_eq!(region_state_key(5), [3, 0, 0, 0, 0, 0, 0, 0, 5, 1]);
        assert_eq!(apply_state_key(5), [3, 0, 0, 0, 0, 0, 0, 0, 5, 2]);
        assert_eq!(decode_region_meta_key(&apply_state_key(5)).unwrap(), (5, 2));
    }

    #[test]
    fn data_keys_keep_user_order_and_unbounded_end_covers_all() {
        assert_eq!(data_key(b"ab"), vec![4, b'a', b'b']);
        assert!(data_key(b"a") < data_key(b"a\x00"));
        assert!(data_key(b"a\xff") < data_key(b"b"));
        let (start, end) = data_range(b"", b"");
        assert_eq!(start, vec![4]);
        assert!(data_key(&[0xff; 64]) < end);
        assert_eq!(decode_data_key(&data_key(b"xy")).unwrap(), b"xy");
        assert!(decode_data_key(b"").unwrap_err().is_corruption());
        assert!(decode_data_key(b"\x05x").unwrap_err().is_corruption());
    }

    #[test]
    fn malformed_keys_are_corruption_not_panics() {
        assert!(decode_raft_log_key(b"").unwrap_err().is_corruption());
        assert!(
            decode_raft_log_key(&raft_state_key(1))
                .unwrap_err()
                .is_corruption()
        );
        let mut k = raft_log_key(1, 1);
        k[0] = 9;
        assert!(decode_raft_log_key(&k).unwrap_err().is_corruption());
        assert!(decode_region_meta_key(&[3, 1]).unwrap_err().is_corruption());
    }
}
