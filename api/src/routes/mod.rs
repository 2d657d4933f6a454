//! One module per route group.

pub mod catalog;
pub mod credentials;
pub mod demands;
pub mod exchange;
pub mod health;
