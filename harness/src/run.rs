//! Runs a scenario end to end: plan, supervise, reach the steady state, load,
//! inject each step on time, roll every fault back, recover, read back, check
//! integrity, stop, then judge and report from the journal alone.

use crate::chaos::{self, Fault};
use crate::clock::{human, now_ms};
use crate::config::scenario::{Action, Scenario, Step};
use crate::journal::{self, Event, Journal, Record, RunData, ScheduledFault};
use crate::plan::Plan;
use crate::record::{Note, Recorder, Severity};
use crate::report::{self, Report};
use crate::supervise::{Phase, Supervisor};
use crate::verdict;
use crate::workload::Load;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

pub struct Options {
    /// The `soak` binary, which runs shims.
    pub shim_exe: PathBuf,
    pub notes: Option<UnboundedSender<Note>>,
    /// Overrides the scenario's duration (`soak run --hours`).
    pub duration: Option<Duration>,
    /// Overrides the schedule's seed (`soak run --seed`).
    pub seed: Option<u64>,
    /// Rewrite report.json, report.html and junit.xml this often while the run goes on,
    /// so a long run can be read before it ends.
    pub refresh_report: Option<Duration>,
}

/// splitmix64: a tiny, well-mixed, seedable generator. The schedule must be
/// the same sequence for the same seed on every machine and version.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, n); n > 0.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// One planned fault of the run: a step, and the scenario it came from.
#[derive(Debug, Clone)]
pub struct Planned {
    pub step: Step,
    pub from: String,
    /// Picked by a `[schedule]`: a soak goes on when it cannot land.
    pub scheduled: bool,
}

/// How long a scheduled fault whose target is down (restarting, in
/// backoff) waits for the next ready incarnation before it is skipped.
pub const SCHEDULED_FAULT_WAIT: Duration = Duration::from_secs(30);

/// The steps of the run: the scenario's own, plus, for a `[schedule]`, the
/// steps of a picked scenario every `every`, jittered by up to a quarter
/// interval. A fault that would not finish before the end is left out.
pub fn plan_steps(sc: &Scenario, duration: Duration, seed: u64) -> Result<Vec<Planned>, String> {
    let mut out: Vec<Planned> = sc
        .steps
        .iter()
        .map(|s| Planned {
            step: s.clone(),
            from: sc.name.clone(),
            scheduled: false,
        })
        .collect();
    if let Some(sched) = &sc.schedule {
        let picks = sc.picks().map_err(|e| e.to_string())?;
        let every = sched.every.0;
        let mut rng = SplitMix(seed);
        let mut k = 1u32;
        while !picks.is_empty() && every * k < duration {
            let jitter = Duration::from_millis(rng.below((every.as_millis() as u64 / 4).max(1)));
            let pick = &picks[rng.below(picks.len() as u64) as usize];
            let start = every * k + jitter;
            for s in &pick.steps {
                let at = start + s.at;
                if at + s.action.hold().unwrap_or_default() < duration {
                    out.push(Planned {
                        step: Step { at, ..s.clone() },
                        from: pick.name.clone(),
                        scheduled: true,
                    });
                }
            }
            k += 1;
        }
    }
    out.sort_by_key(|p| p.step.at);
    Ok(out)
}

/// Journals a scheduled fault that could not land; the soak goes on.
fn skip(rec: &Recorder, index: usize, step: &Step, reason: String) {
    rec.emit(
        Some(&step.target),
        &Event::FaultSkipped {
            step: index,
            action: step.action.name().to_string(),
            reason: reason.clone(),
        },
        Severity::Warn,
        format!("skipped {}: {reason}", step.action.name()),
    );
}

/// How often a long run journals its load figures.
pub const LONG_RUN_LOAD_INTERVAL: Duration = Duration::from_secs(60);

