//! Secrets a connector needs (passwords, API keys, auth headers) are never written in its
//! configuration: the configuration names where to find them, and they are read at run time.
//!
//! ```json
//! {"env": "GAJ_PG_PASSWORD"}          // an environment variable
//! {"file": "/etc/huitong/gaj.secret"} // a file (trailing newline ignored)
//! ```

use std::path::PathBuf;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Where a secret is read from. Its `Debug` and `Serialize` forms name the place, never the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SecretRef {
    /// An environment variable of the huitong process.
    Env(String),
    /// A file readable by the huitong process.
    File(PathBuf),
}

impl SecretRef {
    /// Reads the secret; `field` names the config field in the error when it is missing.
    pub fn resolve(&self, field: &str) -> Result<SecretString> {
        let value = match self {
            SecretRef::Env(name) => std::env::var(name)
                .map_err(|_| Error::config(field, format!("environment variable {name} is not set")))?,
            SecretRef::File(path) => std::fs::read_to_string(path)
                .map_err(|e| Error::config(field, format!("cannot read secret file {}: {e}", path.display())))?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
        };
        Ok(SecretString::from(value))
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn reads_files_and_names_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        let secret = SecretRef::File(path).resolve("password").unwrap();
        assert_eq!(secret.expose_secret(), "s3cret");
        let err = SecretRef::Env("HUITONG_TEST_SURELY_UNSET_VAR".into())
            .resolve("password")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("password") && err.contains("HUITONG_TEST_SURELY_UNSET_VAR"),
            "{err}"
        );
        let parsed: SecretRef = serde_json::from_str(r#"{"env": "X"}"#).unwrap();
        assert_eq!(parsed, SecretRef::Env("X".into()));
    }
}
