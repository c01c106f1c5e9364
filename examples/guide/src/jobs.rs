//! "Jobs": a delivery whose shipping job is retried, dead-lettered with a typed hook, or
//! released to another host, and stays correct when it runs twice; a stocktake on interval and
//! cron schedules; and what an application or an operator does with job IDs and dead letters.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use francis::actor::Due;
use francis::model::DeadLetterQuery;
use francis::prelude::*;
use francis::{JobId, JobSpec, JobStatus};

// ANCHOR: payload
/// What to ship, and where: the payload of a `ship` job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parcel {
    /// The delivery address.
    pub to: String,
    /// The parcel's weight.
    pub weight_grams: u32,
}
// ANCHOR_END: payload

impl Parcel {
    /// A parcel of 1 kg for `to`.
    pub fn new(to: &str) -> Self {
        Parcel {
            to: to.to_owned(),
            weight_grams: 1000,
        }
    }
}

// ANCHOR: error
/// Why shipping failed.
#[derive(Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum ShipError {
    /// The carrier did not answer.
    #[error("carrier unavailable: {0}")]
    CarrierDown(String),
    /// The carrier refused the address.
    #[error("the carrier refused the address {0:?}")]
    BadAddress(String),
    /// This host has no carrier client.
    #[error("no carrier client on this host")]
    NoCarrier,
    /// The state could not be read or written.
    #[error("storage failed: {0}")]
    Storage(String),
}

/// What a failed `ship` job asks for.
impl JobError for ShipError {
    fn disposition(&self) -> Disposition {
        match self {
            // Worth another try after a backoff.
            ShipError::CarrierDown(_) | ShipError::Storage(_) => Disposition::Retry,
            // Fails the same way every time: dead-letter it now.
            ShipError::BadAddress(_) => Disposition::Permanent,
            // Another host may have what this one lacks: run it there.
            ShipError::NoCarrier => Disposition::Reject,
        }
    }
}
// ANCHOR_END: error

impl From<francis::Error> for ShipError {
    fn from(e: francis::Error) -> Self {
        ShipError::Storage(e.to_string())
    }
}

/// What a delivery remembers.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryState {
    /// The carrier's tracking number, once shipped.
    pub tracking: Option<String>,
    /// Why it could not be shipped, once its job was dead-lettered.
    pub problem: Option<String>,
}

// ANCHOR: delivery
/// The delivery of one order.
pub struct Delivery {
    ctx: ActorContext,
    state: State<DeliveryState>,
}

#[francis::actor]
impl Delivery {
    fn activate(ctx: &ActorContext) -> Self {
        Delivery {
            ctx: ctx.clone(),
            state: ctx.state(),
        }
    }

    /// A job: `&mut self`, one payload argument, and `Result<(), E>` where `E: JobError`.
    /// It may run more than once, so it checks what it already did.
    #[job]
    pub async fn ship(&mut self, parcel: Parcel) -> Result<(), ShipError> {
        let mut state = self.state.get().await?;
        if state.tracking.is_some() {
            return Ok(()); // shipped already: this is a repeated run
        }
        let carrier = self.ctx.data::<Carrier>().ok_or(ShipError::NoCarrier)?;
        // The carrier books one pickup per key, so a run repeated after a crash between
        // `book` and `set` gets the same tracking number back.
        let key = format!("delivery/{}", self.ctx.id());
        state.tracking = Some(carrier.book(&key, &parcel)?);
        self.state.set(state).await?;
        Ok(())
    }

    /// Runs in the same turn when a `ship` job is dead-lettered, with its payload typed.
    #[job_failed(ship)]
    pub async fn ship_failed(&mut self, failed: JobFailed<Parcel>) -> Result<(), ShipError> {
        let problem = format!(
            "not shipped to {:?} after {} attempts: {}",
            failed.payload.to, failed.attempts, failed.error
        );
        self.state.update(|s| s.problem = Some(problem)).await?;
        Ok(())
    }

    /// An actor can dispatch its own jobs. The job runs in a later turn, never in this one.
    pub async fn place(&mut self, parcel: Parcel) -> Result<JobId, ShipError> {
        let job = self
            .ctx
            .this::<Delivery>()
            .job_ship(parcel)
            .key("ship")
            .dispatch()
            .await?;
        Ok(job)
    }

