//! One live activation: the actor instance owned by its own task, fed by a mailbox.
//!
//! Calls queue in FIFO order. An exclusive call (`&mut self`, alarms) runs alone. Shared calls
//! (`&self`) run together: once one starts, every shared call that arrives joins it, until an
//! exclusive call queues up; that call then holds back everything behind it, so writers never
//! starve. The actor's task drains its queue without handing control back between turns, and a
//! turn cannot be cut short by a caller that gives up waiting.
//!
//! Halting sets a flag the task checks before each turn: the turn in progress finishes (or is
//! cancelled after the grace period), queued calls are answered "halted" with their arguments
//! so callers can retry on a fresh activation, and the deactivation hook runs last.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument;

use crate::actor::dispatch::{Actor, DispatchError, MethodInfo, MethodKind};
use crate::clock::{BoxFuture, SharedClock};
use crate::model::ActorKey;
use crate::model::Envelope;
use crate::telemetry::metrics::{self, Outcome, TypeMetrics};

/// Why a turn produced no result.
#[derive(Debug)]
pub(crate) enum TurnError {
    /// The method failed to decode, encode, or returned its error.
    Dispatch(DispatchError),
    /// The activation is halting. `args` is given back when the method never ran, so the call
    /// can be retried on a fresh activation; it is `None` when the turn was cancelled mid-way.
    Halted { args: Option<Envelope> },
    /// The method panicked.
    Panicked,
    /// The activation already holds its most calls; the call was not queued.
    Overloaded { limit: usize },
}

/// An actor in an exclusive turn, as work that needs direct access sees it (alarms).
pub(crate) trait ExclusiveActor: Send {
    /// Run an exclusive or alarm method.
    fn call_exclusive(
        &mut self,
        index: u16,
        args: Envelope,
    ) -> BoxFuture<'_, Result<Envelope, DispatchError>>;
}

impl<A: Actor> ExclusiveActor for A {
    fn call_exclusive(
        &mut self,
        index: u16,
        args: Envelope,
    ) -> BoxFuture<'_, Result<Envelope, DispatchError>> {
        Actor::call_mut(self, index, args)
    }
}

/// Work run in an exclusive turn with the actor itself (e.g. an alarm occurrence, which reads
/// its lease, runs the handler and completes the lease before the turn ends).
pub(crate) trait ExclusiveJob: Send {
    /// Run the job.
    fn run<'a>(self: Box<Self>, actor: &'a mut dyn ExclusiveActor) -> BoxFuture<'a, ()>;
}

/// Counts a queued or running job until it ends (dropped with its command or its turn); the
/// activation is busy while any job or call is counted.
struct Busy {
    shared: Arc<Shared>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.shared.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Counts a queued or running call like [`Busy`], and holds one of the activation's
/// `max_queued_calls`. No bigger than the two words it always was, so that a call nobody
/// observes moves no more than before.
struct CallSlot {
    shared: Arc<Shared>,
    /// The call's telemetry: `None` unless calls are timed or the wait is traced.
    observed: Option<Box<Observed>>,
}

impl Drop for CallSlot {
    #[inline]
    fn drop(&mut self) {
        self.shared.calls.fetch_sub(1, Ordering::AcqRel);
        self.shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        if let Some(observed) = self.observed.take() {
            Observed::end(observed);
        }
    }
}

/// A call's telemetry while it waits for its turn.
struct Observed {
    /// When it was queued, if call timing is on.
    queued_at: Option<Instant>,
    /// The `actor.lock_wait` span, open while it waits (when traced).
    waiting: Option<tracing::Span>,
}

impl CallSlot {
    /// The call's turn begins: record how long it waited for it, and close its wait span.
    #[inline(always)]
    fn turn_started(&mut self) {
        if let Some(observed) = self.observed.as_mut() {
            observed.turn_started(&self.shared.metrics);
        }
    }

