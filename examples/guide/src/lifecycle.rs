//! "Lifecycle": an actor that buffers in memory and flushes in its deactivation hook, a long
//! method that stops early when its activation halts, and an actor that halts itself.

use std::time::Duration;

use francis::prelude::*;

/// What can go wrong with a page counter.
#[derive(Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum CounterError {
    /// The state could not be read or written.
    #[error("storage failed: {0}")]
    Storage(String),
}

impl From<francis::Error> for CounterError {
    fn from(e: francis::Error) -> Self {
        CounterError::Storage(e.to_string())
    }
}

/// How many hits are buffered before they are written.
pub const FLUSH_EVERY: u64 = 100;

// ANCHOR: buffered
/// Counts hits on one page. Writing every hit would cost one store write each, so hits are
/// buffered in memory and written every `FLUSH_EVERY` hits, and when the activation ends.
pub struct PageHits {
    stored: State<u64>,
    pending: u64,
}

#[francis::actor]
impl PageHits {
    fn activate(ctx: &ActorContext) -> Self {
        PageHits {
            stored: ctx.state(),
            pending: 0,
        }
    }

    /// Count one hit.
    pub async fn hit(&mut self) -> Result<(), CounterError> {
        self.pending += 1;
        if self.pending >= FLUSH_EVERY {
            self.flush().await?;
        }
        Ok(())
    }

    /// Stored and buffered hits.
    pub async fn total(&self) -> Result<u64, CounterError> {
        Ok(self.stored.get().await? + self.pending)
    }

    /// The deactivation hook: runs once when the activation ends (idle timeout, halt, host
    /// shutdown), after its last turn, for at most the type's deactivation timeout.
    async fn deactivate(&mut self) {
        if let Err(e) = self.flush().await {
            tracing::warn!(error = %e, "lost {} buffered hits", self.pending);
        }
    }
}

impl PageHits {
    async fn flush(&mut self) -> Result<(), francis::Error> {
        let pending = std::mem::take(&mut self.pending);
        self.stored.update(|n| *n += pending).await
    }
}
// ANCHOR_END: buffered

// ANCHOR: halting
/// A batch job that works in steps and stops early when its activation is asked to halt.
pub struct Batch {
    ctx: ActorContext,
    done: State<u32>,
}

#[francis::actor]
impl Batch {
    fn activate(ctx: &ActorContext) -> Self {
        Batch {
            ctx: ctx.clone(),
            done: ctx.state(),
        }
    }

    /// Run up to `steps` steps; returns how many ran. If the activation starts halting (idle
    /// timeout, halt, shutdown), it saves its progress and returns before the grace period
    /// runs out and the turn is cancelled.
    pub async fn run(&mut self, steps: u32) -> Result<u32, CounterError> {
        let mut ran = 0;
        while ran < steps {
            tokio::select! {
                _ = self.ctx.halting() => break,
                _ = one_step() => ran += 1,
            }
        }
        self.done.update(|done| *done += ran).await?;
        Ok(ran)
    }

    /// Steps completed over every run.
    pub async fn done(&self) -> Result<u32, CounterError> {
        Ok(self.done.get().await?)
    }

    /// Forget the progress, then halt this activation once the turn is over.
    pub async fn reset(&mut self) -> Result<(), CounterError> {
        self.done.delete().await?;
        self.ctx.halt();
        Ok(())
    }
}

async fn one_step() {
    tokio::time::sleep(Duration::from_millis(20)).await;
}
// ANCHOR_END: halting
