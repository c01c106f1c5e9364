//! The messages of the host ↔ runtime protocol, and the table of store operations a worker
//! may ask its runtime for.
//!
//! A session (WebTransport at [`RUNTIME_PATH`]) starts with a registration on its first
//! bidirectional stream, in one of three ways:
//! - **PSK bootstrap** (channel-bound challenge-response, the runtime proves first; see
//!   [`super::bootstrap`]): `host.register.auth {method: "psk", cnonce}` →
//!   `host.register.auth.challenge {snonce, sproof}`; the host checks `sproof` before it reveals
//!   anything, then sends `host.register {auth: {method: "psk", proof}, wlpub, …}`.
//! - **JWT bootstrap**: `host.register {auth: {method: "jwt", token}, wlpub, …}`.
//! - **mTLS reconnect**: the TLS handshake presented a workload certificate of the cluster;
//!   `host.register {prevHostId, prevProof, wlpub, …}` with no `auth`.
//!
//! Every registration carries a fresh public key (`wlpub`) and gets a certificate for the host
//! ID it ends up with, so a host is never left holding a certificate for an identity it no
//! longer has (an upstream bug). After registration every stream carries one request and one
//! reply: a [`StoreRequest`] (one operation of `for_each_store_op!`, always on behalf of the
//! session's own host where a host is involved) or a certificate renewal.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::model::ActorTypeRegistration;
use crate::net::wire::Message;

/// The WebTransport path of the runtime's host endpoint. Its version is the runtime protocol's:
/// a worker and a runtime of different versions refuse each other's sessions at once.
/// Version 2: store operations travel as [`StoreRequest`] (an operation name and its encoded
/// arguments) instead of one tagged enum.
pub const RUNTIME_PATH: &str = "/runtime/v2/connect";

/// Message kinds (the frame's `k`) of the runtime protocol.
pub mod kind {
    /// Host → runtime: start a PSK bootstrap.
    pub const REGISTER_AUTH: &str = "host.register.auth";
    /// Runtime → host: the runtime's nonce and proof.
    pub const REGISTER_CHALLENGE: &str = "host.register.auth.challenge";
    /// Host → runtime: register (after a PSK challenge, with a JWT, or over mTLS).
    pub const REGISTER: &str = "host.register";
    /// Runtime → host: the registration's outcome.
    pub const REGISTER_RESPONSE: &str = "host.register.response";
    /// Host → runtime: certify a fresh key for this host.
    pub const RENEW: &str = "host.cert.renew";
    /// Runtime → host: the renewed certificate.
    pub const RENEW_RESPONSE: &str = "host.cert.renew.response";
    /// Host → runtime: one store operation ([`super::StoreRequest`]).
    pub const STORE: &str = "host.store";
    /// Runtime → host: the store operation's result (its wire type, MessagePack).
    pub const STORE_RESPONSE: &str = "host.store.response";
}

/// Bootstrap methods, as sent in `method` fields.
pub mod method {
    /// Pre-shared host key, challenge-response.
    pub const PSK: &str = "psk";
    /// A JWT validated against the runtime's JWKS.
    pub const JWT: &str = "jwt";
}

/// Host → runtime: start a PSK bootstrap with the host's nonce.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegisterAuth {
    /// Always [`method::PSK`].
    pub method: String,
    /// The host's fresh nonce.
    #[serde(with = "serde_bytes")]
    pub cnonce: Vec<u8>,
}

impl Message for RegisterAuth {
    const KIND: &'static str = kind::REGISTER_AUTH;
}

/// Runtime → host: the runtime's nonce and its proof of knowing the host PSK.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegisterChallenge {
    /// The runtime's fresh nonce.
    #[serde(with = "serde_bytes")]
    pub snonce: Vec<u8>,
    /// `HMAC(kS, T)`.
    #[serde(with = "serde_bytes")]
    pub sproof: Vec<u8>,
}

impl Message for RegisterChallenge {
    const KIND: &'static str = kind::REGISTER_CHALLENGE;
}

/// How a registering host proves it may join.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthProof {
    /// [`method::PSK`] or [`method::JWT`].
    pub method: String,
    /// PSK: `HMAC(kC, T)`.
    #[serde(with = "serde_bytes", skip_serializing_if = "Vec::is_empty")]
    pub proof: Vec<u8>,
    /// JWT: the token.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub token: String,
}

/// A host's proof that it still holds the key of the ID it had: its previous workload
/// certificate and a signature with that certificate's key over
/// [`super::bootstrap::reattach_transcript`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PreviousIdentityProof {
    /// The previous workload certificate (DER).
    #[serde(with = "serde_bytes")]
    pub cert: Vec<u8>,
    /// The Ed25519 signature.
    #[serde(with = "serde_bytes")]
    pub sig: Vec<u8>,
}

