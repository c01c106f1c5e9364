//! The cron and task pool built-ins as users call them. Cron: interval, ISO period and cron
//! expression schedules running once per occurrence on the virtual clock, the immediate first
//! run, jitter that never drifts the schedule, triggers that collapse, unregistering, failed
//! runs retried then dead-lettered while the schedule goes on, a restart with a changed
//! schedule keeping the next due time, three hosts on one store running each occurrence once,
//! and settings refused with the fix. Task pools: a host's concurrency never exceeded, a task
//! turned down on one host running on another, capability routing, idempotent keys, looking
//! tasks up, cancelling and retrying them, the input size limit, and settings refused.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use francis::builtin::cron::{CronCause, CronError, CronJob, CronRun};
use francis::builtin::taskpool::{
    MAX_INPUT_SIZE, SubmitOptions, Task, TaskError, TaskPool, TaskPoolHandle,
};
use francis::model::DeadLetterQuery;
use francis::prelude::*;
use francis::testing::TestHost;
use francis::{JobId, JobStatus};

mod support;

/// Midnight UTC, 2026-12-05.
const T0: i64 = 1_796_428_800_000;

const HOUR: i64 = 3_600_000;

fn t0() -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(T0).unwrap()
}

/// One run of a schedule's function, as it saw it (times relative to [`T0`]).
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    scheduled: i64,
    started: i64,
    attempt: u32,
    cause: CronCause,
    host: String,
}

/// What the functions of the schedules under test saw.
#[derive(Default)]
struct Runs(Mutex<Vec<Seen>>);

impl Runs {
    fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }

    fn scheduled(&self) -> Vec<i64> {
        self.all().iter().map(|s| s.scheduled).collect()
    }
}

/// `job` with a function that records each run on `runs` as run on `host`, and fails with
/// `fail` (if given).
fn recorded(job: CronJob, runs: &Arc<Runs>, host: &str, fail: Option<&str>) -> CronJob {
    let runs = runs.clone();
    let host = host.to_owned();
    let fail = fail.map(str::to_owned);
    job.run(move |run: CronRun| {
        let runs = runs.clone();
        let host = host.clone();
        let fail = fail.clone();
        async move {
            runs.0.lock().unwrap().push(Seen {
                scheduled: run.scheduled().as_millisecond() - T0,
                started: run.started().as_millisecond() - T0,
                attempt: run.attempt(),
                cause: run.cause(),
                host,
            });
            match fail {
                Some(message) => Err(message),
                None => Ok(()),
            }
        }
    })
}

async fn cron_host(job: CronJob) -> TestHost {
    TestHost::builder()
        .start_at(t0())
        .builtin(job)
        .build()
        .await
        .unwrap()
}

fn at(ms: i64) -> Option<jiff::Timestamp> {
    Some(jiff::Timestamp::from_millisecond(T0 + ms).unwrap())
}

#[tokio::test]
async fn an_interval_schedule_runs_once_per_occurrence() {
    let runs = Arc::new(Runs::default());
    let job = CronJob::new("hourly").every(Duration::from_secs(3600));
    let host = cron_host(recorded(job, &runs, "", None)).await;
    let hourly = CronJob::handle(&host.service(), "hourly");
    assert_eq!(hourly.actor_type(), "francis.builtin.cron.hourly");
    let status = hourly.status().await.unwrap();
    assert!(status.registered);
    assert_eq!(status.schedule.as_deref(), Some("every PT1H"));
    assert_eq!(status.next_run, at(HOUR), "one period after registering");

    host.advance(Duration::from_secs(3 * 3600 + 1800))
        .await
        .unwrap();
    let seen = runs.all();
    assert_eq!(runs.scheduled(), [HOUR, 2 * HOUR, 3 * HOUR]);
    for run in &seen {
        assert_eq!(run.started, run.scheduled);
        assert_eq!((run.attempt, run.cause), (1, CronCause::Schedule));
    }
    let status = hourly.status().await.unwrap();
    assert_eq!(status.next_run, at(4 * HOUR));
    let live: Vec<_> = status
        .jobs
        .iter()
        .filter(|j| j.status == JobStatus::Pending)
        .collect();
    assert_eq!(live.len(), 1, "one repeating job: {:?}", status.jobs);
    assert_eq!(live[0].idempotency_key.as_deref(), Some("run"));
    assert_eq!(live[0].interval.as_deref(), Some("PT1H"));
}

