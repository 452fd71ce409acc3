//! `scenarios/NAME.toml`: services + faults + expectations. A scenario names
//! the config it runs; a soak is a scenario with a long duration and a
//! `[schedule]` of faults taken from other scenarios.

use super::{Config, ConfigError, Dur, Percent, Signal, read_source, suggest, toml_error};
use crate::supervise::shim::Scope;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub path: PathBuf,
    pub description: String,
    pub config: Config,
    /// Services to run; all of the config's when the file names none.
    pub services: Vec<String>,
    pub workloads: Vec<String>,
    pub duration: Duration,
    pub steps: Vec<Step>,
    pub expect: Expect,
    pub schedule: Option<Schedule>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub at: Duration,
    pub target: String,
    pub action: Action,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LockMode {
    Exclusive,
    Immediate,
    Read,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Kill {
        signal: i32,
        scope: Scope,
    },
    /// SIGSTOP; `None` holds until the supervisor acts (or the run ends).
    Hang {
        scope: Scope,
        hold: Option<Duration>,
    },
    FdExhaustion {
        headroom: u32,
        hold: Duration,
    },
    SqliteLock {
        mode: LockMode,
        hold: Duration,
        db: Option<String>,
    },
    Duplicate {
        hold: Duration,
    },
    Stop,
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Kill { .. } => "kill",
            Action::Hang { .. } => "hang",
            Action::FdExhaustion { .. } => "fd-exhaustion",
            Action::SqliteLock { .. } => "sqlite-lock",
            Action::Duplicate { .. } => "duplicate",
            Action::Stop => "stop",
        }
    }

    /// How long the fault is held before it is rolled back, if it is.
    pub fn hold(&self) -> Option<Duration> {
        match self {
            Action::Kill { .. } | Action::Stop => None,
            Action::Hang { hold, .. } => *hold,
            Action::FdExhaustion { hold, .. }
            | Action::SqliteLock { hold, .. }
            | Action::Duplicate { hold } => Some(*hold),
        }
    }
}

const ACTIONS: &[&str] = &[
    "kill",
    "hang",
    "fd-exhaustion",
    "sqlite-lock",
    "duplicate",
    "stop",
];

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    pub min: Option<u32>,
    pub max: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    pub max: u32,
    pub window: Dur,
}

/// Expectations. Each present key becomes one or more assertions.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub healthy_within: Option<Dur>,
    pub detected_within: Option<Dur>,
    pub restarts: Option<Bounds>,
    pub survives: Option<bool>,
    pub no_orphans: Option<bool>,
    pub writes_survive: Option<Spanned<String>>,
    pub consistent_reads: Option<Spanned<String>>,
    pub duplicate_refused_within: Option<Dur>,
    pub integrity: Option<bool>,
    pub stops_within: Option<Dur>,
    pub exit_code: Option<i32>,
    pub log_rate_max: Option<super::units::SizeRate>,
    pub rss_slope_max: Option<super::units::SizeRate>,
    pub rss_growth_max: Option<super::units::Growth>,
    pub rss_max: Option<super::Size>,
    pub fds_slope_max: Option<super::units::CountRate>,
    pub threads_slope_max: Option<super::units::CountRate>,
    pub restart_budget: Option<Budget>,
    pub availability_min: Option<Percent>,
    pub latency_p99_max: Option<Dur>,
    pub wal_max: Option<super::Size>,
    /// Trend verdicts ignore each incarnation's first `warmup` (default 5m).
    pub warmup: Option<Dur>,
    /// Trend verdicts need at least this much data after the warm-up
    /// (default 30m); shorter is unknown.
    pub min_span: Option<Dur>,
    /// File name patterns (`*` wildcard) that must not remain in the
    /// service's data dir after it stops (temp files, stale pid files).
    pub no_leftovers: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub every: Dur,
    pub pick: Vec<Spanned<String>>,
    #[serde(default = "default_seed")]
    pub seed: u64,
}

