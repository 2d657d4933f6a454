//! Connector configurations, sync run history and the quarantine of rejected rows.

use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::conflict_on_unique;
use crate::{Catalog, Error, Result, now_text};

/// A configured connector: one source feeding one resource's library.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Connector {
    /// Row id.
    pub id: i64,
    /// Unique name, used on the command line.
    pub name: String,
    /// Source kind (`sqlite`, …).
    pub kind: String,
    /// The department whose source this is.
    pub department_id: i64,
    /// That department's code.
    pub department_code: String,
    /// The resource (and so the library) it feeds.
    pub resource_id: i64,
    /// That resource's code.
    pub resource_code: String,
    /// The kind-specific configuration (secrets are referenced, never stored).
    pub config: serde_json::Value,
}

/// What it takes to configure a connector.
#[derive(Debug, Clone, Deserialize)]
pub struct NewConnector {
    /// Unique name.
    pub name: String,
    /// Source kind.
    pub kind: String,
    /// The department whose source this is.
    pub department_code: String,
    /// The resource it feeds.
    pub resource_code: String,
    /// Kind-specific configuration.
    pub config: serde_json::Value,
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Under way (or interrupted, if no process is running it).
    Running,
    /// Committed.
    Succeeded,
    /// Ended with an error; nothing committed.
    Failed,
}

impl RunStatus {
    pub(crate) fn code(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self> {
        match s {
            "running" => Ok(RunStatus::Running),
            "succeeded" => Ok(RunStatus::Succeeded),
            "failed" => Ok(RunStatus::Failed),
            other => Err(Error::Invalid {
                field: "status".into(),
                message: other.into(),
            }),
        }
    }
}

/// Row counts of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RunCounts {
    /// Rows read from the source.
    pub read: i64,
    /// Keys new to the library.
    pub inserted: i64,
    /// Keys whose record changed.
    pub updated: i64,
    /// Rows equal to what the library held.
    pub unchanged: i64,
    /// Rows sent to quarantine.
    pub rejected: i64,
    /// Keys marked deleted (gone from a full snapshot, or deleted in a change feed).
    pub deleted: i64,
}

/// One sync run.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SyncRun {
    /// Row id, also the run number stamped on library rows.
    pub id: i64,
    /// The connector.
    pub connector_id: i64,
    /// Start time.
    pub started_at: String,
    /// End time, when ended.
    pub finished_at: Option<String>,
    /// Status.
    pub status: RunStatus,
    /// What started it: `manual` (API), `schedule`, `cli`.
    pub trigger: String,
    /// Attempts made (retries after the source became unreachable, plus one).
    pub attempts: i64,
    /// Row counts.
    pub counts: RunCounts,
    /// The library version the run committed.
    pub library_version: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A source row that could not enter the library, with why and where.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct QuarantinedRow {
    /// Position in the source (row number, or primary key).
    pub position: String,
    /// The offending field, when one is to blame.
    pub field: Option<String>,
    /// What is wrong, in words a data officer can act on.
    pub reason: String,
    /// The row as read, as JSON.
    pub raw: serde_json::Value,
}

const CONNECTOR_COLUMNS: &str = "c.id, c.name, c.kind, c.department_id, d.code AS department_code, \
    c.resource_id, r.code AS resource_code, c.config";
const CONNECTOR_FROM: &str = "FROM connectors c JOIN departments d ON d.id = c.department_id \
    JOIN resources r ON r.id = c.resource_id";

fn connector_from_row(row: &AnyRow) -> Result<Connector> {
    let config: String = row.try_get("config")?;
    Ok(Connector {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        department_id: row.try_get("department_id")?,
        department_code: row.try_get("department_code")?,
        resource_id: row.try_get("resource_id")?,
        resource_code: row.try_get("resource_code")?,
        config: serde_json::from_str(&config).map_err(|e| Error::Invalid {
            field: "config".into(),
            message: e.to_string(),
        })?,
    })
}

