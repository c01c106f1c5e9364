//! Trace context across processes: a request frame carries the W3C `traceparent` of the span
//! that sent it, and the span that serves it takes that as its parent. Without the `telemetry`
//! feature, or before an exporter is installed, both ends do nothing.

/// The longest `traceparent` accepted from a peer (the W3C format is 55 characters; later
/// versions may add fields). Longer values are ignored.
pub const MAX_TRACEPARENT_LEN: usize = 128;

/// Whether any subscriber may want `debug` spans (the process's maximum level allows them).
/// The call path asks before it builds a span: with `tracing`'s `log` compatibility on, even a
/// disabled span costs a trip through the `log` fallback, which a call of an active actor
/// should not pay when nothing listens.
#[inline]
pub fn debug_spans() -> bool {
    tracing::level_filters::LevelFilter::current() >= tracing::Level::DEBUG
}

/// The `traceparent` of the current span, when trace export is on and a span is recording.
#[inline]
pub fn current_traceparent() -> Option<String> {
    #[cfg(feature = "telemetry")]
    {
        super::otel::current_traceparent()
    }
    #[cfg(not(feature = "telemetry"))]
    {
        None
    }
}

/// Make `span` a child of the remote span `traceparent` names (sent by the caller). An absent,
/// oversized or malformed value leaves `span` a root.
#[inline]
pub fn set_remote_parent(span: &tracing::Span, traceparent: Option<&str>) {
    #[cfg(feature = "telemetry")]
    if let Some(traceparent) = traceparent.filter(|t| t.len() <= MAX_TRACEPARENT_LEN) {
        super::otel::set_remote_parent(span, traceparent);
    }
    #[cfg(not(feature = "telemetry"))]
    let _ = (span, traceparent);
}
