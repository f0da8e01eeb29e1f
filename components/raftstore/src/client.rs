//! The embedded client: `put`, `delete`, `get`, `scan` and atomic
//! multi-key writes by key, with routing, leader redirects, epoch refresh,
//! bounded retries and deadlines. A database calls these and never sees a
//! raft message.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::ops::Bound;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{RecvTimeoutError, Sender, bounded, unbounded};
use flotilla_proto::cmdpb::{
    CommandHeader, DeleteRequest, PutRequest, WriteCommand, WriteRequest, write_request::Cmd,
};
use flotilla_proto::metapb::{Region, RegionEpoch};
use parking_lot::RwLock;

use crate::errors::{Error, Result};
use crate::msg::{Callback, ReadRequest, ReadResponse};
use crate::store::StoreRouter;

/// One store as the client sees it: where it sends a region's writes and
/// reads, and whom it asks for the regions it hosts. A [`StoreRouter`] in
/// the same process; a connection over the network otherwise.
pub trait StoreHandle: Send + Sync + fmt::Debug {
    /// The store's id.
    fn store_id(&self) -> u64;
    /// Proposes `cmd` to the region in its header; `cb` gets the outcome
    /// once it is applied at the leader.
    fn write(&self, cmd: WriteCommand, cb: Callback<()>);
    /// Reads from a region, linearizably, at its leader.
    fn read(
        &self,
        region_id: u64,
        epoch: RegionEpoch,
        req: ReadRequest,
        cb: Callback<ReadResponse>,
    );
    /// The regions the store hosts (empty if it cannot be asked).
    fn regions(&self) -> Vec<Region>;
}

impl StoreHandle for StoreRouter {
    fn store_id(&self) -> u64 {
        StoreRouter::store_id(self)
    }
    fn write(&self, cmd: WriteCommand, cb: Callback<()>) {
        StoreRouter::write(self, cmd, cb);
    }
    fn read(
        &self,
        region_id: u64,
        epoch: RegionEpoch,
        req: ReadRequest,
        cb: Callback<ReadResponse>,
    ) {
        StoreRouter::read(self, region_id, epoch, req, cb);
    }
    fn regions(&self) -> Vec<Region> {
        StoreRouter::regions(self)
    }
}

/// Where the client finds stores. In one process, [`LocalStores`]; over
/// the network, the transport's client implements the same trait.
pub trait StoreDirectory: Send + Sync + fmt::Debug {
    /// The store with this id, if reachable.
    fn store(&self, store_id: u64) -> Option<Arc<dyn StoreHandle>>;
    /// Every store the directory knows.
    fn store_ids(&self) -> Vec<u64>;
}

/// The stores of this process.
#[derive(Debug, Default)]
pub struct LocalStores {
    stores: RwLock<BTreeMap<u64, StoreRouter>>,
}

impl LocalStores {
    /// Adds (or replaces, after a restart) a store.
    pub fn insert(&self, router: StoreRouter) {
        self.stores.write().insert(router.store_id(), router);
    }

    /// Forgets a store (it stopped).
    pub fn remove(&self, store_id: u64) {
        self.stores.write().remove(&store_id);
    }
}

impl StoreDirectory for LocalStores {
    fn store(&self, store_id: u64) -> Option<Arc<dyn StoreHandle>> {
        let router = self.stores.read().get(&store_id).cloned()?;
        Some(Arc::new(router))
    }

    fn store_ids(&self) -> Vec<u64> {
        self.stores.read().keys().copied().collect()
    }
}

/// How hard a client tries.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Wait for one attempt's answer at most this long.
    pub attempt_timeout: Duration,
    /// Give up on an operation after this long.
    pub deadline: Duration,
    /// Attempts per operation at most.
    pub attempts_max: usize,
    /// First pause before retrying where no better target is known (no
    /// leader yet, a busy store); it doubles on each such retry.
    pub backoff: Duration,
    /// The longest pause between retries.
    pub backoff_max: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            attempt_timeout: Duration::from_secs(2),
            deadline: Duration::from_secs(10),
            attempts_max: 64,
            backoff: Duration::from_millis(10),
            backoff_max: Duration::from_millis(500),
        }
    }
}

