//! Cluster trust from pre-shared keys: a deterministic Ed25519 CA per runtime PSK, workload
//! certificates with SPIFFE identities, and rustls configurations that verify them.
//!
//! - [`ClusterCa::from_psks`] derives one CA per PSK. The seed is
//!   `HKDF-SHA256(ikm = psk, salt = "francis-ca-salt-v1", info = "francis-ca-v1", 32 bytes)`
//!   and every certificate field is a constant, so every host computes a bit-identical CA
//!   certificate from the same PSK and the CA key never has to be stored or shipped.
//! - The first PSK's CA is the *primary*: the only one that signs. All of them are trusted, so a
//!   PSK can be rotated by adding the new one as a secondary, then promoting it, then removing
//!   the old one.
//! - Workload certificates carry exactly one URI SAN, `spiffe://francis/host/<id>` or
//!   `spiffe://francis/runtime/<id>`, an empty subject, and EKU serverAuth + clientAuth.
//! - A remote host's key never leaves it: it sends the public half ([`WorkloadKey`]) and the
//!   runtime certifies it ([`ClusterCa::issue_host_cert_for_key`]).
//!
//! The TLS configurations and peer verification built on this live in [`super::tls`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hkdf::Hkdf;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, UnixTime};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::tls::{self, CertSlot, ClientAuth, Trust, Unverified};
use crate::cluster::Role;

/// The SPIFFE trust domain of every Francis cluster.
pub const TRUST_DOMAIN: &str = "francis";

/// Minimum runtime PSK length in bytes. The CA certificate is public, so a short PSK would be
/// an offline brute-force target.
pub const MIN_PSK_LEN: usize = 32;

/// A runtime PSK that is published, for development on one machine: the examples and templates
/// fall back to it when `FRANCIS_RUNTIME_PSK` is not set. Anyone can derive its CA, so a host
/// or runtime refuses it (as a runtime PSK or a host bootstrap PSK) unless every address it
/// listens on or is reached at is loopback.
pub const DEVELOPMENT_PSK: &str = "francis development key: published, for loopback only";

/// Longest accepted workload certificate TTL (365 days).
pub const MAX_LEAF_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// Clock-skew allowance added on both sides of a workload certificate's validity.
pub const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// The only ALPN protocol offered and accepted (HTTP/3, as WebTransport requires).
pub const ALPN_H3: &[u8] = b"h3";

/// SPIFFE path prefix of host identities.
pub const HOST_PREFIX: &str = "/host/";

/// SPIFFE path prefix of runtime identities.
pub const RUNTIME_PREFIX: &str = "/runtime/";

/// SPIFFE path prefix of operator identities (`/operator/<role>/<name>`): client certificates
/// for the operations HTTP server, issued by `francis ca issue-operator`.
pub const OPERATOR_PREFIX: &str = "/operator/";

const CA_HKDF_SALT: &[u8] = b"francis-ca-salt-v1";
const CA_HKDF_INFO: &[u8] = b"francis-ca-v1";
const CA_COMMON_NAME: &str = "Francis CA";
const MAX_ID_LEN: usize = 128;

