//! Injected time. Everything in Francis that reads the time or sleeps goes through a [`Clock`],
//! so tests can drive alarms, TTLs and idle deactivation with a [`ManualClock`] instead of waiting.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

/// A boxed, sendable future, as returned by [`Clock::sleep_until`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A source of wall-clock time in Unix milliseconds, and a way to wait for a point in it.
pub trait Clock: Send + Sync + 'static {
    /// The current time, in milliseconds since the Unix epoch (UTC).
    fn now_ms(&self) -> i64;

    /// A future that completes once [`Clock::now_ms`] has reached `deadline_ms`.
    fn sleep_until(&self, deadline_ms: i64) -> BoxFuture<'static, ()>;
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The real clock: system time, tokio timers.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(_) => 0,
        }
    }

    fn sleep_until(&self, deadline_ms: i64) -> BoxFuture<'static, ()> {
        let wait = deadline_ms.saturating_sub(self.now_ms()).max(0);
        Box::pin(tokio::time::sleep(Duration::from_millis(wait as u64)))
    }
}

/// A clock that only moves when told to. Sleepers wake when [`ManualClock::advance`] or
/// [`ManualClock::set`] moves the time past their deadline.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<watch::Sender<i64>>,
}

impl ManualClock {
    /// A manual clock starting at `start_ms` (Unix milliseconds).
    pub fn new(start_ms: i64) -> Self {
        let (tx, _rx) = watch::channel(start_ms);
        ManualClock { now: Arc::new(tx) }
    }

    /// A manual clock starting at the current system time, so timestamps in tests look real.
    pub fn starting_now() -> Self {
        Self::new(SystemClock.now_ms())
    }

    /// Move the time forward by `by`, waking every sleeper whose deadline has passed.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.now.send_modify(|now| *now = now.saturating_add(by));
    }

    /// Set the time to `now_ms`. Moving backwards is allowed but wakes nobody.
    pub fn set(&self, now_ms: i64) {
        self.now.send_replace(now_ms);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        *self.now.borrow()
    }

    fn sleep_until(&self, deadline_ms: i64) -> BoxFuture<'static, ()> {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            loop {
                if *rx.borrow_and_update() >= deadline_ms {
                    return;
                }
                if rx.changed().await.is_err() {
                    // The clock was dropped: time will never move again.
                    std::future::pending::<()>().await;
                }
            }
        })
    }
}

/// Convert a [`Duration`] to whole milliseconds, saturating.
pub fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_clock_wakes_sleepers_only_when_advanced_past_deadline() {
        let clock = ManualClock::new(1_000);
        let sleeper = tokio::spawn(clock.sleep_until(1_500));
        tokio::task::yield_now().await;
        clock.advance(Duration::from_millis(499));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_millis(1));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("sleeper woke")
            .expect("sleeper task");
        assert_eq!(clock.now_ms(), 1_500);
    }
}
