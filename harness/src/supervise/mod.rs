//! The supervisor: keeps each planned service running the way systemd or
//! launchd would, one [`shim`] per incarnation.
//!
//! One tokio task per service owns its whole life: start (after restart delay,
//! backoff and throttle), watch (shim reports and health probes in one
//! `select!`), decide (restart policy, start limit), record (journal). Others
//! talk to it through [`Supervisor`]: send a signal, stop, read its state.
//! The supervisor never judges; it records what happened and why.

pub mod client;
mod container;
mod logs;
mod preflight;
pub mod probe;
pub mod procfs;
pub mod shim;

use crate::clock::now_ms;
use crate::config::{RestartPolicy, units::signal_name};
use crate::journal::{Cause, Event, OrphanProcess, Record};
use crate::plan::{Plan, ServicePlan};
use crate::record::{Recorder, Severity};
use client::ShimProcess;
use shim::{Scope, ShimCommand, ShimReport, ShimSpec};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

pub use preflight::preflight;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    #[default]
    Starting,
    Ready,
    /// Waiting out restart delay, backoff or throttle.
    Waiting,
    /// Ended and not restarted (policy).
    Down,
    GaveUp,
    Stopped,
}

impl Phase {
    /// In a few words, for a reason a user reads.
    pub fn describe(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Ready => "ready",
            Phase::Waiting => "waiting to restart",
            Phase::Down => "down, not restarted by its policy",
            Phase::GaveUp => "gave up restarting",
            Phase::Stopped => "stopped",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ServiceState {
    pub phase: Phase,
    pub incarnation: Option<i64>,
    pub pid: Option<i32>,
    /// The container of the current incarnation, for an image service.
    pub container: Option<String>,
    /// The signal that stops the current incarnation gracefully: the
    /// config's `stop.signal`, or an image's STOPSIGNAL in place of the
    /// default TERM (it is how the image's author says to stop it).
    pub stop_signal: Option<i32>,
    pub starts: u32,
}

/// How a stop went, for `stops_within` and `exit_code`.
#[derive(Debug, Clone, PartialEq)]
pub struct StopOutcome {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub took: Duration,
    pub killed_after_grace: bool,
}

enum Control {
    Signal {
        signal: i32,
        scope: Scope,
        planned: bool,
        reply: oneshot::Sender<Vec<i32>>,
    },
    Stop {
        reply: oneshot::Sender<Option<StopOutcome>>,
        /// Start it again once stopped (`systemctl restart`), instead of
        /// leaving it down.
        then_start: bool,
    },
}

/// The answer to a stop, sent once the incarnation is over.
struct StopReply {
    reply: oneshot::Sender<Option<StopOutcome>>,
    outcome: StopOutcome,
    then_start: bool,
}

struct Handle {
    control: mpsc::UnboundedSender<Control>,
    state: watch::Receiver<ServiceState>,
    /// Services of this run that depend on this one: stopped before it.
    dependents: Vec<String>,
}

/// A service another waits for before its first start.
struct Dependency {
    name: String,
    state: watch::Receiver<ServiceState>,
    /// How long it may take to be ready, counting what it waits for itself.
    budget: Duration,
}

/// What `sp` depends on among the services of this run. A dependency left
/// out of the run (`soak up gateway`) is the user's choice: not waited for.
fn dependencies(plan: &Plan, sp: &ServicePlan) -> Vec<String> {
    sp.config
        .depends_on
        .iter()
        .map(|d| d.get_ref().clone())
        .filter(|d| plan.service(d).is_some())
        .collect()
}

/// How long `name` may take to become ready from the run's start: its own
/// `start_grace` (none without a health check: it is ready once started)
/// after the slowest of what it waits for. Config validation refused
/// cycles, so the recursion ends.
fn ready_budget(plan: &Plan, name: &str) -> Duration {
    let Some(sp) = plan.service(name) else {
        return Duration::ZERO;
    };
    let own = sp
        .config
        .health
        .as_ref()
        .map_or(Duration::ZERO, |h| h.start_grace.0);
    let before = dependencies(plan, sp)
        .iter()
        .map(|d| ready_budget(plan, d))
        .max()
        .unwrap_or_default();
    own + before
}

pub struct Supervisor {
    services: BTreeMap<String, Handle>,
    plan: Plan,
    shim_exe: PathBuf,
}

/// How a shim runs one instance of a service.
fn spec_for(sp: &ServicePlan) -> ShimSpec {
    ShimSpec {
        argv: sp.argv.clone(),
        cwd: sp.cwd.clone(),
        env: sp.env.clone(),
        log: sp.log.clone(),
        log_max: sp.config.logs.max_size.0,
        log_keep: sp.config.logs.keep,
        port: Some(sp.port),
        container: crate::container::ContainerSpec::for_service(sp),
    }
}

/// A second instance of a service, from [`Supervisor::second_instance`].
/// It is started the way every incarnation is, under a shim that ends it
/// when soak ends, but it is not supervised: nothing probes, restarts or
/// journals it. Whoever asked for it watches `shim` and ends it.
pub struct SecondInstance {
    pub shim: ShimProcess,
    /// Its port, its probe (expanded with that port) and its log.
    pub plan: ServicePlan,
    pub pid: i32,
    /// When it started (ms), as the shim reports the exec.
    pub started_ts: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("no service `{0}` in this run")]
    UnknownService(String),
    #[error("service `{0}` is not running")]
    NotRunning(String),
}

impl Supervisor {
    /// Starts every service of the plan. `shim_exe` is the `soak` binary,
    /// which runs the shim as `soak __shim`. A service with `depends_on`
    /// waits until what it depends on is ready (see [`Dependency`]).
    pub fn start(plan: &Plan, recorder: &Recorder, shim_exe: PathBuf) -> Supervisor {
        let channels: BTreeMap<String, _> = plan
            .services
            .iter()
            .map(|sp| (sp.name.clone(), watch::channel(ServiceState::default())))
            .collect();
        let services = plan
            .services
            .iter()
            .map(|sp| {
                let (control, rx) = mpsc::unbounded_channel();
                let (state_tx, state) = channels[&sp.name].clone();
                let depends_on = dependencies(plan, sp)
                    .into_iter()
                    .map(|name| Dependency {
                        state: channels[&name].1.clone(),
                        budget: ready_budget(plan, &name),
                        name,
                    })
                    .collect();
                tokio::spawn(
                    ServiceLoop {
                        sp: sp.clone(),
                        rec: recorder.clone(),
                        control: rx,
                        state: state_tx,
                        shim_exe: shim_exe.clone(),
                        standby: None,
                        depends_on,
                    }
                    .run(),
                );
                (
                    sp.name.clone(),
                    Handle {
                        control,
                        state,
                        dependents: plan
                            .services
                            .iter()
                            .filter(|d| dependencies(plan, d).contains(&sp.name))
                            .map(|d| d.name.clone())
                            .collect(),
                    },
                )
            })
            .collect();
        Supervisor {
            services,
            plan: plan.clone(),
            shim_exe,
        }
    }

