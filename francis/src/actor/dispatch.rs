//! The contract between `#[francis::actor]` and the host: the [`Actor`] trait the macro
//! implements, its method table ([`MethodInfo`]), and the typed proxy hook ([`Proxy`]).
//!
//! Users never implement these by hand; the macro generates them from an `impl` block.

use crate::actor::context::ActorContext;
use crate::actor::reference::RawRef;
use crate::clock::BoxFuture;
use crate::model::{CodecError, Envelope};

/// How a method runs against its actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MethodKind {
    /// `&mut self`: an exclusive turn; nothing else runs on the actor meanwhile.
    Exclusive,
    /// `&self`: a shared read turn; runs alongside other reads, never alongside a write.
    Shared,
    /// `#[alarm]`: an exclusive turn started by a durable alarm; not invokable directly.
    Alarm,
    /// `#[job]`: an exclusive turn started by a durable job; not invokable directly.
    Job,
    /// `#[job_failed(job)]`: an exclusive turn after a job was dead-lettered. Its wire name
    /// is [`job_failed_wire_name`] of the job's.
    JobFailed,
    /// `#[bootstrap]`: an exclusive turn that starts a singleton's activation. Its wire name
    /// is [`BOOTSTRAP_WIRE_NAME`].
    Bootstrap,
}

impl MethodKind {
    /// Whether callers may invoke methods of this kind (only `&mut self` and `&self` methods;
    /// the others run from alarms, jobs and the host).
    pub fn is_invokable(self) -> bool {
        matches!(self, MethodKind::Exclusive | MethodKind::Shared)
    }
}

/// The wire name of a `#[bootstrap]` hook (holds `/`, which user wire names cannot).
pub const BOOTSTRAP_WIRE_NAME: &str = "francis/bootstrap";

/// The wire name of the `#[job_failed]` hook of the job named `job` (holds `/`, which user
/// wire names cannot).
pub fn job_failed_wire_name(job: &str) -> String {
    format!("francis/job_failed/{job}")
}

/// One entry of an actor's method table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodInfo {
    /// The stable wire name.
    pub name: &'static str,
    /// How it runs.
    pub kind: MethodKind,
    /// Its index, passed back to [`Actor::call_mut`] / [`Actor::call_ref`].
    pub index: u16,
}

impl MethodInfo {
    /// The entry named `name` in a method table.
    pub fn find(methods: &[MethodInfo], name: &str) -> Option<MethodInfo> {
        methods.iter().find(|m| m.name == name).copied()
    }
}

/// Why dispatching a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DispatchError {
    /// The arguments did not decode into the method's parameter types.
    BadArguments(CodecError),
    /// The method's result could not be encoded.
    BadResult(CodecError),
    /// The method returned its error type; `payload` holds the encoded error.
    Actor {
        /// The error's `Display` text.
        message: String,
        /// The encoded error value (MessagePack), so the caller gets it back typed.
        payload: Envelope,
    },
    /// A `#[job]` method returned its error type; `disposition` is what the error asks for.
    Job {
        /// The error's `Display` text.
        message: String,
        /// Retry, give up, or run elsewhere.
        disposition: crate::actor::job::Disposition,
    },
    /// The index does not name a method of this kind (a macro/host mismatch).
    NoSuchMethod,
}

impl DispatchError {
    /// Wrap a method's error value.
    pub fn actor<E: serde::Serialize + std::fmt::Display>(error: &E) -> Self {
        let message = error.to_string();
        match Envelope::encode(error) {
            Ok(payload) => DispatchError::Actor { message, payload },
            Err(e) => DispatchError::BadResult(e),
        }
    }

    /// Wrap a `#[job]` method's error value.
    pub fn job<E: crate::actor::job::JobError>(error: &E) -> Self {
        DispatchError::Job {
            message: error.to_string(),
            disposition: error.disposition(),
        }
    }

    /// Encode a method's successful result.
    pub fn encode_ok<T: serde::Serialize>(value: &T) -> Result<Envelope, DispatchError> {
        Envelope::encode(value).map_err(DispatchError::BadResult)
    }
}

/// A typed proxy generated for one actor type; [`crate::ActorRef`] dereferences to it, which is
/// how `actor_ref.increment(1)` works without a trait import.
pub trait Proxy: Clone + Send + Sync + 'static {
    /// Wrap an untyped reference.
    fn from_raw(raw: RawRef) -> Self;
    /// The untyped reference inside.
    fn raw(&self) -> &RawRef;
}

/// A virtual actor type. Implemented by `#[francis::actor]`; see the crate docs for how to write one.
pub trait Actor: Sized + Send + Sync + 'static {
    /// The stable wire name of the type (default: the type name in snake_case).
    const NAME: &'static str;

    /// The typed proxy that [`crate::ActorRef<Self>`] dereferences to.
    type Proxy: Proxy;

    /// Create a fresh instance for a new activation.
    fn activate(ctx: &ActorContext) -> Self;

    /// The method table.
    fn methods() -> &'static [MethodInfo];

    /// Look a method up by wire name.
    fn method(name: &str) -> Option<MethodInfo> {
        MethodInfo::find(Self::methods(), name)
    }

    /// Run an exclusive or alarm method (the caller holds the exclusive turn).
    fn call_mut<'a>(
        &'a mut self,
        index: u16,
        args: Envelope,
    ) -> BoxFuture<'a, Result<Envelope, DispatchError>>;

    /// Run a shared method (the caller holds a read turn).
    fn call_ref<'a>(
        &'a self,
        index: u16,
        args: Envelope,
    ) -> BoxFuture<'a, Result<Envelope, DispatchError>>;

    /// The deactivation hook, run once when the activation ends (idle, halt, shutdown).
    fn deactivate(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}
