//! Flotilla's raft consensus core.
//!
//! A deterministic state machine: no threads, no clock, no files, no sockets.
//! Time enters only through [`RawNode::tick`], randomness only through a
//! seeded RNG, the stable log is read through the [`Storage`] trait, and
//! every effect (entries to persist, messages to send, entries to apply)
//! leaves through [`Ready`]. This crate must never depend on an engine, a
//! transport or any other Flotilla crate except `flotilla-proto`.
//!
//! Layout: `raft.rs` holds roles, the logical clock and the central `step`;
//! `replication.rs`, `reads.rs` and `membership.rs` hold one concern each;
//! `raw_node.rs` is the host's API. The pure sub-algorithms live in
//! `quorum/`, `tracker/` and `confchange/`. See `docs/raft-core.md`.

#![deny(missing_docs)]

pub mod confchange;
mod config;
mod errors;
mod log_unstable;
mod membership;
pub mod quorum;
mod raft;
mod raft_log;
mod raw_node;
mod read_only;
mod reads;
mod replication;
mod status;
mod storage;
pub mod tracker;
mod util;

pub use config::Config;
pub use errors::{Error, Result, StorageError};
pub use flotilla_proto::raftpb;
pub use log_unstable::Unstable;
pub use raft::{CAMPAIGN_TRANSFER, CampaignType, Raft, SoftState, StateRole, vote_resp_type};
pub use raft_log::RaftLog;
pub use raw_node::{RawNode, Ready, SnapshotStatus};
pub use read_only::{ReadOnly, ReadOnlyOption, ReadState};
pub use status::Status;
pub use storage::{MemStorage, MemStorageCore, RaftState, Storage};
pub use util::{NO_LIMIT, entries_size, entry_size, limit_size};

use prost::Message as _;
use raftpb::{ConfChange, ConfChangeV2, Entry};

/// Decodes the single-step membership change carried by a committed entry.
pub fn decode_conf_change(e: &Entry) -> Result<ConfChange> {
    ConfChange::decode(e.data.as_ref()).map_err(|source| Error::Decode {
        what: "ConfChange",
        source,
    })
}

/// Decodes the membership change carried by a committed V2 entry.
pub fn decode_conf_change_v2(e: &Entry) -> Result<ConfChangeV2> {
    ConfChangeV2::decode(e.data.as_ref()).map_err(|source| Error::Decode {
        what: "ConfChangeV2",
        source,
    })
}
