//! What `francis dev` shows. Each process's output lines, prefixed with its name in its own
//! colour (the dev runtime of `--remote` in one no host uses); `francis dev`'s own messages;
//! and a status table of the runtime and the hosts (state, addresses, host ID, active actors).
//! On a terminal the table stays at the bottom and is redrawn when something changes;
//! otherwise each change is one plain line, for logs and scripts.

use std::io::Write;
use std::time::{Duration, Instant};

use anstyle::{AnsiColor, Color, Style};
use francis::{HostStatus, Topology};
use tokio::sync::mpsc;

use super::supervisor::{Event, HostSpec};
use crate::term;

/// Colours of the host prefixes, in turn.
const HOST_COLOURS: [AnsiColor; 6] = [
    AnsiColor::Cyan,
    AnsiColor::Magenta,
    AnsiColor::Yellow,
    AnsiColor::Green,
    AnsiColor::Blue,
    AnsiColor::Red,
];
/// The colour of the runtime's prefix: a badge, unlike any host's.
const RUNTIME_STYLE: Style = Style::new()
    .fg_color(Some(Color::Ansi(AnsiColor::BrightWhite)))
    .bg_color(Some(Color::Ansi(AnsiColor::Blue)))
    .bold();
/// The spinner of hosts that are starting.
const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
/// How often the spinner turns while a host is starting.
const SPIN_EVERY: Duration = Duration::from_millis(200);
/// The tag of `francis dev`'s own lines.
const TAG: &str = "francis";

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Starting,
    Ready,
    Unresponsive,
    Restarting,
    Stopping,
    Stopped,
    Failed,
}

impl State {
    fn label(&self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Ready => "ready",
            State::Unresponsive => "not answering",
            State::Restarting => "restarting",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
            State::Failed => "failed",
        }
    }

    fn style(&self) -> Style {
        let colour = match self {
            State::Ready => AnsiColor::Green,
            State::Starting | State::Stopping => AnsiColor::Yellow,
            State::Unresponsive | State::Restarting | State::Failed => AnsiColor::Red,
            State::Stopped => return term::DIM,
        };
        Style::new().fg_color(Some(Color::Ansi(colour)))
    }
}

#[derive(Debug)]
struct Row {
    spec: HostSpec,
    /// The colour of its name.
    style: Style,
    state: State,
    status: Option<HostStatus>,
    restarts: u32,
    /// Whether it was already reported as running the other topology.
    wrong_topology: bool,
}

impl Row {
    /// What the table shows of this row, to tell whether it changed.
    fn summary(&self) -> (State, u32, Option<(String, usize)>) {
        let status = self
            .status
            .as_ref()
            .map(|s| (s.host_id.clone(), s.active_actors));
        (self.state.clone(), self.restarts, status)
    }
}

/// The view's settings.
#[derive(Debug)]
pub struct ViewConfig {
    /// Colours and a redrawn table (standard output is a terminal).
    pub rich: bool,
    /// The data directory, as shown.
    pub data_dir: String,
    /// A remote cluster: a runtime and workers (`francis dev --remote`).
    pub remote: bool,
    /// The hosts' HTTP control APIs ask for a bearer token (`--http-token`).
    pub http_token: bool,
    /// The fleet UI of the runtime's operations server (`--remote`); in a local cluster every
    /// host's control server serves it.
    pub runtime_ui: Option<String>,
}

/// The view: owns standard output while the cluster runs.
pub struct View {
    config: ViewConfig,
    rows: Vec<Row>,
    /// Lines of the table drawn at the bottom of the terminal, to erase before printing.
    footer: usize,
    spin: usize,
    started: Instant,
    announced: bool,
    out: std::io::Stdout,
}

impl View {
    /// A view of these processes (hosts, and the runtime with `--remote`).
    pub fn new(config: ViewConfig, hosts: &[HostSpec]) -> View {
        let mut next_colour = 0;
        View {
            config,
            rows: hosts
                .iter()
                .map(|spec| Row {
                    spec: spec.clone(),
                    style: if spec.is_runtime() {
                        RUNTIME_STYLE
                    } else {
                        next_colour += 1;
                        host_style(next_colour - 1)
                    },
                    state: State::Starting,
                    status: None,
                    restarts: 0,
                    wrong_topology: false,
                })
                .collect(),
            footer: 0,
            spin: 0,
            started: Instant::now(),
            announced: false,
            out: std::io::stdout(),
        }
    }

