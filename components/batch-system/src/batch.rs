//! Poller threads and their rounds: [`PollHandler`], [`BatchSystem`].

use std::any::Any;
use std::fmt;
use std::panic::resume_unwind;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::config::{Config, ConfigError};
use crate::fsm::Fsm;
use crate::mailbox::{Inbox, Mailbox, Schedule};
use crate::metrics::{self, PollerMetrics, RoundStats};
use crate::router::{Router, Shared};

/// What an FSM wants after its turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandleResult {
    /// Carry on as the mailbox says: if messages are left (the turn's budget
    /// ran out), the FSM goes to the back of the ready queue; if not, it is
    /// parked idle until the next message.
    KeepProcessing,
    /// Reschedule me: the FSM stopped with work of its own left and goes to
    /// the back of the ready queue even if its mailbox is empty. `progress`
    /// is the handler's own marker of how far it got (reported in traces).
    StopAt {
        /// How far the FSM got, in the handler's own units.
        progress: usize,
    },
}

/// A poller thread's view of the work: one value per poller, called for
/// every round that poller runs.
///
/// A round is: `begin`, then `handle_control` if the control FSM is in the
/// batch, then `handle_normal` once per normal FSM in the batch, then `end`
/// once with the whole batch. After `end` each FSM is dropped if it
/// [stopped](Fsm::is_stopped), rescheduled at the back of the ready queue if
/// it has work left, or parked idle.
pub trait PollHandler<N: Fsm, C: Fsm>: Send + 'static {
    /// A round starts with `batch_size` FSMs (the control FSM counted).
    fn begin(&mut self, batch_size: usize);

    /// The control FSM's turn; it takes its messages from `inbox`.
    fn handle_control(
        &mut self,
        control: &mut C,
        inbox: &mut Inbox<'_, C::Message>,
    ) -> HandleResult;

    /// One normal FSM's turn; it takes its messages from `inbox`, which
    /// yields at most `messages_per_tick` of them.
    fn handle_normal(&mut self, normal: &mut N, inbox: &mut Inbox<'_, N::Message>) -> HandleResult;

    /// The round ends, once, with every normal FSM of the batch: the place to
    /// write one batch and flush the network once for all of them. Every slot
    /// is `Some` on entry; a slot left `None` means the handler took the FSM,
    /// which is then unregistered as if it had stopped.
    fn end(&mut self, normals: &mut [Option<Box<N>>]);

    /// The poller found no ready FSM and is about to block.
    fn pause(&mut self) {}
}

/// An entry of the ready queue.
pub(crate) enum Task<N: Fsm, C: Fsm> {
    Normal(Box<N>, Mailbox<N>),
    Control(Box<C>, Mailbox<C>),
    /// Wakes a poller blocked on an empty queue so it sees shutdown.
    Stop,
}

impl<N: Fsm, C: Fsm> Task<N, C> {
    /// Drops a task nobody will run, closing its FSM's mailbox.
    fn discard(self) {
        match self {
            Task::Normal(fsm, mailbox) => mailbox.close_owned(Some(fsm)),
            Task::Control(fsm, mailbox) => mailbox.close_owned(Some(fsm)),
            Task::Stop => {}
        }
    }
}

/// The ready queue's entry point for normal FSMs. The queue is unbounded as
/// a channel but holds each FSM at most once (see `FsmState`), plus one `Stop`
/// per poller.
struct NormalScheduler<N: Fsm, C: Fsm> {
    sender: Sender<Task<N, C>>,
}

impl<N: Fsm, C: Fsm> Schedule<N> for NormalScheduler<N, C> {
    fn schedule(&self, fsm: Box<N>, mailbox: Mailbox<N>) {
        if let Err(e) = self.sender.send(Task::Normal(fsm, mailbox)) {
            e.into_inner().discard();
        }
    }
}

/// The ready queue's entry point for the control FSM.
struct ControlScheduler<N: Fsm, C: Fsm> {
    sender: Sender<Task<N, C>>,
}

impl<N: Fsm, C: Fsm> Schedule<C> for ControlScheduler<N, C> {
    fn schedule(&self, fsm: Box<C>, mailbox: Mailbox<C>) {
        if let Err(e) = self.sender.send(Task::Control(fsm, mailbox)) {
            e.into_inner().discard();
        }
    }
}

/// The FSMs of one round.
struct Batch<N: Fsm, C: Fsm> {
    /// Invariant: `normals`, `mailboxes` and `results` (once handled) are
    /// parallel, and all three are empty between rounds.
    normals: Vec<Option<Box<N>>>,
    mailboxes: Vec<Mailbox<N>>,
    results: Vec<HandleResult>,
    control: Option<(Box<C>, Mailbox<C>)>,
}

