//! The remote topology against the local topology on the same machine, in one process over
//! real QUIC sockets on 127.0.0.1, plus the rate of placement lookups a runtime answers. A bench
//! binary that prints its own table (no criterion).
//!
//! Setup: a runtime (SQLite file in a temp dir) with two remote workers A and B; two local hosts
//! C and D sharing another SQLite file. 64 `echo` actors are activated on B (through B, before
//! A exists) and 64 on D (likewise). Then, on a tokio multi-thread runtime with 2 workers:
//! - `{local,remote}/owner`: calls made through the host that owns the actor (no network hop);
//! - `{local,remote}/cross_host`: calls made through the other host, forwarded to the owner
//!   over the peer transport. In both topologies this path is the same peer-to-peer hop: the
//!   runtime is not on the invoke path once placements are cached;
//! - latency: 1 caller, one call at a time, p50 / p99 / mean over `latency_calls` calls;
//!   throughput: 64 callers, each on its own actor, calls/s over the measurement window;
//! - `runtime/lookup_{1,64}`: placement lookups of already placed actors sent by worker A to
//!   the runtime through its store link (one RPC over the session + one store read each),
//!   1 and 64 concurrent callers, lookups/s.
//!
//! Run: `cargo bench -p francis --bench remote -- --warm-up-time 1 --measurement-time 4`
//! (optionally with a name filter). Without `--bench` it runs a short smoke version.

#![allow(missing_docs)]

mod support;

use std::sync::Arc;

use francis::prelude::*;
use francis::runtime::Runtime;
use francis::store::{ActorKey, LookupOptions, Store};
use support::{Config, Stats, WarmUp, config, latency, rate, ratio, throughput, us, wanted};

const RUNTIME_PSK: &str = "remote-bench-runtime-psk-0123456789abcdef";
const HOST_PSK: &str = "remote-bench-host-psk";
const LOCAL_PSK: &str = "remote-bench-local-psk-0123456789abcdef01";
const CALLERS: usize = 64;

struct HostName(String);

#[derive(Debug, Serialize, Deserialize, thiserror::Error)]
#[error("{0}")]
struct BenchError(String);

struct Echo {
    host: String,
}

#[francis::actor]
impl Echo {
    fn activate(ctx: &ActorContext) -> Self {
        Echo {
            host: ctx
                .data::<HostName>()
                .map(|h| h.0.clone())
                .unwrap_or_default(),
        }
    }

    /// Returns the payload.
    pub async fn echo(&mut self, payload: Vec<u8>) -> Result<Vec<u8>, BenchError> {
        Ok(payload)
    }

    /// The host running this activation.
    pub async fn host(&self) -> Result<String, BenchError> {
        Ok(self.host.clone())
    }
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

struct Running {
    service: Service,
    store: Arc<dyn Store>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn run(host: Host) -> Running {
    let service = host.service();
    let store = host.store();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = host
            .run(async move {
                let _ = stopped.await;
            })
            .await;
    });
    Running {
        service,
        store,
        stop,
        task,
    }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

async fn remote_worker(name: &str, runtime: &str, ca: &str) -> Running {
    let host = Host::remote()
        .address(francis::testing::free_local_address())
        .runtime_address(runtime)
        .pinned_ca(ca)
        .host_bootstrap_psk(HOST_PSK)
        .data(HostName(name.into()))
        .register_with::<Echo>(ActorOptions::default().never_idle())
        .build()
        .await
        .expect("remote worker");
    run(host).await
}

async fn local_host(name: &str, db: &std::path::Path) -> Running {
    let host = Host::local()
        .address(francis::testing::free_local_address())
        .sqlite(db)
        .runtime_psk(LOCAL_PSK)
        .data(HostName(name.into()))
        .register_with::<Echo>(ActorOptions::default().never_idle())
        .build()
        .await
        .expect("local host");
    run(host).await
}

/// The 64 hot actors, activated through `owner` so they live there.
async fn hot_actors(owner: &Running, name: &str) -> Vec<String> {
    let ids: Vec<String> = (0..CALLERS).map(|i| format!("hot-{i}")).collect();
    for id in &ids {
        let on = owner
            .service
            .actor::<Echo>(id)
            .host()
            .await
            .expect("activate");
        assert_eq!(on, name);
    }
    ids
}

fn invoker(
    service: &Service,
    ids: &[String],
) -> impl Fn(usize) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
+ Clone
+ Send
+ 'static {
    let refs: Arc<Vec<ActorRef<Echo>>> =
        Arc::new(ids.iter().map(|id| service.actor::<Echo>(id)).collect());
    move |caller| {
        let refs = refs.clone();
        Box::pin(async move {
            let back = refs[caller % refs.len()]
                .echo(vec![7u8; 32])
                .await
                .expect("echo");
            assert_eq!(back.len(), 32);
        })
    }
}

