//! Actor references: [`RawRef`] (untyped: type, ID, options) and [`ActorRef<A>`], the typed
//! reference that dereferences to the macro-generated proxy so calls read as plain methods.

use std::marker::PhantomData;
use std::ops::Deref;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::actor::alarm::AlarmBuilder;
use crate::actor::dispatch::{Actor, Proxy};
use crate::actor::job::JobBuilder;
use crate::actor::service::{InvokeOptions, Service};
use crate::error::{CallError, Error};
use crate::model::Envelope;
use crate::model::{ActorKey, AlarmRecord};

/// An untyped reference to one actor. Generated proxies wrap one; it is also what bridges use.
#[derive(Clone, Debug)]
pub struct RawRef {
    service: Service,
    key: ActorKey,
    options: InvokeOptions,
}

impl RawRef {
    pub(crate) fn new(service: Service, key: ActorKey, options: InvokeOptions) -> Self {
        RawRef {
            service,
            key,
            options,
        }
    }

    /// The actor's address.
    pub fn key(&self) -> &ActorKey {
        &self.key
    }

    /// The actor's ID.
    pub fn id(&self) -> &str {
        &self.key.actor_id
    }

    /// The service this reference calls through.
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// The options applied to calls through this reference.
    pub fn options(&self) -> InvokeOptions {
        self.options
    }

    /// Call a method with typed arguments and result (used by generated proxies).
    pub async fn call<Args, R, E>(
        &self,
        method: &'static str,
        args: &Args,
    ) -> Result<R, CallError<E>>
    where
        Args: Serialize + ?Sized,
        R: DeserializeOwned,
        E: DeserializeOwned,
    {
        let args = Envelope::encode(args).map_err(Error::from)?;
        match self.invoke(method, args).await {
            Ok(out) => Ok(out.decode().map_err(Error::from)?),
            Err(Error::Actor(failure)) => match failure.payload.decode::<E>() {
                Ok(e) => Err(CallError::Actor(e)),
                // The error did not decode as `E` (e.g. a version mismatch): keep its text.
                Err(_) => Err(CallError::Francis(Error::Actor(failure))),
            },
            Err(e) => Err(CallError::Francis(e)),
        }
    }

    /// Invoke a method by name with an encoded payload.
    pub async fn invoke(&self, method: &str, args: Envelope) -> Result<Envelope, Error> {
        self.service
            .handle()
            .invoke(&self.key, method, args, self.options)
            .await
    }

    /// Start a typed alarm setter for `handler` (used by generated proxies).
    pub fn alarm<T: Serialize>(&self, handler: &'static str, data: &T) -> AlarmBuilder {
        AlarmBuilder::new(self.clone(), handler, data)
    }

    /// Start a typed job dispatcher for `method` (used by generated proxies).
    pub fn job<T: Serialize>(&self, method: &'static str, data: &T) -> JobBuilder {
        JobBuilder::new(self.clone(), method, data)
    }

    /// This actor's jobs.
    pub async fn jobs(&self) -> Result<Vec<crate::model::JobInfo>, Error> {
        self.service
            .list_jobs(&self.key.actor_type, &self.key.actor_id)
            .await
    }

    /// Cancel this actor's job `job_id`; returns whether it existed.
    pub async fn cancel_job(&self, job_id: &str) -> Result<bool, Error> {
        self.service
            .cancel_job(&self.key.actor_type, &self.key.actor_id, job_id)
            .await
    }

    /// This actor's alarm `name`, if set.
    pub async fn get_alarm(&self, name: &str) -> Result<Option<AlarmRecord>, Error> {
        self.service
            .get_alarm(&self.key.actor_type, &self.key.actor_id, name)
            .await
    }

    /// Delete this actor's alarm `name`; returns whether it existed.
    pub async fn delete_alarm(&self, name: &str) -> Result<bool, Error> {
        self.service
            .delete_alarm(&self.key.actor_type, &self.key.actor_id, name)
            .await
    }

    /// Halt this actor if it is active on this host (waits for its current turn).
    pub async fn halt(&self) -> Result<(), Error> {
        self.service
            .halt(&self.key.actor_type, &self.key.actor_id)
            .await
    }
}

/// A typed reference to actor `A`. Call its methods directly: `counter.increment(1).await?`.
pub struct ActorRef<A: Actor> {
    proxy: A::Proxy,
    _actor: PhantomData<fn() -> A>,
}

impl<A: Actor> ActorRef<A> {
    /// Wrap an untyped reference (its type should be `A::NAME`).
    pub fn from_raw(raw: RawRef) -> Self {
        ActorRef {
            proxy: A::Proxy::from_raw(raw),
            _actor: PhantomData,
        }
    }

    /// The untyped reference.
    pub fn raw(&self) -> &RawRef {
        self.proxy.raw()
    }

    /// A copy of this reference whose calls never activate the actor: they fail with
    /// [`Error::NotActive`] unless it is already active.
    pub fn active_only(&self) -> Self {
        self.with_options(InvokeOptions {
            active_only: true,
            ..self.raw().options()
        })
    }

    /// A copy of this reference whose calls, when the actor lives on another host, wait at
    /// most `timeout` for the reply, then fail with [`Error::Timeout`] (instead of the host's
    /// `request_timeout`, 15 s by default). The owner is told the deadline and gives up too.
    pub fn with_timeout(&self, timeout: std::time::Duration) -> Self {
        self.with_options(InvokeOptions {
            timeout: Some(timeout),
            ..self.raw().options()
        })
    }

    fn with_options(&self, options: InvokeOptions) -> Self {
        let raw = self.raw();
        Self::from_raw(RawRef::new(
            raw.service().clone(),
            raw.key().clone(),
            options,
        ))
    }
}

impl<A: Actor> Clone for ActorRef<A> {
    fn clone(&self) -> Self {
        ActorRef {
            proxy: self.proxy.clone(),
            _actor: PhantomData,
        }
    }
}

impl<A: Actor> std::fmt::Debug for ActorRef<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ActorRef({})", self.raw().key())
    }
}

impl<A: Actor> Deref for ActorRef<A> {
    type Target = A::Proxy;

    fn deref(&self) -> &A::Proxy {
        &self.proxy
    }
}
