//! `francis dev`: a local development cluster. Build the project (or an example), start N host
//! processes that share one SQLite file and a generated runtime PSK in a data directory, show
//! their output and a status view, restart hosts that crash, and stop them all cleanly on
//! Ctrl-C, keeping the state for the next run.
//!
//! The hosts learn their part through the environment (the contract every Francis app built
//! for `francis dev` reads): `FRANCIS_HOST_NAME`, `FRANCIS_HTTP_ADDRESS`,
//! `FRANCIS_PEER_ADDRESS`, `FRANCIS_DB` and `FRANCIS_RUNTIME_PSK`.

mod data;
mod project;
mod supervisor;
mod view;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use self::supervisor::{Event, HostSpec, Launch, Stop};
use crate::exit::{Code, Failure, usage};
use crate::term;

/// Arguments of `francis dev`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES, after_long_help = EXAMPLES)]
pub struct DevArgs {
    /// How many hosts to start.
    #[arg(long, short = 'n', default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub hosts: u16,
    /// Run this example: a cargo example target, or a package under the workspace's examples/.
    #[arg(long, value_name = "NAME", conflicts_with = "bin")]
    pub example: Option<String>,
    /// Run this binary of the workspace [default: the current package's binary].
    #[arg(long, value_name = "NAME")]
    pub bin: Option<String>,
    /// Where the cluster keeps its state: the shared SQLite file (cluster.db) and the dev
    /// runtime PSK [default: .francis/dev in the workspace root].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Ports: host i serves HTTP on TCP port BASE+i-1 and its peers on UDP port BASE+i-1, on
    /// 127.0.0.1.
    #[arg(long, value_name = "BASE", default_value_t = 8081)]
    pub base_port: u16,
    /// Build with the release profile.
    #[arg(long)]
    pub release: bool,
    /// How long hosts get to shut down after Ctrl-C before they are killed.
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = francis::time::parse_duration)]
    pub stop_timeout: Duration,
}

const EXAMPLES: &str = "\
Examples:
  francis dev                          # the current project, two hosts on :8081 and :8082
  francis dev --hosts 3                # three hosts: :8081, :8082, :8083
  francis dev --example worker         # an example of the workspace (examples/worker)
  francis dev --base-port 9000 --data-dir /tmp/cluster

While it runs:
  curl -X POST localhost:8081/invoke/<type>/<id>/<method> --data '<json>'
  curl localhost:8081/status           # {\"hostId\", \"address\", \"activeActors\"}
Ctrl-C stops every host cleanly (a second Ctrl-C kills them); the state stays in the data
directory for the next run.

The hosts get their settings from the environment:
  FRANCIS_HOST_NAME      host-1, host-2, ...
  FRANCIS_HTTP_ADDRESS   127.0.0.1:<port>, the HTTP control server (with GET /status)
  FRANCIS_PEER_ADDRESS   127.0.0.1:<port>, where the other hosts reach it (QUIC, UDP)
  FRANCIS_DB             <data dir>/cluster.db, the SQLite file every host shares
  FRANCIS_RUNTIME_PSK    the cluster key, generated once into <data dir>/runtime-psk";

