//! Recovery: does a service come back (healthy_within, detected_within,
//! restarts), ride a fault out (survives), and die alone (no_orphans)?

use super::{FaultRecord, Judge, Verdict, events_of, incarnations_of, ms};
use crate::clock::human;
use crate::config::scenario::Bounds;
use crate::journal::{Cause, Event, IncarnationRow, OrphanProcess, RunData};
use std::time::Duration;

pub(super) fn healthy_within(
    j: &mut Judge,
    fs: &[FaultRecord],
    targets: &[String],
    limit: Duration,
) {
    let lim = limit.as_millis() as i64;
    let expected = format!("healthy within {}", human(limit));
    let faults: Vec<&FaultRecord> = fs.iter().filter(|f| f.action != "stop").collect();
    if faults.is_empty() {
        for t in targets {
            let ready = events_of(j.data, t)
                .find(|e| matches!(e.event, Event::Ready { .. }))
                .map(|e| e.ts);
            let (v, obs, why) = match ready {
                Some(_) => (
                    Verdict::Pass,
                    "healthy".into(),
                    format!("{t} became healthy"),
                ),
                None => (
                    Verdict::Fail,
                    "never healthy".into(),
                    format!("{t} never became healthy"),
                ),
            };
            j.push(
                "healthy_within",
                Some(t),
                v,
                [expected.clone(), obs, why],
                ready,
            );
        }
        return;
    }
    for f in faults {
        let t = &f.target;
        // soak stopping the service at the end of the run is not ill health.
        let unhealthy = events_of(j.data, t)
            .filter(|e| match &e.event {
                Event::Exited { cause, .. } => *cause != Cause::Stopped,
                Event::ProbeFailed { .. } | Event::Hung { .. } => true,
                _ => false,
            })
            .find(|e| e.ts >= f.injected_at && e.ts < f.window_end);
        let Some(u) = unhealthy else {
            // A hang the probe cannot see is not health: if the load saw it,
            // the green probe was blind, not right.
            let (sent, failed) = if f.action == "hang" {
                load_between(j.data, t, f.injected_at, f.window_end + 1000)
            } else {
                (0, 0)
            };
            let (v, obs, why) = if failed > 0 {
                (
                    Verdict::Fail,
                    "probe blind to the hang".to_string(),
                    format!(
                        "health of {t} stayed green through the hang while {failed} of {sent} requests to {t} failed: its probe cannot see this hang"
                    ),
                )
            } else {
                (
                    Verdict::Pass,
                    "never unhealthy".to_string(),
                    format!("{t} stayed healthy through the {}", f.action),
                )
            };
            j.push(
                "healthy_within",
                Some(t),
                v,
                [expected.clone(), obs, why],
                Some(f.injected_at),
            );
            continue;
        };
        let back = events_of(j.data, t).find(|e| {
            e.ts > u.ts && matches!(e.event, Event::Ready { .. } | Event::ProbeRecovered { .. })
        });
        match back {
            Some(b) => {
                let dt = b.ts - f.injected_at;
                let v = if dt <= lim {
                    Verdict::Pass
                } else {
                    Verdict::Fail
                };
                let reason = if v == Verdict::Pass {
                    format!(
                        "{t} healthy again {} after the {} (limit {})",
                        ms(dt),
                        f.action,
                        human(limit)
                    )
                } else {
                    format!(
                        "{t} healthy again only {} after the {} (limit {})",
                        ms(dt),
                        f.action,
                        human(limit)
                    )
                };
                j.push(
                    "healthy_within",
                    Some(t),
                    v,
                    [
                        expected.clone(),
                        format!("healthy after {}", ms(dt)),
                        reason,
                    ],
                    Some(b.ts),
                );
            }
            None => {
                let gave_up = events_of(j.data, t)
                    .any(|e| e.ts >= f.injected_at && matches!(e.event, Event::GaveUp { .. }));
                let reason = format!(
                    "{t} not healthy again after the {}{}",
                    f.action,
                    if gave_up {
                        ": the supervisor gave up restarting it"
                    } else {
                        ""
                    }
                );
                j.push(
                    "healthy_within",
                    Some(t),
                    Verdict::Fail,
                    [expected.clone(), "not healthy again".into(), reason],
                    Some(u.ts),
                );
            }
        }
    }
}

