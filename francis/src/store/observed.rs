//! A store seen from outside: every operation of the store a host or runtime opened is timed
//! into `francis_store_operation_duration_seconds{operation, outcome}` and runs in a
//! `store.operation` span (when traces are exported), whatever the backend.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tracing::Instrument;

use crate::model::{
    ActorKey, AlarmCompletion, AlarmLease, AlarmRecord, CleanupStats, ClusterIdentity,
    ClusterObservation, DeadLetter, DeadLetterQuery, FetchAlarms, HostId, HostInfo,
    HostRegistration, JobInfo, JobRecord, ListStatesOptions, LookupOptions, Placement, StateList,
    Store, StoreError, StoreOptions,
};
use crate::telemetry::metrics::metrics;

/// Wraps a store so its operations are measured.
pub(crate) struct Observed {
    inner: Arc<dyn Store>,
}

impl Observed {
    /// `inner`, measured.
    pub(crate) fn wrap(inner: Arc<dyn Store>) -> Arc<dyn Store> {
        Arc::new(Observed { inner })
    }
}

async fn observe<T>(
    operation: &'static str,
    work: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let span = tracing::debug_span!("store.operation", "francis.store.operation" = operation);
    let started = Instant::now();
    let result = work.instrument(span).await;
    record(operation, result.is_ok(), started.elapsed());
    result
}

fn record(operation: &'static str, ok: bool, elapsed: Duration) {
    let outcome = if ok { "ok" } else { "error" };
    metrics()
        .store_operations
        .with(&[operation, outcome])
        .observe(elapsed);
}

/// The delegating methods: each one timed under its own name.
macro_rules! observed {
    ($( $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; )*) => {
        #[async_trait]
        impl Store for Observed {
            fn options(&self) -> &StoreOptions {
                self.inner.options()
            }

            // The operations plane's records are rare admin writes: not timed.
            fn operations(&self) -> Option<&dyn crate::model::OperationsStore> {
                self.inner.operations()
            }

            $(
                async fn $name(&self, $($arg: $ty),*) -> Result<$ret, StoreError> {
                    observe(stringify!($name), self.inner.$name($($arg),*)).await
                }
            )*
        }
    };
}

observed! {
    register_host(registration: &HostRegistration) -> HostId;
    reattach_host(host_id: &str, registration: &HostRegistration) -> bool;
    heartbeat(host_id: &str) -> ();
    unregister_host(host_id: &str) -> ();
    list_hosts() -> Vec<HostInfo>;
    lookup_actor(key: &ActorKey, options: &LookupOptions) -> Placement;
    remove_actor(key: &ActorKey, host_id: &str) -> bool;
    get_state(key: &ActorKey) -> Option<Vec<u8>>;
    set_state(key: &ActorKey, data: &[u8], ttl: Option<Duration>) -> ();
    delete_state(key: &ActorKey) -> bool;
    list_states(actor_type: &str, options: &ListStatesOptions) -> StateList;
    set_alarm(key: &ActorKey, name: &str, alarm: &AlarmRecord) -> ();
    get_alarm(key: &ActorKey, name: &str) -> Option<AlarmRecord>;
    delete_alarm(key: &ActorKey, name: &str) -> bool;
    fetch_and_lease_alarms(request: &FetchAlarms) -> Vec<AlarmLease>;
    get_leased_alarm(lease: &AlarmLease) -> Option<AlarmRecord>;
    complete_leased_alarm(
        lease: &AlarmLease,
        completion: &AlarmCompletion,
        lease_duration: Duration
    ) -> Option<AlarmLease>;
    release_alarm_lease(lease: &AlarmLease) -> bool;
    renew_alarm_leases(host_id: &str, lease_duration: Duration) -> Vec<AlarmLease>;
    claim_cluster_identity(fingerprints: &[String]) -> ClusterIdentity;
    observe_cluster() -> ClusterObservation;
    record_dead_letter(lease: &AlarmLease, attempts: u32, error: &str) -> bool;
    dispatch_job(key: &ActorKey, job: &JobRecord) -> String;
    get_job(job_id: &str) -> Option<JobInfo>;
    list_jobs(key: &ActorKey) -> Vec<JobInfo>;
    cancel_job(key: &ActorKey, job_id: &str) -> bool;
    list_dead_jobs(query: &DeadLetterQuery) -> Vec<DeadLetter>;
    get_dead_job(id: &str) -> Option<DeadLetter>;
    delete_dead_job(id: &str) -> bool;
    retry_dead_job(id: &str) -> Option<String>;
    purge_dead_jobs(before_ms: i64) -> u64;
    cleanup() -> CleanupStats;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::store::memory::MemoryStore;

    #[tokio::test]
    async fn each_operation_is_timed_under_its_name_and_outcome() {
        let options = StoreOptions {
            clock: Arc::new(SystemClock),
            health_check_deadline: Duration::from_secs(20),
        };
        let store = Observed::wrap(Arc::new(MemoryStore::new(options)));
        let before = |op: &'static str, outcome: &'static str| {
            metrics().store_operations.with(&[op, outcome]).count()
        };
        let (hosts_before, heartbeat_errors_before) =
            (before("list_hosts", "ok"), before("heartbeat", "error"));
        store.list_hosts().await.unwrap();
        store.heartbeat("no-such-host").await.unwrap_err();
        // Other tests in this process may add to the same series meanwhile.
        assert!(before("list_hosts", "ok") > hosts_before);
        assert!(before("heartbeat", "error") > heartbeat_errors_before);
    }
}
