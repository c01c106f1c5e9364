//! The operations plane's records in SQL ([`OperationsStore`]): draining hosts, the audit trail
//! and dead letters. The statements are shared; the implementation is stamped out for each of
//! the two dialects by one macro, since every type it touches is then concrete.

use async_trait::async_trait;

use super::SqlStore;
use super::dialect::Dialect;
use super::rows::{AuditRow, DeadLetterRow};
use crate::model::operations::{
    MAX_AUDIT_DETAIL_BYTES, MAX_RECORDED_ERROR_BYTES, bounded_text, page_size,
};
use crate::model::{
    AlarmRecord, AuditQuery, AuditRecord, AuditResult, DeadLetter, DeadLetterQuery,
    OperationsStore, Store, StoreError,
};

/// The columns of an [`AuditRow`].
const AUDIT_COLUMNS: &str = "SELECT audit_id, request_id, audit_action AS action,
    audit_target AS target, audit_principal AS principal, audit_started_at AS started_ms,
    audit_finished_at AS finished_ms, audit_result AS result, audit_error AS error,
    audit_detail AS detail FROM francis_audit";

/// The columns of a [`DeadLetterRow`].
const DEAD_LETTER_COLUMNS: &str = "SELECT dead_letter_id AS id, actor_type, actor_id,
    alarm_name AS name, alarm_handler AS handler, alarm_data AS data,
    alarm_scheduled_time AS scheduled_ms, dead_letter_attempts AS attempts,
    dead_letter_error AS last_error, dead_letter_dropped_at AS dropped_ms
    FROM francis_dead_letters";

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
                    let rows: Vec<DeadLetterRow> = sqlx::query_as(&format!(
                        "{DEAD_LETTER_COLUMNS}
                         WHERE ($1 IS NULL OR actor_type = $1)
                         ORDER BY dead_letter_dropped_at DESC, dead_letter_id DESC LIMIT $2"
                    ))
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
            ) -> Result<Option<DeadLetter>, StoreError> {
                let row: Option<DeadLetterRow> = self
                    .operation("replay_dead_letter", async {
                        Ok(sqlx::query_as(&format!(
                            "{DEAD_LETTER_COLUMNS} WHERE dead_letter_id = $1"
                        ))
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?)
                    })
                    .await?;
                let Some(letter) = row.map(DeadLetter::try_from).transpose()? else {
                    return Ok(None);
                };
                // The alarm first, then the letter goes: a failure in between leaves the
                // letter to replay again, never a letter lost without its alarm.
                let mut alarm = AlarmRecord::new(letter.handler.clone(), due_ms);
                alarm.data = letter.data.clone();
                self.set_alarm(&letter.key, &letter.name, &alarm).await?;
                let deleted = self
                    .operation("replay_dead_letter", async {
                        Ok(sqlx::query(
                            "DELETE FROM francis_dead_letters WHERE dead_letter_id = $1",
                        )
                        .bind(id)
                        .execute(&self.pool)
                        .await?
                        .rows_affected())
                    })
                    .await?;
                Ok((deleted > 0).then_some(letter))
            }
        }
    };
}

#[cfg(feature = "sqlite")]
operations_store!(crate::store::sqlite::SqliteDialect);
#[cfg(feature = "postgres")]
operations_store!(crate::store::postgres::PostgresDialect);
