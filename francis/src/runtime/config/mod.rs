//! The runtime's YAML configuration file: parsing, validation, and the reference of its keys.
//!
//! [`RuntimeConfig::load`] reads the file given to `francis runtime --config`;
//! [`RuntimeConfig::from_yaml_str`] parses text with an injected environment (for tests and
//! embedding). Both check the whole file and report **every** problem at once, each with the
//! key path (`runtimePSKs[0]`, `bootstrap.hostPSK`), the line and column, what was found and
//! what to write instead. Unknown keys are errors, with a suggestion when the name is close to
//! a known one. Secrets (PSKs, the PostgreSQL connection string) are never echoed: errors
//! give their length.
//!
//! ```yaml
//! profile: prod
//! bind: "0.0.0.0:7400"
//! runtimePSKs:
//!   - "${FRANCIS_RUNTIME_PSK}"
//! bootstrap:
//!   method: psk
//!   hostPSK: "${FRANCIS_HOST_BOOTSTRAP_PSK}"
//! provider:
//!   type: sqlite
//!   connectionString: "data.db"
//! log:
//!   level: info
//! ```
//!
//! # Values
//!
//! - **Environment variables**: `${NAME}` inside any string value is replaced by the variable's
//!   value; an unset variable is an error. Write `$${` for a literal `${`. A `$` not followed
//!   by `{` is kept as is.
//! - **Durations** accept Go-style strings (`"1h"`, `"1500ms"`, `"1h30m"`), ISO 8601
//!   (`"PT20S"`) or integer milliseconds, as parsed by [`crate::time::parse_duration`]. An
//!   invalid, zero or negative duration is an error (the Go runtime silently used the default
//!   instead).
//! - **PSKs** are used as the raw UTF-8 bytes of the string, not decoded from base64 or hex.
//! - **Booleans** are `true` or `false`; **counts** are whole numbers; **sizes**
//!   (`maxRequestBodySize`) are a number of bytes or a number with `KiB`, `MiB` or `GiB`.
//! - **Secrets** come from the environment only: there is no form that reads them from a file.
//!   With `profile: prod`, a PSK must be exactly one `${NAME}` reference (see
//!   [`RuntimeConfig::check_profile`]).
//! - A log's `slowThreshold` requires `enabled: true` in the same section, and
//!   `provider.queryLog.includeParameters` is accepted only as `false`: bound values are never
//!   logged.
//!
//! [`RuntimeConfig::reference`] lists every key with its default and description; the CLI's
//! help and the book print it.

mod check;
mod env;
mod problems;
mod schema;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use self::check::Checker;
use self::schema::REFERENCE;
use crate::net::is_development_psk;
use crate::net::pki::{MAX_LEAF_TTL, MIN_PSK_LEN, SpiffeId};
use crate::profile::{
    ConfiguredBy, Endpoint, Profile, ProfileError, ProfileProblem, PskKind, Setup,
};
use crate::runtime::jwt::{self, JwksSource, JwtConfig};
use crate::store::SqlOptions;
use crate::time::parse_duration;

pub use self::problems::{ConfigError, ConfigProblem, ProblemKind};
pub use self::schema::ConfigKey;

pub use crate::net::runtime::bootstrap::MIN_HOST_PSK_LEN;

/// Default listening address (`bind`).
pub const DEFAULT_BIND: &str = ":8443";

/// Smallest accepted `healthCheckDeadline` (exclusive).
pub const MIN_HEALTH_CHECK_DEADLINE: Duration = Duration::from_secs(1);

/// Default address of the runtime's operations HTTP server (`http.bind`).
pub const DEFAULT_HTTP_BIND: &str = "127.0.0.1:8444";

/// The validated configuration of a runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuntimeConfig {
    /// The security profile (`profile`, else `FRANCIS_PROFILE`, else `dev`).
    pub profile: Profile,
    /// Where the runtime's WebTransport server listens (`bind`).
    pub bind: BindAddress,
    /// The `host:port` the runtime is reached at (`advertiseAddress`), when it is not `bind`:
    /// shown in the cluster's state and named in the runtime's server certificate. When unset,
    /// the runtime uses its `bind` address if that is a concrete IP address.
    pub advertise_address: Option<String>,
    /// This runtime's ID, used in its server certificate (`runtimeId`). When unset, the runtime
    /// chooses one at start.
    pub runtime_id: Option<String>,
    /// The runtime PSKs the cluster CA is derived from (`runtimePSKs`); the first is the
    /// primary. Each is at least [`MIN_PSK_LEN`] bytes.
    pub runtime_psks: Vec<Secret>,
    /// How joining hosts authenticate (`bootstrap`).
    pub bootstrap: Bootstrap,
    /// Where state and alarms are stored (`provider`).
    pub provider: Provider,
    /// How the store bounds and logs its work (`provider.timeout`, `provider.queryLog`,
    /// `provider.operationLog`).
    pub provider_options: SqlOptions,
    /// Lifetime of the workload certificates issued to hosts (`workloadCertTTL`).
    pub workload_cert_ttl: Duration,
    /// Maximum interval between a host's health pings (`healthCheckDeadline`).
    pub health_check_deadline: Duration,
    /// How often due alarms are polled (`alarmsPollInterval`).
    pub alarms_poll_interval: Duration,
    /// How long an alarm lease lasts while it runs (`alarmsLeaseDuration`).
    pub alarms_lease_duration: Duration,
    /// How far ahead of now workers fetch due alarms (`alarmsFetchAheadInterval`).
    pub alarms_fetch_ahead_interval: Duration,
    /// The most alarms one fetch leases (`alarmsFetchAheadBatchSize`).
    pub alarms_fetch_ahead_batch_size: u32,
    /// Time allowed for a clean shutdown (`shutdownGracePeriod`).
    pub shutdown_grace_period: Duration,
    /// The timeout of requests between processes (`requestTimeout`): a worker's requests at
    /// the runtime.
    pub request_timeout: Duration,
    /// How many hosts the cluster admits at most, 0 for no limit (`maxHosts`).
    pub max_hosts: u32,
    /// Requests one calling host may have running at once (`maxInFlightRequests`).
    pub max_in_flight_requests: usize,
    /// The largest request a calling host may send, in bytes (`maxRequestBodySize`).
    pub max_request_body_size: usize,
    /// The runtime's operations HTTP server (`http`).
    pub http: HttpConfig,
    /// Log verbosity (`log.level`).
    pub log_level: LogLevel,
    /// Whether log lines are JSON objects rather than text (`log.json`).
    pub log_json: bool,
    /// The key paths of the PSKs written in the file rather than as one `${VAR}` reference.
    literal_psks: Vec<(String, PskKind)>,
}

/// The runtime's operations HTTP server (`http`): probes, metrics and the cluster's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpConfig {
    /// Where it listens (`http.bind`).
    pub bind: SocketAddr,
    /// Whether it serves TLS with a certificate of the cluster CA (`http.tls`).
    pub tls: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8444)),
            tls: false,
        }
    }
}

/// How hosts authenticate when they first join (`bootstrap.method`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    /// `method: psk`: a challenge-response over a shared host PSK.
    Psk {
        /// `bootstrap.hostPSK`, at least [`MIN_HOST_PSK_LEN`] bytes.
        host_psk: Secret,
    },
    /// `method: jwt`: a JWT checked against the issuer's JWKS.
    Jwt(JwtConfig),
}

/// The data store (`provider.type`).
#[derive(Clone, PartialEq, Eq)]
pub enum Provider {
    /// `type: sqlite`: a file path or a `sqlite:` URL.
    Sqlite {
        /// `provider.connectionString`.
        connection_string: String,
    },
    /// `type: postgres`: a `postgres://` URL. Not shown by `Debug`, since it may hold a
    /// password.
    Postgres {
        /// `provider.connectionString`.
        connection_string: String,
    },
    /// `type: memory`: non-durable, for tests.
    Memory,
}

impl Provider {
    /// The `provider.type` value: `sqlite`, `postgres` or `memory`.
    pub fn kind(&self) -> &'static str {
        match self {
            Provider::Sqlite { .. } => "sqlite",
            Provider::Postgres { .. } => "postgres",
            Provider::Memory => "memory",
        }
    }
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Provider::Sqlite { connection_string } => f
                .debug_struct("Sqlite")
                .field("connection_string", connection_string)
                .finish(),
            Provider::Postgres { .. } => f
                .debug_struct("Postgres")
                .field("connection_string", &"<redacted>")
                .finish(),
            Provider::Memory => f.write_str("Memory"),
        }
    }
}

