//! What every integration test needs: a temp dir with a config, the soak and
//! fixture binaries, a journal to read, and process checks by pid.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use crate::support::soak_bin;

/// A fixture binary of this build (see tests/support).
pub fn fixture_bin(name: &str) -> PathBuf {
    crate::support::fixture_bin(name).unwrap_or_else(|e| panic!("{e}"))
}

/// `fixtures/soak.toml` naming this build's fixture binaries, as the text
/// of a sandbox's soak.toml.
pub fn fixture_config() -> String {
    crate::support::fixture_config().unwrap_or_else(|e| panic!("{e}"))
}

pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new(config: &str) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("soak.toml"), config).unwrap();
        Sandbox { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> PathBuf {
        self.path().join("soak.toml")
    }

    pub fn soak(&self, args: &[&str]) -> Command {
        let mut c = Command::new(soak_bin());
        c.args(args).current_dir(self.path()).env("NO_COLOR", "1");
        c
    }

    /// Starts `soak up` in the background.
    pub fn up(&self, extra: &[&str]) -> Running {
        let mut args = vec!["up", "--plain", "--config", "soak.toml"];
        args.extend_from_slice(extra);
        let child = self
            .soak(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Running { child: Some(child) }
    }

    pub fn journal_path(&self) -> PathBuf {
        self.path().join("reports/latest/journal.sqlite")
    }

    pub fn journal(&self) -> soak::journal::RunData {
        soak::journal::read(&self.journal_path()).unwrap()
    }

    /// Polls the journal until `f` holds, or panics after `limit`.
    pub fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        f: impl Fn(&soak::journal::RunData) -> bool,
    ) -> soak::journal::RunData {
        let start = Instant::now();
        loop {
            if self.journal_path().exists()
                && let Ok(d) = soak::journal::read(&self.journal_path())
                && f(&d)
            {
                return d;
            }
            assert!(
                start.elapsed() < limit,
                "timed out after {limit:?} waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A running soak; killed by pid if a test panics before it ends.
pub struct Running {
    pub child: Option<Child>,
}

impl Running {
    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Waits for soak to exit (bounded) and returns code and output.
    pub fn finish(mut self, limit: Duration) -> (Option<i32>, String, String) {
        let mut child = self.child.take().unwrap();
        let start = Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if start.elapsed() > limit {
                unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
                let out = child.wait_with_output().unwrap();
                panic!(
                    "soak did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            // Closing soak's pipes makes every shim kill its tree.
            unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
            let _ = c.wait();
        }
    }
}

pub fn alive(pid: i32) -> bool {
    // A zombie still answers kill(0); look at its state instead.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => soak::supervise::procfs::parse_stat(&s).is_some_and(|p| p.state != 'Z'),
        Err(_) => false,
    }
}

/// Every live descendant of `pid`, by /proc.
pub fn descendants(pid: i32) -> Vec<i32> {
    soak::supervise::procfs::descendants(pid)
        .iter()
        .map(|p| p.pid)
        .collect()
}

/// Waits until none of `pids` is alive; returns those still alive after `limit`.
pub fn wait_dead(pids: &[i32], limit: Duration) -> Vec<i32> {
    let start = Instant::now();
    loop {
        let left: Vec<i32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        if left.is_empty() || start.elapsed() > limit {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Events of `kind`, in order.
pub fn events<'a>(
    d: &'a soak::journal::RunData,
    kind: &'a str,
) -> impl Iterator<Item = &'a soak::journal::EventRow> {
    d.events.iter().filter(move |e| e.kind == kind)
}
