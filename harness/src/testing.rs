//! Scenarios as tests, in any Rust project: every `scenarios/*.toml` becomes
//! one test that runs `soak chaos` on it and fails with the assertions that
//! failed and their reasons, so `cargo nextest run` (and its JUnit file)
//! carries soak's verdicts.
//!
//! In the project's `Cargo.toml`:
//!
//! ```toml
//! [dev-dependencies]
//! soak = "0.1"
//!
//! [[test]]
//! name = "soak"
//! harness = false
//! ```
//!
//! and `tests/soak.rs`:
//!
//! ```text
//! fn main() {
//!     soak::testing::Scenarios::new("scenarios").run()
//! }
//! ```
//!
//! The tests run the `soak` binary named by `SOAK_BIN`, else the one on
//! `PATH` (`cargo install --locked soak`). A scenario with a `[schedule]` is
//! a soak of hours: it is listed but ignored unless asked for
//! (`--run-ignored all`). An inconclusive run (exit 3) fails its test too,
//! with the reason, because a verdict nobody could reach is not a pass.

use crate::config::scenario::Scenario;
use libtest_mimic::{Arguments, Failed, Trial};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Time a run may take beyond its scenario's duration (start, steadiness,
/// read-back, report) before the test calls it hung.
const SLACK: Duration = Duration::from_secs(180);

/// A run that must fail: with `env` set, assertion `fails` must fail and its
/// reason contain `reason`. This is how a project proves its detectors fire
/// (a bug switched on through the environment).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ExpectedFailure {
    pub scenario: String,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub fails: String,
    pub reason: String,
}

/// The tests of one scenarios folder.
#[derive(Debug, Clone)]
pub struct Scenarios {
    dir: PathBuf,
    soak: Option<PathBuf>,
    env: BTreeMap<String, String>,
    env_remove: Vec<String>,
    failures: Vec<ExpectedFailure>,
}

/// What one `soak chaos` run gave.
struct RunResult {
    code: i32,
    output: String,
    report: Option<serde_json::Value>,
}

impl Scenarios {
    /// `dir` relative to the current directory, which cargo and nextest set
    /// to the package's root for its tests.
    pub fn new(dir: impl Into<PathBuf>) -> Scenarios {
        Scenarios {
            dir: dir.into(),
            soak: None,
            env: BTreeMap::new(),
            env_remove: Vec::new(),
            failures: Vec::new(),
        }
    }

    /// The `soak` binary to run, instead of `SOAK_BIN` or `PATH`.
    pub fn soak_binary(mut self, path: impl Into<PathBuf>) -> Scenarios {
        self.soak = Some(path.into());
        self
    }

    /// An environment variable for every run (services inherit soak's).
    pub fn env(mut self, key: &str, value: &str) -> Scenarios {
        self.env.insert(key.into(), value.into());
        self
    }

    /// A variable removed from every run's environment, so a switch set in
    /// the developer's shell cannot leak into a test.
    pub fn env_remove(mut self, key: &str) -> Scenarios {
        self.env_remove.push(key.into());
        self
    }

    /// Adds a test `SCENARIO::fails::...` that must fail as described.
    pub fn expect_failure(mut self, f: ExpectedFailure) -> Scenarios {
        self.failures.push(f);
        self
    }