/// Log verbosity (`log.level`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum LogLevel {
    /// `debug`.
    Debug,
    /// `info` (the default).
    #[default]
    Info,
    /// `warn`.
    Warn,
    /// `error`.
    Error,
}

impl LogLevel {
    /// The level's name as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }

    /// The matching `tracing` level.
    pub fn to_tracing(self) -> tracing::Level {
        match self {
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Error => tracing::Level::ERROR,
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A secret string (a PSK). Its `Debug` shows only the length, so configurations can be logged,
/// and it is wiped from memory when dropped.
#[derive(Clone, PartialEq, Eq, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret's text.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The secret's raw bytes, as used for key derivation.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

impl AsRef<[u8]> for Secret {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// A listening address: a host (IP literal or DNS name) and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BindAddress {
    host: String,
    port: u16,
}

/// Why a `bind` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidBindAddress(String);

impl BindAddress {
    /// The host part: an IP address (IPv6 without brackets) or a DNS name.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The socket address, when the host is an IP literal (names need a DNS lookup).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.host
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, self.port))
    }
}

impl fmt::Display for BindAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for BindAddress {
    type Err = InvalidBindAddress;

    /// Parses `host:port`; a bare `:port` means every IPv4 interface (`0.0.0.0:port`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: String| InvalidBindAddress(reason);
        let s = s.trim();
        if s.starts_with(':') && !s.starts_with("::") {
            return parse_port(&s[1..]).map(|port| BindAddress {
                host: Ipv4Addr::UNSPECIFIED.to_string(),
                port,
            });
        }
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(BindAddress {
                host: addr.ip().to_string(),
                port: addr.port(),
            });
        }
        let Some((host, port)) = s.rsplit_once(':') else {
            return Err(bad(
                "expected host:port, e.g. \"0.0.0.0:7400\" or \":7400\" (all interfaces)".into(),
            ));
        };
        let port = parse_port(port)?;
        if host.starts_with('[') || host.contains(':') {
            return Err(bad(format!(
                "{host:?} is not an IP address; write IPv6 addresses in brackets, e.g. \
                 \"[::]:{port}\""
            )));
        }
        if !is_dns_name(host) {
            return Err(bad(format!(
                "{host:?} is neither an IP address nor a host name; use e.g. \"0.0.0.0:{port}\""
            )));
        }
        Ok(BindAddress {
            host: host.to_owned(),
            port,
        })
    }
}

fn parse_port(port: &str) -> Result<u16, InvalidBindAddress> {
    port.parse::<u16>().map_err(|_| {
        InvalidBindAddress(format!(
            "the port {port:?} is not a number from 0 to 65535; expected host:port, e.g. \
             \"0.0.0.0:7400\""
        ))
    })
}

fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

impl RuntimeConfig {
    /// Reads and validates the configuration file at `path`, expanding `${VAR}` from the
    /// process environment.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml_str(&text, &path.display().to_string(), |name| {
            std::env::var(name).ok()
        })
    }

    /// Parses and validates configuration text. `origin` names it in errors (usually the file
    /// name); `env` looks up the variables of `${VAR}` references.
    pub fn from_yaml_str(
        text: &str,
        origin: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut checker = Checker {
            env: &env,
            problems: Vec::new(),
            literal_psks: Vec::new(),
        };
        let config = checker.document(text);
        let mut problems = checker.problems;
        match config {
            Some(config) if problems.is_empty() => Ok(config),
            _ => {
                if problems.is_empty() {
                    problems.push(ConfigProblem {
                        kind: ProblemKind::InvalidValue,
                        key: String::new(),
                        line: None,
                        column: None,
                        message: "the configuration is incomplete".into(),
                    });
                }
                problems.sort_by_key(|p| (p.line.is_none(), p.line, p.column));
                Err(ConfigError::Invalid {
                    origin: origin.to_owned(),
                    problems,
                })
            }
        }
    }

    /// Every configuration key, in file order, with its default and description.
    pub fn reference() -> &'static [ConfigKey] {
        REFERENCE
    }

    /// What the profile check looks at in this configuration. `http_token`: whether the
    /// operations server has a bearer token (`FRANCIS_HTTP_TOKEN`,
    /// `FRANCIS_HTTP_OPERATOR_TOKEN` or `FRANCIS_HTTP_VIEWER_TOKEN` is set). A PSK counts as
    /// literal unless its value is exactly one `${VAR}` reference: the configuration has no
    /// form that reads a secret from a file.
    pub fn profile_setup(&self, http_token: bool) -> Setup {
        let mut development_psks = Vec::new();
        if self
            .runtime_psks
            .iter()
            .any(|psk| is_development_psk(psk.as_bytes()))
        {
            development_psks.push(PskKind::Runtime);
        }
        let jwks_url = match &self.bootstrap {
            Bootstrap::Psk { host_psk } => {
                if is_development_psk(host_psk.as_bytes()) {
                    development_psks.push(PskKind::HostBootstrap);
                }
                None
            }
            Bootstrap::Jwt(jwt) => match &jwt.jwks {
                JwksSource::Url(url) => Some(url.clone()),
                JwksSource::Static(_) => None,
            },
        };
        Setup {
            configured_by: ConfiguredBy::ConfigFile,
            memory_store: self.provider == Provider::Memory,
            operations_api: Some(Endpoint {
                address: self.http.bind,
                authenticated: self.http.tls || http_token,
            }),
            literal_psks: self.literal_psks.clone(),
            development_psks,
            jwks_url,
            ..Setup::default()
        }
    }

    /// Checks this configuration against its profile, as the runtime does before it starts,
    /// with the operations server's tokens as the process environment sets them: `Err` with
    /// every problem `prod` refuses, or `Ok` with the unsafe settings `dev` allows.
    pub fn check_profile(&self) -> Result<Vec<ProfileProblem>, ProfileError> {
        self.profile
            .check(&self.profile_setup(crate::http::token_in_env()))
    }
}

#[cfg(test)]
mod tests {
    use super::schema::{
        BOOTSTRAP_KEYS, HTTP_KEYS, JWT_KEYS, LOG_KEYS, OPERATION_LOG_KEYS, PROVIDER_KEYS,
        QUERY_LOG_KEYS, TOP_KEYS,
    };
    use super::*;
    use crate::store::{OperationLog, QueryLog};

    const PSK: &str = "a-runtime-psk-of-at-least-32-bytes!!";
    const PSK2: &str = "another-runtime-psk-of-32-bytes-or-more";

    fn parse(yaml: &str) -> Result<RuntimeConfig, ConfigError> {
        RuntimeConfig::from_yaml_str(yaml, "test.yaml", |_| None)
    }

    fn problems(yaml: &str) -> Vec<ConfigProblem> {
        match parse(yaml) {
            Ok(config) => panic!("expected problems, got {config:?}"),
            Err(e) => e.problems().to_vec(),
        }
    }

    /// The single problem of `yaml`, which must concern `key`.
    fn only(yaml: &str, key: &str) -> ConfigProblem {
        let found = problems(yaml);
        assert_eq!(found.len(), 1, "expected one problem, got {found:#?}");
        assert_eq!(found[0].key, key, "{found:#?}");
        found[0].clone()
    }

    fn base(extra: &str) -> String {
        format!(
            "runtimePSKs:\n  - \"{PSK}\"\nbootstrap:\n  method: psk\n  hostPSK: \
             \"a-host-psk-16-bytes+\"\nprovider:\n  type: memory\n{extra}"
        )
    }

    /// The minimal configuration of the deployment guide, verbatim.
    const SEED_MINIMAL: &str = r#"# Address and port the runtime's WebTransport server listens on
bind: "0.0.0.0:7400"
# The runtime PSKs derive the cluster CA
# Every runtime sharing these keys is the same certificate issuer — keep them secret
# You can inject them from the environment, e.g. "${FRANCIS_RUNTIME_PSK}"
runtimePSKs:
  - "change-me-runtime-psk"
# How joining hosts authenticate themselves to the runtime
bootstrap:
  method: psk
  hostPSK: "change-me-host-bootstrap-psk"
# Where state and alarms are stored
provider:
  type: sqlite
  connectionString: "data.db"
log:
  level: info
"#;

