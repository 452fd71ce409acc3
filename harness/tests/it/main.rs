//! Integration tests: real processes, real signals, real SQLite, loopback.
//! One binary with modules, so it links once.

mod chaos;
mod common;
mod config_errors;
mod first_contact;
mod soak;
mod supervise;
#[path = "../support/mod.rs"]
mod support;
