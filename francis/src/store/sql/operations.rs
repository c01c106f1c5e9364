//! The operations plane's records in SQL ([`OperationsStore`]): draining hosts, the audit trail
//! and dead letters. The statements are shared; the implementation is stamped out for each of
//! the two dialects by one macro, since every type it touches is then concrete.

use async_trait::async_trait;

use super::dialect::Dialect;
use super::rows::{AuditRow, DeadLetterRow};
use super::{SET_ALARM, SqlStore};
use crate::model::jobs::job_alarm_name;
use crate::model::operations::{
    MAX_AUDIT_DETAIL_BYTES, MAX_RECORDED_ERROR_BYTES, bounded_text, page_size,
};
use crate::model::{
    AlarmRecord, AuditQuery, AuditRecord, AuditResult, DeadLetter, DeadLetterQuery,
    OperationsStore, StoreError,
};
use crate::store::rules::new_alarm_id;

/// The columns of an [`AuditRow`].
const AUDIT_COLUMNS: &str = "SELECT audit_id, request_id, audit_action AS action,
    audit_target AS target, audit_principal AS principal, audit_started_at AS started_ms,
    audit_finished_at AS finished_ms, audit_result AS result, audit_error AS error,
    audit_detail AS detail FROM francis_audit";

/// The fields of a [`DeadLetterRow`].
pub(super) const DEAD_LETTER_FIELDS: &str = "dead_letter_id AS id, actor_type, actor_id,
    alarm_name AS name, alarm_handler AS handler, alarm_data AS data,
    alarm_scheduled_time AS scheduled_ms, dead_letter_attempts AS attempts,
    dead_letter_error AS last_error, dead_letter_dropped_at AS dropped_ms, job_id";

/// The page of dead letters a [`DeadLetterQuery`] asks for (`$1` actor type or NULL, `$2` page
/// size), newest first; with `jobs_only`, those of jobs only.
pub(super) fn list_dead_letters_sql(jobs_only: bool) -> String {
    let jobs = if jobs_only {
        "job_id IS NOT NULL AND"
    } else {
        ""
    };
    format!(
        "SELECT {DEAD_LETTER_FIELDS} FROM francis_dead_letters
         WHERE {jobs} ($1 IS NULL OR actor_type = $1)
         ORDER BY dead_letter_dropped_at DESC, dead_letter_id DESC LIMIT $2"
    )
}

