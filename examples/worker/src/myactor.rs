//! `myactor`: the actor of the local-cluster example. It counts, remembers which worker runs
//! it and how many times it was activated, and logs the alarms it receives.

use francis::prelude::*;

/// The durable part of a `myactor`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Counter {
    /// The count.
    pub value: i64,
    /// How many times an activation of this actor has started.
    pub activations: u64,
    /// How many alarms it has received.
    pub alarms: u64,
}

/// `{"In": n}`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Input {
    /// The amount to add.
    #[serde(rename = "In")]
    pub by: i64,
}

/// `{"Out": n, "Host": "...", "Activations": n}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// The count.
    #[serde(rename = "Out")]
    pub value: i64,
    /// The worker that runs this activation.
    #[serde(rename = "Host")]
    pub host: String,
    /// How many times this actor has been activated.
    #[serde(rename = "Activations")]
    pub activations: u64,
    /// How many alarms it has received.
    #[serde(rename = "Alarms")]
    pub alarms: u64,
}

/// What went wrong.
#[derive(Debug, Serialize, Deserialize, thiserror::Error)]
pub enum MyActorError {
    /// The state could not be read or written.
    #[error("storage failed: {0}")]
    Storage(String),
}

impl From<francis::Error> for MyActorError {
    fn from(e: francis::Error) -> Self {
        MyActorError::Storage(e.to_string())
    }
}

/// The name of the worker an activation runs on (shared with actors as host data).
pub struct WorkerName(pub String);

// ANCHOR: actor
/// The example actor.
pub struct MyActor {
    state: State<Counter>,
    worker: String,
    counted: bool,
}

#[francis::actor(name = "myactor")]
impl MyActor {
    fn activate(ctx: &ActorContext) -> Self {
        let worker = ctx
            .data::<WorkerName>()
            .map(|w| w.0.clone())
            .unwrap_or_default();
        tracing::info!(actor = ctx.id(), %worker, "activated");
        MyActor {
            state: ctx.state(),
            worker,
            counted: false,
        }
    }

    /// Add to the count.
    pub async fn increment(&mut self, input: Input) -> Result<Output, MyActorError> {
        self.count_activation().await?;
        let worker = self.worker.clone();
        Ok(self
            .state
            .update(|c| {
                c.value += input.by;
                output(c, worker)
            })
            .await?)
    }

    /// Read the count.
    pub async fn get(&self) -> Result<Output, MyActorError> {
        Ok(output(&self.state.get().await?, self.worker.clone()))
    }

    /// Receives alarms, whatever their name.
    #[alarm]
    pub async fn alarm(&mut self, data: serde_json::Value) -> Result<(), MyActorError> {
        self.count_activation().await?;
        tracing::info!(worker = %self.worker, %data, "alarm");
        self.state.update(|c| c.alarms += 1).await?;
        Ok(())
    }

    async fn deactivate(&mut self) {
        tracing::info!(worker = %self.worker, "deactivated");
    }
}
// ANCHOR_END: actor

impl MyActor {
    /// Count this activation once, on its first exclusive turn.
    async fn count_activation(&mut self) -> Result<(), MyActorError> {
        if !self.counted {
            self.counted = true;
            self.state.update(|c| c.activations += 1).await?;
        }
        Ok(())
    }
}

fn output(c: &Counter, host: String) -> Output {
    Output {
        value: c.value,
        host,
        activations: c.activations,
        alarms: c.alarms,
    }
}
