//! Routing calls across hosts: the placement cache, forwarding a call to the owning host over
//! the peer transport (re-resolving and retrying once, with the same request ID, when the
//! placement was stale), and the owner's side of a forwarded call: its checks, the
//! suppression of duplicate requests, and the mapping of errors to and from the wire.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::actor::service::InvokeOptions;
use crate::error::Error;
use crate::host::core::HostCore;
use crate::model::Envelope;
use crate::model::{ActorKey, Placement};
use crate::net::peer::PeerHandler;
use crate::net::pki::SpiffeId;
use crate::net::translate::{error_from_wire, error_to_wire};
use crate::net::wire::{ErrorCode, InvokeRequest, InvokeResponse, WireError};

/// Placements are cached at most this long (and never longer than the actor's idle timeout).
const PLACEMENT_CACHE_MAX_MS: i64 = 5_000;
/// How many placements are cached at most.
const PLACEMENT_CACHE_MAX: usize = 100_000;
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
            if entries.len() > PLACEMENT_CACHE_MAX {
                entries.retain(|_, (_, expires)| *expires > now_ms);
                if entries.len() > PLACEMENT_CACHE_MAX / 2 {
                    // Mostly live entries: start over rather than scan them again on every put.
                    entries.clear();
                }
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
    table: Mutex<DedupTable>,
}

/// The request IDs seen, with their arrival order, so expiring the oldest costs O(1) per call
/// however many are kept.
#[derive(Default)]
struct DedupTable {
    entries: HashMap<String, DedupEntry>,
    /// Request IDs, oldest arrival first; each is in `entries`.
    order: VecDeque<String>,
}

impl DedupTable {
    /// The slot of `request_id` and, on its first arrival, the sender that fills it. Results
    /// older than [`DEDUP_KEEP_MS`], and the oldest results beyond [`DEDUP_MAX`], are dropped
    /// first; a request still running is never dropped (its duplicates must wait for it).
    fn slot(
        &mut self,
        request_id: &str,
        now_ms: i64,
    ) -> (
        watch::Receiver<Option<Outcome>>,
        Option<watch::Sender<Option<Outcome>>>,
    ) {
        if let Some((rx, _)) = self.entries.get(request_id) {
            return (rx.clone(), None);
        }
        // Each request ID at the front is looked at once per call at most: a finished one is
        // dropped, a running one moves to the back (it is still needed).
        for _ in 0..self.order.len() {
            let Some(oldest) = self.order.front() else {
                break;
            };
            let Some((rx, at)) = self.entries.get(oldest) else {
                self.order.pop_front();
                continue;
            };
            if self.entries.len() < DEDUP_MAX && now_ms - *at < DEDUP_KEEP_MS {
                break;
            }
            let running = rx.borrow().is_none();
            if let Some(id) = self.order.pop_front() {
                if running {
                    self.order.push_back(id);
                } else {
                    self.entries.remove(&id);
                }
            }
        }
        let (tx, rx) = watch::channel(None);
        self.entries
            .insert(request_id.to_owned(), (rx.clone(), now_ms));
        self.order.push_back(request_id.to_owned());
        (rx, Some(tx))
    }
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
        let options = crate::model::LookupOptions {
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
                return Err(error_from_wire(key, method, &placement.address, error));
            }
            retried = true;
            self.placements.invalidate(key);
            tokio::time::sleep(error.retry_after().unwrap_or_default().min(MAX_RETRY_WAIT)).await;
            let (fresh, _) = self.resolve(key, options.active_only, true).await?;
            if fresh.host_id == self.host_id {
                let args = Envelope::from_msgpack_bytes(std::mem::take(&mut request.data));
                return self.invoke_here(key, method, args, options).await;
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
                let outcome = match core.invoke_here(&key, &request.method, args, options).await {
                    Ok(out) => out
                        .into_msgpack()
                        .map(|data| InvokeResponse { data })
                        .map_err(|e| WireError::new(ErrorCode::Internal, e.to_string())),
                    Err(e) => Err(error_to_wire(&e)),
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
        match self.dedup.table.lock() {
            Ok(mut table) => table.slot(request_id, now),
            Err(_) => {
                let (tx, rx) = watch::channel(None);
                (rx, Some(tx))
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn finish(tx: Option<watch::Sender<Option<Outcome>>>) {
        let tx = tx.expect("a first arrival gets the sender");
        tx.send(Some(Ok(InvokeResponse { data: vec![7] }))).unwrap();
    }

    #[test]
    fn a_duplicate_shares_the_first_arrival_while_it_runs_and_after() {
        let mut table = DedupTable::default();
        let (_rx, tx) = table.slot("r1", 0);
        let (waiting, again) = table.slot("r1", 10);
        assert!(again.is_none(), "a duplicate must not run the call again");
        finish(tx);
        let (done, again) = table.slot("r1", DEDUP_KEEP_MS - 1);
        assert!(again.is_none());
        assert!(done.borrow().is_some() && waiting.borrow().is_some());
    }

    #[test]
    fn finished_results_expire_and_running_requests_are_kept() {
        let mut table = DedupTable::default();
        let (_a, running) = table.slot("running", 0);
        let (_b, finished) = table.slot("finished", 0);
        finish(finished);
        // Long after: the finished result is gone (its ID runs again), the running one is not.
        let (_c, tx) = table.slot("other", DEDUP_KEEP_MS + 1);
        assert!(tx.is_some());
        assert!(table.slot("finished", DEDUP_KEEP_MS + 2).1.is_some());
        assert!(table.slot("running", DEDUP_KEEP_MS + 3).1.is_none());
        drop(running);
    }

    #[test]
    fn at_most_dedup_max_finished_results_are_kept_oldest_dropped_first() {
        let mut table = DedupTable::default();
        for i in 0..DEDUP_MAX + 10 {
            let (_rx, tx) = table.slot(&format!("r{i}"), 0);
            finish(tx);
        }
        assert_eq!(table.entries.len(), DEDUP_MAX);
        assert_eq!(table.order.len(), DEDUP_MAX);
        assert!(!table.entries.contains_key("r9"), "the oldest are dropped");
        assert!(table.entries.contains_key(&format!("r{}", DEDUP_MAX + 9)));
    }
}
