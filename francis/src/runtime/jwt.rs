//! JWT host bootstrap: checks the token a joining host presents against the issuer's JWKS.
//!
//! With `bootstrap.method: jwt`, a host proves it may join the cluster by sending a JWT (for
//! example a Kubernetes projected service-account token) in its registration request. The
//! runtime builds one [`JwtValidator`] from the [`JwtConfig`] and calls
//! [`JwtValidator::validate`] for each such request. The runtime sends the client only a
//! generic "JWT authentication failed"; the [`JwtError`] it logs says exactly what was wrong.
//!
//! # Rules
//!
//! - **Algorithms**: RS256/384/512, PS256/384/512, ES256/384 and EdDSA (Ed25519). `alg: none`
//!   and the HMAC algorithms (HS256/384/512) are refused explicitly: an unsigned token proves
//!   nothing, and a shared-secret algorithm verified against a public JWKS would let anyone
//!   who can read the JWKS forge tokens. A token whose header lists `crit` extensions is
//!   refused, since none are understood.
//! - **Key choice**: the header's `kid` selects the JWK. A token without `kid` is accepted
//!   only when the JWKS holds exactly one usable key. A JWK's `alg`, when present, must equal
//!   the token's. Keys marked `use: enc`, symmetric (`oct`) keys, RSA keys under 2048 bits and
//!   unsupported curves are ignored.
//! - **Claims**: `iss` must equal the configured issuer exactly; `aud` (a string or an array)
//!   must contain the configured audience; `exp` and `nbf` are checked with a leeway of
//!   [`LEEWAY`] (60 s).
//!
//! # Where this is stricter than the Go implementation
//!
//! Upstream checked `exp` only when present, capped the lifetime only for tokens that had both
//! `jti` and `exp`, and tracked `jti`s in the database only while the host that used them
//! existed. Here:
//!
//! - `exp` is **required**: a token without one would be valid forever.
//! - A token whose `exp` is more than [`MAX_TOKEN_LIFETIME`] (1 h) plus the leeway in the
//!   future is refused, with or without `jti`: bootstrap tokens must be short-lived.
//! - A token with a `jti` is **single-use until its `exp`**: each validator remembers the
//!   `jti`s it accepted, in memory, until the token expires (plus the leeway), and refuses a
//!   second use. The set is per validator, hence per runtime replica: replicas do not share it,
//!   and it does not survive a restart. Within the 1 h cap that bounds a replay to one use per
//!   replica (and per restart).
//! - A token without `jti` is accepted (Kubernetes projected tokens have none) and logged at
//!   debug level; its short lifetime is then the only bound on replay.
//!
//! # JWKS
//!
//! A static JWKS ([`JwksSource::Static`]) is parsed when the validator is built; bad JSON or a
//! set with no usable key is an error then. A JWKS URL ([`JwksSource::Url`]) is fetched with a
//! timeout of [`JWKS_FETCH_TIMEOUT`], cached, and fetched again when the cached copy is older
//! than [`JWKS_REFRESH_INTERVAL`] (1 h). A token whose `kid` is not in the cache triggers a
//! refetch at most once per [`JWKS_UNKNOWN_KID_REFRESH_INTERVAL`] (5 min), which picks up key
//! rotation. A failed fetch is not fatal: the last good keys stay in use, and while there are
//! none, validation fails with [`JwtError::JwksUnavailable`] (retrying the fetch at most every
//! [`JWKS_RETRY_INTERVAL`]) until a fetch succeeds. Plain `http://` URLs are accepted only for
//! loopback hosts; anything else must use `https://`, verified against the system's root
//! certificates (`SSL_CERT_FILE` is honoured for private CAs).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::crypto::CryptoProvider;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde_json::Value;

/// The accepted signature algorithms, by their JOSE names.
pub const ALLOWED_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// Clock-skew allowance applied to `exp`, `nbf` and the lifetime cap.
pub const LEEWAY: Duration = Duration::from_secs(60);

/// Longest accepted remaining lifetime of a token (`exp - now`), on top of [`LEEWAY`].
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// Age after which a cached JWKS fetched from a URL is fetched again.
pub const JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(3600);

/// Minimum interval between two fetches triggered by a token with an unknown `kid`.
pub const JWKS_UNKNOWN_KID_REFRESH_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Minimum interval between two attempts after a failed JWKS fetch.
pub const JWKS_RETRY_INTERVAL: Duration = Duration::from_secs(10);

/// Bound on one JWKS fetch, connection included.
pub const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest accepted JWKS document.
const MAX_JWKS_BYTES: usize = 1 << 20;

/// Largest accepted token. Kubernetes service-account tokens are around 1 KiB.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Smallest accepted RSA modulus.
const MIN_RSA_BITS: usize = 2048;

/// How the runtime validates bootstrap JWTs (`bootstrap.jwt` in the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    /// The exact `iss` every token must carry.
    pub issuer: String,
    /// A value the token's `aud` must contain.
    pub audience: String,
    /// Where the issuer's public keys come from.
    pub jwks: JwksSource,
}

/// Where the issuer's JSON Web Key Set comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// Fetched from this URL (`bootstrap.jwt.jwksURL`), cached and refreshed.
    Url(String),
    /// This JWKS document, as JSON (`bootstrap.jwt.staticJWKS`).
    Static(String),
}

/// The claims of a token that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JwtClaims {
    /// `sub`, the token's subject (for Kubernetes, `system:serviceaccount:<ns>:<name>`).
    pub sub: Option<String>,
    /// `jti`, the token's unique ID, if it has one.
    pub jti: Option<String>,
    /// `exp`, the expiry, in Unix seconds.
    pub exp: i64,
    /// `iss`, equal to the configured issuer.
    pub iss: String,
    /// `aud`, as a list (a single string becomes a one-element list).
    pub aud: Vec<String>,
    /// `iat`, the issue time in Unix seconds, if present.
    pub iat: Option<i64>,
    /// `nbf`, the start of validity in Unix seconds, if present.
    pub nbf: Option<i64>,
    /// The header's `kid`, if present.
    pub kid: Option<String>,
    /// The signature algorithm, by its JOSE name.
    pub alg: String,
}

