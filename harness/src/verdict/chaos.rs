//! Chaos outcomes the injector journals: a duplicate refused, reads
//! consistent across instances, a graceful stop (stops_within, exit_code).

use super::{FaultRecord, Judge, Verdict, events_of, ms};
use crate::clock::human;
use crate::config::scenario::Expect;
use crate::journal::Event;
use std::time::Duration;

/// How a duplicate that ended went: `refused` (exited on its own,
/// non-zero, no signal), or a crash or a clean exit, which are not refusals.
struct Ended<'a> {
    after: i64,
    pid: i32,
    exit_code: Option<i32>,
    signal: Option<&'a str>,
    refused: bool,
    /// The duplicate's own last log line (not soak's), without its prefix.
    last_words: Option<String>,
}

impl Ended<'_> {
    fn how(&self) -> String {
        match (self.exit_code, self.signal) {
            (_, Some(sig)) => format!("killed by signal {sig}"),
            (Some(c), None) => format!("exit code {c}"),
            (None, None) => "ended".into(),
        }
    }

    fn quoted(&self) -> String {
        match &self.last_words {
            Some(l) => format!(": \"{l}\""),
            None => " (no log output)".into(),
        }
    }
}

/// The last line of a duplicate's log tail the service wrote: each line is
/// `TIMESTAMP TAG text`, and tag `soak` marks the shim's own lines.
fn last_words(tail: &[String]) -> Option<String> {
    tail.iter()
        .rev()
        .find(|l| l.split(' ').nth(1) != Some("soak"))
        .map(|l| l.splitn(3, ' ').nth(2).unwrap_or(l).trim_end().to_string())
}

pub(super) fn duplicate_refused(j: &mut Judge, fs: &[FaultRecord], limit: Duration) {
    let lim = limit.as_millis() as i64;
    let expected = format!("duplicate refused within {}", human(limit));
    for f in fs.iter().filter(|f| f.action == "duplicate") {
        let t = &f.target;
        // The duplicate's outcome: Ok(how it ended) or Err(still running
        // after, pid, the port it served on).
        let outcome = events_of(j.data, t).find_map(|e| match &e.event {
            Event::DuplicateEnded {
                step,
                pid,
                after_ms,
                exit_code,
                signal,
                refused,
                log_tail,
                ..
            } if *step == f.step => {
                // Journals before `refused` was written: refused iff it
                // exited non-zero without a signal.
                let refused =
                    refused.unwrap_or(signal.is_none() && exit_code.is_some_and(|c| c != 0));
                Some((
                    e.ts,
                    Ok(Ended {
                        after: *after_ms,
                        pid: *pid,
                        exit_code: *exit_code,
                        signal: signal.as_deref(),
                        refused,
                        last_words: last_words(log_tail),
                    }),
                ))
            }
            Event::DuplicateStillRunning {
                step,
                pid,
                port,
                after_ms,
                serving,
            } if *step == f.step => Some((e.ts, Err((*after_ms, *pid, serving.then_some(*port))))),
            _ => None,
        });
        let (verdict, observed, reason, at) = match outcome {
            Some((ts, Ok(end))) if end.refused && end.after <= lim => (
                Verdict::Pass,
                format!("refused after {}", ms(end.after)),
                format!(
                    "a second {t} on the same data dir refused to run after {} ({}){}",
                    ms(end.after),
                    end.how(),
                    end.quoted()
                ),
                Some(ts),
            ),
            Some((ts, Ok(end))) if end.refused => (
                Verdict::Fail,
                format!("refused after {}", ms(end.after)),
                format!(
                    "two instances of {t} on one data dir: the duplicate (pid {}) refused only after {} ({}){}",
                    end.pid,
                    ms(end.after),
                    end.how(),
                    end.quoted()
                ),
                Some(ts),
            ),
            Some((ts, Ok(end))) if end.signal.is_some() => (
                Verdict::Fail,
                format!("crashed after {}", ms(end.after)),
                format!(
                    "the duplicate of {t} (pid {}) crashed ({}) after {} instead of refusing to run{}",
                    end.pid,
                    end.how(),
                    ms(end.after),
                    end.quoted()
                ),
                Some(ts),
            ),
            Some((ts, Ok(end))) => (
                Verdict::Fail,
                format!("{} after {}", end.how(), ms(end.after)),
                format!(
                    "the duplicate of {t} (pid {}) ran {} and ended with {}: a refusal exits non-zero{}",
                    end.pid,
                    ms(end.after),
                    end.how(),
                    end.quoted()
                ),
                Some(ts),
            ),
            Some((ts, Err((after, pid, serving)))) => {
                let serving = match serving {
                    Some(port) => format!(", serving on port {port}"),
                    None => String::new(),
                };
                (
                    Verdict::Fail,
                    format!("ran {}", ms(after)),
                    format!(
                        "two instances of {t} on one data dir: the duplicate (pid {pid}) ran for {}{serving}",
                        ms(after)
                    ),
                    Some(ts),
                )
            }
            None => (
                Verdict::Unknown,
                "no outcome".into(),
                "the duplicate's outcome was not recorded (run interrupted?)".into(),
                None,
            ),
        };
        j.push(
            "duplicate_refused_within",
            Some(t),
            verdict,
            [expected.clone(), observed, reason],
            at,
        );
    }
}

