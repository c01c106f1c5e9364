//! `francis cluster drain | resume | halt | delete-alarm | log-level | dead-letters | audit`:
//! operators' actions through a host's control server or a runtime's operations server. Each
//! action runs preflight first and prints its decision per target (with how many actors it
//! touches); unless `--dry-run`, it then dispatches and prints each target's result and audit
//! ID. Exit code 9 when preflight denies or a target fails.

use serde_json::{Value, json};

use crate::exit::{Code, Failure};
use crate::server::{Server, ServerArgs};

const PREFLIGHT: &str = "/api/cluster/actions/preflight";
const DISPATCH: &str = "/api/cluster/actions/dispatch";

/// What every action takes besides its targets.
#[derive(Debug, Clone, clap::Args)]
pub struct ActionOptions {
    #[command(flatten)]
    server: ServerArgs,
    /// Run preflight only: print what would happen, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// The request's ID (default: a fresh one). Sending the same ID again returns the stored
    /// result instead of acting twice.
    #[arg(long, value_name = "ID")]
    request_id: Option<String>,
    /// How long the server may take across all targets, in milliseconds (at most 10000).
    #[arg(long, value_name = "MS")]
    budget_ms: Option<u64>,
    /// Print the server's answers as JSON.
    #[arg(long)]
    json: bool,
}

/// `francis cluster drain | resume <HOST>...`.
#[derive(Debug, clap::Args)]
pub struct HostsArgs {
    /// Host IDs (as `francis cluster status` lists them).
    #[arg(required = true, value_name = "HOST")]
    hosts: Vec<String>,
    #[command(flatten)]
    options: ActionOptions,
}

/// `francis cluster halt <TYPE> [<ID>]`.
#[derive(Debug, clap::Args)]
pub struct HaltArgs {
    /// The actor type.
    actor_type: String,
    /// The actor's ID; without it, every active actor of the type is halted.
    id: Option<String>,
    #[command(flatten)]
    options: ActionOptions,
}

/// `francis cluster delete-alarm <TYPE> <ID> <ALARM>`.
#[derive(Debug, clap::Args)]
pub struct DeleteAlarmArgs {
    /// The actor type.
    actor_type: String,
    /// The actor's ID.
    id: String,
    /// The alarm's name.
    alarm: String,
    #[command(flatten)]
    options: ActionOptions,
}

/// `francis cluster log-level <FILTER> <HOST>...`.
#[derive(Debug, clap::Args)]
pub struct LogLevelArgs {
    /// The new log filter, as RUST_LOG takes it (`debug`, `info,francis=debug`).
    filter: String,
    /// Host IDs.
    #[arg(required = true, value_name = "HOST")]
    hosts: Vec<String>,
    #[command(flatten)]
    options: ActionOptions,
}

/// `francis cluster dead-letters [--replay <ID>...]`.
#[derive(Debug, clap::Args)]
pub struct DeadLettersArgs {
    /// Run these dead letters again, now, instead of listing.
    #[arg(long, value_name = "ID")]
    replay: Vec<String>,
    /// List only those of this actor type.
    #[arg(long, value_name = "TYPE")]
    actor_type: Option<String>,
    #[command(flatten)]
    options: ActionOptions,
}

/// `francis cluster audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Only the records of this request.
    #[arg(long, value_name = "ID")]
    request_id: Option<String>,
    /// At most this many (newest first; at most 500).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Print the records as JSON.
    #[arg(long)]
    json: bool,
}

/// `francis cluster drain`.
pub fn drain(args: &HostsArgs) -> anyhow::Result<()> {
    act(&args.options, "drain_host", &args.hosts, Value::Null)
}

/// `francis cluster resume`.
pub fn resume(args: &HostsArgs) -> anyhow::Result<()> {
    act(&args.options, "resume_host", &args.hosts, Value::Null)
}

/// `francis cluster halt`.
pub fn halt(args: &HaltArgs) -> anyhow::Result<()> {
    match &args.id {
        Some(id) => act(
            &args.options,
            "halt_actor",
            &[format!("{}/{id}", args.actor_type)],
            Value::Null,
        ),
        None => act(
            &args.options,
            "halt_type",
            std::slice::from_ref(&args.actor_type),
            Value::Null,
        ),
    }
}

/// `francis cluster delete-alarm`.
pub fn delete_alarm(args: &DeleteAlarmArgs) -> anyhow::Result<()> {
    let target = format!("{}/{}/{}", args.actor_type, args.id, args.alarm);
    act(&args.options, "delete_alarm", &[target], Value::Null)
}

/// `francis cluster log-level`.
pub fn log_level(args: &LogLevelArgs) -> anyhow::Result<()> {
    act(
        &args.options,
        "set_log_level",
        &args.hosts,
        json!({"filter": args.filter}),
    )
}

