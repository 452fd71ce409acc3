//! Verdicts tested with data: hand-written journals, no processes, no clocks.

use super::*;
use crate::config::Config;
use crate::journal::{Cause, Event, FaultParams, OrphanProcess, RunRow};
use std::path::Path;

const CONFIG: &str = r#"
[services.gateway]
command = ["gw"]
[services.store]
command = ["store"]
sqlite = ["{data_dir}/store.db"]
[workloads.items]
service = "store"
write = { method = "POST", url = "http://127.0.0.1:{port}/items", expect_status = 201 }
read = { url = "http://127.0.0.1:{port}/items/{key}" }
"#;

fn scenario(body: &str) -> Scenario {
    let src =
        format!("config = \"soak.toml\"\nduration = \"60s\"\nworkloads = [\"items\"]\n{body}");
    Scenario::parse_with(Path::new("/s/x.toml"), &src, |p| Config::parse(p, CONFIG)).unwrap()
}

pub(super) fn ev(ts: i64, service: &str, event: Event) -> EventRow {
    EventRow::new(ts, ts, Some(service), event)
}

pub(super) fn fault(ts: i64, service: &str, step: usize, action: &str) -> EventRow {
    fault_with(ts, service, step, action, FaultParams::default())
}

fn fault_with(ts: i64, service: &str, step: usize, action: &str, params: FaultParams) -> EventRow {
    ev(
        ts,
        service,
        Event::FaultInjected {
            step,
            action: action.into(),
            incarnation: Some(1),
            params,
        },
    )
}

pub(super) fn exited(ts: i64, service: &str, cause: Cause) -> EventRow {
    ev(
        ts,
        service,
        Event::Exited {
            pid: 1001,
            incarnation: 1,
            exit_code: None,
            signal: Some("KILL".into()),
            cause,
            orphans: 0,
            killed_after_grace: false,
            up_ms: 5_000,
            log_bytes: 0,
        },
    )
}

fn ready(ts: i64, service: &str) -> EventRow {
    ev(
        ts,
        service,
        Event::Ready {
            incarnation: 2,
            after_ms: 100,
        },
    )
}

fn load(ts: i64, service: &str, workload: &str, sent: u64, failed: u64) -> EventRow {
    ev(
        ts,
        service,
        Event::Load {
            workload: workload.into(),
            sent,
            ok: sent - failed,
            failed,
            p50_ms: 1.0,
            p99_ms: 2.0,
            max_ms: 3.0,
            errors: Vec::new(),
            histogram: serde_json::Value::Null,
        },
    )
}

pub(super) fn inc(
    id: i64,
    service: &str,
    start: i64,
    end: Option<i64>,
    cause: Option<Cause>,
    orphans: i64,
) -> IncarnationRow {
    IncarnationRow {
        id,
        service: service.into(),
        pid: Some(1000 + id as i32),
        started_at: start,
        ready_at: Some(start + 100),
        ended_at: end,
        exit_code: None,
        signal: end.map(|_| "KILL".into()),
        cause,
        orphans: Some(orphans),
    }
}

pub(super) fn data(incarnations: Vec<IncarnationRow>, events: Vec<EventRow>) -> RunData {
    RunData {
        run: Some(RunRow {
            id: "r".into(),
            scenario: Some("x".into()),
            started_at: 0,
            ended_at: Some(60_000),
            seed: None,
            soak_version: "0".into(),
            interrupted: false,
            config_path: None,
            config: None,
            scenario_path: None,
            scenario_toml: None,
        }),
        incarnations,
        events,
        ..RunData::default()
    }
}

const KILL: &str = "[[steps]]\nat = \"5s\"\naction = \"kill\"\ntarget = \"gateway\"\n";

#[test]
fn a_quick_recovery_passes_healthy_within_and_restarts() {
    let sc = scenario(&format!(
        "{KILL}[expect]\nhealthy_within = \"15s\"\nrestarts = {{ max = 1 }}\nno_orphans = true\n"
    ));
    let d = data(
        vec![
            inc(1, "gateway", 0, Some(5_010), Some(Cause::Planned), 0),
            inc(2, "gateway", 5_120, Some(60_000), Some(Cause::Stopped), 0),
            inc(3, "store", 0, Some(60_000), Some(Cause::Stopped), 0),
        ],
        vec![
            fault(5_000, "gateway", 0, "kill"),
            exited(5_010, "gateway", Cause::Planned),
            ready(7_400, "gateway"),
        ],
    );
    let a = judge(&sc, &d);
    assert!(a.iter().all(|a| a.verdict == Verdict::Pass), "{a:#?}");
    assert_eq!(
        a[0].reason,
        "gateway healthy again 2.4 s after the kill (limit 15.0 s)"
    );
    assert_eq!(overall(&a, false), Verdict::Pass);
}

