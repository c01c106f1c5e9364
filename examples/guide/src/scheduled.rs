//! "Built-in actors", scheduled and pooled work: the shop's nightly settlement of the day's
//! payments, on a cron schedule, and its receipts, rendered by a task pool once an order is
//! paid (the payment is the signal of `builtin.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use francis::JobId;
use francis::builtin::cron::{CronCause, CronError, CronJob, CronRun};
use francis::builtin::signal::Signals;
use francis::builtin::taskpool::{SubmitOptions, Task, TaskError, TaskInfo, TaskPool};
use francis::host::HostBuilder;
use francis::prelude::*;

use crate::builtin::Payment;

// ANCHOR: cron
/// The nightly settlement: every day at 03:00 UTC, started up to 5 minutes later so that the
/// shops of a cluster do not all settle at once. A run that fails is tried 5 times in all.
pub fn settlement() -> CronJob {
    CronJob::new("settlement")
        .cron("0 3 * * *")
        .jitter(Duration::from_secs(5 * 60))
        .max_attempts(5)
        .retry_delay(Duration::from_secs(60))
        .run(settle)
}
// ANCHOR_END: cron

// ANCHOR: settle
/// What a settlement records, in the state of `settlement/<day>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settlement {
    /// The day's total, from the provider's statement, in cents.
    pub total_cents: u64,
    /// When the run that settled it started (Unix ms).
    pub settled_at_ms: i64,
    /// Which attempt of its run settled it.
    pub attempt: u32,
    /// Why that run ran.
    pub cause: CronCause,
}

/// One run: settle the day before the run's nominal time, from the statement the payment
/// provider sent for it (in the state of `statement/<day>`, in cents).
pub async fn settle(run: CronRun) -> Result<(), String> {
    // The nominal time is the same on every attempt, on whichever host, whatever the jitter.
    let today = run.scheduled().to_zoned(jiff::tz::TimeZone::UTC).date();
    let day = today.yesterday().map_err(|e| e.to_string())?.to_string();
    let service = run.service();
    let statement: Option<u64> = service
        .get_state("statement", &day)
        .await
        .map_err(|e| e.to_string())?;
    // An error retries the run, until its attempts are used up.
    let Some(total_cents) = statement else {
        return Err(format!("no statement for {day} yet"));
    };
    let settlement = Settlement {
        total_cents,
        settled_at_ms: run.started().as_millisecond(),
        attempt: run.attempt(),
        cause: run.cause(),
    };
    // Writing the same record again is harmless: a run may be repeated.
    service
        .set_state("settlement", &day, &settlement, None)
        .await
        .map_err(|e| e.to_string())
}
// ANCHOR_END: settle

// ANCHOR: handle
/// Settle yesterday again now, after the provider corrected its statement: the run's job.
pub async fn settle_now(service: &Service) -> Result<JobId, CronError> {
    CronJob::handle(service, "settlement").trigger().await
}

/// When the next settlement starts (its jitter included), while it is scheduled.
pub async fn next_settlement(service: &Service) -> Result<Option<jiff::Timestamp>, CronError> {
    CronJob::handle(service, "settlement").next_run().await
}
// ANCHOR_END: handle

// ANCHOR: pool
/// What a receipt is rendered from: the task's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceiptRequest {
    /// The paid order.
    pub order: String,
    /// Whether the customer is a business, whose receipts are signed with the key that only
    /// the hosts with a hardware security module hold.
    pub business: bool,
}

/// The receipts of this host: 4 at a time, on hosts with an HSM signed ones too. A host being
/// drained for maintenance turns new receipts away, and another host renders them.
pub fn receipt_pool(has_hsm: bool, draining: Arc<AtomicBool>) -> TaskPool {
    let pool = TaskPool::new("receipts")
        .handler(render_receipt)
        .concurrency(4)
        .max_attempts(4)
        .retry_delay(Duration::from_secs(10))
        .accept(move |_task: &TaskInfo| !draining.load(Ordering::Relaxed));
    if has_hsm {
        pool.capability("hsm")
    } else {
        pool
    }
}
// ANCHOR_END: pool

// ANCHOR: render
/// A rendered receipt, in the state of `receipt/<order>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    /// The amount paid, in cents.
    pub amount_cents: u64,
    /// The payment provider's reference.
    pub reference: String,
    /// Whether it is signed.
    pub signed: bool,
}

/// Render the receipt of a paid order; an order not paid yet is tried again later.
pub async fn render_receipt(task: Task<ReceiptRequest>) -> Result<(), JobFailure> {
    let order = &task.input.order;
    let payments = Signals::handle(task.service(), "payments");
    let payment = payments
        .check::<Payment>(order)
        .await
        .map_err(|e| JobFailure::Retry(e.to_string()))?
        .ok_or_else(|| JobFailure::Retry(format!("order {order} is not paid yet")))?;
    let receipt = Receipt {
        amount_cents: payment.amount_cents,
        reference: payment.reference,
        // Only tasks that require the capability run where the signing key is.
        signed: task.info.capability.as_deref() == Some("hsm"),
    };
    task.service()
        .set_state("receipt", order, &receipt, None)
        .await
        .map_err(|e| JobFailure::Retry(e.to_string()))
}
// ANCHOR_END: render

// ANCHOR: register
/// Add the scheduled work to a host, next to the built-ins of `builtin.rs`: every host
/// registers the same schedule, and the same pool with its own capabilities.
pub fn with_scheduled_work(
    builder: HostBuilder,
    has_hsm: bool,
    draining: Arc<AtomicBool>,
) -> HostBuilder {
    builder
        // Actor type "francis.builtin.cron.settlement".
        .builtin(settlement())
        // Actor types "francis.builtin.taskpool.receipts" (and "....receipts.hsm").
        .builtin(receipt_pool(has_hsm, draining))
}
// ANCHOR_END: register

// ANCHOR: submit
/// Ask for the receipt of `order`: the task's ID. One receipt per order, however often it is
/// asked for; a business's is signed, so only a host with an HSM renders it.
pub async fn request_receipt(
    service: &Service,
    order: &str,
    business: bool,
) -> Result<JobId, TaskError> {
    let receipts = TaskPool::handle(service, "receipts");
    let request = ReceiptRequest {
        order: order.to_owned(),
        business,
    };
    let options = SubmitOptions {
        key: Some(order.to_owned()),
        capability: business.then(|| "hsm".to_owned()),
    };
    receipts.submit(&request, options).await
}
// ANCHOR_END: submit

// ANCHOR: retry
/// Render again every receipt that was given up on (once what failed them is fixed): the IDs
/// of the new tasks.
pub async fn retry_failed_receipts(service: &Service) -> Result<Vec<JobId>, TaskError> {
    let receipts = TaskPool::handle(service, "receipts");
    let mut retried = Vec::new();
    for letter in receipts.dead_letters().await? {
        if let Some(task) = receipts.retry(&letter.id).await? {
            retried.push(task);
        }
    }
    Ok(retried)
}
// ANCHOR_END: retry
