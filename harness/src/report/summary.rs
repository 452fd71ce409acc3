//! Per-service figures of a run: incarnations, restarts planned and
//! unplanned, last exit, orphans. Used by the console summary and report.json.

use crate::journal::{Cause, Event, IncarnationRow, RunData};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Restarts {
    /// Starts that followed a death a scenario caused on purpose.
    pub planned: u32,
    /// Starts that followed a crash, an exit or a hang.
    pub unplanned: u32,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ServiceSummary {
    pub incarnations: u32,
    pub restarts: Restarts,
    pub hangs: u32,
    pub orphans: u64,
    pub last_exit: Option<String>,
    pub gave_up: bool,
    /// Why the last start failed (the command could not be spawned); with
    /// `incarnations == 0`, why it never ran at all.
    pub start_failure: Option<String>,
}

/// "code 3", "signal KILL", or "running" for an incarnation.
pub fn describe_exit(i: &IncarnationRow) -> String {
    let how = match (i.exit_code, &i.signal, i.ended_at) {
        (Some(c), _, _) => format!("code {c}"),
        (None, Some(s), _) => format!("signal {s}"),
        (None, None, Some(_)) => "ended".to_string(),
        (None, None, None) => return "running".into(),
    };
    match &i.cause {
        Some(c) => format!("{how} ({c})"),
        None => how,
    }
}

pub fn summarize(data: &RunData) -> BTreeMap<String, ServiceSummary> {
    let mut out: BTreeMap<String, ServiceSummary> = BTreeMap::new();
    let mut previous: BTreeMap<&str, &IncarnationRow> = BTreeMap::new();
    for inc in &data.incarnations {
        let s = out.entry(inc.service.clone()).or_default();
        s.incarnations += 1;
        s.orphans += inc.orphans.unwrap_or(0).max(0) as u64;
        if inc.cause == Some(Cause::Hung) {
            s.hangs += 1;
        }
        if inc.cause == Some(Cause::GaveUp) {
            s.gave_up = true;
        }
        if let Some(prev) = previous.insert(&inc.service, inc) {
            // soak's own doing: a kill it planned, or a stop (a scheduled
            // stop restarts the service), as restart_budget and the
            // report's chart count them.
            match prev.cause {
                Some(Cause::Planned | Cause::Stopped) => s.restarts.planned += 1,
                _ => s.restarts.unplanned += 1,
            }
        }
        s.last_exit = Some(describe_exit(inc));
    }
    for e in &data.events {
        if let (Event::SpawnFailed { error }, Some(service)) = (&e.event, &e.service) {
            out.entry(service.clone()).or_default().start_failure = Some(error.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inc(id: i64, service: &str, cause: Option<&str>, code: Option<i32>) -> IncarnationRow {
        IncarnationRow {
            id,
            service: service.into(),
            pid: Some(100 + id as i32),
            started_at: id * 1000,
            ready_at: None,
            ended_at: cause.map(|_| id * 1000 + 500),
            exit_code: code,
            signal: None,
            cause: cause.and_then(Cause::parse),
            orphans: Some(if cause == Some("planned") { 2 } else { 0 }),
        }
    }

    #[test]
    fn restarts_are_split_by_the_cause_of_the_death_before() {
        let data = RunData {
            incarnations: vec![
                inc(1, "a", Some("planned"), None),
                inc(2, "a", Some("unplanned"), Some(3)),
                inc(3, "a", Some("hung"), None),
                inc(6, "a", Some("stopped"), Some(0)),
                inc(4, "a", None, None),
                inc(5, "b", Some("gave-up"), Some(3)),
            ],
            ..RunData::default()
        };
        let s = summarize(&data);
        assert_eq!(s["a"].incarnations, 5);
        assert_eq!(
            s["a"].restarts,
            Restarts {
                planned: 2,
                unplanned: 2
            }
        );
        assert_eq!(s["a"].orphans, 2);
        assert_eq!(s["a"].hangs, 1);
        assert_eq!(s["a"].last_exit.as_deref(), Some("running"));
        assert!(s["b"].gave_up);
        assert_eq!(s["b"].last_exit.as_deref(), Some("code 3 (gave-up)"));
    }
}
