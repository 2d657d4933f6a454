//! Querying libraries on a caller's behalf: row filters ([`filter`]), the caller's view of a
//! library built from the serving index ([`view`]) and the lab's read-only SQL sessions
//! ([`lab`]).

pub mod filter;
pub mod lab;
pub mod view;

use std::sync::Arc;

use actix_web::http::StatusCode;
use exchange_core::LibrarySchema;
use policy::Access;

use crate::problem::Problem;
pub use filter::{FilterError, RowFilter};

/// The compiled row filter of the grant behind `access`, if it has one. A grant whose filter does
/// not compile (stored before filters were checked) fails closed: the call is refused.
pub fn grant_filter(access: &Access, library: &LibrarySchema) -> Result<Option<Arc<RowFilter>>, Problem> {
    match access.row_filter.as_deref() {
        None => Ok(None),
        Some(sql) => RowFilter::cached(library, sql).map(Some).map_err(|e| {
            tracing::error!(grant = ?access.grant_id, filter = sql, error = %e, "a grant's row filter does not compile");
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "grant_filter_invalid",
                "Grant cannot be applied",
                "the row filter of your grant does not compile; ask the providing department to correct it",
            )
        }),
    }
}

/// Checks a grant's row filter before the grant is created: a 422 naming `row_filter`.
pub fn check_grant_filter(columns: &[&str], sql: &str) -> Result<(), Problem> {
    RowFilter::compile_columns(columns, sql).map(|_| ()).map_err(|e| {
        let message = format!("not a boolean expression over the resource's data items: {e}");
        Problem::from(catalog::Error::Validation(vec![catalog::FieldError {
            field: "row_filter".into(),
            message,
        }]))
    })
}
