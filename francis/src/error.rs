//! The framework's error type, [`Error`], and [`CallError`], what a typed call returns: either
//! the actor's own error type, unchanged, or a framework error.

use crate::model::{ActorKey, StoreError};
use crate::model::{CodecError, Envelope};
use crate::profile::ProfileError;

/// A framework error: the call could not be delivered, dispatched or completed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A remote host could not join the cluster through its runtime (refused credential,
    /// untrusted runtime, no runtime reachable in time); the message says which and what to do.
    #[error("cannot join the cluster through the runtime: {0}")]
    Bootstrap(String),
    /// No host in the cluster registers this actor type.
    #[error(
        "actor type {actor_type:?} is not registered; register it with `.register::<YourActor>()` on the host builder (or check the spelling)"
    )]
    UnknownActorType {
        /// The type asked for.
        actor_type: String,
    },
    /// The actor type has no method with this name.
    #[error("actor type {actor_type:?} has no method {method:?}; its methods are: {known}")]
    UnknownMethod {
        /// The actor type.
        actor_type: String,
        /// The method asked for.
        method: String,
        /// The methods it has, comma-separated.
        known: String,
    },
    /// The method is an alarm handler, a job or a hook: it runs when an alarm fires or a job
    /// runs, not by invocation.
    #[error(
        "method {method:?} of actor type {actor_type:?} is an #[alarm] or #[job] method (or a \
         hook): schedule it with an alarm or dispatch it as a job instead of invoking it"
    )]
    NotInvokable {
        /// The actor type.
        actor_type: String,
        /// The method.
        method: String,
    },
    /// A read-only call named a method that takes an exclusive turn.
    #[error(
        "method {method:?} of actor type {actor_type:?} takes an exclusive turn (`&mut self`); read-only calls can only use `&self` methods"
    )]
    NotReadOnly {
        /// The actor type.
        actor_type: String,
        /// The method.
        method: String,
    },
    /// The arguments did not decode into the method's parameter types.
    #[error("bad arguments for {actor_type}.{method}: {reason}")]
    BadArguments {
        /// The actor type.
        actor_type: String,
        /// The method.
        method: String,
        /// What did not decode.
        reason: String,
    },
    /// The actor method returned an error; the failure holds its encoded value.
    #[error("actor {} method {} failed: {}", .0.key, .0.method, .0.message)]
    Actor(Box<ActorFailure>),
    /// An actor type, ID, method or alarm name is empty, longer than [`MAX_NAME_BYTES`], or
    /// contains `/` or a control character.
    #[error(
        "invalid {what} {value:?}: it must be 1 to {max} bytes long, without '/' or control characters",
        max = MAX_NAME_BYTES
    )]
    InvalidName {
        /// Which component.
        what: &'static str,
        /// The offending value (its first 64 characters, then `…`, when it is longer).
        value: String,
    },
    /// The call was active-only and the actor is not active.
    #[error("actor {key} is not active (the call asked not to activate it)")]
    NotActive {
        /// The actor.
        key: ActorKey,
    },
    /// The actor was halting or halted while the call waited; retry after a short delay.
    #[error("actor {key} was halted; retry the call after a short delay")]
    Halted {
        /// The actor.
        key: ActorKey,
    },
    /// The actor (or the host that runs it) has too many calls waiting; nothing ran. Retry
    /// after a short delay.
    #[error("actor {key} has too many calls waiting ({reason}); retry after a short delay")]
    Overloaded {
        /// The actor.
        key: ActorKey,
        /// Which limit was reached.
        reason: String,
    },
    /// `halt` was asked for an actor that is not active on this host.
    #[error("actor {key} is not active on this host")]
    NotHosted {
        /// The actor.
        key: ActorKey,
    },
    /// No healthy host can run the actor now.
    #[error(
        "no host can run actor type {actor_type:?} now: none registers it, or every host is at its concurrency limit"
    )]
    NoHost {
        /// The actor type.
        actor_type: String,
    },
    /// The actor is placed on another host that this host cannot reach.
    #[error("actor {key} is placed on another host at {address}, which this host cannot reach")]
    Unreachable {
        /// The actor.
        key: ActorKey,
        /// The owning host's address.
        address: String,
    },
    /// A call forwarded to another host failed there or on the way.
    #[error("call to actor {key} on the host at {address} failed ({code}): {message}")]
    Remote {
        /// The actor.
        key: ActorKey,
        /// The owning host's address.
        address: String,
        /// The protocol error code (e.g. `transport_failure`, `overloaded`, `unauthorized`).
        code: &'static str,
        /// What went wrong.
        message: String,
    },
    /// A call forwarded to another host got no reply within its deadline (the host's
    /// `request_timeout`, 15 s by default, or the call's own). The owner gives up too, but the
    /// method may have run, or may still be running.
    #[error(
        "call to actor {key} method {method} got no reply within {timeout:?}; it may have run. A longer deadline can be set per call (ActorRef::with_timeout, InvokeOptions::timeout) or per host (request_timeout)"
    )]
    Timeout {
        /// The actor.
        key: ActorKey,
        /// The method.
        method: String,
        /// The deadline that passed.
        timeout: std::time::Duration,
    },
    /// The actor method panicked; the activation stays usable, but the turn's work may be partial.
    #[error("actor {key} method {method} panicked; see the host's log")]
    Panicked {
        /// The actor.
        key: ActorKey,
        /// The method.
        method: String,
    },
    /// An alarm specification is invalid.
    #[error("invalid alarm: {0}")]
    InvalidAlarm(String),
    /// A job specification is invalid (both an interval and a cron schedule, a zero
    /// interval, a malformed cron expression, or a method that is not a `#[job]`).
    #[error("invalid job: {0}")]
    InvalidJob(String),
    /// A payload could not be encoded or decoded.
    #[error("payload error: {0}")]
    Codec(#[from] CodecError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The host is shutting down and takes no new work.
    #[error("the host is shutting down")]
    ShuttingDown,
    /// The host configuration is invalid.
    #[error("invalid host configuration: {0}")]
    Config(String),
    /// The host's profile refused an unsafe setting: every problem, each with its fix.
    #[error(transparent)]
    Profile(#[from] ProfileError),
}

/// An actor method's own error, as an untyped caller receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorFailure {
    /// The actor.
    pub key: ActorKey,
    /// The method.
    pub method: String,
    /// The error's display text.
    pub message: String,
    /// The encoded error value (decode it into the actor's error type, or to JSON).
    pub payload: Envelope,
}