    #[test]
    fn seed_minimal_config_is_refused_only_for_its_short_psk() {
        let p = only(SEED_MINIMAL, "runtimePSKs[0]");
        assert_eq!(p.kind, ProblemKind::InvalidValue);
        assert_eq!((p.line, p.column), (Some(7), Some(5)));
        assert!(p.message.contains("is 21 bytes"), "{}", p.message);
        assert!(p.message.contains("at least 32 bytes"), "{}", p.message);
        assert!(
            !p.message.contains("change-me"),
            "secret echoed: {}",
            p.message
        );
    }

    #[test]
    fn seed_minimal_config_with_a_long_psk_parses_with_defaults() {
        let yaml = SEED_MINIMAL.replace("change-me-runtime-psk", PSK);
        let config = parse(&yaml).unwrap();
        assert_eq!(config.bind.to_string(), "0.0.0.0:7400");
        assert_eq!(config.runtime_id, None);
        assert_eq!(config.runtime_psks, vec![Secret::new(PSK)]);
        assert_eq!(
            config.bootstrap,
            Bootstrap::Psk {
                host_psk: Secret::new("change-me-host-bootstrap-psk")
            }
        );
        assert_eq!(
            config.provider,
            Provider::Sqlite {
                connection_string: "data.db".into()
            }
        );
        assert_eq!(config.workload_cert_ttl, Duration::from_secs(3600));
        assert_eq!(config.health_check_deadline, Duration::from_secs(20));
        assert_eq!(config.alarms_poll_interval, Duration::from_millis(1500));
        assert_eq!(config.alarms_lease_duration, Duration::from_secs(20));
        assert_eq!(config.shutdown_grace_period, Duration::from_secs(30));
        assert_eq!(config.log_level, LogLevel::Info);
    }

    #[test]
    fn seed_remote_cluster_example_parses() {
        let yaml = r#"# config.yaml
bind: "127.0.0.1:7400"
# Runtime PSKs derive the cluster CA — keep them secret, inject from the environment in production
runtimePSKs:
  - "example-runtime-psk-change-me-now!!"
# How joining hosts authenticate
# This example uses a shared host PSK; the workers must present the same value
bootstrap:
  method: psk
  hostPSK: "example-host-bootstrap-psk-change-me"
provider:
  type: sqlite
  connectionString: "data.db"
log:
  level: debug
"#;
        let config = parse(yaml).unwrap();
        assert_eq!(config.bind.host(), "127.0.0.1");
        assert_eq!(config.bind.port(), 7400);
        assert_eq!(
            config.bind.socket_addr(),
            Some("127.0.0.1:7400".parse().unwrap())
        );
        assert_eq!(config.runtime_psks[0].len(), 35);
        assert!(matches!(config.bootstrap, Bootstrap::Psk { .. }));
        assert_eq!(config.log_level, LogLevel::Debug);
        assert_eq!(config.log_level.to_tracing(), tracing::Level::DEBUG);
    }

    #[test]
    fn omitted_keys_take_their_defaults() {
        let config = parse(&base("")).unwrap();
        assert_eq!(config.bind.to_string(), "0.0.0.0:8443");
        assert_eq!(config.provider, Provider::Memory);
        assert_eq!(config.log_level, LogLevel::Info);
    }

    /// YAML for dotted keys and their values, nested, keys sharing a parent under one mapping
    /// (in the order the parents first appear).
    fn nested(pairs: &[(&str, &str)]) -> String {
        fn render(pairs: &[(Vec<&str>, &str)], depth: usize, out: &mut String) {
            let mut seen: Vec<&str> = Vec::new();
            for (path, _) in pairs {
                if !seen.contains(&path[0]) {
                    seen.push(path[0]);
                }
            }
            for name in seen {
                let indent = "  ".repeat(depth);
                let group: Vec<(Vec<&str>, &str)> = pairs
                    .iter()
                    .filter(|(path, _)| path[0] == name)
                    .map(|(path, value)| (path[1..].to_vec(), *value))
                    .collect();
                match group.iter().find(|(rest, _)| rest.is_empty()) {
                    Some((_, value)) => out.push_str(&format!("{indent}{name}: {value}\n")),
                    None => {
                        out.push_str(&format!("{indent}{name}:\n"));
                        render(&group, depth + 1, out);
                    }
                }
            }
        }
        let split: Vec<(Vec<&str>, &str)> = pairs
            .iter()
            .map(|(key, value)| (key.split('.').collect(), *value))
            .collect();
        let mut out = String::new();
        render(&split, 0, &mut out);
        out
    }

    /// The required keys of [`base`], as dotted pairs.
    const REQUIRED: &[(&str, &str)] = &[
        ("runtimePSKs", "[\"a-runtime-psk-of-at-least-32-bytes!!\"]"),
        ("bootstrap.method", "psk"),
        ("bootstrap.hostPSK", "\"a-host-psk-16-bytes+\""),
        ("provider.type", "memory"),
    ];

    /// [`base`] with more dotted keys, nested with the required ones.
    fn with_keys(extra: &[(&str, &str)]) -> String {
        let mut pairs = REQUIRED.to_vec();
        pairs.extend_from_slice(extra);
        nested(&pairs)
    }

    #[test]
    fn every_default_in_the_reference_is_what_the_parser_uses() {
        let defaults = parse(&base("")).unwrap();
        assert_eq!(parse(&with_keys(&[])).unwrap(), defaults);
        let quoted: Vec<(String, String)> = RuntimeConfig::reference()
            .iter()
            .filter_map(|k| k.default.map(|d| (k.key.to_owned(), format!("\"{d}\""))))
            .collect();
        let explicit: Vec<(&str, &str)> = quoted
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(parse(&with_keys(&explicit)).unwrap(), defaults);
    }

    #[test]
    fn the_new_keys_take_their_defaults() {
        let config = parse(&base("")).unwrap();
        assert_eq!(config.advertise_address, None);
        assert_eq!(config.request_timeout, Duration::from_secs(15));
        assert_eq!(
            config.provider_options,
            SqlOptions {
                timeout: Duration::from_secs(5),
                query_log: QueryLog::default(),
                operation_log: OperationLog::default(),
            }
        );
        assert_eq!(
            config.alarms_fetch_ahead_interval,
            Duration::from_millis(2500)
        );
        assert_eq!(config.alarms_fetch_ahead_batch_size, 25);
        assert_eq!(config.max_hosts, 0);
        assert_eq!(config.max_in_flight_requests, 100);
        assert_eq!(config.max_request_body_size, 16 * 1024 * 1024);
        assert_eq!(
            config.http,
            HttpConfig {
                bind: "127.0.0.1:8444".parse().unwrap(),
                tls: false
            }
        );
        assert!(!config.log_json);
    }

    #[test]
    fn advertise_address() {
        let config = parse(&base("advertiseAddress: \"runtime-0.francis:7400\"\n")).unwrap();
        assert_eq!(
            config.advertise_address.as_deref(),
            Some("runtime-0.francis:7400")
        );
        let config = parse(&base("advertiseAddress: \"[fd00::1]:7400\"\n")).unwrap();
        assert_eq!(config.advertise_address.as_deref(), Some("[fd00::1]:7400"));
        for (bad, hint) in [
            ("runtime-0.francis", "expected host:port"),
            ("runtime:0", "the port is 0"),
            ("0.0.0.0:7400", "is the any-address"),
            ("[::]:7400", "is the any-address"),
        ] {
            let p = only(
                &base(&format!("advertiseAddress: \"{bad}\"\n")),
                "advertiseAddress",
            );
            assert_eq!(
                (p.kind, p.line, p.column),
                (ProblemKind::InvalidValue, Some(8), Some(19)),
                "{bad}"
            );
            assert!(
                p.message.starts_with(&format!("invalid address {bad:?}: ")),
                "{bad}: {}",
                p.message
            );
            assert!(p.message.contains(hint), "{bad}: {}", p.message);
        }
    }

