//! Security profiles: [`Profile::Dev`] allows the conveniences of a developer's machine (an
//! in-memory store, an unpinned CA, keys written in a file...) and says so once at start;
//! [`Profile::Prod`] refuses to start with any of them, listing every problem and its fix.
//!
//! The check itself is pure: a [`Setup`] describes what a runtime, a host or a control server
//! is about to run with, [`Setup::problems`] lists everything unsafe in it, and
//! [`Profile::check`] decides what the profile refuses. [`Profile::enforce`] is what the
//! builders call: it refuses, or logs the one warning of `dev`.
//!
//! Where the profile comes from, strongest first: an explicit choice (`.profile(..)` on a
//! builder, the `profile` key of the runtime's configuration), then the environment variable
//! `FRANCIS_PROFILE` ([`PROFILE_ENV`]), then the default, `dev`, so that code written before
//! profiles existed keeps working. An unknown value, in either place, is an error.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The environment variable that sets the profile where the code or the configuration file
/// does not: `dev` or `prod`. Set but empty counts as unset.
pub const PROFILE_ENV: &str = "FRANCIS_PROFILE";

/// How strict a process is about unsafe settings. The default is [`Dev`](Profile::Dev).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// `dev`: every unsafe setting but an unauthenticated control API off loopback is allowed,
    /// and the process logs one warning at start listing those it uses.
    #[default]
    Dev,
    /// `prod`: the process refuses to start with any unsafe setting, and its error lists each
    /// one with its code and fix.
    Prod,
}

/// A value that is not a profile name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}unknown profile {value:?}; expected dev or prod", key.map(|k| format!("{k}: ")).unwrap_or_default())]
pub struct InvalidProfile {
    /// Where the value was found (the environment variable or the key), when known.
    pub key: Option<&'static str>,
    /// The value found.
    pub value: String,
}

impl Profile {
    /// The profile's name: `dev` or `prod`.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Dev => "dev",
            Profile::Prod => "prod",
        }
    }

    /// The profile `FRANCIS_PROFILE` names in the process environment: `None` when it is unset
    /// or empty, an error naming the variable when it is not `dev` or `prod`.
    pub fn from_env() -> Result<Option<Profile>, InvalidProfile> {
        match std::env::var(PROFILE_ENV) {
            Ok(value) => Self::from_env_value(Some(&value)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(value)) => Err(InvalidProfile {
                key: Some(PROFILE_ENV),
                value: value.to_string_lossy().into_owned(),
            }),
        }
    }

    /// The profile a value of `FRANCIS_PROFILE` names (`None`: unset or empty).
    pub(crate) fn from_env_value(value: Option<&str>) -> Result<Option<Profile>, InvalidProfile> {
        match value.map(str::trim) {
            None | Some("") => Ok(None),
            Some(value) => value
                .parse()
                .map(Some)
                .map_err(|e: InvalidProfile| InvalidProfile {
                    key: Some(PROFILE_ENV),
                    ..e
                }),
        }
    }

    /// What this profile refuses of `setup`: `Err` with every problem it refuses, or `Ok` with
    /// the unsafe settings it allows (always empty for `prod`). `prod` refuses every problem;
    /// `dev` only those refused in every profile
    /// ([`ProblemCode::refused_in_every_profile`]).
    pub fn check(self, setup: &Setup) -> Result<Vec<ProfileProblem>, ProfileError> {
        let (refused, allowed): (Vec<_>, Vec<_>) = setup
            .problems()
            .into_iter()
            .partition(|p| self == Profile::Prod || p.code.refused_in_every_profile());
        if refused.is_empty() {
            Ok(allowed)
        } else {
            Err(ProfileError {
                profile: self,
                problems: refused,
            })
        }
    }

    /// [`check`](Self::check), then, when `dev` allows something unsafe, one warning that
    /// lists it: what a runtime or a host does as it starts.
    pub fn enforce(self, setup: &Setup) -> Result<(), ProfileError> {
        let allowed = self.check(setup)?;
        if !allowed.is_empty() {
            let mut codes: Vec<ProblemCode> = allowed.iter().map(|p| p.code).collect();
            codes.dedup();
            let list: Vec<String> = codes
                .iter()
                .map(|code| format!("{} ({code})", code.summary()))
                .collect();
            let hint = match setup.configured_by {
                ConfiguredBy::ConfigFile => "set profile: prod in the configuration",
                ConfiguredBy::Code => "call .profile(Profile::Prod) or set FRANCIS_PROFILE=prod",
            };
            tracing::warn!(
                profile = self.as_str(),
                "profile {self}: allowing {}; {hint} to refuse them",
                list.join(", ")
            );
        }
        Ok(())
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Profile {
    type Err = InvalidProfile;

    /// `dev` or `prod`, in any case, surrounding spaces ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim();
        if name.eq_ignore_ascii_case("dev") {
            Ok(Profile::Dev)
        } else if name.eq_ignore_ascii_case("prod") {
            Ok(Profile::Prod)
        } else {
            Err(InvalidProfile {
                key: None,
                value: s.to_owned(),
            })
        }
    }
}