/// The result of a typed call: the actor's own error `E`, or a framework [`Error`].
#[derive(Debug, thiserror::Error)]
pub enum CallError<E> {
    /// The actor method returned this error.
    #[error("{0}")]
    Actor(E),
    /// The call failed in the framework.
    #[error(transparent)]
    Francis(#[from] Error),
}

impl<E> CallError<E> {
    /// The actor's error, if that is what this is.
    pub fn actor_error(&self) -> Option<&E> {
        match self {
            CallError::Actor(e) => Some(e),
            CallError::Francis(_) => None,
        }
    }
}

/// The longest actor type, actor ID, method or alarm name, in bytes (UTF-8). Names are key
/// columns of the store, and an actor's type, ID and alarm name together must fit in one index
/// entry of a PostgreSQL B-tree.
pub const MAX_NAME_BYTES: usize = 512;

/// Check one component of an actor address (type, ID, method, alarm name): 1 to
/// [`MAX_NAME_BYTES`] bytes, without `/` (the separator of actor addresses) or control
/// characters (which would forge lines in logs). Hosts check what their callers pass, the
/// runtime what its workers send, and peers what other hosts forward.
pub(crate) fn validate_name(what: &'static str, value: &str) -> Result<(), Error> {
    if value.is_empty()
        || value.len() > MAX_NAME_BYTES
        || value.contains('/')
        || value.chars().any(char::is_control)
    {
        let mut shown: String = value.chars().take(64).collect();
        if shown.len() < value.len() {
            shown.push('…');
        }
        return Err(Error::InvalidName { what, value: shown });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_non_empty_bounded_and_free_of_separators_and_control_characters() {
        assert!(validate_name("actor ID", "alice").is_ok());
        assert!(validate_name("actor ID", "ünïcode ok").is_ok());
        assert!(validate_name("actor ID", &"x".repeat(MAX_NAME_BYTES)).is_ok());
        for bad in ["", "a/b", "line\nbreak", "nul\0", "\u{7f}"] {
            assert!(validate_name("actor ID", bad).is_err(), "{bad:?}");
        }
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        let err = validate_name("actor ID", &long).unwrap_err().to_string();
        assert!(err.len() < 200, "the error quotes a bounded prefix: {err}");
    }
}
