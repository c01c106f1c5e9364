//! The issuer's keys: a JWKS document parsed into the signing keys that are usable (RSA of
//! 2048+ bits, EC P-256/P-384, Ed25519; never symmetric keys), and the choice of the key that
//! verifies a token.

use std::sync::Arc;

use jsonwebtoken::crypto::CryptoProvider;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde_json::Value;

use super::token::{allowed_algorithm, decode_b64};
use super::{JwtError, shorten};

/// Smallest accepted RSA modulus.
const MIN_RSA_BITS: usize = 2048;

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
    pub(super) kid: Option<String>,
    alg: Option<Algorithm>,
    kind: KeyKind,
    pub(super) key: DecodingKey,
}

/// The usable keys of one JWKS document.
pub(crate) struct KeySet {
    pub(super) keys: Vec<Arc<KeyEntry>>,
}

impl KeySet {
    /// The key that verifies `alg` for `kid` (or the only key, without a `kid`).
    pub(super) fn select(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<KeyEntry>, JwtError> {
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
