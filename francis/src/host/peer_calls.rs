//! The owner's side of a call forwarded by another host: the peer server hands it here (after
//! its own admission checks: the target host, draining, the per-session limit) and it runs on
//! this host, in the stream's own task. Duplicates of a request (a caller retrying with the same
//! request ID) are suppressed: concurrent ones wait for the first, later ones get its result
//! while it is kept. A duplicate is the same calling host (its certificate's SPIFFE ID), request
//! ID and target (actor type, ID and method): a request ID seen from another host, or for
//! another target, is another call, so a replayed or guessed ID never returns someone else's
//! result. A request's deadline (`timeout_ms`) bounds how long this host works on it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::actor::service::InvokeOptions;
use crate::actor::service::Topology;
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
/// The longest a forwarded call's deadline lets it wait here (a day).
const MAX_OWNER_WAIT: Duration = Duration::from_secs(24 * 3600);

type Outcome = Result<InvokeResponse, WireError>;

/// A request's result slot (empty while it runs) and when it arrived (Unix ms).
type DedupEntry = (watch::Receiver<Option<Outcome>>, i64);

/// Runs each call once: concurrent duplicates wait for the first, later duplicates get its
/// result while it is kept.
#[derive(Default)]
struct Dedup {
    table: Mutex<DedupTable>,
}

/// What makes two requests the same call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CallId {
    /// The calling host's SPIFFE ID, from its certificate.
    caller: String,
    request_id: String,
    actor_type: String,
    actor_id: String,
    method: String,
}

impl CallId {
    fn of(caller: &SpiffeId, request: &InvokeRequest) -> Self {
        CallId {
            caller: caller.as_str().to_owned(),
            request_id: request.request_id.clone(),
            actor_type: request.actor_type.clone(),
            actor_id: request.actor_id.clone(),
            method: request.method.clone(),
        }
    }
}

/// The calls seen, with their arrival order, so expiring the oldest costs O(1) per call
/// however many are kept.
#[derive(Default)]
struct DedupTable {
    entries: HashMap<CallId, DedupEntry>,
    /// Calls, oldest arrival first; each is in `entries`.
    order: VecDeque<CallId>,
}

impl DedupTable {
    /// The slot of call `id` and, on its first arrival, the sender that fills it. Results
    /// older than [`DEDUP_KEEP_MS`], and the oldest results beyond [`DEDUP_MAX`], are dropped
    /// first; a request still running is never dropped (its duplicates must wait for it).
    fn slot(
        &mut self,
        id: &CallId,
        now_ms: i64,
    ) -> (
        watch::Receiver<Option<Outcome>>,
        Option<watch::Sender<Option<Outcome>>>,
    ) {
        if let Some((rx, _)) = self.entries.get(id) {
            return (rx.clone(), None);
        }
        // Each call at the front is looked at once per call at most: a finished one is
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
            if let Some(oldest) = self.order.pop_front() {
                if running {
                    self.order.push_back(oldest);
                } else {
                    self.entries.remove(&oldest);
                }
            }
        }
        let (tx, rx) = watch::channel(None);
        self.entries.insert(id.clone(), (rx.clone(), now_ms));
        self.order.push_back(id.clone());
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

