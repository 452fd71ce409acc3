//! The plan: a config made concrete for one run. Ports are picked, data
//! directories made, `{port}` and `{data_dir}` expanded. Everything downstream
//! (supervisor, chaos, workloads) works from the plan, never from templates.

use crate::config::{self, Config, DataDir, PortSpec, Probe, Service};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct ServicePlan {
    pub name: String,
    pub config: Service,
    pub port: u16,
    pub data_dir: PathBuf,
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    /// The service's whole environment: soak's own, then the config's.
    pub env: Vec<(String, String)>,
    pub probe: Option<Probe>,
    pub expect_body: Option<String>,
    pub sqlite: Vec<PathBuf>,
    pub log: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub services: Vec<ServicePlan>,
    pub run_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("unknown service `{name}`; {hint}")]
    UnknownService { name: String, hint: String },
    #[error("cannot pick a free port on 127.0.0.1: {0}")]
    Port(std::io::Error),
    #[error("cannot create {path}: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A free loopback port, found by binding port 0. Another process could take
/// it before the service binds; on a test machine that window is tiny.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Expands the known placeholders of a template.
pub fn expand_all(template: &str, vars: &[(&str, String)]) -> String {
    let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    config::expand(template, &refs)
}

impl Plan {
    /// Makes `config` concrete for a run in `run_dir`, for the named services
    /// (all when `only` is empty).
    pub fn new(config: &Config, only: &[String], run_dir: &Path) -> Result<Plan, PlanError> {
        let names: Vec<&str> = config.services.keys().map(String::as_str).collect();
        for name in only {
            if !config.services.contains_key(name) {
                return Err(PlanError::UnknownService {
                    name: name.clone(),
                    hint: config::suggest(name, &names, "service"),
                });
            }
        }
        let mut services = Vec::new();
        for (name, svc) in &config.services {
            if !only.is_empty() && !only.contains(name) {
                continue;
            }
            let port = match svc.port {
                PortSpec::Auto => free_port().map_err(PlanError::Port)?,
                PortSpec::Fixed(p) => p,
            };
            let data_dir = match &svc.data_dir {
                DataDir::Auto => run_dir.join("data").join(name),
                DataDir::Path(p) => p.clone(),
            };
            std::fs::create_dir_all(&data_dir).map_err(|source| PlanError::Dir {
                path: data_dir.clone(),
                source,
            })?;
            let vars = [
                ("port", port.to_string()),
                ("data_dir", data_dir.display().to_string()),
                ("service", name.clone()),
            ];
            let mut env: BTreeMap<String, String> = std::env::vars().collect();
            for (k, v) in &svc.env {
                env.insert(k.clone(), expand_all(v, &vars));
            }
            let probe = svc.health.as_ref().map(|h| match &h.probe {
                Probe::Http(u) => Probe::Http(expand_all(u, &vars)),
                Probe::Tcp(a) => Probe::Tcp(expand_all(a, &vars)),
                Probe::Exec(c) => Probe::Exec(c.iter().map(|a| expand_all(a, &vars)).collect()),
            });
            services.push(ServicePlan {
                name: name.clone(),
                port,
                argv: svc.command.0.iter().map(|a| expand_all(a, &vars)).collect(),
                cwd: svc.cwd.clone(),
                env: env.into_iter().collect(),
                probe,
                expect_body: svc
                    .health
                    .as_ref()
                    .and_then(|h| h.expect_body.as_ref())
                    .map(|b| expand_all(b, &vars)),
                sqlite: svc
                    .sqlite
                    .iter()
                    .map(|p| config::dir_of(&config.path).join(expand_all(p, &vars)))
                    .collect(),
                log: run_dir.join("logs").join(format!("{name}.log")),
                data_dir,
                config: svc.clone(),
            });
        }
        Ok(Plan {
            services,
            run_dir: run_dir.to_path_buf(),
        })
    }

    pub fn service(&self, name: &str) -> Option<&ServicePlan> {
        self.services.iter().find(|s| s.name == name)
    }
}