    /// Count a call's result when calls are observed, then send it to its caller.
    #[inline(always)]
    fn answer(
        self,
        index: u16,
        reply: oneshot::Sender<Result<Envelope, TurnError>>,
        result: Result<Envelope, TurnError>,
    ) {
        if metrics::calls_observed() {
            self.record(index, &result);
        }
        let _ = reply.send(result);
    }

    /// Count the call's outcome, and its duration from when it was queued when that is known.
    #[cold]
    #[inline(never)]
    fn record(&self, index: u16, result: &Result<Envelope, TurnError>) {
        if let Some(method) = self.shared.metrics.method(index) {
            let elapsed = self
                .observed
                .as_ref()
                .and_then(|o| o.queued_at)
                .map(|queued_at| queued_at.elapsed());
            method.record(Outcome::of(result), elapsed);
        }
    }
}

impl Outcome {
    /// How the invocations family labels this result.
    fn of(result: &Result<Envelope, TurnError>) -> Outcome {
        match result {
            Ok(_) => Outcome::Ok,
            Err(TurnError::Dispatch(DispatchError::Actor { .. } | DispatchError::Job { .. })) => {
                Outcome::ActorError
            }
            Err(TurnError::Overloaded { .. }) => Outcome::Overloaded,
            Err(_) => Outcome::Error,
        }
    }
}

impl Observed {
    /// What a call carries for telemetry, if anything observes calls: the time it was queued
    /// (when call timing is on) and its `actor.lock_wait` span (when a subscriber wants it).
    /// Kept out of line: a call nobody observes never gets here.
    #[cold]
    #[inline(never)]
    fn begin() -> Option<Box<Observed>> {
        let waiting = crate::telemetry::context::debug_spans()
            .then(|| tracing::debug_span!("actor.lock_wait"))
            .filter(|span| !span.is_disabled());
        let queued_at = metrics::calls_observed().then(Instant::now);
        (queued_at.is_some() || waiting.is_some())
            .then(|| Box::new(Observed { queued_at, waiting }))
    }

    /// Drop a call's telemetry, out of the way of calls that have none (taking the box is
    /// the point: it is freed here, not in the caller).
    #[cold]
    #[inline(never)]
    #[allow(clippy::boxed_local)]
    fn end(self: Box<Self>) {}

    /// The call's turn begins: record its wait, and close the wait span.
    #[cold]
    #[inline(never)]
    fn turn_started(&mut self, metrics: &TypeMetrics) {
        if let Some(queued_at) = self.queued_at {
            metrics.lock_wait.observe(queued_at.elapsed());
        }
        self.waiting = None;
    }
}

enum Command {
    Call {
        kind: MethodKind,
        index: u16,
        args: Envelope,
        reply: oneshot::Sender<Result<Envelope, TurnError>>,
        _busy: CallSlot,
    },
    Job {
        job: Box<dyn ExclusiveJob>,
        _busy: Busy,
    },
    /// Nudges an idle task so it notices a halt.
    Wake,
}

impl Command {
    /// Answer "halted" without running, giving the arguments back.
    fn refuse(self) {
        if let Command::Call { args, reply, .. } = self {
            let _ = reply.send(Err(TurnError::Halted { args: Some(args) }));
        }
    }
}

/// State shared by an activation's handle and its task.
struct Shared {
    halted: AtomicBool,
    /// Calls and jobs queued or running.
    in_flight: AtomicUsize,
    /// Calls queued or running, held to `max_queued_calls`.
    calls: AtomicUsize,
    max_queued_calls: usize,
    idle_at_ms: AtomicI64,
    idle_timeout_ms: Option<i64>,
    clock: SharedClock,
    halting: watch::Sender<bool>,
    abort: watch::Sender<bool>,
    done: watch::Sender<bool>,
    removed: watch::Sender<bool>,
    metrics: Arc<TypeMetrics>,
}

impl Shared {
    fn touch(&self) {
        if let Some(timeout) = self.idle_timeout_ms {
            self.idle_at_ms.store(
                self.clock.now_ms().saturating_add(timeout),
                Ordering::Relaxed,
            );
        }
    }

    fn busy(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy {
            shared: self.clone(),
        }
    }

