//! # connectors
//!
//! Sources read as streams of Arrow [`RecordBatch`]es, and the sync engine that maps, normalizes
//! and validates their rows into a library, quarantining what it rejects and committing each
//! run atomically with its watermark.
//!
//! One folder per source kind, each exporting a documented config struct with a
//! `healthcheck()`; [`SourceConfig`] dispatches over them.
#![deny(missing_docs)]

pub mod batch;
mod config;
mod cursor;
pub mod file;
pub mod http;
pub mod huitong;
pub mod mapping;
pub mod mysql;
pub mod postgres;
mod secret;
mod sql;
pub mod sqlite;
mod sync;

use arrow::array::RecordBatch;
use tokio::sync::mpsc;

pub use config::{ConnectorConfig, CursorConfig, Schedule, SourceConfig, SyncMode};
pub use cursor::{CursorKind, ReadRequest, Since};
pub use secret::SecretRef;
pub use sync::{NoProgress, OP_COLUMN, Progress, execute_run, run_connector, watermark_app_id};

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors from connectors and sync runs. Messages never contain credentials.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connector configuration is wrong; names the field.
    #[error("connector config: {field}: {message}")]
    Config {
        /// The offending field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The source could not be reached, or the connection dropped: worth retrying.
    #[error("source unreachable: {0}")]
    Unreachable(String),
    /// The source answered with something that cannot be read (a malformed file, an API
    /// response of the wrong shape): retrying will not help.
    #[error("source unreadable: {0}")]
    Unreadable(String),
    /// Building an Arrow batch failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// The library store failed.
    #[error(transparent)]
    Library(#[from] exchange_core::Error),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] catalog::Error),
}

impl Error {
    pub(crate) fn config(field: &str, message: impl Into<String>) -> Self {
        Error::Config {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// A stream of batches from a source, with bounded buffering.
pub struct BatchStream {
    rx: mpsc::Receiver<Result<RecordBatch>>,
}

impl BatchStream {
    pub(crate) fn new(rx: mpsc::Receiver<Result<RecordBatch>>) -> Self {
        Self { rx }
    }

    /// The next batch, or `None` at the end of the source.
    pub async fn next(&mut self) -> Option<Result<RecordBatch>> {
        self.rx.recv().await
    }
}
