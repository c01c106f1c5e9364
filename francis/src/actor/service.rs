//! [`Service`]: the handle for invoking actors and managing their state and alarms, and the
//! small [`HostHandle`] trait it calls into, which each host implementation provides.

use std::any::{Any, TypeId};
use std::sync::Arc;
use std::time::Duration;

use crate::actor::alarm::AlarmSpec;
use crate::actor::dispatch::Actor;
use crate::actor::job::{JobId, JobSpec};
use crate::actor::reference::{ActorRef, RawRef};
use crate::clock::{BoxFuture, SharedClock};
use crate::error::{Error, validate_name};
use crate::model::Envelope;
use crate::model::{
    ActorKey, AlarmRecord, DeadLetter, DeadLetterQuery, JobInfo, ListStatesOptions, StateList,
    Store,
};

/// Options for one invocation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InvokeOptions {
    /// Only call the actor if it is already active somewhere; never activate it.
    pub active_only: bool,
    /// Only allow shared (`&self`) methods: the call fails with [`Error::NotReadOnly`] if the
    /// method takes an exclusive turn (what `peek` routes of HTTP bridges use).
    pub read_only: bool,
    /// How long to wait for a call forwarded to another host before failing with
    /// [`Error::Timeout`]; the owner is told and gives up too. `None`: the host's
    /// `request_timeout` ([`crate::host::DEFAULT_CALL_TIMEOUT`], 15 s, unless the builder set
    /// another). A call that runs on this host is not bounded.
    pub timeout: Option<Duration>,
}

pub(crate) mod sealed {
    /// Keeps [`super::HostHandle`] to the hosts of this crate.
    pub trait Sealed {}
}

/// What a host provides to [`Service`], [`crate::ActorRef`], [`crate::State`] and
/// [`crate::ActorContext`]. Implemented by this crate's hosts only (sealed); a test wanting a
/// host in process uses [`crate::testing::TestHost`].
pub trait HostHandle: sealed::Sealed + Send + Sync + 'static {
    /// Invoke a method (routing, activation, turn lock, dispatch).
    fn invoke<'a>(
        &'a self,
        key: &'a ActorKey,
        method: &'a str,
        args: Envelope,
        options: InvokeOptions,
    ) -> BoxFuture<'a, Result<Envelope, Error>>;
    /// The store (or the remote coordinator speaking the same API).
    fn store(&self) -> &Arc<dyn Store>;
    /// The clock.
    fn clock(&self) -> &SharedClock;
    /// Halt an actor active on this host, draining its current turn.
    fn halt(&self, key: ActorKey) -> BoxFuture<'_, Result<(), Error>>;
    /// Halt every actor active on this host.
    fn halt_all(&self) -> BoxFuture<'_, Result<(), Error>>;
    /// Halt an actor in the background (safe from inside its own turn).
    fn halt_deferred(&self, key: ActorKey);
    /// The alarm handler to store for alarm `name`: the one asked for (checked against the
    /// actor type, if this host knows it), else the handler named like the alarm, else the
    /// type's only alarm handler.
    fn alarm_handler(
        &self,
        actor_type: &str,
        requested: Option<&str>,
        name: &str,
    ) -> Result<String, Error>;
    /// Check that `method` is a `#[job]` method of `actor_type`, if this host knows the type
    /// (another host may; it checks when the job runs).
    fn check_job_method(&self, actor_type: &str, method: &str) -> Result<(), Error> {
        let _ = (actor_type, method);
        Ok(())
    }
    /// Tell the alarm loop an alarm changed, so it polls soon.
    fn alarms_changed(&self);
    /// Application data registered on the host under this type.
    fn app_data(&self, type_id: TypeId) -> Option<Arc<dyn Any + Send + Sync>>;
    /// What this host reports about itself, if it is one host (`None` by default, for handles
    /// that are not bound to a single host).
    fn status(&self) -> Option<HostStatus> {
        None
    }
    /// Whether the host has begun to shut down (it takes no new calls).
    fn is_shutting_down(&self) -> bool {
        false
    }
    /// The cluster as this host sees it (local topology: it reads the shared store), for
    /// `caller`. `None` for handles not bound to one host.
    fn cluster_state(
        &self,
        caller: Option<crate::cluster::Caller>,
    ) -> Option<BoxFuture<'_, Result<crate::cluster::ClusterState, Error>>> {
        let _ = caller;
        None
    }
    /// Run an operator's order on host `host_id` at `address` (this host runs its own; others
    /// get it over the peer link): how many actors it deactivated. `None` for handles not
    /// bound to one host.
    fn relay_order(
        &self,
        host_id: &str,
        address: &str,
        order: crate::cluster::actions::HostOrder,
    ) -> Option<BoxFuture<'_, Result<u64, Error>>> {
        let _ = (host_id, address, order);
        None
    }
    /// Add an event to this host's timeline (the state view's); nothing for handles not bound
    /// to one host.
    fn record_event(&self, event: crate::cluster::TimelineEvent) {
        let _ = event;
    }
}

