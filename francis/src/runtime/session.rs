//! One host's session with the runtime: admission (PSK challenge-response, JWT, or an mTLS
//! reconnect), registration in the store, certificate issuance, and then one store operation
//! or certificate renewal per stream, always on behalf of the session's own host.
//!
//! Hardening: the handshake, the registration stream and its frames each have a deadline (a
//! connection that never registers is closed, not held), registration frames are capped at
//! 64 KiB, every store operation is bounded in time, and failures get an error reply that says
//! what is wrong; the specific reason a credential was refused is logged, the client only
//! learns that it was.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde_bytes::ByteBuf;
use tokio::time::timeout;
use tracing::{debug, info, warn};
use wtransport::endpoint::IncomingSession;
use wtransport::{Connection, RecvStream, SendStream, VarInt};

use super::{Bootstrap, Shared};
use crate::model::{FetchAlarms, HostRegistration, LookupOptions, StoreError};
use crate::net::pki::{HOST_PREFIX, SpiffeId, spiffe_id_of};
use crate::net::rpc::{
    self, CHANNEL_BINDING_LABEL, PSK_NONCE_LEN, ProofSide, RUNTIME_PATH, RegisterAuth,
    RegisterChallenge, RegisterRequest, RegisterResponse, RenewRequest, RenewResponse, StoreCall,
    StoreReply, kind, method,
};
use crate::net::wire::{self, ErrorCode, Frame, FrameError, MAX_FRAME_BYTES, WireError};

/// Largest registration frame (a JWT fits easily).
const MAX_REGISTRATION_FRAME: usize = 64 * 1024;
/// How long a finished reply may take to be acknowledged.
const REPLY_ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks the bearer tokens of the JWT bootstrap (see [`super::Bootstrap::Token`]).
#[async_trait]
pub trait TokenValidator: Send + Sync + 'static {
    /// Accept the token (returning its subject, for logs) or refuse it (returning the reason,
    /// which is logged on the runtime and never sent to the client).
    async fn validate(&self, token: &str) -> Result<String, String>;
}

/// The host a session registered.
struct SessionHost {
    host_id: String,
    session_id: String,
}

/// A request counted for graceful shutdown.
struct Running<'a>(&'a Shared);

impl<'a> Running<'a> {
    fn enter(shared: &'a Shared) -> Self {
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        Running(shared)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Serve one incoming connection from handshake to close.
pub(crate) async fn serve(incoming: IncomingSession, shared: Arc<Shared>) {
    let remote = incoming.remote_address();
    let limit = shared.settings.registration_timeout;
    let conn = match timeout(limit, accept(incoming, &shared)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(reason)) => {
            info!(%remote, %reason, "connection refused");
            return;
        }
        Err(_) => {
            info!(%remote, ?limit, "connection refused: handshake not finished in time");
            return;
        }
    };
    let registered = timeout(limit, async {
        let (send, recv) = match conn.accept_bi().await {
            Ok(streams) => streams,
            Err(e) if closed_cleanly_by_client(&e) => return Ok(None),
            Err(e) => return Err(format!("closed before registering: {e}")),
        };
        register(&conn, send, recv, &shared).await.map(Some)
    })
    .await;
    let host = match registered {
        Ok(Ok(Some(host))) => host,
        Ok(Ok(None)) => {
            // What `probe_ca` (`francis ca pin`, `francis dev`'s readiness check) does: read
            // the certificate chain and leave. Not worth an info line each time.
            debug!(%remote, "closed by the client before registering (a CA probe)");
            return;
        }
        Ok(Err(reason)) => {
            info!(%remote, %reason, "registration refused");
            conn.close(VarInt::from_u32(1), b"registration failed");
            return;
        }
        Err(_) => {
            info!(%remote, ?limit, "registration refused: nothing received in time");
            conn.close(VarInt::from_u32(1), b"no registration in time");
            return;
        }
    };
    let host = Arc::new(host);
    if let Ok(mut sessions) = shared.sessions.lock()
        && let Some((_, older)) = sessions.insert(
            host.host_id.clone(),
            (host.session_id.clone(), conn.clone()),
        )
    {
        older.close(
            VarInt::from_u32(1),
            b"session superseded by a newer connection",
        );
    }
    info!(%remote, host = %host.host_id, session = %host.session_id, "host session started");
    loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                tokio::spawn(handle_stream(send, recv, host.clone(), shared.clone()));
            }
            Err(e) => {
                info!(host = %host.host_id, reason = %e, "host session ended");
                break;
            }
        }
    }
    if let Ok(mut sessions) = shared.sessions.lock()
        && sessions
            .get(&host.host_id)
            .is_some_and(|(session, _)| *session == host.session_id)
    {
        sessions.remove(&host.host_id);
    }
}

