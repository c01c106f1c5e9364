//! Behaviour of a single host as users rely on it: typed and untyped calls, the turn lock,
//! activation lifecycle (idle deactivation, halts, active-only calls), durable state and alarms,
//! all driven through `francis::testing` on a virtual clock (and a real host for `run`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use francis::actor::{AlarmSpec, InvokeOptions};
use francis::prelude::*;
use francis::testing::TestHost;
use tokio::sync::{Barrier, Semaphore};

/// What the test actor reports back to the test.
struct Probe {
    log: Mutex<Vec<String>>,
    in_turn: AtomicBool,
    overlaps: AtomicUsize,
    deactivations: AtomicUsize,
    alarm_runs: AtomicUsize,
    barrier: Barrier,
    gate: Semaphore,
    t0_ms: i64,
}

impl Probe {
    fn new(t0_ms: i64) -> Self {
        Probe {
            log: Mutex::new(Vec::new()),
            in_turn: AtomicBool::new(false),
            overlaps: AtomicUsize::new(0),
            deactivations: AtomicUsize::new(0),
            alarm_runs: AtomicUsize::new(0),
            barrier: Barrier::new(2),
            gate: Semaphore::new(0),
            t0_ms,
        }
    }
    fn push(&self, entry: String) {
        self.log.lock().unwrap().push(entry);
    }
    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Count {
    value: i64,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
enum TestError {
    #[error("negative amount {0}")]
    Negative(i64),
    #[error("planned failure")]
    Planned,
    #[error("framework: {0}")]
    Framework(String),
}

impl From<francis::Error> for TestError {
    fn from(e: francis::Error) -> Self {
        TestError::Framework(e.to_string())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Note {
    text: String,
    fail_times: usize,
}

struct Counter {
    ctx: ActorContext,
    state: State<Count>,
    probe: Arc<Probe>,
}

#[francis::actor]
impl Counter {
    fn activate(ctx: &ActorContext) -> Self {
        let probe = ctx
            .data::<Arc<Probe>>()
            .map(|p| (*p).clone())
            .unwrap_or_else(|| Arc::new(Probe::new(0)));
        Counter {
            ctx: ctx.clone(),
            state: ctx.state(),
            probe,
        }
    }

    /// Read-modify-write with a suspension in the middle: overlapping turns would lose updates.
    pub async fn add(&mut self, by: i64) -> Result<i64, TestError> {
        if by < 0 {
            return Err(TestError::Negative(by));
        }
        if self.probe.in_turn.swap(true, Ordering::SeqCst) {
            self.probe.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        let value = self.state.get().await?.value;
        tokio::task::yield_now().await;
        self.state.set(Count { value: value + by }).await?;
        self.probe.in_turn.store(false, Ordering::SeqCst);
        Ok(value + by)
    }

    pub async fn get(&self) -> Result<i64, TestError> {
        Ok(self.state.get().await?.value)
    }

    /// Completes only when a second shared turn meets it at the barrier.
    pub async fn meet(&self) -> Result<(), TestError> {
        self.probe.barrier.wait().await;
        Ok(())
    }

    /// A shared turn that holds until the test opens the gate.
    pub async fn hold(&self, tag: String) -> Result<(), TestError> {
        self.probe.push(format!("start {tag}"));
        self.probe
            .gate
            .acquire()
            .await
            .map_err(|_| TestError::Planned)?
            .forget();
        self.probe.push(format!("end {tag}"));
        Ok(())
    }

    pub async fn write(&mut self, tag: String) -> Result<(), TestError> {
        self.probe.push(tag);
        Ok(())
    }

    pub async fn read(&self, tag: String) -> Result<(), TestError> {
        self.probe.push(tag);
        Ok(())
    }

    /// Waits for the activation to start halting, or a minute.
    pub async fn wait_for_halt(&self) -> Result<String, TestError> {
        tokio::select! {
            _ = self.ctx.halting() => Ok("halting".to_owned()),
            _ = tokio::time::sleep(Duration::from_secs(60)) => Ok("timed out".to_owned()),
        }
    }

    /// Ignores halting.
    pub async fn stubborn(&mut self) -> Result<(), TestError> {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(())
    }

    pub async fn boom(&mut self) -> Result<(), TestError> {
        panic!("boom")
    }

    pub async fn list_all(
        &self,
        after: Option<String>,
    ) -> Result<(Vec<(String, i64)>, bool), TestError> {
        let options = francis::store::ListStatesOptions {
            after,
            limit: 2,
            ..Default::default()
        };
        let page = self.state.list(&options).await?;
        Ok((
            page.entries
                .into_iter()
                .map(|(id, c)| (id, c.value))
                .collect(),
            page.has_more,
        ))
    }

    pub async fn put_with_ttl(&mut self, value: i64) -> Result<(), TestError> {
        self.state
            .set_with_ttl(Count { value }, Duration::from_secs(30))
            .await?;
        Ok(())
    }

    #[alarm]
    pub async fn remind(&mut self, note: Note) -> Result<(), TestError> {
        let at = self.ctx.now().as_millisecond() - self.probe.t0_ms;
        self.probe.push(format!("{} @{at}", note.text));
        let run = self.probe.alarm_runs.fetch_add(1, Ordering::SeqCst);
        if run < note.fail_times {
            Err(TestError::Planned)
        } else {
            Ok(())
        }
    }

    async fn deactivate(&mut self) {
        self.probe.deactivations.fetch_add(1, Ordering::SeqCst);
    }
}

const T0: i64 = 1_800_000_000_000;

async fn host_with(options: ActorOptions) -> (TestHost, Arc<Probe>) {
    let probe = Arc::new(Probe::new(T0));
    let host = TestHost::builder()
        .start_at(jiff::Timestamp::from_millisecond(T0).unwrap())
        .data(probe.clone())
        .register_with::<Counter>(options)
        .shutdown_grace_period(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    (host, probe)
}

async fn host() -> (TestHost, Arc<Probe>) {
    host_with(ActorOptions::default()).await
}

fn note(text: &str, fail_times: usize) -> Note {
    Note {
        text: text.to_owned(),
        fail_times,
    }
}

#[tokio::test]
async fn typed_calls_keep_state_and_errors_keep_their_type() {
    let (host, _) = host().await;
    let alice = host.actor::<Counter>("alice");
    assert_eq!(alice.add(5).await.unwrap(), 5);
    assert_eq!(alice.add(2).await.unwrap(), 7);
    assert_eq!(alice.get().await.unwrap(), 7);
    assert_eq!(host.actor::<Counter>("bob").get().await.unwrap(), 0);
    match alice.add(-1).await {
        Err(CallError::Actor(TestError::Negative(-1))) => {}
        other => panic!("expected the actor's own error, got {other:?}"),
    }
    assert_eq!(
        alice.get().await.unwrap(),
        7,
        "a failed call changes nothing"
    );
}

#[tokio::test]
async fn untyped_calls_speak_json_and_explain_mistakes() {
    let (host, _) = host().await;
    let service = host.service();
    let out = service
        .invoke(
            "counter",
            "u",
            "add",
            Envelope::from_json_bytes(b"5".to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(out.to_json().unwrap(), serde_json::json!(5));

    let err = service
        .invoke("nope", "u", "add", Envelope::empty())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownActorType { .. }), "{err}");
    let err = service
        .invoke("counter", "u", "nope", Envelope::empty())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("add") && err.to_string().contains("get"),
        "lists the methods: {err}"
    );
    let err = service
        .invoke(
            "counter",
            "u",
            "add",
            Envelope::from_json_bytes(b"\"x\"".to_vec()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BadArguments { .. }), "{err}");
    let err = service
        .invoke("counter", "u", "remind", Envelope::empty())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotInvokable { .. }), "{err}");
    let err = service
        .invoke("counter", "a/b", "get", Envelope::empty())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidName { .. }), "{err}");
    let read_only = InvokeOptions {
        read_only: true,
        ..Default::default()
    };
    let err = service
        .invoke_with(
            "counter",
            "u",
            "add",
            Envelope::from_json_bytes(b"1".to_vec()),
            read_only,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotReadOnly { .. }), "{err}");
    let out = service
        .invoke_with("counter", "u", "get", Envelope::empty(), read_only)
        .await
        .unwrap();
    assert_eq!(out.to_json().unwrap(), serde_json::json!(5));