#[test]
fn orphans_holding_the_port_fail_with_their_pids() {
    let sc = scenario(&format!("{KILL}[expect]\nno_orphans = true\n"));
    let d = data(
        vec![inc(1, "gateway", 0, Some(5_010), Some(Cause::Planned), 2)],
        vec![ev(
            5_200,
            "gateway",
            Event::Orphans {
                pid: 1001,
                incarnation: 1,
                orphans: [1002, 1003]
                    .map(|pid| OrphanProcess {
                        pid,
                        command: "gateway --worker".into(),
                        holds_port: true,
                    })
                    .into(),
            },
        )],
    );
    let a = judge(&sc, &d);
    let orphan = a
        .iter()
        .find(|a| a.name == "no_orphans" && a.service.as_deref() == Some("gateway"))
        .unwrap();
    assert_eq!(orphan.verdict, Verdict::Fail);
    assert!(
        orphan.reason.contains("2 still listening on its port"),
        "{}",
        orphan.reason
    );
    assert!(
        orphan
            .reason
            .contains("1002 (gateway --worker) holding the port"),
        "{}",
        orphan.reason
    );
}

#[test]
fn an_undetected_hang_fails_naming_green_health_and_failed_work() {
    let sc = scenario(
        "[[steps]]\nat = \"5s\"\naction = \"hang\"\ntarget = \"gateway\"\nscope = \"children\"\nfor = \"15s\"\n[expect]\ndetected_within = \"10s\"\n",
    );
    let mut events = vec![fault(5_000, "gateway", 0, "hang")];
    for s in 6..=15 {
        events.push(load(s * 1000, "gateway", "items", 5, 5));
    }
    let a = judge(
        &sc,
        &data(vec![inc(1, "gateway", 0, None, None, 0)], events),
    );
    assert_eq!(a[0].verdict, Verdict::Fail);
    assert_eq!(
        a[0].reason,
        "hang of gateway not detected within 10.0 s: health stayed green while 50 of 50 requests to gateway failed"
    );
}

/// A probe that never went red through a hang passes `healthy_within` only
/// if the load did not see the hang either.
#[test]
fn a_hang_the_probe_cannot_see_fails_healthy_within_only_when_work_failed() {
    let sc = scenario(
        "[[steps]]\nat = \"5s\"\naction = \"hang\"\ntarget = \"gateway\"\nscope = \"children\"\nfor = \"5s\"\n[expect]\nhealthy_within = \"15s\"\n",
    );
    let judged = |failed: u64| {
        let mut events = vec![fault(5_000, "gateway", 0, "hang")];
        for s in 6..=10 {
            events.push(load(s * 1000, "gateway", "items", 5, failed));
        }
        judge(
            &sc,
            &data(vec![inc(1, "gateway", 0, None, None, 0)], events),
        )
        .remove(0)
    };
    let blind = judged(5);
    assert_eq!(blind.verdict, Verdict::Fail);
    assert_eq!(
        blind.reason,
        "health of gateway stayed green through the hang while 25 of 25 requests to gateway failed: its probe cannot see this hang"
    );
    let unharmed = judged(0);
    assert_eq!(unharmed.verdict, Verdict::Pass, "{}", unharmed.reason);
}

#[test]
fn a_detected_hang_passes() {
    let sc = scenario(
        "[[steps]]\nat = \"5s\"\naction = \"hang\"\ntarget = \"gateway\"\n[expect]\ndetected_within = \"10s\"\n",
    );
    let d = data(
        vec![],
        vec![
            fault(5_000, "gateway", 0, "hang"),
            ev(
                8_200,
                "gateway",
                Event::Hung {
                    pid: 1001,
                    reason: "3 consecutive probe failures".into(),
                    ready: true,
                },
            ),
        ],
    );
    let a = judge(&sc, &d);
    assert_eq!(
        (a[0].verdict, a[0].observed.as_str()),
        (Verdict::Pass, "detected after 3.2 s")
    );
}

