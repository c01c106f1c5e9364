//! Operators' actions, the executing half: `POST /api/cluster/actions/preflight` and
//! `/dispatch`, `GET /api/cluster/audit` and `GET /api/cluster/dead-letters`, served by a host's
//! control server (local topology) and by the runtime's operations server (remote topology)
//! alike. Preflight gathers the facts [`crate::cluster::actions`] decides from; dispatch
//! re-runs it, returns the stored result of a replayed `request_id`, then records an audit
//! record per target, runs the targets in parallel under the request's budget, and records how
//! each ended.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::auth::Principal;
use crate::actor::service::Service;
use crate::clock::BoxFuture;
use crate::cluster::actions::{
    ActionRequest, ActionType, CheckedRequest, Decision, DenialCode, Facts, HostOrder,
    MAX_BUDGET_MS, Target, check_contract, decide, first_denial,
};
use crate::cluster::{API_VERSION, EventKind, NodeRef, TimelineEvent};
use crate::model::{
    AuditQuery, AuditRecord, AuditResult, DeadLetterQuery, LookupOptions, OperationsStore, Store,
    StoreError,
};
use crate::net::peer::PeerClient;
use crate::net::wire::AdminRequest;

/// The largest action request body accepted.
pub const MAX_ACTION_BODY_BYTES: usize = 64 * 1024;

/// How an order reaches a host.
#[derive(Clone)]
pub(crate) enum Relay {
    /// Through this host's service (which runs orders for itself, and relays the others over
    /// its peer links).
    Host(Service),
    /// From the runtime, over a peer link of its own; `None` when it has none.
    #[cfg_attr(not(feature = "runtime"), allow(dead_code))]
    Runtime(Option<PeerClient>),
}

/// The node serving the actions: its store, who it is, its profile, how it reaches hosts, and
/// its timeline (where each executed action is recorded with its audit ID).
#[derive(Clone)]
pub(crate) struct ActionNode {
    pub store: Arc<dyn Store>,
    pub node: NodeRef,
    pub prod: bool,
    pub relay: Relay,
    pub timeline: Arc<dyn Fn(TimelineEvent) + Send + Sync>,
}

impl ActionNode {
    fn operations(&self) -> Result<&dyn OperationsStore, String> {
        self.store.operations().ok_or_else(|| {
            "this node's store keeps no operations records (a worker's link to its runtime): ask the runtime".to_owned()
        })
    }

    async fn relay(&self, host_id: &str, address: &str, order: HostOrder) -> Result<u64, String> {
        match &self.relay {
            Relay::Host(service) => match service.relay_order(host_id, address, order) {
                Some(relayed) => relayed.await.map_err(|e| e.to_string()),
                None => Err("this service is not bound to a host".to_owned()),
            },
            Relay::Runtime(Some(peers)) => peers
                .admin(
                    address,
                    AdminRequest {
                        target_host_id: host_id.to_owned(),
                        action: order,
                    },
                )
                .await
                .map(|r| r.halted)
                .map_err(|e| format!("host {host_id} at {address}: {e}")),
            Relay::Runtime(None) => {
                Err("the runtime has no peer link to reach hosts with".to_owned())
            }
        }
    }

    fn now_ms(&self) -> i64 {
        self.store.options().clock.now_ms()
    }
}

/// The answer to a preflight (and the preflight part of a dispatch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreflightResponse {
    /// The contract version of this answer.
    pub api_version: String,
    /// The request's ID.
    pub request_id: String,
    /// The action.
    pub action_type: String,
    /// The node that answered (and would act).
    pub acting_on: NodeRef,
    /// Who asked, from their credential.
    pub principal: String,
    /// Whether every target is allowed.
    pub allowed: bool,
    /// The first denial's code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub denial_code: Option<DenialCode>,
    /// The first denial's reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub denial_reason: Option<String>,
    /// One decision per target, in request order.
    pub decisions: Vec<Decision>,
}

