//! Chaos: inject one fault, and always undo it.
//!
//! A [`Fault`] owns its undo. [`Fault::roll_back`] undoes it on the normal
//! path; `Drop` undoes it on every other path (an early return, Ctrl-C, a
//! panic), so a stopped process is always continued, a lowered limit always
//! restored, a lock always released, a duplicate always gone. Chaos never
//! restarts anything: that is the supervisor's job, and watching it do so is
//! the point.
//!
//! Undoing never blocks the runtime (a lock is let go by its own thread, a
//! limit restored with a few syscalls), and never reaches a process the
//! fault did not hit: stopped processes and lowered limits are held by
//! pidfd, and once the supervisor has replaced the incarnation the undo is
//! journaled with `target_replaced` and touches nothing.
//!
//! One file per family: `process` (hang, pidfds), `limits` (fd
//! exhaustion), `sqlite` (locks), `duplicate` (a second instance), `link`
//! (the proxy in front of a dependency: its fault is the link's guard).

mod duplicate;
mod limits;
mod link;
mod process;
mod sqlite;

use crate::clock::now_ms;
use crate::config::Workload;
use crate::config::scenario::{Action, Step};
use crate::config::units::signal_name;
use crate::container::Engine;
use crate::link::{FaultGuard, Links};
use crate::plan::Plan;
use crate::record::{Recorder, Severity};
use crate::supervise::shim::Scope;
use crate::supervise::{ServiceState, Supervisor};
use duplicate::DuplicateHold;
use limits::FdHold;
use process::Pidfd;
use serde_json::json;
use sqlite::LockHold;
use std::sync::Arc;
use tokio::sync::watch;

pub struct Fault {
    pub step: usize,
    pub target: String,
    pub action: &'static str,
    pub injected_at: i64,
    /// The incarnation the fault hit, to notice when the supervisor acted.
    pub incarnation: Option<i64>,
    /// The target's live state: an undo aimed at an incarnation that has
    /// been replaced touches nothing. `None` for a link, which has no
    /// incarnations.
    state: Option<watch::Receiver<ServiceState>>,
    undo: Undo,
}

enum Undo {
    Nothing,
    /// Stopped processes, by pidfd: a pid reused since is never signalled.
    Continue(Vec<Pidfd>),
    Rlimit(FdHold),
    Lock(LockHold),
    Duplicate(DuplicateHold),
    Link(FaultGuard),
    /// A paused container, by id: unpaused on every path. An id is never
    /// reused, so a later container is never touched.
    Thaw(String),
}

#[derive(Debug, thiserror::Error)]
#[error("cannot inject {action} into {target}: {why}")]
pub struct InjectError {
    pub action: &'static str,
    pub target: String,
    pub why: String,
}

/// What a fault can reach: the run's services and links.
pub struct Targets<'a> {
    pub sup: &'a Arc<Supervisor>,
    pub plan: &'a Plan,
    pub links: &'a Links,
    /// A `stop` starts the service again afterwards (a soak's scheduled
    /// stop is `systemctl restart`, not the end of the service).
    pub restart_after_stop: bool,
}

