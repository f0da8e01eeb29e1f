//! Linearizable reads on the leader: ReadIndex (safe, confirmed by a quorum
//! heartbeat round) and lease-based (answered at once).

use bytes::Bytes;
use flotilla_proto::raftpb::{Message, MessageType};
use tracing::debug;

use crate::raft::Raft;
use crate::read_only::{ReadOnlyOption, ReadState};
use crate::storage::Storage;

impl<S: Storage> Raft<S> {
    pub(crate) fn handle_read_index(&mut self, m: Message) {
        if m.entries.is_empty() {
            debug!(
                raft_id = self.id,
                from = m.from,
                "dropping a read index without context"
            );
            return;
        }
        if self.trk.is_singleton() {
            // Alone in the group: our commit index is trivially current.
            let index = self.raft_log.committed;
            if let Some(resp) = self.response_to_read_index_req(m, index) {
                self.send(resp);
            }
            return;
        }
        if !self.committed_entry_in_current_term() {
            // Our commit index may lag the previous leader's until an entry
            // of our term commits; hold the read until then.
            self.pending_read_index_messages.push(m);
            return;
        }
        self.send_read_index_response(m);
    }

    fn send_read_index_response(&mut self, m: Message) {
        let index = self.raft_log.committed;
        match self.read_only.option {
            ReadOnlyOption::Safe => {
                let ctx = m.entries[0].data.clone();
                self.read_only.add_request(index, m, self.id);
                self.bcast_heartbeat_with_ctx(ctx);
            }
            ReadOnlyOption::LeaseBased => {
                if let Some(resp) = self.response_to_read_index_req(m, index) {
                    self.send(resp);
                }
            }
        }
    }

    fn bcast_heartbeat_with_ctx(&mut self, ctx: Bytes) {
        for id in self.peer_ids() {
            self.send_heartbeat(id, ctx.clone());
        }
    }

    /// A heartbeat response carried a read's context: count the ack and
    /// answer every read confirmed by a quorum.
    pub(crate) fn handle_read_ack(&mut self, from: u64, ctx: &[u8]) {
        if self.read_only.option != ReadOnlyOption::Safe {
            return;
        }
        let Some(acks) = self.read_only.recv_ack(from, ctx) else {
            return;
        };
        let won = self
            .trk
            .config
            .voters
            .vote_result(|id| acks.contains(&id).then_some(true));
        if won != crate::quorum::VoteResult::Won {
            return;
        }
        for rs in self.read_only.advance(ctx) {
            if let Some(resp) = self.response_to_read_index_req(rs.req, rs.index) {
                self.send(resp);
            }
        }
    }

    /// Answers a read at `index`: locally as a `ReadState`, or with a
    /// message to the follower that forwarded it.
    fn response_to_read_index_req(&mut self, req: Message, index: u64) -> Option<Message> {
        if req.from == 0 || req.from == self.id {
            let request_ctx = req
                .entries
                .first()
                .map(|e| e.data.clone())
                .unwrap_or_default();
            self.read_states.push(ReadState { index, request_ctx });
            return None;
        }
        Some(Message {
            to: req.from,
            msg_type: MessageType::MsgReadIndexResponse as i32,
            index,
            entries: req.entries,
            ..Default::default()
        })
    }

    /// Serves the reads held back until this leader committed in its term.
    pub(crate) fn release_pending_read_index_messages(&mut self) {
        if self.pending_read_index_messages.is_empty() || !self.committed_entry_in_current_term() {
            return;
        }
        for m in std::mem::take(&mut self.pending_read_index_messages) {
            self.send_read_index_response(m);
        }
    }
}