    /// Show events until every sender is gone, then leave the final table on screen.
    pub async fn run(mut self, mut events: mpsc::UnboundedReceiver<Event>) {
        let mut spin = tokio::time::interval(SPIN_EVERY);
        loop {
            let mut lines = Vec::new();
            let mut redraw = false;
            tokio::select! {
                event = events.recv() => {
                    let Some(event) = event else { break };
                    redraw |= self.apply(event, &mut lines);
                    // Take whatever else is waiting, and draw once.
                    while lines.len() < 512 {
                        match events.try_recv() {
                            Ok(event) => redraw |= self.apply(event, &mut lines),
                            Err(_) => break,
                        }
                    }
                }
                _ = spin.tick() => {
                    if self.config.rich && self.rows.iter().any(|r| matches!(r.state, State::Starting | State::Stopping)) {
                        self.spin = self.spin.wrapping_add(1);
                        redraw = true;
                    }
                }
            }
            self.show(&lines, redraw);
        }
        self.show(&[], true);
    }

    /// Apply one event: lines to print go to `lines`; returns whether the table changed.
    fn apply(&mut self, event: Event, lines: &mut Vec<String>) -> bool {
        let rich = self.config.rich;
        let tag = self.prefix_tag();
        let say = |text: String| format!("{tag} {text}");
        let host = match &event {
            Event::Log { host, .. }
            | Event::Starting { host, .. }
            | Event::Ready { host, .. }
            | Event::Status { host, .. }
            | Event::Unresponsive { host }
            | Event::Exited { host, .. }
            | Event::Stopping { host }
            | Event::Stopped { host, .. } => *host,
            Event::Notice(text) => {
                lines.push(say(text.clone()));
                return false;
            }
        };
        let Some(row) = self.rows.get_mut(host) else {
            return false;
        };
        let name = row.spec.name.clone();
        let before = row.summary();
        match event {
            Event::Log { line, .. } => {
                lines.push(format!("{} {line}", host_prefix(rich, row.style, &name)));
            }
            Event::Starting { pid, attempt, .. } => {
                row.state = State::Starting;
                row.status = None;
                let what = if attempt == 1 {
                    "starting"
                } else {
                    "restarting"
                };
                lines.push(say(match row.spec.http() {
                    Some(http) => format!(
                        "{name} {what} (pid {pid}): http {http}, peer {} (udp)",
                        row.spec.udp()
                    ),
                    None => format!("{name} {what} (pid {pid}) on {} (udp)", row.spec.udp()),
                }));
            }
            Event::Ready { after, .. } => {
                row.state = State::Ready;
                let mut at = match row.spec.http() {
                    Some(http) => format!("http://{http}"),
                    None => format!("{} (udp)", row.spec.udp()),
                };
                if let Some(ui) = fleet_ui(&self.config, &row.spec) {
                    at.push_str(&format!(", fleet UI {ui}"));
                }
                lines.push(say(format!(
                    "{name} ready in {:.1} s at {at}",
                    after.as_secs_f64()
                )));
            }
            Event::Status { status, .. } => {
                if row.state == State::Unresponsive {
                    row.state = State::Ready;
                    lines.push(say(format!("{name} answers again")));
                }
                if let Some(status) = status {
                    let expected = if self.config.remote {
                        Topology::Remote
                    } else {
                        Topology::Local
                    };
                    if status.topology != expected && !row.wrong_topology {
                        row.wrong_topology = true;
                        lines.push(say(wrong_topology(&name, status.topology)));
                    }
                    let was = row.status.as_ref().map(|s| s.active_actors);
                    // Plain output reports changes (a host starts with none).
                    if !rich && was.unwrap_or(0) != status.active_actors {
                        let n = status.active_actors;
                        lines.push(say(format!("{name} has {n} active actor{}", plural(n))));
                    }
                    row.status = Some(status);
                }
            }
            Event::Unresponsive { .. } => {
                row.state = State::Unresponsive;
                lines.push(say(match row.spec.http() {
                    Some(http) => format!("{name} is not answering at http://{http}/status"),
                    None => format!("{name} is not answering at {} (udp)", row.spec.udp()),
                }));
            }
            Event::Exited {
                how, restart_in, ..
            } => match restart_in {
                Some(delay) => {
                    row.state = State::Restarting;
                    row.restarts += 1;
                    lines.push(say(format!(
                        "{name} {how}; restarting it in {} s (restart {})",
                        delay.as_secs(),
                        row.restarts
                    )));
                }
                None => {
                    row.state = State::Failed;
                    lines.push(say(format!("{name} {how}; giving up on it")));
                }
            },
            Event::Stopping { .. } => row.state = State::Stopping,
            Event::Stopped { how, forced, .. } => {
                row.state = State::Stopped;
                lines.push(say(if forced {
                    format!("{name} did not stop in time and was killed ({how})")
                } else {
                    format!("{name} stopped ({how})")
                }));
            }
            Event::Notice(_) => {}
        }
        let changed = before != row.summary();
        if !self.announced && self.rows.iter().all(|r| r.state == State::Ready) {
            self.announced = true;
            let hosts = self.host_count();
            let noun = self.noun(hosts);
            let who = if self.config.remote {
                format!("the runtime and all {hosts} {noun}")
            } else {
                format!("all {hosts} {noun}")
            };
            let ui = self
                .rows
                .iter()
                .find_map(|r| fleet_ui(&self.config, &r.spec))
                .map(|ui| format!(" Fleet UI: {ui}."))
                .unwrap_or_default();
            let example = self
                .rows
                .iter()
                .find_map(|r| r.spec.http())
                .map(|first| {
                    let auth = if self.config.http_token {
                        " -H 'Authorization: Bearer <token>'"
                    } else {
                        ""
                    };
                    format!(" Try: curl -X POST {first}/invoke/<type>/<id>/<method> -H 'Content-Type: application/json'{auth} --data '<json>'; curl{auth} {first}/status.")
                })
                .unwrap_or_default();
            lines.push(say(format!(
                "{who} ready in {:.1} s.{ui}{example} Ctrl-C stops the cluster.",
                self.started.elapsed().as_secs_f64()
            )));
        }
        changed
    }