    #[test]
    fn http_section() {
        let config = parse(&base("http:\n  bind: \"0.0.0.0:9000\"\n  tls: true\n")).unwrap();
        assert_eq!(config.http.bind, "0.0.0.0:9000".parse().unwrap());
        assert!(config.http.tls);
        let config = parse(&base("http:\n  bind: \":8444\"\n")).unwrap();
        assert_eq!(config.http.bind, "0.0.0.0:8444".parse().unwrap());
        assert!(!config.http.tls);

        let p = only(&base("http:\n  bind: \"localhost:8444\"\n"), "http.bind");
        assert_eq!(
            (p.kind, p.line, p.column),
            (ProblemKind::InvalidValue, Some(9), Some(9))
        );
        assert_eq!(
            p.message,
            "\"localhost:8444\" is not an IP address and port; the HTTP server listens on an IP \
             address: write e.g. \"0.0.0.0:8444\" (every interface) or \"127.0.0.1:8444\""
        );
        let p = only(&base("http:\n  bind: \"8444\"\n"), "http.bind");
        assert!(
            p.message
                .starts_with("invalid address \"8444\": expected host:port"),
            "{}",
            p.message
        );
        let p = only(&base("http:\n  tls: yes\n"), "http.tls");
        assert_eq!((p.line, p.column), (Some(9), Some(8)));
        assert_eq!(p.message, "\"yes\" is not a boolean; write true or false");
        let p = only(&base("http.bind: \":1\"\n"), "http.bind");
        assert!(p.message.contains("nested, not dotted"), "{}", p.message);
    }

    #[test]
    fn log_json() {
        assert!(parse(&base("log:\n  json: true\n")).unwrap().log_json);
        let config = parse(&base("log:\n  level: debug\n  json: false\n")).unwrap();
        assert!(!config.log_json);
        assert_eq!(config.log_level, LogLevel::Debug);
        let p = only(&base("log:\n  json: 1\n"), "log.json");
        assert_eq!(
            (p.kind, p.line, p.column),
            (ProblemKind::InvalidValue, Some(9), Some(9))
        );
        assert_eq!(p.message, "\"1\" is not a boolean; write true or false");
    }

    #[test]
    fn whole_numbers_are_bounded() {
        let config = parse(&base(
            "maxHosts: 12\nalarmsFetchAheadBatchSize: 100\nmaxInFlightRequests: 500\n",
        ))
        .unwrap();
        assert_eq!(config.max_hosts, 12);
        assert_eq!(config.alarms_fetch_ahead_batch_size, 100);
        assert_eq!(config.max_in_flight_requests, 500);

        let p = only(&base("maxHosts: -1\n"), "maxHosts");
        assert_eq!(
            (p.kind, p.line, p.column),
            (ProblemKind::InvalidValue, Some(8), Some(11))
        );
        assert_eq!(
            p.message,
            "\"-1\" is not a whole number; write digits only, e.g. 0 (the default)"
        );
        let p = only(
            &base("alarmsFetchAheadBatchSize: 0\n"),
            "alarmsFetchAheadBatchSize",
        );
        assert_eq!(
            p.message,
            "is 0; it must be from 1 to 1000, e.g. 25 (the default)"
        );
        let p = only(
            &base("alarmsFetchAheadBatchSize: 5000\n"),
            "alarmsFetchAheadBatchSize",
        );
        assert_eq!(
            p.message,
            "is 5000; it must be from 1 to 1000, e.g. 25 (the default)"
        );
        let p = only(&base("maxInFlightRequests: 0\n"), "maxInFlightRequests");
        assert_eq!(
            p.message,
            "is 0; it must be from 1 to 10000, e.g. 100 (the default)"
        );
        let p = only(&base("maxInFlightRequests: lots\n"), "maxInFlightRequests");
        assert_eq!(
            p.message,
            "\"lots\" is not a whole number; write digits only, e.g. 100 (the default)"
        );
    }

    #[test]
    fn request_body_sizes_take_bytes_or_binary_units() {
        let size = |v: &str| {
            parse(&base(&format!("maxRequestBodySize: {v}\n"))).map(|c| c.max_request_body_size)
        };
        assert_eq!(size("1048576").unwrap(), 1 << 20);
        assert_eq!(size("\"512KiB\"").unwrap(), 512 << 10);
        assert_eq!(size("16MiB").unwrap(), 16 << 20);
        assert_eq!(size("\"2 MiB\"").unwrap(), 2 << 20);
        assert_eq!(size("1KiB").unwrap(), 1024);
        for (bad, message) in [
            (
                "16MB",
                "\"16MB\" uses the unit \"MB\"; write KiB, MiB or GiB (powers of 1024), e.g. \
                 \"16MiB\"",
            ),
            (
                "lots",
                "\"lots\" is not a size; write a number of bytes or a number with KiB, MiB or \
                 GiB, e.g. \"16MiB\"",
            ),
            (
                "1GiB",
                "is 1073741824 bytes; it must be from 1KiB to 16MiB (the largest frame of the \
                 wire protocol), e.g. \"16MiB\" (the default)",
            ),
            (
                "512",
                "is 512 bytes; it must be from 1KiB to 16MiB (the largest frame of the wire \
                 protocol), e.g. \"16MiB\" (the default)",
            ),
        ] {
            let p = only(
                &base(&format!("maxRequestBodySize: {bad}\n")),
                "maxRequestBodySize",
            );
            assert_eq!(
                (p.kind, p.line, p.column),
                (ProblemKind::InvalidValue, Some(8), Some(21)),
                "{bad}"
            );
            assert_eq!(p.message, message, "{bad}");
        }
    }

    #[test]
    fn new_durations_are_positive_and_bounded() {
        let config = parse(&with_keys(&[
            ("requestTimeout", "30s"),
            ("alarmsFetchAheadInterval", "10s"),
            ("provider.timeout", "2s"),
        ]))
        .unwrap();
        assert_eq!(config.request_timeout, Duration::from_secs(30));
        assert_eq!(config.alarms_fetch_ahead_interval, Duration::from_secs(10));
        assert_eq!(config.provider_options.timeout, Duration::from_secs(2));

        let p = only(&base("requestTimeout: 0s\n"), "requestTimeout");
        assert_eq!(
            (p.kind, p.line, p.column),
            (ProblemKind::InvalidValue, Some(8), Some(17))
        );
        assert_eq!(
            p.message,
            "is zero; it must be more than zero, e.g. \"15s\" (the default)"
        );
        let p = only(
            &base("alarmsFetchAheadInterval: 2m\n"),
            "alarmsFetchAheadInterval",
        );
        assert_eq!(
            p.message,
            "\"2m\" must be at most 1m (alarms are not leased longer ahead of their time), e.g. \
             \"2.5s\""
        );
        let p = only(
            &with_keys(&[("provider.timeout", "-1s")]),
            "provider.timeout",
        );
        assert!(p.message.contains("negative"), "{}", p.message);
    }

    #[test]
    fn the_store_timeout_stays_below_the_health_check_deadline() {
        let yaml = with_keys(&[("provider.timeout", "20s"), ("healthCheckDeadline", "20s")]);
        let p = only(&yaml, "provider.timeout");
        assert_eq!(
            (p.kind, p.line, p.column),
            (ProblemKind::Conflict, Some(7), Some(3))
        );
        assert_eq!(
            p.message,
            "is 20s but must be less than healthCheckDeadline (20s), or one slow store operation \
             could outlast a host's registration; e.g. \"5s\""
        );
        // Unset, it fits a short deadline.
        let config = parse(&with_keys(&[("healthCheckDeadline", "4s")])).unwrap();
        assert_eq!(config.provider_options.timeout, Duration::from_secs(2));
        let config = parse(&with_keys(&[("healthCheckDeadline", "1m")])).unwrap();
        assert_eq!(config.provider_options.timeout, Duration::from_secs(5));
    }