macro_rules! operations_store {
    ($dialect:ty) => {
        #[async_trait]
        impl OperationsStore for SqlStore<$dialect> {
            async fn set_host_draining(
                &self,
                host_id: &str,
                draining: bool,
            ) -> Result<bool, StoreError> {
                self.operation("set_host_draining", async {
                    let done = sqlx::query(
                        "UPDATE francis_hosts SET host_draining = $2 WHERE host_id = $1",
                    )
                    .bind(host_id)
                    .bind(i64::from(draining))
                    .execute(&self.pool)
                    .await?;
                    Ok(done.rows_affected() > 0)
                })
                .await
            }

            async fn begin_audit(
                &self,
                records: &[AuditRecord],
            ) -> Result<Vec<AuditRecord>, StoreError> {
                self.operation("begin_audit", async {
                    let (_turn, mut tx) = self.dialect.begin_write(&self.pool).await?;
                    let mut stored = Vec::with_capacity(records.len());
                    for record in records {
                        sqlx::query(
                            "INSERT INTO francis_audit (audit_id, request_id, audit_action,
                                 audit_target, audit_principal, audit_started_at,
                                 audit_finished_at, audit_result, audit_error, audit_detail)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                             ON CONFLICT (request_id, audit_target) DO NOTHING",
                        )
                        .bind(record.audit_id.as_str())
                        .bind(record.request_id.as_str())
                        .bind(record.action.as_str())
                        .bind(record.target.as_str())
                        .bind(record.principal.as_str())
                        .bind(record.started_ms)
                        .bind(record.finished_ms)
                        .bind(record.result.as_str())
                        .bind(
                            record
                                .error
                                .as_deref()
                                .map(|e| bounded_text(e, MAX_RECORDED_ERROR_BYTES)),
                        )
                        .bind(
                            record
                                .detail
                                .as_deref()
                                .map(|d| bounded_text(d, MAX_AUDIT_DETAIL_BYTES)),
                        )
                        .execute(&mut *tx)
                        .await?;
                        let row: AuditRow = sqlx::query_as(&format!(
                            "{AUDIT_COLUMNS} WHERE request_id = $1 AND audit_target = $2"
                        ))
                        .bind(record.request_id.as_str())
                        .bind(record.target.as_str())
                        .fetch_one(&mut *tx)
                        .await?;
                        stored.push(AuditRecord::try_from(row)?);
                    }
                    tx.commit().await?;
                    Ok(stored)
                })
                .await
            }

            async fn finish_audit(
                &self,
                audit_id: &str,
                finished_ms: i64,
                result: AuditResult,
                error: Option<&str>,
                detail: Option<&str>,
            ) -> Result<bool, StoreError> {
                self.operation("finish_audit", async {
                    let done = sqlx::query(
                        "UPDATE francis_audit SET audit_finished_at = $2, audit_result = $3,
                             audit_error = $4, audit_detail = $5
                         WHERE audit_id = $1 AND audit_result = 'pending'",
                    )
                    .bind(audit_id)
                    .bind(finished_ms)
                    .bind(result.as_str())
                    .bind(error.map(|e| bounded_text(e, MAX_RECORDED_ERROR_BYTES)))
                    .bind(detail.map(|d| bounded_text(d, MAX_AUDIT_DETAIL_BYTES)))
                    .execute(&self.pool)
                    .await?;
                    Ok(done.rows_affected() > 0)
                })
                .await
            }

            async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
                self.operation("list_audit", async {
                    let rows: Vec<AuditRow> = sqlx::query_as(&format!(
                        "{AUDIT_COLUMNS}
                         WHERE ($1 IS NULL OR request_id = $1)
                           AND ($2 IS NULL OR audit_started_at < $2)
                         ORDER BY audit_started_at DESC, audit_id DESC LIMIT $3"
                    ))
                    .bind(query.request_id.as_deref())
                    .bind(query.before_ms)
                    .bind(i64::from(page_size(query.limit)))
                    .fetch_all(&self.pool)
                    .await?;
                    rows.into_iter().map(AuditRecord::try_from).collect()
                })
                .await
            }

            async fn list_dead_letters(
                &self,
                query: &DeadLetterQuery,
            ) -> Result<Vec<DeadLetter>, StoreError> {
                self.operation("list_dead_letters", async {
                    let rows: Vec<DeadLetterRow> = sqlx::query_as(&list_dead_letters_sql(false))
                        .bind(query.actor_type.as_deref())
                        .bind(i64::from(page_size(query.limit)))
                        .fetch_all(&self.pool)
                        .await?;
                    rows.into_iter().map(DeadLetter::try_from).collect()
                })
                .await
            }

            async fn replay_dead_letter(
                &self,
                id: &str,
                due_ms: i64,
            ) -> Result<Option<(DeadLetter, String)>, StoreError> {
                self.operation("replay_dead_letter", async {
                    // One transaction: the letter is claimed (deleted) and its alarm set
                    // together, so concurrent replays run it once and a failure loses neither.
                    let (_turn, mut tx) = self.dialect.begin_write(&self.pool).await?;
                    let row: Option<DeadLetterRow> = sqlx::query_as(&format!(
                        "DELETE FROM francis_dead_letters WHERE dead_letter_id = $1 RETURNING {}",
                        DEAD_LETTER_FIELDS
                    ))
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(letter) = row.map(DeadLetter::try_from).transpose()? else {
                        return Ok(None);
                    };
                    let mut alarm = AlarmRecord::new(letter.handler.clone(), due_ms);
                    alarm.data = letter.data.clone();
                    // A job's letter runs as a fresh one-shot job (new ID, no key); an
                    // alarm's sets its alarm again.
                    let alarm_id = new_alarm_id();
                    let name = match letter.job_id {
                        Some(_) => job_alarm_name(&alarm_id),
                        None => letter.name.clone(),
                    };
                    sqlx::query(SET_ALARM)
                        .bind(alarm_id.as_str())
                        .bind(letter.key.actor_type.as_str())
                        .bind(letter.key.actor_id.as_str())
                        .bind(name.as_str())
                        .bind(alarm.handler.as_str())
                        .bind(alarm.due_ms)
                        .bind(alarm.scheduled_ms)
                        .bind(alarm.interval.as_deref())
                        .bind(alarm.ttl_ms)
                        .bind(alarm.data.as_deref())
                        .bind(i64::from(alarm.attempts))
                        .bind(None::<&str>)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(Some((letter, alarm_id)))
                })
                .await
            }

            async fn prune_records(&self, before_ms: i64) -> Result<(u64, u64), StoreError> {
                self.operation("prune_records", async {
                    let audit = sqlx::query(
                        "DELETE FROM francis_audit
                         WHERE audit_started_at < $1 AND audit_result <> 'pending'",
                    )
                    .bind(before_ms)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                    let letters = sqlx::query(
                        "DELETE FROM francis_dead_letters WHERE dead_letter_dropped_at < $1",
                    )
                    .bind(before_ms)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                    Ok((audit, letters))
                })
                .await
            }
        }
    };
}

#[cfg(feature = "sqlite")]
operations_store!(crate::store::sqlite::SqliteDialect);
#[cfg(feature = "postgres")]
operations_store!(crate::store::postgres::PostgresDialect);
