//! API keys: `ht_` + 40 random hex characters. Only the SHA-256 of a key is stored (a random
//! 160-bit secret needs no slow hash); the first 11 characters are kept to recognize it.

use rand::Rng;
use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;
use sqlx::Row;
use sqlx::any::AnyRow;

use catalog::{Catalog, now_text, timestamp_text};

use crate::{Error, Result, sha256_hex};

/// What a credential's holder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 平台管理方: reviews, arbitrates, watches; does not consume personal data.
    PlatformAdmin,
    /// A department's data officer (提供方): manages and reads its own department's resources.
    ProviderAdmin,
    /// A consuming system (使用方) of a department.
    Consumer,
    /// 审核员: reviews catalog registrations for the platform and arbitrates demands.
    Reviewer,
    /// An open-data developer (社会开发者).
    OpenDataDeveloper,
}

impl Role {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            Role::PlatformAdmin => "platform_admin",
            Role::ProviderAdmin => "provider_admin",
            Role::Consumer => "consumer",
            Role::OpenDataDeveloper => "open_data_developer",
            Role::Reviewer => "reviewer",
        }
    }

    /// Parses a stable code.
    pub fn parse(s: &str) -> Option<Self> {
        Role::ALL.into_iter().find(|r| r.code() == s)
    }

    /// Every role.
    pub const ALL: [Role; 5] = [
        Role::PlatformAdmin,
        Role::ProviderAdmin,
        Role::Consumer,
        Role::Reviewer,
        Role::OpenDataDeveloper,
    ];
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Credential {
    /// Row id (recorded in the audit trail).
    pub id: i64,
    /// A human name for the key.
    pub name: String,
    /// The role.
    pub role: Role,
    /// The department it acts for, if any.
    pub department_id: Option<i64>,
    /// That department's code.
    pub department_code: Option<String>,
    /// The first characters of the key, to recognize it in lists.
    pub key_prefix: String,
}

/// A newly issued key: the secret is in `key`, and is never retrievable again.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    /// The stored credential.
    pub credential: Credential,
    /// The full key, to hand to its holder now.
    pub key: String,
}

const PREFIX_LEN: usize = 11;

/// Issues a new key for `role`, acting for `department_id`, valid until `expires_at`.
pub async fn issue(
    catalog: &Catalog,
    name: &str,
    role: Role,
    department_id: Option<i64>,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<IssuedKey> {
    let secret: [u8; 20] = rand::rng().random();
    let key = format!("ht_{}", hex::encode(secret));
    let row = sqlx::query(
        "INSERT INTO credentials (key_prefix, key_hash, name, role, department_id, created_at, \
         expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(&key[..PREFIX_LEN])
    .bind(sha256_hex(&[key.as_bytes()]))
    .bind(name)
    .bind(role.code())
    .bind(department_id)
    .bind(now_text())
    .bind(expires_at.map(timestamp_text))
    .fetch_one(catalog.pool())
    .await?;
    let id: i64 = row.try_get("id")?;
    let credential = by_id(catalog, id).await?;
    Ok(IssuedKey { credential, key })
}

const COLUMNS: &str = "c.id, c.name, c.role, c.department_id, d.code AS department_code, \
    c.key_prefix, c.expires_at, c.revoked_at";

fn from_row(row: &AnyRow) -> Result<(Credential, Option<String>, Option<String>)> {
    let role: String = row.try_get("role")?;
    let credential = Credential {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: Role::parse(&role).ok_or(Error::Unauthenticated("unknown role"))?,
        department_id: row.try_get("department_id")?,
        department_code: row.try_get("department_code")?,
        key_prefix: row.try_get("key_prefix")?,
    };
    Ok((credential, row.try_get("expires_at")?, row.try_get("revoked_at")?))
}

async fn by_id(catalog: &Catalog, id: i64) -> Result<Credential> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM credentials c LEFT JOIN departments d ON d.id = c.department_id \
         WHERE c.id = $1"
    )))
    .bind(id)
    .fetch_one(catalog.pool())
    .await?;
    Ok(from_row(&row)?.0)
}

/// The credential a presented key belongs to, if it is valid now.
pub async fn authenticate(catalog: &Catalog, presented: &str) -> Result<Credential> {
    if !presented.starts_with("ht_") || presented.len() != 43 {
        return Err(Error::Unauthenticated("malformed key"));
    }
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM credentials c LEFT JOIN departments d ON d.id = c.department_id \
         WHERE c.key_hash = $1"
    )))
    .bind(sha256_hex(&[presented.as_bytes()]))
    .fetch_optional(catalog.pool())
    .await?
    .ok_or(Error::Unauthenticated("unknown key"))?;
    let (credential, expires_at, revoked_at) = from_row(&row)?;
    if revoked_at.is_some() {
        return Err(Error::Unauthenticated("revoked key"));
    }
    if expires_at.is_some_and(|at| at <= now_text()) {
        return Err(Error::Unauthenticated("expired key"));
    }
    Ok(credential)
}

/// A credential as listed: never its key, only its prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CredentialInfo {
    /// The credential.
    #[serde(flatten)]
    pub credential: Credential,
    /// Issued at.
    pub created_at: String,
    /// Expires at, if ever.
    pub expires_at: Option<String>,
    /// Revoked at, if revoked.
    pub revoked_at: Option<String>,
}

/// Every credential, newest first, optionally of one department.
pub async fn list(catalog: &Catalog, department_id: Option<i64>) -> Result<Vec<CredentialInfo>> {
    let rows = sqlx::query(
        "SELECT c.id, c.name, c.role, c.department_id, d.code AS department_code, c.key_prefix, c.created_at, \
         c.expires_at, c.revoked_at FROM credentials c LEFT JOIN departments d ON d.id = c.department_id \
         WHERE $1 IS NULL OR c.department_id = $1 ORDER BY c.id DESC",
    )
    .bind(department_id)
    .fetch_all(catalog.pool())
    .await?;
    rows.iter()
        .map(|row| {
            let (credential, expires_at, revoked_at) = from_row(row)?;
            Ok(CredentialInfo {
                credential,
                created_at: row.try_get("created_at")?,
                expires_at,
                revoked_at,
            })
        })
        .collect()
}

/// Revokes credential `id`; returns whether it was active.
pub async fn revoke(catalog: &Catalog, id: i64) -> Result<bool> {
    let done = sqlx::query("UPDATE credentials SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now_text())
        .bind(id)
        .execute(catalog.pool())
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Revokes every unrevoked credential named `name` (used when the demo re-issues its keys).
pub async fn revoke_named(catalog: &Catalog, name: &str) -> Result<u64> {
    let done = sqlx::query("UPDATE credentials SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL")
        .bind(now_text())
        .bind(name)
        .execute(catalog.pool())
        .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_round_trips_through_its_code() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.code()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
