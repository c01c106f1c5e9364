//! Runtime tests of the code `#[francis::actor]` generates: the method table and `NAME`,
//! dispatch through `Actor::call_mut` / `call_ref` on an actor value built directly, and the
//! typed proxy end to end through a test host in this process.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use francis::actor::{Actor, DispatchError, MethodInfo, MethodKind};
use francis::prelude::*;
use francis::testing::TestHost;

#[derive(Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
enum CounterError {
    #[error("{0} is too big")]
    TooBig(i64),
    #[error("nothing to do")]
    Nothing,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Tick {
    note: String,
}

/// The actor under test: one of every kind of method.
struct Counter {
    value: i64,
    label: String,
    ticks: Vec<String>,
    nightly_runs: u32,
    deactivated: Arc<AtomicBool>,
}

impl Counter {
    fn new() -> Self {
        Counter {
            value: 0,
            label: String::new(),
            ticks: Vec::new(),
            nightly_runs: 0,
            deactivated: Arc::default(),
        }
    }
}

#[francis::actor]
impl Counter {
    fn activate(ctx: &ActorContext) -> Self {
        Counter {
            label: ctx.id().to_owned(),
            ..Counter::new()
        }
    }

    /// Add `by` to the counter; fails above 100.
    pub async fn increment(&mut self, by: i64) -> Result<i64, CounterError> {
        if self.value + by > 100 {
            return Err(CounterError::TooBig(self.value + by));
        }
        self.value += by;
        Ok(self.value)
    }

    /// The current value.
    pub async fn get(&self) -> Result<i64, CounterError> {
        Ok(self.value + self.helper())
    }

    pub async fn add_two(&mut self, a: i64, b: String) -> Result<(), CounterError> {
        self.value += a;
        self.label = b;
        Ok(())
    }

    pub async fn describe(&self) -> Result<(i64, String), CounterError> {
        Ok((self.value, self.label.clone()))
    }

    #[method(name = "reset-all")]
    pub async fn reset(&mut self) -> Result<(), CounterError> {
        if self.value == 0 {
            return Err(CounterError::Nothing);
        }
        self.value = 0;
        Ok(())
    }

    /// Patterns that are not plain identifiers.
    pub async fn pair(
        &mut self,
        (a, b): (i64, i64),
        _: bool,
        mut c: i64,
    ) -> Result<i64, CounterError> {
        c += a * b;
        Ok(c)
    }

    #[alarm]
    pub async fn tick(&mut self, data: Tick) -> Result<(), CounterError> {
        self.ticks.push(data.note);
        Ok(())
    }

    #[alarm(name = "nightly")]
    pub async fn nightly_job(&mut self, _data: ()) -> Result<(), CounterError> {
        self.nightly_runs += 1;
        Ok(())
    }

    async fn deactivate(&mut self) -> Result<(), CounterError> {
        self.deactivated.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn helper(&self) -> i64 {
        0
    }
}

/// An actor whose methods mention `Self`, with a sync `deactivate` and no shared methods.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct HTTPServer {
    port: u16,
}

#[francis::actor]
impl HTTPServer {
    fn activate(_: &ActorContext) -> HTTPServer {
        HTTPServer::default()
    }

    pub async fn replace(&mut self, other: Self) -> Result<Self, String> {
        Ok(std::mem::replace(self, other))
    }