    /// Starts a second instance of `service` on a free port of its own (see
    /// [`SecondInstance`]).
    pub async fn second_instance(&self, service: &str) -> Result<SecondInstance, String> {
        let port = crate::plan::free_port().map_err(|e| e.to_string())?;
        let plan = self
            .plan
            .second_instance(service, port)
            .ok_or_else(|| SuperviseError::UnknownService(service.into()).to_string())?;
        let (shim, client::Started { pid, ts, .. }) =
            ShimProcess::spawn(&self.shim_exe, &spec_for(&plan)).await?;
        Ok(SecondInstance {
            shim,
            plan,
            pid,
            started_ts: ts,
        })
    }

    fn handle(&self, service: &str) -> Result<&Handle, SuperviseError> {
        self.services
            .get(service)
            .ok_or_else(|| SuperviseError::UnknownService(service.into()))
    }

    pub fn state(&self, service: &str) -> Result<watch::Receiver<ServiceState>, SuperviseError> {
        Ok(self.handle(service)?.state.clone())
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.services.keys().map(String::as_str)
    }

    /// Sends `signal` to `scope` of the current incarnation. `planned` marks a
    /// death that follows as intended (a scenario step), not a failure, if it
    /// follows soon enough to be the signal's doing: within a few seconds of
    /// a SIGKILL, within the service's stop grace of another fatal signal.
    pub async fn signal(
        &self,
        service: &str,
        signal: i32,
        scope: Scope,
        planned: bool,
    ) -> Result<Vec<i32>, SuperviseError> {
        let (reply, rx) = oneshot::channel();
        let _ = self.handle(service)?.control.send(Control::Signal {
            signal,
            scope,
            planned,
            reply,
        });
        rx.await
            .map_err(|_| SuperviseError::NotRunning(service.into()))
    }

