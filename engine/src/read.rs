//! Reads shared by the live engine and its snapshots: one implementation of
//! every lookup, over either the latest state or a RocksDB snapshot.

use bytes::Bytes;
use rocksdb::{ColumnFamily, DB, DBRawIterator, ReadOptions, Snapshot};

use flotilla_proto::metapb::Region;
use flotilla_proto::raftpb::Entry;
use flotilla_proto::storagepb::{RaftApplyState, RaftLocalState, RegionLocalState};

use crate::error::{Error, Result, decode};
use crate::keys::{self, CF_DATA, CF_RAFT_LOG, CF_RAFT_STATE, CF_REGION_META};
use crate::region::check_key_in_region;

/// A user key and its value.
pub type KvPair = (Bytes, Bytes);

/// Where reads go: the latest state, or a consistent snapshot of it.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'a> {
    pub(crate) db: &'a DB,
    pub(crate) snapshot: Option<&'a Snapshot<'a>>,
}

impl<'a> Reader<'a> {
    pub(crate) fn cf(&self, name: &str) -> &'a ColumnFamily {
        cf_handle(self.db, name)
    }

    fn read_options() -> ReadOptions {
        let mut opts = ReadOptions::default();
        opts.set_verify_checksums(true);
        opts
    }

    /// The value under `key` in column family `cf`.
    pub(crate) fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let cf = self.cf(cf);
        let opts = Self::read_options();
        Ok(match self.snapshot {
            Some(s) => s.get_cf_opt(cf, key, opts)?,
            None => self.db.get_cf_opt(cf, key, &opts)?,
        })
    }

    /// Calls `f` on every pair of `cf` in `[lower, upper)`, in key order,
    /// until it returns `Ok(false)` or fails.
    pub(crate) fn for_each(
        &self,
        cf: &str,
        lower: &[u8],
        upper: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        let cf = self.cf(cf);
        let mut opts = Self::read_options();
        opts.set_iterate_upper_bound(upper.to_vec());
        // Bulk reads (exports, log scans) should not evict the hot set.
        opts.fill_cache(false);
        let mut it: DBRawIterator<'_> = match self.snapshot {
            Some(s) => s.raw_iterator_cf_opt(cf, opts),
            None => self.db.raw_iterator_cf_opt(cf, opts),
        };
        it.seek(lower);
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !f(k, v)? {
                return Ok(());
            }
            it.next();
        }
        it.status()?;
        Ok(())
    }

    /// The value of user key `key`, which must lie in `region`.
    pub(crate) fn get_data(&self, region: &Region, key: &[u8]) -> Result<Option<Bytes>> {
        check_key_in_region(region, key)?;
        Ok(self.get(CF_DATA, &keys::data_key(key))?.map(Bytes::from))
    }

    /// Up to `limit` pairs of `region` from `start` on (`start` empty: from
    /// the region's start), in key order.
    pub(crate) fn scan_data(
        &self,
        region: &Region,
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<KvPair>> {
        let start = if start.is_empty() {
            region.start_key.as_ref()
        } else {
            check_key_in_region(region, start)?;
            start
        };
        let (lower, upper) = keys::data_range(start, &region.end_key);
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        self.for_each(CF_DATA, &lower, &upper, |k, v| {
            let user_key = keys::decode_data_key(k)?;
            out.push((Bytes::copy_from_slice(user_key), Bytes::copy_from_slice(v)));
            Ok(out.len() < limit)
        })?;
        Ok(out)
    }

    /// A region's `RegionLocalState`, if stored.
    pub(crate) fn region_state(&self, region_id: u64) -> Result<Option<RegionLocalState>> {
        self.get_message(CF_REGION_META, &keys::region_state_key(region_id), || {
            format!("RegionLocalState of region {region_id}")
        })
    }

    /// A region's `RaftApplyState`, if stored.
    pub(crate) fn apply_state(&self, region_id: u64) -> Result<Option<RaftApplyState>> {
        self.get_message(CF_REGION_META, &keys::apply_state_key(region_id), || {
            format!("RaftApplyState of region {region_id}")
        })
    }

    /// A region's `RaftLocalState`, if stored.
    pub(crate) fn raft_state(&self, region_id: u64) -> Result<Option<RaftLocalState>> {
        self.get_message(CF_RAFT_STATE, &keys::raft_state_key(region_id), || {
            format!("RaftLocalState of region {region_id}")
        })
    }

    /// The log entry of `region_id` at `index`, if stored; checks that the
    /// entry knows itself by that index.
    pub(crate) fn raft_entry(&self, region_id: u64, index: u64) -> Result<Option<Entry>> {
        let key = keys::raft_log_key(region_id, index);
        let Some(e) = self.get_message::<Entry>(CF_RAFT_LOG, &key, || {
            format!("raft entry {index} of region {region_id}")
        })?
        else {
            return Ok(None);
        };
        check_entry_index(region_id, index, &e)?;
        Ok(Some(e))
    }

    /// The index of the last stored log entry of `region_id`, if any.
    pub(crate) fn last_raft_index(&self, region_id: u64) -> Result<Option<u64>> {
        let cf = self.cf(CF_RAFT_LOG);
        let mut opts = Self::read_options();
        opts.set_iterate_lower_bound(keys::raft_log_key(region_id, 0).to_vec());
        opts.set_iterate_upper_bound(keys::raft_log_region_end(region_id));
        let mut it: DBRawIterator<'_> = match self.snapshot {
            Some(s) => s.raw_iterator_cf_opt(cf, opts),
            None => self.db.raw_iterator_cf_opt(cf, opts),
        };
        it.seek_to_last();
        let last = match it.key() {
            Some(k) => {
                let (id, index) = keys::decode_raft_log_key(k)?;
                if id != region_id {
                    return Err(Error::corruption(format!(
                        "log key of region {id} inside the log range of region {region_id}"
                    )));
                }
                Some(index)
            }
            None => None,
        };
        it.status()?;
        Ok(last)
    }

    fn get_message<M: prost::Message + Default>(
        &self,
        cf: &str,
        key: &[u8],
        context: impl FnOnce() -> String,
    ) -> Result<Option<M>> {
        match self.get(cf, key)? {
            Some(v) => decode(&v, context).map(Some),
            None => Ok(None),
        }
    }

    /// Every `RegionLocalState` stored, in region id order.
    pub(crate) fn region_states(&self) -> Result<Vec<RegionLocalState>> {
        let mut out = Vec::new();
        let lower = [keys::REGION_META_PREFIX];
        let upper = [keys::REGION_META_PREFIX + 1];
        self.for_each(CF_REGION_META, &lower, &upper, |k, v| {
            let (region_id, suffix) = keys::decode_region_meta_key(k)?;
            if suffix == keys::REGION_STATE_SUFFIX {
                out.push(decode(v, || {
                    format!("RegionLocalState of region {region_id}")
                })?);
            }
            Ok(true)
        })?;
        Ok(out)
    }
}

/// Corruption unless `e` is the entry at `index`.
pub(crate) fn check_entry_index(region_id: u64, index: u64, e: &Entry) -> Result<()> {
    if e.index == index {
        Ok(())
    } else {
        Err(Error::corruption(format!(
            "raft entry stored under index {index} of region {region_id} says index {}",
            e.index
        )))
    }
}

/// The handle of a column family the engine opened.
///
/// # Panics
///
/// If `name` is not one of [`keys::ALL_CFS`]: `Engine::open` opens them all,
/// so a miss is a bug in this crate, not a condition of the data.
pub(crate) fn cf_handle<'a>(db: &'a DB, name: &str) -> &'a ColumnFamily {
    db.cf_handle(name)
        .unwrap_or_else(|| panic!("engine invariant: column family {name:?} is open"))
}
