//! Reports: pure functions of the journal.

mod summary;

pub use summary::{ServiceSummary, summarize};