/// How the settings of a [`Setup`] were given, so that problems name them as written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ConfiguredBy {
    /// Builder calls in code (`.memory_store()`, `.http_bind(..)`).
    #[default]
    Code,
    /// The runtime's YAML configuration file (`provider.type`, `http.bind`).
    ConfigFile,
}

/// A server of HTTP requests: where it listens, and whether it authenticates its callers (a
/// bearer token, or client certificates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Where it listens.
    pub address: SocketAddr,
    /// Whether callers must prove who they are.
    pub authenticated: bool,
}

/// Which pre-shared key a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PskKind {
    /// A runtime PSK, which derives the cluster CA (`runtimePSKs`, `.runtime_psk(..)`).
    Runtime,
    /// The host bootstrap PSK workers join with (`bootstrap.hostPSK`,
    /// `.host_bootstrap_psk(..)`).
    HostBootstrap,
}

impl PskKind {
    /// The environment variable the examples and templates read it from.
    pub fn variable(self) -> &'static str {
        match self {
            PskKind::Runtime => "FRANCIS_RUNTIME_PSK",
            PskKind::HostBootstrap => "FRANCIS_HOST_BOOTSTRAP_PSK",
        }
    }

    fn name(self) -> &'static str {
        match self {
            PskKind::Runtime => "runtime PSK",
            PskKind::HostBootstrap => "host bootstrap PSK",
        }
    }
}

/// What a profile looks at: the security-relevant facts of what a runtime, a host or a control
/// server is about to run with. Start from [`Setup::default`] (nothing unsafe) and set what
/// applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Setup {
    /// How the settings were given, for the wording of problems and fixes.
    pub configured_by: ConfiguredBy,
    /// The store keeps everything in memory (`provider.type: memory`, `.memory_store()`).
    pub memory_store: bool,
    /// A worker trusts the first runtime it reaches (`.unsafe_no_pinned_ca()`).
    pub unpinned_ca: bool,
    /// The runtime's operations HTTP server (`http.bind`), when it runs.
    pub operations_api: Option<Endpoint>,
    /// A control API server (`francis::http::ControlApi`, feature `http`), when one is bound.
    pub control_server: Option<Endpoint>,
    /// The key paths of PSKs written in the configuration file itself rather than as one
    /// `${VAR}` reference (`runtimePSKs[0]`, `bootstrap.hostPSK`), with the kind of each.
    pub literal_psks: Vec<(String, PskKind)>,
    /// The PSKs that are the published development key ([`crate::host::DEVELOPMENT_PSK`]).
    pub development_psks: Vec<PskKind>,
    /// The JWKS URL the runtime fetches the JWT issuer's keys from, when it fetches them.
    pub jwks_url: Option<String>,
}

