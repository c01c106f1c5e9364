//! The process's telemetry set-up ([`Telemetry::init`]): log lines (text or JSON) and, when the
//! standard `OTEL_*` environment variables ask for it, OpenTelemetry traces and metrics sent
//! over OTLP (HTTP/protobuf).
//!
//! What switches export on, following the OpenTelemetry specification's variables:
//! - `OTEL_SDK_DISABLED=true` switches everything off;
//! - traces are sent when `OTEL_TRACES_EXPORTER=otlp`, or when it is unset and an endpoint is
//!   (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`); `none` keeps them
//!   off; likewise metrics with `OTEL_METRICS_EXPORTER` and `..._METRICS_ENDPOINT`;
//! - `OTEL_EXPORTER_OTLP_PROTOCOL` must be `http/protobuf` (the default) when set; gRPC is
//!   not built in, and asking for it is an error that says so;
//! - `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` name the process; the exporter reads
//!   `OTEL_EXPORTER_OTLP_HEADERS` and `..._TIMEOUT`, the metric reader
//!   `OTEL_METRIC_EXPORT_INTERVAL`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::{KeyValue, global};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use super::metrics::{self, FamilyInfo, Kind, MirrorFactory, MirrorFn};

/// The environment variable that chooses the log format: `json` or `text` (the default).
pub const LOG_FORMAT_ENV: &str = "FRANCIS_LOG_FORMAT";

/// How long [`TelemetryGuard`] waits for the last spans and metrics to be sent.
const FLUSH_LIMIT: Duration = Duration::from_secs(10);

/// The most of a collector's answer read (its body is only ever a short status).
const MAX_COLLECTOR_RESPONSE: usize = 64 * 1024;

/// Whether spans are exported: the trace context is only worth sending when they are.
static TRACES_ON: AtomicBool = AtomicBool::new(false);

/// How log lines are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = TelemetryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" | "" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(TelemetryError::Config(format!(
                "{LOG_FORMAT_ENV}={s:?} is not a log format; use text or json"
            ))),
        }
    }
}

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// A setting is wrong; the message names it and what to write instead.
    #[error("{0}")]
    Config(String),
    /// Another `tracing` subscriber was installed first.
    #[error(
        "a tracing subscriber is already installed; call francis::telemetry::Telemetry::init once, before any other logging set-up"
    )]
    AlreadyInitialized,
    /// The OTLP exporter could not be built.
    #[error("cannot set up the OTLP exporter: {0}")]
    Exporter(String),
}

/// Telemetry settings: log format and level, service name, and where `OTEL_*` values come
/// from.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let telemetry = francis::telemetry::Telemetry::from_env("my-app").init()?;
/// // ... run hosts ...
/// telemetry.shutdown().await; // sends the last spans and metrics
/// # Ok(())
/// # }
/// ```
pub struct Telemetry {
    service_name: String,
    default_filter: String,
    format: Option<LogFormat>,
    env: EnvSource,
}

