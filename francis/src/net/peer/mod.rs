//! Host-to-host actor invocation over WebTransport (HTTP/3 over QUIC), authenticated both ways
//! with workload certificates from the cluster CA.
//!
//! - [`PeerServer`] accepts WebTransport sessions at [`PEER_PATH`] from hosts of this cluster
//!   (client certificate required, SPIFFE path `/host/…`), and serves one call per
//!   bidirectional stream: one request frame in, one response frame out, then FIN.
//! - [`PeerClient`] keeps one session per peer address, pins the peer's SPIFFE host ID to the
//!   request's `target_host_id`, and classifies failures so callers know what is safe to retry:
//!   anything before the request was sent is `retry_later`; a failure while waiting for the
//!   reply is `transport_failure` and must not be retried (the actor may have run).
//!
//! Hardening: a stream's first frame must arrive within [`PeerLimits::first_frame_timeout`]
//! (slowloris), request frames are capped at [`PeerLimits::max_request_bytes`] before any
//! allocation, each calling host runs at most [`PeerLimits::max_in_flight`] calls over all its
//! sessions (the excess is answered in-band with `overloaded`, its body unread), holds at most
//! [`PeerLimits::max_bytes_in_flight`] request bytes and [`PeerLimits::max_sessions_per_peer`]
//! sessions, connections are admitted through a [gate](super::gate) (handshakes in progress
//! capped in all and per source IP, QUIC retry under load), and a malformed frame only earns
//! its stream a `bad_request` reply.

mod client;
mod server;

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use wtransport::config::QuicTransportConfig;
use wtransport::endpoint::endpoint_side;
use wtransport::error::ConnectingError;
use wtransport::{ClientConfig, Endpoint};

pub use self::client::PeerClient;
pub use self::server::PeerServer;
use super::gate;
pub use super::gate::ConnectionLimits;
use super::pki::{PkiError, SpiffeId};
use super::wire::{ErrorCode, InvokeRequest, InvokeResponse, MAX_FRAME_BYTES, WireError};

/// The WebTransport path of the peer invocation endpoint.
pub const PEER_PATH: &str = "/peer/v1/invoke";

/// QUIC streams allowed per session beyond `max_in_flight`, so excess calls can still be
/// refused in-band with `overloaded` instead of stalling on stream credit.
const EXTRA_STREAMS: usize = 8;

/// Limits and timeouts of a [`PeerServer`].
#[derive(Debug, Clone)]
pub struct PeerLimits {
    /// Calls running at once per calling host (over all its sessions); the excess is answered
    /// `overloaded` before its body is read. Default 100.
    pub max_in_flight: usize,
    /// Largest accepted request frame in bytes (at most 16 MiB). Default 16 MiB.
    pub max_request_bytes: usize,
    /// Request bytes one calling host's calls may hold at once (read, not yet answered); a
    /// request waits for room before its body is read. Default 64 MiB (at least
    /// `max_request_bytes`).
    pub max_bytes_in_flight: usize,
    /// Sessions one calling host may hold at once; a further one is refused. Default 4 (a host
    /// keeps one per peer, and a reconnect briefly overlaps the old one).
    pub max_sessions_per_peer: usize,
    /// How long a new stream may take to deliver its request frame. Default 30 s.
    pub first_frame_timeout: Duration,
    /// How long a new connection may take to complete TLS and the WebTransport handshake.
    /// Default 10 s.
    pub handshake_timeout: Duration,
    /// QUIC idle timeout of sessions. Default 60 s.
    pub idle_timeout: Duration,
    /// How long [`PeerServer::serve`] waits for running calls after shutdown is requested.
    /// Default 30 s.
    pub shutdown_grace: Duration,
    /// Caps on connections before they are established (handshakes in progress, in all and
    /// per source IP; connections per source IP).
    pub connections: ConnectionLimits,
}

impl Default for PeerLimits {
    fn default() -> Self {
        PeerLimits {
            max_in_flight: 100,
            max_request_bytes: MAX_FRAME_BYTES,
            max_bytes_in_flight: 64 * 1024 * 1024,
            max_sessions_per_peer: 4,
            first_frame_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(30),
            connections: ConnectionLimits::default(),
        }
    }
}

/// Errors setting up a peer server or client.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The certificate or TLS configuration is unusable.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The identity is not a host identity (`spiffe://francis/host/<id>`).
    #[error("identity {0} is not a host identity (spiffe://francis/host/<id>)")]
    NotAHost(SpiffeId),
    /// The certificate slot holds no identity yet.
    #[error("no workload identity yet: a server needs its certificate before it can listen")]
    NoIdentity,
    /// A limit is out of range.
    #[error("invalid peer limits: {0}")]
    InvalidLimits(&'static str),
    /// Called outside a Tokio runtime.
    #[error("the peer transport must be created inside a Tokio runtime")]
    NoRuntime,
    /// The UDP socket could not be bound.
    #[error("cannot bind the peer endpoint on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The failure of a peer call: either the peer's own error reply, or a local / transport
/// failure described with the same codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// The peer answered with an error frame.
    #[error("peer replied {0}")]
    Remote(WireError),
    /// The call failed on this side or in transit.
    #[error("{0}")]
    Local(WireError),
}

