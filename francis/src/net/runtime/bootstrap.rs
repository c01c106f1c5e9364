//! The PSK bootstrap's proofs: a channel-bound challenge-response in which the runtime proves
//! knowledge of the host PSK first.
//!
//! `cb = TLS-Exporter("exporter-francis-bootstrap-v1", no context, 32)`,
//! `kC/kS = HKDF-SHA256(ikm = host PSK, no salt, info = "francis-bootstrap-client" /
//! "francis-bootstrap-server", 32)`, `T = be32(len cn)‖cn ‖ be32(len sn)‖sn ‖ be32(len cb)‖cb`,
//! proofs are `HMAC-SHA256(k, T)` compared in constant time. Direction-separated keys defeat
//! reflection, fresh nonces replay, and the channel binding relaying through a TLS-terminating
//! man in the middle.
//!
//! A host that bootstraps again (its certificate is too close to expiry, or expired) keeps its
//! previous ID only by proving it still holds that ID's key: it signs
//! `"francis-reattach-v1" ‖ be32(len cb')‖cb' ‖ be32(len id)‖id`, with
//! `cb' = TLS-Exporter("exporter-francis-reattach-v1", no context, 32)`, using the private key
//! of its previous workload certificate, and sends the certificate with the signature. A
//! credential alone (the host PSK, a token) never buys an existing identity.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The TLS exporter label of the PSK bootstrap's channel binding.
pub const CHANNEL_BINDING_LABEL: &[u8] = b"exporter-francis-bootstrap-v1";

/// The TLS exporter label the proof of a previous identity is bound to.
pub const REATTACH_BINDING_LABEL: &[u8] = b"exporter-francis-reattach-v1";

/// Length of nonces, keys and the channel binding in the PSK bootstrap.
pub const PSK_NONCE_LEN: usize = 32;

/// Shortest accepted host bootstrap PSK, in bytes.
pub const MIN_HOST_PSK_LEN: usize = 16;

type HmacSha256 = Hmac<Sha256>;

/// Which side of the PSK bootstrap a proof is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofSide {
    /// The host's proof.
    Client,
    /// The runtime's proof.
    Server,
}

/// `prefix` followed by each part, length-prefixed.
fn framed(prefix: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let len: usize = parts.iter().map(|p| 4 + p.len()).sum();
    let mut t = Vec::with_capacity(prefix.len() + len);
    t.extend_from_slice(prefix);
    for part in parts {
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        t.extend_from_slice(&len.to_be_bytes());
        t.extend_from_slice(part);
    }
    t
}

fn transcript(cnonce: &[u8], snonce: &[u8], channel_binding: &[u8]) -> Vec<u8> {
    framed(b"", &[cnonce, snonce, channel_binding])
}

/// What a host signs with its previous key to keep `previous_host_id` on this session
/// (`channel_binding` from [`REATTACH_BINDING_LABEL`]).
pub fn reattach_transcript(channel_binding: &[u8], previous_host_id: &str) -> Vec<u8> {
    framed(
        b"francis-reattach-v1",
        &[channel_binding, previous_host_id.as_bytes()],
    )
}

fn proof_mac(
    host_psk: &[u8],
    side: ProofSide,
    cnonce: &[u8],
    snonce: &[u8],
    channel_binding: &[u8],
) -> Option<HmacSha256> {
    let info: &[u8] = match side {
        ProofSide::Client => b"francis-bootstrap-client",
        ProofSide::Server => b"francis-bootstrap-server",
    };
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    // 32 bytes is always a valid HKDF-SHA256 output length.
    let _ = Hkdf::<Sha256>::new(None, host_psk).expand(info, key.as_mut_slice());
    // HMAC accepts keys of any length, so this never fails.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key.as_slice()).ok()?;
    mac.update(&transcript(cnonce, snonce, channel_binding));
    Some(mac)
}

/// The PSK bootstrap proof of `side` over the nonces and the session's channel binding.
pub fn psk_proof(
    host_psk: &[u8],
    side: ProofSide,
    cnonce: &[u8],
    snonce: &[u8],
    channel_binding: &[u8],
) -> Vec<u8> {
    proof_mac(host_psk, side, cnonce, snonce, channel_binding)
        .map(|mac| mac.finalize().into_bytes().to_vec())
        .unwrap_or_default()
}

/// Check a PSK bootstrap proof in constant time.
pub fn verify_psk_proof(
    host_psk: &[u8],
    side: ProofSide,
    cnonce: &[u8],
    snonce: &[u8],
    channel_binding: &[u8],
    proof: &[u8],
) -> bool {
    proof_mac(host_psk, side, cnonce, snonce, channel_binding)
        .is_some_and(|mac| mac.verify_slice(proof).is_ok())
}

/// A fresh random nonce.
pub fn nonce() -> Vec<u8> {
    rand::random::<[u8; PSK_NONCE_LEN]>().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_bind_key_side_nonces_and_channel() {
        let (cn, sn, cb) = (nonce(), nonce(), nonce());
        let psk = b"host bootstrap psk of some length";
        let client = psk_proof(psk, ProofSide::Client, &cn, &sn, &cb);
        let server = psk_proof(psk, ProofSide::Server, &cn, &sn, &cb);
        assert_eq!(client.len(), 32);
        assert_ne!(client, server, "directions use separate keys");
        let verify = |psk: &[u8], side, cn: &[u8], sn: &[u8], cb: &[u8], proof: &[u8]| {
            verify_psk_proof(psk, side, cn, sn, cb, proof)
        };
        assert!(verify(psk, ProofSide::Client, &cn, &sn, &cb, &client));
        assert!(!verify(psk, ProofSide::Server, &cn, &sn, &cb, &client));
        let other = b"another psk, same length!!!!!!!!!";
        assert!(!verify(other, ProofSide::Client, &cn, &sn, &cb, &client));
        assert!(!verify(psk, ProofSide::Client, &cn, &sn, &nonce(), &client));
        assert!(!verify(psk, ProofSide::Client, &sn, &cn, &cb, &client));
        assert!(!verify(
            psk,
            ProofSide::Client,
            &cn,
            &sn,
            &cb,
            &client[..31]
        ));
    }
}
