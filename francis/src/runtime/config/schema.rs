//! The configuration's schema: every key with its default and description (what
//! `francis runtime --help` and the book print), and the keys each mapping accepts.

use super::{DEFAULT_BIND, DEFAULT_HTTP_BIND};

/// One key of the configuration file, for documentation (see [`RuntimeConfig::reference`](super::RuntimeConfig::reference)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigKey {
    /// The dotted key path, e.g. `bootstrap.hostPSK`.
    pub key: &'static str,
    /// The default value as written in YAML, or `None` when the key is required or optional
    /// without a default.
    pub default: Option<&'static str>,
    /// What the key does and what values it takes.
    pub description: &'static str,
}

pub(super) const REFERENCE: &[ConfigKey] = &[
    ConfigKey {
        key: "profile",
        default: Some("dev"),
        description: "The security profile: dev or prod. prod refuses to start with an unsafe \
                      setting (a memory store, runtime or host PSKs written in this file rather \
                      than as \"${VAR}\", an operations server without a token or http.tls, a \
                      jwksURL over http, the published development PSK) and lists each with \
                      its fix; dev allows them and logs one warning naming them. When the key \
                      is absent, the environment variable FRANCIS_PROFILE sets it.",
    },
    ConfigKey {
        key: "bind",
        default: Some(DEFAULT_BIND),
        description: "Address and port the runtime's WebTransport server listens on, as host:port. \
                      A bare \":port\" listens on every IPv4 interface (0.0.0.0).",
    },
    ConfigKey {
        key: "advertiseAddress",
        default: None,
        description: "The host:port hosts reach the runtime at, when that is not bind (e.g. its \
                      Service's DNS name when it listens on 0.0.0.0). Shown in the cluster's \
                      state and named in the runtime's server certificate. When unset, bind is \
                      used if it is a concrete IP address.",
    },
    ConfigKey {
        key: "runtimeId",
        default: None,
        description: "Optional identifier of this runtime, used in its server certificate \
                      (spiffe://francis/runtime/<id>): letters, digits, '.', '_' and '-'. \
                      When unset, the runtime picks one at each start.",
    },
    ConfigKey {
        key: "runtimePSKs",
        default: None,
        description: "Required. List of runtime pre-shared keys from which the cluster CA is \
                      derived; the first is the primary, the others stay trusted during \
                      rotation. Each is at least 32 bytes, used as raw UTF-8 bytes (not base64). \
                      Every runtime replica must share them; keep them secret, e.g. \
                      \"${FRANCIS_RUNTIME_PSK}\".",
    },
    ConfigKey {
        key: "bootstrap.method",
        default: None,
        description: "Required. How hosts authenticate when joining: psk or jwt.",
    },
    ConfigKey {
        key: "bootstrap.hostPSK",
        default: None,
        description: "The shared host bootstrap secret, at least 16 bytes. Required with \
                      method: psk, not allowed otherwise.",
    },
    ConfigKey {
        key: "bootstrap.jwt.issuer",
        default: None,
        description: "The exact iss claim host tokens must carry. Required with method: jwt.",
    },
    ConfigKey {
        key: "bootstrap.jwt.audience",
        default: None,
        description: "A value the aud claim of host tokens must contain. Required with \
                      method: jwt.",
    },
    ConfigKey {
        key: "bootstrap.jwt.jwksURL",
        default: None,
        description: "URL of the issuer's JWKS (https, or http to localhost only), fetched and \
                      refreshed hourly; redirects are not followed. Set exactly one of jwksURL and \
                      staticJWKS.",
    },
    ConfigKey {
        key: "bootstrap.jwt.staticJWKS",
        default: None,
        description: "The issuer's JWKS as inline JSON, e.g. in a YAML block scalar (|). Set \
                      exactly one of jwksURL and staticJWKS.",
    },
    ConfigKey {
        key: "provider.type",
        default: None,
        description: "Required. The data store: sqlite, postgres (recommended for production) \
                      or memory (non-durable, for tests).",
    },
    ConfigKey {
        key: "provider.connectionString",
        default: None,
        description: "For sqlite, a file path or sqlite: URL (not on a network filesystem); for \
                      postgres, a postgres:// URL. Required for both; not allowed for memory.",
    },
    ConfigKey {
        key: "provider.timeout",
        default: Some("5s"),
        description: "How long one store operation may take, its statements and retries \
                      included; a slower one fails and is rolled back. Also how long it waits \
                      for a pooled connection and, with sqlite, for the write lock. Less than \
                      healthCheckDeadline; when unset and healthCheckDeadline is under 10s, half \
                      of it. The memory provider ignores it.",
    },
    ConfigKey {
        key: "provider.queryLog.enabled",
        default: Some("false"),
        description: "Log every SQL statement with its duration at debug level (target \
                      sqlx::query).",
    },
    ConfigKey {
        key: "provider.queryLog.includeParameters",
        default: Some("false"),
        description: "Accepted for compatibility, and only as false: the values bound to \
                      statements are never logged, since they hold actor state and secrets.",
    },
    ConfigKey {
        key: "provider.queryLog.slowThreshold",
        default: None,
        description: "Log a statement slower than this duration at warn level. Requires \
                      enabled: true.",
    },
    ConfigKey {
        key: "provider.operationLog.enabled",
        default: Some("false"),
        description: "Log every store operation (a placement lookup, a state save, an alarm \
                      fetch...) with its duration and outcome at debug level.",
    },
    ConfigKey {
        key: "provider.operationLog.slowThreshold",
        default: None,
        description: "Log a store operation slower than this duration at warn level. Requires \
                      enabled: true.",
    },
    ConfigKey {
        key: "workloadCertTTL",
        default: Some("1h"),
        description: "Lifetime of the workload certificates issued to hosts; more than zero and \
                      at most 365 days.",
    },
    ConfigKey {
        key: "healthCheckDeadline",
        default: Some("20s"),
        description: "Maximum interval between host health pings before a host is considered \
                      gone; more than 1s.",
    },
    ConfigKey {
        key: "requestTimeout",
        default: Some("15s"),
        description: "Timeout of requests between processes: how long a worker's request may \
                      take to reach the runtime and be answered. Workers have their own, of the \
                      same default, for their requests and calls.",
    },
    ConfigKey {
        key: "alarmsPollInterval",
        default: Some("1.5s"),
        description: "How often hosts poll the runtime for due alarms (the runtime leases them in its store).",
    },
    ConfigKey {
        key: "alarmsLeaseDuration",
        default: Some("20s"),
        description: "How long an alarm lease is held while the alarm executes (at most 5m, the \
                      longest lease the runtime grants a worker).",
    },
    ConfigKey {
        key: "alarmsFetchAheadInterval",
        default: Some("2.5s"),
        description: "How far ahead of now hosts fetch due alarms at each poll, so an alarm \
                      due before the next poll runs on time; more than zero and at most 1m.",
    },
    ConfigKey {
        key: "alarmsFetchAheadBatchSize",
        default: Some("25"),
        description: "The most alarms one host's fetch leases; 1 to 1000.",
    },
    ConfigKey {
        key: "shutdownGracePeriod",
        default: Some("30s"),
        description: "Grace period for a clean shutdown.",
    },
    ConfigKey {
        key: "maxHosts",
        default: Some("0"),
        description: "How many hosts the cluster admits at most; a host registering beyond it \
                      is refused. 0 for no limit.",
    },
    ConfigKey {
        key: "maxInFlightRequests",
        default: Some("100"),
        description: "How many requests one calling host may have open at the runtime at \
                      once; its further requests wait. 1 to 10000.",
    },
    ConfigKey {
        key: "maxRequestBodySize",
        default: Some("16MiB"),
        description: "The largest request a host may send, which bounds the state an actor \
                      can save: an integer of bytes, or a size such as \"512KiB\" or \"16MiB\" \
                      (units KiB, MiB, GiB of 1024). 1KiB to 16MiB, the largest frame of the \
                      wire protocol.",
    },
    ConfigKey {
        key: "http.bind",
        default: Some(DEFAULT_HTTP_BIND),
        description: "IP address and port of the runtime's operations HTTP server: /healthz \
                      and /readyz (no token), /metrics and /api/cluster/state. Off loopback it \
                      requires a token in FRANCIS_HTTP_TOKEN.",
    },
    ConfigKey {
        key: "http.tls",
        default: Some("false"),
        description: "Serve the operations server over HTTPS with the runtime's certificate \
                      (which then also names localhost, 127.0.0.1, ::1 and the http.bind \
                      address; clients verify it with the cluster CA, `francis ca print`), and \
                      accept client certificates of operator identities of the cluster CA \
                      (`francis ca issue-operator`) as credentials, with their role.",
    },
    ConfigKey {
        key: "log.level",
        default: Some("info"),
        description: "Log verbosity: debug, info, warn or error.",
    },
    ConfigKey {
        key: "log.json",
        default: Some("false"),
        description: "Write each log line as a JSON object (FRANCIS_LOG_FORMAT=json does too).",
    },
];