/// Errors from deriving the CA, issuing certificates or building TLS configurations.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// No runtime PSK was given.
    #[error("no runtime PSK configured: at least one of {MIN_PSK_LEN}+ bytes is required")]
    NoPsk,
    /// A runtime PSK is shorter than [`MIN_PSK_LEN`].
    #[error(
        "runtime PSK #{index} (0-based, in configuration order) is {len} bytes; the minimum is \
         {min} bytes, because the derived CA certificate is public and a short PSK could be \
         brute-forced offline"
    )]
    PskTooShort {
        /// Position of the PSK in the list given.
        index: usize,
        /// Its length in bytes.
        len: usize,
        /// [`MIN_PSK_LEN`].
        min: usize,
    },
    /// A workload certificate TTL of zero or over [`MAX_LEAF_TTL`].
    #[error("invalid certificate TTL {0:?}: it must be more than zero and at most 365 days")]
    InvalidTtl(Duration),
    /// A host or runtime ID that cannot be a SPIFFE path segment.
    #[error("invalid identity ID {id:?}: {reason}")]
    InvalidId {
        /// The offending ID.
        id: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A string that is not a Francis SPIFFE ID.
    #[error("invalid SPIFFE ID {id:?}: {reason}")]
    InvalidSpiffeId {
        /// The offending ID.
        id: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A certificate that cannot be parsed or carries no usable identity.
    #[error("invalid certificate: {0}")]
    InvalidCertificate(String),
    /// A peer certificate with a valid identity of the wrong kind.
    #[error("peer identity {id} is not allowed here: expected a path starting with {expected:?}")]
    WrongRole {
        /// The peer's identity.
        id: SpiffeId,
        /// The required path prefix.
        expected: String,
    },
    /// Certificate generation failed.
    #[error("certificate generation failed: {0}")]
    CertGen(#[from] rcgen::Error),
    /// A rustls configuration could not be built.
    #[error("TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
}

/// A pre-shared key (a runtime PSK or a host bootstrap PSK), as the builders hold it: wiped from
/// memory when dropped, and never shown by `Debug` (which prints its length only).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Psk(Vec<u8>);

impl Psk {
    /// A copy of `key` (the caller's own copy is the caller's to wipe).
    pub fn new(key: impl AsRef<[u8]>) -> Self {
        Psk(key.as_ref().to_vec())
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl AsRef<[u8]> for Psk {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Psk(<{} bytes>)", self.0.len())
    }
}

/// A Francis SPIFFE ID: `spiffe://francis` followed by an optional path of non-empty segments
/// made of `[A-Za-z0-9._-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId(String);

impl SpiffeId {
    /// Parses and validates a SPIFFE ID of the `francis` trust domain.
    pub fn parse(id: &str) -> Result<Self, PkiError> {
        let bad = |reason| PkiError::InvalidSpiffeId {
            id: id.to_string(),
            reason,
        };
        let rest = id
            .strip_prefix("spiffe://")
            .ok_or_else(|| bad("scheme must be spiffe://"))?;
        let path = rest
            .strip_prefix(TRUST_DOMAIN)
            .ok_or_else(|| bad("trust domain must be \"francis\""))?;
        if id.len() > 2048 {
            return Err(bad("longer than 2048 bytes"));
        }
        if !path.is_empty() {
            let segments = path
                .strip_prefix('/')
                .ok_or_else(|| bad("trust domain must be \"francis\""))?;
            for segment in segments.split('/') {
                check_segment(segment).map_err(bad)?;
            }
        }
        Ok(SpiffeId(id.to_string()))
    }

    /// `spiffe://francis/host/<host_id>`.
    pub fn host(host_id: &str) -> Result<Self, PkiError> {
        check_id(host_id)?;
        Ok(SpiffeId(format!("spiffe://{TRUST_DOMAIN}/host/{host_id}")))
    }

    /// `spiffe://francis/runtime/<runtime_id>`.
    pub fn runtime(runtime_id: &str) -> Result<Self, PkiError> {
        check_id(runtime_id)?;
        Ok(SpiffeId(format!(
            "spiffe://{TRUST_DOMAIN}/runtime/{runtime_id}"
        )))
    }

    /// `spiffe://francis/operator/<role>/<name>`: a person or tool calling the operations
    /// HTTP server with a client certificate, with `role`.
    pub fn operator(role: Role, name: &str) -> Result<Self, PkiError> {
        check_id(name)?;
        Ok(SpiffeId(format!(
            "spiffe://{TRUST_DOMAIN}/operator/{role}/{name}"
        )))
    }

    /// The role and name, if this is an operator identity with a known role.
    pub fn operator_role_and_name(&self) -> Option<(Role, &str)> {
        let (role, name) = self.path().strip_prefix(OPERATOR_PREFIX)?.split_once('/')?;
        let role = role.parse().ok()?;
        single_segment(name).map(|name| (role, name))
    }

    /// The whole ID.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path after the trust domain (`/host/<id>`), empty for the trust domain itself.
    pub fn path(&self) -> &str {
        &self.0["spiffe://".len() + TRUST_DOMAIN.len()..]
    }

    /// The host ID, if this is a host identity.
    pub fn host_id(&self) -> Option<&str> {
        single_segment(self.path().strip_prefix(HOST_PREFIX)?)
    }

    /// The runtime ID, if this is a runtime identity.
    pub fn runtime_id(&self) -> Option<&str> {
        single_segment(self.path().strip_prefix(RUNTIME_PREFIX)?)
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn single_segment(s: &str) -> Option<&str> {
    (!s.is_empty() && !s.contains('/')).then_some(s)
}

fn check_segment(segment: &str) -> Result<(), &'static str> {
    if segment.is_empty() {
        return Err("empty path segment");
    }
    if segment == "." || segment == ".." {
        return Err("dot path segment");
    }
    if !segment
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("path characters must be [A-Za-z0-9._-]");
    }
    Ok(())
}

fn check_id(id: &str) -> Result<(), PkiError> {
    if id.len() > MAX_ID_LEN {
        return Err(PkiError::InvalidId {
            id: id.to_string(),
            reason: "longer than 128 bytes",
        });
    }
    check_segment(id).map_err(|reason| PkiError::InvalidId {
        id: id.to_string(),
        reason,
    })
}

/// Reads the SPIFFE ID from a certificate: it must carry exactly one `spiffe://` URI SAN, of
/// the `francis` trust domain. Use it to pin a peer after the handshake.
pub fn spiffe_id_of(cert_der: &[u8]) -> Result<SpiffeId, PkiError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| PkiError::InvalidCertificate(format!("cannot parse certificate: {e}")))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| PkiError::InvalidCertificate(format!("bad subjectAltName: {e}")))?
        .ok_or_else(|| PkiError::InvalidCertificate("no subjectAltName extension".into()))?;
    let mut uris = san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::URI(uri)
                if uri
                    .get(..9)
                    .is_some_and(|s| s.eq_ignore_ascii_case("spiffe://")) =>
            {
                Some(*uri)
            }
            _ => None,
        });
    let first = uris
        .next()
        .ok_or_else(|| PkiError::InvalidCertificate("no spiffe:// URI SAN".into()))?;
    if uris.next().is_some() {
        return Err(PkiError::InvalidCertificate(
            "more than one spiffe:// URI SAN; exactly one is required".into(),
        ));
    }
    SpiffeId::parse(first)
}

/// The end of a certificate's validity.
fn not_after_of(cert: &x509_parser::certificate::X509Certificate<'_>) -> SystemTime {
    u64::try_from(cert.validity().not_after.timestamp())
        .map(|secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// The end of the validity of a certificate (DER).
pub fn cert_not_after(cert_der: &[u8]) -> Result<SystemTime, PkiError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| PkiError::InvalidCertificate(format!("cannot parse certificate: {e}")))?;
    Ok(not_after_of(&cert))
}

