//! # catalog
//!
//! The metadata database (政务信息资源目录 and everything it governs): departments, resources
//! with their data items, grants, connector configurations, sync runs and quarantine. SQLite by
//! default, PostgreSQL by URL; one SQL text serves both (the sqlx `Any` driver with `$N`
//! placeholders) and each has its own migrations in `migrations/`.
//!
//! ```no_run
//! # async fn demo() -> catalog::Result<()> {
//! let catalog = catalog::Catalog::connect("sqlite:///tmp/huitong.db").await?;
//! let dept = catalog.upsert_department("GA", "市公安局", None).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod authority;
mod connectors;
mod demands;
mod departments;
mod error;
mod grants;
mod objections;
mod open;
mod open_data;
mod quality;
mod resources;
mod responsibilities;
mod themes;
mod transfer;

use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};

pub use authority::{FieldAuthority, field_authorities_in};
pub use connectors::{Connector, NewConnector, QuarantinedRow, RunCounts, RunStatus, SyncRun};
pub use demands::{Demand, DemandDecision, DemandStatus, DemandView, NewDemand, add_working_days};
pub use departments::{Department, LEVELS, NewDepartment};
pub use error::{Error, FieldError, Result, Validator};
pub use grants::{Grant, NewGrant};
pub use objections::{
    Correction, NewObjection, Objection, ObjectionEvent, ObjectionQuery, ObjectionStatus, Resolution, Routing,
};
pub use open::{OPEN_TYPES, Served, is_open, open_items, relevance, search_words, served};
pub use open_data::{ApplicationView, Developer, OpenApplication};
pub use quality::{DUPLICATE_REASON_MARK, NewQualityReport, QualityReport, QualityScope, QuarantineTally};
pub use resources::{
    Classification, DATA_TYPES, DataItem, HistoryEntry, Page, Resource, ResourceInput, ResourceQuery, ResourceStatus,
    ResourceSummary, Visibility,
};
pub use responsibilities::{NewResponsibility, Responsibility, ResponsibilityKind};
pub use themes::{
    MAX_REJECTIONS_KEPT, Materialization, MaterializationCounts, MaterializationOutcome, NewTheme, Refresh, Rejection,
    Theme,
};
pub use transfer::{ImportError, ImportOutcome, read_rows};

/// Which database engine holds the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file (the default).
    Sqlite,
    /// PostgreSQL (and protocol-compatible servers) for production.
    Postgres,
}

/// A connection pool to the metadata DB, migrated.
#[derive(Clone)]
pub struct Catalog {
    pool: AnyPool,
    backend: Backend,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Sets up a new connection: on SQLite, WAL lets readers run beside the writer, FULL sync makes
/// a commit durable when it returns, and the busy timeout rides out short write locks.
async fn prepare_connection(conn: &mut sqlx::AnyConnection, backend: Backend) -> Result<(), sqlx::Error> {
    if backend == Backend::Sqlite {
        conn.execute(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
             PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
        )
        .await?;
    }
    Ok(())
}

impl Catalog {
    /// Connects to `url` (`sqlite://PATH` or `postgres://…`), creating a SQLite file when
    /// missing, and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(Error::Config(format!(
                "database_url must start with sqlite: or postgres:, got {:?}",
                redact_url(url)
            )));
        };
        let url_for_driver = if backend == Backend::Sqlite && !url.contains("mode=") {
            // Create the file when missing.
            format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
        } else {
            url.to_string()
        };
        let options = AnyConnectOptions::from_str(&url_for_driver)?;
        let options = options.disable_statement_logging();
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
            .after_connect(move |conn, _meta| Box::pin(async move { prepare_connection(conn, backend).await }))
            .connect_with(options)
            .await
            .map_err(|e| Error::Connect(format!("{}: {e}", redact_url(url))))?;
        match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        Ok(Self { pool, backend })
    }

    /// The pool, for crates that keep their own tables here (policy: credentials, audit).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which engine this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The current time as stored: RFC 3339, UTC, microseconds, so text order is time order.
pub fn now_text() -> String {
    timestamp_text(chrono::Utc::now())
}

/// A time as stored in the metadata DB.
pub fn timestamp_text(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// A database URL with any password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme_end + 3], &userinfo[..colon], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact_url("postgres://huitong:s3cret@db:5432/meta"),
            "postgres://huitong:***@db:5432/meta"
        );
        assert_eq!(redact_url("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db");
    }
}
