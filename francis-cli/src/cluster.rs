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

use crate::exit::{Code, Failure, usage};
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
}

/// Arguments of `francis cluster status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The operations HTTP server to ask: a host's control server, or a runtime's `http.bind`.
    #[arg(
        long,
        env = "FRANCIS_URL",
        hide_env_values = true,
        default_value = "http://127.0.0.1:8080",
        value_name = "URL"
    )]
    url: String,
    /// The server's bearer token (any role may read the cluster state).
    #[arg(
        long,
        env = "FRANCIS_HTTP_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
    /// Print the state document as JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// For an https:// server with a certificate of the cluster CA (a runtime with http.tls):
    /// the CA to verify it with (`francis ca print > ca.pem`).
    #[arg(long, value_name = "PEM")]
    ca_file: Option<std::path::PathBuf>,
    /// A client certificate to authenticate with instead of a token (`francis ca
    /// issue-operator`); needs --key.
    #[arg(long, value_name = "PEM", requires = "key")]
    cert: Option<std::path::PathBuf>,
    /// The client certificate's private key.
    #[arg(long, value_name = "PEM", requires = "cert")]
    key: Option<std::path::PathBuf>,
    /// How long to wait for the answer.
    #[arg(long, default_value = "10s", value_parser = francis::time::parse_duration)]
    timeout: Duration,
}

/// `francis cluster …`.
pub fn run(args: ClusterArgs) -> anyhow::Result<()> {
    match args.action {
        ClusterAction::Status(args) => status(&args),
    }
}

fn status(args: &StatusArgs) -> anyhow::Result<()> {
    let endpoint = endpoint(&args.url)?;
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let tls = Tls::read(args)?;
    let body = tokio.block_on(fetch(&endpoint, args.token.as_deref(), &tls, args.timeout))?;
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

/// The state's URL on the server `url` (`http://` is assumed when no scheme is given).
fn endpoint(url: &str) -> anyhow::Result<String> {
    let url = url.trim().trim_end_matches('/');
    if url.is_empty() {
        return Err(usage("--url is empty")
            .fix("pass the server's URL, e.g. --url http://127.0.0.1:8080")
            .into());
    }
    let base = if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    };
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(
            usage(format!("--url {url:?} is not an http:// or https:// URL"))
                .fix("pass the server's URL, e.g. --url http://127.0.0.1:8080")
                .into(),
        );
    }
    Ok(format!("{base}{STATE_PATH}"))
}

/// The CA and client certificate an https:// server is called with, when given.
#[derive(Default)]
struct Tls {
    ca: Option<reqwest::Certificate>,
    identity: Option<reqwest::Identity>,
}

impl Tls {
    fn read(args: &StatusArgs) -> anyhow::Result<Tls> {
        let read = |path: &std::path::Path, what: &str| {
            std::fs::read(path).map_err(|e| {
                usage(format!("cannot read the {what} {}: {e}", path.display()))
                    .fix("check the path")
            })
        };
        let ca = match &args.ca_file {
            Some(path) => Some(
                reqwest::Certificate::from_pem(&read(path, "CA file")?).map_err(|e| {
                    usage(format!("{} is not a PEM certificate: {e}", path.display()))
                        .fix("write it with `francis ca print --config config.yaml > ca.pem`")
                })?,
            ),
            None => None,
        };
        let identity = match (&args.cert, &args.key) {
            (Some(cert), Some(key)) => {
                let mut pem = read(cert, "certificate")?;
                pem.extend_from_slice(&read(key, "key")?);
                Some(reqwest::Identity::from_pem(&pem).map_err(|e| {
                    usage(format!(
                        "{} and {} are not a PEM certificate and its key: {e}",
                        cert.display(),
                        key.display()
                    ))
                    .fix("issue them with `francis ca issue-operator`")
                })?)
            }
            _ => None,
        };
        Ok(Tls { ca, identity })
    }
}

