//! Metric expectations on the series soak scraped from a service's
//! `/metrics`: a trend per incarnation (`metric_slope_max`, the detector
//! RSS uses), a ceiling (`metric_max`) and a counter's rate across restarts
//! (`metric_rate_max`). An expectation's key is a selector (a name, or a
//! name with labels) matched against the journal's series names; each
//! series it matches is judged on its own.

use super::soak::push;
use super::trend::{self, Decision, Metric, Params};
use super::{Judge, Verdict};
use crate::clock::{human, rfc3339_ms};
use crate::config::scenario::Scenario;
use crate::journal::{MetricRow, RunData};
use crate::metrics::parse::Selector;
use crate::metrics::rate::{CounterPoint, max_counter_rate};
use std::collections::BTreeMap;
use std::time::Duration;

/// The window of a counter's rate: a minute, as Prometheus's `rate(x[1m])`.
const RATE_WINDOW_MS: i64 = 60_000;

/// A matched series: its name, its service and its rows, oldest first.
struct Series {
    name: String,
    service: String,
    rows: Vec<MetricRow>,
}

/// The series `key` matches, each read from the journal when its turn
/// comes (a 72 h series scraped every 5 s is 52 000 rows), or why it
/// matches none (the assertion's reason). A series is a name of one
/// service: two services that export the same name (every Node service has
/// `nodejs_eventloop_lag_seconds`) are two series, judged apart.
fn matching<'a>(
    data: &'a RunData,
    key: &str,
) -> Result<impl Iterator<Item = Result<Series, String>> + 'a, String> {
    let sel = Selector::parse(key).map_err(|e| e.to_string())?;
    let names: Vec<String> = data
        .metric_names()
        .map_err(|e| format!("cannot read the metrics scraped: {e}"))?
        .into_iter()
        .filter(|name| sel.matches_series(name))
        .collect();
    if names.is_empty() {
        return Err(format!("no series matching {key} was scraped"));
    }
    let service_of: BTreeMap<i64, &str> = data
        .incarnations
        .iter()
        .map(|i| (i.id, i.service.as_str()))
        .collect();
    Ok(names.into_iter().flat_map(move |name| {
        let rows = match data.metric_series(&name) {
            Ok(rows) => rows,
            Err(e) => return vec![Err(format!("cannot read {name}: {e}"))],
        };
        let mut by_service: BTreeMap<String, Vec<MetricRow>> = BTreeMap::new();
        for r in rows {
            let service = service_of.get(&r.incarnation).copied().unwrap_or_default();
            by_service.entry(service.to_string()).or_default().push(r);
        }
        by_service
            .into_iter()
            .map(|(service, rows)| {
                Ok(Series {
                    name: name.clone(),
                    service,
                    rows,
                })
            })
            .collect()
    }))
}

fn verdict(d: Decision) -> Verdict {
    match d {
        Decision::Pass => Verdict::Pass,
        Decision::Fail => Verdict::Fail,
        Decision::Unknown => Verdict::Unknown,
    }
}

fn unknown(j: &mut Judge, name: &str, expected: String, why: String) {
    j.push(
        name,
        None,
        Verdict::Unknown,
        [expected, "no data".into(), why],
        None,
    );
}

pub(super) fn judge(j: &mut Judge, sc: &Scenario) {
    let e = &sc.expect;
    let warmup = e.warmup.map_or(5 * 60_000, |d| d.0.as_millis() as i64);
    let min_span = e.min_span.map_or(30 * 60_000, |d| d.0.as_millis() as i64);
    for (key, limit) in e.metric_slope_max.iter().flatten() {
        slope(j, key, limit.0, warmup, min_span);
    }
    for (key, limit) in e.metric_max.iter().flatten() {
        max(j, key, limit.0);
    }
    for (key, limit) in e.metric_rate_max.iter().flatten() {
        rate(j, key, limit.0);
    }
}

fn slope(j: &mut Judge, key: &str, per_hour: f64, warmup: i64, min_span: i64) {
    let expected = |s: &str| format!("{s} slope <= {}/h", trimmed(per_hour));
    let all = match matching(j.data, key) {
        Ok(s) => s,
        Err(why) => return unknown(j, "metric_slope_max", expected(key), why),
    };
    for s in all {
        let s = match s {
            Ok(s) => s,
            Err(why) => {
                unknown(j, "metric_slope_max", expected(key), why);
                continue;
            }
        };
        let mut segs: BTreeMap<i64, Vec<(i64, f64)>> = BTreeMap::new();
        for r in &s.rows {
            segs.entry(r.incarnation).or_default().push((r.ts, r.value));
        }
        let refs: Vec<&[(i64, f64)]> = segs.values().map(Vec::as_slice).collect();
        // The detector's own reason words RSS, fds or threads; a metric's
        // is written here from the same figures (`Metric` only picks words).
        let mut p = Params::new(Metric::Fds, per_hour);
        p.warmup_ms = warmup;
        p.min_span_ms = min_span;
        p.min_points = 20;
        let t = trend::judge_segments(&refs, &p);
        let observed = if t.slope_per_hour.is_finite() {
            format!(
                "{}/h (CI {}..{}, p={:.3})",
                trimmed(t.slope_per_hour),
                trimmed(t.ci_per_hour.0),
                trimmed(t.ci_per_hour.1),
                t.p_value
            )
        } else {
            "too few samples".into()
        };
        push(
            &mut j.out,
            "metric_slope_max",
            &s.service,
            verdict(t.decision),
            [
                expected(&s.name),
                observed,
                slope_reason(&s.name, &t, per_hour),
            ],
            s.rows.last().map(|r| r.ts),
        );
    }
}

