//! Network layer: PKI from PSKs, wire protocol, peer transport.
//!
//! - [`pki`]: the cluster CA derived from runtime PSKs, workload identities, rustls configs.
//! - [`wire`]: length-prefixed, versioned MessagePack frames and the peer messages.
//! - [`peer`]: host-to-host invocation over WebTransport with mutual TLS.
//!
//! This module knows nothing of storage or activations; the host layer plugs in through
//! [`peer::PeerHandler`].

pub mod peer;
pub mod pki;
pub mod wire;
