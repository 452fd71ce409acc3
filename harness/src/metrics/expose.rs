//! soak's own figures at `/metrics`, for a Prometheus server: what runs,
//! how often it died and why, what it costs, how the workloads fare, what
//! is broken on purpose right now, and what each assertion says so far.
//!
//! Label sets are typed structs whose values come from the config (service,
//! workload, assertion names) or from small fixed sets (cause, outcome,
//! action, state), so cardinality is bounded by the config: never a pid, a
//! request key or a run id.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type GaugeF = Gauge<f64, AtomicU64>;
type CounterF = Counter<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabel {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExitLabels {
    service: String,
    cause: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkloadLabel {
    workload: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    workload: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FaultLabels {
    service: String,
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AssertionLabels {
    assertion: String,
    service: String,
    state: String,
}

/// An assertion's verdict so far, as exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionState {
    Pass,
    Fail,
    Unknown,
}

impl AssertionState {
    const ALL: [AssertionState; 3] = [
        AssertionState::Pass,
        AssertionState::Fail,
        AssertionState::Unknown,
    ];

    fn as_str(self) -> &'static str {
        match self {
            AssertionState::Pass => "pass",
            AssertionState::Fail => "fail",
            AssertionState::Unknown => "unknown",
        }
    }
}

/// Latency buckets: 1 ms to about 16 s, doubling; covers a loopback hit and
/// a request that rode out a fault.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// soak's figures, registered once; every update is a typed method, safe to
/// call from any task (the families are internally locked).
pub struct Exposition {
    registry: Registry,
    up: Family<ServiceLabel, Gauge>,
    incarnation: Family<ServiceLabel, Gauge>,
    starts: Family<ServiceLabel, Counter>,
    exits: Family<ExitLabels, Counter>,
    restarts: Family<ExitLabels, Counter>,
    /// Cause of each service's last incarnation end, for the restart that
    /// follows it.
    last_exit: Mutex<HashMap<String, String>>,
    rss: Family<ServiceLabel, Gauge>,
    fds: Family<ServiceLabel, Gauge>,
    threads: Family<ServiceLabel, Gauge>,
    cpu: Family<ServiceLabel, CounterF>,
    /// Last cumulative CPU seen per service: the sampler reports CPU time of
    /// the live incarnation, the exposed counter must never go down.
    cpu_last: Mutex<HashMap<String, f64>>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<WorkloadLabel, Histogram, fn() -> Histogram>,
    faults: Family<FaultLabels, Gauge>,
    assertions: Family<AssertionLabels, Gauge>,
    self_rss: Gauge,
    self_lag: GaugeF,
    /// Pages served, so soak can wait for a scraper to read its verdicts.
    scrapes: tokio::sync::watch::Sender<u64>,
}

impl Default for Exposition {
    fn default() -> Self {
        Self::new()
    }
}

impl Exposition {
    pub fn new() -> Exposition {
        let mut r = Registry::with_prefix("soak");
        let up = Family::default();
        r.register(
            "service_up",
            "1 while the service's current incarnation is running, else 0",
            up.clone(),
        );
        let incarnation = Family::default();
        r.register(
            "service_incarnation",
            "How many incarnations of the service soak has started in this run",
            incarnation.clone(),
        );
        let starts = Family::default();
        r.register(
            "service_starts",
            "Incarnations of the service soak started",
            starts.clone(),
        );
        let exits = Family::default();
        r.register(
            "service_exits",
            "Incarnations that ended, by cause (planned, unplanned, hung, gave-up, stopped, oom-killed)",
            exits.clone(),
        );
        let restarts = Family::default();
        r.register(
            "restarts",
            "Incarnations started after one ended, by the cause of that end (planned, unplanned, hung, ...)",
            restarts.clone(),
        );
        let rss = Family::default();
        r.register_with_unit(
            "service_resident_memory",
            "Resident memory of the service's process tree",
            Unit::Bytes,
            rss.clone(),
        );
        let fds = Family::default();
        r.register(
            "service_open_fds",
            "Open file descriptors of the service's process tree",
            fds.clone(),
        );
        let threads = Family::default();
        r.register(
            "service_threads",
            "Threads of the service's process tree",
            threads.clone(),
        );
        let cpu = Family::default();
        r.register_with_unit(
            "service_cpu",
            "CPU time (user + system) of the service's process trees, all incarnations",
            Unit::Seconds,
            cpu.clone(),
        );
        let requests = Family::default();
        r.register(
            "workload_requests",
            "Requests a workload sent, by outcome",
            requests.clone(),
        );
        let latency = Family::<WorkloadLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        r.register_with_unit(
            "workload_request_duration",
            "Latency of workload requests, from the intended send time",
            Unit::Seconds,
            latency.clone(),
        );
        let faults = Family::default();
        r.register(
            "fault_active",
            "1 while soak injects this fault into the service, else 0",
            faults.clone(),
        );
        let assertions = Family::default();
        r.register(
            "assertion_state",
            "1 for the current state (pass, fail, unknown) of each assertion, 0 for the others",
            assertions.clone(),
        );
        let self_rss = Gauge::default();
        r.register_with_unit(
            "resident_memory",
            "Resident memory of soak itself",
            Unit::Bytes,
            self_rss.clone(),
        );
        let self_lag = GaugeF::default();
        r.register_with_unit(
            "runtime_lag",
            "How late soak's last timer tick fired: a busy or starved soak shows here first",
            Unit::Seconds,
            self_lag.clone(),
        );
        Exposition {
            registry: r,
            up,
            incarnation,
            starts,
            exits,
            restarts,
            last_exit: Mutex::new(HashMap::new()),
            rss,
            fds,
            threads,
            cpu,
            cpu_last: Mutex::new(HashMap::new()),
            requests,
            latency,
            faults,
            assertions,
            self_rss,
            self_lag,
            scrapes: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Counts the pages served at `/metrics`: watch it to know that a
    /// scraper read what was set before.
    pub fn scrapes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.scrapes.subscribe()
    }

    fn svc(service: &str) -> ServiceLabel {
        ServiceLabel {
            service: service.into(),
        }
    }

    /// A new incarnation of `service` is running; after an ended one, that
    /// is a restart, counted by the cause of the end.
    pub fn service_started(&self, service: &str) {
        let l = Self::svc(service);
        self.up.get_or_create(&l).set(1);
        self.starts.get_or_create(&l).inc();
        self.incarnation.get_or_create(&l).inc();
        // A new process tree: its CPU time counts from zero.
        self.cpu_last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(service.to_string(), 0.0);
        let before = self
            .last_exit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(service);
        if let Some(cause) = before {
            self.restarts
                .get_or_create(&ExitLabels {
                    service: service.into(),
                    cause,
                })
                .inc();
        }
    }

    /// The current incarnation of `service` ended; `cause` is the journal's
    /// incarnation cause.
    pub fn incarnation_ended(&self, service: &str, cause: &str) {
        self.last_exit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(service.into(), cause.into());
        self.up.get_or_create(&Self::svc(service)).set(0);
        self.exits
            .get_or_create(&ExitLabels {
                service: service.into(),
                cause: cause.into(),
            })
            .inc();
    }

    /// One sampler tick for `service`: tree-wide RSS, fds, threads, and the
    /// live incarnation's cumulative CPU seconds.
    pub fn sample(&self, service: &str, rss_bytes: u64, fds: u32, threads: u32, cpu_seconds: f64) {
        let l = Self::svc(service);
        self.rss
            .get_or_create(&l)
            .set(i64::try_from(rss_bytes).unwrap_or(i64::MAX));
        self.fds.get_or_create(&l).set(i64::from(fds));
        self.threads.get_or_create(&l).set(i64::from(threads));
        let mut last = self.cpu_last.lock().unwrap_or_else(|e| e.into_inner());
        let before = last.insert(service.to_string(), cpu_seconds).unwrap_or(0.0);
        // Lower than before within one incarnation: a process of the tree
        // (a recycled worker) ended and took its CPU time with it. That is
        // not growth; a new incarnation starts from zero at its start.
        let delta = cpu_seconds - before;
        if delta.is_finite() && delta > 0.0 {
            self.cpu.get_or_create(&l).inc_by(delta);
        }
    }

    /// One workload request finished with `outcome` (a small fixed set such
    /// as `ok`, `error`, `timeout`) after `latency`.
    pub fn request(&self, workload: &str, outcome: &str, latency: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                workload: workload.into(),
                outcome: outcome.into(),
            })
            .inc();
        self.latency
            .get_or_create(&WorkloadLabel {
                workload: workload.into(),
            })
            .observe(latency.as_secs_f64());
    }

    /// One journaled load interval of `workload`: `ok` and `failed`
    /// requests (outcomes `ok` and `error`), and its latency histogram as
    /// (upper edge in seconds, count) pairs.
    pub fn load_interval(&self, workload: &str, ok: u64, failed: u64, latency: &[(f64, u64)]) {
        for (outcome, n) in [("ok", ok), ("error", failed)] {
            if n > 0 {
                self.requests
                    .get_or_create(&RequestLabels {
                        workload: workload.into(),
                        outcome: outcome.into(),
                    })
                    .inc_by(n);
            }
        }
        let h = self.latency.get_or_create(&WorkloadLabel {
            workload: workload.into(),
        });
        for &(seconds, count) in latency {
            // A bucket of a few thousand requests is a few thousand atomic
            // adds, once per interval: cheap next to the requests themselves.
            for _ in 0..count {
                h.observe(seconds);
            }
        }
    }

    /// A fault (`action` as in scenarios: kill, hang, ...) began or ended.
    pub fn fault_active(&self, service: &str, action: &str, active: bool) {
        self.faults
            .get_or_create(&FaultLabels {
                service: service.into(),
                action: action.into(),
            })
            .set(i64::from(active));
    }

    /// The current verdict of assertion `name` (on `service`, or "" for a
    /// run-wide one).
    pub fn assertion(&self, name: &str, service: &str, state: AssertionState) {
        for s in AssertionState::ALL {
            self.assertions
                .get_or_create(&AssertionLabels {
                    assertion: name.into(),
                    service: service.into(),
                    state: s.as_str().into(),
                })
                .set(i64::from(s == state));
        }
    }

    /// soak's own resident memory and how late its timers fire.
    pub fn soak_self(&self, rss_bytes: u64, lag: Duration) {
        self.soak_rss(rss_bytes);
        self.soak_lag(lag);
    }

    /// soak's own resident memory (a sampler tick).
    pub fn soak_rss(&self, rss_bytes: u64) {
        self.self_rss
            .set(i64::try_from(rss_bytes).unwrap_or(i64::MAX));
    }

    /// How late soak's timers fire (measured apart from the sampler).
    pub fn soak_lag(&self, lag: Duration) {
        self.self_lag.set(lag.as_secs_f64());
    }

    /// The OpenMetrics text of every figure.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would be a bug
        // in a label value, and a partial page is still the best answer.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The content type of [`Exposition::encode`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of [`classic_text`].
pub const CLASSIC_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The classic Prometheus text format (0.0.4) of an OpenMetrics page, for
/// clients that did not ask for OpenMetrics (curl, `promtool check metrics`,
/// older scrapers). The two differ, for what prometheus-client writes, in
/// three ways: a counter's HELP and TYPE name the family without `_total`
/// in OpenMetrics and with it in the classic format; `# UNIT` and `# EOF`
/// exist only in OpenMetrics.
pub fn classic_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?)));
        match meta {
            Some((prefix, rest)) => {
                let (family, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(prefix);
                out.push_str(family);
                if counters.contains(family) {
                    out.push_str("_total");
                }
                out.push(' ');
                out.push_str(tail);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// A request head longer than this is refused: a scraper sends a few hundred
/// bytes, anything more is a mistake or an attack.
const MAX_REQUEST: usize = 8 * 1024;

/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 16;

/// A client gets this long to send its request and read the answer.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("metrics address `{0}`: expected IP:PORT, e.g. 127.0.0.1:9464 or [::1]:9464")]
    BadAddress(String),
    #[error("metrics address `{addr}`: cannot listen: {reason}")]
    Listen { addr: String, reason: String },
}

/// Listens on the address of `--metrics` or `[harness] metrics`. Any
/// address is allowed: a fleet's Prometheus server scrapes from elsewhere.
pub async fn bind(addr: &str) -> Result<TcpListener, BindError> {
    let parsed: std::net::SocketAddr = match addr.strip_prefix("localhost:") {
        Some(port) => format!("127.0.0.1:{port}").parse(),
        None => addr.parse(),
    }
    .map_err(|_| BindError::BadAddress(addr.into()))?;
    TcpListener::bind(parsed)
        .await
        .map_err(|e| BindError::Listen {
            addr: addr.into(),
            reason: e.to_string(),
        })
}

/// Serves `GET /metrics` on `listener` until the task is dropped or aborted.
/// Each connection is its own task under a deadline, so a slow or silent
/// client holds one slot, never the runtime.
pub async fn serve(listener: TcpListener, exposition: Arc<Exposition>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let Ok((stream, _)) = listener.accept().await else {
            // Out of fds or a transient accept error: wait instead of
            // spinning, then go on serving.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let exposition = exposition.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(CONNECTION_DEADLINE, answer(stream, &exposition)).await;
            drop(permit);
        });
    }
}

