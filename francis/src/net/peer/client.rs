//! The peer client: one pooled WebTransport session per peer address, pinned to the peer's
//! host identity, and calls classified by what is safe to retry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::time::timeout;
use tracing::{Instrument, debug, info};
use wtransport::endpoint::endpoint_side;
use wtransport::error::ConnectingError;
use wtransport::{Connection, Endpoint, VarInt};

use super::{
    DialFailure, EXTRA_STREAMS, NetError, PEER_PATH, PeerError, classify_dial_error,
    client_endpoint, transport_config,
};
use crate::net::pki::{HOST_PREFIX, SpiffeId, spiffe_id_of};
use crate::net::tls::{self, CertSlot, Trust, Unverified};
use crate::net::wire::{
    self, AdminRequest, AdminResponse, ErrorCode, Frame, InvokeRequest, InvokeResponse,
    MAX_FRAME_BYTES, Message, WireError,
};
use crate::telemetry::metrics::{LevelGuard, metrics};

/// One pooled WebTransport session and the identity it was pinned to.
struct PeerSession {
    conn: Connection,
    peer: SpiffeId,
    /// Counts the connection in `francis_peer_connections{direction="out"}`.
    _open: LevelGuard,
}

impl PeerSession {
    fn is_alive(&self) -> bool {
        self.conn.quic_connection().close_reason().is_none()
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<Arc<PeerSession>>>>;

struct ClientInner {
    endpoint: Endpoint<endpoint_side::Client>,
    pool: Mutex<HashMap<String, Slot>>,
    dial_timeout: Duration,
}

/// Calls actors on other hosts. Keeps one WebTransport session per peer address and
/// reconnects when it dies. Cheap to clone.
#[derive(Clone)]
pub struct PeerClient {
    inner: Arc<ClientInner>,
}

impl std::fmt::Debug for PeerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerClient")
            .field("dial_timeout", &self.inner.dial_timeout)
            .finish()
    }
}

/// Turns a dial failure into a message that says what to fix.
fn describe_dial_error(address: &str, error: &ConnectingError) -> String {
    let text = error.to_string();
    match classify_dial_error(error) {
        DialFailure::Expired => format!(
            "TLS handshake with peer {address} failed: a certificate has expired or is not yet \
             valid (check clocks and certificate renewal): {text}"
        ),
        DialFailure::Untrusted => format!(
            "TLS handshake with peer {address} failed: the peer is not in this cluster (its \
             certificate does not chain to our cluster CA, or ours to its — different runtime \
             PSK?): {text}"
        ),
        DialFailure::Refused => format!(
            "peer {address} refused the WebTransport session (draining, or not a Francis peer endpoint)"
        ),
        DialFailure::Other => format!("cannot connect to peer {address}: {text}"),
    }
}

impl PeerClient {
    /// A client presenting the host identity in `cert` and accepting only host peers whose
    /// certificates chain to `trust`. `dial_timeout` bounds connection setup; `idle_timeout`
    /// is how long a silent peer is given before its session counts as dead (the client sends
    /// keep-alives at a third of it, so only a dead or cut-off peer goes silent), which bounds
    /// how long calls to a crashed host wait. Must be called inside a Tokio runtime.
    pub fn new(
        trust: &Trust,
        cert: Arc<CertSlot>,
        dial_timeout: Duration,
        idle_timeout: Duration,
    ) -> Result<PeerClient, NetError> {
        tokio::runtime::Handle::try_current().map_err(|_| NetError::NoRuntime)?;
        let tls = tls::client_config(trust, cert, HOST_PREFIX, Unverified::Refuse)?;
        let endpoint = client_endpoint(tls, || {
            transport_config(100 + EXTRA_STREAMS, idle_timeout, Some(idle_timeout / 3))
        })?;
        Ok(PeerClient {
            inner: Arc::new(ClientInner {
                endpoint,
                pool: Mutex::new(HashMap::new()),
                dial_timeout,
            }),
        })
    }

    fn slot(&self, address: &str) -> Slot {
        let mut pool = self
            .inner
            .pool
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        pool.entry(address.to_string()).or_default().clone()
    }

    /// Drops the pooled session for `address` if it is still `session`.
    async fn forget(&self, address: &str, session: &Arc<PeerSession>) {
        let slot = self.slot(address);
        let mut current = slot.lock().await;
        if current.as_ref().is_some_and(|s| Arc::ptr_eq(s, session)) {
            *current = None;
        }
    }

    async fn session(&self, address: &str) -> Result<Arc<PeerSession>, PeerError> {
        let slot = self.slot(address);
        let mut current = slot.lock().await;
        if let Some(session) = current.as_ref() {
            if session.is_alive() {
                return Ok(session.clone());
            }
            debug!(%address, "pooled peer session is dead; reconnecting");
        }
        *current = None;
        let session = Arc::new(self.dial(address).await?);
        *current = Some(session.clone());
        Ok(session)
    }

