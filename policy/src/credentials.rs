//! API keys: `ht_` + 40 random hex characters. Only the SHA-256 of a key is stored (a random
//! 160-bit secret needs no slow hash); the first 11 characters are kept to recognize it.
//! The server authenticates through an [`Authenticator`], which remembers successes briefly;
//! keys are rotated with a grace period ([`rotate`]).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
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
    expires_at: Option<DateTime<Utc>>,
) -> Result<IssuedKey> {
    let mut conn = catalog.pool().acquire().await?;
    let (id, key) = insert_key(&mut conn, name, role, department_id, expires_at).await?;
    drop(conn);
    let credential = by_id(catalog, id).await?.credential;
    Ok(IssuedKey { credential, key })
}

/// Signs up an open-data developer (社会开发者): a new `open_data_developer` key and the account
/// behind it, in one transaction (an email already signed up is a conflict, and nothing is
/// stored).
pub async fn sign_up_developer(
    catalog: &Catalog,
    name: &str,
    email: &str,
    organization: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Result<IssuedKey> {
    let mut tx = catalog.pool().begin().await?;
    let label = format!("developer:{email}");
    let (id, key) = insert_key(&mut tx, &label, Role::OpenDataDeveloper, None, expires_at).await?;
    Catalog::insert_developer(&mut tx, id, name, email, organization).await?;
    tx.commit().await?;
    let credential = by_id(catalog, id).await?.credential;
    Ok(IssuedKey { credential, key })
}

async fn insert_key(
    conn: &mut sqlx::AnyConnection,
    name: &str,
    role: Role,
    department_id: Option<i64>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(i64, String)> {
    let secret: [u8; 20] = rand::rng().random();
    let key = format!("ht_{}", crate::hex_string(&secret));
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
    .fetch_one(&mut *conn)
    .await?;
    Ok((row.try_get("id")?, key))
}

pub(crate) const COLUMNS: &str = "c.id, c.name, c.role, c.department_id, d.code AS department_code, \
    c.key_prefix, c.created_at, c.expires_at, c.revoked_at, c.replaced_by";

/// A credential with its lifetime, as stored.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) credential: Credential,
    pub(crate) created_at: String,
    pub(crate) expires_at: Option<String>,
    pub(crate) revoked_at: Option<String>,
    pub(crate) replaced_by: Option<i64>,
}

impl Stored {
    /// The credential, if it may be used now.
    pub(crate) fn usable(self) -> Result<Credential> {
        if self.revoked_at.is_some() {
            return Err(Error::Unauthenticated("revoked key"));
        }
        if self.expires_at.as_deref().is_some_and(|at| at <= now_text().as_str()) {
            return Err(Error::Unauthenticated("expired key"));
        }
        Ok(self.credential)
    }

    fn expiry(&self) -> Option<DateTime<Utc>> {
        // A stored expiry that does not parse is treated as already past: fail closed.
        self.expires_at
            .as_deref()
            .map(|at| at.parse::<DateTime<Utc>>().unwrap_or(DateTime::<Utc>::MIN_UTC))
    }
}

pub(crate) fn from_row(row: &AnyRow) -> Result<Stored> {
    let role: String = row.try_get("role")?;
    Ok(Stored {
        credential: Credential {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            role: Role::parse(&role).ok_or(Error::Unauthenticated("unknown role"))?,
            department_id: row.try_get("department_id")?,
            department_code: row.try_get("department_code")?,
            key_prefix: row.try_get("key_prefix")?,
        },
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        replaced_by: row.try_get("replaced_by")?,
    })
}

async fn find_by_id(catalog: &Catalog, id: i64) -> Result<Option<Stored>> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM credentials c LEFT JOIN departments d ON d.id = c.department_id \
         WHERE c.id = $1"
    )))
    .bind(id)
    .fetch_optional(catalog.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

async fn by_id(catalog: &Catalog, id: i64) -> Result<Stored> {
    find_by_id(catalog, id).await?.ok_or_else(|| {
        Error::Catalog(catalog::Error::NotFound {
            entity: "credential",
            key: id.to_string(),
        })
    })
}

/// The credential `id`, with its lifetime, for the API's checks (who may rotate it).
pub async fn info(catalog: &Catalog, id: i64) -> Result<CredentialInfo> {
    Ok(by_id(catalog, id).await?.into())
}

fn well_formed(presented: &str) -> Result<()> {
    if presented.starts_with("ht_") && presented.len() == 43 {
        Ok(())
    } else {
        Err(Error::Unauthenticated("malformed key"))
    }
}

async fn find_by_hash(catalog: &Catalog, hash_hex: &str) -> Result<Stored> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM credentials c LEFT JOIN departments d ON d.id = c.department_id \
         WHERE c.key_hash = $1"
    )))
    .bind(hash_hex)
    .fetch_optional(catalog.pool())
    .await?
    .ok_or(Error::Unauthenticated("unknown key"))?;
    from_row(&row)
}

