//! The peer server: accepts WebTransport sessions from hosts of this cluster and serves one call
//! per stream, after the admission checks (a well-formed request for this host, not draining,
//! under the calling host's limits), in the stream's own task.
//!
//! Limits hold per calling host (its SPIFFE ID), whatever number of sessions it opens: sessions
//! at once, calls in flight (taken when a request's length arrives, before its body is read)
//! and request bytes in flight.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::timeout;
use tracing::{Instrument, debug, info};
use wtransport::endpoint::endpoint_side;
use wtransport::endpoint::{IncomingSession, SessionRequest};
use wtransport::{Connection, Endpoint, RecvStream, SendStream, VarInt};

use super::{EXTRA_STREAMS, NetError, PEER_PATH, PeerHandler, PeerLimits, transport_config};
use crate::cluster::actions::HostOrder;
use crate::error::validate_name;
use crate::net::gate::Ticket;
use crate::net::pki::{HOST_PREFIX, RUNTIME_PREFIX, SpiffeId, spiffe_id_of};
use crate::net::serving::{InFlight, accept_until, bind_server, reply, reserve_body};
use crate::net::tls::{self, CertSlot, ClientAuth, Trust};
use crate::net::translate::{DRAINING_RETRY, OVERLOADED_RETRY};
use crate::net::wire::{
    self, AdminRequest, AdminResponse, ErrorCode, Frame, FrameError, InvokeRequest, InvokeResponse,
    MAX_FRAME_BYTES, WireError,
};
use crate::telemetry::metrics::{LevelGuard, metrics};

struct ServerShared {
    handler: Arc<dyn PeerHandler>,
    limits: PeerLimits,
    host_id: String,
    draining: Arc<AtomicBool>,
    in_flight: InFlight,
    /// What each calling host holds now, by SPIFFE ID.
    peers: Mutex<HashMap<String, PeerAllowance>>,
}

/// One calling host's share of the server, kept while it has a session.
struct PeerAllowance {
    sessions: usize,
    calls: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
}

/// A session counted against its host's allowance until it ends.
struct PeerSession {
    shared: Arc<ServerShared>,
    caller: SpiffeId,
    calls: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    /// Counts the connection in `francis_peer_connections{direction="in"}`.
    _open: LevelGuard,
}

impl PeerSession {
    /// Count a new session of `caller` in, unless it already holds its most.
    fn open(shared: &Arc<ServerShared>, caller: &SpiffeId) -> Option<PeerSession> {
        let limits = &shared.limits;
        let mut peers = shared.peers.lock().unwrap_or_else(|p| p.into_inner());
        let allowance = peers
            .entry(caller.as_str().to_owned())
            .or_insert_with(|| PeerAllowance {
                sessions: 0,
                calls: Arc::new(Semaphore::new(limits.max_in_flight)),
                bytes: Arc::new(Semaphore::new(limits.max_bytes_in_flight)),
            });
        if allowance.sessions >= limits.max_sessions_per_peer {
            return None;
        }
        allowance.sessions += 1;
        Some(PeerSession {
            shared: shared.clone(),
            caller: caller.clone(),
            calls: allowance.calls.clone(),
            bytes: allowance.bytes.clone(),
            _open: LevelGuard::new(metrics().peer_connections.with(&["in"])),
        })
    }
}

impl Drop for PeerSession {
    fn drop(&mut self) {
        let mut peers = self.shared.peers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(allowance) = peers.get_mut(self.caller.as_str()) {
            allowance.sessions = allowance.sessions.saturating_sub(1);
            if allowance.sessions == 0 {
                peers.remove(self.caller.as_str());
            }
        }
    }
}

/// Serves peer invocations for one host. Create with [`bind`](Self::bind), run with
/// [`serve`](Self::serve).
pub struct PeerServer {
    endpoint: Endpoint<endpoint_side::Server>,
    local_addr: SocketAddr,
    shared: Arc<ServerShared>,
}

impl std::fmt::Debug for PeerServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerServer")
            .field("local_addr", &self.local_addr)
            .field("host_id", &self.shared.host_id)
            .finish()
    }
}

