//! Image services on a real Docker-API engine (Podman's service under
//! `scripts/test`, Docker Engine on a user's machine): the fixtures and
//! Debian's redis-server as `FROM scratch` images built here, run by the real
//! `soak` binary, faulted through the engine. No test skips: without an
//! engine each fails and says how to start one.

#[path = "support/containers.rs"]
mod images;
mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{fixture_bin, repo, soak_bin};

/// The gateway and the store in one image.
fn fixture_image() -> String {
    images::engine();
    images::scratch_image(
        "fixtures",
        &[
            fixture_bin("gateway").expect("the gateway binary"),
            fixture_bin("store").expect("the store binary"),
        ],
    )
}

/// fixtures/soak.toml with both services run from `image`, bugs switched
/// on through each service's own `env` (a container gets only that).
fn fixture_config(image: &str, gateway_bugs: &str, store_bugs: &str, extra: &str) -> String {
    format!(
        r#"[harness]
reports = "reports"
sample_every = "1s"

[services.gateway]
image = "{image}"
args = ["/gateway", "--port", "{{port}}", "--data", "{{data_dir}}", "--workers", "2", "--store", "{{link.store}}"]
env = {{ GATEWAY_BUGS = "{gateway_bugs}" }}
depends_on = ["store"]
restart = "on-failure"
restart_delay = "100ms"
backoff = {{ factor = 2.0, max = "5s" }}
start_limit = {{ burst = 10, interval = "60s" }}
stop = {{ signal = "TERM", grace = "5s" }}
[services.gateway.health]
http = "http://127.0.0.1:{{port}}/health"
expect_body = "ok"
start_grace = "10s"

[services.store]
image = "{image}"
args = ["/store", "--port", "{{port}}", "--data", "{{data_dir}}"]
env = {{ STORE_BUGS = "{store_bugs}" }}
restart = "on-failure"
restart_delay = "100ms"
stop = {{ signal = "TERM", grace = "5s" }}
sqlite = ["{{data_dir}}/store.db"]
{extra}
[services.store.health]
http = "http://127.0.0.1:{{port}}/health"
expect_body = "ok"
start_grace = "10s"

[links.store]
to = "store"

[workloads.items]
service = "store"
write = {{ method = "POST", url = "http://127.0.0.1:{{port}}/items", body = '{{"key":"{{key}}","value":"{{value}}"}}', headers = {{ "Content-Type" = "application/json" }}, expect_status = 201 }}
read = {{ method = "GET", url = "http://127.0.0.1:{{port}}/items/{{key}}", expect_status = 200, expect_body = "{{value}}" }}
rate = "20/s"

[workloads.work]
service = "gateway"
read = {{ url = "http://127.0.0.1:{{port}}/work", expect_status = 200, expect_body = "done" }}
rate = "5/s"
"#
    )
}

/// A folder laid out like the repository: `fixtures/soak.toml` (the
/// container config) and `scenarios/`, so a scenario's
/// `config = "../fixtures/soak.toml"` finds it.
struct Bench {
    dir: tempfile::TempDir,
}

impl Bench {
    fn new(config: &str) -> Bench {
        let dir = tempfile::tempdir().expect("a temp dir");
        for d in ["fixtures", "scenarios"] {
            std::fs::create_dir(dir.path().join(d)).expect("a folder");
        }
        std::fs::write(dir.path().join("fixtures/soak.toml"), config).expect("the config");
        Bench { dir }
    }

    /// The repository's scenario `name`, copied.
    fn scenario(&self, name: &str) -> PathBuf {
        let to = self.dir.path().join(format!("scenarios/{name}.toml"));
        std::fs::copy(repo().join(format!("scenarios/{name}.toml")), &to).expect("the scenario");
        to
    }

    /// A scenario written by the test.
    fn write_scenario(&self, name: &str, text: &str) -> PathBuf {
        let to = self.dir.path().join(format!("scenarios/{name}.toml"));
        std::fs::write(&to, text).expect("the scenario");
        to
    }

    fn reports(&self) -> PathBuf {
        self.dir.path().join("reports")
    }

