//! The owner's side of a call forwarded by another host: the peer server hands it here (after
//! its own admission checks: the target host, draining, the per-session limit) and it runs on
//! this host, in the stream's own task. Duplicates of a request (a caller retrying with the same
//! request ID) are suppressed: concurrent ones wait for the first, later ones get its result
//! while it is kept.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::actor::service::InvokeOptions;
use crate::host::core::{HostCore, Ownership};
use crate::model::{ActorKey, Envelope};
use crate::net::peer::PeerHandler;
use crate::net::pki::SpiffeId;
use crate::net::translate::error_to_wire;
use crate::net::wire::{ErrorCode, InvokeRequest, InvokeResponse, WireError};

/// How long a finished request's result is kept to answer a duplicate of it.
const DEDUP_KEEP_MS: i64 = 60_000;
/// How many finished results are kept at most.
const DEDUP_MAX: usize = 10_000;

type Outcome = Result<InvokeResponse, WireError>;

/// A request's result slot (empty while it runs) and when it arrived (Unix ms).
type DedupEntry = (watch::Receiver<Option<Outcome>>, i64);

/// Runs each request ID once: concurrent duplicates wait for the first, later duplicates get
/// its result while it is kept.
#[derive(Default)]
struct Dedup {
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

/// The peer server's handler: forwarded calls run on this host.
pub(crate) struct PeerCalls {
    core: Arc<HostCore>,
    dedup: Dedup,
}

impl PeerCalls {
    pub(crate) fn new(core: Arc<HostCore>) -> Self {
        PeerCalls {
            core,
            dedup: Dedup::default(),
        }
    }

    /// The result slot of a request ID, and the sender when this is its first arrival.
    fn slot(
        &self,
        request_id: &str,
    ) -> (
        watch::Receiver<Option<Outcome>>,
        Option<watch::Sender<Option<Outcome>>>,
    ) {
        let now = self.core.clock.now_ms();
        match self.dedup.table.lock() {
            Ok(mut table) => table.slot(request_id, now),
            Err(_) => {
                let (tx, rx) = watch::channel(None);
                (rx, Some(tx))
            }
        }
    }

    /// Run the request on this host. The caller's placement may be stale, so an actor that is
    /// not live here is activated only once the store confirms this host owns it.
    async fn run(&self, request: InvokeRequest) -> Outcome {
        let key = ActorKey::new(request.actor_type, request.actor_id);
        let options = InvokeOptions {
            active_only: request.active_only,
            read_only: request.read_only,
        };
        let args = Envelope::from_msgpack_bytes(request.data);
        match self
            .core
            .invoke_here(&key, &request.method, args, options, Ownership::Unconfirmed)
            .await
        {
            Ok(out) => out
                .into_msgpack()
                .map(|data| InvokeResponse { data })
                .map_err(|e| WireError::new(ErrorCode::Internal, e.to_string())),
            Err(e) => Err(error_to_wire(&e)),
        }
    }
}

#[async_trait::async_trait]
impl PeerHandler for PeerCalls {
    async fn invoke(
        &self,
        _caller: SpiffeId,
        request: InvokeRequest,
    ) -> Result<InvokeResponse, WireError> {
        let (mut rx, first) = self.slot(&request.request_id);
        if let Some(tx) = first {
            let _ = tx.send(Some(self.run(request).await));
        }
        match rx.wait_for(Option::is_some).await {
            Ok(outcome) => outcome
                .clone()
                .unwrap_or_else(|| Err(WireError::new(ErrorCode::Internal, "no outcome"))),
            Err(_) => Err(WireError::new(ErrorCode::Internal, "the call was dropped")),
        }
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
