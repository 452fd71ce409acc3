//! Soak expectations: trends of RSS, fds and threads per incarnation, RSS
//! growth and peak, restart budget and WAL size. Pure functions of the
//! journal's samples and incarnations.

use super::trend::{self, Decision, Metric, Params};
use super::{Assertion, FittedTrend, Judge, Verdict, bytes};
use crate::clock::{human, rfc3339_ms};
use crate::config::scenario::{Expect, Scenario};
use crate::journal::{Cause, RunData, SampleRow};
use std::time::Duration;

fn verdict(d: Decision) -> Verdict {
    match d {
        Decision::Pass => Verdict::Pass,
        Decision::Fail => Verdict::Fail,
        Decision::Unknown => Verdict::Unknown,
    }
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

/// A trend expectation of one service, judged incarnation by incarnation.
struct TrendCheck {
    name: &'static str,
    limit: f64,
    params: Params,
    value: fn(&SampleRow) -> f64,
    /// Per incarnation with samples, in order: its trend when it counted.
    judged: Vec<(usize, trend::Trend)>,
    /// Per incarnation with samples: what [`fitted`] needs of it.
    fits: Vec<SegmentFit>,
}

/// One incarnation's points after the warm-up, and the line its own trend
/// draws through them.
struct SegmentFit {
    incarnation: i64,
    points: usize,
    span_ms: i64,
    /// First and last point, and Theil–Sen's intercept at the first.
    line: Option<(i64, i64, f64)>,
}

/// What the sample-based expectations of one service found, read one
/// incarnation at a time.
struct Found {
    checks: Vec<TrendCheck>,
    /// Incarnations with samples.
    segments: usize,
    /// The time of the last sample of the last of them.
    last_ts: Option<i64>,
    /// The highest RSS sample (the latest of equal ones).
    peak: Option<SampleRow>,
    /// Each judged incarnation's RSS growth.
    growth: Vec<SegmentGrowth>,
}

/// `rss_growth_max`'s measure of one incarnation.
struct SegmentGrowth {
    /// From the median of its first tenth to that of its last, scaled to
    /// the expectation's period.
    fraction: f64,
    /// Its last sample.
    at: i64,
    /// The decision: scaling a short incarnation's tenths to a day
    /// multiplies a sawtooth's phase into a leak (and can hide one), so
    /// the trend detector decides with the same limit as a slope (the
    /// limit's share of the start level per hour); when it cannot, the
    /// tenths pass below the limit and are undecided above it.
    trend: Decision,
    /// The detector's slope as a growth over the period, when it decided.
    trend_fraction: Option<f64>,
}

/// What `rss_growth_max` asks: so much per period, judged after `warmup`
/// over at least `min_span`.
#[derive(Clone, Copy)]
struct GrowthCheck {
    max: f64,
    per: Duration,
    warmup: i64,
    min_span: i64,
}

pub(super) fn judge(j: &mut Judge, sc: &Scenario) {
    let (out, data) = (&mut j.out, j.data);
    let e = &sc.expect;
    let warmup = e.warmup.map_or(5 * 60_000, |d| d.0.as_millis() as i64);
    let min_span = e.min_span.map_or(30 * 60_000, |d| d.0.as_millis() as i64);
    let host = data.last_host_sample().map_err(|e| e.to_string());
    for service in &sc.services {
        let ids: Vec<i64> = data
            .incarnations
            .iter()
            .filter(|i| &i.service == service)
            .map(|i| i.id)
            .collect();
        // The projection's ceiling: rss_max if given, else what the service
        // held when the host was last sampled plus what the host still had
        // available (available memory alone is not a ceiling for RSS).
        let host_limit = match &host {
            Ok(Some(h)) => data
                .last_sample_at(&ids, h.ts)
                .map(|held| Some((h.mem_available_bytes + held.map_or(0, |r| r.rss_bytes)) as f64))
                .map_err(|e| e.to_string()),
            Ok(None) => Ok(None),
            Err(e) => Err(e.clone()),
        };
        let mut checks = Vec::new();
        for (name, limit, metric, value) in [
            (
                "rss_slope_max",
                e.rss_slope_max.map(|r| r.0),
                Metric::Rss,
                (|r| r.rss_bytes as f64) as fn(&SampleRow) -> f64,
            ),
            (
                "fds_slope_max",
                e.fds_slope_max.map(|r| r.0),
                Metric::Fds,
                |r| r.fds as f64,
            ),
            (
                "threads_slope_max",
                e.threads_slope_max.map(|r| r.0),
                Metric::Threads,
                |r| r.threads as f64,
            ),
        ] {
            let Some(limit) = limit else { continue };
            let mut p = Params::new(metric, limit);
            p.warmup_ms = warmup;
            p.min_span_ms = min_span;
            p.min_points = 20;
            if metric == Metric::Rss {
                p.limit = match (e.rss_max, &host_limit) {
                    (Some(m), _) => Some(m.0 as f64),
                    (None, Ok(l)) => *l,
                    (None, Err(_)) => None,
                };
            }
            checks.push(TrendCheck {
                name,
                limit,
                params: p,
                value,
                judged: Vec::new(),
                fits: Vec::new(),
            });
        }
        let needs_samples = !checks.is_empty() || e.rss_max.is_some() || e.rss_growth_max.is_some();
        let found = if needs_samples {
            host_limit.and_then(|_| {
                let growth = e.rss_growth_max.map(|g| GrowthCheck {
                    max: g.fraction,
                    per: g.per,
                    warmup,
                    min_span,
                });
                read_segments(data, &ids, checks, growth)
            })
        } else {
            Ok(Found {
                checks,
                segments: 0,
                last_ts: None,
                peak: None,
                growth: Vec::new(),
            })
        };
        match found {
            Ok(found) => judge_found(out, service, e, found),
            Err(err) => unreadable(out, service, e, &err),
        }
        if let Some(b) = &e.restart_budget {
            restart_budget(out, data, service, b.max, b.window.0);
        }
        if let Some(w) = e.wal_max {
            if sc.config.services[service].sqlite.is_empty() {
                continue;
            }
            match data.peak_wal(service) {
                Err(err) => push(
                    out,
                    "wal_max",
                    service,
                    Verdict::Unknown,
                    [
                        format!("<= {}", bytes(w.0 as f64)),
                        "unreadable".into(),
                        format!("cannot read the WAL sizes sampled: {err}"),
                    ],
                    None,
                ),
                Ok(None) => push(
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
                Ok(Some((ts, wal_bytes))) => {
                    let ok = wal_bytes as u64 <= w.0;
                    push(
                        out,
                        "wal_max",
                        service,
                        if ok { Verdict::Pass } else { Verdict::Fail },
                        [
                            format!("<= {}", bytes(w.0 as f64)),
                            bytes(wal_bytes as f64),
                            format!(
                                "WAL peaked at {} (limit {})",
                                bytes(wal_bytes as f64),
                                bytes(w.0 as f64)
                            ),
                        ],
                        Some(ts),
                    );
                }
            }
        }
    }
}

/// Reads each incarnation of `ids` in turn (only one is in memory at a
/// time: a 72 h incarnation sampled every 5 s is 52 000 rows) and keeps
/// what each expectation needs of it. Incarnations without samples do not
/// count, as if they had not run.
fn read_segments(
    data: &RunData,
    ids: &[i64],
    mut checks: Vec<TrendCheck>,
    growth_of: Option<GrowthCheck>,
) -> Result<Found, String> {
    let mut found = Found {
        checks: Vec::new(),
        segments: 0,
        last_ts: None,
        peak: None,
        growth: Vec::new(),
    };
    for &id in ids {
        let rows = data.samples_of(id).map_err(|e| e.to_string())?;
        let Some(last) = rows.last() else { continue };
        let index = found.segments;
        found.segments += 1;
        found.last_ts = Some(last.ts);
        for c in &mut checks {
            let series: Vec<(i64, f64)> = rows.iter().map(|r| (r.ts, (c.value)(r))).collect();
            let own = trend::judge_segment(&series, &c.params);
            let pts = trend::after_warmup(&series, c.params.warmup_ms);
            let line = own
                .as_ref()
                .filter(|t| t.slope_per_hour.is_finite() && t.points > 0)
                .and_then(|t| line_through(&pts, t.slope_per_hour));
            c.fits.push(SegmentFit {
                incarnation: id,
                points: pts.len(),
                span_ms: match (pts.first(), pts.last()) {
                    (Some(a), Some(b)) => b.0 - a.0,
                    _ => 0,
                },
                line,
            });
            if let Some(t) = own {
                c.judged.push((index, t));
            }
        }
        for r in &rows {
            if found
                .peak
                .as_ref()
                .is_none_or(|p| (r.rss_bytes, r.ts) >= (p.rss_bytes, p.ts))
            {
                found.peak = Some(r.clone());
            }
        }
        if let Some(check) = growth_of
            && let Some(g) = segment_growth(&rows, check)
        {
            found.growth.push(g);
        }
    }
    found.checks = checks;
    Ok(found)
}

/// The line of slope `slope_per_hour` through `pts`: its first and last
/// time, and Theil–Sen's intercept, the median of what the slope leaves
/// over.
fn line_through(pts: &[(i64, f64)], slope_per_hour: f64) -> Option<(i64, i64, f64)> {
    let (from, to) = (pts.first()?.0, pts.last()?.0);
    let mut resid: Vec<f64> = pts
        .iter()
        .map(|(ts, v)| v - slope_per_hour * (ts - from) as f64 / 3_600_000.0)
        .collect();
    let mid = resid.len() / 2;
    let (_, value_at_from, _) = resid.select_nth_unstable_by(mid, f64::total_cmp);
    Some((from, to, *value_at_from))
}

fn judge_found(out: &mut Vec<Assertion>, service: &str, e: &Expect, found: Found) {
    for c in found.checks {
        let p = &c.params;
        let t = trend::combine_segments(found.segments, c.judged, p);
        let metric = p.metric;
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
        let line = fitted(&c.fits, p, &t);
        push(
            out,
            c.name,
            service,
            verdict(t.decision),
            [
                format!("<= {:.2} {unit}", c.limit / scale),
                observed,
                t.reason,
            ],
            found.last_ts,
        );
        if let Some(a) = out.last_mut() {
            a.trend = line;
        }
    }
    if let Some(max) = e.rss_max {
        match &found.peak {
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
        growth(out, service, found.growth, g.fraction, g.per);
    }
}

/// The sample-based expectations of `service` when its samples cannot be
/// read: unknown, never judged on part of the evidence.
fn unreadable(out: &mut Vec<Assertion>, service: &str, e: &Expect, err: &str) {
    let names = [
        ("rss_slope_max", e.rss_slope_max.is_some()),
        ("fds_slope_max", e.fds_slope_max.is_some()),
        ("threads_slope_max", e.threads_slope_max.is_some()),
        ("rss_max", e.rss_max.is_some()),
        ("rss_growth_max", e.rss_growth_max.is_some()),
    ];
    for (name, asked) in names {
        if asked {
            push(
                out,
                name,
                service,
                Verdict::Unknown,
                [
                    "judged on the samples".into(),
                    "unreadable".into(),
                    format!("cannot read the journal's samples: {err}"),
                ],
                None,
            );
        }
    }
}

/// The line of `t` through the incarnation it was decided on, found by the
/// points and span the verdict reports (the trend module does not name the
/// incarnation). None without a finite slope or when two incarnations match.
fn fitted(fits: &[SegmentFit], p: &Params, t: &trend::Trend) -> Option<FittedTrend> {
    if !t.slope_per_hour.is_finite() || t.points == 0 {
        return None;
    }
    let mut matching = fits
        .iter()
        .filter(|f| f.points == t.points && f.span_ms == t.span_ms);
    let fit = matching.next()?;
    if matching.next().is_some() {
        return None;
    }
    let (from, to, value_at_from) = fit.line?;
    Some(FittedTrend {
        incarnation: fit.incarnation,
        warmup_ms: p.warmup_ms,
        from,
        to,
        value_at_from,
        slope_per_hour: t.slope_per_hour,
        projected_limit_ms: t.projected_limit_ms,
    })
}

/// Growth of one incarnation from its first to its last tenth (medians,
/// so one sawtooth peak does not decide), scaled to the period, checked
/// against the trend when it is above the limit (see [`SegmentGrowth`]);
/// None when it ran too briefly after its warm-up.
fn segment_growth(rows: &[SampleRow], check: GrowthCheck) -> Option<SegmentGrowth> {
    let first = rows.first()?;
    let kept: Vec<&SampleRow> = rows
        .iter()
        .filter(|r| r.ts >= first.ts + check.warmup)
        .collect();
    let (a, b) = (kept.first()?, kept.last()?);
    let span = b.ts - a.ts;
    if span < check.min_span || kept.len() < 10 {
        return None;
    }
    let tenth = (kept.len() / 10).max(1);
    let median = |xs: &[&SampleRow]| {
        let mut v: Vec<i64> = xs.iter().map(|r| r.rss_bytes).collect();
        v.sort_unstable();
        v[v.len() / 2] as f64
    };
    let (start, end) = (median(&kept[..tenth]), median(&kept[kept.len() - tenth..]));
    if start <= 0.0 {
        return None;
    }
    let per_ms = check.per.as_millis() as f64;
    let fraction = (end - start) / start * per_ms / span as f64;
    // The same limit as a slope: max of the start level per period.
    let mut p = Params::new(Metric::Rss, check.max * start * 3_600_000.0 / per_ms);
    p.warmup_ms = check.warmup;
    p.min_span_ms = check.min_span;
    p.min_points = 20;
    let series: Vec<(i64, f64)> = rows.iter().map(|r| (r.ts, r.rss_bytes as f64)).collect();
    let (trend, trend_fraction) = match trend::judge_segment(&series, &p) {
        // A pass is the slope interval's top below the limit; a fail its
        // bottom above: the figure shown is the one that decided.
        Some(t) if t.decision != Decision::Unknown => {
            let slope = match t.decision {
                Decision::Pass => t.ci_per_hour.1,
                _ => t.slope_per_hour,
            };
            (t.decision, Some(slope * per_ms / 3_600_000.0 / start))
        }
        // Undecided: the tenths are all there is, and only their pass
        // stands; a growth above the limit is a sawtooth's phase or a leak.
        _ if fraction <= check.max => (Decision::Pass, None),
        _ => (Decision::Unknown, None),
    };
    Some(SegmentGrowth {
        fraction,
        at: b.ts,
        trend,
        trend_fraction,
    })
}

/// The incarnations' growths against `max`: the worst confirmed rise
/// fails; else one undecided leaves it unknown; else the worst passes.
fn growth(
    out: &mut Vec<Assertion>,
    service: &str,
    growths: Vec<SegmentGrowth>,
    max: f64,
    per: Duration,
) {
    let expected = format!("<= {:.0}% per {}", max * 100.0, human(per));
    let total = growths.len();
    let pct = |f: f64| format!("{:.1}%", f * 100.0);
    let worst = |d: Decision| {
        growths
            .iter()
            .filter(move |g| g.trend == d)
            .max_by(|a, b| a.fraction.total_cmp(&b.fraction))
    };
    let (v, g, observed, reason) = if let Some(g) = worst(Decision::Fail) {
        (
            Verdict::Fail,
            g,
            pct(g.fraction),
            format!(
                "RSS grows {} per {} (limit {:.0}%), a significant trend",
                pct(g.fraction),
                human(per),
                max * 100.0
            ),
        )
    } else if let Some(g) = worst(Decision::Unknown) {
        (
            Verdict::Unknown,
            g,
            pct(g.fraction),
            format!(
                "RSS grew {} per {} from the first to the last tenth of an incarnation \
                 (limit {:.0}%), but its trend is not significant over so short a run: \
                 a sawtooth's phase or a leak",
                pct(g.fraction),
                human(per),
                max * 100.0
            ),
        )
    } else if let Some(g) = growths.iter().max_by(|a, b| {
        let f = |g: &SegmentGrowth| g.trend_fraction.unwrap_or(g.fraction);
        f(a).total_cmp(&f(b))
    }) {
        let shown = g.trend_fraction.unwrap_or(g.fraction);
        let how = match g.trend_fraction {
            Some(_) => "at most, by its trend,",
            None => "from its first to its last tenth",
        };
        (
            Verdict::Pass,
            g,
            pct(shown),
            format!(
                "RSS grows {how} {} per {} (limit {:.0}%), the most of {total} incarnation(s)",
                pct(shown),
                human(per),
                max * 100.0
            ),
        )
    } else {
        return push(
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
        );
    };
    push(
        out,
        "rss_growth_max",
        service,
        v,
        [expected, observed, reason],
        Some(g.at),
    );
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
            Some(c) if c.is_failure() => Some((w[1].started_at, c)),
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
