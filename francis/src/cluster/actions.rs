//! Operators' actions on a cluster, the pure half: the request envelope that
//! `POST /api/cluster/actions/preflight` and `/dispatch` take, the closed set of denial codes,
//! and [`decide`], which judges each target from facts gathered beforehand. Running the
//! actions (and auditing them) is the executor's job (`crate::http::actions`).
//!
//! Preflight checks in this order, and the first check that fails decides a target's code:
//!
//! 1. **contract** (`contract_violation`): `api_version` of major 1, a `request_id` of 1 to 128
//!    characters (letters, digits, `.`, `_`, `:`, `-`), a known `action_type`, 1 to
//!    [`MAX_TARGETS`] distinct targets each written as the action wants it, the payload the
//!    action needs, and `budget_ms` of at most [`MAX_BUDGET_MS`]; a broken contract denies every
//!    target;
//! 2. **role** (`permission_denied`): the caller's role is at least the action's;
//! 3. **target** (`target_unknown`, `target_unreachable`): the target exists and, when the
//!    action needs its host, the host is healthy;
//! 4. **profile** (`not_configured`): under the `prod` profile, an unauthenticated caller (the
//!    `loopback` principal of a server without credentials) may not act.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::state::{Role, check_api_version};
use crate::model::{ActorKey, ClusterObservation};

/// The most targets one request may name.
pub const MAX_TARGETS: usize = 100;

/// The longest budget a request may ask for, in milliseconds.
pub const MAX_BUDGET_MS: u64 = 10_000;

/// The budget of a request that names none, in milliseconds.
pub const DEFAULT_BUDGET_MS: u64 = 1_500;

/// The longest request ID.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// The principal of a caller the server did not authenticate (a loopback server without
/// credentials).
pub const UNAUTHENTICATED: &str = "loopback";

/// An action request, as `POST /api/cluster/actions/preflight` and `/dispatch` take it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRequest {
    /// The contract version the caller speaks: `1.x`.
    pub api_version: String,
    /// The caller's ID for this request: a dispatch replayed with it returns the stored result
    /// instead of acting again.
    pub request_id: String,
    /// What to do (see [`ActionType`]).
    pub action_type: String,
    /// What to act on, as the action names it (see [`ActionType::target_form`]).
    #[serde(default)]
    pub targets: Vec<String>,
    /// Check only: run preflight and execute nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// How long the dispatch may take, in milliseconds (default [`DEFAULT_BUDGET_MS`], at most
    /// [`MAX_BUDGET_MS`]); targets still running at the deadline report `timeout`.
    #[serde(default)]
    pub budget_ms: Option<u64>,
    /// What the action needs besides its targets (e.g. `{"filter": "debug"}`).
    #[serde(default)]
    pub payload: Value,
}

/// The actions an operator can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionType {
    /// Stop placing actors on a host and deactivate its actors, so they move.
    DrainHost,
    /// Let a drained host take placements again.
    ResumeHost,
    /// Deactivate one actor (it activates again on its next call).
    HaltActor,
    /// Deactivate every active actor of a type, on every host.
    HaltType,
    /// Delete one alarm.
    DeleteAlarm,
    /// Run a dead-lettered alarm occurrence again, now.
    ReplayDeadLetter,
    /// Change a host's log filter (payload `{"filter": "debug"}`).
    SetLogLevel,
}

impl ActionType {
    /// Every action.
    pub const ALL: [ActionType; 7] = [
        ActionType::DrainHost,
        ActionType::ResumeHost,
        ActionType::HaltActor,
        ActionType::HaltType,
        ActionType::DeleteAlarm,
        ActionType::ReplayDeadLetter,
        ActionType::SetLogLevel,
    ];

    /// The action's name: `drain_host`, `halt_actor`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            ActionType::DrainHost => "drain_host",
            ActionType::ResumeHost => "resume_host",
            ActionType::HaltActor => "halt_actor",
            ActionType::HaltType => "halt_type",
            ActionType::DeleteAlarm => "delete_alarm",
            ActionType::ReplayDeadLetter => "replay_dead_letter",
            ActionType::SetLogLevel => "set_log_level",
        }
    }

    /// The action named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// The lowest role allowed to take it: changing what a process logs is the admin's (logs
    /// may carry data); everything else is the operator's.
    pub fn role(self) -> Role {
        match self {
            ActionType::SetLogLevel => Role::Admin,
            _ => Role::Operator,
        }
    }

    /// How a target of this action is written.
    pub fn target_form(self) -> &'static str {
        match self {
            ActionType::DrainHost | ActionType::ResumeHost | ActionType::SetLogLevel => "a host ID",
            ActionType::HaltActor => "<actor type>/<actor ID>",
            ActionType::HaltType => "an actor type",
            ActionType::DeleteAlarm => "<actor type>/<actor ID>/<alarm name>",
            ActionType::ReplayDeadLetter => "a dead letter ID",
        }
    }
}

