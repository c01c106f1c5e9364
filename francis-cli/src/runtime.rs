//! `francis runtime`: run the remote topology's control plane from its YAML configuration, or
//! (`francis runtime check`) only validate the configuration. A thin wrapper: the runtime is
//! `francis::runtime::Runtime::from_config`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use francis::profile::{ProfileError, ProfileProblem};
use francis::runtime::config::{Bootstrap, ConfigError, Provider, RuntimeConfig};
use francis::runtime::{Runtime, RuntimeError};

use crate::exit::{Code, Failure};

/// Arguments of `francis runtime`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Run `francis runtime --help` for every configuration key and its default.",
    after_long_help = long_help()
)]
pub struct RuntimeArgs {
    /// The YAML configuration [default: $FRANCIS_CONFIG, else the first of config.yaml,
    /// config.yml, config.json in ., ~/.francis, /etc/francis].
    #[arg(long, short, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub action: Option<RuntimeAction>,
}

/// What `francis runtime` does besides running.
#[derive(Debug, clap::Subcommand)]
pub enum RuntimeAction {
    /// Validate the configuration, check it against its profile (with the operations tokens of
    /// this environment), and print what it sets up, without starting the runtime.
    Check,
    /// Ask a running runtime whether it is ready (GET /readyz on its operations server): exit
    /// 0 when it is, 1 when not. For container health checks.
    Healthcheck {
        /// The operations server's host:port [default: 127.0.0.1 and the port of http.bind].
        #[arg(long, value_name = "HOST:PORT")]
        addr: Option<String>,
        /// How long to wait for the answer.
        #[arg(long, default_value = "5s", value_parser = parse_timeout)]
        timeout: std::time::Duration,
        /// Print the checks, not only the verdict.
        #[arg(long)]
        verbose: bool,
    },
}

fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    francis::time::parse_duration(text).map_err(|e| e.to_string())
}

/// The long help: examples, then every configuration key from the code's own reference.
fn long_help() -> String {
    let mut help = String::from(
        "Examples:
  francis runtime --config config.yaml          # run until Ctrl-C or SIGTERM
  francis runtime check --config config.yaml    # validate only; exit code 6 if invalid
  FRANCIS_RUNTIME_PSK=... francis runtime -c config.yaml   # with runtimePSKs: [\"${FRANCIS_RUNTIME_PSK}\"]

Configuration keys (durations: Go style such as 1h, 1500ms, or ISO 8601; ${VAR} in any
string is replaced by the environment variable VAR):
",
    );
    for key in RuntimeConfig::reference() {
        let default = key
            .default
            .map_or(String::new(), |d| format!(" [default: {d}]"));
        let _ = writeln!(help, "  {}{default}\n      {}", key.key, key.description);
    }
    help
}

/// Where the configuration is: the flag, `$FRANCIS_CONFIG`, or the usual places.
pub fn find_config(flag: Option<&Path>) -> Result<PathBuf, Failure> {
    if let Some(path) = flag {
        return Ok(path.to_path_buf());
    }
    if let Some(path) = std::env::var_os("FRANCIS_CONFIG") {
        return Ok(PathBuf::from(path));
    }
    let mut dirs = vec![PathBuf::from(".")];
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".francis"));
    }
    dirs.push(PathBuf::from("/etc/francis"));
    for dir in &dirs {
        for name in ["config.yaml", "config.yml", "config.json"] {
            let path = dir.join(name);
            if path.is_file() {
                return Ok(path);
            }
        }
    }
    Err(Failure::new(Code::Usage, "no runtime configuration found").fix(
        "pass --config config.yaml (or set FRANCIS_CONFIG); `francis runtime --help` lists every key",
    ))
}

/// Load and validate the configuration, as a failure that lists every problem.
pub fn load(flag: Option<&Path>) -> Result<(PathBuf, RuntimeConfig), Failure> {
    let path = find_config(flag)?;
    match RuntimeConfig::load(&path) {
        Ok(config) => Ok((path, config)),
        Err(e @ ConfigError::Read { .. }) => {
            Err(Failure::new(Code::Usage, e.to_string()).fix("check the path given with --config"))
        }
        Err(e) => Err(Failure::new(Code::Config, e.to_string()).fix(
            "correct the keys above; `francis runtime --help` lists every key and its default",
        )),
    }
}

