//! The Huitong source: another Huitong instance's change feed (数据回流 — a province returning
//! data to a city, a city forwarding to a province).

mod config;
mod source;

pub use config::HuitongSourceConfig;
