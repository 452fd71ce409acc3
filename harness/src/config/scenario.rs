//! `scenarios/NAME.toml`: services + faults + expectations. A scenario names
//! the config it runs; a soak is a scenario with a long duration and a
//! `[schedule]` of faults taken from other scenarios.

use super::{Config, ConfigError, Dur, Percent, Signal, read_source, suggest, toml_error};
use crate::supervise::shim::Scope;
use serde::Deserialize;
use std::collections::BTreeMap;
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
    /// The file's text, to locate mistakes found after parsing (a schedule
    /// that picks a scenario that is not there).
    source: std::sync::Arc<str>,
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
    /// A fault in the proxy of `[links.NAME]`; the step's target is the link.
    Link {
        fault: LinkFault,
        direction: Direction,
        hold: Duration,
    },
}

/// What a link does to the bytes and connections that cross it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "fault")]
pub enum LinkFault {
    /// Every chunk waits `delay` plus up to `jitter`.
    Latency { delay: Duration, jitter: Duration },
    /// Connections are accepted and data swallowed; nothing answers.
    Blackhole,
    /// Open and new connections are reset.
    Reset,
    /// Nothing listens: connection refused.
    Refuse,
    /// At most this many bytes a second.
    Bandwidth { bytes_per_second: f64 },
}