impl PeerServer {
    /// Binds the UDP socket and prepares the server. `cert` must hold a host identity; callers
    /// must present host certificates that chain to `trust`. Both are read at every handshake,
    /// so a renewed certificate or CA bundle takes effect without a restart. Once `draining` is
    /// set (by the host as it starts shutting down, or by [`serve`](Self::serve) at the end),
    /// calls are answered `host_draining`. Must be called inside a Tokio runtime.
    pub fn bind(
        addr: SocketAddr,
        trust: &Trust,
        cert: Arc<CertSlot>,
        handler: Arc<dyn PeerHandler>,
        limits: PeerLimits,
        draining: Arc<AtomicBool>,
    ) -> Result<PeerServer, NetError> {
        tokio::runtime::Handle::try_current().map_err(|_| NetError::NoRuntime)?;
        let identity = cert.identity().ok_or(NetError::NoIdentity)?;
        let host_id = identity
            .spiffe_id()
            .host_id()
            .ok_or_else(|| NetError::NotAHost(identity.spiffe_id().clone()))?
            .to_string();
        if limits.max_in_flight == 0 {
            return Err(NetError::InvalidLimits("max_in_flight must be at least 1"));
        }
        if limits.max_request_bytes == 0 || limits.max_request_bytes > MAX_FRAME_BYTES {
            return Err(NetError::InvalidLimits(
                "max_request_bytes must be between 1 and 16 MiB",
            ));
        }
        if limits.max_bytes_in_flight < limits.max_request_bytes {
            return Err(NetError::InvalidLimits(
                "max_bytes_in_flight must be at least max_request_bytes",
            ));
        }
        limits
            .connections
            .validate()
            .map_err(NetError::InvalidLimits)?;
        if limits.max_sessions_per_peer == 0 {
            return Err(NetError::InvalidLimits(
                "max_sessions_per_peer must be at least 1",
            ));
        }
        // Hosts call actors and relay operator actions; a runtime relays operator actions only.
        let tls = tls::server_config_for(
            trust,
            cert,
            &[HOST_PREFIX, RUNTIME_PREFIX],
            ClientAuth::Required,
        )?;
        let transport = transport_config(
            limits.max_in_flight.saturating_add(EXTRA_STREAMS),
            limits.idle_timeout,
            None,
        )?;
        let (endpoint, local_addr) = bind_server(addr, tls, transport)?;
        Ok(PeerServer {
            endpoint,
            local_addr,
            shared: Arc::new(ServerShared {
                handler,
                limits,
                host_id,
                draining,
                in_flight: InFlight::default(),
                peers: Mutex::default(),
            }),
        })
    }

    /// The bound address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Accepts sessions until `shutdown` completes, then drains: new calls are answered
    /// `host_draining`, running calls get up to [`PeerLimits::shutdown_grace`] to finish, and
    /// the endpoint closes with code 0, "host shutting down".
    pub async fn serve(self, shutdown: impl Future) {
        let PeerServer {
            endpoint,
            local_addr,
            shared,
        } = self;
        info!(%local_addr, host_id = %shared.host_id, "peer server listening");
        accept_until(
            endpoint,
            shared.limits.connections,
            async move {
                shutdown.await;
                info!(%local_addr, "peer server draining");
            },
            &shared.draining,
            &shared.in_flight,
            shared.limits.shutdown_grace,
            (0, b"host shutting down"),
            |incoming, ticket| handle_session(incoming, ticket, shared.clone()),
        )
        .await;
        info!(%local_addr, "peer server stopped");
    }
}

async fn establish(
    incoming: IncomingSession,
    shared: &ServerShared,
) -> Result<(Connection, SpiffeId), String> {
    let request: SessionRequest = incoming
        .await
        .map_err(|e| format!("handshake failed: {e}"))?;
    if request.path() != PEER_PATH {
        let path = request.path().to_string();
        request.not_found().await;
        return Err(format!("refused session for unknown path {path:?}"));
    }
    if shared.draining.load(Ordering::SeqCst) {
        request.too_many_requests().await;
        return Err("refused session: host is draining".into());
    }
    let conn = request
        .accept()
        .await
        .map_err(|e| format!("session accept failed: {e}"))?;
    let caller = conn
        .peer_identity()
        .and_then(|chain| chain.as_slice().first().map(|c| spiffe_id_of(c.der())));
    match caller {
        Some(Ok(id)) => Ok((conn, id)),
        Some(Err(e)) => {
            conn.close(VarInt::from_u32(1), b"unusable client identity");
            Err(format!("unusable client identity: {e}"))
        }
        None => {
            conn.close(VarInt::from_u32(1), b"client certificate required");
            Err("no client certificate".into())
        }
    }
}

