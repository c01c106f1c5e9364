//! Where a host listens and what it advertises, and the tuning options of the host builders:
//! two hosts over a shared SQLite file that listen on every interface but advertise a loopback
//! address call each other; the peer limits set on the builder are the ones the peer server
//! applies; and out-of-range options are refused by `build()` with what to write instead.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use francis::host::{HostBuilder, OperationLog, QueryLog};
use francis::prelude::*;
use support::{Where, run};

mod support;

const PSK: &str = "tuning-test-psk-0123456789abcdef0123456789";

fn local(db: &Path, name: &str) -> HostBuilder {
    support::local(db, name, PSK)
}

/// `localhost:<port>` where `localhost` resolves to an IPv4 address first (what a host bound
/// to `0.0.0.0` answers on), else `127.0.0.1:<port>`.
async fn loopback_name(port: u16) -> String {
    let first = tokio::net::lookup_host(("localhost", port))
        .await
        .ok()
        .and_then(|mut addrs| addrs.next());
    if first.is_some_and(|a| a.is_ipv4()) {
        format!("localhost:{port}")
    } else {
        format!("127.0.0.1:{port}")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_that_bind_every_interface_and_advertise_loopback_call_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cluster.db");
    let (port_a, port_b) = (francis::testing::free_port(), francis::testing::free_port());
    let advertised_a = format!("127.0.0.1:{port_a}");
    let advertised_b = loopback_name(port_b).await;

    let a = local(&db, "a")
        .bind(format!("0.0.0.0:{port_a}"))
        .address(&advertised_a)
        .build()
        .await
        .unwrap();
    let b = local(&db, "b")
        .bind(format!("0.0.0.0:{port_b}"))
        .address(&advertised_b)
        .build()
        .await
        .unwrap();
    // Each listens where it was told to, and is registered under what it advertises.
    assert_eq!(
        a.peer_address().unwrap().to_string(),
        format!("0.0.0.0:{port_a}")
    );
    assert_eq!(a.advertised_address(), advertised_a);
    assert_eq!(b.advertised_address(), advertised_b);
    let registered: HashSet<String> = a
        .store()
        .list_hosts()
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.address)
        .collect();
    assert_eq!(
        registered,
        HashSet::from([advertised_a.clone(), advertised_b.clone()])
    );

    let (a, stop_a, run_a) = run(a);
    let (b, stop_b, run_b) = run(b);
    let mut owners = HashSet::new();
    for i in 0..20 {
        let id = format!("actor-{i}");
        let (via_a, n1) = a.actor::<Where>(id.clone()).whereabouts().await.unwrap();
        let (via_b, n2) = b.actor::<Where>(id.clone()).whereabouts().await.unwrap();
        assert_eq!(via_a, via_b, "{id} answered from two hosts");
        assert_eq!((n1, n2), (1, 2), "{id}: both calls reached one activation");
        owners.insert(via_a);
    }
    assert_eq!(owners.len(), 2, "calls crossed hosts both ways: {owners:?}");

    stop_a.send(()).unwrap();
    stop_b.send(()).unwrap();
    run_a.await.unwrap().unwrap();
    run_b.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_larger_than_the_owners_max_request_body_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cluster.db");
    let small = |name: &str| {
        local(&db, name)
            .address(francis::testing::free_local_address())
            .max_request_body_size(4 * 1024)
            .max_in_flight_requests(8)
            .request_timeout(Duration::from_secs(10))
            .store_timeout(Duration::from_secs(2))
            .query_log(QueryLog {
                enabled: true,
                slow_threshold: Some(Duration::from_secs(1)),
            })
            .operation_log(OperationLog {
                enabled: true,
                slow_threshold: None,
            })
            .alarms_fetch_ahead(Duration::from_secs(5), 10)
            .build()
    };
    let (a, stop_a, run_a) = run(small("a").await.unwrap());
    let (b, stop_b, run_b) = run(small("b").await.unwrap());

    // Find an actor of each host, then send each one call that fits and one that does not.
    let mut checked = HashSet::new();
    for i in 0..40 {
        let id = format!("actor-{i}");
        let (owner, _) = a.actor::<Where>(id.clone()).whereabouts().await.unwrap();
        if !checked.insert(owner.clone()) {
            continue;
        }
        let caller = if owner == "a" { &b } else { &a };
        let fits = caller
            .actor::<Where>(id.clone())
            .measure(vec![7; 1024])
            .await
            .unwrap();
        assert_eq!(fits, 1024);
        let refused = caller
            .actor::<Where>(id.clone())
            .measure(vec![7; 16 * 1024])
            .await
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("exceeds the 4096-byte limit"),
            "{owner}: {refused}"
        );
        if checked.len() == 2 {
            break;
        }
    }
    assert_eq!(checked.len(), 2, "both hosts own an actor");

    stop_a.send(()).unwrap();
    stop_b.send(()).unwrap();
    run_a.await.unwrap().unwrap();
    run_b.await.unwrap().unwrap();
}