pub(crate) const RUN_COLUMNS: &str = "id, connector_id, started_at, finished_at, status, rows_read, \
    rows_inserted, rows_updated, rows_unchanged, rows_rejected, rows_deleted, trigger_kind, attempts, \
    library_version, error";

pub(crate) fn run_from_row(row: &AnyRow) -> Result<SyncRun> {
    let status: String = row.try_get("status")?;
    Ok(SyncRun {
        id: row.try_get("id")?,
        connector_id: row.try_get("connector_id")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        status: RunStatus::parse(&status)?,
        trigger: row.try_get("trigger_kind")?,
        attempts: row.try_get("attempts")?,
        counts: RunCounts {
            read: row.try_get("rows_read")?,
            inserted: row.try_get("rows_inserted")?,
            updated: row.try_get("rows_updated")?,
            unchanged: row.try_get("rows_unchanged")?,
            rejected: row.try_get("rows_rejected")?,
            deleted: row.try_get("rows_deleted")?,
        },
        library_version: row.try_get("library_version")?,
        error: row.try_get("error")?,
    })
}

impl Catalog {
    /// Creates the connector or replaces its configuration when the name exists.
    pub async fn upsert_connector(&self, new: &NewConnector) -> Result<Connector> {
        let department = self.department_by_code(&new.department_code).await?;
        let resource = self.resource_by_code(&new.resource_code).await?;
        let now = now_text();
        sqlx::query(
            "INSERT INTO connectors (name, kind, department_id, resource_id, config, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (name) DO UPDATE SET \
             kind = excluded.kind, department_id = excluded.department_id, \
             resource_id = excluded.resource_id, config = excluded.config, \
             updated_at = excluded.updated_at",
        )
        .bind(&new.name)
        .bind(&new.kind)
        .bind(department.id)
        .bind(resource.id)
        .bind(new.config.to_string())
        .bind(&now)
        .execute(&self.pool)
        .await
        .map_err(conflict_on_unique("connector", &new.name))?;
        self.connector_by_name(&new.name).await
    }

