//! Black-box tests of the `huitong` server over HTTP: one binary, one module per area.

mod audit;
mod demo;
mod exchange;
mod health;
