//! Durable jobs: how fast a queue of N one-shot jobs (default 100 000) is dispatched, and then
//! drained by 1 or 3 hosts, on SQLite and on PostgreSQL, against a raw
//! `SELECT … FOR UPDATE SKIP LOCKED` queue loop on the same PostgreSQL server. A bench binary
//! that prints its own tables (no criterion).
//!
//! Each Francis case (`francis/<store>/<hosts>h/b<batch>`) starts from an empty store (a new
//! SQLite file in a temp dir, or a new PostgreSQL database) and runs two phases:
//!
//! 1. **Dispatch.** A front-end host (built on the store, never run: it has no alarm loop, so
//!    nothing is drained while the queue fills) dispatches N jobs through its [`Service`] from
//!    64 concurrent tasks (`--dispatchers`), job `i` on actor `w-{i % actors}` (`--actors`,
//!    default 1 000: 100 jobs per actor, as a user with jobs per entity has; jobs of one actor
//!    run one at a time in its exclusive turns, and a job per actor would measure 100 000
//!    activations instead of jobs). Measured: dispatches per second.
//! 2. **Drain.** Then 1 or 3 hosts are built on the same store, each with its own address
//!    (local topology, in this process, one tokio runtime of 2 workers), and started together;
//!    measured: the time from their start until the `#[job]` method (a no-op that counts its
//!    runs in an `AtomicU64`, shared through the hosts' `.data(..)`) has run N times, and until
//!    every job row is gone (each success committed). The hosts use
//!    `alarms_fetch_ahead(2.5 s, <batch>)` (`--batch`, a comma-separated list: each value is
//!    one case), `alarms_poll_interval(--poll-ms, default 250 ms)` and the default 20 s lease.
//!
//! For each drain it also prints what the store did per job (`francis_store_operation_duration
//! _seconds`: calls and mean time of each store operation, all hosts of the process together),
//! the most jobs leased and started at once (`francis_alarms_total`: due − fired − retried −
//! dropped), and where the CPU went: this process, the PostgreSQL server's processes (from
//! `/proc`), and the whole machine's busy share. `--analyze` runs `ANALYZE` on the store between
//! the two phases (the planner otherwise plans the drain's queries with the statistics of an
//! empty table, until autovacuum catches up).
//!
//! The raw baseline (`raw/<hosts>x<conns>/b<batch>`, PostgreSQL only): a table
//! `raw_jobs (id bigserial, payload bytea, due bigint, done bool)` with a partial index on `due`
//! where not done, filled with N rows of the same 32-byte payload by 64 tasks inserting one row
//! each through a pool of 8 connections (what the Francis front end has), then drained by
//! `hosts × 8` workers (each Francis host's store has a pool of 8 connections), each looping
//! `BEGIN; SELECT id, payload … WHERE NOT done AND due <= now ORDER BY due LIMIT <batch> FOR
//! UPDATE SKIP LOCKED; UPDATE … SET done = true WHERE id = ANY(..); COMMIT` and counting the
//! rows, until the queue is empty. `raw/3x8/b1` (one job per transaction) is printed as well.
//!
//! Goal (issue 15): ≥ 5 000 jobs/s drained on PostgreSQL with 3 hosts, and ≥ 0.5x the raw queue
//! with the same batch size.
//!
//! Run: `cargo bench -p francis --bench jobs -- [--jobs N] [--actors N] [--batch 25,100]
//! [--dispatchers 64] [--poll-ms 250] [--analyze] [FILTER]`; `FRANCIS_BENCH_JOBS` also sets N. FILTER is a
//! comma-separated list of substrings of case names (`sqlite`, `postgres/3h`, `raw`, `b100`):
//! only cases matching one of them run. The PostgreSQL cases need `FRANCIS_TEST_POSTGRES_URL`
//! (`source tests/postgres.sh start` provides a server; each case creates a database
//! `francis_bench_jobs_<pid>_<n>` there and drops it after), and are skipped with a message
//! without it. Without `--bench` (e.g. `cargo test --benches`) it runs a short smoke version
//! (200 jobs on 20 actors).

