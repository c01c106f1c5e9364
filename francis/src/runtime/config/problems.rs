//! What a configuration check reports: each problem with its key path and position, the error
//! that carries them, how they are rendered, and the suggestion for a misspelled key.

use std::fmt;
use std::path::PathBuf;

use super::schema::{REFERENCE, join};

/// What kind of problem a [`ConfigProblem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProblemKind {
    /// The text is not valid YAML, or uses YAML features the configuration does not allow.
    Syntax,
    /// A key the configuration does not know.
    UnknownKey,
    /// A required key is absent or has no value.
    Missing,
    /// A value of the wrong shape (a list where a string belongs, ...).
    WrongType,
    /// A value that does not satisfy the key's rules.
    InvalidValue,
    /// Keys that cannot be set together.
    Conflict,
    /// A `${VAR}` reference to an unset environment variable, or a malformed reference.
    Environment,
}

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// What kind of problem this is.
    pub kind: ProblemKind,
    /// The key path, e.g. `runtimePSKs[0]` or `bootstrap.hostPSK`; empty for problems with
    /// the whole document.
    pub key: String,
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// The 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the runtime configuration file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not a valid configuration.
    #[error("{}", render_problems(origin, problems))]
    Invalid {
        /// The file name (or the origin name given to [`RuntimeConfig::from_yaml_str`](super::RuntimeConfig::from_yaml_str)).
        origin: String,
        /// Every problem found, in file order.
        problems: Vec<ConfigProblem>,
    },
}

impl ConfigError {
    /// The problems found (empty for [`ConfigError::Read`]).
    pub fn problems(&self) -> &[ConfigProblem] {
        match self {
            ConfigError::Invalid { problems, .. } => problems,
            ConfigError::Read { .. } => &[],
        }
    }
}

pub(super) fn render_problems(origin: &str, problems: &[ConfigProblem]) -> String {
    let count = match problems.len() {
        1 => "1 problem".to_owned(),
        n => format!("{n} problems"),
    };
    let mut out = format!("invalid runtime configuration {origin} ({count}):");
    for p in problems {
        out.push_str("\n  ");
        out.push_str(origin);
        if let Some(line) = p.line {
            out.push_str(&format!(":{line}"));
            if let Some(column) = p.column {
                out.push_str(&format!(":{column}"));
            }
        }
        out.push_str(": ");
        out.push_str(&p.to_string());
    }
    out
}

/// The message for an unknown key, with a suggestion when one is close.
pub(super) fn unknown_key_message(prefix: &str, name: &str, allowed: &[&str]) -> String {
    let full = join(prefix, name);
    // A dotted key written flat, as the reference table spells it.
    if REFERENCE.iter().any(|k| k.key == full) || REFERENCE.iter().any(|k| k.key == name) {
        let path = if REFERENCE.iter().any(|k| k.key == full) {
            full.clone()
        } else {
            name.to_owned()
        };
        let parts: Vec<&str> = path.split('.').collect();
        if parts.len() > 1 {
            let nested: Vec<String> = parts
                .iter()
                .enumerate()
                .map(|(depth, part)| format!("{}{part}:", "  ".repeat(depth)))
                .collect();
            return format!(
                "unknown key; YAML keys are nested, not dotted: write\n    {}",
                nested.join("\n    ")
            );
        }
    }
    if let Some(best) = closest(name, allowed) {
        return format!("unknown key; did you mean {:?}?", join(prefix, best));
    }
    // The right name at the wrong level, e.g. hostPSK at the top instead of under bootstrap.
    let lower = name.to_ascii_lowercase();
    if let Some(elsewhere) = REFERENCE.iter().find(|k| {
        k.key
            .rsplit('.')
            .next()
            .is_some_and(|last| last.to_ascii_lowercase() == lower)
    }) {
        return format!(
            "unknown key here; did you mean {:?}? (keys are nested: check the indentation)",
            elsewhere.key
        );
    }
    let place = if prefix.is_empty() {
        "at the top level".to_owned()
    } else {
        format!("under {prefix}")
    };
    format!(
        "unknown key; the keys accepted {place} are: {}",
        allowed.join(", ")
    )
}

/// The allowed name closest to `name`, if close enough to be a likely typo.
fn closest<'a>(name: &str, allowed: &[&'a str]) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    allowed
        .iter()
        .map(|a| {
            (
                strsim::damerau_levenshtein(&lower, &a.to_ascii_lowercase()),
                *a,
            )
        })
        .filter(|(distance, a)| *distance <= (a.len() / 4).clamp(1, 3))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, a)| a)
}
