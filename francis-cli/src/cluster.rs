//! `francis cluster status`: the cluster as one host or runtime sees it. Reads
//! `GET /api/cluster/state` from the node's operations HTTP server, checks the contract's
//! major version, and prints the document as JSON (`--json`) or as tables: the nodes, the
//! links the node has called over, and the newest events. The tables come from [`render`], a
//! pure function of the state.

use std::time::Duration;

use anstyle::{AnsiColor, Color, Style};
use francis::cluster::{
    API_MAJOR, ClusterState, EdgeState, Lifecycle, Node, NodeKind, check_api_version,
};

use crate::exit::{Code, Failure};
use crate::server::{Server, ServerArgs};
use crate::term;

/// The path of the cluster state on an operations HTTP server.
const STATE_PATH: &str = "/api/cluster/state";

/// How many timeline events the tables show (the newest).
const SHOWN_EVENTS: usize = 10;

/// Arguments of `francis cluster`.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub action: ClusterAction,
}

/// The `francis cluster` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ClusterAction {
    /// Show the cluster as one host or runtime sees it: its nodes, the links it has called
    /// over, and recent events.
    #[command(after_help = "Examples:
  francis cluster status                                  # a host's control server on this machine
  francis cluster status --url http://127.0.0.1:8444      # a runtime (its http.bind)
  FRANCIS_HTTP_TOKEN=... francis cluster status --url http://10.0.0.5:8080 --json

Lifecycle: online (heartbeating on time), stale (heartbeat late), partitioned (the store counts it
healthy but this node's calls to it keep failing), offline (past the health-check deadline, or gone).")]
    Status(StatusArgs),
    /// Drain hosts: no new actors go to them, and their actors are deactivated so they move.
    #[command(after_help = "Examples:
  francis cluster drain 0193f7c2-...                 # preflight, then drain
  francis cluster drain 0193f7c2-... --dry-run       # preflight only: what would move

Every action runs preflight first and prints its decision per target, with how many actors it
touches; then it runs, and prints each target's audit ID. Needs the operator role.")]
    Drain(crate::actions::HostsArgs),
    /// Let drained hosts take new actors again.
    Resume(crate::actions::HostsArgs),
    /// Deactivate one actor (`<TYPE> <ID>`) or every active actor of a type (`<TYPE>`); they
    /// activate again on their next call.
    Halt(crate::actions::HaltArgs),
    /// Delete one alarm of an actor.
    DeleteAlarm(crate::actions::DeleteAlarmArgs),
    /// Change the log filter of hosts while they run (admin role).
    LogLevel(crate::actions::LogLevelArgs),
    /// List the alarm occurrences that failed on every attempt, or run some again (--replay).
    DeadLetters(crate::actions::DeadLettersArgs),
    /// List the audit trail of actions, newest first.
    Audit(crate::actions::AuditArgs),
}

/// Arguments of `francis cluster status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Print the state document as JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// `francis cluster …`.
pub fn run(args: ClusterArgs) -> anyhow::Result<()> {
    match args.action {
        ClusterAction::Status(args) => status(&args),
        ClusterAction::Drain(args) => crate::actions::drain(&args),
        ClusterAction::Resume(args) => crate::actions::resume(&args),
        ClusterAction::Halt(args) => crate::actions::halt(&args),
        ClusterAction::DeleteAlarm(args) => crate::actions::delete_alarm(&args),
        ClusterAction::LogLevel(args) => crate::actions::log_level(&args),
        ClusterAction::DeadLetters(args) => crate::actions::dead_letters(&args),
        ClusterAction::Audit(args) => crate::actions::audit(&args),
    }
}

fn status(args: &StatusArgs) -> anyhow::Result<()> {
    let server = Server::new(&args.server)?;
    let endpoint = server.url(STATE_PATH);
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let body = tokio.block_on(server.get(STATE_PATH))?;
    let document = read_document(&endpoint, &body)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&document)?);
        return Ok(());
    }
    let state: ClusterState = serde_json::from_value(document).map_err(|e| {
        Failure::new(
            Code::Failed,
            format!(
                "the cluster state from {endpoint} does not have the shape this francis reads: {e}"
            ),
        )
        .fix(
            "use a francis of the same version as the server, or read the raw document with --json",
        )
    })?;
    print!("{}", render(&state, term::stdout_is_rich()));
    Ok(())
}

