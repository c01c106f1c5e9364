//! Cross-host calls between TWO PROCESSES on 127.0.0.1, against raw transport baselines measured
//! in the same run, plus cold activations through a shared store. A bench binary that prints its
//! own tables (no criterion).
//!
//! The binary re-executes itself (`std::env::current_exe()` with `FRANCIS_BENCH_ROLE=remote`)
//! as the REMOTE process, which starts
//! - host B (shared SQLite file in a temp dir, or PostgreSQL; same runtime PSK as the parent),
//!   and activates the 64 `echo` actors `hot-0` … `hot-63` through B before any other host
//!   exists, so they live on B;
//! - a raw echo `PeerServer` (francis's own transport: WebTransport over QUIC, mTLS with host
//!   certificates from the same PSK-derived cluster CA, one length-prefixed MessagePack frame
//!   each way per bidirectional stream) whose `PeerHandler` returns `request.data`;
//! - a plain wtransport echo server with the same TLS and QUIC settings but none of our framing:
//!   one bidirectional stream per call, the bytes in, the same bytes back, FIN.
//!
//! It prints their addresses on stdout and runs until its stdin closes. The parent (the LOCAL
//! process) starts host A on the same store and PSK, checks through A that the `hot-*` actors
//! run on B (each call returns the name of the host that runs it, before and after the
//! measurements), then measures, on a tokio multi-thread runtime with 2 workers in each process:
//!
//! - `latency/*`, 1 caller (a task on a runtime worker), one call at a time: p50 / p99 / mean
//!   over 20 000 calls after a warm-up of `--warm-up-time` seconds: `plain_wtransport_echo`,
//!   `raw_peer_echo` (`PeerClient::invoke` → `PeerServer`), and `francis_cross_host` (typed
//!   `echo(&mut self, 32 bytes)` on `hot-0`, called through A, forwarded to B).
//!   `francis_cross_host_small_dedup` runs first of all, 1 000 warm-up calls then 5 000 timed
//!   ones: host B keeps the request ID of every forwarded call of the last 60 s (at most 10 000)
//!   to suppress duplicates; this variant runs while that table is small, the others after it
//!   is full, as on any host serving over ~170 forwarded calls/s, so the two show whether a
//!   full table costs anything per call.
//! - `throughput_64/*`, 64 concurrent callers (tasks) for `--measurement-time` seconds after a
//!   warm-up: the same three, the francis callers each on its own actor (`hot-0` … `hot-63`),
//!   plus `francis_cross_host_one_actor` (all 64 callers on `hot-0`, whose exclusive turns
//!   queue); calls/s and per-call p50 / p99 under that load.
//! - `cold/sqlite/{1,16}`: cold activations on a FRESH two-process cluster sharing a new SQLite
//!   file: every call goes through host A to a never-seen actor ID (placement picks A or B at
//!   random; a call placed on B is forwarded), 1 caller then 16 callers, each for
//!   `--measurement-time` seconds after a warm-up; activations/s, p50 / p99, how many landed
//!   on B.
//! - `cold/postgres/{1,16}`: the same on a fresh two-process cluster on PostgreSQL, when
//!   `FRANCIS_TEST_POSTGRES_URL` is set (a database `francis_bench_<pid>` is created there for
//!   the run and dropped after it; `source tests/postgres.sh start` provides a server).
//!
//! Goal: cross-host typed invoke p50 ≤ 1.5x the raw echo's p50 (`raw_peer_echo`). Ratios against
//! both baselines are printed.
//!
//! Run: `cargo bench -p francis --bench cross_host -- --warm-up-time 1 --measurement-time 4`,
//! optionally with a filter argument (e.g. `-- latency`): only names containing it run.
//! Without `--bench` (e.g. `cargo test --benches`) it runs a short smoke version.

#![allow(missing_docs)]

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use francis::internals::peer::{PeerClient, PeerHandler, PeerLimits, PeerServer};
use francis::internals::wire::{InvokeRequest, InvokeResponse, WireError};
use francis::net::pki::{ClusterCa, HOST_PREFIX, Identity, SpiffeId};
use francis::net::tls::CertSlot;
use francis::prelude::*;
use serde_bytes::ByteBuf;
use support::{Config, Stats, WarmUp, config, latency, rate, ratio, throughput, us, wanted};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wtransport::config::QuicTransportConfig;
use wtransport::endpoint::endpoint_side;
use wtransport::{ClientConfig, Connection, Endpoint, ServerConfig};