/// Host → runtime: register this host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegisterRequest {
    /// The ID this host had before (reconnecting), if any. Over mTLS it must match the
    /// certificate; with a bootstrap credential it is honoured only with `prev_proof`.
    #[serde(rename = "prevHostId", skip_serializing_if = "Option::is_none")]
    pub prev_host_id: Option<String>,
    /// Proof that the host holds the key of `prev_host_id` (bootstrap credentials only).
    #[serde(rename = "prevProof", skip_serializing_if = "Option::is_none")]
    pub prev_proof: Option<PreviousIdentityProof>,
    /// The peer address other hosts reach this host at.
    pub address: String,
    /// The actor types this host serves.
    #[serde(rename = "actorTypes")]
    pub actor_types: Vec<ActorTypeRegistration>,
    /// The Francis version of the host (at most [`MAX_VERSION_LEN`] bytes of printable ASCII);
    /// absent from hosts that predate it, which the runtime records as unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The bootstrap credential; absent on an mTLS reconnect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthProof>,
    /// The raw 32-byte Ed25519 public key to certify.
    #[serde(with = "serde_bytes")]
    pub wlpub: Vec<u8>,
}

/// The longest version a registering host may report.
#[cfg_attr(not(feature = "runtime"), allow(dead_code))]
pub const MAX_VERSION_LEN: usize = 64;

impl Message for RegisterRequest {
    const KIND: &'static str = kind::REGISTER;
}

/// Runtime → host: the registration's outcome, the host's certificate and the cluster's
/// settings the host must follow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegisterResponse {
    /// The host's ID (the previous one whenever it could be kept).
    #[serde(rename = "hostId")]
    pub host_id: String,
    /// This session's ID.
    #[serde(rename = "sessionId")]
    pub session_id: String,
    /// Whether a still-healthy registration was refreshed (the host keeps its actors). When
    /// `false` the host must drop every activation it had.
    pub reattached: bool,
    /// The cluster's health-check deadline (ms).
    #[serde(rename = "healthDeadline")]
    pub health_deadline_ms: u64,
    /// How often the host polls for due alarms (ms).
    #[serde(rename = "alarmsPollInterval")]
    pub alarms_poll_interval_ms: u64,
    /// How long alarm leases last (ms).
    #[serde(rename = "alarmsLeaseDuration")]
    pub alarms_lease_duration_ms: u64,
    /// How far ahead of now the host fetches due alarms (ms; 0 from a runtime that does not
    /// say, and the host keeps its default).
    #[serde(rename = "alarmsFetchAhead")]
    pub alarms_fetch_ahead_ms: u64,
    /// The most alarms one fetch leases (0 from a runtime that does not say).
    #[serde(rename = "alarmsBatchSize")]
    pub alarms_batch_size: u32,
    /// The host's new workload certificate (DER).
    #[serde(with = "serde_bytes")]
    pub wlcert: Vec<u8>,
    /// When that certificate stops being renewed-in-time (Unix ms, without clock skew).
    #[serde(rename = "certExp")]
    pub cert_expires_ms: i64,
    /// Every trusted CA certificate (DER), primary first.
    pub cabundle: Vec<ByteBuf>,
}

impl Message for RegisterResponse {
    const KIND: &'static str = kind::REGISTER_RESPONSE;
}

/// Host → runtime: certify a fresh key for the session's host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RenewRequest {
    /// The raw 32-byte Ed25519 public key to certify.
    #[serde(with = "serde_bytes")]
    pub wlpub: Vec<u8>,
}

impl Message for RenewRequest {
    const KIND: &'static str = kind::RENEW;
}

/// Runtime → host: the renewed certificate and the current CA bundle.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RenewResponse {
    /// The new certificate (DER).
    #[serde(with = "serde_bytes")]
    pub wlcert: Vec<u8>,
    /// Its end of validity (Unix ms, without clock skew).
    #[serde(rename = "certExp")]
    pub cert_expires_ms: i64,
    /// Every trusted CA certificate (DER), primary first.
    pub cabundle: Vec<ByteBuf>,
}

impl Message for RenewResponse {
    const KIND: &'static str = kind::RENEW_RESPONSE;
}

