//! `francis dev`: a development cluster. Build the project (or an example), start N host
//! processes that share one SQLite file and a generated runtime PSK in a data directory, show
//! their output and a status view, restart hosts that crash, and stop them all cleanly on
//! Ctrl-C, keeping the state for the next run.
//!
//! With `--remote`, the remote topology instead: a dev runtime (`francis runtime`, this very
//! executable, with a configuration generated once into the data directory: its PSKs, a loopback
//! port and its SQLite file) and N workers that join it. The runtime is supervised like the
//! hosts (its own prefix, a row in the status view, restarted if it crashes); the workers start
//! once it is ready, and on Ctrl-C they stop first, then the runtime.
//!
//! The hosts learn their part through the environment (the contract every Francis app built
//! for `francis dev` reads): `FRANCIS_HOST_NAME`, `FRANCIS_HTTP_ADDRESS`,
//! `FRANCIS_PEER_ADDRESS`, then `FRANCIS_DB` and `FRANCIS_RUNTIME_PSK` for a local cluster, or
//! `FRANCIS_RUNTIME_ADDRESS`, `FRANCIS_HOST_BOOTSTRAP_PSK` and `FRANCIS_CA_FILE` for workers
//! of a remote one; and `FRANCIS_HTTP_TOKEN` when `--http-token` is given, the bearer token
//! their HTTP control APIs then ask for (and the status polls send). Every process it starts,
//! the dev runtime included, runs the `dev` profile (`FRANCIS_PROFILE=dev`): a development
//! cluster keeps its keys in its data directory and needs no token.

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

use self::supervisor::{Event, HostSpec, Launch, Order, Role, Stop};
use crate::exit::{Code, Failure, usage};
use crate::term;

/// Arguments of `francis dev`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES, after_long_help = EXAMPLES)]
pub struct DevArgs {
    /// How many hosts to start (with --remote: workers).
    #[arg(long, short = 'n', visible_alias = "workers", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub hosts: u16,
    /// Run the remote topology: a dev runtime (`francis runtime`, its configuration generated
    /// once into the data directory) and workers that join it. For apps that read the remote
    /// part of the environment contract, such as the remote-worker template.
    #[arg(long)]
    pub remote: bool,
    /// Run this example: a cargo example target, or a package under the workspace's examples/.
    #[arg(long, value_name = "NAME", conflicts_with = "bin")]
    pub example: Option<String>,
    /// Run this binary of the workspace [default: the current package's binary].
    #[arg(long, value_name = "NAME")]
    pub bin: Option<String>,
    /// Where the cluster keeps its state: the shared SQLite file (cluster.db) and the dev
    /// runtime PSK; with --remote, the runtime's configuration (runtime.yaml), its SQLite file
    /// (runtime.db) and the CA workers pin (ca.pem) [default: .francis/dev, or
    /// .francis/dev-remote with --remote, in the workspace root].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Ports: host i serves HTTP on TCP port BASE+i-1 and its peers on UDP port BASE+i-1, on
    /// 127.0.0.1 (the runtime of --remote gets a free port, kept in runtime.yaml).
    #[arg(long, value_name = "BASE", default_value_t = 8081)]
    pub base_port: u16,
    /// Build with the release profile.
    #[arg(long)]
    pub release: bool,
    /// How long hosts (and the runtime) get to shut down after Ctrl-C before they are killed.
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = francis::time::parse_duration)]
    pub stop_timeout: Duration,
    /// A bearer token for the hosts' HTTP control APIs: given to each host as
    /// FRANCIS_HTTP_TOKEN, so that every request must carry `Authorization: Bearer <TOKEN>`,
    /// and sent with the status polls. At least 16 characters (e.g. `openssl rand -hex 32`).
    #[arg(long, value_name = "TOKEN", env = "FRANCIS_HTTP_TOKEN", hide_env_values = true, value_parser = http_token)]
    pub http_token: Option<String>,
}

/// The environment variable that makes a process run the `dev` profile, whatever the shell
/// says: `francis dev` is a development cluster.
fn dev_profile() -> (String, String) {
    (
        francis::profile::PROFILE_ENV.to_owned(),
        francis::Profile::Dev.to_string(),
    )
}

