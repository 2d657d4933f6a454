//! Test harness: spawns the real `huitong` server on port 0 against a fresh metadata DB —
//! SQLite in a temp dir, or a uniquely named database in the PostgreSQL that `scripts/test`
//! starts (`TEST_POSTGRES_URL`) — with the demo's data, and drives it over HTTP.

pub mod browser;

use sqlx::AssertSqlSafe;
use std::path::PathBuf;

use huitong::settings::{ExchangeSettings, OpenSettings, RateLimitSettings, Settings, SyncSettings};
use huitong::startup::Application;
use serde_json::Value;

/// Which engine holds the metadata DB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaDb {
    /// SQLite file in the data dir.
    Sqlite,
    /// A new database in the test PostgreSQL cluster.
    Postgres,
}

/// Demo rows for tests: enough dirt to quarantine, small enough to sync in a second.
pub const TEST_ROWS: usize = 1000;

/// A running server with the demo's data and keys.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// The data dir (removed when the app is dropped).
    pub data_dir: tempfile::TempDir,
    /// The settings the server runs with.
    pub settings: Settings,
    /// The metadata DB, to look behind the API.
    pub catalog: catalog::Catalog,
    /// The libraries the server holds, to write behind the API as a step of the server would.
    pub libraries: huitong::libraries::Libraries,
    /// Keys by demo role.
    pub keys: Value,
    /// ID numbers present in the population library.
    pub sample_ids: Vec<String>,
    /// Keys present in each library, by library name.
    pub sample_keys: std::collections::BTreeMap<String, Vec<String>>,
    /// HTTP client.
    pub client: reqwest::Client,
    /// The server's audit writer.
    pub audit: policy::AuditLog,
}

/// The URL of a fresh PostgreSQL database, or a panic saying how to get one.
pub async fn fresh_postgres_database() -> String {
    let admin_url = std::env::var("TEST_POSTGRES_URL")
        .expect("TEST_POSTGRES_URL is not set: run ./scripts/test, which starts a throwaway PostgreSQL");
    let name = format!("huitong_test_{}", rand::random::<u64>());
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL at {admin_url}: {e}"));
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let (base, _) = admin_url.rsplit_once('/').expect("URL with a database name");
    format!("{base}/{name}")
}

/// The URL of a fresh MariaDB/MySQL database, or a panic saying how to get one.
pub async fn fresh_mysql_database() -> String {
    let admin_url = std::env::var("TEST_MYSQL_URL")
        .expect("TEST_MYSQL_URL is not set: run ./scripts/test, which starts a throwaway MariaDB");
    let name = format!("huitong_src_{}", rand::random::<u64>());
    let mut conn = <sqlx::MySqlConnection as sqlx::Connection>::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the test MariaDB at {admin_url}: {e}"));
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name} CHARACTER SET utf8mb4")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let base = admin_url.trim_end_matches('/');
    format!("{base}/{name}")
}

/// A valid, unique citizen ID number for person `n` (born 1950–1999 in 朝阳区).
pub fn person_id(n: u32) -> String {
    let year = 1950 + n % 50;
    let month = 1 + (n / 50) % 12;
    let day = 1 + (n / 600) % 28;
    let seq = n / 16_800 % 1000;
    let first17 = format!("110105{year:04}{month:02}{day:02}{seq:03}");
    assert!(n < 16_800_000, "person_id supports 16.8M people");
    let check = exchange_core::id_number::check_character(first17.as_bytes());
    format!("{first17}{check}")
}

/// Options of [`spawn_app_with`].
#[derive(Debug, Clone)]
pub struct SpawnOptions {
    /// Metadata engine.
    pub meta: MetaDb,
    /// Per-credential quota.
    pub rate_limit: RateLimitSettings,
    /// Rows of the demo's household register (0: an empty population library).
    pub demo_rows: usize,
    /// The scheduler's settings.
    pub sync: SyncSettings,
    /// How long the server trusts a resource or grant it read (`[exchange]
    /// catalog_cache_seconds`). Tests that write the catalog behind the server's back, as
    /// another process would, set 0 so the next call sees the write.
    pub catalog_cache_seconds: f64,
    /// `[exchange] snapshot_min_interval_seconds`: how often a library's export snapshot may
    /// be written again.
    pub snapshot_min_interval_seconds: u64,
    /// The open-data API's quotas.
    pub open: OpenSettings,
}

