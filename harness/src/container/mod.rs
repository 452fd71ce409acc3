//! Image services: the engine, the container spec and its labels.
//!
//! soak runs an `image` service on whatever Docker-API engine `DOCKER_HOST`
//! names (Docker Engine, or Podman's `podman system service`), else the
//! default socket, through bollard: the engine client testcontainers-rs is
//! built on and re-exports. testcontainers' own runner is not used for the
//! start: it inspects a container right after starting it and gives up
//! (removing it) when bollard cannot read the state, which Podman's
//! transient `stopped` is for a container that exits at once, such as a
//! duplicate that refuses; the exit, the very thing to observe, was lost.
//! The tests build their images with testcontainers.
//!
//! There is no reaper container (testcontainers-rs has no Ryuk): the shim
//! that owns a container removes it when soak goes, SIGKILL included. soak
//! never pulls: an image the engine does not have is an error that says so,
//! because a pull from a registry that is not reachable hangs a start.
//!
//! The shim's side (create, start, logs, wait, stop, remove) is in
//! `supervise/container.rs`; chaos uses [`Engine::pause`] for `hang`.

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;
use testcontainers::bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use testcontainers::bollard::{self, Docker, query_parameters as q};

/// Label naming the soak run a container belongs to (the run directory's name).
pub const RUN_LABEL: &str = "soak.run";
/// Label naming the service of the run.
pub const SERVICE_LABEL: &str = "soak.service";
/// Label naming the pid of the shim that owns the container: a container
/// whose shim is gone is a leftover (soak cannot have been SIGKILLed
/// without its shims removing their containers, unless the host went down).
pub const OWNER_LABEL: &str = "soak.owner";

/// How long soak waits for an engine to answer before calling it absent.
pub const ENGINE_TIMEOUT: Duration = Duration::from_millis(800);

/// What the shim needs to run one incarnation as a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub image: String,
    pub labels: Vec<(String, String)>,
    /// Host paths mounted at the same path (the data dir).
    pub mounts: Vec<PathBuf>,
    pub memory: Option<u64>,
    pub cpus: Option<f64>,
}

impl ContainerSpec {
    /// The container side of an incarnation of `sp`, if it runs from an image.
    pub fn for_service(sp: &crate::plan::ServicePlan) -> Option<ContainerSpec> {
        Some(ContainerSpec {
            image: sp.image.clone()?,
            // The owner label is added by the shim, which knows its pid.
            labels: vec![
                (RUN_LABEL.into(), sp.run_id.clone()),
                (SERVICE_LABEL.into(), sp.name.clone()),
            ],
            mounts: vec![sp.data_dir.clone()],
            memory: sp.config.memory.as_ref().map(|m| m.get_ref().0),
            cpus: sp.config.cpus.as_ref().map(|c| *c.get_ref()),
        })
    }
}

/// The engine address soak and testcontainers use: `DOCKER_HOST`, else the
/// default socket.
pub fn engine_address() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".into())
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "no container engine answers at {address}: {why}; start Docker, or Podman's \
         `podman system service --time=0 unix:///run/podman/podman.sock &` and \
         export DOCKER_HOST=unix:///run/podman/podman.sock"
    )]
    Absent { address: String, why: String },
    #[error(
        "image `{image}` is not in the engine at {address}; soak never pulls: build or pull it \
         first (`docker build -t {image} .`, `podman pull {image}`)"
    )]
    NoImage { image: String, address: String },
    #[error("the engine at {address}: {why}")]
    Failed { address: String, why: String },
}

/// A connection to the engine.
#[derive(Clone)]
pub struct Engine {
    pub docker: Docker,
    pub address: String,
}

impl Engine {
    /// Connects and pings, within [`ENGINE_TIMEOUT`].
    pub async fn connect() -> Result<Engine, EngineError> {
        let address = engine_address();
        let absent = |why: String| EngineError::Absent {
            address: address.clone(),
            why,
        };
        let docker = Docker::connect_with_defaults().map_err(|e| absent(e.to_string()))?;
        match tokio::time::timeout(ENGINE_TIMEOUT, docker.ping()).await {
            Ok(Ok(_)) => Ok(Engine { docker, address }),
            Ok(Err(e)) => Err(absent(e.to_string())),
            Err(_) => Err(absent(format!(
                "no answer within {} ms",
                ENGINE_TIMEOUT.as_millis()
            ))),
        }
    }

