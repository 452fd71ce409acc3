//! Soak verdicts with real fixtures, sped up to fit CI: each run is under
//! half a minute, so leaks are scaled up, sampling sped up, and warm-up and
//! minimum span scaled down.

use crate::common::*;
use std::time::Duration;

const EXPECT: &str = r#"
[expect]
warmup = "5s"
min_span = "15s"
rss_slope_max = "1000MB/h"
fds_slope_max = "200/h"
threads_slope_max = "200/h"
restart_budget = { max = 2, window = "1m" }
availability_min = "97%"
latency_p99_max = "1s"
"#;

/// Runs a 26 s `soak run` of the gateway under load with `bugs` on, sampled
/// every 500 ms: the trends get 40 samples over 20 s past the warm-up (the
/// verdicts need 20 over 15 s); returns the exit code and report.json.
fn soak_run(bugs: &str) -> (Option<i32>, serde_json::Value, String) {
    let config = fixture_config();
    let fast = config.replace("sample_every = \"1s\"", "sample_every = \"500ms\"");
    assert_ne!(
        fast, config,
        "the fixture config samples every second: {config}"
    );
    soak_run_of(&fast, "26s", "gateway", "work", EXPECT, bugs)
}

/// Runs a `soak run` of `duration` with `config` of one fixture service
/// under one workload, with `expect` and the service's `bugs` on.
fn soak_run_of(
    config: &str,
    duration: &str,
    service: &str,
    workload: &str,
    expect: &str,
    bugs: &str,
) -> (Option<i32>, serde_json::Value, String) {
    let sb = Sandbox::new(config);
    let scenario = format!(
        "config = \"soak.toml\"\nservices = [\"{service}\"]\nworkloads = [\"{workload}\"]\nduration = \"{duration}\"\n{expect}"
    );
    std::fs::write(sb.path().join("soak-test.toml"), scenario).unwrap();
    let bugs_var = format!("{}_BUGS", service.to_uppercase());
    let child = sb
        .soak(&["run", "soak-test.toml", "--plain", "--reports", "reports"])
        .env(bugs_var, bugs)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (code, out, err) = Running { child: Some(child) }.finish(Duration::from_secs(120));
    let report = std::fs::read_to_string(sb.path().join("reports/latest/report.json"))
        .unwrap_or_else(|e| panic!("no report ({e}):\n{out}\n{err}"));
    (code, serde_json::from_str(&report).unwrap(), out)
}

fn assertion<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["assertions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report:#}"))
}

#[test]
fn a_leaking_gateway_fails_rss_slope_max_with_slope_and_projection() {
    let (code, report, out) = soak_run("leak-bytes-per-request=100K");
    assert_eq!(code, Some(1), "{out}");
    let a = assertion(&report, "rss_slope_max");
    assert_eq!(a["verdict"], "fail", "{a:#}");
    let reason = a["reason"].as_str().unwrap();
    assert!(
        reason.contains("RSS grows") && reason.contains("MB/h"),
        "{reason}"
    );
    assert!(
        reason.contains("reaches"),
        "the projection is in the reason: {reason}"
    );
}

#[test]
fn a_gateway_with_a_sawtooth_and_a_warmup_step_but_no_leak_passes() {
    let (code, report, out) = soak_run("sawtooth=10M:2000,warmup=30M:3000");
    assert_eq!(code, Some(0), "{out}");
    for name in [
        "rss_slope_max",
        "fds_slope_max",
        "threads_slope_max",
        "restart_budget",
        "availability_min",
        "latency_p99_max",
    ] {
        assert_eq!(assertion(&report, name)["verdict"], "pass", "{name}: {out}");
    }
}

/// Every 10th request answered 500 and every request held 1.5 s: the load
/// sees both, measured from the intended send time.
#[test]
fn a_slow_and_failing_gateway_fails_latency_p99_and_availability() {
    let (code, report, out) = soak_run("slow-ms=1500,fail-every=10");
    assert_eq!(code, Some(1), "{out}");
    let a = assertion(&report, "availability_min");
    assert_eq!(a["verdict"], "fail", "{a:#}");
    assert!(
        a["reason"]
            .as_str()
            .unwrap()
            .contains("requests of work succeeded"),
        "{a:#}"
    );
    let l = assertion(&report, "latency_p99_max");
    assert_eq!(l["verdict"], "fail", "{l:#}");
    assert!(l["reason"].as_str().unwrap().contains("p99"), "{l:#}");
    assert_eq!(assertion(&report, "rss_slope_max")["verdict"], "pass");
}

const WAL_EXPECT: &str =
    "[expect]\nwal_max = \"1500KB\"\nintegrity = true\nwrites_survive = \"items\"\n";

