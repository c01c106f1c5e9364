//! The Prometheus text exposition format (version 0.0.4) of the process's metrics, as
//! `GET /metrics` serves it.

use std::fmt::Write;

use super::metrics::{Family, Kind, Metrics};

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every family of `metrics` in the text format: `# HELP` and `# TYPE` lines, then one line
/// per series (histograms: cumulative `_bucket` lines with `le`, then `_sum` and `_count`).
/// Families with no series yet are listed with their help and type only.
pub fn render(metrics: &Metrics) -> String {
    let mut out = String::with_capacity(4096);
    for family in metrics.families() {
        render_family(&mut out, family);
    }
    out
}

fn render_family(out: &mut String, family: &Family) {
    let info = family.info();
    let kind = match info.kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
        Kind::Histogram => "histogram",
    };
    let _ = writeln!(out, "# HELP {} {}", info.name, escape_help(info.help));
    let _ = writeln!(out, "# TYPE {} {kind}", info.name);
    for series in family.series() {
        let labels: Vec<(&str, &str)> = info
            .labels
            .iter()
            .copied()
            .zip(series.labels().iter().map(String::as_str))
            .collect();
        match info.kind {
            Kind::Counter => {
                line(
                    out,
                    info.name,
                    "",
                    &labels,
                    None,
                    &series.count().to_string(),
                );
            }
            Kind::Gauge => {
                line(
                    out,
                    info.name,
                    "",
                    &labels,
                    None,
                    &series.level().to_string(),
                );
            }
            Kind::Histogram => {
                let mut cumulative = 0u64;
                let counts = series.bucket_counts();
                for (bound, count) in series.bounds().iter().zip(&counts) {
                    cumulative += count;
                    line(
                        out,
                        info.name,
                        "_bucket",
                        &labels,
                        Some(&format_float(*bound)),
                        &cumulative.to_string(),
                    );
                }
                cumulative += counts.last().copied().unwrap_or(0);
                line(
                    out,
                    info.name,
                    "_bucket",
                    &labels,
                    Some("+Inf"),
                    &cumulative.to_string(),
                );
                line(
                    out,
                    info.name,
                    "_sum",
                    &labels,
                    None,
                    &format_float(series.sum_seconds()),
                );
                line(
                    out,
                    info.name,
                    "_count",
                    &labels,
                    None,
                    &series.count().to_string(),
                );
            }
        }
    }
}

fn line(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(&str, &str)],
    le: Option<&str>,
    value: &str,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() || le.is_some() {
        out.push('{');
        let mut first = true;
        for (label, label_value) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
            if !first {
                out.push(',');
            }
            first = false;
            let _ = write!(out, "{label}=\"{}\"", escape_value(label_value));
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

/// A float as Prometheus reads it (`0.005`, `10`, `+Inf`).
fn format_float(value: f64) -> String {
    if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{value}")
    }
}

fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn counters_gauges_and_histograms_render_in_the_text_format() {
        // A registry of its own: the process's is shared with tests running alongside.
        let m = &Metrics::new();
        m.activations.with(&["prom\"test\\type\n"]).inc_by(2);
        m.active_actors.with(&["prom-test-type"]).add(5);
        m.alarm_delay.with(&[]).observe(Duration::from_millis(20));
        let text = render(m);
        assert!(text.contains("# TYPE francis_activations_total counter\n"));
        assert!(
            text.contains("francis_activations_total{actor_type=\"prom\\\"test\\\\type\\n\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("francis_active_actors{actor_type=\"prom-test-type\"} 5\n"));
        // 20 ms is above the 0.01 s bound and within the 0.05 s one; buckets are cumulative.
        assert!(text.contains("francis_alarm_delay_seconds_bucket{le=\"0.01\"} 0\n"));
        assert!(text.contains("francis_alarm_delay_seconds_bucket{le=\"0.05\"} 1\n"));
        assert!(text.contains("francis_alarm_delay_seconds_bucket{le=\"+Inf\"} 1\n"));
        assert!(text.contains("francis_alarm_delay_seconds_count 1\n"));
        assert!(text.contains("francis_alarm_delay_seconds_sum 0.02\n"));
        // Every family is described, recorded or not.
        for family in m.families() {
            assert!(
                text.contains(&format!("# HELP {} ", family.info().name)),
                "{}",
                family.info().name
            );
        }
    }
}
