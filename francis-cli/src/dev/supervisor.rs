//! One process of a development cluster (a host, or the dev runtime of `francis dev --remote`):
//! start it (a host with the environment contract), pass its output to the view line by line,
//! poll it (a host's `GET /status`; the runtime by reading its CA), restart it (with backoff)
//! when it exits on its own, and stop it on request (SIGINT, then SIGKILL after the stop
//! timeout). Workers of a remote cluster start once the runtime is ready.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use francis::HostStatus;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};

/// How often a host's status is polled (and the runtime's, until it is ready).
const POLL_EVERY: Duration = Duration::from_millis(500);
/// How long one status poll may take.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(1);
/// Polls in a row without an answer before a ready host is reported as not answering.
const MISSES_BEFORE_UNRESPONSIVE: u32 = 4;
/// How often a ready runtime is checked (each check is a QUIC handshake).
const RUNTIME_POLL_EVERY: Duration = Duration::from_secs(5);
/// How long reading the runtime's CA may take.
const RUNTIME_PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Checks in a row without an answer before a ready runtime is reported as not answering.
const RUNTIME_MISSES_BEFORE_UNRESPONSIVE: u32 = 2;
/// The first restart delay; it doubles while the host keeps crashing, up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// The longest restart delay.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A host that ran this long before exiting is restarted after [`MIN_BACKOFF`] again.
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// Exits in a row before the host ever became ready, after which `francis dev` gives up.
pub const MAX_EARLY_EXITS: u32 = 5;
/// How long to wait for the last output of a process that exited.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// One process to run.
#[derive(Debug, Clone)]
pub struct HostSpec {
    /// Its position (0-based) in the cluster, and in the view.
    pub index: usize,
    /// Its name: `host-1`, `host-2`, ... (`worker-1`, ... and `runtime` with `--remote`).
    pub name: String,
    /// What it is, and where it listens.
    pub role: Role,
}

/// What a process of the cluster is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An actor host (a worker, with `--remote`), told its part through the environment.
    Host {
        /// Its HTTP control server, polled at `GET /status`.
        http: SocketAddr,
        /// The address its peers reach it on (UDP).
        peer: SocketAddr,
    },
    /// The dev runtime of `francis dev --remote`, checked by reading its CA.
    Runtime {
        /// Where it listens, as the workers reach it (UDP).
        address: SocketAddr,
    },
}

impl HostSpec {
    /// Its HTTP control server, if it is a host.
    pub fn http(&self) -> Option<SocketAddr> {
        match self.role {
            Role::Host { http, .. } => Some(http),
            Role::Runtime { .. } => None,
        }
    }

    /// The UDP address it listens on: a host's peer address, the runtime's address.
    pub fn udp(&self) -> SocketAddr {
        match self.role {
            Role::Host { peer, .. } => peer,
            Role::Runtime { address } => address,
        }
    }

    /// Whether it is the runtime.
    pub fn is_runtime(&self) -> bool {
        matches!(self.role, Role::Runtime { .. })
    }
}

/// How to start a process: what the hosts of a cluster share, or the runtime's command.
#[derive(Debug)]
pub struct Launch {
    /// The program.
    pub exe: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Environment variables to set (for hosts, the shared part of the contract).
    pub env: Vec<(String, String)>,
    /// Environment variables to unset.
    pub env_remove: Vec<String>,
    /// Its working directory [default: ours].
    pub dir: Option<PathBuf>,
    /// How long it gets to stop after SIGINT before it is killed.
    pub stop_timeout: Duration,
    /// Ask for plain output (`NO_COLOR=1`), when ours is not a terminal.
    pub no_color: bool,
}

/// When a process starts, relative to the others.
#[derive(Debug, Default)]
pub struct Order {
    /// Start only once this is true (a worker waits for the runtime), unless the cluster
    /// stops first.
    pub after: Option<watch::Receiver<bool>>,
    /// Set to true once this process is first ready (the runtime, for its workers).
    pub ready: Option<watch::Sender<bool>>,
}

/// What the cluster is asked to do, in escalating order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stop {
    /// Keep running, restarting hosts that exit.
    Run,
    /// Stop: SIGINT, then SIGKILL after the stop timeout.
    Graceful,
    /// Kill now.
    Force,
}

/// What happens to a host, for the view.
#[derive(Debug)]
pub enum Event {
    /// A line of its output.
    Log { host: usize, line: String },
    /// Its process started.
    Starting { host: usize, pid: u32, attempt: u32 },
    /// It answered its first status poll.
    Ready { host: usize, after: Duration },
    /// A status poll answered (`None`: the app has no `/status` route).
    Status {
        host: usize,
        status: Option<HostStatus>,
    },
    /// A ready host stopped answering.
    Unresponsive { host: usize },
    /// It exited on its own; it restarts after `restart_in`, or not at all (`None`).
    Exited {
        host: usize,
        how: String,
        restart_in: Option<Duration>,
    },
    /// It was asked to stop.
    Stopping { host: usize },
    /// It is stopped (`forced`: it had to be killed).
    Stopped {
        host: usize,
        how: String,
        forced: bool,
    },
    /// A message of `francis dev` itself.
    Notice(String),
}

