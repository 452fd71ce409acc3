//! Metric verdicts tested with data: scraped series built as journal rows.

use super::tests::{data, inc};
use super::*;
use crate::config::Config;
use crate::journal::MetricRow;
use std::path::Path;

const CONFIG: &str = r#"
[services.api]
command = ["api", "--port", "{port}"]
[services.api.metrics]
url = "http://127.0.0.1:{port}/metrics"
[services.worker]
command = ["worker", "--port", "{port}"]
[services.worker.metrics]
url = "http://127.0.0.1:{port}/metrics"
"#;

fn scenario(expect: &str) -> Scenario {
    let src = format!(
        "config = \"soak.toml\"\nduration = \"2h\"\n[expect]\nwarmup = \"1m\"\nmin_span = \"10m\"\n{expect}"
    );
    Scenario::parse_with(Path::new("/s/x.toml"), &src, |p| Config::parse(p, CONFIG)).unwrap()
}

/// `name` scraped every 10 s for `minutes` from incarnation `inc`, starting
/// at `from` ms, valued `f(seconds since from)`.
fn series(name: &str, inc: i64, from: i64, minutes: i64, f: impl Fn(f64) -> f64) -> Vec<MetricRow> {
    (0..minutes * 6)
        .map(|i| MetricRow {
            ts: from + i * 10_000,
            incarnation: inc,
            name: name.into(),
            value: f(i as f64 * 10.0),
        })
        .collect()
}

fn run(metrics: Vec<MetricRow>) -> RunData {
    let mut d = data(
        vec![
            inc(1, "api", 0, Some(3_600_000), None, 0),
            inc(2, "api", 3_600_000, None, None, 0),
        ],
        vec![],
    );
    d.metrics = metrics;
    d
}

#[test]
fn a_queue_that_grows_steadily_fails_metric_slope_max_with_its_slope() {
    let sc = scenario("metric_slope_max = { queue_depth = \"100/h\" }\n");
    // 1000 an hour, a little noise, in both incarnations.
    let noisy = |s: f64| s / 3.6 + (s * 7.0).sin() * 3.0;
    let mut rows = series("queue_depth", 1, 0, 60, noisy);
    rows.extend(series("queue_depth", 2, 3_600_000, 60, noisy));
    let a = &judge(&sc, &run(rows))[0];
    assert_eq!(
        (a.name.as_str(), a.verdict),
        ("metric_slope_max", Verdict::Fail)
    );
    assert_eq!(a.service.as_deref(), Some("api"));
    assert!(
        a.reason.starts_with("api: queue_depth grows 1000"),
        "{}",
        a.reason
    );
    assert!(a.reason.contains("/h limit"), "{}", a.reason);
}

#[test]
fn a_flat_queue_passes_metric_slope_max() {
    let sc = scenario("metric_slope_max = { queue_depth = \"100/h\" }\n");
    let rows = series("queue_depth", 1, 0, 60, |s| 40.0 + (s * 7.0).sin() * 3.0);
    let a = &judge(&sc, &run(rows))[0];
    assert_eq!(a.verdict, Verdict::Pass, "{}", a.reason);
    assert!(a.reason.contains("below the 100/h limit"), "{}", a.reason);
}

#[test]
fn metric_max_judges_each_matching_series_by_its_peak() {
    let sc = scenario("metric_max = { \"lag_seconds\" = \"0.1\" }\n");
    let mut rows = series("lag_seconds{route=\"/a\"}", 1, 0, 5, |_| 0.02);
    rows.extend(series("lag_seconds{route=\"/b\"}", 1, 0, 5, |s| {
        if s == 120.0 { 0.35 } else { 0.01 }
    }));
    rows.extend(series("other_seconds", 1, 0, 5, |_| 9.0));
    let a = judge(&sc, &run(rows));
    assert_eq!(a.len(), 2);
    assert_eq!(a[0].verdict, Verdict::Pass);
    assert_eq!(a[1].verdict, Verdict::Fail);
    assert_eq!(
        a[1].reason,
        "api: lag_seconds{route=\"/b\"} peaked at 0.35 at 00:02:00 (limit 0.1)"
    );
}

#[test]
fn a_key_that_matches_no_scraped_series_is_unknown() {
    let sc = scenario(
        "metric_max = { queue_depth = 5 }\nmetric_rate_max = { errors_total = \"1/s\" }\n\
         metric_slope_max = { queue_depth = \"1/h\" }\n",
    );
    let a = judge(&sc, &run(series("other", 1, 0, 5, |_| 1.0)));
    assert_eq!(a.len(), 3);
    for x in &a {
        assert_eq!(x.verdict, Verdict::Unknown, "{x:?}");
    }
    assert_eq!(a[1].reason, "no series matching queue_depth was scraped");
}

#[test]
fn metric_rate_max_counts_across_a_restart() {
    let sc = scenario("metric_rate_max = { errors_total = \"1/s\" }\n");
    // 0.5/s in the first incarnation, then a restart from zero at 2/s:
    // the reset is growth, never a negative rate.
    let mut rows = series("errors_total", 1, 0, 10, |s| 1000.0 + s * 0.5);
    rows.extend(series("errors_total", 2, 3_600_000, 10, |s| s * 2.0));
    let a = &judge(&sc, &run(rows))[0];
    assert_eq!(a.verdict, Verdict::Fail);
    assert!(
        a.reason
            .starts_with("api: errors_total grew at most 2/s over a minute"),
        "{}",
        a.reason
    );
    let calm = &judge(&sc, &run(series("errors_total", 1, 0, 10, |s| s * 0.5)))[0];
    assert_eq!(calm.verdict, Verdict::Pass, "{}", calm.reason);
}

#[test]
fn two_services_exporting_one_name_are_two_series() {
    // Both export errors_total (one framework) and queue_depth, scraped at
    // the same moments: read as one series, each switch between the two
    // values looks like a counter reset, and the worker's queue would be
    // blamed on the api.
    let sc = scenario(
        "metric_rate_max = { errors_total = \"1/s\" }\nmetric_max = { queue_depth = 100 }\n",
    );
    let mut d = data(
        vec![
            inc(1, "api", 0, None, None, 0),
            inc(3, "worker", 0, None, None, 0),
        ],
        vec![],
    );
    let mut rows = series("errors_total", 1, 0, 10, |s| 5000.0 + s * 0.1);
    rows.extend(series("errors_total", 3, 0, 10, |_| 20.0));
    rows.extend(series("queue_depth", 1, 0, 10, |_| 3.0));
    rows.extend(series("queue_depth", 3, 0, 10, |_| 500.0));
    rows.sort_by_key(|r| r.ts);
    d.metrics = rows;
    let a = judge(&sc, &d);
    let find = |name: &str, service: &str| {
        a.iter()
            .find(|x| x.name == name && x.service.as_deref() == Some(service))
            .unwrap_or_else(|| panic!("no {name} for {service}: {a:#?}"))
    };
    assert_eq!(find("metric_rate_max", "api").verdict, Verdict::Pass);
    assert_eq!(find("metric_rate_max", "worker").verdict, Verdict::Pass);
    assert_eq!(find("metric_max", "api").verdict, Verdict::Pass);
    let worker = find("metric_max", "worker");
    assert_eq!(worker.verdict, Verdict::Fail);
    assert!(
        worker
            .reason
            .starts_with("worker: queue_depth peaked at 500"),
        "{}",
        worker.reason
    );
}
