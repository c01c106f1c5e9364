//! The runtime's side of the runtime protocol: the session server. It accepts WebTransport
//! sessions at [`RUNTIME_PATH`], runs the registration exchange on each session's first stream
//! ([`register`]), lets a newer session of a host supersede the older one, and then serves one
//! request per stream ([`requests`]): a store operation on behalf of the session's own host, or
//! a certificate renewal. What it admits and what it issues are the runtime's decisions,
//! asked of an [`Admission`] (implemented by [`crate::runtime`]).
//!
//! Hardening: the handshake, the registration stream and its frames each have a deadline (a
//! connection that never registers is closed, not held), registration frames are capped at
//! 64 KiB, connections wait at the [gate](crate::net::gate) until they register (handshakes
//! in progress capped in all and per source IP, QUIC retry under load), every store operation is bounded in time, and failures get an error reply that says
//! what is wrong; the specific reason a credential was refused is logged, the client only
//! learns that it was.

mod register;
mod requests;

pub(crate) use self::requests::MAX_FETCH_BATCH;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::timeout;
use tracing::{debug, info};
use wtransport::endpoint::{IncomingSession, endpoint_side};
use wtransport::{Connection, Endpoint, VarInt};

use super::messages::{RUNTIME_PATH, RegisterResponse, RenewResponse};
use crate::model::{HostRegistration, Store};
use crate::net::gate::{ConnectionLimits, Ticket};
use crate::net::peer::{NetError, transport_config};
use crate::net::pki::HOST_PREFIX;
use crate::net::serving::{InFlight, accept_until, bind_server};
use crate::net::tls::{self, CertSlot, ClientAuth, Trust};
use crate::net::wire::WireError;

/// How hosts prove they may join, as the server needs to know it.
pub(crate) enum Bootstrap<'a> {
    /// The channel-bound PSK challenge-response with this host PSK.
    Psk(&'a [u8]),
    /// A bearer token, checked by [`Admission::validate_token`].
    Token,
}

/// Who a registering host proved to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Claim {
    /// A bootstrap credential was verified.
    Bootstrapped {
        /// The ID the host had before, when it proved it still holds that ID's key (a
        /// credential alone never buys an existing identity).
        previous: Option<String>,
    },
    /// The TLS handshake proved this host ID (an mTLS reconnect).
    Certified(String),
}

/// The runtime's decisions, which the session server asks for.
#[async_trait]
pub(crate) trait Admission: Send + Sync + 'static {
    /// How hosts bootstrap on this runtime.
    fn bootstrap(&self) -> Bootstrap<'_>;

    /// Check a bootstrap token: its subject (for the log), or why it was refused (logged,
    /// never sent to the client).
    async fn validate_token(&self, token: &str) -> Result<String, String>;

    /// Register an admitted host in the store and certify its key (`wlpub`, a raw Ed25519
    /// public key). The response's session ID is the server's to fill in.
    async fn register(
        &self,
        claim: Claim,
        registration: &HostRegistration,
        wlpub: &[u8],
    ) -> Result<RegisterResponse, WireError>;

    /// Certify a fresh key for a host that is still registered (and healthy) in the store; a
    /// host that unregistered, or whose heartbeat expired, gets `host_unregistered`.
    async fn renew(&self, host_id: &str, wlpub: &[u8]) -> Result<RenewResponse, WireError>;

    /// The store hosts' operations run against.
    fn store(&self) -> &Arc<dyn Store>;
}

/// Deadlines and limits of a [`SessionServer`].
#[derive(Debug, Clone)]
pub(crate) struct ServerSettings {
    /// How long a new connection may take to register.
    pub registration_timeout: Duration,
    /// How long a request stream may take to deliver its frame.
    pub request_timeout: Duration,
    /// How long one store operation (or a registration's) may take.
    pub store_timeout: Duration,
    /// QUIC idle timeout of sessions (the health-check deadline).
    pub idle_timeout: Duration,
    /// How long running requests may take to finish at shutdown.
    pub shutdown_grace_period: Duration,
    /// Concurrent streams (requests) a host may open on its session; further ones wait.
    pub max_in_flight_requests: usize,
    /// The largest request frame a host may send.
    pub max_request_bytes: usize,
    /// Caps on connections before they register.
    pub connections: ConnectionLimits,
}

