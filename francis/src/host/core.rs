//! The heart of one host: the table of live activations and the call path (the live
//! activation, or the placement from the cache or the store; find or activate, take the turn,
//! dispatch; or forward the call to the owning host, re-resolving and retrying once when the
//! placement was stale), halting and idle deactivation. It implements [`HostHandle`], which is
//! what [`Service`] and actor references call into.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::actor::dispatch::{BOOTSTRAP_WIRE_NAME, DispatchError, MethodInfo, MethodKind};
use crate::actor::service::{HostHandle, HostStatus, InvokeOptions, Service, Topology};
use crate::clock::{BoxFuture, SharedClock};
use crate::cluster::actions::HostOrder;
use crate::error::{ActorFailure, Error};
use crate::host::activation::{Activation, TurnError};
use crate::host::links::Links;
use crate::host::options::HostTimings;
use crate::host::placement::PlacementCache;
use crate::host::reachability::Reachability;
use crate::host::registry::{ActorTypeEntry, Registry};
use crate::model::{ActorKey, Envelope, HostId, LookupOptions, Placement, Store, StoreError};
use crate::net::peer::PeerClient;
use crate::net::translate::error_from_wire;
use crate::net::wire::{AdminRequest, AdminResponse, ErrorCode, InvokeRequest};
use crate::telemetry::metrics::metrics;
use tracing::Instrument;

/// Application data by type, shared with every activation.
pub(crate) type AppData = HashMap<TypeId, Arc<dyn Any + Send + Sync>>;

/// Whether the store has just confirmed that this host owns an actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ownership {
    /// The placement came from the store now: activate without asking again.
    Confirmed,
    /// Ask the store before activating (the placement came from a cache, or from another host).
    Unconfirmed,
}

/// The longest wait before retrying a call that hit a stale placement.
const MAX_RETRY_WAIT: Duration = Duration::from_millis(1000);

/// The longest deadline a forwarded call is given, whatever was asked (a day): beyond it, the
/// clock arithmetic of a deadline would gain nothing and could overflow.
const MAX_CALL_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// How long a busy activation's idle deactivation is put off.
const IDLE_BUSY_POSTPONE_MS: i64 = 10_000;

/// What a host core is made of.
pub(crate) struct CoreParts {
    pub host_id: HostId,
    /// The address peers reach this host on, as registered.
    pub address: String,
    pub store: Arc<dyn Store>,
    pub clock: SharedClock,
    pub types: Registry,
    pub timings: HostTimings,
    pub app_data: AppData,
    /// How calls reach other hosts; `None` for a host without networking (tests).
    pub peer_client: Option<PeerClient>,
    /// Whether the store is the host's own or its link to a runtime.
    pub topology: Topology,
    /// The security profile it was built with.
    pub profile: crate::profile::Profile,
}

/// One host's shared core. Always held in an `Arc`.
pub(crate) struct HostCore {
    pub host_id: HostId,
    pub address: String,
    pub store: Arc<dyn Store>,
    pub clock: SharedClock,
    pub types: Registry,
    pub timings: HostTimings,
    pub alarm_wake: Notify,
    placements: PlacementCache,
    /// Peers this host failed to reach, which new placements skip.
    reachability: Reachability,
    /// What this host has seen of its links to peers.
    pub(crate) links: Links,
    /// What this host remembers of the cluster between looks, and its timeline.
    pub(crate) watch: crate::cluster::ClusterWatch,
    pub(crate) peer_client: Option<PeerClient>,
    topology: Topology,
    profile: crate::profile::Profile,
    app_data: AppData,
    table: RwLock<HashMap<ActorKey, Arc<Activation>>>,
    create_lock: Mutex<()>,
    /// Set once the host starts shutting down; the peer server's draining flag too.
    shutting_down: Arc<AtomicBool>,
    this: Weak<HostCore>,
}

