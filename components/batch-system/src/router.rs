//! The router: FSM id to mailbox, plus the control FSM's mailbox.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use crate::fsm::Fsm;
use crate::mailbox::{Mailbox, Schedule, SendError};
use crate::metrics::Stats;

/// `Mailbox::send` or `Mailbox::force_send`.
type Deliver<N> =
    fn(&Mailbox<N>, <N as Fsm>::Message) -> Result<(), SendError<<N as Fsm>::Message>>;

/// State every router clone and poller shares.
pub(crate) struct Shared {
    /// Set once, when shutdown begins; routers refuse sends from then on.
    stopping: AtomicBool,
    pub(crate) stats: Arc<Stats>,
}

impl Shared {
    pub(crate) fn new() -> Self {
        Shared {
            stopping: AtomicBool::new(false),
            stats: Arc::new(Stats::default()),
        }
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    pub(crate) fn begin_stopping(&self) {
        self.stopping.store(true, Ordering::Release);
    }
}

/// The registered normal FSMs.
struct Normals<N: Fsm> {
    mailboxes: HashMap<u64, Mailbox<N>>,
    /// Set by shutdown. Invariant: once set, `mailboxes` stays empty, so no
    /// FSM can be registered past the final close.
    closed: bool,
}

/// Routes messages to FSMs by id: one normal FSM per `u64` id, plus one
/// control FSM for store-wide work.
///
/// Clone it freely, one clone per thread: each clone keeps a small cache of
/// mailboxes (up to `router_cache_capacity`) so that a hot sender skips the
/// shared map's lock. That cache makes a `Router` `Send` but not `Sync`.
pub struct Router<N: Fsm, C: Fsm> {
    normals: Arc<Mutex<Normals<N>>>,
    cache: RefCell<HashMap<u64, Mailbox<N>>>,
    cache_capacity: usize,
    control: Mailbox<C>,
    scheduler: Arc<dyn Schedule<N>>,
    mailbox_capacity: usize,
    shared: Arc<Shared>,
}

impl<N: Fsm, C: Fsm> Clone for Router<N, C> {
    fn clone(&self) -> Self {
        Router {
            normals: Arc::clone(&self.normals),
            cache: RefCell::new(HashMap::new()),
            cache_capacity: self.cache_capacity,
            control: self.control.clone(),
            scheduler: Arc::clone(&self.scheduler),
            mailbox_capacity: self.mailbox_capacity,
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<N: Fsm, C: Fsm> fmt::Debug for Router<N, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("normals", &self.len())
            .field("stopping", &self.shared.is_stopping())
            .finish()
    }
}

impl<N: Fsm, C: Fsm> Router<N, C> {
    pub(crate) fn new(
        control: Mailbox<C>,
        scheduler: Arc<dyn Schedule<N>>,
        mailbox_capacity: usize,
        cache_capacity: usize,
        shared: Arc<Shared>,
    ) -> Self {
        Router {
            normals: Arc::new(Mutex::new(Normals {
                mailboxes: HashMap::new(),
                closed: false,
            })),
            cache: RefCell::new(HashMap::new()),
            cache_capacity,
            control,
            scheduler,
            mailbox_capacity,
            shared,
        }
    }

    /// Registers `fsm` under `id`, parked idle until its first message. An
    /// FSM already under `id` is closed and replaced. After shutdown the FSM
    /// is dropped at once and its id stays unknown.
    pub fn register(&self, id: u64, fsm: Box<N>) {
        self.register_all([(id, fsm)]);
    }

    /// Registers many FSMs under one lock acquisition; see
    /// [`register`](Self::register).
    pub fn register_all(&self, fsms: impl IntoIterator<Item = (u64, Box<N>)>) {
        let mut replaced = Vec::new();
        let mut refused = Vec::new();
        {
            let mut normals = self.normals.lock();
            for (id, fsm) in fsms {
                if normals.closed {
                    refused.push(fsm);
                    continue;
                }
                let mailbox = self.new_mailbox(id, fsm);
                replaced.extend(normals.mailboxes.insert(id, mailbox));
            }
        }
        // Close and drop outside the lock: FSM and message destructors are
        // user code and may use a router.
        let mut cache = self.cache.borrow_mut();
        for old in replaced {
            cache.remove(&old.id());
            old.close();
        }
        drop(cache);
        drop(refused);
    }

    fn new_mailbox(&self, id: u64, fsm: Box<N>) -> Mailbox<N> {
        let scheduler = Arc::clone(&self.scheduler);
        let stats = Arc::clone(&self.shared.stats);
        Mailbox::new(id, fsm, self.mailbox_capacity, scheduler, stats)
    }