#[tokio::test]
async fn cron_expressions_and_periods_run_on_their_ticks_and_immediate_runs_first() {
    let runs = Arc::new(Runs::default());
    let nightly = CronJob::new("nightly").cron("0 3 * * *").immediate();
    let host = cron_host(recorded(nightly, &runs, "", None)).await;
    host.run_due_alarms().await.unwrap();
    let seen = runs.all();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        (seen[0].scheduled, seen[0].cause),
        (0, CronCause::Immediate)
    );
    host.advance(Duration::from_secs(2 * 24 * 3600))
        .await
        .unwrap();
    assert_eq!(runs.scheduled(), [0, 3 * HOUR, 27 * HOUR]);
    assert_eq!(runs.all()[1].cause, CronCause::Schedule);
    let status = CronJob::handle(&host.service(), "nightly")
        .status()
        .await
        .unwrap();
    assert_eq!(status.schedule.as_deref(), Some("cron 0 3 * * *"));
    assert_eq!(status.next_run, at(51 * HOUR));

    // An ISO period; immediate makes the first occurrence now.
    let runs = Arc::new(Runs::default());
    let daily = CronJob::new("daily").period("P1D").immediate();
    let host = cron_host(recorded(daily, &runs, "", None)).await;
    host.advance(Duration::from_secs(2 * 24 * 3600 + 60))
        .await
        .unwrap();
    assert_eq!(runs.scheduled(), [0, 24 * HOUR, 48 * HOUR]);
    assert!(runs.all().iter().all(|r| r.cause == CronCause::Schedule));
}

#[tokio::test]
async fn jitter_delays_each_run_without_drifting_the_schedule() {
    let runs = Arc::new(Runs::default());
    let job = CronJob::new("jittery")
        .every(Duration::from_secs(3600))
        .jitter(Duration::from_secs(600));
    let host = cron_host(recorded(job, &runs, "", None)).await;
    let next = CronJob::handle(&host.service(), "jittery")
        .next_run()
        .await
        .unwrap()
        .unwrap()
        .as_millisecond()
        - T0;
    assert!((HOUR..=HOUR + 600_000).contains(&next), "{next}");
    host.advance(Duration::from_secs(5 * 3600 + 1800))
        .await
        .unwrap();
    let seen = runs.all();
    assert_eq!(
        runs.scheduled(),
        [HOUR, 2 * HOUR, 3 * HOUR, 4 * HOUR, 5 * HOUR],
        "{seen:?}"
    );
    for run in &seen {
        assert!(
            (run.scheduled..=run.scheduled + 600_000).contains(&run.started),
            "{run:?}"
        );
    }
    let status = CronJob::handle(&host.service(), "jittery")
        .status()
        .await
        .unwrap();
    let live: Vec<_> = status
        .jobs
        .iter()
        .filter(|j| j.status == JobStatus::Pending)
        .collect();
    assert_eq!(
        live.len(),
        1,
        "one link of the chain waits: {:?}",
        status.jobs
    );
    assert_eq!(live[0].method, "chain");
}

#[tokio::test]
async fn a_trigger_runs_now_and_pending_triggers_collapse() {
    let runs = Arc::new(Runs::default());
    let job = CronJob::new("t").every(Duration::from_secs(3600));
    let host = cron_host(recorded(job, &runs, "", None)).await;
    let t = CronJob::handle(&host.service(), "t");
    let first = t.trigger().await.unwrap();
    let again = t.trigger().await.unwrap();
    assert_eq!(
        first, again,
        "a trigger waiting to start takes the next one in"
    );
    host.run_due_alarms().await.unwrap();
    let seen = runs.all();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!((seen[0].scheduled, seen[0].cause), (0, CronCause::Trigger));
    let info = host
        .service()
        .get_job(first.as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.status, JobStatus::Succeeded);

    host.advance(Duration::from_secs(60)).await.unwrap();
    let later = t.trigger().await.unwrap();
    assert_ne!(
        later, first,
        "a trigger after the last one ran is a new run"
    );
    host.run_due_alarms().await.unwrap();
    assert_eq!(runs.scheduled(), [0, 60_000]);
    // The schedule is untouched.
    assert_eq!(t.next_run().await.unwrap(), at(HOUR));
}

