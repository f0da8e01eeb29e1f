//! Membership changes: computing the configuration (and progress map) that
//! results from applying a change, and rebuilding a configuration from its
//! wire form.
//!
//! Everything here works on copies: the tracker passed in is never
//! mutated. The caller installs the result with
//! [`ProgressTracker::apply_conf`](crate::tracker::ProgressTracker::apply_conf).

mod changer;
mod restore;

use std::fmt::Write as _;

pub use changer::{Changer, check_invariants};
pub use restore::restore;

use crate::tracker::{Config, ProgressMap};

/// Renders a configuration and its progress for golden tests: the first
/// line is the [`Config`]'s display (`voters=(1 2)&&(1) learners=(3)`),
/// then one line per progress by ascending id, `1: StateProbe match=0
/// next=1` (see [`Progress`](crate::tracker::Progress)'s display).
pub fn describe(cfg: &Config, prs: &ProgressMap) -> String {
    let mut out = cfg.to_string();
    for (id, pr) in prs {
        // Writing to a String cannot fail.
        let _ = write!(out, "\n{id}: {pr}");
    }
    out
}
