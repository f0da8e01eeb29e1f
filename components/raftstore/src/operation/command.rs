//! Writes: checks against the region, then a proposal whose callback
//! waits for the entry to apply.

use bytes::Bytes;
use flotilla_engine::region_contains;
use flotilla_proto::cmdpb::{WriteCommand, write_request::Cmd};
use flotilla_proto::metapb::RegionEpoch;
use prost::Message as _;

use crate::errors::{Error, Result};
use crate::fsm::RoundCtx;
use crate::msg::Callback;
use crate::raft::{Peer, Proposal};

impl Peer {
    /// Proposes a write, or fails its callback at once.
    pub(crate) fn propose_write(
        &mut self,
        ctx: &mut RoundCtx,
        cmd: WriteCommand,
        cb: Callback<()>,
    ) {
        if let Err(e) = self.check_write(&cmd) {
            return cb(Err(e));
        }
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
