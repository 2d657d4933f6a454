//! Console sessions (the web console's login): a random 256-bit token in a cookie, stored only
//! as its SHA-256, with an expiry. A session lives no longer than its credential: it is checked
//! against the credential on every use, and revoking the credential deletes its sessions.

use chrono::{DateTime, Utc};
use rand::Rng;
use sqlx::AssertSqlSafe;
use sqlx::Row;

use catalog::{Catalog, now_text, timestamp_text};

use crate::credentials::{COLUMNS, from_row};
use crate::{Credential, Error, Result, sha256_hex};

/// A session just started: the token goes into the cookie and is never retrievable again.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The cookie's value.
    pub token: String,
    /// When the session ends.
    pub expires_at: DateTime<Utc>,
}

/// Starts a session for `credential_id`, lasting `lifetime`.
pub async fn start(catalog: &Catalog, credential_id: i64, lifetime: chrono::Duration) -> Result<NewSession> {
    let secret: [u8; 32] = rand::rng().random();
    let token = crate::hex_string(&secret);
    let expires_at = Utc::now() + lifetime;
    sqlx::query("INSERT INTO sessions (token_hash, credential_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(sha256_hex(&[token.as_bytes()]))
        .bind(credential_id)
        .bind(now_text())
        .bind(timestamp_text(expires_at))
        .execute(catalog.pool())
        .await?;
    Ok(NewSession { token, expires_at })
}

/// The credential of session `token`, if the session and the credential are both valid now.
pub async fn authenticate(catalog: &Catalog, token: &str) -> Result<(Credential, String)> {
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Unauthenticated("malformed session"));
    }
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {COLUMNS}, s.expires_at AS session_expires_at FROM sessions s \
         JOIN credentials c ON c.id = s.credential_id LEFT JOIN departments d ON d.id = c.department_id \
         WHERE s.token_hash = $1"
    )))
    .bind(sha256_hex(&[token.as_bytes()]))
    .fetch_optional(catalog.pool())
    .await?
    .ok_or(Error::Unauthenticated("unknown or ended session"))?;
    let session_expires_at: String = row.try_get("session_expires_at")?;
    if session_expires_at <= now_text() {
        return Err(Error::Unauthenticated("expired session"));
    }
    Ok((from_row(&row)?.usable()?, session_expires_at))
}

/// Ends session `token` (logout); returns whether there was one.
pub async fn end(catalog: &Catalog, token: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
        .bind(sha256_hex(&[token.as_bytes()]))
        .execute(catalog.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}