/// Where `Telemetry` reads its environment variables from.
type EnvSource = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("service_name", &self.service_name)
            .field("default_filter", &self.default_filter)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Settings read from the process environment: `RUST_LOG` (else `info`),
    /// `FRANCIS_LOG_FORMAT`, and the `OTEL_*` variables. `service_name` names the process in
    /// traces unless `OTEL_SERVICE_NAME` does.
    pub fn from_env(service_name: impl Into<String>) -> Self {
        Self::with_env(service_name, |name| std::env::var(name).ok())
    }

    /// Settings read from `env` instead of the process environment (for tests and embedding).
    /// The exporter still reads its headers and timeout from the process environment.
    pub fn with_env(
        service_name: impl Into<String>,
        env: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        Telemetry {
            service_name: service_name.into(),
            default_filter: "info".to_owned(),
            format: None,
            env: Box::new(env),
        }
    }

    /// The log filter when `RUST_LOG` is unset (`info` by default), in `RUST_LOG`'s syntax.
    pub fn default_filter(mut self, filter: impl Into<String>) -> Self {
        self.default_filter = filter.into();
        self
    }

    /// Print logs in this format; without it, `FRANCIS_LOG_FORMAT` decides (text when unset).
    /// The environment variable still wins when it is set, so an operator can switch a
    /// deployed program to JSON.
    pub fn log_format(mut self, format: LogFormat) -> Self {
        self.format = Some(format);
        self
    }

    /// Install the logging subscriber and, when asked for, the OTLP exporters. Call it once,
    /// inside the tokio runtime, before building hosts or runtimes (metrics series made before
    /// it are not exported over OTLP).
    pub fn init(self) -> Result<TelemetryGuard, TelemetryError> {
        let env = &self.env;
        let format = match env(LOG_FORMAT_ENV) {
            Some(value) => value.parse()?,
            None => self.format.unwrap_or_default(),
        };
        let filter = match env("RUST_LOG").filter(|v| !v.trim().is_empty()) {
            Some(directives) => EnvFilter::try_new(&directives).map_err(|e| {
                TelemetryError::Config(format!("RUST_LOG={directives:?} is not a log filter: {e}"))
            })?,
            None => EnvFilter::try_new(&self.default_filter).map_err(|e| {
                TelemetryError::Config(format!(
                    "the default log filter {:?} is not valid: {e}",
                    self.default_filter
                ))
            })?,
        };
        let plan = ExportPlan::read(env)?;
        let resource = resource(env, &self.service_name);
        let client = if plan.traces.is_some() || plan.metrics.is_some() {
            Some(OtlpHttp::new()?)
        } else {
            None
        };

        let tracer_provider = match (&plan.traces, &client) {
            (Some(endpoint), Some(client)) => {
                let exporter = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_http_client(client.clone())
                    .with_endpoint(endpoint.clone())
                    .build()
                    .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
                Some(
                    SdkTracerProvider::builder()
                        .with_resource(resource.clone())
                        .with_batch_exporter(exporter)
                        .build(),
                )
            }
            _ => None,
        };
        let meter_provider = match (&plan.metrics, &client) {
            (Some(endpoint), Some(client)) => {
                let exporter = opentelemetry_otlp::MetricExporter::builder()
                    .with_http()
                    .with_http_client(client.clone())
                    .with_endpoint(endpoint.clone())
                    .build()
                    .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
                Some(
                    SdkMeterProvider::builder()
                        .with_resource(resource)
                        .with_periodic_exporter(exporter)
                        .build(),
                )
            }
            _ => None,
        };

        // The filter can be replaced while the process runs (an operator's `set_log_level`).
        let (filter, switch) = tracing_subscriber::reload::Layer::new(filter);
        let fmt: Box<dyn Layer<Registry> + Send + Sync> = match format {
            LogFormat::Text => tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(filter)
                .boxed(),
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .with_writer(std::io::stderr)
                .with_filter(filter)
                .boxed(),
        };
        // Francis's spans are `debug` spans, so they cost nothing until exported; the user's
        // own spans and events go to the exporter from `info` up.
        let otel = tracer_provider.as_ref().map(|provider| {
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("francis"))
                .with_filter(
                    Targets::new()
                        .with_default(LevelFilter::INFO)
                        .with_target("francis", LevelFilter::DEBUG),
                )
        });
        tracing_subscriber::registry()
            .with(fmt)
            .with(otel)
            .try_init()
            .map_err(|_| TelemetryError::AlreadyInitialized)?;
        super::log_filter::install(Box::new(move |directives: &str| {
            let filter = EnvFilter::try_new(directives).map_err(|e| e.to_string())?;
            switch.reload(filter).map_err(|e| e.to_string())
        }));

        if let Some(provider) = &tracer_provider {
            global::set_tracer_provider(provider.clone());
            TRACES_ON.store(true, Ordering::Relaxed);
        }
        if let Some(provider) = &meter_provider {
            global::set_meter_provider(provider.clone());
            metrics::install_mirrors(Box::new(OtelMirrors));
            metrics::observe_calls();
        }
        tracing::debug!(
            ?format,
            traces = plan.traces.as_deref().unwrap_or("off"),
            metrics = plan.metrics.as_deref().unwrap_or("off"),
            "telemetry set up"
        );
        Ok(TelemetryGuard {
            tracer_provider,
            meter_provider,
        })
    }
}

/// Keeps the exporters running; [`shutdown`](Self::shutdown) sends what is left (bounded at
/// 10 seconds). Dropping it does the same, blocking the thread it is dropped on.
#[derive(Debug)]
#[must_use = "dropping the guard stops the exporters"]
pub struct TelemetryGuard {
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
}

impl TelemetryGuard {
    /// Whether spans are exported.
    pub fn traces_exported(&self) -> bool {
        self.tracer_provider.is_some()
    }

    /// Whether metrics are exported over OTLP.
    pub fn metrics_exported(&self) -> bool {
        self.meter_provider.is_some()
    }

