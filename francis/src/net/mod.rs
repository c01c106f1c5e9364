//! The network layer, and the only module that knows WebTransport (QUIC) and TLS.
//!
//! - [`pki`]: the cluster CA derived from runtime PSKs, workload identities and keys.
//! - [`tls`]: swappable trust bundles and identities, and the rustls configs that use them.
//! - `wire` (internal): length-prefixed, versioned MessagePack frames, the peer messages and
//!   the error codes.
//! - `peer` (internal): host-to-host invocation over WebTransport with mutual TLS.
//! - `runtime` (internal): the host ↔ runtime protocol of the remote topology, both ends: its
//!   messages and table of store operations, the PSK bootstrap, the worker's link and the
//!   runtime's session server.
//! - `translate`, `serving` (internal): the one translation of errors to and from wire codes,
//!   and what the two servers share.
//!
//! This module knows nothing of SQL or activations: the runtime protocol carries the model's
//! plain records, and the host plugs into the peer server through its `PeerHandler`.

pub(crate) mod gate;
pub(crate) mod identity;
pub(crate) mod peer;
pub mod pki;
pub(crate) mod runtime;
pub(crate) mod serving;
pub mod tls;
pub(crate) mod translate;
pub(crate) mod wire;

/// Whether `address` is `host:port` with a non-empty host and a non-zero port.
pub(crate) fn is_host_port(address: &str) -> bool {
    match address.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0),
        None => false,
    }
}
