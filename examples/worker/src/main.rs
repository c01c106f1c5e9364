//! The local-cluster worker: an actor host serving `myactor`, with the HTTP control API.
//!
//! Workers that share one store and one runtime PSK form one cluster. On one machine they can
//! share a SQLite file (`--db`); across machines they share a PostgreSQL database
//! (`--postgres`). A SQLite file must not live on a network filesystem.
//!
//! ```text
//! mkdir -p worker1 worker2
//! (cd worker1 && cargo run -p worker -- --worker-address 127.0.0.1:8081 --actor-host-address 127.0.0.1:7571 --db ../cluster.db)
//! (cd worker2 && cargo run -p worker -- --worker-address 127.0.0.1:8082 --actor-host-address 127.0.0.1:7572 --db ../cluster.db)
//! ```
//!
//! Each flag can also come from the environment contract of `francis dev`
//! (FRANCIS_HTTP_ADDRESS, FRANCIS_PEER_ADDRESS, FRANCIS_DB; FRANCIS_RUNTIME_PSK for the key), so
//! `francis dev --example worker` runs the same cluster with one command.

mod myactor;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use francis::prelude::*;

use crate::myactor::{MyActor, WorkerName};

/// A Francis worker of the local-cluster example.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address of this worker's HTTP control server.
    #[arg(long, env = "FRANCIS_HTTP_ADDRESS", default_value = "127.0.0.1:8081")]
    worker_address: SocketAddr,
    /// Peer address this worker's actor host advertises to the others.
    #[arg(long, env = "FRANCIS_PEER_ADDRESS", default_value = "127.0.0.1:7571")]
    actor_host_address: String,
    /// The SQLite file the cluster shares (every worker on this machine must name the same file)
    /// [default: $FRANCIS_DB, else data.db].
    // FRANCIS_DB is read by hand, not with clap's `env`: clap would count it as given and refuse
    // it next to --postgres.
    #[arg(long, conflicts_with = "postgres")]
    db: Option<PathBuf>,
    /// A PostgreSQL URL the cluster shares instead of a SQLite file (for workers on several machines).
    #[arg(long)]
    postgres: Option<String>,
    /// Deactivate actors idle for this long.
    #[arg(long, default_value = "10s", value_parser = francis::time::parse_duration)]
    idle_timeout: Duration,
    /// A host whose heartbeat is older than this is considered dead.
    #[arg(long, default_value = "20s", value_parser = francis::time::parse_duration)]
    health_check_deadline: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let db = args
        .db
        .clone()
        .or_else(|| std::env::var_os("FRANCIS_DB").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("data.db"));
    // Without FRANCIS_RUNTIME_PSK, the published development key, which hosts accept on
    // loopback addresses only: set the variable (e.g. `openssl rand -hex 32`) anywhere else.
    let psk = std::env::var("FRANCIS_RUNTIME_PSK")
        .unwrap_or_else(|_| francis::host::DEVELOPMENT_PSK.to_owned());

    // ANCHOR: host
    let builder = Host::local()
        .address(&args.actor_host_address)
        .runtime_psk(psk)
        .health_check_deadline(args.health_check_deadline)
        .shutdown_grace_period(Duration::from_secs(10))
        .data(WorkerName(args.actor_host_address.clone()))
        .register_with::<MyActor>(ActorOptions::default().idle_timeout(args.idle_timeout));
    let builder = match &args.postgres {
        Some(url) => builder.postgres(url),
        None => builder.sqlite(&db),
    };
    let host = builder.build().await.context("starting the actor host")?;
    // ANCHOR_END: host
    let store = args
        .postgres
        .as_deref()
        .map_or_else(|| db.display().to_string(), |_| "PostgreSQL".to_owned());
    tracing::info!(
        http = %args.worker_address, peer = %args.actor_host_address, host = host.host_id(), %store,
        "worker ready; workers sharing this store form one cluster"
    );

    // The HTTP control API; a token in FRANCIS_HTTP_TOKEN makes every request need it.
    let control = francis::http::ControlApi::from_env()?
        .bind(args.worker_address)
        .await?;
    let server = control.serve(host.service(), francis::host::shutdown_signal());
    let (served, hosted) = tokio::join!(server, host.run(francis::host::shutdown_signal()));
    served.context("control server")?;
    hosted.context("actor host")?;
    Ok(())
}