/// What a host reports about itself: its ID, the address its peers reach it on, how many
/// actors are active on it, and its topology. The HTTP control API serves it as `GET /status`,
/// in JSON: `{"hostId": "...", "address": "127.0.0.1:7571", "activeActors": 2, "topology":
/// "local"}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostStatus {
    /// The host's ID in the cluster (new each time the host starts).
    pub host_id: String,
    /// The `host:port` address other hosts reach this one on.
    pub address: String,
    /// How many activations are live on this host now.
    pub active_actors: usize,
    /// Whether the host coordinates through its own store or through a runtime (absent in the
    /// JSON of older hosts: read as local).
    #[serde(default)]
    pub topology: Topology,
    /// The security profile it runs under.
    #[serde(default)]
    pub profile: crate::profile::Profile,
    /// Peers this host failed to connect to several times in a row: new placements skip them
    /// until they recover (absent when every peer is reachable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreachable_peers: Vec<crate::host::UnreachablePeer>,
}

/// Whether a host can take calls ([`Service::readiness`]), and each check behind the answer.
/// `GET /readyz` serves it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Readiness {
    /// Whether every check passed.
    pub ready: bool,
    /// The checks, in order: `registered`, `not_shutting_down`, and `store_reachable` (local
    /// topology) or `runtime_reachable` (remote).
    pub checks: Vec<ReadinessCheck>,
}

/// One check of [`Readiness`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReadinessCheck {
    /// What was checked.
    pub name: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
}

/// How a host coordinates with the rest of its cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    /// The host opened the cluster's store itself ([`Host::local`](crate::Host::local)).
    #[default]
    Local,
    /// The host joined a runtime that owns the store ([`Host::remote`](crate::Host::remote)).
    Remote,
}

/// The handle to the actors of a cluster: typed references, untyped invocation, state and
/// alarms. Cheap to clone.
#[derive(Clone)]
pub struct Service {
    handle: Arc<dyn HostHandle>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").finish_non_exhaustive()
    }
}

impl Service {
    /// Wrap a host handle.
    pub(crate) fn new(handle: Arc<dyn HostHandle>) -> Self {
        Service { handle }
    }

    pub(crate) fn handle(&self) -> &Arc<dyn HostHandle> {
        &self.handle
    }

    /// A typed reference to actor `id` of type `A`; calls go through plain method calls on it.
    pub fn actor<A: Actor>(&self, id: impl Into<String>) -> ActorRef<A> {
        ActorRef::from_raw(self.raw_ref(A::NAME, id))
    }

    /// The ID, peer address and active actor count of the host this service runs on, or
    /// `None` if the service is not bound to one host.
    pub fn host_status(&self) -> Option<HostStatus> {
        self.handle.status()
    }

    /// The cluster state view as this service's host sees it, for `caller`: its nodes (from
    /// the shared store), the links it has used, and its timeline. `None` when the service is
    /// not bound to one host. In the remote topology the store belongs to the runtime, which
    /// serves the view: the answer is an error saying so.
    pub async fn cluster_state(
        &self,
        caller: Option<crate::cluster::Caller>,
    ) -> Option<Result<crate::cluster::ClusterState, Error>> {
        Some(self.handle.cluster_state(caller)?.await)
    }

