//! The cron built-in: a named schedule that runs an async function once per occurrence,
//! cluster-wide, as a durable job.
//!
//! [`CronJob`] configures one schedule (an interval, an ISO 8601 period or a 5-field cron
//! expression, with an optional immediate first run and jitter) and the function it runs, and
//! registers it as the actor type `francis.builtin.cron.<name>`; every host that may run it
//! registers the same. [`CronJob::handle`] gives the typed [`CronHandle`]: run it now
//! ([`trigger`](CronHandle::trigger)), stop it ([`unregister`](CronHandle::unregister)), and
//! see where it stands ([`status`](CronHandle::status), [`next_run`](CronHandle::next_run)).
//!
//! The type has two instances. The scheduler, at [`SINGLETON_ID`], is a singleton: its
//! `#[bootstrap]` hook reconciles the stored schedule with the registered one each time it is
//! activated (when the host running it starts, say). The runner, at [`RUNNER_ID`], holds the
//! jobs and runs the function in their turns, so a long run never holds up the scheduler.
//!
//! Each occurrence is one job: it runs once in the cluster (the job row has one lease), and
//! again only if the host running it dies mid-run (its lease then expires and another host
//! takes the job over). A failed run is retried after a backoff, and dead-lettered once its
//! attempts are used up; the schedule goes on.
//!
//! Without jitter the schedule is one repeating job, idempotency key `run`. With jitter it is
//! a chain of one-shot jobs: each occurrence first dispatches the next one at its nominal time
//! plus a fresh random delay (at most the jitter), carrying the nominal time so the jitter
//! never drifts the schedule, then runs the function.
//!
//! Reconciling, the scheduler compares the live jobs of the runner with the registered
//! schedule. When they match, nothing changes. When the schedule changed, it records the new
//! one in its state, cancels the old jobs and dispatches the new schedule with the old one's
//! next due time as its first (a job that is running at that moment finishes its run; the new
//! schedule then starts at its own next occurrence). Every run first checks that the schedule
//! it belongs to is the recorded one, and removes itself when it is not, so a job that escaped
//! a cancel never runs the function.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::actor::alarm::Due;
use crate::actor::context::ActorContext;
use crate::actor::job::{JobFailure, JobId, JobSpec, RunningJob};
use crate::actor::reference::ActorRef;
use crate::actor::service::Service;
use crate::actor::state::State;
use crate::builtin::{BuiltIn, Registration, config, sealed, type_name, unconfigured};
use crate::clock::{BoxFuture, duration_ms};
use crate::cron::Cron;
use crate::error::{CallError, Error};
use crate::host::{ActorOptions, SINGLETON_ID};
use crate::model::{Envelope, JobInfo, JobStatus};
use crate::time::{Interval, next_occurrence};

/// The kind part of the type name: `francis.builtin.cron.<name>`.
const KIND: &str = "cron";

/// The ID of the instance that holds a schedule's jobs and runs its function.
pub const RUNNER_ID: &str = "runner";

/// The shortest period a schedule may have: 1 second.
pub const MIN_PERIOD: Duration = Duration::from_secs(1);

/// How many times a run is tried before it is dead-lettered, unless
/// [`CronJob::max_attempts`] says otherwise: 3.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// The delay before the first retry of a failed run, unless [`CronJob::retry_delay`] says
/// otherwise: 2 seconds (later retries back off by 1.5x, up to 10x).
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(2);

/// The runner's job methods.
const RUN: &str = "run";
const CHAIN: &str = "chain";
const ONCE: &str = "once";

/// The idempotency key of the repeating job.
const RUN_KEY: &str = "run";

/// The key prefix of triggered runs.
const TRIGGER_KEY: &str = "trigger-";

/// The key prefix of the links of jitter chains.
const CHAIN_KEY: &str = "chain-";

/// How many upcoming ticks of a cron expression are looked at to find its shortest period.
const CRON_TICKS_CHECKED: usize = 16;

/// What the function of a schedule returns, boxed.
type RunFuture = BoxFuture<'static, Result<(), JobFailure>>;

/// The function a schedule runs.
type RunFn = Arc<dyn Fn(CronRun) -> RunFuture + Send + Sync>;

/// A schedule to register on a host, named `name`: exactly one of [`every`](Self::every),
/// [`period`](Self::period) and [`cron`](Self::cron), and the function to
/// [`run`](Self::run).
///
/// ```
/// # use std::time::Duration;
/// use francis::builtin::cron::{CronJob, CronRun};
/// let nightly = CronJob::new("nightly-report")
///     .cron("0 3 * * *")
///     .jitter(Duration::from_secs(300))
///     .run(|run: CronRun| async move {
///         println!("report for {}", run.scheduled());
///         Ok::<(), francis::JobFailure>(())
///     });
/// ```
#[derive(Clone)]
#[must_use = "register it with `HostBuilder::builtin`"]
pub struct CronJob {
    name: String,
    schedules: Vec<Given>,
    immediate: bool,
    jitter: Duration,
    run: Option<RunFn>,
    max_attempts: u32,
    retry_delay: Duration,
}

impl std::fmt::Debug for CronJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CronJob")
            .field("name", &self.name)
            .field("schedules", &self.schedules)
            .field("immediate", &self.immediate)
            .field("jitter", &self.jitter)
            .field("run", &self.run.as_ref().map(|_| "fn"))
            .field("max_attempts", &self.max_attempts)
            .field("retry_delay", &self.retry_delay)
            .finish()
    }
}

/// A schedule as given to the builder, checked when it registers.
#[derive(Debug, Clone)]
enum Given {
    Every(Interval),
    Period(String),
    Cron(String),
}

