//! "Built-in actors": an API that limits each client's requests with the rate limiter, and a
//! checkout that waits for a payment provider's confirmation through a signal.

use std::time::Duration;

use francis::builtin::ratelimit::RateLimiter;
use francis::builtin::signal::{SignalError, Signals};
use francis::host::HostBuilder;
use francis::prelude::*;

// ANCHOR: settings
/// The API's limiter: for each client, 10 requests a second, in bursts of up to 20.
pub fn api_limiter() -> RateLimiter {
    RateLimiter::new("api", 10)
        .per(Duration::from_secs(1))
        .burst(20)
}

/// The payments' signals: one per order, kept for a week, of at most 4 KiB each.
pub fn payment_signals() -> Signals {
    Signals::new("payments")
        .retention(Duration::from_secs(7 * 24 * 3600))
        .max_payload_size(4096)
}
// ANCHOR_END: settings

// ANCHOR: register
/// Add the built-ins to a host: every host that serves them registers the same.
pub fn with_builtins(builder: HostBuilder) -> HostBuilder {
    builder
        // Actor type "francis.builtin.ratelimit.api".
        .builtin(api_limiter())
        // Actor type "francis.builtin.signal.payments".
        .builtin(payment_signals())
}
// ANCHOR_END: register

/// What the API answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The request was served.
    Served,
    /// HTTP 429: too many requests; come back after this many seconds.
    TooManyRequests {
        /// The `Retry-After` header, in whole seconds.
        retry_after_secs: u64,
    },
}

// ANCHOR: allow
/// Serve one request of `client`, unless it has used up its allowance.
pub async fn serve(service: &Service, client: &str) -> Result<Reply, Error> {
    let api = RateLimiter::handle(service, "api");
    let allowance = api.allow(client).await?;
    if !allowance.allowed {
        // `retry_after` is when the next token is there, rounded up to a whole second.
        let retry_after_secs = allowance.retry_after.as_millis().div_ceil(1000);
        return Ok(Reply::TooManyRequests {
            retry_after_secs: u64::try_from(retry_after_secs).unwrap_or(u64::MAX),
        });
    }
    // ... handle the request ...
    Ok(Reply::Served)
}
// ANCHOR_END: allow

// ANCHOR: payment
/// What the payment provider confirms: the data of an order's signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    /// The amount paid, in cents.
    pub amount_cents: u64,
    /// The provider's reference.
    pub reference: String,
}
// ANCHOR_END: payment

// ANCHOR: complete
/// The payment provider's webhook: `order` is paid.
pub async fn payment_confirmed(
    service: &Service,
    order: &str,
    payment: &Payment,
) -> Result<(), SignalError> {
    let payments = Signals::handle(service, "payments");
    match payments.complete(order, payment).await {
        Ok(()) => Ok(()),
        // Providers send a webhook again when unsure it arrived: the first one counts.
        Err(SignalError::AlreadyCompleted { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
// ANCHOR_END: complete

// ANCHOR: wait
/// The checkout: wait up to `patience` for `order`'s payment.
pub async fn await_payment(
    service: &Service,
    order: &str,
    patience: Duration,
) -> Result<Option<Payment>, SignalError> {
    let payments = Signals::handle(service, "payments");
    match payments.wait_timeout::<Payment>(order, patience).await {
        Ok(payment) => Ok(Some(payment)),
        Err(SignalError::TimedOut { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The order page: whether `order` is paid, without waiting.
pub async fn is_paid(service: &Service, order: &str) -> Result<bool, SignalError> {
    let payments = Signals::handle(service, "payments");
    Ok(payments.check::<Payment>(order).await?.is_some())
}
// ANCHOR_END: wait
