//! The built-in actors as users call them: rate limiters (bursts, refills on the virtual clock,
//! independent keys and limiters, settings refused with the fix, buckets forgotten on
//! deactivation) and signals (parked waiters answered by one completion, one completion only,
//! payload limit, retention, parked waiters keeping the actor active, completions surviving a
//! restart, waiters surviving a halt and their signal's host restarting).

use std::time::Duration;

use francis::builtin::ratelimit::{Allowance, RateLimiter};
use francis::builtin::signal::{SignalError, SignalHandle, Signals};
use francis::prelude::*;
use francis::testing::TestHost;
use tokio::task::JoinHandle;

mod support;

/// A generous bound on anything that should happen promptly, so a bug fails the test instead
/// of hanging it.
const PROMPTLY: Duration = Duration::from_secs(10);

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
        .builtin(
            Signals::new("s")
                .max_payload_size(0)
                .retention(Duration::ZERO),
        )
        .builtin(Signals::new("twice"))
        .builtin(Signals::new("twice"))
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
        "max payload size is 0 bytes",
        "retain_forever()",
        "\"francis.builtin.signal.twice\" is registered twice",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from: {text}");
    }

    // Both topologies' builders take built-ins (a worker's build would need a runtime).
    let _worker = Host::remote().builtin(Signals::new("s"));
}

/// Spawn a task waiting for signal `id`.
fn spawn_waiter(signals: &SignalHandle, id: &str) -> JoinHandle<Result<String, SignalError>> {
    let (signals, id) = (signals.clone(), id.to_owned());
    tokio::spawn(async move { signals.wait::<String>(&id).await })
}

/// Let spawned waiters reach their signal and park there, and check none has finished.
async fn parked(waiters: &[JoinHandle<Result<String, SignalError>>]) {
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        waiters.iter().all(|w| !w.is_finished()),
        "the waiters are parked"
    );
}

/// The waiters' results, each within [`PROMPTLY`].
async fn answers(waiters: Vec<JoinHandle<Result<String, SignalError>>>) -> Vec<String> {
    let mut out = Vec::new();
    for waiter in waiters {
        let answer = tokio::time::timeout(PROMPTLY, waiter)
            .await
            .expect("the waiter is answered")
            .unwrap()
            .unwrap();
        out.push(answer);
    }
    out
}

