//! The runtime's admission policy, which its session server asks for: how hosts bootstrap, which
//! host ID a registering host gets, and the workload certificates and cluster settings it is
//! given.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use serde_bytes::ByteBuf;

use super::jwt;
use crate::clock::duration_ms;
use crate::model::{HostRegistration, Store, StoreError};
use crate::net::pki::{ClusterCa, Psk};
use crate::net::runtime::messages::{RegisterResponse, RenewResponse};
use crate::net::runtime::server::{self, Admission, Claim};
use crate::net::translate::store_error_to_wire;
use crate::net::wire::{ErrorCode, WireError};

/// How hosts prove they may join.
pub enum Bootstrap {
    /// A pre-shared host key (at least 16 bytes), proven by channel-bound challenge-response.
    Psk(Psk),
    /// A bearer token checked by a validator (the JWT validator of the configuration).
    Token(Arc<dyn TokenValidator>),
}

impl std::fmt::Debug for Bootstrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bootstrap::Psk(_) => f.write_str("Psk(<redacted>)"),
            Bootstrap::Token(_) => f.write_str("Token(..)"),
        }
    }
}

/// Checks the bearer tokens of the JWT bootstrap (see [`Bootstrap::Token`]).
#[async_trait]
pub trait TokenValidator: Send + Sync + 'static {
    /// Accept the token (returning its subject, for logs) or refuse it (returning the reason,
    /// which is logged on the runtime and never sent to the client).
    async fn validate(&self, token: &str) -> Result<String, String>;
}

#[async_trait]
impl TokenValidator for jwt::JwtValidator {
    async fn validate(&self, token: &str) -> Result<String, String> {
        match jwt::JwtValidator::validate(self, token).await {
            Ok(claims) => Ok(claims.sub.unwrap_or_else(|| "(no subject)".into())),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The cluster settings a runtime hands every host it admits.
#[derive(Debug, Clone)]
pub(crate) struct HostSettings {
    pub workload_cert_ttl: Duration,
    pub health_check_deadline: Duration,
    pub alarms_poll_interval: Duration,
    pub alarms_lease_duration: Duration,
    /// Cluster admission: the `maxHosts` every registration is made with (0 = unlimited).
    pub max_hosts: u32,
    pub alarms_fetch_ahead: Duration,
    pub alarms_batch_size: u32,
}

/// The policy of one runtime: its store, its CA, its bootstrap method and host settings.
pub(crate) struct Policy {
    pub store: Arc<dyn Store>,
    pub ca: ClusterCa,
    pub bootstrap: Bootstrap,
    pub hosts: HostSettings,
}

impl Policy {
    /// The host ID a registering host gets, and whether a healthy registration was kept.
    async fn host_id(
        &self,
        claim: Claim,
        registration: &HostRegistration,
    ) -> Result<(String, bool), StoreError> {
        let store = &self.store;
        // The runtime's configuration decides cluster admission, not the worker.
        let registration = &HostRegistration {
            max_hosts: self.hosts.max_hosts,
            ..registration.clone()
        };
        match claim {
            // The host proved it holds the previous ID's key, as an mTLS reconnect would.
            Claim::Bootstrapped {
                previous: Some(host_id),
            }
            | Claim::Certified(host_id) => {
                let reattached = store.reattach_host(&host_id, registration).await?;
                Ok((host_id, reattached))
            }
            Claim::Bootstrapped { previous: None } => {
                Ok((store.register_host(registration).await?, false))
            }
        }
    }

    /// A certificate for `host_id`'s key, its end of validity (Unix ms) and the CA bundle.
    fn certify(
        &self,
        host_id: &str,
        wlpub: &[u8],
    ) -> Result<(Vec<u8>, i64, Vec<ByteBuf>), WireError> {
        let (cert, expires) = self
            .ca
            .issue_host_cert_for_key(host_id, wlpub, self.hosts.workload_cert_ttl)
            .map_err(|e| WireError::new(ErrorCode::BadRequest, e.to_string()))?;
        let expires_ms = expires
            .duration_since(UNIX_EPOCH)
            .map(duration_ms)
            .unwrap_or(0);
        let bundle = self
            .ca
            .bundle_der()
            .iter()
            .map(|c| ByteBuf::from(c.to_vec()))
            .collect();
        Ok((cert.to_vec(), expires_ms, bundle))
    }
}

#[async_trait]
impl Admission for Policy {
    fn bootstrap(&self) -> server::Bootstrap<'_> {
        match &self.bootstrap {
            Bootstrap::Psk(psk) => server::Bootstrap::Psk(psk.as_bytes()),
            Bootstrap::Token(_) => server::Bootstrap::Token,
        }
    }

    async fn validate_token(&self, token: &str) -> Result<String, String> {
        match &self.bootstrap {
            Bootstrap::Token(validator) => validator.validate(token).await,
            Bootstrap::Psk(_) => Err("this runtime does not take bootstrap tokens".into()),
        }
    }

    async fn register(
        &self,
        claim: Claim,
        registration: &HostRegistration,
        wlpub: &[u8],
    ) -> Result<RegisterResponse, WireError> {
        let (host_id, reattached) = self
            .host_id(claim, registration)
            .await
            .map_err(|e| store_error_to_wire(&e))?;
        let (wlcert, cert_expires_ms, cabundle) = self.certify(&host_id, wlpub)?;
        let ms = |d: Duration| duration_ms(d).unsigned_abs();
        Ok(RegisterResponse {
            host_id,
            session_id: String::new(),
            reattached,
            health_deadline_ms: ms(self.hosts.health_check_deadline),
            alarms_poll_interval_ms: ms(self.hosts.alarms_poll_interval),
            alarms_lease_duration_ms: ms(self.hosts.alarms_lease_duration),
            alarms_fetch_ahead_ms: ms(self.hosts.alarms_fetch_ahead),
            alarms_batch_size: self.hosts.alarms_batch_size,
            wlcert,
            cert_expires_ms,
            cabundle,
        })
    }

    async fn renew(&self, host_id: &str, wlpub: &[u8]) -> Result<RenewResponse, WireError> {
        // A live session is not enough: the host may have unregistered on it, or its heartbeat
        // may have expired, and a certificate must not outlive the registration it speaks for.
        let hosts = self
            .store
            .list_hosts()
            .await
            .map_err(|e| store_error_to_wire(&e))?;
        if !hosts.iter().any(|h| h.host_id == host_id) {
            tracing::info!(host = %host_id, "certificate renewal refused: the host is not registered");
            let mut error = store_error_to_wire(&StoreError::HostUnregistered {
                host_id: host_id.to_owned(),
            });
            error.message = format!(
                "host {host_id} is not registered (it unregistered, or its heartbeat expired); \
                 register again to get a certificate"
            );
            return Err(error);
        }
        let (wlcert, cert_expires_ms, cabundle) = self.certify(host_id, wlpub)?;
        tracing::debug!(host = %host_id, "workload certificate renewed");
        Ok(RenewResponse {
            wlcert,
            cert_expires_ms,
            cabundle,
        })
    }

    fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}
