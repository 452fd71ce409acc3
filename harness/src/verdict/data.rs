//! Data and disk: acknowledged writes survive, databases pass
//! integrity_check, no files left behind, the log does not flood.

use super::{Judge, Verdict, bytes, events_of, incarnations_of, ms, run_end};
use crate::clock::rfc3339_ms;
use crate::config::scenario::Scenario;
use crate::journal::Event;
use crate::journal::RunData;

pub(super) fn writes_survive(j: &mut Judge, workload: &str) {
    // The last read-back of the workload: (row, checked, missing count, missing).
    let rb = j.data.events.iter().rev().find_map(|e| match &e.event {
        Event::Readback {
            workload: w,
            checked,
            missing_count,
            missing,
            acknowledged,
            unchecked,
            unchecked_reason,
        } if w == workload => Some((
            e,
            *checked,
            *missing_count,
            missing,
            (*acknowledged, *unchecked, unchecked_reason.as_str()),
        )),
        _ => None,
    });
    let expected = "every acknowledged write readable".to_string();
    let svc = rb.and_then(|r| r.0.service.clone());
    let Some((rb, checked, missing, missing_list, (acknowledged, unchecked, unchecked_reason))) =
        rb
    else {
        j.push(
            "writes_survive",
            None,
            Verdict::Unknown,
            [
                expected,
                "no read-back".into(),
                format!("acknowledged writes of {workload} were not read back (run interrupted?)"),
            ],
            None,
        );
        return;
    };
    // A read-back from before it read the whole journal checked all it
    // counted.
    let acknowledged = acknowledged.unwrap_or(checked);
    let not_all = if unchecked > 0 {
        format!("; {unchecked} not checked: {unchecked_reason}")
    } else {
        String::new()
    };
    if missing > 0 {
        let keys: Vec<String> = missing_list
            .iter()
            .take(5)
            .filter_map(|m| m.split(':').next().map(str::to_string))
            .collect();
        j.push(
            "writes_survive",
            svc.as_deref(),
            Verdict::Fail,
            [
                expected,
                format!("{missing} of {acknowledged} missing"),
                format!(
                    "{missing} of {acknowledged} acknowledged write(s) of {workload} missing after the run: {}{}{not_all}",
                    keys.join(", "),
                    if missing > 5 { ", ..." } else { "" }
                ),
            ],
            Some(rb.ts),
        );
    } else if acknowledged == 0 {
        j.push(
            "writes_survive",
            svc.as_deref(),
            Verdict::Unknown,
            [
                expected,
                "0 acknowledged".into(),
                if unchecked_reason.is_empty() {
                    format!("no write of {workload} was acknowledged, so none could be lost")
                } else {
                    format!("the writes of {workload} could not be read back: {unchecked_reason}")
                },
            ],
            Some(rb.ts),
        );
    } else if checked == 0 && unchecked > 0 {
        j.push(
            "writes_survive",
            svc.as_deref(),
            Verdict::Unknown,
            [
                expected,
                "none checked".into(),
                format!(
                    "none of the {acknowledged} acknowledged write(s) of {workload} could be read back: {unchecked_reason}"
                ),
            ],
            Some(rb.ts),
        );
    } else if unchecked > 0 {
        j.push(
            "writes_survive",
            svc.as_deref(),
            Verdict::Unknown,
            [
                expected,
                format!("{checked} of {acknowledged} checked, none missing"),
                format!(
                    "{unchecked} of {acknowledged} acknowledged write(s) of {workload} were not checked ({unchecked_reason}); the {checked} checked were all readable"
                ),
            ],
            Some(rb.ts),
        );
    } else {
        j.push(
            "writes_survive",
            svc.as_deref(),
            Verdict::Pass,
            [
                expected,
                format!("{checked} of {acknowledged} readable"),
                format!(
                    "all {acknowledged} acknowledged writes of {workload} readable after the run"
                ),
            ],
            Some(rb.ts),
        );
    }
}

