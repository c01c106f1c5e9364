//! One live activation: the actor instance behind its turn lock, its idle deadline, and its
//! halting state. Type-erased behind [`ActivationDyn`] so the host can keep activations of every
//! type in one table.
//!
//! The turn lock is tokio's fair read-write lock: exclusive turns (`&mut self`, alarms) run
//! alone, shared turns (`&self`) run together, waiters are served in FIFO order, and a queued
//! writer holds back readers that arrive after it, so writers never starve.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock, watch};
use tokio::task::AbortHandle;

use crate::actor::dispatch::{Actor, DispatchError, MethodKind};
use crate::actor::envelope::Envelope;
use crate::clock::{BoxFuture, SharedClock};
use crate::error::Error;
use crate::store::ActorKey;

/// A held turn on an activation: call methods in it, and (exclusive turns) run the
/// deactivation hook.
pub(crate) trait Turn: Send {
    /// Run method `index` with `args` in this turn.
    fn call(
        &mut self,
        index: u16,
        args: Envelope,
    ) -> BoxFuture<'_, Result<Envelope, DispatchError>>;
    /// Run the deactivation hook (no-op for shared turns).
    fn deactivate(&mut self) -> BoxFuture<'_, ()>;
}

struct WriteTurn<A>(OwnedRwLockWriteGuard<A>);
struct ReadTurn<A>(OwnedRwLockReadGuard<A>);

impl<A: Actor> Turn for WriteTurn<A> {
    fn call(
        &mut self,
        index: u16,
        args: Envelope,
    ) -> BoxFuture<'_, Result<Envelope, DispatchError>> {
        self.0.call_mut(index, args)
    }
    fn deactivate(&mut self) -> BoxFuture<'_, ()> {
        self.0.deactivate()
    }
}

impl<A: Actor> Turn for ReadTurn<A> {
    fn call(
        &mut self,
        index: u16,
        args: Envelope,
    ) -> BoxFuture<'_, Result<Envelope, DispatchError>> {
        self.0.call_ref(index, args)
    }
    fn deactivate(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// An activation of any actor type.
pub(crate) trait ActivationDyn: Send + Sync + 'static {
    /// The actor's address.
    fn key(&self) -> &ActorKey;
    /// Wait for a turn of the given kind. Fails with [`Error::Halted`] if the activation is
    /// (or becomes) halted before the turn is granted.
    fn lock(self: Arc<Self>, kind: MethodKind) -> BoxFuture<'static, Result<Box<dyn Turn>, Error>>;
    /// Take the exclusive turn for halting, ignoring the halted flag.
    fn lock_for_halt(self: Arc<Self>) -> BoxFuture<'static, Box<dyn Turn>>;
    /// Take the exclusive turn only if nobody holds any turn now.
    fn try_lock_exclusive(self: Arc<Self>) -> Option<Box<dyn Turn>>;
    /// When the activation becomes idle (Unix ms; `i64::MAX` = never).
    fn idle_at_ms(&self) -> i64;
    /// Push the idle deadline to `at_ms`.
    fn postpone_idle(&self, at_ms: i64);
    /// Mark the activation halted and tell the actor; `false` if it already was.
    fn begin_halt(&self) -> bool;
    /// Whether halting has begun.
    fn is_halted(&self) -> bool;
    /// Track a running turn task so a halt can cancel it after the grace period.
    fn track(&self, handle: AbortHandle) -> u64;
    /// Stop tracking a finished turn task.
    fn untrack(&self, id: u64);
    /// Cancel every running turn task.
    fn abort_running(&self);
    /// Mark the activation as gone (removed from the host's table).
    fn mark_removed(&self);
    /// Wait until the activation is gone.
    fn removed(&self) -> BoxFuture<'static, ()>;
}