impl CronJob {
    /// A schedule named `name` (its actor type is `francis.builtin.cron.<name>`), with the
    /// defaults: no immediate first run, no jitter, 3 attempts per run, 2 s before the first
    /// retry.
    pub fn new(name: impl Into<String>) -> Self {
        CronJob {
            name: name.into(),
            schedules: Vec::new(),
            immediate: false,
            jitter: Duration::ZERO,
            run: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            retry_delay: DEFAULT_RETRY_DELAY,
        }
    }

    /// Run every `interval` (a [`Duration`], or an [`Interval`] with calendar units), on a
    /// fixed grid from the first run that does not drift with how long runs take. At least
    /// [`MIN_PERIOD`]. The first run is one interval after the schedule is first registered
    /// (see [`immediate`](Self::immediate)).
    pub fn every(mut self, interval: impl Into<Interval>) -> Self {
        self.schedules.push(Given::Every(interval.into()));
        self
    }

    /// Run every ISO 8601 period, e.g. `"P1D"`, `"PT6H"` or `"P1M"` (calendar units count in
    /// UTC; the forms [`Interval`] parses are taken). As [`every`](Self::every) otherwise.
    pub fn period(mut self, period: &str) -> Self {
        self.schedules.push(Given::Period(period.to_owned()));
        self
    }

    /// Run on a 5-field cron schedule in UTC, e.g. `"0 3 * * *"` (every day at 03:00).
    pub fn cron(mut self, expression: &str) -> Self {
        self.schedules.push(Given::Cron(expression.to_owned()));
        self
    }

    /// Also run once as soon as the schedule is first registered (not when a host restarts
    /// with it registered already).
    pub fn immediate(mut self) -> Self {
        self.immediate = true;
        self
    }

    /// Delay each run by a random time of up to `jitter` after its nominal time (less than
    /// half the schedule's shortest period), so that many schedules on the same tick do not
    /// all start at once. The nominal times stay on the schedule.
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// The function each occurrence runs (required). An error retries the run (see
    /// [`JobFailure`] for giving up at once), until its attempts are used up; the run is then
    /// dead-lettered, and the schedule goes on. Any error type that converts into a
    /// [`JobFailure`] will do: a `String`, a `Box<dyn Error + Send + Sync>` (both retried), or
    /// a `JobFailure` itself.
    pub fn run<F, Fut, E>(mut self, f: F) -> Self
    where
        F: Fn(CronRun) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<JobFailure> + 'static,
    {
        let f = Arc::new(f);
        self.run = Some(Arc::new(move |run: CronRun| -> RunFuture {
            let future = f(run);
            Box::pin(async move { future.await.map_err(Into::into) })
        }));
        self
    }

    /// How many times a run is tried before it is dead-lettered (default 3; at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// The delay before the first retry of a failed run; later retries back off by 1.5x, up to
    /// 10x (default 2 s).
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// The handle for schedule `name` through `service` (it must be registered on some host
    /// of the cluster).
    pub fn handle(service: &Service, name: &str) -> CronHandle {
        CronHandle {
            service: service.clone(),
            name: name.to_owned(),
            actor_type: type_name(KIND, name),
        }
    }

    /// The checked schedule and function, or every problem with the settings.
    fn settings(&self) -> Result<(Spec, RunFn), Vec<String>> {
        let name = &self.name;
        let mut problems = Vec::new();
        let exactly_one =
            "give exactly one of .every(Duration), .period(\"P1D\") or .cron(\"0 3 * * *\")";
        let schedule = match self.schedules.as_slice() {
            [] => {
                problems.push(format!("cron {name:?}: no schedule; {exactly_one}"));
                None
            }
            [given] => match schedule_of(given) {
                Ok(schedule) => Some(schedule),
                Err(problem) => {
                    problems.push(format!("cron {name:?}: {problem}"));
                    None
                }
            },
            many => {
                problems.push(format!(
                    "cron {name:?}: {} schedules given; {exactly_one}",
                    many.len()
                ));
                None
            }
        };
        if let Some(schedule) = &schedule {
            match schedule.plan().map(|plan| plan.shortest_period()) {
                Ok(Some(period)) if period < MIN_PERIOD => problems.push(format!(
                    "cron {name:?}: the schedule {} runs every {period:?}; give a period of at least {MIN_PERIOD:?}",
                    schedule.describe()
                )),
                Ok(Some(period)) if self.jitter.saturating_mul(2) >= period => {
                    problems.push(format!(
                        "cron {name:?}: jitter {:?} is not less than half the schedule's shortest period ({period:?}); give less, or no jitter",
                        self.jitter
                    ))
                }
                Ok(Some(_)) => {}
                Ok(None) => problems.push(format!(
                    "cron {name:?}: the schedule {} never runs after now; give one that does",
                    schedule.describe()
                )),
                Err(problem) => problems.push(format!("cron {name:?}: {problem}")),
            }
        }
        if self.run.is_none() {
            problems.push(format!(
                "cron {name:?}: no function to run; give one with .run(|run: CronRun| async move {{ .. }})"
            ));
        }
        if self.max_attempts == 0 {
            problems.push(format!(
                "cron {name:?}: max attempts is 0; a run must be tried at least once (default {DEFAULT_MAX_ATTEMPTS})"
            ));
        }
        match (schedule, &self.run) {
            (Some(schedule), Some(run)) if problems.is_empty() => Ok((
                Spec {
                    schedule,
                    immediate: self.immediate,
                    jitter_ms: duration_ms(self.jitter).unsigned_abs(),
                },
                run.clone(),
            )),
            _ => Err(problems),
        }
    }
}