    /// The result slot of a call, and the sender when this is its first arrival.
    fn slot(
        &self,
        id: &CallId,
    ) -> (
        watch::Receiver<Option<Outcome>>,
        Option<watch::Sender<Option<Outcome>>>,
    ) {
        let now = self.core.clock.now_ms();
        match self.dedup.table.lock() {
            Ok(mut table) => table.slot(id, now),
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
            ..InvokeOptions::default()
        };
        let args = Envelope::from_msgpack_bytes(request.data);
        let run =
            self.core
                .invoke_here(&key, &request.method, args, options, Ownership::Unconfirmed);
        // The caller stops waiting at its deadline: so does this host (a call still queued
        // then is not run; one already running finishes, unobserved).
        let result = match request.timeout_ms {
            Some(ms) => {
                let limit = Duration::from_millis(ms).min(MAX_OWNER_WAIT);
                match tokio::time::timeout(limit, run).await {
                    Ok(result) => result,
                    Err(_) => {
                        return Err(WireError::new(
                            ErrorCode::DeadlineExceeded,
                            format!("the call did not finish within its deadline ({limit:?})"),
                        ));
                    }
                }
            }
            None => run.await,
        };
        match result {
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
        caller: SpiffeId,
        request: InvokeRequest,
    ) -> Result<InvokeResponse, WireError> {
        let (mut rx, first) = self.slot(&CallId::of(&caller, &request));
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

    async fn admin(
        &self,
        caller: SpiffeId,
        action: crate::cluster::actions::HostOrder,
    ) -> Result<crate::net::wire::AdminResponse, WireError> {
        if !may_order(self.core.topology(), &caller) {
            return Err(WireError::new(
                ErrorCode::Unauthorized,
                format!(
                    "{caller} may not give this host orders: in the remote topology only the runtime relays operators' actions; in the local topology only hosts of the cluster do"
                ),
            ));
        }
        self.core
            .admin(action)
            .await
            .map_err(|e| WireError::new(ErrorCode::BadRequest, e.to_string()))
    }
}

/// Who relays operators' orders to a host: the runtime in the remote topology (a worker acts
/// only for itself there), any host of the cluster in the local one (hosts serve the actions
/// and relay them to each other).
fn may_order(topology: Topology, caller: &SpiffeId) -> bool {
    match topology {
        Topology::Remote => caller.path().starts_with(crate::net::pki::RUNTIME_PREFIX),
        Topology::Local => caller.host_id().is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_runtime_orders_a_worker_and_only_hosts_order_a_local_host() {
        let host = SpiffeId::host("h2").unwrap();
        let runtime = SpiffeId::runtime("rt").unwrap();
        assert!(may_order(Topology::Remote, &runtime));
        assert!(
            !may_order(Topology::Remote, &host),
            "a worker may not order another"
        );
        assert!(may_order(Topology::Local, &host));
        assert!(!may_order(Topology::Local, &runtime));
    }

    /// Call `request_id` of host `h1` to counter/alice.add.
    fn id(request_id: &str) -> CallId {
        call("h1", request_id, "alice")
    }

    fn call(caller: &str, request_id: &str, actor_id: &str) -> CallId {
        let caller = SpiffeId::host(caller).unwrap();
        let mut request = InvokeRequest::new("owner", "counter", actor_id, "add", Vec::new());
        request.request_id = request_id.to_owned();
        CallId::of(&caller, &request)
    }

    fn finish(tx: Option<watch::Sender<Option<Outcome>>>) {
        let tx = tx.expect("a first arrival gets the sender");
        tx.send(Some(Ok(InvokeResponse { data: vec![7] }))).unwrap();
    }

    #[test]
    fn a_duplicate_shares_the_first_arrival_while_it_runs_and_after() {
        let mut table = DedupTable::default();
        let (_rx, tx) = table.slot(&id("r1"), 0);
        let (waiting, again) = table.slot(&id("r1"), 10);
        assert!(again.is_none(), "a duplicate must not run the call again");
        finish(tx);
        let (done, again) = table.slot(&id("r1"), DEDUP_KEEP_MS - 1);
        assert!(again.is_none());
        assert!(done.borrow().is_some() && waiting.borrow().is_some());
    }

    #[test]
    fn a_replayed_request_id_for_another_actor_does_not_get_its_result() {
        let mut table = DedupTable::default();
        let (_rx, tx) = table.slot(&call("h1", "r1", "alice"), 0);
        finish(tx);
        let (rx, run) = table.slot(&call("h1", "r1", "bob"), 10);
        assert!(run.is_some(), "a call to another actor runs");
        assert!(rx.borrow().is_none(), "and does not get alice's result");
        let mut other_method = call("h1", "r1", "alice");
        other_method.method = "reset".into();
        assert!(table.slot(&other_method, 20).1.is_some());
        let mut other_type = call("h1", "r1", "alice");
        other_type.actor_type = "wallet".into();
        assert!(table.slot(&other_type, 30).1.is_some());
    }

    #[test]
    fn another_host_reusing_a_request_id_does_not_get_its_result() {
        let mut table = DedupTable::default();
        let (_rx, tx) = table.slot(&call("h1", "r1", "alice"), 0);
        finish(tx);
        let (rx, run) = table.slot(&call("h2", "r1", "alice"), 10);
        assert!(run.is_some(), "another host's call runs");
        assert!(rx.borrow().is_none(), "and does not get h1's result");
    }

    #[test]
    fn finished_results_expire_and_running_requests_are_kept() {
        let mut table = DedupTable::default();
        let (_a, running) = table.slot(&id("running"), 0);
        let (_b, finished) = table.slot(&id("finished"), 0);
        finish(finished);
        // Long after: the finished result is gone (its ID runs again), the running one is not.
        let (_c, tx) = table.slot(&id("other"), DEDUP_KEEP_MS + 1);
        assert!(tx.is_some());
        assert!(table.slot(&id("finished"), DEDUP_KEEP_MS + 2).1.is_some());
        assert!(table.slot(&id("running"), DEDUP_KEEP_MS + 3).1.is_none());
        drop(running);
    }

    #[test]
    fn at_most_dedup_max_finished_results_are_kept_oldest_dropped_first() {
        let mut table = DedupTable::default();
        for i in 0..DEDUP_MAX + 10 {
            let (_rx, tx) = table.slot(&id(&format!("r{i}")), 0);
            finish(tx);
        }
        assert_eq!(table.entries.len(), DEDUP_MAX);
        assert_eq!(table.order.len(), DEDUP_MAX);
        assert!(
            !table.entries.contains_key(&id("r9")),
            "the oldest are dropped"
        );
        assert!(
            table
                .entries
                .contains_key(&id(&format!("r{}", DEDUP_MAX + 9)))
        );
    }
}
