//! What each chapter of the guide says about its snippets, checked: every module of `guide`
//! behaves as the book describes it.

use std::time::Duration;

use francis::prelude::*;
use francis::testing::TestHost;

mod methods {
    use super::*;
    use guide::methods::{Account, AccountError, Payment, pay};

    #[tokio::test]
    async fn typed_calls_errors_and_wire_names() -> anyhow::Result<()> {
        let host = TestHost::builder().register::<Account>().build().await?;
        let service = host.service();
        let alice = host.actor::<Account>("alice");
        assert_eq!(alice.deposit(500).await?, 500);
        assert!(matches!(
            alice.deposit(-1).await,
            Err(CallError::Actor(AccountError::NotPositive(-1)))
        ));
        assert_eq!(pay(&service, "alice", 200).await?, Payment::Paid(300));
        assert_eq!(
            pay(&service, "alice", 1000).await?,
            Payment::Declined("only 300 cents available".into())
        );
        assert!(!alice.empty().await?);

        // Untyped, as HTTP bridges call it: JSON in, JSON out, wire names.
        let out = service
            .invoke("account", "alice", "get", Envelope::json(&())?)
            .await?;
        assert_eq!(out.to_json()?, serde_json::json!(300));
        let out = service
            .invoke(
                "account",
                "alice",
                "withdraw",
                Envelope::json(&serde_json::json!([100, "tea"]))?,
            )
            .await?;
        assert_eq!(out.to_json()?, serde_json::json!(200));
        // `balance` is only known by its wire name `get`.
        assert!(matches!(
            service
                .invoke("account", "alice", "balance", Envelope::empty())
                .await,
            Err(Error::UnknownMethod { .. })
        ));
        // An untyped caller sees the actor's error as an encoded value.
        match service
            .invoke("account", "alice", "deposit", Envelope::json(&0)?)
            .await
        {
            Err(Error::Actor(failure)) => {
                assert_eq!(
                    failure.payload.to_json()?,
                    serde_json::json!({"NotPositive": 0})
                );
            }
            other => panic!("expected the actor's error, got {other:?}"),
        }
        // Read-only calls refuse exclusive methods.
        let read_only = francis::actor::InvokeOptions {
            read_only: true,
            ..Default::default()
        };
        assert!(matches!(
            service
                .invoke_with(
                    "account",
                    "alice",
                    "deposit",
                    Envelope::json(&1)?,
                    read_only
                )
                .await,
            Err(Error::NotReadOnly { .. })
        ));
        Ok(())
    }
}

mod state {
    use super::*;
    use guide::state::{ProfileV1, ProfileV2, SESSION_TTL, Session, SessionError};

    #[tokio::test]
    async fn sessions_expire_list_and_delete() -> anyhow::Result<()> {
        let host = TestHost::builder().register::<Session>().build().await?;
        let s1 = host.actor::<Session>("s1");
        assert_eq!(s1.user().await?, None);
        assert!(matches!(
            s1.view().await,
            Err(CallError::Actor(SessionError::NotLoggedIn))
        ));
        s1.login("ann".into()).await?;
        assert_eq!(s1.view().await?, 1);
        for (id, user) in [("s2", "ben"), ("s3", "cat")] {
            host.actor::<Session>(id).login(user.into()).await?;
        }

        let (page, next) = s1.list_users(None).await?;
        assert_eq!(
            page,
            vec![("s1".into(), "ann".into()), ("s2".into(), "ben".into())]
        );
        assert_eq!(next.as_deref(), Some("s2"));
        let (page, next) = s1.list_users(next).await?;
        assert_eq!((page, next), (vec![("s3".into(), "cat".into())], None));

        // From outside the actor, through the service.
        let stored: Option<guide::state::SessionData> =
            host.service().get_state("session", "s1").await?;
        assert_eq!(stored.map(|d| d.views), Some(1));

        assert!(host.actor::<Session>("s3").logout().await?);
        assert!(!host.actor::<Session>("s3").logout().await?);
        Ok(())
    }

    #[tokio::test]
    async fn an_active_session_keeps_its_cached_copy_past_the_ttl() -> anyhow::Result<()> {
        let host = TestHost::builder()
            .register_with::<Session>(ActorOptions::default().never_idle())
            .build()
            .await?;
        let s1 = host.actor::<Session>("s1");
        s1.login("ann".into()).await?;
        host.advance(SESSION_TTL + Duration::from_secs(1)).await?;
        // Expired in the store...
        let stored: Option<guide::state::SessionData> =
            host.service().get_state("session", "s1").await?;
        assert!(stored.is_none());
        // ...but the live activation still reads its cache until it ends.
        assert_eq!(s1.user().await?, Some("ann".into()));
        host.halt_all().await;
        assert_eq!(s1.user().await?, None);
        Ok(())
    }

    #[tokio::test]
    async fn a_new_field_with_a_default_reads_old_values() -> anyhow::Result<()> {
        let host = TestHost::builder().build().await?;
        let service = host.service();
        service
            .set_state("profile", "p1", &ProfileV1 { name: "Ann".into() }, None)
            .await?;
        let read: Option<ProfileV2> = service.get_state("profile", "p1").await?;
        assert_eq!(
            read,
            Some(ProfileV2 {
                name: "Ann".into(),
                language: "en".into()
            })
        );
        Ok(())
    }
}

mod alarms {
    use super::*;
    use guide::alarms::{DailyDigest, Outbox, Reminders};

    #[tokio::test]
    async fn an_actor_schedules_its_own_alarm_and_names_replace() -> anyhow::Result<()> {
        let host = TestHost::builder().register::<Reminders>().build().await?;
        let bob = host.actor::<Reminders>("bob");
        bob.snooze("call mum".into(), 10).await?;
        bob.snooze("call dad".into(), 20).await?;
        // Same name ("snoozed"): the second replaced the first.
        assert_eq!(host.advance(Duration::from_secs(3600)).await?, 1);
        let received = bob.received().await?;
        assert_eq!(received.len(), 1);
        assert!(received[0].starts_with("call dad"), "{received:?}");

        bob.snooze("again".into(), 10).await?;
        assert!(bob.get_alarm("snoozed").await?.is_some());
        assert!(bob.delete_alarm("snoozed").await?);
        assert_eq!(host.advance(Duration::from_secs(3600)).await?, 0);
        Ok(())
    }

