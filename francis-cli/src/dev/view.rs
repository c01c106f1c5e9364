//! What `francis dev` shows. Each host's output lines, prefixed with its name in its own
//! colour; `francis dev`'s own messages; and a status table of the hosts (state, addresses,
//! host ID, active actors). On a terminal the table stays at the bottom and is redrawn when
//! something changes; otherwise each change is one plain line, for logs and scripts.

use std::io::Write;
use std::time::{Duration, Instant};

use anstyle::{AnsiColor, Color, Style};
use francis::HostStatus;
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
    state: State,
    status: Option<HostStatus>,
    restarts: u32,
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
    /// A view of these hosts.
    pub fn new(config: ViewConfig, hosts: &[HostSpec]) -> View {
        View {
            config,
            rows: hosts
                .iter()
                .map(|spec| Row {
                    spec: spec.clone(),
                    state: State::Starting,
                    status: None,
                    restarts: 0,
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
                lines.push(format!("{} {line}", host_prefix(rich, host, &name)));
            }
            Event::Starting { pid, attempt, .. } => {
                row.state = State::Starting;
                row.status = None;
                let what = if attempt == 1 {
                    "starting"
                } else {
                    "restarting"
                };
                lines.push(say(format!(
                    "{name} {what} (pid {pid}): http {}, peer {} (udp)",
                    row.spec.http, row.spec.peer
                )));
            }
            Event::Ready { after, .. } => {
                row.state = State::Ready;
                lines.push(say(format!(
                    "{name} ready in {:.1} s at http://{}",
                    after.as_secs_f64(),
                    row.spec.http
                )));
            }
            Event::Status { status, .. } => {
                if row.state == State::Unresponsive {
                    row.state = State::Ready;
                    lines.push(say(format!("{name} answers again")));
                }
                if let Some(status) = status {
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
                lines.push(say(format!(
                    "{name} is not answering at http://{}/status",
                    row.spec.http
                )));
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
            let first = self.rows[0].spec.http;
            lines.push(say(format!(
                "all {} hosts ready in {:.1} s. Try: curl -X POST {first}/invoke/<type>/<id>/<method> --data '<json>'; curl {first}/status. Ctrl-C stops the cluster.",
                self.rows.len(),
                self.started.elapsed().as_secs_f64()
            )));
        }
        changed
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
        let title = format!(
            "── francis dev · {} host{} · data in {} · {} ",
            self.rows.len(),
            plural(self.rows.len()),
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
        for (i, row) in self.rows.iter().enumerate() {
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
                _ => ("-".to_owned(), row.spec.peer.to_string(), "-".to_owned()),
            };
            let name = format!("{:<name_width$}", row.spec.name);
            let rest = format!(
                "  {:<15}  {:<15}  {:<15}  {:<8}  {:>6}",
                state, row.spec.http, peer, id, actors
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
                    term::paint(true, host_style(i), name_part),
                    term::paint(true, row.state.style(), state_part)
                ));
            } else {
                lines.push(line);
            }
        }
        lines
    }
}

fn host_style(host: usize) -> Style {
    Style::new()
        .fg_color(Some(Color::Ansi(HOST_COLOURS[host % HOST_COLOURS.len()])))
        .bold()
}

/// `host-1 |`, in the host's colour on a terminal.
fn host_prefix(rich: bool, host: usize, name: &str) -> String {
    term::paint(rich, host_style(host), &format!("{name} |"))
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

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(rich: bool) -> View {
        let hosts: Vec<HostSpec> = (0..2)
            .map(|i| HostSpec {
                index: i,
                name: format!("host-{}", i + 1),
                http: format!("127.0.0.1:{}", 8081 + i).parse().unwrap(),
                peer: format!("127.0.0.1:{}", 8081 + i).parse().unwrap(),
            })
            .collect();
        View::new(
            ViewConfig {
                rich,
                data_dir: ".francis/dev".into(),
            },
            &hosts,
        )
    }

    fn status(actors: usize) -> Option<HostStatus> {
        Some(HostStatus {
            host_id: "01a2326e-317f-73cb-ad9e-cbbba78b8333".into(),
            address: "127.0.0.1:8081".into(),
            active_actors: actors,
        })
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
                "francis | host-1 ready in 1.5 s at http://127.0.0.1:8081",
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
    fn ansi_is_stripped_for_alignment() {
        assert_eq!(strip_ansi("\x1b[1;36mhost-1 |\x1b[0m x"), "host-1 | x");
    }
}