#![allow(missing_docs)]

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use francis::host::DEFAULT_ALARMS_FETCH_AHEAD;
use francis::prelude::*;
use serde_bytes::ByteBuf;
use support::rate;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const POSTGRES_ENV: &str = "FRANCIS_TEST_POSTGRES_URL";
const JOBS_ENV: &str = "FRANCIS_BENCH_JOBS";
const PSK: &str = "jobs-bench-psk-0123456789abcdef0123456789abcdef";
const PAYLOAD_BYTES: usize = 32;
/// The connection pool of a PostgreSQL store (`francis::store::postgres::DEFAULT_MAX_CONNECTIONS`).
const PG_POOL: usize = 8;

// ---- the actor ------------------------------------------------------------------------------

/// How many times the job method ran, on every host of a case (each host's `.data(..)` holds a
/// clone).
#[derive(Clone, Default)]
struct Ran(Arc<AtomicU64>);

impl Ran {
    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

struct Worker {
    ran: Arc<Ran>,
}

#[francis::actor]
impl Worker {
    fn activate(ctx: &ActorContext) -> Self {
        Worker {
            ran: ctx.data::<Ran>().expect("the hosts carry a Ran counter"),
        }
    }

    /// The measured job: a no-op that counts itself.
    #[job]
    pub async fn work(&mut self, payload: ByteBuf) -> Result<(), JobFailure> {
        std::hint::black_box(&payload);
        self.ran.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

// ---- settings ---------------------------------------------------------------------------------

struct Settings {
    full: bool,
    jobs: u64,
    actors: u64,
    dispatchers: usize,
    batches: Vec<u32>,
    poll: Duration,
    /// Run `ANALYZE` on the store after dispatching, before draining.
    analyze: bool,
    filters: Vec<String>,
}

impl Settings {
    fn parse() -> Settings {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let full = args.iter().any(|a| a == "--bench");
        let mut settings = Settings {
            full,
            jobs: if full { 100_000 } else { 200 },
            actors: if full { 1_000 } else { 20 },
            dispatchers: if full { 64 } else { 8 },
            batches: if full { vec![25, 100] } else { vec![25] },
            poll: Duration::from_millis(250),
            analyze: false,
            filters: Vec::new(),
        };
        if let Some(jobs) = std::env::var(JOBS_ENV).ok().and_then(|v| v.parse().ok()) {
            settings.jobs = jobs;
        }
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            let mut value = || {
                rest.next()
                    .unwrap_or_else(|| panic!("{arg} needs a value"))
                    .clone()
            };
            match arg.as_str() {
                "--jobs" => settings.jobs = value().parse().expect("--jobs N"),
                "--actors" => settings.actors = value().parse().expect("--actors N"),
                "--dispatchers" => settings.dispatchers = value().parse().expect("--dispatchers N"),
                "--poll-ms" => {
                    settings.poll = Duration::from_millis(value().parse().expect("--poll-ms N"))
                }
                "--batch" => {
                    settings.batches = value()
                        .split(',')
                        .map(|b| b.trim().parse().expect("--batch B[,B…]"))
                        .collect()
                }
                "--analyze" => settings.analyze = true,
                flag if flag.starts_with("--") => {}
                filter => settings.filters = filter.split(',').map(str::to_owned).collect(),
            }
        }
        assert!(settings.jobs > 0 && settings.actors > 0 && settings.dispatchers > 0);
        assert!(
            settings.batches.iter().all(|b| *b > 0),
            "batch sizes are ≥ 1"
        );
        settings
    }

    fn wanted(&self, case: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| case.contains(f.as_str()))
    }

