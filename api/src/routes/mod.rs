//! One module per route group.

pub mod audit;
pub mod catalog;
pub mod ckan;
pub mod connectors;
pub mod credentials;
pub mod datastore;
pub mod demands;
pub mod exchange;
pub mod health;
pub mod history;
pub mod lab;
pub mod libraries;
pub mod oauth;
pub mod objections;
pub mod open;
pub mod open_catalog;
pub mod quality;
pub mod query;
pub mod session;
pub mod themes;
