//! [`ActorContext`]: what an activation is given when it starts: its address, the service, its
//! durable state handle, and a signal that tells it the activation is being halted.

use std::any::TypeId;
use std::sync::Arc;

use tokio::sync::watch;

use crate::actor::dispatch::Actor;
use crate::actor::reference::ActorRef;
use crate::actor::service::Service;
use crate::actor::state::State;
use crate::model::ActorKey;

/// The context of one activation, passed to `activate`. Cheap to clone; keep it in the actor if
/// its methods need it.
#[derive(Clone)]
pub struct ActorContext {
    service: Service,
    key: ActorKey,
    halting: watch::Receiver<bool>,
}

impl std::fmt::Debug for ActorContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorContext")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ActorContext {
    /// Build a context (used by hosts and by `francis::testing`).
    pub fn new(service: Service, key: ActorKey, halting: watch::Receiver<bool>) -> Self {
        ActorContext {
            service,
            key,
            halting,
        }
    }

    /// The actor's ID.
    pub fn id(&self) -> &str {
        &self.key.actor_id
    }

    /// The actor's type name.
    pub fn actor_type(&self) -> &str {
        &self.key.actor_type
    }

    /// The actor's address.
    pub fn key(&self) -> &ActorKey {
        &self.key
    }

    /// The service, for calling other actors. Do not call back into an actor that is waiting
    /// on this one (a call cycle): turns are not re-entrant and the cycle would wait forever.
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// A typed handle on this actor's durable state, cached for the life of the activation.
    pub fn state<T>(&self) -> State<T> {
        State::new(self.service.handle().store().clone(), self.key.clone())
    }

    /// A typed reference to this same actor, e.g. to schedule its own alarms. `A` must be the
    /// actor's own type. Do not invoke its methods from inside its own turn (that waits forever).
    pub fn this<A: Actor>(&self) -> ActorRef<A> {
        self.service.actor(self.key.actor_id.clone())
    }

    /// Whether the activation has started halting (idle timeout, halt, shutdown).
    pub fn is_halting(&self) -> bool {
        *self.halting.borrow()
    }

    /// Completes when the activation starts halting; long-running methods can `select!` on it to
    /// finish early. If they do not finish within the host's grace period they are cancelled.
    pub async fn halting(&self) {
        let mut rx = self.halting.clone();
        // An error means the activation is gone, which is halting too.
        let _ = rx.wait_for(|halting| *halting).await;
    }

    /// Ask the host to halt this activation once the current turn ends (never waits, so it is
    /// safe to call from inside a method).
    pub fn halt(&self) {
        self.service.handle().halt_deferred(self.key.clone());
    }

    /// Application data of type `T` registered on the host with `HostBuilder::data` (a
    /// database pool, a config, a client): how actors get their dependencies.
    pub fn data<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        let any = self.service.handle().app_data(TypeId::of::<T>())?;
        any.downcast::<T>().ok()
    }

    /// The current time according to the host's clock (virtual in `francis::testing`).
    pub fn now(&self) -> jiff::Timestamp {
        let ms = self.service.handle().clock().now_ms();
        jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }
}