    /// The longest a drain may take before the bench gives up.
    fn drain_limit(&self) -> Duration {
        Duration::from_secs(if self.full { 900 } else { 120 })
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

// ---- stores ---------------------------------------------------------------------------------

#[derive(Clone)]
enum StoreSpec {
    Sqlite(PathBuf),
    Postgres(String),
}

impl StoreSpec {
    fn tag(&self) -> &'static str {
        match self {
            StoreSpec::Sqlite(_) => "sqlite",
            StoreSpec::Postgres(_) => "postgres",
        }
    }

    /// A connection of our own, to count rows.
    async fn pool(&self) -> Db {
        match self {
            StoreSpec::Sqlite(path) => Db::Sqlite(
                sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(
                        sqlx::sqlite::SqliteConnectOptions::new()
                            .filename(path)
                            .busy_timeout(Duration::from_secs(10)),
                    )
                    .await
                    .expect("open the SQLite file"),
            ),
            StoreSpec::Postgres(url) => Db::Pg(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect(url)
                    .await
                    .expect("connect to PostgreSQL"),
            ),
        }
    }
}

enum Db {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

impl Db {
    async fn count(&self, sql: &str) -> i64 {
        match self {
            Db::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            Db::Pg(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        }
        .expect("count rows")
    }

    async fn execute(&self, sql: &str) {
        match self {
            Db::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(drop),
            Db::Pg(pool) => sqlx::query(sql).execute(pool).await.map(drop),
        }
        .expect("run a statement")
    }

    async fn close(&self) {
        match self {
            Db::Sqlite(pool) => pool.close().await,
            Db::Pg(pool) => pool.close().await,
        }
    }
}

/// A fresh, empty store for one case; dropped (file or database) after it.
struct FreshStore {
    spec: StoreSpec,
    _dir: Option<tempfile::TempDir>,
    admin: Option<(String, String)>,
}

impl FreshStore {
    fn sqlite() -> FreshStore {
        let dir = tempfile::tempdir().expect("temp dir");
        FreshStore {
            spec: StoreSpec::Sqlite(dir.path().join("jobs.db")),
            _dir: Some(dir),
            admin: None,
        }
    }

    async fn postgres(admin_url: &str) -> Result<FreshStore, String> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "francis_bench_jobs_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let url = support::with_database(admin_url, &name)
            .ok_or_else(|| format!("cannot parse {POSTGRES_ENV}"))?;
        support::postgres_admin(admin_url, &format!("CREATE DATABASE {name}"))
            .await
            .map_err(|e| format!("cannot create a database: {e}"))?;
        Ok(FreshStore {
            spec: StoreSpec::Postgres(url),
            _dir: None,
            admin: Some((admin_url.to_owned(), name)),
        })
    }

    async fn drop_database(self) {
        if let Some((admin, name)) = self.admin
            && let Err(e) =
                support::postgres_admin(&admin, &format!("DROP DATABASE {name} WITH (FORCE)")).await
        {
            eprintln!("could not drop the bench database {name}: {e}");
        }
    }
}

// ---- hosts ----------------------------------------------------------------------------------

fn builder(store: &StoreSpec, ran: &Ran, batch: u32, poll: Duration) -> francis::host::HostBuilder {
    let builder = Host::local()
        .address(francis::testing::free_local_address())
        .runtime_psk(PSK)
        .alarms_poll_interval(poll)
        .alarms_fetch_ahead(DEFAULT_ALARMS_FETCH_AHEAD, batch)
        .data(ran.clone())
        .register::<Worker>();
    match store {
        StoreSpec::Sqlite(path) => builder.sqlite(path),
        StoreSpec::Postgres(url) => builder.postgres(url.as_str()),
    }
}

/// A running host, and how to stop it.
struct RunningHost {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl RunningHost {
    fn start(host: Host) -> RunningHost {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            host.run(async move {
                let _ = stopped.await;
            })
            .await
            .expect("host run");
        });
        RunningHost { stop, task }
    }

