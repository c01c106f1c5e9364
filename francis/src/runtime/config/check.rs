//! Checking the YAML tree against the schema, with positions: every key and value is read into
//! the typed configuration, and every problem is recorded with its key path, line and column.

use std::collections::HashMap;
use std::time::Duration;

use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};
use marked_yaml::{LoadError, LoaderOptions, Node, Span};

use super::env::expand_env;
use super::problems::unknown_key_message;
use super::schema::{
    BOOTSTRAP_KEYS, HTTP_KEYS, JWT_KEYS, LOG_KEYS, OPERATION_LOG_KEYS, PROVIDER_KEYS,
    QUERY_LOG_KEYS, TOP_KEYS, join,
};
use super::*;
use crate::host::{
    DEFAULT_ALARMS_FETCH_AHEAD, DEFAULT_ALARMS_FETCH_BATCH_SIZE, DEFAULT_CALL_TIMEOUT,
    DEFAULT_MAX_IN_FLIGHT_REQUESTS, DEFAULT_MAX_REQUEST_BODY_SIZE, MAX_ALARMS_FETCH_AHEAD,
    MAX_IN_FLIGHT_REQUESTS, MAX_REQUEST_BODY_SIZE, MIN_REQUEST_BODY_SIZE,
};
use crate::profile::{PROFILE_ENV, Profile, PskKind};
use crate::runtime::MAX_ALARMS_FETCH_BATCH_SIZE;
use crate::store::{DEFAULT_STORE_TIMEOUT, OperationLog, QueryLog, default_store_timeout};

/// A position in the file.
#[derive(Debug, Clone, Copy)]
struct Pos {
    line: usize,
    column: usize,
}

fn pos_of(span: &Span) -> Option<Pos> {
    span.start().map(|m| Pos {
        line: m.line(),
        column: m.column(),
    })
}

/// A string value after `${VAR}` expansion.
struct Text {
    value: String,
    pos: Option<Pos>,
    /// The variables it was expanded from, for messages.
    vars: Vec<String>,
    /// Whether the value is exactly one `${VAR}` reference: nothing of it is written in the
    /// file.
    from_env_only: bool,
}

impl Text {
    /// " (expanded from ${A})" when the value came from the environment, to say where to look.
    fn origin(&self) -> String {
        if self.vars.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = self.vars.iter().map(|v| format!("${{{v}}}")).collect();
            format!(" (expanded from {})", names.join(", "))
        }
    }
}

/// A present key: where it is and its value.
#[derive(Clone, Copy)]
struct Entry<'n> {
    key_pos: Option<Pos>,
    value: &'n Node,
}

/// Walks the YAML tree, collecting problems.
pub(super) struct Checker<'e> {
    pub(super) env: &'e dyn Fn(&str) -> Option<String>,
    pub(super) problems: Vec<ConfigProblem>,
    /// The PSKs written in the file, by key path.
    pub(super) literal_psks: Vec<(String, PskKind)>,
}

