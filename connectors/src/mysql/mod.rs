//! The MySQL and MariaDB source (and the domestic databases that speak their protocol:
//! TiDB, OceanBase in MySQL mode, GoldenDB, …), read-only.

mod config;
mod source;

pub use config::MysqlSourceConfig;
