//! soak: launches real services under its own supervisor, injects faults,
//! watches them, and judges from the evidence. See docs/architecture.md for the map:
//! config → plan → supervise → journal → verdict → report.

pub mod analyze;
pub mod chaos;
pub mod cli;
pub mod clock;
pub mod config;
pub mod container;
pub mod http;
pub mod init;
pub mod journal;
pub mod judge;
pub mod lag;
pub mod link;
pub mod metrics;
pub mod partial;
pub mod plan;
pub mod record;
pub mod report;
pub mod rng;
pub mod run;
pub mod rundir;
pub mod sample;
pub mod schedule;
pub mod session;
pub mod supervise;
pub mod testing;
pub mod verdict;
pub mod workload;
