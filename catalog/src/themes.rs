//! Themed libraries (主题库 / 专题库): their declarations (SQL over other libraries, declared
//! fields, refresh) and the history of their materializations.

use std::collections::BTreeMap;

use exchange_core::{ThemeDefinition, ThemeField, UpdateCycle};
use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::conflict_on_unique;
use crate::{Catalog, Error, Result, RunStatus, now_text};

/// When a theme is materialized again by itself (besides by hand).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// `on_change`: after a connector run commits to one of its input libraries.
    OnChange,
    /// An update cycle (`daily`, `weekly`, … or 每日, 每周, …): by the scheduler, that often.
    Cycle(UpdateCycle),
}

impl Refresh {
    /// The stored code: `on_change` or the cycle's code.
    pub fn code(self) -> &'static str {
        match self {
            Refresh::OnChange => "on_change",
            Refresh::Cycle(cycle) => cycle.code(),
        }
    }
}

impl std::str::FromStr for Refresh {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s.trim() == "on_change" {
            return Ok(Refresh::OnChange);
        }
        s.parse::<UpdateCycle>()
            .map(Refresh::Cycle)
            .map_err(|_| Error::Invalid {
                field: "refresh".into(),
                message: format!(
                    "{s:?} is neither on_change nor an update cycle ({})",
                    UpdateCycle::ALL.iter().map(|c| c.code()).collect::<Vec<_>>().join(", ")
                ),
            })
    }
}

impl Serialize for Refresh {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Refresh {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        // Named in backticks, so the API's problem names the field.
        String::deserialize(d)?
            .parse()
            .map_err(|e: Error| serde::de::Error::custom(format!("`refresh`: {e}")))
    }
}

/// A declared theme.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Theme {
    /// Row id.
    pub id: i64,
    /// Library name (snake_case): what a resource's `library` names to serve it.
    pub name: String,
    /// Chinese name.
    pub label_zh: String,
    /// What it is for.
    pub description: String,
    /// One DataFusion `SELECT` over libraries (each a table of its current records).
    pub sql: String,
    /// The key field.
    pub key: String,
    /// The declared fields: exactly the SQL's output columns.
    pub fields: Vec<ThemeField>,
    /// The libraries the SQL reads.
    pub inputs: Vec<String>,
    /// `on_change` or an update cycle.
    #[schema(value_type = String, example = "on_change")]
    pub refresh: Refresh,
    /// The department whose code is the source of the theme's rows.
    pub department_code: String,
    /// When declared.
    pub created_at: String,
    /// When last changed.
    pub updated_at: String,
    /// The theme library's version after its last successful materialization.
    pub last_version: Option<i64>,
    /// When it last materialized successfully.
    pub last_materialized_at: Option<String>,
}

impl Theme {
    /// The schema this theme's library has.
    pub fn definition(&self) -> ThemeDefinition {
        ThemeDefinition {
            name: self.name.clone(),
            label_zh: self.label_zh.clone(),
            key: self.key.clone(),
            fields: self.fields.clone(),
        }
    }
}

/// What it takes to declare a theme (checked by the caller against the libraries).
#[derive(Debug, Clone)]
pub struct NewTheme {
    /// Library name.
    pub name: String,
    /// Chinese name.
    pub label_zh: String,
    /// What it is for.
    pub description: String,
    /// The SQL.
    pub sql: String,
    /// The key field.
    pub key: String,
    /// The declared fields.
    pub fields: Vec<ThemeField>,
    /// The libraries the SQL reads.
    pub inputs: Vec<String>,
    /// When it refreshes.
    pub refresh: Refresh,
    /// The department whose code is the source of its rows.
    pub department_code: String,
}

/// Row counts of a materialization.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MaterializationCounts {
    /// Rows the SQL produced.
    pub read: i64,
    /// Keys new to the theme.
    pub inserted: i64,
    /// Keys whose record changed.
    pub updated: i64,
    /// Rows equal to what the theme held.
    pub unchanged: i64,
    /// Keys the SQL no longer produced, marked deleted.
    pub deleted: i64,
    /// Rows refused (no key, a value that does not normalize, a key produced twice).
    pub rejected: i64,
}

/// A row a materialization refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rejection {
    /// The row's key, when it had one.
    pub key: Option<String>,
    /// The offending field, when one is to blame.
    pub field: Option<String>,
    /// What is wrong.
    pub reason: String,
}

