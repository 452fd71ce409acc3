//! Metrics wired into runs, end to end through the `soak` binary: a real
//! Prometheus server scrapes `soak chaos --metrics` and sees the restart it
//! caused; services whose `/metrics` misbehave cost journaled errors, never
//! a late sample or a panic; a Python `prometheus_client` service is
//! scraped across a kill -9 (rows for both incarnations); the fixture
//! gateway's leaking queue fails `metric_slope_max` and its draining queue
//! passes it.

#[path = "support/prometheus.rs"]
mod prometheus;
mod support;

use prometheus::{Prometheus, have};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A run directory written into `dir`: the journal of the last run.
fn journal_of(dir: &Path) -> soak::journal::RunData {
    let latest = dir.join("reports").join("latest").join("journal.sqlite");
    soak::journal::read(&latest).unwrap_or_else(|e| panic!("{}: {e}", latest.display()))
}

/// Runs `soak chaos SCENARIO` to its end, under a generous deadline.
fn soak_chaos(scenario: &Path, extra: &[&str]) -> Output {
    let child = Command::new(support::soak_bin())
        .arg("--plain")
        .arg("chaos")
        .arg(scenario)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("soak runs");
    wait_with_deadline(child, Duration::from_secs(180))
}

fn wait_with_deadline(child: Child, deadline: Duration) -> Output {
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(deadline) {
        Ok(out) => out.expect("soak's output"),
        Err(_) => {
            // SAFETY: kill on the pid of our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("soak did not finish within {deadline:?}");
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn events<'a>(
    data: &'a soak::journal::RunData,
    kind: &'a str,
) -> impl Iterator<Item = &'a soak::journal::EventRow> + 'a {
    data.events.iter().filter(move |e| e.kind == kind)
}

/// A temp dir with the fixture config (this build's binaries) as soak.toml.
fn fixture_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let config = support::fixture_config().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("soak.toml"), config).unwrap();
    dir
}