    /// Run an operator's order on host `host_id` at `address`, from this service's host (see
    /// [`HostHandle::relay_order`]).
    #[cfg(feature = "http")]
    pub(crate) fn relay_order(
        &self,
        host_id: &str,
        address: &str,
        order: crate::cluster::actions::HostOrder,
    ) -> Option<BoxFuture<'_, Result<u64, Error>>> {
        self.handle.relay_order(host_id, address, order)
    }

    /// Add an event to this service's host's timeline.
    #[cfg(feature = "http")]
    pub(crate) fn record_event(&self, event: crate::cluster::TimelineEvent) {
        self.handle.record_event(event);
    }

    /// Whether this service's host can take calls: it is registered and not shutting down,
    /// and its store (or, in the remote topology, its runtime and the runtime's store) answers
    /// within `limit`. Each check is reported, failed or not.
    pub async fn readiness(&self, limit: std::time::Duration) -> Readiness {
        let mut checks = Vec::with_capacity(3);
        let registered = self.handle.status();
        checks.push(ReadinessCheck {
            name: "registered",
            ok: registered.is_some(),
            detail: match &registered {
                Some(status) => format!("host {} at {}", status.host_id, status.address),
                None => "this service is not bound to a registered host".to_owned(),
            },
        });
        let stopping = self.handle.is_shutting_down();
        checks.push(ReadinessCheck {
            name: "not_shutting_down",
            ok: !stopping,
            detail: if stopping {
                "the host is shutting down".to_owned()
            } else {
                "taking calls".to_owned()
            },
        });
        let remote = registered
            .as_ref()
            .is_some_and(|s| s.topology == Topology::Remote);
        let (name, what) = if remote {
            ("runtime_reachable", "the runtime (and its store)")
        } else {
            ("store_reachable", "the store")
        };
        let answer = tokio::time::timeout(limit, self.handle.store().list_hosts()).await;
        checks.push(ReadinessCheck {
            name,
            ok: matches!(answer, Ok(Ok(_))),
            detail: match answer {
                Ok(Ok(hosts)) => format!("{what} answered: {} healthy hosts", hosts.len()),
                Ok(Err(e)) => format!("{what} failed: {e}"),
                Err(_) => format!("{what} did not answer within {limit:?}"),
            },
        });
        Readiness {
            ready: checks.iter().all(|c| c.ok),
            checks,
        }
    }

    /// An untyped reference to any actor.
    pub fn raw_ref(&self, actor_type: impl Into<String>, id: impl Into<String>) -> RawRef {
        RawRef::new(
            self.clone(),
            ActorKey::new(actor_type, id),
            InvokeOptions::default(),
        )
    }

    /// Invoke a method by name with an encoded payload: the path HTTP bridges use.
    /// An actor's own error comes back as [`Error::Actor`] with its encoded value.
    pub async fn invoke(
        &self,
        actor_type: &str,
        id: &str,
        method: &str,
        args: Envelope,
    ) -> Result<Envelope, Error> {
        self.invoke_with(actor_type, id, method, args, InvokeOptions::default())
            .await
    }

    /// [`Service::invoke`] with options (e.g. active-only).
    pub async fn invoke_with(
        &self,
        actor_type: &str,
        id: &str,
        method: &str,
        args: Envelope,
        options: InvokeOptions,
    ) -> Result<Envelope, Error> {
        let key = checked_key(actor_type, id)?;
        validate_name("method", method)?;
        self.handle.invoke(&key, method, args, options).await
    }

    /// Halt an actor active on this host, waiting for its current turn to finish. Its state is
    /// kept; the next call activates it again.
    pub async fn halt(&self, actor_type: &str, id: &str) -> Result<(), Error> {
        let key = checked_key(actor_type, id)?;
        self.handle.halt(key).await
    }

    /// Halt every actor active on this host.
    pub async fn halt_all(&self) -> Result<(), Error> {
        self.handle.halt_all().await
    }

    /// Read an actor's state (MessagePack bytes decoded into `T`); `None` if it has none.
    pub async fn get_state<T: serde::de::DeserializeOwned>(
        &self,
        actor_type: &str,
        id: &str,
    ) -> Result<Option<T>, Error> {
        let key = checked_key(actor_type, id)?;
        match self.handle.store().get_state(&key).await? {
            Some(bytes) => Ok(Some(Envelope::from_msgpack_bytes(bytes).decode()?)),
            None => Ok(None),
        }
    }

    /// Write an actor's state from outside the actor. Prefer [`crate::State`] inside actors:
    /// an active actor's cached state does not see this write until it is reactivated.
    pub async fn set_state<T: serde::Serialize>(
        &self,
        actor_type: &str,
        id: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<(), Error> {
        let key = checked_key(actor_type, id)?;
        let bytes = Envelope::encode(value)?.into_bytes();
        Ok(self.handle.store().set_state(&key, &bytes, ttl).await?)
    }

    /// Delete an actor's state; returns whether it had any.
    pub async fn delete_state(&self, actor_type: &str, id: &str) -> Result<bool, Error> {
        let key = checked_key(actor_type, id)?;
        Ok(self.handle.store().delete_state(&key).await?)
    }

    /// List the states of one actor type, ordered by ID, a page at a time.
    pub async fn list_states(
        &self,
        actor_type: &str,
        options: &ListStatesOptions,
    ) -> Result<StateList, Error> {
        validate_name("actor type", actor_type)?;
        Ok(self.handle.store().list_states(actor_type, options).await?)
    }

    /// Create or replace alarm `name` of an actor.
    pub async fn set_alarm(
        &self,
        actor_type: &str,
        id: &str,
        name: &str,
        spec: AlarmSpec,
    ) -> Result<(), Error> {
        let key = checked_key(actor_type, id)?;
        validate_name("alarm name", name)?;
        let handler = self
            .handle
            .alarm_handler(actor_type, spec.handler.as_deref(), name)?;
        validate_name("alarm handler", &handler)?;
        let record = spec.into_record(handler, self.handle.clock().now_ms())?;
        self.handle.store().set_alarm(&key, name, &record).await?;
        self.handle.alarms_changed();
        Ok(())
    }

    /// An actor's alarm, if it exists.
    pub async fn get_alarm(
        &self,
        actor_type: &str,
        id: &str,
        name: &str,
    ) -> Result<Option<AlarmRecord>, Error> {
        let key = checked_key(actor_type, id)?;
        validate_name("alarm name", name)?;
        Ok(self.handle.store().get_alarm(&key, name).await?)
    }

    /// Delete an actor's alarm; returns whether it existed.
    pub async fn delete_alarm(
        &self,
        actor_type: &str,
        id: &str,
        name: &str,
    ) -> Result<bool, Error> {
        let key = checked_key(actor_type, id)?;
        validate_name("alarm name", name)?;
        Ok(self.handle.store().delete_alarm(&key, name).await?)
    }

    /// Dispatch a job: method `method` (a `#[job]` method) of an actor runs as `spec` says,
    /// durably, with retries and dead letters. Returns the job's ID (with an idempotency key
    /// that is taken, the existing job's). Generated proxies offer the typed form,
    /// `actor.job_ship(payload).after(..).dispatch().await`.
    pub async fn dispatch_job(
        &self,
        actor_type: &str,
        id: &str,
        method: &str,
        spec: JobSpec,
    ) -> Result<JobId, Error> {
        let key = checked_key(actor_type, id)?;
        validate_name("job method", method)?;
        if let Some(idempotency_key) = &spec.key {
            validate_name("idempotency key", idempotency_key)?;
        }
        self.handle.check_job_method(actor_type, method)?;
        let record = spec.into_record(method.to_owned(), self.handle.clock().now_ms())?;
        let job_id = self.handle.store().dispatch_job(&key, &record).await?;
        self.handle.alarms_changed();
        Ok(JobId(job_id))
    }

    /// A job by ID: pending, running, succeeded (a one-shot, for 24 hours after it ran) or
    /// dead-lettered, with its attempts; `None` if unknown.
    pub async fn get_job(&self, job_id: &str) -> Result<Option<JobInfo>, Error> {
        Ok(self.handle.store().get_job(job_id).await?)
    }

    /// An actor's jobs, by job ID.
    pub async fn list_jobs(&self, actor_type: &str, id: &str) -> Result<Vec<JobInfo>, Error> {
        let key = checked_key(actor_type, id)?;
        Ok(self.handle.store().list_jobs(&key).await?)
    }

    /// Cancel an actor's pending job (no further run or repeat); returns whether it existed.
    pub async fn cancel_job(
        &self,
        actor_type: &str,
        id: &str,
        job_id: &str,
    ) -> Result<bool, Error> {
        let key = checked_key(actor_type, id)?;
        Ok(self.handle.store().cancel_job(&key, job_id).await?)
    }

    /// Dead letters of jobs, newest first (of one actor type, if the query says so).
    pub async fn dead_jobs(&self, query: &DeadLetterQuery) -> Result<Vec<DeadLetter>, Error> {
        Ok(self.handle.store().list_dead_jobs(query).await?)
    }

    /// One dead letter of a job, by its dead-letter ID.
    pub async fn dead_job(&self, id: &str) -> Result<Option<DeadLetter>, Error> {
        Ok(self.handle.store().get_dead_job(id).await?)
    }

    /// Delete a dead letter of a job; returns whether it existed.
    pub async fn delete_dead_job(&self, id: &str) -> Result<bool, Error> {
        Ok(self.handle.store().delete_dead_job(id).await?)
    }

    /// Run a dead-lettered job again, as a fresh one-shot job due now: its new ID, or `None`
    /// if the dead letter no longer exists (retried or deleted already).
    pub async fn retry_dead_job(&self, id: &str) -> Result<Option<JobId>, Error> {
        let job_id = self.handle.store().retry_dead_job(id).await?;
        if job_id.is_some() {
            self.handle.alarms_changed();
        }
        Ok(job_id.map(JobId))
    }

    /// Delete the dead letters of jobs dropped more than `age` ago: how many.
    pub async fn purge_dead_jobs(&self, age: Duration) -> Result<u64, Error> {
        let before = self
            .handle
            .clock()
            .now_ms()
            .saturating_sub(crate::clock::duration_ms(age));
        Ok(self.handle.store().purge_dead_jobs(before).await?)
    }
}

fn checked_key(actor_type: &str, id: &str) -> Result<ActorKey, Error> {
    validate_name("actor type", actor_type)?;
    validate_name("actor ID", id)?;
    Ok(ActorKey::new(actor_type, id))
}