/// One change of a multi-key write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    /// Sets a key.
    Put(Bytes, Bytes),
    /// Removes a key.
    Delete(Bytes),
}

impl Mutation {
    fn key(&self) -> &Bytes {
        match self {
            Mutation::Put(k, _) | Mutation::Delete(k) => k,
        }
    }
}

#[derive(Debug, Default)]
struct Routes {
    /// Regions by start key. Invariant: ranges do not overlap.
    by_start: BTreeMap<Bytes, Region>,
    /// The store believed to lead each region.
    leaders: HashMap<u64, u64>,
}

impl Routes {
    fn locate(&self, key: &[u8]) -> Option<Region> {
        let (_, r) = self
            .by_start
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(key)))
            .next_back()?;
        (r.end_key.is_empty() || key < r.end_key.as_ref()).then(|| r.clone())
    }

    fn version(r: &Region) -> u64 {
        r.region_epoch.as_ref().map_or(0, |e| e.version)
    }

    /// Takes `region` if it is at least as new as what overlaps it.
    fn update(&mut self, region: Region) {
        let overlapping: Vec<Bytes> = self
            .by_start
            .iter()
            .filter(|(_, r)| {
                (region.end_key.is_empty() || r.start_key < region.end_key)
                    && (r.end_key.is_empty() || region.start_key < r.end_key)
            })
            .map(|(k, _)| k.clone())
            .collect();
        if overlapping
            .iter()
            .any(|k| Self::version(&self.by_start[k]) > Self::version(&region))
        {
            return;
        }
        for k in overlapping {
            self.by_start.remove(&k);
        }
        self.by_start.insert(region.start_key.clone(), region);
    }
}

/// The embedded client. Cheap to share across threads.
#[derive(Debug)]
pub struct Client {
    stores: Arc<dyn StoreDirectory>,
    routes: RwLock<Routes>,
    cfg: ClientConfig,
    /// Where asynchronous operations that failed their first attempt go to
    /// finish on the blocking path; started on first use.
    retries: OnceLock<Sender<Box<dyn FnOnce() + Send>>>,
}

/// Threads that finish asynchronous operations whose first attempt failed.
const RETRY_THREADS: usize = 16;

impl Client {
    /// A client over `stores`.
    pub fn new(stores: Arc<dyn StoreDirectory>, cfg: ClientConfig) -> Self {
        Client {
            stores,
            routes: RwLock::new(Routes::default()),
            cfg,
            retries: OnceLock::new(),
        }
    }

    /// Sets `key` to `value` without blocking the caller; `done` hears the
    /// outcome (on a store's or the client's thread: it must not block).
    /// The first attempt goes straight to the region's cached leader; if it
    /// fails (or the region is not cached), the client learns what it can
    /// from the error and finishes the operation on the blocking path, with
    /// all its retries, backoff and deadline, on a thread of its own. Like
    /// [`put`](Self::put), a retried write is applied at least once.
    pub fn put_async(self: &Arc<Self>, key: Bytes, value: Bytes, done: Callback<()>) {
        let Some((store_id, store, region)) = self.cached_target(&key) else {
            return self.retry_later(move |c| done(c.put(key, value)));
        };
        let cmd = WriteCommand {
            header: Some(CommandHeader {
                region_id: region.id,
                region_epoch: region.region_epoch,
            }),
            requests: vec![WriteRequest {
                cmd: Some(Cmd::Put(PutRequest {
                    key: key.clone(),
                    value: value.clone(),
                })),
            }],
        };
        let client = Arc::clone(self);
        store.write(
            cmd,
            Box::new(move |r| match r {
                Ok(()) => done(Ok(())),
                Err(e) if retryable(&e) => {
                    client.learn(&region, store_id, &e);
                    client.retry_later(move |c| done(c.put(key, value)));
                }
                Err(e) => done(Err(e)),
            }),
        );
    }