impl SpawnOptions {
    /// Defaults with this metadata engine.
    pub fn on(meta: MetaDb) -> Self {
        Self {
            meta,
            rate_limit: RateLimitSettings::default(),
            demo_rows: TEST_ROWS,
            sync: SyncSettings::default(),
            catalog_cache_seconds: ExchangeSettings::default().catalog_cache_seconds,
            snapshot_min_interval_seconds: ExchangeSettings::default().snapshot_min_interval_seconds,
            open: OpenSettings::default(),
        }
    }

    /// An empty population library (the demo's catalog and keys, no data), for connector tests.
    pub fn empty_library() -> Self {
        Self {
            demo_rows: 0,
            ..Self::on(MetaDb::Sqlite)
        }
    }
}

/// Spawns the app with default options on `meta`.
pub async fn spawn_app(meta: MetaDb) -> TestApp {
    spawn_app_with(SpawnOptions::on(meta)).await
}

/// Prepares the demo in a temp data dir and serves it on a free port.
pub async fn spawn_app_with(options: SpawnOptions) -> TestApp {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings {
        data_dir: data_dir.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
        rate_limit: options.rate_limit,
        sync: options.sync,
        exchange: ExchangeSettings {
            catalog_cache_seconds: options.catalog_cache_seconds,
            snapshot_min_interval_seconds: options.snapshot_min_interval_seconds,
            ..ExchangeSettings::default()
        },
        open: options.open,
        ..Settings::default()
    };
    if options.meta == MetaDb::Postgres {
        settings.database_url = Some(fresh_postgres_database().await.into());
    }
    let demo = huitong::demo::prepare(&settings, options.demo_rows, 7)
        .await
        .expect("demo prepares");
    let catalog = demo.catalog.clone();
    let libraries = demo.libraries.clone();
    let app = Application::build_with(&settings, demo.catalog, demo.libraries)
        .await
        .expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let audit = app.audit();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        data_dir,
        settings,
        catalog,
        libraries,
        keys: demo.keys,
        sample_ids: demo.sample_keys["population"].clone(),
        sample_keys: demo.sample_keys,
        client: reqwest::Client::new(),
        audit,
    }
}

impl TestApp {
    /// Every audit record, oldest first, as the server lists them (every call answered so far).
    pub async fn audit_records(&self) -> Vec<policy::audit::AuditRecord> {
        let everything = policy::audit::AuditQuery {
            limit: i64::MAX,
            ..Default::default()
        };
        self.audit
            .query(&self.catalog, &everything)
            .await
            .expect("the audit trail can be read")
    }

