//! What the two servers (the peer server and the runtime's session server) share: binding the
//! endpoint, one request and one reply per bidirectional stream, a reply that waits (bounded)
//! for its acknowledgement, and a count of running requests so shutdown can let them finish.
//! Every connection attempt passes the [gate](super::gate) first.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use std::sync::Arc;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::timeout;
use tracing::{debug, warn};
use wtransport::config::QuicTransportConfig;
use wtransport::endpoint::{IncomingSession, endpoint_side};
use wtransport::{Endpoint, SendStream, ServerConfig, VarInt};

use super::gate::{self, ConnectionLimits, Decision, Gate, Ticket};
use super::peer::NetError;
use super::wire::{self, Frame, FrameError, WireError};

/// Reserve `len` bytes of a request body from `budget` (one permit per byte), waiting until
/// enough requests of the same budget finish: what a server does after reading a frame's
/// length and before reading its body, so a client's requests in flight never hold more
/// memory than its budget.
pub(crate) async fn reserve_body(
    budget: &Arc<Semaphore>,
    len: usize,
) -> Result<OwnedSemaphorePermit, FrameError> {
    let permits = u32::try_from(len).unwrap_or(u32::MAX);
    budget
        .clone()
        .acquire_many_owned(permits)
        .await
        .map_err(|_| FrameError::Malformed("the session is closing".into()))
}

/// Bind a WebTransport server endpoint on `addr` with this TLS and QUIC configuration, and
/// small queues for connection attempts the accept loop has not seen yet; the endpoint and the
/// address it got (the real port when `addr` asked for port 0).
pub(crate) fn bind_server(
    addr: SocketAddr,
    tls: rustls::ServerConfig,
    transport: QuicTransportConfig,
) -> Result<(Endpoint<endpoint_side::Server>, SocketAddr), NetError> {
    let mut config = ServerConfig::builder()
        .with_bind_address(addr)
        .with_custom_tls_and_transport(tls, transport)
        .build();
    config
        .quic_config_mut()
        .max_incoming(gate::MAX_QUEUED_ATTEMPTS)
        .incoming_buffer_size(gate::QUEUED_ATTEMPT_BYTES)
        .incoming_buffer_size_total(gate::QUEUED_ATTEMPT_BYTES * gate::MAX_QUEUED_ATTEMPTS as u64);
    let endpoint = Endpoint::server(config).map_err(|source| NetError::Bind { addr, source })?;
    let local_addr = endpoint
        .local_addr()
        .map_err(|source| NetError::Bind { addr, source })?;
    Ok((endpoint, local_addr))
}

/// Accept sessions until `shutdown` completes, spawning `serve` for each attempt the gate
/// (with `limits`) admits, with its ticket; then drain: set `draining` (new sessions and
/// requests are refused from then on), give running requests up to `grace` to finish, and close
/// the endpoint with `code` and `reason`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn accept_until<S, F>(
    endpoint: Endpoint<endpoint_side::Server>,
    limits: ConnectionLimits,
    shutdown: impl Future,
    draining: &AtomicBool,
    in_flight: &InFlight,
    grace: Duration,
    (code, reason): (u32, &'static [u8]),
    serve: S,
) where
    S: Fn(IncomingSession, Ticket) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let gate = Gate::new(limits);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            incoming = endpoint.accept() => {
                let remote = incoming.remote_address();
                match gate.decide(remote.ip(), incoming.remote_address_validated()) {
                    Decision::Admit(ticket) => {
                        tokio::spawn(serve(incoming, ticket));
                    }
                    // The gate asks for a retry only when the address is not validated yet,
                    // the one case where a retry is allowed.
                    Decision::Retry => incoming.retry(),
                    Decision::Refuse(reason) => {
                        debug!(%remote, reason, "connection attempt refused");
                        incoming.refuse();
                    }
                }
            }
        }
    }
    draining.store(true, Ordering::SeqCst);
    if timeout(grace, in_flight.wait_idle()).await.is_err() {
        warn!(
            ?grace,
            running = in_flight.count(),
            "requests still running after the shutdown grace period"
        );
    }
    endpoint.close(VarInt::from_u32(code), reason);
    let _ = timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
}

/// How long a finished reply may take to be acknowledged before the stream task gives up.
const REPLY_ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Writes one reply frame (or the error frame), closes our side of the stream and waits
/// (bounded) for the peer to acknowledge it, so a draining server does not cut off replies it
/// already produced.
pub(crate) async fn reply(send: &mut SendStream, result: Result<Frame, WireError>) {
    let frame = result
        .or_else(|error| Frame::new(&error))
        .or_else(|e| Frame::new(&e.to_wire_error()));
    match frame {
        Ok(frame) => {
            if let Err(e) = wire::write_frame(send, &frame).await {
                debug!(error = %e, "cannot write a reply");
                return;
            }
        }
        Err(e) => warn!(error = %e, "cannot encode a reply"),
    }
    let _ = timeout(REPLY_ACK_TIMEOUT, send.finish()).await;
}

/// Counts running requests so shutdown can wait for them.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

/// One running request; dropping it ends it.
pub(crate) struct Running<'a>(&'a InFlight);

impl InFlight {
    /// Count a request as running until the guard is dropped.
    pub(crate) fn enter(&self) -> Running<'_> {
        self.count.fetch_add(1, Ordering::SeqCst);
        Running(self)
    }

    /// How many requests run now.
    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Completes once no request runs.
    pub(crate) async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}
