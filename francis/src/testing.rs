//! Unit-testing actors: [`TestHost`] is a real host, in process, on the memory store (or a
//! SQLite file) and a virtual clock. Tests advance the clock to fire alarms and deactivate idle
//! actors without sleeping:
//!
//! ```ignore
//! let host = TestHost::builder().register::<Counter>().build().await?;
//! let counter = host.actor::<Counter>("alice");
//! counter.alarm_tick(Tick::default()).after(Duration::from_secs(60)).set().await?;
//! host.advance(Duration::from_secs(60)).await?;   // the alarm has run when this returns
//! ```

#[cfg(feature = "sqlite")]
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::actor::dispatch::Actor;
use crate::actor::reference::ActorRef;
use crate::actor::service::Service;
use crate::clock::{Clock, ManualClock, duration_ms};
use crate::error::Error;
use crate::host::{ActorOptions, Host, HostBuilder};
use crate::model::{ActorKey, Store};
use crate::profile::Profile;

/// Health and lease deadlines so long that jumping the virtual clock never expires them.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A host for tests: memory store, virtual clock, nothing running in the background. It runs
/// the `dev` profile whatever `FRANCIS_PROFILE` says, without the profile's warning.
pub struct TestHost {
    host: Host,
    clock: ManualClock,
}

/// Builds a [`TestHost`].
#[must_use = "call `.build().await`"]
pub struct TestHostBuilder {
    builder: HostBuilder,
    clock: ManualClock,
    #[cfg(feature = "sqlite")]
    sqlite: Option<PathBuf>,
}

impl TestHost {
    /// Start building a test host. The virtual clock starts at the current real time.
    pub fn builder() -> TestHostBuilder {
        let clock = ManualClock::starting_now();
        let builder = Host::local()
            .address(format!("test-host-{}:1", uuid::Uuid::new_v4().simple()))
            .runtime_psk([0u8; crate::host::MIN_PSK_LEN])
            .health_check_deadline(FOREVER)
            .alarms_lease_duration(FOREVER)
            .shutdown_grace_period(Duration::from_secs(5))
            .clock(Arc::new(clock.clone()))
            .profile(Profile::Dev)
            .quiet_profile()
            .without_network();
        TestHostBuilder {
            builder,
            clock,
            #[cfg(feature = "sqlite")]
            sqlite: None,
        }
    }

    /// The service handle.
    pub fn service(&self) -> Service {
        self.host.service()
    }

    /// A typed reference to actor `id` of type `A`.
    pub fn actor<A: Actor>(&self, id: impl Into<String>) -> ActorRef<A> {
        self.host.service().actor(id)
    }

    /// The virtual clock.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// The host core, for the crate's own tests.
    #[cfg(test)]
    pub(crate) fn core_for_tests(&self) -> &std::sync::Arc<crate::host::core::HostCore> {
        self.host.core()
    }

    /// The virtual time now.
    pub fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::from_millisecond(self.clock.now_ms())
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }

    /// The store behind the host.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.host.core().store
    }

    /// Move the virtual clock forward by `by`. Every alarm due in that span runs, in due-time
    /// order, with the clock set to its due time (so a repeating alarm runs once per interval);
    /// then activations idle at the new time are deactivated. Returns how many alarm
    /// executions ran (retries count separately).
    pub async fn advance(&self, by: Duration) -> Result<usize, Error> {
        let target = self.clock.now_ms().saturating_add(duration_ms(by));
        let clock = self.clock.clone();
        let ran = self
            .host
            .core()
            .run_alarms_until(target, &move |ms| clock.set(ms))
            .await?;
        self.host.core().reap_idle().await;
        Ok(ran)
    }

    /// Run the alarms that are due now, without moving the clock.
    pub async fn run_due_alarms(&self) -> Result<usize, Error> {
        self.advance(Duration::ZERO).await
    }

    /// Whether actor `id` of type `A` is active.
    pub fn is_active<A: Actor>(&self, id: &str) -> bool {
        self.host.core().is_active(&ActorKey::new(A::NAME, id))
    }

    /// How many activations are live.
    pub fn active_actors(&self) -> usize {
        self.host.active_actors()
    }

    /// Halt every activation, as a host shutdown would (state stays in the store).
    pub async fn halt_all(&self) {
        let core = self.host.core();
        core.halt_all_local(core.timings.shutdown_grace_period)
            .await;
    }

    /// Shut the host down as `Host::run` does at the end: halt every activation and leave the
    /// cluster, so another host can take over the same store (e.g. to test a restart).
    pub async fn shutdown(self) -> Result<(), Error> {
        let core = self.host.core();
        core.begin_shutdown();
        core.halt_all_local(core.timings.shutdown_grace_period)
            .await;
        Ok(core.store.unregister_host(&core.host_id).await?)
    }
}

