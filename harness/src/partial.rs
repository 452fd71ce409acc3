//! The partial report of a long run (`soak run --report-every`), rewritten
//! in a child process (`soak __report RUN_DIR`). At hour 72 that means
//! reading a journal of hundreds of thousands of sample rows and rendering
//! their charts: memory and CPU that soak's own process must neither keep
//! (its RSS is judged flat) nor spend on the loop that times faults. One at
//! a time, at low priority so the services under test keep the CPU, and it
//! dies with soak even on SIGKILL. The child prints its verdicts so far,
//! which the parent journals and shows at `/metrics`.

use crate::journal::{Event, VerdictSoFar};
use crate::record::{Recorder, Severity};
use std::path::Path;

/// The parent's side: starts a child, journals how the previous one ended.
#[derive(Default)]
pub struct Refresher {
    child: Option<tokio::process::Child>,
}

impl Refresher {
    /// Starts a rewrite, unless the previous one still runs: a run this
    /// long can skip one.
    pub async fn refresh(&mut self, exe: &Path, run_dir: &Path, rec: &Recorder) {
        if let Some(child) = &mut self.child {
            match child.try_wait() {
                Ok(None) => return,
                Ok(Some(status)) => {
                    use tokio::io::AsyncReadExt;
                    let (mut why, mut said) = (String::new(), String::new());
                    if let Some(mut err) = child.stderr.take() {
                        let _ = err.read_to_string(&mut why).await;
                    }
                    if let Some(mut out) = child.stdout.take() {
                        let _ = out.read_to_string(&mut said).await;
                    }
                    if !status.success() {
                        failed(
                            rec,
                            format!("the partial report failed ({status}): {}", why.trim()),
                        );
                    } else if let Ok(assertions) = serde_json::from_str(said.trim()) {
                        so_far(rec, assertions);
                    }
                }
                Err(e) => failed(rec, format!("the partial report: {e}")),
            }
        }
        let parent = std::process::id() as i32;
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("__report")
            .arg(run_dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: prctl, setpriority and getppid are async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                // soak runs on one thread (a current-thread runtime), so
                // the parent-death signal fires only when soak itself ends.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
                if libc::getppid() != parent {
                    return Err(std::io::Error::other(
                        "soak ended before the report started",
                    ));
                }
                libc::setpriority(libc::PRIO_PROCESS, 0, 10);
                Ok(())
            });
        }
        match cmd.spawn() {
            Ok(c) => self.child = Some(c),
            Err(e) => {
                self.child = None;
                failed(rec, format!("cannot start the partial report: {e}"));
            }
        }
    }

    /// Ends a rewrite in progress and reaps it: one finishing after the
    /// final report would replace it.
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }
}

fn so_far(rec: &Recorder, assertions: Vec<VerdictSoFar>) {
    let failing = assertions
        .iter()
        .filter(|a| a.verdict == crate::verdict::Verdict::Fail)
        .count();
    let text = format!(
        "partial report: {} assertion(s), {failing} failing so far",
        assertions.len()
    );
    let sev = if failing > 0 {
        Severity::Warn
    } else {
        Severity::Info
    };
    rec.emit(None, &Event::VerdictsSoFar { assertions }, sev, text);
}

fn failed(rec: &Recorder, why: String) {
    rec.emit(
        None,
        &Event::ReportFailed { error: why.clone() },
        Severity::Warn,
        why,
    );
}

/// The child's side: the entry point of `soak __report RUN_DIR`.
pub fn child_main(run_dir: &Path) -> ! {
    let code = match crate::judge::judge_and_report(run_dir) {
        // The verdicts so far, one JSON line for the parent: it journals
        // them and shows them at /metrics, without reading report.json.
        Ok(report) => {
            let so_far: Vec<VerdictSoFar> = report
                .assertions
                .iter()
                .map(|a| VerdictSoFar {
                    name: a.name.clone(),
                    service: a.service.clone(),
                    verdict: a.verdict,
                })
                .collect();
            println!("{}", serde_json::to_string(&so_far).unwrap_or_default());
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    };
    std::process::exit(code)
}