/// The live activation of an actor of type `A`.
pub(crate) struct Activation<A> {
    key: ActorKey,
    actor: Arc<RwLock<A>>,
    halted: AtomicBool,
    halting: watch::Sender<bool>,
    removed: watch::Sender<bool>,
    idle_at_ms: AtomicI64,
    idle_timeout_ms: Option<i64>,
    clock: SharedClock,
    running: Mutex<HashMap<u64, AbortHandle>>,
    next_turn: AtomicU64,
}

impl<A: Actor> Activation<A> {
    /// Wrap a fresh instance. `halting` is the sender whose receiver the actor's context holds.
    pub(crate) fn new(
        key: ActorKey,
        actor: A,
        halting: watch::Sender<bool>,
        idle_timeout_ms: Option<i64>,
        clock: SharedClock,
    ) -> Self {
        let (removed, _) = watch::channel(false);
        let activation = Activation {
            key,
            actor: Arc::new(RwLock::new(actor)),
            halted: AtomicBool::new(false),
            halting,
            removed,
            idle_at_ms: AtomicI64::new(i64::MAX),
            idle_timeout_ms,
            clock,
            running: Mutex::new(HashMap::new()),
            next_turn: AtomicU64::new(0),
        };
        activation.touch();
        activation
    }

    fn touch(&self) {
        if let Some(timeout) = self.idle_timeout_ms {
            let at = self.clock.now_ms().saturating_add(timeout);
            self.idle_at_ms.store(at, Ordering::Relaxed);
        }
    }

    fn halted_error(&self) -> Error {
        Error::Halted {
            key: self.key.clone(),
        }
    }
}

impl<A: Actor> ActivationDyn for Activation<A> {
    fn key(&self) -> &ActorKey {
        &self.key
    }

    fn lock(self: Arc<Self>, kind: MethodKind) -> BoxFuture<'static, Result<Box<dyn Turn>, Error>> {
        Box::pin(async move {
            if self.is_halted() {
                return Err(self.halted_error());
            }
            let turn: Box<dyn Turn> = match kind {
                MethodKind::Shared => Box::new(ReadTurn(self.actor.clone().read_owned().await)),
                MethodKind::Exclusive | MethodKind::Alarm => {
                    Box::new(WriteTurn(self.actor.clone().write_owned().await))
                }
            };
            if self.is_halted() {
                return Err(self.halted_error());
            }
            self.touch();
            Ok(turn)
        })
    }

    fn lock_for_halt(self: Arc<Self>) -> BoxFuture<'static, Box<dyn Turn>> {
        Box::pin(async move {
            Box::new(WriteTurn(self.actor.clone().write_owned().await)) as Box<dyn Turn>
        })
    }

    fn try_lock_exclusive(self: Arc<Self>) -> Option<Box<dyn Turn>> {
        let guard = self.actor.clone().try_write_owned().ok()?;
        Some(Box::new(WriteTurn(guard)))
    }

    fn idle_at_ms(&self) -> i64 {
        self.idle_at_ms.load(Ordering::Relaxed)
    }

    fn postpone_idle(&self, at_ms: i64) {
        self.idle_at_ms.fetch_max(at_ms, Ordering::Relaxed);
    }

    fn begin_halt(&self) -> bool {
        if self.halted.swap(true, Ordering::SeqCst) {
            return false;
        }
        self.halting.send_replace(true);
        true
    }

    fn is_halted(&self) -> bool {
        self.halted.load(Ordering::SeqCst)
    }

    fn track(&self, handle: AbortHandle) -> u64 {
        let id = self.next_turn.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut running) = self.running.lock() {
            running.insert(id, handle);
        }
        id
    }

    fn untrack(&self, id: u64) {
        if let Ok(mut running) = self.running.lock() {
            running.remove(&id);
        }
    }

    fn abort_running(&self) {
        if let Ok(running) = self.running.lock() {
            running.values().for_each(AbortHandle::abort);
        }
    }

    fn mark_removed(&self) {
        self.removed.send_replace(true);
    }

    fn removed(&self) -> BoxFuture<'static, ()> {
        let mut rx = self.removed.subscribe();
        Box::pin(async move {
            let _ = rx.wait_for(|removed| *removed).await;
        })
    }
}
