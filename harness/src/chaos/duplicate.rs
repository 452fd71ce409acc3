//! The duplicate: a second instance of a service on the same data dir, with
//! a port of its own. A hardened service refuses to run twice (a lock on its
//! data, a port it cannot share) by exiting on its own with an error; one
//! that crashes, aborts or is killed did not refuse anything, so the exit
//! code, the signal and the last lines of its log are journaled for the
//! verdict to tell the two apart and quote why.

use crate::clock::now_ms;
use crate::config::units::signal_name;
use crate::config::{Health, Probe, Workload};
use crate::journal::Event;
use crate::plan::{ServicePlan, expand_all, free_port};
use crate::record::{Recorder, Severity};
use crate::supervise::client::{ShimProcess, Started};
use crate::supervise::shim::{ShimCommand, ShimReport, ShimSpec};
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use tokio::sync::oneshot;

/// How many of the duplicate's last log lines the journal keeps.
const LOG_LINES: usize = 20;
/// How much of the end of its log is read to find them.
const LOG_TAIL_BYTES: u64 = 8192;

/// A running duplicate: released (killed, if it is still up) on rollback.
pub struct DuplicateHold {
    pub release: Option<oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<()>>,
}

/// The duplicate's health probe, with its own port in every kind of probe.
fn probe_for(h: &Health, vars: &[(&str, String)]) -> Health {
    let mut h = h.clone();
    match &mut h.probe {
        Probe::Http(u) | Probe::Tcp(u) => *u = expand_all(u, vars),
        Probe::Exec(argv) => {
            for a in argv.iter_mut() {
                *a = expand_all(a, vars);
            }
        }
    }
    h
}

/// The last `LOG_LINES` lines of a log file (its end only: logs can be big).
fn last_lines(path: &Path) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let from = len.saturating_sub(LOG_TAIL_BYTES);
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(from)).is_err() || f.read_to_end(&mut buf).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines: Vec<&str> = text.lines().collect();
    if from > 0 && !lines.is_empty() {
        // The first line read is cut in the middle.
        lines.remove(0);
    }
    let skip = lines.len().saturating_sub(LOG_LINES);
    lines[skip..].iter().map(|l| l.to_string()).collect()
}

/// Refused: it exited on its own, with a non-zero code, not by a signal.
fn refused(exit_code: Option<i32>, signal: Option<i32>) -> bool {
    signal.is_none() && exit_code.is_some_and(|c| c != 0)
}

