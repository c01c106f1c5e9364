//! The remote-cluster worker: a stateless actor host serving `myactor` that joins a runtime
//! (the control plane, which owns the store), with the HTTP control API. The actor is the very
//! same code as the local-cluster worker's: only the host construction differs.
//!
//! ```text
//! francis runtime --config examples/remote-worker/config.yaml &
//! francis ca print --config examples/remote-worker/config.yaml > ca.pem
//! cargo run -p remote-worker -- --worker-address 127.0.0.1:8081 --actor-host-address 127.0.0.1:7571 --runtime-address 127.0.0.1:7400 --ca-file ca.pem
//! cargo run -p remote-worker -- --worker-address 127.0.0.1:8082 --actor-host-address 127.0.0.1:7572 --runtime-address 127.0.0.1:7400 --ca-file ca.pem
//! ```
//!
//! Each flag can also come from the environment contract of `francis dev --remote`
//! (FRANCIS_HTTP_ADDRESS, FRANCIS_PEER_ADDRESS, FRANCIS_RUNTIME_ADDRESS,
//! FRANCIS_HOST_BOOTSTRAP_PSK, FRANCIS_CA_FILE), so `francis dev --remote --example
//! remote-worker` runs a dev runtime and two such workers with one command.
//!
//! In a container the actor host listens on every interface but is reached at the pod's
//! address: FRANCIS_PEER_BIND=0.0.0.0:7571 with FRANCIS_PEER_ADDRESS=$(POD_IP):7571 (see
//! `examples/kubernetes`).

#[path = "../../worker/src/myactor.rs"]
mod myactor;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use francis::prelude::*;

use crate::myactor::{MyActor, WorkerName};

/// A Francis worker of the remote-cluster example.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address of this worker's HTTP control server.
    #[arg(long, env = "FRANCIS_HTTP_ADDRESS", default_value = "127.0.0.1:8081")]
    worker_address: SocketAddr,
    /// Peer address this worker's actor host advertises to the others.
    #[arg(long, env = "FRANCIS_PEER_ADDRESS", default_value = "127.0.0.1:7571")]
    actor_host_address: String,
    /// Where the actor host listens for peers, when not at the advertised address (e.g.
    /// `0.0.0.0:7571` in a container). Default: the advertised address.
    #[arg(long, env = "FRANCIS_PEER_BIND")]
    actor_host_bind: Option<String>,
    /// A runtime to join (`host:port`); repeat it (or separate addresses with commas) for
    /// every runtime replica.
    #[arg(
        long = "runtime-address",
        env = "FRANCIS_RUNTIME_ADDRESS",
        default_value = "127.0.0.1:7400",
        num_args = 1..,
        value_delimiter = ','
    )]
    runtime_addresses: Vec<String>,
    /// The host bootstrap PSK (the runtime's `bootstrap.hostPSK`). By default the published
    /// development key, which is accepted on loopback addresses only.
    #[arg(long, env = "FRANCIS_HOST_BOOTSTRAP_PSK", default_value = francis::host::DEVELOPMENT_PSK, hide_env_values = true, hide_default_value = true)]
    host_psk: String,
    /// Join with the JWT in this file (re-read at every bootstrap) instead of the host PSK.
    #[arg(long, env = "FRANCIS_BOOTSTRAP_TOKEN_FILE")]
    jwt_file: Option<PathBuf>,
    /// The cluster CA to pin (the output of `francis ca print`).
    #[arg(
        long,
        env = "FRANCIS_CA_FILE",
        required_unless_present = "unsafe_no_pinned_ca"
    )]
    ca_file: Option<PathBuf>,
    /// Trust the first runtime reached without a pinned CA (local testing only).
    #[arg(long, conflicts_with = "ca_file")]
    unsafe_no_pinned_ca: bool,
    /// Deactivate actors idle for this long.
    #[arg(long, default_value = "10s", value_parser = francis::time::parse_duration)]
    idle_timeout: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // ANCHOR: telemetry
    // Logs (text, or JSON lines with FRANCIS_LOG_FORMAT=json), and traces and metrics sent to
    // an OpenTelemetry collector when OTEL_EXPORTER_OTLP_ENDPOINT (or another OTEL_*) says so.
    let telemetry = francis::telemetry::Telemetry::from_env("remote-worker").init()?;
    // ANCHOR_END: telemetry
    let args = Args::parse();

    // ANCHOR: host
    let builder = Host::remote()
        .address(&args.actor_host_address)
        .runtime_addresses(&args.runtime_addresses)
        .shutdown_grace_period(Duration::from_secs(10))
        .data(WorkerName(args.actor_host_address.clone()))
        .register_with::<MyActor>(ActorOptions::default().idle_timeout(args.idle_timeout));
    let builder = match &args.actor_host_bind {
        Some(bind) => builder.bind(bind),
        None => builder,
    };
    let builder = match &args.jwt_file {
        Some(path) => builder.host_bootstrap_jwt_file(path),
        None => builder.host_bootstrap_psk(&args.host_psk),
    };
    let builder = match &args.ca_file {
        Some(path) => {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("reading the pinned CA {}", path.display()))?;
            builder.pinned_ca(pem)
        }
        None => builder.unsafe_no_pinned_ca(),
    };
    let host = builder.build().await.context("joining the cluster")?;
    // ANCHOR_END: host
    tracing::info!(
        http = %args.worker_address, peer = %args.actor_host_address, host = host.host_id(),
        runtime = host.runtime_address().unwrap_or_default(),
        "worker ready"
    );

    // The HTTP control API; a token in FRANCIS_HTTP_TOKEN makes every request need it.
    let control = francis::http::ControlApi::from_env()?
        .bind(args.worker_address)
        .await?;
    let server = control.serve(host.service(), francis::host::shutdown_signal());
    let (served, hosted) = tokio::join!(server, host.run(francis::host::shutdown_signal()));
    served.context("control server")?;
    hosted.context("actor host")?;
    // Sends the spans and metrics not sent yet (at most 10 s).
    telemetry.shutdown().await;
    Ok(())
}
