//! The remote topology in one process, over real QUIC sockets on 127.0.0.1: a runtime owning a
//! SQLite store and workers that join it. Calls through any worker reach one activation, state
//! and alarms go through the runtime, a runtime restart is survived with the same host IDs, and
//! bootstrap refusals say what is wrong while the runtime keeps serving others.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use francis::host::{HostBuilder, Remote};
use francis::prelude::*;
use francis::runtime::{Runtime, TokenValidator};
use serde::{Deserialize, Serialize};

mod support;

const RUNTIME_PSK: &str = "remote-test-runtime-psk-0123456789abcdef";
const HOST_PSK: &str = "remote-test-host-psk";
/// Upper bound of any wait in these tests.
const STEP: Duration = Duration::from_secs(20);

/// Which worker an activation runs on.
struct WorkerName(String);

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Tally {
    count: i64,
    ticks: i64,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
enum TallyError {
    #[error("store: {0}")]
    Store(String),
    #[error("negative increments are refused: {0}")]
    Negative(i64),
}

impl JobError for TallyError {
    fn disposition(&self) -> Disposition {
        match self {
            TallyError::Store(_) => Disposition::Retry,
            TallyError::Negative(_) => Disposition::Permanent,
        }
    }
}

impl From<francis::Error> for TallyError {
    fn from(e: francis::Error) -> Self {
        TallyError::Store(e.to_string())
    }
}

struct Counter {
    worker: String,
    tally: State<Tally>,
}

#[francis::actor]
impl Counter {
    fn activate(ctx: &ActorContext) -> Self {
        let worker = ctx
            .data::<WorkerName>()
            .map(|w| w.0.clone())
            .unwrap_or_default();
        Counter {
            worker,
            tally: ctx.state(),
        }
    }

    /// Adds `by` and returns the new count and the worker that ran the call.
    pub async fn add(&mut self, by: i64) -> Result<(i64, String), TallyError> {
        if by < 0 {
            return Err(TallyError::Negative(by));
        }
        let count = self
            .tally
            .update(|t| {
                t.count += by;
                t.count
            })
            .await?;
        Ok((count, self.worker.clone()))
    }

    pub async fn ticks(&self) -> Result<i64, TallyError> {
        Ok(self.tally.get().await?.ticks)
    }

    /// A job: adds `by`, refusing negative increments for good.
    #[job]
    pub async fn bump(&mut self, by: i64) -> Result<(), TallyError> {
        self.add(by).await.map(|_| ())
    }

    #[alarm]
    pub async fn tick(&mut self, by: i64) -> Result<(), TallyError> {
        self.tally.update(|t| t.ticks += by).await?;
        Ok(())
    }
}

struct RunningRuntime {
    addr: SocketAddr,
    ca_pem: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningRuntime {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(STEP, self.task)
            .await
            .expect("runtime stops in time")
            .expect("runtime task");
    }
}

async fn start_runtime(
    db: &Path,
    bind: SocketAddr,
    configure: impl FnOnce(francis::runtime::RuntimeBuilder) -> francis::runtime::RuntimeBuilder,
) -> RunningRuntime {
    let builder = Runtime::builder()
        .bind(bind)
        .runtime_psk(RUNTIME_PSK)
        .sqlite(db)
        .health_check_deadline(Duration::from_secs(4))
        .alarms_poll_interval(Duration::from_millis(200))
        .shutdown_grace_period(Duration::from_secs(2));
    let runtime = configure(builder).build().await.expect("runtime starts");
    let addr = runtime.local_addr();
    let ca_pem = runtime.cluster_ca().bundle_pem();
    let (stop, task) = support::run_runtime(runtime);
    RunningRuntime {
        addr,
        ca_pem,
        stop: Some(stop),
        task,
    }
}

fn psk_runtime(b: francis::runtime::RuntimeBuilder) -> francis::runtime::RuntimeBuilder {
    b.host_psk(HOST_PSK)
}

struct Worker {
    service: Service,
    host_id: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), Error>>,
}