/// The answer as a JSON document of a contract version this build reads.
fn read_document(endpoint: &str, body: &str) -> anyhow::Result<serde_json::Value> {
    let not_state = |problem: String| {
        Failure::new(Code::Failed, problem).fix(
            "check that --url is a Francis host's control server or a runtime's operations server",
        )
    };
    let document: serde_json::Value = serde_json::from_str(body).map_err(|_| {
        let start: String = body.trim().chars().take(60).collect();
        not_state(format!(
            "the answer of {endpoint} is not JSON (it starts with {start:?})"
        ))
    })?;
    let Some(version) = document.get("api_version").and_then(|v| v.as_str()) else {
        return Err(not_state(format!(
            "the answer of {endpoint} is not a cluster state: it has no api_version"
        ))
        .into());
    };
    check_api_version(version).map_err(|e| {
        Failure::new(
            Code::Failed,
            format!("the cluster state from {endpoint} cannot be read: {e}"),
        )
        .fix(format!(
            "use a francis whose cluster state contract is {version} (this one reads {API_MAJOR}.x), or read the raw document with --json"
        ))
    })?;
    Ok(document)
}

/// The state as text: a header, then the NODES, EDGES and TIMELINE tables, coloured when
/// `rich`.
pub fn render(state: &ClusterState, rich: bool) -> String {
    let mut out = String::new();
    let context = &state.context;
    let me = &context.answered_by;
    let caller = match &context.caller {
        Some(caller) => format!("{} ({})", caller.principal, name(&caller.role)),
        None => "anonymous".to_owned(),
    };
    out.push_str(&format!(
        "answered by {} {} ({}), profile {}, caller {caller}\n",
        name(&me.kind),
        me.id,
        me.address,
        context.profile
    ));
    out.push_str(&summary(&state.nodes));
    out.push('\n');

    out.push_str(&format!("\n{}\n", term::paint(rich, term::BOLD, "NODES")));
    let rows = state
        .nodes
        .iter()
        .map(|node| {
            vec![
                Cell::plain(if node.is_self {
                    format!("{} (self)", node.id)
                } else {
                    node.id.clone()
                }),
                Cell::plain(name(&node.kind)),
                Cell::plain(node.address.clone()),
                Cell::styled(
                    if node.draining {
                        format!("{} (draining)", name(&node.lifecycle))
                    } else {
                        name(&node.lifecycle)
                    },
                    lifecycle_style(node.lifecycle),
                ),
                if node.healthy {
                    Cell::plain("yes")
                } else {
                    Cell::styled("no", Some(red()))
                },
                Cell::plain(match node.kind {
                    NodeKind::Host => node.actors_total.to_string(),
                    _ => "-".to_owned(),
                }),
                Cell::plain(match node.kind {
                    NodeKind::Host => node.alarms_due.to_string(),
                    _ => "-".to_owned(),
                }),
                Cell::plain(node.version.clone().unwrap_or_else(|| "-".to_owned())),
                Cell::plain(heartbeat(state, node)),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            ("ID", Align::Left),
            ("KIND", Align::Left),
            ("ADDRESS", Align::Left),
            ("LIFECYCLE", Align::Left),
            ("HEALTHY", Align::Left),
            ("ACTORS", Align::Right),
            ("ALARMS DUE", Align::Right),
            ("VERSION", Align::Left),
            ("HEARTBEAT AGE", Align::Right),
        ],
        rows,
        rich,
    ));

    let edges_title = format!("EDGES from {}", me.id);
    out.push_str(&format!(
        "\n{}\n",
        term::paint(rich, term::BOLD, &edges_title)
    ));
    if state.edges.is_empty() {
        out.push_str("(no calls to other nodes yet)\n");
    } else {
        let rows = state
            .edges
            .iter()
            .map(|edge| {
                vec![
                    Cell::plain(edge.to.clone()),
                    Cell::styled(name(&edge.state), edge_style(edge.state)),
                    Cell::plain(edge.latency_p95_ms.map_or("-".to_owned(), millis)),
                    Cell::plain(edge.calls.to_string()),
                    Cell::plain(edge.errors.to_string()),
                    Cell::plain(
                        edge.last_success_ms
                            .map_or("-".to_owned(), |at| ago(state.generated_at_ms, at)),
                    ),
                    Cell::plain(
                        edge.last_error
                            .as_deref()
                            .map_or("-".to_owned(), |e| shorten(e, 60)),
                    ),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                ("TO", Align::Left),
                ("STATE", Align::Left),
                ("P95", Align::Right),
                ("CALLS", Align::Right),
                ("ERRORS", Align::Right),
                ("LAST SUCCESS", Align::Right),
                ("LAST ERROR", Align::Left),
            ],
            rows,
            rich,
        ));
    }

    let shown = state.timeline.len().min(SHOWN_EVENTS);
    let timeline_title = if shown < state.timeline.len() {
        format!("TIMELINE ({shown} newest of {})", state.timeline.len())
    } else {
        "TIMELINE".to_owned()
    };
    out.push_str(&format!(
        "\n{}\n",
        term::paint(rich, term::BOLD, &timeline_title)
    ));
    if state.timeline.is_empty() {
        out.push_str("(no recent events)\n");
    } else {
        let rows = state.timeline[..shown]
            .iter()
            .map(|event| {
                vec![
                    Cell::plain(ago(state.generated_at_ms, event.at_ms)),
                    Cell::plain(name(&event.kind)),
                    Cell::plain(event.subject.clone()),
                    Cell::plain(event.detail.clone()),
                    Cell::plain(event.audit_id.clone().unwrap_or_else(|| "-".to_owned())),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                ("WHEN", Align::Right),
                ("EVENT", Align::Left),
                ("SUBJECT", Align::Left),
                ("DETAIL", Align::Left),
                ("AUDIT ID", Align::Left),
            ],
            rows,
            rich,
        ));
    }
    out
}

