//! Chaos: inject one fault, and always undo it.
//!
//! A [`Fault`] owns its undo. [`Fault::roll_back`] undoes it on the normal
//! path; `Drop` undoes it on every other path (an early return, Ctrl-C, a
//! panic), so a stopped process is always continued, a lowered limit always
//! restored, a lock always released, a duplicate always gone. Chaos never
//! restarts anything: that is the supervisor's job, and watching it do so is
//! the point.

use crate::clock::now_ms;
use crate::config::Workload;
use crate::config::scenario::{Action, LockMode, Step};
use crate::config::units::signal_name;
use crate::plan::{Plan, ServicePlan, expand_all, free_port};
use crate::record::{Recorder, Severity};
use crate::supervise::client::{ShimProcess, Started};
use crate::supervise::shim::{ShimCommand, ShimReport, ShimSpec};
use crate::supervise::{Supervisor, procfs};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;
use tokio::sync::oneshot;

pub struct Fault {
    pub step: usize,
    pub target: String,
    pub action: &'static str,
    pub injected_at: i64,
    /// The incarnation the fault hit, to notice when the supervisor acted.
    pub incarnation: Option<i64>,
    undo: Undo,
}

enum Undo {
    Nothing,
    Continue {
        pids: Vec<i32>,
    },
    Rlimit {
        pid: i32,
        soft: u64,
        hard: u64,
    },
    Lock {
        release: Option<std_mpsc::Sender<()>>,
        thread: Option<std::thread::JoinHandle<()>>,
    },
    Duplicate {
        release: Option<oneshot::Sender<()>>,
        task: Option<tokio::task::JoinHandle<()>>,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("cannot inject {action} into {target}: {why}")]
pub struct InjectError {
    pub action: &'static str,
    pub target: String,
    pub why: String,
}

fn prlimit_nofile(pid: i32, new: Option<(u64, u64)>) -> std::io::Result<(u64, u64)> {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let new = new.map(|(soft, hard)| libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    });
    // SAFETY: prlimit with valid pointers to stack rlimits.
    let rc = unsafe {
        libc::prlimit(
            pid,
            libc::RLIMIT_NOFILE,
            new.as_ref()
                .map_or(std::ptr::null(), |n| n as *const libc::rlimit),
            &mut old,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((old.rlim_cur, old.rlim_max))
}

/// Holds an SQLite lock on a thread of its own (rusqlite is blocking) until
/// released or `hold` (plus a margin) passes; answers once the lock is held.
fn hold_lock(
    db: PathBuf,
    mode: LockMode,
    hold: Duration,
) -> Result<(std_mpsc::Sender<()>, std::thread::JoinHandle<()>), String> {
    let (held_tx, held_rx) = std_mpsc::channel::<Result<(), String>>();
    let (release_tx, release_rx) = std_mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("soak-sqlite-lock".into())
        .spawn(move || {
            let lock = || -> rusqlite::Result<rusqlite::Connection> {
                let conn = rusqlite::Connection::open_with_flags(
                    &db,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE,
                )?;
                conn.busy_timeout(Duration::from_secs(5))?;
                match mode {
                    LockMode::Exclusive => conn.execute_batch("BEGIN EXCLUSIVE")?,
                    LockMode::Immediate => conn.execute_batch("BEGIN IMMEDIATE")?,
                    // A read transaction pins a WAL snapshot: checkpoints
                    // cannot pass it, so the WAL grows.
                    LockMode::Read => {
                        conn.execute_batch("BEGIN")?;
                        conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
                    }
                }
                Ok(conn)
            };
            match lock() {
                Ok(conn) => {
                    let _ = held_tx.send(Ok(()));
                    // The safety net: even if nobody releases, never hold past this.
                    let _ = release_rx.recv_timeout(hold + Duration::from_secs(5));
                    let _ = conn.execute_batch("ROLLBACK");
                }
                Err(e) => {
                    let _ = held_tx.send(Err(format!("{}: {e}", db.display())));
                }
            }
        })
        .map_err(|e| e.to_string())?;
    match held_rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(())) => Ok((release_tx, thread)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("timed out taking the lock".into()),
    }
}

/// The second instance: same command and data dir, a port of its own, under
/// a shim like any incarnation (so it dies with soak). Reports whether the
/// service refused to run twice.
async fn duplicate(
    sp: &ServicePlan,
    shim_exe: &Path,
    hold: Duration,
    step: usize,
    rec: &Recorder,
    consistency: Option<Workload>,
) -> Result<
    (
        oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
        serde_json::Value,
    ),
    String,
> {
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
        argv: sp
            .config
            .command
            .0
            .iter()
            .map(|a| expand_all(a, &vars))
            .collect(),
        cwd: sp.cwd.clone(),
        env,
        log: sp.log.with_file_name(format!("{}-duplicate.log", sp.name)),
        log_max: sp.config.logs.max_size.0,
        log_keep: sp.config.logs.keep,
        port: Some(port),
    };
    let (mut shim, Started { pid, ts }) = ShimProcess::spawn(shim_exe, &spec).await?;
    let (release_tx, mut release_rx) = oneshot::channel::<()>();
    let (rec, name) = (rec.clone(), sp.name.clone());
    let probe = sp.config.health.as_ref().map(|h| {
        let mut h = h.clone();
        if let crate::config::Probe::Http(u) = &mut h.probe {
            *u = expand_all(u, &vars);
        }
        h
    });
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
                    (Some(c), _) => format!("exit code {c}"),
                    (None, Some(s)) => format!("signal {}", signal_name(s)),
                    _ => "ended".into(),
                };
                rec.event(
                    Some(&name),
                    "duplicate-ended",
                    json!({"step": step, "pid": pid, "port": port, "after_ms": end - ts, "exit_code": exit_code, "signal": signal.map(signal_name)}),
                    Severity::Good,
                    format!("duplicate pid {pid} refused to run: {how} after {} ms", end - ts),
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
    Ok((release_tx, task, json!({"pid": pid, "port": port})))
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

/// Injects `step` (number `index` of its scenario) into the running services.
pub async fn inject(
    index: usize,
    step: &Step,
    sup: &Arc<Supervisor>,
    plan: &Plan,
    rec: &Recorder,
    shim_exe: &Path,
    consistency: Option<&Workload>,
) -> Result<Fault, InjectError> {
    let err = |why: String| InjectError {
        action: step.action.name(),
        target: step.target.clone(),
        why,
    };
    let sp = plan
        .service(&step.target)
        .ok_or_else(|| err("not in this run".into()))?;
    let state = sup
        .state(&step.target)
        .map_err(|e| err(e.to_string()))?
        .borrow()
        .clone();
    let pid = state.pid.ok_or_else(|| err("it is not running".into()))?;
    let (undo, detail, text) = match &step.action {
        Action::Link { .. } => {
            return Err(err("link faults are injected by the link proxy".into()));
        }
        Action::Kill { signal, scope } => {
            let pids = sup
                .signal(&step.target, *signal, *scope, true)
                .await
                .map_err(|e| err(e.to_string()))?;
            let text = format!("kill -{} {:?} {pids:?}", signal_name(*signal), scope);
            (
                Undo::Nothing,
                json!({"signal": signal_name(*signal), "scope": scope, "pids": pids}),
                text,
            )
        }
        Action::Hang { scope, hold } => {
            let pids = sup
                .signal(&step.target, libc::SIGSTOP, *scope, false)
                .await
                .map_err(|e| err(e.to_string()))?;
            if pids.is_empty() {
                return Err(err(format!("no process in scope {scope:?} to stop")));
            }
            let text = format!("SIGSTOP {:?} {pids:?}", scope);
            (
                Undo::Continue { pids: pids.clone() },
                json!({"scope": scope, "pids": pids, "hold_ms": hold.map(|h| h.as_millis() as u64)}),
                text,
            )
        }
        Action::FdExhaustion { headroom, hold } => {
            let fds = procfs::open_fds(pid)
                .ok_or_else(|| err(format!("cannot list the fds of pid {pid}")))?;
            let open = fds.len();
            let (soft, hard) = prlimit_nofile(pid, None).map_err(|e| err(e.to_string()))?;
            // Only the soft limit is lowered: the hard one could not be raised back.
            let new_soft = procfs::limit_for_headroom(&fds, *headroom as u64).min(soft);
            prlimit_nofile(pid, Some((new_soft, hard))).map_err(|e| err(e.to_string()))?;
            (
                Undo::Rlimit { pid, soft, hard },
                json!({"pid": pid, "open": open, "soft_before": soft, "soft": new_soft, "hold_ms": hold.as_millis() as u64}),
                format!("RLIMIT_NOFILE of pid {pid}: {soft} -> {new_soft} ({open} open)"),
            )
        }
        Action::SqliteLock { mode, hold, db } => {
            let idx = db
                .as_ref()
                .and_then(|d| sp.config.sqlite.iter().position(|s| s == d))
                .unwrap_or(0);
            let path = sp
                .sqlite
                .get(idx)
                .cloned()
                .ok_or_else(|| err("no sqlite database".into()))?;
            let (release, thread) = hold_lock(path.clone(), *mode, *hold).map_err(err)?;
            (
                Undo::Lock {
                    release: Some(release),
                    thread: Some(thread),
                },
                json!({"db": path, "mode": mode, "hold_ms": hold.as_millis() as u64}),
                format!("{mode:?} lock on {}", path.display()),
            )
        }
        Action::Duplicate { hold } => {
            let (release, task, detail) =
                duplicate(sp, shim_exe, *hold, index, rec, consistency.cloned())
                    .await
                    .map_err(err)?;
            let text = format!("duplicate instance {detail} on {}", sp.data_dir.display());
            (
                Undo::Duplicate {
                    release: Some(release),
                    task: Some(task),
                },
                detail,
                text,
            )
        }
        Action::Stop => {
            let s = &sp.config.stop;
            let (sup, rec, target) = (sup.clone(), rec.clone(), step.target.clone());
            let grace_ms = s.grace.ms();
            tokio::spawn(async move {
                let outcome = sup.stop(&target).await.ok().flatten();
                let (detail, sev, text) = match outcome {
                    Some(o) => (
                        json!({"step": index, "took_ms": o.took.as_millis() as u64, "exit_code": o.exit_code,
                               "signal": o.signal.map(signal_name), "killed_after_grace": o.killed_after_grace, "grace_ms": grace_ms}),
                        if o.killed_after_grace {
                            Severity::Bad
                        } else {
                            Severity::Good
                        },
                        if o.killed_after_grace {
                            format!("still running after the {grace_ms} ms grace: killed")
                        } else {
                            format!(
                                "stopped in {} ms, exit {:?}",
                                o.took.as_millis(),
                                o.exit_code
                            )
                        },
                    ),
                    None => (
                        json!({"step": index, "error": "not running"}),
                        Severity::Bad,
                        "was not running".to_string(),
                    ),
                };
                rec.event(Some(&target), "stop-result", detail, sev, text);
            });
            (
                Undo::Nothing,
                json!({"signal": signal_name(s.signal.0), "grace_ms": s.grace.ms()}),
                format!(
                    "graceful stop: SIG{} with {} grace",
                    signal_name(s.signal.0),
                    crate::clock::human(s.grace.0)
                ),
            )
        }
    };
    let injected_at = now_ms();
    let mut detail = detail;
    detail["step"] = json!(index);
    detail["action"] = json!(step.action.name());
    detail["incarnation"] = json!(state.incarnation);
    rec.event(
        Some(&step.target),
        "fault-injected",
        detail,
        Severity::Warn,
        format!("fault: {text}"),
    );
    Ok(Fault {
        step: index,
        target: step.target.clone(),
        action: step.action.name(),
        injected_at,
        incarnation: state.incarnation,
        undo,
    })
}

impl Fault {
    /// Undoes the fault and journals it. Idempotent with `Drop`.
    pub async fn roll_back(mut self, rec: &Recorder) {
        let detail = match &mut self.undo {
            Undo::Duplicate { release, task } => {
                if let Some(r) = release.take() {
                    let _ = r.send(());
                }
                if let Some(t) = task.take() {
                    let _ = t.await;
                }
                json!({})
            }
            Undo::Lock { release, thread } => {
                drop(release.take());
                if let Some(t) = thread.take() {
                    let _ = tokio::task::spawn_blocking(move || t.join()).await;
                }
                json!({})
            }
            _ => self.undo_now(),
        };
        let mut detail = detail;
        detail["step"] = json!(self.step);
        detail["action"] = json!(self.action);
        detail["held_ms"] = json!(now_ms() - self.injected_at);
        rec.event(
            Some(&self.target),
            "fault-rolled-back",
            detail,
            Severity::Info,
            format!(
                "rolled back {} after {} ms",
                self.action,
                now_ms() - self.injected_at
            ),
        );
        self.undo = Undo::Nothing;
    }

    /// The synchronous part of every undo, safe to call from `Drop`.
    fn undo_now(&mut self) -> serde_json::Value {
        match std::mem::replace(&mut self.undo, Undo::Nothing) {
            Undo::Nothing => json!({}),
            Undo::Continue { pids } => {
                for pid in &pids {
                    // SAFETY: kill(2); a pid that is gone gives ESRCH, which is fine.
                    unsafe { libc::kill(*pid, libc::SIGCONT) };
                }
                json!({"continued": pids})
            }
            Undo::Rlimit { pid, soft, hard } => {
                let restored = prlimit_nofile(pid, Some((soft, hard))).is_ok();
                json!({"pid": pid, "restored_soft": soft, "process_alive": restored})
            }
            Undo::Lock { release, thread } => {
                drop(release);
                if let Some(t) = thread {
                    let _ = t.join();
                }
                json!({})
            }
            Undo::Duplicate { release, task } => {
                if let Some(r) = release {
                    let _ = r.send(());
                }
                // If the runtime is gone the task is dropped with its shim,
                // whose closed pipe makes it kill the duplicate's tree.
                drop(task);
                json!({})
            }
        }
    }

    /// True once the process the fault hit is gone (the supervisor acted).
    pub fn target_replaced(&self, current: Option<i64>) -> bool {
        current != self.incarnation
    }
}

impl Drop for Fault {
    fn drop(&mut self) {
        self.undo_now();
    }
}