/// `francis cluster dead-letters`.
pub fn dead_letters(args: &DeadLettersArgs) -> anyhow::Result<()> {
    if !args.replay.is_empty() {
        return act(
            &args.options,
            "replay_dead_letter",
            &args.replay,
            Value::Null,
        );
    }
    let path = with_query(
        "/api/cluster/dead-letters",
        &[("actor_type", args.actor_type.as_deref())],
    );
    let document = read(&args.options.server, &path)?;
    if args.options.json {
        println!("{}", serde_json::to_string_pretty(&document)?);
        return Ok(());
    }
    let letters = document["dead_letters"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if letters.is_empty() {
        println!("no dead letters");
    }
    for d in letters {
        println!(
            "{}  {}/{}  alarm {}  {} attempts, dropped {}: {}",
            text(&d["id"]),
            text(&d["actor_type"]),
            text(&d["actor_id"]),
            text(&d["alarm"]),
            d["attempts"],
            francis::time::format_timestamp(d["dropped_ms"].as_i64().unwrap_or(0)),
            text(&d["last_error"]),
        );
    }
    Ok(())
}

/// `francis cluster audit`.
pub fn audit(args: &AuditArgs) -> anyhow::Result<()> {
    let limit = args.limit.to_string();
    let path = with_query(
        "/api/cluster/audit",
        &[
            ("limit", Some(limit.as_str())),
            ("request_id", args.request_id.as_deref()),
        ],
    );
    let document = read(&args.server, &path)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&document)?);
        return Ok(());
    }
    let records = document["records"].as_array().cloned().unwrap_or_default();
    if records.is_empty() {
        println!("no audit records");
    }
    for r in records {
        let error = r["error"]
            .as_str()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        println!(
            "{}  {}  {} {}  by {}  request {}  {}{error}",
            francis::time::format_timestamp(r["started_ms"].as_i64().unwrap_or(0)),
            text(&r["audit_id"]),
            text(&r["action"]),
            text(&r["target"]),
            text(&r["principal"]),
            text(&r["request_id"]),
            text(&r["result"]),
        );
    }
    Ok(())
}

