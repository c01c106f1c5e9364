//! Scaffolding the integration tests share: an actor that tells which host runs it, a local
//! host on a SQLite file, run until its stop sender fires, a runtime run the same way, and a
//! control API served on loopback.

// Each test binary compiles this module and uses part of it.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use std::net::SocketAddr;

use francis::host::{ActorOptions, HostBuilder};
use francis::http::ControlApi;
use francis::prelude::*;
use francis::runtime::Runtime;

/// Which host an activation runs on (the `name` of [`local`]).
pub struct HostName(pub String);

/// What [`Where`] refuses with.
#[derive(Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum WhereError {
    /// [`Where::refuse`] was called.
    #[error("refused: {0}")]
    Refused(String),
}

/// An actor that says where it runs and how often it was called there.
pub struct Where {
    host: String,
    calls: u64,
}

#[francis::actor]
impl Where {
    fn activate(ctx: &ActorContext) -> Self {
        let host = ctx
            .data::<HostName>()
            .map(|h| h.0.clone())
            .unwrap_or_default();
        Where { host, calls: 0 }
    }

    /// Which host runs this activation, and how many calls it has served.
    pub async fn whereabouts(&mut self) -> Result<(String, u64), WhereError> {
        self.calls += 1;
        Ok((self.host.clone(), self.calls))
    }

    /// Fail with `why`.
    pub async fn refuse(&self, why: String) -> Result<(), WhereError> {
        Err(WhereError::Refused(why))
    }

    /// Take `ms` milliseconds to answer.
    pub async fn nap(&self, ms: u64) -> Result<(), WhereError> {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(())
    }

    /// The length of what it was sent.
    pub async fn measure(&self, payload: Vec<u8>) -> Result<usize, WhereError> {
        Ok(payload.len())
    }

    /// An alarm that always fails, with `why`.
    #[alarm]
    pub async fn doomed(&mut self, why: String) -> Result<(), WhereError> {
        Err(WhereError::Refused(why))
    }
}

/// A started host: its service, the sender that stops it, and its run task.
pub type Running = (
    Service,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), Error>>,
);

/// Run a built host until its sender fires.
pub fn run(host: Host) -> Running {
    let service = host.service();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(host.run(async move {
        let _ = stopped.await;
    }));
    (service, stop, run)
}

/// A local host named `name` on the SQLite file `db` of the cluster of `psk`, with [`Where`]
/// registered (and no address yet: the caller picks one).
pub fn local(db: &Path, name: &str, psk: &str) -> HostBuilder {
    local_with(db, name, psk, ActorOptions::default())
}

/// [`local`], with [`Where`] registered with `options`.
pub fn local_with(db: &Path, name: &str, psk: &str, options: ActorOptions) -> HostBuilder {
    Host::local()
        .sqlite(db)
        .runtime_psk(psk)
        .data(HostName(name.to_owned()))
        .register_with::<Where>(options)
}

/// [`local`] on a free loopback port, built and run.
pub async fn start(db: &Path, name: &str, psk: &str) -> Running {
    let host = local(db, name, psk)
        .address(francis::testing::free_local_address())
        .build()
        .await
        .unwrap();
    run(host)
}

/// Run a built runtime until the returned sender fires; its task ends when it has stopped.
pub fn run_runtime(
    runtime: Runtime,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        runtime
            .run(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (stop, task)
}

/// Serve `service`'s control API, configured as `api`, on a free loopback port.
pub async fn serve_control(service: Service, api: ControlApi) -> SocketAddr {
    let listener = api.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(listener.serve(service, std::future::pending()));
    address
}
