//! The rate limiter built-in: a token bucket per key, one actor per key, in memory only.
//!
//! [`RateLimiter`] configures one limiter and registers it as the actor type
//! `francis.builtin.ratelimit.<name>`; [`RateLimiter::handle`] gives the typed
//! [`RateLimitHandle`] whose [`allow`](RateLimitHandle::allow) asks, without waiting, whether
//! one more request for a key may go ahead.
//!
//! Each key's bucket holds at most `burst` tokens and starts full; it refills at `rate` tokens
//! per `per`; a request takes one token, or is denied with the time until one is there. Time is
//! the host's clock (virtual in [`crate::testing`]). Nothing is stored: when a key's actor is
//! deactivated (idle, halted, host stopped) its bucket is forgotten, and the next request
//! finds it full again.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::actor::context::ActorContext;
use crate::actor::reference::ActorRef;
use crate::actor::service::Service;
use crate::builtin::{BuiltIn, Registration, config, sealed, type_name, unconfigured};
use crate::error::{CallError, Error, validate_name};
use crate::host::ActorOptions;

/// The kind part of the type name: `francis.builtin.ratelimit.<name>`.
const KIND: &str = "ratelimit";

/// The shortest idle timeout of a key's actor unless one is given: 1 minute (or twice the
/// period, if that is longer).
const MIN_DEFAULT_IDLE: Duration = Duration::from_secs(60);

/// A rate limiter to register on a host: `rate` requests per period (default 1 s) for each
/// key, with bursts of up to `burst` requests (default 1).
///
/// ```
/// # use std::time::Duration;
/// use francis::builtin::ratelimit::RateLimiter;
/// // 100 requests a minute per key, up to 10 at once.
/// let limiter = RateLimiter::new("api", 100).per(Duration::from_secs(60)).burst(10);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "register it with `HostBuilder::builtin`"]
pub struct RateLimiter {
    name: String,
    rate: u32,
    per: Duration,
    burst: u32,
    idle_timeout: Option<Duration>,
}

impl RateLimiter {
    /// A limiter named `name` (its actor type is `francis.builtin.ratelimit.<name>`) that lets
    /// `rate` requests through per period for each key. `rate` must be at least 1.
    pub fn new(name: impl Into<String>, rate: u32) -> Self {
        RateLimiter {
            name: name.into(),
            rate,
            per: Duration::from_secs(1),
            burst: 1,
            idle_timeout: None,
        }
    }

    /// The period `rate` counts over (default 1 s; at least 1 ms, counted in whole
    /// milliseconds).
    pub fn per(mut self, per: Duration) -> Self {
        self.per = per;
        self
    }

    /// How many requests a key may make at once after a quiet spell: the bucket's size
    /// (default 1; at least 1).
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = burst;
        self
    }

    /// How long a key's actor stays active without requests before it is deactivated, which
    /// forgets its bucket (default: twice the period, at least 1 minute; more than zero).
    /// Shorter than the time a bucket takes to refill, it lets a key start full again early.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// The handle for calling limiter `name` through `service` (the limiter must be registered
    /// on some host of the cluster).
    pub fn handle(service: &Service, name: &str) -> RateLimitHandle {
        RateLimitHandle {
            service: service.clone(),
            actor_type: type_name(KIND, name),
        }
    }

    /// The checked limits, or every problem with the settings.
    fn limits(&self) -> Result<Limits, Vec<String>> {
        let name = &self.name;
        let mut problems = Vec::new();
        if self.rate == 0 {
            problems.push(format!(
                "ratelimit {name:?}: rate is 0; give how many requests each period lets through, at least 1 (e.g. RateLimiter::new({name:?}, 10))"
            ));
        }
        let per_ms = u64::try_from(self.per.as_millis()).unwrap_or(u64::MAX);
        if per_ms == 0 {
            problems.push(format!(
                "ratelimit {name:?}: per is {:?}; give a period of at least 1 ms (default 1 s)",
                self.per
            ));
        }
        if self.burst == 0 {
            problems.push(format!(
                "ratelimit {name:?}: burst is 0; give at least 1, the most requests a key may make at once (default 1)"
            ));
        }
        if self.idle_timeout == Some(Duration::ZERO) {
            problems.push(format!(
                "ratelimit {name:?}: idle timeout is zero; give a positive duration (default: twice the period, at least 1 minute)"
            ));
        }
        if problems.is_empty() {
            Ok(Limits {
                rate: u64::from(self.rate),
                per_ms,
                burst: u64::from(self.burst),
            })
        } else {
            Err(problems)
        }
    }
}

impl sealed::Sealed for RateLimiter {}

