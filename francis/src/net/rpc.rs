//! The host ↔ runtime protocol of the remote topology: the messages a worker exchanges with the
//! runtime over its WebTransport session at [`RUNTIME_PATH`], and the PSK bootstrap proofs.
//!
//! A session starts with a registration on its first bidirectional stream, in one of three ways:
//! - **PSK bootstrap** (channel-bound challenge-response, the runtime proves first):
//!   `host.register.auth {method: "psk", cnonce}` → `host.register.auth.challenge {snonce,
//!   sproof}`; the host checks `sproof` before it reveals anything, then sends
//!   `host.register {auth: {method: "psk", proof}, wlpub, …}`.
//! - **JWT bootstrap**: `host.register {auth: {method: "jwt", token}, wlpub, …}`.
//! - **mTLS reconnect**: the TLS handshake presented a workload certificate of the cluster;
//!   `host.register {prevHostId, wlpub, …}` with no `auth`.
//!
//! Every registration carries a fresh public key (`wlpub`) and gets a certificate for the host
//! ID it ends up with, so a host is never left holding a certificate for an identity it no
//! longer has (an upstream bug). After registration every stream carries one request and one
//! reply: a [`StoreCall`] (the [`crate::model::Store`] operations, always on behalf of the
//! session's own host where a host is involved) or a certificate renewal.
//!
//! The PSK proofs: `cb = TLS-Exporter("exporter-francis-bootstrap-v1", no context, 32)`,
//! `kC/kS = HKDF-SHA256(ikm = host PSK, no salt, info = "francis-bootstrap-client" /
//! "francis-bootstrap-server", 32)`, `T = be32(len cn)‖cn ‖ be32(len sn)‖sn ‖ be32(len cb)‖cb`,
//! proofs are `HMAC-SHA256(k, T)` compared in constant time. Direction-separated keys defeat
//! reflection, fresh nonces replay, and the channel binding relaying through a TLS-terminating
//! man in the middle.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha2::Sha256;

use super::wire::Message;
use crate::model::{
    ActorKey, ActorTypeRegistration, AlarmCompletion, AlarmLease, AlarmRecord, HostInfo,
    ListStatesOptions, Placement, StateList,
};

/// The WebTransport path of the runtime's host endpoint.
pub const RUNTIME_PATH: &str = "/runtime/v1/connect";

/// The TLS exporter label of the PSK bootstrap's channel binding.
pub const CHANNEL_BINDING_LABEL: &[u8] = b"exporter-francis-bootstrap-v1";

/// Length of nonces, keys and the channel binding in the PSK bootstrap.
pub const PSK_NONCE_LEN: usize = 32;

/// Shortest accepted host bootstrap PSK, in bytes.
pub const MIN_HOST_PSK_LEN: usize = 16;

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
    /// Host → runtime: one store operation.
    pub const STORE: &str = "host.store";
    /// Runtime → host: the store operation's result.
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

/// Host → runtime: register this host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegisterRequest {
    /// The ID this host had before (reconnecting), if any. Over mTLS it must match the
    /// certificate; with a bootstrap credential it is honoured when no healthy host holds it.
    #[serde(rename = "prevHostId", skip_serializing_if = "Option::is_none")]
    pub prev_host_id: Option<String>,
    /// The peer address other hosts reach this host at.
    pub address: String,
    /// The actor types this host serves.
    #[serde(rename = "actorTypes")]
    pub actor_types: Vec<ActorTypeRegistration>,
    /// The bootstrap credential; absent on an mTLS reconnect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthProof>,
    /// The raw 32-byte Ed25519 public key to certify.
    #[serde(with = "serde_bytes")]
    pub wlpub: Vec<u8>,
}

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