/// One materialization of a theme.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Materialization {
    /// Row id, also the run number stamped on the theme's rows.
    pub id: i64,
    /// The theme.
    pub theme_id: i64,
    /// What started it: `manual`, `schedule`, `on_change`, `declare`.
    pub trigger: String,
    /// Start time.
    pub started_at: String,
    /// End time, when ended.
    pub finished_at: Option<String>,
    /// Status.
    pub status: RunStatus,
    /// The version of each input library it read.
    pub input_versions: BTreeMap<String, i64>,
    /// Row counts.
    pub counts: MaterializationCounts,
    /// The first rows refused, with why (at most [`MAX_REJECTIONS_KEPT`]).
    pub rejections: Vec<Rejection>,
    /// The theme library's version after it.
    pub library_version: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
}

/// How many rejected rows a materialization keeps with their reasons (all are counted).
pub const MAX_REJECTIONS_KEPT: usize = 100;

const THEME_COLUMNS: &str = "t.id, t.name, t.label_zh, t.description, t.sql_text, t.key_field, t.fields, \
    t.inputs, t.refresh, d.code AS department_code, t.created_at, t.updated_at, t.last_version, \
    t.last_materialized_at";
const THEME_FROM: &str = "FROM themes t JOIN departments d ON d.id = t.department_id";

fn json_column<T: serde::de::DeserializeOwned>(row: &AnyRow, column: &str) -> Result<T> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| Error::Invalid {
        field: column.into(),
        message: e.to_string(),
    })
}

fn theme_from_row(row: &AnyRow) -> Result<Theme> {
    let refresh: String = row.try_get("refresh")?;
    Ok(Theme {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        label_zh: row.try_get("label_zh")?,
        description: row.try_get("description")?,
        sql: row.try_get("sql_text")?,
        key: row.try_get("key_field")?,
        fields: json_column(row, "fields")?,
        inputs: json_column(row, "inputs")?,
        refresh: refresh.parse()?,
        department_code: row.try_get("department_code")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        last_version: row.try_get("last_version")?,
        last_materialized_at: row.try_get("last_materialized_at")?,
    })
}

const MATERIALIZATION_COLUMNS: &str = "id, theme_id, trigger_kind, started_at, finished_at, status, \
    input_versions, rows_read, rows_inserted, rows_updated, rows_unchanged, rows_deleted, rows_rejected, \
    rejections, library_version, error";

fn materialization_from_row(row: &AnyRow) -> Result<Materialization> {
    let status: String = row.try_get("status")?;
    Ok(Materialization {
        id: row.try_get("id")?,
        theme_id: row.try_get("theme_id")?,
        trigger: row.try_get("trigger_kind")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        status: RunStatus::parse(&status)?,
        input_versions: json_column(row, "input_versions")?,
        counts: MaterializationCounts {
            read: row.try_get("rows_read")?,
            inserted: row.try_get("rows_inserted")?,
            updated: row.try_get("rows_updated")?,
            unchanged: row.try_get("rows_unchanged")?,
            deleted: row.try_get("rows_deleted")?,
            rejected: row.try_get("rows_rejected")?,
        },
        rejections: json_column(row, "rejections")?,
        library_version: row.try_get("library_version")?,
        error: row.try_get("error")?,
    })
}

/// How a materialization ended.
#[derive(Debug, Clone)]
pub struct MaterializationOutcome {
    /// Succeeded or failed.
    pub status: RunStatus,
    /// The version of each input read.
    pub input_versions: BTreeMap<String, i64>,
    /// Row counts (all zero when it failed: nothing was committed).
    pub counts: MaterializationCounts,
    /// The first rows refused.
    pub rejections: Vec<Rejection>,
    /// The theme library's version after it.
    pub library_version: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
}