/// The error `build()` gives, as text.
async fn refused(builder: HostBuilder) -> String {
    builder.build().await.unwrap_err().to_string()
}

#[tokio::test]
async fn out_of_range_options_are_refused_with_what_to_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("refused.db");
    let base = || local(&db, "x").address("127.0.0.1:7571");

    let err = refused(base().bind("0.0.0.0:0")).await;
    assert!(
        err.contains("bind \"0.0.0.0:0\" is not host:port with a non-zero port"),
        "{err}"
    );
    let err = refused(base().bind("nowhere")).await;
    assert!(err.contains("bind \"nowhere\""), "{err}");
    let err = refused(base().request_timeout(Duration::ZERO)).await;
    assert!(err.contains("request timeout is zero"), "{err}");
    let err = refused(base().call_timeout(Duration::ZERO)).await;
    assert!(err.contains("request timeout is zero"), "{err}");
    let err = refused(base().max_in_flight_requests(0)).await;
    assert!(
        err.contains("max_in_flight_requests is 0; give 1 to 10000"),
        "{err}"
    );
    let err = refused(base().max_request_body_size(100)).await;
    assert!(
        err.contains("max_request_body_size is 100 bytes; give 1024 (1 KiB) to 16777216 (16 MiB)"),
        "{err}"
    );
    let err = refused(base().max_request_body_size(64 << 20)).await;
    assert!(
        err.contains("max_request_body_size is 67108864 bytes"),
        "{err}"
    );
    let err = refused(base().alarms_fetch_ahead(Duration::from_secs(120), 25)).await;
    assert!(
        err.contains(
            "alarms fetch-ahead interval is 120s; give more than zero and at most 1 minute"
        ),
        "{err}"
    );
    let err = refused(base().alarms_fetch_ahead(Duration::from_secs(1), 0)).await;
    assert!(err.contains("alarms fetch batch size is 0"), "{err}");
    let err = refused(base().store_timeout(Duration::from_secs(20))).await;
    assert!(
        err.contains("the store timeout (20s) must be less than the health check deadline (20s)"),
        "{err}"
    );
    let err = refused(base().query_log(QueryLog {
        enabled: false,
        slow_threshold: Some(Duration::from_millis(100)),
    }))
    .await;
    assert!(
        err.contains("the query log has a slow threshold but is not enabled"),
        "{err}"
    );
    let err = refused(base().operation_log(OperationLog {
        enabled: true,
        slow_threshold: Some(Duration::ZERO),
    }))
    .await;
    assert!(
        err.contains("the operation log's slow threshold is zero"),
        "{err}"
    );
    // Listening off loopback with the published development key is refused even when the
    // advertised address is loopback.
    let err = refused(
        Host::local()
            .address("127.0.0.1:7571")
            .bind("0.0.0.0:7571")
            .memory_store()
            .runtime_psk(francis::host::DEVELOPMENT_PSK),
    )
    .await;
    assert!(
        err.contains("development key") && err.contains("\"0.0.0.0:7571\""),
        "{err}"
    );
}

