//! The report child reads the sample tables from the journal as it goes
//! ([`RunData::open`]); a whole read ([`crate::journal::read`]) holds them in
//! memory. Both must judge and report a run identically: same assertions
//! (trend lines included), same report.json, same report.html.

use crate::journal::{Cause, Event, FaultParams, Journal, Record, RunData};
use crate::judge::{judge_and_report, scenario_from_journal};
use crate::workload::LatencyHistogram;
use std::path::Path;

const T0: i64 = 1_795_392_000_000;
const HOUR: i64 = 3_600_000;
const STEP: i64 = 5_000;

const CONFIG: &str = r#"
[services.api]
command = ["api", "--port", "{port}"]
sqlite = ["{data_dir}/api.db"]
[services.api.metrics]
url = "http://127.0.0.1:{port}/metrics"
[services.cache]
command = ["cache", "--port", "{port}"]
[services.cache.metrics]
url = "http://127.0.0.1:{port}/metrics"
[workloads.items]
service = "api"
read = { url = "http://127.0.0.1:{port}/items/{key}" }
"#;

/// Every expectation that reads the sample tables, a metric series or a
/// load histogram.
const SCENARIO: &str = r#"config = "soak.toml"
duration = "3h"
workloads = ["items"]
[expect]
rss_slope_max = "1MB/h"
rss_growth_max = "10%/24h"
rss_max = "150MB"
fds_slope_max = "10/h"
threads_slope_max = "10/h"
restart_budget = { max = 0, window = "5m" }
wal_max = "1MB"
log_rate_max = "1MB/h"
availability_min = "99%"
latency_p99_max = "5ms"
metric_slope_max = { queue_depth = "10/h" }
metric_max = { queue_depth = "50", "errors_total" = "1e9" }
metric_rate_max = { errors_total = "1/s" }
"#;

/// Three hours of two services through the real writer: `api` leaks
/// 20 MB/h in a sawtooth, is killed at 1.5 h and restarts flat (the two
/// incarnations sampled once at the same time); `cache` leaks fds. WAL,
/// log, host samples, a gauge and a counter scraped from each incarnation,
/// per-minute load with histograms, one fault.
fn write_run(dir: &Path) {
    let journal = Journal::create(&dir.join("journal.sqlite")).unwrap();
    let tx = journal.tx();
    tx.send(Record::Run {
        id: "streamed".into(),
        scenario: Some("streamed".into()),
        started_at: T0,
        seed: None,
        config_path: "soak.toml".into(),
        config: CONFIG.into(),
        scenario_path: Some("streamed.toml".into()),
        scenario_toml: Some(SCENARIO.into()),
    });
    let restart = T0 + 3 * HOUR / 2;
    let end = T0 + 3 * HOUR;
    for (incarnation, service, from) in [(1, "api", T0), (2, "cache", T0), (3, "api", restart)] {
        tx.send(Record::Started {
            incarnation,
            service: service.into(),
            pid: 1000 + incarnation as i32,
            started_at: from,
        });
        tx.send(Record::Ready {
            incarnation,
            ready_at: from + 200,
        });
    }
    let mut fast = LatencyHistogram::default();
    let mut slow = LatencyHistogram::default();
    for i in 0..500 {
        fast.record(1.0 + (i % 13) as f64 * 0.1);
        slow.record(2.0 + (i % 29) as f64);
    }
    let mut ts = T0;
    while ts <= end {
        let k = (ts - T0) / STEP;
        let saw = (k % 60) as u64 * 300_000;
        let sample = |incarnation, rss_bytes, fds| {
            tx.send(Record::Sample {
                ts,
                incarnation,
                rss_bytes,
                cpu_seconds: k as f64 * 0.01 + (k % 7) as f64 * 0.001,
                fds,
                threads: 8 + (k % 3) as u32,
                processes: 1,
            })
        };
        if ts <= restart {
            sample(1, 60_000_000 + (ts - T0) as u64 * 20 / 3_600 + saw, 30);
        }
        if ts >= restart {
            sample(3, 70_000_000 + saw, 30);
        }
        sample(2, 40_000_000 + saw, 20 + (k / 36) as u32);
        let api = if ts < restart { 1 } else { 3 };
        for (incarnation, name, value) in [
            (api, "queue_depth", (k % 40) as f64 + (k / 100) as f64),
            (2, "queue_depth", (k % 7) as f64),
            (api, "errors_total", (k * 3 % 1000) as f64),
            (2, "errors_total", k as f64),
        ] {
            tx.send(Record::Metric {
                ts,
                incarnation,
                name: name.into(),
                value,
            });
        }
        for service in ["api", "cache"] {
            tx.send(Record::ServiceSample {
                ts,
                service: service.into(),
                db_bytes: 4096,
                // Equal peaks: the latest is the one reported.
                wal_bytes: (k % 500).min(400) as u64 * 4096,
                log_bytes: k as u64 * 40,
            });
        }
        tx.send(Record::HostSample {
            ts,
            mem_available_bytes: 800_000_000 - (k % 90) as u64 * 1_000_000,
            disk_free_bytes: 9_000_000_000 - k as u64 * 1000,
            soak_rss_bytes: 9_000_000 + (k % 11) as u64 * 10_000,
            soak_cpu_seconds: k as f64 * 0.001,
        });
        if k % 12 == 0 {
            let h = if k % 240 == 0 { &slow } else { &fast };
            tx.emit(
                Some("api"),
                &Event::Load {
                    workload: "items".into(),
                    sent: 600,
                    ok: 600 - (k % 5) as u64,
                    failed: (k % 5) as u64,
                    p50_ms: 1.5,
                    p99_ms: if k % 240 == 0 { 30.0 } else { 2.2 },
                    max_ms: 40.0,
                    errors: Vec::new(),
                    histogram: h.to_json(),
                },
            );
        }
        if ts == restart {
            tx.emit(
                Some("api"),
                &Event::FaultInjected {
                    step: 0,
                    action: "kill".into(),
                    incarnation: Some(1),
                    params: FaultParams::default(),
                },
            );
            tx.send(Record::Ended {
                incarnation: 1,
                ended_at: ts,
                exit_code: None,
                signal: Some("KILL".into()),
                cause: Cause::Unplanned,
                orphans: 0,
            });
        }
        ts += STEP;
    }
    tx.send(Record::RunEnded {
        ended_at: end,
        interrupted: false,
    });
    drop(tx);
    journal.close();
}