    async fn shut_down(self) {
        let _ = self.stop.send(());
        self.task.await.expect("host task");
    }
}

// ---- what the store and the CPUs did --------------------------------------------------------

/// Count and summed seconds of each store operation (`francis_store_operation_duration_seconds`,
/// every store of this process), by operation and outcome.
#[derive(Default)]
struct StoreOps(BTreeMap<String, (u64, f64)>);

impl StoreOps {
    fn now() -> StoreOps {
        let mut ops = BTreeMap::new();
        for series in francis::telemetry::metrics().store_operations.series() {
            let name = series.labels().join("/");
            ops.insert(name, (series.count(), series.sum_seconds()));
        }
        StoreOps(ops)
    }

    /// What happened since `before`.
    fn since(before: &StoreOps) -> StoreOps {
        let mut ops = BTreeMap::new();
        for (name, (count, seconds)) in StoreOps::now().0 {
            let (c0, s0) = before.0.get(&name).copied().unwrap_or_default();
            if count > c0 {
                ops.insert(name, (count - c0, seconds - s0));
            }
        }
        StoreOps(ops)
    }

    fn print(&self, jobs: u64, wall: Duration) {
        println!(
            "| store operation / outcome | calls | per job | mean | summed time / wall time |"
        );
        println!("|---|---|---|---|---|");
        for (name, (count, seconds)) in &self.0 {
            println!(
                "| `{name}` | {count} | {:.3} | {} | {:.2} |",
                *count as f64 / jobs as f64,
                support::us(Duration::from_secs_f64(seconds / *count as f64)),
                seconds / wall.as_secs_f64()
            );
        }
    }
}

/// CPU time used so far, in seconds: this process, PostgreSQL's processes, and the machine
/// (busy and total, all CPUs). Linux `/proc`; zeros elsewhere.
#[derive(Clone, Copy, Default)]
struct Cpu {
    process: f64,
    postgres: f64,
    busy: f64,
    total: f64,
}

/// `/proc/<pid>/stat`'s utime + stime, in seconds (USER_HZ is 100 on Linux).
fn proc_cpu(stat: &str) -> Option<(String, f64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_owned();
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    // After the command: state is field 3, utime field 14, stime field 15 (1-based overall).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((comm, (utime + stime) / 100.0))
}

impl Cpu {
    fn now() -> Cpu {
        let mut cpu = Cpu::default();
        if let Some((_, s)) = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .as_deref()
            .and_then(proc_cpu)
        {
            cpu.process = s;
        }
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let name = entry.file_name();
                if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                if let Some((comm, s)) = std::fs::read_to_string(entry.path().join("stat"))
                    .ok()
                    .as_deref()
                    .and_then(proc_cpu)
                    && comm == "postgres"
                {
                    cpu.postgres += s;
                }
            }
        }
        if let Some(line) = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| s.lines().next().map(str::to_owned))
        {
            let ticks: Vec<f64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse().ok())
                .collect();
            let total: f64 = ticks.iter().take(8).sum();
            let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
            cpu.total = total / 100.0;
            cpu.busy = (total - idle) / 100.0;
        }
        cpu
    }

    fn since(self, before: Cpu) -> Cpu {
        Cpu {
            process: self.process - before.process,
            postgres: self.postgres - before.postgres,
            busy: self.busy - before.busy,
            total: self.total - before.total,
        }
    }

    /// "bench process X µs/job, PostgreSQL Y µs/job, machine Z% busy".
    fn describe(&self, jobs: u64) -> String {
        let per_job = |s: f64| s * 1e6 / jobs as f64;
        let mut text = format!("this process {:.0} µs/job", per_job(self.process));
        if self.postgres > 0.0 {
            text.push_str(&format!(
                ", PostgreSQL's processes {:.0} µs/job",
                per_job(self.postgres)
            ));
        }
        if self.total > 0.0 {
            text.push_str(&format!(
                ", machine {:.0}% busy (all CPUs)",
                100.0 * self.busy / self.total
            ));
        }
        text
    }
}

// ---- one Francis case ---------------------------------------------------------------------