    /// Changes the journal line of audit record `seq` (`{"hash": …, "record": {…}}`) with
    /// `change`, or removes it when `change` gives `None`, as someone editing the file would
    /// (the line is written back with its keys in serde_json's order). The segment keeps at
    /// least its size, its zeros after the records; call it after the last call of the test:
    /// the writer's next group would land where it would have, behind zeros when the segment's
    /// records got shorter.
    pub fn tamper_audit(&self, seq: i64, change: impl FnOnce(serde_json::Value) -> Option<serde_json::Value>) {
        let mut change = Some(change);
        let mut segments: Vec<_> = std::fs::read_dir(self.audit.journal_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        segments.sort();
        for path in segments {
            let bytes = std::fs::read(&path).unwrap();
            let records = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
            let text = std::str::from_utf8(&bytes[..records]).unwrap();
            let mut out = String::new();
            let mut found = false;
            for line in text.lines() {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                if value["record"]["seq"] == seq {
                    found = true;
                    if let Some(changed) = (change.take().unwrap())(value) {
                        out.push_str(&serde_json::to_string(&changed).unwrap());
                        out.push('\n');
                    }
                } else {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            if found {
                let mut written = out.into_bytes();
                written.resize(written.len().max(bytes.len()), 0);
                std::fs::write(&path, written).unwrap();
                return;
            }
        }
        panic!("no audit record {seq} in the journal");
    }

    /// The audit chain checked through the DB (records of earlier versions) and on through the
    /// journal, as `huitong audit
    /// verify` does.
    pub async fn verify_audit(&self) -> policy::ChainReport {
        policy::audit::verify(&self.catalog, Some(self.audit.journal_dir()))
            .await
            .expect("the audit chain can be read")
    }

    /// The demo key of `role` (`consumer_granted`, `consumer_ungranted`, …).
    pub fn key(&self, role: &str) -> String {
        self.keys[role]
            .as_str()
            .unwrap_or_else(|| panic!("no demo key {role}"))
            .to_string()
    }

    /// `GET /api/v1/exchange/{resource}/records/{key}` with an optional API key.
    pub async fn lookup(&self, resource: &str, key: &str, api_key: Option<&str>) -> reqwest::Response {
        let mut request = self
            .client
            .get(format!("{}/api/v1/exchange/{resource}/records/{key}", self.address));
        if let Some(api_key) = api_key {
            request = request.bearer_auth(api_key);
        }
        request.send().await.expect("request sent")
    }

    /// Looks up `key` in the demo population resource as `role`.
    pub async fn lookup_population(&self, key: &str, role: &str) -> reqwest::Response {
        self.lookup(huitong::demo::POPULATION_CODE, key, Some(&self.key(role)))
            .await
    }

    /// Issues a key for `role` acting for department `department` (arrange step of tests).
    pub async fn issue_key(&self, role: policy::Role, department: Option<&str>) -> String {
        let department_id = match department {
            Some(code) => Some(self.catalog.department_by_code(code).await.expect("department").id),
            None => None,
        };
        policy::credentials::issue(&self.catalog, "test key", role, department_id, None)
            .await
            .expect("key issued")
            .key
    }

    /// `GET {path}` with a key.
    pub async fn get(&self, path: &str, api_key: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .bearer_auth(api_key)
            .send()
            .await
            .expect("request sent")
    }

    /// `POST {path}` with a JSON body and a key.
    pub async fn post(&self, path: &str, api_key: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.address))
            .bearer_auth(api_key)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// `PUT {path}` with a JSON body and a key.
    pub async fn put(&self, path: &str, api_key: &str, body: &Value) -> reqwest::Response {
        self.client
            .put(format!("{}{path}", self.address))
            .bearer_auth(api_key)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// `POST /api/v1/connectors/{connector}/runs` as `api_key`, then follows the run until it
    /// ends; returns the finished run.
    pub async fn run_connector(&self, connector: &str, api_key: &str) -> Value {
        let started = json_of(
            self.post(&format!("/api/v1/connectors/{connector}/runs"), api_key, &Value::Null)
                .await,
            202,
        )
        .await;
        assert_eq!(started["status"], "running");
        self.wait_for_run(connector, started["id"].as_i64().expect("run id"), api_key)
            .await
    }

    /// Follows run `run` of `connector` until it ends (at most ten minutes).
    pub async fn wait_for_run(&self, connector: &str, run: i64, api_key: &str) -> Value {
        for _ in 0..6000 {
            let run = json_of(
                self.get(&format!("/api/v1/connectors/{connector}/runs/{run}"), api_key)
                    .await,
                200,
            )
            .await;
            if run["status"] != "running" {
                return run;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("run {run} of {connector} did not end within ten minutes");
    }

    /// The population library's version and record count, as `/health` reports them.
    pub async fn population_health(&self) -> (i64, i64) {
        let health: Value = self
            .client
            .get(format!("{}/health", self.address))
            .send()
            .await
            .expect("request sent")
            .json()
            .await
            .expect("health is JSON");
        let p = &health["libraries"]["population"];
        (p["version"].as_i64().unwrap(), p["records"].as_i64().unwrap())
    }

    /// The data dir's path.
    pub fn data_path(&self) -> PathBuf {
        self.data_dir.path().to_path_buf()
    }
}

/// Asserts a problem+json response with `status` and `code`; returns its body.
pub async fn assert_problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("json body");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    assert!(body["type"].as_str().unwrap_or_default().ends_with(code));
    assert!(!body["detail"].as_str().unwrap_or_default().is_empty());
    body
}

/// Asserts `status` and returns the JSON body (the body is shown when the status differs).
pub async fn json_of(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{body}");
    body
}

/// Runs each named check against a server on SQLite and one on PostgreSQL:
/// `on_both_databases! { resource_lifecycle => lifecycle; }` makes the tests
/// `resource_lifecycle::on_sqlite` and `resource_lifecycle::on_postgres`.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident => $check:ident;)+) => {$(
        mod $name {
            #[tokio::test]
            async fn on_sqlite() {
                super::$check(&$crate::spawn_app($crate::MetaDb::Sqlite).await).await;
            }

            #[tokio::test]
            async fn on_postgres() {
                super::$check(&$crate::spawn_app($crate::MetaDb::Postgres).await).await;
            }
        }
    )+};
}
