//! The supervisor's promises, each proven with real processes.

use crate::common::*;
use std::time::Duration;

#[test]
fn crashing_service_is_restarted_with_delay_throttle_and_backoff_then_given_up() {
    let sb = Sandbox::new(
        r#"
[services.crasher]
command = ["sh", "-c", "sleep 0.2; exit 3"]
restart_delay = "100ms"
throttle = "500ms"
backoff = { factor = 2.0, max = "1s" }
start_limit = { burst = 5, interval = "60s" }
"#,
    );
    let run = sb.up(&["--for", "30s"]);
    let d = sb.wait_for("the start limit", Duration::from_secs(25), |d| {
        d.incarnations
            .iter()
            .any(|i| i.cause.as_deref() == Some("gave-up"))
    });
    drop(run);
    let inc = &d.incarnations;
    assert_eq!(inc.len(), 5, "{inc:#?}");
    assert!(inc.iter().all(|i| i.exit_code == Some(3)), "{inc:#?}");
    assert!(
        inc[..4]
            .iter()
            .all(|i| i.cause.as_deref() == Some("unplanned"))
    );
    assert_eq!(inc[4].cause.as_deref(), Some("gave-up"));
    // Backoff: 100, 200, 400, 800 ms after each death (capped at 1 s);
    // throttle: starts at least 500 ms apart.
    for (n, pair) in inc.windows(2).enumerate() {
        let gap = pair[1].started_at - pair[0].ended_at.unwrap();
        let want = 100i64 << n;
        assert!(
            gap >= want - 5,
            "restart {n}: {gap} ms after the death, backoff wants {want}"
        );
        let apart = pair[1].started_at - pair[0].started_at;
        assert!(
            apart >= 495,
            "restart {n}: starts only {apart} ms apart, throttle is 500 ms"
        );
    }
    assert!(events(&d, "gave-up").count() == 1);
}

#[test]
fn on_failure_leaves_a_clean_exit_alone_always_restarts_it_never_does_not() {
    let sb = Sandbox::new(
        r#"
[services.clean-on-failure]
command = ["sh", "-c", "sleep 0.1; exit 0"]
restart = "on-failure"
restart_delay = "0"

[services.clean-always]
command = ["sh", "-c", "sleep 0.1; exit 0"]
restart = "always"
restart_delay = "0"
start_limit = { burst = 3, interval = "60s" }

[services.crash-never]
command = ["sh", "-c", "sleep 0.1; exit 3"]
restart = "never"
"#,
    );
    let run = sb.up(&["--for", "30s"]);
    let d = sb.wait_for("clean-always to give up", Duration::from_secs(20), |d| {
        d.incarnations
            .iter()
            .any(|i| i.cause.as_deref() == Some("gave-up"))
            && d.events.iter().filter(|e| e.kind == "down").count() == 2
    });
    drop(run);
    let count = |s: &str| d.incarnations.iter().filter(|i| i.service == s).count();
    assert_eq!(count("clean-on-failure"), 1);
    assert_eq!(count("clean-always"), 3);
    assert_eq!(count("crash-never"), 1);
    let never = d
        .incarnations
        .iter()
        .find(|i| i.service == "crash-never")
        .unwrap();
    assert_eq!(
        (never.exit_code, never.cause.as_deref()),
        (Some(3), Some("unplanned"))
    );
}

#[test]
fn sigint_stops_everything_gracefully_prints_a_summary_and_exits_0() {
    let sb = Sandbox::new(
        r#"
[harness]
sample_every = "200ms"
[services.sleeper]
command = ["sh", "-c", "sleep 1000 & sleep 1000 & wait"]
stop = { signal = "TERM", grace = "5s" }
"#,
    );
    let run = sb.up(&[]);
    // The sampler counts the service's processes: sh and both sleeps.
    let d = sb.wait_for("sh and its two sleeps", Duration::from_secs(20), |d| {
        d.samples.iter().any(|s| s.processes >= 3)
    });
    let main = d.incarnations[0].pid.unwrap();
    let mut tree = descendants(run.pid());
    tree.push(main);
    assert!(
        tree.len() >= 4,
        "shim, sh and two sleeps expected: {tree:?}"
    );
    run.signal(libc::SIGINT);
    let (code, out, err) = run.finish(Duration::from_secs(15));
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("incarnations"), "no summary in:\n{out}");
    assert!(out.contains("sleeper"), "{out}");
    assert_eq!(wait_dead(&tree, Duration::from_secs(2)), Vec::<i32>::new());
    let d = sb.journal();
    assert_eq!(d.incarnations[0].cause.as_deref(), Some("stopped"));
    assert!(d.run.unwrap().ended_at.is_some());
}