/// The default store timeout (5 s) would be refused next to a 2 s deadline; unset, it fits.
#[tokio::test]
async fn a_short_health_check_deadline_gets_a_store_timeout_below_it() {
    let dir = tempfile::tempdir().unwrap();
    let host = local(&dir.path().join("short.db"), "x")
        .address(francis::testing::free_local_address())
        .health_check_deadline(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    host.run(async {}).await.unwrap();
}

const RUNTIME_PSK: &str = "tuning-test-runtime-psk-0123456789abcdef";

/// A runtime configuration on memory, listening on `bind`, with `extra` keys.
fn runtime_config(bind: &str, extra: &str) -> francis::runtime::config::RuntimeConfig {
    let yaml = format!(
        "bind: \"{bind}\"\nruntimePSKs: [\"{RUNTIME_PSK}\"]\nbootstrap:\n  method: psk\n  \
         hostPSK: \"a-host-psk-of-16-bytes\"\nprovider:\n  type: memory\n\
         http:\n  bind: \"127.0.0.1:0\"\n{extra}"
    );
    francis::runtime::config::RuntimeConfig::from_yaml_str(&yaml, "test.yaml", |_| None).unwrap()
}

#[tokio::test]
async fn a_runtime_advertises_what_it_is_told_or_its_concrete_listening_address() {
    use francis::runtime::Runtime;

    let told = runtime_config(
        "127.0.0.1:0",
        "advertiseAddress: \"runtime.example.com:7400\"\nrequestTimeout: 5s\n\
         maxInFlightRequests: 50\nmaxRequestBodySize: 1MiB\nalarmsFetchAheadInterval: 5s\n\
         alarmsFetchAheadBatchSize: 10\n",
    );
    let runtime = Runtime::from_config(&told).await.unwrap();
    assert_eq!(
        runtime.advertise_address(),
        Some("runtime.example.com:7400")
    );

    let concrete = Runtime::from_config(&runtime_config("127.0.0.1:0", ""))
        .await
        .unwrap();
    assert_eq!(
        concrete.advertise_address(),
        Some(concrete.local_addr().to_string().as_str())
    );
    assert_ne!(concrete.local_addr().port(), 0);

    // Every interface is no address anyone can reach.
    let any = Runtime::builder()
        .bind("0.0.0.0:0".parse().unwrap())
        .runtime_psk(RUNTIME_PSK)
        .host_psk("a-host-psk-of-16-bytes")
        .memory_store()
        .build()
        .await
        .unwrap();
    assert_eq!(any.advertise_address(), None);

    let err = Runtime::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .advertise_address("0.0.0.0:7400")
        .runtime_psk(RUNTIME_PSK)
        .host_psk("a-host-psk-of-16-bytes")
        .memory_store()
        .alarms_fetch_ahead(Duration::from_secs(61), 0)
        .max_in_flight_requests(0)
        .max_request_body_size(1)
        .request_timeout(Duration::ZERO)
        .store_timeout(Duration::from_secs(30))
        .build()
        .await
        .unwrap_err()
        .to_string();
    for expected in [
        "the advertise address \"0.0.0.0:7400\" is the any-address",
        "the alarms fetch-ahead interval is 61s",
        "the alarms fetch batch size is 0; it must be 1 to 1000",
        "max in-flight requests is 0; it must be 1 to 10000",
        "the max request body size is 1 bytes; it must be 1 KiB to 16 MiB",
        "the request timeout is zero",
        "the store timeout (30s) must be less than the health check deadline (20s)",
    ] {
        assert!(err.contains(expected), "{expected:?} in {err}");
    }
}
