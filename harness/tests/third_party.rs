//! soak supervising real third-party services: nginx (a master/worker
//! server) and redis-server from Debian's packages, run the way a user would
//! run their own service, through the real `soak chaos`.
//!
//! .ci/run installs both (`nginx-light`, `redis-server`); a missing binary
//! fails the test with a message saying what to install, never a silent
//! pass. Every service listens on 127.0.0.1 on the port soak picks, and
//! keeps all its state (config, pid file, temp dirs, AOF) in the run's data
//! dir under the test's temp dir. Every process seen in soak's tree is
//! checked dead, by pid and start time, once soak has exited.

#[path = "it/common.rs"]
mod common;
mod support;

use common::{Sandbox, soak_bin};
use serde_json::Value;
use soak::supervise::procfs;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// The absolute path of a program from a Debian package, or a panic that
/// says which package to install. nginx lives in /usr/sbin, which is not on
/// every user's PATH.
fn program(name: &str, package: &str) -> PathBuf {
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

fn nginx() -> PathBuf {
    program("nginx", "nginx-light")
}

fn redis_server() -> PathBuf {
    program("redis-server", "redis-server")
}

fn redis_cli() -> PathBuf {
    program("redis-cli", "redis-tools")
}

/// `s` as a TOML string, quoted and escaped.
fn q(s: impl AsRef<str>) -> String {
    toml::Value::String(s.as_ref().to_string()).to_string()
}

fn qp(p: &Path) -> String {
    q(p.to_str().expect("a UTF-8 path"))
}

/// A sandbox whose soak.toml runs nginx, master and 2 workers, stopped with
/// SIGQUIT (nginx's graceful shutdown).
fn nginx_sandbox() -> Sandbox {
    let nginx = nginx();
    let sb = Sandbox::new("");
    let template = sb.path().join("nginx.conf.in");
    std::fs::write(&template, support::NGINX_CONF).unwrap();
    let render_and_exec = r#"sed "s/@PORT@/$1/" "$2" > "$3/nginx.conf" && exec "$4" -e stderr -p "$3/" -c "$3/nginx.conf" -g "daemon off;""#;
    let config = format!(
        r#"[harness]
reports = "reports"
sample_every = "1s"

[services.nginx]
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
        nginx = qp(&nginx),
    );
    std::fs::write(sb.config(), config).unwrap();
    sb
}

/// A sandbox whose soak.toml runs redis-server with an append-only file in
/// its data dir, probed with `probe` (a TOML key = value line), and a
/// workload of acknowledged SETs read back with GET.
fn redis_sandbox(probe: &str) -> Sandbox {
    let (server, cli) = (redis_server(), redis_cli());
    let config = format!(
        r#"[harness]
reports = "reports"
sample_every = "1s"

[services.redis]
command = [{server}, "--port", "{{port}}", "--bind", "127.0.0.1", "--dir", "{{data_dir}}", "--save", "", "--appendonly", "yes", "--daemonize", "no"]
port = "auto"
data_dir = "auto"
restart = "on-failure"
restart_delay = "100ms"
stop = {{ signal = "TERM", grace = "10s" }}

[services.redis.health]
{probe}
interval = "500ms"
timeout = "1s"
failures = 3
start_grace = "10s"

[workloads.cache]
service = "redis"
write = {{ exec = [{cli}, "-p", "{{port}}", "SET", "{{key}}", "{{value}}"] }}
read = {{ exec = [{cli}, "-p", "{{port}}", "GET", "{{key}}"], expect_body = "{{value}}" }}
rate = "10/s"
"#,
        server = qp(&server),
        cli = qp(&cli),
    );
    Sandbox::new(&config)
}

/// A process by pid and start time, so that a reused pid is not taken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Seen {
    pid: i32,
    start: u64,
}

/// State and start time (clock ticks after boot) from /proc/PID/stat.
fn stat(pid: i32) -> Option<(char, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest: Vec<&str> = s.get(s.rfind(')')? + 1..)?.split_whitespace().collect();
    // After the comm: state is field 3 of stat(5), starttime field 22.
    Some((rest.first()?.chars().next()?, rest.get(19)?.parse().ok()?))
}

fn seen(pid: i32) -> Option<Seen> {
    stat(pid).map(|(_, start)| Seen { pid, start })
}

fn still_alive(p: &Seen) -> bool {
    stat(p.pid).is_some_and(|(state, start)| start == p.start && state != 'Z')
}