/// The second instance: same command and data dir, a port of its own, under
/// a shim like any incarnation (so it dies with soak). Journals how it
/// ended: refused (and why), crashed, or still running.
pub async fn start(
    sp: &ServicePlan,
    shim_exe: &Path,
    hold: Duration,
    step: usize,
    rec: &Recorder,
    consistency: Option<Workload>,
) -> Result<(DuplicateHold, serde_json::Value), String> {
    let port = free_port().map_err(|e| e.to_string())?;
    let vars = [
        ("port", port.to_string()),
        ("data_dir", sp.data_dir.display().to_string()),
        ("service", sp.name.clone()),
    ];
    let mut env = sp.env.clone();
    for (k, v) in &sp.config.env {
        if let Some(e) = env.iter_mut().find(|(key, _)| key == k) {
            e.1 = expand_all(v, &vars);
        }
    }
    let spec = ShimSpec {
        // An image service's duplicate is a second container on the same
        // mounted data dir, labelled like the first so it dies with soak.
        argv: sp
            .config
            .command
            .0
            .iter()
            .chain(sp.config.args.iter().flat_map(|a| a.get_ref()))
            .map(|a| expand_all(a, &vars))
            .collect(),
        cwd: sp.cwd.clone(),
        env,
        log: sp.log.with_file_name(format!("{}-duplicate.log", sp.name)),
        log_max: sp.config.logs.max_size.0,
        log_keep: sp.config.logs.keep,
        port: Some(port),
        container: crate::container::ContainerSpec::for_service(sp),
    };
    let log = spec.log.clone();
    let (mut shim, Started { pid, ts, .. }) = ShimProcess::spawn(shim_exe, &spec).await?;
    let (release_tx, mut release_rx) = oneshot::channel::<()>();
    let (rec, name) = (rec.clone(), sp.name.clone());
    let probe = sp.config.health.as_ref().map(|h| probe_for(h, &vars));
    let primary = sp.port;
    let task = tokio::spawn(async move {
        let deadline = tokio::time::sleep(hold);
        tokio::pin!(deadline);
        // Only a duplicate that serves can disagree with the primary, so the
        // consistency check waits for it to serve; the exit is watched from
        // the first moment all the same, because a duplicate that refuses at
        // once never serves and its refusal must not be mistaken for a hold.
        let mut check = consistency.zip(probe.clone());
        let ended = loop {
            tokio::select! {
                biased;
                r = shim.report() => match r {
                    Some(ShimReport::Exited { exit_code, signal, ts: end, .. }) => break Some((exit_code, signal, end)),
                    Some(_) => continue,
                    None => break None,
                },
                _ = &mut release_rx => break None,
                _ = &mut deadline => break None,
                serving = async { wait_serving(&check.as_ref()?.1).await.then_some(()) }, if check.is_some() => {
                    // Taken either way: the check runs once, or not at all.
                    if let (Some(()), Some((w, _))) = (serving, check.take()) {
                        check_consistency(&w, primary, port, step, &name, &rec).await;
                    }
                }
            }
        };
        match ended {
            Some((exit_code, signal, end)) => {
                let how = match (exit_code, signal) {
                    (_, Some(s)) => format!("killed by signal {}", signal_name(s)),
                    (Some(c), None) => format!("exit code {c}"),
                    (None, None) => "ended".into(),
                };
                let refused = refused(exit_code, signal);
                let log_tail = last_lines(&log);
                // The service's own last words, not the shim's exit line.
                let last = log_tail
                    .iter()
                    .rev()
                    .find(|l| l.split(' ').nth(1) != Some("soak"))
                    .map(String::as_str)
                    .unwrap_or("no log output");
                let (sev, text) = if refused {
                    (
                        Severity::Good,
                        format!(
                            "duplicate pid {pid} refused to run: {how} after {} ms: {last}",
                            end - ts
                        ),
                    )
                } else {
                    (
                        Severity::Bad,
                        format!(
                            "duplicate pid {pid} did not refuse, it {} after {} ms: {last}",
                            if signal.is_some() {
                                format!("was {how}")
                            } else {
                                format!("ended with {how}")
                            },
                            end - ts
                        ),
                    )
                };
                rec.emit(
                    Some(&name),
                    &Event::DuplicateEnded {
                        step,
                        pid,
                        port,
                        after_ms: end - ts,
                        exit_code,
                        signal: signal.map(|s| signal_name(s).to_string()),
                        signal_number: signal,
                        refused: Some(refused),
                        log_tail,
                    },
                    sev,
                    text,
                );
            }
            None => {
                let serving = match &probe {
                    Some(h) => {
                        crate::supervise::probe::check(&h.probe, h.expect_status, None, h.timeout.0)
                            .await
                            .is_ok()
                    }
                    None => false,
                };
                rec.event(
                    Some(&name),
                    "duplicate-still-running",
                    json!({"step": step, "pid": pid, "port": port, "after_ms": now_ms() - ts, "serving": serving}),
                    Severity::Bad,
                    format!(
                        "duplicate pid {pid} still running on the same data after {} ms{}",
                        now_ms() - ts,
                        if serving { format!(", serving on port {port}") } else { String::new() }
                    ),
                );
                shim.send(&ShimCommand::Kill).await;
                while let Some(r) = shim.report().await {
                    if matches!(r, ShimReport::Exited { .. }) {
                        break;
                    }
                }
            }
        }
        shim.close().await;
    });
    Ok((
        DuplicateHold {
            release: Some(release_tx),
            task: Some(task),
        },
        json!({"pid": pid, "port": port}),
    ))
}

/// Polls the duplicate's health probe until it answers (or 5 s pass).
async fn wait_serving(h: &crate::config::Health) -> bool {
    for _ in 0..50 {
        if crate::supervise::probe::check(&h.probe, h.expect_status, None, h.timeout.0)
            .await
            .is_ok()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Writes through the primary and reads through the duplicate, twice per
/// key (the second write replaces the first), and journals how many reads
/// were stale: a second pool or cache on the same data serves old values.
async fn check_consistency(
    w: &Workload,
    primary: u16,
    duplicate: u16,
    step: usize,
    name: &str,
    rec: &Recorder,
) {
    let (Some(write), Some(read)) = (&w.write, &w.read) else {
        return;
    };
    let salt = now_ms() % 1_000_000;
    let mut checked = 0;
    let mut stale = Vec::new();
    for i in 0..10 {
        let key = format!("consistency-{salt}-{i}");
        for round in 0..2 {
            let value = format!("v{round}-{salt}");
            if crate::workload::send(write, primary, &key, &value)
                .await
                .is_err()
            {
                continue;
            }
            checked += 1;
            if let Err(e) = crate::workload::send(read, duplicate, &key, &value).await {
                stale.push(format!("{key} (after writing {value}): {e}"));
            }
        }
    }
    let sev = if stale.is_empty() {
        Severity::Good
    } else {
        Severity::Bad
    };
    rec.event(
        Some(name),
        "consistency",
        json!({"step": step, "checked": checked, "stale_count": stale.len(), "stale": stale}),
        sev,
        format!(
            "{checked} write(s) through the primary read back through the duplicate: {} stale",
            stale.len()
        ),
    );
}
