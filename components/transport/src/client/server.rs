//! The client service: a store answers clients' requests on a port of its
//! own. One reader and one writer thread per connection; requests go to
//! the store's regions as they are decoded, and answers leave in the order
//! the regions give them (a client tells them apart by id), several per
//! write when they come together.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, unbounded};
use flotilla_proto::clientpb::{
    RegionsResponse, Request, Response, WriteResponse, request::Cmd, response,
};
use flotilla_raftstore::{Error, StoreHandle};
use parking_lot::Mutex;
use prost::Message as _;

use super::wire::{answer_to_wire, error_to_wire, read_from_wire, read_messages};
use crate::frame::{FrameKind, encode_into};

/// Bounds of the client service.
#[derive(Debug, Clone)]
pub struct ClientServiceConfig {
    /// The largest request frame accepted.
    pub frame_bytes_max: u64,
    /// Requests one connection may have in flight; more are answered
    /// `ServerIsBusy` at once.
    pub inflight_per_connection_max: usize,
    /// Open connections at most (each costs two threads); more are closed
    /// as they arrive.
    pub connections_max: usize,
}

impl Default for ClientServiceConfig {
    fn default() -> Self {
        ClientServiceConfig {
            frame_bytes_max: 64 << 20,
            inflight_per_connection_max: 4096,
            connections_max: 1024,
        }
    }
}

/// What the client service has done.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ClientServiceStats {
    /// Connections accepted.
    pub connections: u64,
    /// Requests decoded and handled.
    pub requests: u64,
    /// Connections closed for a frame that was not a valid request.
    pub rejected: u64,
    /// Requests answered `ServerIsBusy` for too many in flight.
    pub busy: u64,
    /// Connections closed on arrival because `connections_max` were open.
    pub refused: u64,
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    requests: AtomicU64,
    rejected: AtomicU64,
    busy: AtomicU64,
    refused: AtomicU64,
}

struct Shared {
    store: Arc<dyn StoreHandle>,
    cfg: ClientServiceConfig,
    stop: AtomicBool,
    counters: Counters,
    /// A handle on every open connection, to close them at shutdown.
    open: Mutex<HashMap<u64, TcpStream>>,
    next_conn: AtomicU64,
}

/// A store's client service, listening until [`shutdown`](Self::shutdown).
pub struct ClientService {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for ClientService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientService")
            .field("addr", &self.addr)
            .field("store_id", &self.shared.store.store_id())
            .finish()
    }
}

