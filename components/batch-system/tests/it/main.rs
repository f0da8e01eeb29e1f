//! The batch system's integration tests: one binary, one module per concern.

mod cases;
mod support;