    /// Send the spans and metrics not sent yet, and stop the exporters. Waits at most 10
    /// seconds.
    pub async fn shutdown(mut self) {
        let (tracer, meter) = (self.tracer_provider.take(), self.meter_provider.take());
        if tracer.is_none() && meter.is_none() {
            return;
        }
        // The exporters block their caller until the last batch is sent, and sending it needs
        // this runtime: wait on another thread.
        let flushing = tokio::task::spawn_blocking(move || flush(tracer, meter));
        if tokio::time::timeout(FLUSH_LIMIT, flushing).await.is_err() {
            tracing::warn!(limit = ?FLUSH_LIMIT, "telemetry was not all sent before the limit");
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let (tracer, meter) = (self.tracer_provider.take(), self.meter_provider.take());
        if tracer.is_none() && meter.is_none() {
            return;
        }
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            flush(tracer, meter);
            let _ = done.send(());
        });
        let _ = finished.recv_timeout(FLUSH_LIMIT);
    }
}

fn flush(tracer: Option<SdkTracerProvider>, meter: Option<SdkMeterProvider>) {
    TRACES_ON.store(false, Ordering::Relaxed);
    if let Some(provider) = tracer
        && let Err(e) = provider.shutdown_with_timeout(FLUSH_LIMIT)
    {
        eprintln!("francis: sending the last spans failed: {e}");
    }
    if let Some(provider) = meter
        && let Err(e) = provider.shutdown_with_timeout(FLUSH_LIMIT)
    {
        eprintln!("francis: sending the last metrics failed: {e}");
    }
}

/// Which signals are exported, and where (full OTLP/HTTP URLs).
#[derive(Debug, PartialEq, Eq)]
struct ExportPlan {
    traces: Option<String>,
    metrics: Option<String>,
}

impl ExportPlan {
    fn read(env: &dyn Fn(&str) -> Option<String>) -> Result<Self, TelemetryError> {
        let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if get("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Ok(ExportPlan {
                traces: None,
                metrics: None,
            });
        }
        for name in [
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
        ] {
            if let Some(protocol) = get(name)
                && protocol.trim() != "http/protobuf"
            {
                return Err(TelemetryError::Config(format!(
                    "{name}={protocol:?} is not supported: Francis sends OTLP over HTTP with protobuf; set {name}=http/protobuf and point the endpoint at the collector's HTTP port (4318)"
                )));
            }
        }
        let generic = get("OTEL_EXPORTER_OTLP_ENDPOINT");
        let signal = |exporter_var: &str, endpoint_var: &str, path: &str| {
            let specific = get(endpoint_var);
            let on = match get(exporter_var).map(|v| v.trim().to_ascii_lowercase()) {
                Some(v) if v == "none" => false,
                Some(v) if v == "otlp" => true,
                Some(v) => {
                    return Err(TelemetryError::Config(format!(
                        "{exporter_var}={v:?} is not supported; use otlp or none"
                    )));
                }
                None => specific.is_some() || generic.is_some(),
            };
            if !on {
                return Ok(None);
            }
            let url = match (specific, &generic) {
                (Some(url), _) => url,
                (None, Some(base)) => format!("{}/{path}", base.trim_end_matches('/')),
                (None, None) => format!("http://localhost:4318/{path}"),
            };
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(TelemetryError::Config(format!(
                    "the OTLP endpoint {url:?} is not an http:// or https:// URL"
                )));
            }
            Ok(Some(url))
        };
        Ok(ExportPlan {
            traces: signal(
                "OTEL_TRACES_EXPORTER",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "v1/traces",
            )?,
            metrics: signal(
                "OTEL_METRICS_EXPORTER",
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                "v1/metrics",
            )?,
        })
    }
}

fn resource(env: &dyn Fn(&str) -> Option<String>, service_name: &str) -> Resource {
    let mut builder = Resource::builder_empty().with_attributes([
        KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        KeyValue::new("service.instance.id", uuid::Uuid::new_v4().to_string()),
    ]);
    if let Some(attributes) = env("OTEL_RESOURCE_ATTRIBUTES") {
        builder = builder.with_attributes(attributes.split(',').filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            Some(KeyValue::new(
                key.trim().to_owned(),
                value.trim().to_owned(),
            ))
        }));
    }
    let name = env("OTEL_SERVICE_NAME")
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| service_name.to_owned());
    builder.with_service_name(name).build()
}

/// The OTLP exporters' HTTP client: the workspace's reqwest (rustls on ring, the system's
/// roots), driven on the tokio runtime that set telemetry up (the exporters call it from
/// their own threads).
#[derive(Debug, Clone)]
struct OtlpHttp {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl OtlpHttp {
    fn new() -> Result<Self, TelemetryError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            TelemetryError::Config(
                "telemetry export needs a tokio runtime: call Telemetry::init inside it".into(),
            )
        })?;
        let client = reqwest::Client::builder()
            .timeout(FLUSH_LIMIT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        Ok(OtlpHttp { client, runtime })
    }
}

