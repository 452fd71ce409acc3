//! The `soak` command line: parse, dispatch, and map every outcome to the
//! exit codes of docs/config.md in one place ([`Outcome::code`]). What it
//! prints is in `print`; soak's own `/metrics` page in `exposed`.

mod exposed;
mod print;

use crate::clock::{human, rfc3339_ms};
use crate::config::scenario::{self, Scenario};
use crate::config::{Config, ConfigError, units::parse_duration};
use crate::journal::{self, Event};
use crate::record::Severity;
use crate::session::{Opening, Session, SessionError};
use crate::verdict::Verdict;
use clap::{Parser, Subcommand};
use exposed::MetricsServer;
use print::{Style, print_notes, print_summary, print_verdict};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The version and the commit it was built from (see build.rs).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("SOAK_COMMIT"), ")");

#[derive(Parser, Debug)]
#[command(
    name = "soak",
    version = VERSION,
    about = "Prove a hardened service is hard: supervise it, break it, watch it, judge it."
)]
pub struct Cli {
    /// Plain output: no colour (also when piped or NO_COLOR is set).
    #[arg(long, global = true)]
    plain: bool,
    /// Where run directories go, overriding the config's `reports`.
    #[arg(long, global = true, value_name = "DIR")]
    reports: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a soak.toml and kill, hang, graceful-stop and soak scenarios
    /// for one service, here; never overwrites a file.
    Init {
        /// The service's name, used in the files and their tables.
        name: String,
        /// HTTP health URL; `{port}` in it is the service's port.
        #[arg(long, value_name = "URL")]
        health: Option<String>,
        /// A fixed port, for a command that does not take `{port}`.
        #[arg(long, value_name = "N")]
        port: Option<u16>,
        /// The service's command, after `--`; `{port}` and `{data_dir}` expand.
        #[arg(last = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Check config and scenario files; errors name file:line:col (exit 0 or 2).
    Validate {
        /// Files to check; default: the soak.toml and scenarios/*.toml found
        /// from here upward.
        paths: Vec<PathBuf>,
    },
    /// Soak: run a scenario for hours with load and a fault schedule, and judge
    /// memory, fds, threads, restarts, availability and latency.
    Run {
        /// Scenario name or path; default: scenarios/soak.toml.
        #[arg(default_value = "soak")]
        scenario: String,
        /// Run this many hours (overrides the scenario's duration).
        #[arg(long, conflicts_with_all = ["minutes", "seconds"])]
        hours: Option<f64>,
        /// Run this many minutes.
        #[arg(long, conflicts_with = "seconds")]
        minutes: Option<f64>,
        /// Run this many seconds.
        #[arg(long)]
        seconds: Option<f64>,
        /// Seed of the fault schedule; the same seed replays the same faults.
        #[arg(long)]
        seed: Option<u64>,
        /// Rewrite the partial report (html, json, junit) this often while
        /// the run goes on.
        #[arg(long, value_parser = parse_for, default_value = "5m")]
        report_every: Duration,
        /// Serve soak's own figures at /metrics on this address, e.g.
        /// 127.0.0.1:9464 (overrides the config's `[harness] metrics`).
        #[arg(long, value_name = "ADDR")]
        metrics: Option<String>,
    },
    /// Judge one series with the trend detector: a CSV of time,value (time in
    /// ms since the epoch, or seconds), or a journal and a service.
    Analyze {
        /// A .csv file, or a journal.sqlite (then --service is needed).
        trace: PathBuf,
        /// With a journal: whose samples to judge (each incarnation apart).
        #[arg(long)]
        service: Option<String>,
        /// Judge RSS (bytes) against this slope, e.g. "10MB/h".
        #[arg(long, value_parser = parse_size_rate_arg, group = "limit")]
        rss_slope_max: Option<f64>,
        /// Judge open fds against this slope, e.g. "10/h".
        #[arg(long, value_parser = parse_count_rate_arg, group = "limit")]
        fds_slope_max: Option<f64>,
        /// Judge threads against this slope, e.g. "10/h".
        #[arg(long, value_parser = parse_count_rate_arg, group = "limit")]
        threads_slope_max: Option<f64>,
        /// Ignore each series' first stretch.
        #[arg(long, default_value = "5m", value_parser = parse_for)]
        warmup: Duration,
        /// Less data than this after the warm-up is unknown.
        #[arg(long, default_value = "30m", value_parser = parse_for)]
        min_span: Duration,
    },
    /// Rebuild a run's report.json, report.html and junit.xml from its journal.
    Report {
        /// The run directory; default: reports/latest.
        run_dir: Option<PathBuf>,
        /// List the runs in the reports directory instead.
        #[arg(long)]
        list: bool,
    },
    /// Run one chaos scenario and judge it: `soak chaos kill-gateway`.
    Chaos {
        /// Scenario name (scenarios/NAME.toml, found from here upward) or path.
        #[arg(required_unless_present = "list")]
        scenario: Option<String>,
        /// List the scenarios with their descriptions.
        #[arg(long)]
        list: bool,
        /// Serve soak's own figures at /metrics on this address, e.g.
        /// 127.0.0.1:9464 (overrides the config's `[harness] metrics`).
        #[arg(long, value_name = "ADDR")]
        metrics: Option<String>,
    },
    /// Run services under soak's supervisor until Ctrl-C, SIGTERM or --for.
    Up {
        /// The config file; default: soak.toml here or in a parent directory.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Stop after this long, e.g. "30s", "2h".
        #[arg(long = "for", value_parser = parse_for)]
        run_for: Option<Duration>,
        /// Serve soak's own figures at /metrics on this address, e.g.
        /// 127.0.0.1:9464 (overrides the config's `[harness] metrics`).
        #[arg(long, value_name = "ADDR")]
        metrics: Option<String>,
        /// Services to run; default: all.
        services: Vec<String>,
    },
}

fn parse_size_rate_arg(s: &str) -> Result<f64, String> {
    crate::config::units::parse_size_rate(s).map_err(|e| e.to_string())
}

fn parse_count_rate_arg(s: &str) -> Result<f64, String> {
    crate::config::units::parse_count_rate(s).map_err(|e| e.to_string())
}

fn parse_for(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

/// What a command ended with; one place turns it into an exit code.
pub enum Outcome {
    /// Every assertion passed, or the command simply worked.
    Pass,
    /// An assertion failed.
    Fail,
    /// Bad usage or config (already printed).
    Usage,
    /// Inconclusive, or soak itself could not do its job.
    Harness(String),
}

impl Outcome {
    pub fn code(&self) -> u8 {
        match self {
            Outcome::Pass => 0,
            Outcome::Fail => 1,
            Outcome::Usage => 2,
            Outcome::Harness(_) => 3,
        }
    }
}

pub fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // clap's help and version are successes; everything else is usage.
            return std::process::ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let style = Style::detect(cli.plain);
    let outcome = match cli.command {
        Command::Init {
            name,
            health,
            port,
            command,
        } => init(crate::init::Service {
            name,
            command,
            health,
            port,
        }),
        Command::Validate { paths } => validate(&paths),
        Command::Chaos { list: true, .. } => list_scenarios(),
        Command::Report { list: true, .. } => {
            list_runs(&cli.reports.unwrap_or_else(|| PathBuf::from("reports")))
        }
        Command::Report { run_dir, .. } => {
            let dir = run_dir.unwrap_or_else(|| {
                cli.reports
                    .unwrap_or_else(|| PathBuf::from("reports"))
                    .join("latest")
            });
            rebuild_report(&dir, style)
        }
        Command::Analyze {
            trace,
            service,
            rss_slope_max,
            fds_slope_max,
            threads_slope_max,
            warmup,
            min_span,
        } => {
            use crate::verdict::trend::Metric;
            let limit = match (rss_slope_max, fds_slope_max, threads_slope_max) {
                (Some(l), _, _) => Some((Metric::Rss, l)),
                (_, Some(l), _) => Some((Metric::Fds, l)),
                (_, _, Some(l)) => Some((Metric::Threads, l)),
                _ => None,
            };
            match limit {
                Some((metric, l)) => {
                    use crate::verdict::trend::Decision;
                    match crate::analyze::run(
                        &trace,
                        service.as_deref(),
                        metric,
                        l,
                        warmup,
                        min_span,
                    ) {
                        Ok(Decision::Pass) => Outcome::Pass,
                        Ok(Decision::Fail) => Outcome::Fail,
                        Ok(Decision::Unknown) => Outcome::Harness(
                            "unknown: not enough evidence to judge the trend".into(),
                        ),
                        Err(e) => {
                            eprintln!("error: {e}");
                            Outcome::Usage
                        }
                    }
                }
                None => {
                    eprintln!(
                        "error: give one of --rss-slope-max, --fds-slope-max, --threads-slope-max"
                    );
                    Outcome::Usage
                }
            }
        }
        Command::Run {
            scenario,
            hours,
            minutes,
            seconds,
            seed,
            report_every,
            metrics,
        } => {
            let secs = hours
                .map(|h| h * 3600.0)
                .or(minutes.map(|m| m * 60.0))
                .or(seconds);
            match secs {
                Some(s) if !(s.is_finite() && s > 0.0 && s < 366.0 * 86_400.0) => {
                    eprintln!("error: the duration must be above zero and under a year");
                    Outcome::Usage
                }
                // Each rewrite reads the whole journal: a loop of them would
                // only burn the CPU the services under test need.
                _ if report_every < Duration::from_secs(1) => {
                    eprintln!("error: --report-every must be at least 1s");
                    Outcome::Usage
                }
                _ => with_runtime(chaos(
                    &scenario,
                    RunKnobs {
                        duration: secs.map(Duration::from_secs_f64),
                        seed,
                        refresh_report: Some(report_every),
                    },
                    metrics,
                    cli.reports,
                    style,
                )),
            }
        }
        Command::Chaos {
            scenario: Some(name),
            metrics,
            ..
        } => with_runtime(chaos(
            &name,
            RunKnobs::default(),
            metrics,
            cli.reports,
            style,
        )),
        Command::Chaos { scenario: None, .. } => Outcome::Usage,
        Command::Up {
            config,
            run_for,
            metrics,
            services,
        } => with_runtime(up(config, run_for, services, metrics, cli.reports, style)),
    };
    if let Outcome::Harness(msg) = &outcome {
        eprintln!("soak: {msg}");
    }
    std::process::ExitCode::from(outcome.code())
}

fn with_runtime(f: impl std::future::Future<Output = Outcome>) -> Outcome {
    // One thread is plenty: soak waits on pipes, sockets and timers, and a
    // small footprint matters on a 1 GB VPS.
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(f),
        Err(e) => Outcome::Harness(format!("cannot start the async runtime: {e}")),
    }
}