    /// `soak chaos SCENARIO`, bounded: (exit code, output, report.json).
    fn chaos(&self, scenario: &Path) -> (i32, String, serde_json::Value) {
        let _engine = engine_lock(false);
        let (code, output) = run_bounded(
            Command::new(soak_bin())
                .arg("chaos")
                .arg(scenario)
                .arg("--plain")
                .arg("--reports")
                .arg(self.reports()),
            Duration::from_secs(90),
        );
        let report = std::fs::read_to_string(self.reports().join("latest/report.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(serde_json::Value::Null);
        (code, output, report)
    }

    fn journal(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.reports().join("latest/journal.sqlite"))
            .expect("the run's journal")
    }

    /// The one number `sql` counts in the run's journal.
    fn count(&self, sql: &str) -> i64 {
        self.journal()
            .query_row(sql, [], |r| r.get(0))
            .expect("the journal answers")
    }
}

/// Every soak run of these tests holds this shared; the test that leaves a
/// container without an owner holds it exclusively, since every soak that
/// starts meanwhile would (rightly) refuse to start.
fn engine_lock(exclusive: bool) -> std::fs::File {
    let f = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::env::temp_dir().join("soak-containers-tests.lock"))
        .expect("the tests' lock file");
    let how = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    };
    // SAFETY: flock(2) on an fd this File owns; released when it closes.
    let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), how) };
    assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
    f
}

