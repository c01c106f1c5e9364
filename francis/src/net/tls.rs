//! TLS material that can change while a node runs, and the rustls configurations built on it.
//!
//! - [`Trust`] holds the cluster's CA certificates. A local host derives them from its PSKs and
//!   never changes them; a remote worker starts from a pinned CA (or, unsafely, from nothing)
//!   and takes the bundle the runtime sends it at every registration and certificate renewal.
//! - [`CertSlot`] holds a node's current workload identity. A remote worker's certificate lives
//!   one hour and is renewed with a fresh key; the slot swaps it without rebuilding endpoints.
//!   An empty slot presents no client certificate (a worker before its first bootstrap).
//! - [`server_config`] and [`client_config`] build TLS 1.3, ALPN `h3` configurations that read
//!   both on every handshake, so live connections keep what they negotiated and new ones see
//!   the new values.
//!
//! Peer verification ignores DNS names (there are none): it chain-verifies against the trust
//! bundle with webpki, checks validity dates, requires exactly one `spiffe://` URI SAN whose path
//! starts with the expected prefix, and keeps the TLS 1.3 handshake signature check (proof of
//! key possession).

use std::fmt;
use std::sync::{Arc, RwLock};

use rustls::client::ResolvesClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, TrustAnchor, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};

use super::pki::{ALPN_H3, Identity, PkiError, SpiffeId, spiffe_id_of};

/// The one crypto provider of Francis: `ring` (also what wtransport is built with).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Trust anchors and their subjects, as one immutable snapshot.
struct Roots {
    ders: Vec<CertificateDer<'static>>,
    anchors: Vec<TrustAnchor<'static>>,
    subjects: Vec<rustls::DistinguishedName>,
}

impl Roots {
    fn new(ders: Vec<CertificateDer<'static>>) -> Result<Self, PkiError> {
        let mut anchors = Vec::with_capacity(ders.len());
        for der in &ders {
            let anchor = webpki::anchor_from_trusted_cert(der).map_err(|e| {
                PkiError::InvalidCertificate(format!("CA certificate is not a trust anchor: {e}"))
            })?;
            anchors.push(anchor.to_owned());
        }
        let subjects = anchors
            .iter()
            .map(|ta| rustls::DistinguishedName::in_sequence(ta.subject.as_ref()))
            .collect();
        Ok(Roots {
            ders,
            anchors,
            subjects,
        })
    }
}

/// The CA certificates a node trusts. Cheap to clone; clones share the same bundle, so
/// [`replace`](Self::replace) is seen by every configuration built from any clone.
#[derive(Clone)]
pub struct Trust {
    roots: Arc<RwLock<Arc<Roots>>>,
}

impl fmt::Debug for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trust")
            .field("cas", &self.snapshot().ders.len())
            .finish()
    }
}

impl Trust {
    /// Trust exactly these CA certificates (DER).
    pub fn from_ders(ders: Vec<CertificateDer<'static>>) -> Result<Self, PkiError> {
        Ok(Trust {
            roots: Arc::new(RwLock::new(Arc::new(Roots::new(ders)?))),
        })
    }

    /// Trust the CA certificates in a PEM text (one or more `CERTIFICATE` blocks, as
    /// `francis ca print` writes them). Text that holds no certificate is an error.
    pub fn from_pem(pem: &str) -> Result<Self, PkiError> {
        Self::from_ders(parse_pem_certs(pem)?)
    }

    /// Trust nothing yet. A client configuration built with
    /// [`Unverified::AcceptWhileEmpty`] accepts any server until a bundle is installed.
    pub fn empty() -> Self {
        Trust {
            roots: Arc::new(RwLock::new(Arc::new(Roots {
                ders: Vec::new(),
                anchors: Vec::new(),
                subjects: Vec::new(),
            }))),
        }
    }

    /// Replace the trusted CAs (e.g. with the bundle a runtime sent). An empty list is refused:
    /// it would make every peer untrusted.
    pub fn replace(&self, ders: Vec<CertificateDer<'static>>) -> Result<(), PkiError> {
        if ders.is_empty() {
            return Err(PkiError::InvalidCertificate(
                "an empty CA bundle cannot replace the trusted CAs".into(),
            ));
        }
        let roots = Arc::new(Roots::new(ders)?);
        let mut slot = self.roots.write().unwrap_or_else(|p| p.into_inner());
        *slot = roots;
        Ok(())
    }

