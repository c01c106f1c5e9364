//! The worker's side of the runtime protocol: a remote host's link to its runtime. It
//! bootstraps (PSK challenge-response or JWT), keeps one WebTransport session to one runtime at
//! a time (rolling over to the next address with backoff when it fails), renews its workload
//! certificate at half-life with a fresh key ([`connect`]), and implements [`Store`] by sending
//! each operation of [`for_each_store_op!`] to the runtime. The host core uses it exactly as it
//! uses a local store, which is what keeps actor code and activation logic identical in both
//! topologies.
//!
//! Identity: a host keeps one ID for the life of its process. Reconnecting, it asks for that ID
//! again (over mTLS while its certificate has more than 5 minutes left, otherwise by
//! bootstrapping again); the runtime keeps the registration if it is still healthy, or
//! registers the host anew under the same ID, and says which. Every registration certifies a
//! fresh key for the ID the host ends up with.

mod connect;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;
use tokio::io::AsyncWriteExt;
use tokio::sync::{Notify, watch};
use tokio::time::timeout;
use tracing::{Instrument, warn};
use wtransport::endpoint::endpoint_side;
use wtransport::{Connection, Endpoint, VarInt};

use self::connect::backoff;
use super::messages::{
    Convert, SessionHost, StoreRequest, encode_value, for_each_store_op, kind, wire_type,
};
use crate::clock::SharedClock;
use crate::model::{
    ActorKey, AlarmCompletion, AlarmLease, AlarmRecord, CleanupStats, ClusterIdentity,
    ClusterObservation, DeadLetter, DeadLetterQuery, FetchAlarms, HostId, HostInfo,
    HostRegistration, JobInfo, JobRecord, ListStatesOptions, LookupOptions, Placement, StateList,
    Store, StoreError, StoreOptions,
};
use crate::net::peer::{NetError, client_endpoint, transport_config};
use crate::net::pki::RUNTIME_PREFIX;
use crate::net::tls::{self, CertSlot, Trust, Unverified};
use crate::net::translate::store_error_from_wire;
use crate::net::wire::{self, Frame, MAX_FRAME_BYTES, Message, WireError};

/// How long an operation waits for a session while the host reconnects.
const SESSION_WAIT: Duration = Duration::from_secs(5);
/// Largest reply frame accepted from the runtime.
const MAX_REPLY_FRAME: usize = MAX_FRAME_BYTES;

/// How a worker proves it may join.
#[derive(Clone)]
pub(crate) enum Credential {
    /// The host bootstrap PSK.
    Psk(crate::net::pki::Psk),
    /// A JWT given as a string.
    Jwt(String),
    /// A JWT read from this file at every bootstrap (rotated tokens are picked up).
    JwtFile(PathBuf),
}

/// What a remote host needs to reach the runtime.
pub(crate) struct LinkOptions {
    pub runtime_addresses: Vec<String>,
    pub credential: Credential,
    /// The pinned CA bundle, or `None` for the explicit unsafe no-pin mode.
    pub pinned: Option<Trust>,
    pub registration: HostRegistration,
    pub clock: SharedClock,
    /// Give up the first connection after this long (`None`: keep trying).
    pub connect_timeout: Option<Duration>,
    /// Bounds one store operation at the runtime (the host's request timeout).
    pub request_timeout: Duration,
}

/// Why connecting failed.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// Retrying cannot help until something is reconfigured (credential, pinned CA, version).
    Fatal(String),
    /// Worth trying again, possibly at another address.
    Transient(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Fatal(m) | ConnectError::Transient(m) => f.write_str(m),
        }
    }
}

/// One live session with one runtime.
struct Session {
    conn: Connection,
    address: String,
}

impl Session {
    fn is_alive(&self) -> bool {
        self.conn.quic_connection().close_reason().is_none()
    }
}

/// The link's shared state.
struct Inner {
    endpoint: Endpoint<endpoint_side::Client>,
    /// The cluster's CAs: pinned or learned from the runtime; also what peers are checked with.
    trust: Trust,
    /// This host's identity, presented to peers (and to the runtime while fresh enough).
    identity: Arc<CertSlot>,
    /// What is presented to the runtime: the identity while it has more than the reconnect
    /// margin left, else nothing (so an expiring certificate never fails the handshake).
    runtime_cert: Arc<CertSlot>,
    credential: Credential,
    addresses: Vec<String>,
    next_address: AtomicUsize,
    registration: HostRegistration,
    host_id: Mutex<Option<String>>,
    clock: SharedClock,
    session: watch::Sender<Option<Arc<Session>>>,
    /// Bumped each time the host had to register anew (its activations must be dropped).
    lost: watch::Sender<u64>,
    /// Set when the link stopped for good, with the reason.
    fatal: watch::Sender<Option<String>>,
    reconnect: Notify,
    closed: AtomicBool,
    cert_expires_ms: Mutex<i64>,
    /// Bounds one store operation at the runtime.
    request_timeout: Duration,
}

