//! What the soak benches share: starting the same services under soak,
//! supervisord and PM2, installing the competitors once into
//! `target/bench-tools/`, and stopping each one by its own pid or its own stop
//! command. It lives here rather than in `harness/benches/` because it is a
//! helper of the benches, not a bench; each bench includes it with `#[path]`.

use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An install from a registry that takes longer than this is treated as
/// unavailable, so a slow or unreachable registry skips a competitor instead
/// of hanging the bench.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);
/// soak and supervisord stop their services with SIGTERM and a grace (10 s
/// by default in both); past this the stop itself has failed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// One supervised service, as every supervisor gets it.
pub struct Service {
    pub name: String,
    pub argv: Vec<String>,
}

/// Whether `name` is to be measured: every competitor unless the
/// environment variable `var` lists some (`soak,pm2`).
pub fn selected(var: &str, name: &str) -> bool {
    std::env::var(var).map_or(true, |o| o.split(',').any(|x| x == name))
}

/// A value as TOML, quoted and escaped, for writing soak configs.
pub fn toml(v: impl Into<toml::Value>) -> String {
    v.into().to_string()
}

/// The soak binary cargo built for this bench (same profile, same sources).
pub fn soak_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_soak"))
}

/// `target/`, found from the soak binary (`target/release/soak`), so a custom
/// CARGO_TARGET_DIR is honoured without asking cargo.
fn target_dir() -> PathBuf {
    let exe = soak_exe();
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"))
}

pub fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the pid exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Waits up to `timeout` for `pid` to be gone (a dead child of another
/// process may linger as a zombie until that parent reaps it).
pub fn gone_within(pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Waits for `child` up to `timeout`; false if it is still running.
fn wait_bounded(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) if Instant::now() >= deadline => return false,
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Runs a helper command to its end, output into `log`, bounded in time.
fn run_bounded(cmd: &mut Command, log: &Path, timeout: Duration) -> Result<(), String> {
    let out = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if !wait_bounded(&mut child, timeout) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!(
            "{:?} took over {} s (log: {})",
            cmd.get_program(),
            timeout.as_secs(),
            log.display()
        ));
    }
    match child.wait() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!(
            "{:?} failed ({s}; log: {})",
            cmd.get_program(),
            log.display()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// supervisord from PyPI in a venv under `target/bench-tools/`, installed on
/// first use; later runs find it there.
fn install_supervisord() -> Result<PathBuf, String> {
    let venv = target_dir().join("bench-tools/supervisor");
    let bin = venv.join("bin");
    if !bin.join("supervisord").exists() {
        eprintln!("installing supervisor into {} ...", venv.display());
        fs::create_dir_all(&venv).map_err(|e| e.to_string())?;
        run_bounded(
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
            &venv.with_extension("venv.log"),
            INSTALL_TIMEOUT,
        )?;
        run_bounded(
            Command::new(bin.join("pip")).args(["install", "-q", "supervisor"]),
            &venv.with_extension("pip.log"),
            INSTALL_TIMEOUT,
        )?;
    }
    Ok(bin)
}

/// PM2 from npm under `target/bench-tools/`, installed on first use.
fn install_pm2() -> Result<PathBuf, String> {
    let prefix = target_dir().join("bench-tools/pm2");
    let pm2 = prefix.join("node_modules/.bin/pm2");
    if !pm2.exists() {
        eprintln!("installing pm2 into {} ...", prefix.display());
        fs::create_dir_all(&prefix).map_err(|e| e.to_string())?;
        run_bounded(
            Command::new("npm")
                .arg("install")
                .arg("--prefix")
                .arg(&prefix)
                .args(["--no-audit", "--no-fund", "pm2"]),
            &prefix.with_extension("npm.log"),
            INSTALL_TIMEOUT,
        )?;
    }
    Ok(pm2)
}

/// One argument quoted for a POSIX shell-like splitter (supervisord's
/// `command` is split with Python's shlex; `%` is its config interpolation).
fn sh_quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r#"'"'"'"#).replace('%', "%%"))
}

enum Kind {
    /// soak and supervisord run in the foreground as our child.
    Child { child: Child, signal: i32 },
    /// PM2's daemon detaches; only `pm2 kill` with the same PM2_HOME stops it.
    Pm2 { pm2: PathBuf, home: PathBuf },
}

/// A running supervisor daemon. Stopped on drop if not stopped before, so a
/// panicking bench does not leave it behind.
pub struct Daemon {
    pub pid: i32,
    kind: Kind,
    stopped: bool,
}

/// Starts a supervisor in the foreground. If the bench dies, the kernel sends
/// it `signal` (a parent-death signal: the bench is single-threaded, so the
/// thread that spawns is the one that lives), and it stops its services.
fn spawn_foreground(cmd: &mut Command, log: &Path, signal: i32) -> Result<Daemon, String> {
    let out = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, signal);
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    Ok(Daemon {
        pid: child.id() as i32,
        kind: Kind::Child { child, signal },
        stopped: false,
    })
}

