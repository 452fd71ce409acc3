//! The real `soak chaos` on a scenario a test wrote, watched from outside:
//! every process in soak's tree is noted (pid and start time) while it
//! runs, so a test can check afterwards that nothing soak started outlives
//! it, and the verdicts are read from `report.json` as a user reads them.

use serde_json::Value;
use soak::supervise::procfs;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// How long any one `soak chaos` of a test may take: runs are seconds long,
/// this only bounds a hang.
const LIMIT: Duration = Duration::from_secs(90);

/// `s` as a TOML string, quoted and escaped.
pub fn q(s: impl AsRef<str>) -> String {
    toml::Value::String(s.as_ref().to_string()).to_string()
}

/// A path as a TOML string.
pub fn qp(p: &Path) -> String {
    q(p.to_str().expect("a UTF-8 path"))
}

/// The absolute path of a program from a Debian package, or a panic that
/// says which package to install. nginx lives in /usr/sbin, which is not on
/// every user's PATH.
pub fn program(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` not found on PATH or in /usr/sbin: install the Debian package \
                 `{package}` (.ci/run does: apt-get install -y {package})"
            )
        })
}

/// redis-cli's path as a TOML string (Debian's redis-tools, which
/// redis-server depends on).
pub fn redis_cli() -> String {
    qp(&program("redis-cli", "redis-tools"))
}

/// soak.toml's `[services.nginx]` (master and 2 workers, see
/// [`super::NGINX_CONF`]), with the config template written into `dir`.
/// The command renders the template with soak's port into the data dir and
/// execs nginx, so the incarnation's pid is the master's. nginx is stopped
/// with SIGQUIT, its graceful shutdown.
pub fn nginx_service(dir: &Path) -> String {
    let template = dir.join("nginx.conf.in");
    // A root master runs its workers as `nobody`, whose limits soak may not
    // change without CAP_SYS_RESOURCE (it says so): as root, they stay root.
    // SAFETY: geteuid cannot fail.
    let user = if unsafe { libc::geteuid() } == 0 {
        "user root;\n"
    } else {
        ""
    };
    std::fs::write(&template, format!("{user}{}", super::NGINX_CONF)).unwrap();
    let render_and_exec = r#"sed "s/@PORT@/$1/" "$2" > "$3/nginx.conf" && exec "$4" -e stderr -p "$3/" -c "$3/nginx.conf" -g "daemon off;""#;
    format!(
        r#"[services.nginx]
command = ["/bin/sh", "-c", {script}, "sh", "{{port}}", {template}, "{{data_dir}}", {nginx}]
port = "auto"
data_dir = "auto"
restart = "on-failure"
restart_delay = "100ms"
stop = {{ signal = "QUIT", grace = "10s" }}

[services.nginx.health]
http = "http://127.0.0.1:{{port}}/"
expect_status = 200
expect_body = "ok"
interval = "500ms"
timeout = "1s"
failures = 3
start_grace = "10s"
"#,
        script = q(render_and_exec),
        template = qp(&template),
        nginx = qp(&program("nginx", "nginx-light")),
    )
}

/// A process by pid and start time, so that a reused pid is not taken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seen {
    pub pid: i32,
    start: u64,
}

/// State and start time (clock ticks after boot) from /proc/PID/stat.
fn stat(pid: i32) -> Option<(char, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest: Vec<&str> = s.get(s.rfind(')')? + 1..)?.split_whitespace().collect();
    // After the comm: state is field 3 of stat(5), starttime field 22.
    Some((rest.first()?.chars().next()?, rest.get(19)?.parse().ok()?))
}

fn still_alive(p: &Seen) -> bool {
    stat(p.pid).is_some_and(|(state, start)| start == p.start && state != 'Z')
}

/// A `soak chaos` while it runs; SIGKILLed by pid if the test panics first
/// (its shims then kill their trees: nothing outlives soak).
pub struct Chaos {
    dir: PathBuf,
    child: Option<Child>,
    started: Instant,
    /// Every process seen in soak's tree, with its parent when first seen.
    tree: BTreeMap<Seen, i32>,
}

impl Chaos {
    /// Writes `scenario` as `scenario.toml` next to `dir/soak.toml` (which
    /// it names as its config) and starts `soak chaos` on it.
    pub fn start(dir: &Path, scenario: &str) -> Chaos {
        Chaos::start_with(dir, scenario, &["chaos", "scenario.toml", "--plain"])
    }

    /// [`Chaos::start`] with soak's arguments given: `soak run` on
    /// `scenario.toml`, say.
    pub fn start_with(dir: &Path, scenario: &str, args: &[&str]) -> Chaos {
        std::fs::write(
            dir.join("scenario.toml"),
            format!("config = \"soak.toml\"\n{scenario}"),
        )
        .unwrap();
        let out = std::fs::File::create(dir.join("soak.out")).unwrap();
        let child = std::process::Command::new(super::soak_bin())
            .args(args)
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("starting soak");
        Chaos {
            dir: dir.to_path_buf(),
            child: Some(child),
            started: Instant::now(),
            tree: BTreeMap::new(),
        }
    }

    /// soak's pid while it runs.
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// Notes soak's tree; true while soak runs (bounded like every wait).
    pub fn running(&mut self) -> bool {
        self.note_tree();
        assert!(
            self.started.elapsed() < LIMIT,
            "soak did not finish within {LIMIT:?}\n{}",
            self.output()
        );
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    fn output(&self) -> String {
        std::fs::read_to_string(self.dir.join("soak.out")).unwrap_or_default()
    }

    fn note_tree(&mut self) {
        let soak = self.child.as_ref().expect("soak is running").id() as i32;
        for p in procfs::descendants(soak) {
            if let Some((_, start)) = stat(p.pid) {
                self.tree
                    .entry(Seen { pid: p.pid, start })
                    .or_insert(p.ppid);
            }
        }
    }

    fn journal_path(&self) -> PathBuf {
        self.dir.join("reports/latest/journal.sqlite")
    }

    /// Polls the run's journal until `f` holds, noting soak's tree.
    pub fn wait_for(
        &mut self,
        what: &str,
        f: impl Fn(&soak::journal::RunData) -> bool,
    ) -> soak::journal::RunData {
        loop {
            self.note_tree();
            if let Ok(d) = soak::journal::read(&self.journal_path())
                && f(&d)
            {
                return d;
            }
            assert!(
                self.started.elapsed() < LIMIT,
                "timed out after {LIMIT:?} waiting for {what}\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (bounded) for soak to exit: its exit code and output.
    fn exit(&mut self) -> (Option<i32>, String) {
        let status = loop {
            self.note_tree();
            if let Some(s) = self.child.as_mut().unwrap().try_wait().unwrap() {
                break s;
            }
            assert!(
                self.started.elapsed() < LIMIT,
                "soak chaos did not finish within {LIMIT:?}\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        self.child = None;
        let output = self.output();
        // Shown when a test fails (or with --no-capture).
        eprintln!(
            "soak chaos exited {status} after {:.1?}\n{output}",
            self.started.elapsed()
        );
        (status.code(), output)
    }

    /// The finished run, its report and journal.
    pub fn finish(mut self) -> Run {
        let (code, output) = self.exit();
        let run_dir = self.dir.join("reports/latest");
        let report = std::fs::read_to_string(run_dir.join("report.json"))
            .unwrap_or_else(|e| panic!("no report.json ({e})\n{output}"));
        Run {
            code,
            report: serde_json::from_str(&report).expect("report.json parses"),
            journal: soak::journal::read(&run_dir.join("journal.sqlite"))
                .expect("the journal reads"),
            output,
            tree: std::mem::take(&mut self.tree),
        }
    }

    /// A run soak refused to start: its exit code and output. Nothing may
    /// have been started, so no run directory either.
    pub fn refused(mut self) -> (Option<i32>, String) {
        let (code, output) = self.exit();
        assert!(
            self.tree.is_empty(),
            "soak started processes for a scenario it refused: {:?}",
            self.tree
        );
        (code, output)
    }
}

impl Drop for Chaos {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            // SAFETY: kill(2) on our own unreaped child.
            unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
            let _ = c.wait();
        }
    }
}

/// Runs `soak chaos` on `scenario` in `dir` to its end.
pub fn chaos(dir: &Path, scenario: &str) -> Run {
    Chaos::start(dir, scenario).finish()
}

/// A finished `soak chaos` run.
pub struct Run {
    pub code: Option<i32>,
    /// soak's stdout and stderr, for failure messages.
    pub output: String,
    pub report: Value,
    pub journal: soak::journal::RunData,
    tree: BTreeMap<Seen, i32>,
}

impl Run {
    pub fn assertion(&self, name: &str) -> &Value {
        self.report["assertions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("no `{name}` assertion in the report\n{}", self.output))
    }

    /// Asserts `name` has `verdict`; returns its reason.
    pub fn verdict(&self, name: &str, verdict: &str) -> String {
        let a = self.assertion(name);
        assert_eq!(
            a["verdict"], verdict,
            "`{name}` should be {verdict}: {a}\n{}",
            self.output
        );
        a["reason"].as_str().unwrap_or_default().to_string()
    }

    /// Asserts `name` has `verdict` and a reason that says each of `parts`.
    pub fn says(&self, name: &str, verdict: &str, parts: &[&str]) -> String {
        let reason = self.verdict(name, verdict);
        for part in parts {
            assert!(
                reason.contains(part),
                "`{name}`'s reason {reason:?} does not say {part:?}"
            );
        }
        reason
    }

    /// The processes first seen as children of `pid`.
    pub fn children_of(&self, pid: i32) -> BTreeSet<i32> {
        self.tree
            .iter()
            .filter(|(_, ppid)| **ppid == pid)
            .map(|(p, _)| p.pid)
            .collect()
    }

    pub fn events(&self, kind: &str) -> Vec<&soak::journal::EventRow> {
        self.journal
            .events
            .iter()
            .filter(|e| e.kind == kind)
            .collect()
    }

    /// Pids the journal names: every incarnation's main process and every
    /// orphan.
    fn journal_pids(&self) -> BTreeSet<i32> {
        let mains = self.journal.incarnations.iter().filter_map(|i| i.pid);
        let orphans = self.events("orphans").into_iter().flat_map(|e| {
            e.detail["orphans"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|o| o["pid"].as_i64().map(|p| p as i32))
        });
        mains.chain(orphans).collect()
    }

    /// Nothing soak started outlives it, and the journal's pids were all
    /// seen in its tree (so the check covered them).
    pub fn assert_nothing_left(&self) {
        let tree_pids: BTreeSet<i32> = self.tree.keys().map(|p| p.pid).collect();
        let unseen: Vec<i32> = self
            .journal_pids()
            .into_iter()
            .filter(|p| !tree_pids.contains(p))
            .collect();
        assert!(
            unseen.is_empty(),
            "the journal names pids never seen in soak's tree: {unseen:?}"
        );
        self.assert_tree_gone();
    }

    /// Every process seen in soak's tree is dead. For a run whose processes
    /// live shorter than a poll (a crash loop), where not every pid can
    /// be seen: the test checks the journal for their ends itself.
    pub fn assert_tree_gone(&self) {
        let start = Instant::now();
        let left = loop {
            let left: Vec<Seen> = self.tree.keys().copied().filter(still_alive).collect();
            if left.is_empty() || start.elapsed() > Duration::from_secs(5) {
                break left;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            left.is_empty(),
            "processes outlived soak: {:?}",
            left.iter()
                .map(|p| format!("{} ({})", p.pid, procfs::cmdline(p.pid)))
                .collect::<Vec<_>>()
        );
    }
}
