//! The plan: a config made concrete for one run. Ports are picked, data
//! directories made, links' ports bound, `{port}`, `{port.NAME}`,
//! `{link.NAME}` and `{data_dir}` expanded. Everything downstream
//! (supervisor, links, chaos, workloads) works from the plan, never from
//! templates.

use crate::config::{self, Config, DataDir, LinkTarget, PortSpec, Probe, Service};
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct ServicePlan {
    pub name: String,
    pub config: Service,
    pub port: u16,
    pub data_dir: PathBuf,
    /// The command, or for an image service the image's arguments.
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    /// The service's whole environment: soak's own, then the config's. An
    /// image service gets only the config's: the image sets its own PATH.
    pub env: Vec<(String, String)>,
    /// Run from this container image instead of a command.
    pub image: Option<String>,
    /// The run's id (its directory's name), for the labels of containers.
    pub run_id: String,
    pub probe: Option<Probe>,
    pub expect_body: Option<String>,
    pub sqlite: Vec<PathBuf>,
    pub log: PathBuf,
}

/// A `[links.NAME]` of the run: its port is bound when the plan is made,
/// so `{link.NAME}` names a port no other process can take before the link
/// serves it.
#[derive(Debug, Clone)]
pub struct LinkPlan {
    pub name: String,
    /// Where services connect: `{link.NAME}`.
    pub listen: SocketAddr,
    /// Where the link forwards: a planned service's `127.0.0.1:PORT`, or the
    /// address the config gives, resolved when the link starts.
    pub to: String,
    listener: Arc<Mutex<Option<TcpListener>>>,
}