/// A remote host's link to the runtime; it is the host's [`Store`].
#[derive(Clone)]
pub(crate) struct RuntimeLink {
    inner: Arc<Inner>,
    options: StoreOptions,
}

/// What the first registration settled.
pub(crate) struct Established {
    pub link: RuntimeLink,
    pub host_id: HostId,
    pub trust: Trust,
    pub identity: Arc<CertSlot>,
    pub health_check_deadline: Duration,
    pub alarms_poll_interval: Duration,
    pub alarms_lease_duration: Duration,
    /// The runtime's alarm fetch-ahead interval and batch size (`None`: a runtime that does
    /// not send them; the host keeps its defaults).
    pub alarms_fetch_ahead: Option<Duration>,
    pub alarms_batch_size: Option<u32>,
}

impl RuntimeLink {
    /// Connect to one of the runtimes and register, retrying transient failures (at the next
    /// address, with backoff) until `connect_timeout`; then keep the link up in the background.
    pub(crate) async fn connect(options: LinkOptions) -> Result<Established, ConnectError> {
        let LinkOptions {
            runtime_addresses,
            credential,
            pinned,
            registration,
            clock,
            connect_timeout,
            request_timeout,
        } = options;
        let unpinned = pinned.is_none();
        let trust = pinned.unwrap_or_else(Trust::empty);
        let runtime_cert = CertSlot::empty();
        let unverified = if unpinned {
            Unverified::AcceptWhileEmpty
        } else {
            Unverified::Refuse
        };
        let fatal_setup = |e: String| ConnectError::Fatal(format!("cannot set up TLS: {e}"));
        let tls = tls::client_config(&trust, runtime_cert.clone(), RUNTIME_PREFIX, unverified)
            .map_err(|e| fatal_setup(e.to_string()))?;
        let endpoint = client_endpoint(tls, || {
            // Keep-alives well inside the runtime's idle timeout (its health deadline).
            transport_config(64, Duration::from_secs(20), Some(Duration::from_secs(3)))
        })
        .map_err(|e: NetError| fatal_setup(e.to_string()))?;
        let start = rand::random_range(0..runtime_addresses.len().max(1));
        let (session_tx, _) = watch::channel(None);
        let (lost, _) = watch::channel(0);
        let (fatal, _) = watch::channel(None);
        let inner = Arc::new(Inner {
            endpoint,
            trust: trust.clone(),
            identity: CertSlot::empty(),
            runtime_cert,
            credential,
            addresses: runtime_addresses,
            next_address: AtomicUsize::new(start),
            registration,
            host_id: Mutex::new(None),
            clock,
            session: session_tx,
            lost,
            fatal,
            reconnect: Notify::new(),
            closed: AtomicBool::new(false),
            cert_expires_ms: Mutex::new(0),
            request_timeout,
        });
        let deadline = connect_timeout.map(|t| tokio::time::Instant::now() + t);
        let mut attempt = 0u32;
        let (session, response) = loop {
            let address = inner.next_address();
            match inner.clone().establish(&address).await {
                Ok(ok) => break ok,
                Err(ConnectError::Fatal(reason)) => return Err(ConnectError::Fatal(reason)),
                Err(ConnectError::Transient(reason)) => {
                    let wait = backoff(attempt);
                    attempt = attempt.saturating_add(1);
                    if deadline.is_some_and(|d| tokio::time::Instant::now() + wait > d) {
                        return Err(ConnectError::Transient(format!(
                            "no runtime answered within {:?}; last error: {reason}",
                            connect_timeout.unwrap_or_default()
                        )));
                    }
                    warn!(%address, error = %reason, retry_in = ?wait, "cannot reach the runtime yet");
                    tokio::time::sleep(wait).await;
                }
            }
        };
        let store_options = StoreOptions {
            clock: inner.clock.clone(),
            health_check_deadline: Duration::from_millis(response.health_deadline_ms.max(1)),
        };
        inner.session.send_replace(Some(session));
        let link = RuntimeLink {
            inner: inner.clone(),
            options: store_options,
        };
        tokio::spawn(inner.clone().maintain());
        Ok(Established {
            link,
            host_id: response.host_id,
            trust,
            identity: inner.identity.clone(),
            health_check_deadline: Duration::from_millis(response.health_deadline_ms.max(1000)),
            alarms_poll_interval: Duration::from_millis(response.alarms_poll_interval_ms.max(100)),
            alarms_lease_duration: Duration::from_millis(
                response.alarms_lease_duration_ms.max(1000),
            ),
            alarms_fetch_ahead: (response.alarms_fetch_ahead_ms > 0).then(|| {
                Duration::from_millis(response.alarms_fetch_ahead_ms)
                    .min(crate::host::MAX_ALARMS_FETCH_AHEAD)
            }),
            alarms_batch_size: (response.alarms_batch_size > 0)
                .then_some(response.alarms_batch_size),
        })
    }

