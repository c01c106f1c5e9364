//! Tests of the `{{actor}}` actor on `francis::testing::TestHost`: a real host, in process, on
//! an in-memory store and a virtual clock, so alarms fire and jobs run without sleeping.

use std::time::Duration;

use francis::CallError;
use francis::JobStatus;
use francis::testing::TestHost;
use {{crate_name}}::{{actor}}::{{actor | pascal_case}};
use {{crate_name}}::{{actor}}::{{actor | pascal_case}}Error;
use {{crate_name}}::{{actor}}::{{actor | pascal_case}}State;

async fn host() -> TestHost {
    TestHost::builder()
        .register::<{{actor | pascal_case}}>()
        .build()
        .await
        .expect("test host")
}

#[tokio::test]
async fn add_updates_the_total_and_get_reads_it() -> anyhow::Result<()> {
    let host = host().await;
    let alice = host.actor::<{{actor | pascal_case}}>("alice");
    assert_eq!(alice.add(5).await?.total, 5);
    assert_eq!(alice.add(7).await?.total, 12);
    assert_eq!(
        alice.get().await?,
        {{actor | pascal_case}}State {
            total: 12,
            ticks: 0
        }
    );
    // Each ID is its own actor.
    assert_eq!(host.actor::<{{actor | pascal_case}}>("bob").get().await?.total, 0);
    Ok(())
}

#[tokio::test]
async fn errors_come_back_typed() -> anyhow::Result<()> {
    let host = host().await;
    let alice = host.actor::<{{actor | pascal_case}}>("alice");
    alice.add(1).await?;
    match alice.add(i64::MAX).await {
        Err(CallError::Actor({{actor | pascal_case}}Error::Overflow { total, amount })) => {
            assert_eq!((total, amount), (1, i64::MAX));
        }
        other => panic!("expected an overflow error, got {other:?}"),
    }
    assert_eq!(alice.get().await?.total, 1, "a failed call changes nothing");
    Ok(())
}

#[tokio::test]
async fn the_tick_alarm_fires_on_the_virtual_clock() -> anyhow::Result<()> {
    let host = host().await;
    let alice = host.actor::<{{actor | pascal_case}}>("alice");
    alice
        .alarm_tick(Some(10))
        .after(Duration::from_secs(60))
        .every(Duration::from_secs(60))
        .set()
        .await?;

    host.advance(Duration::from_secs(59)).await?;
    assert_eq!(alice.get().await?.ticks, 0, "not due yet");
    host.advance(Duration::from_secs(1)).await?;
    assert_eq!(
        alice.get().await?,
        {{actor | pascal_case}}State {
            total: 10,
            ticks: 1
        }
    );
    host.advance(Duration::from_secs(120)).await?;
    assert_eq!(alice.get().await?.ticks, 3, "once per interval");
    Ok(())
}

#[tokio::test]
async fn the_reset_job_runs_when_due_and_succeeds() -> anyhow::Result<()> {
    let host = host().await;
    let alice = host.actor::<{{actor | pascal_case}}>("alice");
    alice.add(5).await?;
    let job = alice
        .job_reset(())
        .after(Duration::from_secs(3600))
        .key("reset")
        .dispatch()
        .await?;
    // While it is pending, a dispatch with the same key returns the same job.
    assert_eq!(alice.job_reset(()).key("reset").dispatch().await?, job);

    host.advance(Duration::from_secs(3599)).await?;
    assert_eq!(alice.get().await?.total, 5, "not due yet");
    let info = host.service().get_job(job.as_str()).await?;
    assert_eq!(info.map(|i| i.status), Some(JobStatus::Pending));

    host.advance(Duration::from_secs(1)).await?;
    assert_eq!(alice.get().await?, {{actor | pascal_case}}State::default());
    let info = host.service().get_job(job.as_str()).await?;
    assert_eq!(
        info.map(|i| (i.status, i.attempts)),
        Some((JobStatus::Succeeded, 0)),
        "it ran once, without failing"
    );
    Ok(())
}

#[tokio::test]
async fn state_outlives_the_activation() -> anyhow::Result<()> {
    let host = host().await;
    let alice = host.actor::<{{actor | pascal_case}}>("alice");
    alice.add(3).await?;
    host.halt_all().await;
    assert!(!host.is_active::<{{actor | pascal_case}}>("alice"));
    assert_eq!(alice.get().await?.total, 3, "read back from the store");
    Ok(())
}