impl<N: Fsm, C: Fsm> Batch<N, C> {
    fn with_capacity(capacity: usize) -> Self {
        Batch {
            normals: Vec::with_capacity(capacity),
            mailboxes: Vec::with_capacity(capacity),
            results: Vec::with_capacity(capacity),
            control: None,
        }
    }

    fn len(&self) -> usize {
        self.normals.len() + usize::from(self.control.is_some())
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes a task from the ready queue into the batch.
    fn accept(&mut self, task: Task<N, C>) {
        match task {
            Task::Normal(fsm, mailbox) if mailbox.start() => {
                self.normals.push(Some(fsm));
                self.mailboxes.push(mailbox);
            }
            Task::Control(fsm, mailbox) if mailbox.start() => {
                assert!(self.control.is_none(), "two control FSMs in one batch");
                self.control = Some((fsm, mailbox));
            }
            // Closed while queued.
            closed => closed.discard(),
        }
    }
}

/// The per-round limits a poller applies.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_batch_size: usize,
    messages_per_tick: usize,
    reschedule_duration: Duration,
}

/// One poller thread.
struct Poller<N: Fsm, C: Fsm, H> {
    rounds: Rounds<N, C>,
    handler: H,
}

impl<N: Fsm, C: Fsm, H: PollHandler<N, C>> Poller<N, C, H> {
    fn run(mut self) {
        let mut batch = Batch::with_capacity(self.rounds.limits.max_batch_size);
        while self.rounds.fetch(&mut batch, &mut self.handler) {
            self.rounds.round(&mut batch, &mut self.handler);
        }
    }
}

/// What runs rounds: a poller thread's, or the caller's in
/// [`BatchSystem::run_round`]. The handler is passed in, not owned, so the
/// same rounds can be driven by a thread or by a single-threaded scheduler.
struct Rounds<N: Fsm, C: Fsm> {
    router: Router<N, C>,
    tasks: Receiver<Task<N, C>>,
    limits: Limits,
    metrics: PollerMetrics,
    shared: Arc<Shared>,
}

impl<N: Fsm, C: Fsm> Rounds<N, C> {
    /// Fills the batch from the ready queue, blocking while it is empty.
    /// Returns false when the poller must exit (the batch is then empty).
    ///
    /// Shutdown sets the stopping flag before it queues one `Stop` per
    /// poller, and a poller exits right after taking a `Stop` (at most one
    /// round later), so a poller blocked here always has a `Stop` left.
    fn fetch<H: PollHandler<N, C>>(&mut self, batch: &mut Batch<N, C>, handler: &mut H) -> bool {
        loop {
            if self.shared.is_stopping() {
                return false;
            }
            let stop = self.fill(batch);
            if !batch.is_empty() {
                return true;
            }
            if stop {
                return false;
            }
            handler.pause();
            match self.tasks.recv() {
                Ok(Task::Stop) | Err(_) => return false,
                Ok(task) => batch.accept(task),
            }
            if !batch.is_empty() {
                // This round runs even if shutdown began meanwhile, so no FSM
                // is left in the poller's hands; the flag is seen next time.
                self.fill(batch);
                return true;
            }
        }
    }

    /// Takes ready FSMs without blocking until the batch is full or the
    /// queue is empty. Returns true if it took a `Stop`.
    fn fill(&mut self, batch: &mut Batch<N, C>) -> bool {
        while batch.len() < self.limits.max_batch_size {
            match self.tasks.try_recv() {
                Ok(Task::Stop) => return true,
                Ok(task) => batch.accept(task),
                Err(_) => break,
            }
        }
        false
    }

    fn round<H: PollHandler<N, C>>(&mut self, batch: &mut Batch<N, C>, handler: &mut H) {
        let started = Instant::now();
        let mut stats = RoundStats {
            fsms: batch.len(),
            ..RoundStats::default()
        };
        handler.begin(batch.len());
        let control_result = self.handle_control(batch, handler, &mut stats);
        self.handle_normals(batch, handler, &mut stats);
        handler.end(&mut batch.normals);
        if let Some(result) = control_result {
            self.finish_control(batch, result, &mut stats);
        }
        self.finish_normals(batch, &mut stats);
        self.metrics.record(&stats, started.elapsed());
    }

