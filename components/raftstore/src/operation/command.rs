//! Writes: checks against the region, then a proposal whose callback
//! waits for the entry to apply. The writes a leader takes in one turn
//! join one entry ([`StoreConfig::proposal_batch_bytes_max`]): one log
//! entry, one append slot and one command to decode per turn instead of
//! one per write.
//!
//! [`StoreConfig::proposal_batch_bytes_max`]: crate::StoreConfig::proposal_batch_bytes_max

use bytes::Bytes;
use flotilla_engine::region_contains;
use flotilla_proto::cmdpb::{WriteCommand, write_request::Cmd};
use flotilla_proto::metapb::RegionEpoch;
use prost::Message as _;

use crate::errors::{Error, Result};
use crate::fsm::RoundCtx;
use crate::msg::Callback;
use crate::raft::{Peer, Proposal, ProposalBatch};

impl Peer {
    /// Takes a client's write: fails its callback at once if the region or
    /// the leadership refuses it, else adds it to this turn's batch
    /// (proposed when the batch is full, or by [`Self::propose_batch`] at
    /// the end of the turn).
    pub(crate) fn take_write(&mut self, ctx: &mut RoundCtx, cmd: WriteCommand, cb: Callback<()>) {
        if let Err(e) = self.check_write(&cmd) {
            return cb(Err(e));
        }
        if self.proposal_batch_bytes_max == 0 {
            return self.propose_write(ctx, cmd, cb);
        }
        if !self.is_leader() {
            return cb(Err(self.not_leader()));
        }
        let bytes = cmd.encoded_len() as u64;
        if self
            .batch
            .as_ref()
            .is_some_and(|b| b.bytes + bytes > self.proposal_batch_bytes_max)
        {
            self.propose_batch(ctx);
        }
        match &mut self.batch {
            // Checked against the same epoch in the same turn: the writes
            // share a header.
            Some(b) => {
                b.cmd.requests.extend(cmd.requests);
                b.bytes += bytes;
                b.cbs.push(cb);
            }
            None => {
                self.batch = Some(ProposalBatch {
                    cmd,
                    bytes,
                    cbs: vec![cb],
                })
            }
        }
    }

    /// Proposes this turn's writes as one entry; each writer hears the
    /// entry's outcome.
    pub(crate) fn propose_batch(&mut self, ctx: &mut RoundCtx) {
        let Some(ProposalBatch { cmd, mut cbs, .. }) = self.batch.take() else {
            return;
        };
        let cb: Callback<()> = if cbs.len() == 1 {
            cbs.pop().expect("one callback")
        } else {
            Box::new(move |result: Result<()>| {
                for cb in cbs {
                    cb(result.clone());
                }
            })
        };
        self.propose_write(ctx, cmd, cb);
    }

    /// Proposes a checked write, or fails its callback if raft refuses it.
    fn propose_write(&mut self, ctx: &mut RoundCtx, cmd: WriteCommand, cb: Callback<()>) {
        if !self.is_leader() {
            return cb(Err(self.not_leader()));
        }
        let before = self.raft.raft.raft_log.last_index();
        let data = Bytes::from(cmd.encode_to_vec());
        if let Err(e) = self.raft.propose(Bytes::new(), data) {
            return cb(Err(Error::ServerIsBusy(format!(
                "region {}: proposal refused: {e}",
                self.region_id
            ))));
        }
        let index = self.raft.raft.raft_log.last_index();
        if index == before {
            return cb(Err(self.not_leader()));
        }
        ctx.stats.record_proposal();
        self.proposals.push_back(Proposal {
            index,
            term: self.raft.raft.term,
            proposed_at: ctx.clock.now(),
            committed: false,
            cb,
        });
    }

    /// A write's header and keys against the region as it is now.
    pub(crate) fn check_write(&self, cmd: &WriteCommand) -> Result<()> {
        let header = cmd.header.unwrap_or_default();
        if header.region_id != self.region_id {
            return Err(Error::InvalidRequest(format!(
                "command for region {} sent to region {}",
                header.region_id, self.region_id
            )));
        }
        if cmd.requests.is_empty() {
            return Err(Error::InvalidRequest("a write with no request".into()));
        }
        self.check_epoch(header.region_epoch.as_ref())?;
        for r in &cmd.requests {
            let key = match &r.cmd {
                Some(Cmd::Put(p)) => &p.key,
                Some(Cmd::Delete(d)) => &d.key,
                None => return Err(Error::InvalidRequest("a request with no command".into())),
            };
            self.check_key(key)?;
        }
        Ok(())
    }

    /// Requests carry the epoch they were routed with; a different version
    /// means the region's range changed since (a split or a merge).
    pub(crate) fn check_epoch(&self, epoch: Option<&RegionEpoch>) -> Result<()> {
        let current = self.region().region_epoch.unwrap_or_default();
        let requested = epoch.cloned().unwrap_or_default();
        if requested.version != current.version {
            return Err(Error::EpochNotMatch {
                region_id: self.region_id,
                current: Box::new(self.region().clone()),
            });
        }
        Ok(())
    }

    pub(crate) fn check_key(&self, key: &Bytes) -> Result<()> {
        if region_contains(self.region(), key) {
            Ok(())
        } else {
            Err(Error::KeyNotInRegion {
                key: key.clone(),
                region: Box::new(self.region().clone()),
            })
        }
    }
}