/// The credential a presented key belongs to, if it is valid now (always asks the DB; the
/// server goes through an [`Authenticator`]).
pub async fn authenticate(catalog: &Catalog, presented: &str) -> Result<Credential> {
    well_formed(presented)?;
    find_by_hash(catalog, &sha256_hex(&[presented.as_bytes()]))
        .await?
        .usable()
}

/// How many successful authentications an [`Authenticator`] remembers at most.
const MAX_CACHED: usize = 100_000;

/// What a cache entry is found by: the SHA-256 of a presented key (never the key itself), or a
/// credential id (for bearer tokens, whose credential must still be valid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Presented {
    KeyHash([u8; 32]),
    Credential(i64),
}

#[derive(Debug, Clone)]
struct Cached {
    credential: Credential,
    expires_at: Option<DateTime<Utc>>,
}

/// Authenticates keys and credential ids, remembering successes for a short while so the
/// exchange hot path needs no DB query per request.
///
/// An entry is trusted for at most `trust_for` (a revocation by another process, such as the
/// CLI, takes effect within that time); [`Authenticator::forget`] drops a credential at once
/// (revocation and rotation through this server's API). The expiry is checked on every use.
/// Failures are never remembered, so unknown keys cannot grow the cache, and its size is bounded.
pub struct Authenticator {
    catalog: Catalog,
    entries: crate::cache::TtlMap<Presented, Cached>,
}

impl Authenticator {
    /// An authenticator over `catalog` whose successes are trusted for `trust_for` (zero: ask
    /// the DB every time).
    pub fn new(catalog: Catalog, trust_for: Duration) -> Self {
        Self {
            catalog,
            entries: crate::cache::TtlMap::new(trust_for, MAX_CACHED),
        }
    }

    /// The credential a presented API key belongs to, if it is valid now.
    pub async fn key(&self, presented: &str) -> Result<Credential> {
        well_formed(presented)?;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let cache_key = Presented::KeyHash(digest);
        if let Some(hit) = self.cached(&cache_key) {
            return hit;
        }
        let stored = find_by_hash(&self.catalog, &crate::hex_string(&digest))
            .await
            .inspect_err(|e| self.forget_refused(&cache_key, e))?;
        self.remember(cache_key, stored)
    }

    /// Credential `id`, if it is valid now (a bearer token's subject).
    pub async fn credential(&self, id: i64) -> Result<Credential> {
        let cache_key = Presented::Credential(id);
        if let Some(hit) = self.cached(&cache_key) {
            return hit;
        }
        let stored = find_by_id(&self.catalog, id)
            .await?
            .ok_or(Error::Unauthenticated("unknown credential"))
            .inspect_err(|e| self.forget_refused(&cache_key, e))?;
        self.remember(cache_key, stored)
    }

    /// Drops what is remembered of `cache_key` when asking the DB again refused it (a key
    /// revoked or deleted since), so calls still using the entry stop at once.
    fn forget_refused(&self, cache_key: &Presented, refused: &Error) {
        if matches!(refused, Error::Unauthenticated(_)) {
            self.entries.remove(cache_key);
        }
    }

    /// Drops whatever is remembered of credential `id` (after revoking or rotating it).
    pub fn forget(&self, id: i64) {
        self.entries.retain(|cached| cached.credential.id != id);
    }

    /// A fresh entry's answer, or `None` to ask the DB.
    fn cached(&self, cache_key: &Presented) -> Option<Result<Credential>> {
        let cached = self.entries.get(cache_key)?;
        if cached.expires_at.is_some_and(|at| at <= Utc::now()) {
            return Some(Err(Error::Unauthenticated("expired key")));
        }
        Some(Ok(cached.credential))
    }