/// `path` with the given query parameters, encoded (`None`s left out).
fn with_query(path: &str, params: &[(&str, Option<&str>)]) -> String {
    let mut url = reqwest::Url::parse("http://server").expect("a constant URL parses");
    url.set_path(path);
    for (name, value) in params {
        if let Some(value) = value {
            url.query_pairs_mut().append_pair(name, value);
        }
    }
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

/// GET a JSON document.
fn read(server: &ServerArgs, path: &str) -> anyhow::Result<Value> {
    let server = Server::new(server)?;
    let body = runtime()?.block_on(server.get(path))?;
    serde_json::from_str(&body).map_err(|e| {
        Failure::new(
            Code::Failed,
            format!("the answer of {} is not JSON: {e}", server.url(path)),
        )
        .into()
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Preflight `action_type` on `targets`, print the decisions, and dispatch unless dry.
fn act(
    options: &ActionOptions,
    action_type: &str,
    targets: &[String],
    payload: Value,
) -> anyhow::Result<()> {
    let server = Server::new(&options.server)?;
    let request_id = options
        .request_id
        .clone()
        .unwrap_or_else(|| format!("cli-{:016x}", rand::random::<u64>()));
    let mut request = json!({
        "api_version": "1.0",
        "request_id": request_id,
        "action_type": action_type,
        "targets": targets,
        "dry_run": options.dry_run,
        "payload": payload,
    });
    if let Some(budget) = options.budget_ms {
        request["budget_ms"] = json!(budget);
    }
    let tokio = runtime()?;
    let answer = |path: &str| -> anyhow::Result<Value> {
        let (_, body) = tokio.block_on(server.post_json(path, &request))?;
        serde_json::from_str(&body).map_err(|e| {
            Failure::new(
                Code::Failed,
                format!("the answer of {} is not JSON: {e}", server.url(path)),
            )
            .into()
        })
    };
    let preflight = answer(PREFLIGHT)?;
    if options.json && options.dry_run {
        println!("{}", serde_json::to_string_pretty(&preflight)?);
    } else if !options.json {
        print!("{}", render_preflight(&preflight));
    }
    if preflight["allowed"] != json!(true) {
        return Err(denied(&preflight));
    }
    if options.dry_run {
        return Ok(());
    }
    let dispatched = answer(DISPATCH)?;
    if options.json {
        println!("{}", serde_json::to_string_pretty(&dispatched)?);
    } else {
        print!("{}", render_dispatch(&dispatched));
    }
    if dispatched["ok"] == json!(true) {
        Ok(())
    } else if dispatched["results"].as_array().is_none_or(Vec::is_empty) {
        Err(denied(&dispatched["preflight"]))
    } else {
        Err(Failure::new(
            Code::Denied,
            format!("{action_type} failed on some targets (request {request_id})"),
        )
        .fix(format!(
            "read the errors above; francis cluster audit --request-id {request_id} keeps them"
        ))
        .into())
    }
}

fn denied(preflight: &Value) -> anyhow::Error {
    let reason = text(&preflight["denial_reason"]);
    let code = text(&preflight["denial_code"]);
    let hint = preflight["decisions"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["allowed"] != json!(true)))
        .map(|d| text(&d["remediation_hint"]))
        .unwrap_or_default();
    Failure::new(Code::Denied, format!("denied ({code}): {reason}"))
        .fix(hint)
        .into()
}

/// The text of a JSON string value (empty for anything else).
fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// The preflight's decisions, a line per target.
fn render_preflight(preflight: &Value) -> String {
    let mut out = format!(
        "preflight {} by {} on {} {}:\n",
        text(&preflight["action_type"]),
        text(&preflight["principal"]),
        text(&preflight["acting_on"]["kind"]),
        text(&preflight["acting_on"]["id"]),
    );
    for d in preflight["decisions"].as_array().into_iter().flatten() {
        if d["allowed"] == json!(true) {
            let radius = d["blast_radius"]["actors"]
                .as_u64()
                .map(|n| format!(" ({n} actors)"))
                .unwrap_or_default();
            out.push_str(&format!("  {}  allowed{radius}\n", text(&d["target"])));
        } else {
            out.push_str(&format!(
                "  {}  denied: {}: {}\n",
                text(&d["target"]),
                text(&d["denial_code"]),
                text(&d["denial_reason"]),
            ));
        }
    }
    out
}

/// The dispatch's results, a line per target.
fn render_dispatch(dispatched: &Value) -> String {
    let mut out = String::new();
    if dispatched["replayed"] == json!(true) {
        out.push_str(&format!(
            "request {} was dispatched before; its stored result:\n",
            text(&dispatched["request_id"])
        ));
    }
    for r in dispatched["results"].as_array().into_iter().flatten() {
        let outcome = if r["ok"] == json!(true) {
            let detail = r.get("detail").filter(|d| !d.is_null());
            detail.map(|d| format!("ok {d}")).unwrap_or("ok".into())
        } else {
            format!("{}: {}", text(&r["denial_code"]), text(&r["denial_reason"]))
        };
        out.push_str(&format!(
            "  {}  {outcome}  audit {}\n",
            text(&r["target"]),
            text(&r["audit_id"])
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            with_query(
                "/api/cluster/audit",
                &[("limit", Some("5")), ("request_id", Some("a b&c"))]
            ),
            "/api/cluster/audit?limit=5&request_id=a+b%26c"
        );
        assert_eq!(
            with_query("/api/cluster/dead-letters", &[("actor_type", None)]),
            "/api/cluster/dead-letters"
        );
    }

    #[test]
    fn decisions_and_results_print_a_line_per_target() {
        let preflight = json!({
            "action_type": "drain_host", "principal": "token:operator:ab12cd34",
            "acting_on": {"kind": "host", "id": "h-a", "address": "127.0.0.1:7000"},
            "allowed": false,
            "decisions": [
                {"target": "h-b", "allowed": true, "blast_radius": {"actors": 12}},
                {"target": "h-x", "allowed": false, "denial_code": "target_unknown",
                 "denial_reason": "no host h-x is registered", "remediation_hint": "check it"}
            ]
        });
        assert_eq!(
            render_preflight(&preflight),
            "preflight drain_host by token:operator:ab12cd34 on host h-a:\n  h-b  allowed (12 actors)\n  h-x  denied: target_unknown: no host h-x is registered\n"
        );
        let error = denied(&json!({
            "denial_code": "permission_denied", "denial_reason": "needs the operator role",
            "decisions": [{"allowed": false, "remediation_hint": "use an operator token"}]
        }));
        let failure = error.downcast_ref::<Failure>().unwrap();
        assert_eq!(failure.code, Code::Denied);
        assert_eq!(
            failure.problem,
            "denied (permission_denied): needs the operator role"
        );
        assert_eq!(failure.fix.as_deref(), Some("use an operator token"));
        let dispatched = json!({
            "request_id": "r1", "replayed": true, "ok": false,
            "results": [
                {"target": "h-b", "ok": true, "audit_id": "a1", "detail": {"actors_deactivated": 3}},
                {"target": "h-c", "ok": false, "audit_id": "a2", "denial_code": "timeout",
                 "denial_reason": "still running"}
            ]
        });
        assert_eq!(
            render_dispatch(&dispatched),
            "request r1 was dispatched before; its stored result:\n  h-b  ok {\"actors_deactivated\":3}  audit a1\n  h-c  timeout: still running  audit a2\n"
        );
    }
}