#[test]
fn lost_writes_are_named_and_no_readback_is_unknown() {
    let sc = scenario("[expect]\nwrites_survive = \"items\"\n");
    let d = data(
        vec![],
        vec![ev(
            50_000,
            "store",
            Event::Readback {
                workload: "items".into(),
                checked: 40,
                missing_count: 3,
                missing: ["k17", "k18", "k19"]
                    .map(|k| format!("{k}: status 404"))
                    .into(),
                // As a journal from before the read-back read it whole.
                acknowledged: None,
                unchecked: 0,
                unchecked_reason: String::new(),
            },
        )],
    );
    let a = judge(&sc, &d);
    assert_eq!(a[0].verdict, Verdict::Fail);
    assert_eq!(
        a[0].reason,
        "3 of 40 acknowledged write(s) of items missing after the run: k17, k18, k19"
    );
    let none = judge(&sc, &data(vec![], vec![]));
    assert_eq!(none[0].verdict, Verdict::Unknown);
    assert_eq!(overall(&none, false), Verdict::Unknown);
}

#[test]
fn an_ignored_sigterm_fails_stops_within_and_exit_code() {
    let sc = scenario(
        "[[steps]]\nat = \"5s\"\naction = \"stop\"\ntarget = \"gateway\"\n[expect]\nstops_within = \"5s\"\nexit_code = 0\n",
    );
    let d = data(
        vec![],
        vec![
            fault_with(
                5_000,
                "gateway",
                0,
                "stop",
                FaultParams {
                    signal: Some("TERM".into()),
                    grace_ms: Some(5_000),
                    ..FaultParams::default()
                },
            ),
            ev(
                10_010,
                "gateway",
                Event::StopResult {
                    step: 0,
                    took_ms: Some(5_010),
                    exit_code: None,
                    signal: Some("KILL".into()),
                    killed_after_grace: Some(true),
                    grace_ms: Some(5_000),
                    error: None,
                },
            ),
        ],
    );
    let a = judge(&sc, &d);
    assert_eq!(
        a[0].reason,
        "gateway ignored SIGTERM: still running after the 5.0 s grace, killed"
    );
    assert_eq!(
        a[1].reason,
        "gateway ended with signal KILL (killed after grace), expected exit code 0"
    );
    assert!(a.iter().all(|a| a.verdict == Verdict::Fail));
}

#[test]
fn a_crash_during_a_fault_fails_survives() {
    let sc = scenario(
        "[[steps]]\nat = \"5s\"\naction = \"fd-exhaustion\"\ntarget = \"gateway\"\nfor = \"5s\"\n[expect]\nsurvives = true\n",
    );
    let mut crashed = inc(1, "gateway", 0, Some(5_800), Some(Cause::Unplanned), 0);
    crashed.exit_code = Some(1);
    crashed.signal = None;
    let d = data(
        vec![crashed],
        vec![fault(5_000, "gateway", 0, "fd-exhaustion")],
    );
    let a = judge(&sc, &d);
    assert_eq!(
        a[0].reason,
        "gateway pid 1001 died during the fd-exhaustion: exit code 1 800 ms after the fault (unplanned)"
    );
}

#[test]
fn glob_matches_star_patterns() {
    assert!(glob("*.tmp", "gateway-12.tmp"));
    assert!(!glob("*.tmp", "gateway.db"));
    assert!(glob("a*b*c", "aXXbYc"));
    assert!(glob("exact", "exact"));
}