#[tokio::test]
async fn parked_waiters_are_all_answered_by_one_completion() {
    let host = test_host(Signals::new("orders")).await;
    let orders = Signals::handle(&host.service(), "orders");
    assert_eq!(orders.actor_type(), "francis.builtin.signal.orders");
    assert_eq!(orders.check::<String>("o-1").await.unwrap(), None);

    let waiters: Vec<_> = (0..3).map(|_| spawn_waiter(&orders, "o-1")).collect();
    parked(&waiters).await;

    // Another caller completes it; parked waiters do not hold it back.
    let other = Signals::handle(&host.service(), "orders");
    tokio::time::timeout(PROMPTLY, other.complete("o-1", "shipped"))
        .await
        .expect("complete is not blocked by parked waiters")
        .unwrap();
    assert_eq!(answers(waiters).await, vec!["shipped"; 3]);

    // Afterwards a wait is answered at once, and check sees it.
    let late: String = tokio::time::timeout(PROMPTLY, orders.wait("o-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(late, "shipped");
    assert_eq!(
        orders.check::<String>("o-1").await.unwrap().as_deref(),
        Some("shipped")
    );

    // A signal completes once.
    let again = orders.complete("o-1", "lost").await.unwrap_err();
    assert!(
        matches!(&again, SignalError::AlreadyCompleted { name, id, .. } if name == "orders" && id == "o-1"),
        "{again:?}"
    );
    assert!(again.to_string().contains("already completed"), "{again}");
    assert_eq!(
        orders.check::<String>("o-1").await.unwrap().as_deref(),
        Some("shipped")
    );
    // Other IDs are other signals.
    assert_eq!(orders.check::<String>("o-2").await.unwrap(), None);
}

#[tokio::test]
async fn payloads_are_typed_and_held_to_the_limit() {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Shipped {
        parcel: u32,
        carrier: String,
    }

    let host = test_host(Signals::new("small").max_payload_size(64)).await;
    let small = Signals::handle(&host.service(), "small");

    let err = small.complete("x", &"y".repeat(100)).await.unwrap_err();
    assert!(
        matches!(err, SignalError::PayloadTooLarge { size, limit: 64, .. } if size > 100),
        "{err:?}"
    );
    assert!(err.to_string().contains("limit of 64 bytes"), "{err}");
    assert_eq!(
        small.check::<String>("x").await.unwrap(),
        None,
        "nothing stored"
    );

    let shipped = Shipped {
        parcel: 7,
        carrier: "post".into(),
    };
    small.complete("x", &shipped).await.unwrap();
    assert_eq!(small.wait::<Shipped>("x").await.unwrap(), shipped);
    // Read as the wrong type: a payload error, not a panic.
    let err = small.check::<Vec<u64>>("x").await.unwrap_err();
    assert!(matches!(err, SignalError::Payload { .. }), "{err:?}");
}

#[tokio::test]
async fn a_wait_can_time_out() {
    let host = test_host(Signals::new("s")).await;
    let signals = Signals::handle(&host.service(), "s");
    let err = signals
        .wait_timeout::<String>("never", Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SignalError::TimedOut { timeout, .. } if *timeout == Duration::from_millis(100)),
        "{err:?}"
    );
}

#[tokio::test]
async fn parked_waiters_keep_their_signal_active() {
    let host = test_host(Signals::new("s").idle_timeout(Duration::from_secs(60))).await;
    let signals = Signals::handle(&host.service(), "s");
    let waiters: Vec<_> = (0..2).map(|_| spawn_waiter(&signals, "busy")).collect();
    parked(&waiters).await;

    // Far past the idle timeout: the actor stays, its waiters still parked.
    host.advance(Duration::from_secs(600)).await.unwrap();
    assert_eq!(host.active_actors(), 1);
    parked(&waiters).await;

    signals.complete("busy", "done").await.unwrap();
    assert_eq!(answers(waiters).await, vec!["done"; 2]);
    // Without waiters it idles out as usual.
    host.advance(Duration::from_secs(61)).await.unwrap();
    assert_eq!(host.active_actors(), 0);
}

#[tokio::test]
async fn a_completion_is_kept_for_its_retention() {
    let host = test_host(Signals::new("s").retention(Duration::from_secs(3600))).await;
    let signals = Signals::handle(&host.service(), "s");
    signals.complete("a", "one").await.unwrap();

    // Deactivated after 5 minutes, the completion is read back from the store.
    host.advance(Duration::from_secs(1800)).await.unwrap();
    assert_eq!(host.active_actors(), 0);
    assert_eq!(
        signals.check::<String>("a").await.unwrap().as_deref(),
        Some("one")
    );
    // Past the retention it is gone, and the signal can be completed again.
    host.advance(Duration::from_secs(1801)).await.unwrap();
    assert_eq!(signals.check::<String>("a").await.unwrap(), None);
    signals.complete("a", "two").await.unwrap();
    assert_eq!(signals.wait::<String>("a").await.unwrap(), "two");
}

#[tokio::test]
async fn a_completion_expires_while_its_actor_is_active() {
    let host = test_host(
        Signals::new("s")
            .retention(Duration::from_secs(60))
            .idle_timeout(Duration::from_secs(600)),
    )
    .await;
    let signals = Signals::handle(&host.service(), "s");
    signals.complete("a", "one").await.unwrap();
    host.advance(Duration::from_secs(61)).await.unwrap();
    assert_eq!(host.active_actors(), 1, "still active");
    assert_eq!(signals.check::<String>("a").await.unwrap(), None);

    // A waiter parks again until the next completion.
    let waiter = spawn_waiter(&signals, "a");
    parked(std::slice::from_ref(&waiter)).await;
    signals.complete("a", "two").await.unwrap();
    assert_eq!(answers(vec![waiter]).await, vec!["two"]);
}

#[tokio::test]
async fn kept_forever_a_completion_outlives_any_retention() {
    let host = test_host(Signals::new("s").retain_forever()).await;
    let signals = Signals::handle(&host.service(), "s");
    signals.complete("a", "one").await.unwrap();
    host.advance(Duration::from_secs(400 * 24 * 3600))
        .await
        .unwrap();
    assert_eq!(
        signals.check::<String>("a").await.unwrap().as_deref(),
        Some("one")
    );
}

#[tokio::test]
async fn a_waiter_survives_a_halt_of_its_signal() {
    let host = test_host(Signals::new("s")).await;
    let service = host.service();
    let signals = Signals::handle(&service, "s");
    let waiter = spawn_waiter(&signals, "h");
    parked(std::slice::from_ref(&waiter)).await;

    // The parked wait does not hold the halt up: it ends, and the waiter asks again.
    tokio::time::timeout(PROMPTLY, service.halt("francis.builtin.signal.s", "h"))
        .await
        .expect("the halt is prompt")
        .unwrap();
    parked(std::slice::from_ref(&waiter)).await;
    assert_eq!(host.active_actors(), 1, "a fresh activation took the wait");

    signals.complete("h", "after the halt").await.unwrap();
    assert_eq!(answers(vec![waiter]).await, vec!["after the halt"]);
}

#[tokio::test]
async fn a_completion_survives_a_restart_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signals.db");
    let build = || {
        TestHost::builder()
            .sqlite(&path)
            .builtin(Signals::new("deploys"))
            .build()
    };
    let first = build().await.unwrap();
    Signals::handle(&first.service(), "deploys")
        .complete("v1", "green")
        .await
        .unwrap();
    first.shutdown().await.unwrap();

    let second = build().await.unwrap();
    let deploys = Signals::handle(&second.service(), "deploys");
    let waited: String = tokio::time::timeout(PROMPTLY, deploys.wait("v1"))
        .await
        .expect("answered at once from the stored completion")
        .unwrap();
    assert_eq!(waited, "green");
    assert!(matches!(
        deploys.complete("v1", "red").await,
        Err(SignalError::AlreadyCompleted { .. })
    ));
}