/// Requests to `service` in [from, to): (sent, failed).
pub(super) fn load_between(data: &RunData, service: &str, from: i64, to: i64) -> (u64, u64) {
    events_of(data, service)
        .filter(|e| e.ts >= from && e.ts < to)
        .fold((0, 0), |(s, f), e| match &e.event {
            Event::Load { sent, failed, .. } => (s + sent, f + failed),
            _ => (s, f),
        })
}

pub(super) fn detected_within(j: &mut Judge, fs: &[FaultRecord], limit: Duration) {
    let lim = limit.as_millis() as i64;
    let expected = format!("hang detected within {}", human(limit));
    for f in fs.iter().filter(|f| f.action == "hang") {
        let t = &f.target;
        let hung = events_of(j.data, t)
            .find(|e| e.ts >= f.injected_at && matches!(e.event, Event::Hung { .. }));
        match hung {
            Some(h) if h.ts - f.injected_at <= lim => {
                let dt = h.ts - f.injected_at;
                j.push(
                    "detected_within",
                    Some(t),
                    Verdict::Pass,
                    [
                        expected.clone(),
                        format!("detected after {}", ms(dt)),
                        format!(
                            "hang of {t} detected {} after SIGSTOP (limit {})",
                            ms(dt),
                            human(limit)
                        ),
                    ],
                    Some(h.ts),
                );
            }
            other => {
                let until = (f.injected_at + lim).min(f.window_end.max(f.injected_at + 1));
                // Load events are written at the end of their interval: look
                // one interval past the window so its last second counts.
                let (sent, failed) = load_between(j.data, t, f.injected_at, until + 1000);
                let probe_failures = events_of(j.data, t)
                    .filter(|e| e.ts >= f.injected_at && e.ts < until)
                    .filter(|e| matches!(e.event, Event::ProbeFailed { .. }))
                    .count();
                let health = if probe_failures == 0 {
                    "health stayed green".to_string()
                } else {
                    format!("only {probe_failures} probe failure(s)")
                };
                let work = if sent > 0 {
                    format!(" while {failed} of {sent} requests to {t} failed")
                } else {
                    String::new()
                };
                let (obs, reason) = match other {
                    Some(h) => (
                        format!("detected after {}", ms(h.ts - f.injected_at)),
                        format!(
                            "hang of {t} detected only {} after SIGSTOP (limit {}); {health}{work}",
                            ms(h.ts - f.injected_at),
                            human(limit)
                        ),
                    ),
                    None => (
                        "not detected".into(),
                        format!(
                            "hang of {t} not detected within {}: {health}{work}",
                            human(limit)
                        ),
                    ),
                };
                j.push(
                    "detected_within",
                    Some(t),
                    Verdict::Fail,
                    [expected.clone(), obs, reason],
                    Some(until),
                );
            }
        }
    }
}

pub(super) fn describe_end(i: &IncarnationRow) -> String {
    match (i.exit_code, &i.signal) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => "ended".into(),
    }
}

