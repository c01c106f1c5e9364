//! Routing calls across hosts: the placement cache, forwarding a call to the owning host over
//! the peer transport (re-resolving and retrying once, with the same request ID, when the
//! placement was stale), and the owner's side of a forwarded call: its checks, the
//! suppression of duplicate requests, and the mapping of errors to and from the wire.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::actor::envelope::Envelope;
use crate::actor::service::InvokeOptions;
use crate::error::{ActorFailure, Error};
use crate::host::core::HostCore;
use crate::net::peer::PeerHandler;
use crate::net::pki::SpiffeId;
use crate::net::wire::{ErrorCode, InvokeRequest, InvokeResponse, WireError};
use crate::store::{ActorKey, Placement};

/// Placements are cached at most this long (and never longer than the actor's idle timeout).
const PLACEMENT_CACHE_MAX_MS: i64 = 5_000;
/// The longest wait before retrying a call that hit a stale placement.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(1);
/// How long a finished request's result is kept to answer a duplicate of it.
const DEDUP_KEEP_MS: i64 = 60_000;
/// How many finished results are kept at most.
const DEDUP_MAX: usize = 10_000;

/// Where actors live, as this host last learned it.
#[derive(Default)]
pub(crate) struct PlacementCache {
    entries: Mutex<HashMap<ActorKey, (Placement, i64)>>,
}

impl PlacementCache {
    fn get(&self, key: &ActorKey, now_ms: i64) -> Option<Placement> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|(_, expires)| *expires > now_ms)
            .map(|(p, _)| p.clone())
    }

    fn put(&self, key: &ActorKey, placement: &Placement, now_ms: i64) {
        let ttl = placement.idle_timeout.map_or(PLACEMENT_CACHE_MAX_MS, |d| {
            crate::clock::duration_ms(d).min(PLACEMENT_CACHE_MAX_MS)
        });
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() > 100_000 {
                entries.retain(|_, (_, expires)| *expires > now_ms);
            }
            entries.insert(key.clone(), (placement.clone(), now_ms.saturating_add(ttl)));
        }
    }

    pub(crate) fn invalidate(&self, key: &ActorKey) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(key);
        }
    }
}

type Outcome = Result<InvokeResponse, WireError>;

/// A request's result slot (empty while it runs) and when it arrived (Unix ms).
type DedupEntry = (watch::Receiver<Option<Outcome>>, i64);

/// Runs each request ID once: concurrent duplicates wait for the first, later duplicates get
/// its result while it is kept.
#[derive(Default)]
pub(crate) struct Dedup {
    entries: Mutex<HashMap<String, DedupEntry>>,
}

impl HostCore {
    /// Where `key` lives: from the cache, or the store (which places it if needed).
    pub(crate) async fn resolve(
        &self,
        key: &ActorKey,
        active_only: bool,
        skip_cache: bool,
    ) -> Result<(Placement, bool), Error> {
        let now = self.clock.now_ms();
        if !skip_cache
            && !active_only
            && let Some(placement) = self.placements.get(key, now)
        {
            return Ok((placement, false));
        }
        let options = crate::store::LookupOptions {
            active_only,
            allowed_hosts: None,
        };
        let placement = self
            .store
            .lookup_actor(key, &options)
            .await
            .map_err(crate::host::core::store_error)?;
        self.placements.put(key, &placement, now);
        Ok((placement, true))
    }

    /// Call an actor that lives on another host, retrying once on a stale placement.
    pub(crate) async fn forward(
        &self,
        key: &ActorKey,
        method: &str,
        args: Envelope,
        options: InvokeOptions,
        mut placement: Placement,
    ) -> Result<Envelope, Error> {
        let data = args.into_msgpack()?;
        let mut request = InvokeRequest {
            target_host_id: placement.host_id.clone(),
            actor_type: key.actor_type.clone(),
            actor_id: key.actor_id.clone(),
            method: method.to_owned(),
            active_only: options.active_only,
            read_only: options.read_only,
            request_id: uuid::Uuid::new_v4().to_string(),
            data,
        };
        let Some(peer) = &self.peer_client else {
            return Err(Error::Unreachable {
                key: key.clone(),
                address: placement.address,
            });
        };
        let mut retried = false;
        loop {
            let error = match peer.invoke(&placement.address, request.clone()).await {
                Ok(response) => return Ok(Envelope::from_msgpack_bytes(response.data)),
                Err(e) => e.to_wire_error(),
            };
            let stale = error.retryable() || error.code == ErrorCode::ActorNotActive;
            if retried || !stale {
                return Err(from_wire(key, method, &placement.address, error));
            }
            retried = true;
            self.placements.invalidate(key);
            tokio::time::sleep(error.retry_after().unwrap_or_default().min(MAX_RETRY_WAIT)).await;
            let (fresh, _) = self.resolve(key, options.active_only, true).await?;
            if fresh.host_id == self.host_id {
                let args = Envelope::from_msgpack_bytes(std::mem::take(&mut request.data));
                return self.invoke_here(key.clone(), method, args, options).await;
            }
            request.target_host_id = fresh.host_id.clone();
            placement = fresh;
        }
    }