/// Every store operation a worker may ask its runtime for, one line each, handed to the macro
/// `$then` (which generates the worker's [`crate::model::Store`] implementation, or the runtime's
/// dispatch). A line is the trait method with, for each parameter and the result, its type in
/// the trait and, after `=>`, the owned type it travels as when that differs:
///
/// `name(param: TraitType => WireType [screen], …) -> Result => WireResult;`
///
/// `[screen]` names how the runtime screens a value the worker sends before the operation runs
/// (the functions of the runtime's `screen` module): `[session]` marks a value it does not take
/// from the worker (it puts the session's own host there, so a host can only ever act for
/// itself, and bounds a fetch's lease and horizon); `[lease]` a lease duration it caps;
/// `[key]`, `[actor_type]`, `[alarm_name]`, `[alarm]` and `[job]` names it checks as hosts check them
/// (refused with `bad_request`). Values convert between their two types through [`Convert`].
///
/// Adding a store operation is: the trait method, its SQL and memory implementations, and one
/// line here.
macro_rules! for_each_store_op {
    ($then:ident) => {
        $then! {
            heartbeat(host_id: &str => SessionHost [session]) -> ();
            unregister_host(host_id: &str => SessionHost [session]) -> ();
            list_hosts() -> Vec<HostInfo>;
            lookup_actor(
                key: &ActorKey => ActorKey [key],
                options: &LookupOptions => LookupOptions
            ) -> Placement;
            remove_actor(key: &ActorKey => ActorKey [key], host_id: &str => SessionHost [session])
                -> bool;
            get_state(key: &ActorKey => ActorKey [key]) -> Option<Vec<u8>> => Option<ByteBuf>;
            set_state(
                key: &ActorKey => ActorKey [key],
                data: &[u8] => ByteBuf,
                ttl: Option<Duration>
            ) -> ();
            delete_state(key: &ActorKey => ActorKey [key]) -> bool;
            list_states(
                actor_type: &str => String [actor_type],
                options: &ListStatesOptions => ListStatesOptions
            ) -> StateList;
            set_alarm(
                key: &ActorKey => ActorKey [key],
                name: &str => String [alarm_name],
                alarm: &AlarmRecord => AlarmRecord [alarm]
            ) -> ();
            get_alarm(key: &ActorKey => ActorKey [key], name: &str => String [alarm_name])
                -> Option<AlarmRecord>;
            delete_alarm(key: &ActorKey => ActorKey [key], name: &str => String [alarm_name])
                -> bool;
            fetch_and_lease_alarms(request: &FetchAlarms => FetchAlarms [session])
                -> Vec<AlarmLease>;
            get_leased_alarm(lease: &AlarmLease => AlarmLease) -> Option<AlarmRecord>;
            complete_leased_alarm(
                lease: &AlarmLease => AlarmLease,
                completion: &AlarmCompletion => AlarmCompletion,
                lease_duration: Duration [lease]
            ) -> Option<AlarmLease>;
            release_alarm_lease(lease: &AlarmLease => AlarmLease) -> bool;
            renew_alarm_leases(
                host_id: &str => SessionHost [session],
                lease_duration: Duration [lease]
            ) -> Vec<AlarmLease>;
            record_dead_letter(
                lease: &AlarmLease => AlarmLease,
                attempts: u32,
                error: &str => String [error_text]
            ) -> bool;
            dispatch_job(key: &ActorKey => ActorKey [key], job: &JobRecord => JobRecord [job])
                -> String;
            get_job(job_id: &str => String) -> Option<JobInfo>;
            list_jobs(key: &ActorKey => ActorKey [key]) -> Vec<JobInfo>;
            cancel_job(key: &ActorKey => ActorKey [key], job_id: &str => String) -> bool;
            list_dead_jobs(query: &DeadLetterQuery => DeadLetterQuery) -> Vec<DeadLetter>;
            get_dead_job(id: &str => String) -> Option<DeadLetter>;
            delete_dead_job(id: &str => String) -> bool;
            retry_dead_job(id: &str => String) -> Option<String>;
            purge_dead_jobs(before_ms: i64) -> u64;
        }
    };
}
pub(crate) use for_each_store_op;

/// The type a value of the store-operation table travels as: the `=>` type when given, else the
/// trait's own type.
macro_rules! wire_type {
    ($t:ty) => {
        $t
    };
    ($t:ty => $wire:ty) => {
        $wire
    };
}
pub(crate) use wire_type;

/// Host → runtime: one store operation, named by its trait method, with its arguments encoded
/// as the tuple of their wire types. Decoding takes two steps, the name first, so a reader
/// knows what it is decoding before it decodes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreRequest {
    /// The operation (a line of the store-operation table).
    pub op: String,
    /// Its arguments (MessagePack).
    #[serde(with = "serde_bytes")]
    pub args: Vec<u8>,
}

impl Message for StoreRequest {
    const KIND: &'static str = kind::STORE;
}

/// A host ID the runtime fills in from the session (never sent: the worker's own value is
/// dropped on its side).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionHost {
    #[serde(skip)]
    pub(crate) host_id: String,
}

