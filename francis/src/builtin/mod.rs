//! Built-in actors: ready-made actor types a host registers with
//! [`HostBuilder::builtin`](crate::host::HostBuilder::builtin), each under the wire type name
//! `francis.builtin.<kind>.<name>`, and called through a typed handle.
//!
//! - [`cron`]: a named schedule (interval, ISO period or cron expression) running an async
//!   function once per occurrence cluster-wide, as a durable job.
//! - [`ratelimit`]: a token bucket per key, in memory.
//! - [`signal`]: one-shot broadcasts that waiters park on, kept in actor state.
//! - [`taskpool`]: tasks submitted to a pool of workers, run as durable jobs with a per-host
//!   concurrency, capabilities that route them, and a predicate that turns them away.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use francis::builtin::{ratelimit::RateLimiter, signal::Signals};
//!
//! let host = francis::Host::local()
//!     .address("127.0.0.1:7571")
//!     .memory_store()
//!     .runtime_psk("an example cluster key of 32+ bytes!")
//!     .builtin(RateLimiter::new("api", 10).per(Duration::from_secs(1)).burst(20))
//!     .builtin(Signals::new("orders"))
//!     .build()
//!     .await?;
//! let service = host.service();
//!
//! let allowance = RateLimiter::handle(&service, "api").allow("client-7").await?;
//! if !allowance.allowed {
//!     println!("retry in {:?}", allowance.retry_after);
//! }
//! let orders = Signals::handle(&service, "orders");
//! orders.complete("order-1", &"shipped").await?;
//! let status: String = orders.wait("order-1").await?;
//! # Ok(())
//! # }
//! ```
//!
//! A built-in may be registered several times under different names (two rate limiters with
//! different rates, say): one Rust actor type then runs under several wire type names, each
//! with its own settings, which each activation finds by its type name.

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use crate::actor::context::ActorContext;
use crate::actor::dispatch::Actor;
use crate::error::validate_name;
use crate::host::ActorOptions;
use crate::host::registry::ActorTypeEntry;

pub mod cron;
pub mod ratelimit;
pub mod signal;
pub mod taskpool;

/// The prefix of every built-in actor type's wire name.
pub const TYPE_PREFIX: &str = "francis.builtin.";

mod sealed {
    /// Keeps [`super::BuiltIn`] to this crate's built-ins.
    pub trait Sealed {}
}

/// A configured built-in actor, ready to be registered on a host with
/// [`HostBuilder::builtin`](crate::host::HostBuilder::builtin) (or
/// [`TestHostBuilder::builtin`](crate::testing::TestHostBuilder::builtin)). Implemented by
/// [`cron::CronJob`], [`ratelimit::RateLimiter`], [`signal::Signals`] and
/// [`taskpool::TaskPool`]; sealed.
pub trait BuiltIn: sealed::Sealed {
    /// Add this built-in's actor types and settings to `registration`, or the problems with its
    /// settings.
    fn register(self, registration: &mut Registration);
}

/// What a built-in adds to a host: actor types under their run-time names, the settings their
/// activations read, and problems with those settings. Opaque: filled by [`BuiltIn::register`]
/// and taken apart by the host builder.
#[derive(Default)]
pub struct Registration {
    pub(crate) types: Vec<ActorTypeEntry>,
    pub(crate) configs: Vec<(&'static str, Arc<dyn Any + Send + Sync>)>,
    pub(crate) errors: Vec<String>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field(
                "types",
                &self.types.iter().map(|t| t.name).collect::<Vec<_>>(),
            )
            .field("errors", &self.errors)
            .finish_non_exhaustive()
    }
}

impl Registration {
    /// What `builtin` registers.
    pub(crate) fn of(builtin: impl BuiltIn) -> Self {
        let mut registration = Registration::default();
        builtin.register(&mut registration);
        registration
    }