/// Why a target was denied, or did not succeed: a closed set, each with a hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenialCode {
    /// The request breaks the envelope's contract.
    ContractViolation,
    /// The caller's role is too low for the action.
    PermissionDenied,
    /// The target does not exist.
    TargetUnknown,
    /// The target's host is not healthy or did not answer.
    TargetUnreachable,
    /// The security profile forbids it.
    NotConfigured,
    /// The request ID was used before for another action or other targets.
    Conflict,
    /// The target was still running when the budget ran out.
    Timeout,
    /// The action ran and failed.
    Failed,
}

impl DenialCode {
    /// The code's name.
    pub fn as_str(self) -> &'static str {
        match self {
            DenialCode::ContractViolation => "contract_violation",
            DenialCode::PermissionDenied => "permission_denied",
            DenialCode::TargetUnknown => "target_unknown",
            DenialCode::TargetUnreachable => "target_unreachable",
            DenialCode::NotConfigured => "not_configured",
            DenialCode::Conflict => "conflict",
            DenialCode::Timeout => "timeout",
            DenialCode::Failed => "failed",
        }
    }

    /// What to do about it.
    pub fn remediation_hint(self) -> &'static str {
        match self {
            DenialCode::ContractViolation => {
                "fix the request as the reason says (see the operations chapter for the envelope)"
            }
            DenialCode::PermissionDenied => {
                "use a credential of a higher role (FRANCIS_HTTP_OPERATOR_TOKEN or FRANCIS_HTTP_TOKEN, or an operator certificate of that role)"
            }
            DenialCode::TargetUnknown => {
                "check the target against GET /api/cluster/state (or francis cluster status)"
            }
            DenialCode::TargetUnreachable => {
                "wait until the host is online again, or let the cluster declare it dead; its actors then move by themselves"
            }
            DenialCode::NotConfigured => {
                "authenticate the operations API (a token from the environment or an operator certificate): the prod profile takes no actions from unauthenticated callers"
            }
            DenialCode::Conflict => "use a fresh request_id for a new request",
            DenialCode::Timeout => {
                "give a larger budget_ms, or look at the audit record later: the action may still complete"
            }
            DenialCode::Failed => "read the error; the audit record keeps it",
        }
    }
}

/// What the node serving an action asks of one host (it travels to other hosts in the peer
/// protocol's admin request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum HostOrder {
    /// Deactivate every actor here, so they move (the store already places nothing new here).
    Drain,
    /// Deactivate one actor, if it is active here.
    HaltActor {
        /// Its type.
        actor_type: String,
        /// Its ID.
        actor_id: String,
    },
    /// Deactivate every actor of a type active here.
    HaltType {
        /// The type.
        actor_type: String,
    },
    /// Change this process's log filter (a `tracing` directive such as `debug` or
    /// `info,francis=debug`).
    SetLogLevel {
        /// The new filter.
        filter: String,
    },
}

/// A parsed target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A host, by ID.
    Host(String),
    /// An actor.
    Actor(ActorKey),
    /// An actor type.
    Type(String),
    /// One alarm of an actor.
    Alarm(ActorKey, String),
    /// A dead letter, by ID.
    DeadLetter(String),
}