/// GET the state, with what to do about each way it can fail.
async fn fetch(
    endpoint: &str,
    token: Option<&str>,
    tls: &Tls,
    timeout: Duration,
) -> anyhow::Result<String> {
    let mut builder = reqwest::Client::builder().timeout(timeout);
    if let Some(ca) = &tls.ca {
        builder = builder
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca.clone());
    }
    if let Some(identity) = &tls.identity {
        builder = builder.identity(identity.clone());
    }
    if is_loopback(endpoint) {
        // A proxy from the environment cannot reach this machine's own servers.
        builder = builder.no_proxy();
    }
    let client = builder
        .build()
        .map_err(|e| Failure::new(Code::Failed, format!("creating the HTTP client: {e}")))?;
    let mut request = client.get(endpoint);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let unreachable = |what: String| {
        Failure::new(Code::Unreachable, what).fix(
            "check --url (or FRANCIS_URL), and that a host with its control server, or a runtime with its operations server (http.bind), is running there",
        )
    };
    let response = request.send().await.map_err(|e| {
        if e.is_builder() {
            usage(format!("{endpoint} is not a usable URL: {e}"))
                .fix("pass the server's URL, e.g. --url http://127.0.0.1:8080")
        } else if e.is_timeout() {
            unreachable(format!(
                "{endpoint} did not answer within {}",
                term::duration_text(timeout)
            ))
        } else if e.is_connect() {
            unreachable(format!("cannot connect to {endpoint}: {}", cause(&e)))
        } else {
            unreachable(format!("asking {endpoint} failed: {}", cause(&e)))
        }
    })?;
    let status = response.status();
    let body = response.text().await.map_err(|e| {
        unreachable(format!(
            "reading the answer of {endpoint} failed: {}",
            cause(&e)
        ))
    })?;
    if status.is_success() {
        return Ok(body);
    }
    let said = server_error(&body);
    let problem = format!("{endpoint} answered {status}{said}");
    let failure = match status.as_u16() {
        401 if token.is_some() => Failure::new(Code::Failed, problem)
            .fix("the token was refused: pass a token of this server with --token or FRANCIS_HTTP_TOKEN"),
        401 => Failure::new(Code::Failed, problem).fix(
            "the server needs a token: pass --token or set FRANCIS_HTTP_TOKEN (any role may read the cluster state)",
        ),
        403 => Failure::new(Code::Failed, problem).fix(
            "use a token whose role may read the cluster state (viewer, operator or admin), and call the server by an address it answers to",
        ),
        404 => Failure::new(Code::Failed, problem).fix(
            "this server has no cluster state: check that --url is a Francis host's control server or a runtime's operations server, of a version that serves it",
        ),
        _ => Failure::new(Code::Failed, problem),
    };
    Err(failure.into())
}