impl Setup {
    /// Every unsafe setting of this setup, in the order of [`ProblemCode`], each with what is
    /// wrong and how to fix it. Empty for a setup fit for production.
    pub fn problems(&self) -> Vec<ProfileProblem> {
        let file = self.configured_by == ConfiguredBy::ConfigFile;
        let mut out = Vec::new();
        let mut push = |code, problem: String, fix: String| {
            out.push(ProfileProblem { code, problem, fix });
        };
        if self.memory_store {
            if file {
                push(
                    ProblemCode::InMemoryStore,
                    "provider.type is memory: the cluster's actor state and alarms live in the \
                     runtime's memory and are lost when it stops"
                        .into(),
                    "set provider.type to postgres (which runtime replicas share) or sqlite (one \
                     runtime), with its connectionString"
                        .into(),
                );
            } else {
                push(
                    ProblemCode::InMemoryStore,
                    "the store is in memory (.memory_store()): actor state and alarms are lost \
                     when the process stops"
                        .into(),
                    "call .sqlite(path) or .postgres(url) instead of .memory_store()".into(),
                );
            }
        }
        if self.unpinned_ca {
            push(
                ProblemCode::UnsafeNoPinnedCa,
                "the worker does not pin the cluster CA (.unsafe_no_pinned_ca()): it trusts \
                 whichever runtime answers first, and could hand its bootstrap credential to an \
                 impostor"
                    .into(),
                "call .pinned_ca(pem) with the cluster CA: the output of `francis ca print \
                 --config <the runtime's configuration>`, or the file `francis ca pin --expect \
                 <fingerprint>` writes"
                    .into(),
            );
        }
        if let Some(api) = self.operations_api.filter(|a| !a.authenticated) {
            let who = if is_loopback(api.address) {
                "any process on this machine"
            } else {
                "anyone who reaches it"
            };
            let (setting, tls) = if file {
                (format!("http.bind {}", api.address), "set http.tls: true")
            } else {
                (
                    format!(".http_bind({})", api.address),
                    "call .http_tls(true)",
                )
            };
            push(
                ProblemCode::OperationsApiWithoutAuth,
                format!(
                    "the operations HTTP server ({setting}) authenticates nobody, having no token \
                     and no TLS client certificates: {who} can read the cluster's state and \
                     metrics"
                ),
                format!(
                    "set FRANCIS_HTTP_TOKEN (or FRANCIS_HTTP_OPERATOR_TOKEN, \
                     FRANCIS_HTTP_VIEWER_TOKEN) in the runtime's environment to a token of at \
                     least 16 characters, e.g. `openssl rand -hex 32`, or {tls} so that callers \
                     present operator certificates (`francis ca issue-operator`)"
                ),
            );
        }
        if let Some(server) = self
            .control_server
            .filter(|s| !s.authenticated && !is_loopback(s.address))
        {
            push(
                ProblemCode::ControlServerOpenOffLoopback,
                format!(
                    "the control API would listen on {} without a bearer token, and that address \
                     is not loopback: anyone who reaches it could invoke and halt actors",
                    server.address
                ),
                "set FRANCIS_HTTP_TOKEN (read by ControlApi::from_env) or give \
                 ControlApi::token(..), or serve it on 127.0.0.1"
                    .into(),
            );
        }
        for (key, kind) in &self.literal_psks {
            push(
                ProblemCode::LiteralPskInConfig,
                format!(
                    "{key}: the {} is written in the configuration file itself, so whoever \
                     reads the file (a repository, a ConfigMap, a backup) holds it",
                    kind.name()
                ),
                format!(
                    "put the key in an environment variable and write only the reference in its \
                     place: \"${{{}}}\". The configuration reads secrets from the environment \
                     only (it has no form for secret files): fill the variable from your secret \
                     store, e.g. a Kubernetes Secret or systemd's EnvironmentFile=",
                    kind.variable()
                ),
            );
        }
        if let Some(url) = self.jwks_url.as_deref().filter(|url| is_plain_http(url)) {
            push(
                ProblemCode::JwksOverHttp,
                format!(
                    "bootstrap.jwt.jwksURL is {url:?}, plain http: whoever can change the answer \
                     on its way can add a key of their own and sign tokens that admit any host"
                ),
                "serve the JWKS over https, or embed it with bootstrap.jwt.staticJWKS".into(),
            );
        }
        for kind in &self.development_psks {
            push(
                ProblemCode::DevelopmentPsk,
                format!(
                    "the {} is the published development key (francis::host::DEVELOPMENT_PSK): \
                     anyone can derive the cluster CA from it, or join with it",
                    kind.name()
                ),
                format!(
                    "use a random key of your own, e.g. `openssl rand -hex 32`, passed in {}",
                    kind.variable()
                ),
            );
        }
        out
    }
}

/// Whether `address` is on loopback (127.0.0.0/8, `::1`, IPv4-mapped too).
fn is_loopback(address: SocketAddr) -> bool {
    address.ip().to_canonical().is_loopback()
}

/// Whether `url` is fetched over plain http.
fn is_plain_http(url: &str) -> bool {
    url.trim()
        .get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
}

