//! Durable jobs end to end: typed dispatch through the proxy and untyped through `Service`,
//! statuses, idempotency keys, cron and interval repeats on a virtual clock, retries and dead
//! letters with the typed `#[job_failed]` hook, retrying and purging dead jobs, permanent
//! failures, capacity groups, and a rejected job running on another host.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use francis::model::DeadLetterQuery;
use francis::prelude::*;
use francis::testing::TestHost;
use francis::{JobSpec, JobStatus};

/// Midnight UTC, 2026-12-05.
const T0: i64 = 1_796_428_800_000;

/// What the jobs did, in order, and how often each order failed so far.
#[derive(Default)]
struct Probe {
    log: Mutex<Vec<String>>,
    failures: Mutex<HashMap<String, u32>>,
    running: Mutex<(u32, u32)>,
}

impl Probe {
    fn push(&self, line: String) {
        self.log.lock().unwrap().push(line);
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

/// A shipment, and how its job should behave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Ship {
    to: String,
    /// `ok`, `flaky` (fails twice), `always` (fails every time), `bad` (permanent), `slow`
    /// (sleeps 150 ms), `elsewhere` (rejected on host "a").
    mode: String,
}

fn ship(to: &str, mode: &str) -> Ship {
    Ship {
        to: to.into(),
        mode: mode.into(),
    }
}

#[derive(Debug, Serialize, Deserialize, thiserror::Error)]
enum ShipError {
    #[error("carrier unavailable")]
    CarrierDown,
    #[error("address is invalid")]
    BadAddress,
    #[error("cannot ship from {0}")]
    NotHere(String),
}

impl JobError for ShipError {
    fn disposition(&self) -> Disposition {
        match self {
            ShipError::CarrierDown => Disposition::Retry,
            ShipError::BadAddress => Disposition::Permanent,
            ShipError::NotHere(_) => Disposition::Reject,
        }
    }
}

struct Order {
    ctx: ActorContext,
}

#[francis::actor]
impl Order {
    fn activate(ctx: &ActorContext) -> Self {
        Order { ctx: ctx.clone() }
    }