impl Catalog {
    /// Declares a theme; a name already declared is a [`Error::Conflict`].
    pub async fn create_theme(&self, new: &NewTheme) -> Result<Theme> {
        let department = self.department_by_code(&new.department_code).await?;
        let now = now_text();
        sqlx::query(
            "INSERT INTO themes (name, label_zh, description, sql_text, key_field, fields, inputs, \
             refresh, department_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind(&new.name)
        .bind(&new.label_zh)
        .bind(&new.description)
        .bind(&new.sql)
        .bind(&new.key)
        .bind(serde_json::to_string(&new.fields).unwrap_or_else(|_| "[]".into()))
        .bind(serde_json::to_string(&new.inputs).unwrap_or_else(|_| "[]".into()))
        .bind(new.refresh.code())
        .bind(department.id)
        .bind(&now)
        .execute(&self.pool)
        .await
        .map_err(conflict_on_unique("theme", &new.name))?;
        self.theme_by_name(&new.name).await
    }

    /// The theme named `name`.
    pub async fn theme_by_name(&self, name: &str) -> Result<Theme> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {THEME_COLUMNS} {THEME_FROM} WHERE t.name = $1"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::NotFound {
            entity: "theme",
            key: name.to_string(),
        })?;
        theme_from_row(&row)
    }

    /// Every theme, by name.
    pub async fn themes(&self) -> Result<Vec<Theme>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {THEME_COLUMNS} {THEME_FROM} ORDER BY t.name"
        )))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(theme_from_row)
        .collect()
    }

    /// Records the start of a materialization of `theme_id` and returns its id.
    pub async fn start_materialization(&self, theme_id: i64, trigger: &str) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO theme_materializations (theme_id, trigger_kind, started_at, status) \
             VALUES ($1, $2, $3, 'running') RETURNING id",
        )
        .bind(theme_id)
        .bind(trigger)
        .bind(now_text())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("id")?)
    }

    /// Records the end of materialization `id`; a success also becomes the theme's last.
    pub async fn finish_materialization(&self, id: i64, outcome: &MaterializationOutcome) -> Result<Materialization> {
        let now = now_text();
        let c = outcome.counts;
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE theme_materializations SET finished_at = $2, status = $3, input_versions = $4, \
             rows_read = $5, rows_inserted = $6, rows_updated = $7, rows_unchanged = $8, rows_deleted = $9, \
             rows_rejected = $10, rejections = $11, library_version = $12, error = $13 \
             WHERE id = $1 RETURNING {MATERIALIZATION_COLUMNS}"
        )))
        .bind(id)
        .bind(&now)
        .bind(outcome.status.code())
        .bind(serde_json::to_string(&outcome.input_versions).unwrap_or_else(|_| "{}".into()))
        .bind(c.read)
        .bind(c.inserted)
        .bind(c.updated)
        .bind(c.unchanged)
        .bind(c.deleted)
        .bind(c.rejected)
        .bind(serde_json::to_string(&outcome.rejections).unwrap_or_else(|_| "[]".into()))
        .bind(outcome.library_version)
        .bind(outcome.error.as_deref())
        .fetch_one(&mut *tx)
        .await?;
        let finished = materialization_from_row(&row)?;
        if outcome.status == RunStatus::Succeeded {
            sqlx::query(
                "UPDATE themes SET last_version = $2, last_materialized_at = $3, updated_at = $3 \
                 WHERE id = $1",
            )
            .bind(finished.theme_id)
            .bind(outcome.library_version)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(finished)
    }

    /// Marks failed the materializations a process left `running` when it ended.
    pub async fn settle_interrupted_materializations(&self) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE theme_materializations SET finished_at = $1, status = 'failed', \
             error = 'interrupted (the process ended); the next materialization redoes it' \
             WHERE status = 'running'",
        )
        .bind(now_text())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// A theme's materializations, newest first, at most `limit`.
    pub async fn materializations(&self, theme_id: i64, limit: i64) -> Result<Vec<Materialization>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {MATERIALIZATION_COLUMNS} FROM theme_materializations WHERE theme_id = $1 \
             ORDER BY id DESC LIMIT $2"
        )))
        .bind(theme_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(materialization_from_row)
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_reads_on_change_and_update_cycles() {
        assert_eq!("on_change".parse::<Refresh>().unwrap(), Refresh::OnChange);
        assert_eq!("每日".parse::<Refresh>().unwrap(), Refresh::Cycle(UpdateCycle::Daily));
        assert_eq!(Refresh::Cycle(UpdateCycle::Weekly).code(), "weekly");
        let err = "hourly".parse::<Refresh>().unwrap_err().to_string();
        assert!(err.contains("refresh") && err.contains("on_change"), "{err}");
    }
}