/// Why a token or a JWT configuration was refused. The text is specific and meant for logs;
/// clients get only a generic failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// The [`JwtConfig`] cannot be used.
    #[error("invalid JWT bootstrap configuration: {0}")]
    InvalidConfig(String),
    /// A JWKS document (static, or as fetched) cannot be used.
    #[error("invalid JWKS: {0}")]
    InvalidJwks(String),
    /// No JWKS is available: no fetch from the URL has succeeded yet.
    #[error(
        "no JWKS available from {url}: {reason}; tokens cannot be checked until a fetch \
         succeeds"
    )]
    JwksUnavailable {
        /// The JWKS URL.
        url: String,
        /// Why the last fetch failed.
        reason: String,
    },
    /// The token is not a well-formed compact JWS.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The token's `alg` is refused.
    #[error("algorithm {alg:?} is not allowed: {reason}")]
    AlgorithmNotAllowed {
        /// The header's `alg`.
        alg: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The token has no `kid` and the JWKS holds several keys.
    #[error(
        "the token has no kid and the JWKS holds {keys} usable keys, so the signing key cannot \
         be chosen"
    )]
    MissingKeyId {
        /// Number of usable keys in the JWKS.
        keys: usize,
    },
    /// The token's `kid` is not in the JWKS.
    #[error("unknown key id {kid:?}: the JWKS has no usable key with this kid")]
    UnknownKeyId {
        /// The header's `kid`.
        kid: String,
    },
    /// The selected key cannot verify the token's algorithm.
    #[error("key {} cannot verify an {alg} signature: {reason}", describe_kid(kid))]
    KeyMismatch {
        /// The key's `kid`, if it has one.
        kid: Option<String>,
        /// The token's `alg`.
        alg: String,
        /// Why they do not match.
        reason: String,
    },
    /// The signature does not verify.
    #[error("bad signature: the token was not signed by key {}", describe_kid(kid))]
    BadSignature {
        /// The key's `kid`, if it has one.
        kid: Option<String>,
    },
    /// `iss` is missing or differs from the configured issuer.
    #[error(
        "wrong issuer: expected {expected:?}, the token has {}",
        describe_iss(found)
    )]
    WrongIssuer {
        /// The configured issuer.
        expected: String,
        /// The token's `iss`, if any (shortened).
        found: Option<String>,
    },
    /// `aud` is missing or does not contain the configured audience.
    #[error(
        "wrong audience: expected {expected:?}, the token has {}",
        describe_aud(found)
    )]
    WrongAudience {
        /// The configured audience.
        expected: String,
        /// The token's audiences (shortened).
        found: Vec<String>,
    },
    /// The token has no `exp`.
    #[error("the token has no exp claim; bootstrap tokens must expire")]
    MissingExp,
    /// `exp` (plus the leeway) is in the past.
    #[error("the token expired at {exp} (Unix seconds); it is now {now}")]
    Expired {
        /// The token's `exp`.
        exp: i64,
        /// The current time.
        now: i64,
    },
    /// `nbf` (minus the leeway) is in the future.
    #[error("the token is not valid before {nbf} (Unix seconds); it is now {now}")]
    NotYetValid {
        /// The token's `nbf`.
        nbf: i64,
        /// The current time.
        now: i64,
    },
    /// `exp` is too far in the future.
    #[error(
        "the token is valid for {remaining} s more; bootstrap tokens may have at most {max} s \
         left (issue shorter-lived tokens)"
    )]
    LifetimeTooLong {
        /// Seconds from now to `exp`.
        remaining: i64,
        /// [`MAX_TOKEN_LIFETIME`] plus [`LEEWAY`], in seconds.
        max: u64,
    },
    /// The token's `jti` was already used with this validator.
    #[error("replayed token: jti {jti:?} was already used; bootstrap tokens are single-use")]
    Replayed {
        /// The token's `jti` (shortened).
        jti: String,
    },
}

fn describe_kid(kid: &Option<String>) -> String {
    match kid {
        Some(kid) => format!("{kid:?}"),
        None => "without kid (the JWKS's only key)".to_owned(),
    }
}

fn describe_iss(found: &Option<String>) -> String {
    match found {
        Some(iss) => format!("{iss:?}"),
        None => "no iss".to_owned(),
    }
}

fn describe_aud(found: &[String]) -> String {
    if found.is_empty() {
        "no aud".to_owned()
    } else {
        format!("{found:?}")
    }
}

/// Checks bootstrap JWTs against one issuer, audience and JWKS.
///
/// Build one per runtime and share it (for example behind an `Arc`): it owns the JWKS cache and
/// the set of used `jti`s.
pub struct JwtValidator {
    config: JwtConfig,
    keys: KeySource,
    replay: ReplayGuard,
}

impl fmt::Debug for JwtValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtValidator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl JwtValidator {
    /// Builds a validator. A static JWKS is parsed now (bad JSON or no usable key is an error);
    /// a JWKS URL is checked but not fetched (see [`JwtValidator::refresh_jwks`]).
    pub fn new(config: JwtConfig) -> Result<Self, JwtError> {
        Self::with_timings(config, Timings::default())
    }

    fn with_timings(config: JwtConfig, timings: Timings) -> Result<Self, JwtError> {
        if CryptoProvider::try_get_default().is_none() {
            return Err(JwtError::InvalidConfig(
                "no JWT signature backend is available (the jsonwebtoken crate must be built with \
                 exactly one of its rust_crypto or aws_lc_rs features)"
                    .into(),
            ));
        }
        if config.issuer.trim().is_empty() {
            return Err(JwtError::InvalidConfig("the issuer is empty".into()));
        }
        if config.audience.trim().is_empty() {
            return Err(JwtError::InvalidConfig("the audience is empty".into()));
        }
        let keys = match &config.jwks {
            JwksSource::Static(json) => KeySource::Static(Arc::new(parse_jwks(json)?)),
            JwksSource::Url(url) => {
                let url = check_jwks_url(url).map_err(JwtError::InvalidConfig)?;
                let client = reqwest::Client::builder()
                    .timeout(timings.fetch_timeout)
                    .connect_timeout(timings.fetch_timeout)
                    .user_agent(concat!("francis-runtime/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| {
                        JwtError::InvalidConfig(format!(
                            "cannot build the HTTP client for the JWKS: {}",
                            error_chain(&e)
                        ))
                    })?;
                KeySource::Remote(Box::new(RemoteJwks {
                    url,
                    client,
                    timings,
                    cache: RwLock::new(Cache::default()),
                    throttle: tokio::sync::Mutex::new(Throttle::default()),
                }))
            }
        };
        Ok(JwtValidator {
            config,
            keys,
            replay: ReplayGuard::default(),
        })
    }

    /// The configuration this validator checks against.
    pub fn config(&self) -> &JwtConfig {
        &self.config
    }

    /// Fetches the JWKS now (for a URL source; a static JWKS is already loaded) and returns the
    /// number of usable keys. The runtime calls this at start to log a warning early if the
    /// issuer is unreachable; a failure is not fatal, since validation fetches again later.
    pub async fn refresh_jwks(&self) -> Result<usize, JwtError> {
        match &self.keys {
            KeySource::Static(set) => Ok(set.keys.len()),
            KeySource::Remote(remote) => {
                let mut throttle = remote.throttle.lock().await;
                throttle.last_attempt = Some(Instant::now());
                remote.fetch_and_store().await.map(|set| set.keys.len())
            }
        }
    }