/// What one case measured.
struct Measured {
    case: String,
    store: &'static str,
    hosts: usize,
    batch: u32,
    dispatch: Duration,
    /// Until the method had run N times (runs of a job run twice included).
    ran: Duration,
    /// Until every job row was gone.
    completed: Duration,
    /// Runs beyond N (a job run twice).
    extra_runs: u64,
    jobs: u64,
}

impl Measured {
    fn dispatch_rate(&self) -> f64 {
        self.jobs as f64 / self.dispatch.as_secs_f64()
    }

    fn drain_rate(&self) -> f64 {
        self.jobs as f64 / self.completed.as_secs_f64()
    }
}

/// Alarm occurrences (jobs) leased and started on this process's hosts but not finished yet
/// (`francis_alarms_total`: due − fired − retried − dropped).
fn in_flight() -> i64 {
    let alarms = &francis::telemetry::metrics().alarms;
    let count = |event: &str| alarms.with(&[event]).count() as i64;
    count("due") - count("fired") - count("retried") - count("dropped")
}

/// Wait (bounded by `limit` from `start`) until `done()`; false if it never was.
async fn until(
    start: Instant,
    limit: Duration,
    every: Duration,
    mut done: impl AsyncFnMut() -> bool,
) -> bool {
    loop {
        if done().await {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(every).await;
    }
}

async fn francis_case(
    settings: &Settings,
    fresh: &FreshStore,
    hosts: usize,
    batch: u32,
    case: String,
) -> Measured {
    let store = &fresh.spec;
    let jobs = settings.jobs;
    let ran = Ran::default();

    // Phase 1: dispatch through a front end that never runs (no alarm loop, no heartbeat).
    let front = builder(store, &ran, batch, settings.poll)
        .build()
        .await
        .expect("front-end host");
    let service = front.service();
    let payload = ByteBuf::from(vec![7u8; PAYLOAD_BYTES]);
    let next = Arc::new(AtomicU64::new(0));
    eprintln!("{case}: dispatching {jobs} jobs");
    let ops_before = StoreOps::now();
    let start = Instant::now();
    let dispatchers: Vec<_> = (0..settings.dispatchers)
        .map(|_| {
            let (service, payload, next) = (service.clone(), payload.clone(), next.clone());
            let actors = settings.actors;
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= jobs {
                        break;
                    }
                    service
                        .actor::<Worker>(format!("w-{}", i % actors))
                        .job_work(payload.clone())
                        .dispatch()
                        .await
                        .expect("dispatch a job");
                }
            })
        })
        .collect();
    for task in dispatchers {
        task.await.expect("dispatcher");
    }
    let dispatch = start.elapsed();
    let dispatch_ops = StoreOps::since(&ops_before);
    drop(service);
    drop(front);

    let db = store.pool().await;
    let queued = db
        .count("SELECT COUNT(*) FROM francis_alarms WHERE alarm_name LIKE 'job/%'")
        .await;
    assert_eq!(queued, jobs as i64, "every dispatched job is queued");
    if settings.analyze {
        db.execute("ANALYZE").await;
    }

    // Phase 2: build the hosts, then start them together.
    let mut built = Vec::with_capacity(hosts);
    for _ in 0..hosts {
        built.push(
            builder(store, &ran, batch, settings.poll)
                .build()
                .await
                .expect("host"),
        );
    }
    eprintln!("{case}: draining");
    let ops_before = StoreOps::now();
    let cpu_before = Cpu::now();
    let start = Instant::now();
    let running: Vec<RunningHost> = built.into_iter().map(RunningHost::start).collect();
    let limit = settings.drain_limit();
    let base = in_flight();
    let mut most_in_flight = 0;
    let all_ran = until(start, limit, Duration::from_millis(2), async || {
        most_in_flight = most_in_flight.max(in_flight() - base);
        ran.get() >= jobs
    })
    .await;
    let ran_after = start.elapsed();
    let left = "SELECT COUNT(*) FROM francis_alarms WHERE alarm_name LIKE 'job/%'";
    let all_completed = all_ran
        && until(start, limit, Duration::from_millis(10), async || {
            db.count(left).await == 0
        })
        .await;
    let completed = start.elapsed();
    let cpu = Cpu::now().since(cpu_before);
    let ops = StoreOps::since(&ops_before);
    for host in running {
        host.shut_down().await;
    }
    let results = db.count("SELECT COUNT(*) FROM francis_job_results").await;
    let remaining = db.count(left).await;
    db.close().await;
    assert!(
        all_ran && all_completed,
        "{case}: after {limit:?}, {} of {jobs} jobs ran and {remaining} rows were left",
        ran.get()
    );
    assert_eq!(results, jobs as i64, "{case}: every job left a result");
    let measured = Measured {
        case,
        store: store.tag(),
        hosts,
        batch,
        dispatch,
        ran: ran_after,
        completed,
        extra_runs: ran.get().saturating_sub(jobs),
        jobs,
    };
    let analyzed = if settings.analyze {
        " (store analyzed before the drain)"
    } else {
        ""
    };
    println!(
        "\n#### {}\n\nDispatch: {jobs} jobs in {:.2} s ({}). Drain: N runs (duplicates included) after {:.2} s, \
         all completed after {:.2} s ({}){analyzed}; runs beyond {jobs}: {}; most jobs leased \
         and started at once (all hosts): {most_in_flight}.\nCPU during the drain: {}.\n",
        measured.case,
        dispatch.as_secs_f64(),
        rate(measured.dispatch_rate()),
        ran_after.as_secs_f64(),
        completed.as_secs_f64(),
        rate(measured.drain_rate()),
        measured.extra_runs,
        cpu.describe(jobs),
    );
    println!("Store operations while dispatching:\n");
    dispatch_ops.print(jobs, dispatch);
    println!("\nStore operations while draining:\n");
    ops.print(jobs, completed);
    measured
}