#[tokio::test]
async fn unregistering_stops_the_schedule() {
    let runs = Arc::new(Runs::default());
    let job = CronJob::new("gone").every(Duration::from_secs(3600));
    let host = cron_host(recorded(job, &runs, "", None)).await;
    let gone = CronJob::handle(&host.service(), "gone");
    host.advance(Duration::from_secs(3600)).await.unwrap();
    assert_eq!(runs.scheduled(), [HOUR]);
    gone.trigger().await.unwrap();

    assert!(gone.unregister().await.unwrap());
    assert!(!gone.unregister().await.unwrap());
    host.advance(Duration::from_secs(5 * 3600)).await.unwrap();
    assert_eq!(
        runs.scheduled(),
        [HOUR],
        "neither the schedule nor the trigger ran"
    );
    let status = gone.status().await.unwrap();
    assert!(!status.registered);
    assert_eq!((status.schedule, status.next_run), (None, None));
    assert!(
        status
            .jobs
            .iter()
            .all(|j| !matches!(j.status, JobStatus::Pending | JobStatus::Running)),
        "{:?}",
        status.jobs
    );
    let refused = gone.trigger().await.unwrap_err();
    assert!(
        matches!(refused, CronError::NotRegistered { .. }),
        "{refused}"
    );
}

#[tokio::test]
async fn a_job_whose_schedule_is_no_longer_recorded_removes_itself_instead_of_running() {
    // As if an unregister had forgotten the schedule but missed its jobs.
    for jitter in [Duration::ZERO, Duration::from_secs(60)] {
        let runs = Arc::new(Runs::default());
        let job = CronJob::new("orphan")
            .every(Duration::from_secs(3600))
            .jitter(jitter);
        let host = cron_host(recorded(job, &runs, "", None)).await;
        let service = host.service();
        let actor_type = "francis.builtin.cron.orphan";
        let jobs = service.list_jobs(actor_type, "runner").await.unwrap();
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        assert!(service.delete_state(actor_type, "singleton").await.unwrap());
        host.advance(Duration::from_secs(3 * 3600)).await.unwrap();
        assert_eq!(runs.all(), [], "jitter {jitter:?}");
        let live: Vec<_> = service
            .list_jobs(actor_type, "runner")
            .await
            .unwrap()
            .into_iter()
            .filter(|j| matches!(j.status, JobStatus::Pending | JobStatus::Running))
            .collect();
        assert_eq!(live, [], "jitter {jitter:?}");
    }
}

#[tokio::test]
async fn a_failing_run_is_retried_then_dead_lettered_and_the_schedule_goes_on() {
    let runs = Arc::new(Runs::default());
    let job = CronJob::new("flaky")
        .every(Duration::from_secs(3600))
        .max_attempts(3)
        .retry_delay(Duration::from_secs(60));
    let host = cron_host(recorded(job, &runs, "", Some("report service down"))).await;
    host.advance(Duration::from_secs(3600 + 600)).await.unwrap();
    let seen = runs.all();
    assert_eq!(
        seen.iter()
            .map(|s| (s.scheduled, s.attempt))
            .collect::<Vec<_>>(),
        [(HOUR, 1), (HOUR, 2), (HOUR, 3)],
        "{seen:?}"
    );
    let letters = host
        .service()
        .dead_jobs(&DeadLetterQuery {
            actor_type: Some("francis.builtin.cron.flaky".into()),
            limit: 0,
        })
        .await
        .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].attempts, 3);
    assert_eq!(letters[0].last_error, "report service down");
    assert_eq!(letters[0].scheduled_ms, T0 + HOUR);

    host.advance(Duration::from_secs(3600)).await.unwrap();
    assert_eq!(runs.all().len(), 6, "the next occurrence ran too");
    assert_eq!(runs.all()[3].scheduled, 2 * HOUR);
    let flaky = CronJob::handle(&host.service(), "flaky");
    assert_eq!(flaky.next_run().await.unwrap(), at(3 * HOUR));
}

