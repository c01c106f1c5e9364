//! The registration exchange on a session's first stream: the host proves who it is (the PSK
//! challenge-response, a JWT, or the workload certificate of an mTLS reconnect), the request is
//! checked, and the runtime's [`super::Admission`] registers it and certifies its key.

use std::sync::Arc;
use std::time::SystemTime;

use rustls::pki_types::{CertificateDer, UnixTime};
use tokio::sync::Semaphore;
use tokio::time::timeout;
use tracing::{debug, warn};
use wtransport::{Connection, RecvStream, SendStream};

use super::{Bootstrap, Claim, RegisteredHost, Shared};
use crate::model::HostRegistration;
use crate::net::is_host_port;
use crate::net::pki::{self, HOST_PREFIX, SpiffeId, spiffe_id_of};
use crate::net::runtime::bootstrap::{
    self, CHANNEL_BINDING_LABEL, PSK_NONCE_LEN, ProofSide, REATTACH_BINDING_LABEL,
};
use crate::net::runtime::messages::{
    MAX_VERSION_LEN, PreviousIdentityProof, RegisterAuth, RegisterChallenge, RegisterRequest, kind,
    method,
};
use crate::net::serving::reply;
use crate::net::tls;
use crate::net::wire::{self, ErrorCode, Frame, FrameError, WireError};

/// Largest registration frame (a JWT fits easily).
const MAX_REGISTRATION_FRAME: usize = 64 * 1024;

/// Run the registration exchange on the first stream. On failure the error was sent to the
/// host and the reason is returned for the log.
pub(super) async fn register(
    conn: &Connection,
    mut send: SendStream,
    mut recv: RecvStream,
    shared: &Shared,
) -> Result<RegisteredHost, String> {
    let registered = match admit(conn, &mut send, &mut recv, shared).await {
        Ok((request, claim)) => complete(request, claim, shared)
            .await
            .map_err(|error| (error.clone(), error.message)),
        Err(refusal) => Err(refusal),
    };
    match registered {
        Ok((frame, host)) => {
            reply(&mut send, Ok(frame)).await;
            Ok(host)
        }
        Err((error, reason)) => {
            reply(&mut send, Err(error)).await;
            Err(reason)
        }
    }
}

/// What the host is told, and what the runtime logs.
type Refusal = (WireError, String);

fn refuse(code: ErrorCode, message: impl Into<String>) -> Refusal {
    let message = message.into();
    (WireError::new(code, message.clone()), message)
}

fn frame_refusal(e: FrameError) -> Refusal {
    let error = e.to_wire_error();
    let reason = error.message.clone();
    (error, reason)
}

/// Reads one frame under the registration limits.
async fn read_registration_frame(recv: &mut RecvStream) -> Result<Frame, Refusal> {
    match wire::read_frame(recv, MAX_REGISTRATION_FRAME).await {
        Ok(Some(frame)) => Ok(frame),
        Ok(None) => Err(refuse(
            ErrorCode::BadRequest,
            "the stream closed before a registration frame",
        )),
        Err(e) => Err(frame_refusal(e)),
    }
}