/// When a workload certificate valid until `expires_ms` (Unix ms, without the clock-skew
/// allowance) should be renewed, seen at `now_ms`: at half its remaining life. Remote workers
/// (renewing with the runtime) and local hosts (re-issuing their own) both follow it.
pub(crate) fn renewal_due_ms(now_ms: i64, expires_ms: i64) -> i64 {
    now_ms.saturating_add(expires_ms.saturating_sub(now_ms).max(0) / 2)
}

/// SHA-256 of a certificate's DER, as upper-case hex pairs joined by colons (`AB:CD:…`, the
/// form `openssl x509 -fingerprint -sha256` prints).
pub fn fingerprint(cert_der: &[u8]) -> String {
    Sha256::digest(cert_der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A certificate as a PEM `CERTIFICATE` block.
pub fn pem_of(cert_der: &[u8]) -> String {
    pem_block("CERTIFICATE", cert_der)
}

/// `der` as a PEM block labelled `label`.
fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

/// A workload identity: certificate chain (leaf, then the primary CA) and private key. The
/// key's DER is wiped from memory when the identity is dropped.
pub struct Identity {
    spiffe_id: SpiffeId,
    cert_chain: Vec<CertificateDer<'static>>,
    private_key: PrivatePkcs8KeyDer<'static>,
    not_after: SystemTime,
}

impl Identity {
    /// The SPIFFE ID in the leaf certificate.
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.spiffe_id
    }

    /// The chain: leaf first, then the primary CA.
    pub fn cert_chain(&self) -> &[CertificateDer<'static>] {
        &self.cert_chain
    }

    /// The private key as a PEM `PRIVATE KEY` block (PKCS#8), to write to a key file: keep it
    /// secret.
    pub fn private_key_pem(&self) -> zeroize::Zeroizing<String> {
        // ring writes Ed25519 keys as PKCS#8 v2 (with the public key), which some OpenSSL
        // builds (curl's among them) cannot read; v1 (the seed alone) every tool reads.
        const V2_PREFIX: [u8; 16] = [
            0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        const V1_PREFIX: [u8; 16] = [
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        let der = self.private_key_der();
        match der
            .strip_prefix(&V2_PREFIX[..])
            .and_then(|rest| rest.get(..32))
        {
            Some(seed) => {
                let mut v1 = zeroize::Zeroizing::new(Vec::with_capacity(48));
                v1.extend_from_slice(&V1_PREFIX);
                v1.extend_from_slice(seed);
                zeroize::Zeroizing::new(pem_block("PRIVATE KEY", &v1))
            }
            None => zeroize::Zeroizing::new(pem_block("PRIVATE KEY", der)),
        }
    }

    /// The leaf certificate (DER).
    pub fn leaf_der(&self) -> &[u8] {
        self.cert_chain.first().map_or(&[], |c| c.as_ref())
    }

    /// The private key, PKCS#8 DER. Secret.
    pub fn private_key_der(&self) -> &[u8] {
        self.private_key.secret_pkcs8_der()
    }

    /// The end of the leaf's validity, including the clock-skew allowance.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    pub(crate) fn private_key(&self) -> &PrivatePkcs8KeyDer<'static> {
        &self.private_key
    }

    /// Sign `message` with the private key (Ed25519), to prove this identity is held.
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        let key = Zeroizing::new(KeyPair::try_from(&self.private_key)?);
        Ok(rcgen::SigningKey::sign(&*key, message)?)
    }
}

impl Drop for Identity {
    fn drop(&mut self) {
        self.private_key.zeroize();
    }
}

/// A fresh Ed25519 key waiting for its certificate: a remote host generates one, sends the
/// public half to the runtime, and turns the certificate it gets back into an [`Identity`].
/// The private key never leaves the host.
pub struct WorkloadKey {
    key: KeyPair,
}

impl Drop for WorkloadKey {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl fmt::Debug for WorkloadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WorkloadKey(<redacted>)")
    }
}

impl WorkloadKey {
    /// Generate a new key.
    pub fn generate() -> Result<Self, PkiError> {
        Ok(WorkloadKey {
            key: KeyPair::generate_for(&rcgen::PKCS_ED25519)?,
        })
    }

    /// The raw 32-byte Ed25519 public key.
    pub fn public_key_raw(&self) -> Vec<u8> {
        self.key.public_key_raw().to_vec()
    }

    /// Combine the key with the certificate issued for it (DER) and the CA chain to present
    /// after it. The certificate must carry this key and a Francis SPIFFE ID.
    pub fn into_identity(
        self,
        leaf: CertificateDer<'static>,
        chain: &[CertificateDer<'static>],
    ) -> Result<Identity, PkiError> {
        let spiffe_id = spiffe_id_of(&leaf)?;
        let (_, cert) = x509_parser::parse_x509_certificate(&leaf)
            .map_err(|e| PkiError::InvalidCertificate(format!("cannot parse certificate: {e}")))?;
        if cert.public_key().subject_public_key.data.as_ref() != self.key.public_key_raw() {
            return Err(PkiError::InvalidCertificate(
                "the issued certificate does not carry this host's public key".into(),
            ));
        }
        let not_after = not_after_of(&cert);
        let mut cert_chain = vec![leaf];
        cert_chain.extend(chain.iter().cloned());
        Ok(Identity {
            spiffe_id,
            cert_chain,
            private_key: PrivatePkcs8KeyDer::from(self.key.serialize_der()),
            not_after,
        })
    }
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            spiffe_id: self.spiffe_id.clone(),
            cert_chain: self.cert_chain.clone(),
            private_key: self.private_key.clone_key(),
            not_after: self.not_after,
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("spiffe_id", &self.spiffe_id)
            .field("not_after", &self.not_after)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

/// The cluster's trust: one deterministic CA per runtime PSK; the first one signs.
///
/// Cheap to clone (shared inside).
#[derive(Clone)]
pub struct ClusterCa {
    inner: Arc<CaInner>,
}

struct CaInner {
    /// The primary CA's signing key and subject.
    issuer: rcgen::Issuer<'static, KeyPair>,
    /// Every CA certificate in PSK order; `[0]` is the primary.
    bundle: Vec<CertificateDer<'static>>,
    bundle_pem: Vec<String>,
    /// The bundle as trust anchors.
    trust: Trust,
}

impl fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCa")
            .field("primary_fingerprint", &self.fingerprint())
            .field("cas", &self.inner.bundle.len())
            .finish()
    }
}