/// The trend an `rss_slope_max` verdict decided on travels with it, so the
/// report can draw that line and not a refit of its own.
#[test]
fn a_trend_assertion_carries_the_line_it_fitted() {
    const HOUR: i64 = 3_600_000;
    const MB: f64 = 1_048_576.0;
    let sc = scenario("[expect]\nrss_slope_max = \"10MB/h\"\nwarmup = \"10m\"\n");
    let mut d = data(
        vec![
            inc(1, "gateway", 0, Some(2 * HOUR), Some(Cause::Stopped), 0),
            inc(2, "store", 0, Some(2 * HOUR), Some(Cause::Stopped), 0),
        ],
        vec![],
    );
    d.run.as_mut().unwrap().ended_at = Some(2 * HOUR);
    for i in 0..720 {
        let ts = i * 10_000;
        let hours = ts as f64 / HOUR as f64;
        // gateway leaks 50 MB/h with a sawtooth; store stays flat.
        for (inc, mb) in [(1, 100.0 + 50.0 * hours + (i % 30) as f64 * 0.2), (2, 80.0)] {
            d.samples.push(crate::journal::SampleRow {
                ts,
                incarnation: inc,
                rss_bytes: (mb * MB) as i64,
                cpu_seconds: 0.0,
                fds: 10,
                threads: 4,
                processes: 1,
            });
        }
    }
    let a = judge(&sc, &d);
    let leak = a
        .iter()
        .find(|a| a.service.as_deref() == Some("gateway"))
        .unwrap();
    assert_eq!(leak.verdict, Verdict::Fail, "{leak:#?}");
    let line = leak.trend.as_ref().expect("a fitted line");
    assert_eq!(line.incarnation, 1);
    assert_eq!((line.warmup_ms, line.from), (600_000, 600_000));
    assert_eq!(line.to, 719 * 10_000);
    assert!((line.slope_per_hour / MB - 50.0).abs() < 1.0, "{line:?}");
    // At the start of the fit the line sits on the data (100 + 50 * 10 min).
    assert!((line.value_at_from / MB - 108.3).abs() < 3.0, "{line:?}");
    let flat = a
        .iter()
        .find(|a| a.service.as_deref() == Some("store"))
        .unwrap();
    assert_eq!(flat.verdict, Verdict::Pass, "{flat:#?}");
    assert_eq!(flat.trend.as_ref().map(|l| l.incarnation), Some(2));
}

/// 13.6: a stop whose outcome never came back is no evidence of a quick,
/// clean exit.
#[test]
fn a_stop_without_an_outcome_is_unknown_not_a_zero_ms_exit() {
    let sc = scenario(
        "[[steps]]\nat = \"5s\"\naction = \"stop\"\ntarget = \"gateway\"\n[expect]\nstops_within = \"5s\"\nexit_code = 0\n",
    );
    let judged = |took_ms, exit_code, error: Option<&str>| {
        let d = data(
            vec![],
            vec![
                fault(5_000, "gateway", 0, "stop"),
                ev(
                    5_300,
                    "gateway",
                    Event::StopResult {
                        step: 0,
                        took_ms,
                        exit_code,
                        signal: None,
                        killed_after_grace: took_ms.map(|_| false),
                        grace_ms: took_ms.map(|_| 5_000),
                        error: error.map(str::to_string),
                    },
                ),
            ],
        );
        judge(&sc, &d)
    };
    let lost = judged(None, None, Some("not running"));
    assert_eq!(lost.len(), 2, "{lost:#?}");
    for a in &lost {
        assert_eq!(a.verdict, Verdict::Unknown, "{a:#?}");
        assert!(a.reason.contains("not running"), "{}", a.reason);
    }
    let clean = judged(Some(300), Some(0), None);
    assert!(
        clean.iter().all(|a| a.verdict == Verdict::Pass),
        "{clean:#?}"
    );
}

/// 13.9: each fault's window runs to the next fault on the same service
/// (or the run's end), not to the next fault anywhere; and a service that
/// several steps target is judged once per expectation, not once per step.
#[test]
fn faults_on_several_services_are_judged_each_in_its_own_window() {
    let sc = scenario(
        "[[steps]]\nat = \"5s\"\naction = \"hang\"\ntarget = \"gateway\"\nfor = \"20s\"\n\
         [[steps]]\nat = \"10s\"\naction = \"hang\"\ntarget = \"store\"\nfor = \"5s\"\n\
         [[steps]]\nat = \"40s\"\naction = \"hang\"\ntarget = \"gateway\"\nfor = \"5s\"\n\
         [expect]\nsurvives = true\nrestarts = { max = 0 }\n",
    );
    let mut died = inc(1, "gateway", 0, Some(15_000), Some(Cause::Unplanned), 0);
    died.exit_code = Some(1);
    died.signal = None;
    let d = data(
        vec![
            died,
            inc(2, "gateway", 15_200, Some(60_000), Some(Cause::Stopped), 0),
            inc(3, "store", 0, Some(60_000), Some(Cause::Stopped), 0),
        ],
        vec![
            fault(5_000, "gateway", 0, "hang"),
            fault(10_000, "store", 1, "hang"),
            fault(40_000, "gateway", 2, "hang"),
        ],
    );
    let a = judge(&sc, &d);
    let survives: Vec<(&str, Verdict)> = a
        .iter()
        .filter(|a| a.name == "survives")
        .map(|a| (a.service.as_deref().unwrap(), a.verdict))
        .collect();
    // The gateway died at 15 s, inside its own hang (5 s to 40 s), though
    // the store's hang began at 10 s.
    assert_eq!(
        survives,
        [
            ("gateway", Verdict::Fail),
            ("store", Verdict::Pass),
            ("gateway", Verdict::Pass)
        ],
        "{a:#?}"
    );
    let restarts: Vec<&str> = a
        .iter()
        .filter(|a| a.name == "restarts")
        .map(|a| a.service.as_deref().unwrap())
        .collect();
    assert_eq!(restarts, ["gateway", "store"], "{a:#?}");
}

