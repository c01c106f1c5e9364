//! {{project-name}}: a Francis worker serving `{{actor}}` actors in the remote topology. It
//! keeps no state itself: it joins a runtime (`francis runtime`, the control plane that owns the
//! store and the cluster CA), and serves the HTTP control API (`francis::http`) to call the
//! actors with curl.
//!
//! `francis dev --remote` runs a dev runtime and two workers. By hand: start the runtime with
//! `francis runtime --config runtime.yaml`, then each worker. Every setting is a flag or an
//! environment variable (the ones `francis dev --remote` sets for each worker):
//! FRANCIS_HTTP_ADDRESS, FRANCIS_PEER_ADDRESS, FRANCIS_HOST_NAME, FRANCIS_RUNTIME_ADDRESS,
//! FRANCIS_HOST_BOOTSTRAP_PSK and FRANCIS_CA_FILE.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use {{crate_name}}::{{actor}}::{{actor | pascal_case}};

/// {{project-name}}: a Francis worker that joins a runtime, with an HTTP control server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address of the HTTP control server.
    #[arg(long, env = "FRANCIS_HTTP_ADDRESS", default_value = "127.0.0.1:8080")]
    http_address: SocketAddr,
    /// Address the other workers reach this one on (QUIC, over UDP).
    #[arg(long, env = "FRANCIS_PEER_ADDRESS", default_value = "127.0.0.1:7571")]
    peer_address: String,
    /// The runtime to join, as host:port (the `bind` of its runtime.yaml). Repeat the flag, or
    /// separate addresses with commas, for every runtime replica.
    #[arg(
        long = "runtime-address",
        env = "FRANCIS_RUNTIME_ADDRESS",
        default_value = "127.0.0.1:7400",
        value_delimiter = ','
    )]
    runtime_addresses: Vec<String>,
    /// The host bootstrap PSK to join with: the runtime's `bootstrap.hostPSK`.
    #[arg(long, env = "FRANCIS_HOST_BOOTSTRAP_PSK", hide_env_values = true)]
    host_psk: String,
    /// The cluster CA to pin, in PEM: the output of `francis ca print --config runtime.yaml`.
    #[arg(
        long,
        env = "FRANCIS_CA_FILE",
        required_unless_present = "unsafe_no_pinned_ca"
    )]
    ca_file: Option<PathBuf>,
    /// Trust the first runtime reached without pinning its CA (local experiments only).
    #[arg(long, conflicts_with = "ca_file")]
    unsafe_no_pinned_ca: bool,
    /// This worker's name in logs.
    #[arg(long, env = "FRANCIS_HOST_NAME", default_value = "{{project-name}}")]
    host_name: String,
    /// Deactivate actors idle for this long (e.g. "30s", "5m").
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

    // The HTTP control API answers loopback callers; a token in FRANCIS_HTTP_TOKEN makes every
    // request need `Authorization: Bearer <token>`, and lets it serve on other addresses.
    let control = francis::http::ControlApi::from_env()?;
    // Bind first: a busy port fails before the worker joins the cluster.
    let listener = tokio::net::TcpListener::bind(args.http_address)
        .await
        .with_context(|| {
            format!(
                "cannot listen for HTTP on {}; is another process using it? Pass --http-address",
                args.http_address
            )
        })?;
    let control = control.listener(listener)?;
    let options = francis::ActorOptions::default().idle_timeout(args.idle_timeout);
    let builder = francis::Host::remote()
        .address(&args.peer_address)
        .runtime_addresses(&args.runtime_addresses)
        .host_bootstrap_psk(&args.host_psk)
        .register_with::<{{actor | pascal_case}}>(options)
        .shutdown_grace_period(Duration::from_secs(10));
    let builder = match &args.ca_file {
        Some(path) => {
            let pem = std::fs::read_to_string(path).with_context(|| {
                format!(
                    "cannot read the cluster CA {}; write it with `francis ca print --config runtime.yaml > {}`",
                    path.display(),
                    path.display()
                )
            })?;
            builder.pinned_ca(pem)
        }
        None => {
            tracing::warn!("--unsafe-no-pinned-ca: trusting the first runtime reached");
            builder.unsafe_no_pinned_ca()
        }
    };
    let host = builder.build().await.with_context(|| {
        format!(
            "joining the runtime at {}; is it running (francis runtime --config runtime.yaml), with this host PSK and CA?",
            args.runtime_addresses.join(", ")
        )
    })?;
    tracing::info!(
        host = %args.host_name,
        id = host.host_id(),
        http = %args.http_address,
        peer = %args.peer_address,
        runtime = host.runtime_address().unwrap_or_default(),
        "ready"
    );

    // Serve until Ctrl-C or SIGTERM, then stop taking requests and leave the cluster cleanly.
    let server = control.serve(host.service(), francis::host::shutdown_signal());
    let (served, hosted) = tokio::join!(server, host.run(francis::host::shutdown_signal()));
    served.context("HTTP control server")?;
    hosted.context("actor host")?;
    Ok(())
}