impl Worker {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(STEP, self.task)
            .await
            .expect("worker stops in time")
            .expect("worker task");
        result.expect("worker ran cleanly");
    }
}

fn worker_builder(name: &str, runtime: &RunningRuntime) -> HostBuilder<Remote> {
    Host::remote()
        .address(francis::testing::free_local_address())
        .runtime_address(runtime.addr.to_string())
        .pinned_ca(runtime.ca_pem.clone())
        .runtime_connect_timeout(STEP)
        .shutdown_grace_period(Duration::from_secs(2))
        .data(WorkerName(name.to_owned()))
        .register::<Counter>()
}

async fn run_worker(builder: HostBuilder<Remote>) -> Worker {
    let host = builder.build().await.expect("worker joins");
    let service = host.service();
    let host_id = host.host_id().to_owned();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(host.run(async move {
        let _ = stopped.await;
    }));
    Worker {
        service,
        host_id,
        stop: Some(stop),
        task,
    }
}

/// Retry `f` until it succeeds or STEP passes.
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if start.elapsed() < STEP => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{what} did not happen within {STEP:?}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_form_one_cluster_through_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = start_runtime(
        &dir.path().join("data.db"),
        "127.0.0.1:0".parse().unwrap(),
        psk_runtime,
    )
    .await;
    let a = run_worker(worker_builder("a", &runtime).host_bootstrap_psk(HOST_PSK)).await;
    let b = run_worker(worker_builder("b", &runtime).host_bootstrap_psk(HOST_PSK)).await;
    assert_ne!(a.host_id, b.host_id);
    let status = a
        .service
        .host_status()
        .expect("a worker reports its status");
    assert_eq!(status.topology, francis::Topology::Remote, "{status:?}");

    let mut owners = std::collections::HashMap::new();
    for i in 0..16 {
        let id = format!("c{i}");
        let (n1, w1) = a.service.actor::<Counter>(&id).add(1).await.unwrap();
        let (n2, w2) = b.service.actor::<Counter>(&id).add(2).await.unwrap();
        assert_eq!((n1, n2), (1, 3), "{id}: one state, updated in order");
        assert_eq!(w1, w2, "{id}: both calls ran on one activation");
        owners.insert(id, w1);
    }
    let used: std::collections::HashSet<_> = owners.values().collect();
    assert_eq!(
        used.len(),
        2,
        "actors are spread over both workers: {owners:?}"
    );

    // A typed actor error crosses worker → worker unchanged.
    let err = a.service.actor::<Counter>("c0").add(-5).await.unwrap_err();
    assert!(
        matches!(err, francis::CallError::Actor(TallyError::Negative(-5))),
        "{err:?}"
    );

    // An alarm set through one worker fires on the owner, through the runtime's store.
    b.service
        .actor::<Counter>("c1")
        .alarm_tick(7)
        .after(Duration::from_millis(100))
        .set()
        .await
        .unwrap();
    let ticks = eventually("the alarm fires", || async {
        match a.service.actor::<Counter>("c1").ticks().await {
            Ok(7) => Ok(7),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(ticks, 7);

    a.stop().await;
    b.stop().await;
    runtime.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_restart_keeps_state_and_host_ids() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data.db");
    let runtime = start_runtime(&db, "127.0.0.1:0".parse().unwrap(), psk_runtime).await;
    let bind = runtime.addr;
    let a = run_worker(worker_builder("a", &runtime).host_bootstrap_psk(HOST_PSK)).await;
    let b = run_worker(worker_builder("b", &runtime).host_bootstrap_psk(HOST_PSK)).await;
    for i in 0..8 {
        a.service
            .actor::<Counter>(format!("r{i}"))
            .add(10)
            .await
            .unwrap();
    }
    runtime.stop().await;
    // Same address, same store file: the workers reconnect over mTLS and keep their IDs.
    let runtime = start_runtime(&db, bind, psk_runtime).await;
    for i in 0..8 {
        let id = format!("r{i}");
        let (count, _) = eventually("calls work again after the restart", || {
            let service = b.service.clone();
            let id = id.clone();
            async move {
                service
                    .actor::<Counter>(id)
                    .add(1)
                    .await
                    .map_err(|e| e.to_string())
            }
        })
        .await;
        assert_eq!(count, 11, "{id}: the count survived the runtime restart");
    }
    let hosts = eventually("both workers are registered", || async {
        let hosts = runtime_hosts(&db).await;
        if hosts.len() == 2 {
            Ok(hosts)
        } else {
            Err(format!("{hosts:?}"))
        }
    })
    .await;
    assert!(
        hosts.contains(&a.host_id) && hosts.contains(&b.host_id),
        "{hosts:?}"
    );
    a.stop().await;
    b.stop().await;
    runtime.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_bootstraps_again_keeps_its_id_by_proving_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data.db");
    // Certificates this short are never presented to reconnect: every reconnect bootstraps
    // with the PSK again, proving the previous identity with its key.
    let short = |b: francis::runtime::RuntimeBuilder| {
        psk_runtime(b).workload_cert_ttl(Duration::from_secs(4))
    };
    let runtime = start_runtime(&db, "127.0.0.1:0".parse().unwrap(), short).await;
    let bind = runtime.addr;
    let a = run_worker(worker_builder("a", &runtime).host_bootstrap_psk(HOST_PSK)).await;
    runtime.stop().await;
    let runtime = start_runtime(&db, bind, short).await;
    let (count, _) = eventually("calls work again after the restart", || {
        let service = a.service.clone();
        async move {
            service
                .actor::<Counter>("kept")
                .add(1)
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await;
    assert_eq!(count, 1);
    assert_eq!(runtime_hosts(&db).await, vec![a.host_id.clone()]);
    a.stop().await;
    runtime.stop().await;
}

/// The healthy hosts recorded in a runtime's SQLite file.
async fn runtime_hosts(db: &Path) -> Vec<String> {
    let store = francis::store::sqlite::SqliteStore::open(
        db,
        francis::store::StoreOptions {
            clock: Arc::new(francis::clock::SystemClock),
            health_check_deadline: Duration::from_secs(4),
        },
    )
    .await
    .unwrap();
    use francis::store::Store;
    store
        .list_hosts()
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.host_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_whose_registration_expired_rejoins_under_its_id_with_a_valid_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data.db");
    let runtime = start_runtime(&db, "127.0.0.1:0".parse().unwrap(), psk_runtime).await;
    let bind = runtime.addr;
    let a = run_worker(worker_builder("a", &runtime).host_bootstrap_psk(HOST_PSK)).await;
    let b = run_worker(worker_builder("b", &runtime).host_bootstrap_psk(HOST_PSK)).await;
    runtime.stop().await;
    // Longer than the 4 s health deadline: both registrations expire in the store.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let runtime = start_runtime(&db, bind, psk_runtime).await;
    // Both register anew under their IDs...
    let hosts = eventually("both workers register again", || async {
        let hosts = runtime_hosts(&db).await;
        if hosts.len() == 2 {
            Ok(hosts)
        } else {
            Err(format!("{hosts:?}"))
        }
    })
    .await;
    assert!(
        hosts.contains(&a.host_id) && hosts.contains(&b.host_id),
        "{hosts:?}"
    );
    // ...and can call each other's actors: their new certificates carry the IDs peers expect.
    let mut seen = std::collections::HashSet::new();
    for i in 0..12 {
        let id = format!("x{i}");
        let (_, worker) = eventually("calls work after re-registration", || {
            let service = a.service.clone();
            let id = id.clone();
            async move {
                service
                    .actor::<Counter>(id)
                    .add(1)
                    .await
                    .map_err(|e| e.to_string())
            }
        })
        .await;
        seen.insert(worker);
    }
    assert_eq!(seen.len(), 2, "both workers serve actors again: {seen:?}");
    a.stop().await;
    b.stop().await;
    runtime.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_refusals_say_what_is_wrong_and_the_runtime_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = start_runtime(
        &dir.path().join("data.db"),
        "127.0.0.1:0".parse().unwrap(),
        psk_runtime,
    )
    .await;

    // Wrong host PSK: the runtime's proof does not verify, so nothing is revealed to it.
    let err = worker_builder("w", &runtime)
        .host_bootstrap_psk("not-the-host-psk-at-all")
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("PSK"), "{err}");

    // A pinned CA of another cluster: the runtime is not trusted.
    let other =
        francis::net::pki::ClusterCa::from_psks(&["another cluster's runtime psk, 32+ bytes"])
            .unwrap();
    let err = Host::remote()
        .address(francis::testing::free_local_address())
        .runtime_address(runtime.addr.to_string())
        .pinned_ca(other.ca_pem())
        .host_bootstrap_psk(HOST_PSK)
        .register::<Counter>()
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("pinned CA"), "{err}");

    // A JWT offered to a PSK runtime.
    let err = worker_builder("w", &runtime)
        .host_bootstrap_jwt("a.b.c")
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("JWT bootstrap is not enabled"), "{err}");

    // Neither or both CA decisions, or no credential: configuration errors before any I/O.
    let neither = Host::remote()
        .address("127.0.0.1:1")
        .runtime_address(runtime.addr.to_string())
        .host_bootstrap_psk(HOST_PSK)
        .register::<Counter>()
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        neither.contains("pinned_ca") && neither.contains("unsafe_no_pinned_ca"),
        "{neither}"
    );
    let both = worker_builder("w", &runtime)
        .unsafe_no_pinned_ca()
        .host_bootstrap_psk(HOST_PSK)
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(both.contains("choose one"), "{both}");
    let none = worker_builder("w", &runtime)
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(none.contains("no bootstrap credential"), "{none}");

    // The runtime still admits a correct worker, also unpinned.
    let ok = run_worker(
        Host::remote()
            .address(francis::testing::free_local_address())
            .runtime_address(runtime.addr.to_string())
            .unsafe_no_pinned_ca()
            .host_bootstrap_psk(HOST_PSK)
            .data(WorkerName("ok".into()))
            .register::<Counter>(),
    )
    .await;
    assert_eq!(ok.service.actor::<Counter>("z").add(1).await.unwrap().0, 1);
    ok.stop().await;
    runtime.stop().await;
}

/// Accepts tokens equal to "good", refuses the rest, counting refusals.
struct FixedTokens(AtomicUsize);

#[async_trait::async_trait]
impl TokenValidator for FixedTokens {
    async fn validate(&self, token: &str) -> Result<String, String> {
        if token == "good" {
            Ok("test-subject".into())
        } else {
            self.0.fetch_add(1, Ordering::SeqCst);
            Err(format!("token {token:?} is not the good one"))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_bootstrap_admits_valid_tokens_and_rereads_token_files() {
    let dir = tempfile::tempdir().unwrap();
    let validator = Arc::new(FixedTokens(AtomicUsize::new(0)));
    let v = validator.clone();
    let runtime = start_runtime(
        &dir.path().join("data.db"),
        "127.0.0.1:0".parse().unwrap(),
        move |b| b.token_validator(v),
    )
    .await;
    let err = worker_builder("w", &runtime)
        .host_bootstrap_jwt("bad")
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("JWT authentication failed"), "{err}");
    assert_eq!(validator.0.load(Ordering::SeqCst), 1);
    let err = worker_builder("w", &runtime)
        .host_bootstrap_psk(HOST_PSK)
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("PSK bootstrap is not enabled"), "{err}");

    let token = dir.path().join("token");
    std::fs::write(&token, "good\n").unwrap();
    let w = run_worker(worker_builder("w", &runtime).host_bootstrap_jwt_file(&token)).await;
    assert_eq!(w.service.actor::<Counter>("j").add(2).await.unwrap().0, 2);
    w.stop().await;
    runtime.stop().await;
}

mod jwt_bootstrap {
    //! JWT bootstrap end to end: a runtime built from YAML with a static JWKS admits workers
    //! with valid tokens and refuses forged, unsigned, mis-addressed and expired ones.

    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use francis::runtime::config::RuntimeConfig;
    use serde_json::{Value, json};

    const ISSUER: &str = "https://issuer.test";
    const AUDIENCE: &str = "francis-runtime";

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    struct Key {
        pair: rcgen::KeyPair,
    }

    impl Key {
        fn new() -> Key {
            Key {
                pair: rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap(),
            }
        }

        fn jwk(&self) -> Value {
            json!({"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": b64(self.pair.public_key_raw())})
        }

        fn sign(&self, header: &Value, claims: &Value) -> String {
            let message = format!(
                "{}.{}",
                b64(header.to_string().as_bytes()),
                b64(claims.to_string().as_bytes())
            );
            let key = jsonwebtoken::EncodingKey::from_ed_der(&self.pair.serialize_der());
            let signature = jsonwebtoken::crypto::sign(
                message.as_bytes(),
                &key,
                jsonwebtoken::Algorithm::EdDSA,
            )
            .unwrap();
            format!("{message}.{signature}")
        }

        fn token(&self, claims: &Value) -> String {
            self.sign(&json!({"alg": "EdDSA", "typ": "JWT", "kid": "k1"}), claims)
        }
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    fn claims(audience: &str, exp: i64) -> Value {
        json!({"iss": ISSUER, "aud": audience, "sub": "worker", "exp": exp, "iat": now(),
               "jti": uuid::Uuid::new_v4().to_string()})
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jwt_bootstrap_admits_valid_tokens_and_refuses_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        let key = Key::new();
        let jwks = json!({"keys": [key.jwk()]}).to_string();
        let yaml = format!(
            "bind: \"127.0.0.1:0\"\nruntimePSKs:\n  - \"{RUNTIME_PSK}\"\nbootstrap:\n  method: jwt\n  jwt:\n    issuer: \"{ISSUER}\"\n    audience: \"{AUDIENCE}\"\n    staticJWKS: '{jwks}'\nprovider:\n  type: sqlite\n  connectionString: \"{}\"\nhttp:\n  bind: \"127.0.0.1:0\"\n",
            dir.path().join("data.db").display()
        );
        let config = RuntimeConfig::from_yaml_str(&yaml, "config.yaml", |_| None).unwrap();
        let runtime = Runtime::from_config(&config).await.unwrap();
        let addr = runtime.local_addr();
        let ca_pem = runtime.cluster_ca().bundle_pem();
        let (stop, task) = support::run_runtime(runtime);
        let running = RunningRuntime {
            addr,
            ca_pem,
            stop: Some(stop),
            task,
        };

        let forger = Key::new();
        let refused = [
            (
                "a forged signature",
                forger.token(&claims(AUDIENCE, now() + 600)),
            ),
            (
                "alg none",
                format!(
                    "{}.{}.",
                    b64(json!({"alg": "none", "typ": "JWT"}).to_string().as_bytes()),
                    b64(claims(AUDIENCE, now() + 600).to_string().as_bytes())
                ),
            ),
            (
                "the wrong audience",
                key.token(&claims("someone-else", now() + 600)),
            ),
            (
                "an expired token",
                key.token(&claims(AUDIENCE, now() - 3600)),
            ),
        ];
        for (what, token) in refused {
            let err = worker_builder("w", &running)
                .host_bootstrap_jwt(token)
                .build()
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains("JWT authentication failed"), "{what}: {err}");
        }

        // A valid token joins, and the same token cannot be replayed by another host.
        let good = key.token(&claims(AUDIENCE, now() + 600));
        let w = run_worker(worker_builder("w", &running).host_bootstrap_jwt(good.clone())).await;
        assert_eq!(w.service.actor::<Counter>("jwt").add(3).await.unwrap().0, 3);
        let replay = worker_builder("w2", &running)
            .host_bootstrap_jwt(good)
            .build()
            .await
            .unwrap_err()
            .to_string();
        assert!(replay.contains("JWT authentication failed"), "{replay}");
        w.stop().await;
        running.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_renew_their_certificates_and_keep_calling_each_other() {
    let dir = tempfile::tempdir().unwrap();
    // A 4 s certificate: renewed about every 2 s.
    let runtime = start_runtime(
        &dir.path().join("data.db"),
        "127.0.0.1:0".parse().unwrap(),
        |b| psk_runtime(b).workload_cert_ttl(Duration::from_secs(4)),
    )
    .await;
    let host = worker_builder("a", &runtime)
        .host_bootstrap_psk(HOST_PSK)
        .build()
        .await
        .unwrap();
    let first = host.certificate_not_after().unwrap();
    let service = host.service();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let b = run_worker(worker_builder("b", &runtime).host_bootstrap_psk(HOST_PSK)).await;
    let start = Instant::now();
    let renewed = loop {
        match host.certificate_not_after() {
            Some(t) if t > first => break t,
            _ if start.elapsed() > STEP => {
                panic!("the certificate was not renewed within {STEP:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let task = tokio::spawn(host.run(async move {
        let _ = stopped.await;
    }));
    assert!(renewed > first);
    // New connections between the workers use the renewed certificates.
    for i in 0..8 {
        let (_, worker) = service
            .actor::<Counter>(format!("n{i}"))
            .add(1)
            .await
            .unwrap();
        let _ = worker;
        b.service
            .actor::<Counter>(format!("n{i}"))
            .add(1)
            .await
            .unwrap();
    }
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    b.stop().await;
    runtime.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_run_on_workers_through_the_runtime_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runtime.db");
    let runtime = start_runtime(&db, "127.0.0.1:0".parse().unwrap(), psk_runtime).await;
    let a = run_worker(worker_builder("a", &runtime).host_bootstrap_psk(HOST_PSK)).await;
    let b = run_worker(worker_builder("b", &runtime).host_bootstrap_psk(HOST_PSK)).await;
    let counter = a.service.actor::<Counter>("jobs");
    let id = counter.job_bump(5).key("first").dispatch().await.unwrap();
    assert_eq!(
        counter.job_bump(7).key("first").dispatch().await.unwrap(),
        id,
        "a taken key answers with its job, through the runtime too"
    );
    let done = eventually("the job succeeds", || {
        let service = b.service.clone();
        let id = id.clone();
        async move {
            match service
                .get_job(id.as_str())
                .await
                .map_err(|e| e.to_string())?
            {
                Some(info) if info.status == francis::JobStatus::Succeeded => Ok(info),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    assert_eq!(done.attempts, 0);
    let (count, _) = b.service.actor::<Counter>("jobs").add(0).await.unwrap();
    assert_eq!(count, 5, "it ran once");

    // A permanent failure is dead-lettered at once; the letter is retried through a worker.
    let doomed = counter.job_bump(-1).dispatch().await.unwrap();
    let letter = eventually("the job is dead-lettered", || {
        let service = a.service.clone();
        async move {
            let letters = service
                .dead_jobs(&francis::model::DeadLetterQuery::default())
                .await
                .map_err(|e| e.to_string())?;
            letters
                .into_iter()
                .next()
                .ok_or_else(|| "no dead letter yet".to_owned())
        }
    })
    .await;
    assert_eq!(letter.job_id.as_deref(), Some(doomed.as_str()));
    assert!(letter.last_error.contains("negative"), "{letter:?}");
    let retried = b.service.retry_dead_job(&letter.id).await.unwrap().unwrap();
    assert_ne!(retried, doomed);
    assert!(
        b.service
            .list_jobs("counter", "jobs")
            .await
            .unwrap()
            .iter()
            .any(|j| j.job_id == retried.as_str())
    );
    a.stop().await;
    b.stop().await;
    runtime.stop().await;
}