    fn inbox<'a, F: Fsm>(&self, mailbox: &'a Mailbox<F>) -> Inbox<'a, F::Message> {
        Inbox::new(
            mailbox.receiver(),
            self.limits.messages_per_tick,
            self.limits.reschedule_duration,
        )
    }

    fn handle_control<H: PollHandler<N, C>>(
        &mut self,
        batch: &mut Batch<N, C>,
        handler: &mut H,
        stats: &mut RoundStats,
    ) -> Option<HandleResult> {
        let (fsm, mailbox) = batch.control.as_mut()?;
        stats.mailbox_depth_max = stats.mailbox_depth_max.max(mailbox.len());
        let mut inbox = self.inbox(mailbox);
        let result = handler.handle_control(fsm, &mut inbox);
        stats.messages_handled += inbox.taken() as u64;
        Some(result)
    }

    fn handle_normals<H: PollHandler<N, C>>(
        &mut self,
        batch: &mut Batch<N, C>,
        handler: &mut H,
        stats: &mut RoundStats,
    ) {
        for (slot, mailbox) in batch.normals.iter_mut().zip(&batch.mailboxes) {
            let fsm = slot.as_mut().expect("batch slots are filled before end");
            stats.mailbox_depth_max = stats.mailbox_depth_max.max(mailbox.len());
            let mut inbox = self.inbox(mailbox);
            let result = handler.handle_normal(fsm, &mut inbox);
            stats.messages_handled += inbox.taken() as u64;
            batch.results.push(result);
        }
    }

    fn finish_control(
        &self,
        batch: &mut Batch<N, C>,
        result: HandleResult,
        stats: &mut RoundStats,
    ) {
        let (fsm, mailbox) = batch.control.take().expect("control FSM was handled");
        if fsm.is_stopped() {
            tracing::debug!("control FSM stopped; closing its mailbox");
            return mailbox.close_owned(Some(fsm));
        }
        let again = wants_again(result, &mailbox);
        stats.reschedules += u64::from(again);
        mailbox.finish_turn(fsm, again);
    }

    fn finish_normals(&self, batch: &mut Batch<N, C>, stats: &mut RoundStats) {
        let turns = batch.normals.drain(..).zip(batch.mailboxes.drain(..));
        for ((fsm, mailbox), result) in turns.zip(batch.results.drain(..)) {
            match fsm {
                Some(fsm) if !fsm.is_stopped() => {
                    let again = wants_again(result, &mailbox);
                    stats.reschedules += u64::from(again);
                    mailbox.finish_turn(fsm, again);
                }
                fsm => self.router.close_owned(&mailbox, fsm),
            }
        }
    }
}

/// Whether an FSM goes back to the ready queue rather than idle.
fn wants_again<F: Fsm>(result: HandleResult, mailbox: &Mailbox<F>) -> bool {
    match result {
        HandleResult::KeepProcessing => !mailbox.is_empty(),
        HandleResult::StopAt { progress } => {
            tracing::trace!(progress, "fsm asked to be rescheduled");
            true
        }
    }
}

/// Creates a batch system with `control` as its control FSM, and the router
/// that feeds it. No poller runs until [`BatchSystem::spawn`]; messages sent
/// before then wait in their mailboxes.
#[allow(clippy::type_complexity)] // A pair, spelled out for the reader.
pub fn create_system<N: Fsm, C: Fsm>(
    config: &Config,
    control: Box<C>,
) -> Result<(Router<N, C>, BatchSystem<N, C>), ConfigError> {
    config.validate()?;
    let (sender, receiver) = crossbeam_channel::unbounded();
    let shared = Arc::new(Shared::new());
    let control = Mailbox::new(
        0,
        control,
        config.control_mailbox_capacity,
        Arc::new(ControlScheduler {
            sender: sender.clone(),
        }),
        Arc::clone(&shared.stats),
    );
    let router = Router::new(
        control,
        Arc::new(NormalScheduler {
            sender: sender.clone(),
        }),
        config.mailbox_capacity,
        config.router_cache_capacity,
        Arc::clone(&shared),
    );
    let system = BatchSystem {
        config: config.clone(),
        router: router.clone(),
        tasks: Some(receiver),
        stopper: Some(sender),
        pollers: Vec::new(),
        manual: None,
        shared,
        state: Lifecycle::Created,
    };
    Ok((router, system))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lifecycle {
    Created,
    Running,
    ShutDown,
}

/// A pool of poller threads running the FSMs a [`Router`] feeds.
///
/// Dropping it shuts it down.
pub struct BatchSystem<N: Fsm, C: Fsm> {
    config: Config,
    router: Router<N, C>,
    /// The ready queue's receiving end; `None` after shutdown, so that a late
    /// schedule finds the queue disconnected and closes its FSM.
    tasks: Option<Receiver<Task<N, C>>>,
    /// Sends `Stop` to pollers; `None` after shutdown.
    stopper: Option<Sender<Task<N, C>>>,
    pollers: Vec<JoinHandle<()>>,
    /// The rounds [`run_round`](Self::run_round) drives, made on first use.
    manual: Option<Rounds<N, C>>,
    shared: Arc<Shared>,
    state: Lifecycle,
}

impl<N: Fsm, C: Fsm> fmt::Debug for BatchSystem<N, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchSystem")
            .field("state", &self.state)
            .field("pollers", &self.pollers.len())
            .field("config", &self.config)
            .finish()
    }
}