impl Target {
    /// `text` as a target of `action`, or why it is not one.
    pub fn parse(action: ActionType, text: &str) -> Result<Target, String> {
        let name = |what: &'static str, value: &str| {
            crate::error::validate_name(what, value)
                .map(|()| value.to_owned())
                .map_err(|e| e.to_string())
        };
        let parts: Vec<&str> = text.split('/').collect();
        let wrong = || {
            format!(
                "target {:?} is not {}",
                text.chars().take(80).collect::<String>(),
                action.target_form()
            )
        };
        match action {
            ActionType::DrainHost | ActionType::ResumeHost | ActionType::SetLogLevel => {
                match parts.as_slice() {
                    [host] => Ok(Target::Host(name("host ID", host)?)),
                    _ => Err(wrong()),
                }
            }
            ActionType::HaltActor => match parts.as_slice() {
                [actor_type, actor_id] => Ok(Target::Actor(ActorKey::new(
                    name("actor type", actor_type)?,
                    name("actor ID", actor_id)?,
                ))),
                _ => Err(wrong()),
            },
            ActionType::HaltType => match parts.as_slice() {
                [actor_type] => Ok(Target::Type(name("actor type", actor_type)?)),
                _ => Err(wrong()),
            },
            ActionType::DeleteAlarm => match parts.as_slice() {
                [actor_type, actor_id, alarm] => Ok(Target::Alarm(
                    ActorKey::new(name("actor type", actor_type)?, name("actor ID", actor_id)?),
                    name("alarm name", alarm)?,
                )),
                _ => Err(wrong()),
            },
            ActionType::ReplayDeadLetter => match parts.as_slice() {
                [id] => Ok(Target::DeadLetter(name("dead letter ID", id)?)),
                _ => Err(wrong()),
            },
        }
    }
}

/// A request that passed the contract check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedRequest {
    /// The action.
    pub action: ActionType,
    /// The targets, parsed, in request order, with their text.
    pub targets: Vec<(String, Target)>,
    /// The budget in milliseconds.
    pub budget_ms: u64,
    /// For `set_log_level`: the filter.
    pub filter: Option<String>,
}

/// Check `request` against the envelope's contract (step 1).
pub fn check_contract(request: &ActionRequest) -> Result<CheckedRequest, String> {
    check_api_version(&request.api_version).map_err(|e| e.to_string())?;
    let id = &request.request_id;
    if id.is_empty()
        || id.len() > MAX_REQUEST_ID_LEN
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
    {
        return Err(format!(
            "request_id must be 1 to {MAX_REQUEST_ID_LEN} letters, digits, '.', '_', ':' or '-'; make one per request (e.g. a UUID) and reuse it only to replay that request"
        ));
    }
    let action = ActionType::parse(&request.action_type).ok_or_else(|| {
        let known: Vec<&str> = ActionType::ALL.iter().map(|a| a.as_str()).collect();
        format!(
            "unknown action_type {:?}; the actions are {}",
            request.action_type.chars().take(64).collect::<String>(),
            known.join(", ")
        )
    })?;
    if request.targets.is_empty() || request.targets.len() > MAX_TARGETS {
        return Err(format!(
            "targets must name 1 to {MAX_TARGETS} targets ({} each)",
            action.target_form()
        ));
    }
    let mut targets = Vec::with_capacity(request.targets.len());
    for text in &request.targets {
        if targets.iter().any(|(seen, _)| seen == text) {
            return Err(format!("target {text:?} is named twice"));
        }
        targets.push((text.clone(), Target::parse(action, text)?));
    }
    let budget_ms = request.budget_ms.unwrap_or(DEFAULT_BUDGET_MS);
    if budget_ms == 0 || budget_ms > MAX_BUDGET_MS {
        return Err(format!(
            "budget_ms must be 1 to {MAX_BUDGET_MS} (default {DEFAULT_BUDGET_MS})"
        ));
    }
    let filter = match action {
        ActionType::SetLogLevel => {
            let filter = request
                .payload
                .get("filter")
                .and_then(Value::as_str)
                .filter(|f| !f.trim().is_empty() && f.len() <= 1024)
                .ok_or("set_log_level needs payload {\"filter\": \"<tracing filter>\"}, e.g. \"debug\" or \"info,francis=debug\" (at most 1024 bytes)")?;
            Some(filter.to_owned())
        }
        _ => None,
    };
    Ok(CheckedRequest {
        action,
        targets,
        budget_ms,
        filter,
    })
}

/// What preflight knows about the cluster, gathered by the executor before it decides.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The store's hosts, placements and due alarms.
    pub observation: ClusterObservation,
    /// For each `halt_actor` target: the host its actor is active on, if any.
    pub actor_hosts: Vec<(ActorKey, Option<String>)>,
    /// For each `delete_alarm` target: whether the alarm exists.
    pub alarms: Vec<((ActorKey, String), bool)>,
    /// Whether the node runs the `prod` profile.
    pub prod: bool,
}

