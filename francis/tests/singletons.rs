//! Singleton actors: one instance at ID `singleton`, bootstrapped with its registration's data
//! before any call, once per activation; hosts starting together bootstrap it once; a failed
//! bootstrap is tried again; nobody can invoke the bootstrap from outside.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use francis::host::SINGLETON_ID;
use francis::prelude::*;
use francis::testing::TestHost;

/// What the singleton's bootstraps saw, and on which host they ran.
#[derive(Default)]
struct Probe {
    bootstraps: Mutex<Vec<String>>,
    /// Bootstraps to fail before one succeeds.
    fail_first: Mutex<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Config {
    region: String,
}

#[derive(Debug, Serialize, Deserialize, thiserror::Error)]
enum LeaderError {
    #[error("not ready yet")]
    NotReady,
}

struct Leader {
    ctx: ActorContext,
    region: Option<String>,
}

#[francis::actor]
impl Leader {
    fn activate(ctx: &ActorContext) -> Self {
        Leader {
            ctx: ctx.clone(),
            region: None,
        }
    }

    /// Runs first on every activation, with the registration's data.
    #[bootstrap]
    pub async fn bootstrap(&mut self, config: Config) -> Result<(), LeaderError> {
        let probe = self.ctx.data::<Arc<Probe>>().unwrap();
        {
            let mut fail = probe.fail_first.lock().unwrap();
            if *fail > 0 {
                *fail -= 1;
                return Err(LeaderError::NotReady);
            }
        }
        let host = self
            .ctx
            .data::<support::HostName>()
            .map(|h| h.0.clone())
            .unwrap_or_default();
        probe
            .bootstraps
            .lock()
            .unwrap()
            .push(format!("{} on {host}", config.region));
        self.region = Some(config.region);
        Ok(())
    }

    /// The region it was bootstrapped with: always set, since bootstrap runs first.
    pub async fn region(&self) -> Result<Option<String>, LeaderError> {
        Ok(self.region.clone())
    }
}

fn config(region: &str) -> Config {
    Config {
        region: region.into(),
    }
}

#[tokio::test]
async fn a_singleton_is_bootstrapped_before_its_first_call_and_once_per_activation() {
    let probe = Arc::new(Probe::default());
    let host = TestHost::builder()
        .data(probe.clone())
        .register_singleton::<Leader>(&config("eu"))
        .build()
        .await
        .unwrap();
    assert!(
        host.is_active::<Leader>(SINGLETON_ID),
        "built means bootstrapped"
    );
    let leader = host.actor::<Leader>(SINGLETON_ID);
    assert_eq!(leader.region().await.unwrap().as_deref(), Some("eu"));
    assert_eq!(probe.bootstraps.lock().unwrap().len(), 1);

    // A new activation bootstraps again, before the call that activated it.
    host.halt_all().await;
    assert_eq!(leader.region().await.unwrap().as_deref(), Some("eu"));
    assert_eq!(probe.bootstraps.lock().unwrap().len(), 2);

    // A bootstrap that fails is tried again ahead of the next call.
    host.halt_all().await;
    *probe.fail_first.lock().unwrap() = 1;
    assert_eq!(leader.region().await.unwrap().as_deref(), Some("eu"));
    assert_eq!(probe.bootstraps.lock().unwrap().len(), 3);
    assert_eq!(*probe.fail_first.lock().unwrap(), 0, "the first try failed");

    // The reserved bootstrap is no method a caller can name.
    let refused = host
        .service()
        .invoke(
            "leader",
            SINGLETON_ID,
            "francis/bootstrap",
            Envelope::empty(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(refused, francis::Error::InvalidName { .. }),
        "{refused}"
    );
    assert_eq!(probe.bootstraps.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_failed_bootstrap_is_tried_again() {
    let probe = Arc::new(Probe::default());
    *probe.fail_first.lock().unwrap() = 2;
    let host = TestHost::builder()
        .data(probe.clone())
        .register_singleton::<Leader>(&config("us"))
        .build()
        .await
        .unwrap();
    assert_eq!(
        probe.bootstraps.lock().unwrap().clone(),
        ["us on "],
        "the third try succeeds"
    );
    let leader = host.actor::<Leader>(SINGLETON_ID);
    assert_eq!(leader.region().await.unwrap().as_deref(), Some("us"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hosts_starting_at_once_bootstrap_the_singleton_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let probe = Arc::new(Probe::default());
    let build = |name: &'static str| {
        let probe = probe.clone();
        let db = db.clone();
        async move {
            let host = Host::local()
                .sqlite(&db)
                .runtime_psk("singleton test psk, at least thirty-two bytes")
                .address(francis::testing::free_local_address())
                .data(support::HostName(name.to_owned()))
                .data(probe)
                .register_singleton::<Leader>(&config(name))
                .build()
                .await
                .unwrap();
            support::run(host)
        }
    };
    let (a, b, c) = tokio::join!(build("a"), build("b"), build("c"));
    let mut bootstrapped = Vec::new();
    for _ in 0..100 {
        bootstrapped = probe.bootstraps.lock().unwrap().clone();
        if !bootstrapped.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every host has touched it by now; give late touches time to (not) bootstrap again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bootstrapped_now = probe.bootstraps.lock().unwrap().clone();
    assert_eq!(bootstrapped_now.len(), 1, "{bootstrapped_now:?}");
    assert_eq!(bootstrapped, bootstrapped_now);
    // It runs where it was bootstrapped, with that host's data, whoever calls it.
    let region = bootstrapped[0].split(' ').next().unwrap().to_owned();
    for (service, _, _) in [&a, &b, &c] {
        let leader = service.actor::<Leader>(SINGLETON_ID);
        assert_eq!(leader.region().await.unwrap(), Some(region.clone()));
    }
    for (_, stop, run) in [a, b, c] {
        stop.send(()).unwrap();
        run.await.unwrap().unwrap();
    }
}
