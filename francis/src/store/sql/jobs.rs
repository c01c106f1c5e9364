//! Durable jobs in SQL: dispatching with idempotency keys, reading a job's status from its live
//! row, its remembered result or its dead letter, cancelling, and the dead letters of jobs. The
//! statements are shared; [`SqlJobs`] is stamped out for each dialect by one macro (as the
//! operations plane's records are), and the generic store delegates to it.

use async_trait::async_trait;

use super::SqlStore;
use super::dialect::Dialect;
use super::operations::{DEAD_LETTER_FIELDS, list_dead_letters_sql};
use super::rows::{DeadLetterRow, JobRow};
use crate::model::jobs::{JOB_RESULT_RETENTION, job_alarm_name, job_key_of};
use crate::model::operations::page_size;
use crate::model::{
    ActorKey, DeadLetter, DeadLetterQuery, JobInfo, JobRecord, JobStatus, OperationsStore,
    StoreError,
};
use crate::store::rules::new_alarm_id;

/// The condition that an alarm row is a job's.
const IS_JOB: &str = "alarm_name LIKE 'job/%'";

/// Insert a job (`$1` ID, `$2`-`$4` type, ID, name, `$5`-`$11` method, due, interval, cron,
/// TTL, data), unless a row of that name exists; returns the ID written.
const INSERT_JOB: &str = "INSERT INTO francis_alarms (alarm_id, actor_type, actor_id, alarm_name,
        alarm_handler, alarm_due_time, alarm_scheduled_time, alarm_interval, alarm_cron,
        alarm_ttl_time, alarm_data, alarm_attempts)
    VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9, $10, 0)
    ON CONFLICT (actor_type, actor_id, alarm_name) DO NOTHING
    RETURNING alarm_id";

/// Remember a leased job row that succeeded (`$1`-`$3` the lease, as `valid_lease!`), before it
/// is deleted; nothing for a plain alarm's row.
pub(super) const REMEMBER_SUCCESS: &str = "INSERT INTO francis_job_results (job_id, actor_type,
        actor_id, alarm_name, job_method, job_attempts, job_finished_at)
    SELECT alarm_id, actor_type, actor_id, alarm_name, alarm_handler, alarm_attempts, $3
    FROM francis_alarms
    WHERE alarm_id = $1 AND alarm_lease_id = $2 AND alarm_lease_expiration_time >= $3
      AND alarm_name LIKE 'job/%'
    ON CONFLICT (job_id) DO NOTHING";

/// Delete results kept longer than their retention (`$1` the oldest finish time kept).
pub(super) const PRUNE_RESULTS: &str = "DELETE FROM francis_job_results WHERE job_finished_at < $1";

/// Every job of the rows `$cond` selects, as [`JobRow`]s ranked live (0), succeeded (1), dead
/// (2); `$1` is now, the condition's own parameters follow.
fn jobs_where(live: &str, result: &str, dead: &str) -> String {
    format!(
        "SELECT 0 AS rank, alarm_id AS job_id, actor_type, actor_id, alarm_name AS name,
             alarm_handler AS method, alarm_attempts AS attempts, alarm_due_time AS due_ms,
             alarm_interval AS interval, alarm_cron AS cron,
             CASE WHEN alarm_lease_id IS NOT NULL AND alarm_lease_expiration_time >= $1
                   AND alarm_due_time <= $1 THEN 'running' ELSE 'pending' END AS status,
             CAST(NULL AS TEXT) AS last_error, CAST(NULL AS BIGINT) AS finished_ms
         FROM francis_alarms WHERE {IS_JOB} AND {live}
         UNION ALL
         SELECT 1, job_id, actor_type, actor_id, alarm_name, job_method, job_attempts,
             CAST(NULL AS BIGINT), CAST(NULL AS TEXT), CAST(NULL AS TEXT), 'succeeded',
             CAST(NULL AS TEXT), job_finished_at
         FROM francis_job_results WHERE {result}
         UNION ALL
         SELECT 2, job_id, actor_type, actor_id, alarm_name, alarm_handler,
             dead_letter_attempts, CAST(NULL AS BIGINT), CAST(NULL AS TEXT), CAST(NULL AS TEXT),
             'dead_lettered', dead_letter_error, dead_letter_dropped_at
         FROM francis_dead_letters WHERE job_id IS NOT NULL AND {dead}
         ORDER BY job_id, rank, finished_ms DESC"
    )
}

/// One [`JobInfo`] per job ID, the best-ranked row of each (rows come ordered by job ID, then
/// rank).
fn one_per_job(rows: Vec<JobRow>) -> Result<Vec<JobInfo>, StoreError> {
    let mut jobs: Vec<JobInfo> = Vec::with_capacity(rows.len());
    for row in rows {
        if jobs.last().is_some_and(|j| j.job_id == row.job_id) {
            continue;
        }
        jobs.push(job_info(row)?);
    }
    Ok(jobs)
}