    /// Reads `key` without blocking the caller, as [`put_async`](Self::put_async)
    /// writes.
    pub fn get_async(self: &Arc<Self>, key: Bytes, done: Callback<Option<Bytes>>) {
        let Some((store_id, store, region)) = self.cached_target(&key) else {
            return self.retry_later(move |c| done(c.get(key)));
        };
        let client = Arc::clone(self);
        let req = ReadRequest::Get { key: key.clone() };
        let epoch = region.region_epoch.unwrap_or_default();
        store.read(
            region.id,
            epoch,
            req,
            Box::new(move |r| match r {
                Ok(ReadResponse::Value(v)) => done(Ok(v)),
                Ok(ReadResponse::Pairs { .. }) => done(Err(Error::InvalidRequest(
                    "a get answered with pairs".into(),
                ))),
                Err(e) if retryable(&e) => {
                    client.learn(&region, store_id, &e);
                    client.retry_later(move |c| done(c.get(key)));
                }
                Err(e) => done(Err(e)),
            }),
        );
    }

    /// The cached region holding `key` and the store to try first, if the
    /// cache knows them.
    fn cached_target(&self, key: &[u8]) -> Option<(u64, Arc<dyn StoreHandle>, Region)> {
        let region = self.routes.read().locate(key)?;
        let (id, store) = self.pick_store(&region, &HashSet::new())?;
        Some((id, store, region))
    }

    /// What a failed attempt at `store_id` teaches the route cache.
    fn learn(&self, region: &Region, store_id: u64, err: &Error) {
        match err {
            Error::NotLeader {
                leader: Some(p), ..
            } if p.store_id != store_id => {
                self.routes.write().leaders.insert(region.id, p.store_id);
            }
            Error::EpochNotMatch { current, .. } => {
                self.routes.write().update((**current).clone());
            }
            _ => {
                self.routes.write().leaders.remove(&region.id);
            }
        }
    }