    /// One trial per scenario file (`NAME`), then one per expected failure
    /// (`NAME::fails::ASSERTION::VAR=VALUE...`).
    pub fn trials(self) -> Vec<Trial> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.filter_map(|e| Some(e.ok()?.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        let mut trials = Vec::new();
        if files.is_empty() {
            let dir = self.dir.clone();
            trials.push(Trial::test("scenarios", move || {
                Err(format!("no scenarios/*.toml in {}", dir.display()).into())
            }));
        }
        for path in files {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let is_soak = Scenario::load(&path).is_ok_and(|s| s.schedule.is_some());
            let me = self.clone();
            let trial = Trial::test(name, move || me.must_pass(&path));
            trials.push(trial.with_ignored_flag(is_soak));
        }
        for f in &self.failures {
            let mut vars: Vec<String> = f.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
            vars.sort();
            let name = format!("{}::fails::{}::{}", f.scenario, f.fails, vars.join("+"));
            let (me, f) = (self.clone(), f.clone());
            trials.push(Trial::test(name, move || me.must_fail(&f)));
        }
        trials
    }

    /// Runs the tests as the test binary's `main` and exits.
    pub fn run(self) -> ! {
        libtest_mimic::run(&Arguments::from_args(), self.trials()).exit()
    }

    fn soak(&self) -> Result<PathBuf, Failed> {
        if let Some(p) = &self.soak {
            return Ok(p.clone());
        }
        if let Some(p) = std::env::var_os("SOAK_BIN") {
            return Ok(PathBuf::from(p));
        }
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|d| d.join("soak"))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                "no `soak` binary: install it (`cargo install --locked --path harness` in soak's \
                 repository) or set SOAK_BIN"
                    .into()
            })
    }

    fn chaos(&self, scenario: &Path, env: &BTreeMap<String, String>) -> Result<RunResult, Failed> {
        let limit = Scenario::load(scenario)
            .map(|s| s.duration)
            .unwrap_or_default()
            + SLACK;
        let reports = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(self.soak()?);
        cmd.arg("chaos")
            .arg(scenario)
            .arg("--plain")
            .arg("--reports")
            .arg(reports.path());
        for k in &self.env_remove {
            cmd.env_remove(k);
        }
        let mut child = cmd
            .envs(&self.env)
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start soak: {e}"))?;
        let out = std::thread::scope(|s| {
            // Read both pipes while waiting, so a chatty run cannot block.
            let stdout = child.stdout.take();
            let stderr = child.stderr.take();
            fn read(p: Option<impl std::io::Read>) -> String {
                let mut text = String::new();
                if let Some(mut p) = p {
                    let _ = p.read_to_string(&mut text);
                }
                text
            }
            let o = s.spawn(move || read(stdout));
            let e = s.spawn(move || read(stderr));
            let code = wait_bounded(&mut child, limit);
            (
                code,
                o.join().unwrap_or_default() + &e.join().unwrap_or_default(),
            )
        });
        let (code, output) = out;
        let code = code?;
        let report = std::fs::read_to_string(reports.path().join("latest/report.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        Ok(RunResult {
            code,
            output,
            report,
        })
    }

    fn must_pass(&self, scenario: &Path) -> Result<(), Failed> {
        let r = self.chaos(scenario, &BTreeMap::new())?;
        match r.code {
            0 => Ok(()),
            1 => Err(format!("soak found failures:\n{}", r.explain("fail")).into()),
            2 => Err(format!("bad scenario or config:\n{}", r.output).into()),
            3 => Err(format!(
                "inconclusive: soak could not reach a verdict:\n{}",
                r.explain("unknown")
            )
            .into()),
            c => Err(format!("soak exited {c}:\n{}", r.output).into()),
        }
    }

    fn must_fail(&self, f: &ExpectedFailure) -> Result<(), Failed> {
        let scenario = self.dir.join(format!("{}.toml", f.scenario));
        let r = self.chaos(&scenario, &f.env)?;
        if r.code != 1 {
            return Err(format!(
                "expected exit 1 (a failed assertion) with {:?}, got {}\n{}",
                f.env, r.code, r.output
            )
            .into());
        }
        let failed = r
            .assertions()
            .into_iter()
            .find(|a| a["name"] == f.fails.as_str() && a["verdict"] == "fail")
            .ok_or_else(|| format!("`{}` did not fail:\n{}", f.fails, r.explain("fail")))?;
        let reason = failed["reason"].as_str().unwrap_or_default();
        if !reason.contains(&f.reason) {
            return Err(format!(
                "`{}` failed, but its reason {reason:?} does not say {:?}",
                f.fails, f.reason
            )
            .into());
        }
        Ok(())
    }
}

impl RunResult {
    fn assertions(&self) -> Vec<serde_json::Value> {
        self.report
            .as_ref()
            .and_then(|r| r["assertions"].as_array().cloned())
            .unwrap_or_default()
    }

    /// The assertions with `verdict`, one a line with service and reason;
    /// the run's own output when there is no report to read them from.
    fn explain(&self, verdict: &str) -> String {
        let lines: Vec<String> = self
            .assertions()
            .iter()
            .filter(|a| a["verdict"] == verdict)
            .map(|a| {
                let service = a["service"]
                    .as_str()
                    .map(|s| format!(" [{s}]"))
                    .unwrap_or_default();
                format!(
                    "  {}{service}: {}",
                    a["name"].as_str().unwrap_or("?"),
                    a["reason"].as_str().unwrap_or("")
                )
            })
            .collect();
        if lines.is_empty() {
            self.output.clone()
        } else {
            lines.join("\n")
        }
    }
}

/// Waits for `child` at most `limit`; past it, interrupts soak (which rolls
/// back its faults and stops its services) and then kills it.
fn wait_bounded(child: &mut std::process::Child, limit: Duration) -> Result<i32, Failed> {
    let start = Instant::now();
    let pid = child.id() as i32;
    let mut interrupted = None;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            if interrupted.is_some() {
                return Err(
                    format!("soak did not finish within {}", crate::clock::human(limit)).into(),
                );
            }
            return Ok(status.code().unwrap_or(-1));
        }
        match interrupted {
            None if start.elapsed() > limit => {
                // SAFETY: signalling our own child by its pid, which is not
                // reaped yet, so it cannot have been reused.
                unsafe { libc::kill(pid, libc::SIGINT) };
                interrupted = Some(Instant::now());
            }
            Some(at) if at.elapsed() > Duration::from_secs(30) => {
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