/// `francis runtime [check]`.
pub fn run(args: RuntimeArgs) -> anyhow::Result<()> {
    let (path, config) = load(args.config.as_deref())?;
    match args.action {
        Some(RuntimeAction::Check) => {
            let allowed = config
                .check_profile()
                .map_err(|e| profile_failure(&path, &e))?;
            println!("{}: valid", path.display());
            print!("{}", summary(&config, &allowed));
            return Ok(());
        }
        Some(RuntimeAction::Healthcheck {
            addr,
            timeout,
            verbose,
        }) => return healthcheck(&config, addr, timeout, verbose),
        None => {}
    }
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    tokio.block_on(async {
        let telemetry = init_telemetry(&config)?;
        let runtime = Runtime::from_config(&config).await.map_err(|e| match e {
            RuntimeError::Profile(e) => profile_failure(&path, &e),
            e => Failure::new(Code::Failed, format!("the runtime could not start: {e}"))
                .fix("see the message above; `francis runtime check` validates the configuration"),
        })?;
        tracing::info!(config = %path.display(), "runtime configured");
        runtime
            .run(francis::host::shutdown_signal())
            .await
            .map_err(|e| Failure::new(Code::Failed, e.to_string()))?;
        telemetry.shutdown().await;
        Ok(())
    })
}

/// `francis runtime healthcheck`: GET /readyz of the operations server.
fn healthcheck(
    config: &RuntimeConfig,
    addr: Option<String>,
    timeout: std::time::Duration,
    verbose: bool,
) -> anyhow::Result<()> {
    let addr = addr.unwrap_or_else(|| format!("127.0.0.1:{}", config.http.bind.port()));
    let scheme = if config.http.tls { "https" } else { "http" };
    let url = format!("{scheme}://{addr}/readyz");
    // Over TLS the server is verified with the cluster CA, derived from the configuration.
    let root = if config.http.tls {
        let ca = francis::net::pki::ClusterCa::from_psks(&config.runtime_psks)
            .map_err(|e| Failure::new(Code::Config, e.to_string()))?;
        Some(reqwest::Certificate::from_pem(ca.ca_pem().as_bytes())?)
    } else {
        None
    };
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answer = tokio.block_on(async {
        let mut client = reqwest::Client::builder().timeout(timeout).no_proxy();
        if let Some(root) = root {
            client = client
                .tls_built_in_root_certs(false)
                .add_root_certificate(root);
        }
        let client = client.build()?;
        let response = client.get(&url).send().await?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        Ok::<_, reqwest::Error>((status, body))
    });
    match answer {
        Ok((status, body)) if status.is_success() => {
            if verbose {
                println!("{body}");
            }
            println!("ready ({url})");
            Ok(())
        }
        Ok((status, body)) => Err(Failure::new(
            Code::Failed,
            format!("the runtime at {url} is not ready ({status}): {body}"),
        )
        .fix("see which check failed above; the runtime's log says more")
        .into()),
        Err(e) => Err(Failure::new(
            Code::Failed,
            format!("no answer from the runtime's operations server at {url}: {e}"),
        )
        .fix("is the runtime running, with http.bind on that port? pass --addr host:port otherwise")
        .into()),
    }
}

/// The profile's refusal of the configuration at `path`, as exit code 6.
fn profile_failure(path: &Path, e: &ProfileError) -> Failure {
    Failure::new(Code::Config, format!("{}: {e}", path.display())).fix(
        "fix each setting above; for a development setup, set profile: dev (or FRANCIS_PROFILE=dev without a profile key) to allow them",
    )
}