    fn failed(&self, e: impl std::fmt::Display) -> EngineError {
        EngineError::Failed {
            address: self.address.clone(),
            why: e.to_string(),
        }
    }

    /// The image's stop signal (its `STOPSIGNAL`), once it is known to be
    /// present; `Err(NoImage)` if the engine does not have it.
    pub async fn image_stop_signal(&self, image: &str) -> Result<Option<String>, EngineError> {
        match self.docker.inspect_image(image).await {
            Ok(i) => Ok(i.config.and_then(|c| c.stop_signal)),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Err(EngineError::NoImage {
                image: image.into(),
                address: self.address.clone(),
            }),
            Err(e) => Err(self.failed(e)),
        }
    }

    /// Running containers of any soak run.
    pub async fn soak_containers(&self) -> Result<Vec<Labelled>, EngineError> {
        let filters = HashMap::from([("label".to_string(), vec![RUN_LABEL.to_string()])]);
        // Settled: another run's container passing through Podman's
        // `stopped` would otherwise fail this run's start.
        let list = settled(|| {
            self.docker.list_containers(Some(q::ListContainersOptions {
                filters: Some(filters.clone()),
                ..Default::default()
            }))
        })
        .await
        .map_err(|e| self.failed(e))?;
        Ok(list
            .into_iter()
            .map(|c| {
                let labels = c.labels.unwrap_or_default();
                let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
                Labelled {
                    id: c.id.unwrap_or_default(),
                    run: label(RUN_LABEL),
                    service: label(SERVICE_LABEL),
                    owner: label(OWNER_LABEL).parse().unwrap_or(0),
                }
            })
            .collect())
    }

    /// Creates and starts a container of `spec` running `args` with `env`,
    /// labelled as owned by the shim of pid `owner`; returns its id. A
    /// container that was created but would not start is removed.
    pub async fn run(
        &self,
        spec: &ContainerSpec,
        args: &[String],
        env: &[(String, String)],
        owner: u32,
    ) -> Result<String, EngineError> {
        let mut labels: HashMap<String, String> = spec.labels.iter().cloned().collect();
        labels.insert(OWNER_LABEL.into(), owner.to_string());
        let host = HostConfig {
            // The host network: ports, {port} and loopback probes work as for
            // a process.
            network_mode: Some("host".into()),
            mounts: Some(
                spec.mounts
                    .iter()
                    .map(|m| Mount {
                        target: Some(m.display().to_string()),
                        source: Some(m.display().to_string()),
                        typ: Some(MountType::BIND),
                        ..Default::default()
                    })
                    .collect(),
            ),
            // Swap equal to the limit: no swap, so an overrun is an OOM
            // kill, not a slow crawl.
            memory: spec.memory.map(|m| m as i64),
            memory_swap: spec.memory.map(|m| m as i64),
            nano_cpus: spec.cpus.map(|c| (c * 1e9) as i64),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: (!args.is_empty()).then(|| args.to_vec()),
            env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            host_config: Some(host),
            ..Default::default()
        };
        let id = self
            .docker
            .create_container(None::<q::CreateContainerOptions>, body)
            .await
            .map_err(|e| self.failed(e))?
            .id;
        if let Err(e) = self
            .docker
            .start_container(&id, None::<q::StartContainerOptions>)
            .await
        {
            let _ = self.remove(&id).await;
            return Err(self.failed(e));
        }
        Ok(id)
    }

    /// Running containers of soak runs whose shim is gone.
    pub async fn leftovers(&self) -> Result<Vec<Labelled>, EngineError> {
        Ok(self
            .soak_containers()
            .await?
            .into_iter()
            .filter(|c| !c.owned())
            .collect())
    }

    /// The container's state: host pid of its main process, running, paused,
    /// exit code, OOM-killed.
    pub async fn state(&self, id: &str) -> Result<State, EngineError> {
        let c = settled(|| {
            self.docker
                .inspect_container(id, None::<q::InspectContainerOptions>)
        })
        .await
        .map_err(|e| self.failed(e))?;
        let s = c.state.unwrap_or_default();
        Ok(State {
            pid: s.pid.unwrap_or(0) as i32,
            running: s.running.unwrap_or(false),
            paused: s.paused.unwrap_or(false),
            exit_code: s.exit_code,
            oom_killed: s.oom_killed.unwrap_or(false),
        })
    }

