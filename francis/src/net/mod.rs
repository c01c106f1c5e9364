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

/// Whether the host of `address` (`host:port`, IPv6 in brackets) is a loopback address: an IP
/// of 127.0.0.0/8 or `::1` (IPv4-mapped too), or `localhost`. A name that only resolves to one
/// does not count: what it resolves to can change.
pub(crate) fn is_loopback_address(address: &str) -> bool {
    let Some((host, _port)) = address.rsplit_once(':') else {
        return false;
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// The error for a well-known development key used where an address is not loopback, or
/// `None` when `psk` is not [`pki::DEVELOPMENT_PSK`] or every address is loopback. `what`
/// names the key ("runtime PSK") and `variable` the environment variable the examples read it
/// from.
pub(crate) fn development_psk_problem<'a>(
    psk: &[u8],
    addresses: impl IntoIterator<Item = &'a str>,
    what: &str,
    variable: &str,
) -> Option<String> {
    if !is_development_psk(psk) {
        return None;
    }
    let exposed = addresses
        .into_iter()
        .find(|address| !is_loopback_address(address))?;
    Some(format!(
        "the {what} is the published development key (francis::host::DEVELOPMENT_PSK), which \
         anyone can use to join this cluster; it is accepted only while every address is \
         loopback (127.0.0.1, ::1 or localhost), and {exposed:?} is not: set {variable} to a \
         random key of your own, e.g. `openssl rand -hex 32`"
    ))
}

/// Whether `psk` is the published development key, [`pki::DEVELOPMENT_PSK`].
pub(crate) fn is_development_psk(psk: &[u8]) -> bool {
    psk == pki::DEVELOPMENT_PSK.as_bytes()
}

/// Whether `address` is `host:port` with a non-empty host and a non-zero port.
pub(crate) fn is_host_port(address: &str) -> bool {
    match address.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses_are_told_apart() {
        for address in [
            "127.0.0.1:7571",
            "127.8.9.10:1",
            "[::1]:7571",
            "[::ffff:127.0.0.1]:7571",
            "localhost:7571",
            "LocalHost:7571",
        ] {
            assert!(is_loopback_address(address), "{address}");
        }
        for address in [
            "0.0.0.0:7571",
            "[::]:7571",
            "10.0.0.1:7571",
            "localhost.example:7571",
            "127.0.0.1",
            "",
        ] {
            assert!(!is_loopback_address(address), "{address}");
        }
    }
}
