//! Metrics in and out.
//!
//! In: [`scrape`] reads a service's own `/metrics` (Prometheus text or
//! OpenMetrics, parsed strictly by [`parse`]) and keeps the series its
//! config names; [`rate`] turns kept counters into rates across restarts.
//! Out: [`expose`] serves soak's own figures at `/metrics` so a Prometheus
//! server can watch a fleet of soaks.

pub mod expose;
pub mod parse;
pub mod rate;
pub mod scrape;

pub use expose::{AssertionState, BindError, Exposition, bind, serve};
pub use parse::{Sample, Selector, SelectorError};
pub use rate::{CounterPoint, counter_increase, counter_rate, max_counter_rate};
pub use scrape::{Keep, ScrapeError, Scraped, scrape};
