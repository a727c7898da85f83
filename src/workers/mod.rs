//! Background loops owned by the application; each stops when the shutdown token fires.

pub mod auth_listener;
pub mod expiry;
pub mod key_expiry;
pub mod retention;
