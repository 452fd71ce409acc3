//! The supervisor's promises about systems of services and their quirks:
//! start and stop order from `depends_on`, what counts as a planned death,
//! services that daemonize, and a first start that cannot work. Each is
//! proven on real processes (small Python services written here).

#[path = "it/common.rs"]
mod common;
mod support;

use common::*;
use std::time::Duration;

/// A free port on 127.0.0.1, for a service another one must find.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Listens on argv[1] after argv[2] seconds; accepts and closes forever.
const LATE_LISTENER: &str = r#"
import socket, sys, time
time.sleep(float(sys.argv[2]))
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
while True:
    s.accept()[0].close()
"#;

/// Refuses to start (exit 1) unless 127.0.0.1:argv[1] answers; on SIGTERM
/// takes 300 ms to finish, then exits 0 if that port still answers, else 7.
const NEEDS_A: &str = r#"
import signal, socket, sys, time
dep, me = int(sys.argv[1]), int(sys.argv[2])
def answers():
    try:
        socket.create_connection(("127.0.0.1", dep), timeout=1).close()
        return True
    except OSError:
        return False
if not answers():
    print("my dependency does not answer", flush=True)
    sys.exit(1)
def term(*_):
    time.sleep(0.3)
    sys.exit(0 if answers() else 7)
signal.signal(signal.SIGTERM, term)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", me))
s.listen()
while True:
    s.accept()[0].close()
"#;

#[test]
fn a_service_starts_after_what_it_depends_on_is_healthy_and_stops_before_it() {
    let a_port = free_port();
    let sb = Sandbox::new(&format!(
        r#"
[services.a]
command = ["python3", "late.py", "{{port}}", "1.5"]
port = {a_port}
restart = "never"
[services.a.health]
tcp = "127.0.0.1:{{port}}"
interval = "200ms"
start_grace = "20s"

[services.b]
command = ["python3", "needs.py", "{a_port}", "{{port}}"]
restart = "never"
depends_on = ["a"]
stop = {{ signal = "TERM", grace = "10s" }}
[services.b.health]
tcp = "127.0.0.1:{{port}}"
interval = "200ms"
"#
    ));
    std::fs::write(sb.path().join("late.py"), LATE_LISTENER).unwrap();
    std::fs::write(sb.path().join("needs.py"), NEEDS_A).unwrap();
    let run = sb.up(&[]);
    let d = sb.wait_for("b to be ready", Duration::from_secs(30), |d| {
        d.incarnations
            .iter()
            .any(|i| i.service == "b" && i.ready_at.is_some())
    });
    let inc = |d: &soak::journal::RunData, s: &str| {
        d.incarnations
            .iter()
            .find(|i| i.service == s)
            .cloned()
            .unwrap_or_else(|| panic!("no incarnation of {s}: {:#?}", d.incarnations))
    };
    let (a, b) = (inc(&d, "a"), inc(&d, "b"));
    assert!(
        b.started_at >= a.ready_at.unwrap(),
        "b started at {} before a was ready at {:?}",
        b.started_at,
        a.ready_at
    );
    run.signal(libc::SIGINT);
    let (code, out, err) = run.finish(Duration::from_secs(30));
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    let d = sb.journal();
    let (a, b) = (inc(&d, "a"), inc(&d, "b"));
    // b checks, as it stops, that a still answers: exit 0 says it did.
    assert_eq!(b.exit_code, Some(0), "b saw a gone while stopping: {b:#?}");
    assert!(
        a.ended_at.unwrap() >= b.ended_at.unwrap(),
        "a ended before b: {a:#?} {b:#?}"
    );
}

