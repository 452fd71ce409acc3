//! The duplicate: a second instance of a service on the same data dir, with
//! a port of its own. A hardened service refuses to run twice (a lock on its
//! data, a port it cannot share) by exiting on its own with an error; one
//! that crashes, aborts or is killed did not refuse anything, so the exit
//! code, the signal and the last lines of its log are journaled for the
//! verdict to tell the two apart and quote why.

use crate::clock::now_ms;
use crate::config::Workload;
use crate::config::units::signal_name;
use crate::journal::Event;
use crate::plan::ServicePlan;
use crate::record::{Recorder, Severity};
use crate::supervise::shim::{ShimCommand, ShimReport};
use crate::supervise::{SecondInstance, Supervisor, probe};
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use tokio::sync::oneshot;

/// How many of the duplicate's last log lines the journal keeps.
const LOG_LINES: usize = 20;
/// How much of the end of its log is read to find them.
const LOG_TAIL_BYTES: u64 = 8192;
/// How long the consistency check waits for the duplicate to serve.
const SERVING_WAIT: Duration = Duration::from_secs(5);

/// A running duplicate: released (killed, if it is still up) on rollback.
pub struct DuplicateHold {
    pub release: Option<oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<()>>,
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

/// The second instance, asked of the supervisor: same command, data dir
/// and wiring, a port of its own, under a shim like any incarnation (so it
/// dies with soak). Journals how it ended: refused (and why), crashed, or
/// still running.
pub async fn start(
    sup: &Supervisor,
    sp: &ServicePlan,
    hold: Duration,
    step: usize,
    rec: &Recorder,
    consistency: Option<Workload>,
) -> Result<(DuplicateHold, serde_json::Value), String> {
    let second = sup.second_instance(&sp.name).await?;
    let (pid, port, ts) = (second.pid, second.plan.port, second.started_ts);
    let (release_tx, mut release_rx) = oneshot::channel::<()>();
    let (rec, name) = (rec.clone(), sp.name.clone());
    let primary = sp.port;
    let task = tokio::spawn(async move {
        let SecondInstance {
            mut shim,
            plan: dup,
            ..
        } = second;
        let deadline = tokio::time::sleep(hold);
        tokio::pin!(deadline);
        // Only a duplicate that serves can disagree with the primary, so the
        // consistency check waits for it to serve; the exit is watched from
        // the first moment all the same, because a duplicate that refuses at
        // once never serves and its refusal must not be mistaken for a hold.
        let mut check = consistency.filter(|_| dup.probe.is_some());
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
                serving = probe::wait_serving(&dup, SERVING_WAIT), if check.is_some() => {
                    // Taken either way: the check runs once, or not at all.
                    if let (true, Some(w)) = (serving, check.take()) {
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
                let log_tail = last_lines(&dup.log);
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
                let serving = probe::serving(&dup).await;
                let after_ms = now_ms() - ts;
                rec.emit(
                    Some(&name),
                    &Event::DuplicateStillRunning {
                        step,
                        pid,
                        port,
                        after_ms,
                        serving,
                    },
                    Severity::Bad,
                    format!(
                        "duplicate pid {pid} still running on the same data after {after_ms} ms{}",
                        if serving {
                            format!(", serving on port {port}")
                        } else {
                            String::new()
                        }
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
    let stale_count = stale.len() as u64;
    rec.emit(
        Some(name),
        &Event::Consistency {
            step,
            checked,
            stale_count,
            stale,
        },
        sev,
        format!(
            "{checked} write(s) through the primary read back through the duplicate: {stale_count} stale"
        ),
    );
}
