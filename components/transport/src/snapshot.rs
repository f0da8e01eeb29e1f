//! Snapshots travel on connections of their own, so that a region's
//! snapshot never queues behind (or holds up) the rounds' frames.
//!
//! A send opens a connection to the destination, writes a
//! `SnapshotHeader` (the `MsgSnapshot` without its data, the data's length
//! and CRC-32C), then the data in chunk frames paced by the store-wide
//! [`Pacer`], and waits for the receiver's `SnapshotAck`. At most
//! `snapshot_sends_max` sends run at once, each on a worker thread; the
//! outcome goes back to the region through
//! [`Deliver::snapshot_status`](flotilla_raftstore::transport::Deliver::snapshot_status).
//! The receiving side lives in the event loop (see `tcp.rs`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use flotilla_proto::serverpb::{RaftMessage, SnapshotAck, SnapshotHeader};
use flotilla_raftstore::transport::Deliver;
use parking_lot::Mutex;
use prost::Message as _;

use crate::frame::{FrameDecoder, FrameKind, encode_into};
use crate::tcp::Shared;

/// A store-wide byte rate shared by concurrent senders: each reservation
/// is scheduled after the ones before it, so that over any interval no
/// more than the rate (plus one chunk) leaves.
#[derive(Debug)]
pub(crate) struct Pacer {
    bytes_per_sec: u64,
    next_free: Mutex<Option<Instant>>,
}

impl Pacer {
    /// A pacer for `bytes_per_sec`; 0 lets everything through at once.
    pub(crate) fn new(bytes_per_sec: u64) -> Self {
        Pacer {
            bytes_per_sec,
            next_free: Mutex::new(None),
        }
    }

    /// Reserves `bytes` of the rate at `now`; the caller waits the
    /// returned time before sending them.
    pub(crate) fn reserve(&self, bytes: u64, now: Instant) -> Duration {
        if self.bytes_per_sec == 0 {
            return Duration::ZERO;
        }
        let mut next = self.next_free.lock();
        let start = next.map_or(now, |n| n.max(now));
        let cost = Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec as f64);
        *next = Some(start + cost);
        start - now
    }
}

/// One snapshot waiting for a sender.
#[derive(Debug)]
pub(crate) struct SnapshotJob {
    pub(crate) to_store: u64,
    pub(crate) addr: SocketAddr,
    pub(crate) msg: RaftMessage,
}

/// A sender thread: takes jobs until the transport stops.
pub(crate) fn run_sender(
    shared: Arc<Shared>,
    jobs: crossbeam_channel::Receiver<SnapshotJob>,
    deliver: Arc<dyn Deliver>,
) {
    while !shared.stop.load(Ordering::SeqCst) {
        let job = match jobs.recv_timeout(Duration::from_millis(100)) {
            Ok(job) => job,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        };
        let region_id = job.msg.region_id;
        let to_peer = job.msg.to_peer.as_ref().map_or(0, |p| p.id);
        match send_one(&shared, job) {
            Ok(bytes) => {
                shared.stats.add_snapshots_sent(1);
                tracing::info!(region_id, to_peer, bytes, "snapshot sent");
                deliver.snapshot_status(region_id, to_peer, true);
            }
            Err(reason) => {
                shared.stats.add_snapshots_failed(1);
                tracing::info!(region_id, to_peer, %reason, "snapshot send failed");
                deliver.snapshot_status(region_id, to_peer, false);
            }
        }
    }
}

/// Streams one snapshot; the data bytes sent, or why it failed.
fn send_one(shared: &Shared, job: SnapshotJob) -> Result<u64, String> {
    let cfg = &shared.cfg;
    let mut msg = job.msg;
    let data: Bytes = msg
        .message
        .as_mut()
        .and_then(|m| m.snapshot.as_mut())
        .map(|s| std::mem::take(&mut s.data))
        .unwrap_or_default();
    let header = SnapshotHeader {
        from_store: cfg.store_id,
        to_store: job.to_store,
        message: Some(msg),
        data_bytes: data.len() as u64,
        data_crc32c: crc32c::crc32c(&data),
    };
    let timeout = cfg.snapshot_io_timeout;
    let mut stream = TcpStream::connect_timeout(&job.addr, timeout)
        .map_err(|e| format!("connect to {}: {e}", job.addr))?;
    stream
        .set_write_timeout(Some(timeout))
        .and_then(|()| stream.set_read_timeout(Some(timeout)))
        .and_then(|()| stream.set_nodelay(true))
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    encode_into(FrameKind::SnapshotHeader, &header.encode_to_vec(), &mut buf);
    stream.write_all(&buf).map_err(|e| format!("header: {e}"))?;
    let chunk_bytes = cfg.snapshot_chunk_bytes.clamp(
        1,
        usize::try_from(cfg.frame_bytes_max).unwrap_or(usize::MAX),
    );
    for chunk in data.chunks(chunk_bytes) {
        let wait = shared.pacer.reserve(chunk.len() as u64, Instant::now());
        if !wait.is_zero() {
            shared
                .stats
                .add_snapshot_throttled_us(u64::try_from(wait.as_micros()).unwrap_or(u64::MAX));
            std::thread::sleep(wait);
        }
        if shared.stop.load(Ordering::Relaxed) {
            return Err("transport stopping".into());
        }
        buf.clear();
        encode_into(FrameKind::SnapshotChunk, chunk, &mut buf);
        stream.write_all(&buf).map_err(|e| format!("chunk: {e}"))?;
        shared.stats.add_snapshot_chunks_sent(1);
        shared.stats.add_snapshot_sent_bytes(chunk.len() as u64);
    }
    let ack = read_ack(&mut stream)?;
    if ack.delivered {
        Ok(data.len() as u64)
    } else {
        Err("the receiving store refused it (receiving its maximum)".into())
    }
}

fn read_ack(stream: &mut TcpStream) -> Result<SnapshotAck, String> {
    let mut decoder = FrameDecoder::new(1024);
    let mut scratch = [0u8; 256];
    loop {
        match decoder.next_frame().map_err(|e| e.to_string())? {
            Some((FrameKind::SnapshotAck, payload)) => {
                return SnapshotAck::decode(payload.as_slice()).map_err(|e| format!("ack: {e}"));
            }
            Some((kind, _)) => return Err(format!("a {kind:?} frame instead of an answer")),
            None => {}
        }
        let n = stream
            .read(&mut scratch)
            .map_err(|e| format!("waiting for the answer: {e}"))?;
        if n == 0 {
            return Err("closed without an answer".into());
        }
        decoder.extend(&scratch[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pacer_spaces_reservations_at_the_rate_and_lets_idle_time_go() {
        let p = Pacer::new(1000); // 1,000 bytes per second
        let t0 = Instant::now();
        assert_eq!(p.reserve(500, t0), Duration::ZERO, "the first goes at once");
        assert_eq!(p.reserve(500, t0), Duration::from_millis(500));
        assert_eq!(p.reserve(1000, t0), Duration::from_secs(1));
        // Two concurrent senders share the rate: the next waits for both.
        assert_eq!(p.reserve(1, t0), Duration::from_secs(2));
        // After a quiet spell nothing is owed, and no credit is banked.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(p.reserve(1000, later), Duration::ZERO);
        assert_eq!(p.reserve(1000, later), Duration::from_secs(1));
        assert_eq!(Pacer::new(0).reserve(u64::MAX, t0), Duration::ZERO);
    }
}
