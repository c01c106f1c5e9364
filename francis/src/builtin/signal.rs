//! The signal built-in: one-shot broadcasts, one actor per signal ID, kept in actor state.
//!
//! [`Signals`] configures a family of signals and registers it as the actor type
//! `francis.builtin.signal.<name>`; [`Signals::handle`] gives the typed [`SignalHandle`]:
//! [`wait`](SignalHandle::wait) parks until a signal is completed and returns its data,
//! [`complete`](SignalHandle::complete) completes it once (storing the data for the retention
//! period and waking every waiter), [`check`](SignalHandle::check) looks without waiting.
//!
//! Every method of the actor runs in a shared turn (`&self`), so parked waiters never hold
//! back a completion; the actor orders its own reads and writes of state with a mutex (a
//! shared turn cannot write [`State`] directly: writes take `&mut`), and wakes waiters
//! through a watch channel. A wait is a long poll: the actor answers "still pending" after a
//! while, or at once when it is halting, and the handle asks again, so a waiter outlives the
//! signal's activation, or its host, restarting.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use tokio::sync::{Mutex, watch};

use crate::actor::context::ActorContext;
use crate::actor::reference::{ActorRef, RawRef};
use crate::actor::service::{InvokeOptions, Service};
use crate::actor::state::State;
use crate::builtin::{BuiltIn, Registration, config, sealed, type_name, unconfigured};
use crate::error::{CallError, Error, validate_name};
use crate::host::{ActorOptions, MAX_REQUEST_BODY_SIZE};
use crate::model::{ActorKey, CodecError, Envelope};

/// The kind part of the type name: `francis.builtin.signal.<name>`.
const KIND: &str = "signal";

/// How long a completion is kept unless [`Signals::retention`] says otherwise: 24 hours.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// How long a signal's actor stays active without calls unless
/// [`Signals::idle_timeout`] says otherwise: 5 minutes. An actor with parked waiters is never
/// idle.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// The largest completion payload unless [`Signals::max_payload_size`] says otherwise: 64 KiB
/// (of MessagePack-encoded data).
pub const DEFAULT_MAX_PAYLOAD_SIZE: usize = 64 * 1024;

/// How long one wait call parks in the actor before it answers "still pending" and the handle
/// asks again.
const LONG_POLL: Duration = Duration::from_secs(20);

/// The longest park the actor accepts from a caller.
const MAX_PARK: Duration = Duration::from_secs(60);

/// What a forwarded wait call is given on top of its park, for the trip.
const LONG_POLL_MARGIN: Duration = Duration::from_secs(10);

/// How many times in a row a wait is routed again (the signal's actor halted, its host left,
/// no host could take it) before it gives up.
const MAX_REROUTES: u32 = 30;

/// The pause before the first re-route; it doubles up to [`MAX_REROUTE_PAUSE`].
const FIRST_REROUTE_PAUSE: Duration = Duration::from_millis(50);

/// The longest pause between re-routes.
const MAX_REROUTE_PAUSE: Duration = Duration::from_secs(1);

/// A family of signals to register on a host, named `name`: each signal ID is one actor of
/// type `francis.builtin.signal.<name>`.
///
/// ```
/// # use std::time::Duration;
/// use francis::builtin::signal::Signals;
/// let orders = Signals::new("orders")
///     .retention(Duration::from_secs(3600))
///     .max_payload_size(4096);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "register it with `HostBuilder::builtin`"]
pub struct Signals {
    name: String,
    /// `None`: kept forever.
    retention: Option<Duration>,
    idle_timeout: Duration,
    max_payload_size: usize,
}

impl Signals {
    /// Signals named `name` (their actor type is `francis.builtin.signal.<name>`), with the
    /// defaults: completions kept 24 h, actors idle out after 5 minutes, payloads up to 64 KiB.
    pub fn new(name: impl Into<String>) -> Self {
        Signals {
            name: name.into(),
            retention: Some(DEFAULT_RETENTION),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_payload_size: DEFAULT_MAX_PAYLOAD_SIZE,
        }
    }