impl BuiltIn for RateLimiter {
    fn register(self, registration: &mut Registration) {
        match self.limits() {
            Ok(limits) => {
                let idle = self
                    .idle_timeout
                    .unwrap_or_else(|| self.per.saturating_mul(2).max(MIN_DEFAULT_IDLE));
                let options = ActorOptions::default().idle_timeout(idle);
                registration.actor_type::<Bucket, Limits>(KIND, &self.name, options, limits);
            }
            Err(problems) => problems.into_iter().for_each(|p| registration.problem(p)),
        }
    }
}

/// The answer to [`RateLimitHandle::allow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allowance {
    /// Whether the request may go ahead (it took a token).
    pub allowed: bool,
    /// When denied, how long until a token is there (zero when allowed). Another request may
    /// take it first.
    pub retry_after: Duration,
}

/// Calls one rate limiter. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RateLimitHandle {
    service: Service,
    actor_type: String,
}

impl RateLimitHandle {
    /// The limiter's actor type, `francis.builtin.ratelimit.<name>`.
    pub fn actor_type(&self) -> &str {
        &self.actor_type
    }

    /// Take a token from `key`'s bucket if it has one. Never waits for tokens: a denied
    /// request learns how long until the next one. Fails only if the call does (an invalid
    /// key, no host registering the limiter, ...).
    pub async fn allow(&self, key: &str) -> Result<Allowance, Error> {
        validate_name("rate limit key", key)?;
        let bucket: ActorRef<Bucket> =
            ActorRef::from_raw(self.service.raw_ref(&self.actor_type, key));
        match bucket.allow().await {
            Ok(allowance) => Ok(allowance),
            Err(CallError::Actor(Unconfigured(message))) => Err(Error::Config(message)),
            Err(CallError::Francis(e)) => Err(e),
        }
    }
}

/// A limiter's checked settings, in the units of [`TokenBucket`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limits {
    /// Tokens per period (at least 1).
    rate: u64,
    /// The period, in milliseconds (at least 1).
    per_ms: u64,
    /// The bucket's size, in tokens (at least 1).
    burst: u64,
}

/// A token bucket in exact integer arithmetic. One token is `per_ms` units; the bucket gains
/// `rate` units each millisecond (that is `rate` tokens per period) up to `burst` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TokenBucket {
    /// What the bucket holds, in units.
    level: u128,
    /// The time `level` was computed at (Unix ms).
    at_ms: i64,
}

impl TokenBucket {
    /// A full bucket at `now_ms`.
    fn full(limits: &Limits, now_ms: i64) -> Self {
        TokenBucket {
            level: u128::from(limits.burst) * u128::from(limits.per_ms),
            at_ms: now_ms,
        }
    }

    /// Refill up to `now_ms`, then take one token if there is one. A clock that went back
    /// refills nothing.
    fn take(&mut self, limits: &Limits, now_ms: i64) -> Allowance {
        let capacity = u128::from(limits.burst) * u128::from(limits.per_ms);
        let elapsed = u128::try_from(now_ms.saturating_sub(self.at_ms)).unwrap_or(0);
        self.at_ms = self.at_ms.max(now_ms);
        let refill = elapsed.saturating_mul(u128::from(limits.rate));
        self.level = self.level.saturating_add(refill).min(capacity);
        let cost = u128::from(limits.per_ms);
        if self.level >= cost {
            self.level -= cost;
            return Allowance {
                allowed: true,
                retry_after: Duration::ZERO,
            };
        }
        let missing = cost - self.level;
        let wait_ms = missing.div_ceil(u128::from(limits.rate));
        Allowance {
            allowed: false,
            retry_after: Duration::from_millis(u64::try_from(wait_ms).unwrap_or(u64::MAX)),
        }
    }
}

/// Why a bucket actor could not answer (sent back to the caller).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{0}")]
struct Unconfigured(String);

/// One key's bucket.
struct Bucket {
    ctx: ActorContext,
    /// The limiter's settings (`Err`: why there are none).
    limits: Result<Arc<Limits>, Unconfigured>,
    /// Made full at the first request.
    bucket: Option<TokenBucket>,
}

#[crate::actor(name = "francis.builtin.ratelimit")]
impl Bucket {
    fn activate(ctx: &ActorContext) -> Self {
        Bucket {
            ctx: ctx.clone(),
            limits: config::<Limits>(ctx)
                .ok_or_else(|| Unconfigured(unconfigured(ctx.actor_type()))),
            bucket: None,
        }
    }