/// The stored form of a given schedule, or what is wrong with it.
fn schedule_of(given: &Given) -> Result<Schedule, String> {
    match given {
        Given::Every(interval) => Ok(Schedule::Every(interval.to_string())),
        Given::Period(text) => text
            .parse::<Interval>()
            .map(|interval| Schedule::Every(interval.to_string()))
            .map_err(|e| format!("the period is invalid: {e}")),
        Given::Cron(text) => Cron::parse(text)
            .map(|cron| Schedule::Cron(cron.to_string()))
            .map_err(|e| e.to_string()),
    }
}

impl sealed::Sealed for CronJob {}

impl BuiltIn for CronJob {
    fn register(self, registration: &mut Registration) {
        match self.settings() {
            Ok((spec, run)) => {
                let options = ActorOptions::default()
                    .never_idle()
                    .alarm_max_attempts(self.max_attempts)
                    .alarm_retry_delay(self.retry_delay);
                let settings = Settings {
                    name: self.name.clone(),
                    spec: spec.clone(),
                    run,
                };
                registration.singleton_type::<CronActor, Settings>(
                    KIND, &self.name, options, settings, &spec,
                );
            }
            Err(problems) => problems.into_iter().for_each(|p| registration.problem(p)),
        }
    }
}

/// Why a run happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CronCause {
    /// An occurrence of the schedule.
    Schedule,
    /// The first run of a schedule registered with [`CronJob::immediate`] (a cron expression's:
    /// an interval's immediate first run is its first occurrence).
    Immediate,
    /// [`CronHandle::trigger`].
    Trigger,
}

/// What the function of a schedule is given for one run.
#[derive(Debug, Clone)]
pub struct CronRun {
    service: Service,
    name: String,
    scheduled: jiff::Timestamp,
    started: jiff::Timestamp,
    attempt: u32,
    cause: CronCause,
    job_id: JobId,
}

impl CronRun {
    /// The service, for calling actors.
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// The schedule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The nominal time of this occurrence: the schedule's tick (before jitter), the same on
    /// every attempt. For a triggered or immediate run, when it was asked for.
    pub fn scheduled(&self) -> jiff::Timestamp {
        self.scheduled
    }

    /// When this attempt started, by the host's clock (virtual in [`crate::testing`]).
    pub fn started(&self) -> jiff::Timestamp {
        self.started
    }

    /// Which attempt this is: 1 for the first.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Why it runs.
    pub fn cause(&self) -> CronCause {
        self.cause
    }

    /// The job it runs as (the repeating job's ID is the same for every occurrence).
    pub fn job_id(&self) -> &JobId {
        &self.job_id
    }
}

/// Why a call to a schedule failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CronError {
    /// The schedule was unregistered (or its scheduler has not registered it yet).
    #[error(
        "cron {name}: not registered; it was unregistered, and is registered again when its scheduler next starts on a host that registers it"
    )]
    NotRegistered {
        /// The schedule's name.
        name: String,
    },
    /// Reading or changing the schedule's jobs or state failed.
    #[error("cron {name}: its jobs or state could not be read or changed: {message}")]
    Store {
        /// The schedule's name.
        name: String,
        /// What the store said.
        message: String,
    },
    /// The call failed in the framework (no host registers the schedule, the host is shutting
    /// down, ...).
    #[error(transparent)]
    Call(#[from] Error),
}

/// Where a schedule stands: [`CronHandle::status`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CronStatus {
    /// Whether the schedule is registered (not unregistered).
    pub registered: bool,
    /// The schedule, as `every <ISO 8601 period>` or `cron <expression>`, while registered.
    pub schedule: Option<String>,
    /// Its jitter (zero for none).
    pub jitter: Duration,
    /// When the next occurrence is due (with its jitter), while registered.
    pub next_run: Option<jiff::Timestamp>,
    /// The runner's jobs as the store reports them: the live ones, one-shots that succeeded
    /// within 24 hours, and dead letters (a repeating job that dead-lettered a run is live
    /// again, and its dead letters are listed by [`Service::dead_jobs`]).
    pub jobs: Vec<JobInfo>,
}

/// Calls one schedule. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CronHandle {
    service: Service,
    name: String,
    actor_type: String,
}

impl CronHandle {
    /// The schedule's actor type, `francis.builtin.cron.<name>`.
    pub fn actor_type(&self) -> &str {
        &self.actor_type
    }

    /// Run the function now, as a one-shot job (retried and dead-lettered like the scheduled
    /// runs), whatever the schedule says. While a triggered run is waiting to start, triggering
    /// again returns its job instead of adding another.
    pub async fn trigger(&self) -> Result<JobId, CronError> {
        match self.scheduler().trigger().await {
            Ok(job_id) => Ok(JobId(job_id)),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Stop the schedule: cancel its pending jobs (a run in progress finishes) and forget it.
    /// Returns whether it was registered. A host that still registers it brings it back the
    /// next time the scheduler starts (a restart of the host running it, say): remove it from
    /// every host's registration too.
    pub async fn unregister(&self) -> Result<bool, CronError> {
        self.scheduler()
            .unregister()
            .await
            .map_err(|e| self.error(e))
    }

    /// Where the schedule stands.
    pub async fn status(&self) -> Result<CronStatus, CronError> {
        let reply = self.scheduler().status().await.map_err(|e| self.error(e))?;
        Ok(CronStatus {
            registered: reply.spec.is_some(),
            schedule: reply.spec.as_ref().map(|spec| spec.schedule.describe()),
            jitter: Duration::from_millis(reply.spec.as_ref().map_or(0, |spec| spec.jitter_ms)),
            next_run: reply.next_run_ms.and_then(timestamp),
            jobs: reply.jobs,
        })
    }

    /// When the next occurrence is due (with its jitter), while the schedule is registered.
    pub async fn next_run(&self) -> Result<Option<jiff::Timestamp>, CronError> {
        Ok(self.status().await?.next_run)
    }

    fn scheduler(&self) -> ActorRef<CronActor> {
        ActorRef::from_raw(self.service.raw_ref(&self.actor_type, SINGLETON_ID))
    }

    fn error(&self, e: CallError<Fault>) -> CronError {
        let name = self.name.clone();
        match e {
            CallError::Actor(Fault::NotRegistered) => CronError::NotRegistered { name },
            CallError::Actor(Fault::Store(message)) => CronError::Store { name, message },
            CallError::Actor(Fault::Unconfigured(message) | Fault::Misused(message)) => {
                CronError::Call(Error::Config(message))
            }
            CallError::Francis(e) => CronError::Call(e),
        }
    }
}

fn timestamp(ms: i64) -> Option<jiff::Timestamp> {
    jiff::Timestamp::from_millisecond(ms).ok()
}

/// A schedule as stored: what repeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Schedule {
    /// Every interval (canonical ISO 8601).
    Every(String),
    /// On a cron expression (as parsed, trimmed).
    Cron(String),
}

impl Schedule {
    fn describe(&self) -> String {
        match self {
            Schedule::Every(interval) => format!("every {interval}"),
            Schedule::Cron(expression) => format!("cron {expression}"),
        }
    }

