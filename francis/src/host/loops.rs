//! A running host's background loops: heartbeats (and what to do when the registration is
//! lost), idle deactivation and store cleanup; and the shutdown signal that ends
//! [`super::Host::run`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::core::HostCore;
use crate::clock::duration_ms;
use crate::error::Error;
use crate::model::StoreError;
use crate::net::runtime::client::RuntimeLink;

/// Heartbeat until the registration is lost for good; returns the reason. Beats every quarter
/// of the deadline. Once three quarters of the deadline pass without a successful beat, the
/// host stops serving its actors before any other host may take them over: a local host stops
/// altogether; a remote host drops its activations and keeps reconnecting to the runtime, and
/// drops them again whenever it had to register anew.
pub(super) async fn heartbeat_loop(core: Arc<HostCore>, link: Option<RuntimeLink>) -> Error {
    let deadline = duration_ms(core.timings.health_check_deadline);
    let every = (deadline / 4).max(1);
    let mut last_ok = core.clock.now_ms();
    let mut lost = link.as_ref().map(RuntimeLink::registrations_lost);
    let mut failures = link.as_ref().map(RuntimeLink::failures);
    loop {
        tokio::select! {
            _ = core.clock.sleep_until(core.clock.now_ms().saturating_add(every)) => {}
            Some(()) = changed(&mut lost) => {
                core.halt_all_local(Duration::ZERO).await;
                continue;
            }
            Some(reason) = failed(&mut failures) => {
                core.halt_all_local(Duration::ZERO).await;
                return Error::Bootstrap(reason);
            }
        }
        let attempt = Duration::from_millis(every.unsigned_abs());
        let beat = tokio::time::timeout(attempt, core.store.heartbeat(&core.host_id))
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "heartbeat took longer than {attempt:?}"
                )))
            });
        match (beat, &link) {
            (Ok(()), _) => last_ok = core.clock.now_ms(),
            (Err(e @ StoreError::HostUnregistered { .. }), None) => {
                tracing::error!(error = %e, "host lost its registration; stopping");
                return e.into();
            }
            (Err(StoreError::HostUnregistered { .. }), Some(link)) => {
                tracing::warn!(
                    "the runtime says this host's registration expired; dropping its activations and registering again"
                );
                core.halt_all_local(Duration::ZERO).await;
                link.reconnect();
            }
            (Err(e), link) => {
                let silent = core.clock.now_ms() - last_ok;
                tracing::warn!(error = %e, silent_ms = silent, "heartbeat failed");
                if silent >= deadline * 3 / 4 {
                    if link.is_none() {
                        tracing::error!(
                            "heartbeats failing for too long; stopping before the cluster declares this host dead"
                        );
                        return e.into();
                    }
                    if core.active_count() > 0 {
                        tracing::warn!(
                            "cannot reach the runtime for too long; dropping activations before the cluster declares this host dead"
                        );
                        core.halt_all_local(Duration::ZERO).await;
                    }
                }
            }
        }
    }
}

/// Completes when the watched counter moved (never, without a watch).
async fn changed(watch: &mut Option<watch::Receiver<u64>>) -> Option<()> {
    match watch {
        Some(rx) => rx.changed().await.ok(),
        None => std::future::pending().await,
    }
}

/// Completes with the reason once the link failed for good (never, without a link).
async fn failed(watch: &mut Option<watch::Receiver<Option<String>>>) -> Option<String> {
    match watch {
        Some(rx) => rx
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|reason| reason.clone()),
        None => std::future::pending().await,
    }
}

/// Periodically deactivate idle activations.
pub(super) async fn idle_loop(core: Arc<HostCore>, mut stop: watch::Receiver<bool>) {
    let every = duration_ms(core.timings.idle_scan_interval);
    loop {
        tokio::select! {
            _ = core.clock.sleep_until(core.clock.now_ms().saturating_add(every)) => { core.reap_idle().await; }
            _ = stopped(&mut stop) => return,
        }
    }
}

/// Periodically delete expired hosts and state, and operations records past their retention.
pub(super) async fn cleanup_loop(core: Arc<HostCore>, mut stop: watch::Receiver<bool>) {
    let every = duration_ms(core.timings.cleanup_interval);
    loop {
        tokio::select! {
            _ = core.clock.sleep_until(core.clock.now_ms().saturating_add(every)) => {
                match core.store.cleanup().await {
                    Ok(stats) => tracing::debug!(hosts = stats.hosts, states = stats.states, "cleanup"),
                    Err(e) => tracing::warn!(error = %e, "cleanup failed"),
                }
                crate::model::operations::prune_operations(&*core.store, core.clock.now_ms()).await;
            }
            _ = stopped(&mut stop) => return,
        }
    }
}

/// Completes once `stop` turns true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

/// Completes on Ctrl-C, or on SIGTERM on Unix: pass it to [`Host::run`](super::Host::run) (or an HTTP server's
/// graceful shutdown) to stop cleanly when the process is asked to.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