    /// Ship an order.
    #[job]
    pub async fn ship(&mut self, shipment: Ship) -> Result<(), ShipError> {
        let probe = self.ctx.data::<Arc<Probe>>().unwrap();
        let host = self
            .ctx
            .data::<support::HostName>()
            .map(|h| h.0.clone())
            .unwrap_or_default();
        let at = self.ctx.now().as_millisecond() - T0;
        probe.push(format!("ship {} @{at}", shipment.to));
        let failed = {
            let mut failures = probe.failures.lock().unwrap();
            let count = failures.entry(shipment.to.clone()).or_default();
            *count += 1;
            *count - 1
        };
        match shipment.mode.as_str() {
            "flaky" if failed < 2 => Err(ShipError::CarrierDown),
            "always" => Err(ShipError::CarrierDown),
            "bad" => Err(ShipError::BadAddress),
            "elsewhere" if host == "a" => Err(ShipError::NotHere(host)),
            "elsewhere" => {
                probe.push(format!("shipped {} from {host}", shipment.to));
                Ok(())
            }
            "slow" => {
                {
                    let mut running = probe.running.lock().unwrap();
                    running.0 += 1;
                    running.1 = running.1.max(running.0);
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
                probe.running.lock().unwrap().0 -= 1;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Heard when a shipment was dead-lettered.
    #[job_failed(ship)]
    pub async fn ship_failed(&mut self, failed: JobFailed<Ship>) -> Result<(), ShipError> {
        let probe = self.ctx.data::<Arc<Probe>>().unwrap();
        probe.push(format!(
            "failed {} after {} ({})",
            failed.payload.to, failed.attempts, failed.error
        ));
        Ok(())
    }

    /// A plain method.
    pub async fn hello(&self) -> Result<String, ShipError> {
        Ok("hi".into())
    }
}

/// A second type that can share `Order`'s capacity group.
struct Invoice {
    ctx: ActorContext,
}

#[francis::actor]
impl Invoice {
    fn activate(ctx: &ActorContext) -> Self {
        Invoice { ctx: ctx.clone() }
    }

    /// Takes 150 ms, counted in the same gauge as `Order::ship`'s slow mode.
    #[job]
    pub async fn send(&mut self, _to: String) -> Result<(), ShipError> {
        let probe = self.ctx.data::<Arc<Probe>>().unwrap();
        {
            let mut running = probe.running.lock().unwrap();
            running.0 += 1;
            running.1 = running.1.max(running.0);
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        probe.running.lock().unwrap().0 -= 1;
        Ok(())
    }
}

async fn host() -> (TestHost, Arc<Probe>) {
    let probe = Arc::new(Probe::default());
    let host = TestHost::builder()
        .start_at(jiff::Timestamp::from_millisecond(T0).unwrap())
        .data(probe.clone())
        .register_with::<Order>(
            ActorOptions::default()
                .alarm_max_attempts(3)
                .alarm_retry_delay(Duration::from_secs(2)),
        )
        .build()
        .await
        .unwrap();
    (host, probe)
}

#[tokio::test]
async fn a_typed_job_runs_once_and_reports_success_and_its_key_wins_first() {
    let (host, probe) = host().await;
    let order = host.actor::<Order>("o-1");
    let id = order
        .job_ship(ship("Oslo", "ok"))
        .after(Duration::from_secs(10))
        .key("ship-o-1")
        .dispatch()
        .await
        .unwrap();
    let again = order
        .job_ship(ship("Bergen", "ok"))
        .key("ship-o-1")
        .dispatch()
        .await
        .unwrap();
    assert_eq!(id, again, "the first dispatch with a key wins");

    let info = host.service().get_job(id.as_str()).await.unwrap().unwrap();
    assert_eq!(info.status, JobStatus::Pending);
    assert_eq!(info.due_ms, Some(T0 + 10_000));
    assert_eq!(info.method, "ship");

    host.advance(Duration::from_secs(10)).await.unwrap();
    assert_eq!(probe.log(), ["ship Oslo @10000"]);
    let info = host.service().get_job(id.as_str()).await.unwrap().unwrap();
    assert_eq!((info.status, info.attempts), (JobStatus::Succeeded, 0));
    assert_eq!(info.finished_ms, Some(T0 + 10_000));
    assert_eq!(
        order
            .job_ship(ship("Bergen", "ok"))
            .key("ship-o-1")
            .dispatch()
            .await
            .unwrap(),
        id,
        "the key stays taken while the success is remembered"
    );
    host.advance(Duration::from_secs(60)).await.unwrap();
    assert_eq!(probe.log().len(), 1, "it ran once");
    assert_eq!(order.jobs().await.unwrap().len(), 1);
}

#[tokio::test]
async fn cron_and_interval_jobs_repeat_on_their_schedule_until_cancelled() {
    let (host, probe) = host().await;
    let order = host.actor::<Order>("o-2");
    // Every day at 03:00 UTC: the first run is the next tick, 3 hours after T0.
    let nightly = order
        .job_ship(ship("nightly", "ok"))
        .cron("0 3 * * *")
        .dispatch()
        .await
        .unwrap();
    let every = order
        .job_ship(ship("hourly", "ok"))
        .every(Duration::from_secs(3600))
        .after(Duration::from_secs(3600))
        .dispatch()
        .await
        .unwrap();
    host.advance(Duration::from_secs(3 * 3600)).await.unwrap();
    assert_eq!(
        probe.log(),
        [
            "ship hourly @3600000",
            "ship hourly @7200000",
            // Due together: the job dispatched first runs first.
            "ship nightly @10800000",
            "ship hourly @10800000",
        ]
    );
    let info = host
        .service()
        .get_job(nightly.as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.status, JobStatus::Pending, "a repeating job stays");
    assert_eq!(info.due_ms, Some(T0 + 27 * 3600 * 1000));
    assert_eq!(info.cron.as_deref(), Some("0 3 * * *"));

    assert!(order.cancel_job(every.as_str()).await.unwrap());
    assert!(!order.cancel_job(every.as_str()).await.unwrap());
    host.advance(Duration::from_secs(24 * 3600)).await.unwrap();
    let log = probe.log();
    assert_eq!(log.len(), 5, "{log:?}");
    assert_eq!(log[4], "ship nightly @97200000");

    let refused = order
        .job_ship(ship("x", "ok"))
        .cron("0 3 * *")
        .dispatch()
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("5 fields"), "{refused}");
    let both = order
        .job_ship(ship("x", "ok"))
        .cron("0 3 * * *")
        .every(Duration::from_secs(60))
        .dispatch()
        .await
        .unwrap_err();
    assert!(both.to_string().contains("not both"), "{both}");
}

#[tokio::test]
async fn failures_retry_with_backoff_then_dead_letter_and_run_the_typed_hook() {
    let (host, probe) = host().await;
    let order = host.actor::<Order>("o-3");
    let flaky = order
        .job_ship(ship("flaky", "flaky"))
        .dispatch()
        .await
        .unwrap();
    let doomed = order
        .job_ship(ship("doomed", "always"))
        .dispatch()
        .await
        .unwrap();
    host.advance(Duration::from_secs(60)).await.unwrap();
    let flaky_info = host
        .service()
        .get_job(flaky.as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (flaky_info.status, flaky_info.attempts),
        (JobStatus::Succeeded, 2),
        "two failures, then a success"
    );
    let dead = host
        .service()
        .get_job(doomed.as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dead.status, JobStatus::DeadLettered);
    assert_eq!(dead.attempts, 3);
    assert_eq!(dead.last_error.as_deref(), Some("carrier unavailable"));
    let log = probe.log();
    assert_eq!(
        log.iter().filter(|l| l.starts_with("ship doomed")).count(),
        3
    );
    assert!(
        log.contains(&"failed doomed after 3 (carrier unavailable)".to_owned()),
        "{log:?}"
    );

    let letters = host
        .service()
        .dead_jobs(&DeadLetterQuery::default())
        .await
        .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].job_id.as_deref(), Some(doomed.as_str()));
    // Retried: a fresh one-shot job, which fails again and comes back as a new letter.
    let retried = host
        .service()
        .retry_dead_job(&letters[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(retried, doomed);
    assert_eq!(
        host.service().retry_dead_job(&letters[0].id).await.unwrap(),
        None,
        "a letter is retried once"
    );
    host.advance(Duration::from_secs(60)).await.unwrap();
    assert_eq!(
        probe
            .log()
            .iter()
            .filter(|l| l.starts_with("ship doomed"))
            .count(),
        6
    );
    let letters = host
        .service()
        .dead_jobs(&DeadLetterQuery::default())
        .await
        .unwrap();
    assert_eq!(letters.len(), 1);
    assert!(
        host.service()
            .delete_dead_job(&letters[0].id)
            .await
            .unwrap()
    );
    assert!(
        !host
            .service()
            .delete_dead_job(&letters[0].id)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_permanent_failure_dead_letters_at_once_and_old_letters_are_purged() {
    let (host, probe) = host().await;
    let id = host
        .service()
        .dispatch_job(
            "order",
            "o-4",
            "ship",
            JobSpec {
                data: Some(Envelope::encode(&ship("nowhere", "bad")).unwrap()),
                ..JobSpec::default()
            },
        )
        .await
        .unwrap();
    host.run_due_alarms().await.unwrap();
    let info = host.service().get_job(id.as_str()).await.unwrap().unwrap();
    assert_eq!((info.status, info.attempts), (JobStatus::DeadLettered, 1));
    assert_eq!(
        probe.log(),
        [
            "ship nowhere @0",
            "failed nowhere after 1 (address is invalid)"
        ]
    );
    host.advance(Duration::from_secs(3600)).await.unwrap();
    assert_eq!(
        host.service()
            .purge_dead_jobs(Duration::from_secs(7200))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        host.service()
            .purge_dead_jobs(Duration::from_secs(1800))
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn job_methods_are_not_invokable_and_unknown_jobs_are_refused() {
    let (host, _probe) = host().await;
    let refused = host
        .service()
        .invoke(
            "order",
            "o-5",
            "ship",
            Envelope::encode(&ship("x", "ok")).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(refused, francis::Error::NotInvokable { .. }),
        "{refused}"
    );
    let unknown = host
        .service()
        .dispatch_job("order", "o-5", "hello", JobSpec::default())
        .await
        .unwrap_err();
    let text = unknown.to_string();
    assert!(
        text.contains("no #[job] method \"hello\"") && text.contains("ship"),
        "{text}"
    );
    let bad_key = host
        .service()
        .dispatch_job(
            "order",
            "o-5",
            "ship",
            JobSpec {
                key: Some("a/b".into()),
                ..JobSpec::default()
            },
        )
        .await
        .unwrap_err();
    assert!(bad_key.to_string().contains("idempotency key"), "{bad_key}");
    assert_eq!(host.service().get_job("nope").await.unwrap(), None);
}

/// Runs a local host on `db`, named `name`, with `Order` in capacity group "shipping".
async fn shipping_host(
    db: &std::path::Path,
    name: &str,
    probe: Arc<Probe>,
    limit: u32,
) -> support::Running {
    let host = Host::local()
        .sqlite(db)
        .runtime_psk("jobs test psk, at least thirty-two bytes long")
        .address(francis::testing::free_local_address())
        .alarms_poll_interval(Duration::from_millis(100))
        .data(support::HostName(name.to_owned()))
        .data(probe)
        .register_with::<Order>(ActorOptions::default().capacity_group("shipping", limit))
        .register_with::<Invoice>(ActorOptions::default().capacity_group("shipping", limit))
        .build()
        .await
        .unwrap();
    support::run(host)
}

/// Wait (bounded) until every job in `ids` succeeded.
async fn until_succeeded(service: &Service, ids: &[francis::JobId], probe: &Probe) {
    for _ in 0..200 {
        let mut done = 0;
        for id in ids {
            if let Some(info) = service.get_job(id.as_str()).await.unwrap()
                && info.status == JobStatus::Succeeded
            {
                assert_eq!(info.attempts, 0, "released jobs count no attempt");
                done += 1;
            }
        }
        if done == ids.len() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut infos = Vec::new();
    for id in ids {
        infos.push(service.get_job(id.as_str()).await.unwrap());
    }
    panic!(
        "the jobs did not all succeed within 10 s: {infos:?}; log: {:?}",
        probe.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_capacity_group_releases_jobs_without_counting_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let probe = Arc::new(Probe::default());
    let (service, stop, run) = shipping_host(&dir.path().join("c.db"), "a", probe.clone(), 1).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let order = service.actor::<Order>(format!("slow-{i}"));
        ids.push(
            order
                .job_ship(ship(&format!("s{i}"), "slow"))
                .dispatch()
                .await
                .unwrap(),
        );
        let invoice = service.actor::<Invoice>(format!("slow-{i}"));
        ids.push(invoice.job_send(format!("s{i}")).dispatch().await.unwrap());
    }
    until_succeeded(&service, &ids, &probe).await;
    assert_eq!(
        probe.running.lock().unwrap().1,
        1,
        "the group never ran two jobs at once, of either type"
    );
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rejected_job_runs_on_another_host_without_counting_an_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let probe = Arc::new(Probe::default());
    let (a, stop_a, run_a) = shipping_host(&db, "a", probe.clone(), 4).await;
    let (_b, stop_b, run_b) = shipping_host(&db, "b", probe.clone(), 4).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let order = a.actor::<Order>(format!("r-{i}"));
        ids.push(
            order
                .job_ship(ship(&format!("r{i}"), "elsewhere"))
                .dispatch()
                .await
                .unwrap(),
        );
    }
    until_succeeded(&a, &ids, &probe).await;
    let log = probe.log();
    for i in 0..4 {
        assert!(log.contains(&format!("shipped r{i} from b")), "{log:?}");
    }
    stop_a.send(()).unwrap();
    stop_b.send(()).unwrap();
    run_a.await.unwrap().unwrap();
    run_b.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_capacity_group_needs_one_limit_and_a_positive_one() {
    let refused = TestHost::builder()
        .register_with::<Order>(ActorOptions::default().capacity_group("shipping", 2))
        .register_with::<Invoice>(ActorOptions::default().capacity_group("shipping", 3))
        .build()
        .await
        .err()
        .unwrap();
    assert!(
        refused
            .to_string()
            .contains("give every type of a group the same limit"),
        "{refused}"
    );
    let zero = TestHost::builder()
        .register_with::<Order>(ActorOptions::default().capacity_group("shipping", 0))
        .build()
        .await
        .err()
        .unwrap();
    assert!(zero.to_string().contains("limit 0"), "{zero}");
}

#[tokio::test]
async fn a_repeating_job_runs_its_failure_hook_on_every_dead_occurrence() {
    let (host, probe) = host().await;
    // Due again within the poll interval: the host keeps the lease between occurrences.
    host.actor::<Order>("o-6")
        .job_ship(ship("often", "bad"))
        .every(Duration::from_secs(1))
        .dispatch()
        .await
        .unwrap();
    host.advance(Duration::from_millis(2500)).await.unwrap();
    let failed = probe
        .log()
        .iter()
        .filter(|l| l.starts_with("failed often"))
        .count();
    assert_eq!(failed, 3, "{:?}", probe.log());
}
