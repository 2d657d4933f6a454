//! Black-box tests of the `huitong` server over HTTP: one binary, one module per area.

mod audit;
mod catalog;
mod catalog_files;
mod ckan;
mod connectors;
mod console;
mod crash;
mod credentials;
mod datastore;
mod demands;
mod demo;
mod exchange;
mod health;
mod history;
mod lab;
mod libraries;
mod objections;
mod open;
mod openapi;
mod portal;
mod quality;
mod query;
mod themes;
