//! Grants (授权): what a consumer department may use of a conditionally shared resource.
//! The catalog issue adds the demand workflow (供需对接) that creates them; policy enforces them.

use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Catalog, Error, Result, now_text, timestamp_text};

/// An active or past grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    })
}

const COLUMNS: &str =
    "id, resource_id, consumer_department_id, items, plain_items, expires_at, status";

impl Catalog {
    /// Creates an active grant. Plain items must be among the granted items.
    pub async fn create_grant(&self, new: &NewGrant) -> Result<Grant> {
        if let Some(extra) = new.plain_items.iter().find(|p| !new.items.contains(p)) {
            return Err(Error::Invalid {
                field: "plain_items".into(),
                message: format!("{extra} is not among the granted items"),
            });
        }
        let to_json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO grants (resource_id, consumer_department_id, items, plain_items, \
             expires_at, status, created_at) VALUES ($1, $2, $3, $4, $5, 'active', $6) \
             RETURNING {COLUMNS}"
        )))
        .bind(new.resource_id)
        .bind(new.consumer_department_id)
        .bind(to_json(&new.items))
        .bind(to_json(&new.plain_items))
        .bind(new.expires_at.map(timestamp_text))
        .bind(now_text())
        .fetch_one(&self.pool)
        .await?;
        from_row(&row)
    }

    /// The newest active, unexpired grant of `resource_id` to `consumer_department_id`.
    pub async fn active_grant(
        &self,
        resource_id: i64,
        consumer_department_id: i64,
    ) -> Result<Option<Grant>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM grants WHERE resource_id = $1 AND consumer_department_id = $2 \
             AND status = 'active' AND (expires_at IS NULL OR expires_at > $3) \
             ORDER BY id DESC LIMIT 1"
        )))
        .bind(resource_id)
        .bind(consumer_department_id)
        .bind(now_text())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }
}
