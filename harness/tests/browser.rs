//! Placeholder: the browser test is being written.
fn main() {}
