//! Applying committed entries: user writes into the round's apply batch,
//! membership changes into the raft group, proposers answered once the
//! apply batch is written.

use flotilla_proto::cmdpb::{WriteCommand, write_request::Cmd};
use flotilla_proto::raftpb::{Entry, EntryType};
use prost::Message as _;

use crate::errors::{Error, Result};
use crate::fsm::RoundCtx;
use crate::raft::Peer;

impl Peer {
    /// Applies `entries` (committed, in order) into the round's apply batch
    /// and queues their proposers' answers.
    pub(crate) fn apply(&mut self, ctx: &mut RoundCtx, entries: Vec<Entry>) {
        let Some(last) = entries.last() else { return };
        let (last_index, last_term) = (last.index, last.term);
        let now = ctx.clock.now();
        for e in entries {
            let result = match e.entry_type() {
                EntryType::EntryNormal if e.data.is_empty() => Ok(()),
                EntryType::EntryNormal => self.apply_write(ctx, &e),
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    self.apply_conf_change(&e);
                    Ok(())
                }
            };
            self.resolve_proposals(ctx, e.index, e.term, result, now);
        }
        self.raft
            .store_mut()
            .set_applied(last_index, last_term, &mut ctx.apply_wb);
        ctx.applied.push(self.region_id);
        self.compact_log(ctx, last_index);
    }

    fn apply_write(&mut self, ctx: &mut RoundCtx, e: &Entry) -> Result<()> {
        let cmd = match WriteCommand::decode(e.data.as_ref()) {
            Ok(cmd) => cmd,
            Err(err) => {
                // Never written by this store's proposers: a log from a
                // newer version, or damage. Skipped so the region lives on.
                tracing::error!(region_id = self.region_id, index = e.index, error = %err, "undecodable command skipped");
                return Err(Error::InvalidRequest(format!("undecodable command: {err}")));
            }
        };
        // The region may have changed between proposal and apply.
        self.check_write(&cmd)?;
        for r in cmd.requests {
            match r.cmd {
                Some(Cmd::Put(p)) => ctx.apply_wb.put_data(&p.key, &p.value),
                Some(Cmd::Delete(d)) => ctx.apply_wb.delete_data(&d.key),
                None => {}
            }
        }
        ctx.applied_commands += 1;
        Ok(())
    }

    fn apply_conf_change(&mut self, e: &Entry) {
        let cc = match e.entry_type() {
            EntryType::EntryConfChange => {
                flotilla_raft::decode_conf_change(e).map(|cc| cc.into_v2())
            }
            _ => flotilla_raft::decode_conf_change_v2(e),
        };
        match cc.and_then(|cc| self.raft.apply_conf_change(&cc)) {
            Ok(cs) => tracing::info!(region_id = self.region_id, conf = ?cs, "membership changed"),
            Err(err) => {
                tracing::error!(region_id = self.region_id, error = %err, "membership change not applied")
            }
        }
    }

    /// Answers the proposals up to `index`: the one of this entry with the
    /// outcome, older ones (whose entries were replaced) as stale.
    fn resolve_proposals(
        &mut self,
        ctx: &mut RoundCtx,
        index: u64,
        term: u64,
        result: Result<()>,
        now: std::time::Duration,
    ) {
        while self.proposals.front().is_some_and(|p| p.index <= index) {
            let p = self.proposals.pop_front().expect("checked non-empty");
            if p.index == index && p.term == term {
                ctx.stats
                    .record_apply_latency(now.saturating_sub(p.proposed_at));
                if term == self.raft.raft.term && self.is_leader() {
                    self.lease.renew(term, p.proposed_at, self.lease_length);
                }
                let result = result.clone();
                ctx.answers.push(Box::new(move || (p.cb)(result)));
            } else {
                ctx.answers
                    .push(Box::new(move || (p.cb)(Err(Error::StaleCommand))));
            }
        }
    }

    /// Drops applied entries from the log once there are enough of them:
    /// `gc_threshold_entries` of them, keeping the last `gc_keep_entries`
    /// for followers a little behind; or, earlier, once the log holds
    /// `gc_threshold_bytes`. Then a leader discards what every follower
    /// already holds (none needs those entries again; a follower far behind
    /// holds the log until the count decides) and a follower the older
    /// three quarters of its applied log (a tail in case it leads next).
    /// Compacted by bytes, the entries go while the raft log memtable still
    /// holds them, and its flush drops them instead of writing them out.
    fn compact_log(&mut self, ctx: &mut RoundCtx, applied: u64) {
        let store = self.raft.store();
        let truncated = store.truncated().0;
        let entries = applied.saturating_sub(truncated);
        let to = if entries >= self.gc_threshold_entries {
            applied - self.gc_keep_entries + 1
        } else if self.gc_threshold_bytes > 0 && store.log_bytes() >= self.gc_threshold_bytes {
            if self.is_leader() {
                let me = self.raft.raft.id;
                let held = (self.raft.raft.trk.iter())
                    .filter(|(id, _)| **id != me)
                    .map(|(_, pr)| pr.matched)
                    .min()
                    .unwrap_or(applied);
                held.min(applied) + 1
            } else {
                applied + 1 - entries / 4
            }
        } else {
            return;
        };
        if to <= truncated + 1 {
            return;
        }
        if let Err(e) = self.raft.store_mut().compact_to(to, &mut ctx.apply_wb) {
            tracing::warn!(region_id = self.region_id, error = %e, "log compaction failed");
        }
    }
}