/// Check the host's credential; returns its registration request and who it proved to be.
async fn admit(
    conn: &Connection,
    send: &mut SendStream,
    recv: &mut RecvStream,
    shared: &Shared,
) -> Result<(RegisterRequest, Claim), Refusal> {
    let first = read_registration_frame(recv).await?;
    let admission = &shared.admission;
    match first.kind.as_str() {
        kind::REGISTER_AUTH => {
            let Bootstrap::Psk(host_psk) = admission.bootstrap() else {
                return Err(refuse(
                    ErrorCode::Unauthorized,
                    "PSK bootstrap is not enabled on this runtime (it expects a JWT)",
                ));
            };
            let auth: RegisterAuth = first.decode().map_err(frame_refusal)?;
            if auth.method != method::PSK || auth.cnonce.len() != PSK_NONCE_LEN {
                return Err(refuse(
                    ErrorCode::BadRequest,
                    format!(
                        "a PSK bootstrap starts with method \"psk\" and a {PSK_NONCE_LEN}-byte nonce"
                    ),
                ));
            }
            let binding = channel_binding(conn)?;
            let snonce = bootstrap::nonce();
            let challenge = RegisterChallenge {
                sproof: bootstrap::psk_proof(
                    host_psk,
                    ProofSide::Server,
                    &auth.cnonce,
                    &snonce,
                    &binding,
                ),
                snonce: snonce.clone(),
            };
            let frame = Frame::new(&challenge).map_err(frame_refusal)?;
            wire::write_frame(send, &frame).await.map_err(|e| {
                refuse(
                    ErrorCode::Internal,
                    format!("cannot send the challenge: {e}"),
                )
            })?;
            let next = read_registration_frame(recv).await?;
            let request: RegisterRequest = next.decode().map_err(frame_refusal)?;
            let proof = request
                .auth
                .as_ref()
                .filter(|a| a.method == method::PSK)
                .map(|a| a.proof.as_slice())
                .unwrap_or_default();
            if !bootstrap::verify_psk_proof(
                host_psk,
                ProofSide::Client,
                &auth.cnonce,
                &snonce,
                &binding,
                proof,
            ) {
                return Err(refuse(
                    ErrorCode::Unauthorized,
                    "PSK authentication failed: the host's bootstrap PSK does not match this runtime's bootstrap.hostPSK",
                ));
            }
            let previous = proven_previous(conn, &request, shared);
            Ok((request, Claim::Bootstrapped { previous }))
        }
        kind::REGISTER => {
            let request: RegisterRequest = first.decode().map_err(frame_refusal)?;
            match &request.auth {
                Some(auth) if auth.method == method::JWT => {
                    if !matches!(admission.bootstrap(), Bootstrap::Token) {
                        return Err(refuse(
                            ErrorCode::Unauthorized,
                            "JWT bootstrap is not enabled on this runtime (it expects a PSK)",
                        ));
                    }
                    match admission.validate_token(&auth.token).await {
                        Ok(subject) => {
                            debug!(%subject, "JWT bootstrap accepted");
                            let previous = proven_previous(conn, &request, shared);
                            Ok((request, Claim::Bootstrapped { previous }))
                        }
                        Err(reason) => Err((
                            WireError::new(ErrorCode::Unauthorized, "JWT authentication failed"),
                            format!("JWT authentication failed: {reason}"),
                        )),
                    }
                }
                Some(auth) => Err(refuse(
                    ErrorCode::Unauthorized,
                    format!(
                        "unsupported bootstrap {:?}: a PSK bootstrap starts with {}",
                        auth.method,
                        kind::REGISTER_AUTH
                    ),
                )),
                None => {
                    let host_id = certified_host(conn)?;
                    if let Some(previous) = &request.prev_host_id
                        && *previous != host_id
                    {
                        return Err(refuse(
                            ErrorCode::Unauthorized,
                            format!("the certificate is for host {host_id}, not {previous}"),
                        ));
                    }
                    Ok((request, Claim::Certified(host_id)))
                }
            }
        }
        other => Err(refuse(
            ErrorCode::BadRequest,
            format!("the first message must be a registration, not {other:?}"),
        )),
    }
}

/// The TLS exporter value both sides bind their PSK proofs to.
fn channel_binding(conn: &Connection) -> Result<Vec<u8>, Refusal> {
    let mut binding = vec![0u8; PSK_NONCE_LEN];
    conn.export_keying_material(&mut binding, CHANNEL_BINDING_LABEL, &[])
        .map_err(|_| refuse(ErrorCode::Internal, "cannot derive the channel binding"))?;
    Ok(binding)
}

/// The previous ID a bootstrapping host proved it still holds the key of. Without a valid
/// proof the claim is ignored (logged) and the host gets a new ID: a bootstrap credential
/// alone must not let anyone take over a live host's identity.
fn proven_previous(
    conn: &Connection,
    request: &RegisterRequest,
    shared: &Shared,
) -> Option<String> {
    let previous = request.prev_host_id.as_deref()?;
    let outcome = match &request.prev_proof {
        Some(proof) => check_previous_identity(conn, previous, proof, shared),
        None => Err("no proof of holding its key was sent".to_owned()),
    };
    match outcome {
        Ok(()) => Some(previous.to_owned()),
        Err(reason) => {
            warn!(
                previous, %reason,
                "a bootstrapping host asked for a previous host ID it did not prove; it gets a new ID"
            );
            None
        }
    }
}