fn job_info(row: JobRow) -> Result<JobInfo, StoreError> {
    let status = match row.status.as_str() {
        "running" => JobStatus::Running,
        "pending" => JobStatus::Pending,
        "succeeded" => JobStatus::Succeeded,
        "dead_lettered" => JobStatus::DeadLettered,
        other => return Err(StoreError::Invalid(format!("unknown job status {other:?}"))),
    };
    let attempts = u32::try_from(row.attempts)
        .map_err(|_| StoreError::Invalid(format!("job attempts out of range: {}", row.attempts)))?;
    let idempotency_key = job_key_of(&row.name, &row.job_id).map(str::to_owned);
    Ok(JobInfo {
        job_id: row.job_id,
        key: ActorKey::new(row.actor_type, row.actor_id),
        method: row.method,
        status,
        attempts,
        due_ms: row.due_ms,
        interval: row.interval,
        cron: row.cron,
        idempotency_key,
        last_error: row.last_error,
        finished_ms: row.finished_ms,
    })
}

/// The job operations of a SQL store, one implementation per dialect.
#[async_trait]
pub(crate) trait SqlJobs {
    async fn dispatch_job_sql(&self, key: &ActorKey, job: &JobRecord)
    -> Result<String, StoreError>;
    async fn get_job_sql(&self, job_id: &str) -> Result<Option<JobInfo>, StoreError>;
    async fn list_jobs_sql(&self, key: &ActorKey) -> Result<Vec<JobInfo>, StoreError>;
    async fn cancel_job_sql(&self, key: &ActorKey, job_id: &str) -> Result<bool, StoreError>;
    async fn list_dead_jobs_sql(
        &self,
        query: &DeadLetterQuery,
    ) -> Result<Vec<DeadLetter>, StoreError>;
    async fn get_dead_job_sql(&self, id: &str) -> Result<Option<DeadLetter>, StoreError>;
    async fn delete_dead_job_sql(&self, id: &str) -> Result<bool, StoreError>;
    async fn retry_dead_job_sql(&self, id: &str) -> Result<Option<String>, StoreError>;
    async fn purge_dead_jobs_sql(&self, before_ms: i64) -> Result<u64, StoreError>;
}

/// The oldest finish time of a job result still kept at `now`.
pub(super) fn results_kept_since(now: i64) -> i64 {
    now.saturating_sub(JOB_RESULT_RETENTION.as_millis() as i64)
}

