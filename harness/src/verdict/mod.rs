//! Verdicts: pure functions of the journal. Each expectation of a scenario
//! becomes one or more assertions, each pass, fail or unknown (not enough
//! evidence), with what was expected, what was observed, and one line of why.
//! Nothing here looks at a live process or a clock.

use crate::clock::human;
use crate::config::scenario::{Expect, Scenario};
use crate::journal::{EventRow, IncarnationRow, RunData};
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    Unknown,
}

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
    pub detail: Value,
    /// The next fault's injection, or the end of the run: this fault's window.
    pub window_end: i64,
}

pub fn faults(data: &RunData) -> Vec<FaultRecord> {
    let end = run_end(data);
    let mut out: Vec<FaultRecord> = data
        .events
        .iter()
        .filter(|e| e.kind == "fault-injected")
        .map(|e| FaultRecord {
            step: e.detail["step"].as_u64().unwrap_or(0) as usize,
            action: e.detail["action"].as_str().unwrap_or("?").to_string(),
            target: e.service.clone().unwrap_or_default(),
            injected_at: e.ts,
            detail: e.detail.clone(),
            window_end: end,
        })
        .collect();
    for i in 1..out.len() {
        out[i - 1].window_end = out[i].injected_at;
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

pub fn bytes(b: f64) -> String {
    const MB: f64 = 1024.0 * 1024.0;
    if b.abs() >= MB {
        format!("{:.1} MB", b / MB)
    } else if b.abs() >= 1024.0 {
        format!("{:.1} KB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

fn events_of<'a>(
    data: &'a RunData,
    service: &'a str,
    kinds: &'a [&str],
) -> impl Iterator<Item = &'a EventRow> {
    data.events
        .iter()
        .filter(move |e| e.service.as_deref() == Some(service) && kinds.contains(&e.kind.as_str()))
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
        });
    }
}

