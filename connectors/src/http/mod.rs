//! The HTTP JSON source: the records of a JSON API, read over HTTP `GET` page by page, with
//! auth headers read from secrets and retries with backoff.

mod config;
mod json;
mod source;

pub use config::{HttpSourceConfig, Pagination};

#[cfg(test)]
mod tests;