    /// Sends `signal` to the container's main process through the engine.
    pub async fn kill(&self, id: &str, signal: i32) -> Result<(), EngineError> {
        let signal = format!("SIG{}", crate::config::units::signal_name(signal));
        self.docker
            .kill_container(id, Some(q::KillContainerOptions { signal }))
            .await
            .map_err(|e| self.failed(e))
    }

    /// Freezes every process of the container (the cgroup freezer).
    pub async fn pause(&self, id: &str) -> Result<(), EngineError> {
        self.docker
            .pause_container(id)
            .await
            .map_err(|e| self.failed(e))
    }

    pub async fn unpause(&self, id: &str) -> Result<(), EngineError> {
        self.docker
            .unpause_container(id)
            .await
            .map_err(|e| self.failed(e))
    }

    /// Kills and removes the container; one that is gone already is fine.
    pub async fn remove(&self, id: &str) -> Result<(), EngineError> {
        match self
            .docker
            .remove_container(
                id,
                Some(q::RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..Default::default()
                }),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(self.failed(e)),
        }
    }

    /// Waits until the container is no longer running.
    pub async fn wait(&self, id: &str) {
        let mut s = self
            .docker
            .wait_container(id, None::<q::WaitContainerOptions>);
        // A non-zero exit comes back as an error item: either way it ended.
        let _ = s.next().await;
    }
}

/// A container labelled by a soak run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labelled {
    pub id: String,
    pub run: String,
    pub service: String,
    /// The pid of the shim that owns it (0 if unlabelled).
    pub owner: i32,
}

impl Labelled {
    /// Its shim still runs on this host.
    pub fn owned(&self) -> bool {
        self.owner > 0
            && std::fs::read(format!("/proc/{}/cmdline", self.owner))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == b"__shim"))
    }
}

/// Runs an engine call again while its answer names a container state this
/// client does not know: Podman passes through `stopped` between a
/// process's exit and its clean-up, for a few hundred milliseconds.
async fn settled<T, F: Future<Output = Result<T, bollard::errors::Error>>>(
    call: impl Fn() -> F,
) -> Result<T, bollard::errors::Error> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match call().await {
            Err(bollard::errors::Error::JsonDataError { .. })
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            r => return r,
        }
    }
}

/// What [`Engine::state`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    pub pid: i32,
    pub running: bool,
    pub paused: bool,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
}

/// How to remove what an earlier soak run left, for the engine in use.
pub fn removal_hint() -> String {
    let address = engine_address();
    let cli = if address.contains("podman") {
        "podman"
    } else {
        "docker"
    };
    format!("{cli} rm -f $({cli} ps -aq --filter label={RUN_LABEL})")
}

/// Runs `f` on a runtime of its own in a thread of its own: for engine calls
/// from code that may run inside, or outside, soak's runtime (preflight, a
/// fault's undo on drop).
pub fn blocking<T: Send>(f: impl AsyncFnOnce() -> T + Send) -> Option<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            Some(rt.block_on(f()))
        })
        .join()
        .ok()
        .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labelled(owner: i32) -> Labelled {
        Labelled {
            id: "c".into(),
            run: "r".into(),
            service: "s".into(),
            owner,
        }
    }

    #[test]
    fn a_container_is_owned_only_while_a_shim_of_that_pid_runs() {
        assert!(!labelled(0).owned(), "no owner label");
        // This test's own process is alive but is not a shim.
        assert!(!labelled(std::process::id() as i32).owned());
        // A process with `__shim` among its arguments that stays up (GNU
        // sleep would reject the extra argument and exit at once).
        let mut shim = std::process::Command::new("python3")
            .args(["-c", "import time; time.sleep(30)", "__shim"])
            .spawn()
            .unwrap();
        // Until its exec is done it shows the test's command line.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !labelled(shim.id() as i32).owned() {
            assert!(
                std::time::Instant::now() < deadline,
                "a live shim owns its container"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        shim.kill().unwrap();
        shim.wait().unwrap();
        assert!(
            !labelled(shim.id() as i32).owned(),
            "a reaped shim owns nothing"
        );
    }
}