pub struct Outcome {
    pub run_dir: PathBuf,
    pub report: Report,
    /// Why the run could not be judged (never became healthy, a fault could
    /// not be injected); the report says so too.
    pub inconclusive: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Setup(String),
    /// Found before anything starts (a program that does not exist): the
    /// config is wrong, exit 2.
    #[error("{0}")]
    Config(crate::config::ConfigError),
}

/// Resolves when soak is asked to stop (Ctrl-C, SIGTERM).
async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

/// Waits until every service is ready; Err names one that is not.
async fn steady(sup: &Supervisor, names: &[String], limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    for name in names {
        let mut state = sup.state(name).map_err(|e| e.to_string())?;
        let wait = state.wait_for(|s| {
            matches!(
                s.phase,
                Phase::Ready | Phase::Down | Phase::GaveUp | Phase::Stopped
            )
        });
        match tokio::time::timeout_at(deadline, wait).await {
            Ok(Ok(s)) if s.phase == Phase::Ready => {}
            Ok(Ok(s)) => return Err(format!("{name} never became healthy ({:?})", s.phase)),
            Ok(Err(_)) => return Err(format!("{name} is gone")),
            Err(_) => return Err(format!("{name} not healthy within {}", human(limit))),
        }
    }
    Ok(())
}

fn run_id(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Rebuilds a scenario from the copies its journal keeps.
pub fn scenario_from_journal(run: &journal::RunRow) -> Option<Scenario> {
    let (path, toml) = (run.scenario_path.as_ref()?, run.scenario_toml.as_ref()?);
    let (config_path, config) = (run.config_path.clone()?, run.config.clone()?);
    Scenario::parse_with(Path::new(path), toml, |_| {
        crate::config::Config::parse(Path::new(&config_path), &config)
    })
    .ok()
}

/// Rewrites a long run's partial report in a child process (`soak __report
/// RUN_DIR`). At hour 72 that means reading millions of sample rows and
/// rendering their charts: hundreds of MB and seconds of CPU that soak's own
/// process must neither keep (its RSS is judged flat) nor spend on the loop
/// that times faults. One at a time, at low priority so the services under
/// test keep the CPU, and it dies with soak even on SIGKILL.
#[derive(Default)]
struct Refresher {
    child: Option<tokio::process::Child>,
}

impl Refresher {
    async fn refresh(&mut self, exe: &Path, run_dir: &Path, rec: &Recorder) {
        if let Some(child) = &mut self.child {
            match child.try_wait() {
                // Still at the previous one: a run this long can skip one.
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
                        report_failed(
                            rec,
                            format!("the partial report failed ({status}): {}", why.trim()),
                        );
                    } else if let Ok(assertions) = serde_json::from_str(said.trim()) {
                        verdicts_so_far(rec, assertions);
                    }
                }
                Err(e) => report_failed(rec, format!("the partial report: {e}")),
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
                report_failed(rec, format!("cannot start the partial report: {e}"));
            }
        }
    }

    /// Ends a refresh in progress and reaps it.
    async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }
}