fn looker(
    store: &Arc<dyn Store>,
    ids: &[String],
) -> impl Fn(usize) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
+ Clone
+ Send
+ 'static {
    let keys: Arc<Vec<ActorKey>> =
        Arc::new(ids.iter().map(|id| ActorKey::new("echo", id)).collect());
    let store = store.clone();
    move |caller| {
        let (keys, store) = (keys.clone(), store.clone());
        Box::pin(async move {
            store
                .lookup_actor(&keys[caller % keys.len()], &LookupOptions::default())
                .await
                .expect("lookup");
        })
    }
}

type Rows = Vec<(String, Stats)>;

async fn measure_calls(
    rows: &mut Rows,
    topology: &str,
    owner: &Running,
    other: &Running,
    ids: &[String],
    config: Config,
) {
    for (path, via) in [("owner", owner), ("cross_host", other)] {
        let name = format!("{topology}/{path}/latency");
        if wanted(&name) {
            let stats = latency(
                invoker(&via.service, &ids[..1]),
                WarmUp::For(config.warm_up),
                config.latency_calls,
            )
            .await;
            rows.push((name, stats));
        }
        let name = format!("{topology}/{path}/throughput_64");
        if wanted(&name) {
            let stats = throughput(invoker(&via.service, ids), CALLERS, config).await;
            rows.push((name, stats));
        }
    }
}

fn print(rows: &Rows) {
    println!("\n| measurement | calls | calls/s | p50 | p99 | mean |");
    println!("|---|---|---|---|---|---|");
    for (name, s) in rows {
        println!(
            "| `{name}` | {} | {} | {} | {} | {} |",
            s.calls,
            rate(s.per_second),
            us(s.p50),
            us(s.p99),
            us(s.mean)
        );
    }
    let find = |n: &str| rows.iter().find(|(name, _)| name == n).map(|(_, s)| s);
    println!();
    for path in ["owner", "cross_host"] {
        if let (Some(r), Some(l)) = (
            find(&format!("remote/{path}/latency")),
            find(&format!("local/{path}/latency")),
        ) {
            println!(
                "remote/{path} p50 = {:.2}x local/{path} p50",
                ratio(r.p50, l.p50)
            );
        }
        if let (Some(r), Some(l)) = (
            find(&format!("remote/{path}/throughput_64")),
            find(&format!("local/{path}/throughput_64")),
        ) {
            println!(
                "remote/{path} throughput = {:.2}x local/{path} throughput",
                r.per_second / l.per_second
            );
        }
    }
}

fn main() {
    let config = config();
    if !config.full {
        println!("remote: smoke run (pass --bench, as `cargo bench` does, for the real one)");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = tokio_runtime();
    let rows = rt.block_on(async {
        let runtime = Runtime::builder()
            .bind("127.0.0.1:0".parse().expect("address"))
            .runtime_psk(RUNTIME_PSK)
            .host_psk(HOST_PSK)
            .sqlite(dir.path().join("runtime.db"))
            .build()
            .await
            .expect("runtime");
        let address = runtime.local_addr().to_string();
        let ca = runtime.cluster_ca().bundle_pem();
        let (stop_runtime, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime_task = tokio::spawn(runtime.run(async move {
            let _ = stopped.await;
        }));

        let mut rows = Rows::new();
        let b = remote_worker("b", &address, &ca).await;
        let remote_ids = hot_actors(&b, "b").await;
        let a = remote_worker("a", &address, &ca).await;
        let d = local_host("d", &dir.path().join("local.db")).await;
        let local_ids = hot_actors(&d, "d").await;
        let c = local_host("c", &dir.path().join("local.db")).await;

        measure_calls(&mut rows, "local", &d, &c, &local_ids, config).await;
        measure_calls(&mut rows, "remote", &b, &a, &remote_ids, config).await;
        for callers in [1, CALLERS] {
            let name = format!("runtime/lookup_{callers}");
            if wanted(&name) {
                let stats = throughput(looker(&a.store, &remote_ids), callers, config).await;
                rows.push((name, stats));
            }
        }
        for host in [a, b, c, d] {
            host.stop().await;
        }
        let _ = stop_runtime.send(());
        let _ = runtime_task.await;
        rows
    });
    print(&rows);
}
