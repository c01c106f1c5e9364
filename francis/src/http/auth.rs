//! Who is calling an HTTP operations endpoint, and what they may do: roles viewer < operator <
//! admin, a principal taken from the credential (never from the request body), and the role
//! each route needs.

use axum::http::Method;
use serde::{Deserialize, Serialize};

pub use crate::cluster::Role;

/// The authenticated caller of a request, as the guard found it: handlers read it from the
/// request's extensions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// Who: `token:<role>:<first 8 hex digits of the token's SHA-256>`, or `loopback` on a
    /// server without tokens (which answers this machine only).
    pub name: String,
    /// What they may do.
    pub role: Role,
}

/// The principal of a TLS connection's client certificate, put in each request's extensions
/// by a server that verified it (the runtime's operations server with `http.tls`).
#[derive(Debug, Clone)]
pub(crate) struct ClientIdentity(pub Principal);

impl ClientIdentity {
    /// The principal of an operator identity (`spiffe://francis/operator/<role>/<name>`,
    /// already verified to chain to the cluster CA): named `cert:<name>`, with its role.
    #[cfg_attr(not(feature = "runtime"), allow(dead_code))]
    pub(crate) fn of(id: &crate::net::pki::SpiffeId) -> Option<Self> {
        let (role, name) = id.operator_role_and_name()?;
        Some(ClientIdentity(Principal {
            name: format!("cert:{name}"),
            role,
        }))
    }
}

/// What a route needs: nothing (the probes), or at least a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Need {
    /// Anyone who reaches the server: `GET /healthz` and `GET /readyz` (a platform's probes
    /// send no credentials and address the server by its IP); they reveal nothing but health.
    /// And the fleet UI's static files (`GET /ui`, `GET /ui/...`): they carry no data, and the
    /// page sends the caller's credential with every API call it makes.
    Nothing,
    /// At least this role.
    Role(Role),
}

/// The role `method path` needs: reading is for viewers, changing for operators.
pub(super) fn needed(method: &Method, path: &str) -> Need {
    let read = method == Method::GET || method == Method::HEAD;
    match path {
        "/healthz" | "/readyz" if read => Need::Nothing,
        _ if read && is_ui(path) => Need::Nothing,
        _ if read || method == Method::OPTIONS => Need::Role(Role::Viewer),
        // Each action needs its own role, which preflight checks and reports per target.
        "/api/cluster/actions/preflight" | "/api/cluster/actions/dispatch" => {
            Need::Role(Role::Viewer)
        }
        _ => Need::Role(Role::Operator),
    }
}

/// Whether `path` is the fleet UI's page or one of its files.
fn is_ui(path: &str) -> bool {
    path == super::ui::UI_PATH
        || path
            .strip_prefix(super::ui::UI_PATH)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_routes_need_the_least_that_suffices() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        assert_eq!(needed(&Method::GET, "/healthz"), Need::Nothing);
        assert_eq!(needed(&Method::GET, "/readyz"), Need::Nothing);
        assert_eq!(
            needed(&Method::POST, "/healthz"),
            Need::Role(Role::Operator),
            "only reading a probe is free"
        );
        assert_eq!(
            needed(&Method::GET, "/api/cluster/state"),
            Need::Role(Role::Viewer)
        );
        assert_eq!(needed(&Method::GET, "/metrics"), Need::Role(Role::Viewer));
        assert_eq!(
            needed(&Method::POST, "/api/cluster/actions/dispatch"),
            Need::Role(Role::Viewer),
            "an action's own role is checked by preflight, which says why"
        );
        assert_eq!(
            needed(&Method::POST, "/invoke/counter/a/increment"),
            Need::Role(Role::Operator)
        );
        assert_eq!(
            needed(&Method::DELETE, "/alarm/counter/a/tick"),
            Need::Role(Role::Operator)
        );
        assert_eq!(
            needed(&Method::GET, "/jobs/dead-letters"),
            Need::Role(Role::Viewer)
        );
        for (method, path) in [
            (Method::POST, "/jobs/order/o-1/ship"),
            (Method::DELETE, "/jobs/order/o-1/0190-job"),
            (Method::POST, "/jobs/dead-letters/0190-letter/retry"),
            (Method::POST, "/jobs/dead-letters/purge"),
        ] {
            assert_eq!(needed(&method, path), Need::Role(Role::Operator), "{path}");
        }
    }

    #[test]
    fn the_fleet_ui_files_need_nothing_but_its_data_does() {
        for path in ["/ui", "/ui/", "/ui/app.js", "/ui/app.css"] {
            assert_eq!(needed(&Method::GET, path), Need::Nothing, "{path}");
            assert_eq!(needed(&Method::HEAD, path), Need::Nothing, "{path}");
        }
        assert_eq!(
            needed(&Method::POST, "/ui"),
            Need::Role(Role::Operator),
            "only reading the page is free"
        );
        for path in ["/uix", "/ui.js", "/api/cluster/state", "/status", "/u"] {
            assert_eq!(
                needed(&Method::GET, path),
                Need::Role(Role::Viewer),
                "{path}"
            );
        }
    }
}