    /// Whether no CA is trusted yet.
    pub fn is_empty(&self) -> bool {
        self.snapshot().ders.is_empty()
    }

    /// The trusted CA certificates (DER), in the order given.
    pub fn bundle_der(&self) -> Vec<CertificateDer<'static>> {
        self.snapshot().ders.clone()
    }

    fn snapshot(&self) -> Arc<Roots> {
        self.roots.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Parse every `CERTIFICATE` block of a PEM text.
pub fn parse_pem_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    use rustls::pki_types::pem::PemObject;
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::InvalidCertificate(format!("cannot read PEM: {e}")))?;
    if certs.is_empty() {
        return Err(PkiError::InvalidCertificate(
            "no CERTIFICATE block found in the PEM text".into(),
        ));
    }
    Ok(certs)
}

/// A node's current workload identity, swappable while endpoints use it.
pub struct CertSlot {
    current: RwLock<Option<(Identity, Arc<CertifiedKey>)>>,
}

impl fmt::Debug for CertSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertSlot")
            .field("identity", &self.identity().map(|i| i.spiffe_id().clone()))
            .finish()
    }
}

impl CertSlot {
    /// A slot holding `identity`.
    pub fn new(identity: &Identity) -> Result<Arc<Self>, PkiError> {
        let slot = Self::empty();
        slot.set(identity)?;
        Ok(slot)
    }

    /// A slot with no identity yet: clients present no certificate.
    pub fn empty() -> Arc<Self> {
        Arc::new(CertSlot {
            current: RwLock::new(None),
        })
    }

    /// Install `identity`; new handshakes present it.
    pub fn set(&self, identity: &Identity) -> Result<(), PkiError> {
        let key = CertifiedKey::from_der(
            identity.cert_chain().to_vec(),
            PrivateKeyDer::Pkcs8(identity.private_key().clone_key()),
            &provider(),
        )?;
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        *current = Some((identity.clone(), Arc::new(key)));
        Ok(())
    }

    /// Remove the identity: clients present no certificate from now on.
    pub fn clear(&self) {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        *current = None;
    }

    /// The identity presented now, if any.
    pub fn identity(&self) -> Option<Identity> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(identity, _)| identity.clone())
    }

    fn certified_key(&self) -> Option<Arc<CertifiedKey>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(_, key)| key.clone())
    }
}

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.certified_key()
    }
}

impl ResolvesClientCert for CertSlot {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.certified_key()
    }

    fn has_certs(&self) -> bool {
        self.certified_key().is_some()
    }
}

/// What a server asks of clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// A client certificate of the cluster is required (peer servers).
    Required,
    /// A client certificate is asked for but may be absent (the runtime, where hosts bootstrap
    /// without one); one that is presented must be valid, or the handshake fails.
    Optional,
}

/// What a client accepts from a server it cannot verify yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unverified {
    /// Always verify against the trust bundle.
    Refuse,
    /// While the trust bundle is empty, accept any server certificate (still checking the
    /// handshake signature). Only for a worker that was explicitly told not to pin a CA: the
    /// runtime is then authenticated by the bootstrap itself (PSK proof), or not at all.
    AcceptWhileEmpty,
}

/// A TLS 1.3, ALPN `h3` server configuration presenting the identity in `cert` and checking
/// client certificates against `trust` (SPIFFE path starting with `expected_client_prefix`).
pub fn server_config(
    trust: &Trust,
    cert: Arc<CertSlot>,
    expected_client_prefix: &str,
    client_auth: ClientAuth,
) -> Result<rustls::ServerConfig, PkiError> {
    server_config_for(trust, cert, &[expected_client_prefix], client_auth)
}

/// [`server_config`] accepting clients whose SPIFFE path starts with any of
/// `expected_client_prefixes` (the server then tells them apart by their identity).
pub fn server_config_for(
    trust: &Trust,
    cert: Arc<CertSlot>,
    expected_client_prefixes: &[&str],
    client_auth: ClientAuth,
) -> Result<rustls::ServerConfig, PkiError> {
    let verifier = Arc::new(SpiffeVerifier::new(
        trust,
        expected_client_prefixes,
        client_auth == ClientAuth::Required,
        Unverified::Refuse,
    )?);
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![ALPN_H3.to_vec()];
    Ok(config)
}