    /// The owner's side of a forwarded call.
    async fn serve_peer_call(self: Arc<Self>, request: InvokeRequest) -> Outcome {
        if request.target_host_id != self.host_id {
            return Err(WireError::new(
                ErrorCode::HostMismatch,
                format!(
                    "this is host {}, not {}",
                    self.host_id, request.target_host_id
                ),
            ));
        }
        if self.is_shutting_down() {
            return Err(
                WireError::new(ErrorCode::HostDraining, "host is shutting down")
                    .with_retry_after(Duration::from_millis(500)),
            );
        }
        let (rx, first) = self.dedup_slot(&request.request_id);
        if let Some(tx) = first {
            let core = self.clone();
            tokio::spawn(async move {
                let key = ActorKey::new(request.actor_type, request.actor_id);
                let options = InvokeOptions {
                    active_only: request.active_only,
                    read_only: request.read_only,
                };
                let args = Envelope::from_msgpack_bytes(request.data);
                let outcome = match core
                    .invoke_here(key.clone(), &request.method, args, options)
                    .await
                {
                    Ok(out) => out
                        .into_msgpack()
                        .map(|data| InvokeResponse { data })
                        .map_err(|e| WireError::new(ErrorCode::Internal, e.to_string())),
                    Err(e) => Err(to_wire(&e)),
                };
                let _ = tx.send(Some(outcome));
            });
        }
        let mut rx = rx;
        match rx.wait_for(Option::is_some).await {
            Ok(outcome) => outcome
                .clone()
                .unwrap_or_else(|| Err(WireError::new(ErrorCode::Internal, "no outcome"))),
            Err(_) => Err(WireError::new(ErrorCode::Internal, "the call was dropped")),
        }
    }

    /// The result slot of a request ID, and the sender when this is its first arrival.
    fn dedup_slot(
        &self,
        request_id: &str,
    ) -> (
        watch::Receiver<Option<Outcome>>,
        Option<watch::Sender<Option<Outcome>>>,
    ) {
        let now = self.clock.now_ms();
        let Ok(mut entries) = self.dedup.entries.lock() else {
            let (tx, rx) = watch::channel(None);
            return (rx, Some(tx));
        };
        if let Some((rx, _)) = entries.get(request_id) {
            return (rx.clone(), None);
        }
        if entries.len() >= DEDUP_MAX {
            entries.retain(|_, (rx, at)| rx.borrow().is_none() || now - *at < DEDUP_KEEP_MS);
        }
        let (tx, rx) = watch::channel(None);
        entries.insert(request_id.to_owned(), (rx.clone(), now));
        (rx, Some(tx))
    }
}

/// The peer server's handler: forwarded calls run on this host.
pub(crate) struct PeerCalls(pub Arc<HostCore>);

#[async_trait::async_trait]
impl PeerHandler for PeerCalls {
    async fn invoke(
        &self,
        _caller: SpiffeId,
        request: InvokeRequest,
    ) -> Result<InvokeResponse, WireError> {
        self.0.clone().serve_peer_call(request).await
    }
}

/// A framework error as the wire carries it back to the calling host.
pub(crate) fn to_wire(e: &Error) -> WireError {
    let code = match e {
        Error::Actor(failure) => {
            return WireError::new(ErrorCode::InvokeFailed, failure.message.clone())
                .with_payload(failure.payload.bytes().to_vec());
        }
        Error::Halted { .. } => {
            return WireError::new(ErrorCode::ActorHalted, e.to_string())
                .with_retry_after(Duration::from_millis(100));
        }
        Error::ShuttingDown => {
            return WireError::new(ErrorCode::HostDraining, e.to_string())
                .with_retry_after(Duration::from_millis(500));
        }
        Error::NotActive { .. } => ErrorCode::ActorNotActive,
        Error::Unreachable { .. } | Error::NotHosted { .. } => ErrorCode::ActorNotHosted,
        Error::UnknownActorType { .. } => ErrorCode::ActorTypeUnsupported,
        Error::UnknownMethod { .. } => ErrorCode::UnknownMethod,
        Error::NoHost { .. } => ErrorCode::NoHost,
        Error::BadArguments { .. }
        | Error::NotInvokable { .. }
        | Error::NotReadOnly { .. }
        | Error::InvalidName { .. }
        | Error::Codec(_) => ErrorCode::BadRequest,
        _ => ErrorCode::Internal,
    };
    WireError::new(code, e.to_string())
}

/// A wire error from another host as the caller sees it. Errors that mean the same thing on
/// either side (the actor's own error, unknown types, halted, not active, no host) become the
/// same [`Error`] a local call gives; the rest say which host failed and why.
pub(crate) fn from_wire(key: &ActorKey, method: &str, address: &str, e: WireError) -> Error {
    match e.code {
        ErrorCode::InvokeFailed if e.payload.is_some() => Error::Actor(Box::new(ActorFailure {
            key: key.clone(),
            method: method.to_owned(),
            message: e.message,
            payload: Envelope::from_msgpack_bytes(e.payload.unwrap_or_default()),
        })),
        ErrorCode::ActorHalted => Error::Halted { key: key.clone() },
        ErrorCode::ActorNotActive => Error::NotActive { key: key.clone() },
        ErrorCode::ActorTypeUnsupported => Error::UnknownActorType {
            actor_type: key.actor_type.clone(),
        },
        ErrorCode::NoHost => Error::NoHost {
            actor_type: key.actor_type.clone(),
        },
        code => Error::Remote {
            key: key.clone(),
            address: address.to_owned(),
            code: code.as_str(),
            message: e.message,
        },
    }
}