#[tokio::test]
async fn a_replayed_dead_letter_runs_once_more_and_leaves_the_schedule_alone() {
    for jitter in [Duration::ZERO, Duration::from_secs(60)] {
        let runs = Arc::new(Runs::default());
        let failing = Arc::new(AtomicBool::new(true));
        let job = CronJob::new("replayed")
            .every(Duration::from_secs(3600))
            .jitter(jitter)
            .max_attempts(1);
        let job = {
            let failing = failing.clone();
            let runs = runs.clone();
            job.run(move |run: CronRun| {
                let failing = failing.clone();
                let runs = runs.clone();
                async move {
                    if failing.load(Ordering::SeqCst) {
                        return Err("not yet".to_owned());
                    }
                    runs.0.lock().unwrap().push(Seen {
                        scheduled: run.scheduled().as_millisecond() - T0,
                        started: run.started().as_millisecond() - T0,
                        attempt: run.attempt(),
                        cause: run.cause(),
                        host: String::new(),
                    });
                    Ok(())
                }
            })
        };
        let host = cron_host(job).await;
        let service = host.service();
        let handle = CronJob::handle(&service, "replayed");
        host.advance(Duration::from_secs(3600 + 120)).await.unwrap();
        let letters = service
            .dead_jobs(&DeadLetterQuery {
                actor_type: Some(handle.actor_type().into()),
                limit: 0,
            })
            .await
            .unwrap();
        assert_eq!(letters.len(), 1, "jitter {jitter:?}");
        failing.store(false, Ordering::SeqCst);
        let next = handle.next_run().await.unwrap();
        assert!(
            service
                .retry_dead_job(&letters[0].id)
                .await
                .unwrap()
                .is_some()
        );
        // The scheduler starts again while the replay waits: the schedule stays as it was.
        service
            .halt(handle.actor_type(), "singleton")
            .await
            .unwrap();
        assert_eq!(handle.next_run().await.unwrap(), next, "jitter {jitter:?}");
        host.run_due_alarms().await.unwrap();
        assert_eq!(runs.all().len(), 1, "the replay ran: {:?}", runs.all());
        host.advance(Duration::from_secs(2 * 3600)).await.unwrap();
        let scheduled: Vec<i64> = runs.scheduled()[1..].to_vec();
        assert_eq!(
            scheduled,
            [2 * HOUR, 3 * HOUR],
            "each occurrence once, no second chain: jitter {jitter:?}"
        );
    }
}