/// `3 nodes: 2 online, 1 offline`.
fn summary(nodes: &[Node]) -> String {
    let counts: Vec<String> = [
        Lifecycle::Online,
        Lifecycle::Stale,
        Lifecycle::Partitioned,
        Lifecycle::Offline,
    ]
    .iter()
    .filter_map(|&lifecycle| {
        let n = nodes.iter().filter(|n| n.lifecycle == lifecycle).count();
        (n > 0).then(|| format!("{n} {}", name(&lifecycle)))
    })
    .collect();
    let noun = if nodes.len() == 1 { "node" } else { "nodes" };
    if counts.is_empty() {
        format!("{} {noun}", nodes.len())
    } else {
        format!("{} {noun}: {}", nodes.len(), counts.join(", "))
    }
}

/// The HEARTBEAT AGE cell: the heartbeat's age, or when a departed host left.
fn heartbeat(state: &ClusterState, node: &Node) -> String {
    match (node.heartbeat_age_ms, node.left_at_ms) {
        (Some(age), _) => term::duration_text(Duration::from_millis(age)),
        (None, Some(left)) => format!("left {}", ago(state.generated_at_ms, left)),
        (None, None) => "-".to_owned(),
    }
}

/// The JSON name of a contract value (`same_cluster_ca`, `host_declared_dead`).
fn name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => "?".to_owned(),
    }
}

/// How long before `now_ms` `at_ms` was: `12s ago` (`0ms ago` for the future).
fn ago(now_ms: i64, at_ms: i64) -> String {
    let age = u64::try_from(now_ms.saturating_sub(at_ms)).unwrap_or(0);
    format!("{} ago", term::duration_text(Duration::from_millis(age)))
}

/// A latency: `0.42ms`, `1.5ms`, `250ms`.
fn millis(ms: f64) -> String {
    if ms < 1.0 {
        format!("{ms:.2}ms")
    } else if ms < 100.0 {
        format!("{ms:.1}ms")
    } else {
        format!("{ms:.0}ms")
    }
}

/// `text` cut to `max` characters, with `...` when cut.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let kept: String = text.chars().take(max.saturating_sub(3)).collect();
        format!("{kept}...")
    }
}

fn red() -> Style {
    Style::new().fg_color(Some(Color::Ansi(AnsiColor::Red)))
}

