//! Reports: pure functions of the journal (and the verdict, itself a pure
//! function of the journal).

pub mod html;
mod json;
mod summary;

pub use json::{Report, SCHEMA, build, junit, write, write_atomic, xml_escape};
pub use summary::{ServiceSummary, summarize};

#[cfg(test)]
mod streamed_tests;