async fn handle_session(incoming: IncomingSession, mut ticket: Ticket, shared: Arc<ServerShared>) {
    let remote = incoming.remote_address();
    let (conn, caller) = match timeout(
        shared.limits.handshake_timeout,
        establish(incoming, &shared),
    )
    .await
    {
        Ok(Ok(established)) => established,
        Ok(Err(reason)) => {
            info!(%remote, %reason, "peer session refused");
            return;
        }
        Err(_) => {
            info!(%remote, "peer session refused: handshake timed out");
            return;
        }
    };
    ticket.established();
    let Some(session) = PeerSession::open(&shared, &caller) else {
        info!(
            %remote, %caller, limit = shared.limits.max_sessions_per_peer,
            "peer session refused: the host already holds its most sessions"
        );
        conn.close(VarInt::from_u32(1), b"too many sessions from this host");
        return;
    };
    debug!(%remote, %caller, "peer session established");
    let session = Arc::new(session);
    loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                tokio::spawn(handle_stream(send, recv, session.clone()));
            }
            Err(e) => {
                debug!(%remote, %caller, reason = %e, "peer session closed");
                return;
            }
        }
    }
}

/// Why a request stream ended before its request was admitted.
enum Unread {
    /// The caller closed the stream without a request.
    Closed,
    /// The stream broke.
    Failed(std::io::Error),
    /// Refused with this error.
    Refused(WireError),
}

/// Read a stream's request under the calling host's limits: its length first, then a call
/// permit (none free: `overloaded`, the body unread), then room for its bytes, then its body.
async fn read_request(
    recv: &mut RecvStream,
    session: &PeerSession,
) -> Result<(Frame, OwnedSemaphorePermit, OwnedSemaphorePermit), Unread> {
    let limits = &session.shared.limits;
    let frame_error = |e: FrameError| match e {
        FrameError::Io(e) => Unread::Failed(e),
        other => Unread::Refused(other.to_wire_error()),
    };
    let len = match wire::read_frame_len(recv, limits.max_request_bytes).await {
        Ok(Some(len)) => len,
        Ok(None) => return Err(Unread::Closed),
        Err(e) => return Err(frame_error(e)),
    };
    let Ok(call) = session.calls.clone().try_acquire_owned() else {
        return Err(Unread::Refused(
            WireError::new(
                ErrorCode::Overloaded,
                format!(
                    "too many calls in flight from this host (limit {})",
                    limits.max_in_flight
                ),
            )
            .with_retry_after(OVERLOADED_RETRY),
        ));
    };
    let bytes = reserve_body(&session.bytes, len)
        .await
        .map_err(frame_error)?;
    let frame = wire::read_frame_body(recv, len)
        .await
        .map_err(frame_error)?;
    Ok((frame, call, bytes))
}

async fn handle_stream(mut send: SendStream, mut recv: RecvStream, session: Arc<PeerSession>) {
    let shared = &session.shared;
    let caller = &session.caller;
    let limits = &shared.limits;
    let read = timeout(
        limits.first_frame_timeout,
        read_request(&mut recv, &session),
    )
    .await;
    let (frame, call, bytes) = match read {
        Ok(Ok(request)) => request,
        Ok(Err(Unread::Closed)) => {
            let _ = send.shutdown().await;
            return;
        }
        Ok(Err(Unread::Failed(e))) => {
            debug!(%caller, error = %e, "peer stream failed before its request arrived");
            return;
        }
        Ok(Err(Unread::Refused(error))) => {
            info!(%caller, %error, "peer request refused before it was read");
            recv.stop(VarInt::from_u32(0));
            reply(&mut send, Err(error)).await;
            return;
        }
        Err(_) => {
            info!(%caller, timeout = ?limits.first_frame_timeout, "peer stream sent no request in time");
            recv.stop(VarInt::from_u32(0));
            let error = WireError::new(
                ErrorCode::DeadlineExceeded,
                format!(
                    "no request frame within {:?}; closing the stream",
                    limits.first_frame_timeout
                ),
            );
            reply(&mut send, Err(error)).await;
            return;
        }
    };
    drop(recv);
    // Counted from here until the reply is delivered, so shutdown waits for it.
    let _running = shared.in_flight.enter();
    metrics().peer_streams.with(&["in"]).inc();
    let span =
        tracing::debug_span!("peer.invoke", otel.kind = "server", francis.peer.caller = %caller);
    crate::telemetry::context::set_remote_parent(&span, frame.trace_context.as_deref());
    let result = if frame.kind == wire::kind::ADMIN {
        dispatch_admin(frame, caller.clone(), shared)
            .instrument(span)
            .await
            .and_then(|response| Frame::new(&response).map_err(|e| e.to_wire_error()))
    } else {
        dispatch(frame, caller.clone(), shared)
            .instrument(span)
            .await
            .and_then(|response| Frame::new(&response).map_err(|e| e.to_wire_error()))
    };
    // The call is over for the caller's limits once its answer exists: delivering the reply
    // waits for the caller's acknowledgement, which must not hold a permit (a caller that
    // calls again at once would find its own finished calls still counted).
    drop((call, bytes));
    reply(&mut send, result).await;
}

