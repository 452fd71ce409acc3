//! soak outside its own repository: installed with `cargo install`, pointed
//! at services written here (Python and Node) with `soak init`, and used as
//! the test harness of a project that is not soak (`examples/your-project`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The target directory this test was built in, so nested cargo commands
/// reuse its compiled dependencies instead of building them again.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_soak"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// Runs `cmd` to its end, at most `limit`; past it the child is killed by
/// its pid and the test fails.
fn run(cmd: &mut Command, limit: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let pid = child.id() as i32;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                if start.elapsed() > limit {
                    // SAFETY: our own unreaped child: the pid cannot be reused yet.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    return true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            false
        })
    };
    let out = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(
        !watchdog.join().unwrap(),
        "{cmd:?} did not finish within {limit:?}\n{}",
        text(&out)
    );
    out
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// An HTTP service with one worker process. With `LEAVE_WORKER=1` in its
/// environment the worker outlives a killed main process.
const PYTHON_SERVICE: &str = r#"
import ctypes, http.server, os, signal, sys, time
port = int(sys.argv[1])
pid = os.fork()
if pid == 0:
    if os.environ.get("LEAVE_WORKER") != "1":
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    while True:
        time.sleep(1)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
def stop(*_):
    os.kill(pid, signal.SIGTERM)
    os._exit(0)
signal.signal(signal.SIGTERM, stop)
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"#;

const NODE_SERVICE: &str = r#"
const http = require("http");
const port = Number(process.argv[2]);
const server = http.createServer((req, res) => res.end("ok"));
server.listen(port, "127.0.0.1");
process.on("SIGTERM", () => server.close(() => process.exit(0)));
"#;

/// A folder outside the repository with `file` holding `source` and the
/// files `soak init` wrote for it.
fn project(file: &str, source: &str, command: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(file), source).unwrap();
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_soak"))
            .current_dir(dir.path())
            .args([
                "init",
                "svc",
                "--health",
                "http://127.0.0.1:{port}/health",
                "--",
            ])
            .args(command),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "soak init failed:\n{}", text(&out));
    dir
}

/// Runs `scenario` in `dir`, its run directories under
/// `reports/SCENARIO/`, so runs of one project can go side by side.
fn chaos(dir: &Path, scenario: &str, env: &[(&str, &str)]) -> (i32, String, serde_json::Value) {
    let reports = dir.join("reports").join(scenario);
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_soak"))
            .current_dir(dir)
            .args(["chaos", scenario, "--plain", "--reports"])
            .arg(&reports)
            .env_remove("LEAVE_WORKER")
            .envs(env.iter().copied()),
        Duration::from_secs(240),
    );
    let report = std::fs::read_to_string(reports.join("latest/report.json"))
        .unwrap_or_else(|e| panic!("no report.json ({e}):\n{}", text(&out)));
    (
        out.status.code().unwrap_or(-1),
        text(&out),
        serde_json::from_str(&report).unwrap(),
    )
}

/// The three generated scenarios side by side: each soak run has its own
/// run directory, data directory and ports.
fn every_generated_scenario_passes(dir: &Path) {
    std::thread::scope(|s| {
        let runs: Vec<_> = ["kill-svc", "hang-svc", "graceful-stop-svc"]
            .into_iter()
            .map(|scenario| (scenario, s.spawn(move || chaos(dir, scenario, &[]))))
            .collect();
        for (scenario, handle) in runs {
            let (code, out, _) = handle.join().unwrap();
            assert_eq!(code, 0, "{scenario} on a healthy service must pass:\n{out}");
        }
    });
}

#[test]
fn init_on_a_python_service_gives_scenarios_that_pass() {
    let dir = project("app.py", PYTHON_SERVICE, &["python3", "app.py", "{port}"]);
    every_generated_scenario_passes(dir.path());
}

#[test]
fn init_on_a_node_service_gives_scenarios_that_pass() {
    let dir = project("app.js", NODE_SERVICE, &["node", "app.js", "{port}"]);
    every_generated_scenario_passes(dir.path());
}

