//! [`TcpTransport`]: one mio event-loop thread per store. Outgoing frames
//! queue per destination store (bounded) and leave on one connection per
//! store; incoming connections introduce themselves with a `Hello` and then
//! carry `StoreBatch` frames, which are handed to the store's regions.
//!
//! A connection that fails is reported to the store's regions as an
//! unreachable store, so that leaders probe instead of streaming.
//!
//! No input from the network panics the store: every malformed, oversized,
//! truncated-forever, undecodable or misaddressed frame is counted, logged
//! and its connection closed; everyone else keeps being served.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use flotilla_proto::serverpb::{Hello, RaftMessage, SnapshotAck, SnapshotHeader, StoreBatch};
use flotilla_raftstore::transport::{Deliver, SnapshotSend, Transport, TransportError};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use parking_lot::Mutex;
use prost::Message as _;

use crate::config::TransportConfig;
use crate::frame::{FrameDecoder, FrameKind, encode_into};
use crate::snapshot::{Pacer, SnapshotJob, run_sender};
use crate::stats::{TransportStats, TransportStatsSnapshot};

const WAKER: Token = Token(0);
const LISTENER: Token = Token(1);
const FIRST_CONNECTION: usize = 2;
/// Bytes taken from a send queue into one connection's write buffer at once.
const WRITE_CHUNK_BYTES: usize = 1 << 20;

#[derive(Debug, Default)]
struct Queue {
    frames: VecDeque<Vec<u8>>,
    bytes: usize,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) cfg: TransportConfig,
    queues: Mutex<BTreeMap<u64, Queue>>,
    waker: Waker,
    pub(crate) stop: AtomicBool,
    pub(crate) stats: TransportStats,
    pub(crate) pacer: Pacer,
}

/// A store's TCP transport. Create it with [`bind`](Self::bind) (so the
/// store can be opened with it), then [`serve`](Self::serve) with the
/// store's receiving side.
#[derive(Debug)]
pub struct TcpTransport {
    shared: Arc<Shared>,
    local_addr: std::net::SocketAddr,
    // The poll and listener until `serve` moves them to the loop thread.
    pending: Mutex<Option<(Poll, TcpListener)>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    snapshot_jobs: crossbeam_channel::Sender<SnapshotJob>,
    snapshot_queue: crossbeam_channel::Receiver<SnapshotJob>,
    senders: Mutex<Vec<JoinHandle<()>>>,
}

impl TcpTransport {
    /// A transport listening on `listener` (bound by the caller, so that
    /// tests can bind port 0 and learn the address first).
    pub fn bind(cfg: TransportConfig, listener: std::net::TcpListener) -> io::Result<Arc<Self>> {
        crate::stats::describe();
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let mut listener = TcpListener::from_std(listener);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let (snapshot_jobs, snapshot_queue) =
            crossbeam_channel::bounded(cfg.snapshot_sends_max.max(1));
        Ok(Arc::new(TcpTransport {
            shared: Arc::new(Shared {
                pacer: Pacer::new(cfg.snapshot_bytes_per_sec),
                stats: TransportStats::new(cfg.store_id),
                cfg,
                queues: Mutex::new(BTreeMap::new()),
                waker,
                stop: AtomicBool::new(false),
            }),
            local_addr,
            pending: Mutex::new(Some((poll, listener))),
            thread: Mutex::new(None),
            snapshot_jobs,
            snapshot_queue,
            senders: Mutex::new(Vec::new()),
        }))
    }

    /// Starts the event loop, handing incoming frames to `deliver`.
    /// Frames sent before this wait in their queues.
    pub fn serve(&self, deliver: Arc<dyn Deliver>) -> io::Result<()> {
        let Some((poll, listener)) = self.pending.lock().take() else {
            return Err(io::Error::other("transport already serving"));
        };
        let el = EventLoop {
            shared: Arc::clone(&self.shared),
            poll,
            listener,
            deliver: Arc::clone(&deliver),
            next_token: FIRST_CONNECTION,
            inbound: HashMap::new(),
            outbound: BTreeMap::new(),
            out_tokens: HashMap::new(),
            snapshots_receiving: 0,
        };
        let store_id = self.shared.cfg.store_id;
        let handle = std::thread::Builder::new()
            .name(format!("store-{store_id}-net"))
            .spawn(move || el.run())?;
        *self.thread.lock() = Some(handle);
        let mut senders = self.senders.lock();
        for i in 0..self.shared.cfg.snapshot_sends_max.max(1) {
            let (shared, jobs, deliver) = (
                Arc::clone(&self.shared),
                self.snapshot_queue.clone(),
                Arc::clone(&deliver),
            );
            senders.push(
                std::thread::Builder::new()
                    .name(format!("store-{store_id}-snap-{i}"))
                    .spawn(move || run_sender(shared, jobs, deliver))?,
            );
        }
        Ok(())
    }