impl<N: Fsm, C: Fsm> BatchSystem<N, C> {
    /// Starts `pool_size` poller threads named `{name}-{i}`, each with a
    /// handler from `build`. Panics if called twice.
    pub fn spawn<H, B>(&mut self, name: &str, mut build: B) -> std::io::Result<()>
    where
        H: PollHandler<N, C>,
        B: FnMut() -> H,
    {
        assert_eq!(
            self.state,
            Lifecycle::Created,
            "batch system {name}: spawn must be called once, before shutdown"
        );
        self.state = Lifecycle::Running;
        self.shared.stats.set_name(name);
        metrics::describe();
        let tasks = self
            .tasks
            .clone()
            .expect("ready queue present before shutdown");
        let limits = self.limits();
        for i in 0..self.config.pool_size {
            let poller = Poller {
                rounds: Rounds {
                    router: self.router.clone(),
                    tasks: tasks.clone(),
                    limits,
                    metrics: PollerMetrics::new(name),
                    shared: Arc::clone(&self.shared),
                },
                handler: build(),
            };
            let handle = thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || poller.run())?;
            self.pollers.push(handle);
        }
        tracing::info!(
            system = name,
            pollers = self.config.pool_size,
            "batch system started"
        );
        Ok(())
    }

    /// Runs one round on the calling thread, with `handler`, over the FSMs
    /// that are ready now (up to the configured batch size); returns how
    /// many FSMs it handled, 0 when none was ready (it never blocks).
    ///
    /// This is the entry point of a single-threaded scheduler: with no
    /// poller spawned and every send made from the same thread, the ready
    /// queue is FIFO and the rounds are a deterministic function of the
    /// sends. Panics if pollers were spawned or the system was shut down.
    pub fn run_round<H: PollHandler<N, C>>(&mut self, handler: &mut H) -> usize {
        assert_eq!(
            self.state,
            Lifecycle::Created,
            "run_round drives a batch system without pollers"
        );
        let limits = self.limits();
        let manual = self.manual.get_or_insert_with(|| Rounds {
            router: self.router.clone(),
            tasks: self
                .tasks
                .clone()
                .expect("ready queue present before shutdown"),
            limits,
            metrics: PollerMetrics::new("manual"),
            shared: Arc::clone(&self.shared),
        });
        let mut batch = Batch::with_capacity(limits.max_batch_size);
        manual.fill(&mut batch);
        let handled = batch.len();
        if handled > 0 {
            manual.round(&mut batch, handler);
        }
        handled
    }

    fn limits(&self) -> Limits {
        Limits {
            max_batch_size: self.config.max_batch_size,
            messages_per_tick: self.config.messages_per_tick,
            reschedule_duration: self.config.reschedule_duration,
        }
    }

    /// A clone of the router feeding this system.
    pub fn router(&self) -> Router<N, C> {
        self.router.clone()
    }

    /// The configuration the system was created with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Messages accepted but never handled; see [`Router::dropped_messages`].
    pub fn dropped_messages(&self) -> u64 {
        self.shared.stats.dropped_messages()
    }

    /// Stops every poller after its current round and joins it, then closes
    /// every FSM: sends fail from now on, and messages still waiting are
    /// counted in [`dropped_messages`](Self::dropped_messages). Idempotent.
    /// Re-raises the panic of a poller that panicked.
    pub fn shutdown(&mut self) {
        if let Some(panic) = self.stop() {
            resume_unwind(panic);
        }
    }

    /// Shutdown proper; returns the first poller panic instead of raising it.
    fn stop(&mut self) -> Option<Box<dyn Any + Send>> {
        if self.state == Lifecycle::ShutDown {
            return None;
        }
        self.state = Lifecycle::ShutDown;
        self.shared.begin_stopping();
        if let Some(stopper) = self.stopper.take() {
            for _ in &self.pollers {
                let _ = stopper.send(Task::Stop);
            }
        }
        let mut first_panic = None;
        for poller in self.pollers.drain(..) {
            if let Err(panic) = poller.join() {
                first_panic.get_or_insert(panic);
            }
        }
        self.router.close_all();
        self.manual = None;
        if let Some(tasks) = self.tasks.take() {
            tasks.try_iter().for_each(Task::discard);
        }
        tracing::info!(
            dropped_messages = self.dropped_messages(),
            "batch system shut down"
        );
        first_panic
    }
}

impl<N: Fsm, C: Fsm> Drop for BatchSystem<N, C> {
    fn drop(&mut self) {
        if self.stop().is_some() {
            tracing::error!("a poller thread panicked before the batch system was dropped");
        }
    }
}