/// Why a host was given up on.
#[derive(Debug)]
pub struct HostFailure {
    /// The host.
    pub name: String,
    /// What went wrong.
    pub problem: String,
}

/// Run one process until the cluster stops (`Ok`) or it cannot be kept running (`Err`).
pub async fn supervise(
    spec: HostSpec,
    launch: Arc<Launch>,
    client: reqwest::Client,
    events: mpsc::UnboundedSender<Event>,
    mut stop: watch::Receiver<Stop>,
    order: Order,
) -> Result<(), HostFailure> {
    let host = spec.index;
    let send = |event| {
        let _ = events.send(event);
    };
    if let Some(mut after) = order.after {
        let waiting = async move { after.wait_for(|ready| *ready).await.is_ok() };
        let started = tokio::select! {
            ready = waiting => ready,
            _ = stop.wait_for(|s| *s != Stop::Run) => false,
        };
        if !started {
            send(Event::Stopped {
                host,
                how: "was not started".into(),
                forced: false,
            });
            return Ok(());
        }
    }
    let (poll_every, ready_poll_every, misses_allowed) = if spec.is_runtime() {
        (
            POLL_EVERY,
            RUNTIME_POLL_EVERY,
            RUNTIME_MISSES_BEFORE_UNRESPONSIVE,
        )
    } else {
        (POLL_EVERY, POLL_EVERY, MISSES_BEFORE_UNRESPONSIVE)
    };
    let mut backoff = MIN_BACKOFF;
    let mut early_exits = 0;
    for attempt in 1.. {
        if *stop.borrow() != Stop::Run {
            return Ok(());
        }
        let mut child = spawn(&spec, &launch).map_err(|e| HostFailure {
            name: spec.name.clone(),
            problem: format!("cannot start {}: {e}", launch.exe.display()),
        })?;
        let pid = child.id().unwrap_or_default();
        send(Event::Starting { host, pid, attempt });
        let pumps = [
            child
                .stdout
                .take()
                .map(|out| tokio::spawn(pump(out, host, events.clone()))),
            child
                .stderr
                .take()
                .map(|err| tokio::spawn(pump(err, host, events.clone()))),
        ];
        let drain = || async {
            for task in pumps.into_iter().flatten() {
                let _ = tokio::time::timeout(DRAIN_TIMEOUT, task).await;
            }
        };

        let started = Instant::now();
        let mut ready = false;
        let mut misses = 0;
        let mut poll = tokio::time::interval(poll_every);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let exit = loop {
            tokio::select! {
                status = child.wait() => break status,
                _ = stop.changed() => {
                    if *stop.borrow() != Stop::Run {
                        send(Event::Stopping { host });
                        let (how, forced) = shut_down(&mut child, pid, launch.stop_timeout, &mut stop).await;
                        drain().await;
                        send(Event::Stopped { host, how, forced });
                        return Ok(());
                    }
                }
                _ = poll.tick() => match check(&client, &spec).await {
                    Some(status) => {
                        misses = 0;
                        if !ready {
                            ready = true;
                            send(Event::Ready { host, after: started.elapsed() });
                            if let Some(ready) = &order.ready {
                                ready.send_replace(true);
                            }
                            if ready_poll_every != poll_every {
                                poll = tokio::time::interval_at(
                                    tokio::time::Instant::now() + ready_poll_every,
                                    ready_poll_every,
                                );
                                poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                            }
                        }
                        send(Event::Status { host, status });
                    }
                    None if ready => {
                        misses += 1;
                        if misses == misses_allowed {
                            send(Event::Unresponsive { host });
                        }
                    }
                    None => {}
                },
            }
        };
        let how = describe(exit);
        drain().await;
        if *stop.borrow() != Stop::Run {
            send(Event::Stopped {
                host,
                how,
                forced: false,
            });
            return Ok(());
        }
        early_exits = if ready { 0 } else { early_exits + 1 };
        if early_exits >= MAX_EARLY_EXITS {
            send(Event::Exited {
                host,
                how: how.clone(),
                restart_in: None,
            });
            return Err(HostFailure {
                name: spec.name.clone(),
                problem: format!(
                    "{} {how}, {early_exits} times in a row before it became ready",
                    spec.name
                ),
            });
        }
        if ready && started.elapsed() >= STABLE_AFTER {
            backoff = MIN_BACKOFF;
        }
        let delay = backoff;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        send(Event::Exited {
            host,
            how,
            restart_in: Some(delay),
        });
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|s| *s != Stop::Run) => {
                send(Event::Stopped { host, how: "was not restarted".into(), forced: false });
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Start the process: a host with the environment contract; output piped; in its own process
/// group (so a Ctrl-C in the terminal reaches `francis dev` only, which then stops the
/// processes in order).
fn spawn(spec: &HostSpec, launch: &Launch) -> std::io::Result<Child> {
    let mut command = Command::new(&launch.exe);
    command
        .args(&launch.args)
        .envs(launch.env.iter().map(|(k, v)| (k, v)));
    for key in &launch.env_remove {
        command.env_remove(key);
    }
    if let Role::Host { http, peer } = spec.role {
        command
            .env("FRANCIS_HOST_NAME", &spec.name)
            .env("FRANCIS_HTTP_ADDRESS", http.to_string())
            .env("FRANCIS_PEER_ADDRESS", peer.to_string());
    }
    if let Some(dir) = &launch.dir {
        command.current_dir(dir);
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if launch.no_color && std::env::var_os("NO_COLOR").is_none() {
        command.env("NO_COLOR", "1");
    }
    #[cfg(unix)]
    command.process_group(0);
    command.spawn()
}

/// Pass each line of `reader` to the view.
async fn pump(reader: impl AsyncRead + Unpin, host: usize, events: mpsc::UnboundedSender<Event>) {
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf)
                    .trim_end_matches(['\n', '\r'])
                    .to_owned();
                if events.send(Event::Log { host, line }).is_err() {
                    return;
                }
            }
        }
    }
}