    /// Completes (with how many times the host registered anew) each time the host had to
    /// register anew after losing its registration: its activations must be dropped.
    pub(crate) fn registrations_lost(&self) -> watch::Receiver<u64> {
        self.inner.lost.subscribe()
    }

    /// Completes with the reason once the link stopped for good.
    pub(crate) fn failures(&self) -> watch::Receiver<Option<String>> {
        self.inner.fatal.subscribe()
    }

    /// Drop the current session and register again (after the runtime said this host's
    /// registration expired).
    pub(crate) fn reconnect(&self) {
        if let Some(session) = self.inner.session.borrow().as_ref() {
            session.conn.close(VarInt::from_u32(0), b"re-registering");
        }
        self.inner.reconnect.notify_one();
    }

    /// Stop the link: close the session and stop reconnecting.
    pub(crate) fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        if let Some(session) = self.inner.session.send_replace(None) {
            session
                .conn
                .close(VarInt::from_u32(0), b"host shutting down");
        }
        self.inner.reconnect.notify_one();
    }

    /// The address of the runtime this host is connected to now.
    pub(crate) fn runtime_address(&self) -> Option<String> {
        self.inner
            .session
            .borrow()
            .as_ref()
            .map(|s| s.address.clone())
    }

    /// Run store operation `op` at the runtime and decode its result.
    async fn call<A: Serialize, R: DeserializeOwned>(
        &self,
        op: &'static str,
        args: &A,
    ) -> Result<R, StoreError> {
        let request = StoreRequest {
            op: op.to_owned(),
            args: encode_value(args).map_err(|e| {
                StoreError::Invalid(format!("{op}: cannot encode the arguments: {e}"))
            })?,
        };
        let span = tracing::debug_span!(
            "runtime.request",
            otel.kind = "client",
            "francis.rpc.kind" = kind::STORE,
            "francis.store.operation" = op,
        );
        let started = std::time::Instant::now();
        let result = self.send(op, request).instrument(span).await;
        crate::telemetry::metrics::metrics()
            .runtime_requests
            .with(&["client", op, if result.is_ok() { "ok" } else { "error" }])
            .observe(started.elapsed());
        result
    }

    /// [`Self::call`] without its span and timing.
    async fn send<R: DeserializeOwned>(
        &self,
        op: &'static str,
        request: StoreRequest,
    ) -> Result<R, StoreError> {
        let frame = Frame::new(&request)
            .map_err(|e| StoreError::Invalid(format!("{op}: cannot send the request: {e}")))?
            .traced();
        let session = self.inner.wait_session(SESSION_WAIT).await.ok_or_else(|| {
            StoreError::Unavailable(format!(
                "{op}: not connected to any runtime (tried {})",
                self.inner.addresses.join(", ")
            ))
        })?;
        let limit = self.inner.request_timeout;
        match timeout(limit, exchange(&session.conn, &frame)).await {
            Ok(Ok(reply)) => reply.payload_as(kind::STORE_RESPONSE).map_err(|e| {
                StoreError::Unavailable(format!(
                    "{op}: unexpected reply from runtime {}: {e}",
                    session.address
                ))
            }),
            Ok(Err(Failure::Remote(error))) => Err(store_error_from_wire(error)),
            Ok(Err(Failure::Transport(reason))) => {
                if !session.is_alive() {
                    self.inner.reconnect.notify_one();
                }
                Err(StoreError::Unavailable(format!(
                    "{op} at runtime {}: {reason}",
                    session.address
                )))
            }
            Err(_) => Err(StoreError::Unavailable(format!(
                "{op}: runtime {} did not answer within {limit:?}",
                session.address
            ))),
        }
    }
}