/// Judges every expectation of `sc` against the journal.
pub fn judge(sc: &Scenario, data: &RunData) -> Vec<Assertion> {
    let mut j = Judge {
        data,
        out: Vec::new(),
    };
    let fs = faults(data);
    let e = &sc.expect;
    // Which services an expectation is about: the targets of the steps, or
    // every service of a baseline run.
    let mut targets: Vec<String> = sc.steps.iter().map(|s| s.target.clone()).collect();
    targets.dedup();
    if targets.is_empty() {
        targets = sc.services.clone();
    }
    if let Some(limit) = e.healthy_within {
        healthy_within(&mut j, &fs, &targets, limit.0);
    }
    if let Some(limit) = e.detected_within {
        detected_within(&mut j, &fs, limit.0);
    }
    if let Some(b) = &e.restarts {
        for t in &targets {
            let incs: Vec<&IncarnationRow> = incarnations_of(data, t).collect();
            let n = incs.len().saturating_sub(1) as u32;
            let planned = incs
                .iter()
                .rev()
                .skip(1)
                .filter(|i| i.cause.as_deref() == Some("planned"))
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
    if e.survives == Some(true) {
        survives(&mut j, &fs);
    }
    if e.no_orphans == Some(true) {
        for s in &sc.services {
            no_orphans(&mut j, s);
        }
    }
    if let Some(w) = &e.writes_survive {
        writes_survive(&mut j, w.get_ref());
    }
    if e.integrity == Some(true) {
        integrity(&mut j, sc);
    }
    if let Some(limit) = e.duplicate_refused_within {
        duplicate_refused(&mut j, &fs, limit.0);
    }
    if e.stops_within.is_some() || e.exit_code.is_some() {
        stops(&mut j, &fs, e);
    }
    if let Some(patterns) = &e.no_leftovers {
        no_leftovers(&mut j, sc, patterns);
    }
    if let Some(rate) = e.log_rate_max {
        for s in &sc.services {
            log_rate(&mut j, s, rate.0);
        }
    }
    if let Some(w) = &e.consistent_reads {
        consistent_reads(&mut j, &fs, w.get_ref());
    }
    soak::judge(&mut j.out, sc, data);
    j.out
}

fn healthy_within(j: &mut Judge, fs: &[FaultRecord], targets: &[String], limit: Duration) {
    let lim = limit.as_millis() as i64;
    let expected = format!("healthy within {}", human(limit));
    let faults: Vec<&FaultRecord> = fs.iter().filter(|f| f.action != "stop").collect();
    if faults.is_empty() {
        for t in targets {
            let ready = events_of(j.data, t, &["ready"]).next().map(|e| e.ts);
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
        let unhealthy = events_of(j.data, t, &["exited", "probe-failed", "hung"])
            .filter(|e| e.detail["cause"] != "stopped")
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
        let back = events_of(j.data, t, &["ready", "probe-recovered"]).find(|e| e.ts > u.ts);
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
                let gave_up = events_of(j.data, t, &["gave-up"]).any(|e| e.ts >= f.injected_at);
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
fn load_between(data: &RunData, service: &str, from: i64, to: i64) -> (u64, u64) {
    events_of(data, service, &["load"])
        .filter(|e| e.ts >= from && e.ts < to)
        .fold((0, 0), |(s, f), e| {
            (
                s + e.detail["sent"].as_u64().unwrap_or(0),
                f + e.detail["failed"].as_u64().unwrap_or(0),
            )
        })
}

fn detected_within(j: &mut Judge, fs: &[FaultRecord], limit: Duration) {
    let lim = limit.as_millis() as i64;
    let expected = format!("hang detected within {}", human(limit));
    for f in fs.iter().filter(|f| f.action == "hang") {
        let t = &f.target;
        let hung = events_of(j.data, t, &["hung"]).find(|e| e.ts >= f.injected_at);
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
                let probe_failures = events_of(j.data, t, &["probe-failed"])
                    .filter(|e| e.ts >= f.injected_at && e.ts < until)
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

fn describe_end(i: &IncarnationRow) -> String {
    match (i.exit_code, &i.signal) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => "ended".into(),
    }
}

fn survives(j: &mut Judge, fs: &[FaultRecord]) {
    for f in fs
        .iter()
        .filter(|f| f.action != "stop" && f.action != "kill")
    {
        let t = &f.target;
        let died: Vec<&IncarnationRow> = incarnations_of(j.data, t)
            .filter(|i| {
                i.ended_at
                    .is_some_and(|e| e >= f.injected_at && e < f.window_end)
                    && i.cause.as_deref() != Some("stopped")
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
                    i.cause.as_deref().unwrap_or("?"),
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

fn no_orphans(j: &mut Judge, service: &str) {
    let evs: Vec<&EventRow> = events_of(j.data, service, &["orphans"]).collect();
    let total: usize = evs
        .iter()
        .map(|e| e.detail["orphans"].as_array().map_or(0, Vec::len))
        .sum();
    if total == 0 {
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
    }
    let first = evs[0];
    let list: Vec<String> = first.detail["orphans"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|o| {
                    format!(
                        "{} ({}){}",
                        o["pid"],
                        o["command"].as_str().unwrap_or("?"),
                        if o["holds_port"].as_bool() == Some(true) {
                            " holding the port"
                        } else {
                            ""
                        }
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let holding = evs
        .iter()
        .flat_map(|e| e.detail["orphans"].as_array().cloned().unwrap_or_default())
        .filter(|o| o["holds_port"].as_bool() == Some(true))
        .count();
    let reason = format!(
        "{total} process(es) outlived {service}'s main process (pid {}){}: {}",
        first.detail["pid"],
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
        Some(first.ts),
    );
}

fn writes_survive(j: &mut Judge, workload: &str) {
    let rb = j
        .data
        .events
        .iter()
        .rev()
        .find(|e| e.kind == "readback" && e.detail["workload"] == workload);
    let expected = "every acknowledged write readable".to_string();
    let svc = rb.and_then(|e| e.service.clone());
    let Some(rb) = rb else {
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
    let checked = rb.detail["checked"].as_u64().unwrap_or(0);
    let missing = rb.detail["missing_count"].as_u64().unwrap_or(0);
    if checked == 0 {
        j.push(
            "writes_survive",
            svc.as_deref(),
            Verdict::Unknown,
            [
                expected,
                "0 acknowledged".into(),
                format!("no write of {workload} was acknowledged, so none could be lost"),
            ],
            Some(rb.ts),
        );
    } else if missing == 0 {
        j.push(
            "writes_survive",
            svc.as_deref(),
            Verdict::Pass,
            [
                expected,
                format!("{checked} of {checked} readable"),
                format!("all {checked} acknowledged writes of {workload} readable after the run"),
            ],
            Some(rb.ts),
        );
    } else {
        let keys: Vec<String> = rb.detail["missing"]
            .as_array()
            .map(|a| {
                a.iter()
                    .take(5)
                    .filter_map(|m| m.as_str()?.split(':').next().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        j.push(
            "writes_survive",
            svc.as_deref(),
            Verdict::Fail,
            [
                expected,
                format!("{missing} of {checked} missing"),
                format!(
                    "{missing} acknowledged write(s) of {workload} missing after the run: {}{}",
                    keys.join(", "),
                    if missing > 5 { ", ..." } else { "" }
                ),
            ],
            Some(rb.ts),
        );
    }
}

fn integrity(j: &mut Judge, sc: &Scenario) {
    for s in &sc.services {
        if sc.config.services[s].sqlite.is_empty() {
            continue;
        }
        let checks: Vec<&EventRow> = events_of(j.data, s, &["integrity"]).collect();
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
            .filter(|e| e.detail["result"] != "ok")
            .map(|e| {
                format!(
                    "{}: {}",
                    e.detail["db"].as_str().unwrap_or("?"),
                    e.detail["result"].as_str().unwrap_or("?")
                )
            })
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
                Some(checks[0].ts),
            );
        } else {
            j.push(
                "integrity",
                Some(s),
                Verdict::Fail,
                [expected, "damaged".into(), bad.join("; ")],
                Some(checks[0].ts),
            );
        }
    }
}

fn duplicate_refused(j: &mut Judge, fs: &[FaultRecord], limit: Duration) {
    let lim = limit.as_millis() as i64;
    let expected = format!("duplicate refused within {}", human(limit));
    for f in fs.iter().filter(|f| f.action == "duplicate") {
        let t = &f.target;
        let outcome = events_of(j.data, t, &["duplicate-ended", "duplicate-still-running"])
            .find(|e| e.detail["step"].as_u64() == Some(f.step as u64));
        match outcome {
            Some(e)
                if e.kind == "duplicate-ended"
                    && e.detail["after_ms"].as_i64().unwrap_or(i64::MAX) <= lim =>
            {
                let how = match e.detail["exit_code"].as_i64() {
                    Some(c) => format!("exit code {c}"),
                    None => format!("signal {}", e.detail["signal"].as_str().unwrap_or("?")),
                };
                let after = e.detail["after_ms"].as_i64().unwrap_or(0);
                j.push(
                    "duplicate_refused_within",
                    Some(t),
                    Verdict::Pass,
                    [
                        expected.clone(),
                        format!("refused after {}", ms(after)),
                        format!(
                            "a second {t} on the same data dir refused to run after {} ({how})",
                            ms(after)
                        ),
                    ],
                    Some(e.ts),
                );
            }
            Some(e) => {
                let after = e.detail["after_ms"].as_i64().unwrap_or(0);
                let serving = if e.detail["serving"].as_bool() == Some(true) {
                    format!(", serving on port {}", e.detail["port"])
                } else {
                    String::new()
                };
                j.push("duplicate_refused_within", Some(t), Verdict::Fail, [expected.clone(), format!("ran {}", ms(after)), format!("two instances of {t} on one data dir: the duplicate (pid {}) ran for {}{serving}", e.detail["pid"], ms(after))], Some(e.ts));
            }
            None => j.push(
                "duplicate_refused_within",
                Some(t),
                Verdict::Unknown,
                [
                    expected.clone(),
                    "no outcome".into(),
                    "the duplicate's outcome was not recorded (run interrupted?)".into(),
                ],
                None,
            ),
        }
    }
}

fn consistent_reads(j: &mut Judge, fs: &[FaultRecord], workload: &str) {
    let expected =
        format!("writes of {workload} through one instance read the same through the other");
    let dups: Vec<&FaultRecord> = fs.iter().filter(|f| f.action == "duplicate").collect();
    if dups.is_empty() {
        j.push(
            "consistent_reads",
            None,
            Verdict::Unknown,
            [
                expected,
                "no duplicate".into(),
                "consistent_reads needs a `duplicate` step".into(),
            ],
            None,
        );
        return;
    }
    for f in dups {
        let t = &f.target;
        let step = Some(f.step as u64);
        let check =
            events_of(j.data, t, &["consistency"]).find(|e| e.detail["step"].as_u64() == step);
        let refused =
            events_of(j.data, t, &["duplicate-ended"]).any(|e| e.detail["step"].as_u64() == step);
        match check {
            Some(c) => {
                let checked = c.detail["checked"].as_u64().unwrap_or(0);
                let stale = c.detail["stale_count"].as_u64().unwrap_or(0);
                if checked == 0 {
                    j.push("consistent_reads", Some(t), Verdict::Unknown, [expected.clone(), "no write acknowledged".into(),
                        "no write through the primary was acknowledged, so nothing could be compared".into()], Some(c.ts));
                } else if stale == 0 {
                    j.push("consistent_reads", Some(t), Verdict::Pass, [expected.clone(), format!("{checked} of {checked} consistent"),
                        format!("all {checked} writes through {t} read back the same through the duplicate")], Some(c.ts));
                } else {
                    let first = c.detail["stale"][0].as_str().unwrap_or("").to_string();
                    j.push("consistent_reads", Some(t), Verdict::Fail, [expected.clone(), format!("{stale} of {checked} stale"),
                        format!("stale reads: {stale} of {checked} writes through {t} read back an older value through the duplicate, e.g. {first}")], Some(c.ts));
                }
            }
            // One instance only: reads cannot disagree between instances.
            None if refused => j.push("consistent_reads", Some(t), Verdict::Pass, [expected.clone(), "one instance".into(),
                format!("the duplicate was refused, so every read of {workload} goes through one {t}")], None),
            None => j.push("consistent_reads", Some(t), Verdict::Unknown, [expected.clone(), "not checked".into(),
                "the duplicate never answered its health probe, so no read could go through it".into()], None),
        }
    }
}

fn stops(j: &mut Judge, fs: &[FaultRecord], e: &Expect) {
    let stop_faults: Vec<&FaultRecord> = fs.iter().filter(|f| f.action == "stop").collect();
    if stop_faults.is_empty() {
        j.push(
            "stops_within",
            None,
            Verdict::Unknown,
            [
                "a stop step".into(),
                "no stop".into(),
                "stops_within and exit_code need a `stop` step".into(),
            ],
            None,
        );
        return;
    }
    for f in stop_faults {
        let t = &f.target;
        let sig = f.detail["signal"].as_str().unwrap_or("TERM").to_string();
        let Some(r) = events_of(j.data, t, &["stop-result"])
            .find(|e| e.detail["step"].as_u64() == Some(f.step as u64))
        else {
            j.push(
                "stops_within",
                Some(t),
                Verdict::Unknown,
                [
                    "a stop result".into(),
                    "none".into(),
                    "the stop did not finish before the run ended".into(),
                ],
                None,
            );
            continue;
        };
        let took = r.detail["took_ms"].as_i64().unwrap_or(0);
        let killed = r.detail["killed_after_grace"].as_bool() == Some(true);
        if let Some(limit) = e.stops_within {
            let lim = limit.0.as_millis() as i64;
            let expected = format!("exits within {} of SIG{sig}", human(limit.0));
            if killed {
                j.push(
                    "stops_within",
                    Some(t),
                    Verdict::Fail,
                    [
                        expected,
                        "killed after grace".into(),
                        format!(
                            "{t} ignored SIG{sig}: still running after the {} grace, killed",
                            ms(r.detail["grace_ms"].as_i64().unwrap_or(0))
                        ),
                    ],
                    Some(r.ts),
                );
            } else if took > lim {
                j.push(
                    "stops_within",
                    Some(t),
                    Verdict::Fail,
                    [
                        expected,
                        ms(took),
                        format!(
                            "{t} took {} to exit after SIG{sig} (limit {})",
                            ms(took),
                            human(limit.0)
                        ),
                    ],
                    Some(r.ts),
                );
            } else {
                j.push(
                    "stops_within",
                    Some(t),
                    Verdict::Pass,
                    [
                        expected,
                        ms(took),
                        format!("{t} exited {} after SIG{sig}", ms(took)),
                    ],
                    Some(r.ts),
                );
            }
        }
        if let Some(want) = e.exit_code {
            let code = r.detail["exit_code"].as_i64();
            let observed = match code {
                Some(c) => format!("exit code {c}"),
                None => format!("signal {}", r.detail["signal"].as_str().unwrap_or("?")),
            };
            let ok = code == Some(want as i64);
            let reason = if ok {
                format!("{t} exited with code {want}")
            } else {
                format!(
                    "{t} ended with {observed}{}, expected exit code {want}",
                    if killed { " (killed after grace)" } else { "" }
                )
            };
            j.push(
                "exit_code",
                Some(t),
                if ok { Verdict::Pass } else { Verdict::Fail },
                [format!("exit code {want}"), observed, reason],
                Some(r.ts),
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

fn no_leftovers(j: &mut Judge, sc: &Scenario, patterns: &[String]) {
    for s in &sc.services {
        let Some(listing) = events_of(j.data, s, &["data-dir"]).last() else {
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
        let left: Vec<String> = listing.detail["files"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f.as_str())
                    .filter(|f| patterns.iter().any(|p| glob(p, f)))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
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
                Some(listing.ts),
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
                Some(listing.ts),
            );
        }
    }
}

fn log_rate(j: &mut Judge, service: &str, max_per_hour: f64) {
    // The sampler's running count when there is one (it sees a run that
    // was killed too); else what each incarnation's shim counted at exit.
    let sampled = j
        .data
        .service_samples
        .iter()
        .filter(|s| s.service == service)
        .map(|s| s.log_bytes.max(0) as u64)
        .max()
        .unwrap_or(0);
    let at_exit: u64 = events_of(j.data, service, &["exited"])
        .map(|e| e.detail["log_bytes"].as_u64().unwrap_or(0))
        .sum();
    let written = sampled.max(at_exit);
    let start = j.data.run.as_ref().map_or(0, |r| r.started_at);
    let span_ms = (run_end(j.data) - start).max(1);
    let per_hour = written as f64 * 3_600_000.0 / span_ms as f64;
    let expected = format!("log <= {}/min", bytes(max_per_hour / 60.0));
    let observed = format!(
        "{} in {} ({}/min)",
        bytes(written as f64),
        ms(span_ms),
        bytes(per_hour / 60.0)
    );
    let ok = per_hour <= max_per_hour;
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

mod soak;
pub mod trend;

#[cfg(test)]
mod tests;
