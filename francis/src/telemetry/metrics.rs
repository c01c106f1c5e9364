//! The process's metrics: counters, gauges and histograms kept in atomics, grouped in labelled
//! families, read by the Prometheus endpoint ([`super::prometheus`]) and mirrored to
//! OpenTelemetry when an exporter is installed (`Telemetry::init`, feature `telemetry`).
//!
//! Recording is built for the invoke path: code that records often holds its series (an
//! `Arc` handle found once, e.g. per actor type and method when the type is registered), and a
//! record is one or two relaxed atomic additions. Even so, a call of an active actor costs well
//! under a microsecond, so the per-call series (calls by outcome, call duration, turn-lock wait)
//! are only recorded once something reads them ([`calls_observed`]): the first scrape of
//! `/metrics`, or an OpenTelemetry metrics exporter, switches them on for the rest of the
//! process. A process nobody observes pays one relaxed load per call. Everything else
//! (activations, placement, alarms, store operations, peers, sessions) is always recorded.
//!
//! Label values come only from names the process registered (actor types, their methods,
//! store operations, message kinds), never from a request, so a caller cannot grow the
//! registry.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, OnceLock, RwLock};
use std::time::Duration;

/// Histogram bounds for call and statement latencies, in seconds: 50 µs to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// Histogram bounds for alarm firing delays, in seconds: 1 ms to 5 minutes.
pub const DELAY_BUCKETS: &[f64] = &[
    0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

static CALLS_OBSERVED: AtomicBool = AtomicBool::new(false);

/// Whether the per-call series (calls by outcome, call duration, turn-lock wait) are recorded.
/// Off until something reads them.
#[inline]
pub fn calls_observed() -> bool {
    CALLS_OBSERVED.load(Ordering::Relaxed)
}

/// Record the per-call series from now on (the `/metrics` endpoint and OpenTelemetry export
/// call it; it cannot be switched off again).
pub fn observe_calls() {
    CALLS_OBSERVED.store(true, Ordering::Relaxed);
}

/// Where a series also reports its values, when OpenTelemetry metrics export is on: given the
/// family and the series' labels, a function that records one value.
pub(crate) type MirrorFn = Box<dyn Fn(f64) + Send + Sync>;

/// Makes mirrors for new series ([`super::otel`] installs one).
pub(crate) trait MirrorFactory: Send + Sync {
    /// A recorder for the series `labels` (pairs of name and value) of `family`.
    fn mirror(&self, family: &FamilyInfo, labels: &[(&'static str, String)]) -> MirrorFn;
}

static MIRRORS: OnceLock<Box<dyn MirrorFactory>> = OnceLock::new();

/// Install the mirror factory. Series created before it are not mirrored. Returns false when
/// one was installed already.
#[cfg(feature = "telemetry")]
pub(crate) fn install_mirrors(factory: Box<dyn MirrorFactory>) -> bool {
    MIRRORS.set(factory).is_ok()
}

/// What kind of values a family holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Counts observations in buckets.
    Histogram,
}

/// A family's name, help text, unit, kind and label names.
#[derive(Debug)]
pub struct FamilyInfo {
    /// The Prometheus name, e.g. `francis_invocations_total`.
    pub name: &'static str,
    /// The OpenTelemetry name, e.g. `francis.invocations`.
    pub otel_name: &'static str,
    /// What it measures.
    pub help: &'static str,
    /// The unit (`s`, `1`), for OpenTelemetry.
    pub unit: &'static str,
    /// Its kind.
    pub kind: Kind,
    /// Its label names.
    pub labels: &'static [&'static str],
    /// Bucket upper bounds, for histograms.
    pub buckets: &'static [f64],
}

/// One series' value: a count (counters), a level (gauges), or buckets (histograms).
pub struct Series {
    labels: Box<[String]>,
    /// A counter's count, or a histogram's number of observations.
    count: AtomicU64,
    level: AtomicI64,
    /// Sum of observations in nanoseconds (durations) or units, for histograms.
    sum: AtomicU64,
    buckets: Box<[AtomicU64]>,
    bounds: &'static [f64],
    mirror: Option<MirrorFn>,
}

impl std::fmt::Debug for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Series")
            .field("labels", &self.labels)
            .field("count", &self.count())
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

impl Series {
    /// Add `n` to a counter.
    #[inline]
    pub fn inc_by(&self, n: u64) {
        self.count.fetch_add(n, Ordering::Relaxed);
        if let Some(mirror) = &self.mirror {
            mirror(n as f64);
        }
    }

    /// Add one to a counter.
    #[inline]
    pub fn inc(&self) {
        self.inc_by(1);
    }

    /// Move a gauge by `delta`.
    #[inline]
    pub fn add(&self, delta: i64) {
        self.level.fetch_add(delta, Ordering::Relaxed);
        if let Some(mirror) = &self.mirror {
            mirror(delta as f64);
        }
    }

    /// Record a duration in a histogram.
    #[inline]
    pub fn observe(&self, duration: Duration) {
        self.observe_seconds(duration.as_secs_f64());
    }

    /// Record a value (seconds, for duration histograms) in a histogram.
    pub fn observe_seconds(&self, seconds: f64) {
        let seconds = if seconds.is_finite() && seconds > 0.0 {
            seconds
        } else {
            0.0
        };
        let index = self
            .bounds
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(self.bounds.len());
        if let Some(bucket) = self.buckets.get(index) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        // Kept in nanoseconds: whole numbers add up exactly in an atomic.
        let nanos = (seconds * 1e9).min(u64::MAX as f64) as u64;
        self.sum.fetch_add(nanos, Ordering::Relaxed);
        if let Some(mirror) = &self.mirror {
            mirror(seconds);
        }
    }

    /// The label values, in the family's label order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// A counter's count, or a histogram's number of observations.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// A gauge's level.
    pub fn level(&self) -> i64 {
        self.level.load(Ordering::Relaxed)
    }

    /// A histogram's sum of observations, in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum.load(Ordering::Relaxed) as f64 / 1e9
    }

    /// A histogram's bucket counts (not cumulative), the last one above every bound.
    pub fn bucket_counts(&self) -> Vec<u64> {
        self.buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect()
    }

    /// A histogram's bucket upper bounds.
    pub fn bounds(&self) -> &'static [f64] {
        self.bounds
    }
}