#[tokio::test]
async fn a_restart_with_a_changed_schedule_replaces_its_job_and_keeps_the_next_due_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cron.db");
    let runs = Arc::new(Runs::default());
    let start = |job: CronJob, at_ms: i64| {
        let runs = runs.clone();
        let db = db.clone();
        async move {
            TestHost::builder()
                .start_at(jiff::Timestamp::from_millisecond(T0 + at_ms).unwrap())
                .sqlite(db)
                .builtin(recorded(job, &runs, "", None))
                .build()
                .await
                .unwrap()
        }
    };
    let live_job = |host: &TestHost| {
        let handle = CronJob::handle(&host.service(), "report");
        async move {
            let status = handle.status().await.unwrap();
            let live: Vec<_> = status
                .jobs
                .into_iter()
                .filter(|j| matches!(j.status, JobStatus::Pending | JobStatus::Running))
                .collect();
            assert_eq!(live.len(), 1, "{live:?}");
            live.into_iter().next().unwrap()
        }
    };

    let first = start(CronJob::new("report").every(Duration::from_secs(3600)), 0).await;
    first.advance(Duration::from_secs(1800)).await.unwrap();
    let hourly = live_job(&first).await;
    assert_eq!(hourly.due_ms, Some(T0 + HOUR));
    first.shutdown().await.unwrap();

    // Restarted half an hour later with a two-hourly schedule: the hourly job is gone, and
    // the new one is first due when the old one was.
    let second = start(
        CronJob::new("report").every(Duration::from_secs(7200)),
        HOUR / 2,
    )
    .await;
    let two_hourly = live_job(&second).await;
    assert_ne!(two_hourly.job_id, hourly.job_id);
    assert_eq!(two_hourly.interval.as_deref(), Some("PT2H"));
    assert_eq!(
        two_hourly.due_ms,
        Some(T0 + HOUR),
        "the next due time is kept"
    );
    assert_eq!(
        second.service().get_job(&hourly.job_id).await.unwrap(),
        None,
        "the old job was cancelled"
    );
    second.advance(Duration::from_secs(3 * 3600)).await.unwrap();
    assert_eq!(runs.scheduled(), [HOUR, 3 * HOUR]);
    second.shutdown().await.unwrap();

    // The same schedule again: nothing changes.
    let third = start(
        CronJob::new("report").every(Duration::from_secs(7200)),
        3 * HOUR + HOUR / 2,
    )
    .await;
    let same = live_job(&third).await;
    assert_eq!(same.job_id, two_hourly.job_id);
    assert_eq!(same.due_ms, Some(T0 + 5 * HOUR));
    third.shutdown().await.unwrap();

    // With jitter now: a chain takes over, its first link when the repeating job was due.
    let fourth = start(
        CronJob::new("report")
            .every(Duration::from_secs(7200))
            .jitter(Duration::from_secs(600)),
        4 * HOUR,
    )
    .await;
    let chain = live_job(&fourth).await;
    assert_eq!(
        (chain.method.as_str(), chain.due_ms),
        ("chain", Some(T0 + 5 * HOUR))
    );
    fourth.advance(Duration::from_secs(4 * 3600)).await.unwrap();
    let seen = runs.all();
    assert_eq!(
        runs.scheduled(),
        [HOUR, 3 * HOUR, 5 * HOUR, 7 * HOUR],
        "{seen:?}"
    );
    assert!((7 * HOUR..=7 * HOUR + 600_000).contains(&seen[3].started));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hosts_on_one_store_run_each_occurrence_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cluster.db");
    let runs = Arc::new(Runs::default());
    let build = |name: &'static str| {
        let runs = runs.clone();
        let db = db.clone();
        async move {
            let job = CronJob::new("tick").every(Duration::from_secs(1));
            let host = Host::local()
                .sqlite(&db)
                .runtime_psk("cron test psk, at least thirty-two bytes long")
                .address(francis::testing::free_local_address())
                .alarms_poll_interval(Duration::from_millis(100))
                .builtin(recorded(job, &runs, name, None))
                .build()
                .await
                .unwrap();
            support::run(host)
        }
    };
    let (a, b, c) = tokio::join!(build("a"), build("b"), build("c"));
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let handle = CronJob::handle(&a.0, "tick");
    let next = handle.next_run().await.unwrap();
    for (_, stop, run) in [a, b, c] {
        stop.send(()).unwrap();
        run.await.unwrap().unwrap();
    }
    let seen = runs.all();
    let mut per_occurrence: BTreeMap<i64, u32> = BTreeMap::new();
    for run in &seen {
        *per_occurrence.entry(run.scheduled).or_default() += 1;
    }
    assert!(
        per_occurrence.values().all(|&n| n == 1),
        "an occurrence ran twice: {seen:?}"
    );
    assert!(per_occurrence.len() >= 2, "{seen:?}");
    let times: Vec<i64> = per_occurrence.keys().copied().collect();
    assert!(
        times.windows(2).all(|w| w[1] - w[0] == 1000),
        "one run a second, none skipped: {times:?}"
    );
    assert!(next.is_some());
}

#[tokio::test]
async fn invalid_settings_fail_the_build_with_what_to_do() {
    let err = TestHost::builder()
        .builtin(
            CronJob::new("bad")
                .every(Duration::from_secs(60))
                .cron("0 3 * * *"),
        )
        .builtin(
            CronJob::new("jumpy")
                .every(Duration::from_secs(60))
                .jitter(Duration::from_secs(30))
                .run(|_run: CronRun| async { Ok::<(), JobFailure>(()) }),
        )
        .builtin(
            CronJob::new("")
                .every(Duration::from_secs(60))
                .run(|_run: CronRun| async { Ok::<(), JobFailure>(()) }),
        )
        .build()
        .await
        .err()
        .unwrap()
        .to_string();
    for expected in [
        "cron \"bad\": 2 schedules given; give exactly one of .every(Duration)",
        "cron \"bad\": no function to run",
        "cron \"jumpy\": jitter 30s is not less than half the schedule's shortest period (60s)",
        "a cron built-in has an empty name",
    ] {
        assert!(err.contains(expected), "{expected:?} not in {err}");
    }
}

