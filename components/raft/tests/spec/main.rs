//! The raft core's specification tests, linked into one binary:
//! golden-file interaction scripts (`testdata/*.txt`) and the rules of the
//! Raft paper's section 5.

mod interaction;
mod paper;
mod robustness;