/// Why, in the metric's words: the detector's decision with its figures.
fn slope_reason(name: &str, t: &trend::Trend, limit: f64) -> String {
    if !t.slope_per_hour.is_finite() || t.points == 0 {
        return format!(
            "{name}: too few samples after the warm-up to judge a trend ({} sample(s))",
            t.points
        );
    }
    let evidence = format!(
        "(CI {}..{}/h, p={:.3}, {} sample(s) over {})",
        trimmed(t.ci_per_hour.0),
        trimmed(t.ci_per_hour.1),
        t.p_value,
        t.points,
        human(Duration::from_millis(t.span_ms.max(0) as u64))
    );
    let (slope, limit) = (trimmed(t.slope_per_hour), trimmed(limit));
    match t.decision {
        Decision::Fail => {
            format!("{name} grows {slope}/h {evidence}, steadily above the {limit}/h limit")
        }
        Decision::Pass => format!("{name} changes {slope}/h {evidence}, below the {limit}/h limit"),
        Decision::Unknown => format!(
            "{name} changes {slope}/h {evidence}: not shown to be below the {limit}/h limit, \
             nor a steady rise above it; needs a longer soak"
        ),
    }
}

fn max(j: &mut Judge, key: &str, limit: f64) {
    let expected = |s: &str| format!("{s} <= {}", trimmed(limit));
    let all = match matching(j.data, key) {
        Ok(s) => s,
        Err(why) => return unknown(j, "metric_max", expected(key), why),
    };
    for s in all {
        let s = match s {
            Ok(s) => s,
            Err(why) => {
                unknown(j, "metric_max", expected(key), why);
                continue;
            }
        };
        let Some(peak) = s
            .rows
            .iter()
            .filter(|r| r.value.is_finite())
            .max_by(|a, b| a.value.total_cmp(&b.value))
        else {
            push(
                &mut j.out,
                "metric_max",
                &s.service,
                Verdict::Unknown,
                [
                    expected(&s.name),
                    "no value".into(),
                    format!("{} was scraped, but never with a number", s.name),
                ],
                None,
            );
            continue;
        };
        let ok = peak.value <= limit;
        push(
            &mut j.out,
            "metric_max",
            &s.service,
            if ok { Verdict::Pass } else { Verdict::Fail },
            [
                expected(&s.name),
                trimmed(peak.value),
                format!(
                    "{} peaked at {} at {} (limit {})",
                    s.name,
                    trimmed(peak.value),
                    &rfc3339_ms(peak.ts)[11..19],
                    trimmed(limit)
                ),
            ],
            Some(peak.ts),
        );
    }
}

fn rate(j: &mut Judge, key: &str, per_hour: f64) {
    let per_second = per_hour / 3600.0;
    let expected = |s: &str| format!("{s} rate <= {}/s", trimmed(per_second));
    let all = match matching(j.data, key) {
        Ok(s) => s,
        Err(why) => return unknown(j, "metric_rate_max", expected(key), why),
    };
    for s in all {
        let s = match s {
            Ok(s) => s,
            Err(why) => {
                unknown(j, "metric_rate_max", expected(key), why);
                continue;
            }
        };
        let points: Vec<CounterPoint> = s
            .rows
            .iter()
            .map(|r| CounterPoint {
                ts: r.ts,
                incarnation: r.incarnation,
                value: r.value,
            })
            .collect();
        let (verdict, observed, reason) = match max_counter_rate(&points, RATE_WINDOW_MS) {
            None => (
                Verdict::Unknown,
                "too short".into(),
                format!(
                    "{} was not scraped over a long enough span to take a rate over a minute",
                    s.name
                ),
            ),
            Some(r) => (
                if r <= per_second {
                    Verdict::Pass
                } else {
                    Verdict::Fail
                },
                format!("{}/s", trimmed(r)),
                format!(
                    "{} grew at most {}/s over a minute, counting restarts (limit {}/s)",
                    s.name,
                    trimmed(r),
                    trimmed(per_second)
                ),
            ),
        };
        push(
            &mut j.out,
            "metric_rate_max",
            &s.service,
            verdict,
            [expected(&s.name), observed, reason],
            s.rows.last().map(|r| r.ts),
        );
    }
}

/// A figure with up to four decimals, without trailing zeros.
fn trimmed(v: f64) -> String {
    let t = format!("{v:.4}");
    let t = t.trim_end_matches('0').trim_end_matches('.');
    if t == "-0" { "0".into() } else { t.to_string() }
}