// The keys the parser accepts in each mapping. `reference_and_parser_agree` keeps them and
// REFERENCE in step.
pub(super) const TOP_KEYS: &[&str] = &[
    "profile",
    "bind",
    "advertiseAddress",
    "runtimeId",
    "runtimePSKs",
    "bootstrap",
    "provider",
    "workloadCertTTL",
    "healthCheckDeadline",
    "requestTimeout",
    "alarmsPollInterval",
    "alarmsLeaseDuration",
    "alarmsFetchAheadInterval",
    "alarmsFetchAheadBatchSize",
    "shutdownGracePeriod",
    "maxHosts",
    "maxInFlightRequests",
    "maxRequestBodySize",
    "http",
    "log",
];
pub(super) const BOOTSTRAP_KEYS: &[&str] = &["method", "hostPSK", "jwt"];
pub(super) const JWT_KEYS: &[&str] = &["issuer", "audience", "jwksURL", "staticJWKS"];
pub(super) const PROVIDER_KEYS: &[&str] = &[
    "type",
    "connectionString",
    "timeout",
    "queryLog",
    "operationLog",
];
pub(super) const QUERY_LOG_KEYS: &[&str] = &["enabled", "includeParameters", "slowThreshold"];
pub(super) const OPERATION_LOG_KEYS: &[&str] = &["enabled", "slowThreshold"];
pub(super) const HTTP_KEYS: &[&str] = &["bind", "tls"];
pub(super) const LOG_KEYS: &[&str] = &["level", "json"];

/// The key path of `name` inside the mapping at `prefix` (`bootstrap.hostPSK`).
pub(super) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}