// ---- the raw queue ------------------------------------------------------------------------

struct RawMeasured {
    case: String,
    hosts: usize,
    batch: u32,
    load: Duration,
    drain: Duration,
    jobs: u64,
}

const RAW_SCHEMA: &[&str] = &[
    "CREATE TABLE raw_jobs (id BIGSERIAL PRIMARY KEY, payload BYTEA NOT NULL, due BIGINT NOT NULL,
         done BOOLEAN NOT NULL DEFAULT FALSE)",
    "CREATE INDEX raw_jobs_due ON raw_jobs (due) WHERE NOT done",
];

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

async fn raw_case(
    settings: &Settings,
    fresh: &FreshStore,
    hosts: usize,
    batch: u32,
    case: String,
) -> RawMeasured {
    let StoreSpec::Postgres(url) = &fresh.spec else {
        unreachable!("the raw queue runs on PostgreSQL")
    };
    let jobs = settings.jobs;
    let front = sqlx::postgres::PgPoolOptions::new()
        .max_connections(PG_POOL as u32)
        .connect(url)
        .await
        .expect("connect to PostgreSQL");
    for sql in RAW_SCHEMA {
        sqlx::query(sql).execute(&front).await.expect("raw schema");
    }
    // Load: one INSERT per job from the dispatchers, as Francis's dispatch does.
    let payload = vec![7u8; PAYLOAD_BYTES];
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let loaders: Vec<_> = (0..settings.dispatchers)
        .map(|_| {
            let (front, payload, next) = (front.clone(), payload.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    if next.fetch_add(1, Ordering::Relaxed) >= jobs {
                        break;
                    }
                    sqlx::query("INSERT INTO raw_jobs (payload, due) VALUES ($1, $2)")
                        .bind(payload.as_slice())
                        .bind(now_ms())
                        .execute(&front)
                        .await
                        .expect("insert a raw job");
                }
            })
        })
        .collect();
    for task in loaders {
        task.await.expect("loader");
    }
    let load = start.elapsed();
    front.close().await;

    let workers = hosts * PG_POOL;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(workers as u32)
        .min_connections(workers as u32)
        .connect(url)
        .await
        .expect("connect to PostgreSQL");
    let done = Arc::new(AtomicU64::new(0));
    let cpu_before = Cpu::now();
    let start = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (pool, done) = (pool.clone(), done.clone());
            tokio::spawn(async move {
                loop {
                    let mut tx = pool.begin().await.expect("begin");
                    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
                        "SELECT id, payload FROM raw_jobs WHERE NOT done AND due <= $1
                         ORDER BY due LIMIT $2 FOR UPDATE SKIP LOCKED",
                    )
                    .bind(now_ms())
                    .bind(i64::from(batch))
                    .fetch_all(&mut *tx)
                    .await
                    .expect("select due jobs");
                    if rows.is_empty() {
                        tx.commit().await.expect("commit");
                        break;
                    }
                    let ids: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
                    for (_, payload) in &rows {
                        std::hint::black_box(payload);
                    }
                    sqlx::query("UPDATE raw_jobs SET done = TRUE WHERE id = ANY($1)")
                        .bind(&ids)
                        .execute(&mut *tx)
                        .await
                        .expect("mark jobs done");
                    tx.commit().await.expect("commit");
                    done.fetch_add(ids.len() as u64, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("raw worker");
    }
    let drain = start.elapsed();
    let cpu = Cpu::now().since(cpu_before);
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM raw_jobs WHERE NOT done")
        .fetch_one(&pool)
        .await
        .expect("count");
    pool.close().await;
    assert_eq!(left, 0, "{case}: the raw queue is empty");
    assert_eq!(done.load(Ordering::Relaxed), jobs, "{case}: each row once");
    let measured = RawMeasured {
        case,
        hosts,
        batch,
        load,
        drain,
        jobs,
    };
    println!(
        "\n#### {}\n\nLoad: {jobs} single-row INSERTs in {:.2} s ({}). Drain: {workers} workers, \
         {:.2} s ({}).\nCPU during the drain: {}.",
        measured.case,
        load.as_secs_f64(),
        rate(jobs as f64 / load.as_secs_f64()),
        drain.as_secs_f64(),
        rate(jobs as f64 / drain.as_secs_f64()),
        cpu.describe(jobs),
    );
    measured
}

// ---- main -----------------------------------------------------------------------------------

fn main() {
    let settings = Settings::parse();
    if !settings.full {
        println!("jobs: smoke run (pass --bench, as `cargo bench` does, for the real one)");
    }
    println!(
        "jobs: {} jobs on {} actors, {} dispatchers; batch sizes {:?}; poll interval {:?}, fetch \
         ahead {:?}, lease 20 s (default); {} worker threads{}",
        settings.jobs,
        settings.actors,
        settings.dispatchers,
        settings.batches,
        settings.poll,
        DEFAULT_ALARMS_FETCH_AHEAD,
        2,
        if settings.analyze {
            "; ANALYZE before each drain"
        } else {
            ""
        }
    );
    let rt = runtime();
    let postgres = std::env::var(POSTGRES_ENV).ok();
    let mut francis = Vec::new();
    let mut raw = Vec::new();
    for store in ["sqlite", "postgres"] {
        for hosts in [1, 3] {
            for &batch in &settings.batches {
                let case = format!("francis/{store}/{hosts}h/b{batch}");
                if !settings.wanted(&case) {
                    continue;
                }
                let fresh = match (store, &postgres) {
                    ("sqlite", _) => FreshStore::sqlite(),
                    (_, None) => {
                        println!(
                            "\n{case}: not measured: {POSTGRES_ENV} is not set \
                             (`source tests/postgres.sh start` sets it)"
                        );
                        continue;
                    }
                    (_, Some(url)) => match rt.block_on(FreshStore::postgres(url)) {
                        Ok(fresh) => fresh,
                        Err(e) => {
                            println!("\n{case}: not measured: {e}");
                            continue;
                        }
                    },
                };
                francis.push(rt.block_on(francis_case(&settings, &fresh, hosts, batch, case)));
                rt.block_on(fresh.drop_database());
            }
        }
    }
    let mut raw_cases: Vec<(usize, u32)> = Vec::new();
    for hosts in [1, 3] {
        for &batch in &settings.batches {
            raw_cases.push((hosts, batch));
        }
    }
    raw_cases.push((3, 1));
    raw_cases.dedup();
    for (hosts, batch) in raw_cases {
        let case = format!("raw/{hosts}x{PG_POOL}/b{batch}");
        if !settings.wanted(&case) {
            continue;
        }
        let Some(url) = &postgres else {
            println!("\n{case}: not measured: {POSTGRES_ENV} is not set");
            continue;
        };
        match rt.block_on(FreshStore::postgres(url)) {
            Ok(fresh) => {
                raw.push(rt.block_on(raw_case(&settings, &fresh, hosts, batch, case)));
                rt.block_on(fresh.drop_database());
            }
            Err(e) => println!("\n{case}: not measured: {e}"),
        }
    }
    print_summary(&francis, &raw, settings.full);
}

fn print_summary(francis: &[Measured], raw: &[RawMeasured], full: bool) {
    if francis.is_empty() && raw.is_empty() {
        return;
    }
    println!("\n### Summary\n");
    println!(
        "| case | store | hosts | batch | dispatch | drain (all completed) | N runs after | vs raw (same hosts, batch) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for m in francis {
        let versus = raw
            .iter()
            .find(|r| r.hosts == m.hosts && r.batch == m.batch)
            .filter(|_| m.store == "postgres")
            .map(|r| {
                let raw_rate = r.jobs as f64 / r.drain.as_secs_f64();
                format!("{:.2}x", m.drain_rate() / raw_rate)
            })
            .unwrap_or_else(|| "–".into());
        println!(
            "| `{}` | {} | {} | {} | {} | **{}** ({:.2} s) | {:.2} s | {versus} |",
            m.case,
            m.store,
            m.hosts,
            m.batch,
            rate(m.dispatch_rate()),
            rate(m.drain_rate()),
            m.completed.as_secs_f64(),
            m.ran.as_secs_f64(),
        );
    }
    for r in raw {
        println!(
            "| `{}` | raw PostgreSQL | {} × {PG_POOL} workers | {} | {} (single-row INSERTs) | **{}** ({:.2} s) | | 1.00x |",
            r.case,
            r.hosts,
            r.batch,
            rate(r.jobs as f64 / r.load.as_secs_f64()),
            rate(r.jobs as f64 / r.drain.as_secs_f64()),
            r.drain.as_secs_f64(),
        );
    }
    if !full {
        return;
    }
    let best = francis
        .iter()
        .filter(|m| m.store == "postgres" && m.hosts == 3)
        .max_by(|a, b| a.drain_rate().total_cmp(&b.drain_rate()));
    if let Some(best) = best {
        let raw_rate = raw
            .iter()
            .find(|r| r.hosts == 3 && r.batch == best.batch)
            .map(|r| r.jobs as f64 / r.drain.as_secs_f64());
        let goal_rate = best.drain_rate() >= 5_000.0;
        print!(
            "\nGoal: ≥ 5 000 jobs/s on PostgreSQL with 3 hosts: {} (`{}`), {}",
            rate(best.drain_rate()),
            best.case,
            if goal_rate { "MET" } else { "NOT MET" }
        );
        match raw_rate {
            Some(raw_rate) => {
                let ratio = best.drain_rate() / raw_rate;
                println!(
                    "; ≥ 0.5x the raw queue: {ratio:.2}x, {}",
                    if ratio >= 0.5 { "MET" } else { "NOT MET" }
                );
            }
            None => println!("; no raw case with the same batch size ran"),
        }
    }
}
