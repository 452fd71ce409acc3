//! Soak expectations over samples (trends, budgets, availability). Judged in
//! a later change; until then each is reported as unknown, never as pass.

use super::{Assertion, Verdict};
use crate::config::scenario::Scenario;
use crate::journal::RunData;

pub fn judge_soak(out: &mut Vec<Assertion>, sc: &Scenario, _data: &RunData) {
    let e = &sc.expect;
    let keys = [
        ("rss_slope_max", e.rss_slope_max.is_some()),
        ("rss_growth_max", e.rss_growth_max.is_some()),
        ("rss_max", e.rss_max.is_some()),
        ("fds_slope_max", e.fds_slope_max.is_some()),
        ("threads_slope_max", e.threads_slope_max.is_some()),
        ("restart_budget", e.restart_budget.is_some()),
        ("availability_min", e.availability_min.is_some()),
        ("latency_p99_max", e.latency_p99_max.is_some()),
        ("wal_max", e.wal_max.is_some()),
    ];
    for (name, present) in keys {
        if present {
            out.push(Assertion {
                name: name.into(),
                service: None,
                verdict: Verdict::Unknown,
                expected: name.into(),
                observed: "not measured".into(),
                reason: format!("{name} is not judged by this version of soak"),
                at: None,
            });
        }
    }
}