// ---------------------------------------------------------------------------------------------
// Task pools
// ---------------------------------------------------------------------------------------------

/// A task of the pools under test.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Resize {
    image: u32,
    /// How long the handler takes.
    millis: u64,
}

fn resize(image: u32, millis: u64) -> Resize {
    Resize { image, millis }
}

/// What the pools' handlers did.
#[derive(Default)]
struct Work {
    /// `(image, host, attempt)` of each run that finished.
    done: Mutex<Vec<(u32, String, u32)>>,
    /// Runs in progress now, and the most at once.
    running: Mutex<(u32, u32)>,
    /// Fail every run for good while set.
    broken: AtomicBool,
    /// Fail the first attempt of each task (to retry) while set.
    flaky: AtomicBool,
}

impl Work {
    fn done(&self) -> Vec<(u32, String, u32)> {
        self.done.lock().unwrap().clone()
    }
}

/// Pool `name` run by `host`, recording on `work`.
fn pool(name: &str, host: &str, work: &Arc<Work>) -> TaskPool {
    let work = work.clone();
    let host = host.to_owned();
    TaskPool::new(name).handler(move |task: Task<Resize>| {
        let work = work.clone();
        let host = host.clone();
        async move {
            if work.broken.load(Ordering::SeqCst) {
                return Err(JobFailure::Permanent("image is corrupt".into()));
            }
            if work.flaky.load(Ordering::SeqCst) && task.info.attempt == 1 {
                return Err(JobFailure::Retry("disk busy".into()));
            }
            {
                let mut running = work.running.lock().unwrap();
                running.0 += 1;
                running.1 = running.1.max(running.0);
            }
            tokio::time::sleep(Duration::from_millis(task.input.millis)).await;
            work.running.lock().unwrap().0 -= 1;
            work.done
                .lock()
                .unwrap()
                .push((task.input.image, host, task.info.attempt));
            Ok(())
        }
    })
}

/// A local host on `db` named `name`, with task pool `pool`, run until stopped.
async fn pool_host(db: &std::path::Path, pool: TaskPool) -> support::Running {
    let host = Host::local()
        .sqlite(db)
        .runtime_psk("taskpool test psk, at least thirty-two bytes")
        .address(francis::testing::free_local_address())
        .alarms_poll_interval(Duration::from_millis(100))
        .builtin(pool)
        .build()
        .await
        .unwrap();
    support::run(host)
}

/// Wait (bounded) until every task in `ids` succeeded, with no attempt counted.
async fn until_done(pool: &TaskPoolHandle, ids: &[JobId], work: &Work) {
    for _ in 0..200 {
        let mut done = 0;
        for id in ids {
            if let Some(info) = pool.get(id.as_str()).await.unwrap()
                && info.status == JobStatus::Succeeded
            {
                assert_eq!(info.attempts, 0, "released tasks count no attempt");
                done += 1;
            }
        }
        if done == ids.len() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the tasks did not all succeed within 10 s; done: {:?}",
        work.done()
    );
}

