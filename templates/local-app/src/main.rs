//! {{project-name}}: a Francis actor host serving `{{actor}}` actors, with durable state in an
//! embedded SQLite file and the HTTP control API (`francis::http`) to call them with curl.
//!
//! `cargo run` starts one host; `francis dev` starts a local cluster of several. Every setting
//! is a flag or an environment variable (the ones `francis dev` sets for each host):
//! FRANCIS_HTTP_ADDRESS, FRANCIS_PEER_ADDRESS, FRANCIS_DB, FRANCIS_HOST_NAME, and
//! FRANCIS_RUNTIME_PSK for the cluster key.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use {{crate_name}}::{{actor}}::{{actor | pascal_case}};

/// {{project-name}}: a Francis actor host with an HTTP control server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address of the HTTP control server.
    #[arg(long, env = "FRANCIS_HTTP_ADDRESS", default_value = "127.0.0.1:8080")]
    http_address: SocketAddr,
    /// Address the other hosts of the cluster reach this one on (QUIC, over UDP).
    #[arg(long, env = "FRANCIS_PEER_ADDRESS", default_value = "127.0.0.1:7571")]
    peer_address: String,
    /// SQLite file with actor state and alarms; hosts on this machine that share it (and the
    /// runtime PSK) form one cluster.
    #[arg(long, env = "FRANCIS_DB", default_value = "data.db")]
    db: PathBuf,
    /// This host's name in logs.
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
    // Without FRANCIS_RUNTIME_PSK, the published development key, which hosts accept on
    // loopback addresses only. Anywhere else, set FRANCIS_RUNTIME_PSK to a secret of at least
    // 32 bytes (e.g. `openssl rand -hex 32`), the same on every host of the cluster.
    let psk = std::env::var("FRANCIS_RUNTIME_PSK").unwrap_or_else(|_| {
        tracing::warn!(
            "FRANCIS_RUNTIME_PSK is not set; using the published development key (loopback only)"
        );
        francis::host::DEVELOPMENT_PSK.to_owned()
    });

    // The HTTP control API answers loopback callers; a token in FRANCIS_HTTP_TOKEN makes every
    // request need `Authorization: Bearer <token>`, and lets it serve on other addresses.
    let control = francis::http::ControlApi::from_env()?;
    // Bind first: a busy port fails before the host joins the cluster.
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
    let host = francis::Host::local()
        .address(&args.peer_address)
        .sqlite(&args.db)
        .runtime_psk(psk)
        .register_with::<{{actor | pascal_case}}>(options)
        .shutdown_grace_period(Duration::from_secs(10))
        .build()
        .await
        .context("starting the actor host")?;
    tracing::info!(
        host = %args.host_name,
        id = host.host_id(),
        http = %args.http_address,
        peer = %args.peer_address,
        db = %args.db.display(),
        "ready"
    );

    // Serve until Ctrl-C or SIGTERM, then stop taking requests and shut the host down cleanly.
    let server = control.serve(host.service(), francis::host::shutdown_signal());
    let (served, hosted) = tokio::join!(server, host.run(francis::host::shutdown_signal()));
    served.context("HTTP control server")?;
    hosted.context("actor host")?;
    Ok(())
}