    #[test]
    fn query_and_operation_logs() {
        let config = parse(&with_keys(&[
            ("provider.queryLog.enabled", "true"),
            ("provider.queryLog.includeParameters", "false"),
            ("provider.queryLog.slowThreshold", "250ms"),
            ("provider.operationLog.enabled", "true"),
        ]))
        .unwrap();
        assert_eq!(
            config.provider_options.query_log,
            QueryLog {
                enabled: true,
                slow_threshold: Some(Duration::from_millis(250))
            }
        );
        assert_eq!(
            config.provider_options.operation_log,
            OperationLog {
                enabled: true,
                slow_threshold: None
            }
        );

        let p = only(
            &with_keys(&[("provider.queryLog.includeParameters", "true")]),
            "provider.queryLog.includeParameters",
        );
        assert_eq!(
            (p.kind, p.line, p.column),
            (ProblemKind::InvalidValue, Some(8), Some(24))
        );
        assert_eq!(
            p.message,
            "cannot be true: Francis never logs the values bound to statements, since they hold \
             actor state and secrets; remove the key or set it to false"
        );

        let p = only(
            &with_keys(&[("provider.operationLog.slowThreshold", "1s")]),
            "provider.operationLog.slowThreshold",
        );
        assert_eq!(
            (p.kind, p.line, p.column),
            (ProblemKind::Conflict, Some(8), Some(5))
        );
        assert_eq!(
            p.message,
            "only applies to an enabled log: add enabled: true under provider.operationLog (or \
             remove slowThreshold)"
        );
        let p = only(
            &with_keys(&[
                ("provider.queryLog.enabled", "true"),
                ("provider.queryLog.slowThreshold", "0s"),
            ]),
            "provider.queryLog.slowThreshold",
        );
        assert_eq!(
            p.message,
            "is zero; it must be more than zero, e.g. \"500ms\""
        );
        let p = only(
            &with_keys(&[("provider.queryLog.enabled", "on")]),
            "provider.queryLog.enabled",
        );
        assert_eq!(p.message, "\"on\" is not a boolean; write true or false");
        let p = only(
            &with_keys(&[("provider.queryLog.verbose", "true")]),
            "provider.queryLog.verbose",
        );
        assert_eq!(p.kind, ProblemKind::UnknownKey);
    }

    #[test]
    fn environment_variables_are_expanded() {
        let yaml = "runtimePSKs:\n  - \"${FRANCIS_RUNTIME_PSK}\"\n  - \"prefix-${SUFFIX}\"\n\
                    bootstrap:\n  method: ${METHOD}\n  hostPSK: \"${HOST_PSK}\"\n\
                    provider:\n  type: memory\nbind: \"$${literal}:1\"\n";
        let env = |name: &str| match name {
            "FRANCIS_RUNTIME_PSK" => Some(PSK.to_owned()),
            "SUFFIX" => Some("x".repeat(32)),
            "METHOD" => Some("psk".to_owned()),
            "HOST_PSK" => Some("host-psk-from-the-env".to_owned()),
            _ => None,
        };
        // `$${` is a literal `${`, which is no valid host: the error proves it was not expanded.
        let err = RuntimeConfig::from_yaml_str(yaml, "env.yaml", env).unwrap_err();
        assert_eq!(err.problems().len(), 1, "{err}");
        assert_eq!(err.problems()[0].key, "bind");
        assert!(err.problems()[0].message.contains("${literal}"), "{err}");

        let yaml = yaml.replace("\"$${literal}:1\"", "\":7400\"");
        let config = RuntimeConfig::from_yaml_str(&yaml, "env.yaml", env).unwrap();
        assert_eq!(
            config.runtime_psks,
            vec![
                Secret::new(PSK),
                Secret::new(format!("prefix-{}", "x".repeat(32)))
            ]
        );
        assert_eq!(
            config.bootstrap,
            Bootstrap::Psk {
                host_psk: Secret::new("host-psk-from-the-env")
            }
        );
    }

    #[test]
    fn an_unset_environment_variable_names_the_variable_and_the_key() {
        let yaml = base("").replace(PSK, "${FRANCIS_RUNTIME_PSK}");
        let p = only(&yaml, "runtimePSKs[0]");
        assert_eq!(p.kind, ProblemKind::Environment);
        assert_eq!(p.line, Some(2));
        assert!(p.message.contains("FRANCIS_RUNTIME_PSK"), "{}", p.message);
        assert!(p.message.contains("not set"), "{}", p.message);

        let p = only(&base("").replace(PSK, "${BAD NAME}"), "runtimePSKs[0]");
        assert_eq!(p.kind, ProblemKind::Environment);
        let p = only(&base("").replace(PSK, "${OPEN"), "runtimePSKs[0]");
        assert!(p.message.contains("unterminated"), "{}", p.message);
    }

    #[test]
    fn a_short_psk_from_the_environment_says_where_it_came_from() {
        let yaml = base("").replace(PSK, "${FRANCIS_RUNTIME_PSK}");
        let env = |name: &str| (name == "FRANCIS_RUNTIME_PSK").then(|| "s3cr3".to_owned());
        let err = RuntimeConfig::from_yaml_str(&yaml, "t.yaml", env).unwrap_err();
        let p = &err.problems()[0];
        assert_eq!(p.key, "runtimePSKs[0]");
        assert!(
            p.message
                .contains("is 5 bytes (expanded from ${FRANCIS_RUNTIME_PSK})"),
            "{p}"
        );
        assert!(!err.to_string().contains("s3cr3"), "secret echoed: {err}");
    }

    #[test]
    fn short_and_empty_runtime_psks_are_reported_each() {
        let yaml = format!(
            "runtimePSKs:\n  - \"{PSK}\"\n  - \"too-short\"\n  - \"\"\nbootstrap:\n  method: psk\n  \
             hostPSK: \"a-host-psk-16-bytes+\"\nprovider:\n  type: memory\n"
        );
        let found = problems(&yaml);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert_eq!(found[0].key, "runtimePSKs[1]");
        assert_eq!(found[0].line, Some(3));
        assert!(found[0].message.contains("is 9 bytes"));
        assert!(found[0].message.contains("openssl rand"), "says what to do");
        assert!(!found[0].message.contains("too-short"), "secret echoed");
        assert_eq!(found[1].key, "runtimePSKs[2]");
        assert_eq!(found[1].line, Some(4));
        assert!(found[1].message.contains("is empty"));
    }

    #[test]
    fn runtime_psks_must_be_a_non_empty_list() {
        let p = only(
            &base("").replace(&format!("\n  - \"{PSK}\""), &format!(" \"{PSK}\"")),
            "runtimePSKs",
        );
        assert_eq!(p.kind, ProblemKind::WrongType);
        assert_eq!(p.line, Some(1));
        assert!(p.message.contains("write it as a list"), "{}", p.message);
        assert!(!p.message.contains(PSK), "secret echoed");

        let p = only(
            &base("").replace(&format!("\n  - \"{PSK}\""), " []"),
            "runtimePSKs",
        );
        assert_eq!(p.kind, ProblemKind::Missing);

        let p = only(
            &base("").replace(&format!("\n  - \"{PSK}\""), ""),
            "runtimePSKs",
        );
        assert_eq!((p.kind, p.line), (ProblemKind::Missing, Some(1)));

        let p = only(
            &base("").replace(&format!("runtimePSKs:\n  - \"{PSK}\"\n"), ""),
            "runtimePSKs",
        );
        assert_eq!((p.kind, p.line), (ProblemKind::Missing, None));
        assert!(p.message.contains("required"));
    }

    #[test]
    fn host_psk_rules() {
        let p = only(
            &base("").replace("a-host-psk-16-bytes+", "short-host"),
            "bootstrap.hostPSK",
        );
        assert_eq!(
            (p.kind, p.line, p.column),
            (ProblemKind::InvalidValue, Some(5), Some(12))
        );
        assert!(p.message.contains("is 10 bytes") && p.message.contains("at least 16 bytes"));
        assert!(!p.message.contains("short-host"), "secret echoed");

        let yaml = base("").replace("  hostPSK: \"a-host-psk-16-bytes+\"\n", "");
        let p = only(&yaml, "bootstrap.hostPSK");
        assert_eq!((p.kind, p.line), (ProblemKind::Missing, Some(3)));
        assert!(p.message.contains("required with method: psk"));
    }

    #[test]
    fn bootstrap_method_is_required_and_case_insensitive() {
        let config = parse(&base("").replace("method: psk", "method: PSK")).unwrap();
        assert!(matches!(config.bootstrap, Bootstrap::Psk { .. }));

        let p = only(
            &base("").replace("method: psk", "method: pks"),
            "bootstrap.method",
        );
        assert_eq!(
            (p.kind, p.line, p.column),
            (ProblemKind::InvalidValue, Some(4), Some(11))
        );
        assert!(p.message.contains("expected psk or jwt"));

        let p = only(&base("").replace("  method: psk\n", ""), "bootstrap.method");
        assert_eq!((p.kind, p.line), (ProblemKind::Missing, Some(3)));
    }

    const JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

    fn jwt_yaml(jwt_body: &str) -> String {
        format!(
            "runtimePSKs:\n  - \"{PSK}\"\nbootstrap:\n  method: jwt\n  jwt:\n{jwt_body}provider:\n  \
             type: memory\n"
        )
    }

