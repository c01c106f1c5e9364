//! Conformance cases for durable jobs: dispatching with idempotency keys (in a namespace of
//! their own, apart from plain alarms), status through the alarm engine, dead letters of jobs
//! and their retry, cancelling and purging.

use super::*;

fn job(method: &str, due_ms: i64, key: Option<&str>) -> JobRecord {
    JobRecord {
        method: method.into(),
        due_ms,
        interval: None,
        cron: None,
        ttl_ms: None,
        data: Some(vec![7, 7]),
        idempotency_key: key.map(str::to_owned),
    }
}

pub(super) async fn jobs_keys_win_first_and_never_meet_a_plain_alarm(h: Harness) {
    let k = key("order", "1");
    // A plain alarm named like the job's key is a different thing.
    h.alarm(&k, "welcome", h.now() + 60_000).await;
    let first = h
        .store
        .dispatch_job(&k, &job("ship", h.now(), Some("welcome")))
        .await
        .unwrap();
    let again = h
        .store
        .dispatch_job(&k, &job("other", h.now() + 5, Some("welcome")))
        .await
        .unwrap();
    assert_eq!(first, again, "the first write wins");
    let alarm = h.store.get_alarm(&k, "welcome").await.unwrap().unwrap();
    assert_eq!(alarm.handler, "ring", "the plain alarm is untouched");

    // Without a key every dispatch is a job of its own.
    let a = h
        .store
        .dispatch_job(&k, &job("ship", h.now(), None))
        .await
        .unwrap();
    let b = h
        .store
        .dispatch_job(&k, &job("ship", h.now(), None))
        .await
        .unwrap();
    assert_ne!(a, b);

    let info = h.store.get_job(&first).await.unwrap().unwrap();
    assert_eq!(info.status, JobStatus::Pending);
    assert_eq!(info.method, "ship");
    assert_eq!(info.key, k);
    assert_eq!(info.idempotency_key.as_deref(), Some("welcome"));
    assert_eq!(info.attempts, 0);
    assert_eq!(info.due_ms, Some(h.now()));
    assert_eq!(
        h.store.get_job(&a).await.unwrap().unwrap().idempotency_key,
        None
    );

    let listed: Vec<String> = h
        .store
        .list_jobs(&k)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.job_id)
        .collect();
    let mut expected = vec![first.clone(), a, b];
    expected.sort();
    assert_eq!(listed, expected, "jobs only, by ID");
    assert!(
        h.store
            .list_jobs(&key("order", "2"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(h.store.get_job("no-such-job").await.unwrap(), None);

    // Concurrent dispatches of one key store one job.
    let race = job("ship", h.now(), Some("race"));
    let (x, y) = tokio::join!(
        h.store.dispatch_job(&k, &race),
        h.store.dispatch_job(&k, &race)
    );
    assert_eq!(x.unwrap(), y.unwrap());
}

pub(super) async fn jobs_report_running_retries_and_success(h: Harness) {
    let a = h.host("127.0.0.1:7000", &[("order", 0)]).await;
    let k = key("order", "1");
    let mut repeating = job("tick", h.now() + 3_600_000, None);
    repeating.cron = Some("0 3 * * *".into());
    let tick = h.store.dispatch_job(&k, &repeating).await.unwrap();
    let id = h
        .store
        .dispatch_job(&k, &job("ship", h.now(), Some("once")))
        .await
        .unwrap();
    let leases = h.fetch(&[&a], 10).await;
    assert_eq!(leases.len(), 1, "only the due job is leased");
    let lease = leases[0].clone();
    assert_eq!(lease.alarm_id, id, "a job's lease names its job ID");
    assert_eq!(
        h.store.get_job(&id).await.unwrap().unwrap().status,
        JobStatus::Running
    );
    let cron = h.store.get_job(&tick).await.unwrap().unwrap();
    assert_eq!(cron.status, JobStatus::Pending);
    assert_eq!(cron.cron.as_deref(), Some("0 3 * * *"));
    let record = h.store.get_leased_alarm(&lease).await.unwrap().unwrap();
    assert_eq!(
        (record.handler.as_str(), record.data),
        ("ship", Some(vec![7, 7]))
    );

    let retry = AlarmCompletion::Retry {
        due_ms: h.now() + 1000,
        attempts: 1,
        keep_lease: false,
    };
    h.store
        .complete_leased_alarm(&lease, &retry, LEASE)
        .await
        .unwrap()
        .unwrap();
    let info = h.store.get_job(&id).await.unwrap().unwrap();
    assert_eq!((info.status, info.attempts), (JobStatus::Pending, 1));

    h.advance_ms(1000);
    let lease = h.fetch(&[&a], 10).await.remove(0);
    h.store
        .complete_leased_alarm(&lease, &AlarmCompletion::Succeeded, LEASE)
        .await
        .unwrap()
        .unwrap();
    let done = h.store.get_job(&id).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.attempts, 1, "failed executions before the success");
    assert_eq!(done.finished_ms, Some(h.now()));
    assert_eq!(done.idempotency_key.as_deref(), Some("once"));
    assert_eq!(
        h.store
            .dispatch_job(&k, &job("ship", h.now(), Some("once")))
            .await
            .unwrap(),
        id,
        "a key stays taken while its success is remembered"
    );

    // Past the retention the result goes, and the key is free again.
    h.advance_ms(crate::model::jobs::JOB_RESULT_RETENTION.as_millis() as u64 + 1);
    h.store.heartbeat(&a).await.unwrap_or_default();
    let stats = h.direct.cleanup().await.unwrap();
    assert_eq!(stats.job_results, 1);
    assert_eq!(h.store.get_job(&id).await.unwrap(), None);
    let fresh = h
        .store
        .dispatch_job(&k, &job("ship", h.now(), Some("once")))
        .await
        .unwrap();
    assert_ne!(fresh, id);
}

pub(super) async fn jobs_dead_letters_keep_the_job_and_retry_it_once(h: Harness) {
    let a = h.host("127.0.0.1:7000", &[("order", 0)]).await;
    let k = key("order", "1");
    let id = h
        .store
        .dispatch_job(&k, &job("ship", h.now(), Some("k")))
        .await
        .unwrap();
    h.alarm(&k, "plain", h.now()).await;
    let leases = h.fetch(&[&a], 10).await;
    assert_eq!(leases.len(), 2);
    for lease in &leases {
        assert!(h.store.record_dead_letter(lease, 3, "boom").await.unwrap());
        h.store
            .complete_leased_alarm(lease, &AlarmCompletion::Delete, LEASE)
            .await
            .unwrap()
            .unwrap();
    }
    let info = h.store.get_job(&id).await.unwrap().unwrap();
    assert_eq!(info.status, JobStatus::DeadLettered);
    assert_eq!(info.attempts, 3);
    assert_eq!(info.last_error.as_deref(), Some("boom"));
    assert_eq!(info.finished_ms, Some(h.now()));

    let dead = h
        .store
        .list_dead_jobs(&DeadLetterQuery::default())
        .await
        .unwrap();
    assert_eq!(dead.len(), 1, "only the job's letter: {dead:?}");
    let letter = &dead[0];
    assert_eq!(letter.job_id.as_deref(), Some(id.as_str()));
    assert_eq!(letter.handler, "ship");
    assert_eq!(letter.data, Some(vec![7, 7]));
    assert_eq!(
        h.store.get_dead_job(&letter.id).await.unwrap().as_ref(),
        Some(letter)
    );
    let filtered = DeadLetterQuery {
        actor_type: Some("other".into()),
        ..DeadLetterQuery::default()
    };
    assert!(h.store.list_dead_jobs(&filtered).await.unwrap().is_empty());

    // Two retries at once: one dispatches a fresh one-shot job.
    let (x, y) = tokio::join!(
        h.store.retry_dead_job(&letter.id),
        h.store.retry_dead_job(&letter.id)
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert!(x.is_some() != y.is_some(), "{x:?} {y:?}");
    let fresh = x.or(y).unwrap();
    assert_ne!(fresh, id);
    let info = h.store.get_job(&fresh).await.unwrap().unwrap();
    assert_eq!(info.status, JobStatus::Pending);
    assert_eq!(info.idempotency_key, None);
    assert_eq!(info.due_ms, Some(h.now()));
    assert_eq!(h.store.get_dead_job(&letter.id).await.unwrap(), None);
    let lease = h.fetch(&[&a], 10).await.remove(0);
    let record = h.store.get_leased_alarm(&lease).await.unwrap().unwrap();
    assert_eq!(
        (record.handler.as_str(), record.data),
        ("ship", Some(vec![7, 7]))
    );
}

pub(super) async fn jobs_cancel_delete_and_purge_touch_jobs_only(h: Harness) {
    let a = h.host("127.0.0.1:7000", &[("order", 0)]).await;
    let k = key("order", "1");
    let id = h
        .store
        .dispatch_job(&k, &job("ship", h.now() + 60_000, None))
        .await
        .unwrap();
    assert!(!h.store.cancel_job(&key("order", "2"), &id).await.unwrap());
    assert!(h.store.cancel_job(&k, &id).await.unwrap());
    assert!(!h.store.cancel_job(&k, &id).await.unwrap());
    assert_eq!(h.store.get_job(&id).await.unwrap(), None);

    // One dead letter of a job and one of a plain alarm, 20 s apart.
    h.store
        .dispatch_job(&k, &job("ship", h.now(), None))
        .await
        .unwrap();
    let lease = h.fetch(&[&a], 10).await.remove(0);
    assert!(h.store.record_dead_letter(&lease, 1, "old").await.unwrap());
    h.store
        .complete_leased_alarm(&lease, &AlarmCompletion::Delete, LEASE)
        .await
        .unwrap();
    h.advance_ms(20_000);
    h.store.heartbeat(&a).await.unwrap();
    h.alarm(&k, "plain", h.now()).await;
    let lease = h.fetch(&[&a], 10).await.remove(0);
    assert!(
        h.store
            .record_dead_letter(&lease, 1, "alarm")
            .await
            .unwrap()
    );

    let plain = ops_letters(&h).await;
    let alarm_letter = plain.iter().find(|d| d.job_id.is_none()).unwrap();
    assert_eq!(h.store.get_dead_job(&alarm_letter.id).await.unwrap(), None);
    assert!(!h.store.delete_dead_job(&alarm_letter.id).await.unwrap());
    assert_eq!(
        h.store.purge_dead_jobs(h.now()).await.unwrap(),
        1,
        "only the job's letter is older"
    );
    assert!(
        h.store
            .list_dead_jobs(&DeadLetterQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(ops_letters(&h).await.len(), 1, "the alarm's letter stays");
}

/// Every dead letter, from the store that keeps them.
async fn ops_letters(h: &Harness) -> Vec<DeadLetter> {
    h.direct
        .operations()
        .unwrap()
        .list_dead_letters(&DeadLetterQuery::default())
        .await
        .unwrap()
}

pub(super) async fn jobs_of_one_key_and_time_keep_a_dead_letter_each(h: Harness) {
    let a = h.host("127.0.0.1:7000", &[("order", 0)]).await;
    let k = key("order", "1");
    let due = h.now();
    let mut ids = Vec::new();
    for _ in 0..2 {
        // The second job takes the key the first left behind, for the same time.
        let id = h
            .store
            .dispatch_job(&k, &job("ship", due, Some("k")))
            .await
            .unwrap();
        let lease = h.fetch(&[&a], 10).await.remove(0);
        assert!(h.store.record_dead_letter(&lease, 1, "boom").await.unwrap());
        h.store
            .complete_leased_alarm(&lease, &AlarmCompletion::Delete, LEASE)
            .await
            .unwrap()
            .unwrap();
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1]);
    for id in &ids {
        let info = h.store.get_job(id).await.unwrap().unwrap();
        assert_eq!(info.status, JobStatus::DeadLettered, "{id}");
    }
    let dead = h
        .store
        .list_dead_jobs(&DeadLetterQuery::default())
        .await
        .unwrap();
    assert_eq!(dead.len(), 2, "{dead:?}");
}