    /// Validates a bootstrap token and returns its claims. A token with a `jti` is recorded, so
    /// that a second use is refused until it expires.
    pub async fn validate(&self, token: &str) -> Result<JwtClaims, JwtError> {
        let token = token.trim();
        let parts = split_token(token)?;
        let header = decode_header(parts.header)?;
        let alg = allowed_algorithm(&header.alg)?;
        if header.crit.is_some() {
            return Err(JwtError::Malformed(
                "the header lists crit extensions, and none are supported".into(),
            ));
        }

        let key = self.key_for(header.kid.as_deref(), alg).await?;
        let signed = &token[..parts.header.len() + 1 + parts.payload.len()];
        let verified =
            jsonwebtoken::crypto::verify(parts.signature, signed.as_bytes(), &key.key, alg)
                .map_err(|e| match e.kind() {
                    jsonwebtoken::errors::ErrorKind::Base64(_) => {
                        JwtError::Malformed("the signature is not base64url".into())
                    }
                    _ => JwtError::KeyMismatch {
                        kid: key.kid.clone(),
                        alg: header.alg.clone(),
                        reason: e.to_string(),
                    },
                })?;
        if !verified {
            return Err(JwtError::BadSignature {
                kid: key.kid.clone(),
            });
        }

        let claims = decode_claims(parts.payload)?;
        let now = unix_now();
        self.check_claims(&claims, now)?;
        let exp = claims.exp.ok_or(JwtError::MissingExp)?;

        match &claims.jti {
            Some(jti) => self.replay.use_once(jti, exp, now)?,
            None => tracing::debug!(
                sub = claims.sub.as_deref().unwrap_or(""),
                "bootstrap JWT has no jti: accepted without replay tracking"
            ),
        }

        Ok(JwtClaims {
            sub: claims.sub,
            jti: claims.jti,
            exp,
            iss: claims.iss.unwrap_or_default(),
            aud: claims.aud,
            iat: claims.iat,
            nbf: claims.nbf,
            kid: header.kid,
            alg: header.alg,
        })
    }

    fn check_claims(&self, claims: &Claims, now: i64) -> Result<(), JwtError> {
        if claims.iss.as_deref() != Some(self.config.issuer.as_str()) {
            return Err(JwtError::WrongIssuer {
                expected: self.config.issuer.clone(),
                found: claims.iss.as_deref().map(shorten),
            });
        }
        if !claims.aud.contains(&self.config.audience) {
            return Err(JwtError::WrongAudience {
                expected: self.config.audience.clone(),
                found: claims.aud.iter().take(8).map(|a| shorten(a)).collect(),
            });
        }
        let leeway = secs_i64(LEEWAY);
        let exp = claims.exp.ok_or(JwtError::MissingExp)?;
        if now > exp.saturating_add(leeway) {
            return Err(JwtError::Expired { exp, now });
        }
        let max = secs_i64(MAX_TOKEN_LIFETIME).saturating_add(leeway);
        let remaining = exp.saturating_sub(now);
        if remaining > max {
            return Err(JwtError::LifetimeTooLong {
                remaining,
                max: max.unsigned_abs(),
            });
        }
        if let Some(nbf) = claims.nbf
            && nbf > now.saturating_add(leeway)
        {
            return Err(JwtError::NotYetValid { nbf, now });
        }
        Ok(())
    }

    async fn key_for(&self, kid: Option<&str>, alg: Algorithm) -> Result<Arc<KeyEntry>, JwtError> {
        match &self.keys {
            KeySource::Static(set) => set.select(kid, alg),
            KeySource::Remote(remote) => {
                let set = remote.current().await?;
                match set.select(kid, alg) {
                    Err(JwtError::UnknownKeyId { .. }) => {
                        let set = remote.refresh_for_unknown_kid().await.unwrap_or(set);
                        set.select(kid, alg)
                    }
                    other => other,
                }
            }
        }
    }
}

/// Checks a JWKS URL: `https://`, or `http://` to a loopback host. The error says why not.
pub(crate) fn check_jwks_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url.trim())
        .map_err(|e| format!("the JWKS URL is not a valid URL: {e}"))?;
    let Some(host) = parsed.host_str() else {
        return Err(
            "the JWKS URL has no host; write it like \"https://issuer.example.com/.well-known/jwks.json\""
                .into(),
        );
    };
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" => {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = bare.eq_ignore_ascii_case("localhost")
                || bare
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(parsed)
            } else {
                Err(
                    "the JWKS URL uses plain http to a non-loopback host, where anyone on the path \
                     could substitute keys; use https, or embed the keys with staticJWKS"
                        .into(),
                )
            }
        }
        other => Err(format!(
            "the JWKS URL scheme {other:?} is not supported; use https"
        )),
    }
}

/// Parses a JWKS document and keeps its usable signing keys.
pub(crate) fn parse_jwks(json: &str) -> Result<KeySet, JwtError> {
    #[derive(Deserialize)]
    struct RawSet {
        keys: Vec<Value>,
    }
    let raw: RawSet = serde_json::from_str(json).map_err(|e| {
        JwtError::InvalidJwks(format!(
            "not a JWKS JSON document ({e}); expected {{\"keys\": [...]}}"
        ))
    })?;
    let total = raw.keys.len();
    let mut keys = Vec::with_capacity(total);
    for (index, value) in raw.keys.into_iter().enumerate() {
        match parse_jwk(value) {
            Ok(entry) => keys.push(Arc::new(entry)),
            Err(reason) => tracing::debug!(index, reason, "JWKS key ignored"),
        }
    }
    if keys.is_empty() {
        return Err(JwtError::InvalidJwks(format!(
            "none of its {total} keys is usable: a signing key of type RSA (2048+ bits), EC \
             (P-256 or P-384) or OKP (Ed25519) is required"
        )));
    }
    Ok(KeySet { keys })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyKind {
    fn supports(self, alg: Algorithm) -> bool {
        matches!(
            (self, alg),
            (
                KeyKind::Rsa,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ) | (KeyKind::P256, Algorithm::ES256)
                | (KeyKind::P384, Algorithm::ES384)
                | (KeyKind::Ed25519, Algorithm::EdDSA)
        )
    }

    /// An algorithm this kind of key verifies, to check the key material once.
    fn probe_algorithm(self) -> Algorithm {
        match self {
            KeyKind::Rsa => Algorithm::RS256,
            KeyKind::P256 => Algorithm::ES256,
            KeyKind::P384 => Algorithm::ES384,
            KeyKind::Ed25519 => Algorithm::EdDSA,
        }
    }

    fn name(self) -> &'static str {
        match self {
            KeyKind::Rsa => "RSA",
            KeyKind::P256 => "EC P-256",
            KeyKind::P384 => "EC P-384",
            KeyKind::Ed25519 => "Ed25519",
        }
    }
}

/// One usable verification key of a JWKS.
pub(crate) struct KeyEntry {
    kid: Option<String>,
    alg: Option<Algorithm>,
    kind: KeyKind,
    key: DecodingKey,
}

