//! The heart of one host: the table of live activations and the local call path
//! (find or activate, take the turn, dispatch), halting and idle deactivation. It implements
//! [`HostHandle`], which is what [`Service`] and actor references call into.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::actor::dispatch::{DispatchError, MethodInfo, MethodKind};
use crate::actor::envelope::Envelope;
use crate::actor::service::{HostHandle, InvokeOptions, Service};
use crate::clock::{BoxFuture, SharedClock};
use crate::error::{ActorFailure, Error};
use crate::host::activation::{ActivationDyn, Turn};
use crate::host::options::HostTimings;
use crate::host::registry::{ActorTypeEntry, Registry};
use crate::store::{ActorKey, HostId, LookupOptions, Store, StoreError};

/// Application data by type, shared with every activation.
pub(crate) type AppData = HashMap<TypeId, Arc<dyn Any + Send + Sync>>;

/// How long a busy activation's idle deactivation is put off.
const IDLE_BUSY_POSTPONE_MS: i64 = 10_000;

/// One host's shared core. Always held in an `Arc`.
pub(crate) struct HostCore {
    pub host_id: HostId,
    pub store: Arc<dyn Store>,
    pub clock: SharedClock,
    pub types: Registry,
    pub timings: HostTimings,
    pub alarm_wake: Notify,
    app_data: AppData,
    table: RwLock<HashMap<ActorKey, Arc<dyn ActivationDyn>>>,
    create_lock: Mutex<()>,
    shutting_down: AtomicBool,
    this: Weak<HostCore>,
}

impl HostCore {
    pub fn new(
        host_id: HostId,
        store: Arc<dyn Store>,
        clock: SharedClock,
        types: Registry,
        timings: HostTimings,
        app_data: AppData,
    ) -> Arc<Self> {
        Arc::new_cyclic(|this| HostCore {
            app_data,
            host_id,
            store,
            clock,
            types,
            timings,
            alarm_wake: Notify::new(),
            table: RwLock::new(HashMap::new()),
            create_lock: Mutex::new(()),
            shutting_down: AtomicBool::new(false),
            this: this.clone(),
        })
    }

    /// A service handle on this host (fails only while the host is being dropped).
    pub fn service(&self) -> Result<Service, Error> {
        self.this
            .upgrade()
            .map(|core| Service::new(core))
            .ok_or(Error::ShuttingDown)
    }

    /// Refuse new work from now on.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// How many activations are live on this host.
    pub fn active_count(&self) -> usize {
        self.table.read().map(|t| t.len()).unwrap_or(0)
    }

    /// Whether this actor is active on this host.
    pub fn is_active(&self, key: &ActorKey) -> bool {
        self.lookup_local(key).is_some()
    }

    fn lookup_local(&self, key: &ActorKey) -> Option<Arc<dyn ActivationDyn>> {
        self.table.read().ok()?.get(key).cloned()
    }

    fn actor_type(&self, actor_type: &str) -> Result<&Arc<ActorTypeEntry>, Error> {
        self.types
            .get(actor_type)
            .ok_or_else(|| Error::UnknownActorType {
                actor_type: actor_type.to_owned(),
            })
    }