impl ClientService {
    /// Serves `store` to clients connecting to `listener`.
    pub fn start(
        listener: TcpListener,
        store: Arc<dyn StoreHandle>,
        cfg: ClientServiceConfig,
    ) -> io::Result<ClientService> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            store,
            cfg,
            stop: AtomicBool::new(false),
            counters: Counters::default(),
            open: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
        });
        let s = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name(format!("store-{}-clients", shared.store.store_id()))
            .spawn(move || accept_loop(&s, &listener))?;
        Ok(ClientService {
            shared,
            addr,
            accept: Mutex::new(Some(accept)),
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The service's counters.
    pub fn stats(&self) -> ClientServiceStats {
        let c = &self.shared.counters;
        ClientServiceStats {
            connections: c.connections.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            busy: c.busy.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
        }
    }

    /// Stops accepting and closes every connection. Idempotent.
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.accept.lock().take() {
            let _ = h.join();
        }
        for (_, s) in self.shared.open.lock().drain() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for ClientService {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, peer)) => {
                if shared.open.lock().len() >= shared.cfg.connections_max {
                    shared.counters.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%peer, "refusing a client connection: too many open");
                    drop(stream);
                    continue;
                }
                if let Err(e) = serve_connection(shared, stream) {
                    tracing::warn!(%peer, error = %e, "cannot serve a client connection");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accepting a client failed");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

fn serve_connection(shared: &Arc<Shared>, stream: TcpStream) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    let writer = stream.try_clone()?;
    let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    shared.open.lock().insert(id, stream.try_clone()?);
    shared.counters.connections.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = unbounded();
    let store_id = shared.store.store_id();
    std::thread::Builder::new()
        .name(format!("store-{store_id}-client-w"))
        .spawn(move || write_loop(writer, &rx))?;
    let s = Arc::clone(shared);
    std::thread::Builder::new()
        .name(format!("store-{store_id}-client-r"))
        .spawn(move || {
            read_loop(&s, stream, &tx);
            if let Some(c) = s.open.lock().remove(&id) {
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        })?;
    Ok(())
}

/// Writes answers as they come, several per write when they queue up.
fn write_loop(mut stream: TcpStream, answers: &Receiver<Vec<u8>>) {
    let mut buf = Vec::new();
    while let Ok(first) = answers.recv() {
        buf.clear();
        buf.extend_from_slice(&first);
        while buf.len() < 1 << 20 {
            let Ok(more) = answers.try_recv() else { break };
            buf.extend_from_slice(&more);
        }
        if stream.write_all(&buf).is_err() {
            return;
        }
    }
}

fn read_loop(shared: &Arc<Shared>, mut stream: TcpStream, answers: &Sender<Vec<u8>>) {
    let inflight = Arc::new(AtomicUsize::new(0));
    let read = read_messages(
        &mut stream,
        FrameKind::ClientRequest,
        shared.cfg.frame_bytes_max,
        |req: Request| handle(shared, req, answers, &inflight),
    );
    if let Err(reason) = read {
        shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%reason, "rejected a client frame; closing its connection");
    }
}

fn send_answer(answers: &Sender<Vec<u8>>, id: u64, result: response::Result) {
    let resp = Response {
        id,
        result: Some(result),
    };
    let mut frame = Vec::new();
    encode_into(FrameKind::ClientResponse, &resp.encode_to_vec(), &mut frame);
    let _ = answers.send(frame);
}

fn handle(
    shared: &Arc<Shared>,
    req: Request,
    answers: &Sender<Vec<u8>>,
    inflight: &Arc<AtomicUsize>,
) {
    shared.counters.requests.fetch_add(1, Ordering::Relaxed);
    let id = req.id;
    let fail = |e: Error| send_answer(answers, id, response::Result::Error(error_to_wire(&e)));
    let Some(cmd) = req.cmd else {
        return fail(Error::InvalidRequest("a request without a command".into()));
    };
    let admitted = || {
        if inflight.fetch_add(1, Ordering::AcqRel) < shared.cfg.inflight_per_connection_max {
            return true;
        }
        inflight.fetch_sub(1, Ordering::AcqRel);
        shared.counters.busy.fetch_add(1, Ordering::Relaxed);
        fail(Error::ServerIsBusy(
            "too many requests in flight on this connection".into(),
        ));
        false
    };
    let (tx, done) = (answers.clone(), Arc::clone(inflight));
    match cmd {
        Cmd::Regions(_) => {
            let regions = RegionsResponse {
                store_id: shared.store.store_id(),
                regions: shared.store.regions(),
            };
            send_answer(answers, id, response::Result::Regions(regions));
        }
        Cmd::Write(cmd) if admitted() => shared.store.write(
            cmd,
            Box::new(move |r| {
                done.fetch_sub(1, Ordering::AcqRel);
                let result = match r {
                    Ok(()) => response::Result::Write(WriteResponse {}),
                    Err(e) => response::Result::Error(error_to_wire(&e)),
                };
                send_answer(&tx, id, result);
            }),
        ),
        Cmd::Read(r) if admitted() => match read_from_wire(r.req) {
            Ok(read) => shared.store.read(
                r.region_id,
                r.region_epoch.unwrap_or_default(),
                read,
                Box::new(move |res| {
                    done.fetch_sub(1, Ordering::AcqRel);
                    let result = match res {
                        Ok(a) => answer_to_wire(a),
                        Err(e) => response::Result::Error(error_to_wire(&e)),
                    };
                    send_answer(&tx, id, result);
                }),
            ),
            Err(e) => {
                done.fetch_sub(1, Ordering::AcqRel);
                fail(e);
            }
        },
        Cmd::Write(_) | Cmd::Read(_) => {} // refused as busy
    }
}