    /// How long a completion is kept (default 24 h; more than zero). Once it expires the
    /// signal reads as never completed, and may be completed again.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = Some(retention);
        self
    }

    /// Keep completions until their state is deleted.
    pub fn retain_forever(mut self) -> Self {
        self.retention = None;
        self
    }

    /// How long a signal's actor stays active without calls (default 5 minutes; more than
    /// zero). Parked waiters keep it active.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// The largest completion payload, in bytes of its MessagePack encoding (default 64 KiB;
    /// from 1 byte to 16 MiB, the largest request between hosts).
    pub fn max_payload_size(mut self, bytes: usize) -> Self {
        self.max_payload_size = bytes;
        self
    }

    /// The handle for signals `name` through `service` (they must be registered on some host
    /// of the cluster).
    pub fn handle(service: &Service, name: &str) -> SignalHandle {
        SignalHandle {
            service: service.clone(),
            name: name.to_owned(),
            actor_type: type_name(KIND, name),
        }
    }

    /// The checked settings, or every problem with them.
    fn settings(&self) -> Result<Settings, Vec<String>> {
        let name = &self.name;
        let mut problems = Vec::new();
        if self.retention == Some(Duration::ZERO) {
            problems.push(format!(
                "signals {name:?}: retention is zero; give how long completions are kept (default 24 h), or call retain_forever()"
            ));
        }
        if self.idle_timeout.is_zero() {
            problems.push(format!(
                "signals {name:?}: idle timeout is zero; give a positive duration (default 5 minutes)"
            ));
        }
        if self.max_payload_size == 0 || self.max_payload_size > MAX_REQUEST_BODY_SIZE {
            problems.push(format!(
                "signals {name:?}: max payload size is {} bytes; give 1 to {MAX_REQUEST_BODY_SIZE} (16 MiB; default {DEFAULT_MAX_PAYLOAD_SIZE}, 64 KiB)",
                self.max_payload_size
            ));
        }
        if problems.is_empty() {
            Ok(Settings {
                retention: self.retention,
                max_payload_size: self.max_payload_size,
            })
        } else {
            Err(problems)
        }
    }
}

impl sealed::Sealed for Signals {}

impl BuiltIn for Signals {
    fn register(self, registration: &mut Registration) {
        match self.settings() {
            Ok(settings) => {
                let options = ActorOptions::default().idle_timeout(self.idle_timeout);
                registration.actor_type::<Signal, Settings>(KIND, &self.name, options, settings);
            }
            Err(problems) => problems.into_iter().for_each(|p| registration.problem(p)),
        }
    }
}

/// Why a signal call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// The signal was completed before; it completes once.
    #[error(
        "signal {name}/{id} was already completed at {completed_at}; a signal completes once (read its data with check or wait)"
    )]
    AlreadyCompleted {
        /// The signals' name.
        name: String,
        /// The signal's ID.
        id: String,
        /// When it was completed.
        completed_at: jiff::Timestamp,
    },
    /// The completion's payload is larger than the signals allow.
    #[error(
        "the payload for signal {name}/{id} is {size} bytes encoded, over the limit of {limit} bytes; send less, or raise the limit with Signals::max_payload_size"
    )]
    PayloadTooLarge {
        /// The signals' name.
        name: String,
        /// The signal's ID.
        id: String,
        /// The encoded payload's size, in bytes.
        size: usize,
        /// The limit, in bytes.
        limit: usize,
    },
    /// [`SignalHandle::wait_timeout`] gave up.
    #[error("signal {name}/{id} was not completed within {timeout:?}")]
    TimedOut {
        /// The signals' name.
        name: String,
        /// The signal's ID.
        id: String,
        /// The timeout that passed.
        timeout: Duration,
    },
    /// The payload did not encode, or the stored one did not decode as the type asked for.
    #[error(
        "signal {name}/{id}: the payload does not encode or decode as the type asked for: {source}"
    )]
    Payload {
        /// The signals' name.
        name: String,
        /// The signal's ID.
        id: String,
        /// What failed.
        source: CodecError,
    },
    /// Reading or storing the signal's completion failed on its host.
    #[error("signal {name}/{id}: its completion could not be read or stored: {message}")]
    Store {
        /// The signals' name.
        name: String,
        /// The signal's ID.
        id: String,
        /// What the store said.
        message: String,
    },
    /// The call failed in the framework (no host registers the signals, the host is shutting
    /// down, the signal's actor kept halting, ...).
    #[error(transparent)]
    Call(#[from] Error),
}

/// Calls the signals of one name. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SignalHandle {
    service: Service,
    name: String,
    actor_type: String,
}

impl SignalHandle {
    /// The signals' actor type, `francis.builtin.signal.<name>`.
    pub fn actor_type(&self) -> &str {
        &self.actor_type
    }