/// How many actors an allowed action moves or stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlastRadius {
    /// Actors deactivated (they activate again on their next call, elsewhere for a drain).
    pub actors: u64,
}

/// The decision for one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The target, as the request wrote it.
    pub target: String,
    /// Whether the action may run on it.
    pub allowed: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub denial_code: Option<DenialCode>,
    /// The reason, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub denial_reason: Option<String>,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remediation_hint: Option<String>,
    /// What an allowed action would touch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blast_radius: Option<BlastRadius>,
}

impl Decision {
    fn allowed(target: &str, blast_radius: Option<BlastRadius>) -> Self {
        Decision {
            target: target.to_owned(),
            allowed: true,
            denial_code: None,
            denial_reason: None,
            remediation_hint: None,
            blast_radius,
        }
    }

    /// A denial of `target` with `code` and `reason`.
    pub fn denied(target: &str, code: DenialCode, reason: impl Into<String>) -> Self {
        Decision {
            target: target.to_owned(),
            allowed: false,
            denial_code: Some(code),
            denial_reason: Some(reason.into()),
            remediation_hint: Some(code.remediation_hint().to_owned()),
            blast_radius: None,
        }
    }
}

/// Decide each target of a request that passed the contract (steps 2 to 4), for a caller of
/// `role` named `principal`.
pub fn decide(
    request: &CheckedRequest,
    principal: &str,
    role: Role,
    facts: &Facts,
) -> Vec<Decision> {
    let action = request.action;
    if role < action.role() {
        return request
            .targets
            .iter()
            .map(|(text, _)| {
                Decision::denied(
                    text,
                    DenialCode::PermissionDenied,
                    format!(
                        "{} needs the {} role; this caller is a {role}",
                        action.as_str(),
                        action.role()
                    ),
                )
            })
            .collect();
    }
    request
        .targets
        .iter()
        .map(|(text, target)| {
            let decision = decide_target(text, target, facts);
            if decision.allowed && facts.prod && principal == UNAUTHENTICATED {
                return Decision::denied(
                    text,
                    DenialCode::NotConfigured,
                    "the prod profile takes no action from an unauthenticated caller",
                );
            }
            decision
        })
        .collect()
}

fn decide_target(text: &str, target: &Target, facts: &Facts) -> Decision {
    let observation = &facts.observation;
    let placed_on = |host_id: &str| -> u64 {
        observation
            .placements
            .iter()
            .filter(|p| p.host_id == host_id)
            .map(|p| p.actors)
            .sum()
    };
    match target {
        Target::Host(host_id) => {
            let Some(host) = observation.hosts.iter().find(|h| &h.host_id == host_id) else {
                return Decision::denied(
                    text,
                    DenialCode::TargetUnknown,
                    format!("no host {host_id} is registered"),
                );
            };
            if !host.healthy {
                return Decision::denied(
                    text,
                    DenialCode::TargetUnreachable,
                    format!("host {host_id} missed its heartbeats: it is offline"),
                );
            }
            Decision::allowed(
                text,
                Some(BlastRadius {
                    actors: placed_on(host_id),
                }),
            )
        }
        Target::Actor(key) => {
            let known = observation
                .hosts
                .iter()
                .any(|h| h.actor_types.iter().any(|t| t.actor_type == key.actor_type));
            if !known {
                return Decision::denied(
                    text,
                    DenialCode::TargetUnknown,
                    format!("no host serves actor type {:?}", key.actor_type),
                );
            }
            match facts.actor_hosts.iter().find(|(k, _)| k == key) {
                Some((_, Some(host_id))) => {
                    let healthy = observation
                        .hosts
                        .iter()
                        .any(|h| &h.host_id == host_id && h.healthy);
                    if healthy {
                        Decision::allowed(text, Some(BlastRadius { actors: 1 }))
                    } else {
                        Decision::denied(
                            text,
                            DenialCode::TargetUnreachable,
                            format!("actor {key} is on host {host_id}, which is offline"),
                        )
                    }
                }
                _ => Decision::denied(
                    text,
                    DenialCode::TargetUnknown,
                    format!("actor {key} is not active: there is nothing to halt"),
                ),
            }
        }
        Target::Type(actor_type) => {
            let known = observation
                .hosts
                .iter()
                .any(|h| h.actor_types.iter().any(|t| &t.actor_type == actor_type));
            if !known {
                return Decision::denied(
                    text,
                    DenialCode::TargetUnknown,
                    format!("no host serves actor type {actor_type:?}"),
                );
            }
            let actors = observation
                .placements
                .iter()
                .filter(|p| &p.actor_type == actor_type)
                .map(|p| p.actors)
                .sum();
            Decision::allowed(text, Some(BlastRadius { actors }))
        }
        Target::Alarm(key, name) => {
            let exists = facts
                .alarms
                .iter()
                .any(|((k, n), exists)| k == key && n == name && *exists);
            if exists {
                Decision::allowed(text, None)
            } else {
                Decision::denied(
                    text,
                    DenialCode::TargetUnknown,
                    format!("actor {key} has no alarm {name:?}"),
                )
            }
        }
        // Whether it still exists is found when it is replayed.
        Target::DeadLetter(_) => Decision::allowed(text, None),
    }
}