    fn plan(&self) -> Result<Plan, String> {
        match self {
            Schedule::Every(text) => text
                .parse::<Interval>()
                .map(Plan::Every)
                .map_err(|e| e.to_string()),
            Schedule::Cron(text) => Cron::parse(text)
                .map(|cron| Plan::Cron(Box::new(cron)))
                .map_err(|e| e.to_string()),
        }
    }
}

/// A schedule parsed, to compute its times.
#[derive(Debug, Clone)]
enum Plan {
    Every(Interval),
    Cron(Box<Cron>),
}

impl Plan {
    /// The first occurrence of a schedule registered at `now_ms`.
    fn first_after(&self, now_ms: i64) -> Option<i64> {
        match self {
            Plan::Every(interval) => interval.add_to(now_ms),
            Plan::Cron(cron) => cron.next_after(now_ms),
        }
    }

    /// The occurrence after the one at `nominal_ms`, skipping those already past at `now_ms`
    /// (as a repeating job does).
    fn next_after(&self, nominal_ms: i64, now_ms: i64) -> Option<i64> {
        match self {
            Plan::Every(interval) => next_occurrence(nominal_ms, interval, now_ms),
            Plan::Cron(cron) => cron.next_after(now_ms.max(nominal_ms)),
        }
    }

    /// The shortest time between two occurrences (of a cron expression: among its next few
    /// ticks from now; of a month, 28 days); `None` if it never runs.
    fn shortest_period(&self) -> Option<Duration> {
        let ms = |ms: i64| Duration::from_millis(ms.max(0).unsigned_abs());
        match self {
            Plan::Every(interval) => {
                const DAY_MS: i64 = 24 * 3600 * 1000;
                let (years, months, days) = interval.calendar_part();
                let shortest = i64::from(years)
                    .saturating_mul(365 * DAY_MS)
                    .saturating_add(i64::from(months).saturating_mul(28 * DAY_MS))
                    .saturating_add(i64::from(days).saturating_mul(DAY_MS))
                    .saturating_add(duration_ms(interval.fixed_component()));
                Some(ms(shortest))
            }
            Plan::Cron(cron) => {
                let mut tick = cron.next_after(jiff::Timestamp::now().as_millisecond())?;
                let mut shortest: Option<i64> = None;
                for _ in 0..CRON_TICKS_CHECKED {
                    let Some(next) = cron.next_after(tick) else {
                        break;
                    };
                    let gap = next.saturating_sub(tick);
                    shortest = Some(shortest.map_or(gap, |s| s.min(gap)));
                    tick = next;
                }
                // A schedule that fires once more and never again has no period: any jitter
                // up to a year is fine.
                Some(ms(shortest.unwrap_or(365 * 24 * 3600 * 1000)))
            }
        }
    }
}

/// A schedule's registration: the scheduler's bootstrap data, and what its state records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Spec {
    schedule: Schedule,
    immediate: bool,
    /// The jitter, in milliseconds (0: none, one repeating job).
    jitter_ms: u64,
}

impl Spec {
    /// What identifies the jobs of this schedule: two registrations with the same fingerprint
    /// run the same jobs (the immediate first run is not part of it).
    fn fingerprint(&self) -> String {
        let schedule = self.schedule.describe();
        match self.jitter_ms {
            0 => schedule,
            jitter => format!("{schedule}; jitter {jitter} ms"),
        }
    }

    /// A short, stable digest of the fingerprint, which the keys of a jitter chain carry
    /// (FNV-1a, 64 bits, in hex).
    fn generation(&self) -> String {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self.fingerprint().bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{hash:016x}")
    }

    /// The key prefix of this schedule's chain jobs.
    fn chain_prefix(&self) -> String {
        format!("{CHAIN_KEY}{}-", self.generation())
    }

    /// Whether live job `job` is one of this schedule's.
    fn owns(&self, job: &JobInfo) -> bool {
        if self.jitter_ms > 0 {
            return job.method == CHAIN
                && job
                    .idempotency_key
                    .as_deref()
                    .is_some_and(|key| key.starts_with(&self.chain_prefix()));
        }
        let schedule = match (&job.interval, &job.cron) {
            (Some(interval), None) => Schedule::Every(interval.clone()),
            (None, Some(cron)) => Schedule::Cron(cron.clone()),
            _ => return false,
        };
        job.method == RUN
            && job.idempotency_key.as_deref() == Some(RUN_KEY)
            && schedule == self.schedule
    }

    /// A random delay of up to the jitter.
    fn jitter(&self) -> i64 {
        match self.jitter_ms {
            0 => 0,
            jitter => i64::try_from(rand::random_range(0..=jitter)).unwrap_or(i64::MAX),
        }
    }
}