fn config_error(e: &ConfigError) -> Outcome {
    eprint!("{e}");
    Outcome::Usage
}

/// A scenario names its config with a top-level `config = "..."`; a
/// config never has that key.
fn is_scenario(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.parse::<toml::Table>().ok())
        .is_some_and(|t| t.get("config").is_some_and(toml::Value::is_str))
}

fn validate(paths: &[PathBuf]) -> Outcome {
    let paths = if paths.is_empty() {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let mut found: Vec<PathBuf> = Config::find(None).ok().into_iter().collect();
        found.extend(scenario::list_dir(&cwd).into_iter().map(|(_, p)| p));
        if found.is_empty() {
            eprintln!(
                "error: no soak.toml or scenarios/ here or in a parent directory; pass the files to check"
            );
            return Outcome::Usage;
        }
        found
    } else {
        paths.to_vec()
    };
    let mut ok = true;
    for p in &paths {
        let result = if is_scenario(p) {
            Scenario::load(p).and_then(|s| {
                let picks = s.picks()?;
                Ok(format!(
                    "scenario: {} service(s), {} step(s){}, {}",
                    s.services.len(),
                    s.steps.len(),
                    if picks.is_empty() {
                        String::new()
                    } else {
                        format!(", a schedule of {} scenario(s)", picks.len())
                    },
                    human(s.duration)
                ))
            })
        } else {
            Config::load(p).map(|c| {
                format!(
                    "{} service(s), {} workload(s)",
                    c.services.len(),
                    c.workloads.len()
                )
            })
        };
        match result {
            Ok(what) => println!("ok: {} ({what})", p.display()),
            Err(e) => {
                eprint!("{e}");
                ok = false;
            }
        }
    }
    if ok { Outcome::Pass } else { Outcome::Usage }
}

