//! Grants (授权): what a consumer department may use of a conditionally shared resource.
//! The catalog issue adds the demand workflow (供需对接) that creates them; policy enforces them.

use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Catalog, Error, Result, now_text, timestamp_text};

/// An active or past grant.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Grant {
    /// Row id.
    pub id: i64,
    /// The resource granted.
    pub resource_id: i64,
    /// The consumer department.
    pub consumer_department_id: i64,
    /// The data items granted (names).
    pub items: Vec<String>,
    /// Of those, the items returned unmasked.
    pub plain_items: Vec<String>,
    /// When the grant ends (RFC 3339), if ever.
    pub expires_at: Option<String>,
    /// `active` or `revoked`.
    pub status: String,
    /// The demand it answers, if any.
    pub demand_id: Option<i64>,
    /// A row filter (DataFusion SQL expression) limiting the rows the consumer sees.
    pub row_filter: Option<String>,
    /// Calls per second allowed under this grant.
    pub quota_per_second: Option<f64>,
    /// Calls per day allowed under this grant.
    pub quota_per_day: Option<i64>,
}

impl Grant {
    /// `active`, `expired` or `revoked`, as of now.
    pub fn state(&self) -> &'static str {
        if self.status != "active" {
            "revoked"
        } else if self.expires_at.as_deref().is_some_and(|at| at <= now_text().as_str()) {
            "expired"
        } else {
            "active"
        }
    }
}

/// What it takes to create a grant.
#[derive(Debug, Clone, Deserialize)]
pub struct NewGrant {
    /// The resource granted.
    pub resource_id: i64,
    /// The consumer department.
    pub consumer_department_id: i64,
    /// The data items granted.
    pub items: Vec<String>,
    /// Of those, the items returned unmasked.
    pub plain_items: Vec<String>,
    /// When the grant ends.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The demand it answers.
    pub demand_id: Option<i64>,
    /// A row filter.
    pub row_filter: Option<String>,
    /// Calls per second.
    pub quota_per_second: Option<f64>,
    /// Calls per day.
    pub quota_per_day: Option<i64>,
}

fn from_row(row: &AnyRow) -> Result<Grant> {
    let list = |column: &str| -> Result<Vec<String>> {
        let text: String = row.try_get(column)?;
        serde_json::from_str(&text).map_err(|e| Error::Invalid {
            field: column.to_string(),
            message: e.to_string(),
        })
    };
    Ok(Grant {
        id: row.try_get("id")?,
        resource_id: row.try_get("resource_id")?,
        consumer_department_id: row.try_get("consumer_department_id")?,
        items: list("items")?,
        plain_items: list("plain_items")?,
        expires_at: row.try_get("expires_at")?,
        status: row.try_get("status")?,
        demand_id: row.try_get("demand_id")?,
        row_filter: row.try_get("row_filter")?,
        quota_per_second: row.try_get("quota_per_second")?,
        quota_per_day: row.try_get("quota_per_day")?,
    })
}

const COLUMNS: &str = "id, resource_id, consumer_department_id, items, plain_items, expires_at, \
    status, demand_id, row_filter, quota_per_second, quota_per_day";

impl Catalog {
    /// Creates an active grant. Plain items must be among the granted items.
    pub async fn create_grant(&self, new: &NewGrant) -> Result<Grant> {
        let mut tx = self.pool.begin().await?;
        let grant = insert_grant(&mut tx, new).await?;
        tx.commit().await?;
        Ok(grant)
    }

    /// Active, unexpired grants of a resource.
    pub async fn active_grants_of(&self, resource_id: i64) -> Result<Vec<Grant>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM grants WHERE resource_id = $1 AND status = 'active' \
             AND (expires_at IS NULL OR expires_at > $2) ORDER BY id"
        )))
        .bind(resource_id)
        .bind(now_text())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(from_row)
        .collect()
    }

    /// Grants a department holds or gave (its resources'), or all when `None`; newest first.
    pub async fn grants(&self, department_id: Option<i64>) -> Result<Vec<Grant>> {
        let rows = match department_id {
            Some(id) => {
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM grants WHERE consumer_department_id = $1 OR resource_id IN \
                     (SELECT id FROM resources WHERE provider_id = $1) ORDER BY id DESC"
                )))
                .bind(id)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(AssertSqlSafe(format!("SELECT {COLUMNS} FROM grants ORDER BY id DESC")))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(from_row).collect()
    }
}

/// Inserts a grant inside `tx` (a demand's approval creates its grant in the same transaction).
pub(crate) async fn insert_grant(tx: &mut sqlx::Transaction<'_, sqlx::Any>, new: &NewGrant) -> Result<Grant> {
    if let Some(extra) = new.plain_items.iter().find(|p| !new.items.contains(p)) {
        return Err(Error::Invalid {
            field: "plain_items".into(),
            message: format!("{extra} is not among the granted items"),
        });
    }
    let to_json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
    let row = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO grants (resource_id, consumer_department_id, items, plain_items, \
             expires_at, status, created_at, demand_id, row_filter, quota_per_second, quota_per_day) \
             VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $8, $9, $10) RETURNING {COLUMNS}"
    )))
    .bind(new.resource_id)
    .bind(new.consumer_department_id)
    .bind(to_json(&new.items))
    .bind(to_json(&new.plain_items))
    .bind(new.expires_at.map(timestamp_text))
    .bind(now_text())
    .bind(new.demand_id)
    .bind(new.row_filter.as_deref())
    .bind(new.quota_per_second)
    .bind(new.quota_per_day)
    .fetch_one(&mut **tx)
    .await?;
    from_row(&row)
}

impl Catalog {
    /// The grant that decides `consumer_department_id`'s access to `resource_id`: the newest
    /// active (not revoked) grant, an unexpired one before an expired one.
    pub async fn grant_for(&self, resource_id: i64, consumer_department_id: i64) -> Result<Option<Grant>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM grants WHERE resource_id = $1 AND consumer_department_id = $2 \
             AND status = 'active' \
             ORDER BY CASE WHEN expires_at IS NULL OR expires_at > $3 THEN 1 ELSE 0 END DESC, id DESC LIMIT 1"
        )))
        .bind(resource_id)
        .bind(consumer_department_id)
        .bind(now_text())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }
}