impl HostCore {
    pub fn new(parts: CoreParts) -> Arc<Self> {
        let CoreParts {
            host_id,
            address,
            store,
            clock,
            types,
            timings,
            app_data,
            peer_client,
            topology,
            profile,
        } = parts;
        let reachability = Reachability::new(clock.clone());
        let links = Links::new(clock.clone());
        Arc::new_cyclic(|this| HostCore {
            host_id,
            address,
            store,
            clock,
            types,
            timings,
            alarm_wake: Notify::new(),
            placements: PlacementCache::default(),
            reachability,
            links,
            watch: crate::cluster::ClusterWatch::new(),
            peer_client,
            topology,
            profile,
            app_data,
            table: RwLock::new(HashMap::new()),
            create_lock: Mutex::new(()),
            shutting_down: Arc::default(),
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

    /// This core as an `Arc` (fails only while the host is being dropped).
    pub fn arc(&self) -> Result<Arc<HostCore>, Error> {
        self.this.upgrade().ok_or(Error::ShuttingDown)
    }

    /// Refuse new work from now on. Taken under the creation lock, so no activation that
    /// passed the check is still being created once this returns: whatever is in the table
    /// then is everything a shutdown has to halt.
    pub fn begin_shutdown(&self) {
        let _create = self.create_lock.lock();
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// The flag [`Self::begin_shutdown`] sets, for the peer server to refuse calls from then on.
    pub fn draining(&self) -> Arc<AtomicBool> {
        self.shutting_down.clone()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Whether the store is the host's own (local) or its link to a runtime (remote).
    pub(crate) fn topology(&self) -> Topology {
        self.topology
    }

    /// How many activations are live on this host.
    pub fn active_count(&self) -> usize {
        self.table.read().map(|t| t.len()).unwrap_or(0)
    }

    /// Whether this actor is active on this host.
    pub fn is_active(&self, key: &ActorKey) -> bool {
        self.lookup_local(key).is_some()
    }

    pub(crate) fn lookup_local(&self, key: &ActorKey) -> Option<Arc<Activation>> {
        self.table.read().ok()?.get(key).cloned()
    }

    fn actor_type(&self, actor_type: &str) -> Result<&Arc<ActorTypeEntry>, Error> {
        self.types
            .get(actor_type)
            .ok_or_else(|| Error::UnknownActorType {
                actor_type: actor_type.to_owned(),
            })
    }

    /// Route a call whose actor is not live on this host: to wherever its placement says,
    /// activating it here if that is this host.
    async fn invoke_routed(
        &self,
        key: &ActorKey,
        method: &str,
        args: Envelope,
        options: InvokeOptions,
    ) -> Result<Envelope, Error> {
        let (placement, ownership) = match self.resolve(key, options.active_only, false).await {
            Err(Error::NoHost { actor_type }) if !self.types.contains_key(actor_type.as_str()) => {
                return Err(Error::UnknownActorType { actor_type });
            }
            other => other?,
        };
        if placement.host_id != self.host_id {
            return self.forward(key, method, args, options, placement).await;
        }
        match self
            .invoke_here(key, method, args.clone(), options, ownership)
            .await
        {
            // The cached placement was stale and the actor lives elsewhere now.
            Err(Error::Unreachable { .. }) => {
                self.placements.invalidate(key);
                let (fresh, _) = self.resolve(key, options.active_only, true).await?;
                self.forward(key, method, args, options, fresh).await
            }
            other => other,
        }
    }

    /// Where `key` lives: from the cache, or the store (which places it if needed), and
    /// whether the store just said so ([`Ownership::Confirmed`]) or the cache did.
    async fn resolve(
        &self,
        key: &ActorKey,
        active_only: bool,
        skip_cache: bool,
    ) -> Result<(Placement, Ownership), Error> {
        let now = self.clock.now_ms();
        if !skip_cache
            && !active_only
            && let Some(placement) = self.placements.get(key, now)
        {
            metrics().placement_lookups.with(&["cache"]).inc();
            return Ok((placement, Ownership::Unconfirmed));
        }
        metrics().placement_lookups.with(&["store"]).inc();
        let options = LookupOptions {
            active_only,
            allowed_hosts: None,
            avoid_hosts: self.reachability.skipped(),
        };
        let placement = self
            .store
            .lookup_actor(key, &options)
            .instrument(tracing::debug_span!(
                "placement.lookup",
                "francis.actor.type" = %key.actor_type,
                "francis.actor.id" = %key.actor_id,
            ))
            .await
            .map_err(store_error)?;
        self.placements.put(key, &placement, now);
        Ok((placement, Ownership::Confirmed))
    }

    /// Call an actor that lives on another host, retrying once on a stale placement, within
    /// the call's deadline (its own, or the host's `request_timeout`).
    async fn forward(
        &self,
        key: &ActorKey,
        method: &str,
        args: Envelope,
        options: InvokeOptions,
        placement: Placement,
    ) -> Result<Envelope, Error> {
        let limit = options.timeout.unwrap_or(self.timings.request_timeout);
        let deadline = tokio::time::Instant::now() + limit.min(MAX_CALL_TIMEOUT);
        let timed_out = || Error::Timeout {
            key: key.clone(),
            method: method.to_owned(),
            timeout: limit,
        };
        match tokio::time::timeout_at(
            deadline,
            self.forward_until(key, method, args, options, placement, deadline),
        )
        .await
        {
            Ok(Err(Error::Remote { code, .. })) if code == ErrorCode::DeadlineExceeded.as_str() => {
                Err(timed_out())
            }
            Ok(result) => result,
            Err(_) => Err(timed_out()),
        }
    }

    /// [`Self::forward`] without its deadline; each request tells the owner how long is left.
    async fn forward_until(
        &self,
        key: &ActorKey,
        method: &str,
        args: Envelope,
        options: InvokeOptions,
        mut placement: Placement,
        deadline: tokio::time::Instant,
    ) -> Result<Envelope, Error> {
        let data = args.into_msgpack()?;
        let mut request = InvokeRequest::new(
            placement.host_id.clone(),
            key.actor_type.clone(),
            key.actor_id.clone(),
            method,
            data,
        );
        request.active_only = options.active_only;
        request.read_only = options.read_only;
        let Some(peer) = &self.peer_client else {
            return Err(Error::Unreachable {
                key: key.clone(),
                address: placement.address,
            });
        };
        let mut retried = false;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            request.timeout_ms = Some(u64::try_from(left.as_millis()).unwrap_or(u64::MAX).max(1));
            let sent = std::time::Instant::now();
            let error = match peer.invoke(&placement.address, request.clone()).await {
                Ok(response) => {
                    self.reachability.reached(&placement.host_id);
                    self.links
                        .reached(&placement.host_id, &placement.address, sent.elapsed());
                    return Ok(Envelope::from_msgpack_bytes(response.data));
                }
                Err(e) => {
                    if e.is_unreachable() {
                        let reason = e.to_string();
                        self.reachability.failed(&placement.host_id, &reason);
                        self.links
                            .failed(&placement.host_id, &placement.address, &reason);
                    } else {
                        self.reachability.reached(&placement.host_id);
                        self.links
                            .reached(&placement.host_id, &placement.address, sent.elapsed());
                    }
                    e.into_wire()
                }
            };
            let stale = error.retryable() || error.code == ErrorCode::ActorNotActive;
            if retried || !stale {
                return Err(error_from_wire(key, method, &placement.address, error));
            }
            retried = true;
            self.placements.invalidate(key);
            tokio::time::sleep(error.retry_after().unwrap_or_default().min(MAX_RETRY_WAIT)).await;
            let (fresh, _) = self.resolve(key, options.active_only, true).await?;
            if fresh.host_id == self.host_id {
                let args = Envelope::from_msgpack_bytes(std::mem::take(&mut request.data));
                return self
                    .invoke_here(key, method, args, options, Ownership::Confirmed)
                    .await;
            }
            request.target_host_id = fresh.host_id.clone();
            placement = fresh;
        }
    }

    /// Run a call on this host. An actor that is not live here is activated once this host's
    /// ownership is confirmed: by the placement the caller just got from the store, or else by
    /// asking the store.
    pub(crate) async fn invoke_here(
        &self,
        key: &ActorKey,
        method: &str,
        args: Envelope,
        options: InvokeOptions,
        ownership: Ownership,
    ) -> Result<Envelope, Error> {
        self.call_local(key, method, args, options, None, ownership)
            .await
    }

    /// Run a call on this host: on `live` if given, else on the activation found or created.
    /// The method is checked before anything is activated. A call that finds its activation
    /// halting is retried once on a fresh activation (whose ownership is asked of the store
    /// again: halting dropped the placement).
    async fn call_local(
        &self,
        key: &ActorKey,
        method: &str,
        mut args: Envelope,
        options: InvokeOptions,
        mut live: Option<Arc<Activation>>,
        mut ownership: Ownership,
    ) -> Result<Envelope, Error> {
        if method == BOOTSTRAP_WIRE_NAME {
            let entry = self.actor_type(&key.actor_type)?;
            let activation = match live {
                Some(activation) => activation,
                None => {
                    self.find_or_activate(key, entry, options.active_only, ownership)
                        .await?
                }
            };
            return self.bootstrap_here(entry, &activation).await;
        }
        let mut retried = false;
        // Called for an activation found live here (the fast path of `invoke`): a retry after a
        // halt is routed afresh, since the actor may have moved meanwhile.
        let from_live = live.is_some();
        loop {
            let (activation, info) = match live.take() {
                Some(activation) => {
                    let info = callable(key, activation.methods(), method, options)?;
                    (activation, info)
                }
                None => {
                    let entry = self.actor_type(&key.actor_type)?;
                    let info = callable(key, entry.methods, method, options)?;
                    let activation = self
                        .find_or_activate(key, entry, options.active_only, ownership)
                        .await?;
                    (activation, info)
                }
            };
            if activation.awaiting_bootstrap()
                && let Some(entry) = self.types.get(key.actor_type.as_str())
            {
                self.bootstrap_new(entry, &activation);
            }
            match activation.call(info.kind, info.index, args).await {
                Ok(out) => return Ok(out),
                // The activation was halting and the method never ran: wait until it is gone,
                // then try once more on a fresh activation.
                Err(TurnError::Halted { args: Some(unused) }) if !retried => {
                    retried = true;
                    activation.removed().await;
                    if from_live {
                        // Through `invoke` again: the halted activation is gone, so the call
                        // finds a fresh one here, or goes to wherever the actor is placed now.
                        self.placements.invalidate(key);
                        return <Self as HostHandle>::invoke(self, key, method, unused, options)
                            .await;
                    }
                    args = unused;
                    ownership = Ownership::Unconfirmed;
                }
                Err(e) => return Err(turn_error(key, info.name, e)),
            }
        }
    }

    /// The live activation of `key`, or a new one once this host's ownership is confirmed (by
    /// the caller, or here by asking the store). A host that is shutting down activates
    /// nothing.
    pub async fn find_or_activate(
        &self,
        key: &ActorKey,
        entry: &ActorTypeEntry,
        active_only: bool,
        ownership: Ownership,
    ) -> Result<Arc<Activation>, Error> {
        if let Some(activation) = self.lookup_local(key) {
            return Ok(activation);
        }
        if active_only {
            return Err(Error::NotActive { key: key.clone() });
        }
        if ownership == Ownership::Unconfirmed {
            metrics().placement_lookups.with(&["store"]).inc();
            let placement = self
                .store
                .lookup_actor(key, &LookupOptions::default())
                .instrument(tracing::debug_span!(
                    "placement.lookup",
                    "francis.actor.type" = %key.actor_type,
                    "francis.actor.id" = %key.actor_id,
                ))
                .await
                .map_err(store_error)?;
            if placement.host_id != self.host_id {
                return Err(Error::Unreachable {
                    key: key.clone(),
                    address: placement.address,
                });
            }
        }
        let _create = self.create_lock.lock().map_err(|_| Error::ShuttingDown)?;
        if self.is_shutting_down() {
            return Err(Error::ShuttingDown);
        }
        if let Some(activation) = self.lookup_local(key) {
            return Ok(activation);
        }
        let activation = {
            let _span = tracing::debug_span!(
                "actor.activate",
                "francis.actor.type" = %key.actor_type,
                "francis.actor.id" = %key.actor_id,
            )
            .entered();
            entry.activate(self.service()?, key.clone(), self.clock.clone())
        };
        // Ahead of any call: nothing else can reach the activation before it is in the table.
        self.bootstrap_new(entry, &activation);
        let mut table = self.table.write().map_err(|_| Error::ShuttingDown)?;
        table.insert(key.clone(), activation.clone());
        tracing::debug!(actor = %key, "activated");
        Ok(activation)
    }

    /// Halt one activation: stop new turns, let the running one finish (cancelling it after
    /// the grace period), run the deactivation hook, drop the placement, forget the activation.
    pub async fn halt_activation(&self, activation: Arc<Activation>, grace: Duration) {
        if !activation.begin_halt() {
            activation.removed().await;
            return;
        }
        let key = activation.key().clone();
        if tokio::time::timeout(grace, activation.stopped())
            .await
            .is_err()
        {
            tracing::warn!(actor = %key, ?grace, "turn still running after the grace period; cancelling it");
            activation.abort();
            activation.stopped().await;
        }
        // Drop the placement while the halted activation is still in the table, so a concurrent
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
        tracing::debug!(actor = %key, "deactivated");
    }

    /// Halt every activation on this host, in parallel, giving running turns `grace` to end.
    pub async fn halt_all_local(&self, grace: Duration) {
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
            set.spawn(async move { core.halt_activation(activation, grace).await });
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
            if activation.is_busy() {
                activation.postpone_idle(now.saturating_add(IDLE_BUSY_POSTPONE_MS));
            } else {
                let core = core.clone();
                set.spawn(async move {
                    core.halt_activation(activation, core.timings.shutdown_grace_period)
                        .await
                });
            }
        }
        let mut count = 0;
        while set.join_next().await.is_some() {
            count += 1;
        }
        count
    }
}

impl crate::actor::service::sealed::Sealed for HostCore {}

impl HostHandle for HostCore {
    fn invoke<'a>(
        &'a self,
        key: &'a ActorKey,
        method: &'a str,
        args: Envelope,
        options: InvokeOptions,
    ) -> BoxFuture<'a, Result<Envelope, Error>> {
        if self.is_shutting_down() {
            return Box::pin(std::future::ready(Err(Error::ShuttingDown)));
        }
        let call: BoxFuture<'a, Result<Envelope, Error>> = match self.lookup_local(key) {
            // The common case, kept apart so its future stays small: the actor is live here.
            Some(live) => Box::pin(self.call_local(
                key,
                method,
                args,
                options,
                Some(live),
                Ownership::Unconfirmed,
            )),
            None => Box::pin(self.invoke_routed(key, method, args, options)),
        };
        // Without a subscriber that wants debug spans (no exporter, no debug logs) the call is
        // not wrapped at all, and no span is built.
        if !crate::telemetry::context::debug_spans() {
            return call;
        }
        let span = tracing::debug_span!(
            "actor.invoke",
            "francis.actor.type" = %key.actor_type,
            "francis.actor.id" = %key.actor_id,
            "francis.actor.method" = method,
        );
        if span.is_disabled() {
            call
        } else {
            Box::pin(call.instrument(span))
        }
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
            self.halt_activation(activation, self.timings.shutdown_grace_period)
                .await;
            Ok(())
        })
    }

    fn halt_all(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            self.halt_all_local(self.timings.shutdown_grace_period)
                .await;
            Ok(())
        })
    }

    fn halt_deferred(&self, key: ActorKey) {
        let Some(core) = self.this.upgrade() else {
            return;
        };
        tokio::spawn(async move {
            if let Some(activation) = core.lookup_local(&key) {
                core.halt_activation(activation, core.timings.shutdown_grace_period)
                    .await;
            }
        });
    }

    fn alarm_handler(
        &self,
        actor_type: &str,
        requested: Option<&str>,
        name: &str,
    ) -> Result<String, Error> {
        let Some(entry) = self.types.get(actor_type) else {
            // Another host may know the type; it checks the handler when the alarm fires.
            return Ok(requested.unwrap_or(name).to_owned());
        };
        let handlers: Vec<&str> = entry
            .methods
            .iter()
            .filter(|m| m.kind == MethodKind::Alarm)
            .map(|m| m.name)
            .collect();
        let chosen = match requested {
            Some(handler) => handlers.iter().find(|h| **h == handler),
            None => handlers
                .iter()
                .find(|h| **h == name)
                .or(if handlers.len() == 1 {
                    handlers.first()
                } else {
                    None
                }),
        };
        chosen.map(|h| (*h).to_owned()).ok_or_else(|| {
            let listed = names_of_kind(entry.methods, MethodKind::Alarm);
            Error::InvalidAlarm(match requested {
                Some(handler) => format!("actor type {actor_type:?} has no alarm handler {handler:?}; its #[alarm] methods are: {listed}"),
                None => format!("actor type {actor_type:?} has no alarm handler named {name:?} and more than one to choose from; name one of: {listed}"),
            })
        })
    }

    fn check_job_method(&self, actor_type: &str, method: &str) -> Result<(), Error> {
        let Some(entry) = self.types.get(actor_type) else {
            return Ok(());
        };
        if entry
            .method(method)
            .is_some_and(|m| m.kind == MethodKind::Job)
        {
            return Ok(());
        }
        let listed = names_of_kind(entry.methods, MethodKind::Job);
        Err(Error::InvalidJob(format!(
            "actor type {actor_type:?} has no #[job] method {method:?}; its #[job] methods are: {listed}"
        )))
    }

    fn alarms_changed(&self) {
        self.alarm_wake.notify_one();
    }

    fn app_data(&self, type_id: TypeId) -> Option<Arc<dyn Any + Send + Sync>> {
        self.app_data.get(&type_id).cloned()
    }

    fn status(&self) -> Option<HostStatus> {
        Some(HostStatus {
            host_id: self.host_id.clone(),
            address: self.address.clone(),
            active_actors: self.active_count(),
            topology: self.topology,
            profile: self.profile,
            unreachable_peers: self.reachability.report(),
        })
    }

    fn is_shutting_down(&self) -> bool {
        HostCore::is_shutting_down(self)
    }

    fn cluster_state(
        &self,
        caller: Option<crate::cluster::Caller>,
    ) -> Option<BoxFuture<'_, Result<crate::cluster::ClusterState, Error>>> {
        Some(Box::pin(self.observe_cluster(caller)))
    }

    fn record_event(&self, event: crate::cluster::TimelineEvent) {
        self.watch.record(event);
    }

    fn relay_order(
        &self,
        host_id: &str,
        address: &str,
        order: HostOrder,
    ) -> Option<BoxFuture<'_, Result<u64, Error>>> {
        let (host_id, address) = (host_id.to_owned(), address.to_owned());
        Some(Box::pin(async move {
            self.relay_admin(&host_id, &address, order)
                .await
                .map(|r| r.halted)
        }))
    }
}

