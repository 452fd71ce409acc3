//! Faults that reach the processes that matter, and undos that reach only
//! them, proven on real services through the real `soak chaos`: a `sh -c`
//! wrapper whose child is born during the hold, and Python services written
//! here that crash or run twice on the same data, or are replaced during a
//! fault. (nginx's workers under fd-exhaustion, and a duplicate that
//! refuses, are cells of tests/matrix.rs.)

#[path = "it/common.rs"]
mod common;
mod support;

use common::{Running, Sandbox, descendants, events};
use soak::supervise::procfs;
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::run::q;

/// The soft RLIMIT_NOFILE of `pid`, as /proc/PID/limits shows it.
fn soft_nofile(pid: i32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Starts `soak chaos` on `scenario`, written next to the sandbox's soak.toml.
fn start(sb: &Sandbox, scenario: &str) -> Running {
    std::fs::write(
        sb.path().join("scenario.toml"),
        format!("config = \"soak.toml\"\n{scenario}"),
    )
    .unwrap();
    let child = sb
        .soak(&["chaos", "scenario.toml", "--plain"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Running { child: Some(child) }
}

/// The journal of the finished run in `sb`.
fn finished(sb: &Sandbox, run: Running) -> soak::journal::RunData {
    let (code, out, err) = run.finish(Duration::from_secs(60));
    assert!(
        matches!(code, Some(0) | Some(1)),
        "soak chaos was inconclusive ({code:?})\n{out}\n{err}"
    );
    sb.journal()
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn fd_exhaustion_reaches_a_child_a_wrapper_starts_during_the_hold() {
    // sh serves through a Python child, and starts `sleep 300` once the
    // test creates `go`: a process born during the hold.
    let script = "python3 -m http.server \"$1\" --bind 127.0.0.1 & while [ ! -e go ]; do sleep 0.1; done; sleep 300 & wait";
    let sb = Sandbox::new(&format!(
        r#"[harness]
reports = "reports"

[services.web]
command = ["/bin/sh", "-c", {script}, "sh", "{{port}}"]
port = "auto"
restart = "on-failure"

[services.web.health]
http = "http://127.0.0.1:{{port}}/"
expect_status = 200
interval = "500ms"
timeout = "1s"
failures = 3
start_grace = "10s"
"#,
        script = q(script)
    ));
    let run = start(
        &sb,
        "services = [\"web\"]\nduration = \"14s\"\n[[steps]]\nat = \"1s\"\naction = \"fd-exhaustion\"\ntarget = \"web\"\nheadroom = 40\nfor = \"7s\"\n",
    );
    let d = sb.wait_for("the fault", Duration::from_secs(40), |d| {
        events(d, "fault-injected").count() == 1
    });
    let injected = events(&d, "fault-injected").next().unwrap().detail.clone();
    let sh = injected["pid"].as_i64().unwrap() as i32;
    let before = injected["soft_before"].as_u64().unwrap();
    let server = *descendants(sh)
        .iter()
        .find(|p| procfs::cmdline(**p).contains("http.server"))
        .expect("the python child");
    assert!(
        soft_nofile(server).is_some_and(|s| s < before),
        "the server child is lowered: {injected}"
    );
    std::fs::write(sb.path().join("go"), "").unwrap();
    let mut born = 0;
    wait_until(
        "the child born during the hold",
        Duration::from_secs(5),
        || {
            born = descendants(sh)
                .into_iter()
                .find(|p| procfs::cmdline(*p).contains("sleep 300"))
                .unwrap_or(0);
            born != 0
        },
    );
    assert!(
        soft_nofile(born).is_some_and(|s| s < before),
        "born with a lowered limit"
    );
    sb.wait_for("the rollback", Duration::from_secs(20), |d| {
        events(d, "fault-rolled-back").count() == 1
    });
    for pid in [sh, server, born] {
        assert_eq!(
            soft_nofile(pid),
            Some(before),
            "pid {pid} after the rollback"
        );
    }
    let d = finished(&sb, run);
    let rb = &events(&d, "fault-rolled-back").next().unwrap().detail;
    assert!(rb["born_during_hold"].as_u64().unwrap() >= 1, "{rb}");
}

/// A Python service that takes a lock on its data dir and serves HTTP. When
/// the lock is held it does what `on_busy` says: `segv` (die of SIGSEGV)
/// or `ignore` (serve anyway).
const LOCKED_SERVICE: &str = r#"
import fcntl, http.server, os, signal, sys
port, data, on_busy = int(sys.argv[1]), sys.argv[2], sys.argv[3]
lock = open(os.path.join(data, "lock"), "w")
try:
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError:
    if on_busy == "segv":
        print("about to crash", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGSEGV)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"#;

/// `timeout` is the probe's: generous where a probe must answer on a busy
/// machine (an exec probe starts Python), short where a hang must be seen.
fn locked_sandbox(on_busy: &str, probe: &str, timeout: &str) -> Sandbox {
    let sb = Sandbox::new("");
    std::fs::write(sb.path().join("svc.py"), LOCKED_SERVICE).unwrap();
    std::fs::write(
        sb.config(),
        format!(
            r#"[harness]
reports = "reports"

[services.svc]
command = ["python3", "svc.py", "{{port}}", "{{data_dir}}", {on_busy}]
port = "auto"
data_dir = "auto"
restart = "on-failure"

[services.svc.health]
{probe}
interval = "300ms"
timeout = {timeout}
failures = 2
start_grace = "10s"
"#,
            on_busy = q(on_busy),
            timeout = q(timeout),
        ),
    )
    .unwrap();
    sb
}

const DUPLICATE: &str = "services = [\"svc\"]\nduration = \"8s\"\n[[steps]]\nat = \"1s\"\naction = \"duplicate\"\ntarget = \"svc\"\nfor = \"4s\"\n";

#[test]
fn a_duplicate_that_crashes_is_not_a_refusal() {
    let sb = locked_sandbox("segv", "http = \"http://127.0.0.1:{port}/\"", "5s");
    let d = finished(&sb, start(&sb, DUPLICATE));
    let ended = events(&d, "duplicate-ended")
        .next()
        .expect("the duplicate ended");
    assert_eq!(ended.detail["refused"], false, "{:?}", ended.detail);
    assert_eq!(
        ended.detail["signal_number"],
        libc::SIGSEGV,
        "{:?}",
        ended.detail
    );
    assert!(
        ended.detail["log_tail"]
            .to_string()
            .contains("about to crash"),
        "{:?}",
        ended.detail
    );
}

#[test]
fn a_duplicates_tcp_and_exec_probes_reach_its_own_port() {
    let probes = [
        "tcp = \"127.0.0.1:{port}\"",
        "exec = [\"python3\", \"-c\", \"import socket; socket.create_connection(('127.0.0.1', {port}), 1)\"]",
    ];
    for probe in probes {
        let sb = locked_sandbox("ignore", probe, "5s");
        let d = finished(&sb, start(&sb, DUPLICATE));
        let running = events(&d, "duplicate-still-running")
            .next()
            .unwrap_or_else(|| panic!("{probe}: the duplicate ran twice"));
        assert_eq!(
            running.detail["serving"], true,
            "{probe}: the probe found the duplicate on its own port: {:?}",
            running.detail
        );
    }
}

#[test]
fn a_hang_whose_incarnation_was_replaced_rolls_back_nothing() {
    // Hung for 6 s, but the supervisor notices within about a second and
    // replaces the incarnation: the delayed SIGCONT must not be sent.
    let sb = locked_sandbox("ignore", "http = \"http://127.0.0.1:{port}/\"", "1s");
    let d = finished(
        &sb,
        start(
            &sb,
            "services = [\"svc\"]\nduration = \"10s\"\n[[steps]]\nat = \"1s\"\naction = \"hang\"\ntarget = \"svc\"\nscope = \"main\"\nfor = \"6s\"\n",
        ),
    );
    assert!(d.incarnations.len() >= 2, "the hung service was replaced");
    let injected = &events(&d, "fault-injected").next().unwrap().detail;
    let rb = &events(&d, "fault-rolled-back").next().unwrap().detail;
    assert_eq!(rb["target_replaced"], true, "{rb}");
    assert_eq!(rb["continued"], serde_json::json!([]), "{rb}");
    assert_eq!(rb["untouched"], injected["pids"], "{rb}");
}

#[test]
fn a_limit_whose_incarnation_was_replaced_is_not_restored_on_anyone() {
    // The service is killed during the hold and restarted: the delayed
    // restore must leave the new incarnation alone.
    let sb = locked_sandbox("ignore", "http = \"http://127.0.0.1:{port}/\"", "5s");
    let d = finished(
        &sb,
        start(
            &sb,
            "services = [\"svc\"]\nduration = \"12s\"\n[[steps]]\nat = \"1s\"\naction = \"fd-exhaustion\"\ntarget = \"svc\"\nheadroom = 40\nfor = \"6s\"\n[[steps]]\nat = \"2s\"\naction = \"kill\"\ntarget = \"svc\"\n",
        ),
    );
    assert!(
        d.incarnations.len() >= 2,
        "the killed service was restarted"
    );
    let rb = events(&d, "fault-rolled-back")
        .find(|e| e.detail["action"] == "fd-exhaustion")
        .expect("the fd fault's rollback");
    assert_eq!(rb.detail["target_replaced"], true, "{:?}", rb.detail);
    assert!(
        rb.detail["processes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["outcome"] == "target-replaced"),
        "{:?}",
        rb.detail
    );
}
