//! "Registration options": a host that registers the guide's actor types with options, and
//! shares a dependency with every actor.

use std::path::Path;
use std::time::Duration;

use francis::prelude::*;

use crate::alarms::{DailyDigest, Outbox, Reminders};
use crate::calling::{Inventory, Order};
use crate::lifecycle::{Batch, PageHits};
use crate::methods::Account;
use crate::state::Session;

// ANCHOR: host
/// Build a host with every actor type of the guide.
pub async fn build_host(address: &str, db: &Path, psk: &str) -> Result<Host, Error> {
    Host::local()
        .address(address)
        .sqlite(db)
        .runtime_psk(psk)
        // Shared with every actor: `ctx.data::<Outbox>()`.
        .data(Outbox::default())
        // Defaults: idle for 5 minutes, 5 s for the deactivation hook, no limit per host,
        // alarms tried 3 times with retries 2 s, 3 s, 4.5 s, ... apart.
        .register::<Account>()
        .register::<Reminders>()
        .register::<Inventory>()
        .register::<Order>()
        // Sessions come and go: free their memory after one idle minute.
        .register_with::<Session>(ActorOptions::default().idle_timeout(Duration::from_secs(60)))
        // A page counter flushes in its hook: give it time, and keep it active longer.
        .register_with::<PageHits>(
            ActorOptions::default()
                .idle_timeout(Duration::from_secs(30 * 60))
                .deactivation_timeout(Duration::from_secs(10)),
        )
        // Heavy batch jobs: at most two at a time on each host.
        .register_with::<Batch>(ActorOptions::default().concurrency_limit(2))
        // The mail service has hiccups: try each digest 5 times, 30 s, 45 s, ... apart.
        .register_with::<DailyDigest>(
            ActorOptions::default()
                .alarm_max_attempts(5)
                .alarm_retry_delay(Duration::from_secs(30)),
        )
        .build()
        .await
}
// ANCHOR_END: host
