//! The remote topology's control plane: the standalone runtime that owns the store, admits
//! hosts, issues their certificates and coordinates placement, state and alarms.
//!
//! - [`config`]: the runtime's YAML configuration file, validated with precise errors.
//! - [`jwt`]: validation of the JWTs hosts present when they join with JWT bootstrap.

pub mod config;
pub mod jwt;
