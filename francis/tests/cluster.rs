//! Hosts in one process forming a cluster over a shared SQLite file and real QUIC sockets on
//! 127.0.0.1: calls through any host reach the one activation, errors keep their type across
//! hosts, a host with another runtime PSK refuses to start on the cluster's store, and new
//! actors are not placed on a host this host cannot reach.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use francis::prelude::*;
use support::{HostName, Running, Where, WhereError, run};

mod support;

const PSK: &str = "cluster-test-psk-0123456789abcdef0123456789";

async fn host(db: &Path, name: &str, psk: &str) -> Running {
    host_with(db, name, psk, |b| b).await
}

/// [`host`], its builder configured further by `configure`.
async fn host_with(
    db: &Path,
    name: &str,
    psk: &str,
    configure: impl FnOnce(francis::host::HostBuilder) -> francis::host::HostBuilder,
) -> Running {
    let builder = support::local(db, name, psk).address(francis::testing::free_local_address());
    let host = configure(builder).build().await.unwrap();
    run(host)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_through_any_host_reach_the_one_activation() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cluster.db");
    let (a, stop_a, run_a) = host(&db, "a", PSK).await;
    let (b, stop_b, run_b) = host(&db, "b", PSK).await;

    let mut owners = HashSet::new();
    for i in 0..20 {
        let id = format!("actor-{i}");
        let (via_a, n1) = a.actor::<Where>(id.clone()).whereabouts().await.unwrap();
        let (via_b, n2) = b.actor::<Where>(id.clone()).whereabouts().await.unwrap();
        assert_eq!(via_a, via_b, "{id} answered from two hosts");
        assert_eq!((n1, n2), (1, 2), "{id}: both calls reached one activation");
        owners.insert(via_a);
    }
    assert_eq!(
        owners.len(),
        2,
        "20 actors spread over both hosts: {owners:?}"
    );

    // An actor's own error keeps its type when it crosses hosts.
    for service in [&a, &b] {
        for i in 0..4 {
            match service
                .actor::<Where>(format!("actor-{i}"))
                .refuse("no".into())
                .await
            {
                Err(CallError::Actor(WhereError::Refused(why))) => assert_eq!(why, "no"),
                other => panic!("expected the typed error, got {other:?}"),
            }
        }
    }

    stop_a.send(()).unwrap();
    stop_b.send(()).unwrap();
    run_a.await.unwrap().unwrap();
    run_b.await.unwrap().unwrap();
}