/// Whether the client closed the connection itself with code 0, as [`super::probe_ca`] does.
fn closed_cleanly_by_client(error: &wtransport::error::ConnectionError) -> bool {
    matches!(error, wtransport::error::ConnectionError::ApplicationClosed(close) if close.code() == VarInt::from_u32(0))
}

async fn accept(incoming: IncomingSession, shared: &Shared) -> Result<Connection, String> {
    let request = incoming
        .await
        .map_err(|e| format!("handshake failed: {e}"))?;
    if request.path() != RUNTIME_PATH {
        let path = request.path().to_string();
        request.not_found().await;
        return Err(format!("unknown path {path:?}"));
    }
    if shared.draining.load(Ordering::SeqCst) {
        request.too_many_requests().await;
        return Err("the runtime is shutting down".into());
    }
    request
        .accept()
        .await
        .map_err(|e| format!("session accept failed: {e}"))
}

/// Reads one frame under the registration limits.
async fn read_registration_frame(recv: &mut RecvStream) -> Result<Frame, WireError> {
    match wire::read_frame(recv, MAX_REGISTRATION_FRAME).await {
        Ok(Some(frame)) => Ok(frame),
        Ok(None) => Err(WireError::new(
            ErrorCode::BadRequest,
            "the stream closed before a registration frame",
        )),
        Err(e) => Err(e.to_wire_error()),
    }
}

/// Writes one reply frame, closes our side and waits (bounded) for it to be acknowledged.
async fn reply(send: &mut SendStream, result: Result<Frame, WireError>) {
    let frame = result.or_else(|error| Frame::new(&error));
    match frame {
        Ok(frame) => {
            if let Err(e) = wire::write_frame(send, &frame).await {
                debug!(error = %e, "cannot write reply");
                return;
            }
        }
        Err(e) => warn!(error = %e, "cannot encode reply"),
    }
    let _ = timeout(REPLY_ACK_TIMEOUT, send.finish()).await;
}

/// Who the registering host claims to be.
enum Claim {
    /// A bootstrap credential was verified; the host may ask for its previous ID.
    Bootstrapped { previous: Option<String> },
    /// The TLS handshake proved this host ID (mTLS reconnect).
    Certified(String),
}

/// Run the registration exchange on the first stream. On failure the error was sent to the
/// host and the reason is returned for the log.
async fn register(
    conn: &Connection,
    mut send: SendStream,
    mut recv: RecvStream,
    shared: &Shared,
) -> Result<SessionHost, String> {
    match admit(conn, &mut send, &mut recv, shared).await {
        Ok((request, claim)) => match complete_registration(request, claim, shared).await {
            Ok((response, host)) => {
                reply(
                    &mut send,
                    Frame::new(&response).map_err(|e| e.to_wire_error()),
                )
                .await;
                Ok(host)
            }
            Err(error) => {
                let reason = error.message.clone();
                reply(&mut send, Err(error)).await;
                Err(reason)
            }
        },
        Err((error, reason)) => {
            reply(&mut send, Err(error)).await;
            Err(reason)
        }
    }
}

type Refusal = (WireError, String);

fn refuse(code: ErrorCode, message: impl Into<String>) -> Refusal {
    let message = message.into();
    (WireError::new(code, message.clone()), message)
}

