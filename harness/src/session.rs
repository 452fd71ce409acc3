//! A session: what every command that runs services shares (`soak up`,
//! `soak chaos`, `soak run`). It opens in the data flow's order: a run
//! directory, its journal, the plan, the links, the supervisor, the
//! samplers; and it closes in reverse: services stopped (each after what
//! depends on it), samplers ended, links closed after the services that use
//! them, the run's end journaled, the journal flushed. Commands add what is
//! theirs (faults, load, verdicts) between the two.

use crate::config::scenario::Scenario;
use crate::config::{Config, ConfigError};
use crate::journal::{Event, Journal, Record};
use crate::link::Links;
use crate::plan::{Plan, PlanError};
use crate::record::{Note, Recorder, Severity};
use crate::supervise::{Phase, Supervisor};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What a session is opened with.
pub struct Opening<'a> {
    pub config: &'a Config,
    /// The services to run, with what they depend on; every one when empty.
    pub services: &'a [String],
    /// Where run directories go.
    pub reports: &'a Path,
    /// The run directory's name after its time stamp: the scenario's, or `up`.
    pub label: &'a str,
    /// The scenario run, if any: the journal keeps a copy to judge from.
    pub scenario: Option<&'a Scenario>,
    /// The schedule's seed, journaled so a run can be replayed.
    pub seed: Option<u64>,
    /// The `soak` binary, which runs shims.
    pub shim_exe: PathBuf,
    /// Where events go as lines for the terminal and `/metrics`.
    pub notes: Option<UnboundedSender<Note>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// soak could not set the run up (a directory, a port, the journal).
    #[error("{0}")]
    Setup(String),
    /// Found before anything starts (a program that does not exist): the
    /// config is wrong, exit 2.
    #[error("{0}")]
    Config(ConfigError),
    /// A service named on the command line that the config does not have.
    #[error("{0}")]
    UnknownService(String),
}

pub struct Session {
    pub run_dir: PathBuf,
    pub plan: Plan,
    pub rec: Recorder,
    pub sup: Arc<Supervisor>,
    pub links: Arc<Links>,
    journal: Journal,
    /// Ended by [`Session::stop`], once.
    samplers: Option<Samplers>,
}

struct Samplers {
    stop: watch::Sender<bool>,
    services: JoinHandle<()>,
    links: Option<JoinHandle<()>>,
    lag: JoinHandle<()>,
}

impl Session {
    /// Opens a session: by the time it returns, every service is starting
    /// (each after what it depends on) and being sampled.
    pub async fn open(o: Opening<'_>) -> Result<Session, SessionError> {
        let setup = |e: &dyn std::fmt::Display| SessionError::Setup(e.to_string());
        let run_dir = crate::rundir::create(o.reports, o.label).map_err(|e| {
            SessionError::Setup(format!(
                "cannot create a run directory in {}: {e}",
                o.reports.display()
            ))
        })?;
        let plan = Plan::new(o.config, o.services, &run_dir).map_err(|e| match e {
            e @ PlanError::UnknownService { .. } => SessionError::UnknownService(e.to_string()),
            e => setup(&e),
        })?;
        crate::supervise::preflight(o.config, &plan).map_err(SessionError::Config)?;
        let journal = Journal::create(&run_dir.join("journal.sqlite")).map_err(|e| setup(&e))?;
        journal.tx().send(Record::Run {
            id: run_id(&run_dir),
            scenario: o.scenario.map(|s| s.name.clone()),
            started_at: crate::clock::now_ms(),
            seed: o.seed.map(|s| s as i64),
            config_path: o.config.path.display().to_string(),
            config: std::fs::read_to_string(&o.config.path).unwrap_or_default(),
            scenario_path: o.scenario.map(|s| s.path.display().to_string()),
            scenario_toml: o
                .scenario
                .and_then(|s| std::fs::read_to_string(&s.path).ok()),
        });
        let rec = Recorder::new(journal.tx(), o.notes);
        let every = o.config.harness.sample_every.0;
        let links = Arc::new(
            crate::link::start_all(&plan, &rec)
                .await
                .map_err(|e| setup(&e))?,
        );
        let link_sampler = links.sample_every(every, &rec);
        let lag = crate::lag::heartbeat(&rec, every);
        let sup = Arc::new(Supervisor::start(&plan, &rec, o.shim_exe));
        let (stop, stopped) = watch::channel(false);
        let services = tokio::spawn(crate::sample::run(
            sup.clone(),
            plan.clone(),
            rec.clone(),
            every,
            stopped,
        ));
        Ok(Session {
            run_dir,
            plan,
            rec,
            sup,
            links,
            journal,
            samplers: Some(Samplers {
                stop,
                services,
                links: link_sampler,
                lag,
            }),
        })
    }

    pub fn journal_path(&self) -> PathBuf {
        self.run_dir.join("journal.sqlite")
    }

    /// Waits until every one of `names` is ready; Err names one that is
    /// not, and why, once it gave up or `limit` passed.
    pub async fn steady(&self, names: &[String], limit: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + limit;
        for name in names {
            let mut state = self.sup.state(name).map_err(|e| e.to_string())?;
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
                Err(_) => {
                    return Err(format!(
                        "{name} not healthy within {}",
                        crate::clock::human(limit)
                    ));
                }
            }
        }
        Ok(())
    }

    /// Stops every service, then the samplers, then the links: links
    /// outlive the services that use them, so no service sees its
    /// dependency vanish while it stops. A second call does nothing.
    pub async fn stop(&mut self) {
        let Some(s) = self.samplers.take() else {
            return;
        };
        self.sup.stop_all().await;
        let _ = s.stop.send(true);
        let _ = s.services.await;
        if let Some(t) = s.links {
            t.abort();
            let _ = t.await;
        }
        let links = std::mem::replace(&mut self.links, Arc::new(Links::default()));
        if let Ok(links) = Arc::try_unwrap(links) {
            links.shutdown(&self.rec).await;
        }
        s.lag.abort();
        let _ = s.lag.await;
    }

    /// Stops what still runs, journals the end of the run and closes the
    /// journal, every row on disk. Returns the run directory.
    pub async fn close(mut self, interrupted: bool) -> PathBuf {
        self.stop().await;
        if interrupted {
            self.rec.emit(
                None,
                &Event::Interrupted {},
                Severity::Warn,
                "interrupted: faults rolled back, services stopped",
            );
        }
        self.rec.journal.send(Record::RunEnded {
            ended_at: crate::clock::now_ms(),
            interrupted,
        });
        let Session {
            run_dir,
            journal,
            rec,
            sup,
            ..
        } = self;
        // The writer ends once every sender is gone: the supervisor's tasks
        // hold some, so it goes first.
        drop(sup);
        drop(rec);
        journal.close();
        run_dir
    }
}

/// Resolves when soak is asked to stop, and says how: Ctrl-C or SIGTERM.
pub async fn stop_requested() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "interrupted",
        _ = term.recv() => "terminated",
    }
}

fn run_id(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
