//! Per-actor-type registration options ([`ActorOptions`]) and host-wide timing settings.

use std::time::Duration;

use crate::error::Error;

/// How a registered actor type behaves on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorOptions {
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) deactivation_timeout: Duration,
    pub(crate) concurrency_limit: u32,
    pub(crate) alarm_max_attempts: u32,
    pub(crate) alarm_initial_retry_delay: Duration,
    pub(crate) max_queued_calls: usize,
    pub(crate) capacity_group: Option<(String, u32)>,
}

/// Calls one activation holds at most (queued and running) unless its type says otherwise.
pub const DEFAULT_MAX_QUEUED_CALLS: usize = 1000;

impl Default for ActorOptions {
    fn default() -> Self {
        ActorOptions {
            idle_timeout: Some(Duration::from_secs(300)),
            deactivation_timeout: Duration::from_secs(5),
            concurrency_limit: 0,
            alarm_max_attempts: 3,
            alarm_initial_retry_delay: Duration::from_secs(2),
            max_queued_calls: DEFAULT_MAX_QUEUED_CALLS,
            capacity_group: None,
        }
    }
}

impl ActorOptions {
    /// Deactivate an activation after it has been idle this long (default 5 minutes).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// Never deactivate for idleness (activations live until halted or the host stops).
    pub fn never_idle(mut self) -> Self {
        self.idle_timeout = None;
        self
    }

    /// How long the deactivation hook may run (default 5 seconds; zero skips the hook).
    pub fn deactivation_timeout(mut self, timeout: Duration) -> Self {
        self.deactivation_timeout = timeout;
        self
    }

    /// At most this many activations of the type on one host (default 0 = unlimited).
    pub fn concurrency_limit(mut self, limit: u32) -> Self {
        self.concurrency_limit = limit;
        self
    }

    /// How many times an alarm occurrence runs before it is dropped (default 3, at least 1).
    pub fn alarm_max_attempts(mut self, attempts: u32) -> Self {
        self.alarm_max_attempts = attempts;
        self
    }

    /// The delay before the first alarm retry; later retries back off by 1.5x up to 10x
    /// (default 2 seconds).
    pub fn alarm_retry_delay(mut self, delay: Duration) -> Self {
        self.alarm_initial_retry_delay = delay;
        self
    }

    /// How many calls one activation holds at most, waiting and running (default
    /// 1000). A call beyond it fails at once with
    /// [`Error::Overloaded`] (remote callers see `overloaded`, with a time to retry after), so a
    /// flood of calls to one actor cannot grow its mailbox without bound.
    pub fn max_queued_calls(mut self, calls: usize) -> Self {
        self.max_queued_calls = calls;
        self
    }

    /// Run this type's jobs in capacity group `name`: one host runs at most `limit` jobs of
    /// the group's types at once (every type in a group must give the same limit). A host
    /// that is full releases a due job to run elsewhere, without counting an attempt. Alarms
    /// and calls are not counted.
    pub fn capacity_group(mut self, name: impl Into<String>, limit: u32) -> Self {
        self.capacity_group = Some((name.into(), limit));
        self
    }

    pub(crate) fn validate(&self, actor_type: &str) -> Result<(), Error> {
        if let Some((group, limit)) = &self.capacity_group {
            if group.is_empty() {
                return Err(Error::Config(format!(
                    "actor type {actor_type:?}: the capacity group's name is empty; name it, e.g. capacity_group(\"uploads\", 4)"
                )));
            }
            if *limit == 0 {
                return Err(Error::Config(format!(
                    "actor type {actor_type:?}: capacity group {group:?} has limit 0, so its jobs could never run; give a limit of at least 1"
                )));
            }
        }
        if self.max_queued_calls == 0 {
            return Err(Error::Config(format!(
                "actor type {actor_type:?}: max_queued_calls is 0; an activation must take at least one call (default {DEFAULT_MAX_QUEUED_CALLS})"
            )));
        }
        if self.idle_timeout == Some(Duration::ZERO) {
            return Err(Error::Config(format!(
                "actor type {actor_type:?}: idle timeout is zero; give a positive duration, or call never_idle() to keep activations alive"
            )));
        }
        if self.alarm_max_attempts == 0 {
            return Err(Error::Config(format!(
                "actor type {actor_type:?}: alarm_max_attempts is 0; an alarm must run at least once (default 3)"
            )));
        }
        Ok(())
    }

    /// The backoff before retry number `failures` (1 = first retry): the initial delay times
    /// `min(1.5^(failures-1), 10)`, with ±10% jitter. Not truncated to whole multiples.
    pub(crate) fn retry_delay(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(64) as i32;
        let multiplier = 1.5f64.powi(exponent).min(10.0);
        let jitter = rand::random_range(0.9..1.1);
        self.alarm_initial_retry_delay.mul_f64(multiplier * jitter)
    }
}

