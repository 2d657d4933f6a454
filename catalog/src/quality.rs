//! Data quality reports (数据质量报告) as stored: one row per scoring of a library or a
//! resource, kept as a trend; and the run figures the scoring reads (a connector's last
//! successful run, what its quarantine holds by field).

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::connectors::RUN_COLUMNS;
use crate::{Catalog, Error, Result, SyncRun, now_text};

/// What a report scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QualityScope {
    /// A base library (基础库), all its fields and every connector feeding it.
    Library,
    /// A catalog resource bound to a library: its data items and its connectors.
    Resource,
}

impl QualityScope {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            QualityScope::Library => "library",
            QualityScope::Resource => "resource",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "library" => Ok(QualityScope::Library),
            "resource" => Ok(QualityScope::Resource),
            other => Err(Error::Invalid {
                field: "scope".into(),
                message: other.into(),
            }),
        }
    }
}

/// A report to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewQualityReport {
    /// Library or resource.
    pub scope: QualityScope,
    /// The library name or the resource code.
    pub name: String,
    /// The library version scored.
    pub library_version: Option<i64>,
    /// The overall score, 0–100.
    pub overall: f64,
    /// The dimensions with their rules and figures, as JSON.
    pub dimensions: serde_json::Value,
}

/// A stored report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QualityReport {
    /// Row id; higher is newer.
    pub id: i64,
    /// Library or resource.
    pub scope: QualityScope,
    /// The library name or the resource code.
    pub name: String,
    /// When it was computed (RFC 3339, UTC).
    pub computed_at: String,
    /// The library version scored.
    pub library_version: Option<i64>,
    /// The overall score, 0–100.
    pub overall: f64,
    /// The dimensions with their rules and figures.
    pub dimensions: serde_json::Value,
}

/// Quarantined rows of one run that name one field (or none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuarantineTally {
    /// The field the quarantine blames; `None` for rows refused whole (unreadable, bad cursor).
    pub field: Option<String>,
    /// Rows quarantined.
    pub rows: i64,
    /// Of them, rows refused as a repeated key (see [`DUPLICATE_REASON_MARK`]).
    pub duplicates: i64,
}

/// The words of the sync engine's reason for a repeated key ("… appears more than once in the
/// source; the first row was taken"), which set duplicates apart from invalid values.
pub const DUPLICATE_REASON_MARK: &str = "appears more than once";

const REPORT_COLUMNS: &str = "id, scope, name, computed_at, library_version, overall, dimensions";

fn report_from_row(row: &AnyRow) -> Result<QualityReport> {
    let scope: String = row.try_get("scope")?;
    let dimensions: String = row.try_get("dimensions")?;
    Ok(QualityReport {
        id: row.try_get("id")?,
        scope: QualityScope::parse(&scope)?,
        name: row.try_get("name")?,
        computed_at: row.try_get("computed_at")?,
        library_version: row.try_get("library_version")?,
        overall: row.try_get("overall")?,
        dimensions: serde_json::from_str(&dimensions).map_err(|e| Error::Invalid {
            field: "dimensions".into(),
            message: e.to_string(),
        })?,
    })
}

impl Catalog {
    /// Stores a report, stamped now.
    pub async fn save_quality_report(&self, new: &NewQualityReport) -> Result<QualityReport> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO quality_reports (scope, name, computed_at, library_version, overall, dimensions) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {REPORT_COLUMNS}"
        )))
        .bind(new.scope.code())
        .bind(&new.name)
        .bind(now_text())
        .bind(new.library_version)
        .bind(new.overall)
        .bind(new.dimensions.to_string())
        .fetch_one(&self.pool)
        .await?;
        report_from_row(&row)
    }

    /// The reports of one library or resource, newest first, at most `limit`.
    pub async fn quality_reports(&self, scope: QualityScope, name: &str, limit: i64) -> Result<Vec<QualityReport>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {REPORT_COLUMNS} FROM quality_reports WHERE scope = $1 AND name = $2 \
             ORDER BY id DESC LIMIT $3"
        )))
        .bind(scope.code())
        .bind(name)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(report_from_row)
        .collect()
    }

    /// The newest report of every library and resource ever scored.
    pub async fn latest_quality_reports(&self) -> Result<Vec<QualityReport>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {REPORT_COLUMNS} FROM quality_reports q WHERE id = \
             (SELECT MAX(id) FROM quality_reports l WHERE l.scope = q.scope AND l.name = q.name) \
             ORDER BY scope, name"
        )))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(report_from_row)
        .collect()
    }

    /// The connector's newest run that committed, if any.
    pub async fn last_succeeded_run(&self, connector_id: i64) -> Result<Option<SyncRun>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM sync_runs WHERE connector_id = $1 AND status = 'succeeded' \
             ORDER BY id DESC LIMIT 1"
        )))
        .bind(connector_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(crate::connectors::run_from_row).transpose()
    }

    /// What run `run_id` quarantined, counted by the field blamed.
    pub async fn quarantine_tally(&self, run_id: i64) -> Result<Vec<QuarantineTally>> {
        let rows = sqlx::query(
            "SELECT field, CAST(COUNT(*) AS BIGINT) AS n, \
             CAST(SUM(CASE WHEN reason LIKE $2 THEN 1 ELSE 0 END) AS BIGINT) AS duplicates \
             FROM quarantine WHERE run_id = $1 GROUP BY field ORDER BY field",
        )
        .bind(run_id)
        .bind(format!("%{DUPLICATE_REASON_MARK}%"))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(QuarantineTally {
                    field: row.try_get("field")?,
                    rows: row.try_get("n")?,
                    duplicates: row.try_get("duplicates")?,
                })
            })
            .collect()
    }
}