/// A token the hosts' control APIs accept (`francis::http::HttpToken`'s rule): at least 16
/// characters of `A-Z a-z 0-9 - . _ ~ + /`, then `=` padding.
fn http_token(token: &str) -> Result<String, String> {
    let body = token.trim_end_matches('=');
    if token.len() < 16 {
        return Err("a token needs at least 16 characters, e.g. `openssl rand -hex 32`".into());
    }
    if body.is_empty()
        || !body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
    {
        return Err(
            "a token may only have the characters A-Z a-z 0-9 - . _ ~ + / (and = at the end)"
                .into(),
        );
    }
    Ok(token.to_owned())
}

const EXAMPLES: &str = "\
Examples:
  francis dev                          # the current project, two hosts on :8081 and :8082
  francis dev --hosts 3                # three hosts: :8081, :8082, :8083
  francis dev --example worker         # an example of the workspace (examples/worker)
  francis dev --base-port 9000 --data-dir /tmp/cluster
  francis dev --remote                 # a dev runtime and two workers (remote topology)
  francis dev --remote --example remote-worker
  francis dev --http-token \"$TOKEN\"    # every HTTP call needs -H \"Authorization: Bearer $TOKEN\"

While it runs:
  curl localhost:8081/invoke/<type>/<id>/<method> -H 'Content-Type: application/json' -d '<json>'
  curl localhost:8081/status           # {\"hostId\", \"address\", \"activeActors\", \"topology\"}
Ctrl-C stops every host cleanly (a second Ctrl-C kills them); the state stays in the data
directory for the next run.

The hosts get their settings from the environment:
  FRANCIS_HOST_NAME      host-1, host-2, ...
  FRANCIS_HTTP_ADDRESS   127.0.0.1:<port>, the HTTP control server (with GET /status)
  FRANCIS_PEER_ADDRESS   127.0.0.1:<port>, where the other hosts reach it (QUIC, UDP)
  FRANCIS_DB             <data dir>/cluster.db, the SQLite file every host shares
  FRANCIS_RUNTIME_PSK    the cluster key, generated once into <data dir>/runtime-psk
  FRANCIS_HTTP_TOKEN     the --http-token, if given: the bearer token every HTTP request needs
  FRANCIS_PROFILE        dev: the security profile, which allows what a development cluster
                         does (the runtime PSK on disk, no token...) and says so once at start

With --remote, francis dev first runs `francis runtime --config <data dir>/runtime.yaml` (its
PSKs, a free loopback port and its SQLite file runtime.db are generated once into the data
directory; edit it freely), writes the cluster CA to <data dir>/ca.pem (what `francis ca print
--config <data dir>/runtime.yaml` prints), and starts the workers once the runtime is ready.
They get FRANCIS_HOST_NAME, FRANCIS_HTTP_ADDRESS, FRANCIS_PEER_ADDRESS (and
FRANCIS_HTTP_TOKEN) as above, and:
  FRANCIS_RUNTIME_ADDRESS       127.0.0.1:<port>, the runtime to join (QUIC, UDP)
  FRANCIS_HOST_BOOTSTRAP_PSK    the host PSK they join with (bootstrap.hostPSK of runtime.yaml)
  FRANCIS_CA_FILE               <data dir>/ca.pem, the cluster CA they pin
