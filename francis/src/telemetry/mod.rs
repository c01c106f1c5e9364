//! Seeing into a running process: metrics, traces and logs.
//!
//! - **Metrics** ([`metrics()`]) are always recorded, cheaply, and served in the Prometheus text
//!   format ([`prometheus::render`]) at `GET /metrics` on the control server and the runtime.
//! - **Traces** are `tracing` spans named after what they measure (`actor.invoke`,
//!   `peer.invoke`, `store.<operation>`, `runtime.<kind>`, `alarm.execute`, ...). With the
//!   `telemetry` feature, [`Telemetry::init`] sends them, and the metrics, to an OpenTelemetry
//!   collector over OTLP when the standard `OTEL_*` environment variables ask for it; the trace
//!   context crosses hosts in the peer and runtime protocols ([`context`]), so a forwarded
//!   call is one trace.
//! - **Logs** are `tracing` events; [`Telemetry::init`] prints them as text or JSON lines
//!   (`FRANCIS_LOG_FORMAT=json`).
//!
//! Off by default: without an exporter, spans on the call path are disabled `debug` spans
//! (a relaxed load each), and call latencies are not timed until `/metrics` is first read.

pub mod context;
pub mod log_filter;
pub mod metrics;
#[cfg(feature = "telemetry")]
mod otel;
pub mod prometheus;

pub use log_filter::{LogFilterError, set_log_filter};
pub use metrics::{Metrics, metrics};
#[cfg(feature = "telemetry")]
pub use otel::{LOG_FORMAT_ENV, LogFormat, Telemetry, TelemetryError, TelemetryGuard};