/// Whether `url` names this machine (`localhost`, a loopback IP).
fn is_loopback(url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else {
        return false;
    };
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The root cause of `e` (reqwest's own message only repeats the URL).
fn cause(e: &dyn std::error::Error) -> String {
    let mut root = e;
    while let Some(inner) = root.source() {
        root = inner;
    }
    root.to_string()
}

/// `: <message>` from a Francis error body (`{"error": ..., "code": ...}`), else nothing.
fn server_error(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .map(|message| format!(": {message}"))
        .unwrap_or_default()
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
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use francis::cluster::{
        Caller, DepartedHost, Departure, EventKind, HostObservation, LinkObservation, NodeRef,
        Observations, Role, RuntimeObservation, Thresholds, TimelineEvent, compute,
    };

    use super::*;

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
    fn loopback_urls_are_told_apart() {
        for url in [
            "http://127.0.0.1:8080/x",
            "http://LOCALHOST/",
            "http://[::1]:8444/",
            "http://127.9.9.9",
        ] {
            assert!(is_loopback(url), "{url}");
        }
        for url in [
            "http://10.0.0.5:8080/",
            "https://ops.internal/",
            "http://[fe80::1]/",
            "nonsense",
        ] {
            assert!(!is_loopback(url), "{url}");
        }
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
    fn the_url_may_omit_the_scheme_and_end_with_a_slash() {
        for (url, endpoint_url) in [
            (
                "http://127.0.0.1:8080",
                "http://127.0.0.1:8080/api/cluster/state",
            ),
            (
                "https://ops.internal/",
                "https://ops.internal/api/cluster/state",
            ),
            ("127.0.0.1:8444", "http://127.0.0.1:8444/api/cluster/state"),
        ] {
            assert_eq!(endpoint(url).unwrap(), endpoint_url);
        }
        for url in ["", "ftp://host", "  "] {
            let error = endpoint(url).unwrap_err();
            let failure = error.downcast_ref::<Failure>().unwrap();
            assert_eq!(failure.code, Code::Usage, "{url:?}");
        }
    }

    fn failure(result: anyhow::Result<impl std::fmt::Debug>) -> (Code, String, String) {
        let error = result.unwrap_err();
        let failure = error.downcast_ref::<Failure>().expect("a Failure");
        (
            failure.code,
            failure.problem.clone(),
            failure.fix.clone().unwrap_or_default(),
        )
    }

    #[test]
    fn only_json_cluster_states_of_major_version_1_are_read() {
        let url = "http://x/api/cluster/state";
        let document = read_document(url, r#"{"api_version": "1.7", "extra": true}"#).unwrap();
        assert_eq!(
            document["extra"], true,
            "unknown fields are kept for --json"
        );

        let (code, problem, _) = failure(read_document(url, "<html>hello</html>"));
        assert_eq!(code, Code::Failed);
        assert!(
            problem.contains("is not JSON") && problem.contains("<html>"),
            "{problem}"
        );

        let (_, problem, _) = failure(read_document(url, r#"{"status": "ok"}"#));
        assert!(problem.contains("has no api_version"), "{problem}");

        let (_, problem, fix) = failure(read_document(url, r#"{"api_version": "2.0"}"#));
        assert!(problem.contains("2.0 is not supported"), "{problem}");
        assert!(fix.contains("this one reads 1.x"), "{fix}");

        let (_, problem, _) = failure(read_document(url, r#"{"api_version": "x"}"#));
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
    fn serve_once(status: &str, body: &str) -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            stream.write_all(response.as_bytes()).unwrap();
            String::from_utf8_lossy(&request).into_owned()
        });
        (url, server)
    }

    fn get(url: &str, token: Option<&str>) -> anyhow::Result<String> {
        let endpoint = endpoint(url).unwrap();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(fetch(
                &endpoint,
                token,
                &Tls::default(),
                Duration::from_secs(5),
            ))
    }

    #[test]
    fn the_state_is_fetched_with_the_bearer_token() {
        let (url, server) = serve_once("200 OK", r#"{"api_version":"1.0"}"#);
        let body = get(&url, Some("s3cret-token")).unwrap();
        assert_eq!(body, r#"{"api_version":"1.0"}"#);
        let request = server.join().unwrap();
        assert!(
            request.starts_with("GET /api/cluster/state HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request
                .to_ascii_lowercase()
                .contains("authorization: bearer s3cret-token\r\n"),
            "{request}"
        );
    }

    #[test]
    fn a_refused_or_missing_token_says_how_to_pass_one() {
        let body = r#"{"error": "the request has no bearer token", "code": "unauthorized"}"#;
        let (url, server) = serve_once("401 Unauthorized", body);
        let (code, problem, fix) = failure(get(&url, None));
        server.join().unwrap();
        assert_eq!(code, Code::Failed);
        assert!(
            problem.ends_with("answered 401 Unauthorized: the request has no bearer token"),
            "{problem}"
        );
        assert!(
            fix.contains("--token") && fix.contains("FRANCIS_HTTP_TOKEN"),
            "{fix}"
        );

        let (url, server) = serve_once("401 Unauthorized", "{}");
        let (_, _, fix) = failure(get(&url, Some("wrong")));
        server.join().unwrap();
        assert!(fix.starts_with("the token was refused"), "{fix}");

        let (url, server) = serve_once("403 Forbidden", r#"{"error": "not for you"}"#);
        let (_, problem, fix) = failure(get(&url, Some("t")));
        server.join().unwrap();
        assert!(problem.ends_with("403 Forbidden: not for you"), "{problem}");
        assert!(fix.contains("viewer, operator or admin"), "{fix}");

        let (url, server) = serve_once("404 Not Found", "nothing here");
        let (_, problem, fix) = failure(get(&url, None));
        server.join().unwrap();
        assert!(problem.ends_with("answered 404 Not Found"), "{problem}");
        assert!(fix.contains("no cluster state"), "{fix}");
    }

    #[test]
    fn a_server_that_is_not_running_is_unreachable_and_named() {
        // A port that was just free: nothing listens on it.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let (code, problem, fix) = failure(get(&url, None));
        assert_eq!(code, Code::Unreachable);
        assert!(
            problem.starts_with(&format!("cannot connect to {url}/api/cluster/state")),
            "{problem}"
        );
        assert!(
            fix.contains("http.bind") && fix.contains("control server"),
            "{fix}"
        );
    }

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
        let ClusterAction::Status(args) = parsed.action;
        assert_eq!(args.url, "http://10.0.0.5:8080");
        assert_eq!(args.token.as_deref(), Some("t0ken"));
        assert!(args.json);
        assert_eq!(args.timeout, Duration::from_secs(10));
        let parsed =
            Command::try_parse_from(["cluster", "status", "--url", "u", "--timeout", "2s"])
                .unwrap();
        let ClusterAction::Status(args) = parsed.action;
        assert!(!args.json);
        assert_eq!(args.timeout, Duration::from_secs(2));
    }
}
