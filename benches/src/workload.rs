//! Workloads in the YCSB tradition: which operation comes next, on which
//! key.

use bytes::Bytes;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution as _, Zipf};

use crate::opts::{Distribution, Workload};

/// Keys are `k` + 7 digits out of this many, the space the local cluster
/// is pre-cut over.
pub const KEY_SPACE: u64 = 10_000_000;

/// The longest scan of workload E.
pub const SCAN_LENGTH_MAX: usize = 100;

/// One operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Set a key.
    Put(Bytes),
    /// Read a key.
    Get(Bytes),
    /// Read up to this many keys from a key on.
    Scan(Bytes, usize),
}

/// The key with index `i` of `keys`, spread evenly over the key space.
pub fn key(i: u64, keys: u64) -> Bytes {
    let step = (KEY_SPACE / keys.max(1)).max(1);
    Bytes::from(format!("k{:07}", (i * step) % KEY_SPACE))
}

/// Chooses key indexes.
#[derive(Debug, Clone)]
pub struct Keys {
    keys: u64,
    zipf: Option<Zipf<f64>>,
}

impl Keys {
    /// A chooser over `keys` keys.
    pub fn new(keys: u64, distribution: Distribution) -> anyhow::Result<Keys> {
        anyhow::ensure!(
            (1..=KEY_SPACE).contains(&keys),
            "--keys must be between 1 and {KEY_SPACE}"
        );
        let zipf = match distribution {
            Distribution::Uniform => None,
            Distribution::Zipfian => Some(
                Zipf::new(keys as f64, 0.99)
                    .map_err(|e| anyhow::anyhow!("zipfian over {keys} keys: {e}"))?,
            ),
        };
        Ok(Keys { keys, zipf })
    }

    /// The next key index. Zipfian ranks are scrambled (as YCSB does), so
    /// that hot keys land in many regions rather than in the first one.
    pub fn next(&self, rng: &mut ChaCha8Rng) -> u64 {
        match &self.zipf {
            None => rng.random_range(0..self.keys),
            Some(z) => {
                let rank = (z.sample(rng) as u64).saturating_sub(1);
                fnv1a(rank) % self.keys
            }
        }
    }

    /// How many keys.
    pub fn len(&self) -> u64 {
        self.keys
    }

    /// Never: a chooser has at least one key.
    pub fn is_empty(&self) -> bool {
        self.keys == 0
    }
}

fn fnv1a(x: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in x.to_le_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl Workload {
    /// Share of reads (gets or scans), in percent.
    pub fn reads_percent(self) -> u64 {
        match self {
            Workload::Write => 0,
            Workload::A => 50,
            Workload::B | Workload::E => 95,
            Workload::C => 100,
        }
    }

    /// Whether the keys must exist before the run.
    pub fn needs_load(self) -> bool {
        self.reads_percent() > 0
    }

    /// The next operation.
    pub fn next(self, keys: &Keys, rng: &mut ChaCha8Rng) -> Op {
        let k = key(keys.next(rng), keys.len());
        if rng.random_range(0..100) >= self.reads_percent() {
            return Op::Put(k);
        }
        match self {
            Workload::E => Op::Scan(k, rng.random_range(1..=SCAN_LENGTH_MAX)),
            _ => Op::Get(k),
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn keys_spread_over_the_key_space_and_stay_in_it() {
        assert_eq!(key(0, 100), Bytes::from("k0000000"));
        assert_eq!(key(1, 100), Bytes::from("k0100000"));
        assert_eq!(key(99, 100), Bytes::from("k9900000"));
        assert_eq!(key(KEY_SPACE - 1, KEY_SPACE), Bytes::from("k9999999"));
    }

    #[test]
    fn workloads_mix_operations_in_their_proportions() {
        let keys = Keys::new(1000, Distribution::Uniform).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for (w, reads) in [
            (Workload::Write, 0),
            (Workload::A, 50),
            (Workload::B, 95),
            (Workload::C, 100),
            (Workload::E, 95),
        ] {
            let n = 20_000;
            let read = (0..n)
                .filter(|_| !matches!(w.next(&keys, &mut rng), Op::Put(_)))
                .count();
            let pct = read as f64 * 100.0 / n as f64;
            assert!((pct - reads as f64).abs() < 1.5, "{w:?}: {pct}% reads");
        }
        assert!(matches!(
            Workload::E.next(
                &Keys::new(10, Distribution::Uniform).unwrap(),
                &mut ChaCha8Rng::seed_from_u64(1)
            ),
            Op::Scan(_, 1..=100) | Op::Put(_)
        ));
    }

    #[test]
    fn zipfian_keys_are_skewed_and_uniform_ones_are_not() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut top_share = |d| {
            let keys = Keys::new(10_000, d).unwrap();
            let mut counts = vec![0u32; 10_000];
            for _ in 0..100_000 {
                counts[keys.next(&mut rng) as usize] += 1;
            }
            counts.sort_unstable_by(|a, b| b.cmp(a));
            counts[..100].iter().sum::<u32>() as f64 / 100_000.0
        };
        let zipf = top_share(Distribution::Zipfian);
        let uniform = top_share(Distribution::Uniform);
        assert!(
            zipf > 0.3,
            "the hottest 1% of keys take {zipf} of a zipfian load"
        );
        assert!(uniform < 0.03, "and {uniform} of a uniform one");
    }
}
