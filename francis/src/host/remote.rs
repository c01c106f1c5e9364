//! A remote host's link to the runtime: it bootstraps (PSK challenge-response or JWT), keeps
//! one WebTransport session to one runtime at a time (rolling over to the next address with
//! backoff when it fails), renews its workload certificate at half-life with a fresh key, and
//! implements [`Store`] by sending each operation to the runtime. The host core uses it exactly
//! as it uses a local store, which is what keeps actor code and activation logic identical in
//! both topologies.
//!
//! Identity: a host keeps one ID for the life of its process. Reconnecting, it asks for that ID
//! again (over mTLS while its certificate has more than 5 minutes left, otherwise by
//! bootstrapping again); the runtime keeps the registration if it is still healthy, or
//! registers the host anew under the same ID, and says which. Every registration certifies a
//! fresh key for the ID the host ends up with.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rustls::pki_types::CertificateDer;
use serde_bytes::ByteBuf;
use tokio::io::AsyncWriteExt;
use tokio::sync::{Notify, watch};
use tokio::time::timeout;
use tracing::{debug, info, warn};
use wtransport::endpoint::endpoint_side;
use wtransport::{Connection, Endpoint, VarInt};

use crate::clock::SharedClock;
use crate::model::{
    ActorKey, AlarmCompletion, AlarmLease, AlarmRecord, CleanupStats, FetchAlarms, HostId,
    HostInfo, HostRegistration, ListStatesOptions, LookupOptions, Placement, StateList, Store,
    StoreError, StoreOptions,
};
use crate::net::peer::{
    DialFailure, NetError, classify_dial_error, client_endpoint, transport_config,
};
use crate::net::pki::{RUNTIME_PREFIX, WorkloadKey};
use crate::net::rpc::{
    self, AuthProof, CHANNEL_BINDING_LABEL, PSK_NONCE_LEN, ProofSide, RUNTIME_PATH, RegisterAuth,
    RegisterChallenge, RegisterRequest, RegisterResponse, RenewRequest, RenewResponse, StoreCall,
    StoreReply, method,
};
use crate::net::tls::{self, CertSlot, Trust, Unverified};
use crate::net::wire::{self, ErrorCode, Frame, MAX_FRAME_BYTES, Message, WireError};

/// Bounds dialling and registering with one runtime.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Bounds one store operation at the runtime.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How long an operation waits for a session while the host reconnects.
const SESSION_WAIT: Duration = Duration::from_secs(5);
/// A certificate with less life left than this is not used to reconnect: bootstrap instead.
const RECONNECT_CERT_MARGIN: Duration = Duration::from_secs(5 * 60);
/// Backoff between connection attempts: 500 ms doubling up to 10 s, with jitter.
const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A failed certificate renewal is retried after this long.
const RENEW_RETRY: Duration = Duration::from_secs(5);
/// Largest reply frame accepted from the runtime.
const MAX_REPLY_FRAME: usize = MAX_FRAME_BYTES;