    fn deactivate(&mut self) {
        self.port = 0;
    }
}

/// An actor with a name override and nothing but `activate`.
struct Renamed;

#[francis::actor(name = "my-renamed")]
impl Renamed {
    fn activate(_ctx: &ActorContext) -> Self {
        Renamed
    }
}

fn index_of<A: Actor>(name: &str) -> u16 {
    A::method(name)
        .unwrap_or_else(|| panic!("no method {name}"))
        .index
}

fn encode<T: Serialize>(value: &T) -> Envelope {
    Envelope::encode(value).unwrap()
}

#[test]
fn names_default_to_snake_case_and_can_be_overridden() {
    assert_eq!(Counter::NAME, "counter");
    assert_eq!(HTTPServer::NAME, "http_server");
    assert_eq!(Renamed::NAME, "my-renamed");
    assert!(Renamed::methods().is_empty());
}

#[test]
fn method_table_lists_pub_async_methods_in_order() {
    let expected = [
        ("increment", MethodKind::Exclusive),
        ("get", MethodKind::Shared),
        ("add_two", MethodKind::Exclusive),
        ("describe", MethodKind::Shared),
        ("reset-all", MethodKind::Exclusive),
        ("pair", MethodKind::Exclusive),
        ("tick", MethodKind::Alarm),
        ("nightly", MethodKind::Alarm),
    ];
    let table: Vec<MethodInfo> = Counter::methods().to_vec();
    assert_eq!(table.len(), expected.len(), "{table:?}");
    for (i, (info, (name, kind))) in table.iter().zip(expected).enumerate() {
        assert_eq!(
            *info,
            MethodInfo {
                name,
                kind,
                index: i as u16
            }
        );
    }
    assert_eq!(
        Counter::method("reset"),
        None,
        "the Rust name is not a wire name once overridden"
    );
    assert_eq!(Counter::method("helper"), None);
    assert_eq!(Counter::method("deactivate"), None);
    assert_eq!(Counter::method("nightly_job"), None);
}

#[tokio::test]
async fn exclusive_and_shared_calls_dispatch_and_encode_results() {
    let mut c = Counter::new();
    let out = c
        .call_mut(index_of::<Counter>("increment"), encode(&5i64))
        .await
        .unwrap();
    assert_eq!(out.decode::<i64>().unwrap(), 5);
    let out = c
        .call_ref(index_of::<Counter>("get"), Envelope::empty())
        .await
        .unwrap();
    assert_eq!(out.decode::<i64>().unwrap(), 5);
    // JSON works as well as MessagePack.
    let out = c
        .call_mut(
            index_of::<Counter>("increment"),
            Envelope::from_json_bytes(b"2".to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(out.decode::<i64>().unwrap(), 7);
}

#[tokio::test]
async fn several_arguments_decode_from_a_tuple() {
    let mut c = Counter::new();
    let add_two = index_of::<Counter>("add_two");
    let out = c
        .call_mut(add_two, Envelope::from_json_bytes(b"[1, \"x\"]".to_vec()))
        .await
        .unwrap();
    out.decode::<()>().unwrap();
    c.call_mut(add_two, encode(&(2i64, "y"))).await.unwrap();
    let out = c
        .call_ref(index_of::<Counter>("describe"), Envelope::empty())
        .await
        .unwrap();
    assert_eq!(out.decode::<(i64, String)>().unwrap(), (3, "y".to_owned()));

    let out = c
        .call_mut(
            index_of::<Counter>("pair"),
            encode(&((3i64, 4i64), true, 1i64)),
        )
        .await
        .unwrap();
    assert_eq!(out.decode::<i64>().unwrap(), 13);
}

#[tokio::test]
async fn methods_without_arguments_ignore_the_payload() {
    let mut c = Counter::new();
    c.value = 3;
    let reset = index_of::<Counter>("reset-all");
    c.call_mut(
        reset,
        Envelope::from_json_bytes(b"{\"whatever\": 1}".to_vec()),
    )
    .await
    .unwrap();
    assert_eq!(c.value, 0);
}

#[tokio::test]
async fn bad_arguments_are_reported_as_such() {
    let mut c = Counter::new();
    let err = c
        .call_mut(index_of::<Counter>("increment"), encode(&"five"))
        .await
        .unwrap_err();
    assert!(matches!(err, DispatchError::BadArguments(_)), "{err:?}");
    let err = c
        .call_mut(
            index_of::<Counter>("add_two"),
            Envelope::from_json_bytes(b"[1]".to_vec()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, DispatchError::BadArguments(_)), "{err:?}");
    assert_eq!(c.value, 0, "the method must not run");
}

#[tokio::test]
async fn actor_errors_come_back_typed() {
    let mut c = Counter::new();
    let err = c
        .call_mut(index_of::<Counter>("increment"), encode(&500i64))
        .await
        .unwrap_err();
    let DispatchError::Actor { message, payload } = err else {
        panic!("expected an actor error, got {err:?}")
    };
    assert_eq!(message, "500 is too big");
    assert_eq!(
        payload.decode::<CounterError>().unwrap(),
        CounterError::TooBig(500)
    );

    let err = c
        .call_mut(index_of::<Counter>("reset-all"), Envelope::empty())
        .await
        .unwrap_err();
    let DispatchError::Actor { payload, .. } = err else {
        panic!("expected an actor error, got {err:?}")
    };
    assert_eq!(
        payload.decode::<CounterError>().unwrap(),
        CounterError::Nothing
    );
}

#[tokio::test]
async fn wrong_kind_or_unknown_index_is_no_such_method() {
    let mut c = Counter::new();
    let get = index_of::<Counter>("get");
    let increment = index_of::<Counter>("increment");
    let tick = index_of::<Counter>("tick");
    assert_eq!(
        c.call_mut(get, Envelope::empty()).await.unwrap_err(),
        DispatchError::NoSuchMethod
    );
    assert_eq!(
        c.call_ref(increment, encode(&1i64)).await.unwrap_err(),
        DispatchError::NoSuchMethod
    );
    assert_eq!(
        c.call_ref(tick, Envelope::empty()).await.unwrap_err(),
        DispatchError::NoSuchMethod
    );
    assert_eq!(
        c.call_mut(999, Envelope::empty()).await.unwrap_err(),
        DispatchError::NoSuchMethod
    );
    let mut r = Renamed;
    assert_eq!(
        r.call_mut(0, Envelope::empty()).await.unwrap_err(),
        DispatchError::NoSuchMethod
    );
    assert_eq!(
        r.call_ref(0, Envelope::empty()).await.unwrap_err(),
        DispatchError::NoSuchMethod
    );
}

#[tokio::test]
async fn alarm_handlers_run_through_call_mut() {
    let mut c = Counter::new();
    c.call_mut(
        index_of::<Counter>("tick"),
        encode(&Tick { note: "hi".into() }),
    )
    .await
    .unwrap();
    assert_eq!(c.ticks, ["hi"]);
    c.call_mut(index_of::<Counter>("nightly"), Envelope::empty())
        .await
        .unwrap();
    assert_eq!(c.nightly_runs, 1);
}

#[tokio::test]
async fn deactivate_forwards_to_the_hook() {
    let mut c = Counter::new();
    let flag = c.deactivated.clone();
    <Counter as Actor>::deactivate(&mut c).await;
    assert!(flag.load(Ordering::SeqCst));

    let mut s = HTTPServer { port: 80 };
    <HTTPServer as Actor>::deactivate(&mut s).await;
    assert_eq!(s.port, 0);
    // Without a hook the default (doing nothing) applies.
    <Renamed as Actor>::deactivate(&mut Renamed).await;
}

#[tokio::test]
async fn self_in_signatures_means_the_actor_type() {
    let mut s = HTTPServer { port: 1 };
    let out = s
        .call_mut(
            index_of::<HTTPServer>("replace"),
            encode(&HTTPServer { port: 2 }),
        )
        .await
        .unwrap();
    assert_eq!(out.decode::<HTTPServer>().unwrap(), HTTPServer { port: 1 });
    assert_eq!(s.port, 2);
}

// ---------------------------------------------------------------------------------------------
// The proxy, end to end through a host in this process.

/// A test host (memory store, virtual clock) running actor type `A`.
async fn host_of<A: Actor>() -> TestHost {
    TestHost::builder().register::<A>().build().await.unwrap()
}

#[tokio::test]
async fn proxy_methods_call_through_an_actor_ref() {
    let host = host_of::<Counter>().await;
    let c: ActorRef<Counter> = host.actor("alice");

    let n: i64 = c.increment(5).await.unwrap();
    assert_eq!(n, 5);
    c.add_two(2, "renamed".to_owned()).await.unwrap();
    assert_eq!(c.get().await.unwrap(), 7);
    assert_eq!(c.describe().await.unwrap(), (7, "renamed".to_owned()));
    assert_eq!(c.pair((2, 3), false, 1).await.unwrap(), 7);
    c.reset().await.unwrap();
    assert_eq!(c.get().await.unwrap(), 0);

    match c.increment(1000).await {
        Err(CallError::Actor(e)) => assert_eq!(e, CounterError::TooBig(1000)),
        other => panic!("expected the actor's error, got {other:?}"),
    }
    match c.reset().await {
        Err(CallError::Actor(CounterError::Nothing)) => {}
        other => panic!("expected the actor's error, got {other:?}"),
    }
    // The proxy derefs to the raw reference.
    assert_eq!(c.id(), "alice");
}

#[tokio::test]
async fn activate_receives_the_context() {
    let host = host_of::<Counter>().await;
    let c: ActorRef<Counter> = host.actor("bob");
    assert_eq!(c.describe().await.unwrap(), (0, "bob".to_owned()));
}

#[tokio::test]
async fn proxy_alarm_setters_store_typed_alarms() {
    let host = host_of::<Counter>().await;
    let c: ActorRef<Counter> = host.actor("alice");

    c.alarm_tick(Tick {
        note: "hello".into(),
    })
    .after(Duration::from_secs(10))
    .every(Duration::from_secs(60))
    .set()
    .await
    .unwrap();
    let record = c
        .get_alarm("tick")
        .await
        .unwrap()
        .expect("the alarm is stored");
    assert_eq!(record.handler, "tick");
    assert_eq!(record.interval.as_deref(), Some("PT1M"));
    let data = Envelope::from_msgpack_bytes(record.data.unwrap());
    assert_eq!(
        data.decode::<Tick>().unwrap(),
        Tick {
            note: "hello".into()
        }
    );

    c.alarm_nightly_job(()).set().await.unwrap();
    let record = c
        .get_alarm("nightly")
        .await
        .unwrap()
        .expect("stored under the wire name");
    assert_eq!(record.handler, "nightly");
}

#[tokio::test]
async fn proxy_methods_use_the_actor_type_for_self() {
    let host = host_of::<HTTPServer>().await;
    let s: ActorRef<HTTPServer> = host.actor("web");
    let old: HTTPServer = s.replace(HTTPServer { port: 8080 }).await.unwrap();
    assert_eq!(old, HTTPServer { port: 0 });
    assert_eq!(
        s.replace(HTTPServer { port: 1 }).await.unwrap(),
        HTTPServer { port: 8080 }
    );
}

/// Compile-time check of the proxy surface: futures are `Send`, results are typed.
#[allow(dead_code)]
fn proxy_futures_are_send(c: ActorRef<Counter>) {
    fn send<T: Send>(_: T) {}
    send(c.increment(1));
    send(c.get());
    send(c.add_two(1, String::new()));
    let _: francis::AlarmBuilder = c.alarm_tick(Tick {
        note: String::new(),
    });
    let _: CounterProxy = (*c).clone();
}
