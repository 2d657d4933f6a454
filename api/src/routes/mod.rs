//! One module per route group.

pub mod catalog;
pub mod demands;
pub mod exchange;
pub mod health;