/// Admit a request (the one place where a peer call is checked: well-formed, with names valid
/// as hosts check them and a UUID request ID, meant for this host, not draining; its limits
/// were taken as it was read) and run it in this stream's task.
async fn dispatch(
    frame: Frame,
    caller: SpiffeId,
    shared: &Arc<ServerShared>,
) -> Result<InvokeResponse, WireError> {
    if caller.host_id().is_none() {
        return Err(WireError::new(
            ErrorCode::Unauthorized,
            format!("{caller} is not a host: only hosts call actors"),
        ));
    }
    let request: InvokeRequest = frame.decode().map_err(|e| e.to_wire_error())?;
    for (what, name) in [
        ("actor type", &request.actor_type),
        ("actor ID", &request.actor_id),
        ("method", &request.method),
    ] {
        // The one reserved method hosts call on each other: a singleton's bootstrap touch.
        if what == "method" && name == crate::actor::dispatch::BOOTSTRAP_WIRE_NAME {
            continue;
        }
        validate_name(what, name)
            .map_err(|e| WireError::new(ErrorCode::BadRequest, e.to_string()))?;
    }
    // The owner suppresses duplicates by request ID: one a caller did not make unique (empty,
    // or a constant) would share results between unrelated calls.
    if uuid::Uuid::try_parse(&request.request_id).is_err() {
        return Err(WireError::new(
            ErrorCode::BadRequest,
            format!(
                "the request ID {:?} is not a UUID; each call needs a fresh one (reused only when \
                 the same call is retried)",
                request.request_id.chars().take(64).collect::<String>()
            ),
        ));
    }
    if request.target_host_id != shared.host_id {
        return Err(WireError::new(
            ErrorCode::HostMismatch,
            format!(
                "this is host {}, not host {:?}",
                shared.host_id, request.target_host_id
            ),
        ));
    }
    if shared.draining.load(Ordering::SeqCst) {
        return Err(
            WireError::new(ErrorCode::HostDraining, "host is shutting down")
                .with_retry_after(DRAINING_RETRY),
        );
    }
    shared.handler.invoke(caller, request).await
}

/// Admit an operator's action on this host (sent by the host or runtime serving the operations
/// API, which authorized it): well-formed, with valid names, meant for this host.
async fn dispatch_admin(
    frame: Frame,
    caller: SpiffeId,
    shared: &Arc<ServerShared>,
) -> Result<AdminResponse, WireError> {
    let request: AdminRequest = frame.decode().map_err(|e| e.to_wire_error())?;
    let names: Vec<(&str, &String)> = match &request.action {
        HostOrder::HaltActor {
            actor_type,
            actor_id,
        } => vec![("actor type", actor_type), ("actor ID", actor_id)],
        HostOrder::HaltType { actor_type } => vec![("actor type", actor_type)],
        HostOrder::Drain | HostOrder::SetLogLevel { .. } => Vec::new(),
    };
    for (what, name) in names {
        validate_name(what, name)
            .map_err(|e| WireError::new(ErrorCode::BadRequest, e.to_string()))?;
    }
    if request.target_host_id != shared.host_id {
        return Err(WireError::new(
            ErrorCode::HostMismatch,
            format!(
                "this is host {}, not host {:?}",
                shared.host_id, request.target_host_id
            ),
        ));
    }
    info!(%caller, action = ?request.action, "operator action");
    shared.handler.admin(caller, request.action).await
}