fn lifecycle_style(lifecycle: Lifecycle) -> Option<Style> {
    Some(match lifecycle {
        Lifecycle::Online => term::GREEN,
        Lifecycle::Stale => Style::new().fg_color(Some(Color::Ansi(AnsiColor::Yellow))),
        _ => red(),
    })
}

fn edge_style(state: EdgeState) -> Option<Style> {
    Some(match state {
        EdgeState::Up => term::GREEN,
        EdgeState::Degraded => Style::new().fg_color(Some(Color::Ansi(AnsiColor::Yellow))),
        EdgeState::Down => red(),
        _ => term::DIM,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
}

/// A table cell: its text, and its colour when the output is rich.
struct Cell {
    text: String,
    style: Option<Style>,
}

impl Cell {
    fn plain(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            style: None,
        }
    }

    fn styled(text: impl Into<String>, style: Option<Style>) -> Cell {
        Cell {
            text: text.into(),
            style,
        }
    }
}

/// Columns two spaces apart, each as wide as its widest cell; a bold header line when `rich`;
/// no trailing spaces.
fn table(columns: &[(&str, Align)], rows: Vec<Vec<Cell>>, rich: bool) -> String {
    let mut widths: Vec<usize> = columns.iter().map(|(h, _)| h.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.text.chars().count());
        }
    }
    let line = |cells: Vec<(String, Option<Style>)>| {
        let last = cells.len().saturating_sub(1);
        let mut text = String::new();
        for (i, ((cell, style), (&width, (_, align)))) in cells
            .into_iter()
            .zip(widths.iter().zip(columns))
            .enumerate()
        {
            let pad = " ".repeat(width.saturating_sub(cell.chars().count()));
            let painted = match style {
                Some(style) => term::paint(rich, style, &cell),
                None => cell,
            };
            match align {
                Align::Left if i == last => text.push_str(&painted),
                Align::Left => {
                    text.push_str(&painted);
                    text.push_str(&pad);
                }
                Align::Right => {
                    text.push_str(&pad);
                    text.push_str(&painted);
                }
            }
            if i != last {
                text.push_str("  ");
            }
        }
        text.truncate(text.trim_end().len());
        text.push('\n');
        text
    };
    let mut out = line(
        columns
            .iter()
            .map(|(h, _)| ((*h).to_owned(), Some(term::BOLD)))
            .collect(),
    );
    for row in rows {
        out.push_str(&line(row.into_iter().map(|c| (c.text, c.style)).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use francis::cluster::{
        Caller, DepartedHost, Departure, EventKind, HostObservation, LinkObservation, NodeRef,
        Observations, Role, RuntimeObservation, Thresholds, TimelineEvent, compute,
    };

    use super::*;
    use crate::exit::failure_of;

    const NOW: i64 = 1_700_000_000_000;

    /// A runtime's view of two hosts, one partitioned, and one that was declared dead.
    fn example() -> ClusterState {
        let mut obs = Observations::new(
            NOW,
            NodeRef::new(NodeKind::Runtime, "runtime", "10.0.0.9:7400"),
            "prod",
        );
        obs.caller = Some(Caller::new("ops", Role::Viewer));
        obs.runtimes.push(RuntimeObservation {
            id: "runtime".into(),
            address: "10.0.0.9:7400".into(),
            version: Some("0.1.0".into()),
            ..RuntimeObservation::default()
        });
        obs.hosts.push(HostObservation {
            id: "h-a".into(),
            address: "10.0.0.1:7571".into(),
            version: Some("0.1.0".into()),
            last_heartbeat_ms: NOW - 1_500,
            registered_healthy: true,
            actor_counts: BTreeMap::from([("counter".into(), 12), ("order".into(), 3)]),
            alarms_due: 2,
            draining: false,
            trusted: Some(true),
        });
        obs.hosts.push(HostObservation {
            id: "h-b".into(),
            address: "10.0.0.2:7571".into(),
            version: None,
            last_heartbeat_ms: NOW - 12_000,
            registered_healthy: true,
            actor_counts: BTreeMap::new(),
            alarms_due: 0,
            draining: true,
            trusted: None,
        });
        obs.recent_departures.push(DepartedHost {
            id: "h-c".into(),
            address: "10.0.0.3:7571".into(),
            left_at_ms: NOW - 95_000,
            how: Departure::DeclaredDead,
        });
        obs.links.push(LinkObservation {
            to_host_id: Some("h-a".into()),
            to_address: "10.0.0.1:7571".into(),
            calls: 120,
            errors: 0,
            consecutive_failures: 0,
            last_success_ms: Some(NOW - 250),
            latency_samples_ms: vec![0.8, 1.2, 2.4],
            ..LinkObservation::default()
        });
        obs.links.push(LinkObservation {
            to_host_id: Some("h-b".into()),
            to_address: "10.0.0.2:7571".into(),
            calls: 9,
            errors: 4,
            consecutive_failures: 4,
            last_success_ms: Some(NOW - 65_000),
            last_error: Some("connection refused".into()),
            ..LinkObservation::default()
        });
        obs.events.push(
            TimelineEvent::new(
                NOW - 3_000,
                EventKind::AdminAction,
                "h-b",
                "drain requested",
            )
            .with_audit_id("au-7"),
        );
        compute(&obs, &Thresholds::default())
    }

    #[test]
    fn the_tables_show_nodes_edges_and_events() {
        let text = render(&example(), false);
        assert_eq!(
            text,
            "\
answered by runtime runtime (10.0.0.9:7400), profile prod, caller ops (viewer)
4 nodes: 2 online, 1 partitioned, 1 offline

NODES
ID              KIND     ADDRESS        LIFECYCLE               HEALTHY  ACTORS  ALARMS DUE  VERSION   HEARTBEAT AGE
runtime (self)  runtime  10.0.0.9:7400  online                  yes           -           -  0.1.0                 -
h-a             host     10.0.0.1:7571  online                  yes          15           2  0.1.0              1.5s
h-b             host     10.0.0.2:7571  partitioned (draining)  yes           0           0  -                   12s
h-c             host     10.0.0.3:7571  offline                 no            0           0  -        left 1m35s ago

EDGES from runtime
TO   STATE    P95  CALLS  ERRORS  LAST SUCCESS  LAST ERROR
h-a  up     2.4ms    120       0     250ms ago  -
h-b  down       -      9       4     1m05s ago  connection refused

TIMELINE
     WHEN  EVENT               SUBJECT  DETAIL                                                           AUDIT ID
 3.0s ago  admin_action        h-b      drain requested                                                  au-7
1m35s ago  host_declared_dead  h-c      declared dead: its heartbeats stopped (it was at 10.0.0.3:7571)  -
"
        );
    }

    #[test]
    fn rich_tables_colour_the_states_and_align_like_plain_ones() {
        let state = example();
        let rich = render(&state, true);
        assert!(rich.contains(&term::paint(true, term::GREEN, "online")));
        assert!(rich.contains(&term::paint(true, red(), "partitioned (draining)")));
        assert!(rich.contains(&term::paint(true, term::BOLD, "NODES")));
        assert_eq!(strip_ansi(&rich), render(&state, false));
    }

    fn strip_ansi(text: &str) -> String {
        let mut out = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn a_lone_host_without_links_or_events_says_so() {
        let mut obs = Observations::new(
            NOW,
            NodeRef::new(NodeKind::Host, "h-1", "127.0.0.1:7571"),
            "dev",
        );
        obs.hosts.push(HostObservation {
            id: "h-1".into(),
            address: "127.0.0.1:7571".into(),
            last_heartbeat_ms: NOW - 400,
            registered_healthy: true,
            ..HostObservation::default()
        });
        let text = render(&compute(&obs, &Thresholds::default()), false);
        assert_eq!(
            text,
            "\
answered by host h-1 (127.0.0.1:7571), profile dev, caller anonymous
1 node: 1 online

NODES
ID          KIND  ADDRESS         LIFECYCLE  HEALTHY  ACTORS  ALARMS DUE  VERSION  HEARTBEAT AGE
h-1 (self)  host  127.0.0.1:7571  online     yes           0           0  -                400ms

EDGES from h-1
(no calls to other nodes yet)

TIMELINE
(no recent events)
"
        );
    }

    #[test]
    fn only_the_ten_newest_events_are_shown() {
        let mut obs = Observations::new(
            NOW,
            NodeRef::new(NodeKind::Runtime, "runtime", "10.0.0.9:7400"),
            "dev",
        );
        for i in 0..25 {
            obs.events.push(TimelineEvent::new(
                NOW - 1_000 * (25 - i),
                EventKind::PlacementTakenOver,
                format!("counter/{i}"),
                "placed on h-2",
            ));
        }
        let text = render(&compute(&obs, &Thresholds::default()), false);
        assert!(text.contains("TIMELINE (10 newest of 25)\n"), "{text}");
        assert!(text.contains("counter/24"));
        assert!(text.contains("counter/15"));
        assert!(!text.contains("counter/14"));
    }

    #[test]
    fn durations_read_for_people() {
        for (ms, text) in [
            (0, "0ms"),
            (999, "999ms"),
            (1_000, "1.0s"),
            (9_999, "9.9s"),
            (10_000, "10s"),
            (59_999, "59s"),
            (60_000, "1m00s"),
            (3_599_999, "59m59s"),
            (3_600_000, "1h00m"),
            (86_399_999, "23h59m"),
            (86_400_000, "1d00h"),
        ] {
            assert_eq!(term::duration_text(Duration::from_millis(ms)), text, "{ms}");
        }
        assert_eq!(ago(NOW, NOW + 5), "0ms ago", "the future is now");
        assert_eq!(millis(0.4242), "0.42ms");
        assert_eq!(millis(12.34), "12.3ms");
        assert_eq!(millis(250.4), "250ms");
        assert_eq!(shorten("abcdef", 5), "ab...");
        assert_eq!(shorten("abcde", 5), "abcde");
    }

    #[test]
    fn only_json_cluster_states_of_major_version_1_are_read() {
        let url = "http://x/api/cluster/state";
        let document = read_document(url, r#"{"api_version": "1.7", "extra": true}"#).unwrap();
        assert_eq!(
            document["extra"], true,
            "unknown fields are kept for --json"
        );

        let (code, problem, _) = failure_of(read_document(url, "<html>hello</html>"));
        assert_eq!(code, Code::Failed);
        assert!(
            problem.contains("is not JSON") && problem.contains("<html>"),
            "{problem}"
        );

        let (_, problem, _) = failure_of(read_document(url, r#"{"status": "ok"}"#));
        assert!(problem.contains("has no api_version"), "{problem}");

        let (_, problem, fix) = failure_of(read_document(url, r#"{"api_version": "2.0"}"#));
        assert!(problem.contains("2.0 is not supported"), "{problem}");
        assert!(fix.contains("this one reads 1.x"), "{fix}");

        let (_, problem, _) = failure_of(read_document(url, r#"{"api_version": "x"}"#));
        assert!(problem.contains("not MAJOR.MINOR"), "{problem}");
    }

    #[test]
    fn the_state_the_library_writes_is_the_state_the_command_reads() {
        let state = example();
        let body = serde_json::to_string(&state).unwrap();
        let document = read_document("http://x", &body).unwrap();
        let read: ClusterState = serde_json::from_value(document).unwrap();
        assert_eq!(read, state);
    }

    /// A server on loopback that answers one request with `status` and `body`, and hands
    /// back the request it got.
    #[derive(Debug, clap::Parser)]
    struct Command {
        #[command(subcommand)]
        action: ClusterAction,
    }

    #[test]
    fn status_takes_a_url_a_token_json_and_a_timeout() {
        use clap::Parser;
        let parsed = Command::try_parse_from([
            "cluster",
            "status",
            "--url",
            "http://10.0.0.5:8080",
            "--token",
            "t0ken",
            "--json",
        ])
        .unwrap();
        let ClusterAction::Status(args) = parsed.action else {
            panic!("not status");
        };
        assert_eq!(args.server.url, "http://10.0.0.5:8080");
        assert_eq!(args.server.token.as_deref(), Some("t0ken"));
        assert!(args.json);
        assert_eq!(args.server.timeout, Duration::from_secs(10));
        let parsed =
            Command::try_parse_from(["cluster", "status", "--url", "u", "--timeout", "2s"])
                .unwrap();
        let ClusterAction::Status(args) = parsed.action else {
            panic!("not status");
        };
        assert!(!args.json);
        assert_eq!(args.server.timeout, Duration::from_secs(2));
    }
}
