//! fd exhaustion: the soft RLIMIT_NOFILE of every process of an incarnation
//! is lowered to its open fds plus a headroom, and each is restored to its
//! own previous limit.
//!
//! The limit caps fd *numbers*, and the kernel hands out the lowest free
//! one: when a process closes an fd below its limit (a client that
//! disconnects), that number is free again and the process is no longer
//! exhausted. So during the hold the watcher also lowers each process's
//! limit again, to its lowest free numbers plus the headroom, whenever an
//! fd below it closed: redis, lowered once, served one client at a time
//! through the whole hold. The limit only ever goes down until the restore.
//!
//! The processes that open fds are often not the main one (nginx or
//! gunicorn workers, node cluster, a `sh -c` or `npm start` wrapper), and
//! some are born during the hold: a thread watches the tree while the fault
//! is held and lowers each newcomer too. A newcomer that inherited a lowered
//! limit is restored to the limit its parent had before the fault. Every
//! process is held by a pidfd, so a restore never reaches a later process
//! that reused a pid, and nothing is touched once the incarnation has been
//! replaced. Only soft limits change: a lowered hard limit could not be
//! raised back.

use super::process::Pidfd;
use crate::supervise::procfs;
use serde_json::json;
use std::path::Path;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the tree is read during the hold for processes born in it.
const WATCH_EVERY: Duration = Duration::from_millis(100);

/// Whether the incarnation the fault hit is still the current one.
pub type StillOurs = Arc<dyn Fn() -> bool + Send + Sync>;