    /// Register actor type `A` as `francis.builtin.<kind>.<name>`, whose activations find
    /// `config` with [`config`]. A name that makes an invalid type name is a problem instead.
    pub(crate) fn actor_type<A: Actor, C: Send + Sync + 'static>(
        &mut self,
        kind: &str,
        name: &str,
        options: ActorOptions,
        config: C,
    ) {
        if let Some(entry) = self.entry::<A>(kind, name, options) {
            self.add(entry, config);
        }
    }

    /// Register actor type `A` as `francis.builtin.<kind>.<name>`, as [`Self::actor_type`]
    /// does, and make it a singleton whose `#[bootstrap]` hook gets `bootstrap_data` (see
    /// [`crate::host::SINGLETON_ID`]).
    pub(crate) fn singleton_type<A: Actor, C: Send + Sync + 'static>(
        &mut self,
        kind: &str,
        name: &str,
        options: ActorOptions,
        config: C,
        bootstrap_data: &impl serde::Serialize,
    ) {
        if let Some(mut entry) = self.entry::<A>(kind, name, options) {
            match entry.singleton(bootstrap_data) {
                Ok(()) => self.add(entry, config),
                Err(problem) => self.problem(problem),
            }
        }
    }

    /// The entry of `A` as `francis.builtin.<kind>.<name>`, or `None` (and a problem) if that
    /// is no valid type name.
    fn entry<A: Actor>(
        &mut self,
        kind: &str,
        name: &str,
        options: ActorOptions,
    ) -> Option<ActorTypeEntry> {
        let type_name = type_name(kind, name);
        if name.is_empty() {
            self.problem(format!(
                "a {kind} built-in has an empty name; give it one, e.g. \"api\" (its actor type is then \"{TYPE_PREFIX}{kind}.api\")"
            ));
            return None;
        }
        if let Err(e) = validate_name("actor type", &type_name) {
            self.problem(format!("{kind} {name:?}: {e}"));
            return None;
        }
        Some(ActorTypeEntry::named::<A>(intern(&type_name), options))
    }

    fn add<C: Send + Sync + 'static>(&mut self, entry: ActorTypeEntry, config: C) {
        self.configs.push((entry.name, Arc::new(config)));
        self.types.push(entry);
    }

    /// Report a problem with the built-in's settings (it fails `build()`).
    pub(crate) fn problem(&mut self, problem: String) {
        self.errors.push(problem);
    }
}

/// The wire type name of built-in `kind` registered as `name`.
pub(crate) fn type_name(kind: &str, name: &str) -> String {
    format!("{TYPE_PREFIX}{kind}.{name}")
}

/// `name` with a `'static` lifetime, as the host's type table and metrics labels hold type
/// names. Each distinct name is allocated once per process and kept; a process registers a
/// handful of built-in names (the same ones again for every host it builds), so what is kept
/// stays small.
fn intern(name: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(&known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

/// The settings of every built-in type of a host, by type name: application data of the host,
/// read by activations through [`config`].
#[derive(Default, Clone)]
struct Configs(HashMap<&'static str, Arc<dyn Any + Send + Sync>>);

/// Add built-in settings to a host's application data, next to those already there.
pub(crate) fn add_configs(
    app_data: &mut HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
    configs: Vec<(&'static str, Arc<dyn Any + Send + Sync>)>,
) {
    let mut all = app_data
        .get(&TypeId::of::<Configs>())
        .and_then(|known| known.clone().downcast::<Configs>().ok())
        .map(|known| (*known).clone())
        .unwrap_or_default();
    all.0.extend(configs);
    app_data.insert(TypeId::of::<Configs>(), Arc::new(all));
}

/// The settings the activation's type was registered with, if it is a built-in of type `C`.
pub(crate) fn config<C: Send + Sync + 'static>(ctx: &ActorContext) -> Option<Arc<C>> {
    let configs = ctx.data::<Configs>()?;
    configs
        .0
        .get(ctx.actor_type())?
        .clone()
        .downcast::<C>()
        .ok()
}

/// Why a built-in actor could not find its settings: its type was registered some other way
/// than through [`BuiltIn`] (e.g. a user type with a built-in's name).
pub(crate) fn unconfigured(actor_type: &str) -> String {
    format!(
        "actor type {actor_type:?} has no built-in settings on its host; register it with HostBuilder::builtin, and do not give your own actor types names under {TYPE_PREFIX:?}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interned_names_are_shared() {
        let a = intern("francis.builtin.test.same");
        let b = intern(&String::from("francis.builtin.test.same"));
        assert!(std::ptr::eq(a, b));
        assert_eq!(a, "francis.builtin.test.same");
    }
}
