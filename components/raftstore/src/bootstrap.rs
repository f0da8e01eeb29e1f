//! Bootstrap of a new cluster: the initial regions, their replicas'
//! placement and ids, written to each store's engine before it opens.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use flotilla_engine::{Engine, RegionLogStorage};
use flotilla_proto::metapb::{Peer, PeerRole, Region, RegionEpoch};

use crate::errors::{Error, Result};

/// Allocates ids that are unique across the cluster (regions, peers).
/// Bootstrap uses a local counter; the cluster's id service implements the
/// same trait.
pub trait IdAllocator: Send + Sync {
    /// A new id, never returned before; never 0.
    fn alloc(&self) -> u64;
}

/// Ids from a counter starting at 1.
#[derive(Debug)]
pub struct CounterIds(AtomicU64);

impl Default for CounterIds {
    fn default() -> Self {
        CounterIds(AtomicU64::new(1))
    }
}

impl IdAllocator for CounterIds {
    fn alloc(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

/// Plans the initial regions of a cluster of `store_ids`: one region per
/// range between consecutive `split_keys` (one region covering the whole
/// key space when there are none), each replicated on `replicas` stores
/// (all stores when there are fewer), placed round-robin so that replicas
/// spread evenly.
pub fn plan_regions(
    store_ids: &[u64],
    split_keys: &[Bytes],
    replicas: usize,
    ids: &dyn IdAllocator,
) -> Result<Vec<Region>> {
    if store_ids.is_empty() || replicas == 0 {
        return Err(Error::InvalidRequest(
            "bootstrap needs stores and at least one replica".into(),
        ));
    }
    if split_keys.windows(2).any(|w| w[0] >= w[1])
        || split_keys.first().is_some_and(|k| k.is_empty())
    {
        return Err(Error::InvalidRequest(
            "split keys must be non-empty and strictly increasing".into(),
        ));
    }
    let replicas = replicas.min(store_ids.len());
    let mut bounds = vec![Bytes::new()];
    bounds.extend(split_keys.iter().cloned());
    bounds.push(Bytes::new());
    let regions = bounds
        .windows(2)
        .enumerate()
        .map(|(i, w)| Region {
            id: ids.alloc(),
            start_key: w[0].clone(),
            end_key: w[1].clone(),
            region_epoch: Some(RegionEpoch {
                conf_ver: 1,
                version: 1,
            }),
            peers: (0..replicas)
                .map(|k| Peer {
                    id: ids.alloc(),
                    store_id: store_ids[(i + k) % store_ids.len()],
                    role: PeerRole::Voter as i32,
                })
                .collect(),
        })
        .collect();
    Ok(regions)
}

/// `n - 1` split keys cutting the space of keys that start with `prefix`
/// followed by a zero-padded decimal number below `key_count` into `n`
/// ranges of about equal size: `prefix` + the number, padded to `width`.
pub fn even_split_keys(prefix: &str, key_count: u64, width: usize, n: u64) -> Vec<Bytes> {
    (1..n.max(1))
        .map(|i| Bytes::from(format!("{prefix}{:0width$}", i * key_count / n)))
        .collect()
}

/// Writes the replicas `store_id` holds of `regions` into its engine, with
/// one synced write. Refuses an engine that already holds regions, so a
/// bootstrap can never overwrite a store's data.
pub fn bootstrap_store(engine: &Engine, store_id: u64, regions: &[Region]) -> Result<usize> {
    if !engine.region_states()?.is_empty() {
        return Err(Error::InvalidRequest(format!(
            "store {store_id} is already bootstrapped"
        )));
    }
    let mut wb = engine.write_batch();
    let mut count = 0;
    for r in regions
        .iter()
        .filter(|r| r.peers.iter().any(|p| p.store_id == store_id))
    {
        RegionLogStorage::create(engine, r.clone(), &mut wb);
        count += 1;
    }
    engine.write(wb, true)?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn regions_cover_the_key_space_with_unique_ids_and_spread_replicas() {
        let split = even_split_keys("k", 1000, 4, 4);
        assert_eq!(
            split,
            [b"k0250", b"k0500", b"k0750"].map(|k| Bytes::from_static(k))
        );
        let regions = plan_regions(&[1, 2, 3, 4], &split, 3, &CounterIds::default()).unwrap();
        assert_eq!(regions.len(), 4);
        assert!(regions[0].start_key.is_empty() && regions[3].end_key.is_empty());
        for w in regions.windows(2) {
            assert_eq!(w[0].end_key, w[1].start_key, "ranges are contiguous");
        }
        let mut ids = HashSet::new();
        for r in &regions {
            assert!(ids.insert(r.id));
            assert_eq!(r.peers.len(), 3);
            let stores: HashSet<u64> = r.peers.iter().map(|p| p.store_id).collect();
            assert_eq!(stores.len(), 3, "replicas on distinct stores");
            for p in &r.peers {
                assert!(ids.insert(p.id), "peer ids unique across the cluster");
            }
        }
        let per_store = |s: u64| {
            regions
                .iter()
                .filter(|r| r.peers.iter().any(|p| p.store_id == s))
                .count()
        };
        assert_eq!((1..=4).map(per_store).collect::<Vec<_>>(), [3, 3, 3, 3]);
    }

    #[test]
    fn fewer_stores_than_replicas_replicate_on_every_store_and_bad_plans_are_refused() {
        let regions = plan_regions(&[7], &[], 3, &CounterIds::default()).unwrap();
        assert_eq!(regions.len(), 1);
        assert_eq!(regions[0].peers.len(), 1);
        let ids = CounterIds::default();
        assert!(plan_regions(&[], &[], 3, &ids).is_err());
        assert!(
            plan_regions(
                &[1],
                &[Bytes::from_static(b"b"), Bytes::from_static(b"a")],
                3,
                &ids
            )
            .is_err()
        );
        assert!(plan_regions(&[1], &[Bytes::new()], 3, &ids).is_err());
    }
}
