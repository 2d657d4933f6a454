//! The catalog error type.

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors from the catalog. `NotFound`, `Conflict` and `Invalid` are the caller's to fix; the
/// rest are faults of the database or its configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database URL or options are wrong.
    #[error("metadata database configuration: {0}")]
    Config(String),
    /// The database could not be reached.
    #[error("cannot connect to the metadata database {0}")]
    Connect(String),
    /// No such entity.
    #[error("{entity} {key:?} not found")]
    NotFound {
        /// What was looked for (department, resource, …).
        entity: &'static str,
        /// The code or id given.
        key: String,
    },
    /// A unique code is already taken.
    #[error("{entity} {key:?} already exists")]
    Conflict {
        /// What kind of entity.
        entity: &'static str,
        /// The duplicate code.
        key: String,
    },
    /// A stored or given value is not valid.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The field concerned.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// One or more fields of a request are invalid; every offending field is listed.
    #[error("invalid input: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Validation(Vec<FieldError>),
    /// The caller may not do this (wrong role or department).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The entity is not in a state that allows this (e.g. publishing a draft not submitted).
    #[error("{0}")]
    State(String),
    /// A query failed.
    #[error("metadata database: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("metadata database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<exchange_core::Error> for Error {
    fn from(e: exchange_core::Error) -> Self {
        match e {
            exchange_core::Error::InvalidValue { field, message } => Error::Invalid {
                field: field.to_string(),
                message,
            },
            other => Error::Invalid {
                field: "value".into(),
                message: other.to_string(),
            },
        }
    }
}

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field, as named in the request (`items[2].sensitivity`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// Collects every field error of a request before failing.
#[derive(Debug, Default)]
pub struct Validator(Vec<FieldError>);

impl Validator {
    /// Records that `field` is invalid.
    pub fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    /// Records an error when `ok` is false.
    pub fn check(&mut self, ok: bool, field: impl Into<String>, message: impl Into<String>) {
        if !ok {
            self.error(field, message);
        }
    }

    /// The errors recorded so far.
    pub fn into_errors(self) -> Vec<FieldError> {
        self.0
    }

    /// `Ok` when no error was recorded, else all of them.
    pub fn finish(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(self.0))
        }
    }
}

/// Maps a unique-constraint violation to [`Error::Conflict`].
pub(crate) fn conflict_on_unique(entity: &'static str, key: &str) -> impl FnOnce(sqlx::Error) -> Error {
    let key = key.to_string();
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::Conflict { entity, key },
        _ => Error::Database(e),
    }
}