impl Checker<'_> {
    fn problem(&mut self, kind: ProblemKind, key: &str, pos: Option<Pos>, message: String) {
        self.problems.push(ConfigProblem {
            kind,
            key: key.to_owned(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            message,
        });
    }

    pub(super) fn document(&mut self, text: &str) -> Option<RuntimeConfig> {
        // The YAML loader reads the first document only: refuse a second one rather than
        // silently ignore it.
        if let Some(line) = second_document_line(text) {
            self.problem(
                ProblemKind::Syntax,
                "",
                Some(Pos { line, column: 1 }),
                "a second YAML document starts here; the configuration is a single document, \
                 so remove this \"---\" (and merge or delete what follows)"
                    .into(),
            );
        }
        let options = LoaderOptions::default()
            .error_on_duplicate_keys(true)
            .prevent_coercion(true);
        let root = match marked_yaml::parse_yaml_with_options(0, text, options) {
            Ok(root) => root,
            Err(e) => {
                self.syntax_error(&e);
                return None;
            }
        };
        let Some(root) = root.as_mapping() else {
            self.problem(
                ProblemKind::Syntax,
                "",
                pos_of(root.span()),
                "the configuration must be a YAML mapping of keys, like \"bind: ...\"".into(),
            );
            return None;
        };
        let mut fields = self.entries("", root, TOP_KEYS);

        let profile = self.profile(fields.remove("profile"));
        let bind = match fields.remove("bind") {
            None => DEFAULT_BIND.parse().ok(),
            Some(entry) => self.bind(&entry),
        };
        let advertise_address = match fields.remove("advertiseAddress") {
            None => Some(None),
            Some(entry) => self.advertise_address(&entry).map(Some),
        };
        let runtime_id = match fields.remove("runtimeId") {
            None => Some(None),
            Some(entry) => self.runtime_id(&entry).map(Some),
        };
        let runtime_psks = match fields.remove("runtimePSKs") {
            None => {
                self.problem(
                    ProblemKind::Missing,
                    "runtimePSKs",
                    None,
                    "missing; it is required: add a list of runtime PSKs of at least 32 bytes \
                     each, e.g. runtimePSKs: [\"${FRANCIS_RUNTIME_PSK}\"]"
                        .into(),
                );
                None
            }
            Some(entry) => self.runtime_psks(&entry),
        };
        let bootstrap = self.bootstrap(fields.remove("bootstrap"));
        let (provider, provider_options, timeout_pos) = self.provider(fields.remove("provider"));
        let workload_cert_ttl = self.duration(
            "workloadCertTTL",
            fields.remove("workloadCertTTL"),
            Duration::from_secs(3600),
            |d| {
                (d > MAX_LEAF_TTL).then(|| {
                    "must be at most 365 days (8760h); hosts renew their certificates at half \
                     their lifetime, so an hour to a day is typical"
                        .to_owned()
                })
            },
        );
        let health_check_deadline = self.duration(
            "healthCheckDeadline",
            fields.remove("healthCheckDeadline"),
            Duration::from_secs(20),
            |d| {
                (d <= MIN_HEALTH_CHECK_DEADLINE)
                    .then(|| "must be more than 1s, e.g. \"20s\"".to_owned())
            },
        );
        // Checked once both are known: a store operation may not outlast a registration.
        let mut provider_options = provider_options;
        if let (Some(options), Some(deadline)) = (&mut provider_options, health_check_deadline) {
            if timeout_pos.is_none() {
                options.timeout = default_store_timeout(deadline);
            } else if options.timeout >= deadline {
                self.problem(
                    ProblemKind::Conflict,
                    "provider.timeout",
                    timeout_pos.flatten(),
                    format!(
                        "is {} but must be less than healthCheckDeadline ({}), or one slow store \
                         operation could outlast a host's registration; e.g. \"5s\"",
                        humanize(options.timeout),
                        humanize(deadline)
                    ),
                );
            }
        }
        let request_timeout = self.duration(
            "requestTimeout",
            fields.remove("requestTimeout"),
            DEFAULT_CALL_TIMEOUT,
            |_| None,
        );
        let alarms_poll_interval = self.duration(
            "alarmsPollInterval",
            fields.remove("alarmsPollInterval"),
            Duration::from_millis(1500),
            |_| None,
        );
        let alarms_lease_duration = self.duration(
            "alarmsLeaseDuration",
            fields.remove("alarmsLeaseDuration"),
            Duration::from_secs(20),
            |d| {
                (d > crate::runtime::MAX_ALARMS_LEASE_DURATION)
                    .then(|| "must be at most 5m, e.g. \"20s\"".to_owned())
            },
        );
        let alarms_fetch_ahead_interval = self.duration(
            "alarmsFetchAheadInterval",
            fields.remove("alarmsFetchAheadInterval"),
            DEFAULT_ALARMS_FETCH_AHEAD,
            |d| {
                (d > MAX_ALARMS_FETCH_AHEAD).then(|| {
                    "must be at most 1m (alarms are not leased longer ahead of their time), \
                     e.g. \"2.5s\""
                        .to_owned()
                })
            },
        );
        let alarms_fetch_ahead_batch_size = self.integer(
            "alarmsFetchAheadBatchSize",
            fields.remove("alarmsFetchAheadBatchSize"),
            u64::from(DEFAULT_ALARMS_FETCH_BATCH_SIZE),
            1..=u64::from(MAX_ALARMS_FETCH_BATCH_SIZE),
        );
        let shutdown_grace_period = self.duration(
            "shutdownGracePeriod",
            fields.remove("shutdownGracePeriod"),
            Duration::from_secs(30),
            |_| None,
        );
        let max_hosts = self.integer(
            "maxHosts",
            fields.remove("maxHosts"),
            0,
            0..=u64::from(u32::MAX),
        );
        let max_in_flight_requests = self.integer(
            "maxInFlightRequests",
            fields.remove("maxInFlightRequests"),
            DEFAULT_MAX_IN_FLIGHT_REQUESTS as u64,
            1..=MAX_IN_FLIGHT_REQUESTS as u64,
        );
        let max_request_body_size = self.byte_size(
            "maxRequestBodySize",
            fields.remove("maxRequestBodySize"),
            DEFAULT_MAX_REQUEST_BODY_SIZE,
        );
        let http = self.http(fields.remove("http"));
        let (log_level, log_json) = self.log(fields.remove("log"));

        Some(RuntimeConfig {
            profile: profile?,
            bind: bind?,
            advertise_address: advertise_address?,
            runtime_id: runtime_id?,
            runtime_psks: runtime_psks?,
            bootstrap: bootstrap?,
            provider: provider?,
            provider_options: provider_options?,
            workload_cert_ttl: workload_cert_ttl?,
            health_check_deadline: health_check_deadline?,
            alarms_poll_interval: alarms_poll_interval?,
            alarms_lease_duration: alarms_lease_duration?,
            alarms_fetch_ahead_interval: alarms_fetch_ahead_interval?,
            alarms_fetch_ahead_batch_size: u32::try_from(alarms_fetch_ahead_batch_size?).ok()?,
            shutdown_grace_period: shutdown_grace_period?,
            request_timeout: request_timeout?,
            max_hosts: u32::try_from(max_hosts?).ok()?,
            max_in_flight_requests: usize::try_from(max_in_flight_requests?).ok()?,
            max_request_body_size: max_request_body_size?,
            http: http?,
            log_level: log_level?,
            log_json: log_json?,
            literal_psks: std::mem::take(&mut self.literal_psks),
        })
    }

    /// `profile`, else `FRANCIS_PROFILE`, else `dev`. An unknown value in the environment is
    /// reported even when the file sets the profile: it is a mistake either way.
    fn profile(&mut self, entry: Option<Entry<'_>>) -> Option<Profile> {
        const KEY: &str = "profile";
        let from_env = match Profile::from_env_value((self.env)(PROFILE_ENV).as_deref()) {
            Ok(profile) => Some(profile),
            Err(e) => {
                self.problem(
                    ProblemKind::Environment,
                    KEY,
                    None,
                    format!(
                        "{e} (the variable sets the profile when the file has no profile key): \
                         correct or unset it"
                    ),
                );
                None
            }
        };
        let written = match entry {
            None => None,
            Some(entry) => {
                let text = self.text(KEY, entry.key_pos, entry.value, "dev or prod")?;
                match text.value.parse::<Profile>() {
                    Ok(profile) => Some(profile),
                    Err(e) => {
                        let message = format!("{e}{}", text.origin());
                        self.problem(ProblemKind::InvalidValue, KEY, text.pos, message);
                        return None;
                    }
                }
            }
        };
        Some(written.or(from_env?).unwrap_or_default())
    }

    fn syntax_error(&mut self, e: &LoadError) {
        let at = |m: &marked_yaml::Marker| {
            Some(Pos {
                line: m.line(),
                column: m.column(),
            })
        };
        let (key, pos, message) = match e {
            LoadError::ScanError(m, scan) => (
                String::new(),
                at(m),
                format!("invalid YAML: {}", scan.info()),
            ),
            LoadError::DuplicateKey(dup) => {
                let first = dup
                    .prev_key
                    .span()
                    .start()
                    .map(|m| format!(" (first set on line {})", m.line()))
                    .unwrap_or_default();
                (
                    dup.key.as_str().to_owned(),
                    dup.key.span().start().and_then(at),
                    format!("duplicate key{first}; keep only one"),
                )
            }
            LoadError::TopLevelMustBeMapping(m) | LoadError::TopLevelMustBeSequence(m) => (
                String::new(),
                at(m),
                "the configuration must be a YAML mapping of keys, like \"bind: ...\"".into(),
            ),
            LoadError::UnexpectedAnchor(m) => (
                String::new(),
                at(m),
                "YAML anchors and aliases (&name, *name) are not supported here; write the \
                 value out"
                    .into(),
            ),
            LoadError::UnexpectedTag(m) => (
                String::new(),
                at(m),
                "YAML tags (!!str, !name) are not supported here; quote the value instead".into(),
            ),
            LoadError::MappingKeyMustBeScalar(m) => (
                String::new(),
                at(m),
                "mapping keys must be plain names".into(),
            ),
        };
        self.problem(ProblemKind::Syntax, &key, pos, message);
    }

    /// The entries of a mapping whose keys are in `allowed`; reports the others.
    fn entries<'n>(
        &mut self,
        prefix: &str,
        map: &'n MarkedMappingNode,
        allowed: &[&'static str],
    ) -> HashMap<&'static str, Entry<'n>> {
        let mut out = HashMap::new();
        for (key, value) in map.iter() {
            let name = key.as_str();
            let key_pos = pos_of(key.span());
            match allowed.iter().find(|a| **a == name) {
                Some(known) => {
                    out.insert(*known, Entry { key_pos, value });
                }
                None => {
                    let message = unknown_key_message(prefix, name, allowed);
                    self.problem(
                        ProblemKind::UnknownKey,
                        &join(prefix, name),
                        key_pos,
                        message,
                    );
                }
            }
        }
        out
    }

    /// The mapping under `key`; reports other shapes.
    fn mapping<'n>(&mut self, key: &str, entry: &Entry<'n>) -> Option<&'n MarkedMappingNode> {
        match entry.value {
            Node::Mapping(map) => Some(map),
            Node::Scalar(s) if is_null(s) => {
                self.problem(
                    ProblemKind::Missing,
                    key,
                    entry.key_pos,
                    "has no value; it holds nested keys (see the configuration reference)".into(),
                );
                None
            }
            other => {
                self.problem(
                    ProblemKind::WrongType,
                    key,
                    pos_of(other.span()),
                    format!("expected nested keys (a mapping), found {}", shape(other)),
                );
                None
            }
        }
    }

    /// A string value, expanded. `expected` says what belongs there, for messages.
    fn text(
        &mut self,
        key: &str,
        entry_pos: Option<Pos>,
        node: &Node,
        expected: &str,
    ) -> Option<Text> {
        let scalar = match node {
            Node::Scalar(s) => s,
            other => {
                self.problem(
                    ProblemKind::WrongType,
                    key,
                    pos_of(other.span()),
                    format!("expected {expected}, found {}", shape(other)),
                );
                return None;
            }
        };
        let pos = pos_of(scalar.span()).or(entry_pos);
        if is_null(scalar) {
            // An empty value's mark is wherever the parser stopped: point at the key instead.
            self.problem(
                ProblemKind::Missing,
                key,
                entry_pos.or(pos),
                format!("has no value; expected {expected}"),
            );
            return None;
        }
        match expand_env(scalar.as_str(), self.env) {
            Ok((value, vars)) => {
                let from_env_only =
                    matches!(vars.as_slice(), [var] if scalar.as_str() == format!("${{{var}}}"));
                Some(Text {
                    value,
                    pos,
                    vars,
                    from_env_only,
                })
            }
            Err(message) => {
                self.problem(ProblemKind::Environment, key, pos, message);
                None
            }
        }
    }

    fn bind(&mut self, entry: &Entry<'_>) -> Option<BindAddress> {
        let text = self.text(
            "bind",
            entry.key_pos,
            entry.value,
            "host:port, e.g. \"0.0.0.0:7400\"",
        )?;
        match text.value.parse::<BindAddress>() {
            Ok(addr) => Some(addr),
            Err(e) => {
                let message = format!("invalid address {:?}{}: {e}", text.value, text.origin());
                self.problem(ProblemKind::InvalidValue, "bind", text.pos, message);
                None
            }
        }
    }

    fn advertise_address(&mut self, entry: &Entry<'_>) -> Option<String> {
        const KEY: &str = "advertiseAddress";
        let text = self.text(
            KEY,
            entry.key_pos,
            entry.value,
            "host:port, e.g. \"runtime.example.com:7400\"",
        )?;
        let problem = match text.value.parse::<BindAddress>() {
            Err(e) => Some(e.to_string()),
            Ok(addr) if addr.port() == 0 => Some(
                "the port is 0; give the port hosts reach the runtime at, e.g. \
                 \"runtime.example.com:7400\""
                    .to_owned(),
            ),
            Ok(addr) if addr.socket_addr().is_some_and(|a| a.ip().is_unspecified()) => Some(
                "is the any-address, where the runtime may listen but which nobody can reach; \
                 give the address hosts use, e.g. the runtime's DNS name \
                 \"francis-runtime.francis.svc:7400\""
                    .to_owned(),
            ),
            Ok(_) => None,
        };
        match problem {
            Some(reason) => {
                let message = format!(
                    "invalid address {:?}{}: {reason}",
                    text.value,
                    text.origin()
                );
                self.problem(ProblemKind::InvalidValue, KEY, text.pos, message);
                None
            }
            None => Some(text.value.trim().to_owned()),
        }
    }

    fn http(&mut self, entry: Option<Entry<'_>>) -> Option<HttpConfig> {
        let Some(entry) = entry else {
            return Some(HttpConfig::default());
        };
        let map = self.mapping("http", &entry)?;
        let mut fields = self.entries("http", map, HTTP_KEYS);
        let bind = match fields.remove("bind") {
            None => Some(HttpConfig::default().bind),
            Some(e) => {
                let text = self.text(
                    "http.bind",
                    e.key_pos,
                    e.value,
                    "ip:port, e.g. \"0.0.0.0:8444\"",
                )?;
                let parsed = text.value.parse::<BindAddress>();
                match parsed.as_ref().map(BindAddress::socket_addr) {
                    Ok(Some(addr)) => Some(addr),
                    Ok(None) => {
                        let message = format!(
                            "{:?}{} is not an IP address and port; the HTTP server listens on an \
                             IP address: write e.g. \"0.0.0.0:8444\" (every interface) or \
                             \"127.0.0.1:8444\"",
                            text.value,
                            text.origin()
                        );
                        self.problem(ProblemKind::InvalidValue, "http.bind", text.pos, message);
                        None
                    }
                    Err(e) => {
                        let message =
                            format!("invalid address {:?}{}: {e}", text.value, text.origin());
                        self.problem(ProblemKind::InvalidValue, "http.bind", text.pos, message);
                        None
                    }
                }
            }
        };
        let tls = self.boolean("http.tls", fields.remove("tls"), false);
        Some(HttpConfig {
            bind: bind?,
            tls: tls?,
        })
    }

    fn runtime_id(&mut self, entry: &Entry<'_>) -> Option<String> {
        let text = self.text(
            "runtimeId",
            entry.key_pos,
            entry.value,
            "an identifier such as \"runtime-0\"",
        )?;
        match SpiffeId::runtime(&text.value) {
            Ok(_) => Some(text.value),
            Err(e) => {
                let message = format!(
                    "{e}{}; use letters, digits, '.', '_' and '-' only (it becomes \
                     spiffe://francis/runtime/<runtimeId>), or remove the key to let the \
                     runtime choose one",
                    text.origin()
                );
                self.problem(ProblemKind::InvalidValue, "runtimeId", text.pos, message);
                None
            }
        }
    }

    fn runtime_psks(&mut self, entry: &Entry<'_>) -> Option<Vec<Secret>> {
        const KEY: &str = "runtimePSKs";
        let items = match entry.value {
            Node::Sequence(items) => items,
            Node::Scalar(s) if is_null(s) => {
                self.problem(
                    ProblemKind::Missing,
                    KEY,
                    entry.key_pos,
                    "has no value; list at least one runtime PSK of 32+ bytes, e.g.\n    \
                     runtimePSKs:\n      - \"${FRANCIS_RUNTIME_PSK}\""
                        .into(),
                );
                return None;
            }
            other => {
                self.problem(
                    ProblemKind::WrongType,
                    KEY,
                    pos_of(other.span()),
                    format!(
                        "expected a list of PSKs, found {}; write it as a list, e.g.\n    \
                         runtimePSKs:\n      - \"${{FRANCIS_RUNTIME_PSK}}\"",
                        shape(other)
                    ),
                );
                return None;
            }
        };
        if items.is_empty() {
            self.problem(
                ProblemKind::Missing,
                KEY,
                pos_of(items.span()).or(entry.key_pos),
                "is an empty list; list at least one runtime PSK of 32+ bytes".into(),
            );
            return None;
        }
        let mut psks = Vec::with_capacity(items.len());
        let mut ok = true;
        for (index, item) in items.iter().enumerate() {
            let key = format!("{KEY}[{index}]");
            let Some(text) = self.text(&key, entry.key_pos, item, "a PSK string of 32+ bytes")
            else {
                ok = false;
                continue;
            };
            let len = text.value.len();
            if len == 0 {
                self.problem(
                    ProblemKind::Missing,
                    &key,
                    text.pos,
                    format!(
                        "is empty{}; set a secret of at least {MIN_PSK_LEN} bytes",
                        text.origin()
                    ),
                );
                ok = false;
            } else if len < MIN_PSK_LEN {
                self.problem(
                    ProblemKind::InvalidValue,
                    &key,
                    text.pos,
                    format!(
                        "is {len} bytes{}; runtime PSKs must be at least {MIN_PSK_LEN} bytes, \
                         because the CA derived from them is public and a short PSK could be \
                         brute-forced offline. Generate one with e.g. `openssl rand -base64 32` \
                         (the string's bytes are used as is, not decoded)",
                        text.origin()
                    ),
                );
                ok = false;
            } else {
                if !text.from_env_only {
                    self.literal_psks.push((key, PskKind::Runtime));
                }
                psks.push(Secret(text.value));
            }
        }
        ok.then_some(psks)
    }

    fn bootstrap(&mut self, entry: Option<Entry<'_>>) -> Option<Bootstrap> {
        const KEY: &str = "bootstrap";
        let Some(entry) = entry else {
            self.problem(
                ProblemKind::Missing,
                "bootstrap.method",
                None,
                "missing; it is required: add a bootstrap section with method: psk (and \
                 hostPSK) or method: jwt (and jwt:)"
                    .into(),
            );
            return None;
        };
        let map = self.mapping(KEY, &entry)?;
        let mut fields = self.entries(KEY, map, BOOTSTRAP_KEYS);

        #[derive(PartialEq)]
        enum Method {
            Psk,
            Jwt,
        }
        let method = match fields.remove("method") {
            None => {
                self.problem(
                    ProblemKind::Missing,
                    "bootstrap.method",
                    entry.key_pos,
                    "missing; it is required: set method: psk or method: jwt".into(),
                );
                None
            }
            Some(m) => {
                let text = self.text("bootstrap.method", m.key_pos, m.value, "psk or jwt");
                match text {
                    Some(t) if t.value.eq_ignore_ascii_case("psk") => Some(Method::Psk),
                    Some(t) if t.value.eq_ignore_ascii_case("jwt") => Some(Method::Jwt),
                    Some(t) => {
                        let message = format!(
                            "unknown method {:?}{}; expected psk or jwt",
                            t.value,
                            t.origin()
                        );
                        self.problem(
                            ProblemKind::InvalidValue,
                            "bootstrap.method",
                            t.pos,
                            message,
                        );
                        None
                    }
                    None => None,
                }
            }
        };

        let host_psk_entry = fields.remove("hostPSK");
        let jwt_entry = fields.remove("jwt");
        // Check the contents of a section only where it belongs (or when the method is
        // unknown): a section of the other method is reported once, as a conflict.
        let host_psk = host_psk_entry
            .as_ref()
            .filter(|_| method != Some(Method::Jwt))
            .and_then(|e| self.host_psk(e));
        let jwt = jwt_entry
            .as_ref()
            .filter(|_| method != Some(Method::Psk))
            .and_then(|e| self.jwt(e));

        match method? {
            Method::Psk => {
                if let Some(e) = &jwt_entry {
                    self.problem(
                        ProblemKind::Conflict,
                        "bootstrap.jwt",
                        e.key_pos,
                        "is only used with method: jwt; remove it, or set method: jwt and \
                         remove hostPSK (exactly one bootstrap method is allowed)"
                            .into(),
                    );
                }
                if host_psk_entry.is_none() {
                    self.problem(
                        ProblemKind::Missing,
                        "bootstrap.hostPSK",
                        entry.key_pos,
                        format!(
                            "missing; it is required with method: psk: set a secret of at least \
                             {MIN_HOST_PSK_LEN} bytes, e.g. hostPSK: \
                             \"${{FRANCIS_HOST_BOOTSTRAP_PSK}}\""
                        ),
                    );
                }
                host_psk.map(|host_psk| Bootstrap::Psk { host_psk })
            }
            Method::Jwt => {
                if let Some(e) = &host_psk_entry {
                    self.problem(
                        ProblemKind::Conflict,
                        "bootstrap.hostPSK",
                        e.key_pos,
                        "is only used with method: psk; remove it, or set method: psk and \
                         remove jwt (exactly one bootstrap method is allowed)"
                            .into(),
                    );
                }
                if jwt_entry.is_none() {
                    self.problem(
                        ProblemKind::Missing,
                        "bootstrap.jwt",
                        entry.key_pos,
                        "missing; it is required with method: jwt: add jwt: with issuer, \
                         audience and one of jwksURL or staticJWKS"
                            .into(),
                    );
                }
                jwt.map(Bootstrap::Jwt)
            }
        }
    }

    fn host_psk(&mut self, entry: &Entry<'_>) -> Option<Secret> {
        const KEY: &str = "bootstrap.hostPSK";
        let text = self.text(
            KEY,
            entry.key_pos,
            entry.value,
            "a secret string of 16+ bytes",
        )?;
        let len = text.value.len();
        if len < MIN_HOST_PSK_LEN {
            self.problem(
                ProblemKind::InvalidValue,
                KEY,
                text.pos,
                format!(
                    "is {len} bytes{}; the host bootstrap PSK must be at least \
                     {MIN_HOST_PSK_LEN} bytes (longer is better: anyone who can reach the \
                     runtime can try to guess it offline). Generate one with e.g. \
                     `openssl rand -base64 32`",
                    text.origin()
                ),
            );
            return None;
        }
        if !text.from_env_only {
            self.literal_psks
                .push((KEY.to_owned(), PskKind::HostBootstrap));
        }
        Some(Secret(text.value))
    }

    fn jwt(&mut self, entry: &Entry<'_>) -> Option<JwtConfig> {
        const KEY: &str = "bootstrap.jwt";
        let map = self.mapping(KEY, entry)?;
        let mut fields = self.entries(KEY, map, JWT_KEYS);
        let mut required = |this: &mut Self, name: &str, example: &str| -> Option<String> {
            let key = join(KEY, name);
            match fields.remove(name) {
                None => {
                    this.problem(
                        ProblemKind::Missing,
                        &key,
                        entry.key_pos,
                        format!("missing; it is required with method: jwt, e.g. {name}: {example}"),
                    );
                    None
                }
                Some(e) => {
                    let text = this.text(&key, e.key_pos, e.value, "a string")?;
                    if text.value.trim().is_empty() {
                        this.problem(
                            ProblemKind::Missing,
                            &key,
                            text.pos,
                            format!("is empty{}; e.g. {name}: {example}", text.origin()),
                        );
                        return None;
                    }
                    Some(text.value)
                }
            }
        };
        let issuer = required(self, "issuer", "\"https://issuer.example.com\"");
        let audience = required(self, "audience", "\"francis-runtime\"");

        let url_entry = fields.remove("jwksURL");
        let static_entry = fields.remove("staticJWKS");
        let url = url_entry.as_ref().and_then(|e| {
            let text = self.text("bootstrap.jwt.jwksURL", e.key_pos, e.value, "an https URL")?;
            match jwt::check_jwks_url(&text.value) {
                Ok(_) => Some(JwksSource::Url(text.value.trim().to_owned())),
                Err(err) => {
                    let message = format!("{:?}{}: {err}", text.value, text.origin());
                    self.problem(
                        ProblemKind::InvalidValue,
                        "bootstrap.jwt.jwksURL",
                        text.pos,
                        message,
                    );
                    None
                }
            }
        });
        let jwks_static = static_entry.as_ref().and_then(|e| {
            let text = self.text(
                "bootstrap.jwt.staticJWKS",
                e.key_pos,
                e.value,
                "the JWKS JSON as a string, e.g. in a block scalar (staticJWKS: |)",
            )?;
            match jwt::parse_jwks(&text.value) {
                Ok(_) => Some(JwksSource::Static(text.value)),
                Err(err) => {
                    let message = format!("{err}{}", text.origin());
                    self.problem(
                        ProblemKind::InvalidValue,
                        "bootstrap.jwt.staticJWKS",
                        text.pos,
                        message,
                    );
                    None
                }
            }
        });
        let jwks = match (&url_entry, &static_entry) {
            (Some(u), Some(s)) => {
                let url_line = u
                    .key_pos
                    .map(|p| format!(" (line {})", p.line))
                    .unwrap_or_default();
                self.problem(
                    ProblemKind::Conflict,
                    "bootstrap.jwt.staticJWKS",
                    s.key_pos,
                    format!(
                        "cannot be set together with jwksURL{url_line}; keep exactly one: \
                         jwksURL to fetch the keys, or staticJWKS to embed them"
                    ),
                );
                None
            }
            (None, None) => {
                self.problem(
                    ProblemKind::Missing,
                    "bootstrap.jwt.jwksURL",
                    entry.key_pos,
                    "missing: set jwksURL (the issuer's JWKS URL) or staticJWKS (the JWKS as \
                     inline JSON)"
                        .into(),
                );
                None
            }
            (Some(_), None) => url,
            (None, Some(_)) => jwks_static,
        };
        Some(JwtConfig {
            issuer: issuer?,
            audience: audience?,
            jwks: jwks?,
        })
    }

    /// The provider, its options, and where its timeout was written (`None`: not given).
    fn provider(
        &mut self,
        entry: Option<Entry<'_>>,
    ) -> (Option<Provider>, Option<SqlOptions>, Option<Option<Pos>>) {
        const KEY: &str = "provider";
        let Some(entry) = entry else {
            self.problem(
                ProblemKind::Missing,
                "provider.type",
                None,
                "missing; it is required: add a provider section, e.g.\n    provider:\n      \
                 type: sqlite\n      connectionString: \"data.db\""
                    .into(),
            );
            return (None, Some(SqlOptions::default()), None);
        };
        let Some(map) = self.mapping(KEY, &entry) else {
            return (None, Some(SqlOptions::default()), None);
        };
        let mut fields = self.entries(KEY, map, PROVIDER_KEYS);
        let timeout_entry = fields.remove("timeout");
        let timeout_pos = timeout_entry.as_ref().map(|e| e.key_pos);
        let timeout = self.duration(
            "provider.timeout",
            timeout_entry,
            DEFAULT_STORE_TIMEOUT,
            |_| None,
        );
        let query_log = self.query_log(fields.remove("queryLog"));
        let operation_log = self.operation_log(fields.remove("operationLog"));
        let options = match (timeout, query_log, operation_log) {
            (Some(timeout), Some(query_log), Some(operation_log)) => Some(SqlOptions {
                timeout,
                query_log,
                operation_log,
            }),
            _ => None,
        };
        let provider = self.provider_kind(&entry, fields);
        (provider, options, timeout_pos)
    }

    fn query_log(&mut self, entry: Option<Entry<'_>>) -> Option<QueryLog> {
        const KEY: &str = "provider.queryLog";
        let Some(entry) = entry else {
            return Some(QueryLog::default());
        };
        let map = self.mapping(KEY, &entry)?;
        let mut fields = self.entries(KEY, map, QUERY_LOG_KEYS);
        let enabled = self.boolean("provider.queryLog.enabled", fields.remove("enabled"), false);
        let include = fields.remove("includeParameters");
        let include_ok = match include {
            None => true,
            Some(e) => match self.boolean("provider.queryLog.includeParameters", Some(e), false) {
                Some(false) => true,
                Some(true) => {
                    let pos = self.value_pos(&e);
                    self.problem(
                        ProblemKind::InvalidValue,
                        "provider.queryLog.includeParameters",
                        pos,
                        "cannot be true: Francis never logs the values bound to statements, \
                         since they hold actor state and secrets; remove the key or set it to \
                         false"
                            .into(),
                    );
                    false
                }
                None => false,
            },
        };
        let threshold =
            self.slow_threshold("provider.queryLog", fields.remove("slowThreshold"), enabled);
        if !include_ok {
            return None;
        }
        Some(QueryLog {
            enabled: enabled?,
            slow_threshold: threshold?,
        })
    }

    fn operation_log(&mut self, entry: Option<Entry<'_>>) -> Option<OperationLog> {
        const KEY: &str = "provider.operationLog";
        let Some(entry) = entry else {
            return Some(OperationLog::default());
        };
        let map = self.mapping(KEY, &entry)?;
        let mut fields = self.entries(KEY, map, OPERATION_LOG_KEYS);
        let enabled = self.boolean(
            "provider.operationLog.enabled",
            fields.remove("enabled"),
            false,
        );
        let threshold = self.slow_threshold(KEY, fields.remove("slowThreshold"), enabled);
        Some(OperationLog {
            enabled: enabled?,
            slow_threshold: threshold?,
        })
    }

    /// A log's `slowThreshold`: a positive duration, allowed only with `enabled: true`.
    fn slow_threshold(
        &mut self,
        log: &str,
        entry: Option<Entry<'_>>,
        enabled: Option<bool>,
    ) -> Option<Option<Duration>> {
        let Some(entry) = entry else {
            return Some(None);
        };
        let key = join(log, "slowThreshold");
        let key_pos = entry.key_pos;
        let threshold = self.duration_with(&key, &entry, "\"500ms\"", |_| None)?;
        if enabled == Some(false) {
            self.problem(
                ProblemKind::Conflict,
                &key,
                key_pos,
                format!(
                    "only applies to an enabled log: add enabled: true under {log} (or remove \
                     slowThreshold)"
                ),
            );
            return None;
        }
        Some(Some(threshold))
    }

    fn provider_kind(
        &mut self,
        entry: &Entry<'_>,
        mut fields: HashMap<&'static str, Entry<'_>>,
    ) -> Option<Provider> {
        #[derive(PartialEq, Clone, Copy)]
        enum Kind {
            Sqlite,
            Postgres,
            Memory,
        }
        let kind = match fields.remove("type") {
            None => {
                self.problem(
                    ProblemKind::Missing,
                    "provider.type",
                    entry.key_pos,
                    "missing; it is required: sqlite, postgres or memory".into(),
                );
                None
            }
            Some(e) => {
                let text = self.text(
                    "provider.type",
                    e.key_pos,
                    e.value,
                    "sqlite, postgres or memory",
                );
                match text {
                    Some(t) if t.value.eq_ignore_ascii_case("sqlite") => Some(Kind::Sqlite),
                    Some(t)
                        if t.value.eq_ignore_ascii_case("postgres")
                            || t.value.eq_ignore_ascii_case("postgresql") =>
                    {
                        Some(Kind::Postgres)
                    }
                    Some(t) if t.value.eq_ignore_ascii_case("memory") => Some(Kind::Memory),
                    Some(t) => {
                        let message = format!(
                            "unknown provider type {:?}{}; expected sqlite, postgres or memory",
                            t.value,
                            t.origin()
                        );
                        self.problem(ProblemKind::InvalidValue, "provider.type", t.pos, message);
                        None
                    }
                    None => None,
                }
            }
        };

        const CS: &str = "provider.connectionString";
        let cs_entry = fields.remove("connectionString");
        let cs = match &cs_entry {
            None => None,
            Some(e) => self.text(CS, e.key_pos, e.value, "a connection string or file path"),
        };
        match kind? {
            Kind::Memory => {
                if let Some(e) = &cs_entry {
                    self.problem(
                        ProblemKind::Conflict,
                        CS,
                        e.key_pos,
                        "is not used by type: memory; remove it, or choose sqlite or postgres to \
                         keep data across restarts"
                            .into(),
                    );
                    return None;
                }
                Some(Provider::Memory)
            }
            kind => {
                let example = if kind == Kind::Sqlite {
                    "connectionString: \"data.db\""
                } else {
                    "connectionString: \"postgres://user:pass@host:5432/dbname\""
                };
                if cs_entry.is_none() {
                    self.problem(
                        ProblemKind::Missing,
                        CS,
                        entry.key_pos,
                        format!("missing; it is required for this provider type, e.g. {example}"),
                    );
                    return None;
                }
                let cs = cs?;
                let value = cs.value.trim().to_owned();
                let lower = value.to_ascii_lowercase();
                let is_pg_url =
                    lower.starts_with("postgres://") || lower.starts_with("postgresql://");
                if value.is_empty() {
                    self.problem(
                        ProblemKind::Missing,
                        CS,
                        cs.pos,
                        format!("is empty{}; e.g. {example}", cs.origin()),
                    );
                    None
                } else if kind == Kind::Postgres && !is_pg_url {
                    self.problem(
                        ProblemKind::InvalidValue,
                        CS,
                        cs.pos,
                        format!(
                            "is not a PostgreSQL URL{} (it must start with postgres:// or \
                             postgresql://), e.g. {example}",
                            cs.origin()
                        ),
                    );
                    None
                } else if kind == Kind::Sqlite && is_pg_url {
                    self.problem(
                        ProblemKind::Conflict,
                        CS,
                        cs.pos,
                        "is a PostgreSQL URL but provider.type is sqlite; set type: postgres"
                            .into(),
                    );
                    None
                } else if kind == Kind::Sqlite {
                    Some(Provider::Sqlite {
                        connection_string: value,
                    })
                } else {
                    Some(Provider::Postgres {
                        connection_string: value,
                    })
                }
            }
        }
    }

    /// A positive duration, `default` when absent; `extra` adds a key-specific check.
    fn duration(
        &mut self,
        key: &str,
        entry: Option<Entry<'_>>,
        default: Duration,
        extra: impl Fn(Duration) -> Option<String>,
    ) -> Option<Duration> {
        let Some(entry) = entry else {
            return Some(default);
        };
        let example = format!("\"{}\" (the default)", humanize(default));
        self.duration_with(key, &entry, &example, extra)
    }

    /// A positive duration; `example` is offered when it is zero.
    fn duration_with(
        &mut self,
        key: &str,
        entry: &Entry<'_>,
        example: &str,
        extra: impl Fn(Duration) -> Option<String>,
    ) -> Option<Duration> {
        let text = self.text(
            key,
            entry.key_pos,
            entry.value,
            "a duration such as \"20s\"",
        )?;
        let problem = match parse_duration(&text.value) {
            Err(e) => Some(format!("{e}{}", text.origin())),
            Ok(d) if d.is_zero() => Some(format!(
                "is zero{}; it must be more than zero, e.g. {example}",
                text.origin(),
            )),
            Ok(d) => extra(d).map(|reason| format!("{:?}{} {reason}", text.value, text.origin())),
        };
        match problem {
            Some(message) => {
                self.problem(ProblemKind::InvalidValue, key, text.pos, message);
                None
            }
            None => parse_duration(&text.value).ok(),
        }
    }

    /// `log.level` and `log.json`.
    fn log(&mut self, entry: Option<Entry<'_>>) -> (Option<LogLevel>, Option<bool>) {
        let Some(entry) = entry else {
            return (Some(LogLevel::default()), Some(false));
        };
        let Some(map) = self.mapping("log", &entry) else {
            return (None, None);
        };
        let mut fields = self.entries("log", map, LOG_KEYS);
        let json = self.boolean("log.json", fields.remove("json"), false);
        let level = match fields.remove("level") {
            None => Some(LogLevel::default()),
            Some(level) => self.log_level(&level),
        };
        (level, json)
    }

    fn log_level(&mut self, level: &Entry<'_>) -> Option<LogLevel> {
        let text = self.text(
            "log.level",
            level.key_pos,
            level.value,
            "debug, info, warn or error",
        )?;
        match text.value.to_ascii_lowercase().as_str() {
            "debug" => Some(LogLevel::Debug),
            "info" => Some(LogLevel::Info),
            "warn" | "warning" => Some(LogLevel::Warn),
            "error" => Some(LogLevel::Error),
            _ => {
                let message = format!(
                    "unknown level {:?}{}; expected debug, info, warn or error",
                    text.value,
                    text.origin()
                );
                self.problem(ProblemKind::InvalidValue, "log.level", text.pos, message);
                None
            }
        }
    }
}