impl HostCore {
    /// Run an operator's action on this host (relayed by the node serving the operations API,
    /// or called here when that node is this host). Deactivations begin at once and end in the
    /// background, each turn given the shutdown grace period; the answer counts them.
    pub(crate) async fn admin(&self, action: HostOrder) -> Result<AdminResponse, Error> {
        let grace = self.timings.shutdown_grace_period;
        let chosen: Vec<Arc<Activation>> = match &action {
            HostOrder::SetLogLevel { filter } => {
                crate::telemetry::set_log_filter(filter)
                    .map_err(|e| Error::Config(e.to_string()))?;
                tracing::warn!(%filter, "log filter changed by an operator");
                return Ok(AdminResponse::default());
            }
            HostOrder::Drain => {
                tracing::warn!("drained by an operator: deactivating every actor here");
                self.activations_where(|_| true)
            }
            HostOrder::HaltActor {
                actor_type,
                actor_id,
            } => self.activations_where(|key| {
                &key.actor_type == actor_type && &key.actor_id == actor_id
            }),
            HostOrder::HaltType { actor_type } => {
                self.activations_where(|key| &key.actor_type == actor_type)
            }
        };
        let halted = chosen.len() as u64;
        let core = self.arc()?;
        tokio::spawn(async move {
            let mut set = JoinSet::new();
            for activation in chosen {
                let core = core.clone();
                set.spawn(async move { core.halt_activation(activation, grace).await });
            }
            while set.join_next().await.is_some() {}
        });
        Ok(AdminResponse { halted })
    }