/// The PKCS#8 v1 DER (RFC 8410) of an Ed25519 private key with this 32-byte seed (wiped when
/// dropped, like the seed).
fn ed25519_pkcs8_v1(seed: &[u8; 32]) -> Zeroizing<Vec<u8>> {
    // SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING seed } }
    const PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    // Sized up front, so the seed is never left behind in a reallocated buffer.
    let mut der = Zeroizing::new(Vec::with_capacity(PREFIX.len() + seed.len()));
    der.extend_from_slice(&PREFIX);
    der.extend_from_slice(seed);
    der
}

/// Derives the CA key and self-signed certificate for one PSK.
fn derive_ca(psk: &[u8]) -> Result<(CertificateParams, KeyPair, rcgen::Certificate), PkiError> {
    let hkdf = Hkdf::<Sha256>::new(Some(CA_HKDF_SALT), psk);
    let mut seed = Zeroizing::new([0u8; 32]);
    hkdf.expand(CA_HKDF_INFO, seed.as_mut_slice())
        .map_err(|_| PkiError::InvalidCertificate("HKDF output length refused".into()))?;
    let pkcs8 = ed25519_pkcs8_v1(&seed);
    let key = KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(pkcs8.as_slice()),
        &rcgen::PKCS_ED25519,
    )?;

    let digest = Sha256::digest(key.public_key_raw());
    let mut serial = digest[..16].to_vec();
    serial[0] &= 0x7f;

    let mut params = CertificateParams::default();
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    params.distinguished_name = dn;
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2100, 1, 1);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.subject_alt_names = vec![SanType::URI(
        format!("spiffe://{TRUST_DOMAIN}").as_str().try_into()?,
    )];
    let cert = params.self_signed(&key)?;
    Ok((params, key, cert))
}

fn to_unix_time(t: SystemTime) -> UnixTime {
    UnixTime::since_unix_epoch(t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default())
}

/// The fields of every workload certificate.
fn leaf_params(
    spiffe_id: &SpiffeId,
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![SanType::URI(spiffe_id.as_str().try_into()?)];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.is_ca = IsCa::ExplicitNoCa;
    params.serial_number = Some(SerialNumber::from_slice(&rand::random::<[u8; 16]>()));
    params.not_before = not_before.into();
    params.not_after = not_after.into();
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// Whether `name` is a DNS name: dot-separated labels of letters, digits and inner hyphens.
fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// A raw Ed25519 public key, as hosts send it to be certified.
struct RawEd25519<'a>(&'a [u8]);

impl rcgen::PublicKeyData for RawEd25519<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ED25519
    }
}

impl ClusterCa {
    /// Derives the cluster CAs from the runtime PSKs (raw bytes, each at least
    /// [`MIN_PSK_LEN`]). The first PSK's CA is the primary, the only one that signs; all are
    /// trusted.
    pub fn from_psks<P: AsRef<[u8]>>(psks: &[P]) -> Result<Self, PkiError> {
        if psks.is_empty() {
            return Err(PkiError::NoPsk);
        }
        for (index, psk) in psks.iter().enumerate() {
            let len = psk.as_ref().len();
            if len < MIN_PSK_LEN {
                return Err(PkiError::PskTooShort {
                    index,
                    len,
                    min: MIN_PSK_LEN,
                });
            }
        }

        let mut primary = None;
        let mut bundle = Vec::with_capacity(psks.len());
        let mut bundle_pem = Vec::with_capacity(psks.len());
        for psk in psks {
            let (params, key, cert) = derive_ca(psk.as_ref())?;
            bundle.push(cert.der().clone());
            bundle_pem.push(cert.pem());
            if primary.is_none() {
                primary = Some(rcgen::Issuer::new(params, key));
            }
        }
        let issuer = primary.ok_or(PkiError::NoPsk)?;

        let trust = Trust::from_ders(bundle.clone())?;
        Ok(ClusterCa {
            inner: Arc::new(CaInner {
                issuer,
                bundle,
                bundle_pem,
                trust,
            }),
        })
    }

