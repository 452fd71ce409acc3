//! The six chaos actions (kill, hang, fd-exhaustion, sqlite-lock, duplicate,
//! stop) against services soak's authors did not write, each cell judged by
//! the real `soak chaos` and checked for the verdict a careful engineer
//! would give, reason included:
//!
//! - nginx, master and 2 workers, and redis-server, from Debian's packages
//!   (`nginx-light`, `redis-server`, which .ci/run installs);
//! - a Python store on SQLite (WAL, a 200 ms busy timeout, a lock file
//!   against a second instance), written here;
//! - a Node store that appends to a file and listens on ::1, probed as
//!   `localhost`, written here.
//!
//! Each cell is a test named `SERVICE__ACTION__what_happens`, so a row or a
//! column runs alone (`cargo nextest run --test matrix -E 'test(/__kill__/)'`).
//! Where an action does not apply (sqlite-lock on a service with no
//! database) the verdict is a config error naming the step, before anything
//! starts. Every process a run started is checked dead after it.

// Cell names keep service, action and outcome apart with `__`.
#![allow(non_snake_case)]

#[path = "it/common.rs"]
mod common;
mod support;

use common::{Sandbox, descendants};
use serde_json::Value;
use soak::supervise::procfs;
use std::collections::BTreeMap;
use support::run::{Chaos, Run, chaos, nginx_service, program, q, qp, redis_cli};

const HARNESS: &str = "[harness]\nreports = \"reports\"\nsample_every = \"1s\"\n\n";

// ---------------------------------------------------------------------------
// The services

fn nginx_sandbox() -> Sandbox {
    let sb = Sandbox::new("");
    std::fs::write(
        sb.config(),
        format!("{HARNESS}{}", nginx_service(sb.path())),
    )
    .unwrap();
    sb
}

/// redis-server with an append-only file in its data dir, probed by
/// `redis-cli PING` (which needs redis itself to answer), and a workload of
/// acknowledged SETs read back with GET. `port` is `{port}`, soak's pick
/// (a duplicate gets one of its own), or a fixed number that a duplicate
/// shares.
fn redis_sandbox(port: &str, failures: u32) -> Sandbox {
    let config = format!(
        r#"{HARNESS}[services.redis]
command = [{server}, "--port", {port_arg}, "--bind", "127.0.0.1", "--dir", "{{data_dir}}", "--save", "", "--appendonly", "yes", "--daemonize", "no"]
port = {port_key}
data_dir = "auto"
restart = "on-failure"
restart_delay = "100ms"
stop = {{ signal = "TERM", grace = "10s" }}

[services.redis.health]
exec = [{cli}, "-p", "{{port}}", "PING"]
expect_body = "PONG"
interval = "500ms"
timeout = "1s"
failures = {failures}
start_grace = "10s"

[workloads.cache]
service = "redis"
write = {{ exec = [{cli}, "-p", "{{port}}", "SET", "{{key}}", "{{value}}"], expect_body = "OK" }}
read = {{ exec = [{cli}, "-p", "{{port}}", "GET", "{{key}}"], expect_body = "{{value}}" }}
rate = "10/s"
"#,
        server = qp(&program("redis-server", "redis-server")),
        cli = redis_cli(),
        port_arg = q(port),
        port_key = if port == "{port}" {
            q("auto")
        } else {
            port.to_string()
        },
    );
    Sandbox::new(&config)
}

/// A key-value store over HTTP on SQLite in WAL mode, as small Python
/// services are written: one connection, autocommit (a write is committed
/// before its 201), a 200 ms busy timeout, then 503 — or, with `crash`,
/// exit 70 on the first "database is locked". A lock file in its data dir
/// keeps a second instance out. SIGTERM stops serving and closes the
/// database, exit 0.
const PY_STORE: &str = r#"
import fcntl, http.server, json, os, signal, sqlite3, sys, threading
port, data, on_busy = int(sys.argv[1]), sys.argv[2], sys.argv[3]
lock_path = os.path.join(data, "store.lock")
lock = open(lock_path, "w")
try:
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError:
    print(lock_path + " is held by another store: refusing to start", file=sys.stderr, flush=True)
    sys.exit(3)
