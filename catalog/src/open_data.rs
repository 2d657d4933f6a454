//! Open data (数据开放): developer accounts (社会开发者) and their applications for conditionally
//! open datasets (有条件开放: apply, be approved).
//!
//! ```text
//! pending ──approve──► approved (until expires_at, if set)
//!    └────reject────► rejected
//! ```
//!
//! An application is answered by the dataset's provider or by platform staff. A developer
//! holds at most one pending application per dataset; applying again after a rejection or
//! an expiry is a new application.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use crate::{Catalog, Error, Result, now_text};

/// A developer account: who holds an `open_data_developer` credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Developer {
    /// The credential (the developer's API key).
    pub credential_id: i64,
    /// The developer's name.
    pub name: String,
    /// Contact email (unique).
    pub email: String,
    /// The company or organization behind the account.
    pub organization: String,
    /// When the account was created (UTC).
    pub created_at: String,
}

/// Where an application stands.
pub const PENDING: &str = "pending";
/// Approved: the developer may read the dataset's open items, L2 plain.
pub const APPROVED: &str = "approved";
/// Rejected, with a reason.
pub const REJECTED: &str = "rejected";

/// An application (开放申请) for a conditionally open dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OpenApplication {
    /// Row id.
    pub id: i64,
    /// The dataset's resource id.
    pub resource_id: i64,
    /// The dataset (its resource code).
    pub dataset: String,
    /// The dataset's name.
    pub dataset_name: String,
    /// The developer's credential.
    pub credential_id: i64,
    /// The developer's name and organization, when the credential has a developer account.
    pub applicant: Option<String>,
    /// What the data is for (用途).
    pub purpose: String,
    /// `pending`, `approved`, `rejected`; `expired` once an approval's end has passed.
    pub status: String,
    /// When it was made (UTC).
    pub created_at: String,
    /// When it was answered.
    pub decided_at: Option<String>,
    /// Who answered it.
    pub decided_by: Option<String>,
    /// The answer's reason (required for a rejection).
    pub reason: Option<String>,
    /// When an approval ends, if ever.
    pub expires_at: Option<String>,
}

impl OpenApplication {
    /// Whether it allows reading now: approved and not expired.
    pub fn in_force(&self) -> bool {
        self.status == APPROVED
    }
}

const COLUMNS: &str = "a.id, a.resource_id, r.code AS dataset, r.name AS dataset_name, a.credential_id, \
    d.name AS dev_name, d.organization AS dev_org, a.purpose, a.status, a.created_at, a.decided_at, a.decided_by, \
    a.reason, a.expires_at";
const FROM: &str = "open_applications a JOIN resources r ON r.id = a.resource_id \
    LEFT JOIN developers d ON d.credential_id = a.credential_id";

fn from_row(row: &AnyRow) -> Result<OpenApplication> {
    let status: String = row.try_get("status")?;
    let expires_at: Option<String> = row.try_get("expires_at")?;
    let expired = status == APPROVED && expires_at.as_deref().is_some_and(|at| at <= now_text().as_str());
    let name: Option<String> = row.try_get("dev_name")?;
    let org: Option<String> = row.try_get("dev_org")?;
    Ok(OpenApplication {
        id: row.try_get("id")?,
        resource_id: row.try_get("resource_id")?,
        dataset: row.try_get("dataset")?,
        dataset_name: row.try_get("dataset_name")?,
        credential_id: row.try_get("credential_id")?,
        applicant: name.map(|n| match org {
            Some(org) if !org.is_empty() => format!("{n} ({org})"),
            _ => n,
        }),
        purpose: row.try_get("purpose")?,
        status: if expired { "expired".into() } else { status },
        created_at: row.try_get("created_at")?,
        decided_at: row.try_get("decided_at")?,
        decided_by: row.try_get("decided_by")?,
        reason: row.try_get("reason")?,
        expires_at,
    })
}

/// Whose applications to list.
#[derive(Debug, Clone, Copy)]
pub enum ApplicationView {
    /// Every application (platform staff).
    All,
    /// Applications for datasets this department provides.
    Provider(i64),
    /// One developer's own.
    Applicant(i64),
}