/// The stable code of an unsafe setting, as errors and the guide name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ProblemCode {
    /// `in_memory_store`: a store that keeps nothing across restarts.
    InMemoryStore,
    /// `unsafe_no_pinned_ca`: a worker that trusts the first runtime it reaches.
    UnsafeNoPinnedCa,
    /// `operations_api_without_auth`: the runtime's operations server with neither a token
    /// nor TLS client certificates.
    OperationsApiWithoutAuth,
    /// `control_server_open_off_loopback`: a control API on a non-loopback address without a
    /// bearer token. Refused in every profile.
    ControlServerOpenOffLoopback,
    /// `literal_psk_in_config`: a PSK written in the configuration file instead of taken from
    /// the environment.
    LiteralPskInConfig,
    /// `jwks_over_http`: the JWT issuer's keys fetched over plain http.
    JwksOverHttp,
    /// `development_psk`: the published development key used as a PSK.
    DevelopmentPsk,
}

impl ProblemCode {
    /// Every code, in the order problems are listed.
    pub const ALL: &'static [ProblemCode] = &[
        ProblemCode::InMemoryStore,
        ProblemCode::UnsafeNoPinnedCa,
        ProblemCode::OperationsApiWithoutAuth,
        ProblemCode::ControlServerOpenOffLoopback,
        ProblemCode::LiteralPskInConfig,
        ProblemCode::JwksOverHttp,
        ProblemCode::DevelopmentPsk,
    ];

    /// The code, in snake case: what errors print and the guide lists.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemCode::InMemoryStore => "in_memory_store",
            ProblemCode::UnsafeNoPinnedCa => "unsafe_no_pinned_ca",
            ProblemCode::OperationsApiWithoutAuth => "operations_api_without_auth",
            ProblemCode::ControlServerOpenOffLoopback => "control_server_open_off_loopback",
            ProblemCode::LiteralPskInConfig => "literal_psk_in_config",
            ProblemCode::JwksOverHttp => "jwks_over_http",
            ProblemCode::DevelopmentPsk => "development_psk",
        }
    }

    /// Whether `dev` refuses it too: an unauthenticated control API off loopback, which lets
    /// anyone who reaches it invoke and halt actors, was refused before profiles existed and
    /// stays refused.
    pub fn refused_in_every_profile(self) -> bool {
        self == ProblemCode::ControlServerOpenOffLoopback
    }

    /// A few words for `dev`'s warning.
    fn summary(self) -> &'static str {
        match self {
            ProblemCode::InMemoryStore => "an in-memory store",
            ProblemCode::UnsafeNoPinnedCa => "an unpinned CA",
            ProblemCode::OperationsApiWithoutAuth => "an operations API without authentication",
            ProblemCode::ControlServerOpenOffLoopback => "a control API open off loopback",
            ProblemCode::LiteralPskInConfig => "PSKs written in the configuration",
            ProblemCode::JwksOverHttp => "a JWKS URL over plain http",
            ProblemCode::DevelopmentPsk => "the published development PSK",
        }
    }
}

impl fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One unsafe setting: its code, what is wrong, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileProblem {
    /// The stable code.
    pub code: ProblemCode,
    /// What is wrong, naming the setting as it was given.
    pub problem: String,
    /// What to do instead.
    pub fix: String,
}

impl fmt::Display for ProfileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}; fix: {}", self.code, self.problem, self.fix)
    }
}

/// A profile refused to start: every problem it found, each with its fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ProfileError {
    /// The profile that refused.
    pub profile: Profile,
    /// Every problem it refused, never empty.
    pub problems: Vec<ProfileProblem>,
}

impl ProfileError {
    /// The codes of the problems, in order (repeated when a code applies more than once).
    pub fn codes(&self) -> Vec<ProblemCode> {
        self.problems.iter().map(|p| p.code).collect()
    }