/// Check a proof of a previous identity: a host certificate of this cluster for `previous`
/// (expired by at most the health-check deadline, the time its registration outlives its
/// last contact) and a signature with its key over this session's reattach transcript.
fn check_previous_identity(
    conn: &Connection,
    previous: &str,
    proof: &PreviousIdentityProof,
    shared: &Shared,
) -> Result<(), String> {
    let leaf = CertificateDer::from(proof.cert.as_slice());
    let now = SystemTime::now();
    let not_after = pki::cert_not_after(&leaf).map_err(|e| e.to_string())?;
    let expired_for = now.duration_since(not_after).unwrap_or_default();
    if expired_for > shared.settings.idle_timeout {
        return Err(format!(
            "the previous certificate expired {expired_for:?} ago, more than the health-check deadline"
        ));
    }
    let at = UnixTime::since_unix_epoch(
        now.min(not_after)
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
    );
    let id = tls::verify_chain(&shared.trust, std::slice::from_ref(&leaf), HOST_PREFIX, at)
        .map_err(|e| format!("the previous certificate is not valid: {e}"))?;
    if id.host_id() != Some(previous) {
        return Err(format!(
            "the previous certificate is for {id}, not host {previous}"
        ));
    }
    let mut binding = [0u8; PSK_NONCE_LEN];
    conn.export_keying_material(&mut binding, REATTACH_BINDING_LABEL, &[])
        .map_err(|_| "cannot derive the channel binding".to_owned())?;
    tls::verify_signature(
        &leaf,
        &bootstrap::reattach_transcript(&binding, previous),
        &proof.sig,
    )
    .map_err(|e| e.to_string())
}

/// The host ID of the client certificate the TLS layer verified.
fn certified_host(conn: &Connection) -> Result<String, Refusal> {
    let unauthorized = |why: &str| {
        refuse(
            ErrorCode::Unauthorized,
            format!(
                "a registration without a bootstrap credential needs a workload certificate of this cluster: {why}"
            ),
        )
    };
    let chain = conn
        .peer_identity()
        .ok_or_else(|| unauthorized("none was presented"))?;
    let leaf = chain
        .as_slice()
        .first()
        .ok_or_else(|| unauthorized("none was presented"))?;
    let id: SpiffeId = spiffe_id_of(leaf.der()).map_err(|e| unauthorized(&e.to_string()))?;
    match id.path().strip_prefix(HOST_PREFIX) {
        Some(host_id) if !host_id.is_empty() => Ok(host_id.to_owned()),
        _ => Err(unauthorized(&format!("{id} is not a host identity"))),
    }
}

/// Check the admitted request, have the runtime register the host and certify its key, and
/// give the session its ID.
async fn complete(
    request: RegisterRequest,
    claim: Claim,
    shared: &Shared,
) -> Result<(Frame, RegisteredHost), WireError> {
    check_address(&request.address)?;
    if request.wlpub.len() != 32 {
        return Err(WireError::new(
            ErrorCode::BadRequest,
            "wlpub must be a raw 32-byte Ed25519 public key",
        ));
    }
    if let Some(t) = request.actor_types.iter().find(|t| t.actor_type.is_empty()) {
        return Err(WireError::new(
            ErrorCode::BadRequest,
            format!("an actor type name is empty ({t:?})"),
        ));
    }
    let version = request.version.unwrap_or_default();
    if version.len() > MAX_VERSION_LEN || !version.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(WireError::new(
            ErrorCode::BadRequest,
            format!(
                "version must be at most {MAX_VERSION_LEN} bytes of printable ASCII without spaces"
            ),
        ));
    }
    let registration = HostRegistration {
        address: request.address,
        actor_types: request.actor_types,
        version,
        // The runtime's admission policy sets the cluster's maxHosts, never the worker.
        max_hosts: 0,
    };
    let limit = shared.settings.store_timeout;
    let mut response = timeout(
        limit,
        shared
            .admission
            .register(claim, &registration, &request.wlpub),
    )
    .await
    .map_err(|_| WireError::new(ErrorCode::Internal, "the store did not answer in time"))??;
    response.session_id = uuid::Uuid::new_v4().to_string();
    let host = RegisteredHost {
        host_id: response.host_id.clone(),
        session_id: response.session_id.clone(),
        budget: Arc::new(Semaphore::new(super::requests::MAX_SESSION_REQUEST_BYTES)),
        _open: crate::telemetry::metrics::LevelGuard::new(
            crate::telemetry::metrics::metrics()
                .runtime_sessions
                .with(&[]),
        ),
    };
    let frame = Frame::new(&response).map_err(|e| e.to_wire_error())?;
    Ok((frame, host))
}

fn check_address(address: &str) -> Result<(), WireError> {
    if is_host_port(address) {
        return Ok(());
    }
    Err(WireError::new(
        ErrorCode::BadRequest,
        format!("address {address:?} is not host:port with a non-zero port"),
    ))
}