    /// Runs `job` on one of the client's retry threads.
    fn retry_later(self: &Arc<Self>, job: impl FnOnce(&Client) + Send + 'static) {
        let tx = self.retries.get_or_init(|| {
            let (tx, rx) = unbounded::<Box<dyn FnOnce() + Send>>();
            for i in 0..RETRY_THREADS {
                let rx = rx.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("client-retry-{i}"))
                    .spawn(move || {
                        while let Ok(job) = rx.recv() {
                            job();
                        }
                    });
                if let Err(e) = spawned {
                    tracing::error!(error = %e, "cannot start a client retry thread");
                }
            }
            tx
        });
        let client = Arc::clone(self);
        let job: Box<dyn FnOnce() + Send> = Box::new(move || job(&client));
        if let Err(e) = tx.send(job) {
            // No retry thread could start: finish on the caller's thread.
            (e.into_inner())();
        }
    }

    /// Sets `key` to `value`.
    pub fn put(&self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Result<()> {
        self.write(vec![Mutation::Put(key.into(), value.into())])
    }

    /// Removes `key`.
    pub fn delete(&self, key: impl Into<Bytes>) -> Result<()> {
        self.write(vec![Mutation::Delete(key.into())])
    }

    /// Applies `mutations` atomically, in order. Every key must be in one
    /// region (`InvalidRequest` otherwise, and nothing is written).
    pub fn write(&self, mutations: Vec<Mutation>) -> Result<()> {
        let first = mutations
            .first()
            .ok_or_else(|| Error::InvalidRequest("a write with no mutation".into()))?
            .key()
            .clone();
        let requests: Vec<WriteRequest> = mutations
            .into_iter()
            .map(|m| WriteRequest {
                cmd: Some(match m {
                    Mutation::Put(key, value) => Cmd::Put(PutRequest { key, value }),
                    Mutation::Delete(key) => Cmd::Delete(DeleteRequest { key }),
                }),
            })
            .collect();
        self.with_region(&first, |router, region, cb| {
            let keys = requests.iter().filter_map(|r| match &r.cmd {
                Some(Cmd::Put(p)) => Some(&p.key),
                Some(Cmd::Delete(d)) => Some(&d.key),
                None => None,
            });
            if let Some(k) = keys.into_iter().find(|k| !in_region(region, k)) {
                let _ = k;
                return cb(Err(Error::InvalidRequest(
                    "an atomic write must stay within one region".into(),
                )));
            }
            let cmd = WriteCommand {
                header: Some(CommandHeader {
                    region_id: region.id,
                    region_epoch: region.region_epoch,
                }),
                requests: requests.clone(),
            };
            router.write(cmd, cb);
        })
    }

    /// The value of `key`, read linearizably.
    pub fn get(&self, key: impl Into<Bytes>) -> Result<Option<Bytes>> {
        let key = key.into();
        let resp = self.with_region(&key, |router, region, cb| {
            let req = ReadRequest::Get { key: key.clone() };
            router.read(region.id, region.region_epoch.unwrap_or_default(), req, cb);
        })?;
        match resp {
            ReadResponse::Value(v) => Ok(v),
            ReadResponse::Pairs { .. } => {
                Err(Error::InvalidRequest("a get answered with pairs".into()))
            }
        }
    }

    /// Up to `limit` pairs with keys in `[start, end)` (`end` empty: to the
    /// end of the key space), in key order, across regions. Each region's
    /// part is read linearizably; the whole is not one snapshot.
    pub fn scan(
        &self,
        start: impl Into<Bytes>,
        end: impl Into<Bytes>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>> {
        let (mut start, end) = (start.into(), end.into());
        let mut out = Vec::new();
        while out.len() < limit {
            let req = ReadRequest::Scan {
                start: start.clone(),
                end: end.clone(),
                limit: limit - out.len(),
            };
            let resp = self.with_region(&start, |router, region, cb| {
                router.read(
                    region.id,
                    region.region_epoch.unwrap_or_default(),
                    req.clone(),
                    cb,
                );
            })?;
            let ReadResponse::Pairs { pairs, region_end } = resp else {
                return Err(Error::InvalidRequest("a scan answered with a value".into()));
            };
            out.extend(pairs);
            let done = region_end.is_empty() || (!end.is_empty() && region_end >= end);
            if done {
                break;
            }
            start = region_end;
        }
        out.truncate(limit);
        Ok(out)
    }

    /// The region holding `key`, from the cache or, on a miss, from the
    /// stores.
    pub fn locate(&self, key: &[u8]) -> Result<Region> {
        if let Some(r) = self.routes.read().locate(key) {
            return Ok(r);
        }
        self.refresh();
        self.routes
            .read()
            .locate(key)
            .ok_or_else(|| Error::InvalidRequest("no region holds the key".into()))
    }

    /// Reloads the region map from every reachable store.
    pub fn refresh(&self) {
        let mut routes = self.routes.write();
        for id in self.stores.store_ids() {
            if let Some(s) = self.stores.store(id) {
                for r in s.regions() {
                    routes.update(r);
                }
            }
        }
    }

    /// Runs one region operation with retries: `op` sends the request to a
    /// store for the region; its answer steers the next attempt.
    fn with_region<T: Send + 'static>(
        &self,
        key: &[u8],
        op: impl Fn(&dyn StoreHandle, &Region, Callback<T>),
    ) -> Result<T> {
        let deadline = Instant::now() + self.cfg.deadline;
        let mut tried: HashSet<u64> = HashSet::new();
        let mut last = Error::Timeout;
        let mut backoff = self.cfg.backoff;
        let mut pause = |deadline: Instant| {
            std::thread::sleep(backoff.min(deadline.saturating_duration_since(Instant::now())));
            backoff = (backoff * 2).min(self.cfg.backoff_max);
        };
        for _ in 0..self.cfg.attempts_max {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let region = self.locate(key)?;
            let Some((store_id, router)) = self.pick_store(&region, &tried) else {
                tried.clear();
                pause(deadline);
                continue;
            };
            let (tx, rx) = bounded(1);
            op(
                router.as_ref(),
                &region,
                Box::new(move |r| {
                    let _ = tx.send(r);
                }),
            );
            let wait = self.cfg.attempt_timeout.min(deadline - now);
            let err = match rx.recv_timeout(wait) {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => e,
                Err(RecvTimeoutError::Timeout) => Error::Timeout,
                Err(RecvTimeoutError::Disconnected) => Error::StoreStopped(store_id),
            };
            match &err {
                Error::NotLeader {
                    leader: Some(p), ..
                } if p.store_id != store_id => {
                    tried.insert(store_id);
                    if tried.contains(&p.store_id) {
                        // Hints going round in circles: an election is on.
                        tried.clear();
                        pause(deadline);
                    }
                    self.routes.write().leaders.insert(region.id, p.store_id);
                }
                Error::NotLeader { .. }
                | Error::Timeout
                | Error::StoreStopped(_)
                | Error::ServerIsBusy(_)
                | Error::StaleCommand => {
                    self.routes.write().leaders.remove(&region.id);
                    tried.insert(store_id);
                    if matches!(err, Error::NotLeader { .. } | Error::ServerIsBusy(_)) {
                        pause(deadline);
                    }
                }
                Error::EpochNotMatch { current, .. } => {
                    self.routes.write().update((**current).clone());
                }
                Error::RegionNotFound { .. } | Error::KeyNotInRegion { .. } => {
                    self.refresh();
                    tried.insert(store_id);
                }
                _ => return Err(err),
            }
            last = err;
        }
        Err(match last {
            Error::NotLeader { .. } | Error::StaleCommand => Error::Timeout,
            e => e,
        })
    }

    /// The leader hint if not tried yet, else the first untried replica.
    fn pick_store(
        &self,
        region: &Region,
        tried: &HashSet<u64>,
    ) -> Option<(u64, Arc<dyn StoreHandle>)> {
        let hint = self.routes.read().leaders.get(&region.id).copied();
        let candidates = hint
            .into_iter()
            .chain(region.peers.iter().map(|p| p.store_id));
        for id in candidates {
            if tried.contains(&id) {
                continue;
            }
            if let Some(r) = self.stores.store(id) {
                return Some((id, r));
            }
        }
        None
    }
}