/// A schedule's settings on a host: its registration and its function.
struct Settings {
    name: String,
    spec: Spec,
    run: RunFn,
}

/// What the scheduler's state records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Registered {
    spec: Spec,
    /// The schedule's job (the repeating one, or the first of the chain) when it was set up.
    job_id: Option<String>,
    /// When the schedule was set up (Unix ms).
    since_ms: i64,
}

/// The payload of the repeating job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Tick {
    /// The fingerprint of the schedule it belongs to.
    schedule: String,
}

/// The payload of a chain job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ChainStep {
    /// The fingerprint of the schedule it belongs to.
    schedule: String,
    /// The occurrence's nominal time (Unix ms), before jitter.
    nominal_ms: i64,
}

/// The payload of a one-shot run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Once {
    cause: CronCause,
}

/// What the scheduler's status call answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StatusReply {
    spec: Option<Spec>,
    next_run_ms: Option<i64>,
    jobs: Vec<JobInfo>,
}

/// Why the scheduler refused a call (sent back to the caller).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
enum Fault {
    #[error("not registered")]
    NotRegistered,
    #[error("{0}")]
    Store(String),
    #[error("{0}")]
    Unconfigured(String),
    #[error("{0}")]
    Misused(String),
}

impl From<Error> for Fault {
    fn from(e: Error) -> Self {
        Fault::Store(e.to_string())
    }
}

/// Whether a job is still to run (or running).
fn is_live(job: &JobInfo) -> bool {
    matches!(job.status, JobStatus::Pending | JobStatus::Running)
}

/// Whether a job is one the scheduler dispatched to carry a schedule: the repeating job, or a
/// link of a jitter chain (not a dead letter's replay, which runs one occurrence again).
fn carries_schedule(job: &JobInfo) -> bool {
    let key = job.idempotency_key.as_deref().unwrap_or_default();
    (job.method == RUN && key == RUN_KEY) || (job.method == CHAIN && key.starts_with(CHAIN_KEY))
}

/// One schedule: the scheduler at [`SINGLETON_ID`], the runner at [`RUNNER_ID`].
struct CronActor {
    ctx: ActorContext,
    settings: Result<Arc<Settings>, Fault>,
    /// The scheduler's record of the schedule.
    state: State<Registered>,
    /// Whether this activation reconciled the schedule (its bootstrap did, or a call had to).
    reconciled: bool,
}

#[crate::actor(name = "francis.builtin.cron")]
impl CronActor {
    fn activate(ctx: &ActorContext) -> Self {
        CronActor {
            ctx: ctx.clone(),
            settings: config::<Settings>(ctx)
                .ok_or_else(|| Fault::Unconfigured(unconfigured(ctx.actor_type()))),
            state: ctx.state(),
            reconciled: false,
        }
    }

    /// Reconcile the stored schedule with this registration's.
    #[bootstrap]
    pub async fn bootstrap(&mut self, spec: Spec) -> Result<(), Fault> {
        self.reconcile(spec).await
    }

    /// Dispatch a triggered run, or return the one waiting to start.
    pub async fn trigger(&mut self) -> Result<String, Fault> {
        self.ensure_reconciled().await?;
        if self.state.load().await?.is_none() {
            return Err(Fault::NotRegistered);
        }
        let jobs = self.runner_jobs().await?;
        let waiting = jobs.iter().find(|job| {
            job.method == ONCE
                && job.status == JobStatus::Pending
                && job
                    .idempotency_key
                    .as_deref()
                    .is_some_and(|key| key.starts_with(TRIGGER_KEY))
        });
        if let Some(job) = waiting {
            return Ok(job.job_id.clone());
        }
        let key = format!("{TRIGGER_KEY}{}", uuid::Uuid::new_v4().simple());
        let spec = JobSpec {
            due: Some(Due::Now),
            data: Some(encode(&Once {
                cause: CronCause::Trigger,
            })?),
            key: Some(key),
            ..JobSpec::default()
        };
        Ok(self.dispatch(ONCE, spec).await?.0)
    }

    /// Forget the schedule and cancel every live job of the runner.
    pub async fn unregister(&mut self) -> Result<bool, Fault> {
        self.scheduler_only()?;
        // Forgotten first: a chain step that runs meanwhile then stops.
        let registered = self.state.delete().await?;
        // Set for this activation: it stays unregistered until it is activated again.
        self.reconciled = true;
        let mut cancelled = false;
        // Twice, for a chain step dispatched while the first pass cancelled.
        for _ in 0..2 {
            let live: Vec<JobInfo> = self
                .runner_jobs()
                .await?
                .into_iter()
                .filter(is_live)
                .collect();
            if live.is_empty() {
                break;
            }
            cancelled |= self.cancel_all(&live).await? > 0;
        }
        tracing::info!(actor = %self.ctx.key(), "cron schedule unregistered");
        Ok(registered || cancelled)
    }

    /// The registered schedule, when its next occurrence is due, and the runner's jobs.
    pub async fn status(&self) -> Result<StatusReply, Fault> {
        self.scheduler_only()?;
        let spec = self.state.load().await?.map(|r| r.spec.clone());
        let jobs = self.runner_jobs().await?;
        let next_run_ms = jobs
            .iter()
            .filter(|job| is_live(job) && carries_schedule(job))
            .filter_map(|job| job.due_ms)
            .min();
        Ok(StatusReply {
            next_run_ms: spec.as_ref().and(next_run_ms),
            spec,
            jobs,
        })
    }