    /// Where the transport listens.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.local_addr
    }

    /// The transport's counters.
    pub fn stats(&self) -> TransportStatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// Stops the event loop and closes every connection. Idempotent.
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = self.shared.waker.wake();
        if let Some(h) = self.thread.lock().take() {
            let _ = h.join();
        }
        for h in self.senders.lock().drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Transport for TcpTransport {
    fn send(&self, batch: StoreBatch) -> Result<(), TransportError> {
        let to = batch.to_store;
        if self.shared.stop.load(Ordering::Relaxed) {
            return Err(TransportError::Closed);
        }
        if !self.shared.cfg.peers.contains_key(&to) {
            return Err(TransportError::Unreachable(to));
        }
        let mut frame = Vec::new();
        encode_into(FrameKind::Batch, &batch.encode_to_vec(), &mut frame);
        {
            let mut queues = self.shared.queues.lock();
            let q = queues.entry(to).or_default();
            if q.bytes + frame.len() > self.shared.cfg.send_queue_bytes_max {
                self.shared.stats.dropped();
                return Err(TransportError::QueueFull(to));
            }
            q.bytes += frame.len();
            q.frames.push_back(frame);
        }
        let _ = self.shared.waker.wake();
        Ok(())
    }

    /// Queues the snapshot for a sender thread, which streams it on a
    /// connection of its own; a full queue fails the send at once.
    fn send_snapshot(
        &self,
        _from_store: u64,
        to_store: u64,
        msg: RaftMessage,
    ) -> Result<SnapshotSend, TransportError> {
        if self.shared.stop.load(Ordering::Relaxed) {
            return Err(TransportError::Closed);
        }
        let Some(&addr) = self.shared.cfg.peers.get(&to_store) else {
            return Err(TransportError::Unreachable(to_store));
        };
        let job = SnapshotJob {
            to_store,
            addr,
            msg,
        };
        match self.snapshot_jobs.try_send(job) {
            Ok(()) => Ok(SnapshotSend::Streaming),
            Err(_) => {
                self.shared.stats.add_snapshots_failed(1);
                Err(TransportError::QueueFull(to_store))
            }
        }
    }
}

struct Inbound {
    stream: TcpStream,
    decoder: FrameDecoder,
    /// What the connection turned out to be, from its first frame.
    role: Role,
}

enum Role {
    /// No frame yet.
    Unknown,
    /// Rounds' frames from the store that said hello.
    Raft(u64),
    /// One snapshot, arriving in chunks.
    Snapshot(Box<SnapshotRecv>),
}

struct SnapshotRecv {
    from_store: u64,
    msg: RaftMessage,
    data_bytes: u64,
    data_crc32c: u32,
    data: Vec<u8>,
}

/// What to do with a connection after its frames.
enum Next {
    KeepOpen,
    Close,
}

enum OutState {
    Idle,
    Connecting(TcpStream, Token),
    Connected(TcpStream, Token),
}

struct Outbound {
    state: OutState,
    backoff: Duration,
    retry_at: Instant,
    buf: Vec<u8>,
    written: usize,
    frames_in_buf: u64,
}

struct EventLoop {
    shared: Arc<Shared>,
    poll: Poll,
    listener: TcpListener,
    deliver: Arc<dyn Deliver>,
    next_token: usize,
    inbound: HashMap<Token, Inbound>,
    outbound: BTreeMap<u64, Outbound>,
    out_tokens: HashMap<Token, u64>,
    /// Inbound connections in the middle of a snapshot.
    snapshots_receiving: usize,
}