/// Host → runtime: one store operation. Operations that concern a host (heartbeat, leases,
/// placement removal) always act for the session's host: a host cannot speak for another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", content = "args", rename_all = "snake_case")]
pub enum StoreCall {
    /// Record a heartbeat.
    Heartbeat,
    /// Leave the cluster (a clean shutdown).
    Unregister,
    /// The healthy hosts.
    ListHosts,
    /// Find (or place) an actor.
    LookupActor {
        /// The actor.
        key: ActorKey,
        /// Never place it.
        active_only: bool,
    },
    /// Drop this host's placement of an actor.
    RemoveActor {
        /// The actor.
        key: ActorKey,
    },
    /// Read an actor's state.
    GetState {
        /// The actor.
        key: ActorKey,
    },
    /// Write an actor's state.
    SetState {
        /// The actor.
        key: ActorKey,
        /// The state bytes.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        /// Expiry (ms), if any.
        ttl_ms: Option<u64>,
    },
    /// Delete an actor's state.
    DeleteState {
        /// The actor.
        key: ActorKey,
    },
    /// List the states of an actor type.
    ListStates {
        /// The actor type.
        actor_type: String,
        /// Paging.
        options: ListStatesOptions,
    },
    /// Create or replace an alarm.
    SetAlarm {
        /// The actor.
        key: ActorKey,
        /// The alarm's name.
        name: String,
        /// Its properties.
        alarm: AlarmRecord,
    },
    /// Read an alarm.
    GetAlarm {
        /// The actor.
        key: ActorKey,
        /// The alarm's name.
        name: String,
    },
    /// Delete an alarm.
    DeleteAlarm {
        /// The actor.
        key: ActorKey,
        /// The alarm's name.
        name: String,
    },
    /// Lease due alarms for this host.
    FetchAlarms {
        /// Due at or before (Unix ms).
        horizon_ms: i64,
        /// Lease length (ms).
        lease_ms: u64,
        /// At most this many.
        batch_size: u32,
    },
    /// The alarm behind a lease, if still valid.
    GetLeasedAlarm {
        /// The lease.
        lease: AlarmLease,
    },
    /// Finish a leased occurrence.
    CompleteLeasedAlarm {
        /// The lease.
        lease: AlarmLease,
        /// What to do with the alarm.
        completion: AlarmCompletion,
        /// Lease length if kept (ms).
        lease_ms: u64,
    },
    /// Give a lease up.
    ReleaseAlarmLease {
        /// The lease.
        lease: AlarmLease,
    },
    /// Extend this host's live leases.
    RenewAlarmLeases {
        /// New lease length (ms).
        lease_ms: u64,
    },
}

impl Message for StoreCall {
    const KIND: &'static str = kind::STORE;
}

impl StoreCall {
    /// The operation's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            StoreCall::Heartbeat => "heartbeat",
            StoreCall::Unregister => "unregister",
            StoreCall::ListHosts => "list_hosts",
            StoreCall::LookupActor { .. } => "lookup_actor",
            StoreCall::RemoveActor { .. } => "remove_actor",
            StoreCall::GetState { .. } => "get_state",
            StoreCall::SetState { .. } => "set_state",
            StoreCall::DeleteState { .. } => "delete_state",
            StoreCall::ListStates { .. } => "list_states",
            StoreCall::SetAlarm { .. } => "set_alarm",
            StoreCall::GetAlarm { .. } => "get_alarm",
            StoreCall::DeleteAlarm { .. } => "delete_alarm",
            StoreCall::FetchAlarms { .. } => "fetch_alarms",
            StoreCall::GetLeasedAlarm { .. } => "get_leased_alarm",
            StoreCall::CompleteLeasedAlarm { .. } => "complete_leased_alarm",
            StoreCall::ReleaseAlarmLease { .. } => "release_alarm_lease",
            StoreCall::RenewAlarmLeases { .. } => "renew_alarm_leases",
        }
    }
}

/// Runtime → host: a store operation's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "r", content = "v", rename_all = "snake_case")]
pub enum StoreReply {
    /// Done, nothing to return.
    Done,
    /// A yes/no answer (e.g. whether something existed).
    Flag(bool),
    /// Healthy hosts.
    Hosts(Vec<HostInfo>),
    /// Where an actor lives.
    Placement(Placement),
    /// State bytes, if any.
    State(Option<ByteBuf>),
    /// A page of states.
    States(StateList),
    /// An alarm, if any.
    Alarm(Option<AlarmRecord>),
    /// Leases.
    Leases(Vec<AlarmLease>),
    /// A lease, if still valid.
    Lease(Option<AlarmLease>),
}

impl Message for StoreReply {
    const KIND: &'static str = kind::STORE_RESPONSE;
}

type HmacSha256 = Hmac<Sha256>;

/// Which side of the PSK bootstrap a proof is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofSide {
    /// The host's proof.
    Client,
    /// The runtime's proof.
    Server,
}

fn transcript(cnonce: &[u8], snonce: &[u8], channel_binding: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(12 + cnonce.len() + snonce.len() + channel_binding.len());
    for part in [cnonce, snonce, channel_binding] {
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        t.extend_from_slice(&len.to_be_bytes());
        t.extend_from_slice(part);
    }
    t
}