/// Poll a host's `GET /status`: `None` if it does not answer; `Some(None)` if it answers
/// without a status (an app with no such route is still serving). The runtime has no HTTP
/// server: it answers when it presents its CA (`Some(None)`).
async fn check(client: &reqwest::Client, spec: &HostSpec) -> Option<Option<HostStatus>> {
    let http = match spec.role {
        Role::Host { http, .. } => http,
        Role::Runtime { address } => {
            return francis::runtime::probe_ca(&address.to_string(), RUNTIME_PROBE_TIMEOUT)
                .await
                .ok()
                .map(|_| None);
        }
    };
    let response = client
        .get(format!("http://{http}/status"))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return Some(None);
    }
    Some(response.json::<HostStatus>().await.ok())
}

/// SIGINT the host (its process group), then SIGKILL it if it is still running after `timeout`
/// or when the stop is forced. Returns how it ended and whether it had to be killed.
async fn shut_down(
    child: &mut Child,
    pid: u32,
    timeout: Duration,
    stop: &mut watch::Receiver<Stop>,
) -> (String, bool) {
    signal(pid, Signal::Interrupt);
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut watching = *stop.borrow() != Stop::Force;
    loop {
        tokio::select! {
            status = child.wait() => return (describe(status), false),
            _ = &mut deadline => break,
            changed = stop.changed(), if watching => {
                if changed.is_err() {
                    watching = false;
                } else if *stop.borrow() == Stop::Force {
                    break;
                }
            }
        }
    }
    signal(pid, Signal::Kill);
    let _ = child.start_kill();
    let status = child.wait().await;
    (describe(status), true)
}

/// The signals `francis dev` sends.
#[derive(Debug, Clone, Copy)]
pub enum Signal {
    /// SIGINT: shut down cleanly.
    Interrupt,
    /// SIGKILL.
    Kill,
}

/// Send `signal` to the process group of `pid` (each host leads its own).
pub fn signal(pid: u32, signal: Signal) {
    #[cfg(unix)]
    {
        use rustix::process::{Pid, Signal as Sig, kill_process_group};
        let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
            return;
        };
        let sig = match signal {
            Signal::Interrupt => Sig::INT,
            Signal::Kill => Sig::KILL,
        };
        let _ = kill_process_group(pid, sig);
    }
    #[cfg(not(unix))]
    let _ = (pid, signal);
}

/// "exited with code 1", "was killed by SIGKILL", ...
pub fn describe(status: std::io::Result<ExitStatus>) -> String {
    let status = match status {
        Ok(status) => status,
        Err(e) => return format!("could not be waited for ({e})"),
    };
    if let Some(code) = status.code() {
        return format!("exited with code {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            let name = match signal {
                1 => "SIGHUP",
                2 => "SIGINT",
                6 => "SIGABRT",
                9 => "SIGKILL",
                11 => "SIGSEGV",
                15 => "SIGTERM",
                _ => return format!("was killed by signal {signal}"),
            };
            return format!("was killed by {name}");
        }
    }
    format!("ended ({status})")
}
