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

pub mod peer;
pub mod pki;
pub mod runtime;
pub(crate) mod serving;
pub mod tls;
pub(crate) mod translate;
pub mod wire;
