//! `State::set` of the same ~100-byte value on a SQLite-file host, against a raw sqlx upsert
//! of the same bytes (group `state_set`, tokio multi-thread runtime with 2 workers).
//!
//! - `raw_sqlx_upsert` (the baseline, called like `francis_invoke_set` from criterion's
//!   `block_on` thread): `INSERT .. ON CONFLICT DO UPDATE` via `sqlx::query` on a
//!   `SqlitePool` over its own SQLite file, opened with the store's options (WAL, synchronous
//!   NORMAL, foreign keys, 5 s busy timeout, default pool) and holding a copy of the store's
//!   `francis_actor_state` table (same columns, primary key, STRICT, partial index). It binds
//!   the MessagePack bytes `State::set` writes, encoded once up front.
//! - `raw_sqlx_upsert_worker`: the same upserts, looped in a task on a runtime worker (where an
//!   actor's turn runs), timed in that task: the baseline for `francis_set_only`.
//! - `francis_set_only`: `State::set` timed inside one actor turn that performs K sets of the
//!   value (K = criterion's iteration count), so no invoke is included.
//! - `francis_invoke_set`: a typed call of an actor method whose body is one `State::set` (the
//!   value travels as the argument): invoke + encode + upsert.
//!
//! Goal: `State::set` ≤ 1.3x the raw upsert.

#![allow(missing_docs)]

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use francis::prelude::*;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::runtime::Runtime;

#[derive(Debug, Serialize, Deserialize, thiserror::Error)]
#[error("{0}")]
struct BenchError(String);

impl From<francis::Error> for BenchError {
    fn from(e: francis::Error) -> Self {
        BenchError(e.to_string())
    }
}

/// The stored value: 100 bytes once encoded as MessagePack (checked in `state_set`).
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Doc {
    body: String,
}

fn doc() -> Doc {
    Doc {
        body: "x".repeat(92),
    }
}

struct Writer {
    state: State<Doc>,
    doc: Doc,
}

#[francis::actor]
impl Writer {
    fn activate(ctx: &ActorContext) -> Self {
        Writer {
            state: ctx.state(),
            doc: doc(),
        }
    }

    /// One `State::set` per call.
    pub async fn put(&mut self, doc: Doc) -> Result<(), BenchError> {
        self.state.set(doc).await?;
        Ok(())
    }

    /// `k` sets in one turn; returns the nanoseconds they took, timed in the turn.
    pub async fn put_many(&mut self, k: u64) -> Result<u64, BenchError> {
        let start = Instant::now();
        for _ in 0..k {
            self.state.set(self.doc.clone()).await?;
        }
        Ok(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A pool on `path` opened exactly as `francis::store::sqlite::SqliteStore::open` opens its own.
async fn raw_pool(path: &Path) -> SqlitePool {
    let connect = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .connect_with(connect)
        .await
        .expect("raw sqlite pool");
    // The store's table, from migrations/sqlite/0001_schema.sql.
    sqlx::query(
        "CREATE TABLE francis_actor_state (
             actor_type TEXT NOT NULL,
             actor_id TEXT NOT NULL,
             actor_state_data BLOB NOT NULL,
             actor_state_expiration_time INTEGER,
             PRIMARY KEY (actor_type, actor_id)
         ) STRICT",
    )
    .execute(&pool)
    .await
    .expect("create table");
    sqlx::query(
        "CREATE INDEX francis_actor_state_expiration ON francis_actor_state (actor_state_expiration_time)
             WHERE actor_state_expiration_time IS NOT NULL",
    )
    .execute(&pool)
    .await
    .expect("create index");
    pool
}

/// The upsert `SqliteStore::set_state` runs, with the same binds.
async fn raw_upsert(pool: &SqlitePool, bytes: &[u8]) {
    sqlx::query(
        "INSERT INTO francis_actor_state (actor_type, actor_id, actor_state_data, actor_state_expiration_time)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (actor_type, actor_id) DO UPDATE SET
             actor_state_data = excluded.actor_state_data,
             actor_state_expiration_time = excluded.actor_state_expiration_time",
    )
    .bind("writer")
    .bind("bench")
    .bind(bytes)
    .bind(None::<i64>)
    .execute(pool)
    .await
    .expect("raw upsert");
}

fn state_set(c: &mut Criterion) {
    let runtime = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let bytes = rmp_serde::to_vec_named(&doc()).expect("encode");
    assert_eq!(
        bytes.len(),
        100,
        "the benchmark value is 100 bytes on the wire"
    );

    let pool = runtime.block_on(raw_pool(&dir.path().join("raw.db")));
    let host = runtime.block_on(async {
        Host::local()
            .address(francis::testing::free_local_address())
            .runtime_psk([1u8; 32])
            .sqlite(dir.path().join("francis.db"))
            .register::<Writer>()
            .build()
            .await
            .expect("host")
    });
    let actor = host.service().actor::<Writer>("bench");
    runtime.block_on(async {
        // Activate the actor and create both rows, so every measured write is an update.
        actor.put(doc()).await.expect("activation");
        raw_upsert(&pool, &bytes).await;
        let stored: Option<Doc> = host
            .service()
            .get_state("writer", "bench")
            .await
            .expect("read back");
        assert_eq!(stored, Some(doc()));
    });

    let mut group = c.benchmark_group("state_set");
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw_sqlx_upsert", |b| {
        b.to_async(&runtime)
            .iter(|| raw_upsert(&pool, black_box(&bytes)))
    });
    group.bench_function("raw_sqlx_upsert_worker", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let (pool, bytes) = (pool.clone(), bytes.clone());
            async move {
                tokio::spawn(async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        raw_upsert(&pool, black_box(&bytes)).await;
                    }
                    start.elapsed()
                })
                .await
                .expect("raw upsert task")
            }
        })
    });
    group.bench_function("francis_set_only", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let actor = actor.clone();
            async move { Duration::from_nanos(actor.put_many(iters).await.expect("francis put_many")) }
        })
    });
    group.bench_function("francis_invoke_set", |b| {
        b.to_async(&runtime)
            .iter(|| async { actor.put(black_box(doc())).await.expect("francis put") })
    });
    group.finish();
}

criterion_group!(benches, state_set);
criterion_main!(benches);