/// The usable keys of one JWKS document.
pub(crate) struct KeySet {
    keys: Vec<Arc<KeyEntry>>,
}

impl KeySet {
    fn select(&self, kid: Option<&str>, alg: Algorithm) -> Result<Arc<KeyEntry>, JwtError> {
        let candidates: Vec<&Arc<KeyEntry>> = match kid {
            Some(kid) => self
                .keys
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid))
                .collect(),
            None if self.keys.len() == 1 => self.keys.iter().collect(),
            None => {
                return Err(JwtError::MissingKeyId {
                    keys: self.keys.len(),
                });
            }
        };
        let Some(first) = candidates.first() else {
            return Err(JwtError::UnknownKeyId {
                kid: shorten(kid.unwrap_or_default()),
            });
        };
        if let Some(found) = candidates
            .iter()
            .find(|k| k.kind.supports(alg) && k.alg.is_none_or(|a| a == alg))
        {
            return Ok(Arc::clone(found));
        }
        let reason = if first.kind.supports(alg) {
            format!(
                "the key is restricted to {}",
                first
                    .alg
                    .map_or("another algorithm".to_owned(), |a| format!("{a:?}"))
            )
        } else {
            format!("it is an {} key", first.kind.name())
        };
        Err(JwtError::KeyMismatch {
            kid: first.kid.clone(),
            alg: format!("{alg:?}"),
            reason,
        })
    }
}

fn parse_jwk(value: Value) -> Result<KeyEntry, String> {
    #[derive(Deserialize)]
    struct RawJwk {
        kty: String,
        kid: Option<String>,
        alg: Option<String>,
        #[serde(rename = "use")]
        use_: Option<String>,
        crv: Option<String>,
        x: Option<String>,
        y: Option<String>,
        n: Option<String>,
        e: Option<String>,
    }
    let jwk: RawJwk = serde_json::from_value(value).map_err(|e| format!("not a JWK: {e}"))?;
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err("not a signature key (use is not \"sig\")".into());
    }
    let alg = match jwk.alg.as_deref() {
        None => None,
        Some(name) => Some(allowed_algorithm(name).map_err(|e| e.to_string())?),
    };
    let field = |v: &Option<String>, name: &str| -> Result<Vec<u8>, String> {
        let s = v
            .as_deref()
            .ok_or_else(|| format!("{} key without {name}", jwk.kty))?;
        decode_b64(s).ok_or_else(|| format!("{name} is not base64url"))
    };
    let (kind, key) = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("RSA", _) => {
            let n = field(&jwk.n, "n")?;
            let e = field(&jwk.e, "e")?;
            let bits = significant_bits(&n);
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "RSA key of {bits} bits (at least {MIN_RSA_BITS} required)"
                ));
            }
            (KeyKind::Rsa, DecodingKey::from_rsa_raw_components(&n, &e))
        }
        ("EC", Some(crv @ ("P-256" | "P-384"))) => {
            let (kind, len) = if crv == "P-256" {
                (KeyKind::P256, 32)
            } else {
                (KeyKind::P384, 48)
            };
            let x = field(&jwk.x, "x")?;
            let y = field(&jwk.y, "y")?;
            if x.len() != len || y.len() != len {
                return Err(format!("{crv} coordinates must be {len} bytes"));
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (kind, DecodingKey::from_ec_der(&point))
        }
        ("OKP", Some("Ed25519")) => {
            let x = field(&jwk.x, "x")?;
            if x.len() != 32 {
                return Err("Ed25519 public key must be 32 bytes".into());
            }
            (KeyKind::Ed25519, DecodingKey::from_ed_der(&x))
        }
        ("oct", _) => return Err("symmetric (oct) keys are never used".into()),
        (kty, crv) => {
            return Err(format!(
                "unsupported key type {kty:?}{}",
                crv.map(|c| format!(" curve {c:?}")).unwrap_or_default()
            ));
        }
    };
    if let Some(alg) = alg
        && !kind.supports(alg)
    {
        return Err(format!("{} key declares alg {alg:?}", kind.name()));
    }
    // Build a verifier once so that bad key material (a point off the curve, a malformed
    // modulus) is rejected here rather than at each token.
    let provider = CryptoProvider::try_get_default().ok_or("no signature backend")?;
    (provider.verifier_factory)(&kind.probe_algorithm(), &key)
        .map_err(|e| format!("invalid {} key: {e}", kind.name()))?;
    Ok(KeyEntry {
        kid: jwk.kid,
        alg,
        kind,
        key,
    })
}

fn significant_bits(n: &[u8]) -> usize {
    let trimmed: &[u8] = match n.iter().position(|b| *b != 0) {
        Some(i) => &n[i..],
        None => &[],
    };
    match trimmed.first() {
        Some(first) => trimmed.len() * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}

/// Maps a JOSE `alg` name to an allowed algorithm, or says why it is refused.
fn allowed_algorithm(name: &str) -> Result<Algorithm, JwtError> {
    let refuse = |reason| JwtError::AlgorithmNotAllowed {
        alg: shorten(name),
        reason,
    };
    if name.eq_ignore_ascii_case("none") {
        return Err(refuse("unsigned tokens are never accepted"));
    }
    if name.len() >= 2 && name[..2].eq_ignore_ascii_case("HS") {
        return Err(refuse(
            "shared-secret (HMAC) algorithms are refused: the keys come from a public JWKS",
        ));
    }
    if !ALLOWED_ALGORITHMS.contains(&name) {
        return Err(refuse(
            "the accepted algorithms are RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 \
             and EdDSA",
        ));
    }
    name.parse::<Algorithm>()
        .map_err(|_| refuse("not supported by the signature backend"))
}

struct TokenParts<'a> {
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
}

fn split_token(token: &str) -> Result<TokenParts<'_>, JwtError> {
    if token.is_empty() {
        return Err(JwtError::Malformed("the token is empty".into()));
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::Malformed(format!(
            "the token is {} bytes, more than the {MAX_TOKEN_BYTES} accepted",
            token.len()
        )));
    }
    let parts: Vec<&str> = token.split('.').collect();
    match parts.as_slice() {
        [header, payload, signature] if !header.is_empty() && !payload.is_empty() => {
            Ok(TokenParts {
                header,
                payload,
                signature,
            })
        }
        [_, _, _, _, _] => Err(JwtError::Malformed(
            "encrypted tokens (JWE) are not supported; a signed JWT is expected".into(),
        )),
        _ => Err(JwtError::Malformed(format!(
            "a JWT has three dot-separated parts, this token has {}",
            parts.len()
        ))),
    }
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    kid: Option<String>,
    crit: Option<Value>,
}

struct Header {
    alg: String,
    kid: Option<String>,
    crit: Option<Value>,
}

