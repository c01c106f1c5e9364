//! Cold activation rate: every call goes to a never-seen actor ID, so each one runs the full
//! activation path (placement lookup, placement write, instance creation, table insert) and
//! then a trivial shared method. Group `activation` (tokio multi-thread runtime, 2 workers; each
//! host runs `Host::run` in the background, so it heartbeats as in production):
//!
//! - `sqlite_sequential`: one caller, SQLite-file host (the placement write is a `BEGIN
//!   IMMEDIATE` transaction in the file).
//! - `sqlite_16_callers`: 16 concurrent callers, each activating its own fresh IDs.
//! - `sqlite_sequential_10k_active`: one caller, on a SQLite host that already has 10 000
//!   active actors of the type (placement picks a host by counting its active actors).
//! - `memory_sequential`, `memory_sequential_10k_active`: the same path on a memory-store host,
//!   as a point of comparison.
//!
//! After each sample, outside the timing, the actors it activated are halted, so the number of
//! active actors stays at the variant's starting level (0 or 10 000) plus at most one sample.
//!
//! No baseline and no goal: the numbers are reported as activations per second.

#![allow(missing_docs)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use francis::prelude::*;
use tokio::runtime::Runtime;

const CALLERS: u64 = 16;
const PREACTIVATED: u64 = 10_000;

#[derive(Debug, Serialize, Deserialize, thiserror::Error)]
#[error("{0}")]
struct BenchError(String);

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Count {
    value: i64,
}

/// A small actor with a state handle that the measured call does not touch.
struct Cold {
    #[allow(dead_code)]
    state: State<Count>,
}

#[francis::actor]
impl Cold {
    fn activate(ctx: &ActorContext) -> Self {
        Cold { state: ctx.state() }
    }

    pub async fn ping(&self) -> Result<(), BenchError> {
        Ok(())
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Fresh IDs, never reused within a run.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn ids(n: u64) -> Vec<String> {
    let first = NEXT_ID.fetch_add(n, Ordering::Relaxed);
    (first..first + n).map(|i| format!("a{i}")).collect()
}

/// Build a host, start `Host::run` in the background, return its service.
fn start_host(runtime: &Runtime, sqlite: Option<PathBuf>) -> Service {
    runtime.block_on(async {
        let builder = Host::local()
            .address(francis::testing::free_local_address())
            .runtime_psk([1u8; 32])
            .register::<Cold>();
        let builder = match sqlite {
            Some(path) => builder.sqlite(path),
            None => builder.memory_store(),
        };
        let host = builder.build().await.expect("host");
        let service = host.service();
        tokio::spawn(host.run(std::future::pending()));
        service
    })
}

/// Activate every ID in `batches`, one task per batch, each batch in order.
async fn activate_all(service: &Service, batches: Vec<Vec<String>>) {
    let tasks: Vec<_> = batches
        .into_iter()
        .map(|ids| {
            let service = service.clone();
            tokio::spawn(async move {
                for id in ids {
                    service.actor::<Cold>(id).ping().await.expect("activation");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("caller task");
    }
}

/// Halt the actors of `batches` (outside the timing).
async fn halt_all(service: &Service, batches: &[Vec<String>]) {
    for id in batches.iter().flatten() {
        service.halt("cold", id).await.expect("halt");
    }
}

/// Activate `callers` × `iters` fresh actors (`callers` tasks, each one after the other);
/// returns the time that took, then halts them.
async fn sample(service: Service, callers: u64, iters: u64) -> Duration {
    let batches: Vec<_> = (0..callers).map(|_| ids(iters)).collect();
    let start = Instant::now();
    activate_all(&service, batches.clone()).await;
    let elapsed = start.elapsed();
    halt_all(&service, &batches).await;
    elapsed
}

fn activation(c: &mut Criterion) {
    let runtime = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = start_host(&runtime, Some(dir.path().join("empty.db")));
    let sqlite_10k = start_host(&runtime, Some(dir.path().join("10k.db")));
    let memory = start_host(&runtime, None);
    let memory_10k = start_host(&runtime, None);
    runtime.block_on(async {
        for service in [&sqlite_10k, &memory_10k] {
            let batches = (0..CALLERS).map(|_| ids(PREACTIVATED / CALLERS)).collect();
            activate_all(service, batches).await;
        }
    });

    let mut group = c.benchmark_group("activation");
    let variants = [
        ("sqlite_sequential", &sqlite, 1),
        ("sqlite_16_callers", &sqlite, CALLERS),
        ("sqlite_sequential_10k_active", &sqlite_10k, 1),
        ("memory_sequential", &memory, 1),
        ("memory_sequential_10k_active", &memory_10k, 1),
    ];
    for (name, service, callers) in variants {
        group.throughput(Throughput::Elements(callers));
        group.bench_function(name, |b| {
            b.to_async(&runtime)
                .iter_custom(|iters| sample(service.clone(), callers, iters))
        });
    }
    group.finish();
}

criterion_group!(benches, activation);
criterion_main!(benches);
