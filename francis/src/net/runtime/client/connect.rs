//! Connecting a [`super::RuntimeLink`]: dialling a runtime, the registration exchange (PSK
//! challenge-response, JWT or mTLS), certificate renewal at half-life, and the background loop
//! that keeps a session up, rolling over to the next runtime with backoff.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use rustls::pki_types::CertificateDer;
use serde_bytes::ByteBuf;
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;
use tracing::{debug, info, warn};
use wtransport::{Connection, VarInt};

use super::{ConnectError, Credential, Failure, Inner, MAX_REPLY_FRAME, Session, round_trip};
use crate::clock::{Clock, SystemClock, duration_ms};
use crate::net::peer::{DialFailure, classify_dial_error};
use crate::net::pki::WorkloadKey;
use crate::net::runtime::bootstrap::{
    self, CHANNEL_BINDING_LABEL, PSK_NONCE_LEN, ProofSide, REATTACH_BINDING_LABEL,
};
use crate::net::runtime::messages::{
    AuthProof, PreviousIdentityProof, RUNTIME_PATH, RegisterAuth, RegisterChallenge,
    RegisterRequest, RegisterResponse, RenewRequest, RenewResponse, method,
};
use crate::net::wire::{self, ErrorCode, Frame, Message};

/// Bounds dialling and registering with one runtime.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// A certificate with less life left than this is not used to reconnect: bootstrap instead.
const RECONNECT_CERT_MARGIN: Duration = Duration::from_secs(5 * 60);
/// Backoff between connection attempts: 500 ms doubling up to 10 s, with jitter.
const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A failed certificate renewal is retried after this long.
const RENEW_RETRY: Duration = Duration::from_secs(5);

/// How long to wait before connection attempt number `attempt` (from 0), with jitter.
pub(super) fn backoff(attempt: u32) -> Duration {
    let base = BACKOFF_START
        .saturating_mul(2u32.saturating_pow(attempt.min(16)))
        .min(BACKOFF_MAX);
    base.mul_f64(rand::random_range(0.8..1.2))
}

impl Inner {
    pub(super) fn next_address(&self) -> String {
        let n = self.addresses.len().max(1);
        let i = self.next_address.fetch_add(1, Ordering::SeqCst) % n;
        self.addresses.get(i).cloned().unwrap_or_default()
    }

    pub(super) fn host_id(&self) -> Option<String> {
        self.host_id.lock().ok().and_then(|h| h.clone())
    }

    pub(super) async fn wait_session(&self, limit: Duration) -> Option<Arc<Session>> {
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
    pub(super) async fn establish(
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
                    DialFailure::Refused => ConnectError::Transient(format!(
                        "the runtime at {address} refused the session: it is shutting down, or it \
                         speaks another version of the runtime protocol (this worker asks for \
                         {RUNTIME_PATH}; run the same francis version on workers and runtimes)"
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
                "the runtime registered this host as {} although it is {previous}: it could not \
                 prove it still holds {previous}'s key (its certificate expired longer than the \
                 health-check deadline ago, or the cluster's CAs changed); restart the process",
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
            prev_proof: None,
            address: self.registration.address.clone(),
            actor_types: self.registration.actor_types.clone(),
            version: Some(self.registration.version.clone()).filter(|v| !v.is_empty()),
            auth: None,
            wlpub: key.public_key_raw(),
        };
        if !over_mtls {
            request.prev_proof = self.previous_identity_proof(conn);
            request.auth = Some(match &self.credential {
                Credential::Psk(psk) => {
                    let cnonce = bootstrap::nonce();
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
                    if !bootstrap::verify_psk_proof(
                        psk.as_bytes(),
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
                        proof: bootstrap::psk_proof(
                            psk.as_bytes(),
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

    /// Proof that this host still holds its previous identity's key, so that a bootstrap keeps
    /// its ID: the previous certificate and a signature bound to this session. `None` for a
    /// host that has no previous identity.
    fn previous_identity_proof(&self, conn: &Connection) -> Option<PreviousIdentityProof> {
        let previous = self.host_id()?;
        let identity = self.identity.identity()?;
        if identity.spiffe_id().host_id() != Some(previous.as_str()) {
            return None;
        }
        let mut binding = [0u8; PSK_NONCE_LEN];
        conn.export_keying_material(&mut binding, REATTACH_BINDING_LABEL, &[])
            .ok()?;
        let sig = identity
            .sign(&bootstrap::reattach_transcript(&binding, &previous))
            .inspect_err(|e| warn!(error = %e, "cannot sign with the previous workload key"))
            .ok()?;
        Some(PreviousIdentityProof {
            cert: identity.leaf_der().to_vec(),
            sig,
        })
    }

    /// Renew the workload certificate with a fresh key over `session`.
    async fn renew(&self, session: &Session) -> Result<(), String> {
        let key = WorkloadKey::generate().map_err(|e| e.to_string())?;
        let request = RenewRequest {
            wlpub: key.public_key_raw(),
        };
        let response: RenewResponse =
            match timeout(self.request_timeout, round_trip(&session.conn, &request)).await {
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
        crate::net::pki::renewal_due_ms(SystemClock.now_ms(), expires)
    }

    /// Keep a session up until the link is closed: renew the certificate on time, and when the
    /// session ends, connect again (next address, with backoff).
    pub(super) async fn maintain(self: Arc<Self>) {
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
                Duration::from_millis((renew_at - SystemClock.now_ms()).max(0).unsigned_abs());
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
                            renew_at = SystemClock.now_ms().saturating_add(duration_ms(RENEW_RETRY));
                        }
                    }
                }
            }
        }
    }
}

/// A reply on the registration stream: the message, or the runtime's refusal.
fn decode_reply<M: Message>(frame: &Frame) -> Result<M, Failure> {
    if frame.is_error() {
        return Err(frame
            .decode::<wire::WireError>()
            .map_or_else(|e| Failure::Transport(e.to_string()), Failure::Remote));
    }
    frame
        .decode::<M>()
        .map_err(|e| Failure::Transport(format!("unexpected reply: {e}")))
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