/// How long a host waits for a call it forwarded to another host, unless the builder
/// ([`HostBuilder::request_timeout`](crate::host::HostBuilder::request_timeout)) or the call
/// ([`InvokeOptions::timeout`](crate::actor::InvokeOptions::timeout),
/// [`ActorRef::with_timeout`](crate::ActorRef::with_timeout)) sets another: 15 s. The same
/// request timeout bounds dialling another host and, on a worker, each request to the
/// runtime.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// How far ahead of now a host fetches due alarms by default
/// ([`HostBuilder::alarms_fetch_ahead`](crate::host::HostBuilder::alarms_fetch_ahead)): 2.5 s.
pub const DEFAULT_ALARMS_FETCH_AHEAD: Duration = Duration::from_millis(2500);

/// The most alarms one fetch leases by default: 25.
pub const DEFAULT_ALARMS_FETCH_BATCH_SIZE: u32 = 25;

/// The furthest ahead a host may fetch alarms: 1 minute. A runtime cuts a worker's fetch
/// horizon to it, so an alarm is never leased long before it is due.
pub const MAX_ALARMS_FETCH_AHEAD: Duration = Duration::from_secs(60);

/// Calls one calling host may run at once on this host by default
/// ([`HostBuilder::max_in_flight_requests`](crate::host::HostBuilder::max_in_flight_requests)):
/// 100.
pub const DEFAULT_MAX_IN_FLIGHT_REQUESTS: usize = 100;

/// The highest accepted `max_in_flight_requests`: 10 000.
pub const MAX_IN_FLIGHT_REQUESTS: usize = 10_000;

/// The largest request another host may send by default
/// ([`HostBuilder::max_request_body_size`](crate::host::HostBuilder::max_request_body_size)):
/// 16 MiB, also the largest the wire protocol carries.
pub const DEFAULT_MAX_REQUEST_BODY_SIZE: usize = crate::net::wire::MAX_FRAME_BYTES;

/// The smallest accepted `max_request_body_size`: 1 KiB.
pub const MIN_REQUEST_BODY_SIZE: usize = 1024;

/// The largest accepted `max_request_body_size`: 16 MiB, the largest frame of the wire
/// protocol.
pub const MAX_REQUEST_BODY_SIZE: usize = crate::net::wire::MAX_FRAME_BYTES;

/// Host-wide timing settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostTimings {
    pub shutdown_grace_period: Duration,
    pub health_check_deadline: Duration,
    pub alarms_poll_interval: Duration,
    pub alarms_lease_duration: Duration,
    pub alarms_fetch_ahead: Duration,
    pub alarms_batch_size: u32,
    pub idle_scan_interval: Duration,
    pub cleanup_interval: Duration,
    /// The request timeout: the deadline of calls forwarded to another host, of dialling one,
    /// and of a worker's requests to the runtime.
    pub request_timeout: Duration,
}

impl Default for HostTimings {
    fn default() -> Self {
        HostTimings {
            shutdown_grace_period: Duration::from_secs(30),
            health_check_deadline: Duration::from_secs(20),
            alarms_poll_interval: Duration::from_millis(1500),
            alarms_lease_duration: Duration::from_secs(20),
            alarms_fetch_ahead: DEFAULT_ALARMS_FETCH_AHEAD,
            alarms_batch_size: DEFAULT_ALARMS_FETCH_BATCH_SIZE,
            idle_scan_interval: Duration::from_secs(1),
            cleanup_interval: Duration::from_secs(600),
            request_timeout: DEFAULT_CALL_TIMEOUT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_by_half_and_is_capped_at_ten_times() {
        let opts = ActorOptions::default().alarm_retry_delay(Duration::from_secs(2));
        for (failures, expected) in [
            (1u32, 2.0f64),
            (2, 3.0),
            (3, 4.5),
            (4, 6.75),
            (10, 20.0),
            (1000, 20.0),
        ] {
            let got = opts.retry_delay(failures).as_secs_f64();
            assert!(
                got >= expected * 0.9 - 1e-9 && got <= expected * 1.1 + 1e-9,
                "failures={failures}: {got}"
            );
        }
    }

    #[test]
    fn forwarded_calls_time_out_after_15_seconds_by_default() {
        assert_eq!(DEFAULT_CALL_TIMEOUT, Duration::from_secs(15));
        assert_eq!(HostTimings::default().request_timeout, DEFAULT_CALL_TIMEOUT);
    }

    #[test]
    fn zero_idle_timeout_and_zero_attempts_are_refused() {
        assert!(
            ActorOptions::default()
                .idle_timeout(Duration::ZERO)
                .validate("t")
                .is_err()
        );
        assert!(
            ActorOptions::default()
                .alarm_max_attempts(0)
                .validate("t")
                .is_err()
        );
        assert!(ActorOptions::default().never_idle().validate("t").is_ok());
    }
}
