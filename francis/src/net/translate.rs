//! How errors cross the wire: the one translation between the framework's errors and
//! [`WireError`] codes, both ways. Peer calls carry [`Error`]s (an actor's own error keeps its
//! encoded value); the runtime protocol carries [`StoreError`]s, whose data (the actor type, the
//! key, the host) travels in the payload, so the worker gets back the error the store gave.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{ActorFailure, Error};
use crate::model::{ActorKey, Envelope, StoreError};
use crate::net::wire::{ErrorCode, WireError};

/// Retry hint sent with `actor_halted`.
const HALTED_RETRY: Duration = Duration::from_millis(100);

/// Retry hint sent with `host_draining`.
pub(crate) const DRAINING_RETRY: Duration = Duration::from_millis(500);
/// When an overloaded actor or host may be tried again.
pub(crate) const OVERLOADED_RETRY: Duration = Duration::from_millis(100);

/// A framework error as the wire carries it back to the calling host.
pub(crate) fn error_to_wire(e: &Error) -> WireError {
    let code = match e {
        Error::Actor(failure) => {
            return WireError::new(ErrorCode::InvokeFailed, failure.message.clone())
                .with_payload(failure.payload.bytes().to_vec());
        }
        Error::Halted { .. } => {
            return WireError::new(ErrorCode::ActorHalted, e.to_string())
                .with_retry_after(HALTED_RETRY);
        }
        Error::Overloaded { .. } => {
            return WireError::new(ErrorCode::Overloaded, e.to_string())
                .with_retry_after(OVERLOADED_RETRY);
        }
        Error::ShuttingDown => {
            return WireError::new(ErrorCode::HostDraining, e.to_string())
                .with_retry_after(DRAINING_RETRY);
        }
        Error::NotActive { .. } => ErrorCode::ActorNotActive,
        Error::Timeout { .. } => ErrorCode::DeadlineExceeded,
        Error::Unreachable { .. } | Error::NotHosted { .. } => ErrorCode::ActorNotHosted,
        Error::UnknownActorType { .. } => ErrorCode::ActorTypeUnsupported,
        Error::UnknownMethod { .. } => ErrorCode::UnknownMethod,
        Error::NoHost { .. } => ErrorCode::NoHost,
        Error::BadArguments { .. }
        | Error::NotInvokable { .. }
        | Error::NotReadOnly { .. }
        | Error::InvalidName { .. }
        | Error::Codec(_) => ErrorCode::BadRequest,
        _ => ErrorCode::Internal,
    };
    WireError::new(code, e.to_string())
}

/// A wire error from the host at `address` that ran (or refused) `method` of `key`, as the
/// caller sees it. Errors that mean the same thing on either side (the actor's own error,
/// unknown types, halted, not active, no host) become the same [`Error`] a local call gives;
/// the rest say which host failed and why.
pub(crate) fn error_from_wire(key: &ActorKey, method: &str, address: &str, e: WireError) -> Error {
    match e.code {
        ErrorCode::InvokeFailed if e.payload.is_some() => Error::Actor(Box::new(ActorFailure {
            key: key.clone(),
            method: method.to_owned(),
            message: e.message,
            payload: Envelope::from_msgpack_bytes(e.payload.unwrap_or_default()),
        })),
        ErrorCode::ActorHalted => Error::Halted { key: key.clone() },
        ErrorCode::Overloaded => Error::Overloaded {
            key: key.clone(),
            reason: format!("the host at {address} said: {}", e.message),
        },
        ErrorCode::ActorNotActive => Error::NotActive { key: key.clone() },
        ErrorCode::ActorTypeUnsupported => Error::UnknownActorType {
            actor_type: key.actor_type.clone(),
        },
        ErrorCode::NoHost => Error::NoHost {
            actor_type: key.actor_type.clone(),
        },
        code => Error::Remote {
            key: key.clone(),
            address: address.to_owned(),
            code: code.as_str(),
            message: e.message,
        },
    }
}

/// The data of a [`StoreError`] that the worker needs back, in a wire error's payload.
#[derive(Debug, Serialize, Deserialize)]
enum StoreErrorData {
    HostAlreadyRegistered { address: String },
    HostUnregistered { host_id: String },
    NoHost { actor_type: String },
    NotActive { key: ActorKey },
    ClusterFull { max_hosts: u32 },
    MaxHostsMismatch { stored: u32, configured: u32 },
}

