//! Singleton actors: one instance per cluster, at ID [`SINGLETON_ID`], bootstrapped with the
//! data its type was registered with.
//!
//! Every activation of a singleton runs its `#[bootstrap]` hook first, before any call, once
//! (a failed bootstrap is tried again ahead of the next call or touch). When a host is ready it touches each
//! of its singleton types: it invokes the reserved method [`BOOTSTRAP_WIRE_NAME`] through
//! placement, so the one instance is activated (and bootstrapped) wherever the cluster places
//! it, with up to [`BOOTSTRAP_ATTEMPTS`] attempts. Hosts starting together touch the same
//! single activation, which bootstraps once. The reserved method carries no data: the owner
//! uses its own registration's, so no caller can bootstrap a singleton with other data.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::oneshot;

use crate::actor::dispatch::{BOOTSTRAP_WIRE_NAME, MethodKind};
use crate::actor::service::{HostHandle, InvokeOptions};
use crate::clock::BoxFuture;
use crate::error::Error;
use crate::host::activation::{Activation, ExclusiveActor, ExclusiveJob};
use crate::host::core::{HostCore, dispatch_error};
use crate::host::registry::ActorTypeEntry;
use crate::model::{ActorKey, Envelope};

/// The ID of a singleton actor's one instance.
pub const SINGLETON_ID: &str = "singleton";

/// How many times a ready host tries to touch each singleton.
pub const BOOTSTRAP_ATTEMPTS: u32 = 5;

/// How long one touch may take.
const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(15);

/// A singleton's bootstrap, run as an exclusive job: the hook runs unless this activation
/// already bootstrapped.
struct BootstrapJob {
    key: ActorKey,
    data: Envelope,
    hook: Option<u16>,
    done: Arc<AtomicBool>,
    reply: Option<oneshot::Sender<Result<(), Error>>>,
}

impl ExclusiveJob for BootstrapJob {
    fn run<'a>(self: Box<Self>, actor: &'a mut dyn ExclusiveActor) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let BootstrapJob {
                key,
                data,
                hook,
                done,
                reply,
            } = *self;
            let result = match hook {
                _ if done.load(Ordering::Acquire) => Ok(()),
                None => Ok(()),
                Some(index) => match AssertUnwindSafe(actor.call_exclusive(index, data))
                    .catch_unwind()
                    .await
                {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(dispatch_error(&key, BOOTSTRAP_WIRE_NAME, e)),
                    Err(_) => Err(Error::Panicked {
                        key: key.clone(),
                        method: BOOTSTRAP_WIRE_NAME.to_owned(),
                    }),
                },
            };
            match &result {
                Ok(()) => {
                    if !done.swap(true, Ordering::AcqRel) && hook.is_some() {
                        tracing::info!(actor = %key, "singleton bootstrapped");
                    }
                }
                Err(e) => tracing::warn!(actor = %key, error = %e, "singleton bootstrap failed"),
            }
            if let Some(reply) = reply {
                let _ = reply.send(result);
            }
        })
    }
}

impl HostCore {
    /// Queue the bootstrap of a new singleton activation ahead of any call, if `key` is one.
    pub(crate) fn bootstrap_new(&self, entry: &ActorTypeEntry, activation: &Activation) {
        if let Some(job) = bootstrap_job(entry, activation, None) {
            activation.run_exclusive(job);
        }
    }

    /// The reserved bootstrap method, called on this host: bootstrap the activation (if it
    /// has not yet) and wait for it.
    pub(crate) async fn bootstrap_here(
        &self,
        entry: &ActorTypeEntry,
        activation: &Activation,
    ) -> Result<Envelope, Error> {
        let (reply, done) = oneshot::channel();
        let Some(job) = bootstrap_job(entry, activation, Some(reply)) else {
            return Err(Error::UnknownMethod {
                actor_type: entry.name.to_owned(),
                method: BOOTSTRAP_WIRE_NAME.to_owned(),
                known: format!("(actor {} is not a singleton)", activation.key()),
            });
        };
        if !activation.run_exclusive(job) {
            return Err(Error::Halted {
                key: activation.key().clone(),
            });
        }
        match done.await {
            Ok(result) => result.map(|()| Envelope::empty()),
            Err(_) => Err(Error::Halted {
                key: activation.key().clone(),
            }),
        }
    }
}

/// The bootstrap job for `activation`, if its type is a singleton and it is the singleton.
fn bootstrap_job(
    entry: &ActorTypeEntry,
    activation: &Activation,
    reply: Option<oneshot::Sender<Result<(), Error>>>,
) -> Option<Box<dyn ExclusiveJob>> {
    let data = entry.bootstrap.as_ref()?;
    let hook = entry
        .method(BOOTSTRAP_WIRE_NAME)
        .filter(|m| m.kind == MethodKind::Bootstrap)
        .map(|m| m.index);
    Some(Box::new(BootstrapJob {
        key: activation.key().clone(),
        data: data.clone(),
        hook,
        done: activation.bootstrapped()?,
        reply,
    }))
}

/// Touch every singleton type of this host through placement, so each is activated (and
/// bootstrapped) wherever the cluster places it: up to [`BOOTSTRAP_ATTEMPTS`] tries each,
/// `i × 500 ms` apart. Run once the host is ready.
pub(crate) async fn bootstrap_singletons(core: Arc<HostCore>) {
    let singletons: Vec<&'static str> = core
        .types
        .values()
        .filter(|entry| entry.bootstrap.is_some())
        .map(|entry| entry.name)
        .collect();
    for actor_type in singletons {
        let key = ActorKey::new(actor_type, SINGLETON_ID);
        for attempt in 1..=BOOTSTRAP_ATTEMPTS {
            if core.is_shutting_down() {
                return;
            }
            let options = InvokeOptions {
                timeout: Some(BOOTSTRAP_TIMEOUT),
                ..InvokeOptions::default()
            };
            let touched = tokio::time::timeout(
                BOOTSTRAP_TIMEOUT,
                core.invoke(&key, BOOTSTRAP_WIRE_NAME, Envelope::empty(), options),
            )
            .await;
            match touched {
                Ok(Ok(_)) => break,
                Ok(Err(e)) if attempt < BOOTSTRAP_ATTEMPTS => {
                    tracing::debug!(actor = %key, attempt, error = %e, "singleton not bootstrapped yet; trying again");
                }
                Ok(Err(e)) => {
                    tracing::warn!(actor = %key, attempts = attempt, error = %e, "gave up bootstrapping the singleton; its next call tries again");
                }
                Err(_) => {
                    tracing::warn!(actor = %key, attempt, "bootstrapping the singleton timed out; trying again unless this was the last try");
                }
            }
            if attempt < BOOTSTRAP_ATTEMPTS {
                tokio::time::sleep(Duration::from_millis(500) * attempt).await;
            }
        }
    }
}