pub(super) fn integrity(j: &mut Judge, sc: &Scenario) {
    for s in &sc.services {
        if sc.config.services[s].sqlite.is_empty() {
            continue;
        }
        // Each database checked: (when, path, result).
        let checks: Vec<(i64, &str, &str)> = events_of(j.data, s)
            .filter_map(|e| match &e.event {
                Event::Integrity { db, result } => Some((e.ts, db.as_str(), result.as_str())),
                _ => None,
            })
            .collect();
        let expected = "PRAGMA integrity_check = ok".to_string();
        if checks.is_empty() {
            j.push(
                "integrity",
                Some(s),
                Verdict::Unknown,
                [
                    expected,
                    "not checked".into(),
                    format!("the databases of {s} were not checked (run interrupted?)"),
                ],
                None,
            );
            continue;
        }
        let bad: Vec<String> = checks
            .iter()
            .filter(|c| c.2 != "ok")
            .map(|(_, db, result)| format!("{db}: {result}"))
            .collect();
        if bad.is_empty() {
            j.push(
                "integrity",
                Some(s),
                Verdict::Pass,
                [
                    expected,
                    "ok".into(),
                    format!("{} database(s) of {s} pass integrity_check", checks.len()),
                ],
                Some(checks[0].0),
            );
        } else {
            j.push(
                "integrity",
                Some(s),
                Verdict::Fail,
                [expected, "damaged".into(), bad.join("; ")],
                Some(checks[0].0),
            );
        }
    }
}

/// `*` matches any run of characters; everything else literally.
pub fn glob(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, rest)) => {
            let Some(tail) = name.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len()).any(|i| tail.is_char_boundary(i) && glob(rest, &tail[i..]))
        }
    }
}

pub(super) fn no_leftovers(j: &mut Judge, sc: &Scenario, patterns: &[String]) {
    for s in &sc.services {
        let listing = events_of(j.data, s)
            .filter_map(|e| match &e.event {
                Event::DataDir { path: _, files } => Some((e.ts, files)),
                _ => None,
            })
            .last();
        let Some((listed_at, files)) = listing else {
            j.push(
                "no_leftovers",
                Some(s),
                Verdict::Unknown,
                [
                    format!("no {} left", patterns.join(", ")),
                    "not listed".into(),
                    format!("the data dir of {s} was not listed after it stopped"),
                ],
                None,
            );
            continue;
        };
        let left: Vec<String> = files
            .iter()
            .filter(|f| patterns.iter().any(|p| glob(p, f)))
            .cloned()
            .collect();
        let expected = format!("no {} left after stop", patterns.join(", "));
        if left.is_empty() {
            j.push(
                "no_leftovers",
                Some(s),
                Verdict::Pass,
                [
                    expected,
                    "none".into(),
                    format!("{s} cleaned up after itself"),
                ],
                Some(listed_at),
            );
        } else {
            j.push(
                "no_leftovers",
                Some(s),
                Verdict::Fail,
                [
                    expected,
                    left.join(", "),
                    format!(
                        "{s} left {} file(s) behind after stopping: {}",
                        left.len(),
                        left.join(", ")
                    ),
                ],
                Some(listed_at),
            );
        }
    }
}

/// The span `log_rate_max` judges a run by: a flood of a few minutes in a
/// run of days must not be averaged away, and a start-up burst of a
/// second is not a flood. A run shorter than this is judged whole.
const LOG_WINDOW_MS: i64 = 5 * 60_000;

