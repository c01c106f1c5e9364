//! A local host's own workload certificate: issued at build with the CA its runtime PSKs
//! derive, and re-issued (with a fresh key) at half its remaining life for as long as the host
//! runs, the schedule remote workers follow with their runtime. The new certificate goes into
//! the [`CertSlot`] the peer server and client read at every handshake, so new connections
//! present it without a restart and live ones keep what they negotiated.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::loops::stopped;
use crate::clock::{Clock, SystemClock, duration_ms};
use crate::net::pki::{ClusterCa, MAX_LEAF_TTL, PkiError, SpiffeId, renewal_due_ms};
use crate::net::tls::CertSlot;

/// How long a local host's certificate lasts by default.
pub(crate) const DEFAULT_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);

/// A failed re-issue is tried again after this long.
const RETRY: Duration = Duration::from_secs(60);

/// The longest single wait: the wall clock is looked at again at least this often, so a
/// suspended machine or a clock that jumps does not push a renewal past the expiry.
const RECHECK: Duration = Duration::from_secs(3600);

/// How long a local host's certificates are valid.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Validity {
    /// From issue to expiry, without the skew allowance.
    pub lifetime: Duration,
    /// Added on both sides of the validity, for clocks that disagree between machines.
    pub skew: Duration,
}

impl Default for Validity {
    fn default() -> Self {
        Validity {
            lifetime: DEFAULT_LIFETIME,
            skew: crate::net::pki::CLOCK_SKEW,
        }
    }
}

impl Validity {
    /// Why this validity cannot be used, if it cannot.
    pub(crate) fn problem(&self) -> Option<String> {
        (self.lifetime.is_zero() || self.lifetime > MAX_LEAF_TTL).then(|| {
            format!(
                "certificate lifetime {:?} must be more than zero and at most 365 days",
                self.lifetime
            )
        })
    }
}

/// A local host's certificate and what re-issues it.
pub(crate) struct LocalCertificate {
    ca: ClusterCa,
    spiffe_id: SpiffeId,
    validity: Validity,
    slot: Arc<CertSlot>,
    /// When the current certificate expires (Unix ms, without the skew allowance).
    expires_ms: Mutex<i64>,
}

impl std::fmt::Debug for LocalCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCertificate")
            .field("spiffe_id", &self.spiffe_id)
            .field("validity", &self.validity)
            .finish_non_exhaustive()
    }
}

impl LocalCertificate {
    /// Issue the first certificate of host `host_id`.
    pub(crate) fn issue(
        ca: ClusterCa,
        host_id: &str,
        validity: Validity,
    ) -> Result<Arc<Self>, PkiError> {
        if validity.lifetime.is_zero() || validity.lifetime > MAX_LEAF_TTL {
            return Err(PkiError::InvalidTtl(validity.lifetime));
        }
        let spiffe_id = SpiffeId::host(host_id)?;
        let slot = CertSlot::empty();
        let certificate = LocalCertificate {
            ca,
            spiffe_id,
            validity,
            slot,
            expires_ms: Mutex::new(0),
        };
        certificate.reissue()?;
        Ok(Arc::new(certificate))
    }

    /// The slot the peer server and client present from.
    pub(crate) fn slot(&self) -> Arc<CertSlot> {
        self.slot.clone()
    }

    fn expires_ms(&self) -> i64 {
        *self.expires_ms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Issue a new certificate (with a new key) and install it.
    fn reissue(&self) -> Result<(), PkiError> {
        let now = SystemTime::now();
        let expires = now + self.validity.lifetime;
        let identity = self.ca.issue_with_validity(
            self.spiffe_id.clone(),
            now.checked_sub(self.validity.skew)
                .unwrap_or(SystemTime::UNIX_EPOCH),
            expires + self.validity.skew,
        )?;
        self.slot.set(&identity)?;
        let expires_ms = expires
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, duration_ms);
        *self.expires_ms.lock().unwrap_or_else(|p| p.into_inner()) = expires_ms;
        Ok(())
    }

    /// Re-issue the certificate at half its remaining life until `stop` is set.
    pub(crate) async fn renew_until_stopped(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut due = renewal_due_ms(SystemClock.now_ms(), self.expires_ms());
        loop {
            let now = SystemClock.now_ms();
            if now >= due {
                due = match self.reissue() {
                    Ok(()) => {
                        tracing::info!(host = %self.spiffe_id, "host certificate re-issued");
                        renewal_due_ms(SystemClock.now_ms(), self.expires_ms())
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot re-issue this host's certificate; retrying soon");
                        now.saturating_add(duration_ms(RETRY))
                    }
                };
                continue;
            }
            let wait = Duration::from_millis(due.saturating_sub(now).unsigned_abs()).min(RECHECK);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stopped(&mut stop) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_local_certificate_is_reissued_at_half_its_life() {
        let ca = ClusterCa::from_psks(&[[7u8; crate::net::pki::MIN_PSK_LEN]]).unwrap();
        let validity = Validity {
            lifetime: Duration::from_secs(2),
            skew: Duration::ZERO,
        };
        let certificate = LocalCertificate::issue(ca.clone(), "h", validity).unwrap();
        let first = certificate.slot().identity().unwrap();
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(certificate.clone().renew_until_stopped(stop_rx));
        tokio::time::sleep(Duration::from_millis(1300)).await;
        let second = certificate.slot().identity().unwrap();
        assert_ne!(first.leaf_der(), second.leaf_der(), "re-issued after 1 s");
        assert_ne!(
            first.private_key_der(),
            second.private_key_der(),
            "a fresh key"
        );
        assert!(
            ca.verify_peer_chain(
                second.cert_chain(),
                crate::net::pki::HOST_PREFIX,
                SystemTime::now()
            )
            .is_ok()
        );
        stop_tx.send(true).unwrap();
        task.await.unwrap();
        assert!(
            LocalCertificate::issue(
                ca,
                "h",
                Validity {
                    lifetime: Duration::ZERO,
                    skew: Duration::ZERO
                }
            )
            .is_err()
        );
    }
}
