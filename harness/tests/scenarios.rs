//! Every `scenarios/*.toml` is a test: run through the real `soak chaos`
//! against the fixtures, it must pass with every bug off. Every case of
//! `fixtures/bug-matrix.toml` is a test too: with its bug on, soak must exit
//! 1 and the named assertion must fail for the named reason.

mod support;

use libtest_mimic::{Arguments, Failed, Trial};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{Bundled, repo};

#[derive(serde::Deserialize)]
struct Matrix {
    case: Vec<Case>,
}

#[derive(serde::Deserialize, Clone)]
struct Case {
    scenario: String,
    env: BTreeMap<String, String>,
    fails: String,
    reason: String,
}

/// Runs `soak chaos` on the scenario `name` (its copy, running this
/// build's fixtures) with `env`, in a reports dir of its own; returns the
/// exit code, the output, and report.json.
fn chaos(
    name: &str,
    env: &BTreeMap<String, String>,
) -> Result<(i32, String, serde_json::Value), Failed> {
    let bundled = Bundled::new()?;
    let reports = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut child = Command::new(support::soak_bin())
        .arg("chaos")
        .arg(bundled.scenario(name))
        .args(["--plain", "--reports"])
        .arg(reports.path())
        // Only the case's bugs: none inherited from the developer's shell.
        .env_remove("GATEWAY_BUGS")
        .env_remove("STORE_BUGS")
        .envs(env)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    // Scenarios last seconds; anything past this is a hang in soak.
    let start = Instant::now();
    while child.try_wait().map_err(|e| e.to_string())?.is_none() {
        if start.elapsed() > Duration::from_secs(180) {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            let _ = child.wait();
            return Err("soak chaos did not finish within 180 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report = std::fs::read_to_string(reports.path().join("latest/report.json"))
        .map_err(|e| format!("no report.json: {e}\n{text}"))?;
    let report = serde_json::from_str(&report).map_err(|e| e.to_string())?;
    Ok((out.status.code().unwrap_or(-1), text, report))
}

fn bug_off(scenario: String) -> Result<(), Failed> {
    let (code, text, report) = chaos(&scenario, &BTreeMap::new())?;
    if code != 0 {
        return Err(format!("expected exit 0 with every bug off, got {code}\n{text}").into());
    }
    let assertions = report["assertions"].as_array().cloned().unwrap_or_default();
    if assertions.is_empty() || assertions.iter().any(|a| a["verdict"] != "pass") {
        return Err(format!("expected every assertion to pass:\n{text}").into());
    }
    Ok(())
}

fn bug_on(case: Case) -> Result<(), Failed> {
    let (code, text, report) = chaos(&case.scenario, &case.env)?;
    if code != 1 {
        return Err(format!("expected exit 1 with {:?}, got {code}\n{text}", case.env).into());
    }
    let failing = report["assertions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["name"] == case.fails.as_str() && a["verdict"] == "fail")
        .ok_or_else(|| format!("assertion {} did not fail:\n{text}", case.fails))?;
    let reason = failing["reason"].as_str().unwrap_or_default();
    if !reason.contains(&case.reason) {
        return Err(format!(
            "{} failed, but its reason {reason:?} does not say {:?}",
            case.fails, case.reason
        )
        .into());
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let mut trials = Vec::new();
    for path in support::scenario_files().expect("scenarios/") {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        // Long soaks are run by `soak run`; their CI variant is in tests/it.
        if name == "soak" {
            continue;
        }
        trials.push(Trial::test(format!("{name}::bug_off"), move || {
            bug_off(name)
        }));
    }
    let matrix: Matrix = toml::from_str(
        &std::fs::read_to_string(repo().join("fixtures/bug-matrix.toml"))
            .expect("fixtures/bug-matrix.toml"),
    )
    .expect("a valid bug matrix");
    for case in matrix.case {
        let bugs: Vec<String> = case.env.values().map(|b| b.replace(',', "+")).collect();
        let name = format!("{}::bug_on::{}", case.scenario, bugs.join("+"));
        trials.push(Trial::test(name, move || bug_on(case)));
    }
    libtest_mimic::run(&args, trials).exit();
}