The runtime runs with FRANCIS_PROFILE=dev too. Ctrl-C stops the workers, then the runtime;
the state stays in runtime.db.";

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
    let noun = if args.remote { "worker" } else { "host" };
    let offset = usize::from(args.remote);
    let mut specs: Vec<HostSpec> = (0..hosts)
        .map(|i| {
            let port = args.base_port + u16::try_from(i).unwrap_or(u16::MAX);
            let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            HostSpec {
                index: i + offset,
                name: format!("{noun}-{}", i + 1),
                role: Role::Host {
                    http: address,
                    peer: address,
                },
            }
        })
        .collect();
    check_ports(&specs)?;

    let target = project::locate(args.example.as_deref(), args.bin.as_deref())?;
    let exe = project::build(&target, args.release)?;
    let rich = term::stdout_is_rich();
    let host_launch = |mut env: Vec<(String, String)>, env_remove: Vec<String>| {
        env.push(dev_profile());
        if let Some(token) = &args.http_token {
            env.push(("FRANCIS_HTTP_TOKEN".into(), token.clone()));
        }
        Launch {
            exe: exe.clone(),
            args: Vec::new(),
            env,
            env_remove,
            dir: None,
            stop_timeout: args.stop_timeout,
            no_color: !rich,
        }
    };
    let (shown, hosts_launch, dev_runtime) = if args.remote {
        let data = data::open_remote(
            args.data_dir.as_deref(),
            &target.workspace_root,
            args.base_port..=u16::try_from(last_port).unwrap_or(u16::MAX),
        )?;
        let shown = display_path(&data.path);
        if data.new_config {
            eprintln!(
                "Generated the dev runtime's configuration (keys, port {}, SQLite file) in {shown}/{}",
                data.runtime.port(),
                data::RUNTIME_CONFIG_FILE
            );
        }
        eprintln!(
            "The workers pin the cluster CA in {shown}/ca.pem (SHA-256 {})",
            data.fingerprint
        );
        let runtime_spec = HostSpec {
            index: 0,
            name: "runtime".into(),
            role: Role::Runtime {
                address: data.runtime,
            },
        };
        check_ports(std::slice::from_ref(&runtime_spec))?;
        let runtime_launch = Launch {
            exe: std::env::current_exe().context("finding the francis executable")?,
            args: vec![
                "runtime".into(),
                "--config".into(),
                data.config.clone().into_os_string(),
            ],
            env: vec![dev_profile()],
            env_remove: vec!["FRANCIS_CONFIG".into()],
            dir: Some(data.path.clone()),
            stop_timeout: args.stop_timeout,
            no_color: !rich,
        };
        let hosts_launch = host_launch(
            vec![
                ("FRANCIS_RUNTIME_ADDRESS".into(), data.runtime.to_string()),
                ("FRANCIS_HOST_BOOTSTRAP_PSK".into(), data.host_psk.clone()),
                ("FRANCIS_CA_FILE".into(), data.ca.display().to_string()),
            ],
            // Workers join with the PSK: a token file set in the shell would take precedence.
            vec!["FRANCIS_BOOTSTRAP_TOKEN_FILE".into()],
        );
        (
            shown,
            hosts_launch,
            Some((runtime_spec, runtime_launch, data.runtime_ui)),
        )
    } else {
        let data = data::open(args.data_dir.as_deref(), &target.workspace_root)?;
        let shown = display_path(&data.path);
        if data.new_psk {
            eprintln!("Generated a runtime PSK for this cluster in {shown}/runtime-psk");
        }
        let hosts_launch = host_launch(
            vec![
                ("FRANCIS_DB".into(), data.db.display().to_string()),
                ("FRANCIS_RUNTIME_PSK".into(), data.psk.clone()),
            ],
            Vec::new(),
        );
        (shown, hosts_launch, None)
    };
    let mut runtime_ui = None;
    let runtime_launch = dev_runtime.map(|(spec, launch, ui)| {
        // The runtime is the first row of the view.
        specs.insert(0, spec);
        runtime_ui = Some(ui);
        launch
    });
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let config = view::ViewConfig {
        rich,
        data_dir: shown,
        remote: args.remote,
        http_token: args.http_token.is_some(),
        runtime_ui,
    };
    tokio.block_on(cluster(
        specs,
        hosts_launch,
        runtime_launch,
        config,
        args.http_token.as_deref(),
    ))
}

