//! "Alarms": reminders scheduled from outside and from inside an actor, and a daily digest
//! whose handler stays correct when an occurrence is delivered more than once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use francis::prelude::*;
use francis::time::Interval;

/// What can go wrong with reminders and digests.
#[derive(Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum ReminderError {
    /// The mail could not be sent.
    #[error("mail not sent: {0}")]
    Mail(String),
    /// The state or an alarm could not be read or written.
    #[error("storage failed: {0}")]
    Storage(String),
}

impl From<francis::Error> for ReminderError {
    fn from(e: francis::Error) -> Self {
        ReminderError::Storage(e.to_string())
    }
}

// ANCHOR: payload
/// The payload of a reminder alarm.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Nudge {
    /// What to remind of.
    pub text: String,
}
// ANCHOR_END: payload

impl Nudge {
    /// A nudge with this text.
    pub fn new(text: &str) -> Self {
        Nudge {
            text: text.to_owned(),
        }
    }
}

// ANCHOR: reminders
/// Reminders for one person.
pub struct Reminders {
    ctx: ActorContext,
    received: State<Vec<String>>,
}

#[francis::actor]
impl Reminders {
    fn activate(ctx: &ActorContext) -> Self {
        Reminders {
            ctx: ctx.clone(),
            received: ctx.state(),
        }
    }

    /// An alarm handler: `&mut self` (it runs in an exclusive turn), one payload argument,
    /// and `Result<(), E>`. Returning an error asks for a retry.
    #[alarm]
    pub async fn nudge(&mut self, data: Nudge) -> Result<(), ReminderError> {
        let at = self.ctx.now();
        self.received
            .update(|list| list.push(format!("{} at {at}", data.text)))
            .await?;
        Ok(())
    }

    /// An actor can schedule its own alarms: `ctx.this()` is a reference to itself.
    pub async fn snooze(&mut self, text: String, minutes: u64) -> Result<(), ReminderError> {
        self.ctx
            .this::<Reminders>()
            .alarm_nudge(Nudge { text })
            .after(Duration::from_secs(minutes * 60))
            .name("snoozed")
            .set()
            .await?;
        Ok(())
    }

    /// What the reminders delivered so far.
    pub async fn received(&self) -> Result<Vec<String>, ReminderError> {
        Ok(self.received.get().await?)
    }
}
// ANCHOR_END: reminders

/// Schedule a few reminders for `who`, as the "Alarms" chapter shows.
pub async fn schedule(
    service: &Service,
    who: &str,
    start: jiff::Timestamp,
) -> Result<(), Box<dyn std::error::Error>> {
    // ANCHOR: schedule
    let bob: ActorRef<Reminders> = service.actor(who);

    // Once, ten minutes from now. Its name defaults to the handler's: "nudge".
    bob.alarm_nudge(Nudge::new("stand up"))
        .after(Duration::from_secs(10 * 60))
        .set()
        .await?;

    // Every day from `start`, six more times, under its own name.
    bob.alarm_nudge(Nudge::new("water the plants"))
        .at(start)
        .every(Duration::from_secs(24 * 3600))
        .ttl(Duration::from_secs(6 * 24 * 3600))
        .name("plants")
        .set()
        .await?;

    // On the same day of every month (a calendar interval, in UTC).
    bob.alarm_nudge(Nudge::new("pay the rent"))
        .at(start)
        .every("P1M".parse::<Interval>()?)
        .name("rent")
        .set()
        .await?;
    // ANCHOR_END: schedule
    Ok(())
}

// ANCHOR: outbox
/// Where digests go: a stand-in for a mail service client that, like most mail services,
/// drops a message whose idempotency key it has already accepted. Clones share one outbox.
#[derive(Debug, Clone, Default)]
pub struct Outbox {
    inner: Arc<Mutex<Sent>>,
}

#[derive(Debug, Default)]
struct Sent {
    messages: Vec<(String, String)>,
    failures_left: u32,
}

impl Outbox {
    /// Send `text` unless a message with `key` was already sent.
    pub fn send(&self, key: &str, text: &str) -> Result<(), String> {
        let mut sent = self.inner.lock().map_err(|e| e.to_string())?;
        if sent.failures_left > 0 {
            sent.failures_left -= 1;
            return Err("mail service unavailable".to_owned());
        }
        if !sent.messages.iter().any(|(k, _)| k == key) {
            sent.messages.push((key.to_owned(), text.to_owned()));
        }
        Ok(())
    }
}
// ANCHOR_END: outbox

impl Outbox {
    /// Fail the next `n` sends (for tests).
    pub fn fail_next(&self, n: u32) {
        if let Ok(mut sent) = self.inner.lock() {
            sent.failures_left = n;
        }
    }

    /// The `(key, text)` of every message sent.
    pub fn sent(&self) -> Vec<(String, String)> {
        self.inner
            .lock()
            .map(|s| s.messages.clone())
            .unwrap_or_default()
    }
}

/// What a digest remembers.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct DigestState {
    /// The last day a digest went out (UTC, `YYYY-MM-DD`).
    pub last_sent_day: Option<String>,
    /// How many digests went out.
    pub sent: u64,
}

// ANCHOR: digest
/// One user's daily digest mail.
pub struct DailyDigest {
    ctx: ActorContext,
    state: State<DigestState>,
}

#[francis::actor]
impl DailyDigest {
    fn activate(ctx: &ActorContext) -> Self {
        DailyDigest {
            ctx: ctx.clone(),
            state: ctx.state(),
        }
    }

    /// Runs at least once per occurrence, so it must be safe to run twice for the same day.
    #[alarm]
    pub async fn send(&mut self, _data: ()) -> Result<(), ReminderError> {
        let day = self.ctx.now().to_zoned(jiff::tz::TimeZone::UTC).date();
        let day = day.to_string();
        let mut state = self.state.get().await?;
        if state.last_sent_day.as_deref() == Some(day.as_str()) {
            return Ok(()); // already done for today: a repeated delivery
        }
        let outbox = self
            .ctx
            .data::<Outbox>()
            .ok_or_else(|| ReminderError::Mail("no outbox registered".into()))?;
        // The key lets the mail service drop a duplicate if we crash after sending but
        // before recording it below.
        let key = format!("digest/{}/{day}", self.ctx.id());
        outbox
            .send(&key, "your daily digest")
            .map_err(ReminderError::Mail)?;
        state.last_sent_day = Some(day);
        state.sent += 1;
        self.state.set(state).await?;
        Ok(())
    }

    /// How many digests went out.
    pub async fn sent(&self) -> Result<u64, ReminderError> {
        Ok(self.state.get().await?.sent)
    }
}
// ANCHOR_END: digest
