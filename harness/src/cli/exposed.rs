//! soak's own `/metrics` while a command runs: the page, fed from the
//! same notes the terminal prints, its server, and how late soak's timers
//! fire.

use super::Outcome;
use super::print::Style;
use crate::config::Config;
use crate::journal::Event;
use crate::metrics::{AssertionState, Exposition};
use crate::record::Note;
use crate::verdict::Verdict;
use std::time::Duration;

fn assertion_state(v: Verdict) -> AssertionState {
    match v {
        Verdict::Pass => AssertionState::Pass,
        Verdict::Fail => AssertionState::Fail,
        Verdict::Unknown => AssertionState::Unknown,
    }
}

/// Updates soak's `/metrics` with one fact.
pub(super) fn feed(e: &Exposition, n: &Note) {
    if let Some(f) = &n.figures {
        match &n.service {
            Some(s) => e.sample(s, f.rss_bytes, f.fds, f.threads, f.cpu_seconds),
            None => e.soak_rss(f.rss_bytes),
        }
        return;
    }
    if let Some(Event::VerdictsSoFar { assertions }) = &n.event {
        for a in assertions {
            e.assertion(
                &a.name,
                a.service.as_deref().unwrap_or(""),
                assertion_state(a.verdict),
            );
        }
        return;
    }
    let (Some(event), Some(service)) = (&n.event, n.service.as_deref()) else {
        return;
    };
    match event {
        Event::Started { .. } => e.service_started(service),
        Event::Exited { cause, .. } => e.incarnation_ended(service, cause.as_str()),
        // A kill or a stop is over when it is injected: nothing is held,
        // so nothing is "active"; its trace is the incarnation's end.
        Event::FaultInjected { action, .. } if !matches!(action.as_str(), "kill" | "stop") => {
            e.fault_active(service, action, true)
        }
        Event::FaultRolledBack { action, .. } => e.fault_active(service, action, false),
        Event::Load {
            workload,
            ok,
            failed,
            histogram,
            ..
        } => e.load_interval(workload, *ok, *failed, &latency_buckets(histogram)),
        _ => {}
    }
}

/// The (upper edge in seconds, count) pairs of a journaled load histogram
/// (`workload::LatencyHistogram::to_json`: bucket `b` ends at 0.05 ms ×
/// 1.1^b). The upper edge, as its quantiles report, errs on the slow side.
fn latency_buckets(histogram: &serde_json::Value) -> Vec<(f64, u64)> {
    histogram["buckets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|pair| {
            let (b, c) = (pair[0].as_u64()?, pair[1].as_u64()?);
            Some((0.05e-3 * 1.1f64.powi(b.min(1000) as i32), c))
        })
        .collect()
}

/// How long a judged run keeps its page up for a scraper to read the
/// verdicts: two of the fleet's 15 s scrape intervals.
const LINGER: Duration = Duration::from_secs(30);

/// soak's `/metrics` while a command runs: the page, its server, and the
/// task that measures how late soak's own timers fire.
pub(super) struct MetricsServer {
    pub exposition: std::sync::Arc<Exposition>,
    tasks: [tokio::task::JoinHandle<()>; 2],
}

impl MetricsServer {
    /// Binds `--metrics`, else `[harness] metrics`; None when neither is
    /// given. A bad or busy address is a usage error naming it.
    pub async fn start(
        flag: Option<String>,
        config: &Config,
    ) -> Result<Option<MetricsServer>, Outcome> {
        let Some(addr) = flag.or_else(|| config.harness.metrics.map(|a| a.0.to_string())) else {
            return Ok(None);
        };
        let listener = crate::metrics::bind(&addr).await.map_err(|e| {
            eprintln!("error: {e}");
            Outcome::Usage
        })?;
        let exposition = std::sync::Arc::new(Exposition::new());
        let server = tokio::spawn(crate::metrics::serve(listener, exposition.clone()));
        let lag = tokio::spawn(measure_lag(exposition.clone()));
        Ok(Some(MetricsServer {
            exposition,
            tasks: [server, lag],
        }))
    }

    /// Sets each assertion's verdict and, when a scraper has been reading
    /// the page, serves it until that scraper came once more (at most
    /// [`LINGER`]), so the verdicts reach Prometheus; then closes it.
    pub async fn finish(self, report: Option<&crate::report::Report>, style: Style) {
        let mut scrapes = self.exposition.scrapes();
        if let Some(report) = report {
            self.assertions(report);
            if *scrapes.borrow_and_update() > 0 {
                println!(
                    "{}",
                    style.dim(&format!(
                        "metrics: waiting for one more scrape (at most {})",
                        crate::clock::human(LINGER)
                    ))
                );
                let _ = tokio::time::timeout(LINGER, scrapes.changed()).await;
            }
        }
        self.stop();
    }

    fn assertions(&self, report: &crate::report::Report) {
        for a in &report.assertions {
            self.exposition.assertion(
                &a.name,
                a.service.as_deref().unwrap_or(""),
                assertion_state(a.verdict),
            );
        }
    }

    pub fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// How late a 500 ms timer fires, the worst of the last 5 s: soak runs on
/// one thread, so anything that holds it (a slow journal read, a starved
/// host) delays every timer, and this one shows by how much.
async fn measure_lag(e: std::sync::Arc<Exposition>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut recent = std::collections::VecDeque::with_capacity(10);
    loop {
        let due = tick.tick().await;
        if recent.len() == 10 {
            recent.pop_front();
        }
        recent.push_back(tokio::time::Instant::now().saturating_duration_since(due));
        e.soak_lag(recent.iter().max().copied().unwrap_or_default());
    }
}