/// How one target of a dispatch ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetResult {
    /// The target, as the request wrote it.
    pub target: String,
    /// Whether the action succeeded on it.
    pub ok: bool,
    /// How it ended (`ok`, `failed`, `timeout`, or `pending` for a replayed request still
    /// running).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<AuditResult>,
    /// Why it did not succeed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub denial_code: Option<DenialCode>,
    /// The reason, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub denial_reason: Option<String>,
    /// Its audit record, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_id: Option<String>,
    /// What it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Value>,
}

/// The answer to a dispatch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DispatchResponse {
    /// The contract version of this answer.
    pub api_version: String,
    /// The request's ID.
    pub request_id: String,
    /// The action.
    pub action_type: String,
    /// Whether it was a dry run (nothing executed).
    pub dry_run: bool,
    /// Whether every target succeeded (for a dry run: whether every target is allowed).
    pub ok: bool,
    /// Whether this is the stored result of an earlier dispatch with the same `request_id`.
    pub replayed: bool,
    /// The preflight it ran.
    pub preflight: PreflightResponse,
    /// One result per target that ran (none when denied or dry).
    pub results: Vec<TargetResult>,
}

/// Preflight `request` for `principal` on `node`.
pub(crate) async fn preflight(
    node: &ActionNode,
    request: &ActionRequest,
    principal: &Principal,
) -> (Option<CheckedRequest>, Facts, PreflightResponse) {
    let mut response = PreflightResponse {
        api_version: API_VERSION.to_owned(),
        request_id: request.request_id.clone(),
        action_type: request.action_type.clone(),
        acting_on: node.node.clone(),
        principal: principal.name.clone(),
        allowed: false,
        denial_code: None,
        denial_reason: None,
        decisions: Vec::new(),
    };
    let mut facts = Facts {
        prod: node.prod,
        ..Facts::default()
    };
    let checked = match check_contract(request) {
        Ok(checked) => checked,
        Err(reason) => {
            // One decision for the whole request: it names no target preflight could judge.
            response.decisions = vec![Decision::denied("", DenialCode::ContractViolation, reason)];
            finish(&mut response);
            return (None, facts, response);
        }
    };
    // A caller whose role is too low learns nothing about the targets, and costs no lookups.
    if principal.role < checked.action.role() {
        response.decisions = decide(&checked, &principal.name, principal.role, &facts);
        finish(&mut response);
        return (Some(checked), facts, response);
    }
    match gather(node, &checked, &mut facts).await {
        Ok(()) => response.decisions = decide(&checked, &principal.name, principal.role, &facts),
        Err(reason) => {
            response.decisions = checked
                .targets
                .iter()
                .map(|(text, _)| Decision::denied(text, DenialCode::TargetUnreachable, &reason))
                .collect();
        }
    }
    finish(&mut response);
    (Some(checked), facts, response)
}

fn finish(response: &mut PreflightResponse) {
    response.allowed = response.decisions.iter().all(|d| d.allowed);
    if let Some(denial) = first_denial(&response.decisions) {
        response.denial_code = denial.denial_code;
        response.denial_reason = denial.denial_reason.clone();
    }
}