impl Checker<'_> {
    /// Where a value is written (or its key, for an empty one).
    fn value_pos(&self, entry: &Entry<'_>) -> Option<Pos> {
        pos_of(entry.value.span()).or(entry.key_pos)
    }

    /// `true` or `false`, `default` when absent.
    fn boolean(&mut self, key: &str, entry: Option<Entry<'_>>, default: bool) -> Option<bool> {
        let Some(entry) = entry else {
            return Some(default);
        };
        let text = self.text(key, entry.key_pos, entry.value, "true or false")?;
        match text.value.trim() {
            "true" | "True" | "TRUE" => Some(true),
            "false" | "False" | "FALSE" => Some(false),
            other => {
                let message = format!(
                    "{other:?}{} is not a boolean; write true or false",
                    text.origin()
                );
                self.problem(ProblemKind::InvalidValue, key, text.pos, message);
                None
            }
        }
    }

    /// A whole number within `range`, `default` when absent.
    fn integer(
        &mut self,
        key: &str,
        entry: Option<Entry<'_>>,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Option<u64> {
        let Some(entry) = entry else {
            return Some(default);
        };
        let text = self.text(
            key,
            entry.key_pos,
            entry.value,
            &format!("a whole number such as {default}"),
        )?;
        let value = text.value.trim();
        let problem = match value.parse::<u64>() {
            Ok(n) if range.contains(&n) => return Some(n),
            Ok(n) => format!(
                "is {n}{}; it must be from {} to {}, e.g. {default} (the default)",
                text.origin(),
                range.start(),
                range.end()
            ),
            Err(_) => format!(
                "{value:?}{} is not a whole number; write digits only, e.g. {default} (the \
                 default)",
                text.origin()
            ),
        };
        self.problem(ProblemKind::InvalidValue, key, text.pos, problem);
        None
    }

    /// A size in bytes between [`MIN_REQUEST_BODY_SIZE`] and [`MAX_REQUEST_BODY_SIZE`]: an
    /// integer, or a number with a unit (`KiB`, `MiB`, `GiB`); `default` when absent.
    fn byte_size(&mut self, key: &str, entry: Option<Entry<'_>>, default: usize) -> Option<usize> {
        let Some(entry) = entry else {
            return Some(default);
        };
        let text = self.text(
            key,
            entry.key_pos,
            entry.value,
            "a size such as \"16MiB\" or a number of bytes",
        )?;
        let problem = match parse_byte_size(&text.value) {
            Ok(n) if (MIN_REQUEST_BODY_SIZE..=MAX_REQUEST_BODY_SIZE).contains(&n) => {
                return Some(n);
            }
            Ok(n) => format!(
                "is {n} bytes{}; it must be from 1KiB to 16MiB (the largest frame of the wire \
                 protocol), e.g. \"16MiB\" (the default)",
                text.origin()
            ),
            Err(reason) => format!("{:?}{} {reason}", text.value, text.origin()),
        };
        self.problem(ProblemKind::InvalidValue, key, text.pos, problem);
        None
    }
}