pub fn prlimit_nofile(pid: i32, new: Option<(u64, u64)>) -> std::io::Result<(u64, u64)> {
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

/// One process whose limit the fault lowered.
struct Lowered {
    proc: Pidfd,
    /// Its soft limit before the fault (its parent's, if it inherited ours).
    before: u64,
    soft: u64,
    open: usize,
    born_during_hold: bool,
    /// How many times the hold lowered it again after fds below it closed.
    tightened: u32,
}

impl Lowered {
    fn detail(&self) -> serde_json::Value {
        json!({"pid": self.proc.pid, "open": self.open, "soft_before": self.before,
               "soft": self.soft, "born_during_hold": self.born_during_hold})
    }

    /// Lowers the limit again if fds under it closed since; a process
    /// that is gone, or whose fds cannot be listed, is left as it is.
    fn tighten(&mut self, headroom: u64) {
        if !self.proc.alive() {
            return;
        }
        let Some(fds) = procfs::open_fds(self.proc.pid) else {
            return;
        };
        let want = procfs::limit_for_headroom(&fds, headroom);
        if want >= self.soft {
            return;
        }
        if let Ok((_, hard)) = prlimit_nofile(self.proc.pid, None)
            && prlimit_nofile(self.proc.pid, Some((want, hard))).is_ok()
        {
            self.soft = want;
            self.tightened += 1;
        }
    }
}

#[derive(Default)]
struct Tracked {
    procs: Vec<Lowered>,
    /// Set by the first restore; later ones report what it did.
    restored: Option<serde_json::Value>,
    /// Newcomers still alive that could not be lowered (the first few).
    missed: Vec<String>,
}

/// How many newcomers that could not be lowered the journal names.
const MISSED_KEPT: usize = 20;

/// The processes of the incarnation: everything under its shim (which is
/// where a daemonizing service's processes land too), or the main process
/// and its descendants when it does not run under a shim.
fn tree_root(main: i32) -> i32 {
    let shim = procfs::stat(main)
        .map(|p| p.ppid)
        .filter(|ppid| procfs::cmdline(*ppid).contains("__shim"));
    shim.unwrap_or(main)
}

fn members(root: i32, main: i32) -> Vec<procfs::Proc> {
    let mut procs = procfs::descendants(root);
    if root == main
        && let Some(p) = procfs::stat(main)
    {
        procs.insert(0, p);
    }
    procs
}

/// Lowers one process's soft limit to its open fds plus `headroom`.
/// `inherited` is (lowered soft, soft before) of its nearest lowered
/// ancestor: a process still at that lowered value got it from us.
fn lower(
    pid: i32,
    headroom: u64,
    inherited: Option<(u64, u64)>,
    born: bool,
) -> Result<Lowered, String> {
    let proc = Pidfd::open(pid).map_err(|e| format!("pidfd_open({pid}): {e}"))?;
    let fds = procfs::open_fds(pid).ok_or_else(|| format!("cannot list the fds of pid {pid}"))?;
    let (soft, hard) = prlimit_nofile(pid, None).map_err(|e| format!("prlimit({pid}): {e}"))?;
    let before = match inherited {
        Some((lowered, before)) if lowered == soft => before,
        _ => soft,
    };
    let new_soft = procfs::limit_for_headroom(&fds, headroom).min(soft);
    prlimit_nofile(pid, Some((new_soft, hard))).map_err(|e| format!("prlimit({pid}): {e}"))?;
    Ok(Lowered {
        proc,
        before,
        soft: new_soft,
        open: fds.len(),
        born_during_hold: born,
        tightened: 0,
    })
}

/// Lowers every process not yet tracked, parents before children; returns
/// the pids it could not lower, with why.
fn lower_new(
    t: &mut Tracked,
    root: i32,
    main: i32,
    headroom: u64,
    born: bool,
) -> Vec<(i32, String)> {
    let mut errors = Vec::new();
    let procs = members(root, main);
    for p in &procs {
        // A tracked pid whose pidfd is dead was reused by a newcomer.
        if t.procs
            .iter()
            .any(|l| l.proc.pid == p.pid && l.proc.alive())
        {
            continue;
        }
        let mut parent = p.ppid;
        let inherited = loop {
            if let Some(l) = t
                .procs
                .iter()
                .find(|l| l.proc.pid == parent && l.proc.alive())
            {
                break Some((l.soft, l.before));
            }
            match procs.iter().find(|q| q.pid == parent) {
                Some(q) => parent = q.ppid,
                None => break None,
            }
        };
        match lower(p.pid, headroom, inherited, born) {
            Ok(l) => t.procs.push(l),
            Err(e) => errors.push((p.pid, e)),
        }
    }
    errors
}

/// Restores each live process to its own previous soft limit, unless the
/// incarnation was replaced; idempotent.
fn restore(shared: &Mutex<Tracked>, still_ours: &StillOurs) -> serde_json::Value {
    let mut t = shared.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(done) = &t.restored {
        return done.clone();
    }
    let replaced = !still_ours();
    let outcomes: Vec<serde_json::Value> = t
        .procs
        .iter()
        .map(|l| {
            let outcome = if replaced {
                "target-replaced".to_string()
            } else if !l.proc.alive() {
                "gone".to_string()
            } else {
                // The hard limit may have been lowered meanwhile (by the
                // service itself): never ask for more than it allows now.
                match prlimit_nofile(l.proc.pid, None).and_then(|(_, hard)| {
                    prlimit_nofile(l.proc.pid, Some((l.before.min(hard), hard)))
                }) {
                    Ok(_) => "restored".to_string(),
                    Err(e) => format!("error: {e}"),
                }
            };
            json!({"pid": l.proc.pid, "restored_soft": l.before, "outcome": outcome,
                   "tightened": l.tightened})
        })
        .collect();
    let done = json!({"target_replaced": replaced, "processes": outcomes, "not_lowered": t.missed});
    t.restored = Some(done.clone());
    done
}

/// A held fd-exhaustion fault.
pub struct FdHold {
    shared: Arc<Mutex<Tracked>>,
    still_ours: StillOurs,
    stop: Option<std_mpsc::Sender<()>>,
    pub main: i32,
}

impl FdHold {
    /// Lowers the limit of every process of the incarnation whose main
    /// process is `main`, and watches its tree for newcomers until released
    /// or `hold` (plus a margin) passes, when the watcher restores by itself.
    /// Returns the hold and the injection's journal detail.
    pub fn start(
        main: i32,
        headroom: u64,
        hold: Duration,
        still_ours: StillOurs,
    ) -> Result<(FdHold, serde_json::Value), String> {
        let root = tree_root(main);
        let mut t = Tracked::default();
        let errors = lower_new(&mut t, root, main, headroom, false);
        // A process that exited meanwhile is fine; one still running that
        // keeps its limit would make the fault a partial one that passes.
        let unreachable: Vec<String> = errors
            .iter()
            .filter(|(pid, _)| Path::new(&format!("/proc/{pid}")).exists())
            .map(|(pid, e)| format!("pid {pid} ({}): {e}", procfs::cmdline(*pid)))
            .collect();
        let main_lowered = t.procs.iter().any(|l| l.proc.pid == main);
        if !unreachable.is_empty() || !main_lowered {
            // Whatever was lowered goes back before the error is reported.
            let shared = Mutex::new(t);
            restore(&shared, &still_ours);
            let why = if unreachable.is_empty() {
                format!("pid {main} is gone")
            } else {
                unreachable.join("; ")
            };
            return Err(format!(
                "cannot lower the fd limit of every process of the incarnation: {why} \
                 (changing the limits of a process that runs as another user needs CAP_SYS_RESOURCE)"
            ));
        }
        let m = t
            .procs
            .iter()
            .find(|l| l.proc.pid == main)
            .expect("checked above");
        let detail = json!({
            "pid": main, "open": m.open, "soft_before": m.before, "soft": m.soft,
            "processes": t.procs.iter().map(Lowered::detail).collect::<Vec<_>>(),
        });
        let shared = Arc::new(Mutex::new(t));
        let (stop, stop_rx) = std_mpsc::channel::<()>();
        let (watched, ours) = (shared.clone(), still_ours.clone());
        let shim = Pidfd::open(root).map_err(|e| format!("pidfd_open({root}): {e}"))?;
        let deadline = Instant::now() + hold + Duration::from_secs(5);
        std::thread::Builder::new()
            .name("soak-fd-watch".into())
            .spawn(move || {
                while let Err(std_mpsc::RecvTimeoutError::Timeout) =
                    stop_rx.recv_timeout(WATCH_EVERY)
                {
                    if Instant::now() >= deadline {
                        break;
                    }
                    if !shim.alive() || !ours() {
                        continue;
                    }
                    let mut t = watched.lock().unwrap_or_else(|e| e.into_inner());
                    if t.restored.is_none() {
                        for l in &mut t.procs {
                            l.tighten(headroom);
                        }
                        for (pid, e) in lower_new(&mut t, root, main, headroom, true) {
                            // One that died before it could be lowered missed nothing.
                            if t.missed.len() < MISSED_KEPT
                                && Path::new(&format!("/proc/{pid}")).exists()
                            {
                                t.missed
                                    .push(format!("pid {pid} ({}): {e}", procfs::cmdline(pid)));
                            }
                        }
                    }
                }
                restore(&watched, &ours);
            })
            .map_err(|e| e.to_string())?;
        Ok((
            FdHold {
                shared,
                still_ours,
                stop: Some(stop),
                main,
            },
            detail,
        ))
    }

    /// Restores every process now (a few syscalls, never a wait) and
    /// returns the rollback's journal detail.
    pub fn release(&mut self) -> serde_json::Value {
        drop(self.stop.take());
        let done = restore(&self.shared, &self.still_ours);
        let t = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        let main = t.procs.iter().find(|l| l.proc.pid == self.main);
        let main_outcome = done["processes"]
            .as_array()
            .and_then(|a| a.iter().find(|p| p["pid"] == self.main))
            .map(|p| p["outcome"] == "restored")
            .unwrap_or(false);
        let mut detail = done;
        detail["pid"] = json!(self.main);
        detail["restored_soft"] = json!(main.map(|m| m.before));
        detail["process_alive"] = json!(main_outcome);
        detail["born_during_hold"] = json!(t.procs.iter().filter(|l| l.born_during_hold).count());
        detail
    }
}