/// The WAL grows with the number of writes, not with time: the fixture
/// config's items workload at twice its rate (40/s) for 20 s writes what
/// 20/s does in 40 s.
fn wal_run(bugs: &str) -> (Option<i32>, serde_json::Value, String) {
    let mut config: toml::Table = toml::from_str(&fixture_config()).unwrap();
    let items = config["workloads"]["items"].as_table_mut().unwrap();
    assert_eq!(items["rate"].as_str(), Some("20/s"), "{items:?}");
    items.insert("rate".into(), "40/s".into());
    let config = toml::to_string(&config).unwrap();
    soak_run_of(&config, "20s", "store", "items", WAL_EXPECT, bugs)
}

/// A store that never checkpoints grows its WAL with every write (about
/// 3 MB from what 20/s writes in 40 s).
#[test]
fn a_store_that_never_checkpoints_fails_wal_max() {
    let (code, report, out) = wal_run("no-checkpoint");
    assert_eq!(code, Some(1), "{out}");
    let a = assertion(&report, "wal_max");
    assert_eq!(a["verdict"], "fail", "{a:#}");
    assert!(
        a["reason"].as_str().unwrap().contains("WAL peaked at"),
        "{a:#}"
    );
    assert_eq!(assertion(&report, "writes_survive")["verdict"], "pass");
}

/// The same store checkpointing every 100 pages keeps its WAL under 1 MB.
#[test]
fn a_store_that_checkpoints_passes_wal_max() {
    let (code, report, out) = wal_run("");
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(assertion(&report, "wal_max")["verdict"], "pass", "{out}");
}

#[test]
fn an_fd_leak_fails_fds_slope_max() {
    let (code, report, out) = soak_run("leak-fd-every=1");
    assert_eq!(code, Some(1), "{out}");
    let a = assertion(&report, "fds_slope_max");
    assert_eq!(a["verdict"], "fail", "{a:#}");
    assert!(
        a["reason"].as_str().unwrap().contains("open fds grows"),
        "{a:#}"
    );
    assert_eq!(assertion(&report, "rss_slope_max")["verdict"], "pass");
}

/// A crash every 15 requests of 5/s is a restart every 3 s or so: the third
/// (one past the budget) comes near 10 s into a 24 s run, the 10th (the
/// fixture config's start limit) would not come before its end.
#[test]
fn a_crash_every_n_requests_fails_the_restart_budget() {
    let (code, report, out) = soak_run_of(
        &fixture_config(),
        "24s",
        "gateway",
        "work",
        EXPECT,
        "crash-every=15",
    );
    assert_eq!(code, Some(1), "{out}");
    let a = assertion(&report, "restart_budget");
    assert_eq!(a["verdict"], "fail", "{a:#}");
    assert!(
        a["reason"]
            .as_str()
            .unwrap()
            .contains("unplanned restarts within 1 min"),
        "{a:#}"
    );
}

#[test]
fn a_soak_killed_with_sigkill_leaves_a_journal_a_report_can_be_built_from() {
    let sb = Sandbox::new(&fixture_config());
    let scenario = format!(
        "config = \"soak.toml\"\nservices = [\"gateway\"]\nworkloads = [\"work\"]\nduration = \"1h\"\n{EXPECT}"
    );
    std::fs::write(sb.path().join("soak-test.toml"), scenario).unwrap();
    // A partial report every second: one is likely being built (by a child
    // process of soak) when the SIGKILL lands, and must die with soak too.
    // Its verdicts reach /metrics while the run goes on.
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let child = sb
        .soak(&[
            "run",
            "soak-test.toml",
            "--plain",
            "--reports",
            "reports",
            "--report-every",
            "1s",
            "--metrics",
            &metrics.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let run = Running { child: Some(child) };
    let journal = sb.path().join("reports/latest/journal.sqlite");
    let partial = sb.path().join("reports/latest/report.json");
    let start = std::time::Instant::now();
    let so_far = |d: &soak::journal::RunData| d.events.iter().any(|e| e.kind == "verdicts-so-far");
    while soak::journal::read(&journal).map_or(true, |d| d.samples.len() < 5 || !so_far(&d))
        || !partial.exists()
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no samples, no partial report or no verdicts so far after 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The budget is not spent: a pass, exposed before the run has ended.
    let page = get(metrics, "/metrics");
    assert!(
        page.lines().any(|l| l.starts_with(
            r#"soak_assertion_state{assertion="restart_budget",service="gateway",state="pass"} 1"#
        )),
        "{page}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&partial).unwrap()).unwrap();
    assert_eq!(
        report["run"]["ended_at"],
        serde_json::Value::Null,
        "a partial report"
    );
    let tree = descendants(run.pid());
    run.signal(libc::SIGKILL);
    drop(run);
    assert_eq!(wait_dead(&tree, Duration::from_secs(3)), Vec::<i32>::new());
    let out = sb.soak(&["report", "reports/latest"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "a killed run is inconclusive: {out:?}"
    );
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sb.path().join("reports/latest/report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["interrupted"], true);
    assert_eq!(report["run"]["ended_at"], serde_json::Value::Null);
    assert!(report["assertions"].as_array().unwrap().len() >= 4);
}

/// The body of a GET on loopback, bounded in time.
fn get(addr: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    let _ = c.read_to_string(&mut body);
    body
}
