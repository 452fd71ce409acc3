//! Verdicts: pure functions of the journal. Each expectation of a scenario
//! becomes one or more assertions, each pass, fail or unknown (not enough
//! evidence), with what was expected, what was observed, and one line of why.
//! Nothing here looks at a live process or a clock.
//!
//! One file per family (recovery, chaos, data, soak trends, load); each
//! reads the journal through [`Judge`] and the typed [`Event`]s, and
//! [`judge`] calls them in the order their assertions are reported.

use crate::clock::human;
use crate::config::scenario::Scenario;
pub use crate::config::units::bytes;
use crate::journal::{Event, EventRow, FaultParams, IncarnationRow, RunData};
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

/// Pass, fail or unknown: defined beside the journal's events, which carry
/// a long run's verdicts so far.
pub use crate::journal::Verdict;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Assertion {
    pub name: String,
    pub service: Option<String>,
    pub verdict: Verdict,
    pub expected: String,
    pub observed: String,
    pub reason: String,
    /// When it was decided (ms since epoch), to place it on a timeline.
    pub at: Option<i64>,
    /// The line a trend assertion fitted, so a report draws the verdict's
    /// own line rather than a refit of its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trend: Option<FittedTrend>,
}

/// A trend verdict's line through one incarnation's samples after the
/// warm-up: `value_at_from + slope_per_hour * (t - from) / 1 h`, in the
/// metric's own unit (bytes for RSS).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FittedTrend {
    pub incarnation: i64,
    pub warmup_ms: i64,
    /// First and last sample the line was fitted to (ms since epoch).
    pub from: i64,
    pub to: i64,
    pub value_at_from: f64,
    pub slope_per_hour: f64,
    /// From `to` until the line reaches the limit, when it rises toward one.
    pub projected_limit_ms: Option<i64>,
}

/// The run's verdict: any failure fails; otherwise any unknown (or an
/// interrupted run) is unknown; pass only when everything passed.
pub fn overall(assertions: &[Assertion], interrupted: bool) -> Verdict {
    if assertions.iter().any(|a| a.verdict == Verdict::Fail) {
        Verdict::Fail
    } else if interrupted || assertions.iter().any(|a| a.verdict == Verdict::Unknown) {
        Verdict::Unknown
    } else {
        Verdict::Pass
    }
}

/// A fault as the journal tells it.
#[derive(Debug, Clone)]
pub struct FaultRecord {
    pub step: usize,
    pub action: String,
    pub target: String,
    pub injected_at: i64,
    /// The row's detail as journaled, for display.
    pub detail: Value,
    /// What the fault did, for judging.
    pub params: FaultParams,
    /// The next fault's injection on the same target, or the end of the
    /// run: this fault's window.
    pub window_end: i64,
}

pub fn faults(data: &RunData) -> Vec<FaultRecord> {
    let end = run_end(data);
    let mut out: Vec<FaultRecord> = data
        .events
        .iter()
        .filter_map(|e| match &e.event {
            Event::FaultInjected {
                step,
                action,
                incarnation: _,
                params,
            } => Some(FaultRecord {
                step: *step,
                action: action.clone(),
                target: e.service.clone().unwrap_or_default(),
                injected_at: e.ts,
                detail: e.detail.clone(),
                params: params.clone(),
                window_end: end,
            }),
            _ => None,
        })
        .collect();
    // A fault's window ends at the next fault on the same service: a fault
    // elsewhere does not end what this one does to its target.
    for i in 0..out.len() {
        if let Some(next) = out[i + 1..].iter().find(|n| n.target == out[i].target) {
            out[i].window_end = next.injected_at;
        }
    }
    out
}

pub fn run_end(data: &RunData) -> i64 {
    data.run
        .as_ref()
        .and_then(|r| r.ended_at)
        .or_else(|| data.events.last().map(|e| e.ts))
        .unwrap_or(0)
}

fn ms(d: i64) -> String {
    human(Duration::from_millis(d.max(0) as u64))
}

/// The events of `service`, in journal order.
fn events_of<'a>(data: &'a RunData, service: &'a str) -> impl Iterator<Item = &'a EventRow> {
    data.events
        .iter()
        .filter(move |e| e.service.as_deref() == Some(service))
}

fn incarnations_of<'a>(
    data: &'a RunData,
    service: &'a str,
) -> impl Iterator<Item = &'a IncarnationRow> {
    data.incarnations
        .iter()
        .filter(move |i| i.service == service)
}

struct Judge<'a> {
    data: &'a RunData,
    out: Vec<Assertion>,
}

impl Judge<'_> {
    /// `text` is expected, observed, reason.
    fn push(
        &mut self,
        name: &str,
        service: Option<&str>,
        verdict: Verdict,
        text: [String; 3],
        at: Option<i64>,
    ) {
        let [expected, observed, reason] = text;
        self.out.push(Assertion {
            name: name.into(),
            service: service.map(str::to_string),
            verdict,
            expected,
            observed,
            reason,
            at,
            trend: None,
        });
    }
}

