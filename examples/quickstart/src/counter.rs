//! The quickstart's actor: a durable counter. `increment` takes the exclusive turn, `get` a
//! shared read turn, and the `tick` alarm bumps the counter each time it fires.

use francis::prelude::*;

/// The counter's durable state.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Count {
    /// The current value.
    pub value: i64,
    /// How many times the `tick` alarm has fired.
    pub ticks: u64,
}

/// `{"In": 42}`: how much to add.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Input {
    /// The amount to add.
    #[serde(rename = "In")]
    pub by: i64,
}

/// `{"Out": n}`: the counter's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// The value.
    #[serde(rename = "Out")]
    pub value: i64,
}

/// What can go wrong with a counter. It reaches callers as this same type.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CounterError {
    /// The counter would overflow.
    #[error("the counter would overflow")]
    Overflow,
    /// The state could not be read or written.
    #[error("storage failed: {0}")]
    Storage(String),
}

impl From<francis::Error> for CounterError {
    fn from(e: francis::Error) -> Self {
        CounterError::Storage(e.to_string())
    }
}

/// A durable counter actor.
pub struct Counter {
    count: State<Count>,
}

#[francis::actor]
impl Counter {
    fn activate(ctx: &ActorContext) -> Self {
        Counter { count: ctx.state() }
    }

    /// Add `input.by` and return the new value.
    pub async fn increment(&mut self, input: Input) -> Result<Output, CounterError> {
        let mut count = self.count.get().await?;
        count.value = count
            .value
            .checked_add(input.by)
            .ok_or(CounterError::Overflow)?;
        let value = count.value;
        self.count.set(count).await?;
        Ok(Output { value })
    }

    /// The current value.
    pub async fn get(&self) -> Result<Output, CounterError> {
        Ok(Output {
            value: self.count.get().await?.value,
        })
    }

    /// How many times the `tick` alarm has fired.
    pub async fn ticks(&self) -> Result<u64, CounterError> {
        Ok(self.count.get().await?.ticks)
    }

    /// Fired by an alarm: add one, whatever the payload says.
    #[alarm]
    pub async fn tick(&mut self, data: serde_json::Value) -> Result<(), CounterError> {
        tracing::info!(%data, "tick");
        self.count
            .update(|c| {
                c.value += 1;
                c.ticks += 1;
            })
            .await?;
        Ok(())
    }
}