impl LinkPlan {
    /// The bound listener, once: the link that serves it takes it.
    pub fn take_listener(&self) -> Option<TcpListener> {
        self.listener
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

#[derive(Debug, Clone)]
pub struct Plan {
    /// In the order they start: each after what it depends on.
    pub services: Vec<ServicePlan>,
    pub links: Vec<LinkPlan>,
    pub run_dir: PathBuf,
    /// `{port.NAME}` and `{link.NAME}` with their values: a second instance
    /// of a service is wired like the first.
    wiring: Vec<(String, String)>,
    /// Where relative `sqlite` paths are taken from: the config's directory.
    config_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("unknown service `{name}`; {hint}")]
    UnknownService { name: String, hint: String },
    #[error("cannot pick a free port on 127.0.0.1: {0}")]
    Port(std::io::Error),
    #[error("link {name}: cannot bind a port on 127.0.0.1: {source}")]
    LinkPort {
        name: String,
        #[source]
        source: std::io::Error,
    },
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

/// `name`, and every service it needs to work: what it `depends_on`, the
/// services behind the links it names, and those whose `{port.NAME}` it
/// uses, transitively.
fn with_dependencies(config: &Config, only: &[String]) -> Vec<String> {
    let mut want: Vec<String> = only.to_vec();
    let mut i = 0;
    while i < want.len() {
        let name = want[i].clone();
        let svc = &config.services[&name];
        let mut needs: Vec<String> = svc.depends_on.iter().map(|d| d.get_ref().clone()).collect();
        for link in config.links.keys() {
            if config.dependents_of_link(link).contains(&name)
                && let LinkTarget::Service(s) = config.link_target(link)
            {
                needs.push(s);
            }
        }
        let templates: Vec<&String> = svc
            .command
            .0
            .iter()
            .chain(svc.args.iter().flat_map(|a| a.get_ref()))
            .chain(svc.env.values())
            .collect();
        for other in config.services.keys() {
            let placeholder = format!("{{port.{other}}}");
            if templates.iter().any(|t| t.contains(&placeholder)) {
                needs.push(other.clone());
            }
        }
        for n in needs {
            if !want.contains(&n) {
                want.push(n);
            }
        }
        i += 1;
    }
    want
}

impl Plan {
    /// Makes `config` concrete for a run in `run_dir`, for the named services
    /// and what they depend on (all when `only` is empty).
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
        let wanted = with_dependencies(config, only);
        let order: Vec<String> = config
            .start_order()
            .into_iter()
            .filter(|n| only.is_empty() || wanted.contains(n))
            .collect();
        let mut ports = BTreeMap::new();
        for name in &order {
            let port = match config.services[name].port {
                PortSpec::Auto => free_port().map_err(PlanError::Port)?,
                PortSpec::Fixed(p) => p,
            };
            ports.insert(name.clone(), port);
        }
        let mut links = Vec::new();
        for name in config.links.keys() {
            let used = only.is_empty()
                || config
                    .dependents_of_link(name)
                    .iter()
                    .any(|d| ports.contains_key(d));
            if !used {
                continue;
            }
            let to = match config.link_target(name) {
                LinkTarget::Service(s) => match ports.get(&s) {
                    Some(port) => format!("127.0.0.1:{port}"),
                    None => continue,
                },
                LinkTarget::Address(a) => a,
            };
            let bind_error = |source| PlanError::LinkPort {
                name: name.clone(),
                source,
            };
            let listener = TcpListener::bind("127.0.0.1:0").map_err(bind_error)?;
            links.push(LinkPlan {
                name: name.clone(),
                listen: listener.local_addr().map_err(bind_error)?,
                to,
                listener: Arc::new(Mutex::new(Some(listener))),
            });
        }
        let mut wiring: Vec<(String, String)> = ports
            .iter()
            .map(|(name, port)| (format!("port.{name}"), port.to_string()))
            .collect();
        wiring.extend(
            links
                .iter()
                .map(|l| (format!("link.{}", l.name), l.listen.to_string())),
        );
        let mut services = Vec::new();
        let config_dir = config::dir_of(&config.path);
        for name in &order {
            let svc = &config.services[name];
            let data_dir = match &svc.data_dir {
                DataDir::Auto => run_dir.join("data").join(name),
                DataDir::Path(p) => p.clone(),
            };
            std::fs::create_dir_all(&data_dir).map_err(|source| PlanError::Dir {
                path: data_dir.clone(),
                source,
            })?;
            services.push(expand(
                name,
                svc,
                ports[name],
                data_dir,
                &wiring,
                &config_dir,
                run_dir,
            ));
        }
        Ok(Plan {
            services,
            links,
            run_dir: run_dir.to_path_buf(),
            wiring,
            config_dir,
        })
    }

    pub fn service(&self, name: &str) -> Option<&ServicePlan> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The service as a second instance of it runs: the same command, data
    /// dir, environment and wiring, expanded the same way, but on `port` and
    /// with a log of its own.
    pub fn second_instance(&self, name: &str, port: u16) -> Option<ServicePlan> {
        let first = self.service(name)?;
        let mut second = expand(
            name,
            &first.config,
            port,
            first.data_dir.clone(),
            &self.wiring,
            &self.config_dir,
            &self.run_dir,
        );
        second.log = first.log.with_file_name(format!("{name}-duplicate.log"));
        Some(second)
    }
}

/// A service made concrete: every template of it expanded with its port,
/// its data dir and the run's wiring.
fn expand(
    name: &str,
    svc: &Service,
    port: u16,
    data_dir: PathBuf,
    wiring: &[(String, String)],
    config_dir: &Path,
    run_dir: &Path,
) -> ServicePlan {
    let mut vars: Vec<(&str, String)> = vec![
        ("port", port.to_string()),
        ("data_dir", data_dir.display().to_string()),
        ("service", name.to_string()),
    ];
    vars.extend(wiring.iter().map(|(k, v)| (k.as_str(), v.clone())));
    let image = svc.image.as_ref().map(|i| i.get_ref().clone());
    let mut env: BTreeMap<String, String> = if image.is_some() {
        BTreeMap::new()
    } else {
        std::env::vars().collect()
    };
    for (k, v) in &svc.env {
        env.insert(k.clone(), expand_all(v, &vars));
    }
    let probe = svc.health.as_ref().map(|h| match &h.probe {
        Probe::Http(u) => Probe::Http(expand_all(u, &vars)),
        Probe::Tcp(a) => Probe::Tcp(expand_all(a, &vars)),
        Probe::Exec(c) => Probe::Exec(c.iter().map(|a| expand_all(a, &vars)).collect()),
    });
    ServicePlan {
        name: name.to_string(),
        port,
        argv: svc
            .command
            .0
            .iter()
            .chain(svc.args.iter().flat_map(|a| a.get_ref()))
            .map(|a| expand_all(a, &vars))
            .collect(),
        image,
        run_id: run_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
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
            .map(|p| config_dir.join(expand_all(p, &vars)))
            .collect(),
        log: run_dir.join("logs").join(format!("{name}.log")),
        data_dir,
        config: svc.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYSTEM: &str = r#"
[services.gateway]
command = ["gw", "--store", "{link.store}", "--direct", "{port.store}", "--port", "{port}"]
env = { CACHE = "{link.cache}" }
depends_on = ["store"]
[services.store]
command = ["store", "--port", "{port}"]
[services.other]
command = ["other", "--port", "{port}"]
[links.store]
to = "store"
[links.cache]
to = "127.0.0.1:6379"
"#;

    fn planned(only: &[&str]) -> (Plan, tempfile::TempDir) {
        let config = Config::parse(Path::new("/x/soak.toml"), SYSTEM).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let only: Vec<String> = only.iter().map(|s| s.to_string()).collect();
        (Plan::new(&config, &only, dir.path()).unwrap(), dir)
    }

    #[test]
    fn wiring_expands_to_the_planned_ports_and_the_links_bound_ports() {
        let (plan, _dir) = planned(&[]);
        let (gw, store) = (
            plan.service("gateway").unwrap(),
            plan.service("store").unwrap(),
        );
        let link = |name: &str| plan.links.iter().find(|l| l.name == name).unwrap();
        assert_eq!(link("store").to, format!("127.0.0.1:{}", store.port));
        assert_eq!(link("cache").to, "127.0.0.1:6379");
        assert_eq!(
            gw.argv,
            [
                "gw".to_string(),
                "--store".into(),
                link("store").listen.to_string(),
                "--direct".into(),
                store.port.to_string(),
                "--port".into(),
                gw.port.to_string(),
            ]
        );
        let cache = gw.env.iter().find(|(k, _)| k == "CACHE").unwrap();
        assert_eq!(cache.1, link("cache").listen.to_string());
        // The port is held from the plan on: nobody else can bind it.
        assert!(std::net::TcpListener::bind(link("store").listen).is_err());
        assert!(link("store").take_listener().is_some());
        assert!(link("store").take_listener().is_none(), "taken once");
    }

    #[test]
    fn a_second_instance_is_wired_like_the_first_on_a_port_of_its_own() {
        let (plan, _dir) = planned(&[]);
        let (gw, store) = (
            plan.service("gateway").unwrap(),
            plan.service("store").unwrap(),
        );
        let second = plan.second_instance("gateway", 4242).unwrap();
        let link = |name: &str| plan.links.iter().find(|l| l.name == name).unwrap();
        assert_eq!(second.port, 4242);
        assert_eq!(second.data_dir, gw.data_dir, "the same data, on purpose");
        // {link.NAME} and {port.NAME} reach it too, not only {port}.
        assert_eq!(
            second.argv,
            [
                "gw".to_string(),
                "--store".into(),
                link("store").listen.to_string(),
                "--direct".into(),
                store.port.to_string(),
                "--port".into(),
                "4242".into(),
            ]
        );
        let cache = second.env.iter().find(|(k, _)| k == "CACHE").unwrap();
        assert_eq!(cache.1, link("cache").listen.to_string());
        assert_eq!(second.log.file_name().unwrap(), "gateway-duplicate.log");
        assert_eq!(second.log.parent(), gw.log.parent());
        assert!(plan.second_instance("nobody", 1).is_none());
    }

    #[test]
    fn a_run_of_one_service_starts_what_it_depends_on_first_and_nothing_else() {
        let (plan, _dir) = planned(&["gateway"]);
        let names: Vec<&str> = plan.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["store", "gateway"]);
        let (plan, _dir) = planned(&["other"]);
        assert_eq!(plan.services.len(), 1);
        assert!(plan.links.is_empty(), "no planned service uses a link");
    }
}