/// Refuse ports that are taken, before any host starts.
fn check_ports(specs: &[HostSpec]) -> anyhow::Result<()> {
    for spec in specs {
        let tcp = spec
            .http()
            .and_then(|http| std::net::TcpListener::bind(http).err());
        let udp = std::net::UdpSocket::bind(spec.udp()).err();
        if let Some(e) = tcp.or(udp) {
            let problem = format!(
                "port {} on {} is not free for {} ({e})",
                spec.udp().port(),
                spec.udp().ip(),
                spec.name
            );
            let fix = if spec.is_runtime() {
                "stop whatever uses it (another francis dev --remote?), or change bind in runtime.yaml in the data directory"
            } else {
                "stop whatever uses it (another francis dev?), or pick other ports with --base-port"
            };
            return Err(Failure::new(Code::HostFailed, problem).fix(fix).into());
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

/// Run the processes until Ctrl-C / SIGTERM, or until one cannot be kept running. `specs`
/// are the hosts, after the runtime if there is one (started with `runtime`): the hosts start
/// once it is ready, and stop before it.
async fn cluster(
    specs: Vec<HostSpec>,
    launch: Launch,
    runtime: Option<Launch>,
    config: view::ViewConfig,
    http_token: Option<&str>,
) -> anyhow::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for Ctrl-C")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    // The status polls carry the hosts' bearer token, if they ask for one.
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = http_token {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .context("putting the HTTP token in a header")?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    let client = reqwest::Client::builder()
        .no_proxy()
        .default_headers(headers)
        .timeout(supervisor::POLL_TIMEOUT)
        .build()
        .context("creating the HTTP client")?;
    let remote = config.remote;
    let (events, received) = mpsc::unbounded_channel();
    let (stop, stopping) = watch::channel(Stop::Run);
    let (stop_runtime, runtime_stopping) = watch::channel(Stop::Run);
    let view = tokio::spawn(view::View::new(config, &specs).run(received));

    let launch = Arc::new(launch);
    let mut runtime_launch = runtime.map(Arc::new);
    let (runtime_ready, ready) = watch::channel(false);
    let mut runtime_task = None;
    let mut hosts = JoinSet::new();
    for spec in specs {
        if spec.is_runtime()
            && let Some(launch) = runtime_launch.take()
        {
            runtime_task = Some(tokio::spawn(supervisor::supervise(
                spec,
                launch,
                client.clone(),
                events.clone(),
                runtime_stopping.clone(),
                Order {
                    after: None,
                    ready: Some(runtime_ready.clone()),
                },
            )));
            continue;
        }
        let after = runtime_task.is_some().then(|| ready.clone());
        hosts.spawn(supervisor::supervise(
            spec,
            launch.clone(),
            client.clone(),
            events.clone(),
            stopping.clone(),
            Order { after, ready: None },
        ));
    }
    drop(runtime_ready);
    let mut failure = None;
    let mut forced = false;
    let mut give_up = |problem: String, name: Option<String>| {
        let _ = events.send(Event::Notice(format!("{problem}; stopping the cluster")));
        if let Some(name) = name {
            failure.get_or_insert(supervisor::HostFailure { name, problem });
        }
        stop.send_if_modified(|s| std::mem::replace(s, Stop::Graceful) == Stop::Run);
    };
    loop {
        if hosts.is_empty() {
            // Every host is done: now the runtime may stop, as the hosts did.
            let next = (*stop.borrow()).max(Stop::Graceful);
            stop_runtime.send_if_modified(|s| {
                let changed = *s < next;
                *s = (*s).max(next);
                changed
            });
            if runtime_task.is_none() {
                break;
            }
        }
        tokio::select! {
            _ = interrupt.recv() => forced |= escalate(&stop, &stop_runtime, &events, "Ctrl-C", remote),
            _ = terminate.recv() => forced |= escalate(&stop, &stop_runtime, &events, "SIGTERM", remote),
            done = hosts.join_next(), if !hosts.is_empty() => match done {
                None | Some(Ok(Ok(()))) => {}
                Some(Ok(Err(host))) => give_up(host.problem, Some(host.name)),
                Some(Err(e)) => give_up(format!("a host supervisor failed: {e}"), None),
            },
            done = async {
                match runtime_task.as_mut() {
                    Some(task) => task.await,
                    None => std::future::pending().await,
                }
            }, if runtime_task.is_some() => {
                runtime_task = None;
                match done {
                    Ok(Ok(())) => {}
                    Ok(Err(runtime)) => give_up(runtime.problem, Some(runtime.name)),
                    Err(e) => give_up(format!("the runtime's supervisor failed: {e}"), None),
                }
            },
        }
    }
    if failure.is_none() && !forced {
        let _ = events.send(Event::Notice(if remote {
            "every worker and the runtime stopped; the state is kept for the next francis dev --remote".into()
        } else {
            "every host stopped; the state is kept for the next francis dev".into()
        }));
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

/// The first signal stops the cluster cleanly (the hosts; the runtime follows once they are
/// done), the next kills every process. Returns whether it killed.
fn escalate(
    stop: &watch::Sender<Stop>,
    stop_runtime: &watch::Sender<Stop>,
    events: &mpsc::UnboundedSender<Event>,
    what: &str,
    remote: bool,
) -> bool {
    let next = match *stop.borrow() {
        Stop::Run => Stop::Graceful,
        Stop::Graceful | Stop::Force => Stop::Force,
    };
    let text = match (next, remote) {
        (Stop::Graceful, false) => {
            format!("{what}: stopping every host (Ctrl-C again to kill them)")
        }
        (Stop::Graceful, true) => {
            format!("{what}: stopping every worker, then the runtime (Ctrl-C again to kill them)")
        }
        (_, false) => format!("{what} again: killing every host"),
        (_, true) => format!("{what} again: killing every worker and the runtime"),
    };
    let _ = events.send(Event::Notice(text));
    let _ = stop.send_replace(next);
    if next == Stop::Force {
        let _ = stop_runtime.send_replace(Stop::Force);
    }
    next == Stop::Force
}