/// Env var that turns this binary into the remote process; its value is the store spec.
const ROLE_ENV: &str = "FRANCIS_BENCH_ROLE";
const STORE_ENV: &str = "FRANCIS_BENCH_STORE";
const POSTGRES_ENV: &str = "FRANCIS_TEST_POSTGRES_URL";
const PSK: &str = "cross-host-bench-psk-0123456789abcdef0123456789";
/// The raw echo server's host ID (the client pins the server certificate to it).
const ECHO_HOST_ID: &str = "echo-server";
const CERT_TTL: Duration = Duration::from_secs(24 * 3600);
/// Same idle timeout as a host's peer client with the default 20 s health deadline.
const PEER_IDLE: Duration = Duration::from_secs(5);
/// How many times the plain echo client tries to connect.
const CONNECT_ATTEMPTS: u32 = 3;
const PAYLOAD_BYTES: usize = 32;
const CALLERS: usize = 64;
const COLD_CALLERS: usize = 16;
/// Actors placed on B before A exists.
const HOT_ACTORS: usize = CALLERS;

// ---- the actor ------------------------------------------------------------------------------

/// Which process runs an activation ("a" or "b").
struct HostName(String);

#[derive(Debug, Serialize, Deserialize, thiserror::Error)]
#[error("{0}")]
struct BenchError(String);

struct Echo {
    host: String,
    calls: u64,
}

#[francis::actor]
impl Echo {
    fn activate(ctx: &ActorContext) -> Self {
        let host = ctx
            .data::<HostName>()
            .map(|h| h.0.clone())
            .unwrap_or_default();
        Echo { host, calls: 0 }
    }

    /// The measured call: returns its argument (exclusive turn).
    pub async fn echo(&mut self, data: ByteBuf) -> Result<ByteBuf, BenchError> {
        self.calls += 1;
        Ok(data)
    }

    /// Which host runs this activation, and how many calls it has served.
    pub async fn whereabouts(&self) -> Result<(String, u64), BenchError> {
        Ok((self.host.clone(), self.calls))
    }
}

// ---- shared set-up ----------------------------------------------------------------------------

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn identity(ca: &ClusterCa, host_id: &str) -> Identity {
    ca.issue_host_identity(host_id, CERT_TTL)
        .expect("host identity")
}

/// The QUIC settings of francis's peer transport (`net/peer.rs`): 108 concurrent streams,
/// idle timeout, keep-alive on the client side.
fn quic_transport(idle: Duration, keep_alive: Option<Duration>) -> QuicTransportConfig {
    let mut transport = QuicTransportConfig::default();
    transport.max_concurrent_bidi_streams(wtransport::quinn::VarInt::from_u32(108));
    transport.max_idle_timeout(Some(
        wtransport::quinn::IdleTimeout::try_from(idle).expect("idle timeout"),
    ));
    transport.keep_alive_interval(keep_alive);
    transport
}

enum StoreSpec {
    Sqlite(String),
    Postgres(String),
}

impl StoreSpec {
    fn encode(&self) -> String {
        match self {
            StoreSpec::Sqlite(path) => format!("sqlite:{path}"),
            StoreSpec::Postgres(url) => format!("postgres:{url}"),
        }
    }

    fn decode(spec: &str) -> StoreSpec {
        if let Some(path) = spec.strip_prefix("sqlite:") {
            StoreSpec::Sqlite(path.to_owned())
        } else if let Some(url) = spec.strip_prefix("postgres:") {
            StoreSpec::Postgres(url.to_owned())
        } else {
            panic!("bad store spec {spec:?}")
        }
    }

    fn name(&self) -> &'static str {
        match self {
            StoreSpec::Sqlite(_) => "shared SQLite file",
            StoreSpec::Postgres(_) => "PostgreSQL database",
        }
    }
}

