//! The client's side of the network: a [`RemoteStore`] is a
//! [`StoreHandle`] over one connection to a store's client service, shared
//! by every thread of the client (requests carry ids, answers may come in
//! any order); [`RemoteStores`] is the [`StoreDirectory`] of a cluster
//! reached by address.
//!
//! A connection that fails fails every request waiting on it with
//! `StoreStopped`, which makes the client try another replica; the next
//! request reconnects.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Sender, bounded};
use flotilla_proto::clientpb::{
    ReadRequest as WireRead, RegionsRequest, RegionsResponse, Request, Response, request::Cmd,
    response,
};
use flotilla_proto::cmdpb::WriteCommand;
use flotilla_proto::metapb::{Region, RegionEpoch};
use flotilla_raftstore::{Callback, Error, ReadRequest, ReadResponse, StoreDirectory, StoreHandle};
use parking_lot::{Mutex, RwLock};
use prost::Message as _;

use super::wire::{error_from_wire, read_messages, read_to_wire};
use crate::frame::{FrameKind, encode_into};

/// How a remote client connects.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// Give up connecting after this long.
    pub connect_timeout: Duration,
    /// Wait this long for a store's region list.
    pub regions_timeout: Duration,
    /// The largest answer accepted.
    pub frame_bytes_max: u64,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig {
            connect_timeout: Duration::from_secs(2),
            regions_timeout: Duration::from_secs(5),
            frame_bytes_max: 64 << 20,
        }
    }
}

enum Pending {
    Write(Callback<()>),
    Read(Callback<ReadResponse>),
    Regions(Sender<Result<RegionsResponse, Error>>),
}

impl Pending {
    fn fail(self, e: Error) {
        match self {
            Pending::Write(cb) => cb(Err(e)),
            Pending::Read(cb) => cb(Err(e)),
            Pending::Regions(tx) => {
                let _ = tx.send(Err(e));
            }
        }
    }

    fn complete(self, result: Option<response::Result>) {
        use response::Result as R;
        let unexpected = || Error::InvalidRequest("the store answered another kind".into());
        match (self, result) {
            (p, Some(R::Error(e))) => p.fail(error_from_wire(e)),
            (Pending::Write(cb), Some(R::Write(_))) => cb(Ok(())),
            (Pending::Read(cb), Some(R::Get(g))) => {
                cb(Ok(ReadResponse::Value(g.found.then_some(g.value))));
            }
            (Pending::Read(cb), Some(R::Scan(s))) => cb(Ok(ReadResponse::Pairs {
                pairs: s.pairs.into_iter().map(|p| (p.key, p.value)).collect(),
                region_end: s.region_end,
            })),
            (Pending::Regions(tx), Some(R::Regions(r))) => {
                let _ = tx.send(Ok(r));
            }
            (p, _) => p.fail(unexpected()),
        }
    }
}

struct Conn {
    writer: Mutex<TcpStream>,
    pending: Mutex<HashMap<u64, Pending>>,
    next_id: AtomicU64,
    dead: AtomicBool,
}

impl Conn {
    /// Marks the connection dead and fails everything waiting on it.
    fn kill(&self, store_id: u64) {
        self.dead.store(true, Ordering::SeqCst);
        let _ = self.writer.lock().shutdown(std::net::Shutdown::Both);
        let waiting: Vec<Pending> = self.pending.lock().drain().map(|(_, p)| p).collect();
        for p in waiting {
            p.fail(Error::StoreStopped(store_id));
        }
    }
}

/// One store reached over the network.
pub struct RemoteStore {
    /// Learned from the store's first answer.
    store_id: Arc<AtomicU64>,
    addr: SocketAddr,
    cfg: RemoteConfig,
    conn: Mutex<Option<Arc<Conn>>>,
}

impl std::fmt::Debug for RemoteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStore")
            .field("store_id", &self.store_id.load(Ordering::Relaxed))
            .field("addr", &self.addr)
            .finish()
    }
}

impl RemoteStore {
    /// Connects to the client service at `addr` and learns which store it
    /// is.
    pub fn connect(addr: SocketAddr, cfg: RemoteConfig) -> Result<Arc<RemoteStore>, Error> {
        let store = Arc::new(RemoteStore {
            store_id: Arc::new(AtomicU64::new(0)),
            addr,
            cfg,
            conn: Mutex::new(None),
        });
        let info = store.regions_call()?;
        store.store_id.store(info.store_id, Ordering::Relaxed);
        Ok(store)
    }