/// Run `francis dev`.
pub fn run(args: DevArgs) -> anyhow::Result<()> {
    let hosts = usize::from(args.hosts);
    let last_port = u32::from(args.base_port) + u32::from(args.hosts) - 1;
    if args.base_port < 1024 || last_port > u32::from(u16::MAX) {
        return Err(usage(format!(
            "ports {}..={last_port} are out of range",
            args.base_port
        ))
        .fix("pick a --base-port between 1024 and 65535 minus the number of hosts")
        .into());
    }
    let specs: Vec<HostSpec> = (0..hosts)
        .map(|i| {
            let port = args.base_port + u16::try_from(i).unwrap_or(u16::MAX);
            let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            HostSpec {
                index: i,
                name: format!("host-{}", i + 1),
                http: address,
                peer: address,
            }
        })
        .collect();
    check_ports(&specs)?;

    let target = project::locate(args.example.as_deref(), args.bin.as_deref())?;
    let exe = project::build(&target, args.release)?;
    let data = data::open(args.data_dir.as_deref(), &target.workspace_root)?;
    let shown = display_path(&data.path);
    if data.new_psk {
        eprintln!("Generated a runtime PSK for this cluster in {shown}/runtime-psk");
    }
    let rich = term::stdout_is_rich();
    let launch = Launch {
        exe,
        env: vec![
            ("FRANCIS_DB".into(), data.db.display().to_string()),
            ("FRANCIS_RUNTIME_PSK".into(), data.psk.clone()),
        ],
        stop_timeout: args.stop_timeout,
        no_color: !rich,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(cluster(
        specs,
        launch,
        view::ViewConfig {
            rich,
            data_dir: shown,
        },
    ))
}

/// Refuse ports that are taken, before any host starts.
fn check_ports(specs: &[HostSpec]) -> anyhow::Result<()> {
    for spec in specs {
        let tcp = std::net::TcpListener::bind(spec.http).err();
        let udp = std::net::UdpSocket::bind(spec.peer).err();
        if let Some(e) = tcp.or(udp) {
            return Err(Failure::new(
                Code::HostFailed,
                format!("port {} on 127.0.0.1 is not free for {} ({e})", spec.http.port(), spec.name),
            )
            .fix("stop whatever uses it (another francis dev?), or pick other ports with --base-port")
            .into());
        }
    }
    Ok(())
}

/// `path` relative to the current directory when it is inside it.
fn display_path(path: &std::path::Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(|p| p.display().to_string()))
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| path.display().to_string())
}

/// Run the hosts until Ctrl-C / SIGTERM, or until one cannot be kept running.
async fn cluster(
    specs: Vec<HostSpec>,
    launch: Launch,
    config: view::ViewConfig,
) -> anyhow::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for Ctrl-C")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(supervisor::POLL_TIMEOUT)
        .build()
        .context("creating the HTTP client")?;
    let (events, received) = mpsc::unbounded_channel();
    let (stop, stopping) = watch::channel(Stop::Run);
    let view = tokio::spawn(view::View::new(config, &specs).run(received));

    let launch = Arc::new(launch);
    let mut hosts = JoinSet::new();
    for spec in specs {
        hosts.spawn(supervisor::supervise(
            spec,
            launch.clone(),
            client.clone(),
            events.clone(),
            stopping.clone(),
        ));
    }
    let mut failure = None;
    let mut forced = false;
    loop {
        tokio::select! {
            _ = interrupt.recv() => forced |= escalate(&stop, &events, "Ctrl-C"),
            _ = terminate.recv() => forced |= escalate(&stop, &events, "SIGTERM"),
            done = hosts.join_next() => match done {
                None => break,
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(host))) => {
                    let _ = events.send(Event::Notice(format!("{}; stopping the cluster", host.problem)));
                    failure.get_or_insert(host);
                    stop.send_if_modified(|s| std::mem::replace(s, Stop::Graceful) == Stop::Run);
                }
                Some(Err(e)) => {
                    let _ = events.send(Event::Notice(format!("a host supervisor failed: {e}; stopping the cluster")));
                    stop.send_if_modified(|s| std::mem::replace(s, Stop::Graceful) == Stop::Run);
                }
            },
        }
    }
    if failure.is_none() && !forced {
        let _ = events.send(Event::Notice(
            "every host stopped; the state is kept for the next francis dev".into(),
        ));
    }
    drop(events);
    let _ = view.await;
    if let Some(host) = failure {
        return Err(Failure::new(Code::HostFailed, format!("{} could not be kept running: {}", host.name, host.problem))
            .fix("read its output above; a port in use, a bad setting or a crash at startup are the usual causes")
            .into());
    }
    if forced {
        return Err(
            Failure::new(Code::Interrupted, "the hosts were killed (a second Ctrl-C)")
                .fix("their state is in the data directory; SQLite recovers it at the next start")
                .into(),
        );
    }
    Ok(())
}

/// The first signal stops the cluster cleanly, the next kills it. Returns whether it killed.
fn escalate(stop: &watch::Sender<Stop>, events: &mpsc::UnboundedSender<Event>, what: &str) -> bool {
    let next = match *stop.borrow() {
        Stop::Run => Stop::Graceful,
        Stop::Graceful | Stop::Force => Stop::Force,
    };
    let text = match next {
        Stop::Graceful => format!("{what}: stopping every host (Ctrl-C again to kill them)"),
        _ => format!("{what} again: killing every host"),
    };
    let _ = events.send(Event::Notice(text));
    let _ = stop.send_replace(next);
    next == Stop::Force
}
