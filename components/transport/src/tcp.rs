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

use flotilla_proto::serverpb::{Hello, StoreBatch};
use flotilla_raftstore::transport::{Deliver, Transport, TransportError};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use parking_lot::Mutex;
use prost::Message as _;

use crate::config::TransportConfig;
use crate::frame::{FrameDecoder, FrameKind, encode_into};
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
struct Shared {
    cfg: TransportConfig,
    queues: Mutex<BTreeMap<u64, Queue>>,
    waker: Waker,
    stop: AtomicBool,
    stats: TransportStats,
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
        Ok(Arc::new(TcpTransport {
            shared: Arc::new(Shared {
                cfg,
                queues: Mutex::new(BTreeMap::new()),
                waker,
                stop: AtomicBool::new(false),
                stats: TransportStats::default(),
            }),
            local_addr,
            pending: Mutex::new(Some((poll, listener))),
            thread: Mutex::new(None),
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
            deliver,
            next_token: FIRST_CONNECTION,
            inbound: HashMap::new(),
            outbound: BTreeMap::new(),
            out_tokens: HashMap::new(),
        };
        let handle = std::thread::Builder::new()
            .name(format!("store-{}-net", self.shared.cfg.store_id))
            .spawn(move || el.run())?;
        *self.thread.lock() = Some(handle);
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
}

struct Inbound {
    stream: TcpStream,
    decoder: FrameDecoder,
    /// The store that said hello, once it did.
    peer: Option<u64>,
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
                            peer: None,
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
                    if let Err(reason) = self.take_frames(t) {
                        self.shared.stats.rejected();
                        let peer = self.inbound.get(&t).and_then(|c| c.peer);
                        tracing::warn!(from_store = ?peer, %reason, "rejected a frame; closing its connection");
                        close = true;
                    } else {
                        continue;
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
            self.shared.stats.closed();
        }
    }

    /// Hands every complete frame of connection `t` on; the reason for
    /// refusing the stream on the first bad one.
    fn take_frames(&mut self, t: Token) -> Result<(), String> {
        let me = self.shared.cfg.store_id;
        let Some(conn) = self.inbound.get_mut(&t) else {
            return Ok(());
        };
        while let Some((kind, payload)) = conn.decoder.next_frame().map_err(|e| e.to_string())? {
            match (conn.peer, kind) {
                (None, FrameKind::Hello) => {
                    let hello =
                        Hello::decode(payload.as_slice()).map_err(|e| format!("hello: {e}"))?;
                    if hello.to_store != me
                        || !self.shared.cfg.peers.contains_key(&hello.from_store)
                    {
                        return Err(format!(
                            "hello from store {} to store {}: not a known peer of store {me}",
                            hello.from_store, hello.to_store
                        ));
                    }
                    conn.peer = Some(hello.from_store);
                }
                (Some(peer), FrameKind::Batch) => {
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
                (None, FrameKind::Batch) => return Err("a batch before hello".into()),
                (Some(_), FrameKind::Hello) => return Err("a second hello".into()),
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default)]
    struct Recorder {
        batches: Mutex<Vec<StoreBatch>>,
        unreachable: Mutex<Vec<u64>>,
    }

    impl Deliver for Recorder {
        fn deliver(&self, batch: StoreBatch) {
            self.batches.lock().push(batch);
        }
        fn unreachable(&self, store_id: u64) {
            self.unreachable.lock().push(store_id);
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
}