/// The most the sampled log took in over any [`LOG_WINDOW_MS`]: (bytes,
/// span in ms, window start). None when the samples span less than one
/// window. Streamed: a window of samples at a time.
fn worst_log_window(data: &RunData, service: &str) -> Result<Option<(u64, i64, i64)>, String> {
    let mut window: std::collections::VecDeque<(i64, u64)> = Default::default();
    let mut worst: Option<(u64, i64, i64)> = None;
    data.for_each_log_sample(service, |ts, total| {
        window.push_back((ts, total));
        // The front is the last sample at or before ts - window.
        while window.len() >= 2 && window[1].0 <= ts - LOG_WINDOW_MS {
            window.pop_front();
        }
        let (from, base) = window[0];
        if ts - from >= LOG_WINDOW_MS {
            let bytes = total.saturating_sub(base);
            // By rate: spans differ by up to a sample interval.
            let rate = |b: u64, span: i64| b as f64 / span.max(1) as f64;
            if worst.is_none_or(|(b, span, _)| rate(bytes, ts - from) > rate(b, span)) {
                worst = Some((bytes, ts - from, from));
            }
        }
    })
    .map_err(|e| e.to_string())?;
    Ok(worst)
}

pub(super) fn log_rate(j: &mut Judge, service: &str, max_per_hour: f64) {
    // What each incarnation's shim counted at exit is the service's own
    // bytes; the sampler measures the log file's growth, which also holds
    // soak's 29-byte prefix on every line and soak's own lines, so it
    // over-counts a service of short lines 2-4 times. The exact count is
    // the run's total when every incarnation's exit is journaled; the
    // samples place the bytes in time, scaled to the exact count.
    let exits: Vec<(i64, u64)> = events_of(j.data, service)
        .filter_map(|e| match &e.event {
            Event::Exited {
                incarnation,
                log_bytes,
                ..
            } => Some((*incarnation, *log_bytes)),
            _ => None,
        })
        .collect();
    let at_exit: u64 = exits.iter().map(|e| e.1).sum();
    let all_exited = incarnations_of(j.data, service).all(|i| exits.iter().any(|e| e.0 == i.id));
    let expected = format!("log <= {}/min", bytes(max_per_hour / 60.0));
    let unreadable = |j: &mut Judge, e: String| {
        j.push(
            "log_rate_max",
            Some(service),
            Verdict::Unknown,
            [
                expected.clone(),
                "unreadable".into(),
                format!("{service}: cannot read the log sizes sampled: {e}"),
            ],
            None,
        );
    };
    let sampled = match j.data.peak_log_bytes(service) {
        Ok(s) => s,
        Err(e) => return unreadable(j, e.to_string()),
    };
    let exact = all_exited && !exits.is_empty();
    let written = if exact { at_exit } else { sampled.max(at_exit) };
    // The service's share of what the file took in.
    let own = if exact && sampled > 0 {
        (at_exit as f64 / sampled as f64).min(1.0)
    } else {
        1.0
    };
    let worst = match worst_log_window(j.data, service) {
        Ok(w) => w,
        Err(e) => return unreadable(j, e),
    };
    let start = j.data.run.as_ref().map_or(0, |r| r.started_at);
    let span_ms = (run_end(j.data) - start).max(1);
    let per_hour = written as f64 * 3_600_000.0 / span_ms as f64;
    let whole = format!(
        "{} in {} ({}/min)",
        bytes(written as f64),
        ms(span_ms),
        bytes(per_hour / 60.0)
    );
    let window = worst.map(|(b, span, from)| {
        let b = b as f64 * own;
        (b * 3_600_000.0 / span as f64, b, span, from)
    });
    let (observed, rate) = match window {
        Some((window_per_hour, b, span, from)) if window_per_hour > per_hour => (
            format!(
                "{} in {} from {} ({}/min); {whole} in all",
                bytes(b),
                ms(span),
                &rfc3339_ms(from)[11..19],
                bytes(window_per_hour / 60.0)
            ),
            window_per_hour,
        ),
        _ => (whole, per_hour),
    };
    let ok = rate <= max_per_hour;
    let reason = if ok {
        format!("{service} wrote {observed}")
    } else {
        format!("{service} flooded its log: {observed}")
    };
    j.push(
        "log_rate_max",
        Some(service),
        if ok { Verdict::Pass } else { Verdict::Fail },
        [expected, observed, reason],
        None,
    );
}