    /// Count a call in, unless the activation already holds its most.
    fn admit_call(self: &Arc<Self>, observed: Option<Box<Observed>>) -> Option<CallSlot> {
        self.calls
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_queued_calls).then_some(n + 1)
            })
            .ok()?;
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Some(CallSlot {
            shared: self.clone(),
            observed,
        })
    }
}

/// The handle on a live activation.
pub(crate) struct Activation {
    key: ActorKey,
    /// The actor type's method table, so a call to a live activation needs no registry lookup.
    methods: &'static [MethodInfo],
    mailbox: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    /// For a singleton's activation, whether it ran its bootstrap.
    bootstrapped: Option<Arc<AtomicBool>>,
}

/// How an activation is set up.
pub(crate) struct ActivationSettings {
    pub idle_timeout_ms: Option<i64>,
    pub deactivation_timeout: Duration,
    pub max_queued_calls: usize,
    pub clock: SharedClock,
    pub metrics: Arc<TypeMetrics>,
    /// Whether it is a singleton's activation (it bootstraps before its calls).
    pub singleton: bool,
}

impl Activation {
    /// Start the task that owns `actor`. `halting` is the sender whose receiver the actor's
    /// context holds.
    pub(crate) fn spawn<A: Actor>(
        key: ActorKey,
        actor: A,
        halting: watch::Sender<bool>,
        settings: ActivationSettings,
    ) -> Arc<Self> {
        let (mailbox, inbox) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            halted: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            calls: AtomicUsize::new(0),
            max_queued_calls: settings.max_queued_calls.max(1),
            idle_at_ms: AtomicI64::new(i64::MAX),
            idle_timeout_ms: settings.idle_timeout_ms,
            clock: settings.clock,
            halting,
            abort: watch::channel(false).0,
            done: watch::channel(false).0,
            removed: watch::channel(false).0,
            metrics: settings.metrics,
        });
        shared.metrics.active.add(1);
        shared.metrics.activations.inc();
        shared.touch();
        tokio::spawn(run(
            actor,
            inbox,
            shared.clone(),
            settings.deactivation_timeout,
        ));
        Arc::new(Activation {
            key,
            methods: A::methods(),
            mailbox,
            shared,
            bootstrapped: settings.singleton.then(Arc::default),
        })
    }

    /// For a singleton's activation, the flag its bootstrap sets once it ran.
    pub(crate) fn bootstrapped(&self) -> Option<Arc<AtomicBool>> {
        self.bootstrapped.clone()
    }

    /// Whether this is a singleton's activation that has not bootstrapped yet (its first
    /// bootstrap failed): calls then queue another try ahead of themselves.
    pub(crate) fn awaiting_bootstrap(&self) -> bool {
        self.bootstrapped
            .as_ref()
            .is_some_and(|done| !done.load(Ordering::Acquire))
    }

    /// The actor's address.
    pub(crate) fn key(&self) -> &ActorKey {
        &self.key
    }

    /// The actor type's method table.
    pub(crate) fn methods(&self) -> &'static [MethodInfo] {
        self.methods
    }

    /// Run method `index` in a turn of the given kind and wait for its result.
    pub(crate) async fn call(
        &self,
        kind: MethodKind,
        index: u16,
        args: Envelope,
    ) -> Result<Envelope, TurnError> {
        if self.is_halted() {
            return Err(TurnError::Halted { args: Some(args) });
        }
        let observed = if metrics::calls_observed() || crate::telemetry::context::debug_spans() {
            Observed::begin()
        } else {
            None
        };
        let Some(busy) = self.shared.admit_call(observed) else {
            if metrics::calls_observed()
                && let Some(method) = self.shared.metrics.method(index)
            {
                method.record(Outcome::Overloaded, None);
            }
            return Err(TurnError::Overloaded {
                limit: self.shared.max_queued_calls,
            });
        };
        let (reply, result) = oneshot::channel();
        let command = Command::Call {
            kind,
            index,
            args,
            reply,
            _busy: busy,
        };
        if let Err(mpsc::error::SendError(command)) = self.mailbox.send(command) {
            command.refuse();
        }
        // Calls that ran are counted by the activation's task; one that never ran is retried
        // by its caller on a fresh activation, where it counts.
        result
            .await
            .unwrap_or(Err(TurnError::Halted { args: None }))
    }

    /// Queue work for an exclusive turn. Returns `false` if the activation is halting (the job
    /// is dropped unrun).
    pub(crate) fn run_exclusive(&self, job: Box<dyn ExclusiveJob>) -> bool {
        !self.is_halted()
            && self
                .mailbox
                .send(Command::Job {
                    job,
                    _busy: self.shared.busy(),
                })
                .is_ok()
    }

    /// Whether any call or job is queued or running.
    pub(crate) fn is_busy(&self) -> bool {
        self.shared.in_flight.load(Ordering::Acquire) > 0
    }

    /// When the activation becomes idle (Unix ms; `i64::MAX` = never).
    pub(crate) fn idle_at_ms(&self) -> i64 {
        self.shared.idle_at_ms.load(Ordering::Relaxed)
    }

    /// Push the idle deadline to at least `at_ms`.
    pub(crate) fn postpone_idle(&self, at_ms: i64) {
        self.shared.idle_at_ms.fetch_max(at_ms, Ordering::Relaxed);
    }

    /// Start halting: no new turns, the actor is told. `false` if it already was halting.
    pub(crate) fn begin_halt(&self) -> bool {
        if self.shared.halted.swap(true, Ordering::SeqCst) {
            return false;
        }
        self.shared.halting.send_replace(true);
        let _ = self.mailbox.send(Command::Wake);
        true
    }

    /// Whether halting has begun.
    pub(crate) fn is_halted(&self) -> bool {
        self.shared.halted.load(Ordering::SeqCst)
    }

    /// Cancel the turn in progress (after the grace period).
    pub(crate) fn abort(&self) {
        self.shared.abort.send_replace(true);
    }

    /// Completes once the task has stopped: last turn over, deactivation hook run.
    pub(crate) async fn stopped(&self) {
        wait_true(&mut self.shared.done.subscribe()).await;
    }

    /// Mark the activation as gone from the host's table.
    pub(crate) fn mark_removed(&self) {
        self.shared.removed.send_replace(true);
    }

    /// Completes once the activation is gone from the host's table.
    pub(crate) fn removed(&self) -> BoxFuture<'static, ()> {
        let mut rx = self.shared.removed.subscribe();
        Box::pin(async move { wait_true(&mut rx).await })
    }
}