macro_rules! sql_jobs {
    ($dialect:ty) => {
        #[async_trait]
        impl SqlJobs for SqlStore<$dialect> {
            async fn dispatch_job_sql(
                &self,
                key: &ActorKey,
                job: &JobRecord,
            ) -> Result<String, StoreError> {
                self.operation("dispatch_job", async {
                    let id = new_alarm_id();
                    let name = job_alarm_name(job.idempotency_key.as_deref().unwrap_or(&id));
                    let (_turn, mut tx) = self.dialect.begin_write(&self.pool).await?;
                    if job.idempotency_key.is_some() {
                        let kept: Option<(String,)> = sqlx::query_as(
                            "SELECT alarm_id FROM francis_alarms
                             WHERE actor_type = $1 AND actor_id = $2 AND alarm_name = $3
                             UNION ALL
                             SELECT job_id FROM francis_job_results
                             WHERE actor_type = $1 AND actor_id = $2 AND alarm_name = $3
                               AND job_finished_at >= $4
                             LIMIT 1",
                        )
                        .bind(key.actor_type.as_str())
                        .bind(key.actor_id.as_str())
                        .bind(name.as_str())
                        .bind(results_kept_since(self.now()))
                        .fetch_optional(&mut *tx)
                        .await?;
                        if let Some((existing,)) = kept {
                            tx.commit().await?;
                            return Ok(existing);
                        }
                    }
                    let written: Option<(String,)> = sqlx::query_as(INSERT_JOB)
                        .bind(id.as_str())
                        .bind(key.actor_type.as_str())
                        .bind(key.actor_id.as_str())
                        .bind(name.as_str())
                        .bind(job.method.as_str())
                        .bind(job.due_ms)
                        .bind(job.interval.as_deref())
                        .bind(job.cron.as_deref())
                        .bind(job.ttl_ms)
                        .bind(job.data.as_deref())
                        .fetch_optional(&mut *tx)
                        .await?;
                    let id = match written {
                        Some((id,)) => id,
                        // A concurrent dispatch with the same key won: its row is visible now.
                        None => {
                            let (id,): (String,) = sqlx::query_as(
                                "SELECT alarm_id FROM francis_alarms
                                 WHERE actor_type = $1 AND actor_id = $2 AND alarm_name = $3",
                            )
                            .bind(key.actor_type.as_str())
                            .bind(key.actor_id.as_str())
                            .bind(name.as_str())
                            .fetch_one(&mut *tx)
                            .await?;
                            id
                        }
                    };
                    tx.commit().await?;
                    Ok(id)
                })
                .await
            }

            async fn get_job_sql(&self, job_id: &str) -> Result<Option<JobInfo>, StoreError> {
                self.operation("get_job", async {
                    let rows: Vec<JobRow> = sqlx::query_as(&jobs_where(
                        "alarm_id = $2",
                        "job_id = $2",
                        "job_id = $2",
                    ))
                    .bind(self.now())
                    .bind(job_id)
                    .fetch_all(&self.pool)
                    .await?;
                    Ok(one_per_job(rows)?.into_iter().next())
                })
                .await
            }

            async fn list_jobs_sql(&self, key: &ActorKey) -> Result<Vec<JobInfo>, StoreError> {
                self.operation("list_jobs", async {
                    let of_actor = "actor_type = $2 AND actor_id = $3";
                    let rows: Vec<JobRow> =
                        sqlx::query_as(&jobs_where(of_actor, of_actor, of_actor))
                            .bind(self.now())
                            .bind(key.actor_type.as_str())
                            .bind(key.actor_id.as_str())
                            .fetch_all(&self.pool)
                            .await?;
                    one_per_job(rows)
                })
                .await
            }

            async fn cancel_job_sql(
                &self,
                key: &ActorKey,
                job_id: &str,
            ) -> Result<bool, StoreError> {
                self.operation("cancel_job", async {
                    let done = sqlx::query(&format!(
                        "DELETE FROM francis_alarms
                         WHERE alarm_id = $1 AND actor_type = $2 AND actor_id = $3 AND {IS_JOB}"
                    ))
                    .bind(job_id)
                    .bind(key.actor_type.as_str())
                    .bind(key.actor_id.as_str())
                    .execute(&self.pool)
                    .await?;
                    Ok(done.rows_affected() > 0)
                })
                .await
            }

            async fn list_dead_jobs_sql(
                &self,
                query: &DeadLetterQuery,
            ) -> Result<Vec<DeadLetter>, StoreError> {
                self.operation("list_dead_jobs", async {
                    let rows: Vec<DeadLetterRow> = sqlx::query_as(&list_dead_letters_sql(true))
                    .bind(query.actor_type.as_deref())
                    .bind(i64::from(page_size(query.limit)))
                    .fetch_all(&self.pool)
                    .await?;
                    rows.into_iter().map(DeadLetter::try_from).collect()
                })
                .await
            }

            async fn get_dead_job_sql(&self, id: &str) -> Result<Option<DeadLetter>, StoreError> {
                self.operation("get_dead_job", async {
                    let row: Option<DeadLetterRow> = sqlx::query_as(&format!(
                        "SELECT {DEAD_LETTER_FIELDS} FROM francis_dead_letters
                         WHERE dead_letter_id = $1 AND job_id IS NOT NULL"
                    ))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                    row.map(DeadLetter::try_from).transpose()
                })
                .await
            }

            async fn delete_dead_job_sql(&self, id: &str) -> Result<bool, StoreError> {
                self.operation("delete_dead_job", async {
                    let done = sqlx::query(
                        "DELETE FROM francis_dead_letters
                         WHERE dead_letter_id = $1 AND job_id IS NOT NULL",
                    )
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                    Ok(done.rows_affected() > 0)
                })
                .await
            }

            async fn retry_dead_job_sql(&self, id: &str) -> Result<Option<String>, StoreError> {
                if self.get_dead_job_sql(id).await?.is_none() {
                    return Ok(None);
                }
                let replayed = OperationsStore::replay_dead_letter(self, id, self.now()).await?;
                Ok(replayed.map(|(_, job_id)| job_id))
            }

            async fn purge_dead_jobs_sql(&self, before_ms: i64) -> Result<u64, StoreError> {
                self.operation("purge_dead_jobs", async {
                    let done = sqlx::query(
                        "DELETE FROM francis_dead_letters
                         WHERE job_id IS NOT NULL AND dead_letter_dropped_at < $1",
                    )
                    .bind(before_ms)
                    .execute(&self.pool)
                    .await?;
                    Ok(done.rows_affected())
                })
                .await
            }
        }
    };
}

#[cfg(feature = "sqlite")]
sql_jobs!(crate::store::sqlite::SqliteDialect);
#[cfg(feature = "postgres")]
sql_jobs!(crate::store::postgres::PostgresDialect);
