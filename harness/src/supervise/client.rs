//! soak's side of a shim: spawn it, hand it the spec, send commands, read
//! reports. Used by the supervisor for incarnations and by chaos for a
//! duplicate instance, so both get the same hygiene (own group, subreaper,
//! dies with soak).

use super::shim::{Daemon, ShimCommand, ShimReport, ShimSpec, StartLine};
use std::path::Path;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

pub struct ShimProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    reports: Lines<BufReader<ChildStdout>>,
}

/// A started service: its main pid and when it started (ms since epoch).
pub struct Started {
    pub pid: i32,
    pub ts: i64,
    /// The container's id, for an image service.
    pub container: Option<String>,
    /// The image's STOPSIGNAL, if it has one.
    pub image_stop_signal: Option<i32>,
}

/// A shim started ahead of need: exec'd and blocked reading its spec. A
/// restart from a standby costs one fork+exec (the service's) instead of
/// two, which is most of crash-to-respawn time. Dropping or closing it
/// closes its stdin, and a shim that gets no spec exits quietly.
pub struct Standby(ShimProcess);

/// Why [`Standby::start`] did not start the service.
pub enum StartError {
    /// The shim itself was gone before it answered (a standby killed by
    /// someone while it waited): worth one retry with a fresh shim.
    ShimLost,
    /// The shim could not start the service: the service's problem.
    Failed(String),
}

impl ShimProcess {
    /// Starts a shim that waits for its spec.
    pub fn prepare(exe: &Path) -> Result<Standby, String> {
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("__shim")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            // Its own group: a Ctrl-C at the terminal reaches soak only, and
            // soak decides how services stop.
            .process_group(0);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start the shim {}: {e}", exe.display()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("the shim has no pipes".into());
        };
        Ok(Standby(ShimProcess {
            child,
            stdin: Some(stdin),
            reports: BufReader::new(stdout).lines(),
        }))
    }

    /// Starts a shim and its service. `Err` says why the service did not start.
    pub async fn spawn(exe: &Path, spec: &ShimSpec) -> Result<(ShimProcess, Started), String> {
        Self::spawn_following(exe, spec, None).await
    }

    /// [`ShimProcess::spawn`] for a service that may daemonize.
    pub async fn spawn_following(
        exe: &Path,
        spec: &ShimSpec,
        daemon: Option<&Daemon>,
    ) -> Result<(ShimProcess, Started), String> {
        match Self::prepare(exe)?.start(spec, daemon).await {
            Ok(s) => Ok(s),
            Err(StartError::ShimLost) => Err("the shim ended before starting the service".into()),
            Err(StartError::Failed(e)) => Err(e),
        }
    }

    async fn write_line(&mut self, line: &str) {
        if let Some(stdin) = &mut self.stdin {
            let mut bytes = line.as_bytes().to_vec();
            bytes.push(b'\n');
            // A closed pipe means the shim is gone; its exit report (or its
            // absence) tells the rest.
            let _ = stdin.write_all(&bytes).await;
        }
    }

    pub async fn send(&mut self, cmd: &ShimCommand) {
        let line = serde_json::to_string(cmd).unwrap_or_default();
        self.write_line(&line).await;
    }

    /// The next report; `None` once the shim is gone. Cancel-safe.
    pub async fn report(&mut self) -> Option<ShimReport> {
        loop {
            let line = self.reports.next_line().await.ok().flatten()?;
            if let Ok(r) = serde_json::from_str(&line) {
                return Some(r);
            }
        }
    }

    /// Closes the control pipe (the shim kills whatever is left) and reaps it.
    pub async fn close(mut self) {
        self.stdin = None;
        let _ = self.child.wait().await;
    }
}

impl Standby {
    /// Hands the shim its spec and waits until the service runs.
    pub async fn start(
        self,
        spec: &ShimSpec,
        daemon: Option<&Daemon>,
    ) -> Result<(ShimProcess, Started), StartError> {
        let mut shim = self.0;
        let line = StartLine {
            spec: spec.clone(),
            daemon: daemon.cloned(),
        };
        let spec_line = serde_json::to_string(&line)
            .map_err(|e| StartError::Failed(format!("cannot encode the spec: {e}")))?;
        shim.write_line(&spec_line).await;
        match shim.report().await {
            Some(ShimReport::Started {
                pid,
                ts,
                container,
                image_stop_signal,
            }) => Ok((
                shim,
                Started {
                    pid,
                    ts,
                    container,
                    image_stop_signal,
                },
            )),
            other => {
                shim.close().await;
                Err(match other {
                    Some(ShimReport::SpawnFailed { error }) => StartError::Failed(error),
                    _ => StartError::ShimLost,
                })
            }
        }
    }

    /// Lets the waiting shim go and reaps it.
    pub async fn close(self) {
        self.0.close().await;
    }
}