/// 13.8: the memory a service can still grow into is its own RSS plus
/// what the host has available, not the available memory alone.
#[test]
fn the_projection_to_host_memory_counts_the_rss_already_held() {
    const HOUR: i64 = 3_600_000;
    const MB: f64 = 1_048_576.0;
    let sc = scenario("[expect]\nrss_slope_max = \"10MB/h\"\n");
    let mut d = data(
        vec![inc(
            1,
            "gateway",
            0,
            Some(2 * HOUR),
            Some(Cause::Stopped),
            0,
        )],
        vec![],
    );
    d.run.as_mut().unwrap().ended_at = Some(2 * HOUR);
    for i in 0..720 {
        let ts = i * 10_000;
        // 500 MB growing 50 MB/h: 600 MB at the end, 400 MB still available.
        let mb = 500.0 + 50.0 * ts as f64 / HOUR as f64;
        d.samples.push(crate::journal::SampleRow {
            ts,
            incarnation: 1,
            rss_bytes: (mb * MB) as i64,
            cpu_seconds: 0.0,
            fds: 10,
            threads: 4,
            processes: 1,
        });
    }
    d.host_samples.push(crate::journal::HostSampleRow {
        ts: 2 * HOUR - 10_000,
        mem_available_bytes: (400.0 * MB) as i64,
        disk_free_bytes: 0,
        soak_rss_bytes: 0,
        soak_cpu_seconds: 0.0,
    });
    let a = judge(&sc, &d);
    let leak = a
        .iter()
        .find(|a| a.service.as_deref() == Some("gateway"))
        .unwrap();
    let projected = leak
        .trend
        .as_ref()
        .and_then(|l| l.projected_limit_ms)
        .expect("a projection");
    // 400 MB more at 50 MB/h: about 8 h, not "already there".
    assert!(
        (7 * HOUR..9 * HOUR).contains(&projected),
        "{projected} ms: {leak:#?}"
    );
}

/// A row this version cannot read makes the run unknown, naming why,
/// instead of letting a verdict pass without that evidence.
#[test]
fn an_unreadable_event_makes_the_run_unknown() {
    let sc = scenario(&format!("{KILL}[expect]\nhealthy_within = \"15s\"\n"));
    let events = |exited: EventRow| {
        vec![
            fault(5_000, "gateway", 0, "kill"),
            exited,
            ready(7_400, "gateway"),
        ]
    };
    let readable = judge(
        &sc,
        &data(vec![], events(exited(5_010, "gateway", Cause::Planned))),
    );
    assert_eq!(overall(&readable, false), Verdict::Pass, "{readable:#?}");
    let renamed = EventRow::from_row(
        5_010,
        5_010,
        Some("gateway"),
        "exited".into(),
        serde_json::json!({"pid": 1001, "why": "planned"}),
    );
    let a = judge(&sc, &data(vec![], events(renamed)));
    assert_eq!(overall(&a, false), Verdict::Unknown, "{a:#?}");
    let last = a.last().unwrap();
    assert_eq!(last.name, "journal_readable");
    assert!(last.reason.starts_with("1 event row(s)"), "{}", last.reason);
    assert!(last.reason.contains("exited"), "{}", last.reason);
}