db = sqlite3.connect(os.path.join(data, "store.db"), timeout=0.2, isolation_level=None, check_same_thread=False)
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE IF NOT EXISTS items (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
guard = threading.Lock()

class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def busy(self, e):
        print("sqlite: " + str(e), file=sys.stderr, flush=True)
        if on_busy == "crash":
            os._exit(70)
        self.reply(503, "busy: " + str(e))

    def do_GET(self):
        if self.path == "/health":
            return self.reply(200, "ok")
        try:
            with guard:
                row = db.execute("SELECT value FROM items WHERE key = ?", (self.path.removeprefix("/items/"),)).fetchone()
        except sqlite3.OperationalError as e:
            return self.busy(e)
        self.reply(404, "not found") if row is None else self.reply(200, row[0])

    def do_POST(self):
        doc = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        try:
            with guard:
                db.execute("INSERT OR REPLACE INTO items VALUES (?, ?)", (doc["key"], doc["value"]))
        except sqlite3.OperationalError as e:
            return self.busy(e)
        self.reply(201, "created")

server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
server.serve_forever()
# Handler threads outlive serve_forever: one may be inside a statement.
# Closed under the guard, the connection is the last and idle, so SQLite
# checkpoints the WAL and deletes store.db-wal.
with guard:
    db.close()
print("stopped", file=sys.stderr, flush=True)
"#;

/// The store's workload: JSON writes, each read back by key.
fn http_items(service: &str, host: &str) -> String {
    format!(
        r#"[workloads.items]
service = "{service}"
write = {{ method = "POST", url = "http://{host}:{{port}}/items", body = '{{"key":"{{key}}","value":"{{value}}"}}', headers = {{ "Content-Type" = "application/json" }}, expect_status = 201 }}
read = {{ method = "GET", url = "http://{host}:{{port}}/items/{{key}}", expect_status = 200, expect_body = "{{value}}" }}
rate = "20/s"
"#
    )
}

fn python_sandbox(on_busy: &str, failures: u32) -> Sandbox {
    let sb = Sandbox::new(&format!(
        r#"{HARNESS}[services.store]
command = ["python3", "store.py", "{{port}}", "{{data_dir}}", {on_busy}]
port = "auto"
data_dir = "auto"
restart = "on-failure"
restart_delay = "100ms"
stop = {{ signal = "TERM", grace = "5s" }}
sqlite = ["{{data_dir}}/store.db"]

[services.store.health]
http = "http://127.0.0.1:{{port}}/health"
expect_body = "ok"
interval = "300ms"
timeout = "1s"
failures = {failures}
start_grace = "10s"

{items}"#,
        on_busy = q(on_busy),
        items = http_items("store", "127.0.0.1"),
    ));
    std::fs::write(sb.path().join("store.py"), PY_STORE).unwrap();
    sb
}

/// A key-value store in Node: each write appended to a file in its data dir
/// before its 201, replayed at start. It listens on ::1, which is what
/// `localhost` is on a host whose resolver lists ::1 first (Node 17+ keeps
/// the resolver's order), and soak reaches it as `localhost`. On SIGTERM it
/// closes its server and exits 0, or with `ignore` logs and carries on.
const NODE_STORE: &str = r#"
const fs = require("fs"), http = require("http"), path = require("path");
const [port, data, onTerm] = process.argv.slice(2);
const file = path.join(data, "items.jsonl");
const items = new Map();
if (fs.existsSync(file)) {
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    if (line) { const [k, v] = JSON.parse(line); items.set(k, v); }
  }
}
const server = http.createServer((req, res) => {
  if (req.url === "/health") return res.end("ok");
  if (req.method === "POST") {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const { key, value } = JSON.parse(body);
      fs.appendFileSync(file, JSON.stringify([key, value]) + "\n");
      items.set(key, value);
      res.writeHead(201).end("created");
    });
    return;
  }
  const key = decodeURIComponent(req.url.replace(/^\/items\//, ""));
  if (items.has(key)) res.end(items.get(key));
  else res.writeHead(404).end("not found");
});
server.listen(Number(port), "::1", () => console.error("listening on [::1]:" + port));
process.on("SIGTERM", () => {
  if (onTerm === "ignore") return console.error("SIGTERM: ignored");
  console.error("SIGTERM: closing");
  server.close(() => process.exit(0));
  server.closeIdleConnections();
});
"#;

fn node_sandbox(on_term: &str, grace: &str, failures: u32) -> Sandbox {
    let sb = Sandbox::new(&format!(
        r#"{HARNESS}[services.node]
command = ["node", "store.js", "{{port}}", "{{data_dir}}", {on_term}]
port = "auto"
data_dir = "auto"
restart = "on-failure"
restart_delay = "100ms"
stop = {{ signal = "TERM", grace = {grace} }}

[services.node.health]
http = "http://localhost:{{port}}/health"
expect_body = "ok"
interval = "300ms"
timeout = "1s"
failures = {failures}
start_grace = "10s"

{items}"#,
        on_term = q(on_term),
        grace = q(grace),
        items = http_items("node", "localhost"),
    ));
    std::fs::write(sb.path().join("store.js"), NODE_STORE).unwrap();
    sb
}

/// A one-step scenario on `target`: `step` is the step's own keys (after
/// `at`, `action`, `target`), `expect` the `[expect]` table's lines.
fn scenario(
    target: &str,
    workloads: &[&str],
    duration: &str,
    action: &str,
    step: &str,
    expect: &str,
) -> String {
    let workloads: Vec<String> = workloads.iter().map(q).collect();
    format!(
        "services = [{}]\nworkloads = [{}]\nduration = {}\n\n[[steps]]\nat = \"1s\"\naction = {}\ntarget = {}\n{step}\n[expect]\n{expect}",
        q(target),
        workloads.join(", "),
        q(duration),
        q(action),
        q(target),
    )
}

