//! # huitong (汇通)
//!
//! The server and command-line tool of the Huitong data-sharing and exchange platform:
//! configuration ([`settings`]), the HTTP application ([`startup`], [`routes`]), problem+json
//! errors ([`problem`]), the OpenAPI document ([`openapi`]), the CLI ([`cli`]), the demo ([`demo`]) and themed libraries ([`themes`]). Logic lives in the library
//! crates below; this crate wires them.
#![deny(missing_docs)]
// `Problem` (problem+json) is the error of every handler and is built only on the way out of a
// refused call; its size does not matter there.
#![allow(clippy::result_large_err)]

pub mod auth;
pub mod cli;
pub mod console;
pub mod demo;
pub mod kpi;
pub mod libraries;
pub mod openapi;
pub mod portal;
pub mod problem;
pub mod quality;
pub mod query;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod sync;
pub mod themes;

/// `Result` for start-up and command paths.
pub type Result<T, E = Failure> = std::result::Result<T, E>;

/// A start-up or command failure: its message, with the cause folded in. Bad input to the
/// HTTP API is a [`problem::Problem`] instead.
#[derive(Debug)]
pub struct Failure(String);

impl Failure {
    /// A failure from a message.
    pub fn msg(m: impl Into<String>) -> Self {
        Failure(m.into())
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

macro_rules! failure_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Failure {
            fn from(e: $t) -> Self {
                Failure(e.to_string())
            }
        }
    )*};
}
failure_from!(
    catalog::Error,
    exchange_core::Error,
    policy::Error,
    connectors::Error,
    std::io::Error,
    config::ConfigError,
    serde_json::Error
);
