//! The control API's guard: the middleware every request passes before a route sees it. It
//! stops what a web page open in the developer's browser could otherwise do to a control server
//! on loopback, and what a stranger could do to one on the network: a cross-site "simple" POST
//! (refused without a JSON content type), a request from a foreign origin, DNS rebinding (a
//! `Host` that is neither loopback nor allowed), and, when a bearer token is configured, any
//! request without it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD, AUTHORIZATION, CONTENT_TYPE, HOST,
    ORIGIN, VARY, WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::auth::{ClientIdentity, Need, Principal, Role, needed};
use super::server::ControlApi;

/// The environment variable a control server's bearer token is read from
/// ([`ControlApi::from_env`]), and the one `francis dev` passes its `--http-token` in.
pub const TOKEN_ENV: &str = "FRANCIS_HTTP_TOKEN";

/// The fewest characters a token may have.
const MIN_TOKEN_LEN: usize = 16;

/// A bearer token for the control API: every request must then carry
/// `Authorization: Bearer <token>`. At least 16 characters of `A-Z a-z 0-9 - . _ ~ + /`,
/// optionally ending in `=` (a hex or base64 secret, e.g. `openssl rand -hex 32`).
///
/// Only a SHA-256 digest of the token is kept, and requests are compared with it in constant
/// time; neither `Debug` nor logs ever show it.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpToken {
    digest: [u8; 32],
}

/// Why a string is not a usable [`HttpToken`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the control API token {0}; use at least 16 random characters, e.g. `openssl rand -hex 32`"
)]
pub struct InvalidToken(&'static str);

impl HttpToken {
    /// A token, checked: at least 16 characters, all of them allowed in an `Authorization:
    /// Bearer` header (`A-Z a-z 0-9 - . _ ~ + /`, then `=` padding).
    pub fn new(token: &str) -> Result<Self, InvalidToken> {
        if token.is_empty() {
            return Err(InvalidToken("is empty"));
        }
        if token.len() < MIN_TOKEN_LEN {
            return Err(InvalidToken("is shorter than 16 characters"));
        }
        let body = token.trim_end_matches('=');
        if body.is_empty()
            || !body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
        {
            return Err(InvalidToken(
                "has characters a bearer token cannot carry (only A-Z a-z 0-9 - . _ ~ + / and = at the end)",
            ));
        }
        Ok(HttpToken {
            digest: Sha256::digest(token.as_bytes()).into(),
        })
    }

    /// The first 8 hex digits of the token's SHA-256: names its holder in logs and audit
    /// records without revealing it.
    pub fn fingerprint(&self) -> String {
        self.digest[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether `presented` is this token, in time that does not depend on where they differ.
    fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        bool::from(self.digest.ct_eq(&digest))
    }
}

impl FromStr for HttpToken {
    type Err = InvalidToken;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HttpToken::new(s)
    }
}

impl fmt::Debug for HttpToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HttpToken(<redacted>)")
    }
}

/// A host name as the guard compares it: lower case, no brackets around an IPv6 address, no
/// trailing dot.
pub(super) fn normalize_host(host: &str) -> String {
    let host = host.trim();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// An origin as the guard compares it: `scheme://host[:port]`, lower case, without the
/// scheme's default port; `None` for what is not an HTTP(S) origin (such as `null`).
pub(super) fn normalize_origin(origin: &str) -> Option<String> {
    let origin = origin.trim().trim_end_matches('/');
    let (scheme, authority) = origin.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let (host, port) = split_authority(authority)?;
    let host = normalize_host(host);
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    Some(match port {
        Some(port) if port != default_port => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// `host[:port]` or `[v6][:port]` split into the host (brackets kept) and the port.
pub(super) fn split_authority(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        match rest {
            "" => (host, None),
            _ => (host, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty()
        || host
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b"/?#@".contains(&b))
    {
        return None;
    }
    let port = match port {
        None => None,
        Some(port) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            Some(port.parse().ok()?)
        }
        Some(_) => return None,
    };
    Some((host, port))
}

/// Whether a host name (normalized) names this machine's loopback: `localhost`, 127.0.0.0/8
/// or `::1`.
fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
        || host
            .parse::<Ipv6Addr>()
            .is_ok_and(|ip| is_loopback(IpAddr::V6(ip)))
}

/// Whether an address is loopback, an IPv4-mapped IPv6 one included.
pub(super) fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// A refusal: its status, a stable code and a message that says what to do.
fn refuse(status: StatusCode, code: &str, message: String) -> Response {
    (status, axum::Json(json!({"error": message, "code": code}))).into_response()
}

/// The one value of a header; `Err` when it is sent more than once or is not text.
fn single<'h>(
    headers: &'h HeaderMap,
    name: &axum::http::HeaderName,
) -> Result<Option<&'h str>, ()> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(());
    }
    first.to_str().map(Some).map_err(|_| ())
}