    /// Complete signal `id` with `value`, waking every waiter. Fails with
    /// [`SignalError::AlreadyCompleted`] if it was completed before (and its completion has not
    /// expired), and with [`SignalError::PayloadTooLarge`] if `value`, encoded, is larger than
    /// the signals allow.
    pub async fn complete<T: Serialize + ?Sized>(
        &self,
        id: &str,
        value: &T,
    ) -> Result<(), SignalError> {
        let data = Envelope::encode(value)
            .map_err(|source| self.payload_error(id, source))?
            .into_bytes();
        match self.signal(id, None)?.complete(ByteBuf::from(data)).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.call_error(id, e)),
        }
    }

    /// Signal `id`'s data if it is completed, without waiting.
    pub async fn check<T: DeserializeOwned>(&self, id: &str) -> Result<Option<T>, SignalError> {
        match self.signal(id, None)?.check().await {
            Ok(Some(record)) => self.decode(id, record).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(self.call_error(id, e)),
        }
    }

    /// Wait until signal `id` is completed and return its data (at once if it already is). The
    /// wait survives the signal's actor halting and its host restarting: it is routed again,
    /// up to 30 times in a row, pausing up to a second between tries.
    pub async fn wait<T: DeserializeOwned>(&self, id: &str) -> Result<T, SignalError> {
        self.wait_until(id, None).await
    }

    /// [`wait`](Self::wait), giving up with [`SignalError::TimedOut`] after `timeout` (real
    /// time, not the host's clock).
    pub async fn wait_timeout<T: DeserializeOwned>(
        &self,
        id: &str,
        timeout: Duration,
    ) -> Result<T, SignalError> {
        // A timeout too long to add to the clock is no timeout.
        let deadline = tokio::time::Instant::now()
            .checked_add(timeout)
            .map(|at| (at, timeout));
        self.wait_until(id, deadline).await
    }

    async fn wait_until<T: DeserializeOwned>(
        &self,
        id: &str,
        deadline: Option<(tokio::time::Instant, Duration)>,
    ) -> Result<T, SignalError> {
        let left =
            || deadline.map(|(at, _)| at.saturating_duration_since(tokio::time::Instant::now()));
        let mut reroutes = 0;
        // Whether a wait reached the signal's actor: from then on its type is known to be
        // registered, and "no host registers it" means its hosts are restarting.
        let mut reached = false;
        loop {
            let park = match left() {
                Some(left) if left.is_zero() => {
                    let timeout = deadline.map(|(_, t)| t).unwrap_or_default();
                    return Err(SignalError::TimedOut {
                        name: self.name.clone(),
                        id: id.to_owned(),
                        timeout,
                    });
                }
                Some(left) => left.min(LONG_POLL),
                None => LONG_POLL,
            };
            let signal = self.signal(id, Some(park + LONG_POLL_MARGIN))?;
            let park_ms = u64::try_from(park.as_millis()).unwrap_or(u64::MAX).max(1);
            let interrupted = match signal.wait(park_ms).await {
                Ok(WaitReply::Completed(record)) => return self.decode(id, record),
                Ok(WaitReply::Pending) => {
                    reached = true;
                    reroutes = 0;
                    continue;
                }
                Ok(WaitReply::Halting) => {
                    reached = true;
                    Error::Halted {
                        key: signal.raw().key().clone(),
                    }
                }
                Err(CallError::Francis(e)) if transient(&e, reached) => e,
                Err(e) => return Err(self.call_error(id, e)),
            };
            reroutes += 1;
            if reroutes > MAX_REROUTES {
                return Err(SignalError::Call(interrupted));
            }
            tracing::debug!(signal = %signal.raw().key(), reroutes, error = %interrupted, "wait interrupted; routing it again");
            let pause = FIRST_REROUTE_PAUSE
                .saturating_mul(1 << (reroutes - 1).min(16))
                .min(MAX_REROUTE_PAUSE);
            tokio::time::sleep(left().map_or(pause, |left| pause.min(left))).await;
        }
    }

    /// A reference to signal `id`'s actor, whose calls forwarded to another host wait at most
    /// `timeout` (else the host's request timeout).
    fn signal(&self, id: &str, timeout: Option<Duration>) -> Result<ActorRef<Signal>, Error> {
        validate_name("signal ID", id)?;
        let options = InvokeOptions {
            timeout,
            ..InvokeOptions::default()
        };
        let key = ActorKey::new(self.actor_type.clone(), id);
        Ok(ActorRef::from_raw(RawRef::new(
            self.service.clone(),
            key,
            options,
        )))
    }

    fn decode<T: DeserializeOwned>(&self, id: &str, record: Record) -> Result<T, SignalError> {
        Envelope::from_msgpack_bytes(record.data)
            .decode()
            .map_err(|source| self.payload_error(id, source))
    }

    fn payload_error(&self, id: &str, source: CodecError) -> SignalError {
        SignalError::Payload {
            name: self.name.clone(),
            id: id.to_owned(),
            source,
        }
    }

    /// The error a failed call to signal `id` means.
    fn call_error(&self, id: &str, e: CallError<Fault>) -> SignalError {
        let (name, id) = (self.name.clone(), id.to_owned());
        match e {
            CallError::Actor(Fault::AlreadyCompleted { completed_at_ms }) => {
                SignalError::AlreadyCompleted {
                    name,
                    id,
                    completed_at: jiff::Timestamp::from_millisecond(completed_at_ms)
                        .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
                }
            }
            CallError::Actor(Fault::PayloadTooLarge { size, limit }) => {
                SignalError::PayloadTooLarge {
                    name,
                    id,
                    size,
                    limit,
                }
            }
            CallError::Actor(Fault::Store(message)) => SignalError::Store { name, id, message },
            CallError::Actor(Fault::Unconfigured(message)) => {
                SignalError::Call(Error::Config(message))
            }
            CallError::Francis(e) => SignalError::Call(e),
        }
    }
}