/// Completes once the watched flag is true (or its sender is gone).
async fn wait_true(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|flag| *flag).await.map(|_| ());
}

/// Run `work` unless the activation is aborted first.
async fn unless_aborted<F: std::future::Future>(
    work: F,
    abort: &mut watch::Receiver<bool>,
) -> Option<F::Output> {
    tokio::select! {
        biased;
        out = work => Some(out),
        _ = wait_true(abort) => None,
    }
}

/// A method call with panics turned into [`TurnError::Panicked`].
async fn guarded(
    call: BoxFuture<'_, Result<Envelope, DispatchError>>,
) -> Result<Envelope, TurnError> {
    match AssertUnwindSafe(call).catch_unwind().await {
        Ok(result) => result.map_err(TurnError::Dispatch),
        Err(_) => Err(TurnError::Panicked),
    }
}

/// One shared turn of a batch.
async fn shared_turn<A: Actor>(
    reader: &A,
    index: u16,
    args: Envelope,
    reply: oneshot::Sender<Result<Envelope, TurnError>>,
    mut busy: CallSlot,
) {
    // Its caller gave up (its deadline passed) before the turn began: nobody wants it run.
    if reply.is_closed() {
        return;
    }
    busy.turn_started();
    let result = guarded(reader.call_ref(index, args)).await;
    busy.answer(index, reply, result);
}

