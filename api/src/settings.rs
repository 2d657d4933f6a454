//! Typed, layered configuration: built-in defaults, then a TOML file (`--config FILE`, or
//! `huitong.toml` in the working directory when present), then `HUITONG_*` environment
//! variables (`HUITONG_DATA_DIR`, `HUITONG_DATABASE_URL`, `HUITONG_RATE_LIMIT__BURST`, …),
//! then command-line flags.

use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Everything the server and CLI are configured with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where libraries, the SQLite metadata DB and demo files live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The metadata DB. Default: SQLite at `<data_dir>/huitong.db`.
    #[serde(default)]
    pub database_url: Option<SecretString>,
    /// Address and port to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Per-credential request quota.
    #[serde(default)]
    pub rate_limit: RateLimitSettings,
    /// The exchange API.
    #[serde(default)]
    pub exchange: ExchangeSettings,
    /// Catalog rules.
    #[serde(default)]
    pub catalog: CatalogSettings,
    /// Scheduled connector runs.
    #[serde(default)]
    pub sync: SyncSettings,
    /// Authentication: the key cache, access tokens, console sessions.
    #[serde(default)]
    pub auth: AuthSettings,
    /// The open-data API (/open/v1) and portal.
    #[serde(default)]
    pub open: OpenSettings,
}

/// Quotas of the open-data API: anonymous callers per client address, developers per key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenSettings {
    /// Sustained requests per second of one anonymous client address.
    #[serde(default = "default_anonymous_per_second")]
    pub anonymous_per_second: f64,
    /// Requests in a burst from one anonymous client address.
    #[serde(default = "default_anonymous_burst")]
    pub anonymous_burst: u32,
    /// Requests per calendar day (China Standard Time) of one anonymous client address.
    #[serde(default = "default_anonymous_per_day")]
    pub anonymous_per_day: Option<u64>,
    /// Sustained requests per second of one developer key.
    #[serde(default = "default_developer_per_second")]
    pub developer_per_second: f64,
    /// Requests in a burst of one developer key.
    #[serde(default = "default_developer_burst")]
    pub developer_burst: u32,
    /// Requests per calendar day of one developer key.
    #[serde(default = "default_developer_per_day")]
    pub developer_per_day: Option<u64>,
    /// How long a developer key lasts, in days (0: until revoked).
    #[serde(default = "default_developer_key_days")]
    pub developer_key_days: u64,
}

impl Default for OpenSettings {
    fn default() -> Self {
        Self {
            anonymous_per_second: default_anonymous_per_second(),
            anonymous_burst: default_anonymous_burst(),
            anonymous_per_day: default_anonymous_per_day(),
            developer_per_second: default_developer_per_second(),
            developer_burst: default_developer_burst(),
            developer_per_day: default_developer_per_day(),
            developer_key_days: default_developer_key_days(),
        }
    }
}

fn default_anonymous_per_second() -> f64 {
    2.0
}
fn default_anonymous_burst() -> u32 {
    30
}
fn default_anonymous_per_day() -> Option<u64> {
    Some(1_000)
}
fn default_developer_per_second() -> f64 {
    20.0
}
fn default_developer_burst() -> u32 {
    100
}
fn default_developer_per_day() -> Option<u64> {
    Some(50_000)
}
fn default_developer_key_days() -> u64 {
    365
}

/// How callers are authenticated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// How long a successful authentication is trusted without asking the metadata DB again,
    /// in seconds: a key revoked by another process (the CLI) stops working within this time.
    /// 0 asks the DB on every request.
    #[serde(default = "default_cache_seconds")]
    pub cache_seconds: u64,
    /// Lifetime of an OAuth2 access token (JWT), in seconds.
    #[serde(default = "default_token_seconds")]
    pub token_seconds: u64,
    /// Lifetime of a console session, in hours.
    #[serde(default = "default_session_hours")]
    pub session_hours: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            cache_seconds: default_cache_seconds(),
            token_seconds: default_token_seconds(),
            session_hours: default_session_hours(),
        }
    }
}

fn default_cache_seconds() -> u64 {
    1
}
fn default_token_seconds() -> u64 {
    900
}
fn default_session_hours() -> u64 {
    8
}

/// When connectors run by themselves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSettings {
    /// Whether `huitong serve` runs connectors on their schedules.
    #[serde(default = "yes")]
    pub scheduler: bool,
    /// How often the scheduler looks for connectors that are due, in seconds.
    #[serde(default = "default_tick")]
    pub tick_seconds: u64,
    /// How often a real-time (实时) resource's connector polls its source, in seconds.
    #[serde(default = "default_realtime")]
    pub realtime_interval_seconds: u64,
    /// After a failed run, the scheduler tries again after this many seconds (or the regular
    /// interval, when shorter).
    #[serde(default = "default_failure_retry")]
    pub retry_failed_after_seconds: u64,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            scheduler: true,
            tick_seconds: default_tick(),
            realtime_interval_seconds: default_realtime(),
            retry_failed_after_seconds: default_failure_retry(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_tick() -> u64 {
    5
}
fn default_realtime() -> u64 {
    60
}
fn default_failure_retry() -> u64 {
    900
}

/// Rules of the catalog set by provincial regulation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogSettings {
    /// Working days a department has to answer a demand (供需对接 答复时限).
    #[serde(default = "default_deadline")]
    pub demand_deadline_working_days: u32,
    /// Working days the responsible department has to answer an objection (异议处理 答复时限).
    #[serde(default = "default_objection_deadline")]
    pub objection_deadline_working_days: u32,
}