/// Converts a value of the store-operation table between its type in the trait and its wire
/// type, in either direction (an identity where the two are the same).
pub(crate) trait Convert<T> {
    /// The value as a `T`.
    fn convert(self) -> T;
}

impl<T> Convert<T> for T {
    fn convert(self) -> T {
        self
    }
}

impl<T: Clone> Convert<T> for &T {
    fn convert(self) -> T {
        self.clone()
    }
}

impl Convert<String> for &str {
    fn convert(self) -> String {
        self.to_owned()
    }
}

impl<'a> Convert<&'a str> for &'a String {
    fn convert(self) -> &'a str {
        self
    }
}

impl Convert<ByteBuf> for &[u8] {
    fn convert(self) -> ByteBuf {
        ByteBuf::from(self)
    }
}

impl<'a> Convert<&'a [u8]> for &'a ByteBuf {
    fn convert(self) -> &'a [u8] {
        self
    }
}

impl Convert<SessionHost> for &str {
    fn convert(self) -> SessionHost {
        SessionHost::default()
    }
}

impl<'a> Convert<&'a str> for &'a SessionHost {
    fn convert(self) -> &'a str {
        &self.host_id
    }
}

impl Convert<Option<ByteBuf>> for Option<Vec<u8>> {
    fn convert(self) -> Option<ByteBuf> {
        self.map(ByteBuf::from)
    }
}

impl Convert<Option<Vec<u8>>> for Option<ByteBuf> {
    fn convert(self) -> Option<Vec<u8>> {
        self.map(ByteBuf::into_vec)
    }
}

/// Encode a store operation's arguments or result.
pub(crate) fn encode_value<T: Serialize>(value: &T) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    rmp_serde::to_vec_named(value)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::{ActorKey, FetchAlarms};

    #[test]
    fn session_scoped_values_are_never_sent() {
        // What a worker sends for `remove_actor(key, host_id)`: its own host ID is dropped.
        let key = ActorKey::new("counter", "alice");
        let sent: (ActorKey, SessionHost) = (
            Convert::convert(&key),
            Convert::convert("the worker's claim"),
        );
        let bytes = encode_value(&sent).unwrap();
        assert!(
            !bytes.windows(5).any(|w| w == b"claim"),
            "the worker's host ID travelled"
        );
        let (got_key, host): (ActorKey, SessionHost) = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(got_key, key);
        assert_eq!(host, SessionHost::default());

        // A fetch names no hosts on the wire.
        let request = FetchAlarms {
            hosts: vec!["somebody-else".into()],
            horizon_ms: 5,
            lease_duration: Duration::from_secs(20),
            batch_size: 7,
        };
        let got: FetchAlarms = rmp_serde::from_slice(&encode_value(&request).unwrap()).unwrap();
        assert!(got.hosts.is_empty());
        assert_eq!(
            (got.horizon_ms, got.lease_duration, got.batch_size),
            (5, request.lease_duration, 7)
        );
    }

    #[test]
    fn state_bytes_travel_as_msgpack_bin() {
        let data: &[u8] = &[7; 300];
        let wire: ByteBuf = Convert::convert(data);
        let bytes = encode_value(&wire).unwrap();
        // bin16 (0xc5) of 300 bytes, not an array of integers.
        assert_eq!(bytes[0], 0xc5);
        assert_eq!(bytes.len(), 3 + 300);
        let back: Option<Vec<u8>> =
            Convert::convert(Some(rmp_serde::from_slice::<ByteBuf>(&bytes).unwrap()));
        assert_eq!(back.as_deref(), Some(data));
    }

    #[test]
    fn the_alarm_fetch_settings_travel_and_are_absent_from_an_older_runtime() {
        let response = RegisterResponse {
            host_id: "h".into(),
            alarms_fetch_ahead_ms: 10_000,
            alarms_batch_size: 5,
            ..RegisterResponse::default()
        };
        let got: RegisterResponse =
            rmp_serde::from_slice(&encode_value(&response).unwrap()).unwrap();
        assert_eq!(
            (got.alarms_fetch_ahead_ms, got.alarms_batch_size),
            (10_000, 5)
        );

        // A runtime that predates them sends neither: the worker reads 0 and keeps its own.
        #[derive(Serialize)]
        struct Older {
            #[serde(rename = "hostId")]
            host_id: String,
            #[serde(rename = "alarmsPollInterval")]
            alarms_poll_interval_ms: u64,
        }
        let older = Older {
            host_id: "h".into(),
            alarms_poll_interval_ms: 1500,
        };
        let got: RegisterResponse = rmp_serde::from_slice(&encode_value(&older).unwrap()).unwrap();
        assert_eq!(got.alarms_poll_interval_ms, 1500);
        assert_eq!((got.alarms_fetch_ahead_ms, got.alarms_batch_size), (0, 0));
    }
}