    match service
        .invoke(
            "counter",
            "u",
            "add",
            Envelope::from_json_bytes(b"-3".to_vec()),
        )
        .await
    {
        Err(Error::Actor(failure)) => {
            assert_eq!(
                failure.payload.to_json().unwrap(),
                serde_json::json!({"Negative": -3})
            );
            assert_eq!(failure.message, "negative amount -3");
        }
        other => panic!("expected an actor error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_turns_never_overlap() {
    let (host, probe) = host().await;
    let actor = host.actor::<Counter>("busy");
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let actor = actor.clone();
            tokio::spawn(async move { actor.add(1).await.unwrap() })
        })
        .collect();
    for call in calls {
        call.await.unwrap();
    }
    assert_eq!(actor.get().await.unwrap(), 50, "no update was lost");
    assert_eq!(probe.overlaps.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_turns_run_together() {
    let (host, _) = host().await;
    let actor = host.actor::<Counter>("readers");
    let other = actor.clone();
    let both = async { tokio::try_join!(actor.meet(), other.meet()) };
    tokio::time::timeout(Duration::from_secs(10), both)
        .await
        .expect("two shared turns must be able to run at the same time")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_arriving_during_a_long_read_runs_at_once() {
    let (host, probe) = host().await;
    let actor = host.actor::<Counter>("overlap");
    let long_read = {
        let a = actor.clone();
        tokio::spawn(async move { a.hold("A".into()).await })
    };
    while !probe.log().contains(&"start A".to_owned()) {
        tokio::task::yield_now().await;
    }
    tokio::time::timeout(Duration::from_secs(10), actor.read("B".into()))
        .await
        .expect("a read must not wait for another read when no write is queued")
        .unwrap();
    probe.gate.add_permits(1);
    long_read.await.unwrap().unwrap();
    assert_eq!(probe.log(), vec!["start A", "B", "end A"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_write_holds_back_later_reads() {
    let (host, probe) = host().await;
    let actor = host.actor::<Counter>("fifo");
    let reader = {
        let a = actor.clone();
        tokio::spawn(async move { a.hold("A".into()).await })
    };
    while !probe.log().contains(&"start A".to_owned()) {
        tokio::task::yield_now().await;
    }
    let writer = {
        let a = actor.clone();
        tokio::spawn(async move { a.write("W".into()).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let late_reader = {
        let a = actor.clone();
        tokio::spawn(async move { a.read("B".into()).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        probe.log(),
        vec!["start A"],
        "the writer waits for the reader, and the late reader waits for the writer"
    );
    probe.gate.add_permits(1);
    for task in [reader, writer, late_reader] {
        task.await.unwrap().unwrap();
    }
    assert_eq!(probe.log(), vec!["start A", "end A", "W", "B"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_calls_to_one_actor_is_refused_beyond_its_mailbox_bound() {
    let (host, probe) = host_with(ActorOptions::default().max_queued_calls(3)).await;
    let actor = host.actor::<Counter>("flooded");
    let held: Vec<_> = (0..3)
        .map(|i| {
            let a = actor.clone();
            tokio::spawn(async move { a.hold(format!("{i}")).await })
        })
        .collect();
    while probe.log().len() < 3 {
        tokio::task::yield_now().await;
    }
    // The activation holds three calls: a fourth is refused at once, without queueing.
    let refused = host
        .service()
        .invoke(
            "counter",
            "flooded",
            "read",
            Envelope::from_json_bytes(br#""late""#.to_vec()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(refused, francis::Error::Overloaded { .. }),
        "{refused}"
    );
    assert!(
        refused.to_string().contains("max_queued_calls"),
        "{refused}"
    );
    // Another actor of the type is unaffected.
    host.actor::<Counter>("calm")
        .read("ok".into())
        .await
        .unwrap();
    probe.gate.add_permits(3);
    for task in held {
        task.await.unwrap().unwrap();
    }
    // Once the calls are done, the actor takes calls again.
    actor.read("after".into()).await.unwrap();
}

#[tokio::test]
async fn idle_actors_deactivate_and_come_back_with_their_state() {
    let (host, probe) =
        host_with(ActorOptions::default().idle_timeout(Duration::from_secs(10))).await;
    let actor = host.actor::<Counter>("sleepy");
    actor.add(3).await.unwrap();
    host.advance(Duration::from_secs(9)).await.unwrap();
    assert!(host.is_active::<Counter>("sleepy"));
    actor.get().await.unwrap();
    host.advance(Duration::from_secs(9)).await.unwrap();
    assert!(
        host.is_active::<Counter>("sleepy"),
        "each call pushes the idle deadline back"
    );
    host.advance(Duration::from_secs(2)).await.unwrap();
    assert!(!host.is_active::<Counter>("sleepy"));
    assert_eq!(
        probe.deactivations.load(Ordering::SeqCst),
        1,
        "the deactivate hook ran once"
    );
    assert_eq!(actor.get().await.unwrap(), 3);
    assert!(host.is_active::<Counter>("sleepy"));
}

#[tokio::test]
async fn never_idle_actors_stay_active() {
    let (host, _) = host_with(ActorOptions::default().never_idle()).await;
    host.actor::<Counter>("forever").add(1).await.unwrap();
    host.advance(Duration::from_secs(24 * 3600)).await.unwrap();
    assert!(host.is_active::<Counter>("forever"));
}

#[tokio::test]
async fn halting_runs_the_hook_and_the_next_call_reactivates() {
    let (host, probe) = host().await;
    let service = host.service();
    let actor = host.actor::<Counter>("h");
    actor.add(4).await.unwrap();
    service.halt("counter", "h").await.unwrap();
    assert!(!host.is_active::<Counter>("h"));
    assert_eq!(probe.deactivations.load(Ordering::SeqCst), 1);
    assert!(matches!(
        service.halt("counter", "h").await,
        Err(Error::NotHosted { .. })
    ));
    assert_eq!(actor.get().await.unwrap(), 4);

    host.actor::<Counter>("h2").add(1).await.unwrap();
    service.halt_all().await.unwrap();
    assert_eq!(host.active_actors(), 0);
    assert_eq!(probe.deactivations.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halt_signals_the_running_turn_and_cancels_it_after_the_grace_period() {
    let (host, _) = host().await;
    let actor = host.actor::<Counter>("slow");
    let waiting = {
        let a = actor.clone();
        tokio::spawn(async move { a.wait_for_halt().await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    tokio::time::timeout(
        Duration::from_secs(5),
        host.service().halt("counter", "slow"),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(waiting.await.unwrap().unwrap(), "halting");

    let stubborn = {
        let a = actor.clone();
        tokio::spawn(async move { a.stubborn().await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    tokio::time::timeout(
        Duration::from_secs(5),
        host.service().halt("counter", "slow"),
    )
    .await
    .expect("grace period is 300 ms")
    .unwrap();
    match stubborn.await.unwrap() {
        Err(CallError::Francis(Error::Halted { .. })) => {}
        other => panic!("expected the turn to be cancelled, got {other:?}"),
    }
}

#[tokio::test]
async fn active_only_calls_never_activate() {
    let (host, _) = host().await;
    let actor = host.actor::<Counter>("lazy");
    match actor.active_only().get().await {
        Err(CallError::Francis(Error::NotActive { .. })) => {}
        other => panic!("expected NotActive, got {other:?}"),
    }
    assert!(!host.is_active::<Counter>("lazy"));
    actor.add(1).await.unwrap();
    assert_eq!(actor.active_only().get().await.unwrap(), 1);
}

#[tokio::test]
async fn a_panicking_method_is_an_error_not_a_crash() {
    let (host, _) = host().await;
    let actor = host.actor::<Counter>("p");
    actor.add(1).await.unwrap();
    assert!(matches!(
        actor.boom().await,
        Err(CallError::Francis(Error::Panicked { .. }))
    ));
    assert_eq!(actor.add(1).await.unwrap(), 2, "the actor stays usable");
}

#[tokio::test]
async fn concurrency_limit_caps_activations_per_host() {
    let (host, _) = host_with(ActorOptions::default().concurrency_limit(2)).await;
    host.actor::<Counter>("a").add(1).await.unwrap();
    host.actor::<Counter>("b").add(1).await.unwrap();
    assert!(matches!(
        host.actor::<Counter>("c").get().await,
        Err(CallError::Francis(Error::NoHost { .. }))
    ));
    host.service().halt("counter", "a").await.unwrap();
    assert_eq!(host.actor::<Counter>("c").get().await.unwrap(), 0);
}

#[tokio::test]
async fn actors_can_page_through_the_states_of_their_type() {
    let (host, _) = host().await;
    for (id, n) in [("c", 3), ("a", 1), ("b", 2)] {
        host.actor::<Counter>(id).add(n).await.unwrap();
    }
    let lister = host.actor::<Counter>("a");
    let (page, more) = lister.list_all(None).await.unwrap();
    assert_eq!(
        (page, more),
        (vec![("a".to_owned(), 1), ("b".to_owned(), 2)], true)
    );
    let (page, more) = lister.list_all(Some("b".into())).await.unwrap();
    assert_eq!((page, more), (vec![("c".to_owned(), 3)], false));
}

#[tokio::test]
async fn state_with_ttl_expires() {
    let (host, _) = host().await;
    let actor = host.actor::<Counter>("ttl");
    actor.put_with_ttl(9).await.unwrap();
    host.advance(Duration::from_secs(29)).await.unwrap();
    host.halt_all().await;
    assert_eq!(actor.get().await.unwrap(), 9);
    host.advance(Duration::from_secs(2)).await.unwrap();
    host.halt_all().await;
    assert_eq!(
        actor.get().await.unwrap(),
        0,
        "expired state reads as missing"
    );
}

#[tokio::test]
async fn a_one_shot_alarm_fires_once_at_its_due_time_and_is_deleted() {
    let (host, probe) = host().await;
    let actor = host.actor::<Counter>("once");
    actor
        .alarm_remind(note("hello", 0))
        .after(Duration::from_secs(60))
        .set()
        .await
        .unwrap();
    assert!(actor.get_alarm("remind").await.unwrap().is_some());
    assert_eq!(host.advance(Duration::from_secs(59)).await.unwrap(), 0);
    assert_eq!(host.advance(Duration::from_secs(1)).await.unwrap(), 1);
    assert_eq!(probe.log(), vec!["hello @60000"]);
    assert!(actor.get_alarm("remind").await.unwrap().is_none());
    host.advance(Duration::from_secs(3600)).await.unwrap();
    assert_eq!(probe.log().len(), 1);
}

#[tokio::test]
async fn repeating_alarms_keep_their_schedule_until_the_ttl() {
    let (host, probe) = host().await;
    let actor = host.actor::<Counter>("rep");
    actor
        .alarm_remind(note("tick", 0))
        .after(Duration::from_secs(10))
        .every(Duration::from_secs(60))
        .ttl(Duration::from_secs(120))
        .set()
        .await
        .unwrap();
    host.advance(Duration::from_secs(1000)).await.unwrap();
    assert_eq!(
        probe.log(),
        vec!["tick @10000", "tick @70000", "tick @130000"]
    );
    assert!(
        actor.get_alarm("remind").await.unwrap().is_none(),
        "removed once the TTL passed"
    );
}

#[tokio::test]
async fn alarms_are_named_and_replaced_by_name() {
    let (host, probe) = host().await;
    let actor = host.actor::<Counter>("names");
    actor
        .alarm_remind(note("a", 0))
        .after(Duration::from_secs(5))
        .name("first")
        .set()
        .await
        .unwrap();
    actor
        .alarm_remind(note("b", 0))
        .after(Duration::from_secs(5))
        .name("second")
        .set()
        .await
        .unwrap();
    actor
        .alarm_remind(note("b2", 0))
        .after(Duration::from_secs(7))
        .name("second")
        .set()
        .await
        .unwrap();
    assert!(actor.delete_alarm("first").await.unwrap());
    host.advance(Duration::from_secs(10)).await.unwrap();
    assert_eq!(probe.log(), vec!["b2 @7000"]);
}

#[tokio::test]
async fn a_failing_alarm_runs_exactly_max_attempts_times_with_growing_backoff() {
    let options = ActorOptions::default()
        .alarm_max_attempts(3)
        .alarm_retry_delay(Duration::from_secs(10));
    let (host, probe) = host_with(options).await;
    let actor = host.actor::<Counter>("flaky");
    actor
        .alarm_remind(note("try", usize::MAX))
        .set()
        .await
        .unwrap();
    host.advance(Duration::from_secs(3600)).await.unwrap();
    let times: Vec<i64> = probe
        .log()
        .iter()
        .map(|l| l.trim_start_matches("try @").parse().unwrap())
        .collect();
    assert_eq!(times.len(), 3, "exactly max_attempts executions: {times:?}");
    let (first, second) = (times[1] - times[0], times[2] - times[1]);
    assert!(
        (9_000..=11_000).contains(&first),
        "first retry after ~10 s: {times:?}"
    );
    assert!(
        (13_500..=16_500).contains(&second),
        "second retry after ~15 s: {times:?}"
    );
    assert!(
        actor.get_alarm("remind").await.unwrap().is_none(),
        "dropped after the last attempt"
    );
}

#[tokio::test]
async fn a_retried_alarm_that_succeeds_is_done() {
    let (host, probe) = host().await;
    let actor = host.actor::<Counter>("retry");
    actor.alarm_remind(note("r", 1)).set().await.unwrap();
    host.advance(Duration::from_secs(60)).await.unwrap();
    assert_eq!(probe.alarm_runs.load(Ordering::SeqCst), 2);
    assert!(actor.get_alarm("remind").await.unwrap().is_none());
}

#[tokio::test]
async fn an_untyped_alarm_without_a_handler_uses_the_only_one() {
    let (host, probe) = host().await;
    let mut spec = AlarmSpec::new("unused");
    spec.handler = None;
    spec.data =
        Some(Envelope::json(&serde_json::json!({"text": "any name", "fail_times": 0})).unwrap());
    host.service()
        .set_alarm("counter", "x", "alarm1", spec)
        .await
        .unwrap();
    host.run_due_alarms().await.unwrap();
    assert_eq!(probe.log(), vec!["any name @0"]);
}

#[tokio::test]
async fn alarms_for_unknown_handlers_are_refused() {
    let (host, _) = host().await;
    let err = host
        .service()
        .set_alarm("counter", "x", "a", AlarmSpec::new("add"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("remind"),
        "names the real handlers: {err}"
    );
}

#[tokio::test]
async fn state_and_alarms_survive_a_restart_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.db");
    let start = jiff::Timestamp::from_millisecond(T0).unwrap();
    let first = TestHost::builder()
        .start_at(start)
        .sqlite(&path)
        .register::<Counter>()
        .build()
        .await
        .unwrap();
    first.actor::<Counter>("d").add(11).await.unwrap();
    first
        .actor::<Counter>("d")
        .alarm_remind(note("later", 0))
        .after(Duration::from_secs(30))
        .set()
        .await
        .unwrap();
    first.shutdown().await.unwrap();

    let probe = Arc::new(Probe::new(T0));
    let second = TestHost::builder()
        .start_at(start)
        .sqlite(&path)
        .data(probe.clone())
        .register::<Counter>()
        .build()
        .await
        .unwrap();
    assert_eq!(second.actor::<Counter>("d").get().await.unwrap(), 11);
    second.advance(Duration::from_secs(30)).await.unwrap();
    assert_eq!(probe.log(), vec!["later @30000"]);
}

#[tokio::test]
async fn bad_host_configuration_is_refused_with_the_fix() {
    let err = Host::local()
        .register::<Counter>()
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no address") && err.contains("no runtime PSK") && err.contains("no store"),
        "{err}"
    );
    let err = Host::local()
        .address("127.0.0.1:0")
        .runtime_psk("short")
        .memory_store()
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("non-zero port") && err.contains("at least 32 bytes"),
        "{err}"
    );
    let err = Host::local()
        .address("127.0.0.1:7000")
        .runtime_psk([1u8; 32])
        .memory_store()
        .register::<Counter>()
        .register::<Counter>()
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("registered twice"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_host_shuts_down_gracefully() {
    let probe = Arc::new(Probe::new(0));
    let host = Host::local()
        .address("127.0.0.1:7999")
        .runtime_psk([7u8; 32])
        .memory_store()
        .data(probe.clone())
        .register::<Counter>()
        .build()
        .await
        .unwrap();
    let service = host.service();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(host.run(async move {
        let _ = stopped.await;
    }));
    let actor = service.actor::<Counter>("r");
    assert_eq!(actor.add(2).await.unwrap(), 2);
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        probe.deactivations.load(Ordering::SeqCst),
        1,
        "shutdown deactivates every actor"
    );
    assert!(matches!(
        actor.get().await,
        Err(CallError::Francis(Error::ShuttingDown))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halt_during_a_shared_turn_that_ignores_it_completes_when_the_turn_ends() {
    let (host, probe) = host().await;
    let actor = host.actor::<Counter>("reader");
    let held = {
        let a = actor.clone();
        tokio::spawn(async move { a.hold("r".into()).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let halt = tokio::spawn({
        let service = host.service();
        async move { service.halt("counter", "reader").await }
    });
    // The shared turn does not watch for halting; it ends when the gate opens.
    tokio::time::sleep(Duration::from_millis(100)).await;
    probe.gate.add_permits(1);
    held.await.unwrap().unwrap();
    tokio::time::timeout(Duration::from_secs(3), halt)
        .await
        .expect("the halt completes once the turn has ended")
        .unwrap()
        .unwrap();
}