    /// Gracefully stops one service (stop signal, grace, kill) and keeps it down.
    pub async fn stop(&self, service: &str) -> Result<Option<StopOutcome>, SuperviseError> {
        let (reply, rx) = oneshot::channel();
        let _ = self.handle(service)?.control.send(Control::Stop {
            reply,
            then_start: false,
        });
        Ok(rx.await.ok().flatten())
    }

    /// Stops the service gracefully, as [`Supervisor::stop`] does and with
    /// the same outcome, then starts it again at once (throttle permitting),
    /// like `systemctl restart`: a soak's scheduled stop must not leave the
    /// service down for the rest of the run.
    pub async fn restart(&self, service: &str) -> Result<Option<StopOutcome>, SuperviseError> {
        let (reply, rx) = oneshot::channel();
        let _ = self.handle(service)?.control.send(Control::Stop {
            reply,
            then_start: true,
        });
        Ok(rx.await.ok().flatten())
    }

    /// Stops every service and waits until each is stopped: in parallel,
    /// except that a service stops only after everything that depends on it
    /// has (the start order, reversed).
    pub async fn stop_all(&self) {
        let mut tasks = tokio::task::JoinSet::new();
        for h in self.services.values() {
            let dependents: Vec<_> = h
                .dependents
                .iter()
                .filter_map(|d| self.services.get(d))
                .map(|d| d.state.clone())
                .collect();
            let (control, mut state) = (h.control.clone(), h.state.clone());
            tasks.spawn(async move {
                for mut d in dependents {
                    let _ = d.wait_for(|s| s.phase == Phase::Stopped).await;
                }
                let (reply, rx) = oneshot::channel();
                let _ = control.send(Control::Stop {
                    reply,
                    then_start: false,
                });
                let _ = rx.await;
                let _ = state.wait_for(|s| s.phase == Phase::Stopped).await;
            });
        }
        while tasks.join_next().await.is_some() {}
    }
}

/// How waiting for dependencies ended.
enum Waited {
    Ready,
    /// Asked to stop meanwhile.
    Stop,
    /// Why the service will not start.
    NotReady(String),
}

/// How an incarnation ended, before the restart decision names its cause.
struct Ending {
    incarnation: Option<i64>,
    exit_code: Option<i32>,
    signal: Option<i32>,
    orphans: usize,
    cause: Cause,
    /// When it started, as the journal has it (the shim's report of the
    /// exec), or when the attempt was made if it never started.
    started: Instant,
    up_for: Duration,
    ts: i64,
}

struct ServiceLoop {
    sp: ServicePlan,
    rec: Recorder,
    control: mpsc::UnboundedReceiver<Control>,
    state: watch::Sender<ServiceState>,
    shim_exe: PathBuf,
    /// The next incarnation's shim, started while this one runs so that a
    /// crash is followed by one fork+exec, not two (see `Standby`).
    standby: Option<client::Standby>,
    /// Waited for before the first start.
    depends_on: Vec<Dependency>,
}

impl ServiceLoop {
    fn name(&self) -> &str {
        &self.sp.name
    }

    fn set_phase(&self, phase: Phase) {
        self.state.send_modify(|s| s.phase = phase);
    }