#[test]
fn a_service_that_floods_stdout_stays_within_its_log_cap() {
    let sb = Sandbox::new(
        r#"
[services.flood]
command = ["sh", "-c", "yes 'a line of flood that never ends, as from a service out of fds'"]
logs = { max_size = "64KB", keep = 2 }
"#,
    );
    let run = sb.up(&["--for", "3s"]);
    let (code, out, _) = run.finish(Duration::from_secs(20));
    assert_eq!(code, Some(0), "{out}");
    let logs = sb.path().join("reports/latest/logs");
    let mut total = 0;
    for e in std::fs::read_dir(&logs).unwrap() {
        let len = e.unwrap().metadata().unwrap().len();
        assert!(
            len <= 64 * 1024,
            "a log file of {len} bytes exceeds the 64 KB cap"
        );
        total += len;
    }
    assert!(total <= 3 * 64 * 1024, "{total} bytes on disk");
    // It did flood: far more was written than kept.
    let d = sb.journal();
    let written = events(&d, "exited").next().unwrap().detail["log_bytes"]
        .as_u64()
        .unwrap();
    assert!(written > 10 * total, "only {written} bytes written");
}

fn gateway_config(extra: &str) -> String {
    format!(
        r#"
[services.gateway]
command = ["{}", "--port", "{{port}}", "--data", "{{data_dir}}", "--workers", "2"]
restart_delay = "0"
stop = {{ signal = "TERM", grace = "5s" }}
[services.gateway.health]
http = "http://127.0.0.1:{{port}}/health"
expect_body = "ok"
interval = "500ms"
timeout = "500ms"
failures = 3
start_grace = "10s"
{extra}
"#,
        fixture_bin("gateway").display()
    )
}

#[test]
fn a_sigstopped_service_is_found_hung_within_the_probe_budget_and_restarted() {
    let sb = Sandbox::new(&gateway_config(""));
    let run = sb.up(&["--for", "60s"]);
    let d = sb.wait_for("the gateway to be ready", Duration::from_secs(20), |d| {
        d.incarnations.first().is_some_and(|i| i.ready_at.is_some())
    });
    let pid = d.incarnations[0].pid.unwrap();
    let stopped_at = soak::clock::now_ms();
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let d = sb.wait_for("a restarted, ready gateway", Duration::from_secs(30), |d| {
        d.incarnations.get(1).is_some_and(|i| i.ready_at.is_some())
    });
    drop(run);
    let first = &d.incarnations[0];
    assert_eq!(first.cause.as_deref(), Some("hung"), "{first:?}");
    // interval x failures + timeout = 2 s; the slack is for a loaded CI machine.
    let detected = first.ended_at.unwrap() - stopped_at;
    assert!(
        detected < 2_000 + 3_000,
        "hang noticed only after {detected} ms"
    );
    assert!(events(&d, "hung").count() == 1);
}