fn proof_mac(
    host_psk: &[u8],
    side: ProofSide,
    cnonce: &[u8],
    snonce: &[u8],
    channel_binding: &[u8],
) -> Option<HmacSha256> {
    let info: &[u8] = match side {
        ProofSide::Client => b"francis-bootstrap-client",
        ProofSide::Server => b"francis-bootstrap-server",
    };
    let mut key = [0u8; 32];
    // 32 bytes is always a valid HKDF-SHA256 output length.
    let _ = Hkdf::<Sha256>::new(None, host_psk).expand(info, &mut key);
    // HMAC accepts keys of any length, so this never fails.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(&key).ok()?;
    mac.update(&transcript(cnonce, snonce, channel_binding));
    Some(mac)
}

/// The PSK bootstrap proof of `side` over the nonces and the session's channel binding.
pub fn psk_proof(
    host_psk: &[u8],
    side: ProofSide,
    cnonce: &[u8],
    snonce: &[u8],
    channel_binding: &[u8],
) -> Vec<u8> {
    proof_mac(host_psk, side, cnonce, snonce, channel_binding)
        .map(|mac| mac.finalize().into_bytes().to_vec())
        .unwrap_or_default()
}

/// Check a PSK bootstrap proof in constant time.
pub fn verify_psk_proof(
    host_psk: &[u8],
    side: ProofSide,
    cnonce: &[u8],
    snonce: &[u8],
    channel_binding: &[u8],
    proof: &[u8],
) -> bool {
    proof_mac(host_psk, side, cnonce, snonce, channel_binding)
        .is_some_and(|mac| mac.verify_slice(proof).is_ok())
}

/// A fresh random nonce.
pub fn nonce() -> Vec<u8> {
    rand::random::<[u8; PSK_NONCE_LEN]>().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::wire::Frame;

    #[test]
    fn proofs_bind_key_side_nonces_and_channel() {
        let (cn, sn, cb) = (nonce(), nonce(), nonce());
        let psk = b"host bootstrap psk of some length";
        let client = psk_proof(psk, ProofSide::Client, &cn, &sn, &cb);
        let server = psk_proof(psk, ProofSide::Server, &cn, &sn, &cb);
        assert_eq!(client.len(), 32);
        assert_ne!(client, server, "directions use separate keys");
        assert!(verify_psk_proof(
            psk,
            ProofSide::Client,
            &cn,
            &sn,
            &cb,
            &client
        ));
        assert!(!verify_psk_proof(
            psk,
            ProofSide::Server,
            &cn,
            &sn,
            &cb,
            &client
        ));
        assert!(!verify_psk_proof(
            b"another psk, same length!!!!!!!!!",
            ProofSide::Client,
            &cn,
            &sn,
            &cb,
            &client
        ));
        assert!(!verify_psk_proof(
            psk,
            ProofSide::Client,
            &cn,
            &sn,
            &nonce(),
            &client
        ));
        assert!(!verify_psk_proof(
            psk,
            ProofSide::Client,
            &sn,
            &cn,
            &cb,
            &client
        ));
        assert!(!verify_psk_proof(
            psk,
            ProofSide::Client,
            &cn,
            &sn,
            &cb,
            &client[..31]
        ));
    }

    #[test]
    fn store_calls_round_trip_through_envelopes() {
        let calls = [
            StoreCall::Heartbeat,
            StoreCall::SetState {
                key: ActorKey::new("counter", "alice"),
                data: vec![1, 2, 3],
                ttl_ms: Some(5_000),
            },
            StoreCall::CompleteLeasedAlarm {
                lease: AlarmLease {
                    key: ActorKey::new("t", "i"),
                    name: "n".into(),
                    alarm_id: "a".into(),
                    lease_id: "l".into(),
                    due_ms: 1,
                    expires_ms: 2,
                },
                completion: AlarmCompletion::Retry {
                    due_ms: 3,
                    attempts: 1,
                    keep_lease: true,
                },
                lease_ms: 20_000,
            },
        ];
        for call in calls {
            let frame = Frame::new(&call).unwrap();
            assert_eq!(frame.kind, kind::STORE);
            assert_eq!(frame.decode::<StoreCall>().unwrap(), call);
        }
        let reply = StoreReply::State(Some(ByteBuf::from(vec![9u8; 4])));
        let frame = Frame::new(&reply).unwrap();
        assert_eq!(frame.decode::<StoreReply>().unwrap(), reply);
    }
}
