//! The configuration's schema: every key with its default and description (what
//! `francis runtime --help` and the book print), and the keys each mapping accepts.

use super::DEFAULT_BIND;

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
        key: "bind",
        default: Some(DEFAULT_BIND),
        description: "Address and port the runtime's WebTransport server listens on, as host:port. \
                      A bare \":port\" listens on every IPv4 interface (0.0.0.0).",
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
        key: "shutdownGracePeriod",
        default: Some("30s"),
        description: "Grace period for a clean shutdown.",
    },
    ConfigKey {
        key: "log.level",
        default: Some("info"),
        description: "Log verbosity: debug, info, warn or error.",
    },
];

// The keys the parser accepts in each mapping. `reference_and_parser_agree` keeps them and
// REFERENCE in step.
pub(super) const TOP_KEYS: &[&str] = &[
    "bind",
    "runtimeId",
    "runtimePSKs",
    "bootstrap",
    "provider",
    "workloadCertTTL",
    "healthCheckDeadline",
    "alarmsPollInterval",
    "alarmsLeaseDuration",
    "shutdownGracePeriod",
    "log",
];
pub(super) const BOOTSTRAP_KEYS: &[&str] = &["method", "hostPSK", "jwt"];
pub(super) const JWT_KEYS: &[&str] = &["issuer", "audience", "jwksURL", "staticJWKS"];
pub(super) const PROVIDER_KEYS: &[&str] = &["type", "connectionString"];
pub(super) const LOG_KEYS: &[&str] = &["level"];

/// The key path of `name` inside the mapping at `prefix` (`bootstrap.hostPSK`).
pub(super) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}