    /// One occurrence of the repeating job.
    #[job]
    pub async fn run(&mut self, tick: Tick) -> Result<(), JobFailure> {
        let (settings, job) = self.running()?;
        if self.registered_as(&tick.schedule).await?.is_none() {
            // Left over from a schedule since replaced or unregistered: remove it.
            tracing::info!(actor = %self.ctx.key(), job = %job.job_id, "repeating job of a replaced schedule; cancelling it");
            self.ctx
                .service()
                .cancel_job(self.ctx.actor_type(), self.ctx.id(), &job.job_id)
                .await
                .map_err(|e| JobFailure::Retry(e.to_string()))?;
            return Ok(());
        }
        self.call(&settings, &job, job.scheduled_ms, CronCause::Schedule)
            .await
    }

    /// One occurrence of a jitter chain: dispatch the next, then run.
    #[job]
    pub async fn chain(&mut self, step: ChainStep) -> Result<(), JobFailure> {
        let (settings, job) = self.running()?;
        let Some(registered) = self.registered_as(&step.schedule).await? else {
            tracing::info!(actor = %self.ctx.key(), job = %job.job_id, "chain step of a replaced schedule; ending the chain");
            return Ok(());
        };
        let spec = registered.spec;
        let plan = spec.schedule.plan().map_err(JobFailure::Permanent)?;
        let now = self.now_ms();
        // A dead letter's replay runs its occurrence again, but the chain went on without it.
        let link = self.is_chain_link(&job.job_id).await?;
        if let Some(next) = plan.next_after(step.nominal_ms, now).filter(|_| link) {
            let successor = JobSpec {
                due: Some(Due::AtMs(next.saturating_add(spec.jitter()))),
                data: Some(
                    Envelope::encode(&ChainStep {
                        schedule: step.schedule.clone(),
                        nominal_ms: next,
                    })
                    .map_err(|e| JobFailure::Permanent(e.to_string()))?,
                ),
                // One successor per step, however often the step runs.
                key: Some(format!("{}after-{}", spec.chain_prefix(), job.job_id)),
                ..JobSpec::default()
            };
            self.dispatch(CHAIN, successor)
                .await
                .map_err(|e| JobFailure::Retry(format!("could not schedule the next run: {e}")))?;
        }
        self.call(&settings, &job, step.nominal_ms, CronCause::Schedule)
            .await
    }

    /// A triggered or immediate run.
    #[job]
    pub async fn once(&mut self, once: Once) -> Result<(), JobFailure> {
        let (settings, job) = self.running()?;
        self.call(&settings, &job, job.scheduled_ms, once.cause)
            .await
    }
}

impl CronActor {
    fn now_ms(&self) -> i64 {
        self.ctx.now().as_millisecond()
    }

    fn scheduler_only(&self) -> Result<(), Fault> {
        if self.ctx.id() == SINGLETON_ID {
            Ok(())
        } else {
            Err(Fault::Misused(format!(
                "{} is not the scheduler of its schedule; call {SINGLETON_ID:?} (CronJob::handle does)",
                self.ctx.key()
            )))
        }
    }

    /// Reconcile with this host's registration, if this activation has not yet (its bootstrap
    /// failed).
    async fn ensure_reconciled(&mut self) -> Result<(), Fault> {
        self.scheduler_only()?;
        if !self.reconciled {
            let spec = self.settings.clone()?.spec.clone();
            self.reconcile(spec).await?;
        }
        Ok(())
    }

    /// Make the runner's jobs follow `spec`: keep them if they do; else record `spec`, cancel
    /// them and dispatch `spec`'s, first due when the old schedule's next run was.
    async fn reconcile(&mut self, spec: Spec) -> Result<(), Fault> {
        self.scheduler_only()?;
        let plan = spec.schedule.plan().map_err(Fault::Misused)?;
        let now = self.now_ms();
        let registered = self.state.load().await?.cloned();
        let (current, stale): (Vec<JobInfo>, Vec<JobInfo>) = self
            .runner_jobs()
            .await?
            .into_iter()
            .filter(|job| is_live(job) && carries_schedule(job))
            .partition(|job| spec.owns(job));
        if let Some(job) = current.first() {
            let record = Registered {
                spec: spec.clone(),
                job_id: registered
                    .as_ref()
                    .and_then(|r| r.job_id.clone())
                    .or_else(|| Some(job.job_id.clone())),
                since_ms: registered.as_ref().map_or(now, |r| r.since_ms),
            };
            if registered.as_ref().map(|r| r.spec.fingerprint()) != Some(spec.fingerprint()) {
                self.state.set(record).await?;
            }
            self.cancel_all(&stale).await?;
            self.reconciled = true;
            return Ok(());
        }
        let fresh = registered.is_none() && stale.is_empty();
        let kept_due = stale
            .iter()
            .filter(|job| job.status == JobStatus::Pending)
            .filter_map(|job| job.due_ms)
            .min();
        // Recorded first: a step of an old chain that runs from now on sees it and stops.
        self.state
            .set(Registered {
                spec: spec.clone(),
                job_id: None,
                since_ms: now,
            })
            .await?;
        self.cancel_all(&stale).await?;
        let immediate = fresh && spec.immediate;
        let job_id = self
            .dispatch_schedule(&spec, &plan, kept_due, immediate, now)
            .await?;
        if immediate && spec.jitter_ms == 0 && matches!(plan, Plan::Cron(_)) {
            let first = JobSpec {
                due: Some(Due::Now),
                data: Some(encode(&Once {
                    cause: CronCause::Immediate,
                })?),
                key: Some(format!("immediate-{now}")),
                ..JobSpec::default()
            };
            self.dispatch(ONCE, first).await?;
        }
        self.state
            .set(Registered {
                spec: spec.clone(),
                job_id: Some(job_id.0.clone()),
                since_ms: now,
            })
            .await?;
        self.reconciled = true;
        match (registered.is_some() || !stale.is_empty(), kept_due) {
            (true, Some(due)) => {
                tracing::info!(actor = %self.ctx.key(), schedule = %spec.fingerprint(), job = %job_id, due, "cron schedule changed; replaced its jobs, keeping the next due time")
            }
            (true, None) => {
                tracing::info!(actor = %self.ctx.key(), schedule = %spec.fingerprint(), job = %job_id, "cron schedule set up again")
            }
            (false, _) => {
                tracing::info!(actor = %self.ctx.key(), schedule = %spec.fingerprint(), job = %job_id, "cron schedule registered")
            }
        }
        Ok(())
    }