#[test]
fn a_master_killed_with_9_loses_its_port_holding_workers_before_the_next_start() {
    let sb = Sandbox::new(&gateway_config("[harness]\nsample_every = \"200ms\"\n"));
    let run = {
        let mut c = sb.soak(&["up", "--plain", "--config", "soak.toml", "--for", "60s"]);
        c.env("GATEWAY_BUGS", "orphan-workers")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        Running {
            child: Some(c.spawn().unwrap()),
        }
    };
    // Ready, and sampled with its two workers: master and workers are three.
    let d = sb.wait_for(
        "the gateway ready with its workers",
        Duration::from_secs(20),
        |d| {
            d.incarnations.first().is_some_and(|i| {
                i.ready_at.is_some()
                    && d.samples
                        .iter()
                        .any(|s| s.incarnation == i.id && s.processes == 3)
            })
        },
    );
    let master = d.incarnations[0].pid.unwrap();
    let workers: Vec<i32> = descendants(master);
    assert_eq!(workers.len(), 2, "two workers expected under {master}");
    unsafe { libc::kill(master, libc::SIGKILL) };
    let d = sb.wait_for(
        "the next incarnation to be ready",
        Duration::from_secs(20),
        |d| d.incarnations.get(1).is_some_and(|i| i.ready_at.is_some()),
    );
    drop(run);
    assert_eq!(
        d.incarnations[0].orphans,
        Some(2),
        "{:?}",
        d.incarnations[0]
    );
    assert_eq!(
        wait_dead(&workers, Duration::from_secs(2)),
        Vec::<i32>::new()
    );
    let orphans = events(&d, "orphans").next().unwrap();
    let listed: Vec<i64> = orphans.detail["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["pid"].as_i64().unwrap())
        .collect();
    assert_eq!(listed.len(), 2);
    assert!(
        orphans.detail["orphans"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["holds_port"] == true)
    );
}

#[test]
fn sigkill_of_soak_leaves_no_process_alive_and_a_consistent_journal() {
    let sb = Sandbox::new(&gateway_config(&format!(
        r#"
[services.store]
command = ["{}", "--port", "{{port}}", "--data", "{{data_dir}}"]
[services.store.health]
http = "http://127.0.0.1:{{port}}/health"
interval = "500ms"
"#,
        fixture_bin("store").display()
    )));
    let run = sb.up(&[]);
    sb.wait_for(
        "both services' ready events",
        Duration::from_secs(20),
        |d| {
            d.incarnations.len() == 2
                && d.incarnations.iter().all(|i| i.ready_at.is_some())
                && events(d, "ready").count() == 2
        },
    );
    let tree = descendants(run.pid());
    // Two shims, their two standby shims, gateway, its two workers, store.
    assert!(tree.len() >= 6, "{tree:?}");
    run.signal(libc::SIGKILL);
    let (code, _, _) = run.finish(Duration::from_secs(5));
    assert_eq!(code, None, "killed by a signal");
    // The parent-death signal reaches every shim at once; the bound is for
    // a loaded machine.
    assert_eq!(
        wait_dead(&tree, Duration::from_secs(10)),
        Vec::<i32>::new(),
        "processes outlived a SIGKILLed soak"
    );
    let conn = rusqlite::Connection::open(sb.journal_path()).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let d = sb.journal();
    assert_eq!(d.incarnations.len(), 2);
    assert_eq!(
        events(&d, "ready").count(),
        2,
        "events up to the kill are kept"
    );
    assert!(
        d.run.unwrap().ended_at.is_none(),
        "the run never ended cleanly"
    );
}

/// Started the way a script backgrounds a long run (`nohup soak run &`),
/// soak inherits SIGHUP, SIGINT and SIGQUIT ignored. Its services must not:
/// they start with every signal at its default and none blocked (the shim
/// blocks some for itself), so a `stop = QUIT` service stops on SIGQUIT.
/// The masks are read by programs that do not reset them (a shell unblocks
/// signals itself and would hide a blocked mask).
#[test]
fn services_start_with_default_signals_even_when_soak_inherited_ignored_ones() {
    let sb = Sandbox::new(
        r#"
[services.sig]
command = ["grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"]
restart = "never"

[services.sleeper]
command = ["sleep", "1000"]
stop = { signal = "QUIT", grace = "10s" }
"#,
    );
    let mut cmd = sb.soak(&["up", "--plain", "--config", "soak.toml", "--for", "2s"]);
    // SAFETY: only signal(2), async-signal-safe, between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            for s in [libc::SIGHUP, libc::SIGINT, libc::SIGQUIT, libc::SIGUSR1] {
                libc::signal(s, libc::SIG_IGN);
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let log = std::fs::read_to_string(sb.path().join("reports/latest/logs/sig.log")).unwrap();
    let mask = |name: &str| {
        let line = log
            .lines()
            .find_map(|l| l.split_once(&format!("{name}:\t")).map(|x| x.1))
            .unwrap_or_else(|| panic!("no {name} in the log:\n{log}"));
        u64::from_str_radix(line.trim(), 16).unwrap()
    };
    assert_eq!(mask("SigBlk"), 0, "signals blocked in the service:\n{log}");
    for s in [
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGTERM,
        libc::SIGPIPE,
    ] {
        assert_eq!(
            mask("SigIgn") & (1 << (s - 1)),
            0,
            "signal {s} ignored in the service:\n{log}"
        );
    }
    // And `sleep` did stop on the SIGQUIT it was sent, not on a SIGKILL
    // after the grace.
    let d = sb.journal();
    let sleeper = d
        .incarnations
        .iter()
        .find(|i| i.service == "sleeper")
        .unwrap();
    assert_eq!(sleeper.signal.as_deref(), Some("QUIT"), "{stdout}");
    assert_eq!(sleeper.cause.as_deref(), Some("stopped"));
}

/// A service whose main thread has exited while another thread still runs
/// (pthread_exit in main): its leader is a zombie, which a walk of the
/// process tree skips, yet the process lives. Found hung, it must still be
/// killed, its exit status recorded, and nothing of it left after soak.
#[test]
fn a_service_whose_main_thread_exited_is_still_killed_when_hung() {
    let sb = Sandbox::new(
        r#"
[services.ghost]
command = ["python3", "-c", "import ctypes, threading, time; threading.Thread(target=time.sleep, args=(1000,)).start(); ctypes.CDLL(None).pthread_exit(None)"]
restart = "never"

[services.ghost.health]
exec = ["false"]
interval = "200ms"
timeout = "1s"
failures = 2
start_grace = "2s"
"#,
    );
    let run = sb.up(&["--for", "8s"]);
    let d = sb.wait_for("the service to start", Duration::from_secs(10), |d| {
        !d.incarnations.is_empty()
    });
    let pid = d.incarnations[0].pid.unwrap();
    let (code, out, err) = run.finish(Duration::from_secs(30));
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(
        wait_dead(&[pid], Duration::from_secs(2)),
        Vec::<i32>::new(),
        "the service outlived soak:\n{out}"
    );
    let d = sb.journal();
    let inc = &d.incarnations[0];
    assert_eq!(inc.cause.as_deref(), Some("hung"), "{inc:?}\n{out}");
    assert_eq!(inc.signal.as_deref(), Some("KILL"), "{inc:?}\n{out}");
}
