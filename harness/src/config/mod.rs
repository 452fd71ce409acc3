//! `soak.toml`: what runs, how it is kept alive, how it is watched.
//!
//! Key names are the contract in docs/config.md. Parsing is serde over `toml` with
//! unknown keys denied; every error is turned into a [`ConfigError`] that names
//! file:line:col. Relative paths are resolved against the file's folder.

mod error;
pub mod scenario;
mod system;
pub mod units;

pub use error::{ConfigError, suggest};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
pub use system::LinkTarget;
use toml::Spanned;
pub use units::{Dur, Percent, Rate, Signal, Size};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The file this was read from, absolute.
    #[serde(skip)]
    pub path: PathBuf,
    #[serde(default)]
    pub harness: Harness,
    #[serde(default)]
    pub services: BTreeMap<String, Service>,
    #[serde(default)]
    pub workloads: BTreeMap<String, Workload>,
    /// TCP fault proxies soak runs in front of dependencies.
    #[serde(default)]
    pub links: BTreeMap<String, Link>,
    /// The file's text and where each service's `command` sits in it, so an
    /// error found after parsing (a program that does not exist) is located.
    #[serde(skip)]
    source: std::sync::Arc<str>,
    #[serde(skip)]
    command_spans: BTreeMap<String, std::ops::Range<usize>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Harness {
    /// Where run directories go; `None` means `reports/` in the current directory.
    pub reports: Option<PathBuf>,
    #[serde(default = "defaults::sample_every")]
    pub sample_every: Dur,
    /// Serve soak's own figures at `/metrics` on this address.
    pub metrics: Option<ListenAddr>,
}

impl Default for Harness {
    fn default() -> Self {
        Harness {
            reports: None,
            sample_every: defaults::sample_every(),
            metrics: None,
        }
    }
}

/// An address soak listens on, such as `"127.0.0.1:9464"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr(pub std::net::SocketAddr);

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map(ListenAddr).map_err(|_| {
            serde::de::Error::custom(format!(
                "`{s}` is not an address to listen on: write an IP and a port, e.g. \"127.0.0.1:9464\""
            ))
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Empty for a service run from an `image` (exactly one of the two).
    #[serde(default)]
    pub command: Command,
    /// A container image to run instead of `command`, through a Docker-API
    /// engine (see docs/containers.md).
    pub image: Option<Spanned<String>>,
    /// The image's arguments (its CMD), expanded like `command`.
    pub args: Option<Spanned<Vec<String>>>,
    /// An image service's memory limit; a kill by it is `oom-killed`.
    pub memory: Option<Spanned<Size>>,
    /// An image service's CPU limit, in CPUs (0.5 is half of one).
    pub cpus: Option<Spanned<f64>>,
    #[serde(default = "defaults::cwd")]
    pub cwd: PathBuf,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub port: PortSpec,
    #[serde(default)]
    pub data_dir: DataDir,
    #[serde(default)]
    pub restart: RestartPolicy,
    #[serde(default = "defaults::restart_delay")]
    pub restart_delay: Dur,
    #[serde(default = "defaults::zero")]
    pub throttle: Dur,
    #[serde(default)]
    pub backoff: Backoff,
    #[serde(default)]
    pub start_limit: StartLimit,
    #[serde(default)]
    pub stop: Stop,
    #[serde(default)]
    pub logs: Logs,
    #[serde(default)]
    pub sqlite: Vec<String>,
    pub health: Option<Health>,
    /// Services this one needs: started after they are healthy, stopped
    /// before them (systemd's `After=` + `Requires=`).
    #[serde(default)]
    pub depends_on: Vec<Spanned<String>>,
    /// Only for a service that daemonizes (systemd `Type=forking` with
    /// `PIDFile=`): the pid written there is its main process.
    pub pidfile: Option<String>,
    /// The service's own Prometheus metrics, scraped every `sample_every`.
    pub metrics: Option<Metrics>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    pub url: Spanned<String>,
    /// Series to journal: a name keeps every label set of it; a name with
    /// labels keeps that one series. Empty keeps nothing.
    #[serde(default)]
    pub keep: Vec<String>,
    #[serde(default = "defaults::second")]
    pub timeout: Dur,
}

/// `[links.NAME]`: a proxy in front of a service of this config, or of an
/// address soak does not run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub to: Spanned<String>,
}