const PSK: &str = "builtin-test-psk-0123456789abcdef0123456789";

/// A waiter on one host keeps waiting while the host running its signal stops and another
/// takes over on the same store, and gets the completion made there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_on_another_host_survives_its_signal_host_restarting() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cluster.db");
    // Only the signal hosts register the signals, so the signal lives on one of them.
    let signal_host = || async {
        let host = support::local(&db, "signals", PSK)
            .address(francis::testing::free_local_address())
            .builtin(Signals::new("jobs"))
            .build()
            .await
            .unwrap();
        support::run(host)
    };
    // For a few seconds the caller still finds the signal placed on the stopped host, and
    // dialling it fails only after the request timeout: 2 s here (default 15 s).
    let caller = support::local(&db, "caller", PSK)
        .address(francis::testing::free_local_address())
        .request_timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    let (caller, stop_caller, run_caller) = support::run(caller);
    let (first, stop_first, run_first) = signal_host().await;

    let jobs = Signals::handle(&caller, "jobs");
    let waiter = spawn_waiter(&jobs, "j-1");
    parked(std::slice::from_ref(&waiter)).await;
    assert_eq!(first.host_status().unwrap().active_actors, 1);

    stop_first.send(()).unwrap();
    run_first.await.unwrap().unwrap();
    let (second, stop_second, run_second) = signal_host().await;
    assert!(!waiter.is_finished(), "the waiter is still waiting");

    Signals::handle(&second, "jobs")
        .complete("j-1", "finished")
        .await
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .expect("the waiter is answered")
        .unwrap()
        .unwrap();
    assert_eq!(answer, "finished");
    assert_eq!(second.host_status().unwrap().active_actors, 1);

    stop_second.send(()).unwrap();
    stop_caller.send(()).unwrap();
    run_second.await.unwrap().unwrap();
    run_caller.await.unwrap().unwrap();
}