/// A running host: its service, and how to stop it.
struct RunningHost {
    service: Service,
    peer_address: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl RunningHost {
    /// Build a host on `store` named `name`, and run it in the background.
    async fn start(store: &StoreSpec, name: &str) -> RunningHost {
        let builder = Host::local()
            .address(francis::testing::free_local_address())
            .runtime_psk(PSK)
            .data(HostName(name.to_owned()))
            .register::<Echo>();
        let builder = match store {
            StoreSpec::Sqlite(path) => builder.sqlite(path),
            StoreSpec::Postgres(url) => builder.postgres(url.as_str()),
        };
        let host = builder.build().await.expect("host");
        let service = host.service();
        let peer_address = host.peer_address().expect("a networked host");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            host.run(async move {
                let _ = stopped.await;
            })
            .await
            .expect("host run");
        });
        RunningHost {
            service,
            peer_address,
            stop,
            task,
        }
    }

    async fn shut_down(self) {
        let _ = self.stop.send(());
        self.task.await.expect("host task");
    }
}

// ---- the remote process -------------------------------------------------------------------

/// The raw baseline's handler: the request's bytes back.
struct EchoHandler;

#[async_trait::async_trait]
impl PeerHandler for EchoHandler {
    async fn invoke(
        &self,
        _caller: SpiffeId,
        request: InvokeRequest,
    ) -> Result<InvokeResponse, WireError> {
        Ok(InvokeResponse { data: request.data })
    }
}

/// A wtransport server with the peer transport's TLS and QUIC settings, no framing.
fn plain_echo_endpoint(ca: &ClusterCa, id: &Identity) -> Endpoint<endpoint_side::Server> {
    let tls = ca
        .server_config(id, HOST_PREFIX)
        .expect("server TLS config");
    let config = ServerConfig::builder()
        .with_bind_address(SocketAddr::from(([127, 0, 0, 1], 0)))
        .with_custom_tls_and_transport(tls, quic_transport(Duration::from_secs(60), None))
        .build();
    Endpoint::server(config).expect("plain echo endpoint")
}

/// One task per session, one task per stream (as the peer server does): read to FIN, write the
/// bytes back, FIN.
async fn serve_plain_echo(endpoint: Endpoint<endpoint_side::Server>) {
    loop {
        let incoming = endpoint.accept().await;
        tokio::spawn(async move {
            let Ok(request) = incoming.await else { return };
            let Ok(conn) = request.accept().await else {
                return;
            };
            while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                tokio::spawn(async move {
                    let mut buf = Vec::with_capacity(64);
                    if recv.read_to_end(&mut buf).await.is_ok() {
                        let _ = AsyncWriteExt::write_all(&mut send, &buf).await;
                        let _ = AsyncWriteExt::shutdown(&mut send).await;
                    }
                });
            }
        });
    }
}

/// Host B, the hot actors on it, and both echo servers; runs until stdin closes.
fn remote_main(spec: &str) {
    let store = StoreSpec::decode(spec);
    runtime().block_on(async {
        let host = RunningHost::start(&store, "b").await;
        for i in 0..HOT_ACTORS {
            let (on, _) = host
                .service
                .actor::<Echo>(format!("hot-{i}"))
                .whereabouts()
                .await
                .expect("activate a hot actor on B");
            assert_eq!(on, "b");
        }
        let ca = ClusterCa::from_psks(&[PSK]).expect("cluster CA");
        let echo_id = identity(&ca, ECHO_HOST_ID);
        let server = PeerServer::bind(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            &ca.trust(),
            CertSlot::new(&echo_id).expect("identity slot"),
            Arc::new(EchoHandler),
            PeerLimits::default(),
            Arc::default(),
        )
        .expect("raw echo server");
        let echo_addr = server.local_addr();
        let (stop_echo, echo_stopped) = oneshot::channel::<()>();
        let echo_task = tokio::spawn(server.serve(async move {
            let _ = echo_stopped.await;
        }));
        let plain = plain_echo_endpoint(&ca, &echo_id);
        let plain_addr = plain.local_addr().expect("plain echo address");
        let plain_task = tokio::spawn(serve_plain_echo(plain));

        println!(
            "READY host={} echo={echo_addr} plain={plain_addr}",
            host.peer_address
        );
        std::io::Write::flush(&mut std::io::stdout()).expect("flush stdout");

        // Until the parent closes our stdin (or exits).
        let (closed, stdin_closed) = oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
            let _ = closed.send(());
        });
        let _ = stdin_closed.await;
        plain_task.abort();
        let _ = stop_echo.send(());
        let _ = echo_task.await;
        host.shut_down().await;
    });
}