/// A TLS 1.3, ALPN `h3` client configuration presenting the identity in `cert` (none while the
/// slot is empty) and accepting servers whose SPIFFE path starts with `expected_server_prefix`.
/// Server names are ignored: pin the exact peer with [`spiffe_id_of`] after the handshake.
pub fn client_config(
    trust: &Trust,
    cert: Arc<CertSlot>,
    expected_server_prefix: &str,
    unverified: Unverified,
) -> Result<rustls::ClientConfig, PkiError> {
    let verifier = Arc::new(SpiffeVerifier::new(
        trust,
        &[expected_server_prefix],
        true,
        unverified,
    )?);
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(cert);
    config.alpn_protocols = vec![ALPN_H3.to_vec()];
    Ok(config)
}

/// Verify a peer chain the way the TLS verifiers do, outside a handshake.
pub fn verify_chain(
    trust: &Trust,
    chain: &[CertificateDer<'_>],
    expected_prefix: &str,
    now: UnixTime,
) -> Result<SpiffeId, PkiError> {
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or_else(|| PkiError::InvalidCertificate("empty certificate chain".into()))?;
    SpiffeVerifier::new(trust, &[expected_prefix], true, Unverified::Refuse)?
        .verify(leaf, intermediates, now, webpki::KeyUsage::client_auth())
        .map_err(|e| PkiError::InvalidCertificate(e.to_string()))
}

/// Check that `signature` over `message` was made with the key of the certificate `leaf`
/// (an Ed25519 workload key).
pub fn verify_signature(
    leaf: &CertificateDer<'_>,
    message: &[u8],
    signature: &[u8],
) -> Result<(), PkiError> {
    webpki::EndEntityCert::try_from(leaf)
        .and_then(|cert| cert.verify_signature(webpki::ring::ED25519, message, signature))
        .map_err(|e| PkiError::InvalidCertificate(format!("signature check failed: {e}")))
}

/// The shared check behind both TLS verifiers.
#[derive(Debug)]
struct SpiffeVerifier {
    trust: Trust,
    algs: WebPkiSupportedAlgorithms,
    /// A peer's SPIFFE path must start with one of these.
    expected_prefixes: Vec<String>,
    mandatory: bool,
    unverified: Unverified,
    /// Root subjects offered to clients, taken when the configuration is built.
    subjects: Vec<rustls::DistinguishedName>,
}

/// Why a peer certificate was refused, carried inside a rustls error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct PeerCertRejected(String);

fn other(msg: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
        PeerCertRejected(msg),
    ))))
}

/// Maps a webpki error to the rustls error (and so the TLS alert) that describes it.
fn pki_error(error: webpki::Error) -> rustls::Error {
    use webpki::Error as E;
    let cert_error = match error {
        E::BadDer | E::BadDerTime | E::TrailingData(_) => CertificateError::BadEncoding,
        E::CertNotValidYet { time, not_before } => {
            CertificateError::NotValidYetContext { time, not_before }
        }
        E::CertExpired { time, not_after } => CertificateError::ExpiredContext { time, not_after },
        E::InvalidCertValidity => CertificateError::Expired,
        // Every Francis CA is named "CN=Francis CA", so a certificate from another cluster
        // finds a same-named anchor and fails its signature check: either way, it was not
        // issued by a CA we trust (and the peer gets an `unknown_ca` alert).
        E::UnknownIssuer | E::InvalidSignatureForPublicKey => CertificateError::UnknownIssuer,
        E::RequiredEkuNotFoundContext(_) => CertificateError::InvalidPurpose,
        other_error => CertificateError::Other(OtherError(Arc::new(other_error))),
    };
    rustls::Error::InvalidCertificate(cert_error)
}