fn decode_header(part: &str) -> Result<Header, JwtError> {
    let bytes = decode_b64(part)
        .ok_or_else(|| JwtError::Malformed("the header is not base64url".into()))?;
    let raw: RawHeader = serde_json::from_slice(&bytes)
        .map_err(|e| JwtError::Malformed(format!("the header is not a JSON object: {e}")))?;
    let alg = raw
        .alg
        .ok_or_else(|| JwtError::Malformed("the header has no alg".into()))?;
    Ok(Header {
        alg,
        kid: raw.kid,
        crit: raw.crit,
    })
}

/// The registered claims, typed.
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Vec<String>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    jti: Option<String>,
}

fn decode_claims(part: &str) -> Result<Claims, JwtError> {
    let bytes = decode_b64(part)
        .ok_or_else(|| JwtError::Malformed("the payload is not base64url".into()))?;
    let map: serde_json::Map<String, Value> = serde_json::from_slice(&bytes)
        .map_err(|e| JwtError::Malformed(format!("the payload is not a JSON object: {e}")))?;
    let string = |name: &str| -> Result<Option<String>, JwtError> {
        match map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(JwtError::Malformed(format!(
                "the {name} claim must be a string"
            ))),
        }
    };
    let date = |name: &str| -> Result<Option<i64>, JwtError> {
        match map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.is_finite())
                        .map(|f| f.floor() as i64)
                })
                .map(Some)
                .ok_or_else(|| JwtError::Malformed(format!("the {name} claim is out of range"))),
            Some(_) => Err(JwtError::Malformed(format!(
                "the {name} claim must be a number of seconds since the Unix epoch"
            ))),
        }
    };
    let aud = match map.get("aud") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(JwtError::Malformed(
                    "the aud claim must be a string or an array of strings".into(),
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(JwtError::Malformed(
                "the aud claim must be a string or an array of strings".into(),
            ));
        }
    };
    Ok(Claims {
        iss: string("iss")?,
        sub: string("sub")?,
        aud,
        exp: date("exp")?,
        nbf: date("nbf")?,
        iat: date("iat")?,
        jti: string("jti")?,
    })
}

/// Decodes base64url, with or without padding.
fn decode_b64(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn secs_i64(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Shortens token-supplied text before it goes into an error message.
fn shorten(s: &str) -> String {
    const MAX_CHARS: usize = 128;
    if s.chars().count() <= MAX_CHARS {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(MAX_CHARS).collect();
        out.push('…');
        out
    }
}

/// An error and its sources, joined with ": " (reqwest's own text omits the cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The `jti`s already accepted, each kept until its token can no longer be valid.
#[derive(Default)]
struct ReplayGuard {
    seen: Mutex<HashMap<String, i64>>,
}

impl ReplayGuard {
    fn use_once(&self, jti: &str, exp: i64, now: i64) -> Result<(), JwtError> {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        seen.retain(|_, forget_after| *forget_after >= now);
        if seen.contains_key(jti) {
            return Err(JwtError::Replayed { jti: shorten(jti) });
        }
        seen.insert(jti.to_owned(), exp.saturating_add(secs_i64(LEEWAY)));
        Ok(())
    }
}

/// The intervals governing a JWKS fetched from a URL (shortened by tests).
#[derive(Debug, Clone, Copy)]
struct Timings {
    refresh: Duration,
    unknown_kid_refresh: Duration,
    retry: Duration,
    fetch_timeout: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            refresh: JWKS_REFRESH_INTERVAL,
            unknown_kid_refresh: JWKS_UNKNOWN_KID_REFRESH_INTERVAL,
            retry: JWKS_RETRY_INTERVAL,
            fetch_timeout: JWKS_FETCH_TIMEOUT,
        }
    }
}

enum KeySource {
    Static(Arc<KeySet>),
    Remote(Box<RemoteJwks>),
}

#[derive(Default)]
struct Cache {
    keys: Option<Arc<KeySet>>,
    fetched_at: Option<Instant>,
    last_error: Option<String>,
}

#[derive(Default)]
struct Throttle {
    last_attempt: Option<Instant>,
    last_unknown_kid_refresh: Option<Instant>,
}

/// A JWKS fetched from a URL. Readers take the cached keys from `cache`; fetches are
/// serialized by `throttle`, which also enforces the intervals.
struct RemoteJwks {
    url: reqwest::Url,
    client: reqwest::Client,
    timings: Timings,
    cache: RwLock<Cache>,
    throttle: tokio::sync::Mutex<Throttle>,
}

