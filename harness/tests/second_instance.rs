//! The duplicate fault asks the supervisor for a second instance of a
//! service, and gets one wired like the first: `{port.NAME}` and
//! `{link.NAME}` in its command and environment name the run's ports, as
//! they do for the first instance. A duplicate once had only `{port}`,
//! `{data_dir}` and `{service}` expanded, so a service wired to another
//! exited at once on a literal `{port.cache}`, and soak counted that crash
//! as a refusal: a service that runs twice on one data dir passed.
//!
//! The service here is written in the test: a Python API that parses its
//! peer's port and its upstream address strictly (a template left in either
//! is a ValueError), and, with `--lock`, refuses to run twice on its data
//! dir. Proven both ways: without the lock it runs twice and
//! `duplicate_refused_within` fails saying so; with it, it passes quoting
//! the API's own words.

mod support;

use support::run::{chaos, q};

const API: &str = r#"
import fcntl, http.server, os, sys
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
port, peer = int(args["--port"]), int(args["--peer"])
host, upstream = os.environ["UPSTREAM"].rsplit(":", 1)
int(upstream)
if args.get("--lock") == "yes":
    lock = open(os.path.join(args["--data"], "api.lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print("api.lock is held by another api: refusing to start", flush=True)
        sys.exit(3)
print(f"api on {port}, peer {peer}, upstream {host}:{upstream}", flush=True)

class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a):
        pass

http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
"#;

/// A cache, the API wired to it twice (its port, and a link in front of
/// it), and a scenario that starts a duplicate of the API for 2 s.
fn sandbox(lock: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("api.py"), API).unwrap();
    std::fs::write(
        dir.path().join("soak.toml"),
        format!(
            r#"[harness]
reports = "reports"
sample_every = "1s"

[services.cache]
command = ["python3", "-m", "http.server", "{{port}}", "--bind", "127.0.0.1"]
port = "auto"
restart = "on-failure"

[services.cache.health]
tcp = "127.0.0.1:{{port}}"
interval = "300ms"
timeout = "1s"
start_grace = "10s"

[services.api]
command = ["python3", "api.py", "--port", "{{port}}", "--peer", "{{port.cache}}", "--data", "{{data_dir}}", "--lock", {lock}]
env = {{ UPSTREAM = "{{link.cache}}" }}
port = "auto"
data_dir = "auto"
restart = "on-failure"
restart_delay = "100ms"
depends_on = ["cache"]

[services.api.health]
http = "http://127.0.0.1:{{port}}/"
interval = "300ms"
timeout = "1s"
start_grace = "10s"

[links.cache]
to = "cache"
"#,
            lock = q(lock)
        ),
    )
    .unwrap();
    dir
}

const SCENARIO: &str = r#"services = ["api"]
duration = "4s"

[[steps]]
at = "1s"
action = "duplicate"
target = "api"
for = "2s"

[expect]
duplicate_refused_within = "2s"
"#;

#[test]
fn a_wired_service_that_runs_twice_fails_and_its_duplicate_was_wired_like_it() {
    let sb = sandbox("no");
    let run = chaos(sb.path(), SCENARIO);
    assert_eq!(run.code, Some(1), "{}", run.output);
    run.says(
        "duplicate_refused_within",
        "fail",
        &["two instances of api on one data dir: the duplicate"],
    );
    let running = &run.events("duplicate-still-running")[0].detail;
    assert_eq!(running["serving"], true, "{running}");
    // Both instances' own words: the duplicate has the first's peer and
    // upstream, and a port of its own.
    let wiring = |log: &str| -> (String, String) {
        let path = sb.path().join("reports/latest/logs").join(log);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let line = text
            .lines()
            .find(|l| l.contains("api on "))
            .unwrap_or_else(|| panic!("{log}: the api never started serving:\n{text}"));
        let (port, wires) = line
            .split_once("api on ")
            .unwrap()
            .1
            .split_once(", ")
            .unwrap();
        (port.to_string(), wires.to_string())
    };
    let (first, second) = (wiring("api.log"), wiring("api-duplicate.log"));
    assert_eq!(first.1, second.1, "the duplicate is wired like the first");
    assert_ne!(first.0, second.0, "on a port of its own");
    run.assert_nothing_left();
}

#[test]
fn a_wired_service_that_refuses_to_run_twice_passes_quoting_why() {
    let sb = sandbox("yes");
    let run = chaos(sb.path(), SCENARIO);
    assert_eq!(run.code, Some(0), "{}", run.output);
    run.says(
        "duplicate_refused_within",
        "pass",
        &[
            "(exit code 3)",
            "api.lock is held by another api: refusing to start",
        ],
    );
    run.assert_nothing_left();
}