/// Whether a wait that failed with `e` may succeed if routed again: its actor halted or was
/// busy, its host left or could not be reached, or no host could take it for now. An unknown
/// type is one of those only once a wait `reached` the actor (before that it is more likely a
/// misspelt name, better reported at once).
fn transient(e: &Error, reached: bool) -> bool {
    use crate::net::wire::ErrorCode;
    match e {
        Error::UnknownActorType { .. } => reached,
        Error::Halted { .. }
        | Error::Overloaded { .. }
        | Error::Timeout { .. }
        | Error::Unreachable { .. }
        | Error::NoHost { .. } => true,
        Error::Remote { code, .. } => ErrorCode::parse(code).is_some_and(|code| {
            code.retryable()
                || matches!(
                    code,
                    ErrorCode::TransportFailure
                        | ErrorCode::DeadlineExceeded
                        | ErrorCode::Canceled
                        | ErrorCode::NoHost
                )
        }),
        _ => false,
    }
}

/// A signal's settings, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Settings {
    /// How long completions are kept (`None`: forever).
    retention: Option<Duration>,
    /// The largest payload, in bytes.
    max_payload_size: usize,
}

/// A completion: what the actor stores, and what it answers with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    /// Always true for a stored record.
    completed: bool,
    /// The MessagePack-encoded payload.
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
    /// When it was completed (Unix ms, the host's clock).
    completed_at_ms: i64,
    /// When it expires (Unix ms; `None`: never).
    #[serde(default)]
    expires_at_ms: Option<i64>,
}

impl Record {
    /// Whether it counts as a completion at `now_ms`.
    fn holds_at(&self, now_ms: i64) -> bool {
        self.completed && self.expires_at_ms.is_none_or(|at| now_ms < at)
    }
}

/// What one wait call answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum WaitReply {
    /// The signal is completed.
    Completed(Record),
    /// Not yet; ask again.
    Pending,
    /// The activation is halting; ask again, a fresh activation will answer.
    Halting,
}

/// Why a signal's actor refused a call (sent back to the caller).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
enum Fault {
    #[error("already completed at {completed_at_ms} (Unix ms)")]
    AlreadyCompleted { completed_at_ms: i64 },
    #[error("the payload is {size} bytes, over the limit of {limit}")]
    PayloadTooLarge { size: usize, limit: usize },
    #[error("{0}")]
    Store(String),
    #[error("{0}")]
    Unconfigured(String),
}

impl From<Error> for Fault {
    fn from(e: Error) -> Self {
        Fault::Store(e.to_string())
    }
}

/// One signal.
struct Signal {
    ctx: ActorContext,
    settings: Result<Arc<Settings>, Fault>,
    /// The stored completion; locked for every read and write, so a completion is checked and
    /// stored as one step.
    state: Mutex<State<Record>>,
    /// The completion as waiters see it: set when one is read or stored, cleared when it has
    /// expired.
    done: watch::Sender<Option<Arc<Record>>>,
}

#[crate::actor(name = "francis.builtin.signal")]
impl Signal {
    fn activate(ctx: &ActorContext) -> Self {
        Signal {
            ctx: ctx.clone(),
            settings: config::<Settings>(ctx)
                .ok_or_else(|| Fault::Unconfigured(unconfigured(ctx.actor_type()))),
            state: Mutex::new(ctx.state()),
            done: watch::channel(None).0,
        }
    }

