//! Health probes: http (status and body substring), tcp (connect), exec
//! (exit 0). Each probe is bounded by its timeout, so a service that does
//! not answer is a failed probe, not a stuck supervisor. A tcp connect
//! succeeds even against a frozen server (the kernel answers the handshake),
//! so the supervisor also checks that the main process is not stopped.

use crate::config::Probe;
use std::time::Duration;

/// One probe of `probe`; `Err` says what was wrong in a few words.
pub async fn check(
    probe: &Probe,
    expect_status: u16,
    expect_body: Option<&str>,
    timeout: Duration,
) -> Result<(), String> {
    match probe {
        Probe::Http(url) => {
            let r = crate::http::request("GET", url, &[], None, timeout)
                .await
                .map_err(|e| e.to_string())?;
            if r.status != expect_status {
                return Err(format!(
                    "status {} (expected {expect_status}): {}",
                    r.status,
                    r.body.chars().take(120).collect::<String>().trim()
                ));
            }
            if let Some(want) = expect_body
                && !r.body.contains(want)
            {
                return Err(format!("body lacks {want:?}"));
            }
            Ok(())
        }
        Probe::Tcp(addr) => {
            // `localhost` is both loopbacks: a service may listen on ::1 only.
            let addrs = crate::http::loopback_addrs(addr, 0).map_err(|e| e.to_string())?;
            tokio::time::timeout(timeout, crate::http::connect(&addrs))
                .await
                .map_err(|_| format!("connect timed out after {} ms", timeout.as_millis()))?
                .map(drop)
                .map_err(|e| e.to_string())
        }
        Probe::Exec(argv) => exec(argv, timeout).await,
    }
}

async fn exec(argv: &[String], timeout: Duration) -> Result<(), String> {
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
    let pid = child.id();
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(s)) if s.success() => Ok(()),
        Ok(Ok(s)) => Err(format!("`{}` {s}", argv.join(" "))),
        Ok(Err(e)) => Err(format!("waiting for {}: {e}", argv[0])),
        Err(_) => {
            if let Some(pid) = pid {
                // The probe may have started children of its own: end the group.
                // SAFETY: the group we created for this probe and have not reaped.
                unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
            }
            let _ = child.wait().await;
            Err(format!(
                "`{}` timed out after {} ms",
                argv.join(" "),
                timeout.as_millis()
            ))
        }
    }
}

/// Whether an instance's health probe answers now; false without a probe.
pub async fn serving(sp: &crate::plan::ServicePlan) -> bool {
    let (Some(probe), Some(h)) = (&sp.probe, &sp.config.health) else {
        return false;
    };
    check(
        probe,
        h.expect_status,
        sp.expect_body.as_deref(),
        h.timeout.0,
    )
    .await
    .is_ok()
}

/// Polls [`serving`] every 100 ms until it answers or `limit` passes.
pub async fn wait_serving(sp: &crate::plan::ServicePlan, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if serving(sp).await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
