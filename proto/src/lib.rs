//! Flotilla's wire and disk formats, generated from `protos/*.proto` by prost.
//!
//! This crate holds types only: no logic beyond small constructors and
//! predicates, and it must never depend on any other Flotilla crate.

#![allow(missing_docs)]

/// Raft messages, log entries, persisted state and membership changes.
pub mod raftpb {
    #![allow(clippy::all, unused_qualifications, rust_2018_idioms)]
    include!(concat!(env!("OUT_DIR"), "/raftpb.rs"));
}

/// Region metadata: key ranges, peers and epochs.
pub mod metapb {
    #![allow(clippy::all, unused_qualifications, rust_2018_idioms)]
    include!(concat!(env!("OUT_DIR"), "/metapb.rs"));
}

/// What the engine persists besides raft entries: apply and region states.
pub mod storagepb {
    #![allow(clippy::all, unused_qualifications, rust_2018_idioms)]
    include!(concat!(env!("OUT_DIR"), "/storagepb.rs"));
}

/// What stores send each other: batched raft messages and coalesced
/// heartbeats.
pub mod serverpb {
    #![allow(clippy::all, unused_qualifications, rust_2018_idioms)]
    include!(concat!(env!("OUT_DIR"), "/serverpb.rs"));
}

/// Client commands as they travel through the raft log.
pub mod cmdpb {
    #![allow(clippy::all, unused_qualifications, rust_2018_idioms)]
    include!(concat!(env!("OUT_DIR"), "/cmdpb.rs"));
}

/// Requests and responses between a client and a store over the network.
pub mod clientpb {
    #![allow(clippy::all, unused_qualifications, rust_2018_idioms)]
    include!(concat!(env!("OUT_DIR"), "/clientpb.rs"));
}

pub use prost::Message as ProstMessage;

impl raftpb::MessageType {
    /// True for the messages a store may coalesce across groups: heartbeats
    /// and their responses carry no entries and are cheap to step.
    pub fn is_heartbeat(self) -> bool {
        matches!(self, Self::MsgHeartbeat | Self::MsgHeartbeatResponse)
    }

    /// True for messages that never leave the node that created them.
    pub fn is_local(self) -> bool {
        matches!(
            self,
            Self::MsgHup
                | Self::MsgBeat
                | Self::MsgUnreachable
                | Self::MsgSnapshotStatus
                | Self::MsgCheckQuorum
        )
    }

    /// True for the responses a peer sends to another peer's request.
    pub fn is_response(self) -> bool {
        matches!(
            self,
            Self::MsgAppendResponse
                | Self::MsgRequestVoteResponse
                | Self::MsgHeartbeatResponse
                | Self::MsgUnreachable
                | Self::MsgRequestPreVoteResponse
                | Self::MsgReadIndexResponse
        )
    }
}

impl raftpb::ConfState {
    /// True when the configuration is joint (two voter sets).
    pub fn is_joint(&self) -> bool {
        !self.voters_outgoing.is_empty()
    }
}

impl raftpb::SnapshotMetadata {
    /// Metadata at `index`/`term` with the given membership.
    pub fn new(index: u64, term: u64, conf_state: raftpb::ConfState) -> Self {
        Self {
            conf_state: Some(conf_state),
            index,
            term,
        }
    }
}

impl raftpb::Snapshot {
    /// The snapshot's index, 0 for an empty snapshot.
    pub fn index(&self) -> u64 {
        self.metadata.as_ref().map_or(0, |m| m.index)
    }

    /// The snapshot's term, 0 for an empty snapshot.
    pub fn term(&self) -> u64 {
        self.metadata.as_ref().map_or(0, |m| m.term)
    }

    /// True when the snapshot carries nothing (index 0).
    pub fn is_empty(&self) -> bool {
        self.index() == 0
    }
}

impl raftpb::HardState {
    /// True for the zero state a fresh peer starts from.
    pub fn is_empty(&self) -> bool {
        self.term == 0 && self.vote == 0 && self.commit == 0
    }
}

impl raftpb::ConfChange {
    /// Converts a single-step change into the V2 form raft applies.
    pub fn into_v2(self) -> raftpb::ConfChangeV2 {
        raftpb::ConfChangeV2 {
            transition: raftpb::ConfChangeTransition::Auto as i32,
            changes: vec![raftpb::ConfChangeSingle {
                change_type: self.change_type,
                node_id: self.node_id,
            }],
            context: self.context,
        }
    }
}

impl raftpb::ConfChangeV2 {
    /// True for the empty change that leaves a joint configuration.
    pub fn leaves_joint(&self) -> bool {
        self.changes.is_empty()
    }

    /// Whether applying this change enters a joint configuration, and if so
    /// whether raft leaves it on its own once committed.
    pub fn enters_joint(&self) -> Option<bool> {
        use raftpb::ConfChangeTransition as T;
        let transition = T::try_from(self.transition).unwrap_or(T::Auto);
        if transition != T::Auto || self.changes.len() > 1 {
            Some(transition != T::JointExplicit)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::raftpb::*;
    use prost::Message as _;

    #[test]
    fn message_round_trips_through_the_wire_encoding() {
        let m = Message {
            msg_type: MessageType::MsgAppend as i32,
            to: 2,
            from: 1,
            term: 7,
            log_term: 6,
            index: 41,
            entries: vec![Entry {
                entry_type: EntryType::EntryNormal as i32,
                term: 7,
                index: 42,
                data: bytes::Bytes::from_static(b"put k v"),
                context: bytes::Bytes::new(),
            }],
            commit: 40,
            ..Default::default()
        };
        let buf = m.encode_to_vec();
        let back = Message::decode(buf.as_slice()).expect("decode");
        assert_eq!(back, m);
        assert_eq!(back.msg_type(), MessageType::MsgAppend);
    }

    #[test]
    fn garbage_does_not_decode_into_a_message() {
        assert!(Message::decode(&[0xff, 0xff, 0xff, 0xff, 0xff][..]).is_err());
    }

    #[test]
    fn transitions_classify_joint_changes() {
        let single = ConfChange {
            node_id: 3,
            ..Default::default()
        }
        .into_v2();
        assert_eq!(single.enters_joint(), None);
        let mut two = single.clone();
        two.changes.push(ConfChangeSingle {
            change_type: 0,
            node_id: 4,
        });
        assert_eq!(two.enters_joint(), Some(true));
        let explicit = ConfChangeV2 {
            transition: ConfChangeTransition::JointExplicit as i32,
            ..single
        };
        assert_eq!(explicit.enters_joint(), Some(false));
        assert!(ConfChangeV2::default().leaves_joint());
    }
}