/// A read-back as journaled since it reads the whole journal.
fn readback(
    checked: u64,
    missing: &[&str],
    acknowledged: u64,
    unchecked: u64,
    why: &str,
) -> EventRow {
    ev(
        50_000,
        "store",
        Event::Readback {
            workload: "items".into(),
            checked,
            missing_count: missing.len() as u64,
            missing: missing.iter().map(|k| format!("{k}: status 404")).collect(),
            acknowledged: Some(acknowledged),
            unchecked,
            unchecked_reason: why.into(),
        },
    )
}

#[test]
fn writes_not_read_back_in_time_are_unknown_never_missing() {
    let sc = scenario("[expect]\nwrites_survive = \"items\"\n");
    let why = "the read-back ran out of its 5m budget";
    let a = judge(
        &sc,
        &data(vec![], vec![readback(90_000, &[], 135_001, 45_001, why)]),
    );
    assert_eq!(a[0].verdict, Verdict::Unknown);
    assert_eq!(
        a[0].reason,
        format!(
            "45001 of 135001 acknowledged write(s) of items were not checked ({why}); the 90000 checked were all readable"
        )
    );
    let all = judge(
        &sc,
        &data(vec![], vec![readback(135_001, &[], 135_001, 0, "")]),
    );
    assert_eq!(all[0].verdict, Verdict::Pass);
    assert_eq!(all[0].observed, "135001 of 135001 readable");
}

#[test]
fn missing_writes_fail_even_when_others_were_not_checked() {
    let sc = scenario("[expect]\nwrites_survive = \"items\"\n");
    let why = "reads got no answer (first: timed out)";
    let a = judge(
        &sc,
        &data(vec![], vec![readback(100, &["k1", "k2"], 135, 35, why)]),
    );
    assert_eq!(a[0].verdict, Verdict::Fail);
    assert_eq!(
        a[0].reason,
        format!(
            "2 of 135 acknowledged write(s) of items missing after the run: k1, k2; 35 not checked: {why}"
        )
    );
}

const DUPLICATE: &str = "[[steps]]\nat = \"5s\"\naction = \"duplicate\"\ntarget = \"store\"\nfor = \"5s\"\n\
                         [expect]\nduplicate_refused_within = \"5s\"\n";

/// A duplicate that ended, with the fields chaos journals since `refused`.
fn duplicate_ended(
    exit_code: Option<i32>,
    signal: Option<&str>,
    refused: Option<bool>,
) -> EventRow {
    ev(
        6_000,
        "store",
        Event::DuplicateEnded {
            step: 0,
            pid: 4242,
            port: 9999,
            after_ms: 800,
            exit_code,
            signal: signal.map(str::to_string),
            signal_number: None,
            refused,
            log_tail: [
                "2026-12-06T10:00:00.100Z out starting store",
                "2026-12-06T10:00:00.200Z err error: database is locked by another instance",
                "2026-12-06T10:00:00.300Z soak exited with code 3",
            ]
            .map(str::to_string)
            .into(),
        },
    )
}

fn judge_duplicate(ended: EventRow) -> Assertion {
    let sc = scenario(DUPLICATE);
    let d = data(vec![], vec![fault(5_000, "store", 0, "duplicate"), ended]);
    judge(&sc, &d).remove(0)
}

#[test]
fn a_refused_duplicate_passes_quoting_why_it_refused() {
    let a = judge_duplicate(duplicate_ended(Some(3), None, Some(true)));
    assert_eq!(a.verdict, Verdict::Pass);
    assert_eq!(
        a.reason,
        "a second store on the same data dir refused to run after 800 ms (exit code 3): \
         \"error: database is locked by another instance\""
    );
}

#[test]
fn a_crashed_duplicate_fails_saying_it_crashed() {
    let a = judge_duplicate(duplicate_ended(None, Some("ABRT"), Some(false)));
    assert_eq!(a.verdict, Verdict::Fail);
    assert_eq!(
        a.reason,
        "the duplicate of store (pid 4242) crashed (killed by signal ABRT) after 800 ms instead of \
         refusing to run: \"error: database is locked by another instance\""
    );
    // An old journal without `refused`: a signal is no refusal either way.
    let old = judge_duplicate(duplicate_ended(None, Some("SEGV"), None));
    assert_eq!(old.verdict, Verdict::Fail);
    assert!(
        old.reason.contains("crashed (killed by signal SEGV)"),
        "{}",
        old.reason
    );
}