    /// The live activations whose key `keep` accepts.
    fn activations_where(&self, keep: impl Fn(&ActorKey) -> bool) -> Vec<Arc<Activation>> {
        self.table
            .read()
            .map(|t| {
                t.iter()
                    .filter(|(key, _)| keep(key))
                    .map(|(_, a)| a.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Relay an operator's action to host `host_id` at `address`: run here when it is this
    /// host, else over the peer link.
    pub(crate) async fn relay_admin(
        &self,
        host_id: &str,
        address: &str,
        action: HostOrder,
    ) -> Result<AdminResponse, Error> {
        if host_id == self.host_id {
            return self.admin(action).await;
        }
        let Some(peer) = &self.peer_client else {
            return Err(Error::Config(
                "this host has no peer link to relay the action over".into(),
            ));
        };
        let request = AdminRequest {
            target_host_id: host_id.to_owned(),
            action,
        };
        peer.admin(address, request)
            .await
            .map_err(|e| Error::Config(format!("host {host_id} at {address}: {e}")))
    }

    /// The state view from this host: the store's hosts, placements and due alarms, this
    /// host's links, and its timeline.
    async fn observe_cluster(
        &self,
        caller: Option<crate::cluster::Caller>,
    ) -> Result<crate::cluster::ClusterState, Error> {
        use crate::cluster::{NodeKind, NodeRef, Observations, Thresholds, compute, hosts_of};
        if self.topology == crate::actor::service::Topology::Remote {
            return Err(Error::Config(
                "this host belongs to the remote topology: the runtime owns the store and serves the cluster state; ask the runtime's operations server (http.bind, e.g. francis cluster status --url http://<runtime>:8444)".into(),
            ));
        }
        let observation = self.store.observe_cluster().await.map_err(store_error)?;
        let now_ms = self.clock.now_ms();
        let hosts = hosts_of(&observation);
        let departures = self.watch.observe(now_ms, &hosts);
        let mut observations = Observations::new(
            now_ms,
            NodeRef::new(NodeKind::Host, self.host_id.clone(), self.address.clone()),
            self.profile.as_str(),
        );
        observations.caller = caller;
        observations.hosts = hosts;
        observations.recent_departures = departures;
        observations.events = self.watch.events();
        observations.links = self.links.snapshot();
        Ok(compute(
            &observations,
            &Thresholds::from_deadline(self.timings.health_check_deadline),
        ))
    }
}

/// The method `method` of `key`'s type (whose method table is `methods`), if these options
/// let a caller invoke it; else the error saying why not.
fn callable(
    key: &ActorKey,
    methods: &[MethodInfo],
    method: &str,
    options: InvokeOptions,
) -> Result<MethodInfo, Error> {
    let Some(info) = MethodInfo::find(methods, method) else {
        return Err(Error::UnknownMethod {
            actor_type: key.actor_type.clone(),
            method: method.to_owned(),
            known: method_names(methods),
        });
    };
    match info.kind {
        kind if !kind.is_invokable() => Err(Error::NotInvokable {
            actor_type: key.actor_type.clone(),
            method: method.to_owned(),
        }),
        MethodKind::Exclusive if options.read_only => Err(Error::NotReadOnly {
            actor_type: key.actor_type.clone(),
            method: method.to_owned(),
        }),
        _ => Ok(info),
    }
}

/// The names of a method table's methods of one kind, for error messages.
fn names_of_kind(methods: &[MethodInfo], kind: MethodKind) -> String {
    let names: Vec<&str> = methods
        .iter()
        .filter(|m| m.kind == kind)
        .map(|m| m.name)
        .collect();
    if names.is_empty() {
        return "(none)".to_owned();
    }
    names.join(", ")
}

/// The names of a method table, for error messages.
fn method_names(methods: &[MethodInfo]) -> String {
    if methods.is_empty() {
        return "(none)".to_owned();
    }
    let names: Vec<&str> = methods.iter().map(|m| m.name).collect();
    names.join(", ")
}

/// Map a store error to the framework error a caller should see.
pub(crate) fn store_error(e: StoreError) -> Error {
    match e {
        StoreError::NoHost { actor_type } => Error::NoHost { actor_type },
        StoreError::NotActive { key } => Error::NotActive { key },
        other => Error::Store(other),
    }
}

/// Map a turn failure to the framework error a caller should see.
pub(crate) fn turn_error(key: &ActorKey, method: &str, e: TurnError) -> Error {
    match e {
        TurnError::Dispatch(e) => dispatch_error(key, method, e),
        TurnError::Halted { .. } => Error::Halted { key: key.clone() },
        TurnError::Overloaded { limit } => Error::Overloaded {
            key: key.clone(),
            reason: format!("its activation holds {limit} calls, its type's max_queued_calls"),
        },
        TurnError::Panicked => {
            tracing::error!(actor = %key, method, "actor method panicked");
            Error::Panicked {
                key: key.clone(),
                method: method.to_owned(),
            }
        }
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
        DispatchError::Job { message, .. } => Error::Actor(Box::new(ActorFailure {
            key: key.clone(),
            method: method.to_owned(),
            message,
            payload: Envelope::empty(),
        })),
        DispatchError::NoSuchMethod => Error::UnknownMethod {
            actor_type: key.actor_type.clone(),
            method: method.to_owned(),
            known: String::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use async_trait::async_trait;

    use super::*;
    use crate::model::{
        AlarmCompletion, AlarmLease, AlarmRecord, CleanupStats, ClusterIdentity,
        ClusterObservation, DeadLetter, DeadLetterQuery, FetchAlarms, HostInfo, HostRegistration,
        JobInfo, JobRecord, ListStatesOptions, StateList, StoreOptions,
    };
    use crate::net::runtime::messages::for_each_store_op;
    use crate::prelude::*;
    use crate::store::memory::MemoryStore;

    struct Counter;

    #[crate::actor]
    impl Counter {
        fn activate(_ctx: &ActorContext) -> Self {
            Counter
        }

        pub async fn ping(&self) -> Result<(), String> {
            Ok(())
        }
    }

    /// A memory store that counts placement lookups.
    struct CountingStore {
        inner: MemoryStore,
        lookups: AtomicUsize,
    }

    macro_rules! counting_store {
        ($(
            $op:ident ( $( $param:ident : $ty:ty $(=> $wire:ty)? $([$scope:ident])? ),* $(,)? )
                -> $ret:ty $(=> $ret_wire:ty)? ;
        )*) => {
            #[async_trait]
            impl Store for CountingStore {
                fn options(&self) -> &StoreOptions {
                    self.inner.options()
                }
                async fn register_host(&self, r: &HostRegistration) -> Result<HostId, StoreError> {
                    self.inner.register_host(r).await
                }
                async fn reattach_host(
                    &self,
                    id: &str,
                    r: &HostRegistration,
                ) -> Result<bool, StoreError> {
                    self.inner.reattach_host(id, r).await
                }
                async fn cleanup(&self) -> Result<CleanupStats, StoreError> {
                    self.inner.cleanup().await
                }
                async fn claim_cluster_identity(
                    &self,
                    fingerprints: &[String],
                ) -> Result<ClusterIdentity, StoreError> {
                    self.inner.claim_cluster_identity(fingerprints).await
                }
                async fn observe_cluster(&self) -> Result<ClusterObservation, StoreError> {
                    self.inner.observe_cluster().await
                }
                $(
                    async fn $op(&self, $($param: $ty),*) -> Result<$ret, StoreError> {
                        if stringify!($op) == "lookup_actor" {
                            self.lookups.fetch_add(1, Ordering::SeqCst);
                        }
                        self.inner.$op($($param),*).await
                    }
                )*
            }
        };
    }

    for_each_store_op!(counting_store);

    #[tokio::test]
    async fn a_cold_activation_asks_the_store_for_the_placement_once() {
        let store = Arc::new(CountingStore {
            inner: MemoryStore::new(StoreOptions {
                clock: Arc::new(crate::clock::SystemClock),
                health_check_deadline: Duration::from_secs(20),
            }),
            lookups: AtomicUsize::new(0),
        });
        let host = crate::Host::local()
            .address("cold-activation-test:1")
            .runtime_psk([7u8; crate::host::MIN_PSK_LEN])
            .store(store.clone())
            .register::<Counter>()
            .without_network()
            .build()
            .await
            .unwrap();
        let counter: ActorRef<Counter> = host.service().actor("a");
        counter.ping().await.unwrap();
        assert_eq!(store.lookups.load(Ordering::SeqCst), 1, "cold call");
        counter.ping().await.unwrap();
        assert_eq!(store.lookups.load(Ordering::SeqCst), 1, "warm call");

        // After a halt the cached placement still names this host; the store confirms it once
        // before the actor is activated again.
        host.service().halt("counter", "a").await.unwrap();
        counter.ping().await.unwrap();
        assert_eq!(store.lookups.load(Ordering::SeqCst), 2, "after a halt");
    }

    #[tokio::test]
    async fn a_host_that_is_shutting_down_activates_nothing() {
        let host = crate::testing::TestHost::builder()
            .register::<Counter>()
            .build()
            .await
            .unwrap();
        let core = host.core_for_tests();
        core.begin_shutdown();
        let key = ActorKey::new("counter", "late");
        // The way a forwarded call (or a retry after a halt) reaches the activation table.
        let err = core
            .invoke_here(
                &key,
                "ping",
                Envelope::empty(),
                InvokeOptions::default(),
                Ownership::Confirmed,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::ShuttingDown), "{err}");
        assert!(!core.is_active(&key));
    }
}