async fn stop(hosts: Vec<support::Running>) {
    for (_, stop, run) in hosts {
        stop.send(()).unwrap();
        run.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_host_runs_at_most_its_concurrency_and_every_task_completes() {
    let dir = tempfile::tempdir().unwrap();
    let work = Arc::new(Work::default());
    let host = pool_host(
        &dir.path().join("c.db"),
        pool("resize", "a", &work).concurrency(2),
    )
    .await;
    let resize_pool = TaskPool::handle(&host.0, "resize");
    let mut ids = Vec::new();
    for image in 0..6 {
        ids.push(
            resize_pool
                .submit(&resize(image, 200), SubmitOptions::default())
                .await
                .unwrap(),
        );
    }
    until_done(&resize_pool, &ids, &work).await;
    let most = work.running.lock().unwrap().1;
    assert_eq!(most, 2, "two at once, never more");
    let mut images: Vec<u32> = work.done().iter().map(|d| d.0).collect();
    images.sort_unstable();
    assert_eq!(images, [0, 1, 2, 3, 4, 5]);
    stop(vec![host]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_turned_down_on_one_host_runs_on_another() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let work = Arc::new(Work::default());
    let picky = pool_host(&db, pool("resize", "a", &work).accept(|_task| false)).await;
    let willing = pool_host(
        &db,
        pool("resize", "b", &work).accept(|task| task.attempt == 1),
    )
    .await;
    let resize_pool = TaskPool::handle(&picky.0, "resize");
    let mut ids = Vec::new();
    for image in 0..4 {
        ids.push(
            resize_pool
                .submit(&resize(image, 0), SubmitOptions::default())
                .await
                .unwrap(),
        );
    }
    until_done(&resize_pool, &ids, &work).await;
    let done = work.done();
    assert_eq!(done.len(), 4, "{done:?}");
    assert!(done.iter().all(|(_, host, _)| host == "b"), "{done:?}");
    stop(vec![picky, willing]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tasks_requiring_a_capability_run_only_where_it_is_offered() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let work = Arc::new(Work::default());
    let plain = pool_host(&db, pool("resize", "cpu", &work).concurrency(4)).await;
    let gpu = pool_host(&db, pool("resize", "gpu", &work).capability("gpu")).await;
    let resize_pool = TaskPool::handle(&plain.0, "resize");
    let mut ids = Vec::new();
    for image in 0..6 {
        let capability = (image % 2 == 0).then(|| "gpu".to_owned());
        let options = SubmitOptions {
            capability,
            ..SubmitOptions::default()
        };
        ids.push(
            resize_pool
                .submit(&resize(image, 20), options)
                .await
                .unwrap(),
        );
    }
    until_done(&resize_pool, &ids, &work).await;
    let done = work.done();
    for (image, host, _) in &done {
        if image % 2 == 0 {
            assert_eq!(host, "gpu", "{done:?}");
        }
    }
    let gpu_task = resize_pool.get(ids[0].as_str()).await.unwrap().unwrap();
    assert_eq!(
        gpu_task.key.actor_type,
        "francis.builtin.taskpool.resize.gpu"
    );
    stop(vec![plain, gpu]).await;
}

async fn pool_test_host(pool: TaskPool) -> TestHost {
    TestHost::builder()
        .start_at(t0())
        .builtin(pool)
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_key_makes_a_submission_idempotent() {
    let work = Arc::new(Work::default());
    let host = pool_test_host(pool("resize", "t", &work)).await;
    let resize_pool = TaskPool::handle(&host.service(), "resize");
    let keyed = || SubmitOptions {
        key: Some("image-7".into()),
        ..SubmitOptions::default()
    };
    let first = resize_pool.submit(&resize(7, 0), keyed()).await.unwrap();
    let again = resize_pool.submit(&resize(8, 0), keyed()).await.unwrap();
    assert_eq!(first, again);
    host.run_due_alarms().await.unwrap();
    let after = resize_pool.submit(&resize(9, 0), keyed()).await.unwrap();
    assert_eq!(after, first, "a success is remembered under its key");
    host.run_due_alarms().await.unwrap();
    assert_eq!(work.done(), [(7, "t".to_owned(), 1)]);
    let info = resize_pool.get(first.as_str()).await.unwrap().unwrap();
    assert_eq!(info.key.actor_id, "image-7", "the key names the worker");
    assert_eq!(info.status, JobStatus::Succeeded);
    // The worker halted once done.
    for _ in 0..100 {
        if host.active_actors() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(host.active_actors(), 0);
}

#[tokio::test]
async fn tasks_are_looked_up_cancelled_retried_and_their_input_bounded() {
    let work = Arc::new(Work::default());
    let host = pool_test_host(
        pool("resize", "t", &work)
            .max_attempts(2)
            .retry_delay(Duration::from_secs(1)),
    )
    .await;
    let service = host.service();
    let resize_pool = TaskPool::handle(&service, "resize");
    let submit = |image: u32| {
        let resize_pool = resize_pool.clone();
        async move {
            resize_pool
                .submit(&resize(image, 0), SubmitOptions::default())
                .await
                .unwrap()
        }
    };

    // Cancelled before it ran: it never does.
    let kept = submit(1).await;
    let cancelled = submit(2).await;
    assert_eq!(
        resize_pool
            .get(cancelled.as_str())
            .await
            .unwrap()
            .unwrap()
            .status,
        JobStatus::Pending
    );
    assert!(resize_pool.cancel(cancelled.as_str()).await.unwrap());
    assert!(!resize_pool.cancel(cancelled.as_str()).await.unwrap());
    assert_eq!(resize_pool.get(cancelled.as_str()).await.unwrap(), None);
    host.run_due_alarms().await.unwrap();
    assert_eq!(work.done(), [(1, "t".to_owned(), 1)]);
    assert!(
        !resize_pool.cancel(kept.as_str()).await.unwrap(),
        "finished"
    );

    // A retryable failure runs again; the handler sees the attempt.
    work.flaky.store(true, Ordering::SeqCst);
    let flaky = submit(3).await;
    host.advance(Duration::from_secs(10)).await.unwrap();
    let info = resize_pool.get(flaky.as_str()).await.unwrap().unwrap();
    assert_eq!((info.status, info.attempts), (JobStatus::Succeeded, 1));
    assert_eq!(work.done()[1], (3, "t".to_owned(), 2));
    work.flaky.store(false, Ordering::SeqCst);

    // A permanent failure is dead-lettered at once, and retried on demand.
    work.broken.store(true, Ordering::SeqCst);
    let doomed = submit(4).await;
    host.run_due_alarms().await.unwrap();
    let info = resize_pool.get(doomed.as_str()).await.unwrap().unwrap();
    assert_eq!((info.status, info.attempts), (JobStatus::DeadLettered, 1));
    assert_eq!(
        info.last_error.as_deref(),
        Some("permanent failure: image is corrupt")
    );
    let letters = resize_pool.dead_letters().await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].job_id.as_deref(), Some(doomed.as_str()));
    work.broken.store(false, Ordering::SeqCst);
    let retried = resize_pool.retry(&letters[0].id).await.unwrap().unwrap();
    assert_ne!(retried, doomed);
    assert_eq!(resize_pool.retry(&letters[0].id).await.unwrap(), None);
    host.run_due_alarms().await.unwrap();
    assert_eq!(
        resize_pool
            .get(retried.as_str())
            .await
            .unwrap()
            .unwrap()
            .status,
        JobStatus::Succeeded
    );
    assert_eq!(work.done().last().unwrap().0, 4);

    // Another pool's task is not this pool's to see.
    let other = TaskPool::handle(&service, "other");
    assert_eq!(other.get(kept.as_str()).await.unwrap(), None);
    assert!(!other.cancel(kept.as_str()).await.unwrap());

    // Inputs are bounded, to the byte: a str 32 header takes 5 bytes.
    let too_big = "x".repeat(MAX_INPUT_SIZE - 4);
    let refused = resize_pool
        .submit(&too_big, SubmitOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(refused, TaskError::InputTooLarge { size, limit: MAX_INPUT_SIZE, .. } if size == MAX_INPUT_SIZE + 1),
        "{refused}"
    );
    // The largest input is taken; a handler expecting another type fails it for good.
    let fits = "x".repeat(MAX_INPUT_SIZE - 5);
    let wrong = resize_pool
        .submit(&fits, SubmitOptions::default())
        .await
        .unwrap();
    host.run_due_alarms().await.unwrap();
    let info = resize_pool.get(wrong.as_str()).await.unwrap().unwrap();
    assert_eq!(info.status, JobStatus::DeadLettered);
    assert!(
        info.last_error.unwrap().contains("does not decode"),
        "the handler wants a Resize"
    );

    // Capabilities are names.
    let bad = resize_pool
        .submit(
            &resize(5, 0),
            SubmitOptions {
                capability: Some("g.p.u".into()),
                ..SubmitOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(bad, TaskError::InvalidCapability { .. }), "{bad}");
}

#[tokio::test]
async fn invalid_pool_settings_fail_the_build_with_what_to_do() {
    let err = TestHost::builder()
        .builtin(TaskPool::new("thumbs").concurrency(0))
        .build()
        .await
        .err()
        .unwrap()
        .to_string();
    for expected in [
        "taskpool \"thumbs\": no handler",
        "taskpool \"thumbs\": concurrency is 0",
    ] {
        assert!(err.contains(expected), "{expected:?} not in {err}");
    }
}