/// The remote process, as seen by the parent.
struct Remote {
    child: Child,
    echo: SocketAddr,
    plain: SocketAddr,
    host: SocketAddr,
}

impl Remote {
    fn spawn(store: &StoreSpec) -> Remote {
        let exe = std::env::current_exe().expect("current exe");
        let mut child = Command::new(exe)
            .env(ROLE_ENV, "remote")
            .env(STORE_ENV, store.encode())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the remote process");
        let stdout = child.stdout.take().expect("remote stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the remote process reports READY within 2 minutes");
        let field = |name: &str| -> SocketAddr {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in the remote's line {line:?}"))
        };
        Remote {
            echo: field("echo="),
            plain: field("plain="),
            host: field("host="),
            child,
        }
    }

    fn stop(mut self) {
        drop(self.child.stdin.take());
        let status = self.child.wait().expect("wait for the remote process");
        assert!(status.success(), "remote process failed: {status}");
    }
}

/// A parent that panics must not leave the remote process running.
impl Drop for Remote {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---- what the parent calls ------------------------------------------------------------------

/// A plain wtransport session to the remote's plain echo server.
struct PlainClient {
    conn: Connection,
    // Kept so the endpoint lives as long as the session.
    _endpoint: Endpoint<endpoint_side::Client>,
}

async fn plain_client(ca: &ClusterCa, id: &Identity, addr: SocketAddr) -> PlainClient {
    let tls = ca
        .client_config(id, HOST_PREFIX)
        .expect("client TLS config");
    let config = ClientConfig::builder()
        .with_bind_address(SocketAddr::from(([0, 0, 0, 0], 0)))
        .with_custom_tls_and_transport(tls, quic_transport(PEER_IDLE, Some(PEER_IDLE / 3)))
        .build();
    let endpoint = Endpoint::client(config).expect("plain client endpoint");
    // The handshake is bounded by the idle timeout (5 s); on a loaded machine a first attempt
    // can run out of it, so try a few times before giving up.
    let mut attempt = 1;
    let conn = loop {
        match endpoint.connect(format!("https://{addr}/echo")).await {
            Ok(conn) => break conn,
            Err(e) if attempt < CONNECT_ATTEMPTS => {
                eprintln!("plain echo session, attempt {attempt}: {e}; retrying");
                attempt += 1;
            }
            Err(e) => panic!("plain echo session: {e} ({CONNECT_ATTEMPTS} attempts)"),
        }
    };
    PlainClient {
        conn,
        _endpoint: endpoint,
    }
}

/// What one call goes to.
#[derive(Clone)]
enum Target {
    /// Plain wtransport: one stream, the payload bytes in and back.
    Plain(Arc<PlainClient>),
    /// `PeerClient::invoke` to the raw echo `PeerServer` at this address.
    Raw(PeerClient, String),
    /// A typed call through host A; caller `i` calls `actors[i % len]`.
    Francis(Vec<ActorRef<Echo>>),
}

struct Payload {
    value: ByteBuf,
    /// `value` as MessagePack (what a typed call puts in the request's `data`).
    encoded: Vec<u8>,
}

impl Target {
    async fn call(&self, caller: usize, payload: &Payload) {
        match self {
            Target::Plain(client) => {
                let (mut send, mut recv) = client
                    .conn
                    .open_bi()
                    .await
                    .expect("open a stream")
                    .await
                    .expect("stream opened");
                AsyncWriteExt::write_all(&mut send, &payload.encoded)
                    .await
                    .expect("send");
                AsyncWriteExt::shutdown(&mut send).await.expect("FIN");
                let mut back = Vec::with_capacity(64);
                recv.read_to_end(&mut back).await.expect("read the echo");
                assert_eq!(back.len(), payload.encoded.len());
            }
            Target::Raw(client, address) => {
                let request = InvokeRequest::new(
                    ECHO_HOST_ID,
                    "echo",
                    "hot-0",
                    "echo",
                    payload.encoded.clone(),
                );
                let response = client.invoke(address, request).await.expect("raw echo");
                assert_eq!(response.data.len(), payload.encoded.len());
            }
            Target::Francis(actors) => {
                let back = actors[caller % actors.len()]
                    .echo(payload.value.clone())
                    .await
                    .expect("cross-host echo");
                assert_eq!(back.len(), payload.value.len());
            }
        }
    }
}

// ---- measuring --------------------------------------------------------------------------------

/// A call function for the shared drivers: `call(caller)` makes one call of `target`.
fn caller(
    target: &Target,
    payload: &Arc<Payload>,
) -> impl Fn(usize) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
+ Clone
+ Send
+ 'static {
    let (target, payload) = (target.clone(), payload.clone());
    move |caller| {
        let (target, payload) = (target.clone(), payload.clone());
        Box::pin(async move { target.call(caller, &payload).await })
    }
}