impl EventLoop {
    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        while !self.shared.stop.load(Ordering::SeqCst) {
            let timeout = self.next_timeout();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::error!(error = %e, "transport poll failed; stopping");
                    return;
                }
                continue;
            }
            for ev in events.iter() {
                match ev.token() {
                    WAKER => {}
                    LISTENER => self.accept(),
                    t if self.inbound.contains_key(&t) => self.read_inbound(t),
                    t => {
                        if let Some(&store) = self.out_tokens.get(&t) {
                            self.on_outbound_event(store, ev.is_readable());
                        }
                    }
                }
            }
            self.pump();
        }
    }

    fn next_timeout(&self) -> Duration {
        let now = Instant::now();
        self.outbound
            .values()
            .filter(|o| matches!(o.state, OutState::Idle))
            .map(|o| o.retry_at.saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::from_millis(100))
            .clamp(Duration::from_millis(1), Duration::from_millis(100))
    }

    fn token(&mut self) -> Token {
        let t = Token(self.next_token);
        self.next_token += 1;
        t
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, addr)) => {
                    let t = self.token();
                    if let Err(e) =
                        self.poll
                            .registry()
                            .register(&mut stream, t, Interest::READABLE)
                    {
                        tracing::warn!(%addr, error = %e, "cannot watch an accepted connection");
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    self.inbound.insert(
                        t,
                        Inbound {
                            stream,
                            decoder: FrameDecoder::new(self.shared.cfg.frame_bytes_max),
                            role: Role::Unknown,
                        },
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    return;
                }
            }
        }
    }

    fn read_inbound(&mut self, t: Token) {
        let mut scratch = [0u8; 64 << 10];
        let mut close = false;
        loop {
            let Some(conn) = self.inbound.get_mut(&t) else {
                return;
            };
            match conn.stream.read(&mut scratch) {
                Ok(0) => close = true,
                Ok(n) => {
                    conn.decoder.extend(&scratch[..n]);
                    // Frames leave the buffer as they complete, so it never
                    // holds more than one frame and one read.
                    match self.take_frames(t) {
                        Ok(Next::KeepOpen) => continue,
                        Ok(Next::Close) => close = true,
                        Err(reason) => {
                            self.shared.stats.rejected();
                            let peer = self.inbound.get(&t).and_then(|c| match &c.role {
                                Role::Raft(p) => Some(*p),
                                Role::Snapshot(s) => Some(s.from_store),
                                Role::Unknown => None,
                            });
                            tracing::warn!(from_store = ?peer, %reason, "rejected a frame; closing its connection");
                            close = true;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => close = true,
            }
            break;
        }
        if close && let Some(mut conn) = self.inbound.remove(&t) {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            if matches!(conn.role, Role::Snapshot(_)) {
                self.snapshots_receiving -= 1;
                self.shared
                    .stats
                    .set_snapshots_receiving(self.snapshots_receiving);
            }
            self.shared.stats.closed();
        }
    }

    /// Hands every complete frame of connection `t` on; the reason for
    /// refusing the stream on the first bad one.
    fn take_frames(&mut self, t: Token) -> Result<Next, String> {
        let me = self.shared.cfg.store_id;
        loop {
            let Some(conn) = self.inbound.get_mut(&t) else {
                return Ok(Next::Close);
            };
            let Some((kind, payload)) = conn.decoder.next_frame().map_err(|e| e.to_string())?
            else {
                return Ok(Next::KeepOpen);
            };
            match (&mut conn.role, kind) {
                (Role::Unknown, FrameKind::Hello) => {
                    let hello =
                        Hello::decode(payload.as_slice()).map_err(|e| format!("hello: {e}"))?;
                    check_identity(&self.shared.cfg, hello.from_store, hello.to_store)?;
                    conn.role = Role::Raft(hello.from_store);
                }
                (Role::Raft(peer), FrameKind::Batch) => {
                    let peer = *peer;
                    let batch = StoreBatch::decode(payload.as_slice())
                        .map_err(|e| format!("batch: {e}"))?;
                    if batch.from_store != peer || batch.to_store != me {
                        return Err(format!(
                            "batch from store {} to store {} on store {peer}'s connection",
                            batch.from_store, batch.to_store
                        ));
                    }
                    self.shared.stats.received();
                    self.deliver.deliver(batch);
                }
                (Role::Unknown, FrameKind::SnapshotHeader) => {
                    if let Next::Close = self.start_snapshot(t, &payload)? {
                        return Ok(Next::Close);
                    }
                }
                (Role::Snapshot(recv), FrameKind::SnapshotChunk) => {
                    if recv.data.len() as u64 + payload.len() as u64 > recv.data_bytes {
                        return Err(format!(
                            "snapshot chunks exceed the declared {} bytes",
                            recv.data_bytes
                        ));
                    }
                    recv.data.extend_from_slice(&payload);
                    if recv.data.len() as u64 == recv.data_bytes {
                        self.finish_snapshot(t)?;
                        return Ok(Next::Close);
                    }
                }
                (Role::Unknown, _) => return Err(format!("a {kind:?} frame before hello")),
                (Role::Raft(_), _) => return Err(format!("a {kind:?} frame after hello")),
                (Role::Snapshot(_), _) => {
                    return Err(format!("a {kind:?} frame on a snapshot connection"));
                }
            }
        }
    }

    /// A snapshot connection's header: accepted (the chunks follow), or
    /// refused with an answer because the store receives its maximum.
    fn start_snapshot(&mut self, t: Token, payload: &[u8]) -> Result<Next, String> {
        let header =
            SnapshotHeader::decode(payload).map_err(|e| format!("snapshot header: {e}"))?;
        check_identity(&self.shared.cfg, header.from_store, header.to_store)?;
        let max = self.shared.cfg.snapshot_bytes_max;
        if header.data_bytes > max {
            return Err(format!(
                "snapshot of {} bytes exceeds the maximum of {max}",
                header.data_bytes
            ));
        }
        let Some(msg) = header.message.filter(|m| m.message.is_some()) else {
            return Err("snapshot header without a message".into());
        };
        let conn = self.inbound.get_mut(&t).expect("the caller's connection");
        if self.snapshots_receiving >= self.shared.cfg.snapshot_receives_max {
            self.shared.stats.add_snapshots_refused(1);
            tracing::info!(
                from_store = header.from_store,
                region_id = msg.region_id,
                "refusing a snapshot: receiving the maximum already"
            );
            answer(&mut conn.stream, msg.region_id, false);
            return Ok(Next::Close);
        }
        self.snapshots_receiving += 1;
        self.shared
            .stats
            .set_snapshots_receiving(self.snapshots_receiving);
        let reserve = usize::try_from(header.data_bytes.min(64 << 20)).unwrap_or(0);
        conn.role = Role::Snapshot(Box::new(SnapshotRecv {
            from_store: header.from_store,
            msg,
            data_bytes: header.data_bytes,
            data_crc32c: header.data_crc32c,
            data: Vec::with_capacity(reserve),
        }));
        if header.data_bytes == 0 {
            self.finish_snapshot(t)?;
            return Ok(Next::Close);
        }
        Ok(Next::KeepOpen)
    }

    /// The snapshot's data is all here: check it, hand it to the region,
    /// answer.
    fn finish_snapshot(&mut self, t: Token) -> Result<(), String> {
        let conn = self.inbound.get_mut(&t).expect("the caller's connection");
        let Role::Snapshot(recv) = std::mem::replace(&mut conn.role, Role::Unknown) else {
            return Ok(());
        };
        self.snapshots_receiving -= 1;
        self.shared
            .stats
            .set_snapshots_receiving(self.snapshots_receiving);
        let SnapshotRecv {
            from_store,
            mut msg,
            data_crc32c,
            data,
            ..
        } = *recv;
        if crc32c::crc32c(&data) != data_crc32c {
            return Err("snapshot data does not match its checksum".into());
        }
        let region_id = msg.region_id;
        if let Some(snap) = msg.message.as_mut().and_then(|m| m.snapshot.as_mut()) {
            snap.data = data.into();
        }
        self.shared.stats.add_snapshots_received(1);
        self.deliver.deliver(StoreBatch {
            from_store,
            to_store: self.shared.cfg.store_id,
            messages: vec![msg],
            heartbeats: Vec::new(),
        });
        answer(&mut conn.stream, region_id, true);
        Ok(())
    }

    /// Connects to stores with queued frames and writes what it can.
    fn pump(&mut self) {
        let waiting: Vec<u64> = {
            let queues = self.shared.queues.lock();
            queues
                .iter()
                .filter(|(_, q)| !q.frames.is_empty())
                .map(|(s, _)| *s)
                .collect()
        };
        let now = Instant::now();
        for store in waiting {
            let min = self.shared.cfg.reconnect_backoff_min;
            let ob = self.outbound.entry(store).or_insert_with(|| Outbound {
                state: OutState::Idle,
                backoff: min,
                retry_at: now,
                buf: Vec::new(),
                written: 0,
                frames_in_buf: 0,
            });
            match ob.state {
                OutState::Idle if ob.retry_at <= now => self.connect(store),
                OutState::Connected(..) => self.flush(store),
                _ => {}
            }
        }
    }

    fn connect(&mut self, store: u64) {
        let Some(&addr) = self.shared.cfg.peers.get(&store) else {
            return;
        };
        let t = self.token();
        let result = TcpStream::connect(addr).and_then(|mut s| {
            self.poll
                .registry()
                .register(&mut s, t, Interest::READABLE | Interest::WRITABLE)?;
            Ok(s)
        });
        match result {
            Ok(stream) => {
                self.out_tokens.insert(t, store);
                if let Some(ob) = self.outbound.get_mut(&store) {
                    ob.state = OutState::Connecting(stream, t);
                }
            }
            Err(e) => {
                tracing::debug!(to_store = store, error = %e, "connect failed");
                self.fail(store);
            }
        }
    }

    fn on_outbound_event(&mut self, store: u64, readable: bool) {
        let Some(ob) = self.outbound.get_mut(&store) else {
            return;
        };
        match std::mem::replace(&mut ob.state, OutState::Idle) {
            OutState::Connecting(stream, t) => {
                let status = match stream.take_error() {
                    Ok(Some(_)) | Err(_) => Err(()),
                    Ok(None) => match stream.peer_addr() {
                        Ok(_) => Ok(true),
                        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
                        Err(_) => Err(()),
                    },
                };
                ob.state = OutState::Connecting(stream, t);
                match status {
                    Ok(true) => self.on_connected(store),
                    Ok(false) => {}
                    Err(()) => self.fail(store),
                }
            }
            OutState::Connected(mut stream, t) => {
                // A store never answers on a connection it accepted: data
                // is ignored, end of stream or an error means it is gone.
                let mut gone = false;
                if readable {
                    let mut scratch = [0u8; 512];
                    loop {
                        match stream.read(&mut scratch) {
                            Ok(0) => {
                                gone = true;
                                break;
                            }
                            Ok(_) => {}
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(_) => {
                                gone = true;
                                break;
                            }
                        }
                    }
                }
                ob.state = OutState::Connected(stream, t);
                if gone {
                    self.fail(store);
                } else {
                    self.flush(store);
                }
            }
            OutState::Idle => {}
        }
    }

    /// The connection to `store` is up: it says hello first, then sends
    /// what is queued.
    fn on_connected(&mut self, store: u64) {
        let Some(ob) = self.outbound.get_mut(&store) else {
            return;
        };
        let OutState::Connecting(stream, t) = std::mem::replace(&mut ob.state, OutState::Idle)
        else {
            return;
        };
        let _ = stream.set_nodelay(true);
        let hello = Hello {
            from_store: self.shared.cfg.store_id,
            to_store: store,
        };
        ob.buf.clear();
        ob.written = 0;
        ob.frames_in_buf = 0;
        encode_into(FrameKind::Hello, &hello.encode_to_vec(), &mut ob.buf);
        ob.backoff = self.shared.cfg.reconnect_backoff_min;
        ob.state = OutState::Connected(stream, t);
        self.shared.stats.connected();
        self.flush(store);
    }

    /// Writes the connection's buffer, refilling it from the store's queue,
    /// until the socket would block or nothing is left.
    fn flush(&mut self, store: u64) {
        loop {
            let Some(ob) = self.outbound.get_mut(&store) else {
                return;
            };
            if ob.written == ob.buf.len() {
                self.shared
                    .stats
                    .sent(std::mem::take(&mut ob.frames_in_buf));
                ob.buf.clear();
                ob.written = 0;
                let mut queues = self.shared.queues.lock();
                let Some(q) = queues.get_mut(&store) else {
                    return;
                };
                while ob.buf.len() < WRITE_CHUNK_BYTES {
                    let Some(f) = q.frames.pop_front() else { break };
                    q.bytes -= f.len();
                    ob.buf.extend_from_slice(&f);
                    ob.frames_in_buf += 1;
                }
                if ob.buf.is_empty() {
                    return;
                }
            }
            let OutState::Connected(stream, _) = &mut ob.state else {
                return;
            };
            match stream.write(&ob.buf[ob.written..]) {
                Ok(0) => return self.fail(store),
                Ok(n) => ob.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::debug!(to_store = store, error = %e, "write failed");
                    return self.fail(store);
                }
            }
        }
    }

    /// Drops the connection to `store` and schedules a reconnect with
    /// backoff. A frame half written is lost; raft resends.
    fn fail(&mut self, store: u64) {
        let max = self.shared.cfg.reconnect_backoff_max;
        let Some(ob) = self.outbound.get_mut(&store) else {
            return;
        };
        match std::mem::replace(&mut ob.state, OutState::Idle) {
            OutState::Connecting(mut s, t) | OutState::Connected(mut s, t) => {
                let _ = self.poll.registry().deregister(&mut s);
                self.out_tokens.remove(&t);
                self.shared.stats.closed();
            }
            OutState::Idle => {}
        }
        ob.buf.clear();
        ob.written = 0;
        ob.frames_in_buf = 0;
        ob.retry_at = Instant::now() + ob.backoff;
        ob.backoff = (ob.backoff * 2).min(max);
        self.deliver.unreachable(store);
    }
}

/// A store may call only if it is a configured peer, and only us.
fn check_identity(cfg: &TransportConfig, from_store: u64, to_store: u64) -> Result<(), String> {
    let me = cfg.store_id;
    if to_store != me || !cfg.peers.contains_key(&from_store) {
        return Err(format!(
            "hello from store {from_store} to store {to_store}: not a known peer of store {me}"
        ));
    }
    Ok(())
}

/// Writes a snapshot answer. It is a few bytes on a connection that has
/// sent nothing, so it fits the socket buffer; if it does not, the sender
/// sees the connection close without an answer and retries.
fn answer(stream: &mut TcpStream, region_id: u64, delivered: bool) {
    let mut buf = Vec::new();
    let ack = SnapshotAck {
        region_id,
        delivered,
    };
    encode_into(FrameKind::SnapshotAck, &ack.encode_to_vec(), &mut buf);
    let _ = stream.write(&buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default)]
    struct Recorder {
        batches: Mutex<Vec<StoreBatch>>,
        unreachable: Mutex<Vec<u64>>,
        statuses: Mutex<Vec<(u64, u64, bool)>>,
    }

    impl Deliver for Recorder {
        fn deliver(&self, batch: StoreBatch) {
            self.batches.lock().push(batch);
        }
        fn unreachable(&self, store_id: u64) {
            self.unreachable.lock().push(store_id);
        }
        fn snapshot_status(&self, region_id: u64, to_peer: u64, delivered: bool) {
            self.statuses.lock().push((region_id, to_peer, delivered));
        }
    }

    fn wait_until(mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn listener() -> std::net::TcpListener {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap()
    }

    #[test]
    fn frames_cross_between_two_transports_and_a_dead_peer_is_reported_unreachable() {
        let (l1, l2) = (listener(), listener());
        let dead = listener().local_addr().unwrap(); // closed when dropped
        let peers1 = BTreeMap::from([(2, l2.local_addr().unwrap()), (3, dead)]);
        let peers2 = BTreeMap::from([(1, l1.local_addr().unwrap())]);
        let (r1, r2) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
        let t1 = TcpTransport::bind(TransportConfig::new(1, peers1), l1).unwrap();
        let t2 = TcpTransport::bind(TransportConfig::new(2, peers2), l2).unwrap();
        t1.serve(r1.clone()).unwrap();
        t2.serve(r2.clone()).unwrap();
        for _ in 0..3 {
            let batch = StoreBatch {
                from_store: 1,
                to_store: 2,
                ..Default::default()
            };
            t1.send(batch).unwrap();
        }
        wait_until(|| r2.batches.lock().len() == 3);
        assert!(
            r2.batches
                .lock()
                .iter()
                .all(|b| b.from_store == 1 && b.to_store == 2)
        );
        assert_eq!(
            t1.send(StoreBatch {
                from_store: 1,
                to_store: 9,
                ..Default::default()
            }),
            Err(TransportError::Unreachable(9)),
            "a store not in the configuration"
        );
        t1.send(StoreBatch {
            from_store: 1,
            to_store: 3,
            ..Default::default()
        })
        .unwrap();
        wait_until(|| r1.unreachable.lock().contains(&3));
        assert_eq!(t2.stats().frames_rejected, 0);
        t1.shutdown();
        assert_eq!(
            t1.send(StoreBatch {
                from_store: 1,
                to_store: 2,
                ..Default::default()
            }),
            Err(TransportError::Closed)
        );
    }

    fn snapshot_message(region_id: u64, data: Vec<u8>) -> RaftMessage {
        use flotilla_proto::metapb::Peer;
        use flotilla_proto::raftpb::{Message, MessageType, Snapshot};
        RaftMessage {
            region_id,
            from_peer: Some(Peer {
                id: 1,
                store_id: 1,
                ..Default::default()
            }),
            to_peer: Some(Peer {
                id: 2,
                store_id: 2,
                ..Default::default()
            }),
            message: Some(Message {
                msg_type: MessageType::MsgSnapshot as i32,
                snapshot: Some(Box::new(Snapshot {
                    data: data.into(),
                    metadata: None,
                })),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    struct Pair {
        t1: Arc<TcpTransport>,
        t2: Arc<TcpTransport>,
        r1: Arc<Recorder>,
        r2: Arc<Recorder>,
    }

    fn pair(configure: impl Fn(&mut TransportConfig)) -> Pair {
        let (l1, l2) = (listener(), listener());
        let mut c1 = TransportConfig::new(1, BTreeMap::from([(2, l2.local_addr().unwrap())]));
        let mut c2 = TransportConfig::new(2, BTreeMap::from([(1, l1.local_addr().unwrap())]));
        configure(&mut c1);
        configure(&mut c2);
        let (r1, r2) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
        let t1 = TcpTransport::bind(c1, l1).unwrap();
        let t2 = TcpTransport::bind(c2, l2).unwrap();
        t1.serve(r1.clone()).unwrap();
        t2.serve(r2.clone()).unwrap();
        Pair { t1, t2, r1, r2 }
    }

    fn raw_frame(kind: FrameKind, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_into(kind, payload, &mut out);
        out
    }

    fn header(from: u64, data: &[u8], declared: u64) -> Vec<u8> {
        let mut msg = snapshot_message(9, Vec::new());
        msg.from_peer.as_mut().unwrap().store_id = from;
        let h = SnapshotHeader {
            from_store: from,
            to_store: 2,
            message: Some(msg),
            data_bytes: declared,
            data_crc32c: crc32c::crc32c(data),
        };
        raw_frame(FrameKind::SnapshotHeader, &h.encode_to_vec())
    }

    #[test]
    fn a_snapshot_streams_in_paced_chunks_on_its_own_connection_and_is_acknowledged() {
        let p = pair(|c| {
            c.snapshot_chunk_bytes = 4096;
            c.snapshot_bytes_per_sec = 1 << 20;
        });
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let sent =
            p.t1.send_snapshot(1, 2, snapshot_message(7, data.clone()))
                .unwrap();
        assert_eq!(sent, SnapshotSend::Streaming);
        wait_until(|| !p.r1.statuses.lock().is_empty());
        assert_eq!(*p.r1.statuses.lock(), vec![(7, 2, true)]);
        let batches = p.r2.batches.lock();
        assert_eq!(batches.len(), 1);
        assert_eq!((batches[0].from_store, batches[0].to_store), (1, 2));
        let got = batches[0].messages[0].message.as_ref().unwrap();
        assert_eq!(
            got.snapshot.as_ref().unwrap().data,
            data,
            "whole and in order"
        );
        let (s1, s2) = (p.t1.stats(), p.t2.stats());
        assert_eq!(s1.snapshots_sent, 1);
        assert_eq!(s1.snapshot_chunks_sent, 25, "100,000 bytes in 4 KiB chunks");
        assert_eq!(s1.snapshot_sent_bytes, 100_000);
        assert!(
            s1.snapshot_throttled_us > 0,
            "the rate limit held chunks back"
        );
        assert_eq!(s1.frames_sent, 0, "nothing went on the rounds' connection");
        assert_eq!((s2.snapshots_received, s2.snapshots_receiving), (1, 0));
        assert_eq!(s2.frames_rejected, 0);
    }

    #[test]
    fn snapshots_beyond_the_receive_cap_are_refused_and_the_sender_hears_of_it() {
        let p = pair(|c| c.snapshot_receives_max = 1);
        // Another sender's snapshot, half sent, takes the only slot.
        let mut hog = std::net::TcpStream::connect(p.t2.local_addr()).unwrap();
        hog.write_all(&header(1, b"0123456789", 10)).unwrap();
        hog.write_all(&raw_frame(FrameKind::SnapshotChunk, b"01234"))
            .unwrap();
        wait_until(|| p.t2.stats().snapshots_receiving == 1);
        p.t1.send_snapshot(1, 2, snapshot_message(7, vec![1; 10]))
            .unwrap();
        wait_until(|| !p.r1.statuses.lock().is_empty());
        assert_eq!(*p.r1.statuses.lock(), vec![(7, 2, false)]);
        assert_eq!(p.t2.stats().snapshots_refused, 1);
        assert_eq!(p.t1.stats().snapshots_failed, 1);
        // The slot frees when the half-sent one finishes; then it goes.
        hog.write_all(&raw_frame(FrameKind::SnapshotChunk, b"56789"))
            .unwrap();
        wait_until(|| p.t2.stats().snapshots_received == 1);
        p.t1.send_snapshot(1, 2, snapshot_message(7, vec![1; 10]))
            .unwrap();
        wait_until(|| p.r1.statuses.lock().len() == 2);
        assert_eq!(p.r1.statuses.lock()[1], (7, 2, true));
        assert_eq!(p.t2.stats().snapshots_received, 2);
        assert_eq!(p.t2.stats().frames_rejected, 0);
    }

    #[test]
    fn malformed_snapshot_streams_are_rejected_and_free_their_slot() {
        let p = pair(|c| {
            c.snapshot_receives_max = 1;
            c.snapshot_bytes_max = 1 << 20;
        });
        let chunk = |b: &[u8]| raw_frame(FrameKind::SnapshotChunk, b);
        let attacks: Vec<(&str, Vec<u8>)> = vec![
            ("a chunk before any header", chunk(b"abc")),
            ("a header from an unknown store", header(5, b"abc", 3)),
            (
                "a header declaring more than the maximum",
                header(1, b"", 2 << 20),
            ),
            (
                "chunks beyond the declared length",
                [header(1, b"abc", 3), chunk(b"abcd")].concat(),
            ),
            (
                "data that does not match its checksum",
                [header(1, b"abc", 3), chunk(b"abd")].concat(),
            ),
            (
                "a batch on a snapshot connection",
                [header(1, b"abc", 3), raw_frame(FrameKind::Batch, b"")].concat(),
            ),
            (
                "a header without a message",
                raw_frame(
                    FrameKind::SnapshotHeader,
                    &SnapshotHeader {
                        from_store: 1,
                        to_store: 2,
                        ..Default::default()
                    }
                    .encode_to_vec(),
                ),
            ),
        ];
        for (i, (what, bytes)) in attacks.into_iter().enumerate() {
            let mut s = std::net::TcpStream::connect(p.t2.local_addr()).unwrap();
            s.write_all(&bytes).unwrap();
            wait_until(|| p.t2.stats().frames_rejected == i as u64 + 1);
            assert_eq!(p.t2.stats().snapshots_receiving, 0, "{what}");
        }
        assert!(p.r2.batches.lock().is_empty(), "nothing was delivered");
        // The only slot is free: a good snapshot still gets through.
        p.t1.send_snapshot(1, 2, snapshot_message(7, vec![3; 5000]))
            .unwrap();
        wait_until(|| !p.r1.statuses.lock().is_empty());
        assert_eq!(*p.r1.statuses.lock(), vec![(7, 2, true)]);
    }
}