#[test]
fn a_report_read_as_it_goes_is_the_report_of_the_whole_journal() {
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path());
    let path = dir.path().join("journal.sqlite");

    let whole = crate::journal::read(&path).unwrap();
    assert!(!whole.samples.is_empty() && !whole.host_samples.is_empty());
    let sc = scenario_from_journal(whole.run.as_ref().unwrap()).unwrap();
    let assertions = crate::verdict::judge(&sc, &whole);
    let names: Vec<&str> = assertions.iter().map(|a| a.name.as_str()).collect();
    // Every expectation above was judged on the data, not left unknown for
    // lack of it, and the leak drew its line.
    for name in [
        "rss_slope_max",
        "rss_growth_max",
        "rss_max",
        "fds_slope_max",
        "threads_slope_max",
        "restart_budget",
        "wal_max",
        "log_rate_max",
        "availability_min",
        "latency_p99_max",
        "metric_slope_max",
        "metric_max",
        "metric_rate_max",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert!(
        assertions
            .iter()
            .any(|a| a.name == "rss_slope_max" && a.trend.is_some()),
        "{assertions:#?}"
    );
    let expected = super::build(&whole, Some(sc.description.clone()), assertions.clone());
    let expected_html = super::html::render(&expected, &whole, &dir.path().join("logs"));

    let lean = RunData::open(&path).unwrap();
    assert!(lean.samples.is_empty());
    assert!(lean.service_samples.is_empty());
    assert!(lean.host_samples.is_empty());
    assert!(lean.metrics.is_empty());
    assert!(lean.events.iter().all(|e| match &e.event {
        Event::Load { histogram, .. } => histogram.is_null(),
        _ => true,
    }));
    assert_eq!(crate::verdict::judge(&sc, &lean), assertions);

    // The report child's own path: opened lean, written to the run dir.
    let report = judge_and_report(dir.path()).unwrap();
    assert_eq!(
        serde_json::to_value(&report).unwrap(),
        serde_json::to_value(&expected).unwrap()
    );
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html == expected_html, "report.html differs when streamed");
}

#[test]
fn samples_that_cannot_be_read_make_their_verdicts_unknown_never_pass() {
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path());
    let path = dir.path().join("journal.sqlite");
    // A journal damaged after the fact: its resource samples are gone.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("DROP TABLE samples")
        .unwrap();
    assert!(crate::journal::read(&path).is_err());
    let lean = RunData::open(&path).unwrap();
    let sc = scenario_from_journal(lean.run.as_ref().unwrap()).unwrap();
    let assertions = crate::verdict::judge(&sc, &lean);
    for name in [
        "rss_slope_max",
        "rss_growth_max",
        "rss_max",
        "fds_slope_max",
        "threads_slope_max",
    ] {
        let judged: Vec<_> = assertions.iter().filter(|a| a.name == name).collect();
        assert_eq!(judged.len(), 2, "{name}: {assertions:#?}");
        for a in judged {
            assert_eq!(a.verdict, crate::verdict::Verdict::Unknown, "{a:#?}");
            assert!(
                a.reason.contains("cannot read the journal's samples"),
                "{a:#?}"
            );
        }
    }
    // What other tables tell is still judged.
    assert!(
        assertions
            .iter()
            .any(|a| a.name == "wal_max" && a.verdict == crate::verdict::Verdict::Fail)
    );
    let report = judge_and_report(dir.path()).unwrap();
    assert_ne!(report.verdict, crate::verdict::Verdict::Pass);
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(
        html.contains("Its resource samples could not be read"),
        "the page says why the charts are missing"
    );
}
