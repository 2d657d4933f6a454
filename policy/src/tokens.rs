//! OAuth2 client-credentials access tokens (RFC 6749 §4.4): short-lived JWTs signed with HS256
//! by a secret of the server's own.
//!
//! Only HS256 is ever accepted: the process's `jsonwebtoken` crypto provider is ours, over
//! `hmac` + `sha2`, and knows no other algorithm, so none of the crate's RSA/EC/EdDSA back ends
//! is built, and a token claiming `alg: none` or an asymmetric algorithm cannot verify.

use std::sync::Once;

use chrono::Utc;
use hmac::{Hmac, Mac};
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::signature::{Signer, Verifier};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::Credential;

/// What an access token says: the credential it was issued to and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The credential id, as a string (JWT subjects are strings).
    pub sub: String,
    /// The credential's role code.
    pub role: String,
    /// The credential's department code, if any.
    pub dept: Option<String>,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
    /// A unique token id.
    pub jti: String,
}

impl Claims {
    /// The credential id in `sub`.
    pub fn credential_id(&self) -> Option<i64> {
        self.sub.parse().ok()
    }
}

/// Why a presented token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Well-formed and correctly signed, but past its `exp`.
    #[error("the access token has expired")]
    Expired,
    /// Malformed, signed with another key or algorithm, or tampered with.
    #[error("the access token is malformed or its signature does not verify")]
    Invalid,
}

/// Issues and verifies access tokens with one HS256 secret.
pub struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    lifetime: chrono::Duration,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// A signer with `secret` (32 random bytes, kept in the data dir) whose tokens live for
    /// `lifetime`.
    pub fn new(secret: &[u8], lifetime: chrono::Duration) -> Self {
        install_hs256_provider();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            lifetime,
        }
    }

    /// How long a token lives, in seconds.
    pub fn lifetime_seconds(&self) -> i64 {
        self.lifetime.num_seconds()
    }

    /// A token for `credential`.
    pub fn issue(&self, credential: &Credential) -> String {
        use rand::Rng;
        let now = Utc::now().timestamp();
        let jti: [u8; 16] = rand::rng().random();
        let claims = Claims {
            sub: credential.id.to_string(),
            role: credential.role.code().to_string(),
            dept: credential.department_code.clone(),
            iat: now,
            exp: now + self.lifetime.num_seconds(),
            jti: crate::hex_string(&jti),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing with a byte secret cannot fail")
    }

    /// The claims of a valid, unexpired token.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => Err(TokenError::Expired),
            Err(_) => Err(TokenError::Invalid),
        }
    }
}

/// HMAC-SHA256 in the shape `jsonwebtoken`'s provider interface wants.
struct Hs256(Hmac<Sha256>);

impl Hs256 {
    fn new(secret: &[u8]) -> jsonwebtoken::errors::Result<Self> {
        Hmac::new_from_slice(secret)
            .map(Self)
            .map_err(|_| ErrorKind::InvalidKeyFormat.into())
    }
}

impl Signer<Vec<u8>> for Hs256 {
    fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, jsonwebtoken::signature::Error> {
        let mut mac = self.0.clone();
        mac.update(message);
        Ok(mac.finalize().into_bytes().to_vec())
    }
}

impl Verifier<Vec<u8>> for Hs256 {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), jsonwebtoken::signature::Error> {
        let mut mac = self.0.clone();
        mac.update(message);
        // Constant-time comparison.
        mac.verify_slice(signature)
            .map_err(jsonwebtoken::signature::Error::from_source)
    }
}

impl JwtSigner for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

impl JwtVerifier for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

static HS256_ONLY: CryptoProvider = CryptoProvider {
    signer_factory: |algorithm, key| match algorithm {
        Algorithm::HS256 => Ok(Box::new(Hs256::new(key.as_bytes())?)),
        _ => Err(ErrorKind::UnsupportedAlgorithm.into()),
    },
    verifier_factory: |algorithm, key| match algorithm {
        Algorithm::HS256 => Ok(Box::new(Hs256::new(key.try_get_as_bytes()?)?)),
        _ => Err(ErrorKind::UnsupportedAlgorithm.into()),
    },
    key_utils: KeyUtils::new_unimplemented(),
};

fn install_hs256_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Fails only if a provider is installed already, which nothing else in this process does.
        let _ = HS256_ONLY.install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;

    fn credential() -> Credential {
        Credential {
            id: 7,
            name: "system".into(),
            role: Role::Consumer,
            department_id: Some(3),
            department_code: Some("110105001".into()),
            key_prefix: "ht_0123abcd".into(),
        }
    }

    #[test]
    fn a_token_round_trips_and_another_secret_refuses_it() {
        let signer = TokenSigner::new(&[1; 32], chrono::Duration::minutes(15));
        let token = signer.issue(&credential());
        let claims = signer.verify(&token).unwrap();
        assert_eq!(claims.credential_id(), Some(7));
        assert_eq!(claims.role, "consumer");
        assert_eq!(claims.exp - claims.iat, 900);
        let other = TokenSigner::new(&[2; 32], chrono::Duration::minutes(15));
        assert_eq!(other.verify(&token), Err(TokenError::Invalid));
    }

    #[test]
    fn an_expired_token_says_so() {
        let signer = TokenSigner::new(&[1; 32], chrono::Duration::seconds(-10));
        let token = signer.issue(&credential());
        assert_eq!(signer.verify(&token), Err(TokenError::Expired));
    }
}