    #[tokio::test]
    async fn a_digest_delivered_twice_in_a_day_is_sent_once() -> anyhow::Result<()> {
        let outbox = Outbox::default();
        let host = TestHost::builder()
            .register::<DailyDigest>()
            .data(outbox.clone())
            .start_at("2030-01-01T08:00:00Z".parse()?)
            .build()
            .await?;
        let carol = host.actor::<DailyDigest>("carol");
        // Two occurrences on the same day stand in for one occurrence delivered twice.
        carol.alarm_send(()).name("first").set().await?;
        carol
            .alarm_send(())
            .after(Duration::from_secs(60))
            .name("again")
            .set()
            .await?;
        assert_eq!(host.advance(Duration::from_secs(120)).await?, 2);
        assert_eq!(carol.sent().await?, 1);
        assert_eq!(
            outbox.sent(),
            vec![(
                "digest/carol/2030-01-01".to_owned(),
                "your daily digest".to_owned()
            )]
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_digest_that_always_fails_runs_max_attempts_times() -> anyhow::Result<()> {
        let outbox = Outbox::default();
        let host = TestHost::builder()
            .register_with::<DailyDigest>(
                ActorOptions::default()
                    .alarm_max_attempts(5)
                    .alarm_retry_delay(Duration::from_secs(30)),
            )
            .data(outbox.clone())
            .build()
            .await?;
        outbox.fail_next(100);
        let carol = host.actor::<DailyDigest>("carol");
        carol.alarm_send(()).set().await?;
        // Retries after 30 s, 45 s, 67.5 s and 101.25 s (each ±10%): all within 5 minutes.
        assert_eq!(host.advance(Duration::from_secs(300)).await?, 5);
        assert!(carol.get_alarm("send").await?.is_none(), "dropped");
        assert_eq!(host.advance(Duration::from_secs(3600)).await?, 0);
        Ok(())
    }
}

mod jobs {
    use super::*;
    use francis::model::DeadLetterQuery;
    use francis::{JobSpec, JobStatus};
    use guide::jobs::{
        Carrier, Delivery, Parcel, Scope, Stocktake, delivery_options, describe,
        handle_dead_deliveries, schedule, ship_later, ship_untyped,
    };

    async fn host(carrier: Option<&Carrier>) -> anyhow::Result<TestHost> {
        let mut builder = TestHost::builder()
            .register_with::<Delivery>(delivery_options())
            .register::<Stocktake>()
            .start_at("2030-01-01T00:00:00Z".parse()?);
        if let Some(carrier) = carrier {
            builder = builder.data(carrier.clone());
        }
        Ok(builder.build().await?)
    }

    #[tokio::test]
    async fn a_key_keeps_the_first_job_while_it_is_pending_and_a_day_after_it_succeeded()
    -> anyhow::Result<()> {
        let carrier = Carrier::default();
        let host = host(Some(&carrier)).await?;
        let service = host.service();
        let job = ship_later(&service, "order-7", Parcel::new("Storgata 1, Oslo")).await?;
        // Same actor, same key: typed from outside, from inside the actor, or untyped.
        let order = host.actor::<Delivery>("order-7");
        assert_eq!(order.place(Parcel::new("elsewhere")).await?, job);
        assert_eq!(
            ship_untyped(&service, "order-7")
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?,
            job
        );
        // Another actor: the key is free there. The untyped job's JSON payload is a `Parcel`.
        assert_ne!(
            ship_later(&service, "order-8", Parcel::new("Oslo")).await?,
            job
        );
        ship_untyped(&service, "order-6")
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        assert_eq!(
            describe(&service, &job).await?,
            "due at 2030-01-01T00:15:00Z, 0 failed attempts so far"
        );

        host.advance(Duration::from_secs(15 * 60)).await?;
        assert_eq!(
            describe(&service, &job).await?,
            "done at 2030-01-01T00:15:00Z, after 0 failed attempts"
        );
        // The first payload was shipped, once.
        assert_eq!(
            carrier.bookings(),
            vec![
                (
                    "delivery/order-6".to_owned(),
                    Parcel {
                        to: "Storgata 1, Oslo".into(),
                        weight_grams: 1200
                    }
                ),
                (
                    "delivery/order-7".to_owned(),
                    Parcel::new("Storgata 1, Oslo")
                ),
                ("delivery/order-8".to_owned(), Parcel::new("Oslo")),
            ]
        );
        assert_eq!(order.place(Parcel::new("Oslo")).await?, job, "still taken");
        assert_eq!(order.jobs().await?.len(), 1);

        // After 24 hours the key is free again.
        host.advance(Duration::from_secs(24 * 3600 + 1)).await?;
        let next = order.place(Parcel::new("Oslo")).await?;
        assert_ne!(next, job);
        // Nothing ships twice: the handler sees the tracking number and returns.
        host.run_due_alarms().await?;
        assert_eq!(carrier.bookings().len(), 3);
        let info = service.get_job(next.as_str()).await?.expect("known");
        assert_eq!(info.status, JobStatus::Succeeded);
        assert_eq!(info.idempotency_key.as_deref(), Some("ship"));
        Ok(())
    }

    #[tokio::test]
    async fn a_bad_address_is_dead_lettered_at_once_and_the_hook_keeps_the_problem()
    -> anyhow::Result<()> {
        let carrier = Carrier::default();
        let host = host(Some(&carrier)).await?;
        let service = host.service();
        let order = host.actor::<Delivery>("order-9");
        let job = order.place(Parcel::new("")).await?;
        assert_eq!(host.run_due_alarms().await?, 1);
        let info = service.get_job(job.as_str()).await?.expect("known");
        assert_eq!((info.status, info.attempts), (JobStatus::DeadLettered, 1));
        assert_eq!(
            describe(&service, &job).await?,
            "gave up after 1 attempts: the carrier refused the address \"\""
        );
        assert_eq!(
            order.problem().await?.as_deref(),
            Some("not shipped to \"\" after 1 attempts: the carrier refused the address \"\"")
        );
        // A dead-lettered job frees its key.
        host.advance(Duration::from_secs(1)).await?;
        assert_ne!(order.place(Parcel::new("")).await?, job);
        host.run_due_alarms().await?;
        let letters = service.dead_jobs(&DeadLetterQuery::default()).await?;
        assert_eq!(letters.len(), 2);
        assert_eq!(letters[1].job_id.as_deref(), Some(job.as_str()));
        // Letters that cannot succeed are deleted, not retried.
        assert!(handle_dead_deliveries(&service).await?.is_empty());
        assert!(
            service
                .dead_jobs(&DeadLetterQuery::default())
                .await?
                .is_empty()
        );
        assert_eq!(
            service.get_job(job.as_str()).await?,
            None,
            "its letter is gone"
        );
        Ok(())
    }

    #[tokio::test]
    async fn an_outage_dead_letters_after_five_runs_and_a_retry_ships() -> anyhow::Result<()> {
        let carrier = Carrier::default();
        let host = host(Some(&carrier)).await?;
        let service = host.service();
        let order = host.actor::<Delivery>("order-10");
        carrier.fail_next(100);
        let job = order.place(Parcel::new("Oslo")).await?;
        // Runs at 0 s, then 10, 15, 22.5 and 33.75 s (each ±10%) after each failure: the
        // fourth run comes 43 to 53 s after the first, the fifth 73 to 90 s after it.
        assert_eq!(host.advance(Duration::from_secs(60)).await?, 4);
        assert_eq!(
            service.get_job(job.as_str()).await?.map(|i| i.attempts),
            Some(4)
        );
        assert_eq!(host.advance(Duration::from_secs(3600)).await?, 1);
        let info = service.get_job(job.as_str()).await?.expect("known");
        assert_eq!((info.status, info.attempts), (JobStatus::DeadLettered, 5));
        assert!(
            order
                .problem()
                .await?
                .is_some_and(|p| p.contains("after 5 attempts: carrier unavailable")),
        );

        carrier.fail_next(0);
        let retried = handle_dead_deliveries(&service).await?;
        assert_eq!(retried.len(), 1);
        assert_ne!(retried[0], job);
        assert_eq!(host.run_due_alarms().await?, 1);
        assert_eq!(order.tracking().await?.as_deref(), Some("TRK0001"));
        let info = service.get_job(retried[0].as_str()).await?.expect("known");
        assert_eq!(info.idempotency_key, None, "a retried job has no key");
        assert_eq!(service.retry_dead_job("no-such-letter").await?, None);
        Ok(())
    }

    #[tokio::test]
    async fn old_dead_letters_are_purged_by_age() -> anyhow::Result<()> {
        let host = host(Some(&Carrier::default())).await?;
        let service = host.service();
        host.actor::<Delivery>("order-11")
            .place(Parcel::new(""))
            .await?;
        host.run_due_alarms().await?;
        host.advance(Duration::from_secs(6 * 24 * 3600)).await?;
        assert_eq!(
            service
                .purge_dead_jobs(Duration::from_secs(7 * 24 * 3600))
                .await?,
            0
        );
        host.advance(Duration::from_secs(24 * 3600 + 1)).await?;
        assert_eq!(
            service
                .purge_dead_jobs(Duration::from_secs(7 * 24 * 3600))
                .await?,
            1
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_host_without_a_carrier_rejects_the_job_without_counting_runs() -> anyhow::Result<()>
    {
        let host = host(None).await?;
        let service = host.service();
        let job = host
            .actor::<Delivery>("order-12")
            .place(Parcel::new("Oslo"))
            .await?;
        // Released each time, and due again 1.5 to 3 s later (one to two poll intervals).
        let ran = host.advance(Duration::from_secs(60)).await?;
        assert!((20..=41).contains(&ran), "{ran}");
        let info = service.get_job(job.as_str()).await?.expect("known");
        assert_eq!((info.status, info.attempts), (JobStatus::Pending, 0));
        assert!(
            service
                .dead_jobs(&DeadLetterQuery::default())
                .await?
                .is_empty()
        );
        assert!(
            host.actor::<Delivery>("order-12")
                .cancel_job(job.as_str())
                .await?
        );
        assert_eq!(host.advance(Duration::from_secs(60)).await?, 0);
        Ok(())
    }

    #[tokio::test]
    async fn stocktakes_run_on_their_interval_and_cron_schedules() -> anyhow::Result<()> {
        let start: jiff::Timestamp = "2030-01-01T00:00:00Z".parse()?;
        let host = host(None).await?;
        schedule(&host.service(), "oslo", start)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let oslo = host.actor::<Stocktake>("oslo");

        host.advance(Duration::from_secs(24 * 3600)).await?;
        let done = oslo.done().await?;
        let full: Vec<&String> = done.iter().filter(|l| l.starts_with("Full")).collect();
        assert_eq!(full, ["Full at 2030-01-01T03:00:00Z"]);
        // 13 spot checks (00:00 to 24:00), and "closing" on Tuesday at 18:30.
        assert_eq!(done.iter().filter(|l| l.starts_with("Spot")).count(), 14);
        assert!(done.contains(&"Spot at 2030-01-01T18:30:00Z".to_owned()));

        // A repeating job stays pending, with its next run. The spot checks reached their
        // TTL and are gone, key included.
        let jobs = oslo.jobs().await?;
        assert_eq!(jobs.len(), 2);
        let again = oslo
            .job_count(Scope::Spot)
            .key("spot-checks")
            .dispatch()
            .await?;
        assert_eq!(oslo.jobs().await?.len(), 3, "a new job");
        assert!(oslo.cancel_job(again.as_str()).await?);
        let nightly = jobs
            .iter()
            .find(|j| j.idempotency_key.as_deref() == Some("nightly"))
            .expect("nightly");
        assert_eq!(nightly.status, JobStatus::Pending);
        assert_eq!(nightly.cron.as_deref(), Some("0 3 * * *"));
        let next: jiff::Timestamp = "2030-01-02T03:00:00Z".parse()?;
        assert_eq!(nightly.due_ms, Some(next.as_millisecond()));

        // Closing runs on weekdays until 31 January.
        host.advance(Duration::from_secs(40 * 24 * 3600)).await?;
        let done = oslo.done().await?;
        let spot: Vec<&String> = done.iter().filter(|l| l.starts_with("Spot")).collect();
        // 13 spot checks, and 23 weekdays from 1 to 31 January 2030.
        assert_eq!(spot.len(), 13 + 23, "{spot:?}");
        assert_eq!(oslo.jobs().await?.len(), 1, "only the nightly job is left");
        Ok(())
    }

    #[tokio::test]
    async fn schedules_are_checked_when_dispatched() -> anyhow::Result<()> {
        let host = host(None).await?;
        let service = host.service();
        let oslo = host.actor::<Stocktake>("oslo");
        let six = oslo
            .job_count(Scope::Full)
            .cron("0 0 3 * * *")
            .dispatch()
            .await;
        assert!(six.is_err_and(|e| e.to_string().contains("5 fields")));
        let both = oslo
            .job_count(Scope::Full)
            .cron("0 3 * * *")
            .every(Duration::from_secs(3600))
            .dispatch()
            .await;
        assert!(both.is_err());
        let zero = oslo
            .job_count(Scope::Full)
            .every(Duration::ZERO)
            .dispatch()
            .await;
        assert!(zero.is_err());
        // Untyped: a cron schedule is a parsed `francis::cron::Cron`.
        let job = service
            .dispatch_job(
                "stocktake",
                "oslo",
                "count",
                JobSpec {
                    cron: Some("0 3 * * *".parse()?),
                    data: Some(Envelope::json(&"Full")?),
                    ..JobSpec::default()
                },
            )
            .await?;
        host.advance(Duration::from_secs(3 * 3600)).await?;
        assert_eq!(oslo.done().await?, ["Full at 2030-01-01T03:00:00Z"]);
        assert!(oslo.cancel_job(job.as_str()).await?);
        // Only `#[job]` methods can be dispatched, and a key is a name without '/'.
        let not_a_job = service
            .dispatch_job("stocktake", "oslo", "done", JobSpec::default())
            .await;
        assert!(not_a_job.is_err_and(|e| e.to_string().contains("count")));
        let bad_key = oslo.job_count(Scope::Full).key("a/b").dispatch().await;
        assert!(bad_key.is_err());
        // A job method cannot be called.
        let call = service
            .invoke("stocktake", "oslo", "count", Envelope::json(&"Full")?)
            .await;
        assert!(matches!(call, Err(Error::NotInvokable { .. })));
        Ok(())
    }
}

mod singletons {
    use super::*;
    use francis::host::SINGLETON_ID;
    use guide::security::with_keys;
    use guide::singletons::{RateSettings, RateSource, Rates, RatesError, convert, with_rates};

    fn settings(base: &str) -> RateSettings {
        RateSettings {
            base: base.into(),
            currencies: vec!["EUR".into(), "NOK".into(), "USD".into()],
            refresh: Duration::from_secs(6 * 3600),
        }
    }

    async fn host(source: &RateSource) -> anyhow::Result<TestHost> {
        Ok(TestHost::builder()
            .data(source.clone())
            .register_singleton::<Rates>(&settings("EUR"))
            .build()
            .await?)
    }

    #[tokio::test]
    async fn bootstrap_runs_before_any_call_once_per_activation() -> anyhow::Result<()> {
        let source = RateSource::default();
        let host = host(&source).await?;
        let service = host.service();
        // Built means touched: active and bootstrapped before anyone called it.
        assert!(host.is_active::<Rates>(SINGLETON_ID));
        assert_eq!(source.fetches(), 1);
        assert_eq!(convert(&service, 10.0, "NOK").await?, 115.0);
        assert!(matches!(
            convert(&service, 1.0, "JPY").await,
            Err(CallError::Actor(RatesError::Unknown(c))) if c == "JPY"
        ));
        let rates = host.actor::<Rates>(SINGLETON_ID);
        assert_eq!(rates.jobs().await?.len(), 1);

        // It never idles out (the default timeout is 5 minutes), and calls do not bootstrap
        // it again.
        host.advance(Duration::from_secs(3600)).await?;
        assert!(host.is_active::<Rates>(SINGLETON_ID));
        assert_eq!(rates.base().await?, "EUR");
        assert_eq!(source.fetches(), 1);
        // The refresh job runs 6 hours after the bootstrap.
        host.advance(Duration::from_secs(5 * 3600)).await?;
        assert_eq!(source.fetches(), 2);

        // A new activation bootstraps again, before the call that activated it; the keyed
        // refresh job stays one job.
        host.halt_all().await;
        assert!(!host.is_active::<Rates>(SINGLETON_ID));
        assert_eq!(convert(&service, 2.0, "USD").await?, 2.5);
        assert_eq!(source.fetches(), 3);
        assert_eq!(rates.jobs().await?.len(), 1);

        // Another ID of the type is an ordinary actor: it is not bootstrapped.
        assert!(matches!(
            host.actor::<Rates>("other").base().await,
            Err(CallError::Actor(RatesError::NotLoaded))
        ));
        // Nobody can invoke the bootstrap hook.
        let refused = service
            .invoke(
                "rates",
                SINGLETON_ID,
                "francis/bootstrap",
                Envelope::empty(),
            )
            .await;
        assert!(matches!(refused, Err(Error::InvalidName { .. })));
        assert!(matches!(
            service
                .invoke("rates", SINGLETON_ID, "bootstrap", Envelope::empty())
                .await,
            Err(Error::UnknownMethod { .. })
        ));
        assert_eq!(source.fetches(), 3);
        Ok(())
    }

    #[tokio::test]
    async fn a_failed_bootstrap_is_tried_again_by_the_host_and_before_the_next_call()
    -> anyhow::Result<()> {
        // The first two tries fail: the host's touch tries again, 500 ms later.
        let source = RateSource::default();
        source.fail_next(2);
        let host = host(&source).await?;
        assert_eq!(source.fetches(), 3);
        let rates = host.actor::<Rates>(SINGLETON_ID);
        assert_eq!(rates.base().await?, "EUR");

        // A new activation whose first bootstrap fails: the call that activated it tries the
        // hook again ahead of itself, and finds it done.
        host.halt_all().await;
        source.fail_next(1);
        assert_eq!(rates.base().await?, "EUR");
        assert_eq!(source.fetches(), 5);
        // While the hook keeps failing, calls run on the activation as it is.
        host.halt_all().await;
        source.fail_next(2);
        assert!(matches!(
            rates.base().await,
            Err(CallError::Actor(RatesError::NotLoaded))
        ));
        // The next call tries the hook once more, and it succeeds.
        assert_eq!(rates.base().await?, "EUR");
        assert_eq!(source.fetches(), 8);
        Ok(())
    }

    /// Start a host with the rates on `db` and run it until the returned sender fires.
    async fn start(
        db: &std::path::Path,
        settings: &RateSettings,
        source: &RateSource,
    ) -> anyhow::Result<(
        Service,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<Result<(), Error>>,
    )> {
        let address = francis::testing::free_local_address();
        let builder = with_keys(&address, db, &["the rates cluster key, at least 32 bytes"]);
        let host = with_rates(builder, settings, source.clone())
            .build()
            .await?;
        let service = host.service();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(host.run(async move {
            let _ = stopped.await;
        }));
        Ok((service, stop, run))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hosts_starting_together_bootstrap_it_once_with_the_owners_data() -> anyhow::Result<()>
    {
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("cluster.db");
        // Settings that differ show whose were used (keep them the same in a real cluster).
        let (eur, nok) = (RateSource::default(), RateSource::default());
        let (in_eur, in_nok) = (settings("EUR"), settings("NOK"));
        let (a, b) = tokio::join!(start(&db, &in_eur, &eur), start(&db, &in_nok, &nok));
        let ((a, stop_a, run_a), (b, stop_b, run_b)) = (a?, b?);
        for _ in 0..100 {
            if eur.fetches() + nok.fetches() > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Both hosts have touched it by now; give a late touch time to (not) bootstrap again.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(eur.fetches() + nok.fetches(), 1);
        // Its owner bootstrapped it, with its own settings; both hosts reach that instance.
        let owners = if eur.fetches() == 1 { "EUR" } else { "NOK" };
        for service in [&a, &b] {
            let base = service.actor::<Rates>(SINGLETON_ID).base().await?;
            assert_eq!(base, owners);
        }
        stop_a.send(()).ok();
        stop_b.send(()).ok();
        run_a.await??;
        run_b.await??;
        Ok(())
    }
}

mod builtin {
    use super::*;
    use francis::builtin::ratelimit::RateLimiter;
    use francis::builtin::signal::{SignalError, Signals};
    use guide::builtin::{
        Payment, Reply, api_limiter, await_payment, is_paid, payment_confirmed, payment_signals,
        serve,
    };

    async fn host() -> anyhow::Result<TestHost> {
        Ok(TestHost::builder()
            .builtin(api_limiter())
            .builtin(payment_signals())
            .build()
            .await?)
    }

    fn paid(reference: &str) -> Payment {
        Payment {
            amount_cents: 4200,
            reference: reference.into(),
        }
    }

    #[tokio::test]
    async fn a_client_gets_its_burst_then_one_request_per_token() -> anyhow::Result<()> {
        let host = host().await?;
        let service = host.service();
        assert_eq!(
            RateLimiter::handle(&service, "api").actor_type(),
            "francis.builtin.ratelimit.api"
        );
        // A full bucket: 20 at once, then a token every 100 ms.
        for _ in 0..20 {
            assert_eq!(serve(&service, "client-7").await?, Reply::Served);
        }
        let api = RateLimiter::handle(&service, "api");
        let denied = api.allow("client-7").await?;
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after, Duration::from_millis(100));
        assert_eq!(
            serve(&service, "client-7").await?,
            Reply::TooManyRequests {
                retry_after_secs: 1
            }
        );
        // Another key has a bucket of its own.
        assert_eq!(serve(&service, "client-8").await?, Reply::Served);
        host.advance(Duration::from_millis(100)).await?;
        assert_eq!(serve(&service, "client-7").await?, Reply::Served);
        assert_eq!(serve(&service, "client-8").await?, Reply::Served);
        assert!(!api.allow("client-7").await?.allowed);

        // A minute without requests: the key's actor idles out, and its bucket is forgotten
        // (it would be full again by now anyway).
        host.advance(Duration::from_secs(60)).await?;
        assert_eq!(host.active_actors(), 0);
        for _ in 0..20 {
            assert!(api.allow("client-7").await?.allowed);
        }
        // A key is a name: no '/'.
        assert!(matches!(
            api.allow("a/b").await,
            Err(Error::InvalidName { .. })
        ));
        // A limiter no host registers.
        assert!(matches!(
            RateLimiter::handle(&service, "nobody").allow("a").await,
            Err(Error::UnknownActorType { .. })
        ));
        Ok(())
    }

    #[tokio::test]
    async fn every_waiting_checkout_gets_the_first_confirmation() -> anyhow::Result<()> {
        let host = host().await?;
        let service = host.service();
        assert!(!is_paid(&service, "order-1").await?);
        let checkouts: Vec<_> = (0..2)
            .map(|_| {
                let service = service.clone();
                tokio::spawn(async move {
                    await_payment(&service, "order-1", Duration::from_secs(10)).await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(checkouts.iter().all(|c| !c.is_finished()), "parked");

        // The webhook arrives twice, the second time with other data: the first counts.
        payment_confirmed(&service, "order-1", &paid("first")).await?;
        payment_confirmed(&service, "order-1", &paid("again")).await?;
        for checkout in checkouts {
            assert_eq!(checkout.await??, Some(paid("first")));
        }
        assert!(is_paid(&service, "order-1").await?);
        let payments = Signals::handle(&service, "payments");
        assert!(matches!(
            payments.complete("order-1", &paid("again")).await,
            Err(SignalError::AlreadyCompleted { .. })
        ));
        // A late checkout is answered at once.
        assert_eq!(
            await_payment(&service, "order-1", Duration::from_millis(1)).await?,
            Some(paid("first"))
        );
        // Another order is another signal; its wait times out, in real time.
        assert_eq!(
            await_payment(&service, "order-2", Duration::from_millis(100)).await?,
            None
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_waiter_outlives_a_halt_of_its_signal() -> anyhow::Result<()> {
        let host = host().await?;
        let service = host.service();
        let checkout = {
            let service = service.clone();
            tokio::spawn(async move {
                await_payment(&service, "order-3", Duration::from_secs(10)).await
            })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        service
            .halt("francis.builtin.signal.payments", "order-3")
            .await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!checkout.is_finished(), "still waiting");
        payment_confirmed(&service, "order-3", &paid("after the halt")).await?;
        assert_eq!(checkout.await??, Some(paid("after the halt")));
        Ok(())
    }

    #[tokio::test]
    async fn confirmations_are_kept_a_week_and_held_to_4_kib() -> anyhow::Result<()> {
        let host = host().await?;
        let service = host.service();
        payment_confirmed(&service, "order-4", &paid("kept")).await?;
        // Long after its actor idled out, the completion is read back from the store.
        host.advance(Duration::from_secs(7 * 24 * 3600 - 1)).await?;
        assert_eq!(host.active_actors(), 0);
        assert!(is_paid(&service, "order-4").await?);
        // After the retention it is gone, and the signal may be completed again.
        host.advance(Duration::from_secs(1)).await?;
        assert!(!is_paid(&service, "order-4").await?);
        payment_confirmed(&service, "order-4", &paid("new")).await?;
        assert!(is_paid(&service, "order-4").await?);

        let too_large = payment_confirmed(&service, "order-5", &paid(&"x".repeat(5000))).await;
        assert!(matches!(
            too_large,
            Err(SignalError::PayloadTooLarge { limit: 4096, .. })
        ));
        assert!(!is_paid(&service, "order-5").await?);
        // Read as another type: a payload error.
        let wrong = Signals::handle(&service, "payments")
            .check::<Vec<u64>>("order-4")
            .await;
        assert!(matches!(wrong, Err(SignalError::Payload { .. })));
        Ok(())
    }

    #[tokio::test]
    async fn invalid_settings_fail_the_build_and_say_what_to_do() -> anyhow::Result<()> {
        let built = TestHost::builder()
            .builtin(RateLimiter::new("api", 0))
            .builtin(Signals::new("payments").retention(Duration::ZERO))
            .build()
            .await;
        let Err(e) = built else {
            anyhow::bail!("the build should fail");
        };
        let text = e.to_string();
        assert!(text.contains("rate is 0"), "{text}");
        assert!(text.contains("retain_forever()"), "{text}");
        Ok(())
    }
}

mod scheduled {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use francis::JobStatus;
    use francis::builtin::cron::{CronCause, CronError, CronJob};
    use francis::builtin::taskpool::{MAX_INPUT_SIZE, SubmitOptions, TaskError, TaskPool};
    use francis::model::DeadLetterQuery;
    use guide::builtin::{Payment, payment_confirmed, payment_signals};
    use guide::scheduled::{
        Receipt, ReceiptRequest, Settlement, next_settlement, receipt_pool, request_receipt,
        retry_failed_receipts, settle, settle_now, settlement,
    };

    const MINUTE: i64 = 60_000;

    fn at(time: &str) -> jiff::Timestamp {
        time.parse().expect("a valid timestamp")
    }

    fn ms(time: &str) -> i64 {
        at(time).as_millisecond()
    }

    /// Midnight UTC, 2026-12-05.
    fn t0() -> jiff::Timestamp {
        at("2026-12-05T00:00:00Z")
    }

    async fn cron_host() -> anyhow::Result<TestHost> {
        Ok(TestHost::builder()
            .start_at(t0())
            .builtin(settlement())
            .build()
            .await?)
    }

    async fn settled(service: &Service, day: &str) -> anyhow::Result<Option<Settlement>> {
        Ok(service.get_state("settlement", day).await?)
    }

    /// Whether `time` is within the 5 minutes of jitter after `nominal`.
    fn jittered(time: i64, nominal: &str) -> bool {
        (ms(nominal)..=ms(nominal) + 5 * MINUTE).contains(&time)
    }

    #[tokio::test]
    async fn the_settlement_runs_each_night_on_the_previous_day() -> anyhow::Result<()> {
        let host = cron_host().await?;
        let service = host.service();
        let status = CronJob::handle(&service, "settlement").status().await?;
        assert!(status.registered);
        assert_eq!(status.schedule.as_deref(), Some("cron 0 3 * * *"));
        assert_eq!(status.jitter, Duration::from_secs(300));
        let next = next_settlement(&service).await?.expect("scheduled");
        assert!(jittered(next.as_millisecond(), "2026-12-05T03:00:00Z"));

        for (day, total) in [
            ("2026-12-04", 1200_u64),
            ("2026-12-05", 3400),
            ("2026-12-06", 0),
        ] {
            service.set_state("statement", day, &total, None).await?;
        }
        host.advance(Duration::from_secs(3 * 24 * 3600)).await?;
        for (day, total, nominal) in [
            ("2026-12-04", 1200, "2026-12-05T03:00:00Z"),
            ("2026-12-05", 3400, "2026-12-06T03:00:00Z"),
            ("2026-12-06", 0, "2026-12-07T03:00:00Z"),
        ] {
            let done = settled(&service, day).await?.expect("settled");
            assert_eq!((done.total_cents, done.attempt), (total, 1));
            assert_eq!(done.cause, CronCause::Schedule);
            assert!(jittered(done.settled_at_ms, nominal), "{day}: {done:?}");
        }
        assert!(
            service
                .dead_jobs(&DeadLetterQuery::default())
                .await?
                .is_empty()
        );
        let next = next_settlement(&service).await?.expect("scheduled");
        assert!(jittered(next.as_millisecond(), "2026-12-08T03:00:00Z"));
        Ok(())
    }

    #[tokio::test]
    async fn a_missing_statement_is_retried_then_dead_lettered_and_replayed() -> anyhow::Result<()>
    {
        let host = cron_host().await?;
        let service = host.service();
        host.advance(Duration::from_secs(4 * 3600)).await?;
        let letters = service
            .dead_jobs(&DeadLetterQuery {
                actor_type: Some("francis.builtin.cron.settlement".into()),
                limit: 0,
            })
            .await?;
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].attempts, 5);
        assert_eq!(letters[0].last_error, "no statement for 2026-12-04 yet");
        assert_eq!(settled(&service, "2026-12-04").await?, None);
        // The schedule goes on.
        let next = next_settlement(&service).await?.expect("scheduled");
        assert!(jittered(next.as_millisecond(), "2026-12-06T03:00:00Z"));

        // The statement comes late; replayed, the failed run settles the day it was for.
        service
            .set_state("statement", "2026-12-04", &777_u64, None)
            .await?;
        assert!(service.retry_dead_job(&letters[0].id).await?.is_some());
        host.run_due_alarms().await?;
        let done = settled(&service, "2026-12-04").await?.expect("settled");
        assert_eq!((done.total_cents, done.attempt), (777, 1));
        assert_eq!(done.settled_at_ms, ms("2026-12-05T04:00:00Z"));
        assert_eq!(next_settlement(&service).await?, Some(next));
        Ok(())
    }

    #[tokio::test]
    async fn a_trigger_settles_now_and_unregistering_stops_the_schedule() -> anyhow::Result<()> {
        let host = cron_host().await?;
        let service = host.service();
        service
            .set_state("statement", "2026-12-04", &100_u64, None)
            .await?;
        host.advance(Duration::from_secs(10 * 3600)).await?;
        assert_eq!(
            settled(&service, "2026-12-04")
                .await?
                .map(|s| s.total_cents),
            Some(100)
        );
        let next = next_settlement(&service).await?;

        // The provider corrects its statement: settle again now.
        service
            .set_state("statement", "2026-12-04", &150_u64, None)
            .await?;
        let run = settle_now(&service).await?;
        assert_eq!(
            settle_now(&service).await?,
            run,
            "a trigger waiting to start"
        );
        host.run_due_alarms().await?;
        let done = settled(&service, "2026-12-04").await?.expect("settled");
        assert_eq!((done.total_cents, done.cause), (150, CronCause::Trigger));
        assert_eq!(done.settled_at_ms, ms("2026-12-05T10:00:00Z"));
        let job = service.get_job(run.as_str()).await?.expect("kept 24 hours");
        assert_eq!(job.status, JobStatus::Succeeded);
        assert_eq!(
            next_settlement(&service).await?,
            next,
            "the schedule is untouched"
        );

        let handle = CronJob::handle(&service, "settlement");
        assert!(handle.unregister().await?);
        service
            .set_state("statement", "2026-12-05", &200_u64, None)
            .await?;
        host.advance(Duration::from_secs(2 * 24 * 3600)).await?;
        assert_eq!(settled(&service, "2026-12-05").await?, None);
        let status = handle.status().await?;
        assert!(!status.registered);
        assert_eq!((status.schedule, status.next_run), (None, None));
        assert!(matches!(
            settle_now(&service).await,
            Err(CronError::NotRegistered { .. })
        ));
        Ok(())
    }

    #[tokio::test]
    async fn a_restart_with_a_new_schedule_keeps_the_next_due_time() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("shop.db");
        let first = TestHost::builder()
            .start_at(t0())
            .sqlite(&db)
            .builtin(settlement())
            .build()
            .await?;
        let due = next_settlement(&first.service()).await?.expect("scheduled");
        first.shutdown().await?;

        // An hour later the hosts come back settling at 02:30: the next run stays where it was.
        let earlier = CronJob::new("settlement")
            .cron("30 2 * * *")
            .jitter(Duration::from_secs(5 * 60))
            .max_attempts(5)
            .run(settle);
        let second = TestHost::builder()
            .start_at(at("2026-12-05T01:00:00Z"))
            .sqlite(&db)
            .builtin(earlier)
            .build()
            .await?;
        let service = second.service();
        let status = CronJob::handle(&service, "settlement").status().await?;
        assert_eq!(status.schedule.as_deref(), Some("cron 30 2 * * *"));
        assert_eq!(status.next_run, Some(due));
        for day in ["2026-12-04", "2026-12-05"] {
            service.set_state("statement", day, &1_u64, None).await?;
        }
        second.advance(Duration::from_secs(2 * 24 * 3600)).await?;
        let kept = settled(&service, "2026-12-04").await?.expect("settled");
        assert_eq!(kept.settled_at_ms, due.as_millisecond());
        let moved = settled(&service, "2026-12-05").await?.expect("settled");
        assert!(jittered(moved.settled_at_ms, "2026-12-06T02:30:00Z"));
        Ok(())
    }

    async fn shop(draining: &Arc<AtomicBool>) -> anyhow::Result<TestHost> {
        Ok(TestHost::builder()
            .start_at(t0())
            .builtin(payment_signals())
            .builtin(receipt_pool(true, draining.clone()))
            .build()
            .await?)
    }

    async fn pay(service: &Service, order: &str) -> anyhow::Result<()> {
        let payment = Payment {
            amount_cents: 4200,
            reference: format!("psp-{order}"),
        };
        Ok(payment_confirmed(service, order, &payment).await?)
    }

    async fn receipt(service: &Service, order: &str) -> anyhow::Result<Option<Receipt>> {
        Ok(service.get_state("receipt", order).await?)
    }

    #[tokio::test]
    async fn a_receipt_is_rendered_once_per_order_and_signed_where_the_key_is() -> anyhow::Result<()>
    {
        let draining = Arc::new(AtomicBool::new(false));
        let host = shop(&draining).await?;
        let service = host.service();
        let receipts = TaskPool::handle(&service, "receipts");
        pay(&service, "order-1").await?;
        let task = request_receipt(&service, "order-1", false).await?;
        assert_eq!(request_receipt(&service, "order-1", false).await?, task);
        host.run_due_alarms().await?;
        assert_eq!(
            receipt(&service, "order-1").await?,
            Some(Receipt {
                amount_cents: 4200,
                reference: "psp-order-1".into(),
                signed: false,
            })
        );
        let info = receipts.get(task.as_str()).await?.expect("kept 24 hours");
        assert_eq!((info.status, info.attempts), (JobStatus::Succeeded, 0));
        assert_eq!(info.key.actor_id, "order-1", "the key names the worker");
        assert_eq!(
            request_receipt(&service, "order-1", false).await?,
            task,
            "a success keeps its key"
        );

        pay(&service, "order-2").await?;
        let signed = request_receipt(&service, "order-2", true).await?;
        host.run_due_alarms().await?;
        assert!(
            receipt(&service, "order-2")
                .await?
                .expect("rendered")
                .signed
        );
        let info = receipts.get(signed.as_str()).await?.expect("kept");
        assert_eq!(info.key.actor_type, "francis.builtin.taskpool.receipts.hsm");
        Ok(())
    }

    #[tokio::test]
    async fn an_unpaid_order_is_retried_dead_lettered_and_retried_on_demand() -> anyhow::Result<()>
    {
        let draining = Arc::new(AtomicBool::new(false));
        let host = shop(&draining).await?;
        let service = host.service();
        let receipts = TaskPool::handle(&service, "receipts");
        let task = request_receipt(&service, "order-3", false).await?;
        host.advance(Duration::from_secs(120)).await?;
        let info = receipts.get(task.as_str()).await?.expect("dead-lettered");
        assert_eq!((info.status, info.attempts), (JobStatus::DeadLettered, 4));
        assert_eq!(
            info.last_error.as_deref(),
            Some("order order-3 is not paid yet")
        );
        assert_eq!(receipts.dead_letters().await?.len(), 1);

        pay(&service, "order-3").await?;
        let retried = retry_failed_receipts(&service).await?;
        assert_eq!(retried.len(), 1);
        assert_ne!(retried[0], task);
        host.run_due_alarms().await?;
        assert!(receipt(&service, "order-3").await?.is_some());
        assert!(retry_failed_receipts(&service).await?.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn a_task_turned_away_counts_no_attempt_and_waits_for_a_host() -> anyhow::Result<()> {
        let draining = Arc::new(AtomicBool::new(true));
        let host = shop(&draining).await?;
        let service = host.service();
        let receipts = TaskPool::handle(&service, "receipts");
        pay(&service, "order-4").await?;
        let task = request_receipt(&service, "order-4", false).await?;
        host.advance(Duration::from_secs(60)).await?;
        let info = receipts.get(task.as_str()).await?.expect("pending");
        assert_eq!((info.status, info.attempts), (JobStatus::Pending, 0));
        assert_eq!(receipt(&service, "order-4").await?, None);

        // Cancelled while it waits: it never runs.
        pay(&service, "order-5").await?;
        let cancelled = request_receipt(&service, "order-5", false).await?;
        assert!(receipts.cancel(cancelled.as_str()).await?);
        assert_eq!(receipts.get(cancelled.as_str()).await?, None);

        draining.store(false, Ordering::Relaxed);
        host.advance(Duration::from_secs(10)).await?;
        let info = receipts.get(task.as_str()).await?.expect("kept");
        assert_eq!((info.status, info.attempts), (JobStatus::Succeeded, 0));
        assert!(receipt(&service, "order-4").await?.is_some());
        assert_eq!(receipt(&service, "order-5").await?, None);
        Ok(())
    }

    #[tokio::test]
    async fn inputs_are_bounded_and_invalid_settings_fail_the_build() -> anyhow::Result<()> {
        let draining = Arc::new(AtomicBool::new(false));
        let host = shop(&draining).await?;
        let huge = ReceiptRequest {
            order: "x".repeat(MAX_INPUT_SIZE),
            business: false,
        };
        let refused = TaskPool::handle(&host.service(), "receipts")
            .submit(&huge, SubmitOptions::default())
            .await;
        assert!(matches!(refused, Err(TaskError::InputTooLarge { .. })));

        let built = TestHost::builder()
            .builtin(
                CronJob::new("settlement")
                    .cron("0 3 * * *")
                    .every(Duration::from_secs(3600))
                    .run(settle),
            )
            .builtin(TaskPool::new("receipts").concurrency(0))
            .build()
            .await;
        let Err(e) = built else {
            anyhow::bail!("the build should fail");
        };
        let text = e.to_string();
        assert!(text.contains("2 schedules given"), "{text}");
        assert!(text.contains("no handler"), "{text}");
        assert!(text.contains("concurrency is 0"), "{text}");
        Ok(())
    }
}

mod lifecycle {
    use super::*;
    use guide::lifecycle::{Batch, FLUSH_EVERY, PageHits};

    #[tokio::test]
    async fn buffered_hits_are_flushed_when_the_activation_ends() -> anyhow::Result<()> {
        let host = TestHost::builder().register::<PageHits>().build().await?;
        let page = host.actor::<PageHits>("home");
        for _ in 0..FLUSH_EVERY + 5 {
            page.hit().await?;
        }
        let stored: Option<u64> = host.service().get_state("page_hits", "home").await?;
        assert_eq!(stored, Some(FLUSH_EVERY), "5 hits still buffered");
        // Idle deactivation runs the hook, which writes the rest.
        host.advance(Duration::from_secs(5 * 60)).await?;
        assert!(!host.is_active::<PageHits>("home"));
        let stored: Option<u64> = host.service().get_state("page_hits", "home").await?;
        assert_eq!(stored, Some(FLUSH_EVERY + 5));
        assert_eq!(page.total().await?, FLUSH_EVERY + 5);
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_run_stops_early_when_halted_and_keeps_its_progress() -> anyhow::Result<()> {
        let host = TestHost::builder().register::<Batch>().build().await?;
        let batch = host.actor::<Batch>("nightly");
        let running = tokio::spawn({
            let batch = batch.clone();
            async move { batch.run(10_000).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        host.halt_all().await;
        let ran = running.await??;
        assert!(ran > 0 && ran < 10_000, "ran {ran} steps");
        assert_eq!(batch.done().await?, ran);

        // `reset` halts its own activation after the turn.
        assert!(host.is_active::<Batch>("nightly"));
        batch.reset().await?;
        for _ in 0..100 {
            if !host.is_active::<Batch>("nightly") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!host.is_active::<Batch>("nightly"));
        assert_eq!(batch.done().await?, 0);
        Ok(())
    }

    #[tokio::test]
    async fn active_only_calls_never_activate() -> anyhow::Result<()> {
        let host = TestHost::builder().register::<PageHits>().build().await?;
        let page = host.actor::<PageHits>("home");
        assert!(matches!(
            page.active_only().total().await,
            Err(CallError::Francis(Error::NotActive { .. }))
        ));
        page.hit().await?;
        assert_eq!(page.active_only().total().await?, 1);
        Ok(())
    }
}

mod calling {
    use super::*;
    use guide::calling::{Inventory, Order, OrderStatus};

    #[tokio::test]
    async fn orders_wait_for_a_restock_without_a_call_cycle() -> anyhow::Result<()> {
        let host = TestHost::builder()
            .register::<Inventory>()
            .register::<Order>()
            .build()
            .await?;
        let shelf = host.actor::<Inventory>("sku-1");
        shelf.restock(1).await?;
        let first = host.actor::<Order>("o1");
        let second = host.actor::<Order>("o2");
        assert_eq!(first.place("sku-1".into()).await?, OrderStatus::Reserved);
        assert_eq!(second.place("sku-1".into()).await?, OrderStatus::Waiting);

        shelf.restock(5).await?;
        assert_eq!(host.run_due_alarms().await?, 1);
        assert_eq!(second.status().await?, OrderStatus::Reserved);
        Ok(())
    }

    /// Calls `Pong`, which calls back: the cycle the chapter warns about.
    struct Ping {
        ctx: ActorContext,
    }

    #[derive(Debug, Serialize, Deserialize, thiserror::Error)]
    #[error("{0}")]
    struct CycleError(String);

    impl From<Error> for CycleError {
        fn from(e: Error) -> Self {
            CycleError(e.to_string())
        }
    }

    #[francis::actor]
    impl Ping {
        fn activate(ctx: &ActorContext) -> Self {
            Ping { ctx: ctx.clone() }
        }

        pub async fn start(&mut self) -> Result<(), CycleError> {
            let pong: ActorRef<Pong> = self.ctx.service().actor(self.ctx.id());
            pong.bounce().await.map_err(|e| CycleError(e.to_string()))
        }

        pub async fn back(&mut self) -> Result<(), CycleError> {
            Ok(())
        }
    }

    struct Pong {
        ctx: ActorContext,
    }

    #[francis::actor]
    impl Pong {
        fn activate(ctx: &ActorContext) -> Self {
            Pong { ctx: ctx.clone() }
        }

        pub async fn bounce(&mut self) -> Result<(), CycleError> {
            let ping: ActorRef<Ping> = self.ctx.service().actor(self.ctx.id());
            ping.back().await.map_err(|e| CycleError(e.to_string()))
        }
    }

    #[tokio::test]
    async fn a_call_cycle_waits_forever() -> anyhow::Result<()> {
        let host = TestHost::builder()
            .register::<Ping>()
            .register::<Pong>()
            .shutdown_grace_period(Duration::from_millis(100))
            .build()
            .await?;
        let ping = host.actor::<Ping>("p");
        let waited = tokio::time::timeout(Duration::from_secs(2), ping.start()).await;
        assert!(waited.is_err(), "the cycle never completes on its own");
        // Halting cancels the stuck turns after the grace period.
        host.halt_all().await;
        Ok(())
    }
}

mod cluster {
    use super::*;
    use guide::methods::Account;
    use guide::security::{ca_fingerprint, with_keys};

    const OLD: &str = "the old cluster key, at least 32 bytes long";
    const NEW: &str = "the new cluster key, also 32 bytes or more";

    /// Build a host from `keys` and run it until the returned sender fires.
    async fn start(
        db: &std::path::Path,
        keys: &[&str],
    ) -> anyhow::Result<(
        Service,
        String,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<Result<(), Error>>,
    )> {
        let address = francis::testing::free_local_address();
        let host = with_keys(&address, db, keys)
            .register::<Account>()
            .build()
            .await?;
        let fingerprint = ca_fingerprint(&host).unwrap_or_default();
        let service = host.service();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(host.run(async move {
            let _ = stopped.await;
        }));
        Ok((service, fingerprint, stop, run))
    }

    /// Every pair of neighbouring steps of a rotation can call each other both ways.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hosts_one_rotation_step_apart_call_each_other() -> anyhow::Result<()> {
        let steps: [&[&str]; 4] = [&[OLD], &[OLD, NEW], &[NEW, OLD], &[NEW]];
        for pair in steps.windows(2) {
            let dir = tempfile::tempdir()?;
            let db = dir.path().join("cluster.db");
            let (a, print_a, stop_a, run_a) = start(&db, pair[0]).await?;
            let (b, print_b, stop_b, run_b) = start(&db, pair[1]).await?;
            assert_eq!(
                print_a == print_b,
                pair[0][0] == pair[1][0],
                "same first key, same fingerprint"
            );
            // 16 actors: both hosts own some, so calls cross in both directions.
            for i in 0..16 {
                let id = format!("acct-{i}");
                a.actor::<Account>(id.clone()).deposit(1).await?;
                let seen = b.actor::<Account>(id).balance().await?;
                assert_eq!(seen, 1, "{pair:?}");
            }
            stop_a.send(()).ok();
            stop_b.send(()).ok();
            run_a.await??;
            run_b.await??;
        }
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_guide_host_builds_and_serves() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let address = francis::testing::free_local_address();
        let host = guide::options::build_host(&address, &dir.path().join("guide.db"), OLD).await?;
        let alice = host.service().actor::<Account>("alice");
        assert_eq!(alice.deposit(5).await?, 5);
        let run = tokio::spawn(host.run(async {}));
        run.await??;
        Ok(())
    }
}
