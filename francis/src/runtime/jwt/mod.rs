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

mod jwks;
mod keys;
mod token;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::Algorithm;
use jsonwebtoken::crypto::CryptoProvider;

pub(crate) use self::jwks::check_jwks_url;
use self::jwks::{KeySource, RemoteJwks, Timings, error_chain};
use self::keys::KeyEntry;
pub(crate) use self::keys::parse_jwks;
use self::token::{Claims, allowed_algorithm, decode_claims, decode_header, split_token};
use crate::clock::{SharedClock, SystemClock};

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
        /// The longest lifetime accepted (one hour) plus the leeway (one minute), in seconds.
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
    clock: SharedClock,
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
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// [`JwtValidator::new`] reading the time (token expiry, JWKS refreshes) from `clock`.
    pub fn with_clock(config: JwtConfig, clock: SharedClock) -> Result<Self, JwtError> {
        Self::with_timings(config, Timings::default(), clock)
    }

    fn with_timings(
        config: JwtConfig,
        timings: Timings,
        clock: SharedClock,
    ) -> Result<Self, JwtError> {
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
                    // A redirect could lead off the checked URL (to plain http, or another
                    // host); it is answered as an error instead (see `RemoteJwks::fetch`).
                    .redirect(reqwest::redirect::Policy::none())
                    .user_agent(concat!("francis-runtime/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| {
                        JwtError::InvalidConfig(format!(
                            "cannot build the HTTP client for the JWKS: {}",
                            error_chain(&e)
                        ))
                    })?;
                KeySource::Remote(Box::new(RemoteJwks::new(
                    url,
                    client,
                    timings,
                    clock.clone(),
                )))
            }
        };
        Ok(JwtValidator {
            config,
            keys,
            replay: ReplayGuard::default(),
            clock,
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
                throttle.last_attempt = Some(self.clock.now_ms());
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
        let signed = token
            .get(..parts.header.len() + 1 + parts.payload.len())
            .unwrap_or_default();
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
        let now = self.clock.now_ms().div_euclid(1000);
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::EncodingKey;
    use serde_json::{Value, json};

    use super::token::MAX_TOKEN_BYTES;
    use super::*;
    use crate::clock::Clock;

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
        SystemClock.now_ms().div_euclid(1000)
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
    async fn a_validator_reads_the_time_from_its_clock() {
        let key = ed25519("k1");
        let clock = crate::clock::ManualClock::starting_now();
        let v = JwtValidator::with_clock(
            config(JwksSource::Static(jwks(&[&key]))),
            Arc::new(clock.clone()),
        )
        .unwrap();
        v.validate(&token(&key, &claims())).await.unwrap();
        // Twelve minutes later by the validator's clock, a ten-minute token has expired (the
        // leeway is one minute).
        clock.advance(Duration::from_secs(12 * 60));
        let err = v.validate(&token(&key, &claims())).await.unwrap_err();
        assert!(matches!(err, JwtError::Expired { .. }), "{err}");
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
        let v = JwtValidator::with_timings(
            config(JwksSource::Url(server.url.clone())),
            timings,
            Arc::new(SystemClock),
        )
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
            Arc::new(SystemClock),
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

    #[tokio::test]
    async fn a_jwks_redirect_to_another_server_is_not_followed() {
        // The configured URL answers 302 to a server that does serve a (forged) JWKS: following
        // it would trust keys from a URL that was never checked (plain http, another host).
        let key = ed25519("k1");
        let forged = JwksServer::start(Some(jwks(&[&key]))).await;
        let location = forged.url.clone();
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let location = location.clone();
                async move {
                    (
                        axum::http::StatusCode::FOUND,
                        [(axum::http::header::LOCATION, location)],
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        let v = JwtValidator::new(config(JwksSource::Url(format!("http://{addr}/jwks")))).unwrap();
        let err = v.validate(&token(&key, &claims())).await.unwrap_err();
        assert!(
            matches!(&err, JwtError::JwksUnavailable { reason, .. }
                if reason.contains("302") && reason.contains("redirects are not followed")),
            "{err}"
        );
        assert_eq!(forged.hits(), 0, "the redirect was followed");
        task.abort();
    }

    #[tokio::test]
    async fn a_token_with_a_non_ascii_alg_is_refused_without_panicking() {
        let key = ed25519("k1");
        let v = validator(&[&key]);
        for alg in ["é", "Hé", "éS256", "H\u{301}S256", "日本"] {
            let header = json!({"alg": alg, "typ": "JWT", "kid": "k1"});
            let t = format!(
                "{}.{}.c2ln",
                b64(header.to_string().as_bytes()),
                b64(claims().to_string().as_bytes())
            );
            let err = v.validate(&t).await.unwrap_err();
            assert!(
                matches!(err, JwtError::AlgorithmNotAllowed { .. }),
                "{alg}: {err}"
            );
        }
    }

    /// No input panics the token parser: whatever arrives, `validate` answers with an error
    /// (a bootstrap token is read before anything about its sender is known).
    mod any_input {
        use proptest::prelude::*;
        use serde_json::{Map, Value, json};

        use super::{b64, claims, ed25519, validator};

        fn check(token: &str) {
            let key = ed25519("k1");
            let v = validator(&[&key]);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let outcome = runtime.block_on(v.validate(token));
            assert!(outcome.is_err(), "an unsigned token was accepted: {token}");
        }

        /// Any JSON value, a few levels deep.
        fn json_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(|n| json!(n)),
                any::<f64>().prop_map(|n| json!(n)),
                any::<String>().prop_map(Value::String),
            ];
            leaf.prop_recursive(4, 32, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::btree_map(any::<String>(), inner, 0..6)
                        .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
                ]
            })
        }

        /// A header or claim name a parser looks at, or any other.
        fn name() -> impl Strategy<Value = String> {
            prop_oneof![
                prop::sample::select(vec![
                    "alg", "kid", "typ", "crit", "iss", "aud", "sub", "exp", "nbf", "iat", "jti",
                ])
                .prop_map(str::to_owned),
                any::<String>(),
            ]
        }

        fn object() -> impl Strategy<Value = Value> {
            prop::collection::btree_map(name(), json_value(), 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>()))
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

            #[test]
            fn any_text(token in any::<String>()) {
                check(&token);
            }

            #[test]
            fn any_three_parts(header in any::<String>(), payload in any::<String>(), signature in any::<String>()) {
                check(&format!("{header}.{payload}.{signature}"));
                check(&format!("{}.{}.{signature}", b64(header.as_bytes()), b64(payload.as_bytes())));
            }

            #[test]
            fn any_header(header in object(), alg in any::<String>(), signature in any::<Vec<u8>>()) {
                let mut with_alg = header.clone();
                with_alg["alg"] = Value::String(alg);
                for header in [header, with_alg] {
                    check(&format!(
                        "{}.{}.{}",
                        b64(header.to_string().as_bytes()),
                        b64(claims().to_string().as_bytes()),
                        b64(&signature)
                    ));
                }
            }

            #[test]
            fn any_claims(payload in object(), signature in any::<Vec<u8>>()) {
                let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": "k1"});
                check(&format!(
                    "{}.{}.{}",
                    b64(header.to_string().as_bytes()),
                    b64(payload.to_string().as_bytes()),
                    b64(&signature)
                ));
            }
        }
    }
}
