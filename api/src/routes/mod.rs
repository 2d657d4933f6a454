//! One module per route group.

pub mod exchange;
pub mod health;
