//! What the bench binaries that print their own tables share: their command line (`--bench`,
//! `--warm-up-time`, `--measurement-time`, a name filter), latency and throughput drivers that
//! time calls made by tasks on the runtime, and the statistics and units they print.

#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

/// How long and how much to measure.
#[derive(Clone, Copy)]
pub struct Config {
    /// Warm-up before each measurement.
    pub warm_up: Duration,
    /// Length of each throughput window.
    pub measure: Duration,
    /// Timed calls of each latency run.
    pub latency_calls: usize,
    /// A real run (`--bench`), not the smoke run of `cargo test --benches`.
    pub full: bool,
}

/// The filter argument (`cargo bench --bench NAME -- FILTER`): only measurements whose name
/// contains it run.
static FILTER: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// Whether the measurement `name` passes the filter.
pub fn wanted(name: &str) -> bool {
    FILTER
        .get()
        .and_then(Option::as_deref)
        .is_none_or(|filter| name.contains(filter))
}

/// Parse the command line.
pub fn config() -> Config {
    let args: Vec<String> = std::env::args().collect();
    let mut filter = None;
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--warm-up-time" | "--measurement-time" => {
                rest.next();
            }
            flag if flag.starts_with("--") => {}
            name => filter = Some(name.to_owned()),
        }
    }
    let _ = FILTER.set(filter);
    let seconds = |flag: &str, default: f64| -> Duration {
        let value = args
            .iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(default);
        Duration::from_secs_f64(value)
    };
    if args.iter().any(|a| a == "--bench") {
        Config {
            warm_up: seconds("--warm-up-time", 1.0),
            measure: seconds("--measurement-time", 4.0),
            latency_calls: 20_000,
            full: true,
        }
    } else {
        Config {
            warm_up: Duration::from_millis(100),
            measure: Duration::from_millis(300),
            latency_calls: 200,
            full: false,
        }
    }
}

/// Latency distribution and rate of a set of timed calls.
pub struct Stats {
    /// Timed calls.
    pub calls: usize,
    /// Calls per second over the window.
    pub per_second: f64,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Mean.
    pub mean: Duration,
}

impl Stats {
    /// Statistics of `samples` taken over `window`.
    pub fn new(mut samples: Vec<Duration>, window: Duration) -> Stats {
        samples.sort_unstable();
        let n = samples.len().max(1);
        let at = |q: usize| {
            samples
                .get((n * q / 100).min(n - 1))
                .copied()
                .unwrap_or_default()
        };
        let total: Duration = samples.iter().sum();
        Stats {
            calls: samples.len(),
            per_second: samples.len() as f64 / window.as_secs_f64(),
            p50: at(50),
            p99: at(99),
            mean: total / u32::try_from(n).unwrap_or(u32::MAX),
        }
    }
}

/// A duration in µs (or ms above 1 ms).
pub fn us(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.1} µs")
    }
}

/// A rate per second.
pub fn rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M/s", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1} k/s", r / 1e3)
    } else {
        format!("{r:.0} /s")
    }
}

/// `a / b`.
pub fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

/// How a latency run warms up.
#[derive(Clone, Copy)]
pub enum WarmUp {
    /// Call for this long.
    For(Duration),
    /// Make this many calls.
    Calls(usize),
}

/// One caller, one call at a time, as a task on a runtime worker: `calls` timed calls after
/// the warm-up. `call(0)` makes one call.
pub async fn latency<F, Fut>(call: F, warm_up: WarmUp, calls: usize) -> Stats
where
    F: Fn(usize) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        match warm_up {
            WarmUp::For(time) => {
                let warm_end = Instant::now() + time;
                while Instant::now() < warm_end {
                    call(0).await;
                }
            }
            WarmUp::Calls(n) => {
                for _ in 0..n {
                    call(0).await;
                }
            }
        }
        let mut samples = Vec::with_capacity(calls);
        let start = Instant::now();
        for _ in 0..calls {
            let t = Instant::now();
            call(0).await;
            samples.push(t.elapsed());
        }
        Stats::new(samples, start.elapsed())
    })
    .await
    .expect("latency task")
}

/// `callers` tasks calling in a loop (`call(caller)`): warm-up, then every call started in the
/// measurement window is timed; calls/s = those calls over the time until the last one
/// finished.
pub async fn throughput<F, Fut>(call: F, callers: usize, config: Config) -> Stats
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let window_start = Instant::now() + config.warm_up;
    let window_end = window_start + config.measure;
    let tasks: Vec<_> = (0..callers)
        .map(|caller| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut samples = Vec::new();
                loop {
                    let t = Instant::now();
                    if t >= window_end {
                        break;
                    }
                    call(caller).await;
                    if t >= window_start {
                        samples.push(t.elapsed());
                    }
                }
                (samples, Instant::now())
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut last = window_end;
    for task in tasks {
        let (samples, done) = task.await.expect("caller task");
        all.extend(samples);
        last = last.max(done);
    }
    Stats::new(all, last - window_start)
}

/// `url` with its database name replaced by `name` (query string kept).
pub fn with_database(url: &str, name: &str) -> Option<String> {
    let scheme_end = url.find("://")? + 3;
    let path_start = scheme_end + url[scheme_end..].find('/')?;
    let query = url[path_start..]
        .find('?')
        .map_or("", |q| &url[path_start + q..]);
    Some(format!("{}/{name}{query}", &url[..path_start]))
}

/// Run one administrative statement (`CREATE DATABASE`, `DROP DATABASE`) on its own connection.
pub async fn postgres_admin(url: &str, sql: &str) -> Result<(), sqlx::Error> {
    use sqlx::{Connection, Executor};
    let mut conn = sqlx::PgConnection::connect(url).await?;
    conn.execute(sql).await?;
    conn.close().await
}