    /// Dispatch the jobs of `spec`, first due at `kept_due` if given (else now when
    /// `immediate`, else at the schedule's first occurrence).
    async fn dispatch_schedule(
        &self,
        spec: &Spec,
        plan: &Plan,
        kept_due: Option<i64>,
        immediate: bool,
        now: i64,
    ) -> Result<JobId, Fault> {
        let never = || {
            Fault::Misused(format!(
                "the schedule {} never runs after now",
                spec.schedule.describe()
            ))
        };
        if spec.jitter_ms == 0 {
            let first = match kept_due {
                Some(due) => due,
                None if immediate && matches!(plan, Plan::Every(_)) => now,
                None => plan.first_after(now).ok_or_else(never)?,
            };
            let (interval, cron) = match plan {
                Plan::Every(interval) => (Some(*interval), None),
                Plan::Cron(cron) => (None, Some(Cron::clone(cron))),
            };
            let job = JobSpec {
                due: Some(Due::AtMs(first)),
                interval,
                cron,
                data: Some(encode(&Tick {
                    schedule: spec.fingerprint(),
                })?),
                key: Some(RUN_KEY.to_owned()),
                ..JobSpec::default()
            };
            return self.dispatch(RUN, job).await;
        }
        let (nominal, due) = match kept_due {
            Some(due) => (due, due),
            None if immediate => (now, now),
            None => {
                let nominal = plan.first_after(now).ok_or_else(never)?;
                (nominal, nominal.saturating_add(spec.jitter()))
            }
        };
        let job = JobSpec {
            due: Some(Due::AtMs(due)),
            data: Some(encode(&ChainStep {
                schedule: spec.fingerprint(),
                nominal_ms: nominal,
            })?),
            key: Some(format!("{}start-{now}", spec.chain_prefix())),
            ..JobSpec::default()
        };
        self.dispatch(CHAIN, job).await
    }

    /// Dispatch `job` on the runner.
    async fn dispatch(&self, method: &str, job: JobSpec) -> Result<JobId, Fault> {
        Ok(self
            .ctx
            .service()
            .dispatch_job(self.ctx.actor_type(), RUNNER_ID, method, job)
            .await?)
    }

    /// Every job of the runner.
    async fn runner_jobs(&self) -> Result<Vec<JobInfo>, Fault> {
        Ok(self
            .ctx
            .service()
            .list_jobs(self.ctx.actor_type(), RUNNER_ID)
            .await?)
    }

    /// Cancel `jobs` on the runner: how many were still there.
    async fn cancel_all(&self, jobs: &[JobInfo]) -> Result<usize, Fault> {
        let mut cancelled = 0;
        for job in jobs {
            if self
                .ctx
                .service()
                .cancel_job(self.ctx.actor_type(), RUNNER_ID, &job.job_id)
                .await?
            {
                cancelled += 1;
            }
        }
        Ok(cancelled)
    }

    /// In a job of the runner: the settings and the occurrence.
    fn running(&self) -> Result<(Arc<Settings>, RunningJob), JobFailure> {
        let settings = self
            .settings
            .clone()
            .map_err(|e| JobFailure::Permanent(e.to_string()))?;
        let job = RunningJob::current()
            .ok_or_else(|| JobFailure::Permanent("a cron run must run as a job".into()))?;
        Ok((settings, job))
    }

    /// Whether job `job_id` is a link of a chain (not a replay of one).
    async fn is_chain_link(&self, job_id: &str) -> Result<bool, JobFailure> {
        let job = self
            .ctx
            .service()
            .get_job(job_id)
            .await
            .map_err(|e| JobFailure::Retry(format!("could not read the job: {e}")))?;
        Ok(job.is_some_and(|job| carries_schedule(&job)))
    }

    /// The scheduler's record, if the schedule of fingerprint `schedule` is the registered one.
    async fn registered_as(&self, schedule: &str) -> Result<Option<Registered>, JobFailure> {
        let registered: Option<Registered> = self
            .ctx
            .service()
            .get_state(self.ctx.actor_type(), SINGLETON_ID)
            .await
            .map_err(|e| JobFailure::Retry(format!("could not read the schedule: {e}")))?;
        Ok(registered.filter(|r| r.spec.fingerprint() == schedule))
    }