    /// The connector with this name.
    pub async fn connector_by_name(&self, name: &str) -> Result<Connector> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CONNECTOR_COLUMNS} {CONNECTOR_FROM} WHERE c.name = $1"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::NotFound {
            entity: "connector",
            key: name.to_string(),
        })?;
        connector_from_row(&row)
    }

    /// All connectors by name.
    pub async fn connectors(&self) -> Result<Vec<Connector>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {CONNECTOR_COLUMNS} {CONNECTOR_FROM} ORDER BY c.name"
        )))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(connector_from_row)
        .collect()
    }

    /// The connector with this id.
    pub async fn connector_by_id(&self, id: i64) -> Result<Connector> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CONNECTOR_COLUMNS} {CONNECTOR_FROM} WHERE c.id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::NotFound {
            entity: "connector",
            key: id.to_string(),
        })?;
        connector_from_row(&row)
    }

    /// Records the start of a run and returns its id.
    pub async fn start_run(&self, connector_id: i64, trigger: &str) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO sync_runs (connector_id, started_at, status, trigger_kind) \
             VALUES ($1, $2, 'running', $3) RETURNING id",
        )
        .bind(connector_id)
        .bind(now_text())
        .bind(trigger)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("id")?)
    }

    /// Records the end of a run.
    pub async fn finish_run(
        &self,
        run_id: i64,
        status: RunStatus,
        counts: RunCounts,
        attempts: i64,
        library_version: Option<i64>,
        error: Option<&str>,
    ) -> Result<SyncRun> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE sync_runs SET finished_at = $2, status = $3, rows_read = $4, \
             rows_inserted = $5, rows_updated = $6, rows_unchanged = $7, rows_rejected = $8, \
             rows_deleted = $9, attempts = $10, library_version = $11, error = $12 \
             WHERE id = $1 RETURNING {RUN_COLUMNS}"
        )))
        .bind(run_id)
        .bind(now_text())
        .bind(status.code())
        .bind(counts.read)
        .bind(counts.inserted)
        .bind(counts.updated)
        .bind(counts.unchanged)
        .bind(counts.rejected)
        .bind(counts.deleted)
        .bind(attempts)
        .bind(library_version)
        .bind(error)
        .fetch_one(&self.pool)
        .await?;
        run_from_row(&row)
    }

    /// Settles a run a process left `running` when it ended (killed, crashed): `committed` is
    /// the library version it committed, if it got that far.
    pub async fn settle_interrupted_run(&self, run_id: i64, committed: Option<i64>) -> Result<()> {
        let (status, error) = match committed {
            Some(_) => (
                RunStatus::Succeeded,
                "interrupted after its commit: the rows are in the library, the counts were not recorded",
            ),
            None => (
                RunStatus::Failed,
                "interrupted before its commit (the process ended): nothing was committed",
            ),
        };
        sqlx::query(
            "UPDATE sync_runs SET finished_at = $2, status = $3, library_version = $4, error = $5 \
             WHERE id = $1 AND status = 'running'",
        )
        .bind(run_id)
        .bind(now_text())
        .bind(status.code())
        .bind(committed)
        .bind(error)
        .execute(&self.pool)
        .await?;
        if committed.is_none() {
            self.discard_quarantine(run_id).await?;
        }
        Ok(())
    }

    /// Runs of the connector still marked `running`, other than `except`.
    pub async fn running_runs(&self, connector_id: i64, except: i64) -> Result<Vec<SyncRun>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM sync_runs WHERE connector_id = $1 AND status = 'running' \
             AND id <> $2 ORDER BY id"
        )))
        .bind(connector_id)
        .bind(except)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(run_from_row)
        .collect()
    }

    /// Adds rows a run rejected, in one transaction (a run sends them in chunks as it goes).
    pub async fn add_quarantined(&self, run_id: i64, connector_id: i64, rows: &[QuarantinedRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let now = now_text();
        let mut tx = self.pool.begin().await?;
        for q in rows {
            sqlx::query(
                "INSERT INTO quarantine (run_id, connector_id, position, field, reason, raw, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(run_id)
            .bind(connector_id)
            .bind(&q.position)
            .bind(q.field.as_deref())
            .bind(&q.reason)
            .bind(q.raw.to_string())
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Forgets a run's quarantined rows (the run, or this attempt of it, committed nothing).
    pub async fn discard_quarantine(&self, run_id: i64) -> Result<()> {
        sqlx::query("DELETE FROM quarantine WHERE run_id = $1")
            .bind(run_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The run with this id.
    pub async fn run_by_id(&self, run_id: i64) -> Result<SyncRun> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM sync_runs WHERE id = $1"
        )))
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::NotFound {
            entity: "sync run",
            key: run_id.to_string(),
        })?;
        run_from_row(&row)
    }

    /// A connector's runs, newest first, at most `limit`.
    pub async fn runs(&self, connector_id: i64, limit: i64) -> Result<Vec<SyncRun>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM sync_runs WHERE connector_id = $1 ORDER BY id DESC LIMIT $2"
        )))
        .bind(connector_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(run_from_row)
        .collect()
    }

    /// The rows a run quarantined, in source order.
    pub async fn quarantined(&self, run_id: i64) -> Result<Vec<QuarantinedRow>> {
        let rows = sqlx::query("SELECT position, field, reason, raw FROM quarantine WHERE run_id = $1 ORDER BY id")
            .bind(run_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let raw: String = row.try_get("raw")?;
                Ok(QuarantinedRow {
                    position: row.try_get("position")?,
                    field: row.try_get("field")?,
                    reason: row.try_get("reason")?,
                    raw: serde_json::from_str(&raw).unwrap_or(serde_json::Value::String(raw)),
                })
            })
            .collect()
    }
}