struct ColdStats {
    stats: Stats,
    on_b: usize,
    failed: usize,
    callers: usize,
}

/// Fresh actor IDs through `service`, `callers` at a time, for the warm-up then the
/// measurement window; counts where each one was placed.
async fn cold(service: &Service, tag: &str, callers: usize, config: Config) -> ColdStats {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let window_start = Instant::now() + config.warm_up;
    let window_end = window_start + config.measure;
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let service = service.clone();
            let tag = tag.to_owned();
            tokio::spawn(async move {
                let (mut samples, mut on_b, mut failed) = (Vec::new(), 0, 0);
                loop {
                    let t = Instant::now();
                    if t >= window_end {
                        break;
                    }
                    let id = format!("cold-{tag}-{}", NEXT.fetch_add(1, Ordering::Relaxed));
                    let placed = service.actor::<Echo>(id).whereabouts().await;
                    if t < window_start {
                        continue;
                    }
                    match placed {
                        Ok((host, _)) => {
                            samples.push(t.elapsed());
                            on_b += usize::from(host == "b");
                        }
                        Err(e) => {
                            failed += 1;
                            if failed == 1 {
                                eprintln!("cold activation failed: {e}");
                            }
                        }
                    }
                }
                (samples, on_b, failed, Instant::now())
            })
        })
        .collect();
    let (mut all, mut on_b, mut failed, mut last) = (Vec::new(), 0, 0, window_end);
    for task in tasks {
        let (samples, b, f, done) = task.await.expect("cold caller task");
        all.extend(samples);
        on_b += b;
        failed += f;
        last = last.max(done);
    }
    ColdStats {
        stats: Stats::new(all, last - window_start),
        on_b,
        failed,
        callers,
    }
}

// ---- the parent -------------------------------------------------------------------------------

fn print_cold(store: &str, runs: &[ColdStats]) {
    println!(
        "\n### Cold activation through the {store} (fresh two-process cluster, called through \
         host A)\n"
    );
    println!(
        "| callers | activations | activations/s | p50 | p99 | placed on B (forwarded) | failed |"
    );
    println!("|---|---|---|---|---|---|---|");
    for run in runs {
        println!(
            "| {} | {} | {} | {} | {} | {} ({:.0}%) | {} |",
            run.callers,
            run.stats.calls,
            rate(run.stats.per_second),
            us(run.stats.p50),
            us(run.stats.p99),
            run.on_b,
            100.0 * run.on_b as f64 / run.stats.calls.max(1) as f64,
            run.failed
        );
    }
}

type Measured = Vec<(String, Stats)>;

fn find<'a>(calls: &'a Measured, name: &str) -> Option<&'a Stats> {
    calls.iter().find(|(n, _)| n == name).map(|(_, s)| s)
}