    /// Where the store's client service listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn id(&self) -> u64 {
        self.store_id.load(Ordering::Relaxed)
    }

    /// The live connection, made if there is none.
    fn conn(&self) -> Result<Arc<Conn>, Error> {
        let mut slot = self.conn.lock();
        if let Some(c) = slot.as_ref().filter(|c| !c.dead.load(Ordering::SeqCst)) {
            return Ok(Arc::clone(c));
        }
        let stopped = |_| Error::StoreStopped(self.id());
        let stream =
            TcpStream::connect_timeout(&self.addr, self.cfg.connect_timeout).map_err(stopped)?;
        stream.set_nodelay(true).map_err(stopped)?;
        let reader = stream.try_clone().map_err(stopped)?;
        let conn = Arc::new(Conn {
            writer: Mutex::new(stream),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            dead: AtomicBool::new(false),
        });
        let (c, store_id, max) = (
            Arc::clone(&conn),
            Arc::clone(&self.store_id),
            self.cfg.frame_bytes_max,
        );
        std::thread::Builder::new()
            .name(format!("client-{}", self.addr))
            .spawn(move || {
                read_answers(&c, reader, max);
                c.kill(store_id.load(Ordering::Relaxed));
            })
            .map_err(stopped)?;
        *slot = Some(Arc::clone(&conn));
        Ok(conn)
    }

    /// Sends one request; `pending` hears the answer or the failure.
    fn call(&self, cmd: Cmd, pending: Pending) {
        let conn = match self.conn() {
            Ok(c) => c,
            Err(e) => return pending.fail(e),
        };
        let id = conn.next_id.fetch_add(1, Ordering::Relaxed);
        let req = Request { id, cmd: Some(cmd) };
        let mut frame = Vec::new();
        encode_into(FrameKind::ClientRequest, &req.encode_to_vec(), &mut frame);
        conn.pending.lock().insert(id, pending);
        if conn.writer.lock().write_all(&frame).is_err() {
            conn.kill(self.id());
        }
    }

    fn regions_call(&self) -> Result<RegionsResponse, Error> {
        let (tx, rx) = bounded(1);
        self.call(Cmd::Regions(RegionsRequest {}), Pending::Regions(tx));
        rx.recv_timeout(self.cfg.regions_timeout)
            .unwrap_or(Err(Error::Timeout))
    }
}

impl Drop for RemoteStore {
    fn drop(&mut self) {
        if let Some(c) = self.conn.lock().take() {
            let _ = c.writer.lock().shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Reads answers until the connection ends or sends garbage.
fn read_answers(conn: &Conn, mut stream: TcpStream, frame_bytes_max: u64) {
    let read = read_messages(
        &mut stream,
        FrameKind::ClientResponse,
        frame_bytes_max,
        |resp: Response| {
            let waiting = conn.pending.lock().remove(&resp.id);
            if let Some(p) = waiting {
                p.complete(resp.result);
            }
        },
    );
    if let Err(reason) = read {
        tracing::warn!(%reason, "a bad answer from the store; closing");
    }
}

impl StoreHandle for RemoteStore {
    fn store_id(&self) -> u64 {
        self.id()
    }

    fn write(&self, cmd: WriteCommand, cb: Callback<()>) {
        self.call(Cmd::Write(cmd), Pending::Write(cb));
    }

    fn read(
        &self,
        region_id: u64,
        epoch: RegionEpoch,
        req: ReadRequest,
        cb: Callback<ReadResponse>,
    ) {
        let read = WireRead {
            region_id,
            region_epoch: Some(epoch),
            req: Some(read_to_wire(req)),
        };
        self.call(Cmd::Read(read), Pending::Read(cb));
    }

    fn regions(&self) -> Vec<Region> {
        self.regions_call().map(|r| r.regions).unwrap_or_default()
    }
}

/// The stores of a cluster, reached by their client addresses.
#[derive(Debug, Default)]
pub struct RemoteStores {
    stores: RwLock<BTreeMap<u64, Arc<RemoteStore>>>,
}

impl RemoteStores {
    /// Connects to every address and learns each store's id.
    pub fn connect(addrs: &[SocketAddr], cfg: &RemoteConfig) -> Result<RemoteStores, Error> {
        let mut stores = BTreeMap::new();
        for &addr in addrs {
            let s = RemoteStore::connect(addr, cfg.clone())?;
            stores.insert(s.store_id(), s);
        }
        Ok(RemoteStores {
            stores: RwLock::new(stores),
        })
    }
}

impl StoreDirectory for RemoteStores {
    fn store(&self, store_id: u64) -> Option<Arc<dyn StoreHandle>> {
        let s = self.stores.read().get(&store_id).cloned()?;
        Some(s)
    }

    fn store_ids(&self) -> Vec<u64> {
        self.stores.read().keys().copied().collect()
    }
}
