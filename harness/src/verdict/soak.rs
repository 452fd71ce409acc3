//! Soak expectations: trends of RSS, fds and threads per incarnation, RSS
//! growth and peak, restart budget and WAL size. Pure functions of the
//! journal's samples and incarnations.

use super::trend::{self, Decision, Metric, Params};
use super::{Assertion, FittedTrend, Judge, Verdict, bytes};
use crate::clock::{human, rfc3339_ms};
use crate::config::scenario::Scenario;
use crate::journal::{Cause, RunData, SampleRow};
use std::collections::BTreeMap;
use std::time::Duration;

fn verdict(d: Decision) -> Verdict {
    match d {
        Decision::Pass => Verdict::Pass,
        Decision::Fail => Verdict::Fail,
        Decision::Unknown => Verdict::Unknown,
    }
}

/// Each incarnation's samples of `service`, oldest first.
fn segments<'a>(data: &'a RunData, service: &str) -> Vec<(i64, Vec<&'a SampleRow>)> {
    let mut by_inc: BTreeMap<i64, Vec<&SampleRow>> = BTreeMap::new();
    for s in &data.samples {
        by_inc.entry(s.incarnation).or_default().push(s);
    }
    data.incarnations
        .iter()
        .filter(|i| i.service == service)
        .filter_map(|i| Some((i.id, by_inc.remove(&i.id)?)))
        .collect()
}

pub(super) fn push(
    out: &mut Vec<Assertion>,
    name: &str,
    service: &str,
    v: Verdict,
    text: [String; 3],
    at: Option<i64>,
) {
    let [expected, observed, reason] = text;
    out.push(Assertion {
        name: name.into(),
        service: Some(service.into()),
        verdict: v,
        expected,
        observed,
        reason: format!("{service}: {reason}"),
        at,
        trend: None,
    });
}

