//! What 72 hours does to soak itself, compressed by rate into 40 s:
//! hundreds of restarts, well over a hundred faults injected and rolled
//! back, thousands of acknowledged writes, a partial report every few
//! seconds. A 72-hour soak with a fault an hour injects 72; a service in a
//! crash loop restarts thousands of times. soak's own fds must stay flat and
//! its memory bounded through all of it, every fault must be undone, every
//! incarnation journaled with how it ended, and nothing may outlive it.
//!
//! The services are not ours: redis-server from Debian (its append-only
//! file, fsynced before each reply, a fault every 300 ms from four chaos scenarios written here) and a
//! `sh` that exits 3 after 50 ms, restarted at once, for ever. Both ways in
//! one run: the crash loop fails `restart_budget` naming its count and
//! cause; redis, whose restarts were all soak's doing, passes it, and every
//! write it acknowledged reads back.

mod support;

use std::time::{Duration, Instant};
use support::run::{Chaos, program, qp, redis_cli};

fn sandbox() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let cli = redis_cli();
    std::fs::write(
        dir.path().join("soak.toml"),
        format!(
            r#"[harness]
reports = "reports"
sample_every = "1s"

[services.redis]
command = [{server}, "--port", "{{port}}", "--bind", "127.0.0.1", "--dir", "{{data_dir}}", "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no"]
port = "auto"
data_dir = "auto"
restart = "on-failure"
restart_delay = "50ms"
# soak's own kills and stops restart it several times a second here:
# systemd's default limit would give up, as it should on a real host.
start_limit = {{ burst = 100000, interval = "10s" }}
stop = {{ signal = "TERM", grace = "10s" }}

[services.redis.health]
exec = [{cli}, "-p", "{{port}}", "PING"]
expect_body = "PONG"
interval = "500ms"
timeout = "1s"
failures = 3
start_grace = "10s"

[services.crasher]
command = ["/bin/sh", "-c", "sleep 0.05; exit 3"]
restart = "always"
restart_delay = "0s"
throttle = "0s"
start_limit = {{ burst = 1000000, interval = "1s" }}

[workloads.cache]
service = "redis"
write = {{ exec = [{cli}, "-p", "{{port}}", "SET", "{{key}}", "{{value}}"], expect_body = "OK" }}
read = {{ exec = [{cli}, "-p", "{{port}}", "GET", "{{key}}"], expect_body = "{{value}}" }}
rate = "20/s"
"#,
            server = qp(&program("redis-server", "redis-server")),
        ),
    )
    .unwrap();
    let picks = [
        ("kill-redis", "action = \"kill\"\nsignal = \"KILL\"\n"),
        (
            "hang-redis",
            "action = \"hang\"\nscope = \"main\"\nfor = \"300ms\"\n",
        ),
        (
            "fds-redis",
            "action = \"fd-exhaustion\"\nheadroom = 2\nfor = \"400ms\"\n",
        ),
        ("stop-redis", "action = \"stop\"\n"),
    ];
    for (name, step) in picks {
        std::fs::write(
            dir.path().join(format!("{name}.toml")),
            format!(
                "config = \"soak.toml\"\nservices = [\"redis\"]\nduration = \"5s\"\n\n[[steps]]\nat = \"0s\"\ntarget = \"redis\"\n{step}"
            ),
        )
        .unwrap();
    }
    dir
}

const SCENARIO: &str = r#"services = ["redis", "crasher"]
workloads = ["cache"]
duration = "40s"

[schedule]
every = "300ms"
pick = ["kill-redis", "hang-redis", "fds-redis", "stop-redis"]
seed = 7

[expect]
writes_survive = "cache"
no_orphans = true
restart_budget = { max = 100, window = "1m" }
"#;