/// argv of a service; never empty when given (empty for an image service).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Command(pub Vec<String>);

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let argv = Vec::<String>::deserialize(d)?;
        if argv.first().is_none_or(|a| a.is_empty()) {
            return Err(serde::de::Error::custom(
                "`command` is empty: give the program and its arguments, e.g. [\"./server\", \"--port\", \"{port}\"]",
            ));
        }
        Ok(Command(argv))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PortSpec {
    /// A free loopback port chosen once per run.
    #[default]
    Auto,
    Fixed(u16),
}

impl<'de> Deserialize<'de> for PortSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(i64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) if (1..=65535).contains(&n) => Ok(PortSpec::Fixed(n as u16)),
            Raw::S(s) if s == "auto" => Ok(PortSpec::Auto),
            _ => Err(serde::de::Error::custom(
                "`port` must be \"auto\" or a number from 1 to 65535",
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DataDir {
    /// Fresh per run under the run directory.
    #[default]
    Auto,
    Path(PathBuf),
}

impl<'de> Deserialize<'de> for DataDir {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(if s == "auto" {
            DataDir::Auto
        } else {
            DataDir::Path(PathBuf::from(s))
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    Always,
    #[default]
    OnFailure,
    Never,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    #[serde(default = "defaults::factor")]
    pub factor: f64,
    #[serde(default = "defaults::backoff_max")]
    pub max: Dur,
    /// A start that stayed up this long resets the backoff (systemd has no
    /// equivalent; launchd and PM2 reset after a healthy stretch).
    #[serde(default = "defaults::backoff_reset")]
    pub reset_after: Dur,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            factor: defaults::factor(),
            max: defaults::backoff_max(),
            reset_after: defaults::backoff_reset(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartLimit {
    #[serde(default = "defaults::burst")]
    pub burst: u32,
    #[serde(default = "defaults::interval")]
    pub interval: Dur,
}

impl Default for StartLimit {
    fn default() -> Self {
        StartLimit {
            burst: defaults::burst(),
            interval: defaults::interval(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stop {
    #[serde(default = "defaults::term")]
    pub signal: Signal,
    #[serde(default = "defaults::grace")]
    pub grace: Dur,
}

impl Default for Stop {
    fn default() -> Self {
        Stop {
            signal: defaults::term(),
            grace: defaults::grace(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logs {
    #[serde(default = "defaults::log_size")]
    pub max_size: Size,
    #[serde(default = "defaults::keep")]
    pub keep: u32,
}

impl Default for Logs {
    fn default() -> Self {
        Logs {
            max_size: defaults::log_size(),
            keep: defaults::keep(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    Http(String),
    Tcp(String),
    Exec(Vec<String>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawHealth")]
pub struct Health {
    pub probe: Probe,
    pub expect_status: u16,
    pub expect_body: Option<String>,
    pub interval: Dur,
    pub timeout: Dur,
    pub failures: u32,
    pub start_grace: Dur,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    http: Option<String>,
    tcp: Option<String>,
    exec: Option<Vec<String>>,
    #[serde(default = "defaults::status_ok")]
    expect_status: u16,
    expect_body: Option<String>,
    #[serde(default = "defaults::second")]
    interval: Dur,
    #[serde(default = "defaults::second")]
    timeout: Dur,
    #[serde(default = "defaults::failures")]
    failures: u32,
    #[serde(default = "defaults::start_grace")]
    start_grace: Dur,
}

impl TryFrom<RawHealth> for Health {
    type Error = String;
    fn try_from(r: RawHealth) -> Result<Self, String> {
        let probe = match (r.http, r.tcp, r.exec) {
            (Some(u), None, None) => {
                if !u.starts_with("http://") {
                    return Err(format!(
                        "health `http = \"{u}\"` must start with http:// (probes use loopback HTTP)"
                    ));
                }
                Probe::Http(u)
            }
            (None, Some(a), None) => Probe::Tcp(a),
            (None, None, Some(c)) if !c.is_empty() => Probe::Exec(c),
            (None, None, Some(_)) => return Err("health `exec` is empty".into()),
            (None, None, None) => {
                return Err("health check has no probe: add one of `http = \"http://127.0.0.1:{port}/health\"`, `tcp = \"127.0.0.1:{port}\"` or `exec = [...]`".into());
            }
            _ => {
                return Err(
                    "health check has more than one probe: keep one of `http`, `tcp`, `exec`"
                        .into(),
                );
            }
        };
        if r.failures == 0 {
            return Err("health `failures` must be at least 1".into());
        }
        if r.interval.0.is_zero() || r.timeout.0.is_zero() {
            return Err("health `interval` and `timeout` must be above zero".into());
        }
        Ok(Health {
            probe,
            expect_status: r.expect_status,
            expect_body: r.expect_body,
            interval: r.interval,
            timeout: r.timeout,
            failures: r.failures,
            start_grace: r.start_grace,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub service: Spanned<String>,
    pub write: Option<Request>,
    pub read: Option<Request>,
    #[serde(default = "defaults::rate")]
    pub rate: Rate,
}

/// One request template of a workload: HTTP, or a command whose exit 0
/// acknowledges and whose stdout is the body.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawRequest")]
pub enum Request {
    Http {
        method: String,
        url: String,
        body: Option<String>,
        headers: BTreeMap<String, String>,
        expect_status: u16,
        expect_body: Option<String>,
    },
    Exec {
        command: Vec<String>,
        expect_body: Option<String>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    method: Option<String>,
    url: Option<String>,
    body: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    expect_status: Option<u16>,
    expect_body: Option<String>,
    exec: Option<Vec<String>>,
}

impl TryFrom<RawRequest> for Request {
    type Error = String;
    fn try_from(r: RawRequest) -> Result<Self, String> {
        match (r.url, r.exec) {
            (Some(url), None) => {
                if !url.starts_with("http://") {
                    return Err(format!("request `url = \"{url}\"` must start with http://"));
                }
                let method = r
                    .method
                    .unwrap_or_else(|| "GET".into())
                    .to_ascii_uppercase();
                Ok(Request::Http {
                    method,
                    url,
                    body: r.body,
                    headers: r.headers,
                    expect_status: r.expect_status.unwrap_or(200),
                    expect_body: r.expect_body,
                })
            }
            (None, Some(command)) if !command.is_empty() => {
                if r.method.is_some() || r.body.is_some() || r.expect_status.is_some() {
                    return Err("an `exec` request takes only `exec` and `expect_body`".into());
                }
                Ok(Request::Exec {
                    command,
                    expect_body: r.expect_body,
                })
            }
            (None, None) | (None, Some(_)) => {
                Err("request needs `url = \"http://...\"` or `exec = [...]`".into())
            }
            (Some(_), Some(_)) => Err("request has both `url` and `exec`: keep one".into()),
        }
    }
}

mod defaults {
    use super::*;
    use std::time::Duration;
    pub fn sample_every() -> Dur {
        Dur(Duration::from_secs(5))
    }
    pub fn cwd() -> PathBuf {
        PathBuf::from(".")
    }
    pub fn restart_delay() -> Dur {
        Dur(Duration::from_millis(100))
    }
    pub fn zero() -> Dur {
        Dur(Duration::ZERO)
    }
    pub fn factor() -> f64 {
        2.0
    }
    pub fn backoff_max() -> Dur {
        Dur(Duration::from_secs(30))
    }
    pub fn backoff_reset() -> Dur {
        Dur(Duration::from_secs(60))
    }
    pub fn burst() -> u32 {
        5
    }
    pub fn interval() -> Dur {
        Dur(Duration::from_secs(10))
    }
    pub fn term() -> Signal {
        Signal(libc::SIGTERM)
    }
    pub fn grace() -> Dur {
        Dur(Duration::from_secs(10))
    }
    pub fn log_size() -> Size {
        Size(10 * 1024 * 1024)
    }
    pub fn keep() -> u32 {
        1
    }
    pub fn status_ok() -> u16 {
        200
    }
    pub fn second() -> Dur {
        Dur(Duration::from_secs(1))
    }
    pub fn failures() -> u32 {
        3
    }
    pub fn start_grace() -> Dur {
        Dur(Duration::from_secs(30))
    }
    pub fn rate() -> Rate {
        Rate(5.0)
    }
}

/// Turns a `toml` error into one that points at the offending value.
pub(crate) fn toml_error(file: &Path, source: &str, e: &toml::de::Error) -> ConfigError {
    let (message, help) = error::explain_serde_message(e.message());
    ConfigError::at_span(file, source, e.span(), message, help)
}

/// Reads a file; a missing or unreadable file is a config error too.
pub(crate) fn read_source(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigError::whole_file(
            path,
            format!("cannot read {}: {e}", path.display()),
            Some("check the path, or pass --config PATH".into()),
        )
    })
}

/// Removes `.` and `..` lexically, so paths read well in messages.
pub fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// The file's folder, against which its relative paths resolve.
pub fn dir_of(path: &Path) -> PathBuf {
    path.parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."))
}

impl Config {
    /// Parses and validates `source` as if read from `path`.
    pub fn parse(path: &Path, source: &str) -> Result<Config, ConfigError> {
        let mut config: Config =
            toml::from_str(source).map_err(|e| toml_error(path, source, &e))?;
        config.source = source.into();
        config.command_spans = system::command_spans(source);
        let absolute = normalize(&std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()));
        let dir = dir_of(&absolute);
        config.path = absolute;
        if let Some(r) = &mut config.harness.reports {
            *r = normalize(&dir.join(&*r));
        }
        for service in config.services.values_mut() {
            service.cwd = normalize(&dir.join(&service.cwd));
            if let DataDir::Path(p) = &mut service.data_dir {
                *p = normalize(&dir.join(&*p));
            }
        }
        let names: Vec<&str> = config.services.keys().map(String::as_str).collect();
        for (name, w) in &config.workloads {
            if !config.services.contains_key(w.service.get_ref()) {
                return Err(ConfigError::at_span(
                    path,
                    source,
                    Some(w.service.span()),
                    format!(
                        "workload `{name}` names service `{}`, which is not defined",
                        w.service.get_ref()
                    ),
                    Some(suggest(w.service.get_ref(), &names, "service")),
                ));
            }
            if w.write.is_none() && w.read.is_none() {
                return Err(ConfigError::at_span(
                    path,
                    source,
                    Some(w.service.span()),
                    format!("workload `{name}` has neither `write` nor `read`"),
                    Some("add `read = { url = \"http://127.0.0.1:{port}/...\" }`".into()),
                ));
            }
        }
        for (name, s) in &config.services {
            if let Some(m) = &s.metrics
                && !m.url.get_ref().starts_with("http://")
            {
                return Err(ConfigError::at_span(
                    path,
                    source,
                    Some(m.url.span()),
                    format!("the metrics `url` of `{name}` must start with http://"),
                    Some("e.g. url = \"http://127.0.0.1:{port}/metrics\"".into()),
                ));
            }
        }
        for (name, s) in &config.services {
            for k in s.metrics.iter().flat_map(|m| &m.keep) {
                if let Err(e) = crate::metrics::parse::Selector::parse(k) {
                    let start = source.find(k.as_str()).unwrap_or(0);
                    return Err(ConfigError::at_span(
                        path,
                        source,
                        Some(start..start + k.len()),
                        format!("`{name}` keeps `{k}`, which is not a metric selector: {}", e.reason),
                        Some("write a metric name, or a name with labels: 'http_requests_in_flight{route=\"/work\"}'".into()),
                    ));
                }
            }
        }
        for (name, s) in &config.services {
            check_image(name, s, path, source)?;
        }
        system::check(&config, path, source)?;
        Ok(config)
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let source = read_source(path)?;
        Self::parse(path, &source)
    }

    /// `--config`, else `soak.toml` in the current directory or its parents.
    pub fn find(explicit: Option<&Path>) -> Result<PathBuf, ConfigError> {
        if let Some(p) = explicit {
            return Ok(p.to_path_buf());
        }
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        cwd.ancestors()
            .map(|d| d.join("soak.toml"))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                ConfigError::whole_file(
                    &cwd.join("soak.toml"),
                    "no soak.toml in this directory or any parent",
                    Some("pass --config PATH, e.g. --config fixtures/soak.toml".into()),
                )
            })
    }
}

impl Config {
    /// An error located at the service's `image`, such as an engine that
    /// does not answer or an image it does not have.
    pub fn error_at_image(
        &self,
        service: &str,
        message: String,
        help: Option<String>,
    ) -> ConfigError {
        let span = self
            .services
            .get(service)
            .and_then(|s| s.image.as_ref())
            .map(|i| i.span());
        ConfigError::at_span(&self.path, &self.source, span, message, help)
    }
}

/// Exactly one of `command` and `image`; the container-only keys only with
/// `image`; limits that an engine would refuse are refused here.
fn check_image(name: &str, s: &Service, path: &Path, source: &str) -> Result<(), ConfigError> {
    let at = |span: Option<std::ops::Range<usize>>, message: String, help: &str| {
        let span = span.or_else(|| {
            let header = format!("[services.{name}]");
            source.find(&header).map(|i| i..i + header.len())
        });
        ConfigError::at_span(path, source, span, message, Some(help.into()))
    };
    let has_command = !s.command.0.is_empty();
    match &s.image {
        Some(image) if has_command => {
            return Err(at(
                Some(image.span()),
                format!("service `{name}` has both `command` and `image`"),
                "keep one: `command` runs a program, `image` runs a container image",
            ));
        }
        Some(image) if image.get_ref().trim().is_empty() => {
            return Err(at(
                Some(image.span()),
                format!("the `image` of `{name}` is empty"),
                "name an image the engine has, e.g. image = \"redis:7\"",
            ));
        }
        Some(_) => {}
        None if !has_command => {
            // Worded as serde words a missing key (and pinned by a snapshot):
            // a config without containers needs no word about them.
            return Err(at(
                None,
                "missing key `command`".into(),
                "add `command = ...` to this table",
            ));
        }
        None => {
            let only_image = [
                ("args", s.args.as_ref().map(|a| a.span())),
                ("memory", s.memory.as_ref().map(|m| m.span())),
                ("cpus", s.cpus.as_ref().map(|c| c.span())),
            ];
            if let Some((key, span)) = only_image.into_iter().find(|(_, sp)| sp.is_some()) {
                return Err(at(
                    span,
                    format!("`{key}` of `{name}` is for a service run from an `image`"),
                    "put the arguments in `command`, or run the service from an `image`",
                ));
            }
        }
    }
    if s.image.is_some() && s.pidfile.is_some() {
        return Err(at(
            None,
            format!("`{name}` runs from an `image` and has a `pidfile`"),
            "remove `pidfile`: a container's main process is the one the engine started",
        ));
    }
    if let Some(c) = &s.cpus
        && !(*c.get_ref() > 0.0 && c.get_ref().is_finite())
    {
        return Err(at(
            Some(c.span()),
            format!("`cpus` of `{name}` must be above zero"),
            "e.g. cpus = 0.5 for half a CPU",
        ));
    }
    if let Some(m) = &s.memory
        && m.get_ref().0 < 6 * 1024 * 1024
    {
        return Err(at(
            Some(m.span()),
            format!("`memory` of `{name}` is below 6MB, which engines refuse"),
            "give at least \"6MB\", e.g. memory = \"256MB\"",
        ));
    }
    Ok(())
}

/// Replaces the known `{name}` placeholders and leaves every other brace alone,
/// so JSON bodies like `{"key":"{key}"}` survive.
pub fn expand(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (name, value) in vars {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VALID: &str = r#"
[harness]
sample_every = "1s"
[services.gateway]
command = ["./gw", "--port", "{port}"]
restart = "always"
backoff = { factor = 2.0, max = "30s" }
[services.gateway.health]
http = "http://127.0.0.1:{port}/health"
[workloads.items]
service = "gateway"
read = { url = "http://127.0.0.1:{port}/x", expect_body = "{value}" }
rate = "20/s"
"#;

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,300}") {
            if let Err(e) = Config::parse(Path::new("x.toml"), &s) {
                let _ = e.to_string();
            }
        }

        #[test]
        fn a_valid_config_with_a_cut_or_splice_never_panics(
            at in 0usize..400, len in 0usize..40, insert in "[\\[\\]{}=\"',.a-z0-9 \n]{0,12}"
        ) {
            let mut s: Vec<char> = VALID.chars().collect();
            let at = at.min(s.len());
            let end = (at + len).min(s.len());
            s.splice(at..end, insert.chars());
            let s: String = s.into_iter().collect();
            if let Err(e) = Config::parse(Path::new("x.toml"), &s) {
                let text = e.to_string();
                prop_assert!(text.starts_with("error: "));
                prop_assert!(text.contains("x.toml"));
            }
        }
    }

    #[test]
    fn the_example_config_parses() {
        let c = Config::parse(Path::new("x.toml"), VALID).unwrap();
        assert_eq!(c.services["gateway"].restart, RestartPolicy::Always);
        assert!(matches!(
            c.services["gateway"].health.as_ref().unwrap().probe,
            Probe::Http(_)
        ));
    }

    #[test]
    fn expand_leaves_json_braces_alone() {
        let s = expand(
            r#"{"key":"{key}","port":{port}}"#,
            &[("key", "k1"), ("port", "80")],
        );
        assert_eq!(s, r#"{"key":"k1","port":80}"#);
    }

    #[test]
    fn relative_paths_resolve_against_the_file() {
        let c = Config::parse(
            Path::new("/etc/soak/soak.toml"),
            "[services.a]\ncommand = [\"./a\"]\ncwd = \"bin\"\ndata_dir = \"data\"\n",
        )
        .unwrap();
        let a = &c.services["a"];
        assert_eq!(a.cwd, PathBuf::from("/etc/soak/bin"));
        assert_eq!(a.data_dir, DataDir::Path(PathBuf::from("/etc/soak/data")));
        assert_eq!(a.restart, RestartPolicy::OnFailure);
    }

    fn image_error(toml: &str) -> String {
        Config::parse(Path::new("x.toml"), toml)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn an_image_service_takes_args_memory_and_cpus() {
        let c = Config::parse(
            Path::new("x.toml"),
            "[services.cache]\nimage = \"redis:7\"\nargs = [\"--port\", \"{port}\"]\nmemory = \"256MB\"\ncpus = 0.5\n",
        )
        .unwrap();
        let s = &c.services["cache"];
        assert_eq!(s.image.as_ref().unwrap().get_ref(), "redis:7");
        assert_eq!(s.memory.as_ref().unwrap().get_ref().0, 256 * 1024 * 1024);
        assert!(s.command.0.is_empty());
    }

    #[test]
    fn command_and_image_are_exactly_one() {
        let e = image_error("[services.a]\ncommand = [\"./a\"]\nimage = \"redis:7\"\n");
        assert!(e.contains("both `command` and `image`"), "{e}");
        assert!(e.contains("x.toml:3:9"), "{e}");
        let e = image_error("[services.a]\nport = 1\n");
        assert!(e.contains("missing key `command`"), "{e}");
        assert!(e.contains("x.toml:1:1"), "{e}");
        let e = image_error("[services.a]\ncommand = [\"./a\"]\nmemory = \"64MB\"\n");
        assert!(
            e.contains("`memory` of `a` is for a service run from an `image`"),
            "{e}"
        );
        let e = image_error("[services.a]\nimage = \"r\"\ncpus = 0\n");
        assert!(e.contains("`cpus` of `a` must be above zero"), "{e}");
    }
}