/// A failed request to the runtime.
enum Failure {
    /// The runtime answered with an error.
    Remote(WireError),
    /// The request or its reply was lost.
    Transport(String),
}

/// One request frame and its reply frame on a fresh stream; an error reply is a
/// [`Failure::Remote`].
async fn exchange(conn: &Connection, request: &Frame) -> Result<Frame, Failure> {
    let transport =
        |what: &str, e: &dyn std::fmt::Display| Failure::Transport(format!("{what}: {e}"));
    let bytes = wire::encode_frame(request).map_err(|e| Failure::Remote(e.to_wire_error()))?;
    let (mut send, mut recv) = conn
        .open_bi()
        .await
        .map_err(|e| transport("cannot open a stream", &e))?
        .await
        .map_err(|e| transport("cannot open a stream", &e))?;
    send.write_all(&bytes)
        .await
        .map_err(|e| transport("cannot send", &e))?;
    send.shutdown()
        .await
        .map_err(|e| transport("cannot send", &e))?;
    let reply = match wire::read_frame(&mut recv, MAX_REPLY_FRAME).await {
        Ok(Some(frame)) => frame,
        Ok(None) => {
            return Err(Failure::Transport(
                "the stream closed without a reply".into(),
            ));
        }
        Err(e) => return Err(transport("cannot read the reply", &e)),
    };
    if reply.is_error() {
        return Err(reply
            .decode::<WireError>()
            .map_or_else(|e| Failure::Transport(e.to_string()), Failure::Remote));
    }
    Ok(reply)
}

/// One request message and its reply message on a fresh stream.
async fn round_trip<Req: Message, Resp: Message>(
    conn: &Connection,
    request: &Req,
) -> Result<Resp, Failure> {
    let frame = Frame::new(request).map_err(|e| Failure::Remote(e.to_wire_error()))?;
    exchange(conn, &frame)
        .await?
        .decode::<Resp>()
        .map_err(|e| Failure::Transport(format!("unexpected reply: {e}")))
}

/// The link's [`Store`]: every operation of the table is sent to the runtime (values the
/// runtime scopes to the session are not sent); registration and cleanup are the runtime's own
/// business.
macro_rules! link_store {
    ($(
        $op:ident ( $( $param:ident : $ty:ty $(=> $wire:ty)? $([$scope:ident])? ),* $(,)? )
            -> $ret:ty $(=> $ret_wire:ty)? ;
    )*) => {
        #[async_trait]
        impl Store for RuntimeLink {
            fn options(&self) -> &StoreOptions {
                &self.options
            }

            async fn register_host(
                &self,
                _registration: &HostRegistration,
            ) -> Result<HostId, StoreError> {
                Err(registers_through_session())
            }

            async fn reattach_host(
                &self,
                _host_id: &str,
                _registration: &HostRegistration,
            ) -> Result<bool, StoreError> {
                Err(registers_through_session())
            }

            async fn cleanup(&self) -> Result<CleanupStats, StoreError> {
                // The runtime cleans its store up itself.
                Ok(CleanupStats::default())
            }

            async fn claim_cluster_identity(
                &self,
                _fingerprints: &[String],
            ) -> Result<ClusterIdentity, StoreError> {
                Err(StoreError::Invalid(
                    "the runtime checks the cluster identity of its store itself; a worker cannot"
                        .into(),
                ))
            }

            async fn observe_cluster(&self) -> Result<ClusterObservation, StoreError> {
                Err(StoreError::Invalid(
                    "only a runtime or a local host observes the cluster through its own store; \
                     a worker's link to its runtime cannot"
                        .into(),
                ))
            }

            $(
                async fn $op(&self, $($param: $ty),*) -> Result<$ret, StoreError> {
                    let args: ($(wire_type!($ty $(=> $wire)?),)*) = ($(Convert::convert($param),)*);
                    let reply: wire_type!($ret $(=> $ret_wire)?) =
                        self.call(stringify!($op), &args).await?;
                    Ok(Convert::convert(reply))
                }
            )*
        }
    };
}

for_each_store_op!(link_store);

fn registers_through_session() -> StoreError {
    StoreError::Invalid(
        "a remote host registers through its runtime session, not through the store".into(),
    )
}
