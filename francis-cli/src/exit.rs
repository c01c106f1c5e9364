//! Exit codes scripts can rely on, and [`Failure`]: an error that says what is wrong, what to
//! do about it, and which exit code it ends the process with.

use std::fmt;

/// The process exit codes of `francis`. Documented in `francis --help`; stable across versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Everything worked (`francis dev`: stopped with Ctrl-C or SIGTERM, every host shut down).
    Ok = 0,
    /// An unexpected failure (I/O, a missing tool, a bug).
    Failed = 1,
    /// Bad usage: an unknown option, an invalid name or value, a value missing without a terminal.
    Usage = 2,
    /// `francis new`: the destination already exists.
    Exists = 3,
    /// `francis dev`: the project could not be found or built.
    Build = 4,
    /// `francis dev`: a host could not start, or kept exiting before it became ready.
    HostFailed = 5,
    /// `francis runtime`, `francis ca print`: the runtime configuration is invalid.
    Config = 6,
    /// `francis ca pin`: the runtime's CA does not have the expected fingerprint.
    Mismatch = 7,
    /// `francis ca pin`, `francis cluster`, `francis jobs`: the runtime or server could not be
    /// reached.
    Unreachable = 8,
    /// `francis cluster <action>`: preflight denied it, or it failed on a target.
    Denied = 9,
    /// Interrupted: a second Ctrl-C killed the hosts, or a prompt got no answer.
    Interrupted = 130,
}

/// The help text listing the exit codes, for `concat!` into help texts.
macro_rules! exit_codes_help {
    () => {
        "Exit codes:
  0    success (francis dev: stopped with Ctrl-C or SIGTERM, every host shut down)
  1    unexpected failure (I/O error, cargo missing, ...)
  2    bad usage: unknown option, invalid name or value, a value missing without a terminal
  3    francis new: the destination already exists (francis ca pin: the output file exists)
  4    francis dev: the project could not be found or built
  5    francis dev: a host could not start, or kept exiting before it became ready
  6    francis runtime / ca print: the runtime configuration is invalid
  7    francis ca pin: the CA does not have the expected fingerprint (nothing written)
  8    francis ca pin / cluster / jobs: the runtime or server could not be reached
  9    francis cluster <action>: preflight denied it, or it failed on a target
  130  interrupted: a second Ctrl-C killed the hosts, or a prompt got no answer"
    };
}
pub(crate) use exit_codes_help;

/// An error with an exit code and a fix. Return it (inside `anyhow::Error`) from a command.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub code: Code,
    /// What is wrong.
    pub problem: String,
    /// What to do about it.
    pub fix: Option<String>,
}

impl Failure {
    /// A failure with exit code `code`.
    pub fn new(code: Code, problem: impl Into<String>) -> Self {
        Failure {
            code,
            problem: problem.into(),
            fix: None,
        }
    }

    /// Say what to do about it.
    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problem)
    }
}

impl std::error::Error for Failure {}

/// A [`Failure`] with exit code [`Code::Usage`].
pub fn usage(problem: impl Into<String>) -> Failure {
    Failure::new(Code::Usage, problem)
}

/// In tests: the exit code, problem and fix of a command's error, which must be a [`Failure`].
#[cfg(test)]
pub fn failure_of(result: anyhow::Result<impl std::fmt::Debug>) -> (Code, String, String) {
    let error = result.unwrap_err();
    let failure = error.downcast_ref::<Failure>().expect("a Failure");
    (
        failure.code,
        failure.problem.clone(),
        failure.fix.clone().unwrap_or_default(),
    )
}
