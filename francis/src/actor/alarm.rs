//! Alarm specifications: [`AlarmSpec`] for the untyped API and [`AlarmBuilder`], the typed
//! setter that generated proxies hand out (`actor.alarm_tick(data).after(..).every(..).set()`).

use std::time::Duration;

use crate::actor::reference::RawRef;
use crate::clock::duration_ms;
use crate::error::Error;
use crate::model::AlarmRecord;
use crate::model::{CodecError, Envelope};
use crate::time::Interval;

/// When an alarm first fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// As soon as possible.
    Now,
    /// At this time (Unix milliseconds).
    AtMs(i64),
    /// This long after the alarm is set.
    After(Duration),
}

/// When a repeating alarm stops repeating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// No repeat after this time (Unix milliseconds).
    UntilMs(i64),
    /// No repeat later than this long after the first due time.
    For(Duration),
}

/// An alarm, as the untyped API takes it: which handler runs, when, how often, and with what.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmSpec {
    /// The actor's alarm handler (the `#[alarm]` method's wire name). `None` picks the handler
    /// named like the alarm, or else the actor type's only alarm handler.
    pub handler: Option<String>,
    /// First due time.
    pub due: Due,
    /// Repeat interval; `None` for a one-shot alarm.
    pub interval: Option<Interval>,
    /// When repeats stop; `None` for never.
    pub ttl: Option<Ttl>,
    /// The handler's payload.
    pub data: Option<Envelope>,
}

impl AlarmSpec {
    /// A one-shot alarm for `handler`, due now, without payload.
    pub fn new(handler: impl Into<String>) -> Self {
        AlarmSpec {
            handler: Some(handler.into()),
            due: Due::Now,
            interval: None,
            ttl: None,
            data: None,
        }
    }

    /// Turn the spec into a stored record, resolving relative times against `now_ms`.
    pub(crate) fn into_record(self, handler: String, now_ms: i64) -> Result<AlarmRecord, Error> {
        let due_ms = match self.due {
            Due::Now => now_ms,
            Due::AtMs(ms) => ms,
            Due::After(d) => now_ms.saturating_add(duration_ms(d)),
        };
        if let Some(interval) = &self.interval
            && interval.is_zero()
        {
            return Err(Error::InvalidAlarm(
                "the repeat interval is zero; give a positive interval such as \"60s\" or \"PT1M\", or none for a one-shot alarm".into(),
            ));
        }
        let ttl_ms = self.ttl.map(|ttl| match ttl {
            Ttl::UntilMs(ms) => ms,
            Ttl::For(d) => due_ms.saturating_add(duration_ms(d)),
        });
        let data = match self.data {
            Some(env) if !env.is_empty() => Some(env.into_msgpack()?),
            _ => None,
        };
        let mut record = AlarmRecord::new(handler, due_ms);
        record.interval = self.interval.map(|i| i.to_string());
        record.ttl_ms = ttl_ms;
        record.data = data;
        Ok(record)
    }
}

/// A typed alarm setter for one handler of one actor. Nothing is stored until [`AlarmBuilder::set`].
///
/// The alarm's name (its identity on the actor) defaults to the handler's wire name, so setting
/// it again replaces it; give distinct names with [`AlarmBuilder::name`] to keep several.
#[must_use = "an alarm is only stored when `.set().await` is called"]
pub struct AlarmBuilder {
    target: RawRef,
    name: Option<String>,
    data: Result<Envelope, CodecError>,
    spec: AlarmSpec,
}

impl AlarmBuilder {
    /// Start a builder for `handler` on `target` with an encoded payload (used by generated code).
    pub fn new<T: serde::Serialize>(target: RawRef, handler: &'static str, data: &T) -> Self {
        AlarmBuilder {
            target,
            name: None,
            data: Envelope::encode(data),
            spec: AlarmSpec::new(handler),
        }
    }

    /// Fire at this time.
    pub fn at(mut self, when: jiff::Timestamp) -> Self {
        self.spec.due = Due::AtMs(when.as_millisecond());
        self
    }

    /// Fire this long from now.
    pub fn after(mut self, delay: Duration) -> Self {
        self.spec.due = Due::After(delay);
        self
    }

    /// Repeat at this interval (a [`Duration`], or an [`Interval`] with calendar units such as
    /// `"P1M"`). Repeats keep to the schedule: they do not drift with execution time.
    pub fn every(mut self, interval: impl Into<Interval>) -> Self {
        self.spec.interval = Some(interval.into());
        self
    }

    /// Stop repeating this long after the first due time.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.spec.ttl = Some(Ttl::For(ttl));
        self
    }

    /// Stop repeating after this time.
    pub fn until(mut self, deadline: jiff::Timestamp) -> Self {
        self.spec.ttl = Some(Ttl::UntilMs(deadline.as_millisecond()));
        self
    }

    /// Name the alarm (default: the handler's name). Alarms are unique per actor by name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Store the alarm, replacing any alarm of the same name on this actor.
    pub async fn set(self) -> Result<(), Error> {
        let AlarmBuilder {
            target,
            name,
            data,
            mut spec,
        } = self;
        spec.data = Some(data?);
        let name = name.unwrap_or_else(|| spec.handler.clone().unwrap_or_default());
        let key = target.key();
        target
            .service()
            .set_alarm(&key.actor_type, &key.actor_id, &name, spec)
            .await
    }
}

impl From<Duration> for Interval {
    fn from(d: Duration) -> Self {
        Interval::from_duration(d)
    }
}