#[test]
fn prometheus_scrapes_soak_chaos_and_reads_the_restart_it_caused() {
    if !have("prometheus", "the Debian package prometheus") {
        return;
    }
    let dir = fixture_dir();
    // kill-gateway, long enough for Prometheus to scrape after the restart:
    // it scrapes every second and starts in a few, the kill comes at 3 s.
    let scenario = dir.path().join("kill-gateway.toml");
    std::fs::write(
        &scenario,
        "description = \"kill -9 the gateway, watched by Prometheus\"\n\
         config = \"soak.toml\"\nservices = [\"gateway\"]\nworkloads = [\"work\"]\nduration = \"25s\"\n\
         [[steps]]\nat = \"3s\"\naction = \"kill\"\ntarget = \"gateway\"\nsignal = \"KILL\"\n\
         [expect]\nhealthy_within = \"15s\"\nrestarts = { max = 1 }\n",
    )
    .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let soak = Command::new(support::soak_bin())
        .arg("--plain")
        .arg("chaos")
        .arg(&scenario)
        .arg("--metrics")
        .arg(addr.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("soak runs");
    let prometheus = Prometheus::start(&[addr]);
    let seen = runtime().block_on(async {
        let deadline = Instant::now() + Duration::from_secs(35);
        loop {
            if let Some(series) = prometheus.query("soak_restarts_total").await
                && !series.is_empty()
            {
                return Some(series);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    // The live page, as curl or promtool gets it, passes promtool's lint.
    let page = runtime().block_on(soak::http::request(
        "GET",
        &format!("http://{addr}/metrics"),
        &[],
        None,
        Duration::from_secs(5),
    ));
    let out = wait_with_deadline(soak, Duration::from_secs(120));
    let page = page.unwrap_or_else(|e| panic!("soak's /metrics: {e}\n{}", text(&out)));
    assert!(page.body.contains("soak_restarts_total"), "{}", page.body);
    if have("promtool", "the Debian package prometheus") {
        let mut lint = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool runs");
        std::io::Write::write_all(lint.stdin.as_mut().unwrap(), page.body.as_bytes()).unwrap();
        drop(lint.stdin.take());
        let said = lint.wait_with_output().unwrap();
        assert!(
            said.status.success(),
            "promtool: {}{}\n{}",
            String::from_utf8_lossy(&said.stdout),
            String::from_utf8_lossy(&said.stderr),
            page.body
        );
    }
    let series = seen.unwrap_or_else(|| {
        panic!(
            "Prometheus never saw soak_restarts_total; its log:\n{}\nsoak:\n{}",
            std::fs::read_to_string(&prometheus.log).unwrap_or_default(),
            text(&out)
        )
    });
    assert_eq!(series.len(), 1, "{series:?}");
    let (labels, value) = &series[0];
    assert_eq!(labels["service"], "gateway", "{labels}");
    assert_eq!(labels["cause"], "planned", "{labels}");
    assert_eq!(labels["job"], "soak", "{labels}");
    assert_eq!(*value, 1.0);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // The verdicts, set when the run was judged, reached Prometheus before
    // soak closed its page: it waits for one more scrape.
    let passed = runtime()
        .block_on(prometheus.query(
            r#"last_over_time(soak_assertion_state{assertion="healthy_within",state="pass"}[5m])"#,
        ))
        .unwrap_or_default();
    assert_eq!(passed.len(), 1, "{passed:?}\n{}", text(&out));
    assert_eq!(passed[0].1, 1.0, "{passed:?}");
    assert_eq!(passed[0].0["service"], "gateway", "{passed:?}");
}

#[test]
fn a_busy_metrics_address_is_a_usage_error_naming_it() {
    let dir = fixture_dir();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let scenario = dir.path().join("short.toml");
    std::fs::write(
        &scenario,
        "config = \"soak.toml\"\nservices = [\"gateway\"]\nduration = \"1s\"\n",
    )
    .unwrap();
    let out = soak_chaos(&scenario, &["--metrics", &addr]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&addr),
        "{}",
        text(&out)
    );
    // Nothing was started: the address is checked first.
    assert!(!dir.path().join("reports").exists(), "{}", text(&out));
}

/// An HTTP server whose /metrics misbehaves in one way: `garbage` (an HTML
/// page with status 200), `huge` (2 MiB of valid-looking lines), `hang`
/// (accepts, never answers). Health is its TCP port.
const BAD_METRICS: &str = r#"
import sys, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

mode = sys.argv[2]

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if mode == "hang":
            time.sleep(3600)
            return
        if mode == "garbage":
            body = b"<html><body>metrics are <b>elsewhere</b></body></html>\n"
        else:
            body = b"".join(b"x_%d 1\n" % i for i in range(200000))
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

class Server(ThreadingHTTPServer):
    daemon_threads = True

Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"#;

#[test]
fn misbehaving_metrics_endpoints_are_journaled_and_sampling_keeps_its_cadence() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("bad_metrics.py");
    std::fs::write(&script, BAD_METRICS).unwrap();
    let mut config = String::from("[harness]\nreports = \"reports\"\nsample_every = \"1s\"\n");
    for mode in ["garbage", "huge", "hang"] {
        config.push_str(&format!(
            "[services.{mode}]\ncommand = [\"python3\", \"{}\", \"{{port}}\", \"{mode}\"]\n\
             [services.{mode}.health]\ntcp = \"127.0.0.1:{{port}}\"\nstart_grace = \"20s\"\n\
             [services.{mode}.metrics]\nurl = \"http://127.0.0.1:{{port}}/metrics\"\nkeep = [\"x_1\"]\ntimeout = \"30s\"\n",
            script.display()
        ));
    }
    std::fs::write(dir.path().join("soak.toml"), config).unwrap();
    let scenario = dir.path().join("bad.toml");
    std::fs::write(
        &scenario,
        "config = \"soak.toml\"\nduration = \"10s\"\n[expect]\nrestarts = { max = 0 }\n",
    )
    .unwrap();
    let out = soak_chaos(&scenario, &[]);
    let all = text(&out);
    assert!(!all.contains("panicked"), "{all}");
    assert_eq!(out.status.code(), Some(0), "{all}");
    let data = journal_of(dir.path());
    assert!(data.metrics.is_empty(), "{:?}", &data.metrics[..1]);
    for (mode, says) in [
        ("garbage", "not a Prometheus or OpenMetrics exposition"),
        ("huge", "1048576 bytes"),
        ("hang", "timed out after 1000 ms"),
    ] {
        let failed: Vec<_> = events(&data, "metrics-scrape-failed")
            .filter(|e| e.service.as_deref() == Some(mode))
            .collect();
        // Journaled when scraping starts failing, not at every tick.
        assert_eq!(failed.len(), 1, "{mode}: {failed:?}");
        let error = failed[0].detail["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{mode}: {error}");
        // RSS sampled on its 1 s cadence throughout: the longest gap
        // between samples stays far below the scrape timeout (30 s) and
        // the run's length.
        let inc: Vec<i64> = data
            .incarnations
            .iter()
            .filter(|i| i.service == mode)
            .map(|i| i.id)
            .collect();
        assert_eq!(inc.len(), 1, "{mode}");
        let ts: Vec<i64> = data
            .samples
            .iter()
            .filter(|s| s.incarnation == inc[0])
            .map(|s| s.ts)
            .collect();
        assert!(ts.len() >= 8, "{mode}: {} samples", ts.len());
        let gap = ts.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
        assert!(gap < 4_000, "{mode}: a {gap} ms gap between samples");
    }
}

/// A service instrumented with the official Python `prometheus_client`:
/// GET /work counts a job, /metrics answers as the library's exporters do.
const PY_SERVICE: &str = r#"
import sys
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import choose_encoder

reg = CollectorRegistry()
jobs = Counter("jobs", "Jobs done", registry=reg)
depth = Gauge("queue_depth", "Items waiting", ["queue"], registry=reg)
depth.labels(queue="mail").set(3)

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/work":
            jobs.inc()
            body, ctype = b"done\n", "text/plain"
        elif self.path == "/metrics":
            encoder, ctype = choose_encoder(self.headers.get("Accept"))
            body = encoder(reg)
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"#;

#[test]
fn a_python_prometheus_client_service_is_scraped_by_soak_across_a_kill() {
    let ok = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "python3 prometheus_client is missing under CI (scripts/test installs it)"
        );
        eprintln!("python3 prometheus_client not installed; skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("service.py");
    std::fs::write(&script, PY_SERVICE).unwrap();
    std::fs::write(
        dir.path().join("soak.toml"),
        format!(
            "[harness]\nreports = \"reports\"\nsample_every = \"1s\"\n\
             [services.py]\ncommand = [\"python3\", \"{}\", \"{{port}}\"]\nrestart = \"on-failure\"\nrestart_delay = \"100ms\"\n\
             [services.py.health]\nhttp = \"http://127.0.0.1:{{port}}/metrics\"\nstart_grace = \"20s\"\n\
             [services.py.metrics]\nurl = \"http://127.0.0.1:{{port}}/metrics\"\nkeep = [\"jobs_total\", 'queue_depth{{queue=\"mail\"}}']\n\
             [workloads.work]\nservice = \"py\"\nread = {{ url = \"http://127.0.0.1:{{port}}/work\", expect_body = \"done\" }}\nrate = \"10/s\"\n",
            script.display()
        ),
    )
    .unwrap();
    let scenario = dir.path().join("kill.toml");
    std::fs::write(
        &scenario,
        "config = \"soak.toml\"\nservices = [\"py\"]\nworkloads = [\"work\"]\nduration = \"12s\"\n\
         [[steps]]\nat = \"5s\"\naction = \"kill\"\ntarget = \"py\"\nsignal = \"KILL\"\n\
         [expect]\nhealthy_within = \"15s\"\n",
    )
    .unwrap();
    let out = soak_chaos(&scenario, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let data = journal_of(dir.path());
    let incs: Vec<i64> = data.incarnations.iter().map(|i| i.id).collect();
    assert_eq!(incs.len(), 2, "{:?}", data.incarnations);
    for inc in &incs {
        let rows: Vec<_> = data
            .metrics
            .iter()
            .filter(|m| m.incarnation == *inc)
            .collect();
        let jobs: Vec<f64> = rows
            .iter()
            .filter(|m| m.name == "jobs_total")
            .map(|m| m.value)
            .collect();
        assert!(jobs.len() >= 2, "incarnation {inc}: {rows:?}");
        // A counter that counts up within its incarnation.
        assert!(jobs.windows(2).all(|w| w[1] >= w[0]), "{jobs:?}");
        assert!(
            rows.iter()
                .any(|m| m.name == r#"queue_depth{queue="mail"}"# && m.value == 3.0),
            "incarnation {inc}: {rows:?}"
        );
    }
    // The counter restarted with its process; the per-incarnation rows
    // let the rate helpers see that, whatever the values.
    let points: Vec<soak::metrics::CounterPoint> = data
        .metrics
        .iter()
        .filter(|m| m.name == "jobs_total")
        .map(|m| soak::metrics::CounterPoint {
            ts: m.ts,
            incarnation: m.incarnation,
            value: m.value,
        })
        .collect();
    assert!(soak::metrics::counter_increase(&points) > 0.0);
    assert!(events(&data, "metrics-missing").next().is_none());
}

/// `metric_slope_max` on the fixture gateway's queue, both ways: with the
/// `queue-leak` switch the queue only grows under load and the verdict
/// fails naming the series; without it the queue drains and it passes.
/// Sampled every 500 ms, so a 24 s run gives the trend its 20 points well
/// past `min_span` even when a loaded machine slows the sampler twofold:
/// the leak grows at the work rate (5/s, 18 000/h, against 1000/h) and the
/// drained queue sits at 0 or 1, both plain within seconds.
fn queue_slope_run(bugs: &str) -> (Output, serde_json::Value) {
    let dir = fixture_dir();
    let config = std::fs::read_to_string(dir.path().join("soak.toml")).unwrap();
    let mut config = config.replace("sample_every = \"1s\"", "sample_every = \"500ms\"");
    assert!(config.contains("sample_every = \"500ms\""), "{config}");
    config.push_str(
        "\n[services.gateway.metrics]\nurl = \"http://127.0.0.1:{port}/metrics\"\nkeep = [\"gateway_queue_depth\"]\n",
    );
    std::fs::write(dir.path().join("soak.toml"), config).unwrap();
    let scenario = dir.path().join("queue.toml");
    std::fs::write(
        &scenario,
        "config = \"soak.toml\"\nservices = [\"gateway\"]\nworkloads = [\"work\"]\nduration = \"24s\"\n\
         [expect]\nmetric_slope_max = { gateway_queue_depth = \"1000/h\" }\nwarmup = \"3s\"\nmin_span = \"12s\"\n",
    )
    .unwrap();
    let child = Command::new(support::soak_bin())
        .arg("--plain")
        .arg("chaos")
        .arg(&scenario)
        .env("GATEWAY_BUGS", bugs)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("soak runs");
    let out = wait_with_deadline(child, Duration::from_secs(180));
    let report = std::fs::read_to_string(dir.path().join("reports/latest/report.json"))
        .unwrap_or_else(|e| panic!("report.json: {e}\n{}", text(&out)));
    (out, serde_json::from_str(&report).unwrap())
}

fn slope_assertion(report: &serde_json::Value) -> serde_json::Value {
    report["assertions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| {
            a["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("metric_slope_max"))
        })
        .cloned()
        .unwrap_or_else(|| panic!("no metric_slope_max assertion in {report}"))
}

#[test]
fn a_leaking_queue_fails_metric_slope_max_and_a_draining_one_passes() {
    // Two runs, each with its own directory and ports: side by side.
    let (leaking, draining) = std::thread::scope(|s| {
        let leaking = s.spawn(|| queue_slope_run("queue-leak"));
        let draining = s.spawn(|| queue_slope_run(""));
        (leaking.join().unwrap(), draining.join().unwrap())
    });
    let (out, report) = leaking;
    let a = slope_assertion(&report);
    assert_eq!(a["verdict"], "fail", "{a}\n{}", text(&out));
    assert!(
        a["reason"]
            .as_str()
            .is_some_and(|r| r.contains("gateway_queue_depth")),
        "{a}"
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    let (out, report) = draining;
    let a = slope_assertion(&report);
    assert_eq!(a["verdict"], "pass", "{a}\n{}", text(&out));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