/// The first denial of `decisions`, which the response repeats at its top.
pub fn first_denial(decisions: &[Decision]) -> Option<&Decision> {
    decisions.iter().find(|d| !d.allowed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ActorTypeRegistration, ObservedHost, PlacementCount};
    use serde_json::json;

    fn request(action: &str, targets: &[&str]) -> ActionRequest {
        ActionRequest {
            api_version: "1.0".into(),
            request_id: "r-1".into(),
            action_type: action.into(),
            targets: targets.iter().map(|t| (*t).to_owned()).collect(),
            dry_run: false,
            budget_ms: None,
            payload: Value::Null,
        }
    }

    fn facts() -> Facts {
        let host = |id: &str, healthy: bool| ObservedHost {
            host_id: id.into(),
            address: format!("{id}:7000"),
            version: None,
            last_heartbeat_ms: 0,
            healthy,
            draining: false,
            actor_types: vec![ActorTypeRegistration {
                actor_type: "counter".into(),
                idle_timeout: None,
                concurrency_limit: 0,
            }],
        };
        Facts {
            observation: ClusterObservation {
                hosts: vec![host("h1", true), host("h2", false)],
                placements: vec![
                    PlacementCount {
                        host_id: "h1".into(),
                        actor_type: "counter".into(),
                        actors: 5,
                    },
                    PlacementCount {
                        host_id: "h2".into(),
                        actor_type: "counter".into(),
                        actors: 2,
                    },
                ],
                ..ClusterObservation::default()
            },
            actor_hosts: vec![
                (ActorKey::new("counter", "a"), Some("h1".into())),
                (ActorKey::new("counter", "b"), Some("h2".into())),
                (ActorKey::new("counter", "idle"), None),
            ],
            alarms: vec![((ActorKey::new("counter", "a"), "tick".into()), true)],
            prod: false,
        }
    }

    fn codes(action: &str, targets: &[&str], role: Role, facts: &Facts) -> Vec<Option<DenialCode>> {
        let checked = check_contract(&request(action, targets)).unwrap();
        decide(&checked, "token:x", role, facts)
            .into_iter()
            .map(|d| d.denial_code)
            .collect()
    }

    #[test]
    fn the_contract_is_checked_first_and_says_what_is_wrong() {
        let mut bad_version = request("drain_host", &["h1"]);
        bad_version.api_version = "2.0".into();
        let mut bad_id = request("drain_host", &["h1"]);
        bad_id.request_id = "has space".into();
        let mut long_id = request("drain_host", &["h1"]);
        long_id.request_id = "x".repeat(MAX_REQUEST_ID_LEN + 1);
        let mut big_budget = request("drain_host", &["h1"]);
        big_budget.budget_ms = Some(MAX_BUDGET_MS + 1);
        let many: Vec<String> = (0..=MAX_TARGETS).map(|i| format!("h{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        for (request, says) in [
            (bad_version, "2.0"),
            (bad_id, "request_id"),
            (long_id, "request_id"),
            (request("reboot", &["h1"]), "unknown action_type"),
            (request("drain_host", &[]), "targets"),
            (request("drain_host", &many), "targets"),
            (request("drain_host", &["h1", "h1"]), "twice"),
            (
                request("halt_actor", &["counter"]),
                "<actor type>/<actor ID>",
            ),
            (request("delete_alarm", &["counter/a"]), "alarm name"),
            (request("halt_type", &["a/b"]), "an actor type"),
            (request("set_log_level", &["h1"]), "payload"),
            (big_budget, "budget_ms"),
        ] {
            let error = check_contract(&request).unwrap_err();
            assert!(error.contains(says), "{error:?} should say {says:?}");
        }
        let mut level = request("set_log_level", &["h1"]);
        level.payload = json!({"filter": "info,francis=debug"});
        let checked = check_contract(&level).unwrap();
        assert_eq!(checked.filter.as_deref(), Some("info,francis=debug"));
        assert_eq!(checked.budget_ms, DEFAULT_BUDGET_MS);
    }

    #[test]
    fn a_role_too_low_denies_every_target_before_looking_at_them() {
        let facts = facts();
        assert_eq!(
            codes("drain_host", &["h1", "nope"], Role::Viewer, &facts),
            [Some(DenialCode::PermissionDenied); 2]
        );
        let mut level = request("set_log_level", &["h1"]);
        level.payload = json!({"filter": "debug"});
        let checked = check_contract(&level).unwrap();
        let decisions = decide(&checked, "token:x", Role::Operator, &facts);
        assert_eq!(decisions[0].denial_code, Some(DenialCode::PermissionDenied));
        assert!(
            decisions[0]
                .denial_reason
                .as_deref()
                .unwrap()
                .contains("admin")
        );
        assert!(decide(&checked, "token:x", Role::Admin, &facts)[0].allowed);
    }

    #[test]
    fn targets_are_judged_with_their_blast_radius() {
        let facts = facts();
        let checked = check_contract(&request("drain_host", &["h1", "h2", "h9"])).unwrap();
        let decisions = decide(&checked, "token:x", Role::Operator, &facts);
        assert!(decisions[0].allowed);
        assert_eq!(decisions[0].blast_radius, Some(BlastRadius { actors: 5 }));
        assert_eq!(
            decisions[1].denial_code,
            Some(DenialCode::TargetUnreachable)
        );
        assert_eq!(decisions[2].denial_code, Some(DenialCode::TargetUnknown));
        assert_eq!(first_denial(&decisions).unwrap().target, "h2");
        assert_eq!(
            codes(
                "halt_actor",
                &["counter/a", "counter/b", "counter/idle", "ghost/a"],
                Role::Operator,
                &facts
            ),
            [
                None,
                Some(DenialCode::TargetUnreachable),
                Some(DenialCode::TargetUnknown),
                Some(DenialCode::TargetUnknown)
            ]
        );
        let checked = check_contract(&request("halt_type", &["counter", "ghost"])).unwrap();
        let decisions = decide(&checked, "token:x", Role::Operator, &facts);
        assert_eq!(decisions[0].blast_radius, Some(BlastRadius { actors: 7 }));
        assert_eq!(decisions[1].denial_code, Some(DenialCode::TargetUnknown));
        assert_eq!(
            codes(
                "delete_alarm",
                &["counter/a/tick", "counter/a/other"],
                Role::Operator,
                &facts
            ),
            [None, Some(DenialCode::TargetUnknown)]
        );
    }

    #[test]
    fn prod_takes_no_action_from_an_unauthenticated_caller() {
        let mut facts = facts();
        facts.prod = true;
        let checked = check_contract(&request("drain_host", &["h1", "h9"])).unwrap();
        let decisions = decide(&checked, UNAUTHENTICATED, Role::Admin, &facts);
        assert_eq!(decisions[0].denial_code, Some(DenialCode::NotConfigured));
        // The target check comes first: an unknown target says so.
        assert_eq!(decisions[1].denial_code, Some(DenialCode::TargetUnknown));
        assert!(decide(&checked, "cert:alice", Role::Admin, &facts)[0].allowed);
        facts.prod = false;
        assert!(decide(&checked, UNAUTHENTICATED, Role::Admin, &facts)[0].allowed);
    }

    #[test]
    fn every_code_has_a_name_and_a_hint() {
        for code in [
            DenialCode::ContractViolation,
            DenialCode::PermissionDenied,
            DenialCode::TargetUnknown,
            DenialCode::TargetUnreachable,
            DenialCode::NotConfigured,
            DenialCode::Conflict,
            DenialCode::Timeout,
            DenialCode::Failed,
        ] {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                json!(code.as_str()),
                "the name is the wire form"
            );
            assert!(!code.remediation_hint().is_empty());
        }
        for action in ActionType::ALL {
            assert_eq!(ActionType::parse(action.as_str()), Some(action));
        }
    }
}