/// Parses a size: a whole number of bytes, or a whole number followed by `KiB`, `MiB` or `GiB`
/// (powers of 1024), with an optional space between.
fn parse_byte_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let digits = text.len() - text.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (number, unit) = text.split_at(digits);
    let unit = unit.trim_start();
    let multiplier: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" | "MB" | "GB" | "K" | "M" | "G" | "Ki" | "Mi" | "Gi" => {
            return Err(format!(
                "uses the unit {unit:?}; write KiB, MiB or GiB (powers of 1024), e.g. \"16MiB\""
            ));
        }
        _ => {
            return Err(
                "is not a size; write a number of bytes or a number with KiB, MiB or \
                        GiB, e.g. \"16MiB\""
                    .into(),
            );
        }
    };
    let number: u64 = number.parse().map_err(|_| {
        "is not a size; write a number of bytes or a number with KiB, MiB or GiB, e.g. \
         \"16MiB\""
            .to_owned()
    })?;
    number
        .checked_mul(multiplier)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| "is too large; the most is 16MiB".to_owned())
}

/// The 1-based line of a `---` marker that follows content, i.e. starts a second document.
fn second_document_line(text: &str) -> Option<usize> {
    let mut seen_content = false;
    for (index, line) in text.lines().enumerate() {
        let is_marker = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if is_marker && seen_content {
            return Some(index + 1);
        }
        let trimmed = line.trim();
        if !is_marker && !trimmed.is_empty() && !trimmed.starts_with('#') && !line.starts_with('%')
        {
            seen_content = true;
        }
    }
    None
}

/// A plain (unquoted) YAML null: empty, `~` or `null`.
fn is_null(scalar: &MarkedScalarNode) -> bool {
    scalar.may_coerce() && matches!(scalar.as_str(), "" | "~" | "null" | "Null" | "NULL")
}

fn shape(node: &Node) -> &'static str {
    match node {
        Node::Scalar(_) => "a single value",
        Node::Sequence(_) => "a list",
        Node::Mapping(_) => "nested keys (a mapping)",
    }
}

/// Renders a default duration the way the reference writes it.
fn humanize(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}