fn print_calls(config: Config, remote: &str, calls: &Measured) {
    println!("\n### Cross-host calls (host A → host B over loopback QUIC, two processes)\n");
    println!(
        "Host B (remote process) at {remote}. Payload {PAYLOAD_BYTES} bytes; latency: 1 caller, \
         {} calls after {:?} of warm-up; throughput: {CALLERS} callers for {:?} after {:?} of \
         warm-up.\n",
        config.latency_calls, config.warm_up, config.measure, config.warm_up
    );
    println!("| benchmark | calls | p50 | p99 | mean | calls/s |");
    println!("|---|---|---|---|---|---|");
    for (name, s) in calls {
        println!(
            "| `{name}` | {} | {} | {} | {} | {} |",
            s.calls,
            us(s.p50),
            us(s.p99),
            us(s.mean),
            rate(s.per_second)
        );
    }
    for group in ["latency", "throughput_64"] {
        let stat = |name: &str| find(calls, &format!("{group}/{name}"));
        let (Some(plain), Some(raw), Some(francis)) = (
            stat("plain_wtransport_echo"),
            stat("raw_peer_echo"),
            stat("francis_cross_host"),
        ) else {
            continue;
        };
        println!("\nRatios, `{group}`:\n");
        println!("| ratio | p50 | p99 | calls/s |");
        println!("|---|---|---|---|");
        for (name, a, b) in [
            ("francis / raw_peer_echo", francis, raw),
            ("francis / plain_wtransport_echo", francis, plain),
            ("raw_peer_echo / plain_wtransport_echo", raw, plain),
        ] {
            println!(
                "| {name} | {:.2}x | {:.2}x | {:.2}x |",
                ratio(a.p50, b.p50),
                ratio(a.p99, b.p99),
                a.per_second / b.per_second
            );
        }
    }
    let (Some(francis), Some(raw)) = (
        find(calls, "latency/francis_cross_host"),
        find(calls, "latency/raw_peer_echo"),
    ) else {
        return;
    };
    let goal = ratio(francis.p50, raw.p50);
    println!(
        "\nGoal: cross-host p50 ≤ 1.5x the raw echo's p50: {goal:.2}x, {}",
        if goal <= 1.5 { "MET" } else { "NOT MET" }
    );
}

/// Calls with the small duplicate-request table: warm-up calls and timed calls, together
/// under host B's 10 000-entry cap (full run).
const SMALL_DEDUP_WARM_UP: usize = 1_000;
const SMALL_DEDUP_CALLS: usize = 5_000;

/// The call measurements, on a two-process cluster sharing a SQLite file.
fn calls_phase(config: Config) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cluster.db");
    let store = StoreSpec::Sqlite(path.to_str().expect("UTF-8 temp path").to_owned());
    let remote = Remote::spawn(&store);
    let rt = runtime();
    let calls = rt.block_on(async {
        let a = RunningHost::start(&store, "a").await;
        let actors: Vec<ActorRef<Echo>> = (0..HOT_ACTORS)
            .map(|i| a.service.actor::<Echo>(format!("hot-{i}")))
            .collect();
        for actor in &actors {
            let (on, _) = actor.whereabouts().await.expect("whereabouts through A");
            assert_eq!(on, "b", "{} must live on host B", actor.id());
        }

        let ca = ClusterCa::from_psks(&[PSK]).expect("cluster CA");
        let client_id = identity(&ca, "bench-client");
        let plain = Arc::new(plain_client(&ca, &client_id, remote.plain).await);
        let peer = PeerClient::new(
            &ca.trust(),
            CertSlot::new(&client_id).expect("identity slot"),
            Duration::from_secs(15),
            PEER_IDLE,
        )
        .expect("peer client");
        let value = ByteBuf::from(vec![7u8; PAYLOAD_BYTES]);
        let encoded = rmp_serde::to_vec(&value).expect("encode");
        let payload = Arc::new(Payload { value, encoded });
        let francis = Target::Francis(actors.clone());
        let mut calls = Measured::new();

        // First, while host B has served fewer than 10 000 forwarded calls.
        let name = "latency/francis_cross_host_small_dedup".to_owned();
        if wanted(&name) {
            let (warm, n) = if config.full {
                (SMALL_DEDUP_WARM_UP, SMALL_DEDUP_CALLS)
            } else {
                (50, config.latency_calls)
            };
            let stats = latency(caller(&francis, &payload), WarmUp::Calls(warm), n).await;
            calls.push((name, stats));
        }

        let targets = [
            ("plain_wtransport_echo", Target::Plain(plain)),
            ("raw_peer_echo", Target::Raw(peer, remote.echo.to_string())),
            ("francis_cross_host", francis),
        ];
        for (name, target) in &targets {
            let name = format!("latency/{name}");
            if wanted(&name) {
                let warm_up = WarmUp::For(config.warm_up);
                let stats = latency(caller(target, &payload), warm_up, config.latency_calls).await;
                calls.push((name, stats));
            }
        }
        let one = (
            "francis_cross_host_one_actor",
            Target::Francis(vec![actors[0].clone()]),
        );
        for (name, target) in targets.iter().chain([&one]) {
            let name = format!("throughput_64/{name}");
            if wanted(&name) {
                let stats = throughput(caller(target, &payload), CALLERS, config).await;
                calls.push((name, stats));
            }
        }

        // Still on B after all of that.
        let (on, served) = actors[0].whereabouts().await.expect("whereabouts");
        assert_eq!(on, "b", "hot-0 stayed on host B");
        eprintln!("hot-0 is on host {on}, served {served} calls");
        a.shut_down().await;
        calls
    });
    let remote_host = remote.host.to_string();
    remote.stop();
    if !calls.is_empty() {
        print_calls(config, &remote_host, &calls);
    }
}