    #[test]
    fn jwt_bootstrap_with_a_url_or_a_static_jwks() {
        let config = parse(&jwt_yaml(
            "    issuer: \"https://issuer.example.com\"\n    audience: \"francis-runtime\"\n    \
             jwksURL: \"https://issuer.example.com/.well-known/jwks.json\"\n",
        ))
        .unwrap();
        assert_eq!(
            config.bootstrap,
            Bootstrap::Jwt(JwtConfig {
                issuer: "https://issuer.example.com".into(),
                audience: "francis-runtime".into(),
                jwks: JwksSource::Url("https://issuer.example.com/.well-known/jwks.json".into()),
            })
        );

        let config = parse(&jwt_yaml(&format!(
            "    issuer: iss\n    audience: aud\n    staticJWKS: |\n      {JWKS}\n"
        )))
        .unwrap();
        let Bootstrap::Jwt(jwt) = config.bootstrap else {
            panic!("expected jwt")
        };
        assert_eq!(jwt.jwks, JwksSource::Static(format!("{JWKS}\n")));
    }

    #[test]
    fn both_jwks_url_and_static_jwks_is_a_conflict() {
        let p = only(
            &jwt_yaml(&format!(
                "    issuer: iss\n    audience: aud\n    jwksURL: \"https://i.example/jwks\"\n    \
                 staticJWKS: '{JWKS}'\n"
            )),
            "bootstrap.jwt.staticJWKS",
        );
        assert_eq!(
            (p.kind, p.line, p.column),
            (ProblemKind::Conflict, Some(9), Some(5))
        );
        assert!(p.message.contains("jwksURL (line 8)"), "{}", p.message);
        assert!(p.message.contains("keep exactly one"), "{}", p.message);

        let p = only(
            &jwt_yaml("    issuer: iss\n    audience: aud\n"),
            "bootstrap.jwt.jwksURL",
        );
        assert_eq!((p.kind, p.line), (ProblemKind::Missing, Some(5)));
    }