    async fn invoke_local(
        &self,
        key: ActorKey,
        method: String,
        args: Envelope,
        options: InvokeOptions,
    ) -> Result<Envelope, Error> {
        if self.is_shutting_down() {
            return Err(Error::ShuttingDown);
        }
        let entry = self.actor_type(&key.actor_type)?;
        let info = entry.method(&method).ok_or_else(|| Error::UnknownMethod {
            actor_type: key.actor_type.clone(),
            method: method.clone(),
            known: entry.method_names(),
        })?;
        match info.kind {
            MethodKind::Alarm => {
                return Err(Error::NotInvokable {
                    actor_type: key.actor_type.clone(),
                    method,
                });
            }
            MethodKind::Exclusive if options.read_only => {
                return Err(Error::NotReadOnly {
                    actor_type: key.actor_type.clone(),
                    method,
                });
            }
            _ => {}
        }
        let mut retried = false;
        loop {
            let activation = self
                .find_or_activate(&key, entry, options.active_only)
                .await?;
            match activation.clone().lock(info.kind).await {
                Ok(turn) => return self.run_turn(&activation, turn, info, args).await,
                // The activation was halted while we waited: wait until it is gone, then try
                // once more on a fresh activation.
                Err(Error::Halted { .. }) if !retried => {
                    retried = true;
                    activation.removed().await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The live activation of `key`, creating it after the store confirms this host owns it.
    pub async fn find_or_activate(
        &self,
        key: &ActorKey,
        entry: &ActorTypeEntry,
        active_only: bool,
    ) -> Result<Arc<dyn ActivationDyn>, Error> {
        if let Some(activation) = self.lookup_local(key) {
            return Ok(activation);
        }
        if active_only {
            return Err(Error::NotActive { key: key.clone() });
        }
        let placement = self
            .store
            .lookup_actor(key, &LookupOptions::default())
            .await
            .map_err(store_error)?;
        if placement.host_id != self.host_id {
            return Err(Error::Unreachable {
                key: key.clone(),
                address: placement.address,
            });
        }
        let _create = self.create_lock.lock().map_err(|_| Error::ShuttingDown)?;
        if let Some(activation) = self.lookup_local(key) {
            return Ok(activation);
        }
        let activation = entry.activate(self.service()?, key.clone(), self.clock.clone());
        let mut table = self.table.write().map_err(|_| Error::ShuttingDown)?;
        table.insert(key.clone(), activation.clone());
        tracing::debug!(actor = %key, "activated");
        Ok(activation)
    }

    /// Run one method in a held turn. The turn runs as its own task, so a caller that gives up
    /// does not cut a turn short, and a panic in the actor does not take the host down.
    pub async fn run_turn(
        &self,
        activation: &Arc<dyn ActivationDyn>,
        mut turn: Box<dyn Turn>,
        info: MethodInfo,
        args: Envelope,
    ) -> Result<Envelope, Error> {
        let task = tokio::spawn(async move { turn.call(info.index, args).await });
        let _tracked = Tracked::new(activation.clone(), task.abort_handle());
        let key = activation.key();
        match task.await {
            Ok(result) => result.map_err(|e| dispatch_error(key, info.name, e)),
            Err(join) if join.is_cancelled() => Err(Error::Halted { key: key.clone() }),
            Err(_) => {
                tracing::error!(actor = %key, method = info.name, "actor method panicked");
                Err(Error::Panicked {
                    key: key.clone(),
                    method: info.name.to_owned(),
                })
            }
        }
    }

    /// Halt one activation: stop new turns, wait for the running one (cancelling it after the
    /// grace period), run the deactivation hook, drop the placement, forget the activation.
    /// `held` is an exclusive turn the caller already holds (idle deactivation).
    pub async fn halt_activation(
        &self,
        activation: Arc<dyn ActivationDyn>,
        held: Option<Box<dyn Turn>>,
    ) {
        if !activation.begin_halt() {
            drop(held);
            activation.removed().await;
            return;
        }
        let key = activation.key().clone();
        let mut turn = match held {
            Some(turn) => turn,
            None => {
                let grace = self.timings.shutdown_grace_period;
                match tokio::time::timeout(grace, activation.clone().lock_for_halt()).await {
                    Ok(turn) => turn,
                    Err(_) => {
                        tracing::warn!(actor = %key, ?grace, "turn still running after the grace period; cancelling it");
                        activation.abort_running();
                        activation.clone().lock_for_halt().await
                    }
                }
            }
        };
        let hook_timeout = self
            .types
            .get(key.actor_type.as_str())
            .map(|e| e.options.deactivation_timeout)
            .unwrap_or_default();
        if !hook_timeout.is_zero()
            && tokio::time::timeout(hook_timeout, turn.deactivate())
                .await
                .is_err()
        {
            tracing::warn!(actor = %key, ?hook_timeout, "deactivation hook timed out");
        }
        // Drop the placement while the halted instance is still in the table, so a concurrent
        // call cannot create a replacement whose placement this would then delete.
        if let Err(e) = self.store.remove_actor(&key, &self.host_id).await {
            tracing::warn!(actor = %key, error = %e, "could not remove placement");
        }
        if let Ok(mut table) = self.table.write()
            && table
                .get(&key)
                .is_some_and(|current| Arc::ptr_eq(current, &activation))
        {
            table.remove(&key);
        }
        activation.mark_removed();
        drop(turn);
        tracing::debug!(actor = %key, "deactivated");
    }

    /// Halt every activation on this host, in parallel.
    pub async fn halt_all_local(&self) {
        let Some(core) = self.this.upgrade() else {
            return;
        };
        let activations: Vec<_> = self
            .table
            .read()
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default();
        let mut set = JoinSet::new();
        for activation in activations {
            let core = core.clone();
            set.spawn(async move { core.halt_activation(activation, None).await });
        }
        while set.join_next().await.is_some() {}
    }

    /// Deactivate every activation whose idle deadline has passed and which is not busy; busy
    /// ones are looked at again 10 seconds later. Returns how many were deactivated.
    pub async fn reap_idle(&self) -> usize {
        let Some(core) = self.this.upgrade() else {
            return 0;
        };
        let now = self.clock.now_ms();
        let due: Vec<_> = self
            .table
            .read()
            .map(|t| {
                t.values()
                    .filter(|a| a.idle_at_ms() <= now && !a.is_halted())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let mut set = JoinSet::new();
        for activation in due {
            match activation.clone().try_lock_exclusive() {
                Some(turn) => {
                    let core = core.clone();
                    set.spawn(async move { core.halt_activation(activation, Some(turn)).await });
                }
                None => activation.postpone_idle(now.saturating_add(IDLE_BUSY_POSTPONE_MS)),
            }
        }
        let mut count = 0;
        while set.join_next().await.is_some() {
            count += 1;
        }
        count
    }
}

impl HostHandle for HostCore {
    fn invoke(
        &self,
        key: ActorKey,
        method: String,
        args: Envelope,
        options: InvokeOptions,
    ) -> BoxFuture<'_, Result<Envelope, Error>> {
        Box::pin(self.invoke_local(key, method, args, options))
    }

    fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn clock(&self) -> &SharedClock {
        &self.clock
    }

    fn halt(&self, key: ActorKey) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let activation = self.lookup_local(&key).ok_or(Error::NotHosted { key })?;
            self.halt_activation(activation, None).await;
            Ok(())
        })
    }

    fn halt_all(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            self.halt_all_local().await;
            Ok(())
        })
    }