fn init(service: crate::init::Service) -> Outcome {
    let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    match crate::init::init(&here, &service) {
        Ok(files) => {
            for f in &files {
                println!("wrote {}", f.strip_prefix(&here).unwrap_or(f).display());
            }
            println!(
                "next: `soak validate`, then `soak chaos kill-{0}` (or hang-{0}, graceful-stop-{0}); `soak run` soaks it",
                service.name
            );
            Outcome::Pass
        }
        Err(e) => {
            eprintln!("error: {e}");
            Outcome::Usage
        }
    }
}

fn list_scenarios() -> Outcome {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let found = scenario::list_dir(&cwd);
    if found.is_empty() {
        eprintln!("error: no scenarios/ directory here or in a parent directory");
        return Outcome::Usage;
    }
    for (name, path) in found {
        let description = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.parse::<toml::Table>().ok())
            .and_then(|t| t.get("description")?.as_str().map(str::to_string))
            .unwrap_or_default();
        println!("{name:<28} {description}");
    }
    Outcome::Pass
}

/// What `soak run` adds to a scenario run.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunKnobs {
    pub duration: Option<Duration>,
    pub seed: Option<u64>,
    /// A long run (`soak run`): show progress and rewrite the report this
    /// often. None for a chaos run, which is over in seconds.
    pub refresh_report: Option<Duration>,
}

