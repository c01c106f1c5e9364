//! A JWKS fetched from a URL: the URL policy (`https`, or `http` to loopback only, and no
//! redirects: a redirect answer is an error, since its target escapes the policy), the
//! cached keys, the intervals at which they are fetched again (on age, on an unknown `kid`,
//! after a failure), and the bounded fetch itself. Time is read from the validator's clock.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::keys::{KeySet, parse_jwks};
use super::{
    JWKS_FETCH_TIMEOUT, JWKS_REFRESH_INTERVAL, JWKS_RETRY_INTERVAL,
    JWKS_UNKNOWN_KID_REFRESH_INTERVAL, JwtError,
};
use crate::clock::{SharedClock, duration_ms};

/// Largest accepted JWKS document.
const MAX_JWKS_BYTES: usize = 1 << 20;

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

/// The intervals governing a JWKS fetched from a URL (shortened by tests).
#[derive(Debug, Clone, Copy)]
pub(super) struct Timings {
    pub(super) refresh: Duration,
    pub(super) unknown_kid_refresh: Duration,
    pub(super) retry: Duration,
    pub(super) fetch_timeout: Duration,
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

/// Where a validator's keys come from.
pub(super) enum KeySource {
    Static(Arc<KeySet>),
    Remote(Box<RemoteJwks>),
}

#[derive(Default)]
struct Cache {
    keys: Option<Arc<KeySet>>,
    /// When the keys were fetched (Unix ms).
    fetched_at: Option<i64>,
    last_error: Option<String>,
}

#[derive(Default)]
pub(super) struct Throttle {
    /// The last fetch attempt (Unix ms).
    pub(super) last_attempt: Option<i64>,
    /// The last fetch for an unknown `kid` (Unix ms).
    last_unknown_kid_refresh: Option<i64>,
}

/// A JWKS fetched from a URL. Readers take the cached keys from `cache`; fetches are
/// serialized by `throttle`, which also enforces the intervals.
pub(super) struct RemoteJwks {
    url: reqwest::Url,
    client: reqwest::Client,
    timings: Timings,
    clock: SharedClock,
    cache: RwLock<Cache>,
    pub(super) throttle: tokio::sync::Mutex<Throttle>,
}

impl RemoteJwks {
    /// A JWKS at `url`, fetched with `client` on `timings`, read against `clock`.
    pub(super) fn new(
        url: reqwest::Url,
        client: reqwest::Client,
        timings: Timings,
        clock: SharedClock,
    ) -> Self {
        RemoteJwks {
            url,
            client,
            timings,
            clock,
            cache: RwLock::new(Cache::default()),
            throttle: tokio::sync::Mutex::new(Throttle::default()),
        }
    }

    /// How long ago `then` (Unix ms) was.
    fn since(&self, then: i64) -> i64 {
        self.clock.now_ms().saturating_sub(then)
    }

    /// The cached keys if fresh enough, else the result of a fetch (or the stale keys when the
    /// fetch fails or was attempted too recently).
    pub(super) async fn current(&self) -> Result<Arc<KeySet>, JwtError> {
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
            .is_some_and(|t| self.since(t) < duration_ms(self.timings.retry));
        if !recently_tried {
            throttle.last_attempt = Some(self.clock.now_ms());
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
            .is_some_and(|t| self.since(t) < duration_ms(self.timings.refresh));
        if fresh { cache.keys.clone() } else { None }
    }

    /// Fetches again because a token named a `kid` the cache lacks, unless that was done less
    /// than the unknown-kid interval ago. Returns the keys to search again.
    pub(super) async fn refresh_for_unknown_kid(&self) -> Option<Arc<KeySet>> {
        let mut throttle = self.throttle.lock().await;
        let allowed = throttle
            .last_unknown_kid_refresh
            .is_none_or(|t| self.since(t) >= duration_ms(self.timings.unknown_kid_refresh));
        if allowed {
            let now = self.clock.now_ms();
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
    pub(super) async fn fetch_and_store(&self) -> Result<Arc<KeySet>, JwtError> {
        match self.fetch().await {
            Ok(set) => {
                let set = Arc::new(set);
                tracing::debug!(url = %self.url, keys = set.keys.len(), "fetched the JWKS");
                let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
                cache.keys = Some(Arc::clone(&set));
                cache.fetched_at = Some(self.clock.now_ms());
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
        if status.is_redirection() {
            // Not followed: the target was never checked against the URL policy (it could be
            // plain http, or another host).
            let to = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .unwrap_or("nowhere");
            return Err(format!(
                "the server answered HTTP {status}, a redirect to {to:?}; redirects are not \
                 followed, so configure the JWKS URL it redirects to"
            ));
        }
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

/// An error and its sources, joined with ": " (reqwest's own text omits the cause).
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
