//! Francis quickstart: one host with a durable counter actor on an embedded SQLite file, behind
//! the HTTP control API of the docs.
//!
//! ```text
//! cargo run -p quickstart
//! curl -X POST localhost:8080/invoke/counter/alice/increment \
//!   -H 'Content-Type: application/json' --data '{"In": 42}'   # {"Out":42}
//! ```
//!
//! It follows the environment contract of `francis dev` (FRANCIS_HTTP_ADDRESS,
//! FRANCIS_PEER_ADDRESS, FRANCIS_DB, FRANCIS_RUNTIME_PSK), so `francis dev --example quickstart`
//! runs several of them as one cluster.

mod counter;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use francis::prelude::*;

use crate::counter::Counter;

/// Francis quickstart: a counter actor behind an HTTP control server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address of the HTTP control server.
    #[arg(long, env = "FRANCIS_HTTP_ADDRESS", default_value = "127.0.0.1:8080")]
    worker_address: SocketAddr,
    /// Peer address of the actor host (how other hosts would reach it).
    #[arg(long, env = "FRANCIS_PEER_ADDRESS", default_value = "127.0.0.1:7571")]
    actor_host_address: String,
    /// SQLite file holding actor state and alarms.
    #[arg(long, env = "FRANCIS_DB", default_value = "data.db")]
    db: PathBuf,
    /// Deactivate counters idle for this long (e.g. "10s", "5m").
    #[arg(long, default_value = "5m", value_parser = francis::time::parse_duration)]
    idle_timeout: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    // Without FRANCIS_RUNTIME_PSK, the published development key: hosts accept it on loopback
    // addresses only, so set the variable (e.g. `openssl rand -hex 32`) anywhere else.
    let psk = std::env::var("FRANCIS_RUNTIME_PSK").unwrap_or_else(|_| {
        tracing::warn!(
            "FRANCIS_RUNTIME_PSK is not set; using the published development key (loopback only)"
        );
        francis::host::DEVELOPMENT_PSK.to_owned()
    });

    // ANCHOR: host
    let host = Host::local()
        .address(&args.actor_host_address)
        .sqlite(&args.db)
        .runtime_psk(psk)
        .register_with::<Counter>(ActorOptions::default().idle_timeout(args.idle_timeout))
        .shutdown_grace_period(Duration::from_secs(10))
        .build()
        .await
        .context("starting the actor host")?;
    // ANCHOR_END: host

    // ANCHOR: control
    // The HTTP control API answers loopback callers; a token in FRANCIS_HTTP_TOKEN makes every
    // request need `Authorization: Bearer <token>`, and lets it serve on other addresses.
    let control = francis::http::ControlApi::from_env()?
        .bind(args.worker_address)
        .await?;
    // ANCHOR_END: control
    tracing::info!(address = %args.worker_address, db = %args.db.display(), "quickstart ready");

    // ANCHOR: run
    let server = control.serve(host.service(), francis::host::shutdown_signal());
    // Serve until Ctrl-C or SIGTERM, then shut down cleanly.
    let (served, hosted) = tokio::join!(server, host.run(francis::host::shutdown_signal()));
    served.context("control server")?;
    hosted.context("actor host")?;
    // ANCHOR_END: run
    Ok(())
}