/// Holds a gauge one higher while it lives (an open connection, a session).
#[derive(Debug)]
pub struct LevelGuard(Arc<Series>);

impl LevelGuard {
    /// Raise `gauge` by one until the guard is dropped.
    pub fn new(gauge: Arc<Series>) -> Self {
        gauge.add(1);
        LevelGuard(gauge)
    }
}

impl Drop for LevelGuard {
    fn drop(&mut self) {
        self.0.add(-1);
    }
}

/// A family of series sharing a name and label names, one series per set of label values.
#[derive(Debug)]
pub struct Family {
    info: FamilyInfo,
    /// Few per family (label values are registered names), so a scan finds one.
    series: RwLock<Vec<Arc<Series>>>,
}

impl Family {
    fn new(info: FamilyInfo) -> Self {
        Family {
            info,
            series: RwLock::new(Vec::new()),
        }
    }

    /// The family's description.
    pub fn info(&self) -> &FamilyInfo {
        &self.info
    }

    /// The series with these label values (one per label name, in order), created on first
    /// use. Hold on to it where it is recorded often.
    pub fn with(&self, values: &[&str]) -> Arc<Series> {
        debug_assert_eq!(values.len(), self.info.labels.len(), "{}", self.info.name);
        let matches = |series: &&Arc<Series>| {
            series
                .labels
                .iter()
                .map(String::as_str)
                .eq(values.iter().copied())
        };
        if let Some(found) = self
            .series
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(matches)
        {
            return found.clone();
        }
        let mut all = self.series.write().unwrap_or_else(|e| e.into_inner());
        // Another thread may have made it between the two locks.
        if let Some(found) = all.iter().find(matches) {
            return found.clone();
        }
        let labels: Box<[String]> = values.iter().map(|v| (*v).to_owned()).collect();
        let pairs: Vec<(&'static str, String)> = self
            .info
            .labels
            .iter()
            .copied()
            .zip(labels.iter().cloned())
            .collect();
        let mirror = MIRRORS.get().map(|m| m.mirror(&self.info, &pairs));
        let buckets = match self.info.kind {
            Kind::Histogram => (0..=self.info.buckets.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            _ => Box::default(),
        };
        let series = Arc::new(Series {
            labels,
            count: AtomicU64::new(0),
            level: AtomicI64::new(0),
            sum: AtomicU64::new(0),
            buckets,
            bounds: self.info.buckets,
            mirror,
        });
        all.push(series.clone());
        series
    }

    /// Every series, sorted by label values.
    pub fn series(&self) -> Vec<Arc<Series>> {
        let series = self.series.read().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<Arc<Series>> = series.clone();
        all.sort_by(|a, b| a.labels.cmp(&b.labels));
        all
    }
}

macro_rules! families {
    ($( $(#[$doc:meta])* $field:ident: $kind:ident $name:literal / $otel:literal [$($label:literal),*] $unit:literal $buckets:expr => $help:literal; )*) => {
        /// Every metric Francis records, one family each.
        #[derive(Debug)]
        #[non_exhaustive]
        pub struct Metrics {
            $( $(#[$doc])* pub $field: Family, )*
        }

        impl Metrics {
            /// An empty registry (the process has one, [`metrics`]).
            pub(crate) fn new() -> Self {
                Metrics {
                    $( $field: Family::new(FamilyInfo {
                        name: $name,
                        otel_name: $otel,
                        help: $help,
                        unit: $unit,
                        kind: Kind::$kind,
                        labels: &[$($label),*],
                        buckets: $buckets,
                    }), )*
                }
            }

            /// Every family, in a fixed order.
            pub fn families(&self) -> Vec<&Family> {
                vec![$( &self.$field ),*]
            }
        }
    };
}

families! {
    /// Calls run on this host, by actor type, method and outcome (`ok`, `actor_error`,
    /// `error`, `overloaded`), from when the per-call series were first observed.
    invocations: Counter "francis_invocations_total" / "francis.invocations"
        ["actor_type", "method", "outcome"] "1" &[] => "Calls run on this host, by actor type, method and outcome.";
    /// Time from a call reaching its activation to its result.
    invocation_duration: Histogram "francis_invocation_duration_seconds" / "francis.invocation.duration"
        ["actor_type", "method"] "s" LATENCY_BUCKETS => "Time from a call reaching its activation to its result.";
    /// Time a call waited in its activation's mailbox before its turn began.
    lock_wait: Histogram "francis_turn_lock_wait_seconds" / "francis.turn_lock.wait"
        ["actor_type"] "s" LATENCY_BUCKETS => "Time a call waited for its turn.";
    /// Activations live on this host.
    active_actors: Gauge "francis_active_actors" / "francis.actors.active"
        ["actor_type"] "1" &[] => "Activations live on this host.";
    /// Activations created.
    activations: Counter "francis_activations_total" / "francis.activations"
        ["actor_type"] "1" &[] => "Activations created on this host.";
    /// Activations ended (idle, halted, or the host stopping).
    deactivations: Counter "francis_deactivations_total" / "francis.deactivations"
        ["actor_type"] "1" &[] => "Activations ended on this host.";
    /// Placement lookups, by where the answer came from (`cache` or `store`).
    placement_lookups: Counter "francis_placement_lookups_total" / "francis.placement.lookups"
        ["source"] "1" &[] => "Placement lookups, by where the answer came from.";
    /// Alarm occurrences, by event: `due` (leased to this host), `fired` (ran and succeeded),
    /// `retried` (failed, will run again), `dropped` (failed its last attempt).
    alarms: Counter "francis_alarms_total" / "francis.alarms"
        ["event"] "1" &[] => "Alarm occurrences leased, fired, retried and dropped.";
    /// How late alarms fired, from their due time to their start.
    alarm_delay: Histogram "francis_alarm_delay_seconds" / "francis.alarm.delay"
        [] "s" DELAY_BUCKETS => "How late alarms started after their due time.";
    /// Store operations' duration, by operation and outcome (`ok`, `error`).
    store_operations: Histogram "francis_store_operation_duration_seconds" / "francis.store.operation.duration"
        ["operation", "outcome"] "s" LATENCY_BUCKETS => "Store operations' duration, by operation and outcome.";
    /// Calls this host forwarded to other hosts, by outcome.
    peer_requests: Histogram "francis_peer_request_duration_seconds" / "francis.peer.request.duration"
        ["outcome"] "s" LATENCY_BUCKETS => "Calls forwarded to other hosts, by outcome.";
    /// Peer connections open, by direction (`in`, `out`).
    peer_connections: Gauge "francis_peer_connections" / "francis.peer.connections"
        ["direction"] "1" &[] => "Peer connections open, by direction.";
    /// Peer streams (one per forwarded call), by direction.
    peer_streams: Counter "francis_peer_streams_total" / "francis.peer.streams"
        ["direction"] "1" &[] => "Peer streams opened, by direction.";
    /// Host sessions open at this runtime.
    runtime_sessions: Gauge "francis_runtime_sessions" / "francis.runtime.sessions"
        [] "1" &[] => "Host sessions open at this runtime.";
    /// Requests between hosts and the runtime, by side (`client`, `server`), kind and
    /// outcome.
    runtime_requests: Histogram "francis_runtime_request_duration_seconds" / "francis.runtime.request.duration"
        ["side", "kind", "outcome"] "s" LATENCY_BUCKETS => "Requests between hosts and the runtime, by side, kind and outcome.";
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// The series a hot path records into for one actor type: held by its registration.
#[derive(Debug)]
pub(crate) struct TypeMetrics {
    pub lock_wait: Arc<Series>,
    pub active: Arc<Series>,
    pub activations: Arc<Series>,
    pub deactivations: Arc<Series>,
    /// Per method, in the type's method-table order.
    pub methods: Box<[MethodMetrics]>,
}

/// The outcome of a call, as the invocations family labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok = 0,
    ActorError = 1,
    Error = 2,
    Overloaded = 3,
}

const OUTCOMES: [&str; 4] = ["ok", "actor_error", "error", "overloaded"];

/// One method's series: a counter per outcome (made on first use) and its duration.
#[derive(Debug)]
pub(crate) struct MethodMetrics {
    actor_type: &'static str,
    method: &'static str,
    outcomes: [OnceLock<Arc<Series>>; 4],
    duration: OnceLock<Arc<Series>>,
}

impl MethodMetrics {
    /// Count a call's outcome, and its duration when one was measured.
    #[inline]
    pub fn record(&self, outcome: Outcome, elapsed: Option<Duration>) {
        let index = outcome as usize;
        self.outcomes[index]
            .get_or_init(|| {
                metrics()
                    .invocations
                    .with(&[self.actor_type, self.method, OUTCOMES[index]])
            })
            .inc();
        if let Some(elapsed) = elapsed {
            self.duration
                .get_or_init(|| {
                    metrics()
                        .invocation_duration
                        .with(&[self.actor_type, self.method])
                })
                .observe(elapsed);
        }
    }
}

impl TypeMetrics {
    /// The series of `actor_type`, whose methods are `methods` (index and wire name).
    pub fn new(
        actor_type: &'static str,
        methods: impl Iterator<Item = (u16, &'static str)>,
    ) -> Self {
        let m = metrics();
        let mut by_index: Vec<Option<&'static str>> = Vec::new();
        for (index, name) in methods {
            let index = usize::from(index);
            if by_index.len() <= index {
                by_index.resize(index + 1, None);
            }
            by_index[index] = Some(name);
        }
        TypeMetrics {
            lock_wait: m.lock_wait.with(&[actor_type]),
            active: m.active_actors.with(&[actor_type]),
            activations: m.activations.with(&[actor_type]),
            deactivations: m.deactivations.with(&[actor_type]),
            methods: by_index
                .into_iter()
                .map(|method| MethodMetrics {
                    actor_type,
                    method: method.unwrap_or("unknown"),
                    outcomes: Default::default(),
                    duration: OnceLock::new(),
                })
                .collect(),
        }
    }

    /// The series of method `index`, if the table has it.
    #[inline]
    pub fn method(&self, index: u16) -> Option<&MethodMetrics> {
        self.methods.get(usize::from(index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family(kind: Kind, buckets: &'static [f64]) -> Family {
        Family::new(FamilyInfo {
            name: "test_metric",
            otel_name: "test.metric",
            help: "A test metric.",
            unit: "1",
            kind,
            labels: &["a"],
            buckets,
        })
    }

    #[test]
    fn one_series_per_label_values() {
        let counters = family(Kind::Counter, &[]);
        counters.with(&["x"]).inc();
        counters.with(&["x"]).inc_by(2);
        counters.with(&["y"]).inc();
        let series = counters.series();
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].labels(), ["x"]);
        assert_eq!(series[0].count(), 3);
        assert_eq!(series[1].count(), 1);
    }

    #[test]
    fn histogram_observations_land_in_the_first_bucket_that_holds_them() {
        let histograms = family(Kind::Histogram, &[0.001, 0.01, 0.1]);
        let series = histograms.with(&["x"]);
        series.observe(Duration::from_micros(500)); // <= 1 ms
        series.observe(Duration::from_millis(1)); // exactly on a bound: that bucket
        series.observe(Duration::from_millis(50)); // <= 100 ms
        series.observe(Duration::from_secs(3)); // above every bound
        series.observe_seconds(f64::NAN); // counted as zero, never a panic
        assert_eq!(series.bucket_counts(), [3, 0, 1, 1]);
        assert_eq!(series.count(), 5);
        assert!((series.sum_seconds() - 3.0515).abs() < 1e-9);
    }

    #[test]
    fn gauges_go_up_and_down() {
        let gauges = family(Kind::Gauge, &[]);
        let series = gauges.with(&["x"]);
        series.add(3);
        series.add(-1);
        assert_eq!(series.level(), 2);
    }

    #[test]
    fn method_series_count_each_outcome_apart() {
        let type_metrics =
            TypeMetrics::new("metrics-test-type", [(0, "get"), (1, "put")].into_iter());
        let put = type_metrics.method(1).unwrap();
        put.record(Outcome::Ok, Some(Duration::from_millis(2)));
        put.record(Outcome::Ok, None);
        put.record(Outcome::ActorError, None);
        assert!(type_metrics.method(2).is_none());
        let counts: Vec<(Vec<String>, u64)> = metrics()
            .invocations
            .series()
            .into_iter()
            .filter(|s| s.labels()[0] == "metrics-test-type")
            .map(|s| (s.labels().to_vec(), s.count()))
            .collect();
        assert_eq!(
            counts,
            [
                (
                    vec![
                        "metrics-test-type".into(),
                        "put".into(),
                        "actor_error".into()
                    ],
                    1
                ),
                (
                    vec!["metrics-test-type".into(), "put".into(), "ok".into()],
                    2
                ),
            ]
        );
        let durations = metrics()
            .invocation_duration
            .with(&["metrics-test-type", "put"]);
        assert_eq!(durations.count(), 1);
    }
}