/// A store error as the runtime sends it to a worker.
#[cfg(any(test, feature = "runtime"))]
pub(crate) fn store_error_to_wire(e: &StoreError) -> WireError {
    let (code, data) = match e {
        StoreError::HostAlreadyRegistered { address } => (
            ErrorCode::AddressInUse,
            Some(StoreErrorData::HostAlreadyRegistered {
                address: address.clone(),
            }),
        ),
        StoreError::HostUnregistered { host_id } => (
            ErrorCode::HostUnregistered,
            Some(StoreErrorData::HostUnregistered {
                host_id: host_id.clone(),
            }),
        ),
        StoreError::NoHost { actor_type } => (
            ErrorCode::NoHost,
            Some(StoreErrorData::NoHost {
                actor_type: actor_type.clone(),
            }),
        ),
        StoreError::NotActive { key } => (
            ErrorCode::ActorNotActive,
            Some(StoreErrorData::NotActive { key: key.clone() }),
        ),
        StoreError::ClusterFull { max_hosts } => (
            ErrorCode::ClusterFull,
            Some(StoreErrorData::ClusterFull {
                max_hosts: *max_hosts,
            }),
        ),
        StoreError::MaxHostsMismatch { stored, configured } => (
            ErrorCode::MaxHostsMismatch,
            Some(StoreErrorData::MaxHostsMismatch {
                stored: *stored,
                configured: *configured,
            }),
        ),
        StoreError::Invalid(_) => (ErrorCode::BadRequest, None),
        _ => (ErrorCode::Internal, None),
    };
    let error = WireError::new(code, e.to_string());
    match data.map(|data| rmp_serde::to_vec_named(&data)) {
        Some(Ok(payload)) => error.with_payload(payload),
        _ => error,
    }
}

/// A runtime's error reply as the store error the worker's host core expects.
pub(crate) fn store_error_from_wire(e: WireError) -> StoreError {
    let data = e
        .payload
        .as_deref()
        .and_then(|bytes| crate::net::wire::decode_message::<StoreErrorData>(bytes).ok());
    match (e.code, data) {
        (ErrorCode::AddressInUse, Some(StoreErrorData::HostAlreadyRegistered { address })) => {
            StoreError::HostAlreadyRegistered { address }
        }
        (ErrorCode::HostUnregistered, Some(StoreErrorData::HostUnregistered { host_id })) => {
            StoreError::HostUnregistered { host_id }
        }
        (ErrorCode::NoHost, Some(StoreErrorData::NoHost { actor_type })) => {
            StoreError::NoHost { actor_type }
        }
        (ErrorCode::ActorNotActive, Some(StoreErrorData::NotActive { key })) => {
            StoreError::NotActive { key }
        }
        (ErrorCode::ClusterFull, Some(StoreErrorData::ClusterFull { max_hosts })) => {
            StoreError::ClusterFull { max_hosts }
        }
        (
            ErrorCode::MaxHostsMismatch,
            Some(StoreErrorData::MaxHostsMismatch { stored, configured }),
        ) => StoreError::MaxHostsMismatch { stored, configured },
        // Without its data the code still says what to do: register again, or pick another
        // address.
        (ErrorCode::HostUnregistered, _) => StoreError::HostUnregistered {
            host_id: String::new(),
        },
        (ErrorCode::AddressInUse, _) => StoreError::HostAlreadyRegistered {
            address: String::new(),
        },
        (ErrorCode::BadRequest, _) => StoreError::Invalid(e.message),
        _ => StoreError::Unavailable(format!("runtime: {}", e.message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_come_back_as_the_store_gave_them() {
        let errors = [
            StoreError::HostAlreadyRegistered {
                address: "127.0.0.1:7000".into(),
            },
            StoreError::HostUnregistered {
                host_id: "h1".into(),
            },
            StoreError::NoHost {
                actor_type: "counter".into(),
            },
            StoreError::NotActive {
                key: ActorKey::new("counter", "alice"),
            },
            StoreError::ClusterFull { max_hosts: 3 },
            StoreError::MaxHostsMismatch {
                stored: 3,
                configured: 5,
            },
        ];
        for error in errors {
            let back = store_error_from_wire(store_error_to_wire(&error));
            assert_eq!(back.to_string(), error.to_string());
        }
        let invalid = store_error_from_wire(store_error_to_wire(&StoreError::Invalid(
            "bad interval".into(),
        )));
        assert!(matches!(invalid, StoreError::Invalid(m) if m.contains("bad interval")));
        let other =
            store_error_from_wire(store_error_to_wire(&StoreError::Unavailable("down".into())));
        assert!(matches!(other, StoreError::Unavailable(_)), "{other}");
        // A reply without the data still tells a host to register again.
        let bare = WireError::new(ErrorCode::HostUnregistered, "expired");
        assert!(matches!(
            store_error_from_wire(bare),
            StoreError::HostUnregistered { .. }
        ));
    }
}
