//! The exchange-core error type.

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors from exchange-core. `InvalidValue` is bad input; the others are storage faults.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value that does not belong to its vocabulary or format (bad input).
    #[error("invalid {field}: {message}")]
    InvalidValue {
        /// The field or vocabulary concerned.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A library name that no schema defines.
    #[error("unknown library {0:?}")]
    UnknownLibrary(String),
    /// The Delta table failed (I/O, log conflict, corrupt file).
    #[error("library table: {0}")]
    Delta(#[from] deltalake::DeltaTableError),
    /// Arrow failed building or reading a batch.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// DataFusion failed running a query over a library.
    #[error("query: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// The serving index failed.
    #[error("serving index: {0}")]
    Index(String),
    /// A file-system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn index(e: impl std::fmt::Display) -> Self {
        Error::Index(e.to_string())
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}
