//! Reading a runtime's cluster CA without trusting it yet: what `francis ca pin` and
//! `francis dev`'s readiness check do.

use std::time::Duration;

use rustls::pki_types::CertificateDer;
use tokio::time::timeout;
use wtransport::VarInt;

use super::messages::RUNTIME_PATH;
use crate::net::peer::{client_endpoint, transport_config};
use crate::net::pki::RUNTIME_PREFIX;
use crate::net::tls::{self, CertSlot, Trust, Unverified};

/// Connect to a running runtime and return the CA certificate its server certificate chains
/// to (DER), without trusting it yet (what `francis ca pin` shows and writes; see
/// [`crate::runtime::probe_ca`]). The runtime's
/// certificate must carry a runtime identity and be signed by that CA. The error says what
/// went wrong.
pub(crate) async fn probe_ca(
    address: &str,
    limit: Duration,
) -> Result<CertificateDer<'static>, String> {
    let tls = tls::client_config(
        &Trust::empty(),
        CertSlot::empty(),
        RUNTIME_PREFIX,
        Unverified::AcceptWhileEmpty,
    )
    .map_err(|e| e.to_string())?;
    let endpoint = client_endpoint(tls, || {
        transport_config(8, limit.max(Duration::from_secs(1)), None)
    })
    .map_err(|e| e.to_string())?;
    let url = format!("https://{address}{RUNTIME_PATH}");
    let conn = timeout(limit, endpoint.connect(url))
        .await
        .map_err(|_| format!("no answer within {limit:?}; is the runtime running there?"))?
        .map_err(|e| format!("cannot connect: {e}"))?;
    let chain: Vec<CertificateDer<'static>> = conn
        .peer_identity()
        .map(|chain| {
            chain
                .as_slice()
                .iter()
                .map(|c| CertificateDer::from(c.der().to_vec()))
                .collect()
        })
        .unwrap_or_default();
    conn.close(VarInt::from_u32(0), b"probe done");
    let (Some(leaf), Some(ca)) = (chain.first(), chain.last()) else {
        return Err("the server presented no certificate".into());
    };
    if chain.len() < 2 {
        return Err(
            "the server presented no CA certificate with its own; is this a Francis runtime?"
                .into(),
        );
    }
    let trust = Trust::from_ders(vec![ca.clone()]).map_err(|e| e.to_string())?;
    tls::verify_chain(
        &trust,
        std::slice::from_ref(leaf),
        RUNTIME_PREFIX,
        rustls::pki_types::UnixTime::now(),
    )
    .map_err(|e| {
        format!("the server certificate is not a runtime certificate of the CA it presented: {e}")
    })?;
    Ok(ca.clone())
}