    /// Unregisters and closes the FSM under `id`: it is dropped (now if idle,
    /// else by the poller at the end of its round), messages still waiting are
    /// counted as dropped, and later sends answer `NotFound` (through the
    /// router) or `Disconnected` (through a held [`Mailbox`]). Returns whether
    /// an FSM was registered under `id`.
    pub fn close(&self, id: u64) -> bool {
        let mailbox = self.normals.lock().mailboxes.remove(&id);
        self.cache.borrow_mut().remove(&id);
        match mailbox {
            Some(mailbox) => {
                mailbox.close();
                true
            }
            None => false,
        }
    }

    /// Unregisters `mailbox` if it is still the one under its id (the id may
    /// have been registered anew) and closes it, dropping `fsm`.
    pub(crate) fn close_owned(&self, mailbox: &Mailbox<N>, fsm: Option<Box<N>>) {
        let removed = {
            let mut normals = self.normals.lock();
            match normals.mailboxes.get(&mailbox.id()) {
                Some(current) if current.same(mailbox) => normals.mailboxes.remove(&mailbox.id()),
                _ => None,
            }
        };
        self.cache.borrow_mut().remove(&mailbox.id());
        mailbox.close_owned(fsm);
        drop(removed);
    }

    /// Closes every FSM, the control FSM included, and refuses registrations
    /// from now on. Called by shutdown once the pollers are gone.
    pub(crate) fn close_all(&self) {
        let mailboxes = {
            let mut normals = self.normals.lock();
            normals.closed = true;
            std::mem::take(&mut normals.mailboxes)
        };
        self.cache.borrow_mut().clear();
        for mailbox in mailboxes.into_values() {
            mailbox.close();
        }
        self.control.close();
    }

    /// A handle on the mailbox under `id`, if one is registered.
    pub fn mailbox(&self, id: u64) -> Option<Mailbox<N>> {
        let cached = self.cache.borrow().get(&id).cloned();
        match cached {
            Some(mailbox) if !mailbox.is_closed() => return Some(mailbox),
            Some(_) => drop(self.cache.borrow_mut().remove(&id)),
            None => {}
        }
        let mailbox = self.normals.lock().mailboxes.get(&id).cloned()?;
        let mut cache = self.cache.borrow_mut();
        if cache.len() >= self.cache_capacity {
            cache.clear();
        }
        cache.insert(id, mailbox.clone());
        Some(mailbox)
    }

    /// A handle on the control FSM's mailbox.
    pub fn control_mailbox(&self) -> Mailbox<C> {
        self.control.clone()
    }

    /// Sends `msg` to the FSM under `id`, within its mailbox capacity.
    pub fn send(&self, id: u64, msg: N::Message) -> Result<(), SendError<N::Message>> {
        self.route(id, msg, Mailbox::send)
    }

    /// Sends `msg` to the FSM under `id`, ignoring its mailbox capacity.
    pub fn force_send(&self, id: u64, msg: N::Message) -> Result<(), SendError<N::Message>> {
        self.route(id, msg, Mailbox::force_send)
    }

    fn route(
        &self,
        id: u64,
        msg: N::Message,
        deliver: Deliver<N>,
    ) -> Result<(), SendError<N::Message>> {
        if self.shared.is_stopping() {
            return Err(SendError::Disconnected(msg));
        }
        let cached = self.cache.borrow().get(&id).cloned();
        let msg = match cached {
            Some(mailbox) => match deliver(&mailbox, msg) {
                // A stale entry: the FSM was closed, maybe registered anew.
                Err(SendError::Disconnected(msg)) => {
                    self.cache.borrow_mut().remove(&id);
                    msg
                }
                done => return done,
            },
            None => msg,
        };
        match self.mailbox(id) {
            Some(mailbox) => deliver(&mailbox, msg),
            None => Err(SendError::NotFound(msg)),
        }
    }

    /// Sends `msg` to the control FSM, within its mailbox capacity.
    pub fn send_control(&self, msg: C::Message) -> Result<(), SendError<C::Message>> {
        if self.shared.is_stopping() {
            return Err(SendError::Disconnected(msg));
        }
        self.control.send(msg)
    }

    /// Force-sends one message made by `make` to every registered normal FSM
    /// and returns how many accepted it.
    pub fn broadcast_normal(&self, mut make: impl FnMut() -> N::Message) -> usize {
        if self.shared.is_stopping() {
            return 0;
        }
        // Snapshot, then send outside the lock (sends may run destructors).
        let mailboxes: Vec<Mailbox<N>> = self.normals.lock().mailboxes.values().cloned().collect();
        mailboxes
            .iter()
            .filter(|mailbox| mailbox.force_send(make()).is_ok())
            .count()
    }

    /// Normal FSMs registered.
    pub fn len(&self) -> usize {
        self.normals.lock().mailboxes.len()
    }

    /// Whether no normal FSM is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether shutdown has begun; every send fails from then on.
    pub fn is_shutdown(&self) -> bool {
        self.shared.is_stopping()
    }

    /// Messages accepted but never handled because their FSM was closed or
    /// the system shut down. Final once `shutdown` has returned.
    pub fn dropped_messages(&self) -> u64 {
        self.shared.stats.dropped_messages()
    }
}
