//! Metrics in and out, against real programs: a Python service instrumented
//! with the official `prometheus_client` library (scraped across a kill -9
//! and restart), endpoints that misbehave on purpose, soak's own /metrics
//! checked by promtool and scraped by a real Prometheus server.

#[path = "support/prometheus.rs"]
mod prometheus;

use prometheus::{Prometheus, have};
use soak::metrics::expose::{self, AssertionState, Exposition};
use soak::metrics::parse::parse;
use soak::metrics::{CounterPoint, Keep, ScrapeError, counter_increase, counter_rate, scrape};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A child process that is killed (by its pid) and reaped however the test
/// ends.
struct Process(Child);

impl Process {
    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A small service in Python instrumented with prometheus_client: GET /work
/// counts a job, GET /metrics answers in the format the Accept header asks
/// for (OpenMetrics for soak), as any exporter built on the library does.
const PY_SERVICE: &str = r#"
import sys
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import choose_encoder

reg = CollectorRegistry()
jobs = Counter("jobs", "Jobs done", ["kind"], registry=reg)
jobs.labels(kind="work")
in_flight = Gauge("http_requests_in_flight", "Requests being served", ["route"], registry=reg)
in_flight.labels(route="/work").set(1)
in_flight.labels(route="/").set(2)
depth = Gauge("queue_depth", "Items waiting", ["queue"], registry=reg)
for i in range(10):
    depth.labels(queue="q%d" % i).set(i)

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/work":
            jobs.labels(kind="work").inc()
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

fn start_python_service(script: &Path, port: u16) -> Process {
    Process(
        Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs"),
    )
}

/// Scrapes until the service answers, for at most 30 s.
async fn first_scrape(url: &str, keep: &Keep) -> soak::metrics::Scraped {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match scrape(url, keep, Duration::from_secs(2)).await {
            Ok(s) => return s,
            Err(e) if Instant::now() > deadline => panic!("service never answered: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn work(port: u16, times: usize) {
    let url = format!("http://127.0.0.1:{port}/work");
    for _ in 0..times {
        let r = soak::http::request("GET", &url, &[], None, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }
}

fn value(s: &soak::metrics::Scraped, series: &str) -> f64 {
    s.series
        .iter()
        .find(|(name, _)| name == series)
        .unwrap_or_else(|| panic!("{series} not kept; kept {:?}", s.series))
        .1
}

#[test]
fn a_python_prometheus_client_service_is_scraped_across_a_kill_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("service.py");
    std::fs::write(&script, PY_SERVICE).unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let keep = Keep::parse(
        &[
            "jobs_total",
            r#"http_requests_in_flight{route="/work"}"#,
            "queue_depth",
        ],
        3,
    )
    .unwrap();
    let jobs = r#"jobs_total{kind="work"}"#;
    runtime().block_on(async {
        let mut points = Vec::new();
        let mut service = start_python_service(&script, port);
        let first = first_scrape(&url, &keep).await;
        points.push(CounterPoint {
            ts: now_ms(),
            incarnation: 1,
            value: value(&first, jobs),
        });
        assert_eq!(value(&first, jobs), 0.0);
        assert_eq!(
            value(&first, r#"http_requests_in_flight{route="/work"}"#),
            1.0
        );
        assert!(
            !first.series.iter().any(|(n, _)| n.contains(r#"route="/""#)),
            "a label selector keeps only its series: {:?}",
            first.series
        );
        let depths = first
            .series
            .iter()
            .filter(|(n, _)| n.starts_with("queue_depth"))
            .count();
        assert_eq!(depths, 3, "the cap holds");
        assert_eq!(first.capped, vec!["queue_depth".to_string()]);
        assert!(first.missing.is_empty());

        work(port, 30).await;
        let s = scrape(&url, &keep, Duration::from_secs(5)).await.unwrap();
        points.push(CounterPoint {
            ts: now_ms(),
            incarnation: 1,
            value: value(&s, jobs),
        });
        assert_eq!(value(&s, jobs), 30.0);

        // kill -9 by pid, then a new incarnation on the same port.
        let old_pid = service.pid();
        service.kill();
        let err = scrape(&url, &keep, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(err, ScrapeError::Http { .. }), "{err}");
        let service = start_python_service(&script, port);
        assert_ne!(service.pid(), old_pid);
        first_scrape(&url, &keep).await;
        // The new process counts past the old value before soak looks again:
        // a reset only "value went down" would miss.
        work(port, 50).await;
        let s = scrape(&url, &keep, Duration::from_secs(5)).await.unwrap();
        points.push(CounterPoint {
            ts: now_ms(),
            incarnation: 2,
            value: value(&s, jobs),
        });
        assert_eq!(value(&s, jobs), 50.0);
        work(port, 20).await;
        let s = scrape(&url, &keep, Duration::from_secs(5)).await.unwrap();
        points.push(CounterPoint {
            ts: now_ms(),
            incarnation: 2,
            value: value(&s, jobs),
        });

        assert_eq!(counter_increase(&points), 100.0);
        let span = (points[3].ts - points[0].ts) as f64 / 1000.0;
        assert_eq!(counter_rate(&points), Some(100.0 / span));
        drop(service);
    });
}

#[test]
fn the_classic_text_format_of_prometheus_client_parses_too() {
    let out = Command::new("python3")
        .args([
            "-c",
            "from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest\n\
             r = CollectorRegistry()\n\
             Counter('errors', 'Errors', ['path'], registry=r).labels(path='a \"b\"\\\\c,}').inc(3)\n\
             Histogram('lat_seconds', 'Latency', registry=r).observe(0.2)\n\
             print(generate_latest(r).decode(), end='')",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let samples = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let errors = samples.iter().find(|s| s.name == "errors_total").unwrap();
    assert_eq!(errors.labels[0].1, r#"a "b"\c,}"#);
    assert_eq!(errors.value, 3.0);
    assert!(
        samples
            .iter()
            .any(|s| s.series() == r#"lat_seconds_bucket{le="+Inf"}"#)
    );
}

/// A one-connection-at-a-time server that answers every request the same
/// way, on a thread; `answer` gets the accepted socket.
fn bad_endpoint(answer: fn(std::net::TcpStream)) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer(stream));
        }
    });
    port
}

fn read_request(s: &mut std::net::TcpStream) {
    let mut buf = [0u8; 4096];
    let _ = s.read(&mut buf);
}

async fn scrape_bad(port: u16, timeout: Duration) -> (ScrapeError, Duration) {
    let keep = Keep::parse(&["x"], 10).unwrap();
    let started = Instant::now();
    let err = scrape(&format!("http://127.0.0.1:{port}/metrics"), &keep, timeout)
        .await
        .unwrap_err();
    (err, started.elapsed())
}

#[test]
fn bad_endpoints_give_typed_errors_within_the_timeout() {
    let timeout = Duration::from_secs(2);
    // Generous: the promise is "about the timeout", not a tight figure.
    let bound = timeout + Duration::from_secs(5);
    let garbage = bad_endpoint(|mut s| {
        read_request(&mut s);
        let body = "<html><body>502 Bad Gateway</body></html>\n";
        let _ = write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
    });
    let huge = bad_endpoint(|mut s| {
        read_request(&mut s);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n");
        let line = "valid_but_endless_series 1\n".repeat(1000);
        // 27 MB if anyone read it all; soak stops at its cap.
        for _ in 0..1000 {
            if s.write_all(line.as_bytes()).is_err() {
                return;
            }
        }
    });
    let hang = bad_endpoint(|mut s| {
        read_request(&mut s);
        std::thread::sleep(Duration::from_secs(30));
    });
    let error = bad_endpoint(|mut s| {
        read_request(&mut s);
        let _ = s.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n");
    });
    let refused = free_port();
    runtime().block_on(async {
        let (e, took) = scrape_bad(garbage, timeout).await;
        assert!(matches!(e, ScrapeError::Parse { .. }), "{e}");
        assert!(e.to_string().contains("line 1"), "{e}");
        assert!(took < bound);

        let (e, took) = scrape_bad(huge, timeout).await;
        assert!(matches!(e, ScrapeError::TooLarge { .. }), "{e}");
        assert!(took < bound);

        let (e, took) = scrape_bad(hang, timeout).await;
        assert!(matches!(e, ScrapeError::Timeout { .. }), "{e}");
        assert!(took >= timeout && took < bound, "took {took:?}");

        let (e, _) = scrape_bad(error, timeout).await;
        assert!(matches!(e, ScrapeError::Status { status: 500, .. }), "{e}");

        let (e, _) = scrape_bad(refused, timeout).await;
        assert!(matches!(e, ScrapeError::Http { .. }), "{e}");
    });
}

fn filled_exposition() -> Arc<Exposition> {
    let e = Arc::new(Exposition::new());
    e.service_started("api");
    e.sample("api", 40_000_000, 9, 3, 0.25);
    e.incarnation_ended("api", "unplanned");
    e.service_started("api");
    e.request("items", "ok", Duration::from_millis(4));
    e.request("items", "timeout", Duration::from_secs(2));
    e.fault_active("api", "kill", false);
    e.assertion("restart_budget", "api", AssertionState::Pass);
    e.soak_self(12_000_000, Duration::from_millis(1));
    e
}

/// Starts soak's /metrics server on an ephemeral loopback port.
async fn serve(e: Arc<Exposition>) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = expose::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (addr, tokio::spawn(expose::serve(listener, e)))
}

#[test]
fn soak_serves_its_figures_at_metrics_and_nothing_else() {
    let e = filled_exposition();
    runtime().block_on(async {
        let (addr, server) = serve(e.clone()).await;
        let get = |path: &str| {
            let url = format!("http://{addr}{path}");
            async move {
                soak::http::request("GET", &url, &[], None, Duration::from_secs(5))
                    .await
                    .unwrap()
            }
        };
        let r = get("/metrics").await;
        assert_eq!(r.status, 200);
        assert!(
            !r.body.contains("# EOF"),
            "no Accept: the classic text format"
        );
        let samples = parse(&r.body).unwrap_or_else(|err| panic!("{err}\n{}", r.body));
        let find = |series: &str| {
            samples
                .iter()
                .find(|s| s.series() == series)
                .map(|s| s.value)
        };
        assert_eq!(find(r#"soak_service_up{service="api"}"#), Some(1.0));
        assert_eq!(
            find(r#"soak_service_exits_total{cause="unplanned",service="api"}"#),
            Some(1.0)
        );
        assert_eq!(
            find(r#"soak_workload_requests_total{outcome="timeout",workload="items"}"#),
            Some(1.0)
        );
        // A figure updated while serving shows in the next scrape, and a
        // client asking for OpenMetrics gets it.
        e.fault_active("api", "kill", true);
        let accept = vec![(
            "Accept".to_string(),
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5".to_string(),
        )];
        let r = soak::http::request(
            "GET",
            &format!("http://{addr}/metrics?x=1"),
            &accept,
            None,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert!(r.body.ends_with("# EOF\n"), "{}", r.body);
        assert!(
            r.body
                .contains(r#"soak_fault_active{service="api",action="kill"} 1"#),
            "{}",
            r.body
        );
        assert_eq!(get("/").await.status, 404);
        let r = soak::http::request(
            "POST",
            &format!("http://{addr}/metrics"),
            &[],
            None,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 405);
        let long = vec![("X-Pad".to_string(), "a".repeat(10_000))];
        let r = soak::http::request(
            "GET",
            &format!("http://{addr}/metrics"),
            &long,
            None,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 431, "an oversized request is refused");
        // A client that connects and says nothing holds one slot, not the server.
        let _silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert_eq!(get("/metrics").await.status, 200);
        server.abort();
    });
}

#[test]
fn promtool_accepts_soaks_metric_names() {
    if !have("promtool", "the Debian package prometheus") {
        return;
    }
    let text = expose::classic_text(&filled_exposition().encode());
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{text}"
    );
}

#[test]
fn a_real_prometheus_server_scrapes_soaks_figures() {
    if !have("prometheus", "the Debian package prometheus") {
        return;
    }
    let e = filled_exposition();
    runtime().block_on(async {
        let (addr, server) = serve(e.clone()).await;
        let prometheus = Prometheus::start(&[addr]);
        prometheus.wait_for_scrapes().await;
        assert_eq!(prometheus.query_one(r#"up{job="soak"}"#).await, 1.0);
        assert_eq!(
            prometheus
                .query_one(r#"soak_service_exits_total{service="api",cause="unplanned"}"#)
                .await,
            1.0
        );
        assert_eq!(
            prometheus
                .query_one(r#"soak_service_up{service="api"}"#)
                .await,
            1.0
        );
        assert_eq!(
            prometheus
                .query_one(r#"soak_assertion_state{assertion="restart_budget",state="pass"}"#)
                .await,
            1.0
        );
        assert_eq!(
            prometheus
                .query_one(r#"soak_workload_request_duration_seconds_count{workload="items"}"#)
                .await,
            2.0
        );
        server.abort();
    });
}

fn docs() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

#[test]
fn the_fleet_dashboard_is_json_with_a_query_per_panel() {
    let text = std::fs::read_to_string(docs().join("soak-dashboard.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let panels = v["panels"].as_array().unwrap();
    assert!(!panels.is_empty());
    for p in panels {
        let expr = p["targets"][0]["expr"].as_str().unwrap_or("");
        assert!(
            expr.contains("soak_") || expr.contains("up{"),
            "{}: {expr}",
            p["title"]
        );
    }
}

#[test]
fn the_fleet_config_and_alert_rules_pass_promtool_and_their_unit_tests() {
    if !have("promtool", "the Debian package prometheus") {
        return;
    }
    for args in [
        ["check", "config", "soak-prometheus.yml"],
        ["test", "rules", "soak-alerts.test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(docs())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
