//! Hosts in one process forming a cluster over a shared SQLite file and real QUIC sockets on
//! 127.0.0.1: calls through any host reach the one activation, errors keep their type across
//! hosts, and a host with another runtime PSK is refused with an error that says why.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use francis::prelude::*;

/// Which host an activation runs on.
struct HostName(String);

#[derive(Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
enum WhereError {
    #[error("refused: {0}")]
    Refused(String),
}

struct Where {
    host: String,
    calls: u64,
}

#[francis::actor]
impl Where {
    fn activate(ctx: &ActorContext) -> Self {
        let host = ctx
            .data::<HostName>()
            .map(|h| h.0.clone())
            .unwrap_or_default();
        Where { host, calls: 0 }
    }

    /// Which host runs this activation, and how many calls it has served.
    pub async fn whereabouts(&mut self) -> Result<(String, u64), WhereError> {
        self.calls += 1;
        Ok((self.host.clone(), self.calls))
    }

    pub async fn refuse(&self, why: String) -> Result<(), WhereError> {
        Err(WhereError::Refused(why))
    }

    /// Take `ms` milliseconds to answer.
    pub async fn nap(&self, ms: u64) -> Result<(), WhereError> {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(())
    }
}

const PSK: &str = "cluster-test-psk-0123456789abcdef0123456789";

type Running = (
    Service,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), Error>>,
);

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
    let builder = Host::local()
        .address(francis::testing::free_local_address())
        .sqlite(db)
        .runtime_psk(psk)
        .data(HostName(name.to_owned()))
        .register::<Where>();
    let host = configure(builder).build().await.unwrap();
    let service = host.service();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(host.run(async move {
        let _ = stopped.await;
    }));
    (service, stop, run)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_with_another_psk_cannot_invoke() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cluster.db");
    let (a, stop_a, run_a) = host(&db, "a", PSK).await;
    // Place an actor on host a.
    let (owner, _) = a.actor::<Where>("mine").whereabouts().await.unwrap();
    assert_eq!(owner, "a");
    let (intruder, stop_x, run_x) =
        host(&db, "x", "another-psk-that-is-long-enough-0123456789").await;
    let err = tokio::time::timeout(
        Duration::from_secs(30),
        intruder.actor::<Where>("mine").whereabouts(),
    )
    .await
    .expect("the refusal is prompt")
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("PSK") || text.contains("cluster"),
        "the error says why: {text}"
    );
    // The refused handshake did not disturb host a.
    assert_eq!(a.actor::<Where>("mine").whereabouts().await.unwrap().1, 2);
    let _ = Arc::new(());
    stop_a.send(()).unwrap();
    stop_x.send(()).unwrap();
    run_a.await.unwrap().unwrap();
    run_x.await.unwrap().unwrap();
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