const OTHER_PSK: &str = "another-psk-that-is-long-enough-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_with_another_clusters_psk_refuses_to_start_on_the_shared_store() {
    use francis::net::pki::ClusterCa;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cluster.db");
    let (a, stop_a, run_a) = host(&db, "a", PSK).await;
    let (owner, _) = a.actor::<Where>("mine").whereabouts().await.unwrap();
    assert_eq!(owner, "a");

    let built = Host::local()
        .address(francis::testing::free_local_address())
        .sqlite(&db)
        .runtime_psk(OTHER_PSK)
        .register::<Where>()
        .build()
        .await;
    let Err(refused) = built else {
        panic!("a host of another cluster does not start");
    };
    let text = refused.to_string();
    let ours = ClusterCa::from_psks(&[PSK]).unwrap().fingerprint();
    let theirs = ClusterCa::from_psks(&[OTHER_PSK]).unwrap().fingerprint();
    assert!(
        text.contains(&ours) && text.contains(&theirs) && text.contains("FRANCIS_RUNTIME_PSK"),
        "the error gives both fingerprints and what to do: {text}"
    );
    assert_eq!(
        a.actor::<Where>("mine").whereabouts().await.unwrap().1,
        2,
        "the refused host changed nothing"
    );

    // A rotation's first step (the new key added after the cluster's) joins.
    let rotating = Host::local()
        .address(francis::testing::free_local_address())
        .sqlite(&db)
        .runtime_psk(PSK)
        .runtime_psk(OTHER_PSK)
        .data(HostName("r".into()))
        .register::<Where>()
        .build()
        .await
        .expect("a host one rotation step ahead starts");
    let (r, stop_r, run_r) = run(rotating);
    assert_eq!(r.actor::<Where>("mine").whereabouts().await.unwrap().1, 3);
    stop_a.send(()).unwrap();
    stop_r.send(()).unwrap();
    run_a.await.unwrap().unwrap();
    run_r.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_actors_are_not_placed_on_a_host_this_host_cannot_reach() {
    use francis::clock::SystemClock;
    use francis::model::{ActorTypeRegistration, HostRegistration, Store, StoreOptions};
    use francis::store::memory::MemoryStore;
    // A live peer server of another cluster, whose handshakes this cluster's hosts refuse...
    let x_address = francis::testing::free_local_address();
    let (_x, stop_x, run_x) = run(Host::local()
        .address(x_address.clone())
        .memory_store()
        .runtime_psk(OTHER_PSK)
        .register::<Where>()
        .build()
        .await
        .unwrap());
    // ...registered in this cluster's store as if it were one of its hosts (what a store shared
    // with a misconfigured host looks like).
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new(StoreOptions {
        clock: Arc::new(SystemClock),
        health_check_deadline: Duration::from_secs(20),
    }));
    let odd = store
        .register_host(&HostRegistration {
            address: x_address,
            actor_types: vec![ActorTypeRegistration {
                actor_type: "where".into(),
                idle_timeout: None,
                concurrency_limit: 0,
            }],
            ..HostRegistration::default()
        })
        .await
        .unwrap();
    let host = Host::local()
        .address(francis::testing::free_local_address())
        .store(store.clone())
        .runtime_psk(PSK)
        .data(HostName("a".into()))
        .register::<Where>()
        .build()
        .await
        .unwrap();
    let (a, stop_a, run_a) = run(host);

    let mut failures = 0;
    let mut placed_here = 0;
    for i in 0..40 {
        match a.actor::<Where>(format!("w{i}")).whereabouts().await {
            Ok((owner, _)) => {
                assert_eq!(owner, "a");
                placed_here += 1;
            }
            Err(e) => {
                failures += 1;
                let text = e.to_string();
                assert!(
                    text.contains("PSK") || text.contains("cluster"),
                    "the error says why: {text}"
                );
                assert!(
                    matches!(e, CallError::Francis(Error::Remote { .. })),
                    "a routing failure, which the HTTP API answers with 503: {e:?}"
                );
            }
        }
    }
    // Each call placed on the odd host fails twice (the call is retried once), and the host
    // is skipped after three failures in a row: at most two calls ever land there.
    assert!(
        (1..=2).contains(&failures),
        "{failures} calls failed, {placed_here} succeeded"
    );
    let status = a.host_status().unwrap();
    let odd_status = status
        .unreachable_peers
        .iter()
        .find(|p| p.host_id == odd)
        .expect("the status shows the unreachable host");
    assert!(
        odd_status.skipped && odd_status.failures >= 3,
        "{odd_status:?}"
    );

    stop_a.send(()).unwrap();
    stop_x.send(()).unwrap();
    run_a.await.unwrap().unwrap();
    run_x.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_running_local_host_renews_its_certificate_before_it_expires() {
    // Certificates of 3 s without the clock-skew allowance stand in for the default 90 days.
    let lifetime = Duration::from_secs(3);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cluster.db");
    let mut running = Vec::new();
    let mut services = Vec::new();
    let mut first_expiry = None;
    for name in ["a", "b"] {
        let host = Host::local()
            .address(francis::testing::free_local_address())
            .sqlite(&db)
            .runtime_psk(PSK)
            .certificate_validity(lifetime, Duration::ZERO)
            .data(HostName(name.to_owned()))
            .register::<Where>()
            .build()
            .await
            .unwrap();
        first_expiry = first_expiry.max(host.certificate_not_after());
        services.push(host.service());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        running.push((
            stop,
            tokio::spawn(host.run(async move {
                let _ = stopped.await;
            })),
        ));
    }
    // Let both hosts' first certificates expire. The hosts have not called each other yet, so
    // every call below needs a new handshake, in which each side shows its certificate.
    let first_expiry = first_expiry.unwrap();
    while std::time::SystemTime::now() < first_expiry + Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut owners = HashSet::new();
    for i in 0..12 {
        let id = format!("late-{i}");
        let mut seen = Vec::new();
        for service in &services {
            let (owner, _) = tokio::time::timeout(
                Duration::from_secs(10),
                service.actor::<Where>(id.clone()).whereabouts(),
            )
            .await
            .expect("the call is answered in time")
            .unwrap_or_else(|e| panic!("{id}: a call after the first certificates expired: {e}"));
            seen.push(owner);
        }
        assert_eq!(seen[0], seen[1], "{id} answered from two hosts");
        owners.insert(seen[0].clone());
    }
    assert_eq!(owners.len(), 2, "actors on both hosts: {owners:?}");
    for (stop, run) in running {
        stop.send(()).unwrap();
        run.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_published_development_psk_is_refused_off_loopback() {
    use francis::host::DEVELOPMENT_PSK;

    let local = |address: &str| {
        Host::local()
            .address(address)
            .memory_store()
            .runtime_psk(DEVELOPMENT_PSK)
            .register::<Where>()
            .build()
    };
    // Reachable from other machines, whoever knows the published key could join.
    for address in [
        "0.0.0.0:7571",
        "192.0.2.10:7571",
        "[::]:7571",
        "actors.example:7571",
    ] {
        let err = local(address).await.unwrap_err().to_string();
        assert!(
            err.contains("development key")
                && err.contains("FRANCIS_RUNTIME_PSK")
                && err.contains("openssl rand -hex 32")
                && err.contains(address),
            "{address}: {err}"
        );
    }
    // As a secondary (rotation) key too.
    let err = Host::local()
        .address("0.0.0.0:7571")
        .memory_store()
        .runtime_psk(PSK)
        .runtime_psk(DEVELOPMENT_PSK)
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("development key"), "{err}");
    // On loopback it is what the examples run with.
    let host = local(&francis::testing::free_local_address())
        .await
        .unwrap();
    assert_eq!(
        host.service()
            .actor::<Where>("dev")
            .whereabouts()
            .await
            .unwrap()
            .1,
        1
    );
    host.run(async {}).await.unwrap();

    // A worker does not offer it as its bootstrap key beyond loopback either.
    for (address, runtime) in [
        ("10.0.0.5:7571", "127.0.0.1:7400"),
        ("127.0.0.1:7571", "runtime.example:7400"),
    ] {
        let err = Host::remote()
            .address(address)
            .runtime_address(runtime)
            .host_bootstrap_psk(DEVELOPMENT_PSK)
            .unsafe_no_pinned_ca()
            .build()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("FRANCIS_HOST_BOOTSTRAP_PSK") && err.contains("development key"),
            "{address} / {runtime}: {err}"
        );
    }

    // Nor does a runtime listen beyond loopback with it, as runtime PSK or host PSK.
    let runtime = |bind: &str, runtime_psk: &str, host_psk: &str| {
        francis::runtime::Runtime::builder()
            .bind(bind.parse().unwrap())
            .runtime_psk(runtime_psk)
            .host_psk(host_psk)
            .memory_store()
            .build()
    };
    let err = runtime("0.0.0.0:0", DEVELOPMENT_PSK, "a host psk of 16+ bytes")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("FRANCIS_RUNTIME_PSK"), "{err}");
    let err = runtime("0.0.0.0:0", PSK, DEVELOPMENT_PSK)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("FRANCIS_HOST_BOOTSTRAP_PSK"), "{err}");
    assert!(
        runtime("127.0.0.1:0", DEVELOPMENT_PSK, DEVELOPMENT_PSK)
            .await
            .is_ok()
    );
}

