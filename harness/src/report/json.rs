//! `report.json` (schema `soak-report/1`, documented in docs/report-schema.md)
//! and `junit.xml`: pure functions of the journal and the verdict.

use super::summary::{ServiceSummary, summarize};
use crate::journal::{Event, RunData};
use crate::verdict::{self, Assertion, Verdict};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

pub const SCHEMA: &str = "soak-report/1";

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub verdict: Verdict,
    pub interrupted: bool,
    pub run: RunInfo,
    pub assertions: Vec<Assertion>,
    pub services: BTreeMap<String, ServiceSummary>,
    pub faults: Vec<FaultInfo>,
    pub workloads: BTreeMap<String, WorkloadInfo>,
    /// The fault proxies' traffic, by link name.
    pub links: BTreeMap<String, LinkInfo>,
    /// The machine and soak itself.
    pub host: HostInfo,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub id: String,
    pub scenario: Option<String>,
    pub description: Option<String>,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub duration_ms: i64,
    pub seed: Option<i64>,
    pub soak_version: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FaultInfo {
    pub step: usize,
    pub action: String,
    pub target: String,
    pub injected_at: i64,
    pub rolled_back_at: Option<i64>,
    pub detail: serde_json::Value,
    /// Each workload's load intervals that overlap the fault's window
    /// (injection to rollback, or to the run's end), summed.
    pub load_during: BTreeMap<String, LoadDuring>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadDuring {
    pub sent: u64,
    pub ok: u64,
    pub failed: u64,
    pub worst_p99_ms: f64,
    pub worst_max_ms: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LinkInfo {
    /// Connections accepted over the run (the proxy's last count).
    pub connections: i64,
    /// Most connections open at once, of those sampled.
    pub peak_active: i64,
    pub bytes_up: i64,
    pub bytes_down: i64,
    pub samples: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct HostInfo {
    /// soak's own async runtime: how late its timers fired (p99 per
    /// sampling interval, and the worst single delay), over the run.
    pub lag_worst_p99_ms: Option<f64>,
    pub lag_worst_max_ms: Option<f64>,
    pub soak_peak_rss_bytes: Option<i64>,
    pub min_mem_available_bytes: Option<i64>,
    pub min_disk_free_bytes: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkloadInfo {
    pub sent: u64,
    pub ok: u64,
    pub failed: u64,
    pub worst_p99_ms: f64,
    /// Rows of the journal's `writes` table: every write the service
    /// acknowledged (None when the workload journaled none).
    pub acknowledged_writes: Option<u64>,
    /// How many of them the read-back checked.
    pub checked_writes: Option<u64>,
    pub missing_writes: Option<u64>,
}

/// Builds the report of a run from its journal and its judged assertions.
pub fn build(data: &RunData, description: Option<String>, assertions: Vec<Assertion>) -> Report {
    let run = data.run.clone();
    let interrupted = run
        .as_ref()
        .is_some_and(|r| r.interrupted || r.ended_at.is_none());
    let started_at = run.as_ref().map_or(0, |r| r.started_at);
    let end = verdict::run_end(data);
    let faults = verdict::faults(data)
        .into_iter()
        .map(|f| {
            let rolled_back_at = data
                .events
                .iter()
                .find(|e| {
                    matches!(&e.event, Event::FaultRolledBack { step, .. } if *step == f.step)
                        && e.ts >= f.injected_at
                })
                .map(|e| e.ts);
            FaultInfo {
                load_during: load_during(data, f.injected_at, rolled_back_at.unwrap_or(end)),
                rolled_back_at,
                step: f.step,
                action: f.action,
                target: f.target,
                injected_at: f.injected_at,
                detail: f.detail,
            }
        })
        .collect();
    let mut workloads: BTreeMap<String, WorkloadInfo> = BTreeMap::new();
    for e in &data.events {
        match &e.event {
            Event::Load {
                workload,
                sent,
                ok,
                failed,
                p99_ms,
                ..
            } => {
                let w = workloads.entry(workload.clone()).or_default();
                w.sent += sent;
                w.ok += ok;
                w.failed += failed;
                w.worst_p99_ms = w.worst_p99_ms.max(*p99_ms);
            }
            Event::Readback {
                workload,
                checked,
                missing_count,
                ..
            } => {
                let w = workloads.entry(workload.clone()).or_default();
                w.checked_writes = Some(*checked);
                w.missing_writes = Some(*missing_count);
            }
            _ => {}
        }
    }
    for (workload, n) in &data.acknowledged_writes {
        workloads
            .entry(workload.clone())
            .or_default()
            .acknowledged_writes = Some(*n);
    }
    Report {
        schema: SCHEMA,
        verdict: verdict::overall(&assertions, interrupted),
        interrupted,
        run: RunInfo {
            id: run.as_ref().map(|r| r.id.clone()).unwrap_or_default(),
            scenario: run.as_ref().and_then(|r| r.scenario.clone()),
            description,
            started_at,
            ended_at: run.as_ref().and_then(|r| r.ended_at),
            duration_ms: end.saturating_sub(started_at).max(0),
            seed: run.as_ref().and_then(|r| r.seed),
            soak_version: run
                .as_ref()
                .map(|r| r.soak_version.clone())
                .unwrap_or_default(),
        },
        assertions,
        services: summarize(data),
        faults,
        workloads,
        links: links(data),
        host: host(data),
    }
}

/// A load event sums the interval since its workload's previous one (about
/// a second to a minute); it belongs to a window that interval overlaps.
const LOAD_INTERVAL_MAX_MS: i64 = 60_000;

fn load_during(data: &RunData, from: i64, to: i64) -> BTreeMap<String, LoadDuring> {
    let mut out: BTreeMap<String, LoadDuring> = BTreeMap::new();
    let mut previous: BTreeMap<&str, i64> = BTreeMap::new();
    // Events are in time order: start where the interval of a load event
    // that ends in the window could begin.
    let start = data
        .events
        .partition_point(|e| e.ts < from.saturating_sub(2 * LOAD_INTERVAL_MAX_MS));
    for e in &data.events[start..] {
        if e.ts > to.saturating_add(LOAD_INTERVAL_MAX_MS) {
            break;
        }
        let Event::Load {
            workload,
            sent,
            ok,
            failed,
            p99_ms,
            max_ms,
            ..
        } = &e.event
        else {
            continue;
        };
        let began = previous.insert(workload, e.ts).unwrap_or(e.ts);
        if e.ts < from || began > to {
            continue;
        }
        let w = out.entry(workload.clone()).or_default();
        w.sent += sent;
        w.ok += ok;
        w.failed += failed;
        w.worst_p99_ms = w.worst_p99_ms.max(*p99_ms);
        w.worst_max_ms = w.worst_max_ms.max(*max_ms);
    }
    out
}

fn links(data: &RunData) -> BTreeMap<String, LinkInfo> {
    let mut out: BTreeMap<String, LinkInfo> = BTreeMap::new();
    for s in &data.link_samples {
        let l = out.entry(s.link.clone()).or_default();
        // The proxy's counts only grow; the last sample is the run's total.
        l.connections = l.connections.max(s.connections);
        l.bytes_up = l.bytes_up.max(s.bytes_up);
        l.bytes_down = l.bytes_down.max(s.bytes_down);
        l.peak_active = l.peak_active.max(s.active);
        l.samples += 1;
    }
    out
}

fn host(data: &RunData) -> HostInfo {
    let fmax = |it: &mut dyn Iterator<Item = f64>| it.filter(|v| v.is_finite()).reduce(f64::max);
    let (mut soak_peak, mut min_mem, mut min_disk) = (None::<i64>, None::<i64>, None::<i64>);
    // Unreadable host samples leave these figures out, as if never
    // measured: they describe the host, and no verdict rests on them.
    let _ = data.for_each_host_sample(|h| {
        soak_peak = Some(soak_peak.map_or(h.soak_rss_bytes, |p| p.max(h.soak_rss_bytes)));
        min_mem = Some(min_mem.map_or(h.mem_available_bytes, |m| m.min(h.mem_available_bytes)));
        min_disk = Some(min_disk.map_or(h.disk_free_bytes, |m| m.min(h.disk_free_bytes)));
    });
    HostInfo {
        lag_worst_p99_ms: fmax(&mut data.lag.iter().map(|l| l.p99_ms)),
        lag_worst_max_ms: fmax(&mut data.lag.iter().map(|l| l.max_ms)),
        soak_peak_rss_bytes: soak_peak,
        min_mem_available_bytes: min_mem,
        min_disk_free_bytes: min_disk,
    }
}

pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // XML 1.0 forbids most control characters even escaped.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// One testsuite per scenario, one testcase per assertion. A failure carries
/// the reason; an unknown is an `<error>` (inconclusive), never a pass.
pub fn junit(r: &Report) -> String {
    let suite = r.run.scenario.clone().unwrap_or_else(|| "soak".into());
    let count = |v| r.assertions.iter().filter(|a| a.verdict == v).count();
    let (failures, errors) = (
        count(Verdict::Fail),
        count(Verdict::Unknown) + usize::from(r.interrupted),
    );
    let tests = r.assertions.len() + usize::from(r.interrupted);
    let secs = r.run.duration_ms as f64 / 1000.0;
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(&format!(
        "<testsuites name=\"soak\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{secs:.3}\">\n"
    ));
    x.push_str(&format!(
        "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{secs:.3}\" timestamp=\"{}\">\n",
        xml_escape(&suite),
        &crate::clock::rfc3339_ms(r.run.started_at)[..19]
    ));
    for a in &r.assertions {
        let name = match &a.service {
            Some(s) => format!("{}[{s}]", a.name),
            None => a.name.clone(),
        };
        x.push_str(&format!(
            "    <testcase name=\"{}\" classname=\"soak.{}\" time=\"0\">",
            xml_escape(&name),
            xml_escape(&suite)
        ));
        let body = format!("expected: {}\nobserved: {}", a.expected, a.observed);
        match a.verdict {
            Verdict::Pass => {}
            Verdict::Fail => x.push_str(&format!(
                "\n      <failure message=\"{}\" type=\"assertion\">{}</failure>\n    ",
                xml_escape(&a.reason),
                xml_escape(&body)
            )),
            Verdict::Unknown => x.push_str(&format!(
                "\n      <error message=\"{}\" type=\"unknown\">{}</error>\n    ",
                xml_escape(&a.reason),
                xml_escape(&body)
            )),
        }
        x.push_str("</testcase>\n");
    }
    if r.interrupted {
        x.push_str(&format!(
            "    <testcase name=\"run\" classname=\"soak.{}\" time=\"0\">\n      <error message=\"the run was interrupted before it finished\" type=\"interrupted\"/>\n    </testcase>\n",
            xml_escape(&suite)
        ));
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

/// Writes report.json and junit.xml into `dir` (atomically, so a reader
/// never sees half a file).
pub fn write(dir: &Path, r: &Report) -> std::io::Result<()> {
    let json = serde_json::to_string_pretty(r).map_err(std::io::Error::other)?;
    write_atomic(&dir.join("report.json"), json.as_bytes())?;
    write_atomic(&dir.join("junit.xml"), junit(r).as_bytes())
}

pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Cause, EventRow, IncarnationRow, LagRow, LinkSampleRow, RunRow};
    use serde_json::json;

    fn sample() -> Report {
        let ev = |ts, event| EventRow::new(ts, ts, Some("gateway"), event);
        let data = RunData {
            run: Some(RunRow {
                id: "20261123-000000-kill-gateway".into(),
                scenario: Some("kill-gateway".into()),
                started_at: 1_795_392_000_000,
                ended_at: Some(1_795_392_012_000),
                seed: None,
                soak_version: "0.1.0".into(),
                interrupted: false,
                config_path: None,
                config: None,
                scenario_path: None,
                scenario_toml: None,
            }),
            incarnations: vec![
                IncarnationRow {
                    id: 1,
                    service: "gateway".into(),
                    pid: Some(101),
                    started_at: 1_795_392_000_100,
                    ready_at: Some(1_795_392_000_200),
                    ended_at: Some(1_795_392_003_010),
                    exit_code: None,
                    signal: Some("KILL".into()),
                    cause: Some(Cause::Planned),
                    orphans: Some(2),
                },
                IncarnationRow {
                    id: 2,
                    service: "gateway".into(),
                    pid: Some(105),
                    started_at: 1_795_392_003_120,
                    ready_at: Some(1_795_392_003_300),
                    ended_at: Some(1_795_392_011_900),
                    exit_code: Some(0),
                    signal: None,
                    cause: Some(Cause::Stopped),
                    orphans: Some(0),
                },
            ],
            events: vec![
                // As chaos.rs journals it: kind and JSON.
                EventRow::from_row(
                    1_795_392_003_000,
                    1_795_392_003_000,
                    Some("gateway"),
                    "fault-injected".into(),
                    json!({"step": 0, "action": "kill", "signal": "KILL", "pids": [101]}),
                ),
                ev(
                    1_795_392_004_000,
                    Event::Load {
                        workload: "work".into(),
                        sent: 5,
                        ok: 4,
                        failed: 1,
                        p50_ms: 2.0,
                        p99_ms: 12.5,
                        max_ms: 14.0,
                        errors: vec![("status 503".into(), 1)],
                        histogram: serde_json::Value::Null,
                    },
                ),
                // A read-back that checked a capped sample of the writes.
                ev(
                    1_795_392_011_000,
                    Event::Readback {
                        workload: "work".into(),
                        checked: 5,
                        missing_count: 0,
                        missing: Vec::new(),
                        acknowledged: Some(5),
                        unchecked: 0,
                        unchecked_reason: String::new(),
                    },
                ),
            ],
            link_samples: vec![LinkSampleRow {
                ts: 1_795_392_005_000,
                link: "store".into(),
                connections: 12,
                active: 2,
                bytes_up: 4_096,
                bytes_down: 65_536,
            }],
            lag: vec![LagRow {
                ts: 1_795_392_005_000,
                p99_ms: 1.5,
                max_ms: 7.25,
            }],
            acknowledged_writes: BTreeMap::from([("work".to_string(), 9)]),
            ..RunData::default()
        };
        let assertions = vec![
            Assertion {
                name: "healthy_within".into(),
                service: Some("gateway".into()),
                verdict: Verdict::Pass,
                expected: "healthy within 15.0 s".into(),
                observed: "healthy after 300 ms".into(),
                reason: "gateway healthy again 300 ms after the kill (limit 15.0 s)".into(),
                at: Some(1_795_392_003_300),
                trend: None,
            },
            Assertion {
                name: "no_orphans".into(),
                service: Some("gateway".into()),
                verdict: Verdict::Fail,
                expected: "0 orphans".into(),
                observed: "2".into(),
                reason: "2 process(es) outlived gateway's main process (pid 101) <&> \"quoted\""
                    .into(),
                at: None,
                trend: None,
            },
            Assertion {
                name: "writes_survive".into(),
                service: None,
                verdict: Verdict::Unknown,
                expected: "every acknowledged write readable".into(),
                observed: "no read-back".into(),
                reason: "acknowledged writes of items were not read back".into(),
                at: None,
                trend: None,
            },
        ];
        build(&data, Some("kill -9 the gateway".into()), assertions)
    }

    #[test]
    fn report_json_has_the_documented_shape() {
        insta::assert_json_snapshot!(sample());
    }

    #[test]
    fn junit_has_one_case_per_assertion_with_escaped_reasons() {
        insta::assert_snapshot!(junit(&sample()));
    }

    #[test]
    fn any_failure_fails_and_unknown_never_passes() {
        let r = sample();
        assert_eq!(r.verdict, Verdict::Fail);
        assert_eq!(r.services["gateway"].restarts.planned, 1);
        assert_eq!(r.workloads["work"].failed, 1);
    }

    #[test]
    fn acknowledged_writes_are_the_journals_count_not_the_read_backs() {
        let r = sample();
        assert_eq!(r.workloads["work"].acknowledged_writes, Some(9));
        assert_eq!(r.workloads["work"].checked_writes, Some(5));
    }

    #[test]
    fn a_faults_window_carries_the_load_it_overlapped() {
        let r = sample();
        let during = &r.faults[0].load_during["work"];
        assert_eq!((during.sent, during.failed), (5, 1));
        assert_eq!(during.worst_p99_ms, 12.5);
    }

    #[test]
    fn load_before_a_fault_is_not_counted_in_its_window() {
        let ev = |ts, workload: &str| {
            EventRow::new(
                ts,
                ts,
                Some("s"),
                Event::Load {
                    workload: workload.into(),
                    sent: 10,
                    ok: 10,
                    failed: 0,
                    p50_ms: 1.0,
                    p99_ms: ts as f64,
                    max_ms: 2.0,
                    errors: Vec::new(),
                    histogram: serde_json::Value::Null,
                },
            )
        };
        let data = RunData {
            events: vec![
                ev(1_000, "w"),
                ev(2_000, "w"),
                ev(3_000, "w"),
                ev(9_000, "w"),
            ],
            ..RunData::default()
        };
        // The interval ending at 3 000 began at 2 000, inside [2 500, 5 000];
        // the one ending at 2 000 ended before it; the one ending at 9 000
        // began at 3 000, inside too.
        let during = load_during(&data, 2_500, 5_000);
        assert_eq!(during["w"].sent, 20);
        assert_eq!(during["w"].worst_p99_ms, 9_000.0);
    }
}