/// Check the host's credential; returns its registration request and who it proved to be.
async fn admit(
    conn: &Connection,
    send: &mut SendStream,
    recv: &mut RecvStream,
    shared: &Shared,
) -> Result<(RegisterRequest, Claim), Refusal> {
    let first = read_registration_frame(recv)
        .await
        .map_err(|e| (e.clone(), e.message))?;
    match first.kind.as_str() {
        kind::REGISTER_AUTH => {
            let Bootstrap::Psk(host_psk) = &shared.bootstrap else {
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
            let snonce = rpc::nonce();
            let challenge = RegisterChallenge {
                sproof: rpc::psk_proof(
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
            let next = read_registration_frame(recv)
                .await
                .map_err(|e| (e.clone(), e.message))?;
            let request: RegisterRequest = next.decode().map_err(frame_refusal)?;
            let proof = request
                .auth
                .as_ref()
                .filter(|a| a.method == method::PSK)
                .map(|a| a.proof.as_slice())
                .unwrap_or_default();
            if !rpc::verify_psk_proof(
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
            let previous = request.prev_host_id.clone();
            Ok((request, Claim::Bootstrapped { previous }))
        }
        kind::REGISTER => {
            let request: RegisterRequest = first.decode().map_err(frame_refusal)?;
            match &request.auth {
                Some(auth) if auth.method == method::JWT => {
                    let Bootstrap::Token(validator) = &shared.bootstrap else {
                        return Err(refuse(
                            ErrorCode::Unauthorized,
                            "JWT bootstrap is not enabled on this runtime (it expects a PSK)",
                        ));
                    };
                    match validator.validate(&auth.token).await {
                        Ok(subject) => {
                            debug!(%subject, "JWT bootstrap accepted");
                            let previous = request.prev_host_id.clone();
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

fn frame_refusal(e: FrameError) -> Refusal {
    let error = e.to_wire_error();
    let reason = error.message.clone();
    (error, reason)
}

/// The TLS exporter value both sides bind their PSK proofs to.
fn channel_binding(conn: &Connection) -> Result<Vec<u8>, Refusal> {
    let mut binding = vec![0u8; PSK_NONCE_LEN];
    conn.export_keying_material(&mut binding, CHANNEL_BINDING_LABEL, &[])
        .map_err(|_| refuse(ErrorCode::Internal, "cannot derive the channel binding"))?;
    Ok(binding)
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

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Register the admitted host in the store and certify its key.
async fn complete_registration(
    request: RegisterRequest,
    claim: Claim,
    shared: &Shared,
) -> Result<(RegisterResponse, SessionHost), WireError> {
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
    let registration = HostRegistration {
        address: request.address.clone(),
        actor_types: request.actor_types.clone(),
    };
    let store = &shared.store;
    let limit = shared.settings.store_timeout;
    let registered = timeout(limit, async {
        match claim {
            Claim::Certified(host_id) => {
                let reattached = store.reattach_host(&host_id, &registration).await?;
                Ok((host_id, reattached))
            }
            Claim::Bootstrapped {
                previous: Some(previous),
            } if SpiffeId::host(&previous).is_ok() => {
                // Honour the previous ID unless a healthy host elsewhere holds it.
                let taken = store
                    .list_hosts()
                    .await?
                    .into_iter()
                    .any(|h| h.host_id == previous && h.address != registration.address);
                if taken {
                    Ok((store.register_host(&registration).await?, false))
                } else {
                    let reattached = store.reattach_host(&previous, &registration).await?;
                    Ok((previous, reattached))
                }
            }
            Claim::Bootstrapped { .. } => Ok((store.register_host(&registration).await?, false)),
        }
    })
    .await
    .map_err(|_| WireError::new(ErrorCode::Internal, "the store did not answer in time"))?
    .map_err(|e: StoreError| store_error(&e))?;
    let (host_id, reattached) = registered;
    let (cert, expires) = shared
        .ca
        .issue_host_cert_for_key(&host_id, &request.wlpub, shared.settings.workload_cert_ttl)
        .map_err(|e| WireError::new(ErrorCode::BadRequest, e.to_string()))?;
    let session_id = uuid::Uuid::new_v4().to_string();
    let settings = &shared.settings;
    let response = RegisterResponse {
        host_id: host_id.clone(),
        session_id: session_id.clone(),
        reattached,
        health_deadline_ms: ms(settings.health_check_deadline),
        alarms_poll_interval_ms: ms(settings.alarms_poll_interval),
        alarms_lease_duration_ms: ms(settings.alarms_lease_duration),
        wlcert: cert.to_vec(),
        cert_expires_ms: unix_ms(expires),
        cabundle: bundle(shared),
    };
    Ok((
        response,
        SessionHost {
            host_id,
            session_id,
        },
    ))
}

fn bundle(shared: &Shared) -> Vec<ByteBuf> {
    shared
        .ca
        .bundle_der()
        .iter()
        .map(|c| ByteBuf::from(c.to_vec()))
        .collect()
}

fn check_address(address: &str) -> Result<(), WireError> {
    match address.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>())) {
        Some((host, Ok(port))) if !host.is_empty() && port != 0 => Ok(()),
        _ => Err(WireError::new(
            ErrorCode::BadRequest,
            format!("address {address:?} is not host:port with a non-zero port"),
        )),
    }
}

/// A store error as the host sees it.
pub(crate) fn store_error(e: &StoreError) -> WireError {
    let code = match e {
        StoreError::HostUnregistered { .. } => ErrorCode::HostUnregistered,
        StoreError::HostAlreadyRegistered { .. } => ErrorCode::AddressInUse,
        StoreError::NoHost { .. } => ErrorCode::NoHost,
        StoreError::NotActive { .. } => ErrorCode::ActorNotActive,
        StoreError::Invalid(_) => ErrorCode::BadRequest,
        _ => ErrorCode::Internal,
    };
    WireError::new(code, e.to_string())
}

/// Serve one request stream of a registered host.
async fn handle_stream(
    mut send: SendStream,
    mut recv: RecvStream,
    host: Arc<SessionHost>,
    shared: Arc<Shared>,
) {
    let limit = shared.settings.request_timeout;
    let frame = match timeout(limit, wire::read_frame(&mut recv, MAX_FRAME_BYTES)).await {
        Ok(Ok(Some(frame))) => frame,
        Ok(Ok(None)) => return,
        Ok(Err(FrameError::Io(e))) => {
            debug!(host = %host.host_id, error = %e, "request stream failed");
            return;
        }
        Ok(Err(e)) => {
            info!(host = %host.host_id, error = %e, "bad request frame");
            recv.stop(VarInt::from_u32(0));
            reply(&mut send, Err(e.to_wire_error())).await;
            return;
        }
        Err(_) => {
            recv.stop(VarInt::from_u32(0));
            let error = WireError::new(
                ErrorCode::DeadlineExceeded,
                format!("no request frame within {limit:?}"),
            );
            reply(&mut send, Err(error)).await;
            return;
        }
    };
    drop(recv);
    let _running = Running::enter(&shared);
    let result = match frame.kind.as_str() {
        kind::STORE => match frame.decode::<StoreCall>() {
            Ok(call) => {
                let name = call.name();
                let out = timeout(shared.settings.store_timeout, execute(call, &host, &shared))
                    .await
                    .unwrap_or_else(|_| {
                        Err(WireError::new(
                            ErrorCode::Internal,
                            format!("the store did not answer {name} in time"),
                        ))
                    });
                out.and_then(|r| Frame::new(&r).map_err(|e| e.to_wire_error()))
            }
            Err(e) => Err(e.to_wire_error()),
        },
        kind::RENEW => match frame.decode::<RenewRequest>() {
            Ok(request) => renew(request, &host, &shared)
                .and_then(|r| Frame::new(&r).map_err(|e| e.to_wire_error())),
            Err(e) => Err(e.to_wire_error()),
        },
        other => Err(WireError::new(
            ErrorCode::BadRequest,
            format!("unknown request kind {other:?}"),
        )),
    };
    reply(&mut send, result).await;
}

fn renew(
    request: RenewRequest,
    host: &SessionHost,
    shared: &Shared,
) -> Result<RenewResponse, WireError> {
    let (cert, expires) = shared
        .ca
        .issue_host_cert_for_key(
            &host.host_id,
            &request.wlpub,
            shared.settings.workload_cert_ttl,
        )
        .map_err(|e| WireError::new(ErrorCode::BadRequest, e.to_string()))?;
    debug!(host = %host.host_id, "workload certificate renewed");
    Ok(RenewResponse {
        wlcert: cert.to_vec(),
        cert_expires_ms: unix_ms(expires),
        cabundle: bundle(shared),
    })
}

/// Run a store operation for the session's host.
async fn execute(
    call: StoreCall,
    host: &SessionHost,
    shared: &Shared,
) -> Result<StoreReply, WireError> {
    let store = &shared.store;
    let host_id = host.host_id.as_str();
    let lease = |ms: u64| Duration::from_millis(ms);
    let result = match call {
        StoreCall::Heartbeat => store.heartbeat(host_id).await.map(|()| StoreReply::Done),
        StoreCall::Unregister => {
            let result = store
                .unregister_host(host_id)
                .await
                .map(|()| StoreReply::Done);
            info!(host = %host_id, "host unregistered");
            result
        }
        StoreCall::ListHosts => store.list_hosts().await.map(StoreReply::Hosts),
        StoreCall::LookupActor { key, active_only } => store
            .lookup_actor(
                &key,
                &LookupOptions {
                    active_only,
                    allowed_hosts: None,
                },
            )
            .await
            .map(StoreReply::Placement),
        StoreCall::RemoveActor { key } => store
            .remove_actor(&key, host_id)
            .await
            .map(StoreReply::Flag),
        StoreCall::GetState { key } => store
            .get_state(&key)
            .await
            .map(|data| StoreReply::State(data.map(ByteBuf::from))),
        StoreCall::SetState { key, data, ttl_ms } => store
            .set_state(&key, &data, ttl_ms.map(Duration::from_millis))
            .await
            .map(|()| StoreReply::Done),
        StoreCall::DeleteState { key } => store.delete_state(&key).await.map(StoreReply::Flag),
        StoreCall::ListStates {
            actor_type,
            options,
        } => store
            .list_states(&actor_type, &options)
            .await
            .map(StoreReply::States),
        StoreCall::SetAlarm { key, name, alarm } => store
            .set_alarm(&key, &name, &alarm)
            .await
            .map(|()| StoreReply::Done),
        StoreCall::GetAlarm { key, name } => {
            store.get_alarm(&key, &name).await.map(StoreReply::Alarm)
        }
        StoreCall::DeleteAlarm { key, name } => {
            store.delete_alarm(&key, &name).await.map(StoreReply::Flag)
        }
        StoreCall::FetchAlarms {
            horizon_ms,
            lease_ms,
            batch_size,
        } => store
            .fetch_and_lease_alarms(&FetchAlarms {
                hosts: vec![host_id.to_owned()],
                horizon_ms,
                lease_duration: lease(lease_ms),
                batch_size: batch_size.min(1000),
            })
            .await
            .map(StoreReply::Leases),
        StoreCall::GetLeasedAlarm { lease } => {
            store.get_leased_alarm(&lease).await.map(StoreReply::Alarm)
        }
        StoreCall::CompleteLeasedAlarm {
            lease: held,
            completion,
            lease_ms,
        } => store
            .complete_leased_alarm(&held, &completion, lease(lease_ms))
            .await
            .map(StoreReply::Lease),
        StoreCall::ReleaseAlarmLease { lease } => store
            .release_alarm_lease(&lease)
            .await
            .map(StoreReply::Flag),
        StoreCall::RenewAlarmLeases { lease_ms } => store
            .renew_alarm_leases(host_id, lease(lease_ms))
            .await
            .map(StoreReply::Leases),
    };
    result.map_err(|e| store_error(&e))
}