impl PeerError {
    fn local(code: ErrorCode, message: impl Into<String>) -> Self {
        PeerError::Local(WireError::new(code, message))
    }

    /// Whether the call failed because the peer could not be reached (no connection, a refused
    /// handshake, a session that broke before the request was sent), not because of anything
    /// the peer answered.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, PeerError::Local(e) if e.code == ErrorCode::RetryLater)
    }

    /// Consumes the error into its wire form.
    pub fn into_wire(self) -> WireError {
        match self {
            PeerError::Remote(e) | PeerError::Local(e) => e,
        }
    }
}

/// What a host does with an invocation that reached it.
#[async_trait]
pub trait PeerHandler: Send + Sync + 'static {
    /// Runs the call. `caller` is the verified SPIFFE ID of the calling host. An actor's own
    /// error value travels in [`WireError::payload`].
    async fn invoke(
        &self,
        caller: SpiffeId,
        request: InvokeRequest,
    ) -> Result<InvokeResponse, WireError>;

    /// Runs an operator's action on this host. `caller` is the verified SPIFFE ID of the host
    /// or runtime that relays it (and that authorized the operator).
    /// The default refuses: a handler that serves no host takes no operator actions.
    async fn admin(
        &self,
        caller: SpiffeId,
        action: crate::cluster::actions::HostOrder,
    ) -> Result<crate::net::wire::AdminResponse, WireError> {
        let _ = (caller, action);
        Err(WireError::new(
            ErrorCode::BadRequest,
            "this peer takes no operator actions",
        ))
    }
}

/// The QUIC transport of peer and runtime endpoints ([`gate::transport`]), with limit errors
/// in [`NetError`] terms.
pub(crate) fn transport_config(
    max_bidi_streams: usize,
    idle: Duration,
    keep_alive: Option<Duration>,
) -> Result<QuicTransportConfig, NetError> {
    let streams = u32::try_from(max_bidi_streams)
        .map_err(|_| NetError::InvalidLimits("max_in_flight is too large"))?;
    gate::transport(streams, idle, keep_alive).map_err(NetError::InvalidLimits)
}

/// A client endpoint on an ephemeral port: dual-stack when the host has IPv6, plain IPv4
/// otherwise.
pub(crate) fn client_endpoint(
    tls: rustls::ClientConfig,
    transport: impl Fn() -> Result<QuicTransportConfig, NetError>,
) -> Result<Endpoint<endpoint_side::Client>, NetError> {
    let any_v4 = SocketAddr::from(([0, 0, 0, 0], 0));
    let dual = ClientConfig::builder()
        .with_bind_default()
        .with_custom_tls_and_transport(tls.clone(), transport()?)
        .build();
    match Endpoint::client(dual) {
        Ok(endpoint) => Ok(endpoint),
        Err(_) => {
            let v4 = ClientConfig::builder()
                .with_bind_address(any_v4)
                .with_custom_tls_and_transport(tls, transport()?)
                .build();
            Endpoint::client(v4).map_err(|source| NetError::Bind {
                addr: any_v4,
                source,
            })
        }
    }
}

/// Why a dial failed, in the terms a user can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DialFailure {
    /// A certificate expired or is not valid yet.
    Expired,
    /// A certificate does not chain to a trusted CA (another cluster, or an unpinned CA).
    Untrusted,
    /// The server refused the WebTransport session.
    Refused,
    /// Anything else (unreachable, timed out, …).
    Other,
}