pub(super) fn consistent_reads(j: &mut Judge, fs: &[FaultRecord], workload: &str) {
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
        let check = events_of(j.data, t).find_map(|e| match &e.event {
            Event::Consistency {
                step,
                checked,
                stale_count,
                stale,
            } if *step == f.step => Some((e.ts, *checked, *stale_count, stale)),
            _ => None,
        });
        let refused = events_of(j.data, t)
            .any(|e| matches!(&e.event, Event::DuplicateEnded { step, .. } if *step == f.step));
        match check {
            Some((ts, checked, stale, examples)) => {
                if checked == 0 {
                    j.push("consistent_reads", Some(t), Verdict::Unknown, [expected.clone(), "no write acknowledged".into(),
                        "no write through the primary was acknowledged, so nothing could be compared".into()], Some(ts));
                } else if stale == 0 {
                    j.push("consistent_reads", Some(t), Verdict::Pass, [expected.clone(), format!("{checked} of {checked} consistent"),
                        format!("all {checked} writes through {t} read back the same through the duplicate")], Some(ts));
                } else {
                    let first = examples.first().map_or("", String::as_str);
                    j.push("consistent_reads", Some(t), Verdict::Fail, [expected.clone(), format!("{stale} of {checked} stale"),
                        format!("stale reads: {stale} of {checked} writes through {t} read back an older value through the duplicate, e.g. {first}")], Some(ts));
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

pub(super) fn stops(j: &mut Judge, fs: &[FaultRecord], e: &Expect) {
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
        let sig = f.params.signal.as_deref().unwrap_or("TERM");
        let Some((ts, took, exit_code, signal, killed, grace)) =
            events_of(j.data, t).find_map(|e| match &e.event {
                Event::StopResult {
                    step,
                    took_ms,
                    exit_code,
                    signal,
                    killed_after_grace,
                    grace_ms,
                    error,
                } if *step == f.step => Some((
                    e.ts,
                    took_ms.ok_or(error.as_deref().unwrap_or("no outcome")),
                    *exit_code,
                    signal.as_deref(),
                    *killed_after_grace == Some(true),
                    grace_ms.unwrap_or(0) as i64,
                )),
                _ => None,
            })
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
        // The stop's outcome was lost (the supervisor had nothing to stop,
        // or its reply never came): missing evidence, not a 0 ms exit.
        let took = match took {
            Ok(ms) => ms as i64,
            Err(why) => {
                let why = format!("the outcome of stopping {t} is unknown: {why}");
                let asked = [
                    ("stops_within", e.stops_within.is_some()),
                    ("exit_code", e.exit_code.is_some()),
                ];
                for (name, _) in asked.into_iter().filter(|a| a.1) {
                    j.push(
                        name,
                        Some(t),
                        Verdict::Unknown,
                        ["a stop outcome".into(), "none".into(), why.clone()],
                        Some(ts),
                    );
                }
                continue;
            }
        };
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
                            ms(grace)
                        ),
                    ],
                    Some(ts),
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
                    Some(ts),
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
                    Some(ts),
                );
            }
        }
        if let Some(want) = e.exit_code {
            let code = exit_code;
            let observed = match code {
                Some(c) => format!("exit code {c}"),
                None => format!("signal {}", signal.unwrap_or("?")),
            };
            let ok = code == Some(want);
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
                Some(ts),
            );
        }
    }
}