    /// Wait at most `park_ms` for the completion.
    pub async fn wait(&self, park_ms: u64) -> Result<WaitReply, Fault> {
        // Subscribed before looking, so a completion stored meanwhile is seen.
        let mut completions = self.done.subscribe();
        if let Some(record) = self.current().await? {
            return Ok(WaitReply::Completed((*record).clone()));
        }
        let park = Duration::from_millis(park_ms).min(MAX_PARK);
        let completed = async {
            completions
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|record| record.clone())
        };
        Ok(tokio::select! {
            record = completed => match record {
                Some(record) => WaitReply::Completed((*record).clone()),
                None => WaitReply::Halting,
            },
            _ = self.ctx.halting() => WaitReply::Halting,
            _ = tokio::time::sleep(park) => WaitReply::Pending,
        })
    }

    /// Complete the signal with `data` (encoded).
    pub async fn complete(&self, data: ByteBuf) -> Result<i64, Fault> {
        let settings = self.settings.clone()?;
        if data.len() > settings.max_payload_size {
            return Err(Fault::PayloadTooLarge {
                size: data.len(),
                limit: settings.max_payload_size,
            });
        }
        let mut state = self.state.lock().await;
        let now_ms = self.now_ms();
        if let Some(record) = self.current_locked(&state, now_ms).await? {
            return Err(Fault::AlreadyCompleted {
                completed_at_ms: record.completed_at_ms,
            });
        }
        let record = Record {
            completed: true,
            data: data.into_vec(),
            completed_at_ms: now_ms,
            expires_at_ms: settings.retention.map(|retention| {
                let ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
                now_ms.saturating_add(ms)
            }),
        };
        match settings.retention {
            Some(retention) => state.set_with_ttl(record.clone(), retention).await?,
            None => state.set(record.clone()).await?,
        }
        self.done.send_replace(Some(Arc::new(record)));
        Ok(now_ms)
    }

    /// The completion, if there is one.
    pub async fn check(&self) -> Result<Option<Record>, Fault> {
        Ok(self.current().await?.map(|record| (*record).clone()))
    }

    fn now_ms(&self) -> i64 {
        self.ctx.now().as_millisecond()
    }

    /// The completion that holds now, if any.
    async fn current(&self) -> Result<Option<Arc<Record>>, Fault> {
        let state = self.state.lock().await;
        self.current_locked(&state, self.now_ms()).await
    }

    /// [`Self::current`] with the state locked: from what waiters see, else from the store;
    /// published to waiters if it holds, cleared if it has expired.
    async fn current_locked(
        &self,
        state: &State<Record>,
        now_ms: i64,
    ) -> Result<Option<Arc<Record>>, Fault> {
        let known = self.done.borrow().clone();
        let record = match known {
            Some(record) => Some(record),
            None => state.load().await?.cloned().map(Arc::new),
        };
        match record {
            Some(record) if record.holds_at(now_ms) => {
                self.done.send_if_modified(|seen| {
                    if seen.as_ref().is_some_and(|s| Arc::ptr_eq(s, &record)) {
                        false
                    } else {
                        *seen = Some(record.clone());
                        true
                    }
                });
                Ok(Some(record))
            }
            _ => {
                self.done.send_if_modified(|seen| seen.take().is_some());
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_with_what_to_do() {
        let problems = Signals::new("s")
            .retention(Duration::ZERO)
            .idle_timeout(Duration::ZERO)
            .max_payload_size(0)
            .settings()
            .unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("retain_forever"), "{problems:?}");
        assert!(problems[1].contains("idle timeout"), "{problems:?}");
        assert!(problems[2].contains("max payload size"), "{problems:?}");
        assert!(
            Signals::new("s")
                .max_payload_size(MAX_REQUEST_BODY_SIZE + 1)
                .settings()
                .is_err()
        );
        assert_eq!(
            Signals::new("s").retain_forever().settings(),
            Ok(Settings {
                retention: None,
                max_payload_size: DEFAULT_MAX_PAYLOAD_SIZE
            })
        );
    }

    #[test]
    fn a_record_holds_until_it_expires() {
        let record = Record {
            completed: true,
            data: Vec::new(),
            completed_at_ms: 0,
            expires_at_ms: Some(1000),
        };
        assert!(record.holds_at(999));
        assert!(!record.holds_at(1000));
        let forever = Record {
            expires_at_ms: None,
            ..record
        };
        assert!(forever.holds_at(i64::MAX));
    }
}