/// Errors after which another attempt may succeed.
fn retryable(e: &Error) -> bool {
    matches!(
        e,
        Error::NotLeader { .. }
            | Error::Timeout
            | Error::StoreStopped(_)
            | Error::ServerIsBusy(_)
            | Error::StaleCommand
            | Error::EpochNotMatch { .. }
            | Error::RegionNotFound { .. }
            | Error::KeyNotInRegion { .. }
    )
}

fn in_region(region: &Region, key: &[u8]) -> bool {
    key >= region.start_key.as_ref() && (region.end_key.is_empty() || key < region.end_key.as_ref())
}

#[cfg(test)]
mod tests {
    use flotilla_proto::metapb::RegionEpoch;

    use super::*;

    fn region(id: u64, start: &'static str, end: &'static str, version: u64) -> Region {
        Region {
            id,
            start_key: Bytes::from_static(start.as_bytes()),
            end_key: Bytes::from_static(end.as_bytes()),
            region_epoch: Some(RegionEpoch {
                conf_ver: 1,
                version,
            }),
            peers: Vec::new(),
        }
    }

    #[test]
    fn routes_locate_a_key_in_the_region_whose_range_holds_it() {
        let mut routes = Routes::default();
        routes.update(region(1, "", "g", 1));
        routes.update(region(2, "g", "p", 1));
        assert_eq!(routes.locate(b"a").map(|r| r.id), Some(1));
        assert_eq!(
            routes.locate(b"g").map(|r| r.id),
            Some(2),
            "start keys are inclusive"
        );
        assert_eq!(routes.locate(b"ozz").map(|r| r.id), Some(2));
        assert_eq!(
            routes.locate(b"p"),
            None,
            "end keys are exclusive; nothing covers p.."
        );
    }

    #[test]
    fn a_newer_region_replaces_what_it_overlaps_and_an_older_one_is_ignored() {
        let mut routes = Routes::default();
        routes.update(region(1, "", "m", 1));
        routes.update(region(2, "m", "", 1));
        // Region 1 split at "f" (version 2): the cache learns the new shape.
        routes.update(region(1, "", "f", 2));
        assert_eq!(routes.locate(b"a").map(|r| r.id), Some(1));
        assert_eq!(routes.locate(b"g"), None, "the old range beyond f is gone");
        assert_eq!(routes.locate(b"x").map(|r| r.id), Some(2));
        // A stale copy of the pre-split region does not come back.
        routes.update(region(1, "", "m", 1));
        assert_eq!(routes.locate(b"g"), None);
    }
}