/// A finished `soak chaos` run.
struct Run {
    code: Option<i32>,
    /// soak's stdout and stderr, for failure messages.
    output: String,
    report: Value,
    journal: soak::journal::RunData,
    /// Every process seen in soak's tree while it ran, with its parent
    /// when first seen.
    tree: BTreeMap<Seen, i32>,
}

impl Run {
    fn assertion(&self, name: &str) -> &Value {
        self.report["assertions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("no `{name}` assertion in the report\n{}", self.output))
    }

    /// Asserts `name` has `verdict`; returns its reason.
    fn verdict(&self, name: &str, verdict: &str) -> String {
        let a = self.assertion(name);
        assert_eq!(
            a["verdict"], verdict,
            "`{name}` should be {verdict}: {a}\n{}",
            self.output
        );
        a["reason"].as_str().unwrap_or_default().to_string()
    }

    /// The processes first seen as children of `pid`.
    fn children_of(&self, pid: i32) -> BTreeSet<i32> {
        self.tree
            .iter()
            .filter(|(_, ppid)| **ppid == pid)
            .map(|(p, _)| p.pid)
            .collect()
    }

    fn events(&self, kind: &str) -> Vec<&soak::journal::EventRow> {
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
    fn assert_nothing_left(&self) {
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

/// soak while it runs; SIGKILLed by pid if the test panics first (its
/// shims then kill their trees: nothing outlives soak).
struct Soak(Option<Child>);

impl Drop for Soak {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            // SAFETY: kill(2) on our own unreaped child.
            unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
            let _ = c.wait();
        }
    }
}

/// Writes `scenario` next to the sandbox's soak.toml and runs `soak chaos`
/// on it, noting every process in soak's tree every 50 ms.
fn chaos(sb: &Sandbox, scenario: &str) -> Run {
    std::fs::write(
        sb.path().join("scenario.toml"),
        format!("config = \"soak.toml\"\n{scenario}"),
    )
    .unwrap();
    let out = std::fs::File::create(sb.path().join("soak.out")).unwrap();
    let started = Instant::now();
    let child = std::process::Command::new(soak_bin())
        .args(["chaos", "scenario.toml", "--plain"])
        .current_dir(sb.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("starting soak");
    let soak_pid = child.id() as i32;
    let mut soak = Soak(Some(child));
    let mut tree = BTreeMap::new();
    let limit = Duration::from_secs(90);
    let status = loop {
        for p in procfs::descendants(soak_pid) {
            if let Some(s) = seen(p.pid) {
                tree.entry(s).or_insert(p.ppid);
            }
        }
        if let Some(s) = soak.0.as_mut().unwrap().try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < limit,
            "soak chaos did not finish within {limit:?}\n{}",
            std::fs::read_to_string(sb.path().join("soak.out")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    soak.0 = None;
    let took = started.elapsed();
    let output = std::fs::read_to_string(sb.path().join("soak.out")).unwrap_or_default();
    // Shown when a test fails (or with --no-capture).
    eprintln!("soak chaos exited {status} after {took:.1?}\n{output}");
    let run_dir = sb.path().join("reports/latest");
    let report = std::fs::read_to_string(run_dir.join("report.json"))
        .unwrap_or_else(|e| panic!("no report.json ({e})\n{output}"));
    Run {
        code: status.code(),
        report: serde_json::from_str(&report).expect("report.json parses"),
        journal: soak::journal::read(&run_dir.join("journal.sqlite")).expect("the journal reads"),
        output,
        tree,
    }
}

/// kill -9 of the nginx master: its workers do not die with it (nginx sets
/// no parent-death signal) and keep the listening socket, still serving.
/// soak must name them as orphans holding the port (a failed `no_orphans`
/// is the right verdict for a master/worker server killed -9), kill them,
/// and the next master must bind the port and become healthy.
#[test]
fn nginx_workers_outlive_a_killed_master_holding_the_port() {
    let sb = nginx_sandbox();
    let run = chaos(
        &sb,
        r#"description = "kill -9 the nginx master: workers outlive it holding the port; the next master binds it"
services = ["nginx"]
duration = "8s"

[[steps]]
at = "2s"
action = "kill"
target = "nginx"
signal = "KILL"
scope = "main"

[expect]
healthy_within = "15s"
restarts = { max = 1 }
no_orphans = true
"#,
    );
    assert_eq!(
        run.code,
        Some(1),
        "an assertion failed: no_orphans\n{}",
        run.output
    );
    assert_eq!(run.report["verdict"], "fail");

    let incs = &run.journal.incarnations;
    assert_eq!(incs.len(), 2, "one kill, one restart: {incs:#?}");
    let (first, second) = (&incs[0], &incs[1]);
    let master = first.pid.expect("the first master's pid");
    assert_eq!(first.cause.as_deref(), Some("planned"), "{first:?}");
    assert_eq!(first.signal.as_deref(), Some("KILL"), "{first:?}");
    assert_eq!(first.orphans, Some(2), "both workers outlived the master");
    assert!(second.ready_at.is_some(), "the next master became healthy");
    assert_ne!(second.pid, first.pid);

    // The orphans are the first master's two workers, both listening.
    let orphans = run.events("orphans");
    assert_eq!(orphans.len(), 1, "{orphans:#?}");
    assert_eq!(orphans[0].detail["pid"], master);
    let list = orphans[0].detail["orphans"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:#?}");
    for o in list {
        assert_eq!(o["command"], "nginx: worker process", "{o}");
        assert_eq!(o["holds_port"], true, "{o}");
    }
    let reason = run.verdict("no_orphans", "fail");
    for part in [
        format!("2 process(es) outlived nginx's main process (pid {master})"),
        "2 still listening on its port".to_string(),
        "(nginx: worker process) holding the port".to_string(),
    ] {
        assert!(reason.contains(&part), "{reason:?} lacks {part:?}");
    }

    let healthy = run.verdict("healthy_within", "pass");
    assert!(healthy.contains("healthy again"), "{healthy}");
    run.verdict("restarts", "pass");
    assert_eq!(run.report["services"]["nginx"]["restarts"]["planned"], 1);
    assert_eq!(run.report["services"]["nginx"]["restarts"]["unplanned"], 0);

    // The second master had its own two workers: a real master/worker tree
    // was watched, and all of it (shims, masters, workers) is gone now.
    let orphan_pids: BTreeSet<i32> = list
        .iter()
        .map(|o| o["pid"].as_i64().unwrap() as i32)
        .collect();
    assert_eq!(
        run.children_of(master),
        orphan_pids,
        "the orphans are the first master's workers"
    );
    // At least its two workers: `children_of` lists every child seen over
    // the run, and a master that replaces a worker (seen on a loaded
    // machine) has had three.
    assert!(
        run.children_of(second.pid.unwrap()).len() >= 2,
        "the next master runs two workers: {:?}",
        run.tree
    );
    run.assert_nothing_left();
}

/// A graceful stop with nginx's own graceful signal, SIGQUIT: master and
/// workers finish and exit 0 well within the grace, leaving no worker and
/// no pid file behind.
#[test]
fn nginx_stops_gracefully_on_sigquit() {
    let sb = nginx_sandbox();
    let run = chaos(
        &sb,
        r#"description = "stop nginx with SIGQUIT: exit 0 within the 10 s grace, no workers or pid file left"
services = ["nginx"]
duration = "5s"

[[steps]]
at = "2s"
action = "stop"
target = "nginx"

[expect]
stops_within = "10s"
exit_code = 0
no_orphans = true
no_leftovers = ["*.pid"]
"#,
    );
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert_eq!(run.report["verdict"], "pass");
    let stops = run.verdict("stops_within", "pass");
    assert!(stops.contains("after SIGQUIT"), "{stops}");
    run.verdict("exit_code", "pass");
    run.verdict("no_orphans", "pass");
    run.verdict("no_leftovers", "pass");

    let fault = run.events("fault-injected");
    assert_eq!(fault[0].detail["signal"], "QUIT", "{fault:?}");
    let result = run.events("stop-result");
    assert_eq!(result.len(), 1, "{result:?}");
    assert_eq!(result[0].detail["killed_after_grace"], false);
    assert_eq!(result[0].detail["exit_code"], 0);
    let incs = &run.journal.incarnations;
    assert_eq!(incs.len(), 1, "a stopped service stays down: {incs:#?}");
    assert_eq!(incs[0].cause.as_deref(), Some("stopped"));
    assert_eq!(incs[0].orphans, Some(0));
    // nginx kept its state in the data dir (and removed its pid file there).
    let listing = run.events("data-dir");
    let files = listing[0].detail["files"].as_array().unwrap();
    for f in ["nginx.conf", "client_body_temp"] {
        assert!(files.iter().any(|x| x == f), "no {f} in {files:?}");
    }
    // There were workers to stop: the master ran two (or more, every child
    // seen over the run counting, should it have replaced one).
    assert!(
        run.children_of(incs[0].pid.unwrap()).len() >= 2,
        "{:?}",
        run.tree
    );
    run.assert_nothing_left();
}

/// An application-level probe: `redis-cli PING` needs redis itself to
/// answer, so a frozen redis fails it (within `timeout`).
fn redis_ping_probe() -> String {
    format!(
        "exec = [{}, \"-p\", \"{{port}}\", \"PING\"]",
        qp(&redis_cli())
    )
}

/// SIGSTOP of redis-server: the PING probe times out, soak calls it hung,
/// kills it and starts the next incarnation, which replays its AOF and is
/// healthy again. Acknowledged writes survive.
#[test]
fn redis_frozen_with_sigstop_is_detected_and_restarted() {
    let sb = redis_sandbox(&redis_ping_probe());
    let run = chaos(
        &sb,
        r#"description = "SIGSTOP redis-server: the hang is noticed, redis restarted healthy, no write lost"
services = ["redis"]
workloads = ["cache"]
duration = "10s"

[[steps]]
at = "2s"
action = "hang"
target = "redis"

[expect]
detected_within = "10s"
healthy_within = "20s"
restarts = { min = 1, max = 1 }
no_orphans = true
writes_survive = "cache"
"#,
    );
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert_eq!(run.report["verdict"], "pass");
    for name in [
        "detected_within",
        "healthy_within",
        "restarts",
        "no_orphans",
        "writes_survive",
    ] {
        run.verdict(name, "pass");
    }
    let incs = &run.journal.incarnations;
    assert_eq!(incs.len(), 2, "{incs:#?}");
    assert_eq!(incs[0].cause.as_deref(), Some("hung"), "{:?}", incs[0]);
    assert_eq!(incs[0].signal.as_deref(), Some("KILL"), "{:?}", incs[0]);
    assert!(incs[1].ready_at.is_some());
    let fault = &run.events("fault-injected")[0];
    assert_eq!(
        fault.detail["pids"],
        serde_json::json!([incs[0].pid.unwrap()]),
        "SIGSTOP hit redis-server, a single process"
    );
    assert!(run.report["workloads"]["cache"]["acknowledged_writes"].as_u64() > Some(0));
    run.assert_nothing_left();
}

/// kill -9 of redis-server: a single process, so nothing is orphaned; the
/// next incarnation replays the AOF, and every acknowledged SET (written
/// to the AOF before redis replied) reads back.
#[test]
fn redis_killed_restarts_with_every_acknowledged_write() {
    let sb = redis_sandbox(&redis_ping_probe());
    let run = chaos(
        &sb,
        r#"description = "kill -9 redis-server: back and healthy, no orphans, no acknowledged write lost"
services = ["redis"]
workloads = ["cache"]
duration = "7s"

[[steps]]
at = "2s"
action = "kill"
target = "redis"
signal = "KILL"

[expect]
healthy_within = "15s"
restarts = { max = 1 }
no_orphans = true
writes_survive = "cache"
"#,
    );
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert_eq!(run.report["verdict"], "pass");
    for name in ["healthy_within", "restarts", "no_orphans", "writes_survive"] {
        run.verdict(name, "pass");
    }
    let incs = &run.journal.incarnations;
    assert_eq!(incs.len(), 2, "{incs:#?}");
    assert_eq!(incs[0].cause.as_deref(), Some("planned"));
    assert_eq!(incs[0].orphans, Some(0));
    assert!(incs[1].ready_at.is_some());
    assert_eq!(run.report["services"]["redis"]["restarts"]["planned"], 1);
    assert!(run.report["workloads"]["cache"]["acknowledged_writes"].as_u64() > Some(0));
    run.assert_nothing_left();
}

/// The same SIGSTOP behind a `tcp` probe. The kernel completes the
/// handshake for a stopped listener from its accept backlog, so the connect
/// alone stays green; soak must still call the stopped redis hung (a
/// stopped process is a hang like any other), because it also checks the
/// main process's state.
#[test]
fn redis_frozen_with_sigstop_is_detected_behind_a_tcp_probe() {
    let sb = redis_sandbox("tcp = \"127.0.0.1:{port}\"");
    let run = chaos(
        &sb,
        r#"description = "SIGSTOP redis-server behind a tcp probe: the hang is noticed and redis restarted"
services = ["redis"]
duration = "10s"

[[steps]]
at = "2s"
action = "hang"
target = "redis"

[expect]
detected_within = "8s"
healthy_within = "20s"
restarts = { min = 1, max = 1 }
"#,
    );
    run.assert_nothing_left();
    assert_eq!(run.code, Some(0), "{}", run.output);
    run.verdict("detected_within", "pass");
}