/// How a worker proves it may join.
#[derive(Clone)]
pub(crate) enum Credential {
    /// The host bootstrap PSK.
    Psk(Vec<u8>),
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
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn backoff(attempt: u32) -> Duration {
    let base = BACKOFF_START
        .saturating_mul(2u32.saturating_pow(attempt.min(16)))
        .min(BACKOFF_MAX);
    base.mul_f64(rand::random_range(0.8..1.2))
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

    async fn call(&self, call: StoreCall) -> Result<StoreReply, StoreError> {
        let name = call.name();
        let session = self.inner.wait_session(SESSION_WAIT).await.ok_or_else(|| {
            StoreError::Unavailable(format!(
                "{name}: not connected to any runtime (tried {})",
                self.inner.addresses.join(", ")
            ))
        })?;
        match timeout(
            REQUEST_TIMEOUT,
            round_trip::<_, StoreReply>(&session.conn, &call),
        )
        .await
        {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(Failure::Remote(error))) => Err(from_wire(&call, error)),
            Ok(Err(Failure::Transport(reason))) => {
                if !session.is_alive() {
                    self.inner.reconnect.notify_one();
                }
                Err(StoreError::Unavailable(format!(
                    "{name} at runtime {}: {reason}",
                    session.address
                )))
            }
            Err(_) => Err(StoreError::Unavailable(format!(
                "{name}: runtime {} did not answer within {REQUEST_TIMEOUT:?}",
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

/// One request and its reply on a fresh stream.
async fn round_trip<Req: Message, Resp: Message>(
    conn: &Connection,
    request: &Req,
) -> Result<Resp, Failure> {
    let transport =
        |what: &str, e: &dyn std::fmt::Display| Failure::Transport(format!("{what}: {e}"));
    let frame = Frame::new(request)
        .and_then(|e| wire::encode_frame(&e))
        .map_err(|e| Failure::Remote(e.to_wire_error()))?;
    let (mut send, mut recv) = conn
        .open_bi()
        .await
        .map_err(|e| transport("cannot open a stream", &e))?
        .await
        .map_err(|e| transport("cannot open a stream", &e))?;
    send.write_all(&frame)
        .await
        .map_err(|e| transport("cannot send", &e))?;
    send.shutdown()
        .await
        .map_err(|e| transport("cannot send", &e))?;
    let frame = match wire::read_frame(&mut recv, MAX_REPLY_FRAME).await {
        Ok(Some(frame)) => frame,
        Ok(None) => {
            return Err(Failure::Transport(
                "the stream closed without a reply".into(),
            ));
        }
        Err(e) => return Err(transport("cannot read the reply", &e)),
    };
    decode_reply(&frame)
}

fn decode_reply<Resp: Message>(frame: &Frame) -> Result<Resp, Failure> {
    if frame.is_error() {
        return Err(frame
            .decode::<WireError>()
            .map_or_else(|e| Failure::Transport(e.to_string()), Failure::Remote));
    }
    frame
        .decode::<Resp>()
        .map_err(|e| Failure::Transport(format!("unexpected reply: {e}")))
}

/// A runtime's error reply as the store error the host core expects.
fn from_wire(call: &StoreCall, error: WireError) -> StoreError {
    let key = match call {
        StoreCall::LookupActor { key, .. } | StoreCall::RemoveActor { key } => Some(key),
        _ => None,
    };
    match (error.code, key) {
        (ErrorCode::HostUnregistered, _) => StoreError::HostUnregistered {
            host_id: String::new(),
        },
        (ErrorCode::NoHost, Some(key)) => StoreError::NoHost {
            actor_type: key.actor_type.clone(),
        },
        (ErrorCode::ActorNotActive, Some(key)) => StoreError::NotActive { key: key.clone() },
        (ErrorCode::BadRequest, _) => StoreError::Invalid(error.message),
        _ => StoreError::Unavailable(format!("runtime: {}", error.message)),
    }
}

impl Inner {
    fn next_address(&self) -> String {
        let n = self.addresses.len().max(1);
        let i = self.next_address.fetch_add(1, Ordering::SeqCst) % n;
        self.addresses.get(i).cloned().unwrap_or_default()
    }

    fn host_id(&self) -> Option<String> {
        self.host_id.lock().ok().and_then(|h| h.clone())
    }

    async fn wait_session(&self, limit: Duration) -> Option<Arc<Session>> {
        let mut rx = self.session.subscribe();
        let found = timeout(
            limit,
            rx.wait_for(|s| s.as_ref().is_some_and(|s| s.is_alive())),
        )
        .await;
        match found {
            Ok(Ok(session)) => session.clone(),
            _ => None,
        }
    }

    /// Dial `address` and register; on success the new identity and CA bundle are installed.
    async fn establish(
        self: Arc<Self>,
        address: &str,
    ) -> Result<(Arc<Session>, RegisterResponse), ConnectError> {
        // Present the current identity only while it has enough life left.
        let fresh = self.identity.identity().filter(|identity| {
            identity
                .not_after()
                .duration_since(SystemTime::now())
                .is_ok_and(|left| left > RECONNECT_CERT_MARGIN + crate::net::pki::CLOCK_SKEW)
        });
        match &fresh {
            Some(identity) => self
                .runtime_cert
                .set(identity)
                .map_err(|e| ConnectError::Fatal(e.to_string()))?,
            None => self.runtime_cert.clear(),
        }
        let url = format!("https://{address}{RUNTIME_PATH}");
        let conn = match timeout(CONNECT_TIMEOUT, self.endpoint.connect(url)).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                let text = e.to_string();
                return Err(match classify_dial_error(&e) {
                    DialFailure::Untrusted if self.host_id().is_none() => {
                        ConnectError::Fatal(format!(
                            "the runtime at {address} is not trusted: its certificate does not chain to the pinned CA \
                         (pin the output of `francis ca print` for this cluster's runtime PSKs): {text}"
                        ))
                    }
                    DialFailure::Expired => ConnectError::Transient(format!(
                        "TLS handshake with the runtime at {address} failed: a certificate expired or is not yet valid (check clocks): {text}"
                    )),
                    _ => ConnectError::Transient(format!(
                        "cannot connect to the runtime at {address}: {text}"
                    )),
                });
            }
            Err(_) => {
                return Err(ConnectError::Transient(format!(
                    "connecting to the runtime at {address} timed out after {CONNECT_TIMEOUT:?}"
                )));
            }
        };
        let registered = timeout(CONNECT_TIMEOUT, self.register(&conn, fresh.is_some())).await;
        let (response, identity) = match registered {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => {
                conn.close(VarInt::from_u32(0), b"registration failed");
                return Err(e);
            }
            Err(_) => {
                conn.close(VarInt::from_u32(0), b"registration timed out");
                return Err(ConnectError::Transient(format!(
                    "registering with the runtime at {address} timed out after {CONNECT_TIMEOUT:?}"
                )));
            }
        };
        if let Some(previous) = self.host_id()
            && previous != response.host_id
        {
            conn.close(VarInt::from_u32(0), b"identity changed");
            return Err(ConnectError::Fatal(format!(
                "the runtime registered this host as {} although it is {previous} (another live host holds that ID); restart the process",
                response.host_id
            )));
        }
        let bundle: Vec<CertificateDer<'static>> = response
            .cabundle
            .iter()
            .map(|b| CertificateDer::from(b.to_vec()))
            .collect();
        self.trust.replace(bundle).map_err(|e| {
            ConnectError::Transient(format!(
                "the runtime at {address} sent an unusable CA bundle: {e}"
            ))
        })?;
        self.identity
            .set(&identity)
            .map_err(|e| ConnectError::Fatal(e.to_string()))?;
        if let Ok(mut id) = self.host_id.lock() {
            *id = Some(response.host_id.clone());
        }
        if let Ok(mut expires) = self.cert_expires_ms.lock() {
            *expires = response.cert_expires_ms;
        }
        info!(
            runtime = %address, host = %response.host_id, reattached = response.reattached,
            "registered with the runtime"
        );
        Ok((
            Arc::new(Session {
                conn,
                address: address.to_owned(),
            }),
            response,
        ))
    }

    /// The registration exchange on the session's first stream.
    async fn register(
        &self,
        conn: &Connection,
        over_mtls: bool,
    ) -> Result<(RegisterResponse, crate::net::pki::Identity), ConnectError> {
        let transient =
            |what: &str, e: &dyn std::fmt::Display| ConnectError::Transient(format!("{what}: {e}"));
        let key = WorkloadKey::generate().map_err(|e| ConnectError::Fatal(e.to_string()))?;
        let (mut send, mut recv) = conn
            .open_bi()
            .await
            .map_err(|e| transient("cannot open the registration stream", &e))?
            .await
            .map_err(|e| transient("cannot open the registration stream", &e))?;
        let mut request = RegisterRequest {
            prev_host_id: self.host_id(),
            address: self.registration.address.clone(),
            actor_types: self.registration.actor_types.clone(),
            auth: None,
            wlpub: key.public_key_raw(),
        };
        if !over_mtls {
            request.auth = Some(match &self.credential {
                Credential::Psk(psk) => {
                    let cnonce = rpc::nonce();
                    let start = RegisterAuth {
                        method: method::PSK.into(),
                        cnonce: cnonce.clone(),
                    };
                    write(&mut send, &start).await?;
                    let reply = read(&mut recv).await?;
                    let challenge: RegisterChallenge = decode_reply(&reply).map_err(refused)?;
                    let mut binding = vec![0u8; PSK_NONCE_LEN];
                    conn.export_keying_material(&mut binding, CHANNEL_BINDING_LABEL, &[])
                        .map_err(|_| {
                            ConnectError::Transient("cannot derive the channel binding".into())
                        })?;
                    if !rpc::verify_psk_proof(
                        psk,
                        ProofSide::Server,
                        &cnonce,
                        &challenge.snonce,
                        &binding,
                        &challenge.sproof,
                    ) {
                        return Err(ConnectError::Fatal(
                            "the runtime failed PSK authentication: it does not know this host's bootstrap PSK \
                             (the PSKs differ, or this is not the real runtime); nothing was revealed to it"
                                .into(),
                        ));
                    }
                    AuthProof {
                        method: method::PSK.into(),
                        proof: rpc::psk_proof(
                            psk,
                            ProofSide::Client,
                            &cnonce,
                            &challenge.snonce,
                            &binding,
                        ),
                        token: String::new(),
                    }
                }
                Credential::Jwt(token) => AuthProof {
                    method: method::JWT.into(),
                    proof: Vec::new(),
                    token: token.trim().to_owned(),
                },
                Credential::JwtFile(path) => {
                    let token = tokio::fs::read_to_string(path).await.map_err(|e| {
                        ConnectError::Transient(format!(
                            "cannot read the bootstrap token file {}: {e}",
                            path.display()
                        ))
                    })?;
                    AuthProof {
                        method: method::JWT.into(),
                        proof: Vec::new(),
                        token: token.trim().to_owned(),
                    }
                }
            });
        }
        write(&mut send, &request).await?;
        let _ = send.shutdown().await;
        let reply = read(&mut recv).await?;
        let response: RegisterResponse = decode_reply(&reply).map_err(refused)?;
        let chain: Vec<CertificateDer<'static>> = response
            .cabundle
            .first()
            .map(|ca| CertificateDer::from(ca.to_vec()))
            .into_iter()
            .collect();
        let identity = key
            .into_identity(CertificateDer::from(response.wlcert.clone()), &chain)
            .map_err(|e| {
                ConnectError::Transient(format!("the runtime issued an unusable certificate: {e}"))
            })?;
        Ok((response, identity))
    }

    /// Renew the workload certificate with a fresh key over `session`.
    async fn renew(&self, session: &Session) -> Result<(), String> {
        let key = WorkloadKey::generate().map_err(|e| e.to_string())?;
        let request = RenewRequest {
            wlpub: key.public_key_raw(),
        };
        let response: RenewResponse =
            match timeout(REQUEST_TIMEOUT, round_trip(&session.conn, &request)).await {
                Ok(Ok(response)) => response,
                Ok(Err(Failure::Remote(e))) => return Err(e.to_string()),
                Ok(Err(Failure::Transport(e))) => return Err(e),
                Err(_) => return Err("the runtime did not answer in time".into()),
            };
        let bundle: Vec<CertificateDer<'static>> = response
            .cabundle
            .iter()
            .map(|b: &ByteBuf| CertificateDer::from(b.to_vec()))
            .collect();
        let chain: Vec<_> = bundle.first().cloned().into_iter().collect();
        let identity = key
            .into_identity(CertificateDer::from(response.wlcert), &chain)
            .map_err(|e| e.to_string())?;
        self.trust.replace(bundle).map_err(|e| e.to_string())?;
        self.identity.set(&identity).map_err(|e| e.to_string())?;
        if let Ok(mut expires) = self.cert_expires_ms.lock() {
            *expires = response.cert_expires_ms;
        }
        debug!("workload certificate renewed");
        Ok(())
    }

    /// When the certificate should be renewed: at half its remaining life.
    fn renew_at_ms(&self) -> i64 {
        let expires = self.cert_expires_ms.lock().map(|e| *e).unwrap_or(0);
        let now = now_ms();
        now + (expires - now).max(0) / 2
    }

    /// Keep a session up until the link is closed: renew the certificate on time, and when the
    /// session ends, connect again (next address, with backoff).
    async fn maintain(self: Arc<Self>) {
        let mut attempt = 0u32;
        loop {
            let current = self.session.borrow().clone();
            if let Some(session) = current {
                self.serve_session(&session).await;
                let _ = self.session.send_replace(None);
                if self.closed.load(Ordering::SeqCst) {
                    return;
                }
                info!(runtime = %session.address, "runtime session ended; reconnecting");
            }
            if self.closed.load(Ordering::SeqCst) {
                return;
            }
            let address = self.next_address();
            match self.clone().establish(&address).await {
                Ok((session, response)) => {
                    attempt = 0;
                    if !response.reattached {
                        warn!(host = %response.host_id, "this host's registration had expired; it registered anew and drops its activations");
                        self.lost.send_modify(|n| *n += 1);
                    }
                    if self.closed.load(Ordering::SeqCst) {
                        session
                            .conn
                            .close(VarInt::from_u32(0), b"host shutting down");
                        return;
                    }
                    self.session.send_replace(Some(session));
                }
                Err(ConnectError::Fatal(reason)) => {
                    warn!(runtime = %address, error = %reason, "cannot register with the runtime; stopping");
                    self.fatal.send_replace(Some(reason));
                    return;
                }
                Err(ConnectError::Transient(reason)) => {
                    let wait = backoff(attempt);
                    attempt = attempt.saturating_add(1);
                    warn!(runtime = %address, error = %reason, retry_in = ?wait, "cannot reach the runtime");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.reconnect.notified() => {}
                    }
                }
            }
        }
    }

    /// Wait while `session` lives, renewing the certificate when due.
    async fn serve_session(&self, session: &Session) {
        let mut renew_at = self.renew_at_ms();
        loop {
            let wait =
                Duration::from_millis(u64::try_from((renew_at - now_ms()).max(0)).unwrap_or(0));
            tokio::select! {
                _ = session.conn.closed() => return,
                _ = self.reconnect.notified() => {
                    if !session.is_alive() || self.closed.load(Ordering::SeqCst) {
                        return;
                    }
                }
                _ = tokio::time::sleep(wait) => {
                    match self.renew(session).await {
                        Ok(()) => renew_at = self.renew_at_ms(),
                        Err(e) => {
                            warn!(error = %e, "certificate renewal failed; retrying soon");
                            renew_at = now_ms() + i64::try_from(RENEW_RETRY.as_millis()).unwrap_or(5_000);
                        }
                    }
                }
            }
        }
    }
}

fn refused(failure: Failure) -> ConnectError {
    match failure {
        Failure::Remote(e)
            if matches!(
                e.code,
                ErrorCode::Unauthorized | ErrorCode::ProtocolVersion | ErrorCode::BadRequest
            ) =>
        {
            ConnectError::Fatal(format!("the runtime refused this host: {}", e.message))
        }
        Failure::Remote(e) if e.code == ErrorCode::AddressInUse => {
            ConnectError::Transient(format!(
                "{} (another process uses this host's peer address; if it crashed, its registration expires after the health deadline)",
                e.message
            ))
        }
        Failure::Remote(e) => {
            ConnectError::Transient(format!("the runtime refused this host: {}", e.message))
        }
        Failure::Transport(e) => ConnectError::Transient(e),
    }
}

async fn write<M: Message>(
    send: &mut wtransport::SendStream,
    message: &M,
) -> Result<(), ConnectError> {
    let frame = Frame::new(message).map_err(|e| ConnectError::Fatal(e.to_string()))?;
    wire::write_frame(send, &frame)
        .await
        .map_err(|e| ConnectError::Transient(format!("cannot send to the runtime: {e}")))
}

async fn read(recv: &mut wtransport::RecvStream) -> Result<Frame, ConnectError> {
    match wire::read_frame(recv, MAX_REPLY_FRAME).await {
        Ok(Some(frame)) => Ok(frame),
        Ok(None) => Err(ConnectError::Transient(
            "the runtime closed the registration stream without answering".into(),
        )),
        Err(e) => Err(ConnectError::Transient(format!(
            "cannot read the runtime's answer: {e}"
        ))),
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn unexpected(what: &str) -> StoreError {
    StoreError::Unavailable(format!("the runtime sent an unexpected reply to {what}"))
}

#[async_trait]
impl Store for RuntimeLink {
    fn options(&self) -> &StoreOptions {
        &self.options
    }

    async fn register_host(&self, _registration: &HostRegistration) -> Result<HostId, StoreError> {
        Err(StoreError::Invalid(
            "a remote host registers through its runtime session, not through the store".into(),
        ))
    }

    async fn reattach_host(
        &self,
        _host_id: &str,
        _registration: &HostRegistration,
    ) -> Result<bool, StoreError> {
        Err(StoreError::Invalid(
            "a remote host registers through its runtime session, not through the store".into(),
        ))
    }

    async fn heartbeat(&self, _host_id: &str) -> Result<(), StoreError> {
        match self.call(StoreCall::Heartbeat).await? {
            StoreReply::Done => Ok(()),
            _ => Err(unexpected("heartbeat")),
        }
    }

    async fn unregister_host(&self, _host_id: &str) -> Result<(), StoreError> {
        match self.call(StoreCall::Unregister).await? {
            StoreReply::Done => Ok(()),
            _ => Err(unexpected("unregister")),
        }
    }

    async fn list_hosts(&self) -> Result<Vec<HostInfo>, StoreError> {
        match self.call(StoreCall::ListHosts).await? {
            StoreReply::Hosts(hosts) => Ok(hosts),
            _ => Err(unexpected("list_hosts")),
        }
    }

    async fn lookup_actor(
        &self,
        key: &ActorKey,
        options: &LookupOptions,
    ) -> Result<Placement, StoreError> {
        let call = StoreCall::LookupActor {
            key: key.clone(),
            active_only: options.active_only,
        };
        match self.call(call).await? {
            StoreReply::Placement(placement) => Ok(placement),
            _ => Err(unexpected("lookup_actor")),
        }
    }

    async fn remove_actor(&self, key: &ActorKey, _host_id: &str) -> Result<bool, StoreError> {
        match self
            .call(StoreCall::RemoveActor { key: key.clone() })
            .await?
        {
            StoreReply::Flag(removed) => Ok(removed),
            _ => Err(unexpected("remove_actor")),
        }
    }

    async fn get_state(&self, key: &ActorKey) -> Result<Option<Vec<u8>>, StoreError> {
        match self.call(StoreCall::GetState { key: key.clone() }).await? {
            StoreReply::State(data) => Ok(data.map(ByteBuf::into_vec)),
            _ => Err(unexpected("get_state")),
        }
    }

    async fn set_state(
        &self,
        key: &ActorKey,
        data: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let call = StoreCall::SetState {
            key: key.clone(),
            data: data.to_vec(),
            ttl_ms: ttl.map(ms),
        };
        match self.call(call).await? {
            StoreReply::Done => Ok(()),
            _ => Err(unexpected("set_state")),
        }
    }

    async fn delete_state(&self, key: &ActorKey) -> Result<bool, StoreError> {
        match self
            .call(StoreCall::DeleteState { key: key.clone() })
            .await?
        {
            StoreReply::Flag(existed) => Ok(existed),
            _ => Err(unexpected("delete_state")),
        }
    }

    async fn list_states(
        &self,
        actor_type: &str,
        options: &ListStatesOptions,
    ) -> Result<StateList, StoreError> {
        let call = StoreCall::ListStates {
            actor_type: actor_type.to_owned(),
            options: options.clone(),
        };
        match self.call(call).await? {
            StoreReply::States(list) => Ok(list),
            _ => Err(unexpected("list_states")),
        }
    }

    async fn set_alarm(
        &self,
        key: &ActorKey,
        name: &str,
        alarm: &AlarmRecord,
    ) -> Result<(), StoreError> {
        let call = StoreCall::SetAlarm {
            key: key.clone(),
            name: name.to_owned(),
            alarm: alarm.clone(),
        };
        match self.call(call).await? {
            StoreReply::Done => Ok(()),
            _ => Err(unexpected("set_alarm")),
        }
    }

    async fn get_alarm(
        &self,
        key: &ActorKey,
        name: &str,
    ) -> Result<Option<AlarmRecord>, StoreError> {
        let call = StoreCall::GetAlarm {
            key: key.clone(),
            name: name.to_owned(),
        };
        match self.call(call).await? {
            StoreReply::Alarm(alarm) => Ok(alarm),
            _ => Err(unexpected("get_alarm")),
        }
    }

    async fn delete_alarm(&self, key: &ActorKey, name: &str) -> Result<bool, StoreError> {
        let call = StoreCall::DeleteAlarm {
            key: key.clone(),
            name: name.to_owned(),
        };
        match self.call(call).await? {
            StoreReply::Flag(existed) => Ok(existed),
            _ => Err(unexpected("delete_alarm")),
        }
    }

    async fn fetch_and_lease_alarms(
        &self,
        request: &FetchAlarms,
    ) -> Result<Vec<AlarmLease>, StoreError> {
        let call = StoreCall::FetchAlarms {
            horizon_ms: request.horizon_ms,
            lease_ms: ms(request.lease_duration),
            batch_size: request.batch_size,
        };
        match self.call(call).await? {
            StoreReply::Leases(leases) => Ok(leases),
            _ => Err(unexpected("fetch_alarms")),
        }
    }

    async fn get_leased_alarm(
        &self,
        lease: &AlarmLease,
    ) -> Result<Option<AlarmRecord>, StoreError> {
        match self
            .call(StoreCall::GetLeasedAlarm {
                lease: lease.clone(),
            })
            .await?
        {
            StoreReply::Alarm(alarm) => Ok(alarm),
            _ => Err(unexpected("get_leased_alarm")),
        }
    }

    async fn complete_leased_alarm(
        &self,
        lease: &AlarmLease,
        completion: &AlarmCompletion,
        lease_duration: Duration,
    ) -> Result<Option<AlarmLease>, StoreError> {
        let call = StoreCall::CompleteLeasedAlarm {
            lease: lease.clone(),
            completion: completion.clone(),
            lease_ms: ms(lease_duration),
        };
        match self.call(call).await? {
            StoreReply::Lease(lease) => Ok(lease),
            _ => Err(unexpected("complete_leased_alarm")),
        }
    }

    async fn release_alarm_lease(&self, lease: &AlarmLease) -> Result<bool, StoreError> {
        match self
            .call(StoreCall::ReleaseAlarmLease {
                lease: lease.clone(),
            })
            .await?
        {
            StoreReply::Flag(valid) => Ok(valid),
            _ => Err(unexpected("release_alarm_lease")),
        }
    }

    async fn renew_alarm_leases(
        &self,
        _host_id: &str,
        lease_duration: Duration,
    ) -> Result<Vec<AlarmLease>, StoreError> {
        let call = StoreCall::RenewAlarmLeases {
            lease_ms: ms(lease_duration),
        };
        match self.call(call).await? {
            StoreReply::Leases(leases) => Ok(leases),
            _ => Err(unexpected("renew_alarm_leases")),
        }
    }

    async fn cleanup(&self) -> Result<CleanupStats, StoreError> {
        // The runtime cleans its store up itself.
        Ok(CleanupStats::default())
    }
}