/// Cold activations on a fresh two-process cluster on `store`; `tag` names the measurements
/// (`cold/<tag>/<callers>`).
fn cold_phase(config: Config, store: &StoreSpec, tag: &str) {
    let rt = runtime();
    let remote = Remote::spawn(store);
    let colds = rt.block_on(async {
        let a = RunningHost::start(store, "a").await;
        let mut colds = Vec::new();
        for callers in [1, COLD_CALLERS] {
            if wanted(&format!("cold/{tag}/{callers}")) {
                colds.push(cold(&a.service, &format!("{tag}-{callers}"), callers, config).await);
            }
        }
        a.shut_down().await;
        colds
    });
    remote.stop();
    print_cold(store.name(), &colds);
}

fn wanted_cold(tag: &str) -> bool {
    wanted(&format!("cold/{tag}/1")) || wanted(&format!("cold/{tag}/{COLD_CALLERS}"))
}

/// Cold activations through a fresh shared SQLite file.
fn sqlite_cold_phase(config: Config) {
    if !wanted_cold("sqlite") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cold.db");
    let store = StoreSpec::Sqlite(path.to_str().expect("UTF-8 temp path").to_owned());
    cold_phase(config, &store, "sqlite");
}

/// The PostgreSQL phase: cold activations with both hosts on a fresh database.
fn postgres_phase(config: Config) {
    if !wanted_cold("postgres") {
        return;
    }
    let heading = "\n### Cold activation through PostgreSQL\n";
    let Ok(admin_url) = std::env::var(POSTGRES_ENV) else {
        println!(
            "{heading}\nNot measured: {POSTGRES_ENV} is not set (`source tests/postgres.sh start` \
             sets it)."
        );
        return;
    };
    let name = format!("francis_bench_{}", std::process::id());
    let Some(url) = support::with_database(&admin_url, &name) else {
        println!("{heading}\nNot measured: cannot parse {POSTGRES_ENV}.");
        return;
    };
    let rt = runtime();
    if let Err(e) = rt.block_on(support::postgres_admin(
        &admin_url,
        &format!("CREATE DATABASE {name}"),
    )) {
        println!("{heading}\nNot measured: cannot create a database: {e}");
        return;
    }
    let store = StoreSpec::Postgres(url);
    cold_phase(config, &store, "postgres");
    if let Err(e) = rt.block_on(support::postgres_admin(
        &admin_url,
        &format!("DROP DATABASE {name} WITH (FORCE)"),
    )) {
        eprintln!("could not drop the bench database {name}: {e}");
    }
}

fn main() {
    if std::env::var(ROLE_ENV).is_ok() {
        let spec = std::env::var(STORE_ENV).expect("store spec for the remote process");
        remote_main(&spec);
        return;
    }
    let config = config();
    if !config.full {
        println!("cross_host: smoke run (pass --bench, as `cargo bench` does, for the real one)");
    }
    calls_phase(config);
    sqlite_cold_phase(config);
    postgres_phase(config);
}
