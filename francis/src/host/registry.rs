//! The registered actor types of a host: name, options, method table, and a type-erased
//! factory that creates an [`Activation`] for a given actor ID.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::watch;

use crate::actor::context::ActorContext;
use crate::actor::dispatch::{Actor, MethodInfo};
use crate::actor::service::Service;
use crate::clock::{SharedClock, duration_ms};
use crate::host::activation::{Activation, ActivationSettings};
use crate::host::options::ActorOptions;
use crate::model::{ActorKey, ActorTypeRegistration};
use crate::telemetry::metrics::TypeMetrics;

type Factory = fn(&ActorTypeEntry, Service, ActorKey, SharedClock) -> Arc<Activation>;

/// One registered actor type.
pub(crate) struct ActorTypeEntry {
    pub name: &'static str,
    pub options: ActorOptions,
    pub methods: &'static [MethodInfo],
    /// The series its activations record into.
    pub metrics: Arc<TypeMetrics>,
    /// The job slots of its capacity group on this host, shared with the group's other types.
    pub capacity: Option<Arc<tokio::sync::Semaphore>>,
    /// For a singleton type, the data its `#[bootstrap]` hook gets.
    pub bootstrap: Option<crate::model::Envelope>,
    factory: Factory,
}

impl ActorTypeEntry {
    pub fn new<A: Actor>(options: ActorOptions) -> Self {
        Self::named::<A>(A::NAME, options)
    }

    /// Actor type `A` registered under `name` instead of `A::NAME`: for types registered
    /// several times under names chosen at run time (the built-in actors).
    pub fn named<A: Actor>(name: &'static str, options: ActorOptions) -> Self {
        ActorTypeEntry {
            name,
            options,
            methods: A::methods(),
            metrics: Arc::new(TypeMetrics::new(
                name,
                A::methods().iter().map(|m| (m.index, m.name)),
            )),
            capacity: None,
            bootstrap: None,
            factory: activate::<A>,
        }
    }

    /// Make the type a singleton whose `#[bootstrap]` hook gets `data`: the one way both
    /// `HostBuilder::register_singleton_with` and the built-ins make one. The problem, if `data`
    /// does not encode.
    pub fn singleton(&mut self, data: &impl serde::Serialize) -> Result<(), String> {
        match crate::model::Envelope::encode(data) {
            Ok(data) => {
                self.bootstrap = Some(data);
                Ok(())
            }
            Err(e) => Err(format!(
                "actor type {:?}: its singleton bootstrap data does not encode: {e}",
                self.name
            )),
        }
    }

    /// Look a method up by wire name.
    pub fn method(&self, name: &str) -> Option<MethodInfo> {
        MethodInfo::find(self.methods, name)
    }

    /// Create a fresh activation.
    pub fn activate(&self, service: Service, key: ActorKey, clock: SharedClock) -> Arc<Activation> {
        (self.factory)(self, service, key, clock)
    }

    /// How the store sees this type.
    pub fn registration(&self) -> ActorTypeRegistration {
        ActorTypeRegistration {
            actor_type: self.name.to_owned(),
            idle_timeout: self.options.idle_timeout,
            concurrency_limit: self.options.concurrency_limit,
        }
    }
}

fn activate<A: Actor>(
    entry: &ActorTypeEntry,
    service: Service,
    key: ActorKey,
    clock: SharedClock,
) -> Arc<Activation> {
    let (halting_tx, halting_rx) = watch::channel(false);
    let ctx = ActorContext::new(service, key.clone(), halting_rx);
    let actor = A::activate(&ctx);
    let settings = ActivationSettings {
        idle_timeout_ms: entry.options.idle_timeout.map(duration_ms),
        deactivation_timeout: entry.options.deactivation_timeout,
        max_queued_calls: entry.options.max_queued_calls,
        clock,
        metrics: entry.metrics.clone(),
        singleton: entry.bootstrap.is_some()
            && key.actor_id == crate::host::singletons::SINGLETON_ID,
    };
    Activation::spawn(key, actor, halting_tx, settings)
}

/// The set of registered types, frozen once the host is built.
pub(crate) type Registry = HashMap<&'static str, Arc<ActorTypeEntry>>;

/// Freeze `types` into a registry, giving each capacity group one set of job slots. Every
/// type of a group must give the group the same limit.
pub(crate) fn registry(types: Vec<ActorTypeEntry>) -> Result<Registry, String> {
    let mut groups: HashMap<String, (u32, &'static str, Arc<tokio::sync::Semaphore>)> =
        HashMap::new();
    let mut registry = Registry::with_capacity(types.len());
    for mut entry in types {
        if let Some((group, limit)) = &entry.options.capacity_group {
            let (first_limit, first_type, slots) =
                groups.entry(group.clone()).or_insert_with(|| {
                    let slots = Arc::new(tokio::sync::Semaphore::new(*limit as usize));
                    (*limit, entry.name, slots)
                });
            if first_limit != limit {
                return Err(format!(
                    "capacity group {group:?} has limit {first_limit} for actor type {first_type:?} \
                     but {limit} for {:?}; give every type of a group the same limit",
                    entry.name
                ));
            }
            entry.capacity = Some(slots.clone());
        }
        registry.insert(entry.name, Arc::new(entry));
    }
    Ok(registry)
}