async fn answer(mut stream: TcpStream, exposition: &Exposition) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_REQUEST {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "",
            )
            .await;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let mut lines = head.lines();
    let mut parts = lines.next().unwrap_or("").split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    // Prometheus asks for OpenMetrics; anything else gets the classic text.
    let openmetrics = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("accept") && v.contains("application/openmetrics-text")
        })
    });
    let served = match (method, path) {
        ("GET", "/metrics") if openmetrics => {
            respond(&mut stream, "200 OK", CONTENT_TYPE, &exposition.encode()).await
        }
        ("GET", "/metrics") => {
            let text = classic_text(&exposition.encode());
            respond(&mut stream, "200 OK", CLASSIC_CONTENT_TYPE, &text).await
        }
        (_, "/metrics") => {
            respond(
                &mut stream,
                "405 Method Not Allowed",
                "text/plain",
                "GET only\n",
            )
            .await
        }
        _ => {
            respond(
                &mut stream,
                "404 Not Found",
                "text/plain",
                "soak serves /metrics only\n",
            )
            .await
        }
    };
    if served.is_ok() && method == "GET" && path == "/metrics" {
        exposition.scrapes.send_modify(|n| *n += 1);
    }
    served
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::parse::parse;

    fn value(text: &str, series: &str) -> Option<f64> {
        parse(text)
            .unwrap()
            .into_iter()
            .find(|s| s.series() == series)
            .map(|s| s.value)
    }

    #[test]
    fn restarts_count_by_the_cause_of_the_end_before_and_load_intervals_add_up() {
        let e = Exposition::new();
        e.service_started("api");
        e.incarnation_ended("api", "planned");
        e.service_started("api");
        e.incarnation_ended("api", "stopped");
        e.load_interval("items", 3, 1, &[(0.002, 3), (0.5, 1)]);
        e.load_interval("items", 2, 0, &[(0.002, 2)]);
        let t = e.encode();
        assert_eq!(
            value(&t, r#"soak_restarts_total{cause="planned",service="api"}"#),
            Some(1.0)
        );
        // The last end is not followed by a start: no restart.
        assert_eq!(
            value(&t, r#"soak_restarts_total{cause="stopped",service="api"}"#),
            None
        );
        assert_eq!(
            value(
                &t,
                r#"soak_workload_requests_total{outcome="ok",workload="items"}"#
            ),
            Some(5.0)
        );
        assert_eq!(
            value(
                &t,
                r#"soak_workload_requests_total{outcome="error",workload="items"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &t,
                r#"soak_workload_request_duration_seconds_count{workload="items"}"#
            ),
            Some(6.0)
        );
        assert_eq!(
            value(
                &t,
                r#"soak_workload_request_duration_seconds_bucket{le="0.002",workload="items"}"#
            ),
            Some(5.0)
        );
    }

    #[test]
    fn updates_show_in_the_text_under_prometheus_names() {
        let e = Exposition::new();
        e.service_started("api");
        e.incarnation_ended("api", "unplanned");
        e.service_started("api");
        e.sample("api", 50_000_000, 12, 4, 1.5);
        e.sample("api", 51_000_000, 13, 4, 2.0);
        e.request("items", "ok", Duration::from_millis(3));
        e.fault_active("api", "hang", true);
        e.assertion("healthy_within", "api", AssertionState::Fail);
        e.soak_self(9_000_000, Duration::from_millis(2));
        let t = e.encode();
        assert_eq!(value(&t, r#"soak_service_up{service="api"}"#), Some(1.0));
        assert_eq!(
            value(&t, r#"soak_service_incarnation{service="api"}"#),
            Some(2.0)
        );
        assert_eq!(
            value(&t, r#"soak_service_starts_total{service="api"}"#),
            Some(2.0)
        );
        assert_eq!(
            value(
                &t,
                r#"soak_service_exits_total{cause="unplanned",service="api"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            value(&t, r#"soak_service_resident_memory_bytes{service="api"}"#),
            Some(51e6)
        );
        assert_eq!(
            value(&t, r#"soak_service_open_fds{service="api"}"#),
            Some(13.0)
        );
        assert_eq!(
            value(&t, r#"soak_service_cpu_seconds_total{service="api"}"#),
            Some(2.0)
        );
        assert_eq!(
            value(
                &t,
                r#"soak_workload_requests_total{outcome="ok",workload="items"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &t,
                r#"soak_workload_request_duration_seconds_bucket{le="0.004",workload="items"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            value(&t, r#"soak_fault_active{action="hang",service="api"}"#),
            Some(1.0)
        );
        assert_eq!(
            value(
                &t,
                r#"soak_assertion_state{assertion="healthy_within",service="api",state="fail"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &t,
                r#"soak_assertion_state{assertion="healthy_within",service="api",state="pass"}"#
            ),
            Some(0.0)
        );
        assert_eq!(value(&t, "soak_resident_memory_bytes"), Some(9e6));
        assert_eq!(value(&t, "soak_runtime_lag_seconds"), Some(0.002));
        assert!(t.ends_with("# EOF\n"));
    }

    #[test]
    fn the_classic_text_names_counters_with_total_and_has_no_eof() {
        let e = Exposition::new();
        e.service_started("api");
        let t = classic_text(&e.encode());
        assert!(
            t.contains("# TYPE soak_service_starts_total counter\n"),
            "{t}"
        );
        assert!(t.contains("# HELP soak_service_starts_total "), "{t}");
        assert!(t.contains("# TYPE soak_service_up gauge\n"), "{t}");
        assert!(!t.contains("# EOF") && !t.contains("# UNIT"), "{t}");
        assert_eq!(parse(&t).unwrap().len(), parse(&e.encode()).unwrap().len());
    }

    #[test]
    fn a_bad_or_taken_address_is_a_clear_error() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            for bad in [
                "9464",
                "127.0.0.1",
                "metrics.example:9464",
                "127.0.0.1:99999",
            ] {
                let e = bind(bad).await.unwrap_err();
                assert!(matches!(e, BindError::BadAddress(_)), "{bad}: {e}");
                assert!(e.to_string().contains(bad), "{e}");
            }
            let taken = bind("127.0.0.1:0").await.unwrap();
            let addr = taken.local_addr().unwrap().to_string();
            let e = bind(&addr).await.unwrap_err();
            assert!(matches!(e, BindError::Listen { .. }), "{e}");
            assert!(bind("localhost:0").await.is_ok());
        });
    }

    #[test]
    fn cpu_never_goes_down_across_a_restart() {
        let e = Exposition::new();
        e.service_started("api");
        e.sample("api", 1, 1, 1, 10.0);
        e.incarnation_ended("api", "planned");
        e.service_started("api");
        e.sample("api", 1, 1, 1, 0.5);
        e.sample("api", 1, 1, 1, 1.0);
        let t = e.encode();
        assert_eq!(
            value(&t, r#"soak_service_cpu_seconds_total{service="api"}"#),
            Some(11.0)
        );
    }

    #[test]
    fn a_worker_that_ends_does_not_count_the_tree_s_cpu_again() {
        // The tree's CPU time drops when a recycled worker ends: read as a
        // restart, the whole total was added again (5000 -> 9900).
        let e = Exposition::new();
        e.service_started("api");
        for cpu in [4990.0, 5000.0, 4900.0, 4905.0] {
            e.sample("api", 1, 1, 1, cpu);
        }
        let t = e.encode();
        assert_eq!(
            value(&t, r#"soak_service_cpu_seconds_total{service="api"}"#),
            Some(5005.0)
        );
    }
}
