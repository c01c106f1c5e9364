//! The `{{actor}}` actor: a durable running total. `add` takes an exclusive turn (one at a time
//! per actor), `get` a shared read turn (alongside other reads), the `tick` alarm adds to the
//! total each time it fires, and the `reset` job starts over from zero. Each `{{actor}}` is
//! addressed by an ID (`{{actor}}/alice`), lives on one host of the cluster at a time, and keeps
//! its state in the store across restarts.

use serde::{Deserialize, Serialize};

/// What a `{{actor}}` keeps in the store.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct {{actor | pascal_case}}State {
    /// The running total.
    pub total: i64,
    /// How many times the `tick` alarm has fired.
    pub ticks: u64,
}

/// What can go wrong in a `{{actor}}`. Callers get this same type back, over the cluster too.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum {{actor | pascal_case}}Error {
    /// The total would overflow.
    #[error("adding {amount} to {total} would overflow")]
    Overflow {
        /// The total before the call.
        total: i64,
        /// The amount that did not fit.
        amount: i64,
    },
    /// The state could not be read or written.
    #[error("storage failed: {0}")]
    Storage(String),
}

/// What a failed job asks for: a storage failure is retried after a backoff, an overflow would
/// fail the same way again, so its job is dead-lettered at once.
impl francis::JobError for {{actor | pascal_case}}Error {
    fn disposition(&self) -> francis::Disposition {
        match self {
            {{actor | pascal_case}}Error::Overflow { .. } => francis::Disposition::Permanent,
            {{actor | pascal_case}}Error::Storage(_) => francis::Disposition::Retry,
        }
    }
}

impl From<francis::Error> for {{actor | pascal_case}}Error {
    fn from(e: francis::Error) -> Self {
        {{actor | pascal_case}}Error::Storage(e.to_string())
    }
}

/// A `{{actor}}` actor: one activation per ID, somewhere in the cluster.
pub struct {{actor | pascal_case}} {
    state: francis::State<{{actor | pascal_case}}State>,
}

#[francis::actor(name = "{{actor}}")]
impl {{actor | pascal_case}} {
    fn activate(ctx: &francis::ActorContext) -> Self {
        {{actor | pascal_case}} { state: ctx.state() }
    }

    /// Add `amount` to the total and return the new state.
    pub async fn add(&mut self, amount: i64) -> Result<{{actor | pascal_case}}State, {{actor | pascal_case}}Error> {
        let mut state = self.state.get().await?;
        state.total = state
            .total
            .checked_add(amount)
            .ok_or({{actor | pascal_case}}Error::Overflow {
                total: state.total,
                amount,
            })?;
        self.state.set(state.clone()).await?;
        Ok(state)
    }

    /// The current state.
    pub async fn get(&self) -> Result<{{actor | pascal_case}}State, {{actor | pascal_case}}Error> {
        Ok(self.state.get().await?)
    }

    /// Fired by an alarm: add `amount` (1 if the alarm carries no data) and count the tick.
    #[alarm]
    pub async fn tick(&mut self, amount: Option<i64>) -> Result<(), {{actor | pascal_case}}Error> {
        let amount = amount.unwrap_or(1);
        tracing::info!(amount, "tick");
        self.state
            .update(|s| {
                s.total = s.total.saturating_add(amount);
                s.ticks += 1;
            })
            .await?;
        Ok(())
    }

    /// A job: start over from zero. Dispatch it with `job_reset(())`, once (`.after(..)`,
    /// `.at(..)`) or on a schedule (`.cron("0 0 * * *")`: every day at midnight UTC). A job runs
    /// at least once, and again if its host dies before recording the run, so it sets the state
    /// rather than changing it: resetting twice is the same as resetting once.
    #[job]
    pub async fn reset(&mut self, _data: ()) -> Result<(), {{actor | pascal_case}}Error> {
        tracing::info!("reset");
        self.state.set({{actor | pascal_case}}State::default()).await?;
        Ok(())
    }
}