pub(super) fn judge(j: &mut Judge, sc: &Scenario) {
    let (out, data) = (&mut j.out, j.data);
    let e = &sc.expect;
    let warmup = e.warmup.map_or(5 * 60_000, |d| d.0.as_millis() as i64);
    let min_span = e.min_span.map_or(30 * 60_000, |d| d.0.as_millis() as i64);
    let host = data.host_samples.last();
    for service in &sc.services {
        let segs = segments(data, service);
        // The projection's ceiling: rss_max if given, else what the service
        // held when the host was last sampled plus what the host still had
        // available (available memory alone is not a ceiling for RSS).
        let host_limit = host.map(|h| {
            let held = segs
                .iter()
                .flat_map(|(_, rows)| rows)
                .filter(|r| r.ts <= h.ts)
                .max_by_key(|r| r.ts)
                .map_or(0, |r| r.rss_bytes);
            (h.mem_available_bytes + held) as f64
        });
        let series = |f: fn(&SampleRow) -> f64| -> Vec<Vec<(i64, f64)>> {
            segs.iter()
                .map(|(_, rows)| rows.iter().map(|r| (r.ts, f(r))).collect())
                .collect()
        };
        let trends = [
            (
                "rss_slope_max",
                e.rss_slope_max.map(|r| r.0),
                Metric::Rss,
                series(|r| r.rss_bytes as f64),
            ),
            (
                "fds_slope_max",
                e.fds_slope_max.map(|r| r.0),
                Metric::Fds,
                series(|r| r.fds as f64),
            ),
            (
                "threads_slope_max",
                e.threads_slope_max.map(|r| r.0),
                Metric::Threads,
                series(|r| r.threads as f64),
            ),
        ];
        for (name, limit, metric, series) in trends {
            let Some(limit) = limit else { continue };
            let mut p = Params::new(metric, limit);
            p.warmup_ms = warmup;
            p.min_span_ms = min_span;
            p.min_points = 20;
            if metric == Metric::Rss {
                p.limit = e.rss_max.map(|m| m.0 as f64).or(host_limit);
            }
            let refs: Vec<&[(i64, f64)]> = series.iter().map(Vec::as_slice).collect();
            let t = trend::judge_segments(&refs, &p);
            let unit = if metric == Metric::Rss { "MB/h" } else { "/h" };
            let scale = if metric == Metric::Rss {
                1_048_576.0
            } else {
                1.0
            };
            let observed = if t.slope_per_hour.is_finite() {
                format!(
                    "{:.2} {unit} (CI {:.2}..{:.2}, p={:.3})",
                    t.slope_per_hour / scale,
                    t.ci_per_hour.0 / scale,
                    t.ci_per_hour.1 / scale,
                    t.p_value
                )
            } else {
                "too few samples".into()
            };
            let at = series.iter().flatten().last().map(|(ts, _)| *ts);
            let line = fitted(&segs, &series, &p, &t);
            push(
                out,
                name,
                service,
                verdict(t.decision),
                [
                    format!("<= {:.2} {unit}", limit / scale),
                    observed,
                    t.reason,
                ],
                at,
            );
            if let Some(a) = out.last_mut() {
                a.trend = line;
            }
        }
        if let Some(max) = e.rss_max {
            let peak = data
                .samples
                .iter()
                .filter(|s| segs.iter().any(|(id, _)| *id == s.incarnation))
                .max_by_key(|s| s.rss_bytes);
            match peak {
                None => push(
                    out,
                    "rss_max",
                    service,
                    Verdict::Unknown,
                    [
                        format!("<= {}", bytes(max.0 as f64)),
                        "no samples".into(),
                        "no RSS was sampled".into(),
                    ],
                    None,
                ),
                Some(p) => {
                    let ok = p.rss_bytes as u64 <= max.0;
                    let reason = format!(
                        "peak RSS {} at {} (limit {})",
                        bytes(p.rss_bytes as f64),
                        &rfc3339_ms(p.ts)[11..19],
                        bytes(max.0 as f64)
                    );
                    push(
                        out,
                        "rss_max",
                        service,
                        if ok { Verdict::Pass } else { Verdict::Fail },
                        [
                            format!("<= {}", bytes(max.0 as f64)),
                            bytes(p.rss_bytes as f64),
                            reason,
                        ],
                        Some(p.ts),
                    );
                }
            }
        }
        if let Some(g) = e.rss_growth_max {
            growth(out, service, &segs, g.fraction, g.per, warmup, min_span);
        }
        if let Some(b) = &e.restart_budget {
            restart_budget(out, data, service, b.max, b.window.0);
        }
        if let Some(w) = e.wal_max {
            let peak = data
                .service_samples
                .iter()
                .filter(|s| &s.service == service)
                .max_by_key(|s| s.wal_bytes);
            if sc.config.services[service].sqlite.is_empty() {
                continue;
            }
            match peak {
                None => push(
                    out,
                    "wal_max",
                    service,
                    Verdict::Unknown,
                    [
                        format!("<= {}", bytes(w.0 as f64)),
                        "not sampled".into(),
                        "no WAL size was sampled".into(),
                    ],
                    None,
                ),
                Some(p) => {
                    let ok = p.wal_bytes as u64 <= w.0;
                    push(
                        out,
                        "wal_max",
                        service,
                        if ok { Verdict::Pass } else { Verdict::Fail },
                        [
                            format!("<= {}", bytes(w.0 as f64)),
                            bytes(p.wal_bytes as f64),
                            format!(
                                "WAL peaked at {} (limit {})",
                                bytes(p.wal_bytes as f64),
                                bytes(w.0 as f64)
                            ),
                        ],
                        Some(p.ts),
                    );
                }
            }
        }
    }
}

/// The line of `t` through the incarnation it was decided on, found by the
/// points and span the verdict reports (the trend module does not name the
/// incarnation). None without a finite slope or when two incarnations match.
fn fitted(
    segs: &[(i64, Vec<&SampleRow>)],
    series: &[Vec<(i64, f64)>],
    p: &Params,
    t: &trend::Trend,
) -> Option<FittedTrend> {
    if !t.slope_per_hour.is_finite() || t.points == 0 {
        return None;
    }
    let mut matching = segs.iter().zip(series).filter_map(|((id, _), s)| {
        let pts = trend::after_warmup(s, p.warmup_ms);
        let span = match (pts.first(), pts.last()) {
            (Some(a), Some(b)) => b.0 - a.0,
            _ => 0,
        };
        (pts.len() == t.points && span == t.span_ms).then_some((*id, pts))
    });
    let (incarnation, pts) = matching.next()?;
    if matching.next().is_some() {
        return None;
    }
    let (from, to) = (pts.first()?.0, pts.last()?.0);
    // Theil–Sen's intercept: the median of what the slope leaves over.
    let mut resid: Vec<f64> = pts
        .iter()
        .map(|(ts, v)| v - t.slope_per_hour * (ts - from) as f64 / 3_600_000.0)
        .collect();
    let mid = resid.len() / 2;
    let (_, value_at_from, _) = resid.select_nth_unstable_by(mid, f64::total_cmp);
    Some(FittedTrend {
        incarnation,
        warmup_ms: p.warmup_ms,
        from,
        to,
        value_at_from: *value_at_from,
        slope_per_hour: t.slope_per_hour,
        projected_limit_ms: t.projected_limit_ms,
    })
}