/// The number of open fds of `pid`, or None once it is gone.
fn fd_count(pid: i32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

#[test]
fn a_minute_of_what_72_hours_does_leaves_soak_flat_and_nothing_behind() {
    let sb = sandbox();
    let mut soak = Chaos::start_with(
        sb.path(),
        SCENARIO,
        &[
            "run",
            "scenario.toml",
            "--seconds",
            "40",
            "--report-every",
            "5s",
            "--plain",
        ],
    );
    // soak's own open fds, from outside, twice a second.
    let t0 = Instant::now();
    let mut fds: Vec<(f64, usize)> = Vec::new();
    while soak.running() {
        if let Some(n) = soak.pid().and_then(fd_count) {
            fds.push((t0.elapsed().as_secs_f64(), n));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let run = soak.finish();
    assert_eq!(run.code, Some(1), "{}", run.output);

    // Both ways in one run: the crash loop fails its budget, naming why;
    // redis, restarted only by soak's faults, passes it.
    let crasher = run.report["assertions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "restart_budget" && a["service"] == "crasher")
        .expect("restart_budget for the crash loop");
    assert_eq!(crasher["verdict"], "fail", "{crasher}");
    let reason = crasher["reason"].as_str().unwrap();
    assert!(
        reason.contains("unplanned restarts within 1 min"),
        "{reason}"
    );
    assert!(reason.contains("unplanned"), "{reason}");
    let redis = run.report["assertions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "restart_budget" && a["service"] == "redis")
        .expect("restart_budget for redis");
    assert_eq!(redis["verdict"], "pass", "{redis}");
    let acked = run.report["workloads"]["cache"]["acknowledged_writes"]
        .as_u64()
        .unwrap();
    assert!(acked >= 200, "{}", run.report["workloads"]);
    run.says(
        "writes_survive",
        "pass",
        &[&format!(
            "all {acked} acknowledged writes of cache readable"
        )],
    );

    // Hundreds of incarnations, each journaled with how it ended.
    let crashes: Vec<_> = run
        .journal
        .incarnations
        .iter()
        .filter(|i| i.service == "crasher")
        .collect();
    assert!(crashes.len() >= 150, "only {} restarts", crashes.len());
    let unended = crashes.iter().filter(|i| i.cause.is_none()).count();
    assert_eq!(unended, 0, "every incarnation's end is journaled");

    // Scores of faults, each undone.
    let injected = run.events("fault-injected");
    let held: Vec<_> = injected
        .iter()
        .filter(|e| matches!(e.detail["action"].as_str(), Some("hang" | "fd-exhaustion")))
        .collect();
    assert!(
        injected.len() >= 40,
        "only {} faults landed",
        injected.len()
    );
    assert!(held.len() >= 10, "only {} held faults", held.len());
    let rolled_back = run.events("fault-rolled-back");
    for f in &held {
        let step = &f.detail["step"];
        assert!(
            rolled_back.iter().any(|r| &r.detail["step"] == step),
            "fault {} was never rolled back",
            f.detail
        );
    }
    assert!(run.events("inject-failed").is_empty(), "{}", run.output);

    // The partial report ran again and again beside it, and never failed.
    assert!(run.events("verdicts-so-far").len() >= 4, "{}", run.output);
    assert!(run.events("report-failed").is_empty(), "{}", run.output);

    // soak's own fds stay flat: late in the soak no more than 16 above what
    // it held once everything was up. A leak of one per restart or per
    // fault would be hundreds. (The read-back after the soak holds a pipe
    // per read in flight, a bounded number, so it is left out.)
    let most = |from: f64, to: f64| {
        fds.iter()
            .filter(|(t, _)| (from..to).contains(t))
            .map(|(_, n)| *n)
            .max()
            .expect("fds sampled")
    };
    let (early, late) = (most(8.0, 14.0), most(30.0, 38.0));
    assert!(
        late <= early + 16,
        "soak's fds grew from {early} to {late}: {fds:?}"
    );

    // Its memory stays bounded: its last RSS sample within 8 MiB of the
    // one a few seconds in (the journal has both).
    let rss: Vec<i64> = run
        .journal
        .host_samples
        .iter()
        .map(|h| h.soak_rss_bytes)
        .collect();
    assert!(rss.len() >= 20, "{} host samples", rss.len());
    let (first, last) = (rss[5], *rss.last().unwrap());
    assert!(
        last <= first + 8 * 1024 * 1024,
        "soak's RSS grew from {first} to {last}: {rss:?}"
    );
    // Shown with --no-capture: the figures the README quotes.
    eprintln!(
        "{} crash-loop restarts, {} faults injected, {acked} writes read back; \
         soak's fds at most {early} early and {late} late; its RSS {first} B \
         at 5 s, {last} B at the end",
        crashes.len(),
        injected.len()
    );
    // A crash loop's processes live shorter than a poll of soak's tree, so
    // not all are seen: each one's end is in the journal (above), and
    // every process that was seen is gone.
    let unended = run
        .journal
        .incarnations
        .iter()
        .filter(|i| i.ended_at.is_none())
        .count();
    assert_eq!(unended, 0, "an incarnation without an end");
    run.assert_tree_gone();
}