    /// The tracking number, once shipped.
    pub async fn tracking(&self) -> Result<Option<String>, ShipError> {
        Ok(self.state.get().await?.tracking)
    }

    /// Why it could not be shipped, if its job was dead-lettered.
    pub async fn problem(&self) -> Result<Option<String>, ShipError> {
        Ok(self.state.get().await?.problem)
    }
}
// ANCHOR_END: delivery

// ANCHOR: options
/// How a host registers `Delivery`.
pub fn delivery_options() -> ActorOptions {
    ActorOptions::default()
        // Each host runs at most 4 jobs of this group at once (the carrier's limit per
        // client); a host that is full leaves the job to another one.
        .capacity_group("carrier", 4)
        // Each run of a job is attempted at most 5 times; the retries come 10 s, 15 s,
        // 22.5 s and 33.75 s (each ±10%) after the failures.
        .alarm_max_attempts(5)
        .alarm_retry_delay(Duration::from_secs(10))
}
// ANCHOR_END: options

/// Dispatch the shipping of `order` from outside the actor, as the chapter shows.
pub async fn ship_later(service: &Service, order: &str, parcel: Parcel) -> Result<JobId, Error> {
    // ANCHOR: dispatch
    let delivery: ActorRef<Delivery> = service.actor(order);
    let job: JobId = delivery
        .job_ship(parcel)
        .after(Duration::from_secs(15 * 60)) // once, in 15 minutes
        .key("ship") // on this actor, a second dispatch with this key returns this ID
        .dispatch()
        .await?;
    // ANCHOR_END: dispatch
    Ok(job)
}

/// Dispatch a job by names, with a JSON payload, as an HTTP bridge would.
pub async fn ship_untyped(
    service: &Service,
    order: &str,
) -> Result<JobId, Box<dyn std::error::Error>> {
    // ANCHOR: untyped
    let job = service
        .dispatch_job(
            "delivery", // actor type
            order,      // actor ID
            "ship",     // the #[job] method's wire name
            JobSpec {
                due: Some(Due::After(Duration::from_secs(60))),
                data: Some(Envelope::json(&serde_json::json!({
                    "to": "Storgata 1, Oslo",
                    "weight_grams": 1200
                }))?),
                key: Some("ship".into()),
                ..JobSpec::default()
            },
        )
        .await?;
    // ANCHOR_END: untyped
    Ok(job)
}

/// What a stocktake counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scope {
    /// Every shelf.
    Full,
    /// A few shelves picked at random.
    Spot,
}

// ANCHOR: stocktake
/// The stocktakes of one depot.
pub struct Stocktake {
    ctx: ActorContext,
    done: State<Vec<String>>,
}

#[francis::actor]
impl Stocktake {
    fn activate(ctx: &ActorContext) -> Self {
        Stocktake {
            ctx: ctx.clone(),
            done: ctx.state(),
        }
    }

    /// `JobFailure` is a ready-made job error: `Retry`, `Permanent` or `Reject`, with a text.
    #[job]
    pub async fn count(&mut self, scope: Scope) -> Result<(), JobFailure> {
        let line = format!("{scope:?} at {}", self.ctx.now());
        self.done
            .update(|done| done.push(line))
            .await
            .map_err(|e| JobFailure::Retry(e.to_string()))?;
        Ok(())
    }

    /// The stocktakes done so far.
    pub async fn done(&self) -> Result<Vec<String>, JobFailure> {
        self.done
            .get()
            .await
            .map_err(|e| JobFailure::Retry(e.to_string()))
    }
}
// ANCHOR_END: stocktake

/// Schedule the stocktakes of `depot`, as the chapter shows.
pub async fn schedule(
    service: &Service,
    depot: &str,
    start: jiff::Timestamp,
) -> Result<(), Box<dyn std::error::Error>> {
    // ANCHOR: schedules
    let oslo: ActorRef<Stocktake> = service.actor(depot);

    // Every night at 03:00 UTC: minute, hour, day of month, month, day of week.
    oslo.job_count(Scope::Full)
        .cron("0 3 * * *")
        .key("nightly")
        .dispatch()
        .await?;

    // Every 2 hours from `start`, for one day: 13 runs.
    oslo.job_count(Scope::Spot)
        .at(start)
        .every(Duration::from_secs(2 * 3600))
        .ttl(Duration::from_secs(24 * 3600))
        .key("spot-checks")
        .dispatch()
        .await?;

    // Weekdays at 18:30 UTC, until the end of January.
    oslo.job_count(Scope::Spot)
        .cron("30 18 * * 1-5")
        .until("2030-01-31T23:59:59Z".parse()?)
        .key("closing")
        .dispatch()
        .await?;
    // ANCHOR_END: schedules
    Ok(())
}