    /// Waits `d`, answering controls; false if asked to stop meanwhile.
    async fn wait(&mut self, d: Duration) -> bool {
        let sleep = tokio::time::sleep(d);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return true,
                c = self.control.recv() => match c {
                    Some(Control::Signal { reply, .. }) => drop(reply),
                    Some(Control::Stop { reply, .. }) => {
                        let _ = reply.send(None);
                        return false;
                    }
                    None => return false,
                },
            }
        }
    }

    /// Waits until every dependency is ready, each for its own budget plus
    /// this service's `start_grace`, answering controls meanwhile.
    async fn wait_for_dependencies(&mut self) -> Waited {
        let own = self
            .sp
            .config
            .health
            .as_ref()
            .map_or(Duration::ZERO, |h| h.start_grace.0);
        let began = Instant::now();
        let deps = std::mem::take(&mut self.depends_on);
        for mut dep in deps {
            let limit = own + dep.budget;
            let deadline =
                tokio::time::sleep((began + limit).saturating_duration_since(Instant::now()));
            tokio::pin!(deadline);
            loop {
                let phase = dep.state.borrow_and_update().phase;
                match phase {
                    Phase::Ready => break,
                    Phase::Down | Phase::GaveUp | Phase::Stopped => {
                        return Waited::NotReady(format!(
                            "not started: it depends on `{}`, which is down ({})",
                            dep.name,
                            match phase {
                                Phase::GaveUp => "it gave up restarting",
                                Phase::Stopped => "it was stopped",
                                _ => "it ended or never started, and is not restarted",
                            }
                        ));
                    }
                    Phase::Starting | Phase::Waiting => {}
                }
                tokio::select! {
                    _ = &mut deadline => {
                        return Waited::NotReady(format!(
                            "not started: it depends on `{}`, which was not healthy within {} \
                             (this service's start_grace plus the time `{}` may take to be ready)",
                            dep.name,
                            crate::clock::human(limit),
                            dep.name,
                        ));
                    }
                    changed = dep.state.changed() => if changed.is_err() {
                        return Waited::NotReady(format!(
                            "not started: it depends on `{}`, whose supervisor ended", dep.name));
                    },
                    c = self.control.recv() => match c {
                        Some(Control::Signal { reply, .. }) => drop(reply),
                        Some(Control::Stop { reply, .. }) => {
                            let _ = reply.send(None);
                            return Waited::Stop;
                        }
                        None => return Waited::Stop,
                    },
                }
            }
        }
        Waited::Ready
    }

    /// Idles after the service is down for good, until told to stop.
    async fn park(&mut self, phase: Phase) {
        self.drop_standby().await;
        self.set_phase(phase);
        self.state.send_modify(|s| {
            s.pid = None;
        });
        while let Some(c) = self.control.recv().await {
            match c {
                Control::Signal { reply, .. } => drop(reply),
                Control::Stop { reply, .. } => {
                    let _ = reply.send(None);
                    break;
                }
            }
        }
        self.set_phase(Phase::Stopped);
    }

    /// Lets the standby shim go. Done before the service reports Stopped:
    /// whoever waits for that may next block on the journal closing, which
    /// waits for this task's recorder.
    async fn drop_standby(&mut self) {
        if let Some(s) = self.standby.take() {
            s.close().await;
        }
    }

    /// Starts the service from the standby shim when there is one, else
    /// from a fresh shim; a standby that died while waiting is replaced once.
    async fn start(&mut self, spec: &ShimSpec) -> Result<(ShimProcess, client::Started), String> {
        let daemon = self.daemon();
        if let Some(standby) = self.standby.take() {
            match standby.start(spec, daemon.as_ref()).await {
                Ok(s) => return Ok(s),
                Err(client::StartError::Failed(e)) => return Err(e),
                Err(client::StartError::ShimLost) => {}
            }
        }
        ShimProcess::spawn_following(&self.shim_exe, spec, daemon.as_ref()).await
    }

    /// How to follow this service if it daemonizes: its `pidfile`, with the
    /// command's placeholders expanded and a relative path taken from its
    /// cwd, waited for as long as the service may take to be healthy.
    fn daemon(&self) -> Option<shim::Daemon> {
        let template = self.sp.config.pidfile.as_ref()?;
        let vars = [
            ("port", self.sp.port.to_string()),
            ("data_dir", self.sp.data_dir.display().to_string()),
            ("service", self.sp.name.clone()),
        ];
        let wait = self
            .sp
            .config
            .health
            .as_ref()
            .map_or(DAEMON_WAIT, |h| h.start_grace.0);
        Some(shim::Daemon {
            pidfile: self.sp.cwd.join(crate::plan::expand_all(template, &vars)),
            wait_ms: wait.as_millis() as u64,
        })
    }

    /// For a daemonizing service, waits until the shim follows the daemon
    /// (its pid) or says the incarnation ended without one (its exit).
    async fn follow_daemon(&mut self, shim: &mut ShimProcess) -> Result<i32, Option<ShimReport>> {
        loop {
            match shim.report().await {
                Some(ShimReport::Adopted { pid, .. }) => return Ok(pid),
                Some(ShimReport::NotAdopted { error }) => self.rec.emit(
                    Some(self.name()),
                    &Event::SpawnFailed {
                        error: error.clone(),
                    },
                    Severity::Bad,
                    error,
                ),
                Some(r @ ShimReport::Exited { .. }) => return Err(Some(r)),
                Some(_) => {}
                None => return Err(None),
            }
        }
    }

    async fn run(mut self) {
        let cfg = self.sp.config.clone();
        let mut starts: VecDeque<Instant> = VecDeque::new();
        let mut failures_in_row: u32 = 0;
        let mut last_start: Option<Instant> = None;
        let mut delay = Duration::ZERO;
        if !self.depends_on.is_empty() {
            self.set_phase(Phase::Waiting);
            match self.wait_for_dependencies().await {
                Waited::Ready => {}
                Waited::Stop => {
                    self.set_phase(Phase::Stopped);
                    return;
                }
                Waited::NotReady(reason) => {
                    self.rec.emit(
                        Some(self.name()),
                        &Event::SpawnFailed {
                            error: reason.clone(),
                        },
                        Severity::Bad,
                        reason,
                    );
                    self.park(Phase::Down).await;
                    return;
                }
            }
        }
        loop {
            let throttle_left = last_start
                .map(|t| (t + cfg.throttle.0).saturating_duration_since(Instant::now()))
                .unwrap_or_default();
            let wait = delay.max(throttle_left);
            if !wait.is_zero() {
                self.set_phase(Phase::Waiting);
                if !self.wait(wait).await {
                    self.drop_standby().await;
                    self.set_phase(Phase::Stopped);
                    return;
                }
            }
            self.state.send_modify(|s| {
                s.starts += 1;
                s.phase = Phase::Starting;
            });
            let (mut ending, stop_reply) = self.incarnation().await;
            // Throttle and start limit count from the start the journal
            // records, not from the decision to start: a fresh shim takes
            // tens of milliseconds to exec, a standby almost none, and the
            // promise "starts at least `throttle` apart" is about the starts.
            starts.push_back(ending.started);
            last_start = Some(ending.started);

            if ending.cause == Cause::Stopped {
                let then_start = stop_reply.as_ref().is_some_and(|r| r.then_start);
                if !then_start {
                    self.drop_standby().await;
                }
                self.end(&ending);
                if let Some(r) = stop_reply {
                    let _ = r.reply.send(Some(r.outcome));
                }
                if then_start {
                    delay = Duration::ZERO;
                    continue;
                }
                self.state.send_modify(|s| {
                    s.phase = Phase::Stopped;
                    s.pid = None;
                });
                return;
            }
            if ending.incarnation.is_none() && self.state.borrow().starts == 1 {
                // The command never ran once (no such program, not
                // executable): retrying cannot help, and retries until the
                // start limit would bury the reason under "gave up".
                self.park(Phase::Down).await;
                return;
            }
            let failed = matches!(
                ending.cause,
                Cause::Unplanned | Cause::Hung | Cause::OomKilled
            ) && !(ending.cause == Cause::Unplanned && ending.exit_code == Some(0));
            let restart = match cfg.restart {
                RestartPolicy::Always => true,
                RestartPolicy::Never => false,
                RestartPolicy::OnFailure => {
                    ending.exit_code != Some(0) || ending.cause == Cause::Hung
                }
            };
            if !restart {
                self.end(&ending);
                self.rec.emit(
                    Some(self.name()),
                    &Event::Down {
                        restart: cfg.restart,
                    },
                    Severity::Warn,
                    format!("stays down (restart = {:?})", cfg.restart),
                );
                self.park(Phase::Down).await;
                return;
            }
            let window = cfg.start_limit.interval.0;
            while starts.front().is_some_and(|t| t.elapsed() > window) {
                starts.pop_front();
            }
            if starts.len() >= cfg.start_limit.burst as usize {
                ending.cause = Cause::GaveUp;
                self.end(&ending);
                self.rec.emit(
                    Some(self.name()),
                    &Event::GaveUp {
                        starts: starts.len(),
                        interval_ms: window.as_millis() as u64,
                    },
                    Severity::Bad,
                    format!(
                        "gave up: {} starts within {} (start_limit)",
                        starts.len(),
                        crate::clock::human(window)
                    ),
                );
                self.park(Phase::GaveUp).await;
                return;
            }
            self.end(&ending);
            if failed {
                failures_in_row = if ending.up_for >= cfg.backoff.reset_after.0 {
                    1
                } else {
                    failures_in_row + 1
                };
            } else {
                failures_in_row = 0;
            }
            let exp = failures_in_row.saturating_sub(1).min(64) as i32;
            let backoff = cfg.restart_delay.0.as_secs_f64() * cfg.backoff.factor.max(1.0).powi(exp);
            delay = Duration::from_secs_f64(backoff.min(cfg.backoff.max.0.as_secs_f64()));
            if !delay.is_zero() || !cfg.throttle.0.is_zero() {
                self.rec.emit(
                    Some(self.name()),
                    &Event::RestartScheduled {
                        delay_ms: delay.as_millis() as u64,
                        failures_in_row,
                    },
                    Severity::Info,
                    format!("restarting in {}", crate::clock::human(delay)),
                );
            }
        }
    }

    fn end(&self, e: &Ending) {
        if let Some(id) = e.incarnation {
            self.rec.journal.send(Record::Ended {
                incarnation: id,
                ended_at: e.ts,
                exit_code: e.exit_code,
                signal: e.signal.map(signal_name),
                cause: e.cause,
                orphans: e.orphans,
            });
        }
    }

    /// Runs one incarnation from spawn to reaped. Returns how it ended and,
    /// if a stop was asked for, whom to tell how the stop went.
    async fn incarnation(&mut self) -> (Ending, Option<StopReply>) {
        let name = self.sp.name.clone();
        let attempt = Instant::now();
        let spawn_failed = |ts| Ending {
            incarnation: None,
            exit_code: None,
            signal: None,
            orphans: 0,
            cause: Cause::Unplanned,
            started: attempt,
            up_for: Duration::ZERO,
            ts,
        };
        let spec = spec_for(&self.sp);
        let (
            mut shim,
            client::Started {
                pid,
                ts: started_ts,
                container,
                image_stop_signal,
            },
        ) = match self.start(&spec).await {
            Ok(s) => s,
            Err(error) => {
                let first = self.state.borrow().starts == 1;
                self.rec.emit(
                    Some(&name),
                    &Event::SpawnFailed {
                        error: error.clone(),
                    },
                    Severity::Bad,
                    if first {
                        format!("{error}; not retried: the first start failed, so the command cannot run as configured")
                    } else {
                        error.clone()
                    },
                );
                return (spawn_failed(now_ms()), None);
            }
        };
        let started = instant_of(started_ts);
        let stop_signal = match image_stop_signal {
            Some(image) if self.sp.config.stop.signal.0 == libc::SIGTERM => image,
            _ => self.sp.config.stop.signal.0,
        };
        // The journal's pid is the one a user would kill: the daemon's.
        let mut exited = None;
        let pid = if self.sp.config.pidfile.is_some() {
            match self.follow_daemon(&mut shim).await {
                Ok(daemon) => daemon,
                Err(ended) => {
                    exited = ended;
                    pid
                }
            }
        } else {
            pid
        };
        let id = self.rec.journal.new_incarnation_id();
        self.rec.journal.send(Record::Started {
            incarnation: id,
            service: name.clone(),
            pid,
            started_at: started_ts,
        });
        let text = match &container {
            Some(cid) => format!(
                "started container {} (host pid {pid})",
                &cid[..cid.len().min(12)]
            ),
            None => format!("started pid {pid}"),
        };
        self.rec.emit(
            Some(&name),
            &Event::Started {
                pid,
                incarnation: id,
                container: container.clone(),
            },
            Severity::Info,
            text,
        );
        self.state.send_modify(|s| {
            s.incarnation = Some(id);
            s.pid = Some(pid);
            s.container = container.clone();
            s.stop_signal = Some(stop_signal);
        });
        if self.sp.config.restart != RestartPolicy::Never {
            match ShimProcess::prepare(&self.shim_exe) {
                Ok(s) => self.standby = Some(s),
                // Not fatal: the next start spawns a shim the slow way.
                Err(e) => self.rec.emit(
                    Some(&name),
                    &Event::StandbyFailed {
                        error: e.to_string(),
                    },
                    Severity::Warn,
                    format!("no standby shim, the next restart will be slower: {e}"),
                ),
            }
        }

        let (health_tx, mut health_rx) = mpsc::channel(4);
        let health_task = match (&self.sp.probe, &self.sp.config.health) {
            _ if exited.is_some() => None,
            (Some(probe), Some(h)) => {
                let (probe, h, body) = (probe.clone(), h.clone(), self.sp.expect_body.clone());
                Some(tokio::spawn(async move {
                    // Until ready, probe often so "healthy again" is timed
                    // closely; after that at the configured interval.
                    let mut ready = false;
                    loop {
                        let t = Instant::now();
                        // A stopped process is hung whatever the probe says:
                        // the kernel completes a TCP handshake from the
                        // listen backlog for a SIGSTOPped server.
                        let r = match procfs::stopped(pid) {
                            Some(state) => Err(format!("pid {pid} is stopped (state {state})")),
                            None => {
                                probe::check(&probe, h.expect_status, body.as_deref(), h.timeout.0)
                                    .await
                            }
                        };
                        ready |= r.is_ok();
                        if health_tx.send(r).await.is_err() {
                            return;
                        }
                        let period = if ready {
                            h.interval.0
                        } else {
                            h.interval.0.min(Duration::from_millis(100))
                        };
                        tokio::time::sleep(period.saturating_sub(t.elapsed())).await;
                    }
                }))
            }
            _ => {
                self.ready(id, &name, started);
                None
            }
        };
        let health = self.sp.config.health.clone();

        let mut ready = health_task.is_none();
        let mut consecutive = 0u32;
        let mut hung = false;
        // A planned signal excuses the death it causes, not any death after
        // it: a service that survives a fault's TERM and crashes an hour
        // later crashed unplanned.
        let mut planned_until: Option<Instant> = None;
        let mut stop: Option<(oneshot::Sender<Option<StopOutcome>>, i64, bool)> = None;
        let mut pending: VecDeque<oneshot::Sender<Vec<i32>>> = VecDeque::new();
        let mut control_open = true;

        while exited.is_none() {
            tokio::select! {
                r = shim.report() => match r {
                    Some(ShimReport::Signalled { pids, .. }) => {
                        if let Some(r) = pending.pop_front() {
                            let _ = r.send(pids);
                        }
                    }
                    Some(r @ ShimReport::Exited { .. }) => exited = Some(r),
                    Some(_) => {}
                    None => {
                        self.rec.emit(Some(&name), &Event::ShimLost {}, Severity::Bad,
                            "the shim ended without reporting an exit");
                        break;
                    }
                },
                Some(r) = health_rx.recv(), if !hung && stop.is_none() => match r {
                    Ok(()) => {
                        if !ready {
                            ready = true;
                            self.ready(id, &name, started);
                        } else if consecutive > 0 {
                            self.rec.emit(Some(&name), &Event::ProbeRecovered { after_failures: consecutive },
                                Severity::Good, format!("healthy again after {consecutive} failed probe(s)"));
                            self.set_phase(Phase::Ready);
                        }
                        consecutive = 0;
                    }
                    Err(error) => {
                        let h = health.as_ref().expect("a probe result implies a health config");
                        if ready || started.elapsed() >= h.start_grace.0 {
                            consecutive += 1;
                            if ready {
                                self.set_phase(Phase::Starting);
                                self.rec.emit(Some(&name), &Event::ProbeFailed { error: error.to_string(), consecutive },
                                    Severity::Warn, format!("probe failed ({consecutive}/{}): {error}", h.failures));
                            }
                            if consecutive >= h.failures {
                                hung = true;
                                let reason = if ready {
                                    format!("{consecutive} consecutive probe failures, last: {error}")
                                } else {
                                    format!("not healthy within start_grace {}: {error}", crate::clock::human(h.start_grace.0))
                                };
                                self.rec.emit(Some(&name), &Event::Hung { pid, reason: reason.clone(), ready },
                                    Severity::Bad, format!("hung: {reason}; killing the tree"));
                                shim.send(&ShimCommand::Kill).await;
                            }
                        }
                    }
                },
                c = self.control.recv(), if control_open => match c {
                    Some(Control::Signal { signal, scope, planned: p, reply }) => {
                        if p && scope != Scope::Children && is_fatal(signal) {
                            planned_until = Some(Instant::now() + self.planned_window(signal));
                        }
                        pending.push_back(reply);
                        shim.send(&ShimCommand::Signal { signal, scope }).await;
                    }
                    Some(Control::Stop { reply, then_start }) => {
                        let grace = self.sp.config.stop.grace;
                        self.rec.emit(Some(&name), &Event::Stopping { signal: signal_name(stop_signal), grace_ms: grace.ms() },
                            Severity::Info, format!("stopping: SIG{} then {} grace", signal_name(stop_signal), crate::clock::human(grace.0)));
                        shim.send(&ShimCommand::Stop { signal: stop_signal, grace_ms: grace.ms() }).await;
                        stop = Some((reply, now_ms(), then_start));
                    }
                    None => {
                        control_open = false;
                        shim.send(&ShimCommand::Kill).await;
                    }
                },
            }
        }
        if let Some(t) = health_task {
            t.abort();
        }
        // The shim exits right after its exit report; reaping it is off the
        // respawn path.
        tokio::spawn(shim.close());
        for r in pending {
            let _ = r.send(Vec::new());
        }

        let Some(ShimReport::Exited {
            ts,
            exit_code,
            signal,
            orphans,
            killed_after_grace,
            log_bytes,
            oom_killed,
        }) = exited
        else {
            let mut e = spawn_failed(now_ms());
            e.incarnation = Some(id);
            e.started = started;
            return (e, None);
        };
        let how = match (exit_code, signal) {
            (Some(c), _) => format!("exited with code {c}"),
            (None, Some(s)) => format!("killed by SIG{}", signal_name(s)),
            _ => "ended".into(),
        };
        let cause = if stop.is_some() {
            Cause::Stopped
        } else if hung {
            Cause::Hung
        } else if oom_killed {
            Cause::OomKilled
        } else if planned_until.is_some_and(|until| instant_of(ts) <= until) {
            Cause::Planned
        } else {
            Cause::Unplanned
        };
        let severity = if matches!(cause, Cause::Unplanned | Cause::OomKilled) {
            Severity::Bad
        } else {
            Severity::Info
        };
        self.rec.emit(
            Some(&name),
            &Event::Exited {
                pid,
                incarnation: id,
                exit_code,
                signal: signal.map(signal_name),
                cause,
                orphans: orphans.len(),
                killed_after_grace,
                up_ms: started.elapsed().as_millis() as u64,
                log_bytes,
            },
            severity,
            format!(
                "pid {pid} {how} after {} ({})",
                crate::clock::human(started.elapsed()),
                cause.as_str()
            ),
        );
        if !orphans.is_empty() {
            let list: Vec<String> = orphans
                .iter()
                .map(|o| format!("{} ({})", o.pid, o.command))
                .collect();
            self.rec.emit(
                Some(&name),
                &Event::Orphans {
                    pid,
                    incarnation: id,
                    orphans: orphans
                        .iter()
                        .map(|o| OrphanProcess {
                            pid: o.pid,
                            command: o.command.clone(),
                            holds_port: o.holds_port,
                        })
                        .collect(),
                },
                Severity::Bad,
                format!(
                    "{} process(es) outlived pid {pid}, killed: {}",
                    orphans.len(),
                    list.join(", ")
                ),
            );
        }
        let ending = Ending {
            incarnation: Some(id),
            exit_code,
            signal,
            orphans: orphans.len(),
            cause,
            started,
            up_for: started.elapsed(),
            ts,
        };
        let stop_reply = stop.map(|(reply, asked, then_start)| {
            let took = Duration::from_millis((ts - asked).max(0) as u64);
            StopReply {
                reply,
                outcome: StopOutcome {
                    exit_code,
                    signal,
                    took,
                    killed_after_grace,
                },
                then_start,
            }
        });
        (ending, stop_reply)
    }

    /// How long after a planned fatal signal a death is still its effect:
    /// SIGKILL acts at once (a few seconds allow for a loaded host); any
    /// other signal asks the service to go, and it has its stop grace to do
    /// so, as on a graceful stop.
    fn planned_window(&self, signal: i32) -> Duration {
        if signal == libc::SIGKILL {
            KILL_WINDOW
        } else {
            self.sp.config.stop.grace.0.max(KILL_WINDOW)
        }
    }

    fn ready(&self, id: i64, name: &str, started: Instant) {
        self.rec.journal.send(Record::Ready {
            incarnation: id,
            ready_at: now_ms(),
        });
        self.rec.emit(
            Some(name),
            &Event::Ready {
                incarnation: id,
                after_ms: started.elapsed().as_millis() as u64,
            },
            Severity::Good,
            format!("ready after {}", crate::clock::human(started.elapsed())),
        );
        self.set_phase(Phase::Ready);
    }
}

/// The monotonic instant of `ts` (ms since the epoch, in the past). Rounds
/// later, never earlier, so a throttle counted from it is never short in
/// the journal's own milliseconds.
fn instant_of(ts: i64) -> Instant {
    let ago = Duration::from_millis((now_ms() - ts).max(0) as u64);
    Instant::now().checked_sub(ago).unwrap_or_else(Instant::now)
}

/// How long a daemonizing service without a health check has to write its
/// pid file.
const DAEMON_WAIT: Duration = Duration::from_secs(10);

/// How long a death after a planned SIGKILL still counts as planned.
const KILL_WINDOW: Duration = Duration::from_secs(3);

/// Signals after which a process is expected to be gone.
fn is_fatal(signal: i32) -> bool {
    [
        libc::SIGKILL,
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGABRT,
        libc::SIGHUP,
    ]
    .contains(&signal)
}