    async fn dial(&self, address: &str) -> Result<PeerSession, PeerError> {
        let url = format!("https://{address}{PEER_PATH}");
        let dial_timeout = self.inner.dial_timeout;
        let conn = match timeout(dial_timeout, self.inner.endpoint.connect(url)).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                let message = describe_dial_error(address, &e);
                info!(%address, error = %e, "peer dial failed");
                return Err(PeerError::local(ErrorCode::RetryLater, message));
            }
            Err(_) => {
                return Err(PeerError::local(
                    ErrorCode::RetryLater,
                    format!("connecting to peer {address} timed out after {dial_timeout:?}"),
                ));
            }
        };
        let peer = conn
            .peer_identity()
            .and_then(|chain| chain.as_slice().first().map(|c| spiffe_id_of(c.der())));
        match peer {
            Some(Ok(peer)) => Ok(PeerSession {
                conn,
                peer,
                _open: LevelGuard::new(metrics().peer_connections.with(&["out"])),
            }),
            Some(Err(e)) => {
                conn.close(VarInt::from_u32(0), b"unusable server identity");
                Err(PeerError::local(
                    ErrorCode::RetryLater,
                    format!("peer {address} presented an unusable identity: {e}"),
                ))
            }
            None => {
                conn.close(VarInt::from_u32(0), b"no server certificate");
                Err(PeerError::local(
                    ErrorCode::RetryLater,
                    format!("peer {address} presented no certificate"),
                ))
            }
        }
    }

    /// Invokes an actor method on the host at `address` (`host:port`, IPv6 in brackets).
    ///
    /// The peer's certificate must carry the host ID `request.target_host_id`, otherwise the
    /// call fails with `host_mismatch` before anything is sent. Failures before the request
    /// was sent are `retry_later`; once it was sent, a lost reply is `transport_failure`, which
    /// must not be retried because the actor may have run. Bound the call with a timeout if
    /// needed: dropping the future abandons the stream.
    pub async fn invoke(
        &self,
        address: &str,
        request: InvokeRequest,
    ) -> Result<InvokeResponse, PeerError> {
        let span = tracing::debug_span!(
            "peer.invoke",
            otel.kind = "client",
            francis.peer.address = address,
            "francis.actor.type" = %request.actor_type,
            francis.actor.method = %request.method,
            francis.request.id = %request.request_id,
        );
        let started = std::time::Instant::now();
        let result = self.invoke_untimed(address, request).instrument(span).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) if e.is_unreachable() => "unreachable",
            Err(_) => "error",
        };
        metrics()
            .peer_requests
            .with(&[outcome])
            .observe(started.elapsed());
        result
    }

    async fn invoke_untimed(
        &self,
        address: &str,
        request: InvokeRequest,
    ) -> Result<InvokeResponse, PeerError> {
        let target = request.target_host_id.clone();
        self.exchange(address, &target, &request).await
    }

    /// Relay an operator's action to the host at `address`, which must be host
    /// `target_host_id`. Sent once: an action is never retried here.
    pub async fn admin(
        &self,
        address: &str,
        request: AdminRequest,
    ) -> Result<AdminResponse, PeerError> {
        let span = tracing::debug_span!(
            "peer.admin",
            otel.kind = "client",
            francis.peer.address = address,
        );
        let target = request.target_host_id.clone();
        self.exchange(address, &target, &request)
            .instrument(span)
            .await
    }

    /// Send `request` to the host at `address`, pinned to `target_host_id`, and read its
    /// reply of type `R` (or its error).
    async fn exchange<M: Message, R: Message>(
        &self,
        address: &str,
        target_host_id: &str,
        request: &M,
    ) -> Result<R, PeerError> {
        if target_host_id.is_empty() {
            return Err(PeerError::local(
                ErrorCode::BadRequest,
                "target_host_id is required: the peer is pinned to it",
            ));
        }
        let frame = Frame::new(request)
            .and_then(|frame| wire::encode_frame(&frame.traced()))
            .map_err(|e| PeerError::Local(e.to_wire_error()))?;

        let session = self.session(address).await?;
        if session.peer.host_id() != Some(target_host_id) {
            return Err(PeerError::local(
                ErrorCode::HostMismatch,
                format!(
                    "peer at {address} is {}, not host {target_host_id}",
                    session.peer
                ),
            ));
        }

        let opened = match session.conn.open_bi().await {
            Ok(opening) => opening.await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let (mut send, mut recv) = match opened {
            Ok(streams) => {
                metrics().peer_streams.with(&["out"]).inc();
                streams
            }
            Err(e) => {
                self.forget(address, &session).await;
                return Err(PeerError::local(
                    ErrorCode::RetryLater,
                    format!("cannot open a stream to peer {address}: {e}"),
                ));
            }
        };
        let written = async {
            AsyncWriteExt::write_all(&mut send, &frame).await?;
            send.shutdown().await
        }
        .await;
        if let Err(e) = written {
            if !session.is_alive() {
                self.forget(address, &session).await;
            }
            return Err(PeerError::local(
                ErrorCode::RetryLater,
                format!("cannot send the request to peer {address}: {e}"),
            ));
        }

        let after_send = |what: String| {
            PeerError::local(
                ErrorCode::TransportFailure,
                format!("{what} (the request was sent, so the call may have run; not retrying)"),
            )
        };
        let frame = match wire::read_frame(&mut recv, MAX_FRAME_BYTES).await {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                return Err(after_send(format!(
                    "peer {address} closed the stream without replying"
                )));
            }
            Err(e) => {
                if !session.is_alive() {
                    self.forget(address, &session).await;
                }
                return Err(after_send(format!(
                    "reading the reply from peer {address} failed: {e}"
                )));
            }
        };
        if frame.is_error() {
            return match frame.decode::<WireError>() {
                Ok(error) => Err(PeerError::Remote(error)),
                Err(e) => Err(after_send(format!(
                    "undecodable error reply from peer {address}: {e}"
                ))),
            };
        }
        frame
            .decode::<R>()
            .map_err(|e| after_send(format!("unexpected reply from peer {address}: {e}")))
    }
}
