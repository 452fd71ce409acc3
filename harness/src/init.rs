//! `soak init NAME -- COMMAND...`: a first config and scenarios for a service
//! soak has never seen, so a user goes from "I have a daemon" to a verdict
//! in one command. Every file written is one `soak validate` accepts and
//! `soak chaos` runs as it is; nothing is ever overwritten.

use std::path::{Path, PathBuf};

/// What the user told `soak init`.
#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub command: Vec<String>,
    /// An HTTP health URL; `{port}` in it is the service's port.
    pub health: Option<String>,
    /// A fixed port, for a command that does not take `{port}`.
    pub port: Option<u16>,
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(
        "no command: give the service's command after `--`, e.g. `soak init api -- python3 app.py --port {{port}}`"
    )]
    NoCommand,
    #[error(
        "`{0}` is not a usable service name: use letters, digits, `-` and `_` (it names files and TOML tables)"
    )]
    BadName(String),
    #[error("--health {url}: {why}; write it like http://127.0.0.1:{{port}}/health")]
    BadUrl { url: String, why: &'static str },
    #[error(
        "soak cannot tell when {0} is healthy: give --health URL, or --port N, or put {{port}} in the command"
    )]
    NoProbe(String),
    #[error(
        "the health URL uses {{port}} but {0} is never told its port: put {{port}} in the command or give --port N"
    )]
    PortNotPassed(String),
    #[error("{0} already exists; soak init never overwrites a file (move it away or edit it)")]
    Exists(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Service {
    fn check(&self) -> Result<(), InitError> {
        if self.command.first().is_none_or(|p| p.is_empty()) {
            return Err(InitError::NoCommand);
        }
        let name_ok = !self.name.is_empty()
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err(InitError::BadName(self.name.clone()));
        }
        let takes_port = self.port.is_some() || self.command.iter().any(|a| a.contains("{port}"));
        match &self.health {
            Some(url) => {
                check_url(url)?;
                if url.contains("{port}") && !takes_port {
                    return Err(InitError::PortNotPassed(self.name.clone()));
                }
            }
            None if !takes_port => return Err(InitError::NoProbe(self.name.clone())),
            None => {}
        }
        Ok(())
    }

    fn config(&self) -> String {
        let n = &self.name;
        let argv: Vec<String> = self.command.iter().map(|a| quote(a)).collect();
        let port = match self.port {
            Some(p) => p.to_string(),
            None => "\"auto\"".into(),
        };
        let probe = match &self.health {
            Some(url) => format!("http = {}", quote(url)),
            None => "tcp = \"127.0.0.1:{port}\"".into(),
        };
        let workload = match &self.health {
            Some(url) => format!(
                "\n# Steady requests, so availability and latency are measured and a hang\n\
                 # shows up as failed requests too.\n\
                 [workloads.{n}]\nservice = \"{n}\"\nread = {{ url = {} }}\nrate = \"2/s\"\n",
                quote(url)
            ),
            None => String::new(),
        };
        format!(
            "# soak config for {n}, written by `soak init`. Every key is explained in\n\
             # soak's README; `soak validate` checks this file.\n\n\
             [harness]\nreports = \"reports\"\nsample_every = \"5s\"\n\n\
             [services.{n}]\ncommand = [{argv}]\nport = {port}\n\
             restart = \"on-failure\"\nrestart_delay = \"100ms\"\n\
             backoff = {{ factor = 2.0, max = \"30s\" }}\n\
             start_limit = {{ burst = 10, interval = \"60s\" }}\n\
             stop = {{ signal = \"TERM\", grace = \"10s\" }}\n\
             logs = {{ max_size = \"10MB\", keep = 1 }}\n\
             # A service that daemonizes (forks and exits) needs\n\
             # pidfile = \"{{data_dir}}/{n}.pid\" and to be told to write it there.\n\n\
             [services.{n}.health]\n{probe}\ninterval = \"1s\"\ntimeout = \"1s\"\nfailures = 3\nstart_grace = \"30s\"\n\
             {workload}",
            argv = argv.join(", "),
        )
    }

    fn workloads_line(&self) -> String {
        match self.health {
            Some(_) => format!("workloads = [\"{}\"]\n", self.name),
            None => String::new(),
        }
    }

    fn kill(&self) -> String {
        let n = &self.name;
        format!(
            "description = \"kill -9 {n}: back and healthy within 15 s, nothing of it left running\"\n\
             config = \"../soak.toml\"\nservices = [\"{n}\"]\n{wl}duration = \"20s\"\n\n\
             [[steps]]\nat = \"3s\"\naction = \"kill\"\ntarget = \"{n}\"\nsignal = \"KILL\"\n\n\
             [expect]\nhealthy_within = \"15s\"\nrestarts = {{ max = 1 }}\n\
             # Workers or children that outlive a killed main process hold its port\n\
             # and memory: soak counts them and fails here.\n\
             no_orphans = true\n",
            wl = self.workloads_line()
        )
    }

    fn hang(&self) -> String {
        let n = &self.name;
        format!(
            "description = \"freeze {n} (SIGSTOP): the health probe notices within 15 s and {n} is restarted healthy\"\n\
             config = \"../soak.toml\"\nservices = [\"{n}\"]\n{wl}duration = \"30s\"\n\n\
             # No `for`: the processes stay stopped until the supervisor acts.\n\
             [[steps]]\nat = \"3s\"\naction = \"hang\"\ntarget = \"{n}\"\n\n\
             [expect]\ndetected_within = \"15s\"\nhealthy_within = \"25s\"\nno_orphans = true\n",
            wl = self.workloads_line()
        )
    }

    fn graceful_stop(&self) -> String {
        let n = &self.name;
        format!(
            "description = \"stop {n} with SIGTERM: it exits within its 10 s grace and leaves nothing running\"\n\
             config = \"../soak.toml\"\nservices = [\"{n}\"]\nduration = \"15s\"\n\n\
             [[steps]]\nat = \"3s\"\naction = \"stop\"\ntarget = \"{n}\"\n\n\
             [expect]\nstops_within = \"10s\"\nno_orphans = true\n\
             # A service that handles SIGTERM should exit 0; uncomment to demand it.\n\
             # exit_code = 0\n"
        )
    }

    fn soak(&self) -> String {
        let n = &self.name;
        let availability = match self.health {
            Some(_) => "availability_min = \"99%\"\nlatency_p99_max = \"1s\"\n",
            None => "",
        };
        format!(
            "description = \"{n} for days, a kill or a hang every hour: memory, fds and threads flat, restarts within budget\"\n\
             config = \"../soak.toml\"\nservices = [\"{n}\"]\n{wl}duration = \"72h\"\n\n\
             # Faults taken from the other scenarios, one every `every`, picked and\n\
             # jittered by a seeded generator: `soak run --seed N` replays them.\n\
             [schedule]\nevery = \"1h\"\npick = [\"kill-{n}\", \"hang-{n}\"]\nseed = 42\n\n\
             [expect]\nrss_slope_max = \"10MB/h\"\nfds_slope_max = \"10/h\"\nthreads_slope_max = \"10/h\"\n\
             restart_budget = {{ max = 3, window = \"10m\" }}\n{availability}no_orphans = true\n",
            wl = self.workloads_line()
        )
    }
}

