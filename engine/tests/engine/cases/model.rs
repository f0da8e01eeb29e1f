//! Model-based test: random appends (overwriting suffixes), hard states,
//! applies, compactions, cache evictions and restarts on a
//! `RegionLogStorage`, checked after every step against `MemStorage`.
//! Seeds follow the testkit convention (FLOTILLA_SEEDS / FLOTILLA_SEED).

use flotilla_engine::{Engine, EngineConfig, RegionLogStorage};
use flotilla_proto::raftpb::HardState;
use flotilla_raft::{MemStorage, NO_LIMIT, Storage, entry_size};
use flotilla_testkit::for_each_seed;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::support::{ent, region};

const STEPS: usize = 150;

struct Harness {
    dir: tempfile::TempDir,
    config: EngineConfig,
    // None only while restarting.
    live: Option<(Engine, RegionLogStorage)>,
    model: MemStorage,
    applied: u64,
    term: u64,
}

impl Harness {
    fn new(rng: &mut ChaCha8Rng) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Small, random cache bounds so reads cross the cache/disk seam.
        let config = EngineConfig {
            entry_cache_region_entries_max: rng.random_range(0..12),
            entry_cache_store_bytes_max: rng.random_range(0..4096),
            ..EngineConfig::for_tests()
        };
        let engine = Engine::open(dir.path(), &config).unwrap();
        let mut wb = engine.write_batch();
        let store = RegionLogStorage::create(&engine, region(1, b"", b"", &[1, 2, 3]), &mut wb);
        engine.write(wb, true).unwrap();
        let model = MemStorage::new();
        Self {
            dir,
            config,
            live: Some((engine, store)),
            model,
            applied: 0,
            term: 1,
        }
    }

    fn live(&mut self) -> (&Engine, &mut RegionLogStorage) {
        let (engine, store) = self.live.as_mut().expect("engine is open");
        (engine, store)
    }

    fn store(&self) -> &RegionLogStorage {
        &self.live.as_ref().expect("engine is open").1
    }

    fn step(&mut self, rng: &mut ChaCha8Rng) {
        let (first, last) = (self.model.rl().first_index(), self.model.rl().last_index());
        let (applied, model) = (self.applied, self.model.clone());
        // As in raft: committed entries are never overwritten, and only
        // committed entries are applied.
        let commit = model.rl().hard_state().commit;
        let op = rng.random_range(0..10);
        if op == 9 {
            return self.restart();
        }
        if op <= 3 && first.max(commit + 1) <= last {
            self.term += 1; // the append below may overwrite a suffix
        }
        let term = self.term;
        let mut new_applied = applied;
        let (engine, store) = self.live();
        let mut wb = engine.write_batch();
        match op {
            0..=3 => {
                // Append, possibly overwriting a suffix (never committed entries).
                let from = rng.random_range(first.max(commit + 1)..=last + 1);
                let count = rng.random_range(1..=12);
                let ents: Vec<_> = (from..from + count).map(|i| ent(i, term)).collect();
                store.append(&ents, &mut wb);
                model.wl().append(&ents).unwrap();
            }
            4 => {
                let hs = HardState {
                    term,
                    vote: rng.random_range(0..4),
                    commit: rng.random_range(commit..=last),
                };
                store.set_hard_state(hs, &mut wb);
                model.wl().set_hard_state(hs);
            }
            5 | 6 => {
                let to = rng.random_range(applied..=commit.max(applied));
                store.set_applied(to, model.term(to).unwrap(), &mut wb);
                new_applied = to;
            }
            7 => {
                let to = rng.random_range(first..=applied + 1);
                store.compact_to(to, &mut wb).unwrap();
                model.wl().compact(to).unwrap();
            }
            _ => store.evict_cache_to(rng.random_range(first..=last + 1)),
        }
        let (engine, _) = self.live();
        engine.write(wb, rng.random_bool(0.5)).unwrap();
        self.applied = new_applied;
    }

    /// Drops the storage and the engine, then recovers both from disk.
    fn restart(&mut self) {
        let id = self.store().region_id();
        self.live = None;
        let engine = Engine::open(self.dir.path(), &self.config).unwrap();
        let store = RegionLogStorage::load(&engine, id).unwrap();
        assert!(
            store.hard_state().commit >= self.applied,
            "commit below applied after restart"
        );
        self.live = Some((engine, store));
    }

    fn check(&self, rng: &mut ChaCha8Rng) {
        let (s, m) = (self.store(), &self.model);
        let (first, last) = (m.first_index().unwrap(), m.last_index().unwrap());
        assert_eq!(s.first_index().unwrap(), first);
        assert_eq!(s.last_index().unwrap(), last);
        let (hs, model_hs) = (s.hard_state(), *m.rl().hard_state());
        assert_eq!((hs.term, hs.vote), (model_hs.term, model_hs.vote));
        // A commit index alone is not written: after a restart it may lag
        // the model's (never below what was applied, see `restart`).
        assert!(
            hs.commit <= model_hs.commit,
            "commit {} past the model's {}",
            hs.commit,
            model_hs.commit
        );
        assert_eq!(s.applied().0, self.applied);
        for i in first - 1..=last {
            assert_eq!(s.term(i).unwrap(), m.term(i).unwrap(), "term({i})");
        }
        // On disk: exactly the live entries, no leftover suffix or garbage.
        let engine = &self.live.as_ref().expect("engine is open").0;
        let on_disk = engine.raft_log_indexes(s.region_id()).unwrap();
        assert_eq!(on_disk, (first..=last).collect::<Vec<_>>());
        let all = m.entries(first, last + 1, NO_LIMIT).unwrap();
        assert_eq!(s.entries(first, last + 1, NO_LIMIT).unwrap(), all);
        let low = rng.random_range(first..=last + 1);
        let high = rng.random_range(low..=last + 1);
        let max_bytes = rng.random_range(0..6) * entry_size(&ent(1, 1));
        let want = m.entries(low, high, max_bytes).unwrap();
        assert_eq!(
            s.entries(low, high, max_bytes).unwrap(),
            want,
            "[{low}, {high}) max {max_bytes}"
        );
    }
}

#[test]
fn region_log_storage_matches_the_model_across_restarts() {
    for_each_seed(
        "region_log_storage_matches_the_model_across_restarts",
        8,
        |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut h = Harness::new(&mut rng);
            for _ in 0..STEPS {
                h.step(&mut rng);
                h.check(&mut rng);
            }
        },
    );
}