impl TestHostBuilder {
    /// Register actor type `A` with default options.
    pub fn register<A: Actor>(mut self) -> Self {
        self.builder = self.builder.register::<A>();
        self
    }

    /// Register actor type `A` with options.
    pub fn register_with<A: Actor>(mut self, options: ActorOptions) -> Self {
        self.builder = self.builder.register_with::<A>(options);
        self
    }

    /// Register actor type `A` as a singleton (see `HostBuilder::register_singleton`); it is
    /// bootstrapped when the host is built.
    pub fn register_singleton<A: Actor>(mut self, bootstrap_data: &impl serde::Serialize) -> Self {
        self.builder = self.builder.register_singleton::<A>(bootstrap_data);
        self
    }

    /// [`register_singleton`](Self::register_singleton) with options (see
    /// `HostBuilder::register_singleton_with`).
    pub fn register_singleton_with<A: Actor>(
        mut self,
        bootstrap_data: &impl serde::Serialize,
        options: ActorOptions,
    ) -> Self {
        self.builder = self
            .builder
            .register_singleton_with::<A>(bootstrap_data, options);
        self
    }

    /// Register a built-in actor (see `HostBuilder::builtin`).
    pub fn builtin(mut self, builtin: impl crate::builtin::BuiltIn) -> Self {
        self.builder = self.builder.builtin(builtin);
        self
    }

    /// Share a value with every actor (see `HostBuilder::data`).
    pub fn data<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.builder = self.builder.data(value);
        self
    }

    /// How long running turns may take to finish when halted before they are cancelled
    /// (default 5 s in tests).
    pub fn shutdown_grace_period(mut self, grace: Duration) -> Self {
        self.builder = self.builder.shutdown_grace_period(grace);
        self
    }

    /// Keep state in a SQLite file instead of memory (e.g. to test what survives a restart).
    #[cfg(feature = "sqlite")]
    pub fn sqlite(mut self, path: impl Into<PathBuf>) -> Self {
        self.sqlite = Some(path.into());
        self
    }

    /// Start the clock at this time instead of now.
    pub fn start_at(self, at: jiff::Timestamp) -> Self {
        self.clock.set(at.as_millisecond());
        self
    }

    /// Build the host.
    pub async fn build(self) -> Result<TestHost, Error> {
        #[cfg(feature = "sqlite")]
        let builder = match self.sqlite {
            Some(path) => self.builder.sqlite(path),
            None => self.builder.memory_store(),
        };
        #[cfg(not(feature = "sqlite"))]
        let builder = self.builder.memory_store();
        let host = builder.build().await?;
        crate::host::singletons::bootstrap_singletons(host.core().clone()).await;
        Ok(TestHost {
            host,
            clock: self.clock,
        })
    }
}

/// A port on 127.0.0.1 that is free right now for both UDP (QUIC peer and runtime servers) and
/// TCP (HTTP control servers), for tests and benchmarks that start servers. Another process may
/// take it before it is bound again, so bind it soon after asking.
pub fn free_port() -> u16 {
    for _ in 0..64 {
        let Ok(udp) = std::net::UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = udp.local_addr() else { continue };
        if std::net::TcpListener::bind(addr).is_ok() {
            return addr.port();
        }
    }
    // Every probe collided with a TCP listener: fall back to a UDP-only free port.
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// `127.0.0.1:<port>` with a port from [`free_port`].
pub fn free_local_address() -> String {
    format!("127.0.0.1:{}", free_port())
}
