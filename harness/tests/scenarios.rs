//! Every `scenarios/*.toml` is a test: run through the real `soak chaos`
//! against the fixtures, it must pass with every bug off. Every case of
//! `fixtures/bug-matrix.toml` is a test too: with its bug on, soak must exit
//! 1 and the named assertion must fail for the named reason.
//!
//! Built on `soak::testing`, the same harness a user's project gets.

mod support;

use libtest_mimic::Arguments;
use soak::testing::{ExpectedFailure, Scenarios};
use support::{Bundled, repo};

#[derive(serde::Deserialize)]
struct Matrix {
    case: Vec<ExpectedFailure>,
}

fn main() {
    let args = Arguments::from_args();
    // One copy of scenarios/ and the fixture config naming this build's
    // binaries, kept until every test has run.
    let bundled = Bundled::new().expect("a copy of scenarios/ and fixtures/soak.toml");
    let matrix: Matrix = toml::from_str(
        &std::fs::read_to_string(repo().join("fixtures/bug-matrix.toml"))
            .expect("fixtures/bug-matrix.toml"),
    )
    .expect("a valid bug matrix");
    let mut scenarios = Scenarios::new(bundled.dir.path().join("scenarios"))
        .soak_binary(support::soak_bin())
        // Only a case's own bugs: none inherited from the developer's shell.
        .env_remove("GATEWAY_BUGS")
        .env_remove("STORE_BUGS");
    for case in matrix.case {
        scenarios = scenarios.expect_failure(case);
    }
    let conclusion = libtest_mimic::run(&args, scenarios.trials());
    drop(bundled);
    conclusion.exit();
}
