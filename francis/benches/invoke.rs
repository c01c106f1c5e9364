//! Round trip of a call to an ALREADY ACTIVE actor on one host (memory store), on a tokio
//! multi-thread runtime with 2 workers.
//!
//! Group `invoke_latency` (one caller, one call at a time; time per call):
//! - `raw_mpsc_oneshot`: the baseline. A tokio task owns an `i64` and loops on a bounded mpsc
//!   receiver of `(i64, oneshot::Sender<i64>)`, adds, replies.
//! - `kameo_ask`: the same actor in kameo 0.22 (`ask` on a default bounded mailbox).
//! - `francis_exclusive`: `add(&mut self, by)` through the typed proxy (exclusive turn, no
//!   state write).
//! - `francis_shared`: `get(&self)` through the typed proxy (shared turn).
//!
//! The calls of `invoke_latency` are made by criterion's `block_on` thread, outside the runtime,
//! so each one also pays two cross-thread wake-ups (thread unpark/park through the OS). Group
//! `invoke_latency_worker` repeats the four with the calling loop spawned as a task on the
//! runtime, so no thread outside it is woken per call: closer to the CPU cost of each path.
//!
//! Group `invoke_throughput_64` (64 concurrent callers on the same actor; one iteration is one
//! call by each of the 64 callers, so criterion's elements/s is calls/s): raw, kameo and
//! francis exclusive.
//!
//! Group `invoke_latency_worker_observed` (last, since it cannot be undone in a process): the
//! two francis calls of `invoke_latency_worker` once the per-call metrics are on, as they are
//! after the first scrape of `/metrics` (a count per call, and two clock reads for the
//! call-duration and turn-lock wait histograms). Every group before it runs with them off, the
//! state of a process nobody observes.
//!
//! Goals: francis typed invoke ≤ 3x `raw_mpsc_oneshot`, and francis throughput ≥ kameo's.

#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use francis::prelude::*;
use kameo::actor::Spawn;
use kameo::message::{Context, Message};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};

/// Concurrent callers in the throughput group.
const CALLERS: u64 = 64;

// ---- francis ------------------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize, thiserror::Error)]
#[error("{0}")]
struct BenchError(String);

impl From<francis::Error> for BenchError {
    fn from(e: francis::Error) -> Self {
        BenchError(e.to_string())
    }
}

/// Keeps its number in memory only: the benchmark measures the call path, not the store.
struct Adder {
    value: i64,
}

#[francis::actor]
impl Adder {
    fn activate(_ctx: &ActorContext) -> Self {
        Adder { value: 0 }
    }

    pub async fn add(&mut self, by: i64) -> Result<i64, BenchError> {
        self.value += by;
        Ok(self.value)
    }

    pub async fn get(&self) -> Result<i64, BenchError> {
        Ok(self.value)
    }
}

// ---- kameo --------------------------------------------------------------------------------

#[derive(kameo::Actor)]
struct KameoAdder {
    value: i64,
}

struct Add(i64);

impl Message<Add> for KameoAdder {
    type Reply = i64;

    async fn handle(&mut self, Add(by): Add, _ctx: &mut Context<Self, Self::Reply>) -> i64 {
        self.value += by;
        self.value
    }
}

// ---- raw ----------------------------------------------------------------------------------

type RawTx = mpsc::Sender<(i64, oneshot::Sender<i64>)>;

/// The baseline actor: a task owning an `i64`, same mailbox bound as kameo's default (64).
fn spawn_raw(runtime: &Runtime) -> RawTx {
    let (tx, mut rx) = mpsc::channel::<(i64, oneshot::Sender<i64>)>(64);
    runtime.spawn(async move {
        let mut value = 0i64;
        while let Some((by, reply)) = rx.recv().await {
            value += by;
            let _ = reply.send(value);
        }
    });
    tx
}

async fn raw_call(tx: &RawTx, by: i64) -> i64 {
    let (reply_tx, reply_rx) = oneshot::channel();
    tx.send((by, reply_tx)).await.expect("raw actor alive");
    reply_rx.await.expect("raw actor replied")
}

// ---- benches ------------------------------------------------------------------------------

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn francis_host() -> Host {
    Host::local()
        .address(francis::testing::free_local_address())
        .runtime_psk([1u8; 32])
        .memory_store()
        .register::<Adder>()
        .build()
        .await
        .expect("host")
}

