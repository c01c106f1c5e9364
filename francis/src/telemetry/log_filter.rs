//! The process's log filter, changed at run time: [`super::Telemetry::init`] installs the
//! switch, and the operators' `set_log_level` action turns it. A process whose logging Francis
//! did not set up has no switch, and says so.

use std::sync::OnceLock;

/// The longest filter accepted (a `tracing` directive list such as `info,francis=debug`).
pub const MAX_LOG_FILTER_LEN: usize = 1024;

type Switch = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

static SWITCH: OnceLock<Switch> = OnceLock::new();

/// Why the log filter did not change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogFilterError {
    /// Logging was not set up by `francis::telemetry::Telemetry::init`.
    #[error(
        "this process's logging was not set up by francis::telemetry::Telemetry::init, so its level cannot change while it runs; set RUST_LOG and restart it"
    )]
    NotInstalled,
    /// The filter is not a valid directive list, or too long.
    #[error("{0:?} is not a log filter (e.g. `debug` or `info,francis=debug`): {1}")]
    Invalid(String, String),
}

/// Install the switch (once per process; later calls are ignored).
#[cfg_attr(not(feature = "telemetry"), allow(dead_code))]
pub(crate) fn install(switch: Switch) {
    let _ = SWITCH.set(switch);
}

/// Replace the process's log filter with `directives`.
pub fn set_log_filter(directives: &str) -> Result<(), LogFilterError> {
    if directives.len() > MAX_LOG_FILTER_LEN || directives.trim().is_empty() {
        return Err(LogFilterError::Invalid(
            directives.chars().take(64).collect(),
            format!("give 1 to {MAX_LOG_FILTER_LEN} bytes"),
        ));
    }
    let switch = SWITCH.get().ok_or(LogFilterError::NotInstalled)?;
    switch(directives).map_err(|e| LogFilterError::Invalid(directives.to_owned(), e))
}