/// `"text"` as a TOML basic string.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn check_url(url: &str) -> Result<(), InitError> {
    let bad = |why| {
        Err(InitError::BadUrl {
            url: url.to_string(),
            why,
        })
    };
    let Some(rest) = url.strip_prefix("http://") else {
        return bad("it must start with http:// (probes speak plain HTTP on loopback)");
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let Some((host, port)) = authority.rsplit_once(':') else {
        return bad("it has no port");
    };
    if host.is_empty() {
        return bad("it has no host");
    }
    if port != "{port}" && !port.parse::<u16>().is_ok_and(|p| p > 0) {
        return bad("its port is not a number from 1 to 65535 or {port}");
    }
    if url.chars().any(char::is_whitespace) {
        return bad("it contains whitespace");
    }
    Ok(())
}

/// Writes `soak.toml` and `scenarios/{kill,hang,graceful-stop}-NAME.toml`
/// and `scenarios/soak.toml` under `dir`; returns the files written. Checks
/// every file first, so either all are written or none.
pub fn init(dir: &Path, service: &Service) -> Result<Vec<PathBuf>, InitError> {
    service.check()?;
    let n = &service.name;
    let files = [
        (dir.join("soak.toml"), service.config()),
        (
            dir.join("scenarios").join(format!("kill-{n}.toml")),
            service.kill(),
        ),
        (
            dir.join("scenarios").join(format!("hang-{n}.toml")),
            service.hang(),
        ),
        (
            dir.join("scenarios")
                .join(format!("graceful-stop-{n}.toml")),
            service.graceful_stop(),
        ),
        (dir.join("scenarios").join("soak.toml"), service.soak()),
    ];
    if let Some((existing, _)) = files.iter().find(|(p, _)| p.exists()) {
        return Err(InitError::Exists(existing.clone()));
    }
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InitError::Write { path, source }
    };
    let scenarios = dir.join("scenarios");
    std::fs::create_dir_all(&scenarios).map_err(write_err(&scenarios))?;
    for (path, text) in &files {
        // create_new: a file that appeared since the check is not clobbered.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(write_err(path))?;
        std::io::Write::write_all(&mut f, text.as_bytes()).map_err(write_err(path))?;
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::scenario::Scenario;

    fn service(command: &[&str], health: Option<&str>, port: Option<u16>) -> Service {
        Service {
            name: "api".into(),
            command: command.iter().map(|s| s.to_string()).collect(),
            health: health.map(str::to_string),
            port,
        }
    }

    #[test]
    fn every_written_file_validates_and_schedules_its_own_scenarios() {
        for s in [
            service(
                &["python3", "app.py", "--port", "{port}"],
                Some("http://127.0.0.1:{port}/health"),
                None,
            ),
            service(&["node", "server.js"], None, Some(8080)),
            service(
                &["./daemon", "--listen=127.0.0.1:{port}", "say \"hi\""],
                None,
                None,
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let written = init(dir.path(), &s).unwrap();
            assert_eq!(written.len(), 5);
            for p in &written[1..] {
                let sc = Scenario::load(p).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(sc.services, ["api"]);
                if let Some(sched) = &sc.schedule {
                    for pick in &sched.pick {
                        assert!(
                            dir.path()
                                .join("scenarios")
                                .join(format!("{}.toml", pick.get_ref()))
                                .is_file()
                        );
                    }
                }
            }
            let config = crate::config::Config::load(&written[0]).unwrap();
            assert_eq!(config.services["api"].command.0, s.command);
        }
    }

    #[test]
    fn it_never_overwrites_and_writes_nothing_when_one_file_exists() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("scenarios")).unwrap();
        std::fs::write(dir.path().join("scenarios/hang-api.toml"), "mine").unwrap();
        let s = service(&["./api", "{port}"], None, None);
        let e = init(dir.path(), &s).unwrap_err();
        assert!(matches!(&e, InitError::Exists(p) if p.ends_with("hang-api.toml")));
        assert!(!dir.path().join("soak.toml").exists());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("scenarios/hang-api.toml")).unwrap(),
            "mine"
        );
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (service(&[], None, Some(1)), "no command"),
            (
                service(&["./a"], Some("127.0.0.1:80/health"), None),
                "must start with http://",
            ),
            (
                service(&["./a"], Some("http://127.0.0.1/health"), None),
                "has no port",
            ),
            (
                service(&["./a"], Some("http://127.0.0.1:99999/"), None),
                "port is not a number",
            ),
            (
                service(&["./a"], None, None),
                "cannot tell when api is healthy",
            ),
            (
                service(&["./a"], Some("http://127.0.0.1:{port}/"), None),
                "never told its port",
            ),
        ];
        for (s, says) in cases {
            let e = init(dir.path(), &s).unwrap_err().to_string();
            assert!(e.contains(says), "{e:?} should say {says:?}");
        }
        let e = init(
            dir.path(),
            &Service {
                name: "a b".into(),
                ..service(&["./a", "{port}"], None, None)
            },
        )
        .unwrap_err();
        assert!(matches!(&e, InitError::BadName(n) if n == "a b"));
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    }
}