/// Judges every expectation of `sc` against the journal.
pub fn judge(sc: &Scenario, data: &RunData) -> Vec<Assertion> {
    let mut j = Judge {
        data,
        out: Vec::new(),
    };
    let journaled = faults(data);
    // What each fault hit: a link fault is judged on the link's dependents.
    let fs = link::hit_services(sc, &journaled);
    let e = &sc.expect;
    // Which services an expectation is about: the targets of the steps, or
    // every service of a baseline run.
    // Each once, in the order of their first step.
    let mut targets: Vec<String> = Vec::new();
    for s in &sc.steps {
        for t in link::hit_targets(sc, s) {
            if !targets.contains(&t) {
                targets.push(t);
            }
        }
    }
    if targets.is_empty() {
        targets = sc.services.clone();
    }
    if let Some(limit) = e.healthy_within {
        recovery::healthy_within(&mut j, &fs, &targets, limit.0);
    }
    if let Some(limit) = e.detected_within {
        recovery::detected_within(&mut j, &fs, limit.0);
    }
    if let Some(b) = &e.restarts {
        recovery::restarts(&mut j, &targets, b);
    }
    if e.survives == Some(true) {
        recovery::survives(&mut j, &fs);
    }
    if e.no_orphans == Some(true) {
        for s in &sc.services {
            recovery::no_orphans(&mut j, s);
        }
    }
    if let Some(w) = &e.writes_survive {
        data::writes_survive(&mut j, w.get_ref());
    }
    if e.integrity == Some(true) {
        data::integrity(&mut j, sc);
    }
    if let Some(limit) = e.duplicate_refused_within {
        chaos::duplicate_refused(&mut j, &fs, limit.0);
    }
    if e.stops_within.is_some() || e.exit_code.is_some() {
        chaos::stops(&mut j, &fs, e);
    }
    if let Some(patterns) = &e.no_leftovers {
        data::no_leftovers(&mut j, sc, patterns);
    }
    if let Some(rate) = e.log_rate_max {
        for s in &sc.services {
            data::log_rate(&mut j, s, rate.0);
        }
    }
    if let Some(w) = &e.consistent_reads {
        chaos::consistent_reads(&mut j, &fs, w.get_ref());
    }
    if let Some(ff) = &e.fails_fast {
        link::fails_fast(&mut j, sc, &journaled, ff);
    }
    if let Some(rw) = &e.recovers_within {
        link::recovers_within(&mut j, sc, &journaled, rw);
    }
    soak::judge(&mut j, sc);
    metric::judge(&mut j, sc);
    load::judge(&mut j, sc);
    never_started(&mut j);
    unreadable(&mut j);
    j.out
}

/// Assertions about a running service: with no incarnation there is
/// nothing they could have observed.
const NEEDS_RUNNING: &[&str] = &[
    "integrity",
    "no_orphans",
    "no_leftovers",
    "log_rate_max",
    "rss_slope_max",
    "rss_growth_max",
    "rss_max",
    "fds_slope_max",
    "threads_slope_max",
    "wal_max",
    "metric_slope_max",
    "metric_max",
    "metric_rate_max",
    "survives",
];

/// A service that never started (no incarnation) or never became ready
/// makes assertions about it running unknown, never a failure: a database
/// it never created is not a damaged one. Whether it started at all is for
/// `healthy_within` and `restarts` to judge, which are left as they are.
fn never_started(j: &mut Judge) {
    let data = j.data;
    for a in &mut j.out {
        let Some(s) = a.service.clone() else { continue };
        if !NEEDS_RUNNING.contains(&a.name.as_str()) {
            continue;
        }
        let mut incs = incarnations_of(data, &s).peekable();
        let why = if incs.peek().is_none() {
            format!("{s} never started, so {} had nothing to judge", a.name)
        } else if a.name == "integrity"
            && a.verdict == Verdict::Fail
            && !incs.any(|i| i.ready_at.is_some())
            && events_of(data, &s).all(|e| match &e.event {
                Event::Integrity { result, .. } => result.starts_with("missing"),
                _ => true,
            })
        {
            format!(
                "{s} never became ready and never created its database(s), so none could be damaged"
            )
        } else {
            continue;
        };
        a.verdict = Verdict::Unknown;
        a.observed = "never started".into();
        a.reason = why;
        a.trend = None;
    }
}

/// Rows this version cannot read (another soak version's) are evidence the
/// verdicts above could not see: the run cannot pass on them.
fn unreadable(j: &mut Judge) {
    let mut rows = j.data.events.iter().filter_map(|e| match &e.event {
        Event::Unreadable { why } => Some((e.ts, why)),
        _ => None,
    });
    let Some((ts, why)) = rows.next() else {
        return;
    };
    let n = 1 + rows.count();
    j.push(
        "journal_readable",
        None,
        Verdict::Unknown,
        [
            "every event readable".into(),
            format!("{n} unreadable"),
            format!(
                "{n} event row(s) this soak version cannot read, so verdicts may have missed evidence; first: {why}"
            ),
        ],
        Some(ts),
    );
}

pub use data::glob;

mod chaos;
mod data;
mod link;
mod load;
mod metric;
mod recovery;
mod soak;
pub mod trend;

#[cfg(test)]
mod link_tests;
#[cfg(test)]
mod metric_tests;
#[cfg(test)]
mod tests;
