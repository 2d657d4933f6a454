//! Configuration of the Huitong source.

use serde::{Deserialize, Serialize};

use crate::SecretRef;

/// Follows a resource of another Huitong through its exchange API's change feed
/// (`GET /api/v1/exchange/{resource_code}/changes`), with an API key granted there.
///
/// ```json
/// {
///   "kind": "huitong",
///   "base_url": "https://share.zj.gov.cn",
///   "resource_code": "1-01-001-000001",
///   "api_key": {"env": "ZJ_HUITONG_KEY"}
/// }
/// ```
///
/// Rows carry `_huitong_version` (the remote library version the pull reflects: use it as an
/// incremental connector's integer cursor) and `_huitong_op` (`D` for a deletion). The grant
/// must give the mapped items in plain: a library is never fed masked values, so a pull of
/// masked items fails and says which.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HuitongSourceConfig {
    /// The other Huitong's base URL.
    pub base_url: String,
    /// The resource code there.
    pub resource_code: String,
    /// The API key the other Huitong issued to this platform.
    pub api_key: SecretRef,
    /// The remote library's key field, which deletions fill (default `id_number`).
    #[serde(default = "default_key_field")]
    pub key_field: String,
    /// Changes per request (1–5000).
    #[serde(default = "default_page_size")]
    pub page_size: usize,
    /// Seconds before a request is given up.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_key_field() -> String {
    "id_number".into()
}

fn default_page_size() -> usize {
    1000
}

fn default_timeout() -> u64 {
    60
}