#[test]
fn an_old_journal_counts_a_non_zero_exit_as_refused_and_exit_zero_as_not() {
    let refused = judge_duplicate(duplicate_ended(Some(1), None, None));
    assert_eq!(refused.verdict, Verdict::Pass);
    let clean = judge_duplicate(duplicate_ended(Some(0), None, None));
    assert_eq!(clean.verdict, Verdict::Fail);
    assert!(
        clean.reason.contains("a refusal exits non-zero"),
        "{}",
        clean.reason
    );
}

#[test]
fn a_service_that_never_started_makes_its_running_assertions_unknown() {
    let sc = scenario("[expect]\nintegrity = true\nno_orphans = true\nrss_max = \"100MB\"\n");
    let missing = ev(
        50_000,
        "store",
        Event::Integrity {
            db: "/run/data/store/store.db".into(),
            result: "missing: /run/data/store/store.db".into(),
        },
    );
    // The gateway ran; the store never got an incarnation.
    let d = data(
        vec![inc(1, "gateway", 0, None, None, 0)],
        vec![missing.clone()],
    );
    let a = judge(&sc, &d);
    let integrity = a.iter().find(|a| a.name == "integrity").unwrap();
    assert_eq!(integrity.verdict, Verdict::Unknown);
    assert_eq!(
        integrity.reason,
        "store never started, so integrity had nothing to judge"
    );
    for x in a.iter().filter(|a| a.service.as_deref() == Some("store")) {
        assert_eq!(x.verdict, Verdict::Unknown, "{x:?}");
    }
    let gateway_orphans = a
        .iter()
        .find(|a| a.name == "no_orphans" && a.service.as_deref() == Some("gateway"))
        .unwrap();
    assert_eq!(gateway_orphans.verdict, Verdict::Pass);
    // Started, never ready, no database: unknown too. A ready store whose
    // database is missing still fails.
    let mut never_ready = inc(2, "store", 0, Some(3_000), Some(Cause::GaveUp), 0);
    never_ready.ready_at = None;
    let d = data(vec![never_ready.clone()], vec![missing.clone()]);
    let i = judge(&sc, &d)
        .into_iter()
        .find(|a| a.name == "integrity")
        .unwrap();
    assert_eq!(i.verdict, Verdict::Unknown);
    assert!(
        i.reason.starts_with("store never became ready"),
        "{}",
        i.reason
    );
    never_ready.ready_at = Some(500);
    let d = data(vec![never_ready], vec![missing]);
    let i = judge(&sc, &d)
        .into_iter()
        .find(|a| a.name == "integrity")
        .unwrap();
    assert_eq!(i.verdict, Verdict::Fail);
}

#[test]
fn log_rate_counts_the_services_own_bytes_not_soaks_line_prefixes() {
    let sc = scenario("[expect]\nlog_rate_max = \"1MB/min\"\n");
    // 40 000 lines of 20 bytes in the minute: 800 000 bytes of its own,
    // 1 960 000 in the file with soak's 29-byte prefix on each line.
    let mut exit = exited(60_000, "gateway", Cause::Stopped);
    if let Event::Exited { log_bytes, .. } = &mut exit.event {
        *log_bytes = 800_000;
    }
    let mut d = data(
        vec![inc(1, "gateway", 0, Some(60_000), Some(Cause::Stopped), 0)],
        vec![exit],
    );
    d.service_samples = vec![crate::journal::ServiceSampleRow {
        ts: 59_000,
        service: "gateway".into(),
        db_bytes: 0,
        wal_bytes: 0,
        log_bytes: 1_960_000,
    }];
    let gateway = |d: &RunData| {
        judge(&sc, d)
            .into_iter()
            .find(|a| a.service.as_deref() == Some("gateway"))
            .unwrap()
    };
    let a = gateway(&d);
    assert_eq!(a.verdict, Verdict::Pass, "{}", a.reason);
    assert!(a.observed.starts_with("781.2 KB in "), "{}", a.observed);
    // Killed before any exit was journaled: the file's growth is all there is.
    d.events.clear();
    let a = gateway(&d);
    assert_eq!(a.verdict, Verdict::Fail, "{}", a.reason);
}