    fn halt_deferred(&self, key: ActorKey) {
        let Some(core) = self.this.upgrade() else {
            return;
        };
        tokio::spawn(async move {
            if let Some(activation) = core.lookup_local(&key) {
                core.halt_activation(activation, None).await;
            }
        });
    }

    fn check_alarm_handler(&self, actor_type: &str, handler: &str) -> Result<(), Error> {
        let Some(entry) = self.types.get(actor_type) else {
            return Ok(());
        };
        match entry.method(handler) {
            Some(info) if info.kind == MethodKind::Alarm => Ok(()),
            _ => {
                let handlers: Vec<&str> = entry
                    .methods
                    .iter()
                    .filter(|m| m.kind == MethodKind::Alarm)
                    .map(|m| m.name)
                    .collect();
                Err(Error::InvalidAlarm(format!(
                    "actor type {actor_type:?} has no alarm handler {handler:?}; its #[alarm] methods are: {}",
                    if handlers.is_empty() {
                        "(none)".to_owned()
                    } else {
                        handlers.join(", ")
                    }
                )))
            }
        }
    }

    fn alarms_changed(&self) {
        self.alarm_wake.notify_one();
    }

    fn app_data(&self, type_id: TypeId) -> Option<Arc<dyn Any + Send + Sync>> {
        self.app_data.get(&type_id).cloned()
    }
}

/// Keeps a running turn task cancellable by a halt until it ends (or its caller gives up).
struct Tracked {
    activation: Arc<dyn ActivationDyn>,
    id: u64,
}

impl Tracked {
    fn new(activation: Arc<dyn ActivationDyn>, handle: tokio::task::AbortHandle) -> Self {
        let id = activation.track(handle);
        Tracked { activation, id }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.activation.untrack(self.id);
    }
}

/// Map a store error to the framework error a caller should see.
pub(crate) fn store_error(e: StoreError) -> Error {
    match e {
        StoreError::NoHost { actor_type } => Error::NoHost { actor_type },
        StoreError::NotActive { key } => Error::NotActive { key },
        other => Error::Store(other),
    }
}

/// Map a dispatch failure to the framework error a caller should see.
pub(crate) fn dispatch_error(key: &ActorKey, method: &str, e: DispatchError) -> Error {
    match e {
        DispatchError::BadArguments(reason) => Error::BadArguments {
            actor_type: key.actor_type.clone(),
            method: method.to_owned(),
            reason: reason.0,
        },
        DispatchError::BadResult(e) => Error::Codec(e),
        DispatchError::Actor { message, payload } => Error::Actor(Box::new(ActorFailure {
            key: key.clone(),
            method: method.to_owned(),
            message,
            payload,
        })),
        DispatchError::NoSuchMethod => Error::UnknownMethod {
            actor_type: key.actor_type.clone(),
            method: method.to_owned(),
            known: String::new(),
        },
    }
}