impl SpiffeVerifier {
    fn new(
        trust: &Trust,
        expected_prefixes: &[&str],
        mandatory: bool,
        unverified: Unverified,
    ) -> Result<Self, PkiError> {
        for prefix in expected_prefixes {
            if !(prefix.starts_with('/') && prefix.ends_with('/')) || prefix.len() < 3 {
                return Err(PkiError::InvalidSpiffeId {
                    id: (*prefix).to_string(),
                    reason: "an expected peer prefix looks like \"/host/\"",
                });
            }
        }
        if expected_prefixes.is_empty() {
            return Err(PkiError::InvalidSpiffeId {
                id: String::new(),
                reason: "at least one expected peer prefix is needed",
            });
        }
        Ok(SpiffeVerifier {
            trust: trust.clone(),
            algs: provider().signature_verification_algorithms,
            expected_prefixes: expected_prefixes.iter().map(|p| (*p).to_string()).collect(),
            mandatory,
            unverified,
            subjects: trust.snapshot().subjects.clone(),
        })
    }

    fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        usage: webpki::KeyUsage,
    ) -> Result<SpiffeId, rustls::Error> {
        let roots = self.trust.snapshot();
        if roots.anchors.is_empty() && self.unverified == Unverified::AcceptWhileEmpty {
            return spiffe_id_of(end_entity).map_err(|e| other(e.to_string()));
        }
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(pki_error)?;
        cert.verify_for_usage(
            self.algs.all,
            &roots.anchors,
            intermediates,
            now,
            usage,
            None,
            None,
        )
        .map_err(pki_error)?;
        let id = spiffe_id_of(end_entity).map_err(|e| other(e.to_string()))?;
        if !self
            .expected_prefixes
            .iter()
            .any(|prefix| id.path().starts_with(prefix.as_str()))
        {
            return Err(other(
                PkiError::WrongRole {
                    id,
                    expected: self.expected_prefixes.join(" or "),
                }
                .to_string(),
            ));
        }
        Ok(id)
    }

    fn tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }
}

fn tls12_refused() -> rustls::Error {
    rustls::Error::General("TLS 1.2 is not supported by Francis".into())
}

impl ServerCertVerifier for SpiffeVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verify(
            end_entity,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

impl ClientCertVerifier for SpiffeVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &self.subjects
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.verify(
            end_entity,
            intermediates,
            now,
            webpki::KeyUsage::client_auth(),
        )?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::pki::{ClusterCa, HOST_PREFIX};
    use std::time::{Duration, SystemTime};

    const PSK_A: &str = "an example cluster key of 32+ bytes!";
    const PSK_B: &str = "a different cluster key, also 32+ bytes";

    fn now() -> UnixTime {
        UnixTime::since_unix_epoch(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default(),
        )
    }

    #[test]
    fn pem_round_trips_and_garbage_is_refused() {
        let ca = ClusterCa::from_psks(&[PSK_A, PSK_B]).unwrap();
        let trust = Trust::from_pem(&ca.bundle_pem()).unwrap();
        assert_eq!(trust.bundle_der(), ca.bundle_der().to_vec());
        assert!(Trust::from_pem("not a certificate").is_err());
        assert!(Trust::from_pem("").is_err());
    }

    #[test]
    fn replacing_the_bundle_changes_what_verifies() {
        let a = ClusterCa::from_psks(&[PSK_A]).unwrap();
        let b = ClusterCa::from_psks(&[PSK_B]).unwrap();
        let leaf_b = b
            .issue_host_identity("h1", Duration::from_secs(60))
            .unwrap();
        let trust = Trust::from_ders(a.bundle_der().to_vec()).unwrap();
        assert!(verify_chain(&trust, leaf_b.cert_chain(), HOST_PREFIX, now()).is_err());
        trust.replace(b.bundle_der().to_vec()).unwrap();
        let id = verify_chain(&trust, leaf_b.cert_chain(), HOST_PREFIX, now()).unwrap();
        assert_eq!(id.host_id(), Some("h1"));
        assert!(trust.replace(Vec::new()).is_err());
    }

    #[test]
    fn a_cert_slot_swaps_identities() {
        let ca = ClusterCa::from_psks(&[PSK_A]).unwrap();
        let slot = CertSlot::empty();
        assert!(!ResolvesClientCert::has_certs(&*slot));
        let first = ca
            .issue_host_identity("h1", Duration::from_secs(60))
            .unwrap();
        slot.set(&first).unwrap();
        assert!(ResolvesClientCert::has_certs(&*slot));
        let second = ca
            .issue_host_identity("h2", Duration::from_secs(60))
            .unwrap();
        slot.set(&second).unwrap();
        assert_eq!(slot.identity().unwrap().spiffe_id().host_id(), Some("h2"));
    }
}