/// What a configuration sets up, without secrets; `allowed`: the unsafe settings its profile
/// (dev) allows.
fn summary(config: &RuntimeConfig, allowed: &[ProfileProblem]) -> String {
    let bootstrap = match &config.bootstrap {
        Bootstrap::Psk { host_psk } => format!("psk (host PSK of {} bytes)", host_psk.len()),
        Bootstrap::Jwt(jwt) => format!("jwt (issuer {}, audience {})", jwt.issuer, jwt.audience),
    };
    let provider = match &config.provider {
        Provider::Sqlite { connection_string } => format!("sqlite ({connection_string})"),
        Provider::Postgres { .. } => "postgres".to_owned(),
        Provider::Memory => "memory (not durable)".to_owned(),
    };
    let ca = francis::net::pki::ClusterCa::from_psks(&config.runtime_psks)
        .map(|ca| ca.fingerprint())
        .unwrap_or_else(|e| format!("(not derivable: {e})"));
    let optional =
        |d: Option<std::time::Duration>| d.map_or("none".to_owned(), |d| format!("{d:?}"));
    let sql = &config.provider_options;
    let mut out = String::new();
    let mut line = |key: &str, value: String| {
        out.push_str(&format!("  {:<26} {value}\n", format!("{key}:")));
    };
    let mut codes: Vec<&str> = allowed.iter().map(|p| p.code.as_str()).collect();
    codes.dedup();
    line(
        "profile",
        if codes.is_empty() {
            config.profile.to_string()
        } else {
            format!("{} (allows {})", config.profile, codes.join(", "))
        },
    );
    line("bind", config.bind.to_string());
    line(
        "advertiseAddress",
        config
            .advertise_address
            .clone()
            .unwrap_or_else(|| "(bind, when a concrete IP)".to_owned()),
    );
    line("runtime PSKs", config.runtime_psks.len().to_string());
    line("cluster CA", ca);
    line("bootstrap", bootstrap);
    line("provider", provider);
    line("provider.timeout", format!("{:?}", sql.timeout));
    line(
        "provider.queryLog",
        format!(
            "{} (slow threshold {})",
            on_off(sql.query_log.enabled),
            optional(sql.query_log.slow_threshold)
        ),
    );
    line(
        "provider.operationLog",
        format!(
            "{} (slow threshold {})",
            on_off(sql.operation_log.enabled),
            optional(sql.operation_log.slow_threshold)
        ),
    );
    line("workloadCertTTL", format!("{:?}", config.workload_cert_ttl));
    line(
        "healthCheckDeadline",
        format!("{:?}", config.health_check_deadline),
    );
    line("requestTimeout", format!("{:?}", config.request_timeout));
    line(
        "alarmsPollInterval",
        format!("{:?}", config.alarms_poll_interval),
    );
    line(
        "alarmsLeaseDuration",
        format!("{:?}", config.alarms_lease_duration),
    );
    line(
        "alarmsFetchAheadInterval",
        format!("{:?}", config.alarms_fetch_ahead_interval),
    );
    line(
        "alarmsFetchAheadBatchSize",
        config.alarms_fetch_ahead_batch_size.to_string(),
    );
    line(
        "shutdownGracePeriod",
        format!("{:?}", config.shutdown_grace_period),
    );
    line(
        "maxHosts",
        match config.max_hosts {
            0 => "unlimited".to_owned(),
            n => n.to_string(),
        },
    );
    line(
        "maxInFlightRequests",
        config.max_in_flight_requests.to_string(),
    );
    line(
        "maxRequestBodySize",
        format!("{} bytes", config.max_request_body_size),
    );
    line(
        "http",
        format!(
            "{}{}",
            config.http.bind,
            if config.http.tls { " (TLS)" } else { "" }
        ),
    );
    line(
        "log",
        format!(
            "{}{}",
            config.log_level,
            if config.log_json { " (JSON)" } else { "" }
        ),
    );
    out
}

fn on_off(enabled: bool) -> &'static str {
    if enabled { "on" } else { "off" }
}

/// Logs at `log.level` (unless `RUST_LOG` says otherwise), as JSON lines with `log.json`
/// (or `FRANCIS_LOG_FORMAT=json`), and OpenTelemetry export when the `OTEL_*` variables ask
/// for it.
fn init_telemetry(config: &RuntimeConfig) -> Result<francis::telemetry::TelemetryGuard, Failure> {
    let mut telemetry = francis::telemetry::Telemetry::from_env("francis-runtime")
        .default_filter(config.log_level.as_str());
    if config.log_json {
        telemetry = telemetry.log_format(francis::telemetry::LogFormat::Json);
    }
    telemetry.init().map_err(|e| {
        Failure::new(
            Code::Failed,
            format!("cannot set up logging and telemetry: {e}"),
        )
        .fix("check FRANCIS_LOG_FORMAT, RUST_LOG and the OTEL_* variables")
    })
}