fn default_seed() -> u64 {
    42
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    #[serde(default)]
    description: String,
    config: Spanned<String>,
    services: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    workloads: Vec<Spanned<String>>,
    duration: Spanned<Dur>,
    #[serde(default)]
    steps: Vec<Spanned<RawStep>>,
    #[serde(default)]
    expect: Expect,
    schedule: Option<Schedule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    at: Spanned<Dur>,
    action: Spanned<String>,
    target: Spanned<String>,
    signal: Option<Signal>,
    scope: Option<Spanned<String>>,
    #[serde(rename = "for")]
    hold: Option<Dur>,
    headroom: Option<u32>,
    mode: Option<Spanned<String>>,
    db: Option<String>,
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario, ConfigError> {
        let source = read_source(path)?;
        Self::parse(path, &source)
    }

    pub fn parse(path: &Path, source: &str) -> Result<Scenario, ConfigError> {
        Self::parse_with(path, source, Config::load)
    }

    /// Parses with `load_config` resolving the `config` path: from disk, or
    /// from the copy a journal keeps (so a report can be rebuilt anywhere).
    pub fn parse_with(
        path: &Path,
        source: &str,
        load_config: impl Fn(&Path) -> Result<Config, ConfigError>,
    ) -> Result<Scenario, ConfigError> {
        let raw: RawScenario = toml::from_str(source).map_err(|e| toml_error(path, source, &e))?;
        let at = |span: std::ops::Range<usize>, msg: String, help: Option<String>| {
            ConfigError::at_span(path, source, Some(span), msg, help)
        };
        let absolute =
            super::normalize(&std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()));
        let config_path = super::normalize(&super::dir_of(&absolute).join(raw.config.get_ref()));
        let config = load_config(&config_path).map_err(|e| {
            if e.at.is_none() {
                at(
                    raw.config.span(),
                    format!("config `{}` not found (looked for {})", raw.config.get_ref(), config_path.display()),
                    Some("`config` is relative to this scenario's folder, e.g. \"../fixtures/soak.toml\"".into()),
                )
            } else {
                e
            }
        })?;
        let known: Vec<&str> = config.services.keys().map(String::as_str).collect();
        let check_service = |s: &Spanned<String>| {
            if config.services.contains_key(s.get_ref()) {
                Ok(s.get_ref().clone())
            } else {
                Err(at(
                    s.span(),
                    format!("no service `{}` in {}", s.get_ref(), raw.config.get_ref()),
                    Some(suggest(s.get_ref(), &known, "service")),
                ))
            }
        };
        let services = match &raw.services {
            Some(list) => list
                .iter()
                .map(check_service)
                .collect::<Result<Vec<_>, _>>()?,
            None => config.services.keys().cloned().collect(),
        };
        let wl_names: Vec<&str> = config.workloads.keys().map(String::as_str).collect();
        let check_workload = |w: &Spanned<String>| {
            if config.workloads.contains_key(w.get_ref()) {
                Ok(w.get_ref().clone())
            } else {
                Err(at(
                    w.span(),
                    format!("no workload `{}` in {}", w.get_ref(), raw.config.get_ref()),
                    Some(suggest(w.get_ref(), &wl_names, "workload")),
                ))
            }
        };
        let workloads = raw
            .workloads
            .iter()
            .map(check_workload)
            .collect::<Result<Vec<_>, _>>()?;
        for w in [&raw.expect.writes_survive, &raw.expect.consistent_reads]
            .into_iter()
            .flatten()
        {
            if !workloads.contains(w.get_ref()) {
                return Err(at(
                    w.span(),
                    format!(
                        "expectation names workload `{}`, which this scenario does not run",
                        w.get_ref()
                    ),
                    Some(format!("add it to `workloads = [\"{}\"]`", w.get_ref())),
                ));
            }
        }
        for w in &workloads {
            let svc = config.workloads[w].service.get_ref();
            if !services.contains(svc) {
                let span = raw
                    .workloads
                    .iter()
                    .find(|s| s.get_ref() == w)
                    .map(|s| s.span())
                    .unwrap_or(0..0);
                return Err(at(
                    span,
                    format!(
                        "workload `{w}` needs service `{svc}`, which this scenario does not run"
                    ),
                    Some(format!("add `{svc}` to `services`")),
                ));
            }
        }
        let duration = raw.duration.get_ref().0;
        let mut steps = Vec::new();
        for step in &raw.steps {
            let s = step.get_ref();
            let target = check_service(&s.target)?;
            if !services.contains(&target) {
                return Err(at(
                    s.target.span(),
                    format!("step targets `{target}`, which this scenario does not run"),
                    Some(format!("add `{target}` to `services`")),
                ));
            }
            if s.at.get_ref().0 >= duration {
                return Err(at(
                    s.at.span(),
                    format!(
                        "step at {} is not before the end of the run ({})",
                        crate::clock::human(s.at.get_ref().0),
                        crate::clock::human(duration)
                    ),
                    Some("make `at` smaller or `duration` longer".into()),
                ));
            }
            let scope = |default: Scope| -> Result<Scope, ConfigError> {
                match &s.scope {
                    None => Ok(default),
                    Some(v) => match v.get_ref().as_str() {
                        "main" => Ok(Scope::Main),
                        "group" => Ok(Scope::Group),
                        "children" => Ok(Scope::Children),
                        other => Err(at(
                            v.span(),
                            format!("unknown scope `{other}`"),
                            Some(suggest(other, &["main", "group", "children"], "value")),
                        )),
                    },
                }
            };
            let need_hold = || {
                s.hold.map(|d| d.0).ok_or_else(|| {
                    at(
                        step.span(),
                        format!(
                            "`{}` needs `for`, how long to hold the fault",
                            s.action.get_ref()
                        ),
                        Some("add e.g. `for = \"5s\"`".into()),
                    )
                })
            };
            let action = match s.action.get_ref().as_str() {
                "kill" => Action::Kill {
                    signal: s.signal.map_or(libc::SIGKILL, |x| x.0),
                    scope: scope(Scope::Main)?,
                },
                "hang" => Action::Hang {
                    scope: scope(Scope::Group)?,
                    hold: s.hold.map(|d| d.0),
                },
                "fd-exhaustion" => Action::FdExhaustion {
                    headroom: s.headroom.unwrap_or(2),
                    hold: need_hold()?,
                },
                "sqlite-lock" => {
                    let mode = match s.mode.as_ref().map(|m| (m.get_ref().as_str(), m.span())) {
                        None | Some(("exclusive", _)) => LockMode::Exclusive,
                        Some(("immediate", _)) => LockMode::Immediate,
                        Some(("read", _)) => LockMode::Read,
                        Some((other, span)) => {
                            return Err(at(
                                span,
                                format!("unknown lock mode `{other}`"),
                                Some(suggest(other, &["exclusive", "immediate", "read"], "value")),
                            ));
                        }
                    };
                    let svc = &config.services[&target];
                    if svc.sqlite.is_empty() {
                        return Err(at(
                            s.target.span(),
                            format!(
                                "`sqlite-lock` targets `{target}`, which lists no `sqlite` databases"
                            ),
                            Some(format!(
                                "add `sqlite = [\"{{data_dir}}/{target}.db\"]` to [services.{target}]"
                            )),
                        ));
                    }
                    if let Some(db) = &s.db
                        && !svc.sqlite.contains(db)
                    {
                        let dbs: Vec<&str> = svc.sqlite.iter().map(String::as_str).collect();
                        return Err(at(
                            step.span(),
                            format!("`db = \"{db}\"` is not one of `{target}`'s sqlite paths"),
                            Some(suggest(db, &dbs, "value")),
                        ));
                    }
                    Action::SqliteLock {
                        mode,
                        hold: need_hold()?,
                        db: s.db.clone(),
                    }
                }
                "duplicate" => Action::Duplicate { hold: need_hold()? },
                "stop" => Action::Stop,
                other => {
                    return Err(at(
                        s.action.span(),
                        format!("unknown action `{other}`"),
                        Some(suggest(other, ACTIONS, "action")),
                    ));
                }
            };
            steps.push(Step {
                at: s.at.get_ref().0,
                target,
                action,
            });
        }
        steps.sort_by_key(|s| s.at);
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scenario".into());
        if let Some(sched) = &raw.schedule
            && let Some(first) = sched.pick.first()
            && sched.pick.iter().any(|p| p.get_ref() == &name)
        {
            return Err(at(
                first.span(),
                "a schedule cannot pick its own scenario".into(),
                None,
            ));
        }
        Ok(Scenario {
            name,
            path: absolute,
            description: raw.description,
            config,
            services,
            workloads,
            duration,
            steps,
            expect: raw.expect,
            schedule: raw.schedule,
        })
    }

    /// `scenarios/NAME.toml` found from the current directory upward, or a path.
    pub fn find(name_or_path: &str) -> Result<PathBuf, ConfigError> {
        let p = Path::new(name_or_path);
        if name_or_path.ends_with(".toml") || p.components().count() > 1 {
            return Ok(p.to_path_buf());
        }
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let file = format!("{name_or_path}.toml");
        if let Some(found) = cwd
            .ancestors()
            .map(|d| d.join("scenarios").join(&file))
            .find(|p| p.is_file())
        {
            return Ok(found);
        }
        let known: Vec<String> = list_dir(&cwd).into_iter().map(|(n, _)| n).collect();
        let known: Vec<&str> = known.iter().map(String::as_str).collect();
        Err(ConfigError::whole_file(
            &PathBuf::from("scenarios").join(&file),
            format!("no scenario `{name_or_path}` in scenarios/ here or in a parent directory"),
            Some(suggest(name_or_path, &known, "name")),
        ))
    }
}

/// The scenarios directory found from `from` upward, with each file's name.
pub fn list_dir(from: &Path) -> Vec<(String, PathBuf)> {
    let Some(dir) = from
        .ancestors()
        .map(|d| d.join("scenarios"))
        .find(|d| d.is_dir())
    else {
        return Vec::new();
    };
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| {
                let p = e.ok()?.path();
                if p.extension()? != "toml" {
                    return None;
                }
                Some((p.file_stem()?.to_string_lossy().into_owned(), p))
            })
            .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}