/// The state every session task shares.
struct Shared {
    admission: Arc<dyn Admission>,
    /// The CAs host certificates must chain to (also for proofs of a previous identity).
    trust: Trust,
    settings: ServerSettings,
    /// Live sessions by host ID, with their session IDs: a newer session of the same host
    /// supersedes the older one.
    sessions: Mutex<HashMap<String, (String, Connection)>>,
    draining: AtomicBool,
    in_flight: InFlight,
}

/// The runtime's session server. Create with [`bind`](Self::bind), run with
/// [`serve`](Self::serve).
pub(crate) struct SessionServer {
    endpoint: Endpoint<endpoint_side::Server>,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
}

impl SessionServer {
    /// Bind the UDP socket. The server presents the runtime certificate in `cert` and accepts
    /// (optionally) client certificates of hosts that chain to `trust`. Must be called inside a
    /// Tokio runtime.
    pub(crate) fn bind(
        addr: SocketAddr,
        trust: &Trust,
        cert: Arc<CertSlot>,
        admission: Arc<dyn Admission>,
        settings: ServerSettings,
    ) -> Result<Self, NetError> {
        let tls = tls::server_config(trust, cert, HOST_PREFIX, ClientAuth::Optional)?;
        settings
            .connections
            .validate()
            .map_err(NetError::InvalidLimits)?;
        let transport =
            transport_config(settings.max_in_flight_requests, settings.idle_timeout, None)?;
        let (endpoint, local_addr) = bind_server(addr, tls, transport)?;
        Ok(SessionServer {
            endpoint,
            local_addr,
            shared: Arc::new(Shared {
                admission,
                trust: trust.clone(),
                settings,
                sessions: Mutex::default(),
                draining: AtomicBool::new(false),
                in_flight: InFlight::default(),
            }),
        })
    }

    /// The bound address (with the real port when bound to port 0).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// How many hosts hold a session now.
    pub(crate) fn connected_hosts(&self) -> usize {
        self.shared.sessions.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Serve hosts until `shutdown` completes, then drain: refuse new sessions, give running
    /// requests up to the shutdown grace period, and close every session with code 2 ("runtime
    /// shutting down") so workers move to another replica at once.
    pub(crate) async fn serve(self, shutdown: impl Future<Output = ()> + Send) {
        let SessionServer {
            endpoint,
            local_addr,
            shared,
        } = self;
        accept_until(
            endpoint,
            shared.settings.connections,
            async move {
                shutdown.await;
                info!(%local_addr, "runtime shutting down");
            },
            &shared.draining,
            &shared.in_flight,
            shared.settings.shutdown_grace_period,
            (2, b"runtime shutting down"),
            |incoming, ticket| serve_connection(incoming, ticket, shared.clone()),
        )
        .await;
    }
}

/// The host a session registered.
struct RegisteredHost {
    host_id: String,
    session_id: String,
    /// The session's budget of request bytes in flight
    /// ([`requests::MAX_SESSION_REQUEST_BYTES`] permits, one per byte).
    budget: Arc<tokio::sync::Semaphore>,
    /// Counts the session in `francis_runtime_sessions` while it lives.
    _open: crate::telemetry::metrics::LevelGuard,
}

/// Serve one incoming connection from handshake to close.
/// The connection counts as pending at the gate until it registers.
async fn serve_connection(incoming: IncomingSession, mut ticket: Ticket, shared: Arc<Shared>) {
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
        register::register(&conn, send, recv, &shared)
            .await
            .map(Some)
    })
    .await;
    let host = match registered {
        Ok(Ok(Some(host))) => host,
        Ok(Ok(None)) => {
            // What a CA probe (`francis ca pin`, `francis dev`'s readiness check) does: read
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
    ticket.established();
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
                tokio::spawn(requests::handle_stream(
                    send,
                    recv,
                    host.clone(),
                    shared.clone(),
                ));
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

/// Whether the client closed the connection itself with code 0, as a CA probe does.
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