impl Daemon {
    /// `soak up` with `config` (written to `dir/soak.toml`), in the
    /// foreground; SIGINT stops it the way Ctrl-C would.
    pub fn soak(dir: &Path, config: &str) -> Result<Daemon, String> {
        let path = dir.join("soak.toml");
        fs::write(&path, config).map_err(|e| e.to_string())?;
        spawn_foreground(
            Command::new(soak_exe())
                .arg("up")
                .arg("--config")
                .arg(&path),
            &dir.join("soak.log"),
            libc::SIGINT,
        )
    }

    /// supervisord in the foreground (`nodaemon`), with its socket, pidfile
    /// and logs in `dir`; every service restarts at once, forever.
    pub fn supervisord(dir: &Path, services: &[Service]) -> Result<Daemon, String> {
        let bin = install_supervisord()?;
        let d = dir.display();
        let mut conf = format!(
            "[unix_http_server]\nfile={d}/supervisor.sock\n\
             [supervisord]\nnodaemon=true\nlogfile={d}/supervisord.log\n\
             pidfile={d}/supervisord.pid\nchildlogdir={d}\n\
             [rpcinterface:supervisor]\n\
             supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\
             [supervisorctl]\nserverurl=unix://{d}/supervisor.sock\n"
        );
        for s in services {
            let command: Vec<String> = s.argv.iter().map(|a| sh_quote(a)).collect();
            conf += &format!(
                "[program:{}]\ncommand={}\nautorestart=true\nstartsecs=0\nstartretries=1000000\n",
                s.name,
                command.join(" ")
            );
        }
        let path = dir.join("supervisord.conf");
        fs::write(&path, conf).map_err(|e| e.to_string())?;
        spawn_foreground(
            Command::new(bin.join("supervisord")).arg("-c").arg(&path),
            &dir.join("supervisord.out"),
            libc::SIGTERM,
        )
    }

    /// The PM2 daemon with PM2_HOME in `dir`, running `services` with
    /// immediate restarts. Deaths within `min_uptime` (100 ms, the least PM2
    /// accepts) count as "unstable" and PM2 gives up after `max_restarts` of
    /// them, so that is set out of reach.
    pub fn pm2(dir: &Path, services: &[Service]) -> Result<Daemon, String> {
        let pm2 = install_pm2()?;
        let home = dir.join("pm2");
        let apps: Vec<serde_json::Value> = services
            .iter()
            .map(|s| {
                serde_json::json!({
                    "name": s.name,
                    "script": s.argv[0],
                    "args": s.argv[1..],
                    "interpreter": "none",
                    "exec_mode": "fork",
                    "autorestart": true,
                    "restart_delay": 0,
                    "min_uptime": 100,
                    "max_restarts": 1_000_000,
                })
            })
            .collect();
        let eco = dir.join("ecosystem.json");
        fs::write(&eco, serde_json::json!({ "apps": apps }).to_string())
            .map_err(|e| e.to_string())?;
        let mut daemon = Daemon {
            pid: 0,
            kind: Kind::Pm2 {
                pm2: pm2.clone(),
                home: home.clone(),
            },
            stopped: false,
        };
        // From here on a failure still runs `pm2 kill` (on drop): a daemon
        // may be up even if `pm2 start` did not finish.
        run_bounded(
            Command::new(&pm2)
                .arg("start")
                .arg(&eco)
                .env("PM2_HOME", &home),
            &dir.join("pm2-start.log"),
            Duration::from_secs(60),
        )?;
        daemon.pid = fs::read_to_string(home.join("pm2.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or("pm2 wrote no pm2.pid")?;
        Ok(daemon)
    }

    /// Stops the supervisor and its services, by its pid or its own stop
    /// command, and waits until the daemon is gone.
    pub fn stop(&mut self) -> Result<(), String> {
        if std::mem::replace(&mut self.stopped, true) {
            return Ok(());
        }
        match &mut self.kind {
            Kind::Child { child, signal } => {
                // SAFETY: kill(2) on our own unreaped child.
                unsafe { libc::kill(self.pid, *signal) };
                if wait_bounded(child, STOP_TIMEOUT) {
                    Ok(())
                } else {
                    let _ = child.kill();
                    let _ = child.wait();
                    Err(format!(
                        "pid {} did not stop within {} s; SIGKILLed",
                        self.pid,
                        STOP_TIMEOUT.as_secs()
                    ))
                }
            }
            Kind::Pm2 { pm2, home } => {
                let log = home.with_extension("kill.log");
                run_bounded(
                    Command::new(&*pm2).arg("kill").env("PM2_HOME", &*home),
                    &log,
                    Duration::from_secs(60),
                )?;
                if self.pid == 0 || gone_within(self.pid, STOP_TIMEOUT) {
                    Ok(())
                } else {
                    Err(format!(
                        "pm2 daemon {} still alive after pm2 kill",
                        self.pid
                    ))
                }
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("warning: {e}");
        }
    }
}
