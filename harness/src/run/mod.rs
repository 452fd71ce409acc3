//! Runs a scenario end to end, in the data flow's order: plan the faults,
//! open a session (journal, links, supervisor, samplers), reach the steady
//! state, load, inject each step on time and roll every fault back, wait for
//! recovery, read back what was written, stop, look at what the services
//! left, close the journal, then judge and report from the journal alone.

mod faults;
mod inspect;

use crate::config::scenario::Scenario;
use crate::journal::Event;
use crate::record::{Note, Severity};
use crate::report::Report;
use crate::schedule;
use crate::session::{self, Opening, Session, SessionError};
use crate::supervise::Phase;
use crate::workload::Load;
use std::path::PathBuf;
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

/// How often a long run journals its load figures.
pub const LONG_RUN_LOAD_INTERVAL: Duration = Duration::from_secs(60);

pub struct Outcome {
    pub run_dir: PathBuf,
    pub report: Report,
    /// Why the run could not be judged (never became healthy, a fault could
    /// not be injected); the report says so too.
    pub inconclusive: Option<String>,
}

/// How the run is going: every step after the steady state looks here
/// before doing its part.
#[derive(Default)]
struct Course {
    /// Ctrl-C or SIGTERM: roll back, stop, keep the journal, judge nothing.
    interrupted: bool,
    /// Why the run cannot be judged.
    inconclusive: Option<String>,
}

impl Course {
    fn undisturbed(&self) -> bool {
        !self.interrupted && self.inconclusive.is_none()
    }
}

pub async fn run(sc: &Scenario, opts: Options) -> Result<Outcome, SessionError> {
    let duration = opts.duration.unwrap_or(sc.duration);
    let seed = opts.seed.or(sc.schedule.as_ref().map(|s| s.seed));
    // A schedule that cannot be resolved fails before anything starts.
    let steps =
        schedule::plan_steps(sc, duration, seed.unwrap_or(0)).map_err(SessionError::Setup)?;
    let reports = sc
        .config
        .harness
        .reports
        .clone()
        .unwrap_or_else(|| PathBuf::from("reports"));
    let mut session = Session::open(Opening {
        config: &sc.config,
        services: &sc.services,
        reports: &reports,
        label: &sc.name,
        scenario: Some(sc),
        seed,
        shim_exe: opts.shim_exe.clone(),
        notes: opts.notes.clone(),
    })
    .await?;
    if sc.schedule.is_some() {
        schedule::journal(&session.rec, &steps, seed.unwrap_or(0), duration);
    }
    let stop = session::stop_requested();
    tokio::pin!(stop);
    let mut course = Course::default();

    let mut load = None;
    let mut stopped_by_step = Vec::new();
    if let Some(t0) = steady(&session, sc, &mut stop, &mut course).await {
        load = Some(Load::start(
            &sc.config,
            &session.plan,
            &sc.workloads,
            &session.rec,
            load_interval(sc, duration),
        ));
        let driver = faults::Driver {
            sc,
            session: &session,
            steps: &steps,
            shim_exe: &opts.shim_exe,
            refresh_report: opts.refresh_report,
        };
        stopped_by_step = driver
            .drive(t0, t0 + duration, &mut stop, &mut course)
            .await;
    }
    if let Some(load) = &mut load {
        load.stop().await;
    }
    if course.undisturbed() {
        recover(&session, sc, &stopped_by_step, &mut stop, &mut course).await;
    }
    if !course.interrupted
        && let Some(load) = &load
    {
        for w in &sc.workloads {
            // A service that is not running cannot say what it kept.
            let service = sc.config.workloads[w].service.get_ref();
            let down = match session.sup.state(service).map(|s| s.borrow().phase) {
                Ok(Phase::Ready) => None,
                Ok(phase) => Some(format!(
                    "{service} was not running at the end of the run ({})",
                    phase.describe()
                )),
                Err(e) => Some(e.to_string()),
            };
            load.read_back(w, &session.rec, down).await;
        }
    }
    session.stop().await;
    if !course.interrupted {
        inspect::data_dirs(&session);
    }
    let run_dir = session.close(course.interrupted).await;
    let report = crate::judge::judge_and_report(&run_dir).map_err(SessionError::Setup)?;
    Ok(Outcome {
        run_dir,
        report,
        inconclusive: course.inconclusive,
    })
}

/// Waits for every service to be healthy, as long as the slowest may take
/// to start, and journals whether they were. Returns when the scenario's
/// clock starts.
async fn steady(
    session: &Session,
    sc: &Scenario,
    stop: &mut (impl Future<Output = &'static str> + Unpin),
    course: &mut Course,
) -> Option<Instant> {
    let grace = sc
        .services
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
    let running: Vec<String> = session
        .plan
        .services
        .iter()
        .map(|s| s.name.clone())
        .collect();
    let rec = &session.rec;
    tokio::select! {
        r = session.steady(&running, grace) => match r {
            Ok(()) => {
                rec.emit(None, &Event::Steady {}, Severity::Good, "all services healthy: starting the scenario");
                Some(Instant::now())
            }
            Err(why) => {
                rec.emit(None, &Event::NotSteady { reason: why.clone() }, Severity::Bad, format!("inconclusive: {why}"));
                course.inconclusive = Some(why);
                None
            }
        },
        _ = stop => { course.interrupted = true; None }
    }
}

/// Load is reported per second in short runs and per minute in long ones:
/// a 72 h journal stays small, and a minute's histogram still places a
/// latency spike.
fn load_interval(sc: &Scenario, duration: Duration) -> Duration {
    if duration > Duration::from_secs(600) {
        sc.config.harness.sample_every.0.max(LONG_RUN_LOAD_INTERVAL)
    } else {
        Duration::from_secs(1)
    }
}

/// Waits for every service a step did not stop to be healthy again, and
/// journals it if one is not within 30 s.
async fn recover(
    session: &Session,
    sc: &Scenario,
    stopped_by_step: &[String],
    stop: &mut (impl Future<Output = &'static str> + Unpin),
    course: &mut Course,
) {
    let recovering: Vec<String> = sc
        .services
        .iter()
        .filter(|s| !stopped_by_step.contains(s))
        .cloned()
        .collect();
    tokio::select! {
        r = session.steady(&recovering, Duration::from_secs(30)) => {
            if let Err(why) = r {
                session.rec.emit(None, &Event::NotRecovered { reason: why.clone() }, Severity::Bad, format!("not recovered: {why}"));
            }
        }
        _ = stop => course.interrupted = true,
    }
}