#[test]
fn a_five_minute_log_flood_in_a_long_run_fails_log_rate_max() {
    let sc = scenario("[expect]\nlog_rate_max = \"1MB/min\"\n");
    // 6 hours sampled every 5 s: 10 KB/min, except 5 minutes at 100 KB/s
    // from the third hour: 30 MB in all, 93 KB/min on average over the
    // run, well under the limit; the window must still find the flood.
    let hour = 3_600_000;
    let run = |flood_per_s: u64| {
        let mut total = 0u64;
        let mut rows = Vec::new();
        for i in 0..(6 * hour / 5_000) {
            let ts = i * 5_000;
            let flooding = ts >= 2 * hour && ts < 2 * hour + 300_000;
            total += if flooding {
                flood_per_s * 5
            } else {
                10_000 / 12
            };
            rows.push(crate::journal::ServiceSampleRow {
                ts,
                service: "gateway".into(),
                db_bytes: 0,
                wal_bytes: 0,
                log_bytes: total as i64,
            });
        }
        let mut d = data(
            vec![inc(
                1,
                "gateway",
                0,
                Some(6 * hour),
                Some(Cause::Stopped),
                0,
            )],
            vec![],
        );
        d.service_samples = rows;
        if let Some(r) = &mut d.run {
            r.ended_at = Some(6 * hour);
        }
        judge(&sc, &d)
            .into_iter()
            .find(|a| a.service.as_deref() == Some("gateway"))
            .unwrap()
    };
    let a = run(100_000);
    assert_eq!(a.verdict, Verdict::Fail, "{}", a.reason);
    assert!(
        a.reason
            .starts_with("gateway flooded its log: 28.6 MB in 5 min"),
        "{}",
        a.reason
    );
    // The window starts at the sample before the flood's first bytes.
    assert!(a.reason.contains("from 01:59:55"), "{}", a.reason);
    assert!(a.reason.contains("in all"), "{}", a.reason);
    // 2 KB/s for the same 5 minutes is a burst well under the limit.
    let a = run(2_000);
    assert_eq!(a.verdict, Verdict::Pass, "{}", a.reason);
}

/// `rss_growth_max` over a soak that restarts its service every hour: the
/// first and last tenths of a 55-minute incarnation, scaled to a day,
/// turned a flat sawtooth's phase into 300 %. A growth above the limit now
/// fails only when the trend detector confirms it.
#[test]
fn hourly_incarnations_of_a_flat_sawtooth_do_not_fail_rss_growth_max() {
    const HOUR: i64 = 3_600_000;
    const MB: f64 = 1_048_576.0;
    let sc = scenario("[expect]\nrss_growth_max = \"50%/24h\"\n");
    let soak = |rss: &dyn Fn(i64) -> f64| {
        let mut incs = Vec::new();
        let mut d = data(vec![], vec![]);
        for h in 0..12 {
            let id = h + 1;
            incs.push(inc(
                id,
                "gateway",
                h * HOUR,
                Some((h + 1) * HOUR),
                Some(Cause::Planned),
                0,
            ));
            for i in 0..720 {
                let t = i * 5_000;
                d.samples.push(crate::journal::SampleRow {
                    ts: h * HOUR + t,
                    incarnation: id,
                    rss_bytes: (rss(t) * MB) as i64,
                    cpu_seconds: 0.0,
                    fds: 10,
                    threads: 4,
                    processes: 1,
                });
            }
        }
        d.incarnations = incs;
        d.run.as_mut().unwrap().ended_at = Some(12 * HOUR);
        judge(&sc, &d)
            .into_iter()
            .find(|a| a.name == "rss_growth_max")
            .unwrap()
    };
    // 180 to 220 MB and back every 13 minutes, from a start of 200 MB.
    let sawtooth = |t: i64| {
        let phase = (t % (13 * 60_000)) as f64 / (13.0 * 60_000.0);
        180.0 + 40.0 * phase
    };
    let flat = soak(&sawtooth);
    assert_ne!(flat.verdict, Verdict::Fail, "{}", flat.reason);
    eprintln!("flat sawtooth: {:?}: {}", flat.verdict, flat.reason);
    // A leak of 150 % a day (12.5 MB an hour on 200) under a small, fast
    // sawtooth: a trend in every incarnation.
    let leaking =
        soak(&|t| 200.0 + 12.5 * t as f64 / HOUR as f64 + ((t / 5_000) % 24) as f64 * 0.2);
    assert_eq!(leaking.verdict, Verdict::Fail, "{}", leaking.reason);
    assert!(
        leaking.reason.contains("a significant trend"),
        "{}",
        leaking.reason
    );
}
