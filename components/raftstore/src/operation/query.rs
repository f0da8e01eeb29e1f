//! Linearizable reads: served at once under a valid leader lease, else
//! through ReadIndex once the apply reaches the confirmed commit index.

use bytes::Bytes;
use flotilla_proto::metapb::RegionEpoch;
use flotilla_raft::ReadState;

use crate::errors::{Error, Result};
use crate::fsm::RoundCtx;
use crate::msg::{Callback, ReadRequest, ReadResponse};
use crate::raft::{Peer, PendingRead};

impl Peer {
    /// Starts a read, or answers it at once.
    pub(crate) fn read(
        &mut self,
        ctx: &mut RoundCtx,
        epoch: RegionEpoch,
        req: ReadRequest,
        cb: Callback<ReadResponse>,
    ) {
        if let Err(e) = self.check_read(&epoch, &req) {
            return cb(Err(e));
        }
        if !self.is_leader() {
            return cb(Err(self.not_leader()));
        }
        let now = ctx.clock.now();
        if self.has_lease(now) {
            ctx.stats.record_read(true);
            return cb(self.serve(&req));
        }
        let id = self.next_read_ctx;
        self.next_read_ctx += 1;
        if let Err(e) = self
            .raft
            .read_index(Bytes::copy_from_slice(&id.to_be_bytes()))
        {
            return cb(Err(Error::ServerIsBusy(format!("read index: {e}"))));
        }
        self.reads.push_back(PendingRead {
            ctx: id,
            issued_at: now,
            index: None,
            req,
            cb,
        });
    }

    fn check_read(&self, epoch: &RegionEpoch, req: &ReadRequest) -> Result<()> {
        self.check_epoch(Some(epoch))?;
        match req {
            ReadRequest::Get { key } => self.check_key(key),
            ReadRequest::Scan { start, .. } => self.check_key(start),
        }
    }

    /// Whether the lease lets this leader read its applied state now.
    pub(crate) fn has_lease(&self, now: std::time::Duration) -> bool {
        self.is_leader()
            && self.raft.raft.lead_transferee == 0
            && self.lease.is_valid(self.raft.raft.term, now)
    }

    /// Reads the region's data as applied now.
    pub(crate) fn serve(&self, req: &ReadRequest) -> Result<ReadResponse> {
        let region = self.region();
        match req {
            ReadRequest::Get { key } => Ok(ReadResponse::Value(self.engine.get(region, key)?)),
            ReadRequest::Scan { start, end, limit } => {
                let mut pairs = self.engine.scan(region, start, *limit)?;
                if !end.is_empty() {
                    pairs.retain(|(k, _)| k.as_ref() < end.as_ref());
                }
                Ok(ReadResponse::Pairs {
                    pairs,
                    region_end: region.end_key.clone(),
                })
            }
        }
    }

    /// ReadIndex confirmations: each read learns the index it waits for,
    /// and the lease is renewed from the time the read was issued.
    pub(crate) fn on_read_states(&mut self, states: Vec<ReadState>) {
        let (leading, term, length) = (self.is_leader(), self.raft.raft.term, self.lease_length);
        for s in states {
            let Ok(bytes) = <[u8; 8]>::try_from(s.request_ctx.as_ref()) else {
                continue;
            };
            let id = u64::from_be_bytes(bytes);
            if let Some(r) = self.reads.iter_mut().find(|r| r.ctx == id) {
                r.index = Some(s.index);
                if leading {
                    self.lease.renew(term, r.issued_at, length);
                }
            }
        }
    }

    /// Serves every read whose index the apply has reached.
    pub(crate) fn serve_ready_reads(&mut self, ctx: &RoundCtx) {
        let applied = self.raft.raft.raft_log.applied;
        let mut waiting = std::collections::VecDeque::with_capacity(self.reads.len());
        for r in std::mem::take(&mut self.reads) {
            match r.index {
                Some(index) if index <= applied => {
                    ctx.stats.record_read(false);
                    let result = self.serve(&r.req);
                    (r.cb)(result);
                }
                _ => waiting.push_back(r),
            }
        }
        self.reads = waiting;
    }

    /// Fails every waiting read (leadership lost).
    pub(crate) fn fail_reads(&mut self) {
        for r in std::mem::take(&mut self.reads) {
            (r.cb)(Err(self.not_leader()));
        }
    }
}
