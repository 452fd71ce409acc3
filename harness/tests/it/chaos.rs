//! Chaos runs interrupted mid-fault, bad scenario files, and the report
//! files of a real run.

use crate::common::*;
use std::time::Duration;

/// A scenario file in a temp dir that runs the bundled fixtures.
fn scenario(body: &str) -> Sandbox {
    let sb = Sandbox::new(&fixture_config());
    let text = format!("config = \"soak.toml\"\n{body}");
    std::fs::write(sb.path().join("scenario.toml"), text).unwrap();
    sb
}

fn start_chaos(sb: &Sandbox) -> Running {
    let child = sb
        .soak(&["chaos", "scenario.toml", "--plain", "--reports", "reports"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    Running { child: Some(child) }
}

/// Interrupts a run while its only fault is held, and returns what the
/// journal and report say afterwards.
fn interrupt_mid_fault(
    body: &str,
) -> (Sandbox, soak::journal::RunData, serde_json::Value, Vec<i32>) {
    let sb = scenario(body);
    let run = start_chaos(&sb);
    // Injected, and the run observed past it: a sample taken while the fault
    // is held.
    let d = sb.wait_for("a sample during the fault", Duration::from_secs(30), |d| {
        events(d, "fault-injected")
            .next()
            .is_some_and(|f| d.samples.iter().any(|s| s.ts > f.ts))
    });
    let tree = descendants(run.pid());
    run.signal(libc::SIGINT);
    let (code, out, err) = run.finish(Duration::from_secs(30));
    assert_eq!(
        code,
        Some(3),
        "an interrupted run is inconclusive\n{out}\n{err}"
    );
    assert!(out.contains("INTERRUPTED"), "{out}");
    assert_eq!(
        wait_dead(&tree, Duration::from_secs(2)),
        Vec::<i32>::new(),
        "processes outlived the run"
    );
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sb.path().join("reports/latest/report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["interrupted"], true);
    assert_eq!(report["verdict"], "unknown");
    let rolled = events(&d, "fault-injected").next().unwrap().detail["step"].clone();
    let d = sb.journal();
    assert!(
        events(&d, "fault-rolled-back").any(|e| e.detail["step"] == rolled),
        "no rollback journaled"
    );
    (sb, d, report, tree)
}

#[test]
fn ctrl_c_during_a_hang_continues_the_service() {
    let (_, d, _, _) = interrupt_mid_fault(
        "services = [\"gateway\"]\nduration = \"60s\"\n[[steps]]\nat = \"1s\"\naction = \"hang\"\ntarget = \"gateway\"\nscope = \"children\"\nfor = \"50s\"\n",
    );
    let rb = events(&d, "fault-rolled-back").next().unwrap();
    assert_eq!(
        rb.detail["continued"].as_array().unwrap().len(),
        2,
        "both workers continued: {rb:?}"
    );
}

#[test]
fn ctrl_c_during_fd_exhaustion_restores_the_limit() {
    let (_, d, _, _) = interrupt_mid_fault(
        "services = [\"gateway\"]\nduration = \"60s\"\n[[steps]]\nat = \"1s\"\naction = \"fd-exhaustion\"\ntarget = \"gateway\"\nheadroom = 5\nfor = \"50s\"\n",
    );
    let injected = events(&d, "fault-injected").next().unwrap();
    let rb = events(&d, "fault-rolled-back").next().unwrap();
    assert_eq!(rb.detail["restored_soft"], injected.detail["soft_before"]);
    assert_eq!(
        rb.detail["process_alive"], true,
        "restored on the live process"
    );
}

#[test]
fn ctrl_c_during_a_lock_releases_it() {
    let (sb, d, _, _) = interrupt_mid_fault(
        "services = [\"store\"]\nduration = \"60s\"\n[[steps]]\nat = \"1s\"\naction = \"sqlite-lock\"\ntarget = \"store\"\nfor = \"50s\"\n",
    );
    let db = events(&d, "fault-injected").next().unwrap().detail["db"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(db.starts_with(sb.path().to_str().unwrap()));
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.busy_timeout(Duration::from_millis(100)).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
        .expect("the lock is released");
}

#[test]
fn ctrl_c_during_a_duplicate_ends_it() {
    let (_, d, _, _) = interrupt_mid_fault(
        "services = [\"store\"]\nduration = \"60s\"\n[[steps]]\nat = \"1s\"\naction = \"duplicate\"\ntarget = \"store\"\nfor = \"50s\"\n",
    );
    let pid = events(&d, "fault-injected").next().unwrap().detail["pid"]
        .as_i64()
        .unwrap() as i32;
    assert!(!alive(pid), "the duplicate {pid} is gone");
}

fn scenario_error(body: &str) -> String {
    let sb = Sandbox::new(
        "[services.gateway]\ncommand = [\"gw\"]\n[workloads.work]\nservice = \"gateway\"\nread = { url = \"http://127.0.0.1:{port}/\" }\n",
    );
    std::fs::write(
        sb.path().join("bad.toml"),
        format!("config = \"soak.toml\"\nduration = \"10s\"\n{body}"),
    )
    .unwrap();
    let out = sb.soak(&["validate", "bad.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let chaos = sb.soak(&["chaos", "bad.toml"]).output().unwrap();
    assert_eq!(
        chaos.status.code(),
        Some(2),
        "soak chaos exits 2 too: {chaos:?}"
    );
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn an_unknown_action_is_located_and_corrected() {
    insta::assert_snapshot!(scenario_error(
        "[[steps]]\nat = \"1s\"\naction = \"kil\"\ntarget = \"gateway\"\n"
    ));
}

#[test]
fn a_step_after_the_end_is_located() {
    insta::assert_snapshot!(scenario_error(
        "[[steps]]\nat = \"20s\"\naction = \"kill\"\ntarget = \"gateway\"\n"
    ));
}

#[test]
fn a_step_on_an_unknown_service_is_located() {
    insta::assert_snapshot!(scenario_error(
        "[[steps]]\nat = \"1s\"\naction = \"kill\"\ntarget = \"gatewy\"\n"
    ));
}

#[test]
fn an_expectation_on_a_workload_not_run_is_located() {
    insta::assert_snapshot!(scenario_error("[expect]\nwrites_survive = \"work\"\n"));
}

#[test]
fn a_real_run_writes_a_report_and_a_junit_file_that_parses() {
    let sb = scenario(
        "services = [\"gateway\"]\nworkloads = [\"work\"]\nduration = \"6s\"\n[[steps]]\nat = \"1s\"\naction = \"kill\"\ntarget = \"gateway\"\n[expect]\nhealthy_within = \"15s\"\nrestarts = { max = 1 }\nno_orphans = true\n",
    );
    let (code, out, err) = start_chaos(&sb).finish(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.contains("report: "),
        "the report's path is printed: {out}"
    );
    let dir = sb.path().join("reports/latest");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["schema"], "soak-report/1");
    assert_eq!(report["verdict"], "pass");
    assert_eq!(report["services"]["gateway"]["restarts"]["planned"], 1);
    assert_eq!(report["services"]["gateway"]["restarts"]["unplanned"], 0);
    let names: Vec<&str> = report["assertions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["healthy_within", "restarts", "no_orphans"]);
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&junit).expect("junit.xml is well-formed XML");
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 3, "one testcase per assertion");
    assert!(doc.descendants().all(|n| !n.has_tag_name("failure")));
    // A report can be rebuilt from the journal alone.
    std::fs::remove_file(dir.join("report.json")).unwrap();
    let rebuilt = soak::judge::judge_and_report(&dir).unwrap();
    assert_eq!(rebuilt.assertions.len(), 3);
    assert!(dir.join("report.json").exists());
}