/// Growth of each incarnation from its first to its last tenth (medians,
/// so one sawtooth peak does not decide), scaled to `per`.
fn growth(
    out: &mut Vec<Assertion>,
    service: &str,
    segs: &[(i64, Vec<&SampleRow>)],
    max: f64,
    per: Duration,
    warmup: i64,
    min_span: i64,
) {
    let expected = format!("<= {:.0}% per {}", max * 100.0, human(per));
    let mut worst: Option<(f64, i64)> = None;
    for (_, rows) in segs {
        let Some(first) = rows.first() else { continue };
        let kept: Vec<&&SampleRow> = rows.iter().filter(|r| r.ts >= first.ts + warmup).collect();
        let (Some(a), Some(b)) = (kept.first(), kept.last()) else {
            continue;
        };
        let span = b.ts - a.ts;
        if span < min_span || kept.len() < 10 {
            continue;
        }
        let tenth = (kept.len() / 10).max(1);
        let median = |xs: &[&&SampleRow]| {
            let mut v: Vec<i64> = xs.iter().map(|r| r.rss_bytes).collect();
            v.sort_unstable();
            v[v.len() / 2] as f64
        };
        let (start, end) = (median(&kept[..tenth]), median(&kept[kept.len() - tenth..]));
        if start <= 0.0 {
            continue;
        }
        let scaled = (end - start) / start * per.as_millis() as f64 / span as f64;
        if worst.is_none_or(|(w, _)| scaled > w) {
            worst = Some((scaled, b.ts));
        }
    }
    match worst {
        None => push(
            out,
            "rss_growth_max",
            service,
            Verdict::Unknown,
            [
                expected,
                "too short".into(),
                "no incarnation ran long enough after its warm-up".into(),
            ],
            None,
        ),
        Some((g, at)) => {
            let v = if g <= max {
                Verdict::Pass
            } else {
                Verdict::Fail
            };
            push(
                out,
                "rss_growth_max",
                service,
                v,
                [
                    expected,
                    format!("{:.1}%", g * 100.0),
                    format!(
                        "RSS grows {:.1}% per {} (limit {:.0}%)",
                        g * 100.0,
                        human(per),
                        max * 100.0
                    ),
                ],
                Some(at),
            );
        }
    }
}

/// More than `max` unplanned restarts within any `window`.
fn restart_budget(
    out: &mut Vec<Assertion>,
    data: &RunData,
    service: &str,
    max: u32,
    window: Duration,
) {
    let incs: Vec<_> = data
        .incarnations
        .iter()
        .filter(|i| i.service == service)
        .collect();
    let restarts: Vec<(i64, Cause)> = incs
        .windows(2)
        .filter_map(|w| match w[0].cause {
            Some(c @ (Cause::Unplanned | Cause::Hung | Cause::GaveUp | Cause::OomKilled)) => {
                Some((w[1].started_at, c))
            }
            _ => None,
        })
        .collect();
    let starts: Vec<i64> = restarts.iter().map(|r| r.0).collect();
    let win = window.as_millis() as i64;
    let mut worst = (0usize, 0i64);
    for (i, &t) in starts.iter().enumerate() {
        let n = starts[i..].iter().take_while(|&&u| u - t <= win).count();
        if n > worst.0 {
            worst = (n, t);
        }
    }
    let expected = format!("<= {max} unplanned restarts per {}", human(window));
    let ok = worst.0 <= max as usize;
    let reason = if ok {
        format!(
            "at most {} unplanned restart(s) in any {} ({} in all)",
            worst.0,
            human(window),
            starts.len()
        )
    } else {
        // What ended the incarnations the restarts replaced: "3 after
        // oom-killed" says more than a count.
        let mut causes: Vec<(Cause, usize)> = Vec::new();
        for (t, c) in &restarts {
            if *t >= worst.1 && *t - worst.1 <= win {
                match causes.iter_mut().find(|(k, _)| k == c) {
                    Some(e) => e.1 += 1,
                    None => causes.push((*c, 1)),
                }
            }
        }
        let causes: Vec<String> = causes.iter().map(|(c, n)| format!("{n} {c}")).collect();
        format!(
            "{} unplanned restarts within {} from {} (budget {max}), after: {}; {} in all",
            worst.0,
            human(window),
            &rfc3339_ms(worst.1)[11..19],
            causes.join(", "),
            starts.len()
        )
    };
    push(
        out,
        "restart_budget",
        service,
        if ok { Verdict::Pass } else { Verdict::Fail },
        [
            expected,
            format!("{} in {}", worst.0, human(window)),
            reason,
        ],
        (!ok).then_some(worst.1),
    );
}