    #[test]
    fn jwt_settings_are_checked() {
        let found = problems(&jwt_yaml(
            "    audience: \"\"\n    jwksURL: \"http://issuer.example.com/jwks\"\n",
        ));
        let keys: Vec<&str> = found.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "bootstrap.jwt.issuer",
                "bootstrap.jwt.audience",
                "bootstrap.jwt.jwksURL"
            ],
            "{found:#?}"
        );
        assert!(
            found[2].message.contains("use https"),
            "{}",
            found[2].message
        );

        let p = only(
            &jwt_yaml("    issuer: iss\n    audience: aud\n    staticJWKS: '{\"keys\": 3}'\n"),
            "bootstrap.jwt.staticJWKS",
        );
        assert_eq!((p.kind, p.line), (ProblemKind::InvalidValue, Some(8)));

        // Loopback http is fine (a local issuer or sidecar).
        parse(&jwt_yaml(
            "    issuer: iss\n    audience: aud\n    jwksURL: \"http://127.0.0.1:8080/jwks\"\n",
        ))
        .unwrap();
    }

    #[test]
    fn exactly_one_bootstrap_method_may_be_configured() {
        let yaml = base("").replace(
            "  hostPSK: \"a-host-psk-16-bytes+\"\n",
            "  hostPSK: \"a-host-psk-16-bytes+\"\n  jwt:\n    issuer: iss\n    audience: aud\n    \
             jwksURL: \"https://i.example/jwks\"\n",
        );
        let p = only(&yaml, "bootstrap.jwt");
        assert_eq!((p.kind, p.line), (ProblemKind::Conflict, Some(6)));

        let yaml = yaml.replace("method: psk", "method: jwt");
        let p = only(&yaml, "bootstrap.hostPSK");
        assert_eq!((p.kind, p.line), (ProblemKind::Conflict, Some(5)));
    }

    #[test]
    fn unknown_keys_get_suggestions() {
        let p = only(&base("healthCheckDeadLine: 30s\n"), "healthCheckDeadLine");
        assert_eq!(
            (p.kind, p.line, p.column),
            (ProblemKind::UnknownKey, Some(8), Some(1))
        );
        assert!(
            p.message.contains("did you mean \"healthCheckDeadline\"?"),
            "{}",
            p.message
        );

        let p = only(
            &base("").replace("type: memory", "tpye: memory\n  type: memory"),
            "provider.tpye",
        );
        assert!(
            p.message.contains("did you mean \"provider.type\"?"),
            "{}",
            p.message
        );

        let p = only(&base("hostPSK: x\n"), "hostPSK");
        assert!(p.message.contains("\"bootstrap.hostPSK\""), "{}", p.message);

        let p = only(&base("log.level: debug\n"), "log.level");
        assert!(p.message.contains("nested, not dotted"), "{}", p.message);
        assert!(p.message.contains("log:\n      level:"), "{}", p.message);

        let p = only(&base("frobnicate: 1\n"), "frobnicate");
        assert!(
            p.message
                .contains("the keys accepted at the top level are: profile, bind,"),
            "{}",
            p.message
        );
    }

    #[test]
    fn yaml_syntax_errors_carry_their_line() {
        let p = only(&base("bind: \"0.0.0.0:7400\n"), "");
        assert_eq!(p.kind, ProblemKind::Syntax);
        assert_eq!((p.line, p.column), (Some(8), Some(7)), "{p:?}");
        assert!(p.message.starts_with("invalid YAML: "), "{}", p.message);

        let p = only(&base("  oops: [1\n"), "");
        assert_eq!(p.kind, ProblemKind::Syntax);
        assert!(p.line.is_some());

        let p = only(&base("bind: \":1\"\nbind: \":2\"\n"), "bind");
        assert_eq!((p.kind, p.line), (ProblemKind::Syntax, Some(9)));
        assert!(p.message.contains("first set on line 8"), "{}", p.message);

        let p = only("- a\n- b\n", "");
        assert_eq!((p.kind, p.line), (ProblemKind::Syntax, Some(1)));

        let p = only(&base("bind: &a \":1\"\n"), "");
        assert!(p.message.contains("anchors"), "{}", p.message);

        // A leading "---" is fine; a second document is not silently ignored.
        parse(&format!("---\n{}", base(""))).unwrap();
        let p = only(&base("---\nbind: \":1\"\n"), "");
        assert_eq!((p.kind, p.line), (ProblemKind::Syntax, Some(8)));
        assert!(p.message.contains("second YAML document"), "{}", p.message);
    }

    #[test]
    fn durations_are_validated_not_defaulted() {
        let ok = parse(&base(
            "workloadCertTTL: PT2H\nhealthCheckDeadline: 1500ms\nalarmsPollInterval: 250ms\n\
             alarmsLeaseDuration: 1m\nshutdownGracePeriod: \"5000\"\n",
        ))
        .unwrap();
        assert_eq!(ok.workload_cert_ttl, Duration::from_secs(7200));
        assert_eq!(ok.health_check_deadline, Duration::from_millis(1500));
        assert_eq!(ok.alarms_poll_interval, Duration::from_millis(250));
        assert_eq!(ok.alarms_lease_duration, Duration::from_secs(60));
        assert_eq!(ok.shutdown_grace_period, Duration::from_secs(5));

        let p = only(
            &base("alarmsPollInterval: 20 seconds\n"),
            "alarmsPollInterval",
        );
        assert_eq!(
            (p.kind, p.line, p.column),
            (ProblemKind::InvalidValue, Some(8), Some(21))
        );
        assert!(p.message.contains("accepted forms"), "{}", p.message);

        let p = only(&base("shutdownGracePeriod: 0s\n"), "shutdownGracePeriod");
        assert!(p.message.contains("more than zero"), "{}", p.message);
        assert!(p.message.contains("\"30s\""), "{}", p.message);

        let p = only(&base("alarmsLeaseDuration: -5s\n"), "alarmsLeaseDuration");
        assert!(p.message.contains("negative"), "{}", p.message);
        let p = only(&base("alarmsLeaseDuration: 8760h\n"), "alarmsLeaseDuration");
        assert!(p.message.contains("at most 5m"), "{}", p.message);

        let p = only(&base("workloadCertTTL: 9000h\n"), "workloadCertTTL");
        assert!(p.message.contains("at most 365 days"), "{}", p.message);

        let p = only(&base("healthCheckDeadline: 1s\n"), "healthCheckDeadline");
        assert!(p.message.contains("more than 1s"), "{}", p.message);

        let p = only(&base("workloadCertTTL: P1D\n"), "workloadCertTTL");
        assert!(p.message.contains("PT24H"), "{}", p.message);
    }

    #[test]
    fn every_problem_is_reported_in_file_order() {
        let yaml = "bind: nowhere\nruntimePSKs:\n  - short\nbootstrap:\n  method: carrier-pigeon\n\
                    provider:\n  type: sqlite\nhealthCheckDeadline: 0s\nlog:\n  level: loud\n";
        let found = problems(yaml);
        let summary: Vec<(&str, Option<usize>)> =
            found.iter().map(|p| (p.key.as_str(), p.line)).collect();
        assert_eq!(
            summary,
            [
                ("bind", Some(1)),
                ("runtimePSKs[0]", Some(3)),
                ("bootstrap.method", Some(5)),
                ("provider.connectionString", Some(6)),
                ("healthCheckDeadline", Some(8)),
                ("log.level", Some(10)),
            ]
        );
        let text = parse(yaml).unwrap_err().to_string();
        assert!(
            text.starts_with("invalid runtime configuration test.yaml (6 problems):"),
            "{text}"
        );
        assert!(
            text.contains("\n  test.yaml:1:7: bind: invalid address \"nowhere\""),
            "{text}"
        );
        assert!(
            text.contains("\n  test.yaml:3:5: runtimePSKs[0]: is 5 bytes"),
            "{text}"
        );
    }

    #[test]
    fn bind_addresses() {
        let bind = |v: &str| parse(&base(&format!("bind: \"{v}\"\n"))).map(|c| c.bind);
        assert_eq!(bind(":7400").unwrap().to_string(), "0.0.0.0:7400");
        assert_eq!(bind("[::]:7400").unwrap().to_string(), "[::]:7400");
        assert_eq!(bind("[::1]:7400").unwrap().host(), "::1");
        assert_eq!(bind("localhost:7400").unwrap().socket_addr(), None);
        assert_eq!(bind("0.0.0.0:0").unwrap().port(), 0);
        for (bad, hint) in [
            ("7400", "expected host:port"),
            ("::1:7400", "in brackets"),
            ("0.0.0.0:99999", "0 to 65535"),
            ("bad host:1", "neither an IP address nor a host name"),
        ] {
            let err = bind(bad).unwrap_err();
            let p = &err.problems()[0];
            assert_eq!((p.key.as_str(), p.line), ("bind", Some(8)), "{bad}");
            assert!(p.message.contains(hint), "{bad}: {}", p.message);
        }
    }

    #[test]
    fn runtime_id_must_be_a_spiffe_segment() {
        let config = parse(&base("runtimeId: runtime-0\n")).unwrap();
        assert_eq!(config.runtime_id.as_deref(), Some("runtime-0"));
        let p = only(&base("runtimeId: \"runtime/0\"\n"), "runtimeId");
        assert_eq!((p.kind, p.line), (ProblemKind::InvalidValue, Some(8)));
        assert!(p.message.contains("letters, digits"), "{}", p.message);
    }

    #[test]
    fn provider_rules() {
        let with = |provider: &str| base("").replace("provider:\n  type: memory\n", provider);

        let p = only(
            &with("provider:\n  type: memory\n  connectionString: x\n"),
            "provider.connectionString",
        );
        assert_eq!((p.kind, p.line), (ProblemKind::Conflict, Some(8)));

        let p = only(
            &with("provider:\n  type: sqlite\n"),
            "provider.connectionString",
        );
        assert_eq!((p.kind, p.line), (ProblemKind::Missing, Some(6)));

        let p = only(
            &with(
                "provider:\n  type: postgres\n  connectionString: \"host=db password=hunter2\"\n",
            ),
            "provider.connectionString",
        );
        assert!(p.message.contains("postgres://"), "{}", p.message);
        assert!(!p.message.contains("hunter2"), "secret echoed");

        let p = only(&with("provider:\n  type: mysql\n"), "provider.type");
        assert!(p.message.contains("expected sqlite, postgres or memory"));

        let p = only(&with("provider: sqlite\n"), "provider");
        assert_eq!(p.kind, ProblemKind::WrongType);

        let p = only(
            &base("").replace("provider:\n  type: memory\n", ""),
            "provider.type",
        );
        assert_eq!((p.kind, p.line), (ProblemKind::Missing, None));

        let url = "postgres://francis:hunter2@db:5432/francis";
        let config = parse(&with(&format!(
            "provider:\n  type: postgres\n  connectionString: \"{url}\"\n"
        )))
        .unwrap();
        assert_eq!(
            config.provider,
            Provider::Postgres {
                connection_string: url.into()
            }
        );
        assert!(
            !format!("{config:?}").contains("hunter2"),
            "Debug leaks the password"
        );
        assert!(!format!("{config:?}").contains(PSK), "Debug leaks a PSK");
    }

    #[test]
    fn wrong_shapes_and_empty_values() {
        let p = only(&base("log: debug\n"), "log");
        assert_eq!((p.kind, p.line), (ProblemKind::WrongType, Some(8)));
        let p = only(&base("bind:\n"), "bind");
        assert_eq!((p.kind, p.line), (ProblemKind::Missing, Some(8)));
        let p = only(&base("bind: [a, b]\n"), "bind");
        assert_eq!(p.kind, ProblemKind::WrongType);
        // A quoted "~" is a string, not a null.
        let p = only(&base("runtimeId: \"~\"\n"), "runtimeId");
        assert_eq!(p.kind, ProblemKind::InvalidValue);
        // Numbers and booleans are read as the text written.
        let config = parse(&base("").replace(&format!("\"{PSK}\""), &"1".repeat(40))).unwrap();
        assert_eq!(config.runtime_psks[0].expose(), "1".repeat(40));
    }

    #[test]
    fn an_empty_file_reports_the_required_keys() {
        let found = problems("# nothing yet\n");
        let keys: Vec<&str> = found.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["runtimePSKs", "bootstrap.method", "provider.type"]);
    }

    #[test]
    fn reference_and_parser_agree() {
        let reference: Vec<&str> = RuntimeConfig::reference().iter().map(|k| k.key).collect();

        // Every key the parser accepts, flattened to dotted paths.
        let mut accepted = Vec::new();
        for top in TOP_KEYS {
            match *top {
                "bootstrap" => {
                    for b in BOOTSTRAP_KEYS {
                        if *b == "jwt" {
                            accepted.extend(JWT_KEYS.iter().map(|j| format!("bootstrap.jwt.{j}")));
                        } else {
                            accepted.push(format!("bootstrap.{b}"));
                        }
                    }
                }
                "provider" => {
                    for p in PROVIDER_KEYS {
                        match *p {
                            "queryLog" => accepted.extend(
                                QUERY_LOG_KEYS
                                    .iter()
                                    .map(|k| format!("provider.queryLog.{k}")),
                            ),
                            "operationLog" => accepted.extend(
                                OPERATION_LOG_KEYS
                                    .iter()
                                    .map(|k| format!("provider.operationLog.{k}")),
                            ),
                            other => accepted.push(format!("provider.{other}")),
                        }
                    }
                }
                "http" => accepted.extend(HTTP_KEYS.iter().map(|k| format!("http.{k}"))),
                "log" => accepted.extend(LOG_KEYS.iter().map(|k| format!("log.{k}"))),
                other => accepted.push(other.to_owned()),
            }
        }
        assert_eq!(
            accepted, reference,
            "the parser's keys and reference() differ"
        );

        // A document holding every reference key reports none of them as unknown.
        let pairs: Vec<(&str, &str)> = reference.iter().map(|k| (*k, "x")).collect();
        let yaml = nested(&pairs);
        let found = problems(&yaml);
        assert!(!found.is_empty());
        let unknown: Vec<_> = found
            .iter()
            .filter(|p| p.kind == ProblemKind::UnknownKey)
            .collect();
        assert!(unknown.is_empty(), "{unknown:#?}\n{yaml}");
    }

    #[test]
    fn odd_yaml_is_reported_not_panicked_on() {
        let mut inputs: Vec<String> = [
            "",
            "---",
            "...",
            "--- |\n  text\n",
            "? a\n: b\n",
            "a: !!str x\n",
            "[a",
            "{a: b}",
            "a: *x\n",
            "&a a: b\n",
            "bind:\n- b\n- c: d\n",
            "%YAML 1.2\n---\nbind: x\n",
            "\tbind: x\n",
            "bind: x\n  y: z\n",
            "{bind: [}",
            "\u{feff}bind: \":1\"\n",
            "runtimePSKs: {a: b}\n",
            "bootstrap: [psk]\n",
            "log:\n  level: [debug]\n",
            "? [a]\n: b\n",
            "'\n",
            "\"\\x\"\n",
            "a: |\n b\n c\n",
            "- - - -\n",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Deterministic junk built from YAML's special characters.
        let alphabet: Vec<char> = "ab: -?[]{},&*!|>'\"%@`#\n\t".chars().collect();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..300 {
            let len = (state % 40) as usize;
            let mut junk = String::new();
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                junk.push(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            inputs.push(junk);
        }
        for input in &inputs {
            if let Err(e) = parse(input) {
                assert!(!e.problems().is_empty(), "{input:?}");
            }
        }
    }

    #[test]
    fn reference_entries_are_documented() {
        for key in RuntimeConfig::reference() {
            assert!(!key.description.is_empty(), "{}", key.key);
            assert!(!key.description.contains("  "), "{}: stray spaces", key.key);
        }
    }

    #[test]
    fn load_reads_a_file_and_names_it_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, base("")).unwrap();
        assert_eq!(
            RuntimeConfig::load(&path).unwrap().provider,
            Provider::Memory
        );

        std::fs::write(&path, base("bind: nowhere\n")).unwrap();
        let err = RuntimeConfig::load(&path).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("{}:8:7: bind", path.display())),
            "{err}"
        );

        let missing = dir.path().join("missing.yaml");
        let err = RuntimeConfig::load(&missing).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
        assert!(err.to_string().contains("missing.yaml"), "{err}");
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(<7 bytes>)");
        let config = parse(&base("")).unwrap();
        let debug = format!("{config:?}");
        assert!(
            !debug.contains(PSK) && !debug.contains("a-host-psk-16-bytes+"),
            "{debug}"
        );
    }

    #[test]
    fn second_psk_is_kept_in_order() {
        let yaml = base("").replace(
            &format!("- \"{PSK}\""),
            &format!("- \"{PSK}\"\n  - \"{PSK2}\""),
        );
        let config = parse(&yaml).unwrap();
        assert_eq!(
            config.runtime_psks,
            vec![Secret::new(PSK), Secret::new(PSK2)]
        );
    }

    fn parse_with(yaml: &str, vars: &[(&str, &str)]) -> Result<RuntimeConfig, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        RuntimeConfig::from_yaml_str(yaml, "test.yaml", move |name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn the_profile_is_the_key_else_the_environment_else_dev() {
        use crate::profile::Profile;
        assert_eq!(parse(&base("")).unwrap().profile, Profile::Dev);
        assert_eq!(
            parse(&base("profile: prod\n")).unwrap().profile,
            Profile::Prod
        );
        assert_eq!(
            parse(&base("profile: PROD\n")).unwrap().profile,
            Profile::Prod
        );
        let env_prod = [("FRANCIS_PROFILE", "prod")];
        assert_eq!(
            parse_with(&base(""), &env_prod).unwrap().profile,
            Profile::Prod
        );
        assert_eq!(
            parse_with(&base("profile: dev\n"), &env_prod)
                .unwrap()
                .profile,
            Profile::Dev,
            "the key wins over the environment"
        );
        assert_eq!(
            parse_with(&base(""), &[("FRANCIS_PROFILE", "")])
                .unwrap()
                .profile,
            Profile::Dev,
            "empty is unset"
        );

        let p = only(&base("profile: production\n"), "profile");
        assert_eq!(
            (p.kind, p.line, p.column),
            (ProblemKind::InvalidValue, Some(8), Some(10))
        );
        assert_eq!(
            p.message,
            "unknown profile \"production\"; expected dev or prod"
        );

        for yaml in [base(""), base("profile: prod\n")] {
            let err = parse_with(&yaml, &[("FRANCIS_PROFILE", "staging")]).unwrap_err();
            let [p] = err.problems() else {
                panic!("expected one problem: {err}")
            };
            assert_eq!(
                (p.kind, p.key.as_str()),
                (ProblemKind::Environment, "profile")
            );
            assert!(
                p.message.starts_with(
                    "FRANCIS_PROFILE: unknown profile \"staging\"; expected dev or prod"
                ),
                "{}",
                p.message
            );
        }
    }

    /// The codes `prod` refuses in `config`, the operations server having a token or not.
    fn refused(config: &RuntimeConfig, http_token: bool) -> Vec<&'static str> {
        match crate::profile::Profile::Prod.check(&config.profile_setup(http_token)) {
            Ok(_) => Vec::new(),
            Err(e) => e.codes().iter().map(|c| c.as_str()).collect(),
        }
    }

    #[test]
    fn psks_written_in_the_file_are_literal_and_references_are_not() {
        use crate::profile::PskKind;
        let config = parse(&base("")).unwrap();
        assert_eq!(
            config.profile_setup(true).literal_psks,
            [
                ("runtimePSKs[0]".to_owned(), PskKind::Runtime),
                ("bootstrap.hostPSK".to_owned(), PskKind::HostBootstrap),
            ]
        );
        assert_eq!(
            refused(&config, true),
            [
                "in_memory_store",
                "literal_psk_in_config",
                "literal_psk_in_config"
            ]
        );

        let vars = [
            ("R1", PSK),
            ("R2", PSK2),
            ("H", "a-host-psk-16-bytes+"),
            ("PART", "psk-of-at-least-32-bytes!!"),
        ];
        let from_env = |runtime: &str, host: &str| {
            let yaml = format!(
                "runtimePSKs:\n{runtime}bootstrap:\n  method: psk\n  hostPSK: {host}\n\
                 provider:\n  type: sqlite\n  connectionString: data.db\n"
            );
            parse_with(&yaml, &vars).unwrap().profile_setup(true)
        };
        let all_references = from_env("  - \"${R1}\"\n  - ${R2}\n", "\"${H}\"");
        assert_eq!(all_references.literal_psks, []);
        assert_eq!(all_references.problems(), []);

        // Part of the key written in the file is a literal key: only a whole reference is not.
        let mixed = from_env(
            "  - \"${R1}\"\n  - \"a-runtime-${PART}\"\n",
            "\"$${H}-written-out\"",
        );
        assert_eq!(
            mixed.literal_psks,
            [
                ("runtimePSKs[1]".to_owned(), PskKind::Runtime),
                ("bootstrap.hostPSK".to_owned(), PskKind::HostBootstrap),
            ]
        );
    }

    #[test]
    fn prod_checks_the_operations_server_the_jwks_url_and_the_development_key() {
        let yaml = |extra: &str| {
            format!(
                "profile: prod\nruntimePSKs: [\"${{R}}\"]\nbootstrap:\n  method: psk\n  \
                 hostPSK: \"${{H}}\"\nprovider:\n  type: sqlite\n  connectionString: db\n{extra}"
            )
        };
        let vars = [("R", PSK), ("H", "a-host-psk-16-bytes+")];
        let config = parse_with(&yaml(""), &vars).unwrap();
        assert_eq!(refused(&config, true), Vec::<&str>::new());
        assert_eq!(refused(&config, false), ["operations_api_without_auth"]);
        let tls = parse_with(&yaml("http:\n  tls: true\n"), &vars).unwrap();
        assert_eq!(
            refused(&tls, false),
            Vec::<&str>::new(),
            "TLS client certificates"
        );

        let development = [
            ("R", crate::net::pki::DEVELOPMENT_PSK),
            ("H", crate::net::pki::DEVELOPMENT_PSK),
        ];
        let config = parse_with(&yaml(""), &development).unwrap();
        assert_eq!(
            refused(&config, true),
            ["development_psk", "development_psk"]
        );

        let jwt = |url: &str| {
            let yaml = format!(
                "runtimePSKs: [\"${{R}}\"]\nbootstrap:\n  method: jwt\n  jwt:\n    issuer: i\n    \
                 audience: a\n    jwksURL: \"{url}\"\nprovider:\n  type: postgres\n  \
                 connectionString: \"postgres://db/francis\"\n"
            );
            refused(&parse_with(&yaml, &vars).unwrap(), true)
        };
        assert_eq!(jwt("http://127.0.0.1:8080/jwks"), ["jwks_over_http"]);
        assert_eq!(jwt("https://issuer.example.com/jwks"), Vec::<&str>::new());
    }
}
