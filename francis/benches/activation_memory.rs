//! Bytes per idle activation: a counting global allocator tracks live heap bytes (as requested
//! from the allocator, without malloc's own per-block overhead) while a memory-store host
//! activates 10 000 small actors (one `State<..>` field, never loaded) with one shared call
//! each, and leaves them idle. It prints (live bytes after - before) / N and live allocations
//! per activation.
//!
//! Baselines, measured the same way:
//! - a `HashMap<(String, String), ()>` entry per actor (type + ID as owned strings): the least
//!   any registry of named actors holds;
//! - a kameo 0.22 actor per ID (spawned with the default bounded mailbox, one `ask` each, then
//!   idle), with its `ActorRef` kept in a pre-allocated `Vec`.
//!
//! The counting allocator is `stats_alloc`'s `StatsAlloc<System>` (atomic counters around
//! `std::alloc::System`): a hand-written one needs `unsafe impl GlobalAlloc`, and the
//! workspace sets `unsafe_code = "forbid"`, which no `#![allow]` in a target can lift.
//!
//! A `harness = false` binary: `cargo bench -p francis --bench activation_memory`.

#![allow(missing_docs)]

use std::alloc::System;
use std::collections::HashMap;

use francis::prelude::*;
use kameo::actor::Spawn;
use kameo::message::{Context, Message};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

/// How many actors each measurement creates.
const N: usize = 10_000;

#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Live heap bytes and live blocks right now.
fn live() -> (isize, isize) {
    let stats = ALLOCATOR.stats();
    let signed = |n: usize| isize::try_from(n).unwrap_or(isize::MAX);
    (
        signed(stats.bytes_allocated) - signed(stats.bytes_deallocated),
        signed(stats.allocations) - signed(stats.deallocations),
    )
}

// ---- francis ------------------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize, thiserror::Error)]
#[error("{0}")]
struct BenchError(String);

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Count {
    value: i64,
}

/// A small idle actor: a state handle (never loaded) and a number.
struct Idle {
    #[allow(dead_code)]
    state: State<Count>,
    calls: i64,
}

#[francis::actor]
impl Idle {
    fn activate(ctx: &ActorContext) -> Self {
        Idle {
            state: ctx.state(),
            calls: 0,
        }
    }

    pub async fn ping(&self) -> Result<i64, BenchError> {
        Ok(self.calls)
    }
}

// ---- kameo --------------------------------------------------------------------------------

#[derive(kameo::Actor)]
struct KameoIdle {
    calls: i64,
}

struct Ping;

impl Message<Ping> for KameoIdle {
    type Reply = i64;

    async fn handle(&mut self, _: Ping, _ctx: &mut Context<Self, Self::Reply>) -> i64 {
        self.calls
    }
}

// ---- measurements -------------------------------------------------------------------------

struct Report {
    what: &'static str,
    bytes: isize,
    blocks: isize,
}

impl Report {
    fn print(&self) {
        let n = N as f64;
        println!(
            "{:<38} {:>10} B total  {:>7.1} B/actor  {:>5.1} allocations/actor",
            self.what,
            self.bytes,
            self.bytes as f64 / n,
            self.blocks as f64 / n
        );
    }
}

/// Run `f` and report the live heap it leaves behind (the values it returns are kept alive
/// until the measurement is taken).
async fn measure<T, Fut: Future<Output = T>>(
    what: &'static str,
    f: impl FnOnce() -> Fut,
) -> (Report, T) {
    let (bytes0, blocks0) = live();
    let kept = f().await;
    // Let spawned tasks settle (kameo actors park on their mailboxes).
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let (bytes1, blocks1) = live();
    (
        Report {
            what,
            bytes: bytes1 - bytes0,
            blocks: blocks1 - blocks0,
        },
        kept,
    )
}

fn ids() -> Vec<String> {
    (0..N).map(|i| format!("actor-{i:06}")).collect()
}

async fn run() {
    // HashMap entry baseline.
    let keys = ids();
    let (map_report, map) = measure("HashMap<(String, String), ()> entry", || async {
        let mut map = HashMap::new();
        for id in &keys {
            map.insert(("idle".to_owned(), id.clone()), ());
        }
        map
    })
    .await;
    assert_eq!(map.len(), N);
    drop(map);

    // kameo baseline.
    let mut refs = Vec::with_capacity(N);
    let warm = KameoIdle::spawn(KameoIdle { calls: 0 });
    warm.ask(Ping).await.expect("kameo warm-up");
    let (kameo_report, refs) = measure("kameo actor (spawn + 1 ask, idle)", || async move {
        for _ in 0..N {
            let actor = KameoIdle::spawn(KameoIdle { calls: 0 });
            actor.ask(Ping).await.expect("kameo ask");
            refs.push(actor);
        }
        refs
    })
    .await;
    assert_eq!(refs.len(), N);

    // Francis.
    let host = Host::local()
        .address(francis::testing::free_local_address())
        .runtime_psk([1u8; 32])
        .memory_store()
        // The host is not run (no heartbeats): keep its registration alive however long the
        // activations take (a debug build of the smoke run takes longer than 20 s).
        .health_check_deadline(std::time::Duration::from_secs(3600))
        .register::<Idle>()
        .build()
        .await
        .expect("host");
    let service = host.service();
    // One activation first, so one-time set-up is not counted.
    service
        .actor::<Idle>("warm-up")
        .ping()
        .await
        .expect("francis warm-up");
    let (francis_report, ()) = measure("francis activation (memory store, idle)", || async {
        for id in &keys {
            service
                .actor::<Idle>(id.as_str())
                .ping()
                .await
                .expect("francis activation");
        }
    })
    .await;
    assert_eq!(host.active_actors(), N + 1);

    println!(
        "live heap left behind per idle actor, N = {N} (requested bytes, malloc overhead not included):"
    );
    map_report.print();
    kameo_report.print();
    francis_report.print();
    println!(
        "francis / HashMap entry: {:.1}x   francis / kameo actor: {:.2}x",
        francis_report.bytes as f64 / map_report.bytes as f64,
        francis_report.bytes as f64 / kameo_report.bytes as f64
    );
}

fn main() {
    // A current-thread runtime: no worker threads allocating in the background while measuring.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run());
}