/// Which way across a link a fault applies: upstream is from the dependent
/// to what it depends on, downstream the answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    #[default]
    Both,
    Upstream,
    Downstream,
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
            Action::Link { fault, .. } => match fault {
                LinkFault::Latency { .. } => "latency",
                LinkFault::Blackhole => "blackhole",
                LinkFault::Reset => "reset",
                LinkFault::Refuse => "refuse",
                LinkFault::Bandwidth { .. } => "bandwidth",
            },
        }
    }

    pub fn is_link(&self) -> bool {
        matches!(self, Action::Link { .. })
    }

    /// How long the fault is held before it is rolled back, if it is.
    pub fn hold(&self) -> Option<Duration> {
        match self {
            Action::Kill { .. } | Action::Stop => None,
            Action::Hang { hold, .. } => *hold,
            Action::FdExhaustion { hold, .. }
            | Action::SqliteLock { hold, .. }
            | Action::Duplicate { hold }
            | Action::Link { hold, .. } => Some(*hold),
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
    "latency",
    "blackhole",
    "reset",
    "refuse",
    "bandwidth",
];

const LINK_ACTIONS: &[&str] = &["latency", "blackhole", "reset", "refuse", "bandwidth"];

/// Whether an action, by its journaled name, is a fault on a link (whose
/// target is a link name, which may also be a service's name).
pub fn is_link_action(name: &str) -> bool {
    LINK_ACTIONS.contains(&name)
}

type At<'a> = dyn Fn(std::ops::Range<usize>, String, Option<String>) -> ConfigError + 'a;

/// A step whose action is a link fault: `link = "NAME"`, `for`, and the
/// fault's own keys.
fn link_step(
    s: &RawStep,
    span: std::ops::Range<usize>,
    config: &Config,
    links: &[&str],
    duration: Duration,
    at: &At<'_>,
) -> Result<Step, ConfigError> {
    let action = s.action.get_ref().as_str();
    let Some(link) = &s.link else {
        let help = match links.first() {
            Some(l) => format!("add `link = \"{l}\"`"),
            None => "define `[links.NAME] to = \"SERVICE\"` in the config and name it here".into(),
        };
        return Err(at(
            span,
            format!("`{action}` needs `link`, the link to break"),
            Some(help),
        ));
    };
    if !config.links.contains_key(link.get_ref()) {
        return Err(at(
            link.span(),
            format!("no link `{}` in the config", link.get_ref()),
            Some(suggest(link.get_ref(), links, "link")),
        ));
    }
    if let Some(t) = &s.target {
        return Err(at(
            t.span(),
            format!("`{action}` acts on a link: it takes `link`, not `target`"),
            Some(format!("remove `target`; the link is `{}`", link.get_ref())),
        ));
    }
    if s.at.get_ref().0 >= duration {
        return Err(at(
            s.at.span(),
            "step is not before the end of the run".into(),
            Some("make `at` smaller or `duration` longer".into()),
        ));
    }
    let hold = s.hold.map(|d| d.0).ok_or_else(|| {
        at(
            span.clone(),
            format!("`{action}` needs `for`, how long the link stays broken"),
            Some("add e.g. `for = \"10s\"`".into()),
        )
    })?;
    let direction = match s
        .direction
        .as_ref()
        .map(|d| (d.get_ref().as_str(), d.span()))
    {
        None | Some(("both", _)) => Direction::Both,
        Some(("upstream", _)) => Direction::Upstream,
        Some(("downstream", _)) => Direction::Downstream,
        Some((other, span)) => {
            return Err(at(
                span,
                format!("unknown direction `{other}`"),
                Some(suggest(other, &["both", "upstream", "downstream"], "value")),
            ));
        }
    };
    let unused = |key: &str, present: bool| -> Result<(), ConfigError> {
        if present {
            Err(at(
                span.clone(),
                format!("`{action}` does not take `{key}`"),
                Some(format!("remove `{key}`")),
            ))
        } else {
            Ok(())
        }
    };
    let fault = match action {
        "latency" => {
            unused("rate", s.rate.is_some())?;
            let delay = s.delay.map(|d| d.0).ok_or_else(|| {
                at(
                    span.clone(),
                    "`latency` needs `delay`".into(),
                    Some("add e.g. `delay = \"500ms\"` (and optionally `jitter`)".into()),
                )
            })?;
            LinkFault::Latency {
                delay,
                jitter: s.jitter.map(|d| d.0).unwrap_or_default(),
            }
        }
        "bandwidth" => {
            unused("delay", s.delay.is_some())?;
            unused("jitter", s.jitter.is_some())?;
            let rate = s.rate.ok_or_else(|| {
                at(
                    span.clone(),
                    "`bandwidth` needs `rate`".into(),
                    Some("add e.g. `rate = \"10KB/s\"`".into()),
                )
            })?;
            if rate.0 <= 0.0 {
                return Err(at(span.clone(), "`rate` must be above zero".into(), None));
            }
            LinkFault::Bandwidth {
                bytes_per_second: rate.0 / 3600.0,
            }
        }
        other => {
            unused("delay", s.delay.is_some())?;
            unused("jitter", s.jitter.is_some())?;
            unused("rate", s.rate.is_some())?;
            match other {
                "blackhole" => LinkFault::Blackhole,
                "reset" => LinkFault::Reset,
                _ => LinkFault::Refuse,
            }
        }
    };
    if matches!(fault, LinkFault::Refuse) && s.direction.is_some() {
        unused("direction", true)?;
    }
    Ok(Step {
        at: s.at.get_ref().0,
        target: link.get_ref().clone(),
        action: Action::Link {
            fault,
            direction,
            hold,
        },
    })
}

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
    /// While a fault is active, the workload's requests are answered (with
    /// success or an error) within `p99_max`: a timeout, not a hang.
    pub fails_fast: Option<FailsFast>,
    /// After a fault is rolled back, the workload succeeds again within `within`.
    pub recovers_within: Option<RecoversWithin>,
    /// Per kept metric (a name, or a name with labels): the largest slope of
    /// its trend, per incarnation, like `rss_slope_max`.
    pub metric_slope_max: Option<BTreeMap<String, super::units::CountRate>>,
    /// Per kept metric: the largest value it may take.
    pub metric_max: Option<BTreeMap<String, super::units::Number>>,
    /// Per kept counter: the largest rate of increase, across restarts.
    pub metric_rate_max: Option<BTreeMap<String, super::units::CountRate>>,
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
pub struct FailsFast {
    pub workload: Spanned<String>,
    pub p99_max: Dur,
    /// Requests sent in the fault's first `after` are not judged: a client
    /// needs its timeout, maybe a few, before its breaker opens. Default: the
    /// first fifth of the fault, at most 2 s.
    pub after: Option<Dur>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoversWithin {
    pub workload: Spanned<String>,
    pub within: Dur,
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
    target: Option<Spanned<String>>,
    link: Option<Spanned<String>>,
    signal: Option<Signal>,
    scope: Option<Spanned<String>>,
    #[serde(rename = "for")]
    hold: Option<Dur>,
    headroom: Option<u32>,
    mode: Option<Spanned<String>>,
    db: Option<String>,
    delay: Option<Dur>,
    jitter: Option<Dur>,
    rate: Option<super::units::SizeRate>,
    direction: Option<Spanned<String>>,
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
        let fault_workloads = [
            raw.expect.fails_fast.as_ref().map(|f| &f.workload),
            raw.expect.recovers_within.as_ref().map(|r| &r.workload),
        ];
        for w in [
            raw.expect.writes_survive.as_ref(),
            raw.expect.consistent_reads.as_ref(),
        ]
        .into_iter()
        .chain(fault_workloads)
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
        let link_names: Vec<&str> = config.links.keys().map(String::as_str).collect();
        for step in &raw.steps {
            let s = step.get_ref();
            if LINK_ACTIONS.contains(&s.action.get_ref().as_str()) {
                steps.push(link_step(
                    s,
                    step.span(),
                    &config,
                    &link_names,
                    duration,
                    &at,
                )?);
                continue;
            }
            if let Some(l) = &s.link {
                return Err(at(
                    l.span(),
                    format!(
                        "`{}` is not a link fault: it takes `target`, not `link`",
                        s.action.get_ref()
                    ),
                    Some(format!("link faults are {}", LINK_ACTIONS.join(", "))),
                ));
            }
            let Some(target_name) = &s.target else {
                return Err(at(
                    step.span(),
                    format!(
                        "`{}` needs `target`, the service to act on",
                        s.action.get_ref()
                    ),
                    Some(format!(
                        "add `target = \"{}\"`",
                        known.first().copied().unwrap_or("NAME")
                    )),
                ));
            };
            let target = check_service(target_name)?;
            if !services.contains(&target) {
                return Err(at(
                    target_name.span(),
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
                            target_name.span(),
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
            source: source.into(),
        })
    }

    /// The scenarios a `[schedule]` picks, read from this file's folder. A
    /// pick that is missing, broken, or acts on something this scenario does
    /// not run is an error at its name. Kept out of parsing so a report can
    /// be rebuilt from a journal where the picked files are not.
    pub fn picks(&self) -> Result<Vec<Scenario>, ConfigError> {
        let Some(sched) = &self.schedule else {
            return Ok(Vec::new());
        };
        let dir = super::dir_of(&self.path);
        let at = |pick: &Spanned<String>, message: String, help: Option<String>| {
            ConfigError::at_span(&self.path, &self.source, Some(pick.span()), message, help)
        };
        let mut out = Vec::new();
        for pick in &sched.pick {
            let path = dir.join(format!("{}.toml", pick.get_ref()));
            if !path.is_file() {
                let known: Vec<String> = std::fs::read_dir(&dir)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| {
                        let p = e.ok()?.path();
                        (p.extension()? == "toml").then_some(())?;
                        Some(p.file_stem()?.to_string_lossy().into_owned())
                    })
                    .filter(|n| n != &self.name)
                    .collect();
                let known: Vec<&str> = known.iter().map(String::as_str).collect();
                return Err(at(
                    pick,
                    format!(
                        "the schedule picks `{}`, but there is no {}",
                        pick.get_ref(),
                        path.display()
                    ),
                    Some(suggest(pick.get_ref(), &known, "scenario")),
                ));
            }
            let picked = Scenario::load(&path)?;
            if picked.schedule.is_some() {
                return Err(at(
                    pick,
                    format!(
                        "`{}` has a schedule of its own; a schedule picks plain scenarios",
                        pick.get_ref()
                    ),
                    None,
                ));
            }
            for step in &picked.steps {
                let runs = if step.action.is_link() {
                    self.config.links.contains_key(&step.target)
                } else {
                    self.services.contains(&step.target)
                };
                if !runs {
                    return Err(at(
                        pick,
                        format!(
                            "`{}` acts on `{}`, which this scenario does not run",
                            pick.get_ref(),
                            step.target
                        ),
                        Some(format!(
                            "add `{}` to `services`, or pick another scenario",
                            step.target
                        )),
                    ));
                }
            }
            out.push(picked);
        }
        Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[services.store]
command = ["./store", "--port", "{port}"]
[services.gateway]
command = ["./gw", "--store", "{link.store}"]
depends_on = ["store"]
[links.store]
to = "store"
[workloads.work]
service = "gateway"
read = { url = "http://127.0.0.1:{port}/work" }
"#;

    fn parse(scenario: &str) -> Result<Scenario, String> {
        Scenario::parse_with(Path::new("/s/x.toml"), scenario, |p| {
            Config::parse(p, CONFIG)
        })
        .map_err(|e| e.to_string())
    }

    const HEAD: &str = "config = \"soak.toml\"\nworkloads = [\"work\"]\nduration = \"30s\"\n";

    #[test]
    fn link_faults_parse_with_their_keys() {
        let sc = parse(&format!(
            "{HEAD}[[steps]]\nat = \"5s\"\naction = \"latency\"\nlink = \"store\"\ndelay = \"200ms\"\njitter = \"50ms\"\ndirection = \"downstream\"\nfor = \"5s\"\n\
             [[steps]]\nat = \"12s\"\naction = \"bandwidth\"\nlink = \"store\"\nrate = \"10KB/s\"\nfor = \"5s\"\n\
             [[steps]]\nat = \"20s\"\naction = \"blackhole\"\nlink = \"store\"\nfor = \"5s\"\n\
             [expect]\nfails_fast = {{ workload = \"work\", p99_max = \"200ms\" }}\n\
             recovers_within = {{ workload = \"work\", within = \"10s\" }}\n\
             metric_max = {{ \"lag_seconds\" = \"0.1\", queue_depth = 100 }}\n\
             metric_slope_max = {{ queue_depth = \"100/h\" }}\nmetric_rate_max = {{ errors_total = \"1/s\" }}\n"
        ))
        .unwrap();
        assert_eq!(sc.steps.len(), 3);
        assert_eq!(sc.steps[0].target, "store");
        assert_eq!(
            sc.steps[0].action,
            Action::Link {
                fault: LinkFault::Latency {
                    delay: Duration::from_millis(200),
                    jitter: Duration::from_millis(50)
                },
                direction: Direction::Downstream,
                hold: Duration::from_secs(5),
            }
        );
        assert_eq!(sc.steps[1].action.name(), "bandwidth");
        assert!(matches!(
            sc.steps[1].action,
            Action::Link { fault: LinkFault::Bandwidth { bytes_per_second }, .. } if bytes_per_second > 9000.0
        ));
        assert_eq!(sc.steps[2].action.hold(), Some(Duration::from_secs(5)));
        let metric_max = sc.expect.metric_max.unwrap();
        assert_eq!(metric_max["lag_seconds"].0, 0.1);
        assert_eq!(metric_max["queue_depth"].0, 100.0);
        assert_eq!(sc.expect.metric_rate_max.unwrap()["errors_total"].0, 3600.0);
    }

    #[test]
    fn link_fault_mistakes_are_located_and_explained() {
        let step = |body: &str| {
            parse(&format!("{HEAD}[[steps]]\nat = \"5s\"\n{body}\n"))
                .expect_err("a mistake is refused")
        };
        let cases = [
            (
                "action = \"blackhole\"\nfor = \"5s\"",
                "needs `link`",
                "add `link = \"store\"`",
            ),
            (
                "action = \"reset\"\nlink = \"stor\"\nfor = \"5s\"",
                "no link `stor`",
                "did you mean `store`?",
            ),
            (
                "action = \"refuse\"\nlink = \"store\"\ntarget = \"store\"\nfor = \"5s\"",
                "takes `link`, not `target`",
                "x.toml:8:10",
            ),
            (
                "action = \"kill\"\nlink = \"store\"\ntarget = \"store\"",
                "not a link fault",
                "x.toml:7:8",
            ),
            (
                "action = \"latency\"\nlink = \"store\"\nfor = \"5s\"",
                "`latency` needs `delay`",
                "delay = \"500ms\"",
            ),
            (
                "action = \"blackhole\"\nlink = \"store\"",
                "needs `for`",
                "for = \"10s\"",
            ),
            (
                "action = \"reset\"\nlink = \"store\"\nfor = \"5s\"\ndirection = \"up\"",
                "unknown direction `up`",
                "`upstream`",
            ),
            (
                "action = \"refuse\"\nlink = \"store\"\nfor = \"5s\"\ndirection = \"upstream\"",
                "does not take `direction`",
                "x.toml",
            ),
            (
                "action = \"blackhole\"\nlink = \"store\"\nfor = \"5s\"\ndelay = \"1s\"",
                "does not take `delay`",
                "x.toml",
            ),
            ("action = \"kill\"", "needs `target`", "x.toml:4:1"),
        ];
        for (body, says, and) in cases {
            let e = step(body);
            assert!(e.contains(says) && e.contains(and), "{body:?} gave:\n{e}");
        }
    }

    #[test]
    fn a_schedule_is_checked_against_the_files_it_picks() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("soak.toml"), CONFIG).unwrap();
        std::fs::write(
            d.join("blackhole-store.toml"),
            "config = \"soak.toml\"\nduration = \"20s\"\n[[steps]]\nat = \"2s\"\naction = \"blackhole\"\nlink = \"store\"\nfor = \"5s\"\n",
        )
        .unwrap();
        std::fs::write(
            d.join("kill-store.toml"),
            "config = \"soak.toml\"\nservices = [\"store\"]\nduration = \"20s\"\n[[steps]]\nat = \"2s\"\naction = \"kill\"\ntarget = \"store\"\n",
        )
        .unwrap();
        let soak = |pick: &str, services: &str| {
            let path = d.join("long.toml");
            std::fs::write(
                &path,
                format!("config = \"soak.toml\"\n{services}duration = \"1h\"\n[schedule]\nevery = \"10m\"\npick = [{pick}]\n"),
            )
            .unwrap();
            Scenario::load(&path)
                .unwrap()
                .picks()
                .map_err(|e| e.to_string())
        };
        let picks = soak("\"blackhole-store\", \"kill-store\"", "").unwrap();
        assert_eq!(picks.len(), 2);
        let e = soak("\"kill-stor\"", "").unwrap_err();
        assert!(
            e.contains("long.toml:5:9") && e.contains("did you mean `kill-store`?"),
            "{e}"
        );
        let e = soak("\"kill-store\"", "services = [\"gateway\"]\n").unwrap_err();
        assert!(
            e.contains("acts on `store`, which this scenario does not run"),
            "{e}"
        );
    }

    #[test]
    fn fault_expectations_must_name_a_workload_the_scenario_runs() {
        let e = parse(
            "config = \"soak.toml\"\nduration = \"30s\"\n[expect]\nfails_fast = { workload = \"work\", p99_max = \"1s\" }\n",
        )
        .unwrap_err();
        assert!(
            e.contains("x.toml:4:27") && e.contains("workloads = [\"work\"]"),
            "{e}"
        );
        let e = parse(&format!(
            "{HEAD}[expect]\nmetric_max = {{ q = \"lots\" }}\n"
        ))
        .unwrap_err();
        assert!(e.contains("not a number"), "{e}");
    }
}