/// Injects `step` (number `index` of its scenario) into the running
/// services, or the link it names.
pub async fn inject(
    index: usize,
    step: &Step,
    to: &Targets<'_>,
    rec: &Recorder,
    consistency: Option<&Workload>,
) -> Result<Fault, InjectError> {
    let (sup, plan) = (to.sup, to.plan);
    let err = |why: String| InjectError {
        action: step.action.name(),
        target: step.target.clone(),
        why,
    };
    if let Action::Link {
        fault,
        direction,
        hold,
    } = &step.action
    {
        let at = now_ms();
        let (guard, detail, text) = link::add(
            to.links,
            &step.target,
            link::fault(fault, *direction),
            *hold,
        )
        .map_err(err)?;
        return Ok(injected(
            at,
            index,
            step,
            None,
            None,
            Undo::Link(guard),
            detail,
            text,
            rec,
        ));
    }
    let sp = plan
        .service(&step.target)
        .ok_or_else(|| err("not in this run".into()))?;
    let live = sup.state(&step.target).map_err(|e| err(e.to_string()))?;
    let state = live.borrow().clone();
    let pid = state.pid.ok_or_else(|| err("it is not running".into()))?;
    // A container whose processes this host cannot see (an engine on
    // another host): only faults through the engine or on its files reach it.
    if state.container.is_some()
        && pid <= 0
        && matches!(
            step.action,
            Action::FdExhaustion { .. }
                | Action::Hang {
                    scope: Scope::Children,
                    ..
                }
                | Action::Kill {
                    scope: Scope::Group | Scope::Children,
                    ..
                }
        )
    {
        return Err(err(
            "its container's processes are not visible from this host (an engine elsewhere?): \
             this fault acts on processes; kill with scope main, stop, hang and the file faults go through the engine or the data dir"
                .into(),
        ));
    }
    // The fault's time is when it starts to act: a kill's death can be
    // journaled before the injection is, and must not look older than it.
    let at = now_ms();
    let (undo, detail, text) = match &step.action {
        Action::Link { .. } => unreachable!("link faults returned above"),
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
        // A container's hang is the cgroup freezer: every process of it,
        // including what SIGSTOP cannot reach. Its children alone are
        // stopped by signal like a process's, since the freezer takes the
        // whole container or nothing.
        Action::Hang { scope, hold } if state.container.is_some() && *scope != Scope::Children => {
            let id = state.container.clone().unwrap_or_default();
            let engine = Engine::connect().await.map_err(|e| err(e.to_string()))?;
            engine.pause(&id).await.map_err(|e| err(e.to_string()))?;
            let mut pids = vec![pid];
            pids.extend(
                crate::supervise::procfs::descendants(pid)
                    .iter()
                    .map(|p| p.pid),
            );
            let text = format!("paused container {} {pids:?}", &id[..id.len().min(12)]);
            (
                Undo::Thaw(id.clone()),
                json!({"scope": scope, "pids": pids, "container": id, "hold_ms": hold.map(|h| h.as_millis() as u64)}),
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
                Undo::Continue(process::pidfds(&pids)),
                json!({"scope": scope, "pids": pids, "hold_ms": hold.map(|h| h.as_millis() as u64)}),
                text,
            )
        }
        Action::FdExhaustion { headroom, hold } => {
            let (ours, incarnation) = (live.clone(), state.incarnation);
            let still_ours: limits::StillOurs =
                Arc::new(move || ours.borrow().incarnation == incarnation);
            let (fd_hold, detail) =
                FdHold::start(pid, *headroom as u64, *hold, still_ours).map_err(err)?;
            let text = format!(
                "RLIMIT_NOFILE of pid {pid}: {} -> {} ({} open), and of {} other process(es) of the incarnation",
                detail["soft_before"],
                detail["soft"],
                detail["open"],
                detail["processes"]
                    .as_array()
                    .map_or(0, |a| a.len().saturating_sub(1)),
            );
            let mut detail = detail;
            detail["hold_ms"] = json!(hold.as_millis() as u64);
            (Undo::Rlimit(fd_hold), detail, text)
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
            let (lock, facts) = sqlite::hold(path.clone(), *mode, *hold)
                .await
                .map_err(err)?;
            let mut detail = json!({"db": path, "mode": mode, "hold_ms": hold.as_millis() as u64});
            for (k, v) in facts.as_object().into_iter().flatten() {
                detail[k] = v.clone();
            }
            (
                Undo::Lock(lock),
                detail,
                format!("{mode:?} lock on {}", path.display()),
            )
        }
        Action::Duplicate { hold } => {
            let (dup, detail) = duplicate::start(sup, sp, *hold, index, rec, consistency.cloned())
                .await
                .map_err(err)?;
            let text = format!("duplicate instance {detail} on {}", sp.data_dir.display());
            (Undo::Duplicate(dup), detail, text)
        }
        Action::Stop => {
            let s = &sp.config.stop;
            let (sup, rec, target) = (sup.clone(), rec.clone(), step.target.clone());
            let grace_ms = s.grace.ms();
            let then_start = to.restart_after_stop;
            tokio::spawn(async move {
                let outcome = if then_start {
                    sup.restart(&target).await
                } else {
                    sup.stop(&target).await
                };
                let outcome = outcome.ok().flatten();
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
            // What the supervisor will send: an image's STOPSIGNAL may
            // stand in for the config's TERM.
            let signal = signal_name(state.stop_signal.unwrap_or(s.signal.0));
            (
                Undo::Nothing,
                json!({"signal": signal, "grace_ms": s.grace.ms()}),
                format!(
                    "graceful stop: SIG{signal} with {} grace",
                    crate::clock::human(s.grace.0)
                ),
            )
        }
    };
    Ok(injected(
        at,
        index,
        step,
        state.incarnation,
        Some(live),
        undo,
        detail,
        text,
        rec,
    ))
}

/// Journals `fault-injected` and hands back the fault that undoes it.
#[allow(clippy::too_many_arguments)]
fn injected(
    injected_at: i64,
    index: usize,
    step: &Step,
    incarnation: Option<i64>,
    state: Option<watch::Receiver<ServiceState>>,
    undo: Undo,
    mut detail: serde_json::Value,
    text: String,
    rec: &Recorder,
) -> Fault {
    detail["step"] = json!(index);
    detail["action"] = json!(step.action.name());
    detail["incarnation"] = json!(incarnation);
    rec.event_at(
        injected_at,
        Some(&step.target),
        "fault-injected",
        detail,
        Severity::Warn,
        format!("fault: {text}"),
    );
    Fault {
        step: index,
        target: step.target.clone(),
        action: step.action.name(),
        injected_at,
        incarnation,
        state,
        undo,
    }
}

impl Fault {
    /// Undoes the fault and journals it. Idempotent with `Drop`. Never
    /// blocks the runtime: a lock is released by its own thread, and only
    /// awaited here.
    pub async fn roll_back(mut self, rec: &Recorder) {
        let mut detail = match &mut self.undo {
            Undo::Duplicate(dup) => {
                if let Some(r) = dup.release.take() {
                    let _ = r.send(());
                }
                if let Some(t) = dup.task.take() {
                    let _ = t.await;
                }
                json!({})
            }
            // A lock is on a file, not on an incarnation: always released.
            Undo::Lock(lock) => json!({"released": lock.release().await}),
            Undo::Thaw(id) => thaw(id).await,
            _ => self.undo_now(),
        };
        self.undo = Undo::Nothing;
        let replaced = self.replaced();
        if detail.get("target_replaced").is_none() {
            detail["target_replaced"] = json!(replaced);
        }
        detail["step"] = json!(self.step);
        detail["action"] = json!(self.action);
        detail["incarnation"] = json!(self.incarnation);
        detail["held_ms"] = json!(now_ms() - self.injected_at);
        let text = if detail["target_replaced"] == true {
            format!(
                "{} ended after {} ms: its incarnation was replaced, so nothing was touched",
                self.action,
                now_ms() - self.injected_at
            )
        } else {
            format!(
                "rolled back {} after {} ms",
                self.action,
                now_ms() - self.injected_at
            )
        };
        rec.event(
            Some(&self.target),
            "fault-rolled-back",
            detail,
            Severity::Info,
            text,
        );
    }

    fn replaced(&self) -> bool {
        self.state
            .as_ref()
            .is_some_and(|s| self.target_replaced(s.borrow().incarnation))
    }

    /// The synchronous part of every undo, safe to call from `Drop`: a few
    /// syscalls and channel sends, never a wait.
    fn undo_now(&mut self) -> serde_json::Value {
        let replaced = self.replaced();
        match std::mem::replace(&mut self.undo, Undo::Nothing) {
            Undo::Nothing => json!({}),
            Undo::Continue(procs) if replaced => {
                let untouched: Vec<i32> = procs.iter().map(|p| p.pid).collect();
                json!({"target_replaced": true, "continued": [], "untouched": untouched})
            }
            Undo::Continue(procs) => {
                let (continued, gone) = process::continue_all(&procs);
                json!({"target_replaced": false, "continued": continued, "gone": gone})
            }
            Undo::Rlimit(mut hold) => hold.release(),
            // Dropping it makes its thread roll back and close.
            Undo::Lock(lock) => {
                drop(lock);
                json!({})
            }
            Undo::Duplicate(mut dup) => {
                if let Some(r) = dup.release.take() {
                    let _ = r.send(());
                }
                // If the runtime is gone the task is dropped with its shim,
                // whose closed pipe makes it kill the duplicate's tree.
                drop(dup.task.take());
                json!({})
            }
            Undo::Thaw(id) => crate::container::blocking(async || thaw(&id).await)
                .unwrap_or_else(|| json!({"unpaused": false, "error": "no runtime to unpause on"})),
            Undo::Link(guard) => match guard.remove() {
                Ok(()) => json!({"removed": true}),
                // A refuse whose port could not be listened on again: the
                // link keeps retrying; say so rather than claim it is whole.
                Err(e) => json!({"removed": true, "relisten_error": e.to_string()}),
            },
        }
    }

    /// True once the process the fault hit is gone (the supervisor acted).
    pub fn target_replaced(&self, current: Option<i64>) -> bool {
        current != self.incarnation
    }
}

/// Unpauses a container; one that is gone (the supervisor killed it as
/// hung) is said so.
async fn thaw(id: &str) -> serde_json::Value {
    let engine = match Engine::connect().await {
        Ok(e) => e,
        Err(e) => return json!({"unpaused": false, "error": e.to_string()}),
    };
    match engine.unpause(id).await {
        Ok(()) => json!({"unpaused": true, "container": id}),
        Err(e) => {
            json!({"unpaused": false, "container": id, "gone": engine.state(id).await.is_err(), "error": e.to_string()})
        }
    }
}

impl Drop for Fault {
    fn drop(&mut self) {
        self.undo_now();
    }
}