/// The soft RLIMIT_NOFILE of `pid`, as /proc/PID/limits shows it.
fn soft_nofile(pid: i32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// pid -> (lowered soft, soft before) from a fault-injected detail.
fn lowered(detail: &Value) -> BTreeMap<i32, (u64, u64)> {
    detail["processes"]
        .as_array()
        .expect("a list of processes")
        .iter()
        .map(|p| {
            (
                p["pid"].as_i64().unwrap() as i32,
                (
                    p["soft"].as_u64().unwrap(),
                    p["soft_before"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

/// sqlite-lock on a service that lists no `sqlite` database: soak refuses
/// the scenario (exit 2) at the step's `target`, and starts nothing.
fn assert_sqlite_lock_refused(sb: &Sandbox, service: &str) {
    let (code, output) = Chaos::start(
        sb.path(),
        &scenario(service, &[], "5s", "sqlite-lock", "for = \"2s\"\n", ""),
    )
    .refused();
    assert_eq!(code, Some(2), "a config error\n{output}");
    // The step's target is on line 9 of the scenario as written (the
    // `config` line first).
    for part in [
        "scenario.toml:9:".to_string(),
        format!("`sqlite-lock` targets `{service}`, which lists no `sqlite` databases"),
        format!("sqlite = [\"{{data_dir}}/{service}.db\"]"),
    ] {
        assert!(output.contains(&part), "{output:?} lacks {part:?}");
    }
}

/// The run's incarnations of its one service: (cause, signal) of each.
fn ends(run: &Run) -> Vec<(Option<&str>, Option<&str>)> {
    run.journal
        .incarnations
        .iter()
        .map(|i| (i.cause.map(|c| c.as_str()), i.signal.as_deref()))
        .collect()
}

/// fd-exhaustion with no fd to spare for 2 s, probed leniently (20 failures)
/// so the supervisor leaves the service alone: what the service itself
/// does when it cannot open a socket.
fn fd_starved(sb: &Sandbox, target: &str, workload: &str) -> Run {
    chaos(
        sb.path(),
        &scenario(
            target,
            &[workload],
            "7s",
            "fd-exhaustion",
            "headroom = 0\nfor = \"2s\"\n",
            &format!(
                "survives = true\nhealthy_within = \"10s\"\navailability_min = \"99%\"\n\
                 latency_p99_max = \"1s\"\nwrites_survive = {}\n",
                q(workload)
            ),
        ),
    )
}

/// A stall, not a failure: connections wait in the accept backlog while
/// there is no fd to take them, then are answered; p99 latency says so.
fn assert_stalled_then_recovered(run: &Run, service: &str, workload: &str) {
    assert_eq!(run.code, Some(1), "{}", run.output);
    run.says(
        "survives",
        "pass",
        &[&format!(
            "{service} rode out the fd-exhaustion without a restart"
        )],
    );
    run.says(
        "healthy_within",
        "pass",
        &[&format!("{service} healthy again")],
    );
    run.says(
        "availability_min",
        "pass",
        &[&format!("requests of {workload} succeeded (100.000%)")],
    );
    let slow = run.says(
        "latency_p99_max",
        "fail",
        &[&format!("p99 latency of {workload} was")],
    );
    let p99: f64 = run.assertion("latency_p99_max")["observed"]
        .as_str()
        .and_then(|o| o.strip_suffix(" ms"))
        .and_then(|o| o.parse().ok())
        .unwrap_or_else(|| panic!("{slow}"));
    assert!(p99 >= 1000.0, "stalled for about the 2 s hold: {slow}");
    run.verdict("writes_survive", "pass");
    run.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// nginx: a master and 2 workers

/// kill -9 of the nginx master: its workers do not die with it (nginx sets
/// no parent-death signal) and keep the listening socket, still serving.
/// soak must name them as orphans holding the port (a failed `no_orphans`
/// is the right verdict for a master/worker server killed -9), kill them,
/// and the next master must bind the port and become healthy.
#[test]
fn nginx__kill__workers_outlive_the_master_holding_the_port() {
    let sb = nginx_sandbox();
    let run = chaos(
        sb.path(),
        &scenario(
            "nginx",
            &[],
            "6s",
            "kill",
            "signal = \"KILL\"\nscope = \"main\"\n",
            "healthy_within = \"15s\"\nrestarts = { max = 1 }\nno_orphans = true\n",
        ),
    );
    assert_eq!(run.code, Some(1), "no_orphans failed\n{}", run.output);
    assert_eq!(run.report["verdict"], "fail");

    let incs = &run.journal.incarnations;
    assert_eq!(incs.len(), 2, "one kill, one restart: {incs:#?}");
    let (first, second) = (&incs[0], &incs[1]);
    let master = first.pid.expect("the first master's pid");
    assert_eq!(ends(&run)[0], (Some("planned"), Some("KILL")));
    assert_eq!(first.orphans, Some(2), "both workers outlived the master");
    assert!(second.ready_at.is_some(), "the next master became healthy");

    let orphans = run.events("orphans");
    assert_eq!(orphans.len(), 1, "{orphans:#?}");
    assert_eq!(orphans[0].detail["pid"], master);
    let list = orphans[0].detail["orphans"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:#?}");
    for o in list {
        assert_eq!(o["command"], "nginx: worker process", "{o}");
        assert_eq!(o["holds_port"], true, "{o}");
    }
    run.says(
        "no_orphans",
        "fail",
        &[
            &format!("2 process(es) outlived nginx's main process (pid {master})"),
            "2 still listening on its port",
            "(nginx: worker process) holding the port",
        ],
    );
    run.says("healthy_within", "pass", &["healthy again"]);
    run.verdict("restarts", "pass");
    assert_eq!(run.report["services"]["nginx"]["restarts"]["planned"], 1);
    assert_eq!(run.report["services"]["nginx"]["restarts"]["unplanned"], 0);

    // The orphans are the first master's workers; the second master ran
    // workers of its own (at least two: every child seen over the run
    // counts, and a loaded machine has seen a master replace one).
    let orphan_pids: std::collections::BTreeSet<i32> = list
        .iter()
        .map(|o| o["pid"].as_i64().unwrap() as i32)
        .collect();
    assert_eq!(run.children_of(master), orphan_pids);
    assert!(run.children_of(second.pid.unwrap()).len() >= 2);
    run.assert_nothing_left();
}

/// SIGSTOP of the whole group (master and workers): the HTTP probe times
/// out, soak calls it hung, kills the tree and starts a new master, which
/// serves again. Nothing is orphaned: the stopped workers die with it.
#[test]
fn nginx__hang__of_master_and_workers_is_detected_and_restarted() {
    let sb = nginx_sandbox();
    let run = chaos(
        sb.path(),
        &scenario(
            "nginx",
            &[],
            "8s",
            "hang",
            "scope = \"group\"\n",
            "detected_within = \"8s\"\nhealthy_within = \"15s\"\nno_orphans = true\n",
        ),
    );
    assert_eq!(run.code, Some(0), "{}", run.output);
    run.says("detected_within", "pass", &["hang of nginx detected"]);
    run.says("healthy_within", "pass", &["nginx healthy again"]);
    run.verdict("no_orphans", "pass");
    let incs = &run.journal.incarnations;
    assert_eq!(ends(&run)[0].0, Some("hung"), "{incs:#?}");
    let master = incs[0].pid.unwrap();
    let stopped = &run.events("fault-injected")[0].detail["pids"];
    let stopped: Vec<i32> = stopped
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_i64().unwrap() as i32)
        .collect();
    assert!(stopped.contains(&master), "{stopped:?}");
    // Its 2 workers were stopped with it (children_of counts every child
    // seen over the run, a worker the master replaced earlier included).
    let workers = run.children_of(master);
    assert!(
        workers.iter().filter(|w| stopped.contains(w)).count() >= 2,
        "the workers were stopped too: {stopped:?} {workers:?}"
    );
    run.assert_nothing_left();
}

/// fd-exhaustion reaches every process of the tree: during the hold each
/// worker's /proc/PID/limits shows the lowered soft limit, after it each
/// shows its old one. With 40 fds to spare nginx keeps serving: it rides
/// the fault out.
#[test]
fn nginx__fd_exhaustion__lowers_every_worker_and_restores_each() {
    let sb = nginx_sandbox();
    let mut run = Chaos::start(
        sb.path(),
        &scenario(
            "nginx",
            &[],
            "9s",
            "fd-exhaustion",
            "headroom = 40\nfor = \"4s\"\n",
            "survives = true\nhealthy_within = \"10s\"\n",
        ),
    );
    let d = run.wait_for("the fault", |d| {
        common::events(d, "fault-injected").count() == 1
    });
    let injected = common::events(&d, "fault-injected")
        .next()
        .unwrap()
        .detail
        .clone();
    let master = injected["pid"].as_i64().unwrap() as i32;
    let before = injected["soft_before"].as_u64().unwrap();
    let workers = descendants(master);
    assert_eq!(workers.len(), 2, "nginx runs 2 workers: {injected}");
    let lowered = lowered(&injected);
    for pid in std::iter::once(master).chain(workers.iter().copied()) {
        let soft = soft_nofile(pid);
        assert!(
            soft.is_some_and(|s| s < before) && soft == lowered.get(&pid).map(|l| l.0),
            "pid {pid} ({}) during the hold: soft {soft:?}: {injected}",
            procfs::cmdline(pid)
        );
    }
    run.wait_for("the rollback", |d| {
        common::events(d, "fault-rolled-back").count() == 1
    });
    for pid in std::iter::once(master).chain(workers.iter().copied()) {
        assert_eq!(
            soft_nofile(pid),
            Some(lowered[&pid].1),
            "pid {pid} after the rollback"
        );
    }
    let run = run.finish();
    assert_eq!(run.code, Some(0), "{}", run.output);
    run.says("survives", "pass", &["nginx rode out the fd-exhaustion"]);
    run.verdict("healthy_within", "pass");
    let rb = &run.events("fault-rolled-back")[0].detail;
    assert_eq!(rb["target_replaced"], false, "{rb}");
    let restored: Vec<&Value> = rb["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| workers.contains(&(p["pid"].as_i64().unwrap() as i32)))
        .collect();
    assert!(
        restored.len() == 2 && restored.iter().all(|p| p["outcome"] == "restored"),
        "{rb}"
    );
    run.assert_nothing_left();
}

#[test]
fn nginx__sqlite_lock__is_a_config_error_naming_the_step() {
    assert_sqlite_lock_refused(&nginx_sandbox(), "nginx");
}

/// A second nginx on the same prefix (its own port) starts and serves: nginx
/// does not guard its prefix (it overwrites the pid file), so "refused" is
/// rightly a failure, saying the duplicate served.
#[test]
fn nginx__duplicate__a_second_master_on_the_same_prefix_serves() {
    let sb = nginx_sandbox();
    let run = chaos(
        sb.path(),
        &scenario(
            "nginx",
            &[],
            "6s",
            "duplicate",
            "for = \"3s\"\n",
            "duplicate_refused_within = \"2s\"\n",
        ),
    );
    assert_eq!(run.code, Some(1), "{}", run.output);
    let running = &run.events("duplicate-still-running")[0].detail;
    assert_eq!(running["serving"], true, "{running}");
    run.says(
        "duplicate_refused_within",
        "fail",
        &[
            "two instances of nginx on one data dir: the duplicate",
            &format!("serving on port {}", running["port"]),
        ],
    );
    run.assert_nothing_left();
}

/// A graceful stop with nginx's own graceful signal, SIGQUIT: master and
/// workers finish and exit 0 well within the grace, leaving no worker and
/// no pid file behind.
#[test]
fn nginx__stop__sigquit_exits_0_within_the_grace_leaving_nothing() {
    let sb = nginx_sandbox();
    let run = chaos(
        sb.path(),
        &scenario(
            "nginx",
            &[],
            "4s",
            "stop",
            "",
            "stops_within = \"10s\"\nexit_code = 0\nno_orphans = true\nno_leftovers = [\"*.pid\"]\n",
        ),
    );
    assert_eq!(run.code, Some(0), "{}", run.output);
    run.says("stops_within", "pass", &["nginx exited", "after SIGQUIT"]);
    run.says("exit_code", "pass", &["nginx exited with code 0"]);
    run.verdict("no_orphans", "pass");
    run.says("no_leftovers", "pass", &["nginx cleaned up after itself"]);
    let result = &run.events("stop-result")[0].detail;
    assert_eq!(result["killed_after_grace"], false, "{result}");
    let incs = &run.journal.incarnations;
    assert_eq!(incs.len(), 1, "a stopped service stays down: {incs:#?}");
    assert_eq!(incs[0].cause.map(|c| c.as_str()), Some("stopped"));
    // There were workers to stop, and nginx kept its files in the data dir.
    assert!(run.children_of(incs[0].pid.unwrap()).len() >= 2);
    let files = run.events("data-dir")[0].detail["files"].clone();
    assert!(
        files.as_array().unwrap().iter().any(|f| f == "nginx.conf"),
        "{files}"
    );
    run.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// redis-server: one process, an append-only file

/// kill -9: a single process, so nothing is orphaned; the next incarnation
/// replays the AOF, and every acknowledged SET reads back.
#[test]
fn redis__kill__restarts_with_every_acknowledged_write() {
    let sb = redis_sandbox("{port}", 3);
    let run = chaos(
        sb.path(),
        &scenario(
            "redis",
            &["cache"],
            "6s",
            "kill",
            "signal = \"KILL\"\n",
            "healthy_within = \"15s\"\nrestarts = { max = 1 }\nno_orphans = true\nwrites_survive = \"cache\"\n",
        ),
    );
    assert_eq!(run.code, Some(0), "{}", run.output);
    run.says("healthy_within", "pass", &["redis healthy again"]);
    run.verdict("restarts", "pass");
    run.says("no_orphans", "pass", &["every process of redis died with"]);
    let acked = run.report["workloads"]["cache"]["acknowledged_writes"]
        .as_u64()
        .unwrap();
    assert!(acked > 0, "{}", run.report["workloads"]);
    run.says(
        "writes_survive",
        "pass",
        &[&format!(
            "all {acked} acknowledged writes of cache readable"
        )],
    );
    assert_eq!(ends(&run)[0], (Some("planned"), Some("KILL")));
    run.assert_nothing_left();
}

/// SIGSTOP: the PING probe times out, soak calls redis hung, kills it and
/// starts the next incarnation, which replays its AOF: no write lost.
#[test]
fn redis__hang__is_caught_by_its_ping_probe_and_restarted() {
    let sb = redis_sandbox("{port}", 3);
    let run = chaos(
        sb.path(),
        &scenario(
            "redis",
            &["cache"],
            "8s",
            "hang",
            "",
            "detected_within = \"8s\"\nhealthy_within = \"15s\"\nrestarts = { min = 1, max = 1 }\nwrites_survive = \"cache\"\n",
        ),
    );
    assert_eq!(run.code, Some(0), "{}", run.output);
    run.says("detected_within", "pass", &["hang of redis detected"]);
    run.verdict("healthy_within", "pass");
    run.verdict("restarts", "pass");
    run.verdict("writes_survive", "pass");
    assert_eq!(ends(&run)[0], (Some("hung"), Some("KILL")));
    run.assert_nothing_left();
}

/// No fd to spare: redis cannot accept, so clients (PING probes, the SETs)
/// wait in the backlog; redis neither crashes nor spins out, and answers
/// every one of them once its fds return.
#[test]
fn redis__fd_exhaustion__stalls_clients_in_the_backlog_then_serves_all() {
    let run = fd_starved(&redis_sandbox("{port}", 20), "redis", "cache");
    assert_stalled_then_recovered(&run, "redis", "cache");
}

#[test]
fn redis__sqlite_lock__is_a_config_error_naming_the_step() {
    assert_sqlite_lock_refused(&redis_sandbox("{port}", 3), "redis");
}

/// A second redis on the same port cannot bind and exits 1 on its own: a
/// refusal, and the reason quotes redis's own last words.
#[test]
fn redis__duplicate__on_the_same_port_refuses_quoting_its_log() {
    let port = soak::plan::free_port().unwrap().to_string();
    let sb = redis_sandbox(&port, 3);
    let run = chaos(
        sb.path(),
        &scenario(
            "redis",
            &[],
            "5s",
            "duplicate",
            "for = \"2s\"\n",
            "duplicate_refused_within = \"3s\"\n",
        ),
    );
    assert_eq!(run.code, Some(0), "{}", run.output);
    run.says(
        "duplicate_refused_within",
        "pass",
        &[
            "a second redis on the same data dir refused to run",
            "(exit code 1)",
            &format!("Failed listening on port {port} (TCP), aborting."),
        ],
    );
    run.assert_nothing_left();
}

/// A second redis on the same data dir but a port of its own runs: two
/// redis appending to one AOF. redis does not lock its dir, so this fails,
/// saying the duplicate served.
#[test]
fn redis__duplicate__on_its_own_port_runs_twice_on_one_aof() {
    let sb = redis_sandbox("{port}", 3);
    let run = chaos(
        sb.path(),
        &scenario(
            "redis",
            &[],
            "6s",
            "duplicate",
            "for = \"3s\"\n",
            "duplicate_refused_within = \"2s\"\n",
        ),
    );
    assert_eq!(run.code, Some(1), "{}", run.output);
    run.says(
        "duplicate_refused_within",
        "fail",
        &[
            "two instances of redis on one data dir: the duplicate",
            "serving on port",
        ],
    );
    run.assert_nothing_left();
}

/// SIGTERM: redis flushes its AOF and exits 0 at once.
#[test]
fn redis__stop__sigterm_exits_0_within_the_grace() {
    let sb = redis_sandbox("{port}", 3);
    let run = chaos(
        sb.path(),
        &scenario(
            "redis",
            &["cache"],
            "4s",
            "stop",
            "",
            "stops_within = \"5s\"\nexit_code = 0\nno_orphans = true\n",
        ),
    );
    assert_eq!(run.code, Some(0), "{}", run.output);
    run.says("stops_within", "pass", &["redis exited", "after SIGTERM"]);
    run.says("exit_code", "pass", &["redis exited with code 0"]);
    run.verdict("no_orphans", "pass");
    run.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// Python: a store on SQLite

/// kill -9: every write was committed before its 201, so all read back from
/// the next incarnation, and the database passes its integrity check.
#[test]
fn python__kill__restarts_with_every_write_and_an_intact_database() {
    let sb = python_sandbox("503", 3);
    let run = chaos(
        sb.path(),
        &scenario(
            "store",
            &["items"],
            "6s",
            "kill",
            "",
            "healthy_within = \"15s\"\nno_orphans = true\nwrites_survive = \"items\"\nintegrity = true\n",
        ),
    );
    assert_eq!(run.code, Some(0), "{}", run.output);
    run.says("healthy_within", "pass", &["store healthy again"]);
    run.verdict("no_orphans", "pass");
    run.says(
        "writes_survive",
        "pass",
        &["acknowledged writes of items readable"],
    );
    run.verdict("integrity", "pass");
    run.assert_nothing_left();
}

/// SIGSTOP: the HTTP probe times out, soak restarts the store, writes
/// survive.
#[test]
fn python__hang__is_detected_and_restarted() {
    let sb = python_sandbox("503", 2);
    let run = chaos(
        sb.path(),
        &scenario(
            "store",
            &["items"],
            "7s",
            "hang",
            "",
            "detected_within = \"6s\"\nhealthy_within = \"15s\"\nwrites_survive = \"items\"\n",
        ),
    );
    assert_eq!(run.code, Some(0), "{}", run.output);
    run.says("detected_within", "pass", &["hang of store detected"]);
    run.verdict("healthy_within", "pass");
    run.verdict("writes_survive", "pass");
    assert_eq!(ends(&run)[0].0, Some("hung"));
    run.assert_nothing_left();
}

/// No fd to spare: Python's http.server cannot accept (socketserver
/// ignores accept's EMFILE and selects again), so requests wait in the
/// backlog, or retry their SYN, and are all answered once fds return: a
/// stall, no restart, nothing lost.
#[test]
fn python__fd_exhaustion__stalls_requests_in_the_backlog_then_serves_all() {
    let run = fd_starved(&python_sandbox("503", 20), "store", "items");
    assert_stalled_then_recovered(&run, "store", "items");
}

/// soak holds a write lock on the store's database for 2 s: each write
/// waits out the 200 ms busy timeout and gets a 503, so availability drops
/// and the verdict counts the failed requests; the store itself rides it
/// out, loses no acknowledged write, and its database is intact.
#[test]
fn python__sqlite_lock__writes_fail_with_503_while_the_store_rides_it_out() {
    let sb = python_sandbox("503", 3);
    let run = chaos(
        sb.path(),
        &scenario(
            "store",
            &["items"],
            "6s",
            "sqlite-lock",
            "mode = \"immediate\"\nfor = \"2s\"\n",
            "availability_min = \"99%\"\nsurvives = true\nwrites_survive = \"items\"\nintegrity = true\n",
        ),
    );
    assert_eq!(run.code, Some(1), "{}", run.output);
    let reason = run.says("availability_min", "fail", &["requests of items succeeded"]);
    // The failed requests are the store's 503s, not timeouts or refusals.
    let (mut failed, mut errors) = (0, Vec::new());
    for e in run.events("load") {
        if let soak::journal::Event::Load {
            failed: f,
            errors: why,
            ..
        } = &e.event
        {
            failed += f;
            errors.extend(why.iter().map(|(w, _)| w.clone()));
        }
    }
    assert!(failed > 0, "{reason}");
    let errors = errors.join("; ");
    assert!(
        errors.contains("503"),
        "the failures are the 503s: {errors}"
    );
    run.says("survives", "pass", &["store rode out the sqlite-lock"]);
    run.verdict("writes_survive", "pass");
    run.verdict("integrity", "pass");
    run.assert_nothing_left();
}

/// The same lock on a store that exits on "database is locked": it does not
/// ride the fault out, and `survives` says how it died.
#[test]
fn python__sqlite_lock__a_store_that_exits_on_busy_fails_survives() {
    let sb = python_sandbox("crash", 3);
    let run = chaos(
        sb.path(),
        &scenario(
            "store",
            &["items"],
            "6s",
            "sqlite-lock",
            "mode = \"immediate\"\nfor = \"2s\"\n",
            "survives = true\nwrites_survive = \"items\"\n",
        ),
    );
    assert_eq!(run.code, Some(1), "{}", run.output);
    run.says(
        "survives",
        "fail",
        &["died during the sqlite-lock: exit code 70"],
    );
    run.verdict("writes_survive", "pass");
    run.assert_nothing_left();
}

/// A second store on the same data dir finds the lock file held and exits
/// 3 on its own: a refusal, quoting why.
#[test]
fn python__duplicate__refuses_on_its_lock_file_quoting_why() {
    let sb = python_sandbox("503", 3);
    let run = chaos(
        sb.path(),
        &scenario(
            "store",
            &[],
            "5s",
            "duplicate",
            "for = \"2s\"\n",
            "duplicate_refused_within = \"3s\"\n",
        ),
    );
    assert_eq!(run.code, Some(0), "{}", run.output);
    run.says(
        "duplicate_refused_within",
        "pass",
        &[
            "a second store on the same data dir refused to run",
            "(exit code 3)",
            "store.lock is held by another store: refusing to start",
        ],
    );
    let ended = &run.events("duplicate-ended")[0].detail;
    assert_eq!(
        (&ended["refused"], &ended["exit_code"], &ended["signal"]),
        (&Value::Bool(true), &Value::from(3), &Value::Null),
        "{ended}"
    );
    run.assert_nothing_left();
}

/// SIGTERM: the store stops serving, closes its database and exits 0.
#[test]
fn python__stop__sigterm_closes_the_database_and_exits_0() {
    let sb = python_sandbox("503", 3);
    let run = chaos(
        sb.path(),
        &scenario(
            "store",
            &["items"],
            "4s",
            "stop",
            "",
            "stops_within = \"5s\"\nexit_code = 0\n",
        ),
    );
    assert_eq!(run.code, Some(0), "{}", run.output);
    run.says("stops_within", "pass", &["store exited", "after SIGTERM"]);
    run.says("exit_code", "pass", &["store exited with code 0"]);
    run.assert_nothing_left();
}

/// The store's last connection closes on SIGTERM, which checkpoints the WAL
/// and deletes store.db-wal: nothing is left over. soak once listed the data
/// dir after its own integrity check, whose read-only connection creates
/// store.db-wal again, and so blamed the store for soak's file. (The store
/// once closed its connection while a handler thread was inside a
/// statement: SQLite then defers the close and keeps the WAL, on about half
/// the runs; it closes under its guard now.)
#[test]
fn python__stop__leaves_no_wal_file_behind() {
    let sb = python_sandbox("503", 3);
    let run = chaos(
        sb.path(),
        &scenario(
            "store",
            &["items"],
            "4s",
            "stop",
            "",
            "no_leftovers = [\"*.db-wal\"]\n",
        ),
    );
    assert_eq!(run.code, Some(0), "{}", run.output);
    run.says("no_leftovers", "pass", &["store cleaned up after itself"]);
}

// ---------------------------------------------------------------------------
// Node: a store listening on ::1, reached as `localhost`

/// kill -9: the next incarnation replays its file; every acknowledged
/// write reads back through `localhost`.
#[test]
fn node__kill__restarts_on_localhost_with_every_write() {
    let sb = node_sandbox("close", "5s", 3);
    let run = chaos(
        sb.path(),
        &scenario(
            "node",
            &["items"],
            "6s",
            "kill",
            "",
            "healthy_within = \"15s\"\nno_orphans = true\nwrites_survive = \"items\"\n",
        ),
    );
    assert_eq!(run.code, Some(0), "{}", run.output);
    run.says("healthy_within", "pass", &["node healthy again"]);
    run.verdict("no_orphans", "pass");
    run.says(
        "writes_survive",
        "pass",
        &["acknowledged writes of items readable"],
    );
    run.assert_nothing_left();
}

/// SIGSTOP: the probe through `localhost` times out; soak restarts it.
#[test]
fn node__hang__is_detected_and_restarted() {
    let sb = node_sandbox("close", "5s", 2);
    let run = chaos(
        sb.path(),
        &scenario(
            "node",
            &["items"],
            "7s",
            "hang",
            "",
            "detected_within = \"6s\"\nhealthy_within = \"15s\"\nwrites_survive = \"items\"\n",
        ),
    );
    assert_eq!(run.code, Some(0), "{}", run.output);
    run.says("detected_within", "pass", &["hang of node detected"]);
    run.verdict("healthy_within", "pass");
    run.verdict("writes_survive", "pass");
    run.assert_nothing_left();
}

/// No fd to spare: libuv keeps a spare fd for this, accepts each connection
/// and closes it at once, so requests fail fast instead of waiting. Node
/// survives and serves again once its fds return; the failed requests are
/// counted against availability.
#[test]
fn node__fd_exhaustion__drops_connections_then_recovers_without_a_restart() {
    let run = fd_starved(&node_sandbox("close", "5s", 20), "node", "items");
    assert_eq!(run.code, Some(1), "{}", run.output);
    run.says(
        "survives",
        "pass",
        &["node rode out the fd-exhaustion without a restart"],
    );
    run.says("healthy_within", "pass", &["node healthy again"]);
    let reason = run.says("availability_min", "fail", &["requests of items succeeded"]);
    assert!(!reason.contains("(100.000%)"), "{reason}");
    run.verdict("writes_survive", "pass");
    run.assert_nothing_left();
}

#[test]
fn node__sqlite_lock__is_a_config_error_naming_the_step() {
    assert_sqlite_lock_refused(&node_sandbox("close", "5s", 3), "node");
}

/// A second Node store on the same data dir serves on its own port: two
/// writers appending to one file. Nothing stops it, so this fails.
#[test]
fn node__duplicate__runs_twice_on_one_data_file() {
    let sb = node_sandbox("close", "5s", 3);
    let run = chaos(
        sb.path(),
        &scenario(
            "node",
            &[],
            "6s",
            "duplicate",
            "for = \"3s\"\n",
            "duplicate_refused_within = \"2s\"\n",
        ),
    );
    assert_eq!(run.code, Some(1), "{}", run.output);
    run.says(
        "duplicate_refused_within",
        "fail",
        &[
            "two instances of node on one data dir: the duplicate",
            "serving on port",
        ],
    );
    run.assert_nothing_left();
}

/// SIGTERM: the store closes its server and exits 0 well within the grace.
#[test]
fn node__stop__sigterm_closes_and_exits_0_within_the_grace() {
    let sb = node_sandbox("close", "5s", 3);
    let run = chaos(
        sb.path(),
        &scenario(
            "node",
            &["items"],
            "4s",
            "stop",
            "",
            "stops_within = \"5s\"\nexit_code = 0\n",
        ),
    );
    assert_eq!(run.code, Some(0), "{}", run.output);
    run.says("stops_within", "pass", &["node exited", "after SIGTERM"]);
    run.says("exit_code", "pass", &["node exited with code 0"]);
    run.assert_nothing_left();
}

/// A store that ignores SIGTERM is still running when the 1 s grace ends
/// and is killed: both the stop and its exit code fail, saying so.
#[test]
fn node__stop__ignoring_sigterm_is_killed_after_the_grace() {
    let sb = node_sandbox("ignore", "1s", 3);
    let run = chaos(
        sb.path(),
        &scenario(
            "node",
            &[],
            "5s",
            "stop",
            "",
            "stops_within = \"5s\"\nexit_code = 0\n",
        ),
    );
    assert_eq!(run.code, Some(1), "{}", run.output);
    run.says(
        "stops_within",
        "fail",
        &["node ignored SIGTERM: still running after the 1.0 s grace, killed"],
    );
    run.says(
        "exit_code",
        "fail",
        &["node ended with signal KILL (killed after grace), expected exit code 0"],
    );
    assert_eq!(
        run.events("stop-result")[0].detail["killed_after_grace"],
        true
    );
    run.assert_nothing_left();
}
