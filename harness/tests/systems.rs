//! Systems, not single services: a service wired to its dependency through
//! a link (`{link.NAME}`), and every link fault injected by the real
//! `soak chaos` into the proxy between them.
//!
//! The service is not written in Rust and the dependency is not ours: a
//! small Python HTTP service, written here, that INCRs a counter in
//! redis-server (Debian's `redis-server` package, installed by .ci/run)
//! over a raw RESP socket, with or without a client timeout. It logs every
//! call (`CALL <epoch ms> <outcome> <elapsed ms>`) so the test sees what the
//! proxy really did to it: refused, reset, slowed, silenced.
//!
//! The fixtures' own soak (issue 13.3) is here too: a schedule that picks
//! every chaos scenario, one fault every 12 s, must run to its end.

mod support;

use serde_json::Value;
use soak::journal::{EventRow, RunData};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn program(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` not found on PATH: install `{package}` (.ci/run does: apt-get install -y {package})"
            )
        })
}

fn q(s: impl AsRef<str>) -> String {
    toml::Value::String(s.as_ref().to_string()).to_string()
}

fn qp(p: &Path) -> String {
    q(p.to_str().expect("a UTF-8 path"))
}

/// The service under test: HTTP on its port, `/hit` INCRs `hits` in redis
/// at `$REDIS` with `$TIMEOUT` seconds for connect and each read (none
/// when unset), 503 with the exception's class when that fails.
const APP: &str = r#"import os, socket, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

host, port = os.environ["REDIS"].rsplit(":", 1)
timeout = float(os.environ["TIMEOUT"]) if os.environ.get("TIMEOUT") else None

def incr():
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(b"*2\r\n$4\r\nINCR\r\n$4\r\nhits\r\n")
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = s.recv(64)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            reply += chunk
        if not reply.startswith(b":"):
            raise ValueError(reply.decode(errors="replace"))
        return int(reply[1:-2])

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            code, body = 200, "ok"
        else:
            start = time.time()
            try:
                code, body, outcome = 200, "hits %d" % incr(), "ok"
            except Exception as e:
                code, body, outcome = 503, "redis: %s" % e, type(e).__name__
            elapsed = (time.time() - start) * 1000
            print("CALL %d %s %d" % (start * 1000, outcome, elapsed), file=sys.stderr, flush=True)
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass

ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"#;

/// A temp dir with app.py and a soak.toml: redis, and the app reaching it
/// through `[links.cache]`, with a client timeout of `timeout` (or none).
fn redis_system(timeout: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.py"), APP).unwrap();
    let timeout = timeout
        .map(|t| format!(", TIMEOUT = {}", q(t)))
        .unwrap_or_default();
    let config = format!(
        r#"[harness]
reports = "reports"
sample_every = "1s"

[services.redis]
command = [{redis}, "--port", "{{port}}", "--bind", "127.0.0.1", "--dir", "{{data_dir}}", "--save", "", "--appendonly", "no", "--daemonize", "no"]
restart = "on-failure"
stop = {{ signal = "TERM", grace = "5s" }}

[services.redis.health]
tcp = "127.0.0.1:{{port}}"
interval = "500ms"
timeout = "1s"
failures = 3
start_grace = "10s"

[services.app]
command = [{python}, "app.py", "{{port}}"]
env = {{ REDIS = "{{link.cache}}"{timeout} }}
depends_on = ["redis"]
restart = "on-failure"
stop = {{ signal = "TERM", grace = "2s" }}

[services.app.health]
http = "http://127.0.0.1:{{port}}/health"
expect_body = "ok"
interval = "500ms"
timeout = "1s"
failures = 3
start_grace = "10s"

[links.cache]
to = "redis"

[workloads.hits]
service = "app"
read = {{ url = "http://127.0.0.1:{{port}}/hit", expect_status = 200 }}
rate = "5/s"
"#,
        redis = qp(&program("redis-server", "redis-server")),
        python = qp(&program("python3", "python3")),
    );
    std::fs::write(dir.path().join("soak.toml"), config).unwrap();
    dir
}

struct Run {
    code: Option<i32>,
    output: String,
    journal: RunData,
    run_dir: PathBuf,
}

/// `soak chaos scenario.toml` in `dir`, bounded by `limit`: past it, soak
/// gets SIGTERM (it rolls back and stops its services), then its process
/// group SIGKILL.
fn soak_chaos(dir: &Path, reports: &Path, scenario: &str, limit: Duration) -> Run {
    std::fs::write(dir.join("scenario.toml"), scenario).unwrap();
    let out = std::fs::File::create(dir.join("soak.out")).unwrap();
    let mut cmd = Command::new(support::soak_bin());
    cmd.args(["chaos", "scenario.toml", "--plain"])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("GATEWAY_BUGS")
        .env_remove("STORE_BUGS")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .process_group(0);
    let mut child = cmd.spawn().expect("starting soak");
    let pgid = child.id() as i32;
    let started = Instant::now();
    let mut termed = false;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if !termed && started.elapsed() > limit {
            // SAFETY: signalling the process group this test started.
            unsafe { libc::kill(pgid, libc::SIGTERM) };
            termed = true;
        }
        if started.elapsed() > limit + Duration::from_secs(30) {
            // SAFETY: as above.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = std::fs::read_to_string(dir.join("soak.out")).unwrap_or_default();
    assert!(!termed, "soak ran past {limit:?}:\n{output}");
    let run_dir = std::fs::canonicalize(reports.join("latest")).expect("a run directory");
    let journal = soak::journal::read(&run_dir.join("journal.sqlite")).unwrap();
    Run {
        code: status.code(),
        output,
        journal,
        run_dir,
    }
}

impl Run {
    fn events(&self, kind: &str) -> Vec<&EventRow> {
        self.journal
            .events
            .iter()
            .filter(|e| e.kind == kind)
            .collect()
    }

    /// The fault of step `step`: (injected, rolled back) events.
    fn fault(&self, step: u64) -> (&EventRow, &EventRow) {
        let find = |kind: &str| {
            self.events(kind)
                .into_iter()
                .find(|e| e.detail["step"] == step)
                .unwrap_or_else(|| panic!("no {kind} for step {step}\n{}", self.output))
        };
        (find("fault-injected"), find("fault-rolled-back"))
    }

    /// The app's calls to redis: (start ms, outcome, elapsed ms).
    fn calls(&self) -> Vec<(i64, String, i64)> {
        let log = std::fs::read_to_string(self.run_dir.join("logs/app.log")).unwrap_or_default();
        log.lines()
            .filter_map(|l| {
                let rest = &l[l.find("CALL ")? + 5..];
                let f: Vec<&str> = rest.split_whitespace().collect();
                Some((
                    f.first()?.parse().ok()?,
                    f.get(1)?.to_string(),
                    f.get(2)?.parse().ok()?,
                ))
            })
            .collect()
    }

    /// The app's calls that started inside [from, to] (epoch ms).
    fn calls_between(&self, from: i64, to: i64) -> Vec<(i64, String, i64)> {
        self.calls()
            .into_iter()
            .filter(|(t, ..)| (from..=to).contains(t))
            .collect()
    }

    /// The `hits` load intervals that ended inside [from, to].
    /// The load intervals journaled in [from, to], as the typed event's
    /// fields (the journal reader keeps load rows' figures there only).
    fn load_between(&self, from: i64, to: i64) -> Vec<Value> {
        self.events("load")
            .into_iter()
            .filter(|e| (from..=to).contains(&e.ts))
            .map(|e| serde_json::to_value(&e.event).expect("an event as JSON")["detail"].clone())
            .collect()
    }
}

const ALL_LINK_FAULTS: &str = r#"description = "every link fault, one after another, on the link between the app and redis"
config = "soak.toml"
services = ["app", "redis"]
workloads = ["hits"]
duration = "26s"

[[steps]]
at = "2s"
action = "latency"
link = "cache"
delay = "400ms"
direction = "downstream"
for = "3s"

[[steps]]
at = "7s"
action = "reset"
link = "cache"
for = "3s"

[[steps]]
at = "12s"
action = "refuse"
link = "cache"
for = "3s"

[[steps]]
at = "17s"
action = "bandwidth"
link = "cache"
rate = "2B/s"
direction = "downstream"
for = "3s"

[[steps]]
at = "22s"
action = "blackhole"
link = "cache"
for = "2s"

[expect]
survives = true
healthy_within = "10s"
"#;

#[test]
fn every_link_fault_reaches_a_python_service_through_soak_chaos_and_is_rolled_back() {
    let dir = redis_system(Some("1"));
    let run = soak_chaos(
        dir.path(),
        &dir.path().join("reports"),
        ALL_LINK_FAULTS,
        Duration::from_secs(120),
    );
    assert_ne!(run.code, Some(3), "inconclusive:\n{}", run.output);
    let up = run.events("link-up");
    assert_eq!(up.len(), 1, "{}", run.output);
    assert_eq!(up[0].service.as_deref(), Some("cache"));
    assert!(
        run.journal
            .link_samples
            .iter()
            .any(|s| s.link == "cache" && s.connections > 0),
        "the link's traffic is sampled: {:?}",
        run.journal.link_samples
    );
    // What each fault does to the app's calls while it is on (after a
    // moment for calls that started before it).
    let expected: [(&str, &[&str]); 5] = [
        ("latency", &["ok"]),
        (
            "reset",
            &["ConnectionResetError", "BrokenPipeError", "ConnectionError"],
        ),
        ("refuse", &["ConnectionRefusedError"]),
        // 2 bytes a second: the reply trickles in, each read within the
        // timeout, so calls succeed, slowly.
        ("bandwidth", &["ok", "TimeoutError"]),
        ("blackhole", &["TimeoutError", "timeout"]),
    ];
    for (step, (action, outcomes)) in expected.iter().enumerate() {
        let (inj, back) = run.fault(step as u64);
        for e in [inj, back] {
            assert_eq!(e.service.as_deref(), Some("cache"), "{e:?}");
            assert_eq!(e.detail["action"], *action, "{e:?}");
        }
        let calls = run.calls_between(inj.ts + 200, back.ts - 1200);
        assert!(!calls.is_empty(), "no call during {action}\n{}", run.output);
        for (t, outcome, elapsed) in &calls {
            assert!(
                outcomes.contains(&outcome.as_str()),
                "{action}: a call at {t} ended {outcome} after {elapsed} ms, expected one of {outcomes:?}"
            );
        }
        let slowest_fast = match *action {
            "latency" => 390,
            "bandwidth" => 900,
            _ => 0,
        };
        assert!(
            calls.iter().all(|(_, _, ms)| *ms >= slowest_fast),
            "{action}: every call waited at least {slowest_fast} ms: {calls:?}"
        );
        // Rolled back: the next calls succeed, fast.
        let after = run.calls_between(back.ts + 500, back.ts + 1500);
        assert!(
            after.iter().any(|(_, o, ms)| o == "ok" && *ms < 390),
            "{action} rolled back, yet no fast success after it: {after:?}"
        );
    }
    assert_eq!(
        run.events("fault-rolled-back").len(),
        5,
        "every fault is rolled back"
    );
}

const BLACKHOLE: &str = r#"description = "redis goes silent behind its link for 6 s"
config = "soak.toml"
services = ["app", "redis"]
workloads = ["hits"]
duration = "16s"

[[steps]]
at = "3s"
action = "blackhole"
link = "cache"
for = "6s"

[expect]
survives = true
healthy_within = "10s"
"#;

#[test]
fn with_a_client_timeout_a_blackholed_redis_fails_fast_and_recovers() {
    let dir = redis_system(Some("0.3"));
    let run = soak_chaos(
        dir.path(),
        &dir.path().join("reports"),
        BLACKHOLE,
        Duration::from_secs(90),
    );
    assert_ne!(run.code, Some(3), "inconclusive:\n{}", run.output);
    let (inj, back) = run.fault(0);
    // Every interval of the fault's window, past its first second: every
    // request failed, each within well under a second.
    let during = run.load_between(inj.ts + 1500, back.ts);
    assert!(!during.is_empty(), "{}", run.output);
    for l in &during {
        assert_eq!(l["ok"], 0, "nothing succeeds against a silent redis: {l}");
        assert!(
            l["p99_ms"].as_f64().unwrap() < 1000.0,
            "answers fast with a 0.3 s client timeout: {l}"
        );
    }
    // Recovered: an interval after the rollback with successes only.
    let after = run.load_between(back.ts + 1000, back.ts + 6000);
    assert!(
        after
            .iter()
            .any(|l| l["ok"].as_u64() > Some(0) && l["failed"] == 0),
        "no clean interval after the rollback: {after:?}\n{}",
        run.output
    );
}

#[test]
fn without_a_client_timeout_a_blackholed_redis_hangs_every_request() {
    let dir = redis_system(None);
    let run = soak_chaos(
        dir.path(),
        &dir.path().join("reports"),
        BLACKHOLE,
        Duration::from_secs(90),
    );
    assert_ne!(run.code, Some(3), "inconclusive:\n{}", run.output);
    let (inj, back) = run.fault(0);
    // A load interval is journaled when requests finish: while every
    // request hangs, none does, so the fault's window has no success (or
    // no interval at all), and the hung requests end at the workload's own
    // 5 s limit, after it.
    let during = run.load_between(inj.ts + 1500, back.ts);
    assert!(
        during.iter().all(|l| l["ok"] == 0),
        "nothing succeeds: {during:?}"
    );
    let hung = run.load_between(inj.ts + 1500, back.ts + 5500);
    assert!(
        hung.iter()
            .any(|l| l["p99_ms"].as_f64().unwrap_or_default() >= 4000.0),
        "requests hang, they do not fail fast: {hung:?}\n{}",
        run.output
    );
}

/// Issue 13.3: a soak of the fixtures picking all six chaos scenarios,
/// seed 3, used to end at its third fault with exit 3 (a fault landed
/// while its target was restarting: the hang 12 s after the graceful stop).
/// Compressed: a fault every 12 s over 80 s, six slots; seed 1748 fills
/// them with all six scenarios, each whole before the end, and again a hang
/// 14 s after the graceful stop. It must run to its end; a fault that cannot
/// land is skipped.
#[test]
fn a_soak_picking_every_chaos_scenario_runs_to_its_end() {
    let bundled = support::Bundled::new().unwrap();
    let dir = bundled.dir.path().join("scenarios");
    let picks = [
        "kill-gateway",
        "hang-gateway",
        "fd-exhaustion-gateway",
        "sqlite-lock-store",
        "duplicate-pool-store",
        "graceful-stop-gateway",
    ];
    let scenario = r#"description = "every chaos scenario, one fault every 12 s"
config = "../fixtures/soak.toml"
workloads = ["items", "work"]
duration = "80s"

[schedule]
every = "12s"
pick = ["kill-gateway", "hang-gateway", "fd-exhaustion-gateway", "sqlite-lock-store", "duplicate-pool-store", "graceful-stop-gateway"]
seed = 1748

[expect]
integrity = true
"#;
    let reports = bundled.dir.path().join("fixtures/reports");
    let run = soak_chaos(&dir, &reports, scenario, Duration::from_secs(220));
    assert_ne!(
        run.code,
        Some(3),
        "the soak ended inconclusive:\n{}",
        run.output
    );
    assert!(
        run.events("inject-failed").is_empty(),
        "a scheduled fault that cannot land is skipped, not fatal:\n{}",
        run.output
    );
    let schedule = run.events("schedule")[0].detail["faults"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for pick in picks {
        assert!(
            schedule.iter().any(|f| f["from"] == pick),
            "the seed's schedule picks {pick}: {schedule:?}"
        );
    }
    let planned = schedule.len();
    let landed = run.events("fault-injected").len();
    let skipped = run.events("fault-skipped");
    assert_eq!(
        landed + skipped.len(),
        planned,
        "every scheduled fault landed or was skipped:\n{}",
        run.output
    );
    for s in &skipped {
        assert!(
            s.detail["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{s:?}"
        );
    }
    let run_row = run.journal.run.as_ref().unwrap();
    let ran = run_row.ended_at.unwrap_or_default() - run_row.started_at;
    assert!(ran >= 80_000, "the soak ran its 80 s, not {ran} ms");
}