#[test]
fn a_dependency_that_never_becomes_healthy_keeps_its_dependent_from_starting_and_says_why() {
    let sb = Sandbox::new(
        r#"
[services.never-ready]
command = ["sleep", "1000"]
restart = "always"
restart_delay = "100ms"
[services.never-ready.health]
tcp = "127.0.0.1:{port}"
interval = "100ms"
failures = 1
start_grace = "1s"

[services.waiter]
command = ["sleep", "1000"]
depends_on = ["never-ready"]
[services.waiter.health]
tcp = "127.0.0.1:{port}"
start_grace = "1s"
"#,
    );
    let run = sb.up(&[]);
    let d = sb.wait_for("waiter to give up waiting", Duration::from_secs(30), |d| {
        events(d, "spawn-failed").any(|e| e.service.as_deref() == Some("waiter"))
    });
    drop(run);
    assert!(
        d.incarnations.iter().all(|i| i.service != "waiter"),
        "waiter must not start: {:#?}",
        d.incarnations
    );
    let e = events(&d, "spawn-failed")
        .find(|e| e.service.as_deref() == Some("waiter"))
        .unwrap();
    let error = e.detail["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("depends on `never-ready`") && error.contains("not healthy within 2.0 s"),
        "{error}"
    );
}

/// Ignores SIGTERM, then exits 3 on its own after argv[1] seconds.
const IGNORES_TERM_THEN_CRASHES: &str = r#"
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
time.sleep(float(sys.argv[1]))
sys.exit(3)
"#;

