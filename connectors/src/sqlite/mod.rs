//! The SQLite source: a departmental SQLite file, read-only.

mod config;
mod source;

pub use config::SqliteSourceConfig;

#[cfg(test)]
mod tests;