    /// How many hosts (workers) there are, besides the runtime.
    fn host_count(&self) -> usize {
        self.rows.iter().filter(|r| !r.spec.is_runtime()).count()
    }

    /// "host"/"hosts", or "worker"/"workers" in a remote cluster.
    fn noun(&self, n: usize) -> String {
        let noun = if self.config.remote { "worker" } else { "host" };
        format!("{noun}{}", plural(n))
    }

    fn prefix_tag(&self) -> String {
        let width = self.name_width();
        term::paint(self.config.rich, term::BOLD, &format!("{TAG:>width$} |"))
    }

    fn name_width(&self) -> usize {
        self.rows
            .iter()
            .map(|r| r.spec.name.len())
            .max()
            .unwrap_or(0)
            .max(TAG.len())
    }

    /// Print `lines` and, on a terminal, redraw the table below them.
    fn show(&mut self, lines: &[String], redraw: bool) {
        if lines.is_empty() && !(redraw && self.config.rich) {
            return;
        }
        let mut text = String::new();
        if self.config.rich && self.footer > 0 {
            // Back to the first line of the table, and erase it.
            text.push_str(&format!("\r\x1b[{}A\x1b[J", self.footer));
        }
        let width = self.name_width();
        for line in lines {
            // Host lines are "<name> | ...": align the bars.
            text.push_str(&align(line, width));
            text.push('\n');
        }
        if self.config.rich {
            let table = self.table();
            self.footer = table.len();
            for line in table {
                text.push_str(&line);
                text.push('\n');
            }
        }
        let mut out = self.out.lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    /// The status table, one string per line, each fitting the terminal's width.
    fn table(&self) -> Vec<String> {
        let rich = self.config.rich;
        let width = term::width().saturating_sub(1);
        let over = self
            .rows
            .iter()
            .all(|r| matches!(r.state, State::Stopped | State::Failed));
        let hosts = self.host_count();
        let what = if self.config.remote {
            format!("--remote · runtime + {hosts} {}", self.noun(hosts))
        } else {
            format!("· {hosts} {}", self.noun(hosts))
        };
        let title = format!(
            "── francis dev {what} · data in {} · {} ",
            self.config.data_dir,
            if over { "stopped" } else { "Ctrl-C to stop" }
        );
        let mut lines = vec![term::paint(
            rich,
            term::DIM,
            &fit(&format!("{title:─<width$}"), width),
        )];
        let name_width = self
            .rows
            .iter()
            .map(|r| r.spec.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let header = format!(
            "{:<name_width$}  {:<15}  {:<15}  {:<15}  {:<8}  {:>6}",
            "HOST", "STATE", "HTTP", "PEER (UDP)", "HOST ID", "ACTORS"
        );
        lines.push(term::paint(rich, term::BOLD, &fit(&header, width)));
        for row in &self.rows {
            let mut state = row.state.label().to_owned();
            if matches!(row.state, State::Starting | State::Stopping) {
                state.push(' ');
                state.push(SPINNER[self.spin % SPINNER.len()]);
            }
            if row.restarts > 0 && !matches!(row.state, State::Stopped | State::Stopping) {
                state.push_str(&format!(" ({}×)", row.restarts));
            }
            // The peer address as the host registered it, once it reports it.
            let live = matches!(
                row.state,
                State::Ready | State::Unresponsive | State::Stopping
            );
            let (id, peer, actors) = match &row.status {
                Some(s) if live => (
                    short_id(&s.host_id),
                    s.address.clone(),
                    s.active_actors.to_string(),
                ),
                _ => ("-".to_owned(), row.spec.udp().to_string(), "-".to_owned()),
            };
            let http = row
                .spec
                .http()
                .map_or_else(|| "-".to_owned(), |http| http.to_string());
            let name = format!("{:<name_width$}", row.spec.name);
            let rest = format!(
                "  {:<15}  {:<15}  {:<15}  {:<8}  {:>6}",
                state, http, peer, id, actors
            );
            let line = fit(&format!("{name}{rest}"), width);
            if rich {
                // Colour the name and the state, within what fits.
                let (name_part, rest_part) = line.split_at(
                    line.char_indices()
                        .nth(name_width)
                        .map_or(line.len(), |(i, _)| i),
                );
                let state_len = 2 + state.chars().count();
                let split = rest_part
                    .char_indices()
                    .nth(state_len)
                    .map_or(rest_part.len(), |(i, _)| i);
                let (state_part, tail) = rest_part.split_at(split);
                lines.push(format!(
                    "{}{}{tail}",
                    term::paint(true, row.style, name_part),
                    term::paint(true, row.state.style(), state_part)
                ));
            } else {
                lines.push(line);
            }
        }
        lines
    }
}

/// Where the fleet UI of `spec` is: every host's control server in a local cluster, the
/// runtime's operations server in a remote one (a worker's answers no cluster state).
fn fleet_ui(config: &ViewConfig, spec: &HostSpec) -> Option<String> {
    if spec.is_runtime() {
        config.runtime_ui.clone()
    } else if config.remote {
        None
    } else {
        spec.http().map(|http| format!("http://{http}/ui"))
    }
}

fn host_style(host: usize) -> Style {
    Style::new()
        .fg_color(Some(Color::Ansi(HOST_COLOURS[host % HOST_COLOURS.len()])))
        .bold()
}

/// `host-1 |`, in the host's colour on a terminal.
fn host_prefix(rich: bool, style: Style, name: &str) -> String {
    term::paint(rich, style, &format!("{name} |"))
}

/// Right-align the `<name> |` prefix of a line to `width` (prefixes are not yet padded).
fn align(line: &str, width: usize) -> String {
    let visible_prefix = strip_ansi(line)
        .split(" |")
        .next()
        .map(str::len)
        .unwrap_or(0);
    if visible_prefix < width {
        format!("{}{line}", " ".repeat(width - visible_prefix))
    } else {
        line.to_owned()
    }
}

/// `text` without ANSI escape sequences.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The last 8 characters of a host ID: the random end of a UUIDv7 (its start is a timestamp,
/// alike for hosts started together).
fn short_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    chars[chars.len().saturating_sub(8)..].iter().collect()
}

/// `text` cut to `width` characters.
fn fit(text: &str, width: usize) -> String {
    text.chars().take(width).collect()
}

/// What to say of a host that runs the other topology than the one `francis dev` started.
fn wrong_topology(name: &str, topology: Topology) -> String {
    match topology {
        Topology::Local => format!(
            "warning: {name} runs the local topology: it ignores the runtime and keeps its own store, \
             so it is not part of this cluster. francis dev --remote is for workers that join a \
             runtime (Host::remote(), as in the remote-worker template); run this app with francis dev."
        ),
        Topology::Remote => format!(
            "warning: {name} joined a runtime (the remote topology), not the hosts' shared store. \
             Run workers with francis dev --remote."
        ),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::supervisor::Role;

    fn view(rich: bool) -> View {
        let hosts: Vec<HostSpec> = (0..2)
            .map(|i| HostSpec {
                index: i,
                name: format!("host-{}", i + 1),
                role: Role::Host {
                    http: format!("127.0.0.1:{}", 8081 + i).parse().unwrap(),
                    peer: format!("127.0.0.1:{}", 8081 + i).parse().unwrap(),
                },
            })
            .collect();
        View::new(
            ViewConfig {
                rich,
                data_dir: ".francis/dev".into(),
                remote: false,
                http_token: false,
                runtime_ui: None,
            },
            &hosts,
        )
    }

    /// A runtime and two workers.
    fn remote_view() -> View {
        let mut specs = vec![HostSpec {
            index: 0,
            name: "runtime".into(),
            role: Role::Runtime {
                address: "127.0.0.1:7400".parse().unwrap(),
            },
        }];
        specs.extend((1..3).map(|i| HostSpec {
            index: i,
            name: format!("worker-{i}"),
            role: Role::Host {
                http: format!("127.0.0.1:{}", 8080 + i).parse().unwrap(),
                peer: format!("127.0.0.1:{}", 8080 + i).parse().unwrap(),
            },
        }));
        View::new(
            ViewConfig {
                rich: false,
                data_dir: ".francis/dev-remote".into(),
                remote: true,
                http_token: false,
                runtime_ui: Some("http://127.0.0.1:7400/ui".into()),
            },
            &specs,
        )
    }

    fn status(actors: usize) -> Option<HostStatus> {
        Some(HostStatus {
            host_id: "01a2326e-317f-73cb-ad9e-cbbba78b8333".into(),
            address: "127.0.0.1:8081".into(),
            active_actors: actors,
            topology: Topology::Local,
            profile: francis::Profile::Dev,
            unreachable_peers: Vec::new(),
        })
    }

    #[test]
    fn a_host_of_the_other_topology_is_reported_once_with_what_to_run() {
        for (mut v, topology, says) in [
            (
                remote_view(),
                Topology::Local,
                "run this app with francis dev.",
            ),
            (
                view(false),
                Topology::Remote,
                "Run workers with francis dev --remote.",
            ),
        ] {
            let host = usize::from(v.config.remote);
            let mut lines = Vec::new();
            for _ in 0..2 {
                let mut other = status(1).unwrap();
                other.topology = topology;
                v.apply(
                    Event::Status {
                        host,
                        status: Some(other),
                    },
                    &mut lines,
                );
            }
            let warnings: Vec<_> = lines.iter().filter(|l| l.contains("warning:")).collect();
            assert_eq!(warnings.len(), 1, "{lines:?}");
            assert!(warnings[0].ends_with(says), "{}", warnings[0]);
        }
        // The expected topology: no warning.
        let mut v = view(false);
        let mut lines = Vec::new();
        v.apply(
            Event::Status {
                host: 0,
                status: status(1),
            },
            &mut lines,
        );
        assert!(!lines.iter().any(|l| l.contains("warning:")), "{lines:?}");
    }

    #[test]
    fn plain_output_has_one_line_per_change() {
        let mut v = view(false);
        let mut lines = Vec::new();
        v.apply(
            Event::Starting {
                host: 0,
                pid: 42,
                attempt: 1,
            },
            &mut lines,
        );
        v.apply(
            Event::Log {
                host: 0,
                line: "hello".into(),
            },
            &mut lines,
        );
        v.apply(
            Event::Ready {
                host: 0,
                after: Duration::from_millis(1500),
            },
            &mut lines,
        );
        assert!(v.apply(
            Event::Status {
                host: 0,
                status: status(0)
            },
            &mut lines
        ));
        assert!(
            !v.apply(
                Event::Status {
                    host: 0,
                    status: status(0)
                },
                &mut lines
            ),
            "no change"
        );
        assert!(v.apply(
            Event::Status {
                host: 0,
                status: status(2)
            },
            &mut lines
        ));
        v.apply(
            Event::Exited {
                host: 0,
                how: "exited with code 1".into(),
                restart_in: Some(Duration::from_secs(1)),
            },
            &mut lines,
        );
        assert_eq!(
            lines,
            [
                "francis | host-1 starting (pid 42): http 127.0.0.1:8081, peer 127.0.0.1:8081 (udp)",
                "host-1 | hello",
                "francis | host-1 ready in 1.5 s at http://127.0.0.1:8081, fleet UI http://127.0.0.1:8081/ui",
                "francis | host-1 has 2 active actors",
                "francis | host-1 exited with code 1; restarting it in 1 s (restart 1)",
            ]
        );
        assert_eq!(align("host-1 | hello", 7), " host-1 | hello");
    }

    #[test]
    fn the_table_shows_state_addresses_and_actors() {
        let mut v = view(false);
        let mut lines = Vec::new();
        v.apply(
            Event::Ready {
                host: 0,
                after: Duration::ZERO,
            },
            &mut lines,
        );
        v.apply(
            Event::Status {
                host: 0,
                status: status(3),
            },
            &mut lines,
        );
        let table = v.table();
        assert!(
            table[0].starts_with("── francis dev · 2 hosts · data in .francis/dev"),
            "{}",
            table[0]
        );
        assert!(table[1].starts_with("HOST    STATE"), "{}", table[1]);
        let row: Vec<&str> = table[2].split_whitespace().collect();
        assert_eq!(
            row,
            [
                "host-1",
                "ready",
                "127.0.0.1:8081",
                "127.0.0.1:8081",
                "a78b8333",
                "3"
            ]
        );
        assert!(table[3].starts_with("host-2  starting"), "{}", table[3]);
    }

    #[test]
    fn every_host_names_its_fleet_ui_and_the_summary_names_one() {
        let mut v = view(false);
        let mut lines = Vec::new();
        for host in 0..2 {
            v.apply(
                Event::Ready {
                    host,
                    after: Duration::ZERO,
                },
                &mut lines,
            );
        }
        assert!(
            lines[0].ends_with("fleet UI http://127.0.0.1:8081/ui"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].ends_with("fleet UI http://127.0.0.1:8082/ui"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].contains("all 2 hosts ready in")
                && lines[2].contains(" Fleet UI: http://127.0.0.1:8081/ui. Try: curl"),
            "{}",
            lines[2]
        );
    }

    #[test]
    fn ansi_is_stripped_for_alignment() {
        assert_eq!(strip_ansi("\x1b[1;36mhost-1 |\x1b[0m x"), "host-1 | x");
    }

    #[test]
    fn the_runtime_has_its_own_row_prefix_and_messages() {
        let mut v = remote_view();
        let mut lines = Vec::new();
        v.apply(
            Event::Starting {
                host: 0,
                pid: 7,
                attempt: 1,
            },
            &mut lines,
        );
        v.apply(
            Event::Log {
                host: 0,
                line: "runtime listening".into(),
            },
            &mut lines,
        );
        for host in 0..3 {
            v.apply(
                Event::Ready {
                    host,
                    after: Duration::from_millis(500),
                },
                &mut lines,
            );
        }
        v.apply(
            Event::Exited {
                host: 0,
                how: "was killed by SIGKILL".into(),
                restart_in: Some(Duration::from_secs(1)),
            },
            &mut lines,
        );
        assert_eq!(
            lines[0],
            " francis | runtime starting (pid 7) on 127.0.0.1:7400 (udp)"
        );
        assert_eq!(lines[1], "runtime | runtime listening");
        assert_eq!(
            lines[2],
            " francis | runtime ready in 0.5 s at 127.0.0.1:7400 (udp), fleet UI http://127.0.0.1:7400/ui"
        );
        // A worker's control server answers no cluster state: its UI is not offered.
        assert!(
            lines[3].contains("worker-1 ready in") && !lines[3].contains("/ui"),
            "{}",
            lines[3]
        );
        assert!(
            lines[5].starts_with(" francis | the runtime and all 2 workers ready in ")
                && lines[5].contains("Fleet UI: http://127.0.0.1:7400/ui.")
                && lines[5].contains("curl -X POST 127.0.0.1:8081/invoke/"),
            "{}",
            lines[5]
        );
        assert_eq!(
            lines[6],
            " francis | runtime was killed by SIGKILL; restarting it in 1 s (restart 1)"
        );
        let table = v.table();
        assert!(
            table[0].starts_with(
                "── francis dev --remote · runtime + 2 workers · data in .francis/dev-remote"
            ),
            "{}",
            table[0]
        );
        let row: Vec<&str> = table[2].split_whitespace().collect();
        assert_eq!(
            row,
            [
                "runtime",
                "restarting",
                "(1×)",
                "-",
                "127.0.0.1:7400",
                "-",
                "-"
            ]
        );
        assert!(table[3].starts_with("worker-1  ready"), "{}", table[3]);
        // The runtime's prefix is a colour no host has.
        let styles: Vec<Style> = v.rows.iter().map(|r| r.style).collect();
        assert_eq!(styles[0], RUNTIME_STYLE);
        assert_eq!(styles[1], host_style(0));
        assert_ne!(styles[1], styles[2]);
    }
}