/// The methods that change nothing, and so need no JSON content type.
fn is_safe(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD || method == Method::OPTIONS
}

/// The guard, as an axum middleware (`axum::middleware::from_fn_with_state`) over the control
/// API's routes. Its checks, in order: the `Host` (loopback or allowed), the peer (a server
/// without a token answers loopback peers only, when the connection's address is known), the
/// `Origin` (absent, the server's own, or allowed), the bearer token (when configured), and a
/// JSON content type on every method but GET, HEAD and OPTIONS.
pub(super) async fn guard(
    State(api): State<Arc<ControlApi>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let need = needed(&method, &path);
    // The probes answer whoever reaches the server, by whatever name: a platform's health
    // checks carry no credentials and call the server by its IP.
    if need == Need::Nothing {
        return next.run(request).await;
    }
    let headers = request.headers();

    // The Host it was addressed to (HTTP/2 carries it in the URI instead).
    let host = match single(headers, &HOST) {
        Ok(Some(host)) => host.to_owned(),
        Ok(None) => match request.uri().authority() {
            Some(authority) => authority.as_str().to_owned(),
            None => {
                tracing::debug!(%method, %path, "control API request refused: no Host header");
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "missing_host",
                    "the request has no Host header; send one (HTTP/1.1 requires it)".into(),
                );
            }
        },
        Err(()) => {
            tracing::debug!(%method, %path, "control API request refused: several or unreadable Host headers");
            return refuse(
                StatusCode::BAD_REQUEST,
                "bad_host",
                "the request must have exactly one Host header, in ASCII".into(),
            );
        }
    };
    let host_name = split_authority(&host).map(|(name, _)| normalize_host(name));
    let host_allowed = host_name
        .as_deref()
        .is_some_and(|name| is_loopback_host(name) || api.allowed_hosts.iter().any(|h| h == name));
    // A Host that is neither loopback nor allowed is what DNS rebinding sends. A request that
    // proves a bearer token cannot come from such a page (it does not know the token), so it
    // is let through below; any other is refused.
    let foreign_host = !host_allowed;
    let refuse_host = || {
        tracing::warn!(
            %method, %path, host = %host.escape_debug(),
            "control API request refused: its Host is not loopback nor an allowed host (DNS rebinding?)"
        );
        refuse(
            StatusCode::FORBIDDEN,
            "host_not_allowed",
            format!(
                "this control API does not answer to the host {:?}: it answers to localhost, 127.0.0.1 and [::1], to the host names configured with ControlApi::allowed_hosts, and to any name with a bearer token; call it by one of those",
                host.escape_debug().to_string()
            ),
        )
    };
    if foreign_host && api.tokens.is_empty() {
        return refuse_host();
    }

    // Without a token, nobody but this machine may call: refuse a peer off loopback when the
    // server knows the connection's address.
    let certified = request.extensions().get::<ClientIdentity>().cloned();
    if api.tokens.is_empty()
        && certified.is_none()
        && let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>()
        && !is_loopback(peer.ip())
    {
        tracing::warn!(%method, %path, %peer, "control API request refused: no token is configured and the peer is not on loopback");
        return refuse(
            StatusCode::FORBIDDEN,
            "token_required",
            format!(
                "this control API has no bearer token, so it answers only on this machine (loopback); give the server a token ({TOKEN_ENV}) to call it from another one"
            ),
        );
    }

    // A browser names the page's origin: it must be this server's own, or an allowed one.
    let mut cors_origin = None;
    match single(headers, &ORIGIN) {
        Ok(None) => {}
        Ok(Some(origin)) => {
            let normalized = normalize_origin(origin);
            // A server that speaks TLS (the runtime's with http.tls) is its own origin as https.
            let scheme = if api.tls { "https" } else { "http" };
            let own = normalize_origin(&format!("{scheme}://{host}"));
            let same = normalized.is_some() && normalized == own;
            let allowed = normalized
                .as_ref()
                .is_some_and(|o| api.allowed_origins.iter().any(|a| a == o));
            if !same && !allowed {
                tracing::warn!(
                    %method, %path, origin = %origin.escape_debug(),
                    "control API request refused: it comes from a foreign origin (a web page of another site?)"
                );
                return refuse(
                    StatusCode::FORBIDDEN,
                    "origin_not_allowed",
                    format!(
                        "this control API does not answer requests from web pages of the origin {:?}: only from its own ({}) and from the origins configured with ControlApi::allowed_origins",
                        origin.escape_debug().to_string(),
                        own.unwrap_or_else(|| format!("{scheme}://{host}"))
                    ),
                );
            }
            if !same && let Ok(value) = HeaderValue::from_str(origin) {
                cors_origin = Some(value);
            }
        }
        Err(()) => {
            tracing::warn!(%method, %path, "control API request refused: several or unreadable Origin headers");
            return refuse(
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                "the request must have at most one Origin header, in ASCII".into(),
            );
        }
    }

    // The CORS preflight of a page of an allowed origin: it carries no credentials.
    if let Some(origin) = &cors_origin
        && method == Method::OPTIONS
        && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
    {
        return (
            StatusCode::NO_CONTENT,
            [
                (ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()),
                (
                    ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static("GET, POST, DELETE"),
                ),
                (
                    ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static("authorization, content-type"),
                ),
                (ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600")),
                (VARY, HeaderValue::from_static("Origin")),
            ],
        )
            .into_response();
    }

    // A verified client certificate names the caller; a bearer token, when one is sent, does
    // instead. Without either, only a server without tokens answers (on loopback: checked
    // above).
    let mut principal = match &certified {
        Some(ClientIdentity(principal)) => principal.clone(),
        None => Principal {
            name: "loopback".to_owned(),
            role: Role::Admin,
        },
    };
    let sends_token = headers.contains_key(AUTHORIZATION);
    let mut by_token = false;
    if !api.tokens.is_empty() && (certified.is_none() || sends_token) {
        let presented = match single(headers, &AUTHORIZATION) {
            Ok(Some(value)) => value
                .split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, credentials)| credentials.trim()),
            _ => None,
        };
        let refusal = match presented {
            None => Some((
                "the request has no `Authorization: Bearer <token>` header",
                "",
            )),
            Some(presented) => {
                // Every token is compared, so the time taken does not tell which one matched.
                let mut found = None;
                for (token, role) in &api.tokens {
                    if token.matches(presented) && found.is_none() {
                        found = Some((token, *role));
                    }
                }
                match found {
                    Some((token, role)) => {
                        principal = Principal {
                            name: format!("token:{role}:{}", token.fingerprint()),
                            role,
                        };
                        by_token = true;
                        None
                    }
                    None => Some((
                        "the bearer token of the request is not one of this server's",
                        ", error=\"invalid_token\"",
                    )),
                }
            }
        };
        if let Some((reason, challenge)) = refusal {
            if challenge.is_empty() {
                tracing::debug!(%method, %path, "control API request refused: no bearer token");
            } else {
                tracing::warn!(%method, %path, "control API request refused: wrong bearer token");
            }
            let mut response = refuse(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                format!(
                    "{reason}; this control API needs `Authorization: Bearer <token>` with the token it was given ({TOKEN_ENV}), e.g. curl -H \"Authorization: Bearer ${TOKEN_ENV}\""
                ),
            );
            if let Ok(value) =
                HeaderValue::from_str(&format!("Bearer realm=\"francis\"{challenge}"))
            {
                response.headers_mut().insert(WWW_AUTHENTICATE, value);
            }
            return response;
        }
    }

    if foreign_host && !by_token {
        return refuse_host();
    }
    if let Need::Role(role) = need
        && principal.role < role
    {
        tracing::warn!(%method, %path, principal = %principal.name, "control API request refused: its role is too low");
        return refuse(
            StatusCode::FORBIDDEN,
            "role_too_low",
            format!(
                "{method} {path} needs the role {role} or higher, and this token's role is {}; use a token of a higher role",
                principal.role
            ),
        );
    }

    // A form or a `text/plain` POST is what a page of any site may send without asking;
    // `application/json` is not. Every method that changes something must say JSON.
    if !is_safe(&method) {
        let content_type = single(headers, &CONTENT_TYPE);
        let is_json = matches!(content_type, Ok(Some(value))
            if value.split(';').next().is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json")));
        if !is_json {
            let got = match content_type {
                Ok(Some(value)) => format!("Content-Type {:?}", value.escape_debug().to_string()),
                Ok(None) => "no Content-Type".to_owned(),
                Err(()) => "several or unreadable Content-Type headers".to_owned(),
            };
            tracing::debug!(%method, %path, "control API request refused: {got}, not application/json");
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "this control API takes {method} requests only with `Content-Type: application/json`, even with an empty body, and this one has {got}; send the header (curl -H 'Content-Type: application/json')"
                ),
            );
        }
    }

    let mut request = request;
    request.extensions_mut().insert(principal);
    let mut response = next.run(request).await;
    if let Some(origin) = cors_origin {
        let headers = response.headers_mut();
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.append(VARY, HeaderValue::from_static("Origin"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_and_never_shown() {
        assert!(HttpToken::new("").is_err());
        assert!(HttpToken::new("short").is_err());
        assert!(HttpToken::new("0123456789abcdef 0123").is_err());
        assert!(HttpToken::new("================").is_err());
        assert!(HttpToken::new("0123456789abcdéf0123").is_err());
        let token = HttpToken::new("0123456789abcdef0123456789abcdef").unwrap();
        assert!(HttpToken::new("dGhpcyBpcyBhIHRva2Vu+/==").is_ok());
        assert!(token.matches("0123456789abcdef0123456789abcdef"));
        assert!(!token.matches("0123456789abcdef0123456789abcdeF"));
        assert!(!token.matches(""));
        assert_eq!(format!("{token:?}"), "HttpToken(<redacted>)");
    }

    #[test]
    fn hosts_and_origins_normalize() {
        for loopback in [
            "localhost",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_loopback_host(loopback), "{loopback}");
        }
        for other in [
            "evil.example",
            "localhost.evil.example",
            "10.0.0.1",
            "::",
            "0.0.0.0",
        ] {
            assert!(!is_loopback_host(other), "{other}");
        }
        assert_eq!(split_authority("[::1]:8080"), Some(("[::1]", Some(8080))));
        assert_eq!(split_authority("LocalHost"), Some(("LocalHost", None)));
        assert_eq!(split_authority("a:b"), None);
        assert_eq!(split_authority("a:99999"), None);
        assert_eq!(split_authority("a b"), None);
        assert_eq!(split_authority(""), None);
        assert_eq!(normalize_host("[::1]"), "::1");
        assert_eq!(normalize_host("LOCALHOST."), "localhost");
        assert_eq!(
            normalize_origin("HTTP://LocalHost:80/").as_deref(),
            Some("http://localhost")
        );
        assert_eq!(
            normalize_origin("http://[::1]:8081").as_deref(),
            Some("http://[::1]:8081")
        );
        assert_eq!(normalize_origin("null"), None);
        assert_eq!(normalize_origin("file://"), None);
    }
}
