//! Support for Flotilla's workspace-level integration tests (`cases/`).
//!
//! Test-only code; never a dependency of production crates.

#![deny(missing_docs)]
