//! The tests the "Testing actors" chapter shows: actors on a `TestHost`, with a virtual clock
//! that the test moves to fire alarms, run jobs and deactivate idle actors.

use std::time::Duration;

use francis::JobStatus;
use francis::host::SINGLETON_ID;
use francis::prelude::*;
use francis::testing::TestHost;
use guide::alarms::{DailyDigest, Nudge, Outbox, Reminders};
use guide::jobs::{Carrier, Delivery, Parcel, delivery_options};
use guide::methods::{Account, AccountError};
use guide::singletons::{RateSettings, RateSource, Rates};

// ANCHOR: first
#[tokio::test]
async fn deposits_add_up_and_overdrafts_are_refused() -> anyhow::Result<()> {
    let host = TestHost::builder().register::<Account>().build().await?;
    let alice = host.actor::<Account>("alice");

    assert_eq!(alice.deposit(500).await?, 500);
    let refused = alice.withdraw(800, "rent".into()).await;
    assert!(matches!(
        refused,
        Err(CallError::Actor(AccountError::InsufficientFunds {
            balance: 500,
            wanted: 800
        }))
    ));
    assert_eq!(alice.balance().await?, 500);
    Ok(())
}
// ANCHOR_END: first

// ANCHOR: alarms
#[tokio::test]
async fn a_reminder_fires_at_its_time_and_not_before() -> anyhow::Result<()> {
    let host = TestHost::builder().register::<Reminders>().build().await?;
    let bob = host.actor::<Reminders>("bob");
    bob.alarm_nudge(Nudge::new("stand up"))
        .after(Duration::from_secs(10 * 60))
        .set()
        .await?;

    // Nothing runs in the background: alarms fire only while the test advances the clock.
    assert_eq!(host.advance(Duration::from_secs(9 * 60)).await?, 0);
    assert!(bob.received().await?.is_empty());
    // `advance` returns once every alarm due in the span has run, each at its due time.
    assert_eq!(host.advance(Duration::from_secs(60)).await?, 1);
    assert_eq!(bob.received().await?.len(), 1);
    assert!(
        bob.get_alarm("nudge").await?.is_none(),
        "a one-shot alarm is gone"
    );
    Ok(())
}

#[tokio::test]
async fn a_daily_alarm_runs_once_a_day_until_its_ttl() -> anyhow::Result<()> {
    let start: jiff::Timestamp = "2030-01-01T08:00:00Z".parse()?;
    let host = TestHost::builder()
        .register::<Reminders>()
        .start_at(start)
        .build()
        .await?;
    guide::alarms::schedule(&host.service(), "bob", start)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    host.advance(Duration::from_secs(30 * 24 * 3600)).await?;
    let received = host.actor::<Reminders>("bob").received().await?;
    let plants: Vec<&String> = received.iter().filter(|r| r.contains("plants")).collect();
    assert_eq!(plants.len(), 7, "the first day and six more: {plants:?}");
    assert!(plants[1].ends_with("2030-01-02T08:00:00Z"), "{plants:?}");
    let rent = received.iter().filter(|r| r.contains("rent")).count();
    assert_eq!(rent, 1, "the next rent is due on 1 February");
    Ok(())
}
// ANCHOR_END: alarms

// ANCHOR: retries
#[tokio::test]
async fn a_failed_digest_is_retried_and_sent_once_a_day() -> anyhow::Result<()> {
    let outbox = Outbox::default();
    let host = TestHost::builder()
        .register::<DailyDigest>()
        .data(outbox.clone())
        .build()
        .await?;
    let carol = host.actor::<DailyDigest>("carol");
    carol
        .alarm_send(())
        .every(Duration::from_secs(24 * 3600))
        .set()
        .await?;

    // The first occurrence is due now. It fails once, and its retry 2 s later succeeds.
    outbox.fail_next(1);
    assert_eq!(host.advance(Duration::from_secs(5)).await?, 2);
    assert_eq!(outbox.sent().len(), 1);
    // The next occurrence keeps the daily schedule.
    assert_eq!(host.advance(Duration::from_secs(24 * 3600)).await?, 1);
    assert_eq!(carol.sent().await?, 2);
    Ok(())
}
// ANCHOR_END: retries

// ANCHOR: jobs
#[tokio::test]
async fn a_delivery_ships_once_after_a_carrier_outage() -> anyhow::Result<()> {
    let carrier = Carrier::default();
    let host = TestHost::builder()
        .register_with::<Delivery>(delivery_options())
        .data(carrier.clone())
        .build()
        .await?;
    let order = host.actor::<Delivery>("order-42");
    let job = order.place(Parcel::new("Storgata 1, Oslo")).await?;

    // The job is due now. The carrier fails twice, and the retries come 10 s and 15 s
    // (each ±10%) after the failures: three runs within the minute.
    carrier.fail_next(2);
    assert_eq!(host.advance(Duration::from_secs(60)).await?, 3);
    let info = host
        .service()
        .get_job(job.as_str())
        .await?
        .expect("a known job");
    assert_eq!((info.status, info.attempts), (JobStatus::Succeeded, 2));
    assert_eq!(order.tracking().await?.as_deref(), Some("TRK0001"));
    assert_eq!(carrier.bookings().len(), 1);
    Ok(())
}
// ANCHOR_END: jobs

// ANCHOR: singletons
#[tokio::test]
async fn the_rates_are_loaded_before_the_first_call_and_again_after_a_halt() -> anyhow::Result<()> {
    let source = RateSource::default();
    let settings = RateSettings {
        base: "EUR".into(),
        currencies: vec!["NOK".into()],
        refresh: Duration::from_secs(3600),
    };
    let host = TestHost::builder()
        .data(source.clone())
        .register_singleton::<Rates>(&settings)
        .build()
        .await?;

    // `build` touched the singleton: it is active and bootstrapped, before any call.
    assert!(host.is_active::<Rates>(SINGLETON_ID));
    assert_eq!(source.fetches(), 1);
    let rates = host.actor::<Rates>(SINGLETON_ID);
    assert_eq!(rates.rate("NOK".into()).await?, 11.5);

    // A new activation bootstraps again, before the call that activated it.
    host.halt_all().await;
    assert_eq!(rates.rate("NOK".into()).await?, 11.5);
    assert_eq!(source.fetches(), 2);
    Ok(())
}
// ANCHOR_END: singletons

// ANCHOR: idle
#[tokio::test]
async fn idle_accounts_deactivate_and_keep_their_balance() -> anyhow::Result<()> {
    let host = TestHost::builder().register::<Account>().build().await?;
    let alice = host.actor::<Account>("alice");
    alice.deposit(500).await?;
    assert!(host.is_active::<Account>("alice"));

    // The default idle timeout is 5 minutes.
    host.advance(Duration::from_secs(5 * 60)).await?;
    assert!(!host.is_active::<Account>("alice"));

    // The next call activates it again, with its state.
    assert_eq!(alice.balance().await?, 500);
    Ok(())
}
// ANCHOR_END: idle

// ANCHOR: restart
#[tokio::test]
async fn balances_survive_a_restart() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("test.db");

    let host = TestHost::builder()
        .register::<Account>()
        .sqlite(&db)
        .build()
        .await?;
    host.actor::<Account>("alice").deposit(500).await?;
    host.shutdown().await?;

    let host = TestHost::builder()
        .register::<Account>()
        .sqlite(&db)
        .build()
        .await?;
    assert_eq!(host.actor::<Account>("alice").balance().await?, 500);
    Ok(())
}
// ANCHOR_END: restart