/// The next turn of `joined` to end; pending while there is none (the batch's loop stops when
/// no turn is left).
async fn next_done<F: Future<Output = ()>>(joined: &mut Option<FuturesUnordered<F>>) -> Option<()> {
    match joined {
        Some(turns) if !turns.is_empty() => turns.next().await,
        _ => std::future::pending().await,
    }
}

/// The activation's task: serve the mailbox until halted, then deactivate.
async fn run<A: Actor>(
    mut actor: A,
    mut inbox: mpsc::UnboundedReceiver<Command>,
    shared: Arc<Shared>,
    deactivation_timeout: Duration,
) {
    let mut abort = shared.abort.subscribe();
    let mut next: Option<Command> = None;
    loop {
        let command = match next.take() {
            Some(command) => command,
            // Halting began during a shared batch, which swallowed its wake-up: stop now
            // rather than wait for a command that may never come.
            None if shared.halted.load(Ordering::SeqCst) => break,
            None => match inbox.recv().await {
                Some(command) => command,
                None => break,
            },
        };
        if shared.halted.load(Ordering::SeqCst) {
            command.refuse();
            break;
        }
        shared.touch();
        match command {
            Command::Wake => {}
            Command::Call {
                kind: MethodKind::Shared,
                index,
                args,
                reply,
                _busy,
            } => {
                // A shared batch: it runs until its last turn ends, and takes in every shared
                // call that arrives meanwhile, until an exclusive call queues up; from then on
                // everything waits behind that call, in order. The first turn is polled on its
                // own: a lone read that does not wait never sets up the set of joined turns.
                let reader = &actor;
                let mut first = std::pin::pin!(shared_turn(reader, index, args, reply, _busy));
                let mut first_done = false;
                let mut joined = None;
                let batch = async {
                    let mut open = true;
                    while !first_done
                        || joined
                            .as_ref()
                            .is_some_and(|j: &FuturesUnordered<_>| !j.is_empty())
                    {
                        tokio::select! {
                            biased;
                            _ = &mut first, if !first_done => first_done = true,
                            Some(()) = next_done(&mut joined) => {}
                            queued = inbox.recv(), if open => match queued {
                                Some(Command::Call { kind: MethodKind::Shared, index, args, reply, _busy })
                                    if !shared.halted.load(Ordering::SeqCst) =>
                                {
                                    joined
                                        .get_or_insert_with(FuturesUnordered::new)
                                        .push(shared_turn(reader, index, args, reply, _busy));
                                }
                                Some(Command::Wake) => {}
                                Some(other) => {
                                    next = Some(other);
                                    open = false;
                                }
                                None => open = false,
                            },
                        }
                    }
                };
                // Cancelled turns drop their reply senders: their callers see "halted".
                unless_aborted(batch, &mut abort).await;
            }
            Command::Call {
                index,
                args,
                reply,
                mut _busy,
                ..
            } => {
                // Its caller gave up (its deadline passed) before the turn began.
                if reply.is_closed() {
                    continue;
                }
                _busy.turn_started();
                if let Some(result) =
                    unless_aborted(guarded(actor.call_mut(index, args)), &mut abort).await
                {
                    _busy.answer(index, reply, result);
                }
            }
            Command::Job { job, _busy } => {
                let work = AssertUnwindSafe(job.run(&mut actor)).catch_unwind();
                if let Some(Err(_)) = unless_aborted(work, &mut abort).await {
                    tracing::error!("a job panicked inside an exclusive turn");
                }
            }
        }
    }
    inbox.close();
    while let Ok(command) = inbox.try_recv() {
        command.refuse();
    }
    if !deactivation_timeout.is_zero() {
        let hook = AssertUnwindSafe(actor.deactivate())
            .catch_unwind()
            .instrument(tracing::debug_span!("actor.deactivate"));
        match tokio::time::timeout(deactivation_timeout, hook).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => tracing::error!("deactivation hook panicked"),
            Err(_) => tracing::warn!(?deactivation_timeout, "deactivation hook timed out"),
        }
    }
    drop(actor);
    shared.metrics.active.add(-1);
    shared.metrics.deactivations.inc();
    shared.done.send_replace(true);
}