    /// Take a token if there is one.
    pub async fn allow(&mut self) -> Result<Allowance, Unconfigured> {
        let limits = self.limits.clone()?;
        let now_ms = self.ctx.now().as_millisecond();
        let bucket = self
            .bucket
            .get_or_insert_with(|| TokenBucket::full(&limits, now_ms));
        Ok(bucket.take(&limits, now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rate: u64, per_ms: u64, burst: u64) -> Limits {
        Limits {
            rate,
            per_ms,
            burst,
        }
    }

    fn allowed() -> Allowance {
        Allowance {
            allowed: true,
            retry_after: Duration::ZERO,
        }
    }

    fn denied(ms: u64) -> Allowance {
        Allowance {
            allowed: false,
            retry_after: Duration::from_millis(ms),
        }
    }

    #[test]
    fn a_full_bucket_allows_a_burst_then_says_when_the_next_token_comes() {
        let l = limits(2, 1000, 3);
        let mut b = TokenBucket::full(&l, 0);
        for _ in 0..3 {
            assert_eq!(b.take(&l, 0), allowed());
        }
        // 2 tokens a second: one every 500 ms.
        assert_eq!(b.take(&l, 0), denied(500));
        assert_eq!(b.take(&l, 200), denied(300));
        assert_eq!(b.take(&l, 500), allowed());
        assert_eq!(b.take(&l, 500), denied(500));
    }

    #[test]
    fn refills_stop_at_the_burst() {
        let l = limits(1, 1000, 2);
        let mut b = TokenBucket::full(&l, 0);
        assert_eq!(b.take(&l, 0), allowed());
        assert_eq!(b.take(&l, 0), allowed());
        // An hour later the bucket holds 2 tokens, not 3600.
        let later = 3_600_000;
        assert_eq!(b.take(&l, later), allowed());
        assert_eq!(b.take(&l, later), allowed());
        assert_eq!(b.take(&l, later), denied(1000));
    }

    #[test]
    fn fractional_rates_are_exact() {
        // 3 tokens per 1000 ms: one every 333⅓ ms, so the wait rounds up to whole ms.
        let l = limits(3, 1000, 1);
        let mut b = TokenBucket::full(&l, 0);
        assert_eq!(b.take(&l, 0), allowed());
        assert_eq!(b.take(&l, 0), denied(334));
        assert_eq!(b.take(&l, 333), denied(1));
        assert_eq!(b.take(&l, 334), allowed());
        // Three tokens over exactly one second, with no drift (in a bucket with room for the
        // fractions: a full bucket drops what it cannot hold).
        let l = limits(3, 1000, 2);
        let mut b = TokenBucket::full(&l, 0);
        b.take(&l, 0);
        b.take(&l, 0);
        let granted: Vec<i64> = (1..=1000).filter(|ms| b.take(&l, *ms).allowed).collect();
        assert_eq!(granted, [334, 667, 1000]);
    }

    #[test]
    fn a_clock_that_goes_back_refills_nothing() {
        let l = limits(1, 1000, 1);
        let mut b = TokenBucket::full(&l, 10_000);
        assert_eq!(b.take(&l, 10_000), allowed());
        assert_eq!(b.take(&l, 5_000), denied(1000));
        assert_eq!(b.take(&l, 10_999), denied(1));
        assert_eq!(b.take(&l, 11_000), allowed());
    }

    #[test]
    fn extreme_settings_do_not_overflow() {
        let l = limits(u64::from(u32::MAX), u64::MAX, u64::from(u32::MAX));
        let mut b = TokenBucket::full(&l, i64::MIN);
        assert!(b.take(&l, i64::MAX).allowed);
        let l = limits(1, u64::MAX, 1);
        let mut b = TokenBucket::full(&l, 0);
        assert!(b.take(&l, 0).allowed);
        assert!(!b.take(&l, i64::MAX).allowed);
    }

    #[test]
    fn settings_are_checked_with_what_to_do() {
        let problems = RateLimiter::new("api", 0)
            .per(Duration::from_micros(10))
            .burst(0)
            .idle_timeout(Duration::ZERO)
            .limits()
            .unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].contains("rate is 0"), "{problems:?}");
        assert!(problems[1].contains("at least 1 ms"), "{problems:?}");
        assert!(problems[2].contains("burst is 0"), "{problems:?}");
        assert!(problems[3].contains("idle timeout"), "{problems:?}");
        assert_eq!(RateLimiter::new("api", 5).limits(), Ok(limits(5, 1000, 1)));
    }

    #[test]
    fn the_idle_timeout_defaults_to_twice_the_period_and_at_least_a_minute() {
        let idle = |limiter: RateLimiter| {
            let registration = Registration::of(limiter);
            registration.types[0].options.idle_timeout
        };
        assert_eq!(
            idle(RateLimiter::new("a", 1)),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            idle(RateLimiter::new("b", 1).per(Duration::from_secs(3600))),
            Some(Duration::from_secs(7200))
        );
        assert_eq!(
            idle(RateLimiter::new("c", 1).idle_timeout(Duration::from_secs(5))),
            Some(Duration::from_secs(5))
        );
    }
}