    /// Run the schedule's function for the occurrence at `scheduled_ms`.
    async fn call(
        &self,
        settings: &Settings,
        job: &RunningJob,
        scheduled_ms: i64,
        cause: CronCause,
    ) -> Result<(), JobFailure> {
        let run = CronRun {
            service: self.ctx.service().clone(),
            name: settings.name.clone(),
            scheduled: timestamp(scheduled_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
            started: self.ctx.now(),
            attempt: job.failures.saturating_add(1),
            cause,
            job_id: JobId(job.job_id.clone()),
        };
        (settings.run)(run).await
    }
}

fn encode<T: Serialize>(value: &T) -> Result<Envelope, Fault> {
    Envelope::encode(value).map_err(|e| Fault::Misused(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop(job: CronJob) -> CronJob {
        job.run(|_run: CronRun| async { Ok::<(), JobFailure>(()) })
    }

    fn problems(job: CronJob) -> Vec<String> {
        match job.settings() {
            Ok(_) => Vec::new(),
            Err(problems) => problems,
        }
    }

    #[test]
    fn exactly_one_valid_schedule_and_a_function_are_required() {
        let none = problems(CronJob::new("a"));
        assert_eq!(none.len(), 2, "{none:?}");
        assert!(none[0].contains("no schedule"), "{none:?}");
        assert!(none[1].contains("no function"), "{none:?}");
        let two = problems(noop(
            CronJob::new("a")
                .every(Duration::from_secs(60))
                .cron("* * * * *"),
        ));
        assert!(two[0].contains("2 schedules given"), "{two:?}");
        let bad_cron = problems(noop(CronJob::new("a").cron("0 3 * *")));
        assert!(bad_cron[0].contains("5 fields"), "{bad_cron:?}");
        let bad_period = problems(noop(CronJob::new("a").period("P1X")));
        assert!(
            bad_period[0].contains("period is invalid"),
            "{bad_period:?}"
        );
        let short = problems(noop(CronJob::new("a").every(Duration::from_millis(500))));
        assert!(short[0].contains("at least 1s"), "{short:?}");
        let zero = problems(noop(CronJob::new("a").every(Duration::ZERO)));
        assert!(zero[0].contains("every PT0S runs every 0ns"), "{zero:?}");
        let never = problems(noop(CronJob::new("a").cron("0 0 30 2 *")));
        assert!(!never.is_empty(), "February 30th never comes");
        let attempts = problems(noop(
            CronJob::new("a")
                .every(Duration::from_secs(1))
                .max_attempts(0),
        ));
        assert!(attempts[0].contains("max attempts"), "{attempts:?}");
        assert!(problems(noop(CronJob::new("a").period("P1D"))).is_empty());
    }

    #[test]
    fn jitter_must_stay_under_half_the_shortest_period() {
        let hourly = |jitter: u64| {
            problems(noop(
                CronJob::new("a")
                    .every(Duration::from_secs(3600))
                    .jitter(Duration::from_secs(jitter)),
            ))
        };
        assert!(hourly(1799).is_empty());
        assert!(hourly(1800)[0].contains("half"), "{:?}", hourly(1800));
        // Weekdays at 09:00: the shortest gap is a day.
        let weekdays = |jitter: u64| {
            problems(noop(
                CronJob::new("a")
                    .cron("0 9 * * 1-5")
                    .jitter(Duration::from_secs(jitter)),
            ))
        };
        assert!(weekdays(12 * 3600 - 1).is_empty());
        assert!(!weekdays(12 * 3600).is_empty());
        // A month is at least 28 days.
        let monthly = problems(noop(
            CronJob::new("a")
                .period("P1M")
                .jitter(Duration::from_secs(14 * 24 * 3600)),
        ));
        assert!(!monthly.is_empty());
    }

    #[test]
    fn fingerprints_ignore_the_immediate_run_and_tell_schedules_apart() {
        let spec = |schedule: Schedule, immediate: bool, jitter_ms: u64| Spec {
            schedule,
            immediate,
            jitter_ms,
        };
        let hourly = spec(Schedule::Every("PT1H".into()), false, 0);
        assert_eq!(hourly.fingerprint(), "every PT1H");
        assert_eq!(
            hourly.generation(),
            spec(Schedule::Every("PT1H".into()), true, 0).generation()
        );
        assert_ne!(
            hourly.generation(),
            spec(Schedule::Every("PT1H".into()), false, 5).generation()
        );
        assert_eq!(hourly.generation().len(), 16);
        // `.every` and `.period` of the same length are the same schedule.
        let every = CronJob::new("a").every(Duration::from_secs(3600));
        let period = CronJob::new("a").period("PT60M");
        assert_eq!(
            schedule_of(&every.schedules[0]),
            schedule_of(&period.schedules[0])
        );
    }

    #[test]
    fn occurrences_skip_what_is_past_as_repeating_jobs_do() {
        let plan = Schedule::Every("PT1H".into()).plan().unwrap();
        let hour = 3_600_000;
        assert_eq!(plan.first_after(0), Some(hour));
        assert_eq!(plan.next_after(hour, hour + 10), Some(2 * hour));
        assert_eq!(plan.next_after(hour, 5 * hour + 10), Some(6 * hour));
        let cron = Schedule::Cron("0 * * * *".into()).plan().unwrap();
        assert_eq!(cron.next_after(hour, hour + 10), Some(2 * hour));
    }

    #[test]
    fn a_chain_job_belongs_to_its_generation_and_a_run_job_to_its_schedule() {
        let spec = Spec {
            schedule: Schedule::Cron("0 3 * * *".into()),
            immediate: false,
            jitter_ms: 0,
        };
        let job = |method: &str, key: &str, interval: Option<&str>, cron: Option<&str>| JobInfo {
            job_id: "j".into(),
            key: crate::model::ActorKey::new("t", RUNNER_ID),
            method: method.into(),
            status: JobStatus::Pending,
            attempts: 0,
            due_ms: Some(0),
            interval: interval.map(Into::into),
            cron: cron.map(Into::into),
            idempotency_key: Some(key.into()),
            last_error: None,
            finished_ms: None,
        };
        assert!(spec.owns(&job(RUN, RUN_KEY, None, Some("0 3 * * *"))));
        assert!(!spec.owns(&job(RUN, RUN_KEY, None, Some("0 4 * * *"))));
        assert!(!spec.owns(&job(RUN, RUN_KEY, Some("PT1H"), None)));
        let jittered = Spec {
            jitter_ms: 1000,
            ..spec.clone()
        };
        let key = format!("{}after-x", jittered.chain_prefix());
        assert!(jittered.owns(&job(CHAIN, &key, None, None)));
        assert!(!spec.owns(&job(CHAIN, &key, None, None)));
    }
}
