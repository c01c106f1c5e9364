//! The built-in actors as users call them: rate limiters (bursts, refills on the virtual clock,
//! independent keys and limiters, settings refused with the fix, buckets forgotten on
//! deactivation).

use std::time::Duration;

use francis::builtin::ratelimit::{Allowance, RateLimiter};
use francis::prelude::*;
use francis::testing::TestHost;

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

async fn test_host(builtin: impl francis::builtin::BuiltIn) -> TestHost {
    TestHost::builder().builtin(builtin).build().await.unwrap()
}

#[tokio::test]
async fn a_key_gets_its_burst_then_tokens_come_back_with_the_clock() {
    let host = test_host(RateLimiter::new("api", 2).burst(3)).await;
    let api = RateLimiter::handle(&host.service(), "api");
    assert_eq!(api.actor_type(), "francis.builtin.ratelimit.api");

    for _ in 0..3 {
        assert_eq!(api.allow("alice").await.unwrap(), allowed());
    }
    // Two tokens a second: the next one is 500 ms away.
    assert_eq!(api.allow("alice").await.unwrap(), denied(500));
    host.advance(Duration::from_millis(200)).await.unwrap();
    assert_eq!(api.allow("alice").await.unwrap(), denied(300));
    host.advance(Duration::from_millis(300)).await.unwrap();
    assert_eq!(api.allow("alice").await.unwrap(), allowed());
    assert_eq!(api.allow("alice").await.unwrap(), denied(500));
    // A long pause refills up to the burst, no more.
    host.advance(Duration::from_secs(30)).await.unwrap();
    for _ in 0..3 {
        assert_eq!(api.allow("alice").await.unwrap(), allowed());
    }
    assert!(!api.allow("alice").await.unwrap().allowed);
}

#[tokio::test]
async fn keys_and_limiters_are_independent() {
    let host = TestHost::builder()
        .builtin(RateLimiter::new("strict", 1))
        .builtin(RateLimiter::new("loose", 100).burst(100))
        .build()
        .await
        .unwrap();
    let strict = RateLimiter::handle(&host.service(), "strict");
    let loose = RateLimiter::handle(&host.service(), "loose");

    assert!(strict.allow("a").await.unwrap().allowed);
    assert!(!strict.allow("a").await.unwrap().allowed);
    assert!(strict.allow("b").await.unwrap().allowed, "another key");
    for _ in 0..10 {
        assert!(loose.allow("a").await.unwrap().allowed, "another limiter");
    }
    assert_eq!(host.active_actors(), 3);

    // The limiter's type takes untyped calls under its wire name too.
    let out = host
        .service()
        .invoke(
            "francis.builtin.ratelimit.strict",
            "c",
            "allow",
            Envelope::empty(),
        )
        .await
        .unwrap();
    assert_eq!(out.decode::<Allowance>().unwrap(), allowed());

    // A limiter that no host registers, and an invalid key, fail the call.
    let nobody = RateLimiter::handle(&host.service(), "nobody");
    assert!(matches!(
        nobody.allow("a").await,
        Err(Error::UnknownActorType { .. })
    ));
    assert!(matches!(
        strict.allow("a/b").await,
        Err(Error::InvalidName { .. })
    ));
}

#[tokio::test]
async fn deactivation_forgets_a_bucket() {
    let host = test_host(
        RateLimiter::new("hourly", 1)
            .per(Duration::from_secs(3600))
            .idle_timeout(Duration::from_secs(60)),
    )
    .await;
    let service = host.service();
    let hourly = RateLimiter::handle(&service, "hourly");

    assert!(hourly.allow("k").await.unwrap().allowed);
    let no = hourly.allow("k").await.unwrap();
    assert_eq!(no, denied(3_600_000));

    // Halted: the next request finds a full bucket.
    service
        .halt("francis.builtin.ratelimit.hourly", "k")
        .await
        .unwrap();
    assert_eq!(host.active_actors(), 0);
    assert!(hourly.allow("k").await.unwrap().allowed);
    assert!(!hourly.allow("k").await.unwrap().allowed);

    // Idle for its timeout: deactivated, and forgotten too (an hour's refill is far off).
    host.advance(Duration::from_secs(61)).await.unwrap();
    assert_eq!(host.active_actors(), 0);
    assert!(hourly.allow("k").await.unwrap().allowed);
}

#[tokio::test]
async fn invalid_settings_fail_the_build_with_what_to_do() {
    let err = TestHost::builder()
        .builtin(RateLimiter::new("api", 0).burst(0).per(Duration::ZERO))
        .builtin(RateLimiter::new("", 1))
        .builtin(RateLimiter::new("a/b", 1))
        .builtin(RateLimiter::new("twice", 1))
        .builtin(RateLimiter::new("twice", 2))
        .build()
        .await
        .err()
        .expect("the build fails");
    let text = err.to_string();
    for expected in [
        "ratelimit \"api\": rate is 0",
        "e.g. RateLimiter::new(\"api\", 10)",
        "burst is 0",
        "at least 1 ms",
        "empty name",
        "invalid actor type \"francis.builtin.ratelimit.a/b\"",
        "\"francis.builtin.ratelimit.twice\" is registered twice",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from: {text}");
    }

    // Both topologies' builders take built-ins (a worker's build would need a runtime).
    let _worker = Host::remote().builtin(RateLimiter::new("api", 1));
}
