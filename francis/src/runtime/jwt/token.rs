//! Reading a token: the compact JWS's three parts, its header, its registered claims (typed,
//! strictly), and the algorithm policy (which `alg` names are accepted, and why the others are
//! not).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::Value;

use super::{ALLOWED_ALGORITHMS, JwtError, shorten};

/// Largest accepted token. Kubernetes service-account tokens are around 1 KiB.
pub(super) const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Maps a JOSE `alg` name to an allowed algorithm, or says why it is refused.
pub(super) fn allowed_algorithm(name: &str) -> Result<Algorithm, JwtError> {
    let refuse = |reason| JwtError::AlgorithmNotAllowed {
        alg: shorten(name),
        reason,
    };
    if name.eq_ignore_ascii_case("none") {
        return Err(refuse("unsigned tokens are never accepted"));
    }
    // Byte-wise: an `alg` is attacker-chosen text and need not be ASCII.
    if name
        .as_bytes()
        .get(..2)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"HS"))
    {
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

/// The three parts of a compact JWS.
pub(super) struct TokenParts<'a> {
    pub(super) header: &'a str,
    pub(super) payload: &'a str,
    pub(super) signature: &'a str,
}

pub(super) fn split_token(token: &str) -> Result<TokenParts<'_>, JwtError> {
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

/// A token's header.
pub(super) struct Header {
    pub(super) alg: String,
    pub(super) kid: Option<String>,
    pub(super) crit: Option<Value>,
}

pub(super) fn decode_header(part: &str) -> Result<Header, JwtError> {
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
pub(super) struct Claims {
    pub(super) iss: Option<String>,
    pub(super) sub: Option<String>,
    pub(super) aud: Vec<String>,
    pub(super) exp: Option<i64>,
    pub(super) nbf: Option<i64>,
    pub(super) iat: Option<i64>,
    pub(super) jti: Option<String>,
}

pub(super) fn decode_claims(part: &str) -> Result<Claims, JwtError> {
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
pub(super) fn decode_b64(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}