#[test]
fn a_crash_long_after_a_survived_fault_is_unplanned_a_death_from_the_fault_is_planned() {
    let sb = Sandbox::new(
        r#"
[services.survivor]
command = ["python3", "crash.py", "7"]
restart = "never"
stop = { signal = "TERM", grace = "1s" }

[services.casualty]
command = ["sleep", "1000"]
restart = "never"
"#,
    );
    std::fs::write(sb.path().join("crash.py"), IGNORES_TERM_THEN_CRASHES).unwrap();
    std::fs::write(
        sb.path().join("scenario.toml"),
        r#"
config = "soak.toml"
duration = "12s"
[[steps]]
at = "1s"
action = "kill"
target = "survivor"
signal = "TERM"
[[steps]]
at = "1s"
action = "kill"
target = "casualty"
signal = "TERM"
"#,
    )
    .unwrap();
    let child = sb
        .soak(&["chaos", "scenario.toml", "--plain", "--reports", "reports"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let run = Running { child: Some(child) };
    let d = sb.wait_for("the survivor's own crash", Duration::from_secs(40), |d| {
        d.incarnations
            .iter()
            .filter(|i| i.ended_at.is_some())
            .count()
            == 2
    });
    drop(run);
    let cause = |s: &str| {
        let i = d.incarnations.iter().find(|i| i.service == s).unwrap();
        (i.exit_code, i.signal.clone(), i.cause.map(|c| c.as_str()))
    };
    assert_eq!(
        cause("casualty"),
        (None, Some("TERM".into()), Some("planned")),
        "{:#?}",
        d.incarnations
    );
    assert_eq!(
        cause("survivor"),
        (Some(3), None, Some("unplanned")),
        "{:#?}",
        d.incarnations
    );
}

/// A program from a Debian package, or a panic naming the package.
fn program(name: &str, package: &str) -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(std::path::PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` not found: install the Debian package `{package}` (.ci/run does)")
        })
}

/// `s` as a TOML string.
fn q(s: impl AsRef<str>) -> String {
    toml::Value::String(s.as_ref().to_string()).to_string()
}

/// Runs `config` under `soak up`; kills the daemon the journal names with
/// SIGKILL once ready, waits for the next incarnation to be ready, stops
/// soak with SIGINT, and returns the journal. Checks on the way that the
/// forking parent's exit was not taken for the service's, and that nothing
/// of soak's tree outlives it.
fn kill_daemon_then_stop(sb: &Sandbox, pidfile: &std::path::Path) -> soak::journal::RunData {
    let run = sb.up(&[]);
    let d = sb.wait_for("the daemon to be ready", Duration::from_secs(30), |d| {
        d.incarnations.iter().any(|i| i.ready_at.is_some())
    });
    assert_eq!(d.incarnations.len(), 1, "{:#?}", d.incarnations);
    let first = &d.incarnations[0];
    assert_eq!(first.ended_at, None, "the forking parent's exit ended it");
    let daemon = first.pid.unwrap();
    let written: i32 = std::fs::read_to_string(pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(daemon, written, "the journal's pid is the daemon's");
    let tree = descendants(run.pid());
    assert!(tree.contains(&daemon), "the daemon is in soak's tree");
    unsafe { libc::kill(daemon, libc::SIGKILL) };
    sb.wait_for("a new daemon, ready", Duration::from_secs(30), |d| {
        d.incarnations.len() == 2 && d.incarnations[1].ready_at.is_some()
    });
    let tree: Vec<i32> = tree.into_iter().chain(descendants(run.pid())).collect();
    run.signal(libc::SIGINT);
    let (code, out, err) = run.finish(Duration::from_secs(30));
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(
        wait_dead(&tree, Duration::from_secs(5)),
        Vec::<i32>::new(),
        "processes outlived soak"
    );
    let d = sb.journal();
    assert_eq!(d.incarnations.len(), 2, "{:#?}", d.incarnations);
    let (killed, stopped) = (&d.incarnations[0], &d.incarnations[1]);
    assert_eq!(
        (killed.signal.as_deref(), killed.cause.map(|c| c.as_str())),
        (Some("KILL"), Some("unplanned")),
        "{killed:#?}"
    );
    assert_eq!(
        (stopped.exit_code, stopped.cause.map(|c| c.as_str())),
        (Some(0), Some("stopped")),
        "{stopped:#?}"
    );
    assert_ne!(stopped.pid, killed.pid);
    d
}

#[test]
fn nginx_daemonized_is_followed_by_its_pid_file_restarted_after_kill_9_and_stopped_gracefully() {
    let nginx = program("nginx", "nginx-light");
    let sb = Sandbox::new("");
    let data = sb.path().join("nginx-data");
    std::fs::write(sb.path().join("nginx.conf.in"), support::NGINX_CONF).unwrap();
    let render_and_exec = r#"sed "s/@PORT@/$1/" nginx.conf.in > "$2/nginx.conf" && exec "$3" -e stderr -p "$2/" -c "$2/nginx.conf""#;
    std::fs::write(
        sb.config(),
        format!(
            r#"[harness]
reports = "reports"
[services.nginx]
command = ["/bin/sh", "-c", {script}, "sh", "{{port}}", "{{data_dir}}", {nginx}]
data_dir = {data}
pidfile = "{{data_dir}}/nginx.pid"
restart_delay = "100ms"
stop = {{ signal = "QUIT", grace = "10s" }}
[services.nginx.health]
http = "http://127.0.0.1:{{port}}/"
interval = "200ms"
start_grace = "20s"
"#,
            script = q(render_and_exec),
            nginx = q(nginx.to_str().unwrap()),
            data = q(data.to_str().unwrap()),
        ),
    )
    .unwrap();
    let d = kill_daemon_then_stop(&sb, &data.join("nginx.pid"));
    // kill -9 of the master leaves its two workers: that is nginx's doing,
    // and counted, while the forking parent's clean exit counted nothing.
    assert_eq!(d.incarnations[0].orphans, Some(2), "{:#?}", d.incarnations);
    assert_eq!(d.incarnations[1].orphans, Some(0), "{:#?}", d.incarnations);
}

#[test]
fn redis_daemonized_is_followed_by_its_pid_file_restarted_after_kill_9_and_stopped_gracefully() {
    let server = program("redis-server", "redis-server");
    let sb = Sandbox::new("");
    let data = sb.path().join("redis-data");
    std::fs::write(
        sb.config(),
        format!(
            r#"[harness]
reports = "reports"
[services.redis]
command = [{server}, "--port", "{{port}}", "--bind", "127.0.0.1", "--dir", "{{data_dir}}", "--save", "", "--daemonize", "yes", "--pidfile", "{{data_dir}}/redis.pid", "--logfile", "{{data_dir}}/redis.log"]
data_dir = {data}
pidfile = "{{data_dir}}/redis.pid"
restart_delay = "100ms"
[services.redis.health]
tcp = "127.0.0.1:{{port}}"
interval = "200ms"
start_grace = "20s"
"#,
            server = q(server.to_str().unwrap()),
            data = q(data.to_str().unwrap()),
        ),
    )
    .unwrap();
    let d = kill_daemon_then_stop(&sb, &data.join("redis.pid"));
    assert!(
        d.incarnations.iter().all(|i| i.orphans == Some(0)),
        "{:#?}",
        d.incarnations
    );
}

#[test]
fn a_program_that_cannot_run_at_the_first_start_is_journaled_once_and_not_retried() {
    let sb = Sandbox::new(
        r#"
[services.typo]
command = ["./bad-interpreter", "--port", "{port}"]
restart = "always"
restart_delay = "50ms"
start_limit = { burst = 5, interval = "60s" }

[services.not-executable]
command = ["./interpreter-not-executable"]
restart = "always"
restart_delay = "50ms"
start_limit = { burst = 5, interval = "60s" }
"#,
    );
    // Both pass the preflight check (they exist and are executable), and
    // the kernel refuses them only at exec: their interpreters are missing
    // or not executable.
    use std::os::unix::fs::PermissionsExt;
    let interpreter = sb.path().join("interpreter");
    std::fs::write(&interpreter, "not a program\n").unwrap();
    std::fs::set_permissions(&interpreter, std::fs::Permissions::from_mode(0o644)).unwrap();
    for (file, text) in [
        ("bad-interpreter", "#!/no/such/interpreter\n".to_string()),
        (
            "interpreter-not-executable",
            format!("#!{}\n", interpreter.display()),
        ),
    ] {
        let path = sb.path().join(file);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let run = sb.up(&["--for", "30s"]);
    sb.wait_for("both spawn failures", Duration::from_secs(20), |d| {
        events(d, "spawn-failed").count() >= 2
    });
    // Retries, were there any, would come every 50 ms.
    std::thread::sleep(Duration::from_secs(1));
    drop(run);
    let d = sb.journal();
    let failures: Vec<_> = events(&d, "spawn-failed").collect();
    assert_eq!(failures.len(), 2, "{failures:#?}");
    assert_eq!(events(&d, "gave-up").count(), 0);
    assert!(d.incarnations.is_empty(), "{:#?}", d.incarnations);
    let error = |s: &str| {
        failures
            .iter()
            .find(|e| e.service.as_deref() == Some(s))
            .and_then(|e| e.detail["error"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    assert!(error("typo").contains("No such file"), "{}", error("typo"));
    assert!(
        error("not-executable").contains("Permission denied"),
        "{}",
        error("not-executable")
    );
}

/// Listens on [::1]:argv[1] only (IPv6_V6ONLY), as a Node service whose
/// resolver answered `localhost` with ::1 does; accepts and closes forever.
const IPV6_ONLY: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::1", int(sys.argv[1])))
s.listen()
while True:
    s.accept()[0].close()
"#;

/// Answers every HTTP request 200 with a body of argv[2] bytes.
const BIG_BODY: &str = r#"
import http.server, sys
size = int(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        self.wfile.write(b"o" * size)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

#[test]
fn a_tcp_probe_of_localhost_reaches_a_service_on_ipv6_loopback_only() {
    let sb = Sandbox::new(
        r#"
[services.v6]
command = ["python3", "v6.py", "{port}"]
restart = "never"
[services.v6.health]
tcp = "localhost:{port}"
interval = "200ms"
failures = 2
start_grace = "10s"
"#,
    );
    std::fs::write(sb.path().join("v6.py"), IPV6_ONLY).unwrap();
    let run = sb.up(&["--for", "30s"]);
    let d = sb.wait_for("ready or hung", Duration::from_secs(25), |d| {
        d.incarnations.iter().any(|i| i.ready_at.is_some()) || events(d, "hung").count() > 0
    });
    drop(run);
    assert_eq!(events(&d, "hung").count(), 0, "{:#?}", d.events);
    assert!(d.incarnations[0].ready_at.is_some());
}

#[test]
fn an_http_probe_answered_with_a_body_too_large_to_read_fails() {
    let sb = Sandbox::new(
        r#"
[services.big]
command = ["python3", "big.py", "{port}", "2000000"]
restart = "never"
[services.big.health]
http = "http://127.0.0.1:{port}/"
interval = "200ms"
failures = 2
start_grace = "3s"

[services.small]
command = ["python3", "big.py", "{port}", "2"]
restart = "never"
[services.small.health]
http = "http://127.0.0.1:{port}/"
interval = "200ms"
failures = 2
start_grace = "3s"
"#,
    );
    std::fs::write(sb.path().join("big.py"), BIG_BODY).unwrap();
    let run = sb.up(&["--for", "30s"]);
    let d = sb.wait_for("big to be found hung", Duration::from_secs(25), |d| {
        events(d, "hung").count() > 0
            && d.incarnations
                .iter()
                .any(|i| i.service == "small" && i.ready_at.is_some())
    });
    drop(run);
    let hung: Vec<_> = events(&d, "hung").collect();
    assert_eq!(hung.len(), 1, "{hung:#?}");
    assert_eq!(hung[0].service.as_deref(), Some("big"));
    let reason = hung[0].detail["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("larger than"), "{reason}");
}

/// Forks a child that sleeps and never writes the pid file, and exits 0: a
/// daemon that cannot be followed.
const FORKS_NO_PIDFILE: &str = r#"
import os, time
if os.fork() == 0:
    os.setsid()
    time.sleep(1000)
"#;

#[test]
fn a_daemon_that_writes_no_pid_file_is_reported_and_its_leftovers_counted() {
    let sb = Sandbox::new(
        r#"
[services.forker]
command = ["python3", "forker.py"]
pidfile = "{data_dir}/never.pid"
restart = "never"
[services.forker.health]
tcp = "127.0.0.1:{port}"
start_grace = "1s"
"#,
    );
    std::fs::write(sb.path().join("forker.py"), FORKS_NO_PIDFILE).unwrap();
    let run = sb.up(&["--for", "30s"]);
    let d = sb.wait_for("the incarnation to end", Duration::from_secs(20), |d| {
        d.incarnations.iter().any(|i| i.ended_at.is_some())
    });
    drop(run);
    let error = events(&d, "spawn-failed")
        .next()
        .and_then(|e| e.detail["error"].as_str().map(String::from))
        .unwrap_or_default();
    assert!(
        error.contains("no daemon was found") && error.contains("never.pid"),
        "{error:?}"
    );
    let i = &d.incarnations[0];
    assert_eq!((i.exit_code, i.orphans), (Some(0), Some(1)), "{i:#?}");
}

/// [`FORKS_NO_PIDFILE`], whose child writes `forked` in the cwd once its
/// parent has exited, so the test knows the shim is waiting for the pid file.
const FORKS_AND_SAYS_SO: &str = r#"
import os, time
parent = os.getpid()
if os.fork() == 0:
    os.setsid()
    while os.getppid() == parent:
        time.sleep(0.01)
    open("forked", "w").close()
    time.sleep(1000)
"#;

#[test]
fn soak_killed_while_waiting_for_a_pid_file_leaves_nothing_behind() {
    let sb = Sandbox::new(
        r#"
[services.forker]
command = ["python3", "forker.py"]
pidfile = "{data_dir}/never.pid"
[services.forker.health]
tcp = "127.0.0.1:{port}"
start_grace = "60s"
"#,
    );
    std::fs::write(sb.path().join("forker.py"), FORKS_AND_SAYS_SO).unwrap();
    let run = sb.up(&[]);
    let start = std::time::Instant::now();
    while !sb.path().join("forked").exists() {
        assert!(start.elapsed() < Duration::from_secs(20), "no fork");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The shim reaps the parent at once and then waits for the pid file.
    std::thread::sleep(Duration::from_millis(300));
    let tree = descendants(run.pid());
    assert!(tree.len() >= 2, "the shim and the forked child: {tree:?}");
    drop(run);
    assert_eq!(
        wait_dead(&tree, Duration::from_secs(5)),
        Vec::<i32>::new(),
        "processes outlived soak, well before the 60 s wait ran out"
    );
}