    /// The primary CA certificate (DER).
    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.inner.bundle[0]
    }

    /// Every trusted CA certificate (DER), primary first, in PSK order.
    pub fn bundle_der(&self) -> &[CertificateDer<'static>] {
        &self.inner.bundle
    }

    /// The primary CA certificate as PEM.
    pub fn ca_pem(&self) -> String {
        self.inner.bundle_pem[0].clone()
    }

    /// Every trusted CA certificate as concatenated PEM blocks, primary first.
    pub fn bundle_pem(&self) -> String {
        self.inner.bundle_pem.concat()
    }

    /// SHA-256 of the primary CA certificate's DER, as upper-case hex pairs joined by colons
    /// (`AB:CD:…`, the form `openssl x509 -fingerprint -sha256` prints).
    pub fn fingerprint(&self) -> String {
        fingerprint(self.ca_der())
    }

    /// The fingerprints of every trusted CA certificate, primary first: the cluster identity
    /// a store records.
    pub fn fingerprints(&self) -> Vec<String> {
        self.inner
            .bundle
            .iter()
            .map(|der| fingerprint(der))
            .collect()
    }

    /// Issues a host workload identity, `spiffe://francis/host/<host_id>`, valid for `ttl`
    /// (plus 5 minutes of clock skew on both sides), signed by the primary CA.
    pub fn issue_host_identity(&self, host_id: &str, ttl: Duration) -> Result<Identity, PkiError> {
        self.issue_for_ttl(SpiffeId::host(host_id)?, ttl)
    }

    /// Issues an operator identity, `spiffe://francis/operator/<role>/<name>`, valid for
    /// `ttl`: a client certificate for the operations HTTP server of a runtime serving TLS
    /// (`http.tls`), which gives its holder `role`.
    pub fn issue_operator_identity(
        &self,
        role: Role,
        name: &str,
        ttl: Duration,
    ) -> Result<Identity, PkiError> {
        self.issue_for_ttl(SpiffeId::operator(role, name)?, ttl)
    }

    /// Issues a runtime identity, `spiffe://francis/runtime/<runtime_id>`, like
    /// [`issue_host_identity`](Self::issue_host_identity).
    pub fn issue_runtime_identity(
        &self,
        runtime_id: &str,
        ttl: Duration,
    ) -> Result<Identity, PkiError> {
        self.issue_for_ttl(SpiffeId::runtime(runtime_id)?, ttl)
    }

    /// [`issue_runtime_identity`](Self::issue_runtime_identity), the certificate also naming
    /// the runtime's `addresses` (host names or IP addresses, without ports) as DNS or IP
    /// subject alternative names, for clients that check a server's name (an HTTPS client of
    /// the runtime). Francis's own clients check the SPIFFE ID only.
    pub fn issue_runtime_identity_naming(
        &self,
        runtime_id: &str,
        ttl: Duration,
        addresses: &[&str],
    ) -> Result<Identity, PkiError> {
        let spiffe_id = SpiffeId::runtime(runtime_id)?;
        self.issue_for_ttl_naming(spiffe_id, ttl, addresses)
    }

    fn issue_for_ttl(&self, spiffe_id: SpiffeId, ttl: Duration) -> Result<Identity, PkiError> {
        self.issue_for_ttl_naming(spiffe_id, ttl, &[])
    }

    fn issue_for_ttl_naming(
        &self,
        spiffe_id: SpiffeId,
        ttl: Duration,
        addresses: &[&str],
    ) -> Result<Identity, PkiError> {
        if ttl.is_zero() || ttl > MAX_LEAF_TTL {
            return Err(PkiError::InvalidTtl(ttl));
        }
        let now = SystemTime::now();
        let not_before = now
            .checked_sub(CLOCK_SKEW)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let not_after = now + ttl + CLOCK_SKEW;
        self.issue_naming(spiffe_id, not_before, not_after, addresses)
    }

    /// Issues a leaf with an explicit validity window (tests use it for expired certificates).
    pub(crate) fn issue_with_validity(
        &self,
        spiffe_id: SpiffeId,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<Identity, PkiError> {
        self.issue_naming(spiffe_id, not_before, not_after, &[])
    }

    /// Issues a leaf that also names `addresses` (DNS names or IP addresses).
    fn issue_naming(
        &self,
        spiffe_id: SpiffeId,
        not_before: SystemTime,
        not_after: SystemTime,
        addresses: &[&str],
    ) -> Result<Identity, PkiError> {
        let key = Zeroizing::new(KeyPair::generate_for(&rcgen::PKCS_ED25519)?);
        let mut params = leaf_params(&spiffe_id, not_before, not_after)?;
        for address in addresses {
            let not_a_name = || {
                PkiError::InvalidCertificate(format!(
                    "{address:?} is neither an IP address nor a DNS name"
                ))
            };
            let name = match address.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) if is_dns_name(address) => {
                    SanType::DnsName((*address).try_into().map_err(|_| not_a_name())?)
                }
                Err(_) => return Err(not_a_name()),
            };
            params.subject_alt_names.push(name);
        }
        let cert = params.signed_by(&*key, &self.inner.issuer)?;
        Ok(Identity {
            spiffe_id,
            cert_chain: vec![cert.der().clone(), self.ca_der().clone()],
            private_key: PrivatePkcs8KeyDer::from(key.serialize_der()),
            not_after,
        })
    }

    /// The cluster's CA certificates as a (fixed) trust bundle.
    pub fn trust(&self) -> Trust {
        self.inner.trust.clone()
    }

    /// A TLS 1.3, ALPN `h3` server configuration presenting `identity` and *requiring* a
    /// client certificate from this cluster whose SPIFFE path starts with
    /// `expected_client_prefix` (e.g. [`HOST_PREFIX`]).
    pub fn server_config(
        &self,
        identity: &Identity,
        expected_client_prefix: &str,
    ) -> Result<rustls::ServerConfig, PkiError> {
        tls::server_config(
            &self.inner.trust,
            CertSlot::new(identity)?,
            expected_client_prefix,
            ClientAuth::Required,
        )
    }

    /// A TLS 1.3, ALPN `h3` client configuration presenting `identity` as its client
    /// certificate and accepting only servers of this cluster whose SPIFFE path starts with
    /// `expected_server_prefix`. Server names are ignored: identities are SPIFFE IDs; pin
    /// the exact peer with [`spiffe_id_of`] after the handshake.
    pub fn client_config(
        &self,
        identity: &Identity,
        expected_server_prefix: &str,
    ) -> Result<rustls::ClientConfig, PkiError> {
        tls::client_config(
            &self.inner.trust,
            CertSlot::new(identity)?,
            expected_server_prefix,
            Unverified::Refuse,
        )
    }

    /// Verifies a peer chain the way the TLS verifiers do, outside a handshake.
    pub fn verify_peer_chain(
        &self,
        chain: &[CertificateDer<'_>],
        expected_prefix: &str,
        now: SystemTime,
    ) -> Result<SpiffeId, PkiError> {
        tls::verify_chain(&self.inner.trust, chain, expected_prefix, to_unix_time(now))
    }

    /// Issues a host certificate for a public key the host generated (a raw 32-byte Ed25519
    /// key): what the runtime does at bootstrap and renewal, so a host's private key never
    /// leaves it. Returns the leaf (DER) and the end of its validity (without the skew
    /// allowance).
    pub fn issue_host_cert_for_key(
        &self,
        host_id: &str,
        ed25519_public_key: &[u8],
        ttl: Duration,
    ) -> Result<(CertificateDer<'static>, SystemTime), PkiError> {
        if ed25519_public_key.len() != 32 {
            return Err(PkiError::InvalidCertificate(format!(
                "a workload public key is a raw 32-byte Ed25519 key, not {} bytes",
                ed25519_public_key.len()
            )));
        }
        if ttl.is_zero() || ttl > MAX_LEAF_TTL {
            return Err(PkiError::InvalidTtl(ttl));
        }
        let now = SystemTime::now();
        let not_before = now
            .checked_sub(CLOCK_SKEW)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let params = leaf_params(
            &SpiffeId::host(host_id)?,
            not_before,
            now + ttl + CLOCK_SKEW,
        )?;
        let cert = params.signed_by(&RawEd25519(ed25519_public_key), &self.inner.issuer)?;
        Ok((cert.der().clone(), now + ttl))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::extensions::{GeneralName, ParsedExtension};

    const PSK_A: &str = "an example cluster key of 32+ bytes!";
    const PSK_B: &str = "a different cluster key, also 32+ bytes";

    #[test]
    fn a_runtime_certificate_names_its_advertised_host_besides_its_spiffe_id() {
        let ca = ClusterCa::from_psks(&["a-runtime-psk-of-at-least-32-bytes!!"]).unwrap();
        let identity = ca
            .issue_runtime_identity_naming(
                "runtime-0",
                Duration::from_secs(3600),
                &["runtime.example.com", "10.1.2.3", "fd00::1"],
            )
            .unwrap();
        let leaf = &identity.cert_chain[0];
        assert_eq!(
            spiffe_id_of(leaf).unwrap().as_str(),
            "spiffe://francis/runtime/runtime-0"
        );
        let (_, cert) = x509_parser::parse_x509_certificate(leaf).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        let names: Vec<String> = san
            .value
            .general_names
            .iter()
            .map(|name| match name {
                x509_parser::extensions::GeneralName::DNSName(d) => format!("dns:{d}"),
                x509_parser::extensions::GeneralName::IPAddress(ip) => format!("ip:{ip:?}"),
                x509_parser::extensions::GeneralName::URI(u) => format!("uri:{u}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            names,
            [
                "uri:spiffe://francis/runtime/runtime-0".to_owned(),
                "dns:runtime.example.com".to_owned(),
                format!("ip:{:?}", [10u8, 1, 2, 3].as_slice()),
                format!(
                    "ip:{:?}",
                    "fd00::1"
                        .parse::<std::net::Ipv6Addr>()
                        .unwrap()
                        .octets()
                        .as_slice()
                ),
            ]
        );
        // The chain still verifies as a runtime of this cluster.
        ca.verify_peer_chain(&identity.cert_chain, RUNTIME_PREFIX, SystemTime::now())
            .unwrap();
        // A name that is neither is refused.
        assert!(
            ca.issue_runtime_identity_naming("r", Duration::from_secs(60), &["bad name"])
                .is_err()
        );
    }

    #[test]
    fn a_psk_is_not_printed_in_debug_output() {
        let psk = Psk::new(PSK_A);
        let shown = format!("{psk:?}");
        assert_eq!(shown, format!("Psk(<{} bytes>)", PSK_A.len()));
        assert_eq!(psk.as_bytes(), PSK_A.as_bytes());
        // Nor where the builders and configurations keep them.
        #[cfg(feature = "runtime")]
        {
            let bootstrap = crate::runtime::Bootstrap::Psk(psk.clone());
            let shown = format!("{bootstrap:?}");
            assert!(!shown.contains(PSK_A), "{shown}");
            let secret = crate::runtime::config::Secret::new(PSK_A);
            let shown = format!("{secret:?}");
            assert!(!shown.contains(PSK_A), "{shown}");
        }
        // A workload identity does not print its private key.
        let ca = ClusterCa::from_psks(&[psk]).unwrap();
        let identity = ca
            .issue_host_identity("h", Duration::from_secs(60))
            .unwrap();
        let shown = format!("{identity:?}");
        assert!(shown.contains("<redacted>"), "{shown}");
        let key_hex: String = identity
            .private_key_der()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(
            !shown
                .to_lowercase()
                .contains(&key_hex[key_hex.len() - 16..])
        );
    }

    #[test]
    fn pem_of_matches_the_derived_pem() {
        let ca = ClusterCa::from_psks(&[PSK_A]).unwrap();
        assert_eq!(
            pem_of(ca.ca_der()).replace("\r", ""),
            ca.ca_pem().replace("\r", "")
        );
        assert_eq!(fingerprint(ca.ca_der()), ca.fingerprint());
    }

    #[test]
    fn ca_is_bit_identical_for_the_same_psk() {
        let a1 = ClusterCa::from_psks(&[PSK_A]).unwrap();
        let a2 = ClusterCa::from_psks(&[PSK_A.as_bytes().to_vec()]).unwrap();
        assert_eq!(a1.ca_der().as_ref(), a2.ca_der().as_ref());
        assert_eq!(a1.ca_pem(), a2.ca_pem());
        assert_eq!(a1.fingerprint(), a2.fingerprint());

        let b = ClusterCa::from_psks(&[PSK_B]).unwrap();
        assert_ne!(a1.ca_der().as_ref(), b.ca_der().as_ref());
        assert_ne!(a1.fingerprint(), b.fingerprint());
        assert_eq!(a1.fingerprint().len(), 32 * 3 - 1);
    }

    #[test]
    fn ca_fields_are_the_documented_constants() {
        let ca = ClusterCa::from_psks(&[PSK_A]).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(ca.ca_der()).unwrap();
        assert_eq!(cert.subject().to_string(), "CN=Francis CA");
        assert_eq!(cert.issuer().to_string(), "CN=Francis CA");
        assert_eq!(cert.validity().not_before.timestamp(), 1_577_836_800);
        assert_eq!(cert.validity().not_after.timestamp(), 4_102_444_800);
        assert!(cert.is_ca());
        let bc = cert.basic_constraints().unwrap().unwrap();
        assert_eq!(bc.value.path_len_constraint, Some(0));
        let ku = cert.key_usage().unwrap().unwrap();
        assert!(ku.value.key_cert_sign() && ku.value.crl_sign());
        assert!(!ku.value.digital_signature());
        assert_eq!(
            spiffe_id_of(ca.ca_der()).unwrap().as_str(),
            "spiffe://francis"
        );
        // Serial = first 16 bytes of SHA-256(public key), top bit cleared.
        let pubkey = cert.public_key().subject_public_key.data.as_ref();
        let mut expected = Sha256::digest(pubkey)[..16].to_vec();
        expected[0] &= 0x7f;
        let raw = cert.raw_serial();
        let trimmed: Vec<u8> = raw.iter().copied().skip_while(|b| *b == 0).collect();
        let expected_trimmed: Vec<u8> = expected.iter().copied().skip_while(|b| *b == 0).collect();
        assert_eq!(trimmed, expected_trimmed);
    }

    #[test]
    fn short_psk_is_refused_with_its_index() {
        let err = ClusterCa::from_psks(&[PSK_A, "short"]).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(
                err,
                PkiError::PskTooShort {
                    index: 1,
                    len: 5,
                    min: 32
                }
            ),
            "{msg}"
        );
        assert!(msg.contains("#1") && msg.contains("32 bytes"), "{msg}");
        assert!(matches!(
            ClusterCa::from_psks::<&str>(&[]),
            Err(PkiError::NoPsk)
        ));
    }

    #[test]
    fn rotation_bundle_holds_every_ca_and_the_first_signs() {
        let rotated = ClusterCa::from_psks(&[PSK_B, PSK_A]).unwrap();
        let a = ClusterCa::from_psks(&[PSK_A]).unwrap();
        let b = ClusterCa::from_psks(&[PSK_B]).unwrap();
        assert_eq!(rotated.bundle_der().len(), 2);
        assert_eq!(rotated.ca_der(), b.ca_der());
        assert_eq!(&rotated.bundle_der()[1], a.ca_der());
        assert_eq!(rotated.bundle_pem().matches("BEGIN CERTIFICATE").count(), 2);

        // A leaf signed by the old primary (A) is still trusted by the rotated bundle.
        let old_leaf = a
            .issue_host_identity("h-old", Duration::from_secs(3600))
            .unwrap();
        let id = rotated
            .verify_peer_chain(old_leaf.cert_chain(), HOST_PREFIX, SystemTime::now())
            .unwrap();
        assert_eq!(id.host_id(), Some("h-old"));
        // But not by a cluster that only knows B.
        assert!(
            b.verify_peer_chain(old_leaf.cert_chain(), HOST_PREFIX, SystemTime::now())
                .is_err()
        );
        // New leaves are signed by B.
        let new_leaf = rotated
            .issue_host_identity("h-new", Duration::from_secs(3600))
            .unwrap();
        assert!(
            b.verify_peer_chain(new_leaf.cert_chain(), HOST_PREFIX, SystemTime::now())
                .is_ok()
        );
    }

    #[test]
    fn host_leaf_has_the_documented_shape() {
        let ca = ClusterCa::from_psks(&[PSK_A]).unwrap();
        let ttl = Duration::from_secs(3600);
        let before = SystemTime::now();
        let id = ca.issue_host_identity("0190c4f2-host", ttl).unwrap();
        assert_eq!(
            id.spiffe_id().as_str(),
            "spiffe://francis/host/0190c4f2-host"
        );
        assert_eq!(id.cert_chain().len(), 2);
        assert_eq!(&id.cert_chain()[1], ca.ca_der());

        let (_, cert) = x509_parser::parse_x509_certificate(id.leaf_der()).unwrap();
        assert!(cert.subject().iter().next().is_none(), "empty subject");
        assert!(!cert.is_ca());
        let san = cert.subject_alternative_name().unwrap().unwrap();
        assert!(san.critical, "SAN is critical when the subject is empty");
        assert_eq!(
            san.value.general_names,
            vec![GeneralName::URI("spiffe://francis/host/0190c4f2-host")]
        );
        let eku = cert.extended_key_usage().unwrap().unwrap();
        assert!(eku.value.server_auth && eku.value.client_auth);
        let ku = cert.key_usage().unwrap().unwrap();
        assert!(ku.value.digital_signature() && !ku.value.key_cert_sign());
        let nb = cert.validity().not_before.timestamp();
        let na = cert.validity().not_after.timestamp();
        let b = before
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!((nb - (b - 300)).abs() <= 2, "not_before {nb} vs {b}");
        assert!((na - (b + 3600 + 300)).abs() <= 2, "not_after {na} vs {b}");
        assert!(cert.extensions().iter().any(|e| matches!(
            e.parsed_extension(),
            ParsedExtension::AuthorityKeyIdentifier(_)
        )));

        // Serials are random.
        let other = ca.issue_host_identity("0190c4f2-host", ttl).unwrap();
        let (_, other_cert) = x509_parser::parse_x509_certificate(other.leaf_der()).unwrap();
        assert_ne!(cert.raw_serial(), other_cert.raw_serial());

        let rt = ca.issue_runtime_identity("rt-1", ttl).unwrap();
        assert_eq!(rt.spiffe_id().runtime_id(), Some("rt-1"));
        assert_eq!(rt.spiffe_id().host_id(), None);
        // Role prefixes are enforced.
        let err = ca
            .verify_peer_chain(rt.cert_chain(), HOST_PREFIX, SystemTime::now())
            .unwrap_err();
        assert!(err.to_string().contains("/host/"), "{err}");
    }

    #[test]
    fn ttl_and_ids_are_validated() {
        let ca = ClusterCa::from_psks(&[PSK_A]).unwrap();
        assert!(matches!(
            ca.issue_host_identity("h", Duration::ZERO),
            Err(PkiError::InvalidTtl(_))
        ));
        assert!(matches!(
            ca.issue_host_identity("h", MAX_LEAF_TTL + Duration::from_secs(1)),
            Err(PkiError::InvalidTtl(_))
        ));
        for bad in ["", "a/b", "..", "white space", "ünï"] {
            assert!(
                matches!(
                    ca.issue_host_identity(bad, Duration::from_secs(60)),
                    Err(PkiError::InvalidId { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn spiffe_ids_parse_strictly() {
        let id = SpiffeId::parse("spiffe://francis/host/abc").unwrap();
        assert_eq!(id.path(), "/host/abc");
        assert_eq!(id.host_id(), Some("abc"));
        assert_eq!(SpiffeId::parse("spiffe://francis").unwrap().path(), "");
        for bad in [
            "https://francis/host/a",
            "spiffe://other/host/a",
            "spiffe://francisx/host/a",
            "spiffe://francis/host//a",
            "spiffe://francis/host/a?x=1",
            "spiffe://francis/",
        ] {
            assert!(SpiffeId::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            SpiffeId::parse("spiffe://francis/host/a/b")
                .unwrap()
                .host_id(),
            None
        );
    }

    #[test]
    fn operator_ids_carry_a_known_role_and_one_name() {
        let id = SpiffeId::operator(Role::Operator, "alice").unwrap();
        assert_eq!(id.as_str(), "spiffe://francis/operator/operator/alice");
        assert_eq!(id.operator_role_and_name(), Some((Role::Operator, "alice")));
        for bad in [
            "spiffe://francis/operator/root/alice",
            "spiffe://francis/operator/Admin/alice",
            "spiffe://francis/operator/admin/a/b",
            "spiffe://francis/operator/admin",
            "spiffe://francis/host/admin",
        ] {
            let id = SpiffeId::parse(bad).unwrap();
            assert_eq!(id.operator_role_and_name(), None, "{bad}");
        }
    }

    #[test]
    fn expired_and_not_yet_valid_leaves_are_refused() {
        let ca = ClusterCa::from_psks(&[PSK_A]).unwrap();
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        let expired = ca
            .issue_with_validity(SpiffeId::host("h").unwrap(), now - 2 * hour, now - hour)
            .unwrap();
        let err = ca
            .verify_peer_chain(expired.cert_chain(), HOST_PREFIX, now)
            .unwrap_err();
        assert!(err.to_string().to_lowercase().contains("expired"), "{err}");
        let future = ca
            .issue_with_validity(SpiffeId::host("h").unwrap(), now + hour, now + 2 * hour)
            .unwrap();
        assert!(
            ca.verify_peer_chain(future.cert_chain(), HOST_PREFIX, now)
                .is_err()
        );
    }

    #[test]
    fn tls_configs_are_tls13_h3_only() {
        let ca = ClusterCa::from_psks(&[PSK_A]).unwrap();
        let id = ca
            .issue_host_identity("h", Duration::from_secs(60))
            .unwrap();
        let server = ca.server_config(&id, HOST_PREFIX).unwrap();
        assert_eq!(server.alpn_protocols, vec![b"h3".to_vec()]);
        let client = ca.client_config(&id, HOST_PREFIX).unwrap();
        assert_eq!(client.alpn_protocols, vec![b"h3".to_vec()]);
        assert!(ca.client_config(&id, "host").is_err());
    }
}
