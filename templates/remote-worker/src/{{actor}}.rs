//! The `{{actor}}` actor: a durable running total. `add` takes an exclusive turn (one at a time
//! per actor), `get` a shared read turn (alongside other reads), and the `tick` alarm adds to the
//! total each time it fires. Each `{{actor}}` is addressed by an ID (`{{actor}}/alice`), lives on
//! one host of the cluster at a time, and keeps its state in the store across restarts.

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
}
