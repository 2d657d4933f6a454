//! # policy
//!
//! Who may see what, and the record of who saw it.
//!
//! - [`credentials`]: API keys, random, shown once, stored as SHA-256 hashes; rotation with a
//!   grace period; the [`Authenticator`] that keeps the hot path off the DB.
//! - [`tokens`]: OAuth2 client-credentials access tokens (HS256 JWTs).
//! - [`sessions`]: the web console's login sessions.
//! - [`authz`]: the decision for one call from the catalog: share type, grant, sensitivity.
//! - [`mask`]: masking by field kind (ID number, name, mobile, address …), done in the server.
//! - [`quota`]: per-credential and per-grant quotas, per second and per day (governor).
//! - [`cache`]: the catalog reads of the exchange hot path, kept for a second.
//! - [`audit`]: the hash-chained audit trail, written in group commits, durable before the
//!   response leaves; [`audit::verify`] finds the first broken link.
#![deny(missing_docs)]

pub mod audit;
pub mod authz;
pub mod cache;
pub mod credentials;
pub mod mask;
pub mod open;
pub mod quota;
pub mod sessions;
pub mod tokens;

pub use audit::{AuditEntry, AuditLog, ChainReport};
pub use authz::{Access, Decision, Denial, ItemAccess, decide};
pub use cache::CatalogCache;
pub use credentials::{Authenticator, Credential, CredentialInfo, IssuedKey, Role, Rotated};
pub use quota::{OverQuota, Quotas};
pub use tokens::{Claims, TokenError, TokenSigner};

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors from policy operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The presented key is unknown, malformed, expired or revoked.
    #[error("invalid credential: {0}")]
    Unauthenticated(&'static str),
    /// The metadata DB failed.
    #[error("metadata database: {0}")]
    Database(#[from] sqlx::Error),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] catalog::Error),
    /// The audit writer stopped; no call can be served without its record.
    #[error("audit trail unavailable: {0}")]
    AuditUnavailable(String),
}

/// Lower-case hex SHA-256 of `parts`, concatenated.
pub fn sha256_hex(parts: &[&[u8]]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hex_string(&hasher.finalize())
}

/// `bytes` in lower-case hex. `hex::encode` builds its string a `char` at a time; this
/// encodes through a table into one buffer (it is on every exchange call, three times).
pub fn hex_string(bytes: &[u8]) -> String {
    let mut out = vec![0; bytes.len() * 2];
    hex::encode_to_slice(bytes, &mut out).expect("the buffer holds two digits a byte");
    String::from_utf8(out).expect("hex digits are ASCII")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn hex_string_is_lower_case_hex(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            prop_assert_eq!(super::hex_string(&bytes), hex::encode(&bytes));
        }
    }
}