impl RemoteJwks {
    /// The cached keys if fresh enough, else the result of a fetch (or the stale keys when the
    /// fetch fails or was attempted too recently).
    async fn current(&self) -> Result<Arc<KeySet>, JwtError> {
        if let Some(keys) = self.fresh_keys() {
            return Ok(keys);
        }
        let mut throttle = self.throttle.lock().await;
        // Another task may have fetched while this one waited.
        if let Some(keys) = self.fresh_keys() {
            return Ok(keys);
        }
        let recently_tried = throttle
            .last_attempt
            .is_some_and(|t| t.elapsed() < self.timings.retry);
        if !recently_tried {
            throttle.last_attempt = Some(Instant::now());
            if let Ok(keys) = self.fetch_and_store().await {
                return Ok(keys);
            }
        }
        let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
        match &cache.keys {
            Some(stale) => Ok(Arc::clone(stale)),
            None => Err(JwtError::JwksUnavailable {
                url: self.url.to_string(),
                reason: cache
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "not fetched yet".into()),
            }),
        }
    }

    fn fresh_keys(&self) -> Option<Arc<KeySet>> {
        let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
        let fresh = cache
            .fetched_at
            .is_some_and(|t| t.elapsed() < self.timings.refresh);
        if fresh { cache.keys.clone() } else { None }
    }

    /// Fetches again because a token named a `kid` the cache lacks, unless that was done less
    /// than the unknown-kid interval ago. Returns the keys to search again.
    async fn refresh_for_unknown_kid(&self) -> Option<Arc<KeySet>> {
        let mut throttle = self.throttle.lock().await;
        let allowed = throttle
            .last_unknown_kid_refresh
            .is_none_or(|t| t.elapsed() >= self.timings.unknown_kid_refresh);
        if allowed {
            let now = Instant::now();
            throttle.last_unknown_kid_refresh = Some(now);
            throttle.last_attempt = Some(now);
            if let Ok(keys) = self.fetch_and_store().await {
                return Some(keys);
            }
        }
        // Possibly refreshed by another task meanwhile.
        self.cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys
            .clone()
    }

    /// Fetches and parses the JWKS, and records the outcome. Callers hold the throttle lock.
    async fn fetch_and_store(&self) -> Result<Arc<KeySet>, JwtError> {
        match self.fetch().await {
            Ok(set) => {
                let set = Arc::new(set);
                tracing::debug!(url = %self.url, keys = set.keys.len(), "fetched the JWKS");
                let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
                cache.keys = Some(Arc::clone(&set));
                cache.fetched_at = Some(Instant::now());
                cache.last_error = None;
                Ok(set)
            }
            Err(reason) => {
                tracing::warn!(url = %self.url, %reason, "cannot fetch the JWKS");
                let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
                cache.last_error = Some(reason.clone());
                Err(JwtError::JwksUnavailable {
                    url: self.url.to_string(),
                    reason,
                })
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let mut response = self
            .client
            .get(self.url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("request failed: {}", error_chain(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("the server answered HTTP {status}"));
        }
        if response
            .content_length()
            .is_some_and(|len| len > MAX_JWKS_BYTES as u64)
        {
            return Err(format!(
                "the document is larger than {MAX_JWKS_BYTES} bytes"
            ));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("reading the response failed: {}", error_chain(&e)))?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!(
                    "the document is larger than {MAX_JWKS_BYTES} bytes"
                ));
            }
            body.extend_from_slice(&chunk);
        }
        let text =
            std::str::from_utf8(&body).map_err(|_| "the document is not UTF-8".to_owned())?;
        parse_jwks(text).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use jsonwebtoken::EncodingKey;
    use serde_json::json;

    use super::*;

    const ISSUER: &str = "https://issuer.test";
    const AUDIENCE: &str = "francis-runtime";

    /// A signing key and its public JWK.
    struct TestKey {
        kid: String,
        alg: Algorithm,
        key: EncodingKey,
        jwk: Value,
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn ed25519(kid: &str) -> TestKey {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        TestKey {
            kid: kid.into(),
            alg: Algorithm::EdDSA,
            key: EncodingKey::from_ed_der(&pair.serialize_der()),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "use": "sig",
                        "x": b64(pair.public_key_raw())}),
        }
    }

    fn es256(kid: &str) -> TestKey {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let point = pair.public_key_raw();
        assert_eq!(point.len(), 65, "uncompressed P-256 point");
        TestKey {
            kid: kid.into(),
            alg: Algorithm::ES256,
            key: EncodingKey::from_ec_der(&pair.serialize_der()),
            jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256",
                        "x": b64(&point[1..33]), "y": b64(&point[33..])}),
        }
    }

    fn jwks(keys: &[&TestKey]) -> String {
        json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
    }

    /// A compact JWS over exactly this header and these claims.
    fn signed(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
        let message = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
        format!("{message}.{signature}")
    }

    fn token(key: &TestKey, claims: &Value) -> String {
        let header = json!({"alg": format!("{:?}", key.alg), "typ": "JWT", "kid": key.kid});
        signed(&header, claims, &key.key, key.alg)
    }

    fn now() -> i64 {
        unix_now()
    }

    /// Valid claims, each token with a fresh jti.
    fn claims() -> Value {
        json!({
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "system:serviceaccount:francis:worker",
            "iat": now(),
            "exp": now() + 600,
            "jti": uuid::Uuid::new_v4().to_string(),
        })
    }

    fn with(mut claims: Value, name: &str, value: Value) -> Value {
        claims[name] = value;
        claims
    }

    fn without(mut claims: Value, name: &str) -> Value {
        claims.as_object_mut().unwrap().remove(name);
        claims
    }

    fn config(jwks: JwksSource) -> JwtConfig {
        JwtConfig {
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            jwks,
        }
    }

    fn validator(keys: &[&TestKey]) -> JwtValidator {
        JwtValidator::new(config(JwksSource::Static(jwks(keys)))).unwrap()
    }

    #[tokio::test]
    async fn a_valid_ed25519_token_is_accepted() {
        let key = ed25519("k1");
        let v = validator(&[&key]);
        let c = claims();
        let got = v.validate(&token(&key, &c)).await.unwrap();
        assert_eq!(
            got.sub.as_deref(),
            Some("system:serviceaccount:francis:worker")
        );
        assert_eq!(got.jti.as_deref(), c["jti"].as_str());
        assert_eq!(Some(got.exp), c["exp"].as_i64());
        assert_eq!(got.iss, ISSUER);
        assert_eq!(got.aud, vec![AUDIENCE.to_owned()]);
        assert_eq!(got.kid.as_deref(), Some("k1"));
        assert_eq!(got.alg, "EdDSA");
    }

    #[tokio::test]
    async fn a_valid_es256_token_is_accepted_among_several_keys() {
        let ed = ed25519("ed");
        let ec = es256("ec");
        let v = validator(&[&ed, &ec]);
        let got = v.validate(&token(&ec, &claims())).await.unwrap();
        assert_eq!(got.alg, "ES256");
        v.validate(&token(&ed, &claims())).await.unwrap();
    }

    #[tokio::test]
    async fn a_token_signed_by_another_key_is_refused() {
        let key = ed25519("k1");
        let impostor = ed25519("k1");
        let v = validator(&[&key]);
        let err = v.validate(&token(&impostor, &claims())).await.unwrap_err();
        assert_eq!(
            err,
            JwtError::BadSignature {
                kid: Some("k1".into())
            }
        );
        assert!(err.to_string().contains("bad signature"), "{err}");

        // A payload changed after signing.
        let good = token(&key, &claims());
        let parts: Vec<&str> = good.split('.').collect();
        let forged = with(
            claims(),
            "sub",
            json!("system:serviceaccount:kube-system:admin"),
        );
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            b64(forged.to_string().as_bytes()),
            parts[2]
        );
        assert!(matches!(
            v.validate(&tampered).await,
            Err(JwtError::BadSignature { .. })
        ));
    }

    #[tokio::test]
    async fn alg_none_is_refused() {
        let v = validator(&[&ed25519("k1")]);
        for alg in ["none", "None", "NONE"] {
            let header = json!({"alg": alg, "kid": "k1"});
            let t = format!(
                "{}.{}.",
                b64(header.to_string().as_bytes()),
                b64(claims().to_string().as_bytes())
            );
            let err = v.validate(&t).await.unwrap_err();
            assert!(
                matches!(&err, JwtError::AlgorithmNotAllowed { reason, .. } if reason.contains("unsigned")),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn hmac_tokens_are_refused_even_with_an_oct_key_in_the_jwks() {
        let secret = b"a shared secret that anyone reading the JWKS would know";
        let key = ed25519("k1");
        let set = json!({"keys": [key.jwk, {"kty": "oct", "kid": "h", "k": b64(secret)}]});
        let v = JwtValidator::new(config(JwksSource::Static(set.to_string()))).unwrap();
        let hs = EncodingKey::from_secret(secret).unwrap();
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let t = signed(
                &json!({"alg": format!("{alg:?}"), "kid": "h"}),
                &claims(),
                &hs,
                alg,
            );
            let err = v.validate(&t).await.unwrap_err();
            assert!(
                matches!(&err, JwtError::AlgorithmNotAllowed { reason, .. } if reason.contains("HMAC")),
                "{err}"
            );
        }
        let header = json!({"alg": "ES512", "kid": "k1"});
        let t = format!("{}.{}.c2ln", b64(header.to_string().as_bytes()), b64(b"{}"));
        assert!(matches!(
            v.validate(&t).await,
            Err(JwtError::AlgorithmNotAllowed { .. })
        ));
    }

    #[tokio::test]
    async fn the_audience_must_match() {
        let key = ed25519("k1");
        let v = validator(&[&key]);
        let err = v
            .validate(&token(&key, &with(claims(), "aud", json!("someone-else"))))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            JwtError::WrongAudience {
                expected: AUDIENCE.into(),
                found: vec!["someone-else".into()]
            }
        );
        assert!(err.to_string().contains("someone-else"), "{err}");
        let err = v
            .validate(&token(&key, &without(claims(), "aud")))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no aud"), "{err}");

        let list = with(claims(), "aud", json!(["other", AUDIENCE]));
        assert_eq!(v.validate(&token(&key, &list)).await.unwrap().aud.len(), 2);
    }

    #[tokio::test]
    async fn the_issuer_must_match_exactly() {
        let key = ed25519("k1");
        let v = validator(&[&key]);
        for iss in [
            json!("https://issuer.test/"),
            json!("https://evil.test"),
            json!(null),
        ] {
            let err = v
                .validate(&token(&key, &with(claims(), "iss", iss)))
                .await
                .unwrap_err();
            assert!(matches!(err, JwtError::WrongIssuer { .. }), "{err}");
        }
    }

    #[tokio::test]
    async fn expiry_is_required_and_checked_with_leeway() {
        let key = ed25519("k1");
        let v = validator(&[&key]);
        let err = v
            .validate(&token(&key, &with(claims(), "exp", json!(now() - 120))))
            .await
            .unwrap_err();
        assert!(matches!(err, JwtError::Expired { .. }), "{err}");
        // Within the 60 s leeway.
        v.validate(&token(&key, &with(claims(), "exp", json!(now() - 30))))
            .await
            .unwrap();

        let err = v
            .validate(&token(&key, &without(claims(), "exp")))
            .await
            .unwrap_err();
        assert_eq!(err, JwtError::MissingExp);

        let err = v
            .validate(&token(&key, &with(claims(), "exp", json!("tomorrow"))))
            .await
            .unwrap_err();
        assert!(matches!(err, JwtError::Malformed(_)), "{err}");
    }

    #[tokio::test]
    async fn a_token_valid_for_more_than_an_hour_is_refused() {
        let key = ed25519("k1");
        let v = validator(&[&key]);
        let err = v
            .validate(&token(
                &key,
                &with(claims(), "exp", json!(now() + 2 * 3600)),
            ))
            .await
            .unwrap_err();
        assert!(
            matches!(err, JwtError::LifetimeTooLong { max: 3660, .. }),
            "{err}"
        );
        // Without jti too: the cap does not depend on replay tracking.
        let no_jti = without(with(claims(), "exp", json!(now() + 2 * 3600)), "jti");
        assert!(matches!(
            v.validate(&token(&key, &no_jti)).await,
            Err(JwtError::LifetimeTooLong { .. })
        ));
        v.validate(&token(&key, &with(claims(), "exp", json!(now() + 3600))))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn nbf_in_the_future_is_refused() {
        let key = ed25519("k1");
        let v = validator(&[&key]);
        let err = v
            .validate(&token(&key, &with(claims(), "nbf", json!(now() + 300))))
            .await
            .unwrap_err();
        assert!(matches!(err, JwtError::NotYetValid { .. }), "{err}");
        v.validate(&token(&key, &with(claims(), "nbf", json!(now() + 30))))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_jti_is_single_use_and_tokens_without_jti_are_accepted() {
        let key = ed25519("k1");
        let v = validator(&[&key]);
        let t = token(&key, &claims());
        v.validate(&t).await.unwrap();
        let err = v.validate(&t).await.unwrap_err();
        assert!(matches!(err, JwtError::Replayed { .. }), "{err}");
        assert!(err.to_string().contains("single-use"), "{err}");

        // A refused token does not consume its jti.
        let c = claims();
        let wrong = token(&key, &with(c.clone(), "aud", json!("x")));
        assert!(v.validate(&wrong).await.is_err());
        v.validate(&token(&key, &c)).await.unwrap();

        let no_jti = token(&key, &without(claims(), "jti"));
        v.validate(&no_jti).await.unwrap();
        v.validate(&no_jti).await.unwrap();
    }

    #[test]
    fn used_jtis_are_forgotten_once_expired() {
        let guard = ReplayGuard::default();
        let now = 1_000_000;
        guard.use_once("a", now - 61, now - 100).unwrap();
        guard.use_once("b", now + 600, now).unwrap();
        assert!(guard.use_once("b", now + 600, now).is_err());
        // "a" expired more than the leeway ago: pruned, so the set stays small.
        guard.use_once("c", now + 600, now).unwrap();
        let seen = guard.seen.lock().unwrap();
        assert!(!seen.contains_key("a"));
        assert_eq!(seen.len(), 2);
    }

    #[tokio::test]
    async fn the_kid_selects_the_key() {
        let k1 = ed25519("k1");
        let k2 = ed25519("k2");
        let v = validator(&[&k1, &k2]);
        let unknown = ed25519("k3");
        let err = v.validate(&token(&unknown, &claims())).await.unwrap_err();
        assert_eq!(err, JwtError::UnknownKeyId { kid: "k3".into() });

        let no_kid = signed(
            &json!({"alg": "EdDSA"}),
            &claims(),
            &k1.key,
            Algorithm::EdDSA,
        );
        let err = v.validate(&no_kid).await.unwrap_err();
        assert_eq!(err, JwtError::MissingKeyId { keys: 2 });
        // With a single key, no kid is needed.
        validator(&[&k1]).validate(&no_kid).await.unwrap();

        // An ES256 token pointed at an Ed25519 key.
        let ec = es256("k1");
        let err = v.validate(&token(&ec, &claims())).await.unwrap_err();
        assert!(matches!(err, JwtError::KeyMismatch { .. }), "{err}");
    }

    #[tokio::test]
    async fn malformed_tokens_are_refused() {
        let v = validator(&[&ed25519("k1")]);
        for bad in ["", "abc", "a.b", "a.b.c.d", "!!.??.x", "a.b.c.d.e"] {
            let err = v.validate(bad).await.unwrap_err();
            assert!(matches!(err, JwtError::Malformed(_)), "{bad:?}: {err}");
        }
        let crit = json!({"alg": "EdDSA", "kid": "k1", "crit": ["exp"]});
        let t = format!("{}.{}.c2ln", b64(crit.to_string().as_bytes()), b64(b"{}"));
        assert!(matches!(v.validate(&t).await, Err(JwtError::Malformed(_))));
        let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert!(matches!(
            v.validate(&huge).await,
            Err(JwtError::Malformed(_))
        ));
    }

    #[test]
    fn static_jwks_is_checked_when_the_validator_is_built() {
        for bad in [
            "not json",
            "{}",
            r#"{"keys": []}"#,
            r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#,
            r#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "c2hvcnQ"}]}"#,
            r#"{"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}"#,
        ] {
            let err = JwtValidator::new(config(JwksSource::Static(bad.into()))).unwrap_err();
            assert!(matches!(err, JwtError::InvalidJwks(_)), "{bad}: {err}");
        }
        // Unusable keys next to a usable one are skipped.
        let key = ed25519("k1");
        let set = json!({"keys": [{"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"},
                                  {"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"},
                                  key.jwk]});
        JwtValidator::new(config(JwksSource::Static(set.to_string()))).unwrap();

        let mut c = config(JwksSource::Static(jwks(&[&key])));
        c.audience = " ".into();
        assert!(matches!(
            JwtValidator::new(c),
            Err(JwtError::InvalidConfig(_))
        ));
    }

    #[test]
    fn jwks_urls_must_be_https_unless_loopback() {
        assert!(check_jwks_url("https://issuer.example.com/jwks").is_ok());
        assert!(check_jwks_url("http://127.0.0.1:8080/jwks").is_ok());
        assert!(check_jwks_url("http://[::1]:8080/jwks").is_ok());
        assert!(check_jwks_url("http://localhost/jwks").is_ok());
        assert!(
            check_jwks_url("http://issuer.example.com/jwks")
                .unwrap_err()
                .contains("https")
        );
        assert!(check_jwks_url("ftp://issuer.example.com/jwks").is_err());
        assert!(check_jwks_url("issuer.example.com/jwks").is_err());
        let err =
            JwtValidator::new(config(JwksSource::Url("http://10.0.0.1/jwks".into()))).unwrap_err();
        assert!(matches!(err, JwtError::InvalidConfig(_)), "{err}");
    }

    /// A JWKS endpoint on 127.0.0.1 that counts its requests; `None` answers 503.
    struct JwksServer {
        url: String,
        body: Arc<Mutex<Option<String>>>,
        hits: Arc<AtomicUsize>,
        task: tokio::task::JoinHandle<()>,
    }

    impl JwksServer {
        async fn start(body: Option<String>) -> JwksServer {
            use axum::extract::State;
            use axum::http::StatusCode;

            type Shared = (Arc<Mutex<Option<String>>>, Arc<AtomicUsize>);
            async fn handler(State((body, hits)): State<Shared>) -> (StatusCode, String) {
                hits.fetch_add(1, Ordering::SeqCst);
                match body.lock().unwrap().clone() {
                    Some(b) => (StatusCode::OK, b),
                    None => (StatusCode::SERVICE_UNAVAILABLE, String::new()),
                }
            }

            let body = Arc::new(Mutex::new(body));
            let hits = Arc::new(AtomicUsize::new(0));
            let app = axum::Router::new()
                .route("/jwks", axum::routing::get(handler))
                .with_state((Arc::clone(&body), Arc::clone(&hits)));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let task = tokio::spawn(async move {
                axum::serve(listener, app).await.unwrap();
            });
            JwksServer {
                url: format!("http://{addr}/jwks"),
                body,
                hits,
                task,
            }
        }

        fn serve(&self, body: Option<String>) {
            *self.body.lock().unwrap() = body;
        }

        fn hits(&self) -> usize {
            self.hits.load(Ordering::SeqCst)
        }
    }

    impl Drop for JwksServer {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    #[tokio::test]
    async fn jwks_over_http_is_cached_and_refetched_once_for_a_rotated_key() {
        let old = ed25519("old");
        let new = ed25519("new");
        let server = JwksServer::start(Some(jwks(&[&old]))).await;
        let v = JwtValidator::new(config(JwksSource::Url(server.url.clone()))).unwrap();
        assert_eq!(server.hits(), 0, "nothing is fetched before it is needed");

        v.validate(&token(&old, &claims())).await.unwrap();
        v.validate(&token(&old, &claims())).await.unwrap();
        assert_eq!(server.hits(), 1, "the JWKS is cached");

        // The issuer rotates its key: the unknown kid triggers one refetch.
        server.serve(Some(jwks(&[&new])));
        v.validate(&token(&new, &claims())).await.unwrap();
        assert_eq!(server.hits(), 2);

        // Another unknown kid within 5 minutes does not fetch again.
        let stranger = ed25519("stranger");
        let err = v.validate(&token(&stranger, &claims())).await.unwrap_err();
        assert_eq!(
            err,
            JwtError::UnknownKeyId {
                kid: "stranger".into()
            }
        );
        assert_eq!(server.hits(), 2);
        // The rotated-out key is gone.
        assert!(matches!(
            v.validate(&token(&old, &claims())).await,
            Err(JwtError::UnknownKeyId { .. })
        ));
        assert_eq!(server.hits(), 2);
    }

    #[tokio::test]
    async fn an_unavailable_jwks_fails_clearly_until_a_fetch_succeeds() {
        let key = es256("k1");
        let server = JwksServer::start(None).await;
        let timings = Timings {
            retry: Duration::ZERO,
            ..Timings::default()
        };
        let v = JwtValidator::with_timings(config(JwksSource::Url(server.url.clone())), timings)
            .unwrap();
        let err = v.refresh_jwks().await.unwrap_err();
        assert!(matches!(err, JwtError::JwksUnavailable { .. }), "{err}");

        let err = v.validate(&token(&key, &claims())).await.unwrap_err();
        assert!(
            matches!(&err, JwtError::JwksUnavailable { reason, .. } if reason.contains("503")),
            "{err}"
        );

        server.serve(Some(jwks(&[&key])));
        v.validate(&token(&key, &claims())).await.unwrap();
        assert_eq!(v.refresh_jwks().await.unwrap(), 1);

        // The issuer goes down again: the last good keys stay in use.
        server.serve(None);
        let stale = JwtValidator::with_timings(
            config(JwksSource::Url(server.url.clone())),
            Timings {
                refresh: Duration::ZERO,
                retry: Duration::ZERO,
                ..Timings::default()
            },
        )
        .unwrap();
        server.serve(Some(jwks(&[&key])));
        stale.validate(&token(&key, &claims())).await.unwrap();
        server.serve(None);
        let before = server.hits();
        stale.validate(&token(&key, &claims())).await.unwrap();
        assert_eq!(server.hits(), before + 1, "a stale JWKS is refetched");
    }

    #[tokio::test]
    async fn an_unreachable_jwks_url_times_out_into_a_clear_error() {
        // Bind then drop a listener so the port refuses connections.
        let addr = {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap()
        };
        let v = JwtValidator::new(config(JwksSource::Url(format!("http://{addr}/jwks")))).unwrap();
        let err = v
            .validate(&token(&ed25519("k"), &claims()))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, JwtError::JwksUnavailable { reason, .. } if reason.contains("request failed")),
            "{err}"
        );
    }
}
