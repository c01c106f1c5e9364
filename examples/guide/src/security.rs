//! "Security": a host built from a list of runtime PSKs, as during a key rotation, and the CA
//! fingerprint every host of one cluster shares.

use std::path::Path;

use francis::host::HostBuilder;
use francis::prelude::*;

// ANCHOR: keys
/// A host builder that trusts every key of `psks`. The first key signs this host's
/// certificate; the others are only trusted, so peers that still sign with them get in.
pub fn with_keys(address: &str, db: &Path, psks: &[&str]) -> HostBuilder {
    psks.iter()
        .fold(Host::local().address(address).sqlite(db), |builder, psk| {
            builder.runtime_psk(psk)
        })
}
// ANCHOR_END: keys

// ANCHOR: fingerprint
/// The fingerprint of the CA that signs this host's certificate (SHA-256, `AB:CD:...`). Every
/// host started with the same first key prints the same one: log it at startup to spot a host
/// configured with another key.
pub fn ca_fingerprint(host: &Host) -> Option<String> {
    host.cluster_ca().map(|ca| ca.fingerprint())
}
// ANCHOR_END: fingerprint