impl Catalog {
    /// Records who is behind a developer credential, inside the transaction that issued it.
    pub async fn insert_developer(
        conn: &mut sqlx::AnyConnection,
        credential_id: i64,
        name: &str,
        email: &str,
        organization: &str,
    ) -> Result<()> {
        let taken = sqlx::query("SELECT 1 AS one FROM developers WHERE lower(email) = lower($1)")
            .bind(email)
            .fetch_optional(&mut *conn)
            .await?;
        if taken.is_some() {
            return Err(Error::Conflict {
                entity: "developer account for",
                key: email.into(),
            });
        }
        sqlx::query(
            "INSERT INTO developers (credential_id, name, email, organization, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(credential_id)
        .bind(name)
        .bind(email)
        .bind(organization)
        .bind(now_text())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Moves what belongs to a credential's holder — the developer account and its applications
    /// — to the credential that replaces it, inside the rotation's transaction.
    pub async fn carry_over_credential(conn: &mut sqlx::AnyConnection, old: i64, new: i64) -> Result<()> {
        for table in ["developers", "open_applications"] {
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE {table} SET credential_id = $1 WHERE credential_id = $2"
            )))
            .bind(new)
            .bind(old)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    /// The developer account behind a credential, if it has one.
    pub async fn developer(&self, credential_id: i64) -> Result<Option<Developer>> {
        let row = sqlx::query(
            "SELECT credential_id, name, email, organization, created_at FROM developers WHERE credential_id = $1",
        )
        .bind(credential_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(Developer {
                credential_id: row.try_get("credential_id")?,
                name: row.try_get("name")?,
                email: row.try_get("email")?,
                organization: row.try_get("organization")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .transpose()
    }

    /// Files an application by `credential_id` for the dataset `resource_id`. A second one
    /// while one is pending or in force is a conflict naming it.
    pub async fn apply_for_dataset(
        &self,
        resource_id: i64,
        credential_id: i64,
        purpose: &str,
    ) -> Result<OpenApplication> {
        let mut tx = self.pool.begin().await?;
        let filed = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM {FROM} WHERE a.resource_id = $1 AND a.credential_id = $2 \
             AND a.status IN ('pending', 'approved')"
        )))
        .bind(resource_id)
        .bind(credential_id)
        .fetch_all(&mut *tx)
        .await?;
        for row in &filed {
            // An approval that has expired no longer stands in the way.
            let earlier = from_row(row)?;
            if earlier.status == PENDING || earlier.in_force() {
                return Err(Error::State(format!(
                    "application {} for this dataset is already {}",
                    earlier.id, earlier.status
                )));
            }
        }
        let now = now_text();
        let row = sqlx::query(
            "INSERT INTO open_applications (resource_id, credential_id, purpose, status, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(resource_id)
        .bind(credential_id)
        .bind(purpose)
        .bind(PENDING)
        .bind(&now)
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.try_get("id")?;
        tx.commit().await?;
        self.open_application(id).await
    }

    /// One application.
    pub async fn open_application(&self, id: i64) -> Result<OpenApplication> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {COLUMNS} FROM {FROM} WHERE a.id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::NotFound {
                entity: "application",
                key: id.to_string(),
            })?;
        from_row(&row)
    }

    /// Applications as `view` sees them, newest first.
    pub async fn open_applications(&self, view: ApplicationView) -> Result<Vec<OpenApplication>> {
        let (condition, id) = match view {
            ApplicationView::All => ("1 = 1", None),
            ApplicationView::Provider(id) => ("r.provider_id = $1", Some(id)),
            ApplicationView::Applicant(id) => ("a.credential_id = $1", Some(id)),
        };
        let sql = format!("SELECT {COLUMNS} FROM {FROM} WHERE {condition} ORDER BY a.id DESC");
        let mut query = sqlx::query(AssertSqlSafe(sql));
        if let Some(id) = id {
            query = query.bind(id);
        }
        query.fetch_all(&self.pool).await?.iter().map(from_row).collect()
    }

    /// The application in force for this developer on this dataset, if any.
    pub async fn application_in_force(&self, resource_id: i64, credential_id: i64) -> Result<Option<OpenApplication>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM {FROM} WHERE a.resource_id = $1 AND a.credential_id = $2 AND a.status = 'approved' \
             ORDER BY a.id DESC"
        )))
        .bind(resource_id)
        .bind(credential_id)
        .fetch_all(&self.pool)
        .await?;
        for row in rows {
            let application = from_row(&row)?;
            if application.in_force() {
                return Ok(Some(application));
            }
        }
        Ok(None)
    }

    /// Answers a pending application: approve (until `expires_at`, if given) or reject with a
    /// reason. Answering one already answered is a state error.
    pub async fn decide_open_application(
        &self,
        id: i64,
        approve: bool,
        reason: Option<&str>,
        expires_at: Option<&str>,
        decided_by: &str,
    ) -> Result<OpenApplication> {
        let reason = reason.map(str::trim).filter(|r| !r.is_empty());
        if !approve && reason.is_none() {
            return Err(Error::Invalid {
                field: "reason".into(),
                message: "a rejection must say why".into(),
            });
        }
        let done = sqlx::query(
            "UPDATE open_applications SET status = $1, reason = $2, expires_at = $3, decided_at = $4, decided_by = $5 \
             WHERE id = $6 AND status = 'pending'",
        )
        .bind(if approve { APPROVED } else { REJECTED })
        .bind(reason)
        .bind(expires_at)
        .bind(now_text())
        .bind(decided_by)
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            let current = self.open_application(id).await?;
            return Err(Error::State(format!(
                "application {id} is {}, not pending",
                current.status
            )));
        }
        self.open_application(id).await
    }
}