/// Spawn `CALLERS` tasks, each with its own clone of `$handle` bound to `$h`, each evaluating
/// `$call` `$iters` times; evaluates to the time until all are done.
macro_rules! concurrent {
    ($iters:expr, $handle:expr, |$h:ident| $call:expr) => {{
        let start = Instant::now();
        let tasks: Vec<_> = (0..CALLERS)
            .map(|_| {
                let $h = $handle.clone();
                tokio::spawn(async move {
                    for _ in 0..$iters {
                        black_box($call);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("caller task");
        }
        start.elapsed()
    }};
}

/// Spawn one caller task on a runtime worker that evaluates `$call` `$iters` times, with its own
/// clone of `$handle` bound to `$h`; evaluates to the time the loop took.
macro_rules! on_worker {
    ($iters:expr, $handle:expr, |$h:ident| $call:expr) => {{
        let $h = $handle.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            for _ in 0..$iters {
                black_box($call);
            }
            start.elapsed()
        })
        .await
        .expect("caller task")
    }};
}

fn invoke(c: &mut Criterion) {
    let runtime = runtime();
    let raw = spawn_raw(&runtime);
    let kameo = {
        let _enter = runtime.enter();
        KameoAdder::spawn(KameoAdder { value: 0 })
    };
    let host = runtime.block_on(francis_host());
    let actor = host.service().actor::<Adder>("bench");
    // Activate it before measuring: every measured call hits an active actor.
    runtime.block_on(async { actor.get().await.expect("activation") });
    assert_eq!(host.active_actors(), 1);

    let mut group = c.benchmark_group("invoke_latency");
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw_mpsc_oneshot", |b| {
        b.to_async(&runtime).iter(|| raw_call(&raw, black_box(1)))
    });
    group.bench_function("kameo_ask", |b| {
        b.to_async(&runtime)
            .iter(|| async { kameo.ask(Add(black_box(1))).await.expect("kameo ask") })
    });
    group.bench_function("francis_exclusive", |b| {
        b.to_async(&runtime)
            .iter(|| async { actor.add(black_box(1)).await.expect("francis add") })
    });
    group.bench_function("francis_shared", |b| {
        b.to_async(&runtime)
            .iter(|| async { actor.get().await.expect("francis get") })
    });
    group.finish();

    let mut group = c.benchmark_group("invoke_latency_worker");
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw_mpsc_oneshot", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let raw = raw.clone();
            async move { on_worker!(iters, raw, |raw| raw_call(&raw, 1).await) }
        })
    });
    group.bench_function("kameo_ask", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let kameo = kameo.clone();
            async move {
                on_worker!(iters, kameo, |kameo| kameo
                    .ask(Add(1))
                    .await
                    .expect("kameo ask"))
            }
        })
    });
    group.bench_function("francis_exclusive", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let actor = actor.clone();
            async move {
                on_worker!(iters, actor, |actor| actor
                    .add(1)
                    .await
                    .expect("francis add"))
            }
        })
    });
    group.bench_function("francis_shared", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let actor = actor.clone();
            async move {
                on_worker!(iters, actor, |actor| actor
                    .get()
                    .await
                    .expect("francis get"))
            }
        })
    });
    group.finish();

    let mut group = c.benchmark_group("invoke_throughput_64");
    group.throughput(Throughput::Elements(CALLERS));
    group.bench_function("raw_mpsc_oneshot", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let raw = raw.clone();
            async move { concurrent!(iters, raw, |raw| raw_call(&raw, 1).await) }
        })
    });
    group.bench_function("kameo_ask", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let kameo = kameo.clone();
            async move {
                concurrent!(iters, kameo, |kameo| kameo
                    .ask(Add(1))
                    .await
                    .expect("kameo ask"))
            }
        })
    });
    group.bench_function("francis_exclusive", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let actor = actor.clone();
            async move {
                concurrent!(iters, actor, |actor| actor
                    .add(1)
                    .await
                    .expect("francis add"))
            }
        })
    });
    group.finish();

    francis::telemetry::metrics::observe_calls();
    let mut group = c.benchmark_group("invoke_latency_worker_observed");
    group.throughput(Throughput::Elements(1));
    group.bench_function("francis_exclusive", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let actor = actor.clone();
            async move {
                on_worker!(iters, actor, |actor| actor
                    .add(1)
                    .await
                    .expect("francis add"))
            }
        })
    });
    group.bench_function("francis_shared", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let actor = actor.clone();
            async move {
                on_worker!(iters, actor, |actor| actor
                    .get()
                    .await
                    .expect("francis get"))
            }
        })
    });
    group.finish();
}

criterion_group!(benches, invoke);
criterion_main!(benches);