/// Runs a scenario, prints the verdict table and the report's path.
pub async fn chaos(
    name: &str,
    knobs: RunKnobs,
    metrics: Option<String>,
    reports: Option<PathBuf>,
    style: Style,
) -> Outcome {
    let mut sc = match Scenario::find(name).and_then(|p| Scenario::load(&p)) {
        Ok(s) => s,
        Err(e) => return config_error(&e),
    };
    sc.config.harness.reports = Some(reports_dir(reports, &sc.config));
    let shim = match shim_exe() {
        Ok(p) => p,
        Err(o) => return o,
    };
    let exposed = match MetricsServer::start(metrics, &sc.config).await {
        Ok(m) => m,
        Err(o) => return o,
    };
    println!(
        "{}",
        style.bold(&format!("{}: {}", sc.name, sc.description))
    );
    let (notes_tx, notes_rx) = tokio::sync::mpsc::unbounded_channel();
    let total = knobs.duration.unwrap_or(sc.duration);
    let printer = tokio::spawn(print_notes(
        notes_rx,
        style,
        knobs.refresh_report.map(|_| total),
        exposed.as_ref().map(|m| m.exposition.clone()),
    ));
    let options = crate::run::Options {
        shim_exe: shim,
        notes: Some(notes_tx),
        duration: knobs.duration,
        seed: knobs.seed,
        refresh_report: knobs.refresh_report,
    };
    let result = crate::run::run(&sc, options).await;
    let _ = printer.await;
    if let Some(m) = exposed {
        m.finish(result.as_ref().ok().map(|o| &o.report), style)
            .await;
    }
    let outcome = match result {
        Ok(o) => o,
        Err(e) => return session_error(e),
    };
    print_verdict(&outcome.report, outcome.inconclusive.as_deref(), style);
    println!("report: {}", outcome.run_dir.join("report.html").display());
    if let Some(why) = outcome.inconclusive {
        return Outcome::Harness(format!("inconclusive: {why}"));
    }
    verdict_outcome(&outcome.report)
}

fn verdict_outcome(r: &crate::report::Report) -> Outcome {
    if r.interrupted {
        return Outcome::Harness("interrupted: the run did not finish, so it is not judged".into());
    }
    match r.verdict {
        Verdict::Pass => Outcome::Pass,
        Verdict::Fail => Outcome::Fail,
        Verdict::Unknown => {
            Outcome::Harness("inconclusive: some assertions could not be decided".into())
        }
    }
}

fn rebuild_report(dir: &Path, style: Style) -> Outcome {
    if !dir.join("journal.sqlite").is_file() {
        eprintln!(
            "error: no journal.sqlite in {}: pass a run directory (see `soak report --list`)",
            dir.display()
        );
        return Outcome::Usage;
    }
    match crate::judge::judge_and_report(dir) {
        Ok(report) => {
            print_verdict(&report, None, style);
            println!("report: {}", dir.join("report.html").display());
            verdict_outcome(&report)
        }
        Err(e) => Outcome::Harness(e),
    }
}