impl Default for CatalogSettings {
    fn default() -> Self {
        Self {
            demand_deadline_working_days: default_deadline(),
            objection_deadline_working_days: default_objection_deadline(),
        }
    }
}

fn default_deadline() -> u32 {
    10
}
fn default_objection_deadline() -> u32 {
    5
}

/// The exchange API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeSettings {
    /// How long a resource, grant or open-data application read from the catalog is trusted, in seconds (fractions
    /// allowed). A change made through this server shows at once; one made by another process
    /// (the CLI, another replica) within this time.
    #[serde(default = "default_catalog_cache")]
    pub catalog_cache_seconds: f64,
    /// Keep an export snapshot of each library (its current records as an Arrow file beside
    /// it), written in the background after the library changes, so that bulk exports and
    /// open-data downloads of the current version read it instead of scanning the serving index.
    #[serde(default = "yes")]
    pub export_snapshots: bool,
    /// The least time between two snapshots of one library, in seconds: a library that changes
    /// more often is exported from the serving index between them.
    #[serde(default = "default_snapshot_interval")]
    pub snapshot_min_interval_seconds: u64,
}

impl Default for ExchangeSettings {
    fn default() -> Self {
        Self {
            catalog_cache_seconds: default_catalog_cache(),
            export_snapshots: true,
            snapshot_min_interval_seconds: default_snapshot_interval(),
        }
    }
}

fn default_snapshot_interval() -> u64 {
    60
}

fn default_catalog_cache() -> f64 {
    1.0
}

/// The default quota of each credential; a grant may set its own on top.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Sustained requests per second (fractions allowed).
    #[serde(default = "default_per_second")]
    pub requests_per_second: f64,
    /// Requests allowed in a burst.
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// Requests per calendar day (China Standard Time); unlimited when absent.
    #[serde(default)]
    pub requests_per_day: Option<u64>,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            requests_per_second: default_per_second(),
            burst: default_burst(),
            requests_per_day: None,
        }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./huitong-data")
}
fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_per_second() -> f64 {
    1000.0
}
fn default_burst() -> u32 {
    2000
}

impl Settings {
    /// Loads defaults, the file, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, config::ConfigError> {
        let mut builder = config::Config::builder();
        match file {
            Some(path) => {
                builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
            }
            None => {
                builder = builder.add_source(
                    config::File::with_name("huitong.toml")
                        .format(config::FileFormat::Toml)
                        .required(false),
                );
            }
        }
        builder
            .add_source(
                config::Environment::with_prefix("HUITONG")
                    .prefix_separator("_")
                    .separator("__")
                    .try_parsing(true),
            )
            .build()?
            .try_deserialize()
    }

    /// The metadata DB URL: the configured one, or SQLite in the data dir.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose_secret().to_string(),
            None => format!("sqlite://{}", self.data_dir.join("huitong.db").display()),
        }
    }

    /// The audit journal's directory (审计日志文件).
    pub fn audit_dir(&self) -> std::path::PathBuf {
        self.data_dir.join("audit")
    }

    /// Replaces the port of `listen`.
    pub fn set_port(&mut self, port: u16) {
        let host = self.listen.rsplit_once(':').map(|(h, _)| h).unwrap_or("127.0.0.1");
        self.listen = format!("{host}:{port}");
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            database_url: None,
            listen: default_listen(),
            rate_limit: RateLimitSettings::default(),
            exchange: ExchangeSettings::default(),
            catalog: CatalogSettings::default(),
            sync: SyncSettings::default(),
            auth: AuthSettings::default(),
            open: OpenSettings::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_parses() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../huitong.toml");
        let settings = Settings::load(Some(&example)).unwrap();
        assert_eq!(settings.listen, "127.0.0.1:8080");
        assert_eq!(settings.database_url(), "sqlite://./huitong-data/huitong.db");
        let auth = settings.auth;
        let defaults = AuthSettings::default();
        assert_eq!(
            (auth.cache_seconds, auth.token_seconds, auth.session_hours),
            (defaults.cache_seconds, defaults.token_seconds, defaults.session_hours)
        );
    }

    #[test]
    fn an_unknown_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "data_dri = \"/x\"\n").unwrap();
        let err = Settings::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("data_dri"), "{err}");
    }

    #[test]
    fn secrets_do_not_print() {
        let settings = Settings {
            database_url: Some(SecretString::from("postgres://u:pw@h/db")),
            ..Settings::default()
        };
        assert!(!format!("{settings:?}").contains("pw"));
    }
}