/// Runs `cmd` to its end or kills it (by pid) after `limit`.
fn run_bounded(cmd: &mut Command, limit: Duration) -> (i32, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("soak starts");
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let o = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let e = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("soak ran past {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = o.join().unwrap_or_default() + &e.join().unwrap_or_default();
    (status.code().unwrap_or(-1), output)
}

/// The assertions of a report with `verdict`, one a line.
fn assertions(report: &serde_json::Value, verdict: &str) -> String {
    report["assertions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["verdict"] == verdict)
        .map(|a| format!("  {}: {}", a["name"], a["reason"]))
        .collect::<Vec<_>>()
        .join("\n")
}

fn must_pass(scenario: &str, gateway_bugs: &str, store_bugs: &str) -> Bench {
    let bench = Bench::new(&fixture_config(
        &fixture_image(),
        gateway_bugs,
        store_bugs,
        "",
    ));
    let (code, out, report) = bench.chaos(&bench.scenario(scenario));
    assert_eq!(
        code,
        0,
        "{scenario} with bugs {gateway_bugs:?}/{store_bugs:?} must pass:\n{}\n{out}",
        assertions(&report, "fail")
    );
    bench
}

fn must_fail(scenario: &str, gateway_bugs: &str, store_bugs: &str, fails: &str, reason: &str) {
    let bench = Bench::new(&fixture_config(
        &fixture_image(),
        gateway_bugs,
        store_bugs,
        "",
    ));
    let (code, out, report) = bench.chaos(&bench.scenario(scenario));
    assert_eq!(code, 1, "{scenario} with its bug on must fail:\n{out}");
    let failed = report["assertions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["name"] == fails && a["verdict"] == "fail")
        .unwrap_or_else(|| panic!("`{fails}` did not fail:\n{}", assertions(&report, "fail")));
    let why = failed["reason"].as_str().unwrap_or_default();
    assert!(
        why.contains(reason),
        "`{fails}` failed for {why:?}, not {reason:?}"
    );
}

#[test]
fn kill_through_the_engine_restarts_the_container_healthy() {
    let bench = must_pass("kill-gateway", "", "");
    let started: i64 = bench.count(
        "SELECT count(*) FROM events WHERE service = 'gateway' AND kind = 'started' \
             AND json_extract(detail, '$.container') IS NOT NULL",
    );
    assert_eq!(started, 2, "two incarnations, each naming its container");
}

/// The kill row's bug cannot happen in a container: the main process is
/// PID 1 of the container's PID namespace, and the kernel kills every
/// process of it with PID 1, so workers that would outlive their master on
/// a host die with it here, and no_orphans holds with the bug on.
#[test]
fn kill_takes_the_workers_with_the_container_even_with_orphan_workers() {
    let bench = must_pass("kill-gateway", "orphan-workers", "");
    let orphans: i64 =
        bench.count("SELECT coalesce(sum(orphans), 0) FROM incarnations WHERE service = 'gateway'");
    assert_eq!(orphans, 0);
}

#[test]
fn hang_of_the_workers_is_detected_in_a_container() {
    must_pass("hang-gateway", "", "");
}

#[test]
fn hang_behind_a_shallow_health_check_fails_in_a_container() {
    must_fail(
        "hang-gateway",
        "shallow-health",
        "",
        "detected_within",
        "health stayed green while",
    );
}

/// The freezer freezes the whole container, master and health endpoint
/// included: detected as hung, killed (thawed for it) and restarted, and
/// the rollback unpauses or finds the container gone, never left frozen.
#[test]
fn a_paused_container_is_detected_hung_and_restarted() {
    let bench = Bench::new(&fixture_config(&fixture_image(), "", "", ""));
    let scenario = bench.write_scenario(
        "pause-store",
        r#"config = "../fixtures/soak.toml"
services = ["store"]
workloads = ["items"]
duration = "14s"
[[steps]]
at = "2s"
action = "hang"
target = "store"
scope = "group"
for = "8s"
[expect]
detected_within = "10s"
healthy_within = "15s"
"#,
    );
    let (code, out, report) = bench.chaos(&scenario);
    assert_eq!(code, 0, "{}\n{out}", assertions(&report, "fail"));
    let (injected, rolled): (String, String) = bench
        .journal()
        .query_row(
            "SELECT (SELECT detail FROM events WHERE kind = 'fault-injected'), \
                    (SELECT detail FROM events WHERE kind = 'fault-rolled-back')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(injected.contains("\"container\""), "{injected}");
    assert!(rolled.contains("\"unpaused\""), "{rolled}");
    let hung =
        bench.count("SELECT count(*) FROM incarnations WHERE service = 'store' AND cause = 'hung'");
    assert_eq!(hung, 1, "{out}");
}

#[test]
fn stop_through_the_engine_is_graceful() {
    must_pass("graceful-stop-gateway", "", "");
}

#[test]
fn stop_of_a_container_that_ignores_sigterm_fails() {
    must_fail(
        "graceful-stop-gateway",
        "ignore-sigterm",
        "",
        "stops_within",
        "ignored SIGTERM",
    );
}

/// An image whose STOPSIGNAL is SIGINT is stopped with SIGINT, and soak
/// says so: the gateway that ignores SIGTERM exits on SIGINT within its
/// grace, and the verdict, the fault and the journal all name SIGINT. (The
/// same gateway in an image without a STOPSIGNAL fails, above.)
#[test]
fn stop_of_an_image_with_a_stopsignal_sends_and_names_it() {
    images::engine();
    let image = images::scratch_image_with(
        "fixtures-sigint",
        &[
            fixture_bin("gateway").expect("the gateway binary"),
            fixture_bin("store").expect("the store binary"),
        ],
        "STOPSIGNAL SIGINT\n",
    );
    let bench = Bench::new(&fixture_config(&image, "ignore-sigterm", "", ""));
    let (code, out, report) = bench.chaos(&bench.scenario("graceful-stop-gateway"));
    assert_eq!(code, 0, "{}\n{out}", assertions(&report, "fail"));
    let stops = report["assertions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["name"] == "stops_within")
        .expect("stops_within");
    let why = stops["reason"].as_str().unwrap_or_default();
    assert!(why.contains("after SIGINT"), "{why}");
    let stopping: i64 = bench.count(
        "SELECT count(*) FROM events WHERE kind = 'stopping' AND service = 'gateway' \
         AND json_extract(detail, '$.signal') = 'INT'",
    );
    assert!(stopping >= 1, "no `stopping` event naming INT:\n{out}");
}

#[test]
fn a_duplicate_container_on_the_same_data_dir_is_refused() {
    must_pass("duplicate-pool-store", "", "");
}

#[test]
fn a_duplicate_container_without_an_instance_lock_fails() {
    must_fail(
        "duplicate-pool-store",
        "",
        "no-instance-lock",
        "duplicate_refused_within",
        "two instances of store on one data dir",
    );
}

/// A store that leaks 1 MiB a request under a 64 MB limit: the kernel
/// kills it, the journal says oom-killed, the supervisor restarts it, and
/// restart_budget fails naming the cause.
#[test]
fn a_leak_under_a_memory_limit_is_oom_killed_and_restarted() {
    let bench = Bench::new(&fixture_config(
        &fixture_image(),
        "",
        "leak-bytes-per-request=1M",
        "memory = \"64MB\"",
    ));
    let scenario = bench.write_scenario(
        "oom-store",
        r#"config = "../fixtures/soak.toml"
services = ["store"]
workloads = ["items"]
duration = "15s"
[expect]
restart_budget = { max = 0, window = "1m" }
"#,
    );
    let (code, out, report) = bench.chaos(&scenario);
    assert_eq!(code, 1, "{out}");
    let oom: i64 = bench.count(
        "SELECT count(*) FROM incarnations WHERE service = 'store' AND cause = 'oom-killed'",
    );
    let after: i64 = bench.count("SELECT count(*) FROM incarnations WHERE service = 'store'");
    assert!(oom >= 1, "no incarnation oom-killed:\n{out}");
    assert!(after > oom, "not restarted after the OOM kill:\n{out}");
    let failed = assertions(&report, "fail");
    assert!(
        failed.contains("restart_budget") && failed.contains("oom-killed"),
        "restart_budget must fail naming the cause:\n{failed}"
    );
}

/// The bound, from soak's SIGKILL to no container of its run left, that
/// docs/containers.md states.
const REMOVAL_BOUND: Duration = Duration::from_secs(5);

#[test]
fn soak_sigkilled_leaves_no_container_behind() {
    let image = fixture_image();
    let services: String = ["a", "b", "c"]
        .iter()
        .map(|n| {
            format!(
                "[services.{n}]\nimage = \"{image}\"\nargs = [\"/store\", \"--port\", \"{{port}}\", \"--data\", \"{{data_dir}}\"]\n"
            )
        })
        .collect();
    let bench = Bench::new(&format!("[harness]\nreports = \"reports\"\n{services}"));
    let _engine = engine_lock(false);
    let soak = Command::new(soak_bin())
        .args(["up", "--plain", "--reports"])
        .arg(bench.reports())
        .arg("--config")
        .arg(bench.dir.path().join("fixtures/soak.toml"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("soak up");
    // Killed by pid however the test ends.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut soak = Killed(soak);
    images::engine();
    // Its run's id is its run directory's name, the containers' label.
    let run = || {
        std::fs::read_dir(bench.reports())
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n != "latest")
    };
    let of_run = |id: &str, running_only: bool| {
        images::containers_with_label(&format!("soak.run={id}"))
            .iter()
            .filter(|c| !running_only || c["State"] == "running")
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let id = loop {
        if let Some(id) = run()
            && of_run(&id, true) == 3
        {
            break id;
        }
        assert!(Instant::now() < deadline, "three containers never ran");
        std::thread::sleep(Duration::from_millis(100));
    };
    soak.0.kill().expect("SIGKILL soak");
    let killed = Instant::now();
    soak.0.wait().unwrap();
    let gone = loop {
        if of_run(&id, false) == 0 {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < REMOVAL_BOUND,
            "containers of run {id} remain {REMOVAL_BOUND:?} after soak's SIGKILL"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("no container left {} ms after SIGKILL", gone.as_millis());
}

#[test]
fn without_an_engine_soak_up_says_so_with_exit_2_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("no-engine.sock");
    std::fs::write(
        dir.path().join("soak.toml"),
        "[services.cache]\nimage = \"redis:7\"\n",
    )
    .unwrap();
    let started = Instant::now();
    let out = Command::new(soak_bin())
        .args(["up", "--plain", "--reports"])
        .arg(dir.path().join("reports"))
        .arg("--config")
        .arg(dir.path().join("soak.toml"))
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no container engine answers"), "{err}");
    assert!(err.contains(&socket.display().to_string()), "{err}");
    assert!(err.contains("soak.toml:2:9"), "{err}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

/// Debian's redis-server as a scratch image: killed through the engine,
/// back and answering within the scenario's bound.
#[test]
fn redis_from_a_debian_binary_is_killed_and_serves_again() {
    images::engine();
    let image = images::scratch_image("redis", &[PathBuf::from("/usr/bin/redis-server")]);
    let bench = Bench::new(&format!(
        r#"[harness]
reports = "reports"
[services.cache]
image = "{image}"
args = ["/redis-server", "--port", "{{port}}", "--dir", "{{data_dir}}", "--save", "", "--appendonly", "no"]
[services.cache.health]
tcp = "127.0.0.1:{{port}}"
start_grace = "10s"
"#
    ));
    let scenario = bench.write_scenario(
        "kill-cache",
        r#"config = "../fixtures/soak.toml"
duration = "6s"
[[steps]]
at = "2s"
action = "kill"
target = "cache"
[expect]
healthy_within = "10s"
restarts = { max = 1 }
no_orphans = true
"#,
    );
    let (code, out, report) = bench.chaos(&scenario);
    assert_eq!(code, 0, "{}\n{out}", assertions(&report, "fail"));
}

/// fd-exhaustion reaches a container's processes by their host pids.
#[test]
fn fd_exhaustion_of_a_container_is_ridden_out() {
    must_pass("fd-exhaustion-gateway", "", "");
}

#[test]
fn fd_exhaustion_of_a_container_that_crashes_on_emfile_fails() {
    must_fail(
        "fd-exhaustion-gateway",
        "emfile-crash",
        "",
        "survives",
        "died during the fd-exhaustion: exit code 1",
    );
}

/// The lock is taken from the host on the database in the mounted data dir.
#[test]
fn a_sqlite_lock_on_a_container_s_database_loses_no_write() {
    must_pass("sqlite-lock-store", "", "");
}

#[test]
fn a_sqlite_lock_on_a_container_that_crashes_on_busy_fails() {
    must_fail(
        "sqlite-lock-store",
        "",
        "busy-crash",
        "survives",
        "died during the sqlite-lock",
    );
}

/// A running container labelled by a soak run whose shim is gone (the host
/// went down, say): `soak up` refuses to start and says how to remove it.
#[test]
fn soak_up_refuses_while_an_earlier_run_s_container_runs() {
    use testcontainers::bollard::models::{ContainerCreateBody, HostConfig};
    use testcontainers::bollard::query_parameters as q;
    let image = fixture_image();
    let docker = images::engine();
    let _engine = engine_lock(true);
    // An owner that is gone: a process that has exited and been reaped.
    let mut gone = Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let data = tempfile::tempdir().unwrap();
    let data = data.path().display().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let labels = std::collections::HashMap::from([
        ("soak.run".to_string(), "an-earlier-run".to_string()),
        ("soak.service".to_string(), "store".to_string()),
        ("soak.owner".to_string(), gone.id().to_string()),
    ]);
    let body = ContainerCreateBody {
        image: Some(image.clone()),
        cmd: Some(
            ["/store", "--port", &port.to_string(), "--data", &data]
                .map(String::from)
                .to_vec(),
        ),
        labels: Some(labels),
        host_config: Some(HostConfig {
            network_mode: Some("host".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = images::block_on(docker.create_container(None::<q::CreateContainerOptions>, body))
        .expect("a leftover container")
        .id;
    // Removed by id however the test ends.
    struct Removed<'a>(&'a testcontainers::bollard::Docker, String);
    impl Drop for Removed<'_> {
        fn drop(&mut self) {
            let options = q::RemoveContainerOptions {
                force: true,
                ..Default::default()
            };
            let _ = images::block_on(self.0.remove_container(&self.1, Some(options)));
        }
    }
    let _removed = Removed(&docker, id.clone());
    images::block_on(docker.start_container(&id, None::<q::StartContainerOptions>))
        .expect("the leftover runs");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("soak.toml"),
        format!("[services.cache]\nimage = \"{image}\"\nargs = [\"/store\", \"--port\", \"{{port}}\", \"--data\", \"{{data_dir}}\"]\n"),
    )
    .unwrap();
    let out = Command::new(soak_bin())
        .args(["up", "--plain", "--reports"])
        .arg(dir.path().join("reports"))
        .arg("--config")
        .arg(dir.path().join("soak.toml"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("of an earlier soak run still run"), "{err}");
    assert!(
        err.contains(&id[..12]) && err.contains("an-earlier-run"),
        "{err}"
    );
    assert!(
        err.contains("rm -f $(") && err.contains("--filter label=soak.run"),
        "{err}"
    );
}