pub(super) fn survives(j: &mut Judge, fs: &[FaultRecord]) {
    for f in fs
        .iter()
        .filter(|f| f.action != "stop" && f.action != "kill")
    {
        let t = &f.target;
        let died: Vec<&IncarnationRow> = incarnations_of(j.data, t)
            .filter(|i| {
                i.ended_at
                    .is_some_and(|e| e >= f.injected_at && e < f.window_end)
                    && i.cause != Some(Cause::Stopped)
            })
            .collect();
        let expected = format!("no restart during the {}", f.action);
        match died.first() {
            None => j.push(
                "survives",
                Some(t),
                Verdict::Pass,
                [
                    expected,
                    "no restart".into(),
                    format!("{t} rode out the {} without a restart", f.action),
                ],
                Some(f.injected_at),
            ),
            Some(i) => {
                let at = i.ended_at.unwrap_or(f.injected_at);
                let reason = format!(
                    "{t} pid {} died during the {}: {} {} after the fault ({}){}",
                    i.pid.unwrap_or(0),
                    f.action,
                    describe_end(i),
                    ms(at - f.injected_at),
                    i.cause.map_or("?", |c| c.as_str()),
                    if died.len() > 1 {
                        format!(", and {} more", died.len() - 1)
                    } else {
                        String::new()
                    }
                );
                j.push(
                    "survives",
                    Some(t),
                    Verdict::Fail,
                    [expected, format!("{} restart(s)", died.len()), reason],
                    Some(at),
                );
            }
        }
    }
}

pub(super) fn no_orphans(j: &mut Judge, service: &str) {
    // Each death that left processes behind: (when, main pid, who was left).
    let deaths: Vec<(i64, i32, &[OrphanProcess])> = events_of(j.data, service)
        .filter_map(|e| match &e.event {
            Event::Orphans {
                pid,
                incarnation: _,
                orphans,
            } if !orphans.is_empty() => Some((e.ts, *pid, orphans.as_slice())),
            _ => None,
        })
        .collect();
    let total: usize = deaths.iter().map(|d| d.2.len()).sum();
    let Some(&(first_ts, first_pid, first)) = deaths.first() else {
        j.push(
            "no_orphans",
            Some(service),
            Verdict::Pass,
            [
                "0 orphans".into(),
                "0".into(),
                format!("every process of {service} died with its main process"),
            ],
            None,
        );
        return;
    };
    let list: Vec<String> = first
        .iter()
        .map(|o| {
            format!(
                "{} ({}){}",
                o.pid,
                o.command,
                if o.holds_port {
                    " holding the port"
                } else {
                    ""
                }
            )
        })
        .collect();
    let holding = deaths
        .iter()
        .flat_map(|d| d.2)
        .filter(|o| o.holds_port)
        .count();
    let reason = format!(
        "{total} process(es) outlived {service}'s main process (pid {first_pid}){}: {}",
        if holding > 0 {
            format!(", {holding} still listening on its port")
        } else {
            String::new()
        },
        list.join(", ")
    );
    j.push(
        "no_orphans",
        Some(service),
        Verdict::Fail,
        ["0 orphans".into(), total.to_string(), reason],
        Some(first_ts),
    );
}

/// `restarts = {min, max}` for each target: starts after the first.
pub(super) fn restarts(j: &mut Judge, targets: &[String], b: &Bounds) {
    for t in targets {
        let incs: Vec<&IncarnationRow> = incarnations_of(j.data, t).collect();
        let n = incs.len().saturating_sub(1) as u32;
        let planned = incs
            .iter()
            .rev()
            .skip(1)
            .filter(|i| i.cause == Some(Cause::Planned))
            .count();
        let ok = b.min.is_none_or(|m| n >= m) && b.max.is_none_or(|m| n <= m);
        let expected = match (b.min, b.max) {
            (Some(a), Some(z)) => format!("{a}..={z} restarts"),
            (Some(a), None) => format!(">= {a} restarts"),
            (None, Some(z)) => format!("<= {z} restarts"),
            (None, None) => "any".into(),
        };
        let observed = format!(
            "{n} ({planned} planned, {} unplanned)",
            n as usize - planned
        );
        let reason = format!("{t} restarted {n} time(s); expected {expected}");
        j.push(
            "restarts",
            Some(t),
            if ok { Verdict::Pass } else { Verdict::Fail },
            [expected, observed, reason],
            None,
        );
    }
}