/// What preflight needs to know: the store's view, and per target what only a lookup tells.
async fn gather(
    node: &ActionNode,
    checked: &CheckedRequest,
    facts: &mut Facts,
) -> Result<(), String> {
    let unreachable = |e: StoreError| format!("the store did not answer: {e}");
    facts.observation = node.store.observe_cluster().await.map_err(unreachable)?;
    for (_, target) in &checked.targets {
        match target {
            Target::Actor(key) => {
                let options = LookupOptions {
                    active_only: true,
                    ..LookupOptions::default()
                };
                let host = match node.store.lookup_actor(key, &options).await {
                    Ok(placement) => Some(placement.host_id),
                    Err(StoreError::NotActive { .. } | StoreError::NoHost { .. }) => None,
                    Err(e) => return Err(unreachable(e)),
                };
                facts.actor_hosts.push((key.clone(), host));
            }
            Target::Alarm(key, name) => {
                let exists = node
                    .store
                    .get_alarm(key, name)
                    .await
                    .map_err(unreachable)?
                    .is_some();
                facts.alarms.push(((key.clone(), name.clone()), exists));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Dispatch `request` for `principal` on `node`.
pub(crate) async fn dispatch(
    node: &ActionNode,
    request: &ActionRequest,
    principal: &Principal,
) -> DispatchResponse {
    let (checked, facts, preflight) = preflight(node, request, principal).await;
    let mut response = DispatchResponse {
        api_version: API_VERSION.to_owned(),
        request_id: request.request_id.clone(),
        action_type: request.action_type.clone(),
        dry_run: request.dry_run,
        ok: false,
        replayed: false,
        preflight,
        results: Vec::new(),
    };
    let Some(checked) = checked else {
        return response;
    };
    // Contract and role passed: a request ID seen before answers with what it did then.
    let contract_and_role_passed = !response.preflight.decisions.iter().any(|d| {
        matches!(
            d.denial_code,
            Some(DenialCode::ContractViolation | DenialCode::PermissionDenied)
        )
    });
    if contract_and_role_passed
        && let Some(stored) = replay(node, &checked, principal, &mut response).await
    {
        return stored;
    }
    if !response.preflight.allowed || request.dry_run {
        response.ok = response.preflight.allowed && request.dry_run;
        return response;
    }
    let ops = match node.operations() {
        Ok(ops) => ops,
        Err(reason) => {
            deny_all(&mut response, DenialCode::NotConfigured, &reason);
            return response;
        }
    };
    // Recorded, all at once, before anything runs: a request replayed while this one runs
    // finds them.
    let started_ms = node.now_ms();
    let records: Vec<AuditRecord> = checked
        .targets
        .iter()
        .map(|(text, _)| AuditRecord {
            audit_id: uuid::Uuid::now_v7().to_string(),
            request_id: request.request_id.clone(),
            action: checked.action.as_str().to_owned(),
            target: text.clone(),
            principal: principal.name.clone(),
            started_ms,
            finished_ms: None,
            result: AuditResult::Pending,
            error: None,
            detail: None,
        })
        .collect();
    let stored = match ops.begin_audit(&records).await {
        Ok(stored) => stored,
        Err(e) => {
            deny_all(
                &mut response,
                DenialCode::Failed,
                &format!("could not write the audit records, so nothing ran: {e}"),
            );
            return response;
        }
    };
    let ours = records
        .iter()
        .zip(&stored)
        .filter(|(mine, kept)| mine.audit_id == kept.audit_id)
        .count();
    if ours < records.len() {
        // Another dispatch of this request ID got there first (concurrently).
        return claimed_elsewhere(node, &checked, principal, response, records, stored).await;
    }
    // Run apart from this request, so a caller that goes away does not leave the records
    // pending and the targets half done.
    let run = tokio::spawn(run_targets(
        node.clone(),
        checked.clone(),
        facts,
        principal.name.clone(),
        stored,
    ));
    response.results = match run.await {
        Ok(results) => results,
        Err(e) => {
            deny_all(
                &mut response,
                DenialCode::Failed,
                &format!("the action's task failed: {e}"),
            );
            return response;
        }
    };
    response.ok = response.results.iter().all(|r| r.ok);
    response
}

/// Run every target of a claimed request in parallel under its budget, recording how each
/// ended in its audit record and on the node's timeline.
async fn run_targets(
    node: ActionNode,
    checked: CheckedRequest,
    facts: Facts,
    principal: String,
    audits: Vec<AuditRecord>,
) -> Vec<TargetResult> {
    let Ok(ops) = node.operations() else {
        return Vec::new();
    };
    let deadline = tokio::time::Instant::now() + Duration::from_millis(checked.budget_ms);
    let runs = checked.targets.iter().zip(&audits).map(|((text, target), audit)| {
        let (node, checked, facts, principal) = (&node, &checked, &facts, &principal);
        async move {
            let outcome = tokio::time::timeout_at(deadline, execute(node, checked, target, facts))
                .await;
            let (result, error, detail) = match outcome {
                Ok(Ok(detail)) => (AuditResult::Ok, None, Some(detail)),
                Ok(Err(e)) => (AuditResult::Failed, Some(e), None),
                Err(_) => (
                    AuditResult::Timeout,
                    Some(format!(
                        "still running after the budget of {} ms; it may have partly completed",
                        checked.budget_ms
                    )),
                    None,
                ),
            };
            let detail_text = detail.as_ref().map(Value::to_string);
            if let Err(e) = ops
                .finish_audit(
                    &audit.audit_id,
                    node.now_ms(),
                    result,
                    error.as_deref(),
                    detail_text.as_deref(),
                )
                .await
            {
                tracing::error!(audit_id = %audit.audit_id, error = %e, "could not record how an action ended");
            }
            tracing::info!(action = checked.action.as_str(), target = %text, result = result.as_str(), audit_id = %audit.audit_id, "operator action");
            (node.timeline)(
                TimelineEvent::new(
                    node.now_ms(),
                    EventKind::AdminAction,
                    text.clone(),
                    format!(
                        "{} by {principal}: {}",
                        checked.action.as_str(),
                        error.as_deref().unwrap_or(result.as_str())
                    ),
                )
                .with_audit_id(audit.audit_id.clone()),
            );
            result_of(text, result, error, detail, &audit.audit_id)
        }
    });
    futures_util::future::join_all(runs).await
}

/// A dispatch whose request ID another dispatch claimed first (concurrently): the stored
/// result when that one is the same request, else a conflict (and this one's own records, if
/// any were written, end as failed: nothing of it ran).
async fn claimed_elsewhere(
    node: &ActionNode,
    checked: &CheckedRequest,
    principal: &Principal,
    mut response: DispatchResponse,
    records: Vec<AuditRecord>,
    stored: Vec<AuditRecord>,
) -> DispatchResponse {
    let mine: Vec<&AuditRecord> = records
        .iter()
        .zip(&stored)
        .filter(|(r, s)| r.audit_id == s.audit_id)
        .map(|(r, _)| r)
        .collect();
    if let Ok(ops) = node.operations() {
        for record in &mine {
            let _ = ops
                .finish_audit(
                    &record.audit_id,
                    node.now_ms(),
                    AuditResult::Failed,
                    Some("not run: another dispatch of this request_id holds other targets"),
                    None,
                )
                .await;
        }
    }
    let same = mine.is_empty()
        && stored
            .iter()
            .all(|r| r.action == checked.action.as_str() && r.principal == principal.name);
    if !same {
        let reason = format!(
            "request_id {:?} is in use by another dispatch with other targets, another action or another caller",
            response.request_id
        );
        deny_all(&mut response, DenialCode::Conflict, &reason);
        return response;
    }
    let now = node.now_ms();
    response.replayed = true;
    response.results = stored.iter().map(|r| from_record(r, now)).collect();
    response.ok = response.results.iter().all(|r| r.ok);
    response
}

/// The stored result of a request ID seen before, or a conflict when it named another action
/// or other targets; `None` for a new request ID.
async fn replay(
    node: &ActionNode,
    checked: &CheckedRequest,
    principal: &Principal,
    response: &mut DispatchResponse,
) -> Option<DispatchResponse> {
    let ops = node.operations().ok()?;
    let stored = ops
        .list_audit(&AuditQuery {
            request_id: Some(response.request_id.clone()),
            ..AuditQuery::default()
        })
        .await
        .ok()?;
    if stored.is_empty() {
        return None;
    }
    let mut targets: Vec<&str> = checked.targets.iter().map(|(t, _)| t.as_str()).collect();
    let mut stored_targets: Vec<&str> = stored.iter().map(|r| r.target.as_str()).collect();
    targets.sort_unstable();
    stored_targets.sort_unstable();
    let mut replayed = response.clone();
    if stored
        .iter()
        .any(|r| r.action != checked.action.as_str() || r.principal != principal.name)
        || targets != stored_targets
    {
        deny_all(
            &mut replayed,
            DenialCode::Conflict,
            &format!(
                "request_id {:?} was used for {} on {} by {}",
                response.request_id,
                stored[0].action,
                stored_targets.join(", "),
                stored[0].principal
            ),
        );
        return Some(replayed);
    }
    replayed.replayed = true;
    replayed.dry_run = false;
    let now = node.now_ms();
    replayed.results = checked
        .targets
        .iter()
        .filter_map(|(text, _)| stored.iter().find(|r| &r.target == text))
        .map(|r| from_record(r, now))
        .collect();
    replayed.ok = replayed.results.iter().all(|r| r.ok);
    Some(replayed)
}

fn deny_all(response: &mut DispatchResponse, code: DenialCode, reason: &str) {
    let targets: Vec<String> = response
        .preflight
        .decisions
        .iter()
        .map(|d| d.target.clone())
        .collect();
    response.preflight.decisions = targets
        .iter()
        .map(|t| Decision::denied(t, code, reason))
        .collect();
    finish(&mut response.preflight);
    response.ok = false;
    response.results.clear();
}

/// How long after it started a record still `pending` is taken for one whose node stopped
/// while it ran: well past any budget.
const PENDING_GIVEN_UP_MS: i64 = MAX_BUDGET_MS as i64 + 60_000;

/// A stored record as a result, at `now_ms`.
fn from_record(record: &AuditRecord, now_ms: i64) -> TargetResult {
    if record.result == AuditResult::Pending
        && now_ms.saturating_sub(record.started_ms) > PENDING_GIVEN_UP_MS
    {
        return result_of(
            &record.target,
            AuditResult::Timeout,
            Some("no end was recorded: the node that ran it may have stopped meanwhile".into()),
            None,
            &record.audit_id,
        );
    }
    result_of(
        &record.target,
        record.result,
        record.error.clone(),
        record
            .detail
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok()),
        &record.audit_id,
    )
}

fn result_of(
    target: &str,
    result: AuditResult,
    error: Option<String>,
    detail: Option<Value>,
    audit_id: &str,
) -> TargetResult {
    let denial_code = match result {
        AuditResult::Ok | AuditResult::Pending => None,
        AuditResult::Failed => Some(DenialCode::Failed),
        AuditResult::Timeout => Some(DenialCode::Timeout),
    };
    TargetResult {
        target: target.to_owned(),
        ok: result == AuditResult::Ok,
        result: Some(result),
        denial_code,
        denial_reason: error,
        audit_id: Some(audit_id.to_owned()),
        detail,
    }
}

/// Run the action on one allowed target; its detail on success.
async fn execute(
    node: &ActionNode,
    checked: &CheckedRequest,
    target: &Target,
    facts: &Facts,
) -> Result<Value, String> {
    let address_of = |host_id: &str| {
        facts
            .observation
            .hosts
            .iter()
            .find(|h| h.host_id == host_id)
            .map(|h| h.address.clone())
            .ok_or_else(|| format!("host {host_id} is no longer registered"))
    };
    match (checked.action, target) {
        (ActionType::DrainHost, Target::Host(host_id)) => {
            if !node
                .operations()?
                .set_host_draining(host_id, true)
                .await
                .map_err(|e| e.to_string())?
            {
                return Err(format!("host {host_id} is no longer registered"));
            }
            let address = address_of(host_id)?;
            let halted = node.relay(host_id, &address, HostOrder::Drain).await.map_err(|e| {
                format!("host {host_id} takes no new actors, but it was not told to let its actors go: {e}")
            })?;
            Ok(json!({"draining": true, "actors_deactivated": halted}))
        }
        (ActionType::ResumeHost, Target::Host(host_id)) => {
            if !node
                .operations()?
                .set_host_draining(host_id, false)
                .await
                .map_err(|e| e.to_string())?
            {
                return Err(format!("host {host_id} is no longer registered"));
            }
            Ok(json!({"draining": false}))
        }
        (ActionType::SetLogLevel, Target::Host(host_id)) => {
            let filter = checked.filter.clone().unwrap_or_default();
            let address = address_of(host_id)?;
            node.relay(
                host_id,
                &address,
                HostOrder::SetLogLevel {
                    filter: filter.clone(),
                },
            )
            .await?;
            Ok(json!({"filter": filter}))
        }
        (ActionType::HaltActor, Target::Actor(key)) => {
            let host_id = facts
                .actor_hosts
                .iter()
                .find(|(k, _)| k == key)
                .and_then(|(_, h)| h.clone())
                .ok_or_else(|| format!("actor {key} is not active"))?;
            let address = address_of(&host_id)?;
            let order = HostOrder::HaltActor {
                actor_type: key.actor_type.clone(),
                actor_id: key.actor_id.clone(),
            };
            let halted = node.relay(&host_id, &address, order).await?;
            Ok(json!({"host_id": host_id, "actors_deactivated": halted}))
        }
        (ActionType::HaltType, Target::Type(actor_type)) => {
            let hosts: Vec<(String, String)> = facts
                .observation
                .hosts
                .iter()
                .filter(|h| {
                    h.healthy
                        && facts
                            .observation
                            .placements
                            .iter()
                            .any(|p| p.host_id == h.host_id && &p.actor_type == actor_type)
                })
                .map(|h| (h.host_id.clone(), h.address.clone()))
                .collect();
            let relayed = futures_util::future::join_all(hosts.iter().map(|(host_id, address)| {
                node.relay(
                    host_id,
                    address,
                    HostOrder::HaltType {
                        actor_type: actor_type.clone(),
                    },
                )
            }))
            .await;
            let mut halted = 0;
            let mut failures = Vec::new();
            for ((host_id, _), outcome) in hosts.iter().zip(relayed) {
                match outcome {
                    Ok(n) => halted += n,
                    Err(e) => failures.push(format!("{host_id}: {e}")),
                }
            }
            if failures.is_empty() {
                Ok(json!({"hosts": hosts.len(), "actors_deactivated": halted}))
            } else {
                Err(format!(
                    "{halted} actors deactivated, but {} of {} hosts failed: {}",
                    failures.len(),
                    hosts.len(),
                    failures.join("; ")
                ))
            }
        }
        (ActionType::DeleteAlarm, Target::Alarm(key, name)) => {
            let deleted = node
                .store
                .delete_alarm(key, name)
                .await
                .map_err(|e| e.to_string())?;
            Ok(json!({"deleted": deleted}))
        }
        (ActionType::ReplayDeadLetter, Target::DeadLetter(id)) => {
            let (replayed, alarm_id) = node
                .operations()?
                .replay_dead_letter(id, node.now_ms())
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no dead letter {id} (replayed already?)"))?;
            let mut detail = json!({
                "actor": replayed.key.to_string(),
                "alarm": replayed.name,
                "handler": replayed.handler,
            });
            if replayed.job_id.is_some() {
                detail["jobId"] = json!(alarm_id);
            }
            Ok(detail)
        }
        (action, target) => Err(format!("{} cannot act on {target:?}", action.as_str())),
    }
}

/// The HTTP status of a preflight or dispatch answer: 200 when allowed (or executed), else by
/// the first denial.
pub(crate) fn status_of(preflight: &PreflightResponse) -> StatusCode {
    match preflight.denial_code {
        None => StatusCode::OK,
        Some(DenialCode::ContractViolation) => StatusCode::BAD_REQUEST,
        Some(DenialCode::PermissionDenied | DenialCode::NotConfigured) => StatusCode::FORBIDDEN,
        Some(DenialCode::TargetUnknown) => StatusCode::NOT_FOUND,
        Some(DenialCode::Conflict) => StatusCode::CONFLICT,
        Some(DenialCode::TargetUnreachable | DenialCode::Timeout | DenialCode::Failed) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

/// Parse an action request body, or the response that says what is wrong with it.
pub(crate) fn parse_request(body: &Bytes) -> Result<ActionRequest, Problem> {
    if body.len() > MAX_ACTION_BODY_BYTES {
        return Err(problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "contract_violation",
            format!("the request body is over {MAX_ACTION_BODY_BYTES} bytes"),
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        problem(
            StatusCode::BAD_REQUEST,
            "contract_violation",
            format!("the body is not an action request ({e}); send JSON with api_version, request_id, action_type, targets, and optionally dry_run, budget_ms and payload"),
        )
    })
}

/// A JSON error answer: `{"error": ..., "code": ...}` with its status.
pub(crate) struct Problem {
    status: StatusCode,
    code: &'static str,
    error: String,
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(json!({"error": self.error, "code": self.code})),
        )
            .into_response()
    }
}

/// A [`Problem`].
pub(crate) fn problem(status: StatusCode, code: &'static str, error: String) -> Problem {
    Problem {
        status,
        code,
        error,
    }
}

/// `POST /api/cluster/actions/preflight`.
pub(crate) async fn preflight_response(
    node: &ActionNode,
    body: &Bytes,
    principal: &Principal,
) -> Response {
    let request = match parse_request(body) {
        Ok(request) => request,
        Err(problem) => return problem.into_response(),
    };
    let (_, _, answer) = preflight(node, &request, principal).await;
    (status_of(&answer), axum::Json(answer)).into_response()
}

/// `POST /api/cluster/actions/dispatch`.
pub(crate) async fn dispatch_response(
    node: &ActionNode,
    body: &Bytes,
    principal: &Principal,
) -> Response {
    let request = match parse_request(body) {
        Ok(request) => request,
        Err(problem) => return problem.into_response(),
    };
    let answer = dispatch(node, &request, principal).await;
    let status = if answer.replayed || !answer.results.is_empty() {
        StatusCode::OK
    } else {
        status_of(&answer.preflight)
    };
    (status, axum::Json(answer)).into_response()
}

/// The query of `GET /api/cluster/audit`.
#[derive(Debug, Deserialize)]
pub(crate) struct AuditParams {
    request_id: Option<String>,
    before_ms: Option<i64>,
    limit: Option<u32>,
}

/// `GET /api/cluster/audit`: audit records, newest first.
pub(crate) async fn audit_response(node: &ActionNode, params: AuditParams) -> Response {
    let query = AuditQuery {
        request_id: params.request_id,
        before_ms: params.before_ms,
        limit: params.limit.unwrap_or(0),
    };
    listing(node, "records", "the audit trail", move |ops| {
        Box::pin(async move { Ok(json!(ops.list_audit(&query).await?)) })
    })
    .await
}

/// Answer `{"api_version": ..., <field>: <what read returns>}` from the operations store, or
/// why it cannot.
async fn listing(
    node: &ActionNode,
    field: &str,
    what: &str,
    read: impl for<'a> FnOnce(&'a dyn OperationsStore) -> BoxFuture<'a, Result<Value, StoreError>>,
) -> Response {
    let ops = match node.operations() {
        Ok(ops) => ops,
        Err(reason) => {
            return problem(StatusCode::CONFLICT, "served_by_runtime", reason).into_response();
        }
    };
    match read(ops).await {
        Ok(list) => (
            StatusCode::OK,
            axum::Json(json!({"api_version": API_VERSION, field: list})),
        )
            .into_response(),
        Err(e) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            format!("cannot read {what}: {e}"),
        )
        .into_response(),
    }
}

/// The query of `GET /api/cluster/dead-letters`.
#[derive(Debug, Deserialize)]
pub(crate) struct DeadLetterParams {
    actor_type: Option<String>,
    limit: Option<u32>,
}

/// `GET /api/cluster/dead-letters`: alarm occurrences given up on, newest first.
pub(crate) async fn dead_letters_response(node: &ActionNode, params: DeadLetterParams) -> Response {
    let query = DeadLetterQuery {
        actor_type: params.actor_type,
        limit: params.limit.unwrap_or(0),
    };
    listing(node, "dead_letters", "the dead letters", move |ops| {
        Box::pin(async move {
            let letters: Vec<Value> = ops
                .list_dead_letters(&query)
                .await?
                .into_iter()
                .map(|d| {
                    json!({
                        "id": d.id,
                        "actor_type": d.key.actor_type,
                        "actor_id": d.key.actor_id,
                        "alarm": d.name,
                        "handler": d.handler,
                        "scheduled_ms": d.scheduled_ms,
                        "attempts": d.attempts,
                        "last_error": d.last_error,
                        "dropped_ms": d.dropped_ms,
                        "data_bytes": d.data.as_ref().map_or(0, Vec::len),
                    })
                })
                .collect();
            Ok(Value::Array(letters))
        })
    })
    .await
}