/// Classify a dial failure.
pub(crate) fn classify_dial_error(error: &ConnectingError) -> DialFailure {
    let lower = error.to_string().to_ascii_lowercase();
    // Local verifier failures print the rustls error ("UnknownIssuer (code: 304)"); a peer
    // that refused our certificate shows up as its TLS alert ("handshake failed: error 48").
    let expired = [
        "expired",
        "notvalidyet",
        "not valid yet",
        "error 45",
        "code: 301",
    ];
    let cert_problem = [
        "unknownissuer",
        "error 48",
        "code: 304",
        "badsignature",
        "error 51",
        "code: 307",
        "badcertificate",
        "error 42",
        "code: 298",
    ];
    if expired.iter().any(|p| lower.contains(p)) {
        DialFailure::Expired
    } else if cert_problem.iter().any(|p| lower.contains(p)) {
        DialFailure::Untrusted
    } else if matches!(error, ConnectingError::SessionRejected) {
        DialFailure::Refused
    } else {
        DialFailure::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use tokio::io::AsyncWriteExt;
    use tokio::sync::Semaphore;
    use tokio::time::timeout;
    use wtransport::Connection;

    use crate::net::pki::HOST_PREFIX;
    use crate::net::tls::CertSlot;
    use crate::net::wire::{self, Frame};

    /// The error as it would travel on the wire.
    fn wire_of(error: &PeerError) -> &WireError {
        match error {
            PeerError::Remote(e) | PeerError::Local(e) => e,
        }
    }
    use crate::net::pki::ClusterCa;
    use std::sync::atomic::AtomicUsize;
    use std::time::{Instant, SystemTime};
    use tokio::sync::oneshot;
    use wtransport::endpoint::endpoint_side::Client;

    const PSK: &str = "peer tests cluster key, 32+ bytes long";
    const OTHER_PSK: &str = "a different cluster's key, 32+ bytes!";
    const TTL: Duration = Duration::from_secs(3600);
    /// Upper bound on any single step of these tests.
    const STEP: Duration = Duration::from_secs(10);

    /// Echoes the data back, prefixed by the caller's host ID; the method "wait" blocks until
    /// the gate has a permit, "fail" returns an actor error with a payload.
    struct Echo {
        gate: Arc<Semaphore>,
        entered: Arc<AtomicUsize>,
    }

    impl Echo {
        fn new() -> Arc<Self> {
            Arc::new(Echo {
                gate: Arc::new(Semaphore::new(0)),
                entered: Arc::new(AtomicUsize::new(0)),
            })
        }
    }

    #[async_trait]
    impl PeerHandler for Echo {
        async fn invoke(
            &self,
            caller: SpiffeId,
            request: InvokeRequest,
        ) -> Result<InvokeResponse, WireError> {
            self.entered.fetch_add(1, Ordering::SeqCst);
            match request.method.as_str() {
                "wait" => {
                    let _permit = self
                        .gate
                        .acquire()
                        .await
                        .map_err(|_| WireError::new(ErrorCode::Internal, "gate closed"))?;
                }
                "fail" => {
                    return Err(WireError::new(ErrorCode::InvokeFailed, "actor said no")
                        .with_payload(b"typed-error".to_vec()));
                }
                _ => {}
            }
            let mut data = caller.host_id().unwrap_or("?").as_bytes().to_vec();
            data.push(b':');
            data.extend_from_slice(&request.data);
            Ok(InvokeResponse { data })
        }
    }

    struct Running {
        addr: SocketAddr,
        stop: Option<oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Running {
        async fn stop(mut self) {
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
            timeout(STEP, self.task)
                .await
                .expect("server stops in time")
                .expect("server task");
        }
    }

    fn start(
        ca: &ClusterCa,
        host_id: &str,
        handler: Arc<dyn PeerHandler>,
        limits: PeerLimits,
    ) -> Running {
        let identity = ca.issue_host_identity(host_id, TTL).unwrap();
        let server = PeerServer::bind(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            &ca.trust(),
            CertSlot::new(&identity).unwrap(),
            handler,
            limits,
            Arc::default(),
        )
        .unwrap();
        let addr = server.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async move {
            let _ = stopped.await;
        }));
        Running {
            addr,
            stop: Some(stop),
            task,
        }
    }

    fn client(ca: &ClusterCa, host_id: &str) -> PeerClient {
        let identity = ca.issue_host_identity(host_id, TTL).unwrap();
        PeerClient::new(
            &ca.trust(),
            CertSlot::new(&identity).unwrap(),
            STEP,
            Duration::from_secs(10),
        )
        .unwrap()
    }

    fn request(target: &str, method: &str, data: &[u8]) -> InvokeRequest {
        InvokeRequest::new(target, "counter", "alice", method, data.to_vec())
    }

    async fn call(
        client: &PeerClient,
        addr: SocketAddr,
        req: InvokeRequest,
    ) -> Result<InvokeResponse, PeerError> {
        timeout(STEP, client.invoke(&addr.to_string(), req))
            .await
            .expect("call finishes in time")
    }

    /// A raw WebTransport session for sending hand-made bytes.
    async fn raw_session(ca: &ClusterCa, addr: SocketAddr) -> (Endpoint<Client>, Connection) {
        let (endpoint, conn) = try_raw_session(ca, addr).await;
        (endpoint, conn.unwrap())
    }

    /// A raw session as host "raw-client", or why it could not be opened.
    async fn try_raw_session(
        ca: &ClusterCa,
        addr: SocketAddr,
    ) -> (Endpoint<Client>, Result<Connection, String>) {
        let identity = ca.issue_host_identity("raw-client", TTL).unwrap();
        let tls = ca.client_config(&identity, HOST_PREFIX).unwrap();
        let config = ClientConfig::builder()
            .with_bind_address(SocketAddr::from(([127, 0, 0, 1], 0)))
            .with_custom_tls(tls)
            .build();
        let endpoint = Endpoint::client(config).unwrap();
        let conn = timeout(STEP, endpoint.connect(format!("https://{addr}{PEER_PATH}")))
            .await
            .expect("connect in time")
            .map_err(|e| e.to_string());
        (endpoint, conn)
    }

    /// Sends `bytes` on a fresh stream (then FIN) and reads the single reply frame.
    async fn raw_call(conn: &Connection, bytes: &[u8], finish: bool) -> Option<Frame> {
        let (mut send, mut recv) = conn.open_bi().await.unwrap().await.unwrap();
        send.write_all(bytes).await.unwrap();
        if finish {
            send.shutdown().await.unwrap();
        }
        timeout(STEP, wire::read_frame(&mut recv, MAX_FRAME_BYTES))
            .await
            .expect("reply in time")
            .unwrap()
    }

    #[tokio::test]
    async fn a_call_round_trips() {
        let ca = ClusterCa::from_psks(&[PSK]).unwrap();
        let server = start(&ca, "h-server", Echo::new(), PeerLimits::default());
        let client = client(&ca, "h-client");

        let first = Instant::now();
        let out = call(&client, server.addr, request("h-server", "echo", b"hello"))
            .await
            .unwrap();
        let first = first.elapsed();
        assert_eq!(out.data, b"h-client:hello");

        // Second call reuses the pooled session.
        let again = Instant::now();
        let out = call(&client, server.addr, request("h-server", "echo", b"again"))
            .await
            .unwrap();
        let again = again.elapsed();
        assert_eq!(out.data, b"h-client:again");
        println!(
            "peer round trip (debug build): first call incl. handshake {first:?}, pooled call {again:?}"
        );

        // An actor error keeps its payload across the hop.
        let err = call(&client, server.addr, request("h-server", "fail", b""))
            .await
            .unwrap_err();
        assert!(matches!(err, PeerError::Remote(_)));
        assert_eq!(wire_of(&err).code, ErrorCode::InvokeFailed);
        assert_eq!(wire_of(&err).payload.as_deref(), Some(&b"typed-error"[..]));
        assert!(!wire_of(&err).retryable());
        server.stop().await;
    }

    #[tokio::test]
    async fn concurrent_calls_use_separate_streams() {
        let ca = ClusterCa::from_psks(&[PSK]).unwrap();
        let echo = Echo::new();
        let server = start(&ca, "h-server", echo.clone(), PeerLimits::default());
        let client = client(&ca, "h-client");

        // All 64 calls block in the handler at once, which is only possible if each has its
        // own stream; then the gate opens.
        let calls: Vec<_> = (0..64u32)
            .map(|i| {
                let client = client.clone();
                let addr = server.addr;
                tokio::spawn(async move {
                    call(&client, addr, request("h-server", "wait", &i.to_be_bytes())).await
                })
            })
            .collect();
        let deadline = Instant::now() + STEP;
        while echo.entered.load(Ordering::SeqCst) < 64 {
            assert!(
                Instant::now() < deadline,
                "only {} calls arrived",
                echo.entered.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        echo.gate.add_permits(64);
        for (i, handle) in calls.into_iter().enumerate() {
            let out = handle.await.unwrap().unwrap();
            let mut expected = b"h-client:".to_vec();
            expected.extend_from_slice(&(i as u32).to_be_bytes());
            assert_eq!(out.data, expected);
        }
        server.stop().await;
    }

    #[tokio::test]
    async fn a_client_from_another_cluster_is_refused() {
        let ca = ClusterCa::from_psks(&[PSK]).unwrap();
        let server = start(&ca, "h-server", Echo::new(), PeerLimits::default());

        let stranger_ca = ClusterCa::from_psks(&[OTHER_PSK]).unwrap();
        let stranger = client(&stranger_ca, "h-stranger");
        let err = call(&stranger, server.addr, request("h-server", "echo", b"x"))
            .await
            .unwrap_err();
        assert_eq!(wire_of(&err).code, ErrorCode::RetryLater, "{err}");
        assert!(!matches!(err, PeerError::Remote(_)));
        let msg = err.to_string();
        println!("stranger: {msg}");
        assert!(msg.contains("not in this cluster"), "{msg}");
        assert!(msg.contains("PSK"), "{msg}");

        // A stranger that trusts our CA but has its own certificate is refused by the server.
        let half = ClusterCa::from_psks(&[OTHER_PSK, PSK]).unwrap();
        let half_client = client(&half, "h-half");
        let err = call(&half_client, server.addr, request("h-server", "echo", b"x"))
            .await
            .unwrap_err();
        assert_eq!(wire_of(&err).code, ErrorCode::RetryLater, "{err}");
        println!("refused by the server: {err}");
        assert!(err.to_string().contains("not in this cluster"), "{err}");

        // The server keeps serving members.
        let member = client(&ca, "h-member");
        let out = call(&member, server.addr, request("h-server", "echo", b"ok"))
            .await
            .unwrap();
        assert_eq!(out.data, b"h-member:ok");
        server.stop().await;
    }

    #[tokio::test]
    async fn an_expired_client_certificate_is_refused() {
        let ca = ClusterCa::from_psks(&[PSK]).unwrap();
        let server = start(&ca, "h-server", Echo::new(), PeerLimits::default());

        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        let expired = ca
            .issue_with_validity(SpiffeId::host("h-old").unwrap(), now - 2 * hour, now - hour)
            .unwrap();
        let old = PeerClient::new(
            &ca.trust(),
            CertSlot::new(&expired).unwrap(),
            STEP,
            Duration::from_secs(10),
        )
        .unwrap();
        let err = call(&old, server.addr, request("h-server", "echo", b"x"))
            .await
            .unwrap_err();
        assert_eq!(wire_of(&err).code, ErrorCode::RetryLater, "{err}");
        println!("expired: {err}");
        assert!(err.to_string().contains("expired"), "{err}");

        let member = client(&ca, "h-member");
        assert!(
            call(&member, server.addr, request("h-server", "echo", b"ok"))
                .await
                .is_ok()
        );
        server.stop().await;
    }

    #[tokio::test]
    async fn a_different_host_at_the_address_is_host_mismatch() {
        let ca = ClusterCa::from_psks(&[PSK]).unwrap();
        let server = start(&ca, "h-actual", Echo::new(), PeerLimits::default());
        let client = client(&ca, "h-client");

        // Client-side pin.
        let err = call(&client, server.addr, request("h-expected", "echo", b"x"))
            .await
            .unwrap_err();
        assert_eq!(wire_of(&err).code, ErrorCode::HostMismatch, "{err}");
        assert!(!matches!(err, PeerError::Remote(_)));
        assert!(wire_of(&err).retryable());
        assert!(err.to_string().contains("h-actual"), "{err}");

        // Server-side check, for a caller that skipped the pin.
        let (_endpoint, conn) = raw_session(&ca, server.addr).await;
        let frame =
            wire::encode_frame(&Frame::new(&request("h-expected", "echo", b"x")).unwrap()).unwrap();
        let reply = raw_call(&conn, &frame, true).await.unwrap();
        let error: WireError = reply.decode().unwrap();
        assert_eq!(error.code, ErrorCode::HostMismatch);

        // The pooled session still works for the right target.
        assert!(
            call(&client, server.addr, request("h-actual", "echo", b"x"))
                .await
                .is_ok()
        );
        server.stop().await;
    }

    #[tokio::test]
    async fn garbage_and_oversized_frames_get_error_replies() {
        let ca = ClusterCa::from_psks(&[PSK]).unwrap();
        let limits = PeerLimits {
            max_request_bytes: 64 * 1024,
            ..PeerLimits::default()
        };
        let server = start(&ca, "h-server", Echo::new(), limits);
        let (_endpoint, conn) = raw_session(&ca, server.addr).await;

        // Bytes that are not a frame.
        let mut garbage = 6u32.to_be_bytes().to_vec();
        garbage.extend_from_slice(&[0xc1, 0xff, 0x00, 0x13, 0x37, 0x42]);
        let reply = raw_call(&conn, &garbage, true).await.unwrap();
        assert_eq!(
            reply.decode::<WireError>().unwrap().code,
            ErrorCode::BadRequest
        );

        // A well-formed frame of the wrong kind.
        let wrong = wire::encode_frame(&Frame::new(&InvokeResponse::default()).unwrap()).unwrap();
        let reply = raw_call(&conn, &wrong, true).await.unwrap();
        assert_eq!(
            reply.decode::<WireError>().unwrap().code,
            ErrorCode::BadRequest
        );

        // A length prefix over the cap, without the body: refused before reading it.
        let reply = raw_call(&conn, &u32::MAX.to_be_bytes(), false)
            .await
            .unwrap();
        let error: WireError = reply.decode().unwrap();
        assert_eq!(error.code, ErrorCode::TooLarge, "{error}");

        // Over the configured request cap (64 KiB) but under the frame cap.
        let big = request("h-server", "echo", &vec![7u8; 100 * 1024]);
        let frame = wire::encode_frame(&Frame::new(&big).unwrap()).unwrap();
        let reply = raw_call(&conn, &frame[..8], false).await.unwrap();
        assert_eq!(
            reply.decode::<WireError>().unwrap().code,
            ErrorCode::TooLarge
        );

        // A truncated frame.
        let good =
            wire::encode_frame(&Frame::new(&request("h-server", "echo", b"x")).unwrap()).unwrap();
        let reply = raw_call(&conn, &good[..good.len() - 2], true)
            .await
            .unwrap();
        assert_eq!(
            reply.decode::<WireError>().unwrap().code,
            ErrorCode::BadRequest
        );

        // The same session, and new ones, keep working.
        let reply = raw_call(&conn, &good, true).await.unwrap();
        assert_eq!(
            reply.decode::<InvokeResponse>().unwrap().data,
            b"raw-client:x"
        );
        let member = client(&ca, "h-member");
        assert!(
            call(&member, server.addr, request("h-server", "echo", b"ok"))
                .await
                .is_ok()
        );
        server.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn callers_at_the_limit_are_not_refused_for_calls_already_answered() {
        let ca = ClusterCa::from_psks(&[PSK]).unwrap();
        let limits = PeerLimits {
            max_in_flight: 4,
            ..PeerLimits::default()
        };
        let server = start(&ca, "h-server", Echo::new(), limits);
        let member = client(&ca, "h-member");
        // As many concurrent callers as the limit, each calling again as soon as it has its
        // answer: never more than 4 calls run, so none may be refused.
        let callers: Vec<_> = (0..4)
            .map(|_| {
                let member = member.clone();
                let addr = server.addr;
                tokio::spawn(async move {
                    for _ in 0..25 {
                        call(&member, addr, request("h-server", "echo", b"x")).await?;
                    }
                    Ok::<_, PeerError>(())
                })
            })
            .collect();
        for caller in callers {
            caller.await.unwrap().expect("no call is refused");
        }
        server.stop().await;
    }

    #[tokio::test]
    async fn under_a_handshake_flood_clients_prove_their_address_and_still_get_in() {
        let ca = ClusterCa::from_psks(&[PSK]).unwrap();
        // Every attempt counts as "under load": each new client is sent a QUIC retry first,
        // which a real client answers from its real address.
        let limits = PeerLimits {
            connections: ConnectionLimits {
                validate_above: 0,
                ..ConnectionLimits::default()
            },
            ..PeerLimits::default()
        };
        let server = start(&ca, "h-server", Echo::new(), limits);
        for caller in ["h-one", "h-two"] {
            let member = client(&ca, caller);
            let reply = call(&member, server.addr, request("h-server", "echo", b"hi")).await;
            assert_eq!(reply.unwrap().data, format!("{caller}:hi").into_bytes());
        }
        server.stop().await;
    }

    #[tokio::test]
    async fn a_request_without_a_uuid_id_is_refused() {
        let ca = ClusterCa::from_psks(&[PSK]).unwrap();
        let echo = Echo::new();
        let server = start(&ca, "h-server", echo.clone(), PeerLimits::default());
        let member = client(&ca, "h-member");
        for id in ["", "1", "not-a-uuid", "retry-me-please"] {
            let mut req = request("h-server", "echo", b"x");
            req.request_id = id.into();
            let error = call(&member, server.addr, req).await.unwrap_err();
            let error = wire_of(&error);
            assert_eq!(error.code, ErrorCode::BadRequest, "{id:?}: {error}");
            assert!(error.message.contains("not a UUID"), "{error}");
        }
        assert_eq!(echo.entered.load(Ordering::SeqCst), 0, "nothing ran");
        assert!(
            call(&member, server.addr, request("h-server", "echo", b"x"))
                .await
                .is_ok()
        );
        server.stop().await;
    }

    #[tokio::test]
    async fn a_call_with_an_invalid_actor_name_is_refused_before_it_runs() {
        let ca = ClusterCa::from_psks(&[PSK]).unwrap();
        let echo = Echo::new();
        let server = start(&ca, "h-server", echo.clone(), PeerLimits::default());
        let member = client(&ca, "h-member");
        let long = "x".repeat(crate::error::MAX_NAME_BYTES + 1);
        let cases: [(&str, &str, &str); 7] = [
            ("", "alice", "echo"),
            ("counter", "", "echo"),
            ("counter", "alice", ""),
            ("a/b", "alice", "echo"),
            ("counter", "al/ice", "echo"),
            ("counter", "alice", "line\nbreak"),
            ("counter", &long, "echo"),
        ];
        for (actor_type, actor_id, method) in cases {
            let req = InvokeRequest::new("h-server", actor_type, actor_id, method, Vec::new());
            let error = call(&member, server.addr, req).await.unwrap_err();
            let error = wire_of(&error);
            assert_eq!(
                error.code,
                ErrorCode::BadRequest,
                "{actor_type}/{actor_id}.{method}"
            );
            assert!(error.message.contains("invalid"), "{error}");
        }
        assert_eq!(echo.entered.load(Ordering::SeqCst), 0, "nothing ran");
        server.stop().await;
    }

    #[tokio::test]
    async fn a_silent_stream_is_closed_after_the_first_frame_timeout() {
        let ca = ClusterCa::from_psks(&[PSK]).unwrap();
        let limits = PeerLimits {
            first_frame_timeout: Duration::from_millis(200),
            ..PeerLimits::default()
        };
        let server = start(&ca, "h-server", Echo::new(), limits);
        let (_endpoint, conn) = raw_session(&ca, server.addr).await;

        let started = Instant::now();
        // Two bytes of a length prefix, then silence.
        let reply = raw_call(&conn, &[0, 0], false).await.unwrap();
        let waited = started.elapsed();
        let error: WireError = reply.decode().unwrap();
        assert_eq!(error.code, ErrorCode::DeadlineExceeded, "{error}");
        assert!(waited >= Duration::from_millis(150), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");

        // A stream that sends nothing at all (only its WebTransport header) is closed too.
        let started = Instant::now();
        let reply = raw_call(&conn, &[], false).await.unwrap();
        assert_eq!(
            reply.decode::<WireError>().unwrap().code,
            ErrorCode::DeadlineExceeded
        );
        assert!(started.elapsed() < Duration::from_secs(5));

        let member = client(&ca, "h-member");
        assert!(
            call(&member, server.addr, request("h-server", "echo", b"ok"))
                .await
                .is_ok()
        );
        server.stop().await;
    }

    #[tokio::test]
    async fn calls_over_the_in_flight_limit_are_overloaded() {
        let ca = ClusterCa::from_psks(&[PSK]).unwrap();
        let echo = Echo::new();
        let limits = PeerLimits {
            max_in_flight: 4,
            ..PeerLimits::default()
        };
        let server = start(&ca, "h-server", echo.clone(), limits);
        let client = client(&ca, "h-client");

        let blocked: Vec<_> = (0..4)
            .map(|_| {
                let client = client.clone();
                let addr = server.addr;
                tokio::spawn(
                    async move { call(&client, addr, request("h-server", "wait", b"")).await },
                )
            })
            .collect();
        let deadline = Instant::now() + STEP;
        while echo.entered.load(Ordering::SeqCst) < 4 {
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let err = call(&client, server.addr, request("h-server", "echo", b""))
            .await
            .unwrap_err();
        assert!(matches!(err, PeerError::Remote(_)));
        assert_eq!(wire_of(&err).code, ErrorCode::Overloaded, "{err}");
        assert_eq!(
            wire_of(&err).retry_after(),
            Some(Duration::from_millis(100))
        );
        assert!(wire_of(&err).retryable());

        echo.gate.add_permits(4);
        for handle in blocked {
            handle.await.unwrap().unwrap();
        }
        // Capacity is back.
        assert!(
            call(&client, server.addr, request("h-server", "echo", b""))
                .await
                .is_ok()
        );
        server.stop().await;
    }

    /// Hold `n` calls of `client` in the handler until the gate opens.
    async fn hold(
        echo: &Arc<Echo>,
        client: &PeerClient,
        addr: SocketAddr,
        n: usize,
    ) -> Vec<tokio::task::JoinHandle<Result<InvokeResponse, PeerError>>> {
        let before = echo.entered.load(Ordering::SeqCst);
        let held = (0..n)
            .map(|_| {
                let client = client.clone();
                tokio::spawn(
                    async move { call(&client, addr, request("h-server", "wait", b"")).await },
                )
            })
            .collect();
        let deadline = Instant::now() + STEP;
        while echo.entered.load(Ordering::SeqCst) < before + n {
            assert!(Instant::now() < deadline, "the calls did not arrive");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        held
    }

    #[tokio::test]
    async fn a_host_cannot_dodge_the_call_limit_by_opening_more_sessions() {
        let ca = ClusterCa::from_psks(&[PSK]).unwrap();
        let echo = Echo::new();
        let limits = PeerLimits {
            max_in_flight: 2,
            ..PeerLimits::default()
        };
        let server = start(&ca, "h-server", echo.clone(), limits);
        // Two clients of one host: two sessions.
        let (first, second) = (client(&ca, "h-client"), client(&ca, "h-client"));
        let held = hold(&echo, &first, server.addr, 2).await;
        let err = call(&second, server.addr, request("h-server", "echo", b""))
            .await
            .unwrap_err();
        assert_eq!(wire_of(&err).code, ErrorCode::Overloaded, "{err}");
        // Another host has its own allowance.
        let other = client(&ca, "h-other");
        call(&other, server.addr, request("h-server", "echo", b""))
            .await
            .unwrap();
        echo.gate.add_permits(2);
        for handle in held {
            handle.await.unwrap().unwrap();
        }
        call(&second, server.addr, request("h-server", "echo", b""))
            .await
            .unwrap();
        server.stop().await;
    }

    #[tokio::test]
    async fn a_host_cannot_open_more_sessions_than_its_allowance() {
        let ca = ClusterCa::from_psks(&[PSK]).unwrap();
        let limits = PeerLimits {
            max_sessions_per_peer: 2,
            ..PeerLimits::default()
        };
        let server = start(&ca, "h-server", Echo::new(), limits);
        let ping =
            wire::encode_frame(&Frame::new(&request("h-server", "echo", b"")).unwrap()).unwrap();
        let (_e1, first) = raw_session(&ca, server.addr).await;
        assert!(raw_call(&first, &ping, true).await.is_some());
        let (_e2, second) = raw_session(&ca, server.addr).await;
        assert!(raw_call(&second, &ping, true).await.is_some());
        // A third session of the same host is closed at once.
        match try_raw_session(&ca, server.addr).await {
            (_e3, Ok(third)) => {
                timeout(STEP, third.closed())
                    .await
                    .expect("the session over the allowance is closed");
            }
            (_e3, Err(refused)) => assert!(refused.contains("too many sessions"), "{refused}"),
        }
        // Once one ends, the host may open another.
        first.close(wtransport::VarInt::from_u32(0), b"done");
        drop(first);
        let deadline = Instant::now() + STEP;
        loop {
            assert!(Instant::now() < deadline, "no room for a new session");
            let (_e4, Ok(fourth)) = try_raw_session(&ca, server.addr).await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let (mut send, mut recv) = match fourth.open_bi().await {
                Ok(opening) => match opening.await {
                    Ok(streams) => streams,
                    Err(_) => continue,
                },
                Err(_) => continue,
            };
            send.write_all(&ping).await.unwrap();
            send.shutdown().await.unwrap();
            if let Ok(Ok(Some(_))) =
                timeout(Duration::from_secs(1), wire::read_frame(&mut recv, 1 << 20)).await
            {
                break;
            }
        }
        server.stop().await;
    }

    #[tokio::test]
    async fn a_call_over_the_limit_is_refused_before_its_body_arrives() {
        let ca = ClusterCa::from_psks(&[PSK]).unwrap();
        let echo = Echo::new();
        let limits = PeerLimits {
            max_in_flight: 1,
            ..PeerLimits::default()
        };
        let server = start(&ca, "h-server", echo.clone(), limits);
        // raw_session's host holds its one call...
        let holder = client(&ca, "raw-client");
        let held = hold(&echo, &holder, server.addr, 1).await;
        // ...and announces a 16 MiB request, sending none of its body: refused at once.
        let (_endpoint, conn) = raw_session(&ca, server.addr).await;
        let prefix = u32::try_from(MAX_FRAME_BYTES).unwrap().to_be_bytes();
        let reply = raw_call(&conn, &prefix, false).await.expect("a reply");
        assert_eq!(
            reply.decode::<WireError>().unwrap().code,
            ErrorCode::Overloaded
        );
        echo.gate.add_permits(1);
        for handle in held {
            handle.await.unwrap().unwrap();
        }
        server.stop().await;
    }

    #[tokio::test]
    async fn unknown_paths_and_dead_peers_are_retry_later() {
        let ca = ClusterCa::from_psks(&[PSK]).unwrap();
        let server = start(&ca, "h-server", Echo::new(), PeerLimits::default());

        // A session at another path is refused.
        let identity = ca.issue_host_identity("raw", TTL).unwrap();
        let config = ClientConfig::builder()
            .with_bind_address(SocketAddr::from(([127, 0, 0, 1], 0)))
            .with_custom_tls(ca.client_config(&identity, HOST_PREFIX).unwrap())
            .build();
        let endpoint = Endpoint::client(config).unwrap();
        let refused = timeout(
            STEP,
            endpoint.connect(format!("https://{}/other", server.addr)),
        )
        .await
        .unwrap();
        assert!(refused.is_err());

        // Once the server is gone, the pooled session is dead and redialing fails with
        // retry_later (nothing was sent). A racing call on the dying session may instead see
        // its reply lost: transport_failure.
        let identity = ca.issue_host_identity("h-client", TTL).unwrap();
        let client = PeerClient::new(
            &ca.trust(),
            CertSlot::new(&identity).unwrap(),
            Duration::from_secs(1),
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(
            call(&client, server.addr, request("h-server", "echo", b""))
                .await
                .is_ok()
        );
        let addr = server.addr;
        server.stop().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let err = call(&client, addr, request("h-server", "echo", b""))
            .await
            .unwrap_err();
        assert!(
            matches!(
                wire_of(&err).code,
                ErrorCode::RetryLater | ErrorCode::TransportFailure
            ),
            "{err}"
        );
        let err = call(&client, addr, request("h-server", "echo", b""))
            .await
            .unwrap_err();
        assert_eq!(wire_of(&err).code, ErrorCode::RetryLater, "{err}");
    }

    #[tokio::test]
    async fn shutdown_drains_running_calls() {
        let ca = ClusterCa::from_psks(&[PSK]).unwrap();
        let echo = Echo::new();
        let server = start(&ca, "h-server", echo.clone(), PeerLimits::default());
        let client = client(&ca, "h-client");
        let running = {
            let client = client.clone();
            let addr = server.addr;
            tokio::spawn(
                async move { call(&client, addr, request("h-server", "wait", b"late")).await },
            )
        };
        let deadline = Instant::now() + STEP;
        while echo.entered.load(Ordering::SeqCst) < 1 {
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let gate = echo.gate.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            gate.add_permits(1);
        });
        server.stop().await;
        let out = running.await.unwrap().unwrap();
        assert_eq!(out.data, b"h-client:late");
    }
}