#[test]
fn the_generated_kill_scenario_fails_a_service_that_leaves_its_worker() {
    let dir = project("app.py", PYTHON_SERVICE, &["python3", "app.py", "{port}"]);
    let (code, out, report) = chaos(dir.path(), "kill-svc", &[("LEAVE_WORKER", "1")]);
    assert_eq!(code, 1, "{out}");
    let failed: Vec<&serde_json::Value> = report["assertions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["verdict"] == "fail")
        .collect();
    assert!(
        failed.iter().any(
            |a| a["name"] == "no_orphans" && a["reason"].as_str().unwrap().contains("outlived")
        ),
        "no_orphans must fail naming the worker left running:\n{out}"
    );
}

#[test]
fn an_installed_soak_runs_from_a_directory_outside_the_repository() {
    let root = tempfile::tempdir().unwrap();
    let out = run(
        Command::new(env!("CARGO"))
            .args(["install", "--locked", "--debug", "--quiet", "--path"])
            .arg(repo().join("harness"))
            .arg("--root")
            .arg(root.path())
            .env("CARGO_TARGET_DIR", target_dir()),
        Duration::from_secs(900),
    );
    assert!(
        out.status.success(),
        "cargo install failed:\n{}",
        text(&out)
    );
    let soak = root.path().join("bin/soak");

    let version = run(
        Command::new(&soak).arg("--version"),
        Duration::from_secs(10),
    );
    let version = text(&version);
    assert!(version.starts_with("soak 0.1.0 ("), "{version}");
    if let Ok(head) = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(repo())
        .output()
        && head.status.success()
    {
        let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
        assert!(version.contains(&head), "{version} names commit {head}");
    }

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.py"), PYTHON_SERVICE).unwrap();
    let init = run(
        Command::new(&soak).current_dir(dir.path()).args([
            "init",
            "app",
            "--health",
            "http://127.0.0.1:{port}/health",
            "--",
            "python3",
            "app.py",
            "{port}",
        ]),
        Duration::from_secs(30),
    );
    assert!(init.status.success(), "{}", text(&init));
    let out = run(
        Command::new(&soak)
            .current_dir(dir.path())
            .args(["chaos", "kill-app", "--plain"]),
        Duration::from_secs(240),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let latest = dir.path().join("reports/latest");
    for file in ["report.html", "report.json", "junit.xml", "journal.sqlite"] {
        assert!(
            latest.join(file).is_file(),
            "{file} in {}",
            latest.display()
        );
    }
}

#[test]
fn the_example_project_runs_one_test_per_scenario_under_nextest() {
    let example = repo().join("examples/your-project");
    // The same target directory: the example's build reuses every
    // dependency this build compiled (its own soak crate still builds).
    let target = target_dir();
    let out = run(
        Command::new(env!("CARGO"))
            .args([
                "nextest",
                "run",
                "--locked",
                "--profile",
                "ci",
                "--no-fail-fast",
            ])
            .current_dir(&example)
            .env("CARGO_TARGET_DIR", &target)
            .env("SOAK_BIN", env!("CARGO_BIN_EXE_soak"))
            .env("YOUR_PROJECT_BUG", "orphan-worker"),
        Duration::from_secs(900),
    );
    let log = text(&out);
    assert!(
        !out.status.success(),
        "kill-app must fail with the bug on:\n{log}"
    );
    // nextest keeps its store under the workspace root, whatever the
    // target directory: examples/your-project/target/nextest/.
    let junit = std::fs::read_to_string(example.join("target/nextest/ci/junit.xml"))
        .unwrap_or_else(|e| panic!("no junit.xml ({e}):\n{log}"));
    let doc = roxmltree::Document::parse(&junit).unwrap();
    let case = |name: &str| {
        doc.descendants()
            .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some(name))
            .unwrap_or_else(|| panic!("no test case {name} in junit.xml:\n{junit}"))
    };
    let failure = case("kill-app")
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .unwrap_or_else(|| panic!("kill-app passed with the bug on:\n{junit}"));
    let said = junit_text(failure);
    assert!(
        said.contains("no_orphans") && said.contains("outlived"),
        "the failure names the assertion and its reason:\n{said}"
    );
    assert!(
        !case("graceful-stop-app")
            .descendants()
            .any(|n| n.has_tag_name("failure")),
        "graceful-stop-app passes:\n{junit}"
    );
}

/// A JUnit failure's message and the output nextest stored beside it.
fn junit_text(failure: roxmltree::Node) -> String {
    let mut said = failure.attribute("message").unwrap_or_default().to_string();
    for n in failure.parent().unwrap().descendants() {
        if let Some(t) = n.text() {
            said.push_str(t);
        }
    }
    said
}