    fn render(&self) -> String {
        let count = match self.problems.len() {
            1 => "1 unsafe setting".to_owned(),
            n => format!("{n} unsafe settings"),
        };
        let mut out = format!(
            "the {} profile refuses to start with {count}:",
            self.profile
        );
        for p in &self.problems {
            out.push_str(&format!(
                "\n  - {}: {}\n    fix: {}",
                p.code, p.problem, p.fix
            ));
        }
        if self.profile == Profile::Prod {
            out.push_str(
                "\n(prod comes from the configuration's profile key, a .profile(..) call or \
                 FRANCIS_PROFILE; dev would allow these settings, for development)",
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOPBACK: &str = "127.0.0.1:8444";
    const OPEN: &str = "0.0.0.0:8444";

    fn endpoint(address: &str, authenticated: bool) -> Option<Endpoint> {
        Some(Endpoint {
            address: address.parse().unwrap(),
            authenticated,
        })
    }

    /// A setup with exactly the problem of `code`, configured by `by`.
    fn with(code: ProblemCode, by: ConfiguredBy) -> Setup {
        let mut setup = Setup {
            configured_by: by,
            ..Setup::default()
        };
        match code {
            ProblemCode::InMemoryStore => setup.memory_store = true,
            ProblemCode::UnsafeNoPinnedCa => setup.unpinned_ca = true,
            ProblemCode::OperationsApiWithoutAuth => {
                setup.operations_api = endpoint(LOOPBACK, false);
            }
            ProblemCode::ControlServerOpenOffLoopback => {
                setup.control_server = endpoint(OPEN, false);
            }
            ProblemCode::LiteralPskInConfig => {
                setup.literal_psks = vec![("runtimePSKs[0]".into(), PskKind::Runtime)];
            }
            ProblemCode::JwksOverHttp => {
                setup.jwks_url = Some("http://127.0.0.1:9000/jwks.json".into());
            }
            ProblemCode::DevelopmentPsk => setup.development_psks = vec![PskKind::Runtime],
        }
        setup
    }

    /// Every problem at once.
    fn everything() -> Setup {
        Setup {
            configured_by: ConfiguredBy::ConfigFile,
            memory_store: true,
            unpinned_ca: true,
            operations_api: endpoint(OPEN, false),
            control_server: endpoint(OPEN, false),
            literal_psks: vec![
                ("runtimePSKs[0]".into(), PskKind::Runtime),
                ("runtimePSKs[1]".into(), PskKind::Runtime),
                ("bootstrap.hostPSK".into(), PskKind::HostBootstrap),
            ],
            development_psks: vec![PskKind::Runtime, PskKind::HostBootstrap],
            jwks_url: Some("HTTP://issuer.example.com/jwks".into()),
        }
    }

    #[test]
    fn names_parse_display_and_serialize_in_lower_case() {
        for (text, profile) in [
            ("dev", Profile::Dev),
            ("prod", Profile::Prod),
            ("PROD", Profile::Prod),
            (" Dev ", Profile::Dev),
        ] {
            assert_eq!(text.parse::<Profile>(), Ok(profile), "{text:?}");
        }
        assert_eq!(Profile::Prod.to_string(), "prod");
        assert_eq!(Profile::default(), Profile::Dev);
        assert_eq!(serde_json::to_string(&Profile::Prod).unwrap(), "\"prod\"");
        assert_eq!(
            serde_json::from_str::<Profile>("\"dev\"").unwrap(),
            Profile::Dev
        );
        assert!(serde_json::from_str::<Profile>("\"production\"").is_err());
        for bad in ["production", "", "development", "prod2"] {
            let e = bad.parse::<Profile>().unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("unknown profile {bad:?}; expected dev or prod")
            );
        }
    }

    #[test]
    fn the_environment_value_is_optional_and_named_in_errors() {
        assert_eq!(Profile::from_env_value(None), Ok(None));
        assert_eq!(Profile::from_env_value(Some("  ")), Ok(None));
        assert_eq!(
            Profile::from_env_value(Some("prod")),
            Ok(Some(Profile::Prod))
        );
        let e = Profile::from_env_value(Some("staging")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "FRANCIS_PROFILE: unknown profile \"staging\"; expected dev or prod"
        );
    }

    #[test]
    fn each_problem_alone_is_found_with_its_code_in_both_wordings() {
        for &code in ProblemCode::ALL {
            for by in [ConfiguredBy::Code, ConfiguredBy::ConfigFile] {
                let found = with(code, by).problems();
                assert_eq!(found.len(), 1, "{code} {by:?}: {found:#?}");
                let p = &found[0];
                assert_eq!(p.code, code);
                assert!(!p.problem.is_empty() && !p.fix.is_empty(), "{p:?}");
                assert!(!p.problem.contains("  ") && !p.fix.contains("  "), "{p:?}");
                let refused = Profile::Prod.check(&with(code, by)).unwrap_err();
                assert_eq!(refused.codes(), [code]);
                assert!(refused.to_string().contains(code.as_str()), "{refused}");
            }
        }
        let codes: Vec<&str> = ProblemCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            codes,
            [
                "in_memory_store",
                "unsafe_no_pinned_ca",
                "operations_api_without_auth",
                "control_server_open_off_loopback",
                "literal_psk_in_config",
                "jwks_over_http",
                "development_psk",
            ]
        );
    }

    #[test]
    fn the_wording_follows_how_the_settings_were_given() {
        let file = with(ProblemCode::InMemoryStore, ConfiguredBy::ConfigFile).problems();
        assert!(file[0].problem.starts_with("provider.type is memory"));
        assert!(file[0].fix.contains("provider.type to postgres"));
        let code = with(ProblemCode::InMemoryStore, ConfiguredBy::Code).problems();
        assert!(code[0].fix.contains(".sqlite(path)"), "{}", code[0].fix);

        let file = with(
            ProblemCode::OperationsApiWithoutAuth,
            ConfiguredBy::ConfigFile,
        );
        let p = &file.problems()[0];
        assert!(
            p.problem.contains("http.bind 127.0.0.1:8444"),
            "{}",
            p.problem
        );
        assert!(p.problem.contains("any process on this machine"));
        assert!(p.fix.contains("FRANCIS_HTTP_TOKEN") && p.fix.contains("http.tls: true"));
        let code = with(ProblemCode::OperationsApiWithoutAuth, ConfiguredBy::Code);
        assert!(code.problems()[0].fix.contains(".http_tls(true)"));

        let literal = Setup {
            literal_psks: vec![("bootstrap.hostPSK".into(), PskKind::HostBootstrap)],
            ..Setup::default()
        };
        let p = &literal.problems()[0];
        assert!(
            p.problem
                .starts_with("bootstrap.hostPSK: the host bootstrap PSK")
        );
        assert!(
            p.fix.contains("\"${FRANCIS_HOST_BOOTSTRAP_PSK}\""),
            "{}",
            p.fix
        );
        assert!(p.fix.contains("environment only"), "{}", p.fix);
    }

    #[test]
    fn all_problems_are_listed_together_in_code_order() {
        let found = everything().problems();
        let codes: Vec<&str> = found.iter().map(|p| p.code.as_str()).collect();
        assert_eq!(
            codes,
            [
                "in_memory_store",
                "unsafe_no_pinned_ca",
                "operations_api_without_auth",
                "control_server_open_off_loopback",
                "literal_psk_in_config",
                "literal_psk_in_config",
                "literal_psk_in_config",
                "jwks_over_http",
                "development_psk",
                "development_psk",
            ]
        );
        assert!(found[2].problem.contains("anyone who reaches it"));
        assert!(found[5].problem.starts_with("runtimePSKs[1]:"));

        let e = Profile::Prod.check(&everything()).unwrap_err();
        assert_eq!(e.problems, found);
        let text = e.to_string();
        assert!(
            text.starts_with(
                "the prod profile refuses to start with 10 unsafe settings:\n  - in_memory_store: "
            ),
            "{text}"
        );
        assert_eq!(text.matches("\n    fix: ").count(), 10, "{text}");
    }

    #[test]
    fn a_production_setup_has_no_problem() {
        let good = Setup {
            configured_by: ConfiguredBy::ConfigFile,
            operations_api: endpoint(OPEN, true),
            control_server: endpoint(OPEN, true),
            jwks_url: Some("https://issuer.example.com/jwks".into()),
            ..Setup::default()
        };
        assert_eq!(good.problems(), []);
        assert_eq!(Profile::Prod.check(&good), Ok(Vec::new()));
        assert_eq!(Profile::Prod.enforce(&good), Ok(()));
        // An open control server on loopback is this machine's only.
        let local = Setup {
            control_server: endpoint(LOOPBACK, false),
            ..Setup::default()
        };
        assert_eq!(local.problems(), []);
    }

    #[test]
    fn dev_allows_everything_but_an_open_control_server_off_loopback() {
        for &code in ProblemCode::ALL {
            let setup = with(code, ConfiguredBy::Code);
            if code.refused_in_every_profile() {
                let e = Profile::Dev.enforce(&setup).unwrap_err();
                assert_eq!((e.profile, e.codes()), (Profile::Dev, vec![code]));
            } else {
                assert_eq!(
                    Profile::Dev.check(&setup).unwrap().len(),
                    1,
                    "{code} is allowed, and reported as such"
                );
                assert_eq!(Profile::Dev.enforce(&setup), Ok(()));
            }
        }
        let mut all = everything();
        all.control_server = None;
        let allowed = Profile::Dev.check(&all).unwrap();
        assert_eq!(allowed, all.problems());
        assert_eq!(Profile::Dev.enforce(&all), Ok(()));
    }
}
