//! The host ↔ runtime protocol of the remote topology, both ends: the messages and the table of
//! store operations ([`messages`]), the PSK bootstrap's proofs ([`bootstrap`]), the worker's
//! link to its runtime ([`client`]) and the runtime's session server ([`server`]). The runtime's
//! policy (its configuration, which hosts it admits, the certificates it issues) lives in
//! [`crate::runtime`] and plugs into the server.

pub mod bootstrap;
pub(crate) mod client;
pub mod messages;
#[cfg(feature = "runtime")]
pub(crate) mod probe;
#[cfg(feature = "runtime")]
pub(crate) mod server;