#[async_trait::async_trait]
impl HttpClient for OtlpHttp {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        let (status, headers, body) = self
            .runtime
            .spawn(async move {
                let mut response = client.execute(request).await?;
                let status = response.status();
                let headers = response.headers().clone();
                let mut body = Vec::new();
                while let Some(chunk) = response.chunk().await? {
                    let room = MAX_COLLECTOR_RESPONSE.saturating_sub(body.len());
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok::<_, reqwest::Error>((status, headers, Bytes::from(body)))
            })
            .await??;
        let mut response = Response::builder().status(status).body(body)?;
        *response.headers_mut() = headers;
        Ok(response)
    }
}

/// Mirrors metric series into OpenTelemetry instruments of the global meter `francis`.
struct OtelMirrors;

impl MirrorFactory for OtelMirrors {
    fn mirror(&self, family: &FamilyInfo, labels: &[(&'static str, String)]) -> MirrorFn {
        let meter = global::meter("francis");
        let attributes: Vec<KeyValue> = labels
            .iter()
            .map(|(name, value)| KeyValue::new(*name, value.clone()))
            .collect();
        match family.kind {
            Kind::Counter => {
                let counter = meter
                    .u64_counter(family.otel_name)
                    .with_description(family.help)
                    .with_unit(family.unit)
                    .build();
                Box::new(move |value| counter.add(value as u64, &attributes))
            }
            Kind::Gauge => {
                let gauge = meter
                    .i64_up_down_counter(family.otel_name)
                    .with_description(family.help)
                    .with_unit(family.unit)
                    .build();
                Box::new(move |delta| gauge.add(delta as i64, &attributes))
            }
            Kind::Histogram => {
                let histogram = meter
                    .f64_histogram(family.otel_name)
                    .with_description(family.help)
                    .with_unit(family.unit)
                    .with_boundaries(family.buckets.to_vec())
                    .build();
                Box::new(move |value| histogram.record(value, &attributes))
            }
        }
    }
}

pub(super) fn current_traceparent() -> Option<String> {
    if !TRACES_ON.load(Ordering::Relaxed) {
        return None;
    }
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove("traceparent")
}

pub(super) fn set_remote_parent(span: &tracing::Span, traceparent: &str) {
    if !TRACES_ON.load(Ordering::Relaxed) || span.is_disabled() {
        return;
    }
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(vars: &[(&str, &str)]) -> Result<ExportPlan, TelemetryError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ExportPlan::read(&move |name| vars.get(name).cloned())
    }

    #[test]
    fn nothing_is_exported_without_otel_variables() {
        assert_eq!(
            plan(&[]).unwrap(),
            ExportPlan {
                traces: None,
                metrics: None
            }
        );
    }

    #[test]
    fn an_endpoint_switches_both_signals_on_with_their_paths() {
        assert_eq!(
            plan(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")]).unwrap(),
            ExportPlan {
                traces: Some("http://collector:4318/v1/traces".into()),
                metrics: Some("http://collector:4318/v1/metrics".into()),
            }
        );
    }

    #[test]
    fn exporter_variables_choose_each_signal() {
        let only_traces = plan(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_METRICS_EXPORTER", "none"),
        ])
        .unwrap();
        assert!(only_traces.traces.is_some() && only_traces.metrics.is_none());
        let default_endpoint = plan(&[("OTEL_TRACES_EXPORTER", "otlp")]).unwrap();
        assert_eq!(
            default_endpoint.traces.as_deref(),
            Some("http://localhost:4318/v1/traces")
        );
        let specific = plan(&[
            ("OTEL_TRACES_EXPORTER", "otlp"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://x/y"),
        ])
        .unwrap();
        assert_eq!(specific.traces.as_deref(), Some("https://x/y"));
        let disabled = plan(&[
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_TRACES_EXPORTER", "otlp"),
        ])
        .unwrap();
        assert!(disabled.traces.is_none());
    }

    #[test]
    fn unsupported_settings_say_what_to_use() {
        let grpc = plan(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).unwrap_err();
        assert!(grpc.to_string().contains("http/protobuf"), "{grpc}");
        let zipkin = plan(&[("OTEL_TRACES_EXPORTER", "zipkin")]).unwrap_err();
        assert!(zipkin.to_string().contains("otlp or none"), "{zipkin}");
        let bad_url =
            plan(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4318")]).unwrap_err();
        assert!(bad_url.to_string().contains("http://"), "{bad_url}");
        let format: Result<LogFormat, _> = "yaml".parse();
        assert!(format.unwrap_err().to_string().contains("text or json"));
        assert_eq!("JSON".parse::<LogFormat>().unwrap(), LogFormat::Json);
    }
}
