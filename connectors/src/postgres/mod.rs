//! The PostgreSQL source (and the domestic databases that speak its protocol: openGauss,
//! KingbaseES, …), read-only, streamed with `COPY … TO STDOUT`.

mod config;
mod copy_text;
mod source;

pub use config::PostgresSourceConfig;