#[derive(Default, Clone, Serialize, Deserialize)]
struct Tally {
    n: u64,
}

struct Durable {
    host: String,
    tally: State<Tally>,
}

#[francis::actor]
impl Durable {
    fn activate(ctx: &ActorContext) -> Self {
        let host = ctx
            .data::<HostName>()
            .map(|h| h.0.clone())
            .unwrap_or_default();
        Durable {
            host,
            tally: ctx.state(),
        }
    }

    pub async fn bump(&mut self) -> Result<(String, u64), WhereError> {
        let n = self.tally.update(|t| {
            t.n += 1;
            t.n
        });
        let n = n.await.map_err(|e| WhereError::Refused(e.to_string()))?;
        Ok((self.host.clone(), n))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_loses_its_registration_stops_serving_and_its_actors_move() {
    use francis::clock::{Clock, ManualClock};
    use francis::store::{Store, StoreOptions, memory::MemoryStore};

    let clock = ManualClock::starting_now();
    let options = StoreOptions {
        clock: Arc::new(clock.clone()),
        health_check_deadline: Duration::from_secs(20),
    };
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new(options));
    let build = |name: &str| {
        Host::local()
            .address(francis::testing::free_local_address())
            .store(store.clone())
            .runtime_psk(PSK)
            .data(HostName(name.to_owned()))
            .register::<Durable>()
            .build()
    };
    let a = build("a").await.unwrap();
    let service_a = a.service();
    let run_a = tokio::spawn(a.run(std::future::pending()));
    assert_eq!(
        service_a.actor::<Durable>("d").bump().await.unwrap(),
        ("a".to_owned(), 1)
    );

    // Host a's heartbeat is now older than the deadline: its next beat is refused, and it stops.
    let t0 = clock.now_ms();
    clock.set(t0 + 25_000);
    let stopped = tokio::time::timeout(Duration::from_secs(10), run_a)
        .await
        .expect("host a stops")
        .unwrap();
    assert!(stopped.unwrap_err().to_string().contains("register again"));
    assert!(matches!(
        service_a.actor::<Durable>("d").bump().await,
        Err(CallError::Francis(Error::ShuttingDown))
    ));

    // Another host takes the actor over with its state.
    let b = build("b").await.unwrap();
    assert_eq!(
        b.service().actor::<Durable>("d").bump().await.unwrap(),
        ("b".to_owned(), 2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_runs_a_duplicated_request_once() {
    use francis::internals::peer::PeerClient;
    use francis::internals::wire::InvokeRequest;

    let dir = tempfile::tempdir().unwrap();
    let host = Host::local()
        .address(francis::testing::free_local_address())
        .sqlite(dir.path().join("one.db"))
        .runtime_psk(PSK)
        .data(HostName("owner".into()))
        .register::<Where>()
        .build()
        .await
        .unwrap();
    let ca = host.cluster_ca().unwrap().clone();
    let address = host.peer_address().unwrap().to_string();
    let target = host.host_id().to_owned();
    let service = host.service();
    let run = tokio::spawn(host.run(std::future::pending()));

    // A caller of the same cluster sends one request twice at once, then once more.
    let identity = ca
        .issue_host_identity("caller", Duration::from_secs(3600))
        .unwrap();
    let client = PeerClient::new(
        &ca.trust(),
        francis::net::tls::CertSlot::new(&identity).unwrap(),
        Duration::from_secs(5),
        Duration::from_secs(10),
    )
    .unwrap();
    let request = InvokeRequest {
        target_host_id: target,
        actor_type: "where".into(),
        actor_id: "once".into(),
        method: "whereabouts".into(),
        request_id: "0b7f4f9c-4e0e-4f8e-9d55-000000000001".into(),
        ..Default::default()
    };
    let (first, second) = tokio::join!(
        client.invoke(&address, request.clone()),
        client.invoke(&address, request.clone())
    );
    let third = client.invoke(&address, request).await.unwrap();
    assert_eq!(first.unwrap().data, third.data);
    assert_eq!(second.unwrap().data, third.data);
    let (_, calls) = service.actor::<Where>("once").whereabouts().await.unwrap();
    assert_eq!(calls, 2, "the three deliveries ran the method once");
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_owner_does_not_hang_its_callers_past_their_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cluster.db");
    let (a, stop_a, run_a) = host_with(&db, "a", PSK, |b| {
        b.call_timeout(Duration::from_millis(300))
    })
    .await;
    let (b, stop_b, run_b) = host(&db, "b", PSK).await;
    // An actor that lives on b, and one that lives on a.
    let mut on = std::collections::HashMap::new();
    for i in 0..40 {
        let id = format!("actor-{i}");
        let (owner, _) = b.actor::<Where>(id.clone()).whereabouts().await.unwrap();
        on.entry(owner).or_insert(id);
        if on.len() == 2 {
            break;
        }
    }
    let (on_a, on_b) = (on["a"].clone(), on["b"].clone());
    let timed_out = |result: Result<(), CallError<WhereError>>| {
        matches!(result, Err(CallError::Francis(Error::Timeout { .. })))
    };

    // Host a's own deadline (call_timeout, 300 ms) bounds its calls to b.
    let result = a.actor::<Where>(on_b.clone()).nap(2000).await;
    assert!(timed_out(result), "host call_timeout");
    // b calling a uses its default (15 s) unless the reference sets one.
    let result = b
        .actor::<Where>(on_a.clone())
        .with_timeout(Duration::from_millis(300))
        .nap(2000)
        .await;
    assert!(timed_out(result), "ActorRef::with_timeout");
    // The untyped path takes it per call too.
    let options = francis::actor::InvokeOptions {
        timeout: Some(Duration::from_millis(300)),
        ..Default::default()
    };
    let result = b
        .invoke_with(
            "where",
            &on_a,
            "nap",
            Envelope::encode(&2000u64).unwrap(),
            options,
        )
        .await;
    assert!(
        matches!(result, Err(Error::Timeout { ref method, .. }) if method == "nap"),
        "{result:?}"
    );
    // Calls within their deadline are unaffected; b's default deadline is 15 s.
    b.actor::<Where>(on_a.clone()).nap(500).await.unwrap();
    a.actor::<Where>(on_b.clone()).nap(10).await.unwrap();

    // Both hosts stop although turns of abandoned calls may still be running.
    stop_a.send(()).unwrap();
    stop_b.send(()).unwrap();
    run_a.await.unwrap().unwrap();
    run_b.await.unwrap().unwrap();
}