fn list_runs(reports: &Path) -> Outcome {
    let Ok(entries) = std::fs::read_dir(reports) else {
        eprintln!("error: no reports directory at {}", reports.display());
        return Outcome::Usage;
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.join("journal.sqlite").is_file() && !p.is_symlink())
        .collect();
    dirs.sort();
    println!(
        "{:<44} {:<24} {:<20} {:>12}  verdict",
        "run", "scenario", "started", "duration"
    );
    for d in dirs {
        let Ok(data) = journal::RunData::open(&d.join("journal.sqlite")) else {
            continue;
        };
        let Some(run) = &data.run else { continue };
        let verdict = std::fs::read_to_string(d.join("report.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .map(|r| {
                if r["interrupted"] == true {
                    "interrupted".to_string()
                } else {
                    r["verdict"].as_str().unwrap_or("?").to_string()
                }
            })
            .unwrap_or_else(|| {
                if run.ended_at.is_none() {
                    "running or killed".into()
                } else {
                    "not judged".into()
                }
            });
        let took = run
            .ended_at
            .unwrap_or_else(|| crate::verdict::run_end(&data))
            - run.started_at;
        println!(
            "{:<44} {:<24} {:<20} {:>12}  {verdict}",
            d.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            run.scenario.as_deref().unwrap_or("(soak up)"),
            &rfc3339_ms(run.started_at)[..19],
            human(Duration::from_millis(took.max(0) as u64)),
        );
    }
    Outcome::Pass
}

/// Where run directories go: --reports, else the config's `reports`, else
/// `reports/` here.
fn reports_dir(flag: Option<PathBuf>, config: &Config) -> PathBuf {
    flag.or_else(|| config.harness.reports.clone())
        .unwrap_or_else(|| PathBuf::from("reports"))
}

fn shim_exe() -> Result<PathBuf, Outcome> {
    std::env::current_exe()
        .map_err(|e| Outcome::Harness(format!("cannot find soak's own binary for the shim: {e}")))
}

/// Why a session could not open, as soak's outcome: a config that cannot
/// run is exit 2, like a service named that does not exist.
fn session_error(e: SessionError) -> Outcome {
    match e {
        SessionError::Config(e) => config_error(&e),
        SessionError::UnknownService(e) => {
            eprintln!("error: {e}");
            Outcome::Usage
        }
        SessionError::Setup(e) => Outcome::Harness(e),
    }
}

async fn up(
    config: Option<PathBuf>,
    run_for: Option<Duration>,
    services: Vec<String>,
    metrics: Option<String>,
    reports: Option<PathBuf>,
    style: Style,
) -> Outcome {
    let config = match Config::find(config.as_deref()).and_then(|p| Config::load(&p)) {
        Ok(c) => c,
        Err(e) => return config_error(&e),
    };
    let shim = match shim_exe() {
        Ok(p) => p,
        Err(o) => return o,
    };
    let exposed = match MetricsServer::start(metrics, &config).await {
        Ok(m) => m,
        Err(o) => return o,
    };
    let (notes_tx, notes_rx) = tokio::sync::mpsc::unbounded_channel();
    let session = Session::open(Opening {
        config: &config,
        services: &services,
        reports: &reports_dir(reports, &config),
        label: "up",
        scenario: None,
        seed: None,
        shim_exe: shim,
        notes: Some(notes_tx),
    })
    .await;
    let session = match session {
        Ok(s) => s,
        Err(e) => return session_error(e),
    };
    println!(
        "{}",
        style.dim(&format!(
            "run {} ({} service(s)); journal {}",
            session.run_dir.display(),
            session.plan.services.len(),
            session.journal_path().display()
        ))
    );
    let printer = tokio::spawn(print_notes(
        notes_rx,
        style,
        None,
        exposed.as_ref().map(|m| m.exposition.clone()),
    ));

    let reason = tokio::select! {
        _ = async { match run_for {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        } } => "time is up",
        why = crate::session::stop_requested() => why,
    };
    session.rec.emit(
        None,
        &Event::RunEnding {
            reason: reason.to_string(),
        },
        Severity::Info,
        format!("{reason}: stopping services"),
    );
    let journal_path = session.journal_path();
    session.close(false).await;
    let _ = printer.await;
    if let Some(m) = exposed {
        m.stop();
    }

    match journal::RunData::open(&journal_path) {
        Ok(data) => {
            print_summary(&data, style);
            Outcome::Pass
        }
        Err(e) => Outcome::Harness(format!("cannot read back the journal: {e}")),
    }
}