/// What the status of `job` says, in words.
pub async fn describe(service: &Service, job: &JobId) -> Result<String, Error> {
    // ANCHOR: status
    let Some(info) = service.get_job(job.as_str()).await? else {
        return Ok("no such job (or it finished more than a day ago)".into());
    };
    let time = |ms: Option<i64>| {
        ms.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
            .map_or_else(String::new, |t| t.to_string())
    };
    let text = match info.status {
        JobStatus::Pending => format!(
            "due at {}, {} failed attempts so far",
            time(info.due_ms),
            info.attempts
        ),
        JobStatus::Running => format!("running, {} failed attempts before", info.attempts),
        JobStatus::Succeeded => format!(
            "done at {}, after {} failed attempts",
            time(info.finished_ms),
            info.attempts
        ),
        JobStatus::DeadLettered => format!(
            "gave up after {} attempts: {}",
            info.attempts,
            info.last_error.unwrap_or_default()
        ),
    };
    // ANCHOR_END: status
    Ok(text)
}

/// Go through the dead deliveries: drop those that cannot succeed, run the others again, and
/// forget letters older than a week. Returns the IDs of the jobs run again.
pub async fn handle_dead_deliveries(service: &Service) -> Result<Vec<JobId>, Error> {
    // ANCHOR: dead
    let query = DeadLetterQuery {
        actor_type: Some("delivery".into()),
        limit: 100,
    };
    let mut retried = Vec::new();
    for letter in service.dead_jobs(&query).await? {
        if letter.last_error.starts_with("the carrier refused") {
            // It would fail the same way again: drop the letter.
            service.delete_dead_job(&letter.id).await?;
        } else if let Some(job) = service.retry_dead_job(&letter.id).await? {
            // A fresh one-shot job, due now, with a new ID.
            retried.push(job);
        }
    }
    service
        .purge_dead_jobs(Duration::from_secs(7 * 24 * 3600))
        .await?;
    // ANCHOR_END: dead
    Ok(retried)
}

/// A stand-in for a carrier's API client that, like most such APIs, books one pickup per
/// idempotency key. Clones share one set of bookings.
#[derive(Debug, Clone, Default)]
pub struct Carrier {
    inner: Arc<Mutex<Bookings>>,
}

#[derive(Debug, Default)]
struct Bookings {
    booked: Vec<(String, Parcel, String)>,
    failures_left: u32,
}

impl Carrier {
    /// Book a pickup of `parcel` unless one was booked with `key`: the tracking number. An
    /// empty address is refused.
    pub fn book(&self, key: &str, parcel: &Parcel) -> Result<String, ShipError> {
        let mut bookings = self
            .inner
            .lock()
            .map_err(|e| ShipError::CarrierDown(e.to_string()))?;
        if bookings.failures_left > 0 {
            bookings.failures_left -= 1;
            return Err(ShipError::CarrierDown("timed out".into()));
        }
        if parcel.to.trim().is_empty() {
            return Err(ShipError::BadAddress(parcel.to.clone()));
        }
        if let Some((_, _, tracking)) = bookings.booked.iter().find(|(k, _, _)| k == key) {
            return Ok(tracking.clone());
        }
        let tracking = format!("TRK{:04}", bookings.booked.len() + 1);
        bookings
            .booked
            .push((key.to_owned(), parcel.clone(), tracking.clone()));
        Ok(tracking)
    }

    /// Fail the next `n` bookings (for tests).
    pub fn fail_next(&self, n: u32) {
        if let Ok(mut bookings) = self.inner.lock() {
            bookings.failures_left = n;
        }
    }

    /// The `(key, parcel)` of every pickup booked.
    pub fn bookings(&self) -> Vec<(String, Parcel)> {
        self.inner
            .lock()
            .map(|b| {
                b.booked
                    .iter()
                    .map(|(k, p, _)| (k.clone(), p.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }
}
