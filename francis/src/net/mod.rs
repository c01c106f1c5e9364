//! Network layer: PKI from PSKs, wire protocol, peer transport.
//!
//! - [`pki`]: the cluster CA derived from runtime PSKs, workload identities and keys.
//! - [`tls`]: swappable trust bundles and identities, and the rustls configs that use them.
//! - [`wire`]: length-prefixed, versioned MessagePack frames and the peer messages.
//! - [`peer`]: host-to-host invocation over WebTransport with mutual TLS.
//! - [`rpc`]: the host ↔ runtime protocol of the remote topology and its PSK bootstrap proofs.
//!
//! This module knows nothing of SQL or activations (the runtime protocol carries the store's
//! plain data types); the host layer plugs in through
//! [`peer::PeerHandler`].

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