    fn remember(&self, cache_key: Presented, stored: Stored) -> Result<Credential> {
        let checked_at = Instant::now();
        let expires_at = stored.expiry();
        let credential = stored.usable().inspect_err(|e| self.forget_refused(&cache_key, e))?;
        let cached = Cached {
            credential: credential.clone(),
            expires_at,
        };
        self.entries.put(cache_key, cached, checked_at);
        Ok(credential)
    }
}

/// The outcome of [`rotate`].
#[derive(Debug, Clone)]
pub struct Rotated {
    /// The new key (shown once).
    pub issued: IssuedKey,
    /// The old credential's id.
    pub replaced: i64,
    /// Until when the old key keeps working (`None`: revoked at once).
    pub old_key_expires_at: Option<DateTime<Utc>>,
}

/// Replaces credential `id` with a new key of the same name, role and department. The old key
/// keeps working for `grace` (zero: it is revoked now), then expires; the new key expires when
/// `new_expires_at` says, else when the old one would have. A revoked, expired or already
/// rotated credential is refused ([`catalog::Error::State`]).
pub async fn rotate(
    catalog: &Catalog,
    id: i64,
    grace: chrono::Duration,
    new_expires_at: Option<DateTime<Utc>>,
) -> Result<Rotated> {
    let old = by_id(catalog, id).await?;
    let state = |why: String| Error::Catalog(catalog::Error::State(why));
    if let Some(by) = old.replaced_by {
        return Err(state(format!(
            "credential {id} was already rotated (replaced by credential {by}); rotate that one"
        )));
    }
    let old_expiry = old.expiry();
    let usable = old.clone().usable();
    if let Err(Error::Unauthenticated(why)) = usable {
        return Err(state(format!("credential {id} cannot be rotated: {why}")));
    }
    let now = Utc::now();
    let expires_at = new_expires_at.or(old_expiry);
    let mut tx = catalog.pool().begin().await?;
    let (new_id, key) = insert_key(
        &mut tx,
        &old.credential.name,
        old.credential.role,
        old.credential.department_id,
        expires_at,
    )
    .await?;
    let old_key_expires_at = (!grace.is_zero()).then(|| {
        let end = now + grace;
        old_expiry.map_or(end, |at| at.min(end))
    });
    let done = sqlx::query(
        "UPDATE credentials SET replaced_by = $1, revoked_at = $2, expires_at = COALESCE($3, expires_at) \
         WHERE id = $4 AND revoked_at IS NULL AND replaced_by IS NULL",
    )
    .bind(new_id)
    .bind(old_key_expires_at.is_none().then(|| timestamp_text(now)))
    .bind(old_key_expires_at.map(timestamp_text))
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        // A concurrent rotation or revocation won; the new key is rolled back with the rest.
        return Err(state(format!("credential {id} was revoked or rotated meanwhile")));
    }
    // A developer's account and applications follow the key.
    Catalog::carry_over_credential(&mut tx, id, new_id).await?;
    tx.commit().await?;
    let credential = by_id(catalog, new_id).await?.credential;
    Ok(Rotated {
        issued: IssuedKey { credential, key },
        replaced: id,
        old_key_expires_at,
    })
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
    /// The credential that replaced this one by rotation, if any.
    pub replaced_by: Option<i64>,
}

impl From<Stored> for CredentialInfo {
    fn from(stored: Stored) -> Self {
        Self {
            credential: stored.credential,
            created_at: stored.created_at,
            expires_at: stored.expires_at,
            revoked_at: stored.revoked_at,
            replaced_by: stored.replaced_by,
        }
    }
}

/// Every credential, newest first, optionally of one department.
pub async fn list(catalog: &Catalog, department_id: Option<i64>) -> Result<Vec<CredentialInfo>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM credentials c LEFT JOIN departments d ON d.id = c.department_id \
         WHERE $1 IS NULL OR c.department_id = $1 ORDER BY c.id DESC"
    )))
    .bind(department_id)
    .fetch_all(catalog.pool())
    .await?;
    rows.iter().map(|row| Ok(from_row(row)?.into())).collect()
}

/// Revokes credential `id` and ends its console sessions; returns whether it was active.
pub async fn revoke(catalog: &Catalog, id: i64) -> Result<bool> {
    let done = sqlx::query("UPDATE credentials SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now_text())
        .bind(id)
        .execute(catalog.pool())
        .await?;
    sqlx::query("DELETE FROM sessions WHERE credential_id = $1")
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
