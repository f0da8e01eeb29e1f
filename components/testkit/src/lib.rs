//! Test support shared by every Flotilla crate.
//!
//! One convention for randomized tests across the repository:
//! - `FLOTILLA_SEEDS=N` sets how many seeds a randomized test runs (each
//!   test has its own default);
//! - `FLOTILLA_SEED=S` replays exactly seed `S`;
//! - a failing seed is printed, with the command that replays it.
//!
//! This crate is for tests and benches only and must never be a dependency
//! of production code.

#![deny(missing_docs)]

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

/// The seeds a randomized test should run: `FLOTILLA_SEED` alone if set,
/// else `0..FLOTILLA_SEEDS` (or `0..default_count`).
pub fn seeds(default_count: u64) -> Vec<u64> {
    if let Some(seed) = env_u64("FLOTILLA_SEED") {
        return vec![seed];
    }
    let count = env_u64("FLOTILLA_SEEDS").unwrap_or(default_count);
    (0..count).collect()
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    match v.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={v:?} is not a number"),
    }
}

/// Runs `body` once per seed from [`seeds`]; on the first failure prints
/// the seed and how to replay it, then fails the test with the original panic.
pub fn for_each_seed(test_name: &str, default_count: u64, mut body: impl FnMut(u64)) {
    for seed in seeds(default_count) {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| body(seed))) {
            #[allow(clippy::print_stderr)]
            {
                eprintln!(
                    "\n{test_name} failed with seed {seed}; replay with: \
                     FLOTILLA_SEED={seed} cargo test {test_name}\n"
                );
            }
            resume_unwind(panic);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_count_gives_that_many_distinct_seeds() {
        // Only meaningful when the environment does not override it.
        if std::env::var("FLOTILLA_SEED").is_err() && std::env::var("FLOTILLA_SEEDS").is_err() {
            assert_eq!(seeds(5), vec![0, 1, 2, 3, 4]);
        }
    }

    #[test]
    fn a_failing_seed_fails_the_run() {
        let r = catch_unwind(|| for_each_seed("t", 3, |s| assert!(s < 1, "seed {s}")));
        if std::env::var("FLOTILLA_SEED").is_err() && std::env::var("FLOTILLA_SEEDS").is_err() {
            assert!(r.is_err());
        }
    }
}