fn verdicts_so_far(rec: &Recorder, assertions: Vec<journal::VerdictSoFar>) {
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

fn report_failed(rec: &Recorder, why: String) {
    rec.emit(
        None,
        &Event::ReportFailed { error: why.clone() },
        Severity::Warn,
        why,
    );
}

/// Entry point of `soak __report RUN_DIR`, the child of [`Refresher`].
pub fn report_child_main(run_dir: &Path) -> ! {
    let code = match judge_and_report(run_dir) {
        // The verdicts so far, one JSON line for the parent: it journals
        // them and shows them at /metrics, without reading report.json.
        Ok(report) => {
            let so_far: Vec<journal::VerdictSoFar> = report
                .assertions
                .iter()
                .map(|a| journal::VerdictSoFar {
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

/// Judges a finished (or interrupted) run and writes its report files.
pub fn judge_and_report(run_dir: &Path) -> Result<Report, String> {
    // The sample tables stay in the journal, read one incarnation or one
    // aggregate at a time: this runs every few minutes on the host being
    // soaked.
    let data = RunData::open(&run_dir.join("journal.sqlite")).map_err(|e| e.to_string())?;
    let sc = data.run.as_ref().and_then(scenario_from_journal);
    let assertions = sc
        .as_ref()
        .map(|s| verdict::judge(s, &data))
        .unwrap_or_default();
    let report = report::build(&data, sc.map(|s| s.description), assertions);
    report::write(run_dir, &report).map_err(|e| format!("cannot write the report: {e}"))?;
    let html = report::html::render(&report, &data, &run_dir.join("logs"));
    report::write_atomic(&run_dir.join("report.html"), html.as_bytes())
        .map_err(|e| format!("cannot write report.html: {e}"))?;
    Ok(report)
}

pub async fn run(sc: &Scenario, opts: Options) -> Result<Outcome, RunError> {
    let reports = sc
        .config
        .harness
        .reports
        .clone()
        .unwrap_or_else(|| PathBuf::from("reports"));
    let run_dir = crate::rundir::create(&reports, &sc.name).map_err(|e| {
        RunError::Setup(format!(
            "cannot create a run directory in {}: {e}",
            reports.display()
        ))
    })?;
    let plan = Plan::new(&sc.config, &sc.services, &run_dir)
        .map_err(|e| RunError::Setup(e.to_string()))?;
    crate::supervise::preflight(&sc.config, &plan).map_err(RunError::Config)?;
    let journal = Journal::create(&run_dir.join("journal.sqlite"))
        .map_err(|e| RunError::Setup(e.to_string()))?;
    journal.tx().send(Record::Run {
        id: run_id(&run_dir),
        scenario: Some(sc.name.clone()),
        started_at: now_ms(),
        seed: opts
            .seed
            .or(sc.schedule.as_ref().map(|s| s.seed))
            .map(|s| s as i64),
        config_path: sc.config.path.display().to_string(),
        config: std::fs::read_to_string(&sc.config.path).unwrap_or_default(),
        scenario_path: Some(sc.path.display().to_string()),
        scenario_toml: std::fs::read_to_string(&sc.path).ok(),
    });
    let duration = opts.duration.unwrap_or(sc.duration);
    let seed = opts
        .seed
        .or(sc.schedule.as_ref().map(|s| s.seed))
        .unwrap_or(0);
    let steps = plan_steps(sc, duration, seed).map_err(RunError::Setup)?;
    let rec = Recorder::new(journal.tx(), opts.notes.clone());
    if sc.schedule.is_some() {
        let list: Vec<_> = steps
            .iter()
            .map(|p| ScheduledFault {
                at_ms: p.step.at.as_millis() as u64,
                action: p.step.action.name().to_string(),
                target: p.step.target.clone(),
                from: p.from.clone(),
            })
            .collect();
        rec.emit(
            None,
            &Event::Schedule { seed, faults: list },
            Severity::Info,
            format!(
                "schedule (seed {seed}): {} fault(s) over {}",
                steps.len(),
                human(duration)
            ),
        );
    }
    let links = Arc::new(
        crate::link::start_all(&plan, &rec)
            .await
            .map_err(|e| RunError::Setup(e.to_string()))?,
    );
    let link_sampler = links.sample_every(sc.config.harness.sample_every.0, &rec);
    let lag = crate::lag::heartbeat(&rec, sc.config.harness.sample_every.0);
    let sup = Arc::new(Supervisor::start(&plan, &rec, opts.shim_exe.clone()));
    // The scenario's services and what they depend on.
    let running: Vec<String> = plan.services.iter().map(|s| s.name.clone()).collect();
    let (stop_sampler, sampler_stopped) = tokio::sync::watch::channel(false);
    let sampler = tokio::spawn(crate::sample::run(
        sup.clone(),
        plan.clone(),
        rec.clone(),
        sc.config.harness.sample_every.0,
        sampler_stopped,
    ));
    let stop_signal = interrupted();
    tokio::pin!(stop_signal);

    let mut inconclusive = None;
    let mut was_interrupted = false;
    let grace = running
        .iter()
        .filter_map(|s| {
            sc.config.services[s]
                .health
                .as_ref()
                .map(|h| h.start_grace.0)
        })
        .max()
        .unwrap_or(Duration::from_secs(5))
        + Duration::from_secs(5);
    let steady_since = tokio::select! {
        r = steady(&sup, &running, grace) => match r {
            Ok(()) => {
                rec.emit(None, &Event::Steady {}, Severity::Good, "all services healthy: starting the scenario");
                Some(Instant::now())
            }
            Err(why) => {
                rec.emit(None, &Event::NotSteady { reason: why.clone() }, Severity::Bad, format!("inconclusive: {why}"));
                inconclusive = Some(why);
                None
            }
        },
        _ = &mut stop_signal => { was_interrupted = true; None }
    };

    let mut load = None;
    let mut stopped_by_step: Vec<String> = Vec::new();
    if let Some(t0) = steady_since {
        // Load is reported per second in short runs and per minute in long
        // ones: a 72 h journal stays small, and a minute's histogram still
        // places a latency spike.
        let interval = if duration > Duration::from_secs(600) {
            sc.config.harness.sample_every.0.max(LONG_RUN_LOAD_INTERVAL)
        } else {
            Duration::from_secs(1)
        };
        load = Some(Load::start(
            &sc.config,
            &plan,
            &sc.workloads,
            &rec,
            interval,
        ));
        let end = t0 + duration;
        let mut next_refresh = opts.refresh_report.map(|r| Instant::now() + r);
        let mut refresher = Refresher::default();
        let mut next = 0usize;
        let mut active: Vec<(Option<Instant>, Fault)> = Vec::new();
        loop {
            let next_step = steps.get(next).map(|p| t0 + p.step.at);
            let next_rollback = active.iter().filter_map(|(d, _)| *d).min();
            // A step already due is one waiting for its target to be ready:
            // look again in a while rather than spin.
            let poll = Instant::now() + Duration::from_millis(200);
            let step_wake = next_step.map(|t| if t <= Instant::now() { poll } else { t });
            let wake = [Some(end), step_wake, next_rollback]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(end);
            // Faults held "until the supervisor acts" end when the
            // incarnation they hit is gone; check at least every 200 ms.
            let wake = wake.min(Instant::now() + Duration::from_millis(200));
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = &mut stop_signal => { was_interrupted = true; break; }
            }
            let now = Instant::now();
            let mut i = 0;
            while i < active.len() {
                let current = sup
                    .state(&active[i].1.target)
                    .ok()
                    .and_then(|s| s.borrow().incarnation);
                let due = active[i].0.is_some_and(|d| d <= now);
                let open_ended_done = active[i].0.is_none() && active[i].1.target_replaced(current);
                if due || open_ended_done {
                    active.swap_remove(i).1.roll_back(&rec).await;
                } else {
                    i += 1;
                }
            }
            if now >= end {
                break;
            }
            if let (Some(at), Some(every)) = (next_refresh, opts.refresh_report)
                && now >= at
            {
                // Off the runtime: a slow disk must not stall fault timing.
                let journal = rec.journal.clone();
                let _ = tokio::task::spawn_blocking(move || journal.flush()).await;
                refresher.refresh(&opts.shim_exe, &run_dir, &rec).await;
                next_refresh = Some(now + every);
            }
            if let Some(due) = next_step
                && due <= now
            {
                let Planned {
                    step, scheduled, ..
                } = &steps[next];
                // A scheduled fault on a service that is down waits for its
                // next ready incarnation, then is skipped: a soak never ends
                // because one fault could not land.
                if *scheduled && !step.action.is_link() {
                    let ready = sup
                        .state(&step.target)
                        .is_ok_and(|s| s.borrow().phase == Phase::Ready);
                    if !ready {
                        if now < due + SCHEDULED_FAULT_WAIT {
                            continue;
                        }
                        skip(
                            &rec,
                            next,
                            step,
                            format!(
                                "{} was not ready within {} of the fault's time",
                                step.target,
                                human(SCHEDULED_FAULT_WAIT)
                            ),
                        );
                        next += 1;
                        continue;
                    }
                }
                let consistency = sc
                    .expect
                    .consistent_reads
                    .as_ref()
                    .and_then(|w| sc.config.workloads.get(w.get_ref()));
                let targets = chaos::Targets {
                    sup: &sup,
                    plan: &plan,
                    links: &links,
                    restart_after_stop: *scheduled,
                };
                match chaos::inject(next, step, &targets, &rec, &opts.shim_exe, consistency).await {
                    Ok(fault) => {
                        if step.action == Action::Stop && !*scheduled {
                            stopped_by_step.push(step.target.clone());
                        }
                        // A kill or a stop leaves nothing to undo.
                        if !matches!(step.action, Action::Kill { .. } | Action::Stop) {
                            let until = step.action.hold().map(|h| Instant::now() + h);
                            active.push((until, fault));
                        }
                    }
                    Err(e) if *scheduled => skip(&rec, next, step, e.to_string()),
                    Err(e) => {
                        rec.emit(
                            Some(&step.target),
                            &Event::InjectFailed {
                                step: next,
                                error: e.to_string(),
                            },
                            Severity::Bad,
                            e.to_string(),
                        );
                        inconclusive = Some(e.to_string());
                        break;
                    }
                }
                next += 1;
            }
        }
        // Scheduled faults still waiting for their target when the soak
        // ended: every planned fault is journaled as landed or skipped.
        if !was_interrupted && inconclusive.is_none() {
            for (i, p) in steps.iter().enumerate().skip(next) {
                if p.scheduled && t0 + p.step.at <= Instant::now() {
                    let why = format!("the run ended while {} was not ready", p.step.target);
                    skip(&rec, i, &p.step, why);
                }
            }
        }
        for (_, fault) in active.drain(..) {
            fault.roll_back(&rec).await;
        }
        // A partial report finishing after the final one would replace it.
        refresher.stop().await;
    }
    if let Some(load) = &mut load {
        load.stop().await;
    }
    if !was_interrupted && inconclusive.is_none() {
        let recovering: Vec<String> = sc
            .services
            .iter()
            .filter(|s| !stopped_by_step.contains(s))
            .cloned()
            .collect();
        tokio::select! {
            r = steady(&sup, &recovering, Duration::from_secs(30)) => {
                if let Err(why) = r {
                    rec.emit(None, &Event::NotRecovered { reason: why.clone() }, Severity::Bad, format!("not recovered: {why}"));
                }
            }
            _ = &mut stop_signal => was_interrupted = true,
        }
    }
    if !was_interrupted && let Some(load) = &load {
        for w in &sc.workloads {
            load.read_back(w, &rec).await;
        }
    }
    sup.stop_all().await;
    let _ = stop_sampler.send(true);
    let _ = sampler.await;
    // Links outlive the services that use them, so no service sees its
    // dependency vanish while it stops.
    if let Some(t) = link_sampler {
        t.abort();
        let _ = t.await;
    }
    if let Ok(links) = Arc::try_unwrap(links) {
        links.shutdown(&rec).await;
    }
    lag.abort();
    let _ = lag.await;
    if !was_interrupted {
        for sp in &plan.services {
            // What the service left, listed before soak opens its databases:
            // the check's own connection may create -wal and -shm files,
            // which `no_leftovers` must not blame on the service.
            let files: Vec<String> = std::fs::read_dir(&sp.data_dir)
                .map(|rd| {
                    rd.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                        .collect()
                })
                .unwrap_or_default();
            rec.journal.emit(
                Some(&sp.name),
                &Event::DataDir {
                    path: sp.data_dir.display().to_string(),
                    files,
                },
            );
            for db in &sp.sqlite {
                let result = integrity_check(db);
                let sev = if result == "ok" {
                    Severity::Good
                } else {
                    Severity::Bad
                };
                rec.emit(
                    Some(&sp.name),
                    &Event::Integrity {
                        db: db.display().to_string(),
                        result: result.clone(),
                    },
                    sev,
                    format!("integrity_check {}: {result}", db.display()),
                );
            }
        }
    }
    if was_interrupted {
        rec.emit(
            None,
            &Event::Interrupted {},
            Severity::Warn,
            "interrupted: faults rolled back, services stopped",
        );
    }
    rec.journal.send(Record::RunEnded {
        ended_at: now_ms(),
        interrupted: was_interrupted,
    });
    drop(rec);
    drop(sup);
    journal.close();
    let report = judge_and_report(&run_dir).map_err(RunError::Setup)?;
    Ok(Outcome {
        run_dir,
        report,
        inconclusive,
    })
}

/// `PRAGMA integrity_check` through a read-only connection. On a WAL
/// database whose service closed it cleanly, that connection creates the
/// -wal and -shm files again and, read-only, cannot remove them: soak
/// removes the ones it made, so a user's data dir is left as the service
/// left it.
fn integrity_check(db: &Path) -> String {
    if !db.exists() {
        return format!("missing: {}", db.display());
    }
    let side = |suffix: &str| {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        std::path::PathBuf::from(p)
    };
    let made: Vec<_> = ["-wal", "-shm"]
        .into_iter()
        .map(side)
        .filter(|p| !p.exists())
        .collect();
    let check = || -> rusqlite::Result<String> {
        let conn =
            rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
    };
    let result = check().unwrap_or_else(|e| format!("cannot check: {e}"));
    // Every service is stopped by now, and a read-only connection writes
    // no frames: the files it made hold nothing (a -shm is only an index
    // of the -wal, rebuilt by the next opener).
    for p in made {
        let _ = std::fs::remove_file(&p);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soak_scenario() -> Scenario {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/soak.toml");
        Scenario::load(&path).unwrap()
    }

    #[test]
    fn the_same_seed_replays_the_same_faults_and_another_does_not() {
        let sc = soak_scenario();
        let day = Duration::from_secs(24 * 3600);
        let describe = |seed| -> Vec<(Duration, String, String)> {
            plan_steps(&sc, day, seed)
                .unwrap()
                .into_iter()
                .map(|p| (p.step.at, p.step.target, p.from))
                .collect()
        };
        let a = describe(42);
        assert_eq!(a, describe(42));
        assert_ne!(a, describe(43));
        // One fault per hour after the first, each within its hour plus jitter.
        assert_eq!(a.len(), 23, "{a:#?}");
        assert!(a.iter().all(|(at, ..)| *at < day));
        let kinds: std::collections::BTreeSet<&str> =
            a.iter().map(|(_, _, f)| f.as_str()).collect();
        assert!(kinds.len() >= 2, "the picks vary: {kinds:?}");
    }

    #[test]
    fn splitmix_is_the_reference_sequence() {
        // First outputs of splitmix64 seeded with 0 (Vigna's reference).
        let mut r = SplitMix(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn the_integrity_check_leaves_a_data_dir_as_the_service_left_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("store.db");
        {
            let c = rusqlite::Connection::open(&db).unwrap();
            c.pragma_update(None, "journal_mode", "wal").unwrap();
            c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
                .unwrap();
        }
        // A clean close checkpoints and deletes the -wal: only the database.
        let files = || {
            let mut f: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            f.sort();
            f
        };
        assert_eq!(files(), ["store.db"]);
        assert_eq!(super::integrity_check(&db), "ok");
        assert_eq!(files(), ["store.db"], "soak's check left files behind");
    }
}
