//! The page's model: what `report.html` shows, gathered from the report
//! and the journal once (services and their charts' series, incidents,
//! the time axis), before any HTML is written. The journal's sample tables
//! are read here, each series downsampled as it streams; the views in
//! `html.rs` and its other modules only format what this holds.

use super::chart::{
    Bar, Downsampler, FailMark, FaultMark, MAX_POINTS, Marks, Point, Restart, Span, TrendLine,
    downsample,
};
use super::{MB, links, metrics};
use crate::clock::human;
use crate::journal::{Cause, Event, EventRow, IncarnationRow, JournalError, RunData, SampleRow};
use crate::report::Report;
use crate::report::summary::describe_exit;
use crate::verdict::Verdict;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

/// Incidents merged into one when this close on the same service: a kill,
/// the exit it causes and the assertion judging it are one story.
const MERGE_MS: i64 = 2_000;

/// A trend over seconds (a chaos run) projected over hours would draw noise
/// as a prediction.
const MIN_TREND_MS: i64 = 5 * 60_000;

/// What one service's section shows, computed once: charts link to
/// anchors, and the top of the page links to charts.
pub(super) struct ServiceView<'a> {
    pub(super) name: &'a str,
    /// Id prefix: `s0`, `s1`... (names can hold anything, ids must not).
    pub(super) id: String,
    /// Its resource charts; None when it was never sampled.
    pub(super) resources: Result<Option<Resources>, String>,
    /// Its workloads' load charts, by workload name.
    pub(super) workloads: Vec<LoadSeries<'a>>,
    /// A chart per kept metric series, by name.
    pub(super) metrics: Result<Vec<metrics::MetricChart>, String>,
}

pub(super) struct Incident {
    pub(super) service: Option<String>,
    pub(super) at: i64,
    /// Sorted worst first; the first decides the colour.
    pub(super) what: Vec<(Kind, String)>,
    /// Indexes into `report.assertions`.
    pub(super) assertions: Vec<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(super) enum Kind {
    Failed,
    Crash,
    Hang,
    Fault,
}

impl Kind {
    pub(super) fn class(self) -> &'static str {
        match self {
            Kind::Failed | Kind::Crash | Kind::Hang => "bad",
            Kind::Fault => "fault",
        }
    }
}

pub(super) struct Page<'a> {
    pub(super) report: &'a Report,
    pub(super) data: &'a RunData,
    pub(super) span: Span,
    pub(super) services: Vec<ServiceView<'a>>,
    pub(super) incidents: Vec<Incident>,
    /// The links of the run and what a fault on each hits.
    pub(super) links: links::Links,
}

/// The page's time axis: the run, or failing that whatever the journal saw.
fn span_of(report: &Report, data: &RunData) -> Span {
    let times = data
        .incarnations
        .iter()
        .flat_map(|i| [Some(i.started_at), i.ended_at])
        .flatten()
        .chain(data.events.iter().map(|e| e.ts))
        // Unreadable, the samples only leave the axis to the rest.
        .chain(
            data.sample_span()
                .ok()
                .flatten()
                .into_iter()
                .flat_map(|(a, b)| [a, b]),
        );
    let (lo, hi) = times.fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
    let t0 = if data.run.is_some() && report.run.started_at > 0 {
        report.run.started_at
    } else if lo <= hi {
        lo
    } else {
        report.run.started_at
    };
    let t1 = report.run.ended_at.unwrap_or(hi).max(hi);
    Span {
        t0,
        // A zero-length axis cannot be drawn.
        t1: if t1 > t0 {
            t1
        } else {
            t0.saturating_add(1_000)
        },
    }
}

/// Crashes, hangs, faults and failed assertions, merged when they are one
/// story (same service, within [`MERGE_MS`]), in time order.
fn incidents(report: &Report, data: &RunData) -> Vec<Incident> {
    let mut raw: Vec<Incident> = Vec::new();
    let one = |service: Option<&str>, at, kind, text: String| Incident {
        service: service.map(str::to_string),
        at,
        what: vec![(kind, text)],
        assertions: Vec::new(),
    };
    for (i, a) in report.assertions.iter().enumerate() {
        if let (Verdict::Fail, Some(at)) = (a.verdict, a.at) {
            let mut inc = one(
                a.service.as_deref(),
                at,
                Kind::Failed,
                format!("{} failed: {}", a.name, a.reason),
            );
            inc.assertions.push(i);
            raw.push(inc);
        }
    }
    let hung_events: Vec<(&EventRow, &str)> = data
        .events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Hung { reason, .. } => Some((e, reason.as_str())),
            _ => None,
        })
        .collect();
    for &(e, why) in &hung_events {
        raw.push(one(
            e.service.as_deref(),
            e.ts,
            Kind::Hang,
            format!("hang detected: {why}"),
        ));
    }
    for i in &data.incarnations {
        let (Some(end), Some(cause)) = (i.ended_at, i.cause) else {
            continue;
        };
        // A hang already has its incident from the `hung` event.
        let told = cause == Cause::Hung
            && hung_events.iter().any(|(e, _)| {
                e.service.as_deref() == Some(i.service.as_str())
                    && (end.saturating_sub(60_000)..=end).contains(&e.ts)
            });
        if cause.is_failure() && !told {
            let pid = i.pid.map_or("?".into(), |p| p.to_string());
            raw.push(one(
                Some(&i.service),
                end,
                if cause == Cause::Hung {
                    Kind::Hang
                } else {
                    Kind::Crash
                },
                format!(
                    "pid {pid} died: {}{}",
                    describe_exit(i),
                    match cause {
                        Cause::GaveUp => "; start limit reached, not restarted",
                        Cause::OomKilled => "; killed by its memory limit (oom-killed)",
                        _ => "",
                    }
                ),
            ));
        }
    }
    for f in &report.faults {
        let held = f.rolled_back_at.map_or(String::new(), |t| {
            format!(
                ", rolled back after {}",
                human(Duration::from_millis(
                    t.saturating_sub(f.injected_at).max(0) as u64
                ))
            )
        });
        raw.push(one(
            Some(&f.target),
            f.injected_at,
            Kind::Fault,
            format!("fault step {}: {} {}{held}", f.step, f.action, f.target),
        ));
    }
    raw.sort_by(|a, b| (&a.service, a.at).cmp(&(&b.service, b.at)));
    let mut merged: Vec<Incident> = Vec::new();
    for inc in raw {
        match merged.last_mut() {
            Some(m) if m.service == inc.service && inc.at.saturating_sub(m.at) <= MERGE_MS => {
                m.what.extend(inc.what);
                m.assertions.extend(inc.assertions);
            }
            _ => merged.push(inc),
        }
    }
    for m in &mut merged {
        m.what.sort_by_key(|w| w.0);
    }
    merged.sort_by_key(|m| m.at);
    merged
}

/// One workload's load charts: p50 and p99 latency (ms) and the share of
/// failed requests (%) per interval, downsampled, and its totals.
pub(super) struct LoadSeries<'a> {
    pub(super) workload: &'a str,
    pub(super) p50: Vec<Point>,
    pub(super) p99: Vec<Point>,
    pub(super) errors: Vec<Point>,
    pub(super) failed: f64,
    pub(super) sent: f64,
}

impl<'a> LoadSeries<'a> {
    /// One pass over the workload's load events, by time.
    fn of(workload: &'a str, loads: &[&EventRow]) -> Self {
        let (mut p50, mut p99, mut errors) = (Vec::new(), Vec::new(), Vec::new());
        let (mut failed, mut sent) = (0.0, 0.0);
        for e in loads {
            let Event::Load {
                sent: n,
                failed: f,
                p50_ms,
                p99_ms,
                ..
            } = &e.event
            else {
                continue;
            };
            let point = |v| Point {
                t: e.ts as f64,
                v,
                seg: 0,
            };
            p50.push(point(*p50_ms));
            p99.push(point(*p99_ms));
            let (f, n) = (*f as f64, *n as f64);
            if n > 0.0 {
                errors.push(point(100.0 * f / n));
            }
            (failed, sent) = (failed + f, sent + n);
        }
        LoadSeries {
            workload,
            p50: downsample(&p50, MAX_POINTS),
            p99: downsample(&p99, MAX_POINTS),
            errors: downsample(&errors, MAX_POINTS),
            failed,
            sent,
        }
    }
}

/// A service's resource charts: RSS (MB), CPU (% of one core), fds and
/// threads over time, one line segment per incarnation, each already
/// downsampled to at most [`MAX_POINTS`].
pub(super) struct Resources {
    pub(super) rss: Vec<Point>,
    pub(super) cpu: Vec<Point>,
    pub(super) fds: Vec<Point>,
    pub(super) threads: Vec<Point>,
}

impl Resources {
    /// Reads the samples of `incarnations` once, by time, downsampling as
    /// it goes: no series of a long soak (52 000 points a service in 72 h
    /// at 5 s) is whole in memory but CPU's, whose point count (which fixes
    /// the buckets) is known only once its rates are computed; that one is
    /// three numbers a point, for one service at a time. None when there
    /// are no samples.
    fn read(data: &RunData, incarnations: &[i64]) -> Result<Option<Resources>, JournalError> {
        let rows = data.sample_count(incarnations)?;
        if rows == 0 {
            return Ok(None);
        }
        let mut rss = Downsampler::new(rows, MAX_POINTS);
        let mut fds = Downsampler::new(rows, MAX_POINTS);
        let mut threads = Downsampler::new(rows, MAX_POINTS);
        let mut cpu = Vec::new();
        let mut rate = CpuRate::default();
        data.for_each_sample(incarnations, |r| {
            let point = |v| Point {
                t: r.ts as f64,
                v,
                seg: r.incarnation,
            };
            rss.push(point(r.rss_bytes as f64 / MB));
            fds.push(point(r.fds as f64));
            threads.push(point(r.threads as f64));
            cpu.extend(rate.next(r));
        })?;
        let cpu = downsample(&cpu, MAX_POINTS);
        Ok(Some(Resources {
            rss: rss.finish(),
            cpu,
            fds: fds.finish(),
            threads: threads.finish(),
        }))
    }
}

/// CPU use in % of one core between consecutive samples of the same
/// incarnation, from their cumulative CPU seconds.
#[derive(Default)]
struct CpuRate {
    /// The sample before: (incarnation, time, CPU seconds).
    prev: Option<(i64, i64, f64)>,
    /// The last sample of each other incarnation met; rows of one
    /// incarnation mostly follow each other, so this is only touched when
    /// that changes.
    seen: HashMap<i64, (i64, f64)>,
}

impl CpuRate {
    fn next(&mut self, r: &SampleRow) -> Option<Point> {
        let before = match self.prev {
            Some((inc, t, c)) if inc == r.incarnation => Some((t, c)),
            _ => {
                if let Some((inc, t, c)) = self.prev {
                    self.seen.insert(inc, (t, c));
                }
                self.seen.get(&r.incarnation).copied()
            }
        };
        self.prev = Some((r.incarnation, r.ts, r.cpu_seconds));
        let (t, c) = before?;
        (r.ts > t && r.cpu_seconds >= c).then(|| Point {
            t: r.ts as f64,
            v: 100.0 * (r.cpu_seconds - c) / ((r.ts as f64 - t as f64) / 1000.0),
            seg: r.incarnation,
        })
    }
}

/// The line the `rss_slope_max` verdict of `service` fitted, in MB: the
/// chart shows the verdict's own trend, so its label cannot contradict the
/// assertion beside it. None without that assertion or a fitted line.
pub(super) fn rss_trend(report: &Report, service: &str) -> Option<TrendLine> {
    let fit = report
        .assertions
        .iter()
        .filter(|a| a.name == "rss_slope_max" && a.service.as_deref() == Some(service))
        .find_map(|a| a.trend.as_ref())
        .filter(|fit| fit.to.saturating_sub(fit.from) >= MIN_TREND_MS)?;
    let slope = fit.slope_per_hour / MB;
    let digits = if slope.abs() < 1.0 { 2 } else { 1 };
    let mut shown = format!("{slope:+.digits$}");
    // A flat line rounds to "-0.00", which reads like a shrinking service.
    if shown.trim_start_matches(['+', '-', '0', '.']).is_empty() {
        shown = format!("{:.digits$}", 0.0);
    }
    Some(TrendLine {
        t_from: fit.from,
        v_from: fit.value_at_from / MB,
        t_last: fit.to,
        per_hour: slope,
        label: format!("trend {shown} MB/h"),
    })
}

impl<'a> Page<'a> {
    pub(super) fn new(report: &'a Report, data: &'a RunData) -> Self {
        let span = span_of(report, data);
        let mut names: BTreeSet<&str> = report.services.keys().map(String::as_str).collect();
        names.extend(data.incarnations.iter().map(|i| i.service.as_str()));
        // Through a hash set: events repeat a few names hundreds of
        // thousands of times.
        let in_events: std::collections::HashSet<&str> = data
            .events
            .iter()
            .filter_map(|e| e.service.as_deref())
            .collect();
        names.extend(in_events);
        names.extend(
            report
                .assertions
                .iter()
                .filter_map(|a| a.service.as_deref()),
        );
        // One pass over each big table: a 72 h soak has millions of samples
        // and hundreds of thousands of load events.
        let names: Vec<&str> = names.into_iter().collect();
        let index = |name: &str| names.binary_search(&name).ok();
        let incs: HashMap<i64, usize> = data
            .incarnations
            .iter()
            .filter_map(|i| Some((i.id, index(&i.service)?)))
            .collect();
        let mut metrics = metrics::MetricChart::read(data, &incs, names.len()).into_iter();
        let mut loads: HashMap<(&str, &str), Vec<&EventRow>> = HashMap::new();
        for e in &data.events {
            if let (Some(service), Event::Load { workload, .. }) = (e.service.as_deref(), &e.event)
            {
                loads.entry((service, workload)).or_default().push(e);
            }
        }
        let mut workloads: BTreeMap<&str, Vec<(&str, Vec<&EventRow>)>> = BTreeMap::new();
        for ((service, workload), rows) in loads {
            workloads.entry(service).or_default().push((workload, rows));
        }
        let services = names
            .iter()
            .enumerate()
            .map(|(i, name)| ServiceView {
                name,
                id: format!("s{i}"),
                resources: {
                    let ids: Vec<i64> = data
                        .incarnations
                        .iter()
                        .filter(|i| i.service == *name)
                        .map(|i| i.id)
                        .collect();
                    Resources::read(data, &ids).map_err(|e| e.to_string())
                },
                workloads: {
                    let mut w = workloads.remove(name).unwrap_or_default();
                    w.sort_by_key(|(name, _)| *name);
                    w.into_iter()
                        .map(|(name, loads)| LoadSeries::of(name, &loads))
                        .collect()
                },
                metrics: metrics.next().unwrap_or(Ok(Vec::new())),
            })
            .collect();
        Page {
            report,
            data,
            span,
            services,
            incidents: incidents(report, data),
            links: links::Links::of(data),
        }
    }

    pub(super) fn view(&self, service: &str) -> Option<&ServiceView<'a>> {
        self.services.iter().find(|s| s.name == service)
    }

    /// The chart where an assertion is best seen: the metric it judges when
    /// that was charted, else the service's lifecycle strip.
    pub(super) fn chart_of(&self, name: &str, service: Option<&str>) -> Option<String> {
        let v = self.view(service?)?;
        let sampled = matches!(v.resources, Ok(Some(_)));
        let metric = match name {
            "rss_slope_max" | "rss_max" | "rss_growth_max" if sampled => "rss",
            "fds_slope_max" if sampled => "fds",
            "threads_slope_max" if sampled => "threads",
            "latency_p99_max" if !v.workloads.is_empty() => "lat0",
            "availability_min" if !v.workloads.is_empty() => "err0",
            _ => "life",
        };
        Some(format!("{}-{metric}", v.id))
    }

    pub(super) fn incident_of(&self, assertion: usize) -> Option<usize> {
        self.incidents
            .iter()
            .position(|i| i.assertions.contains(&assertion))
    }

    pub(super) fn marks(&self, service: &str) -> Marks {
        let mut m = Marks::default();
        let mut prev: Option<&IncarnationRow> = None;
        for i in self
            .data
            .incarnations
            .iter()
            .filter(|i| i.service == service)
        {
            if let Some(p) = prev {
                let unplanned = !matches!(p.cause, Some(Cause::Planned | Cause::Stopped));
                m.restarts.push(Restart {
                    at: i.started_at,
                    unplanned,
                    title: format!(
                        "restart at {}: pid {} started; before: pid {} {}",
                        self.clock(i.started_at),
                        i.pid.map_or("?".into(), |p| p.to_string()),
                        p.pid.map_or("?".into(), |p| p.to_string()),
                        describe_exit(p)
                    ),
                });
            }
            prev = Some(i);
        }
        for f in self
            .report
            .faults
            .iter()
            .filter(|f| f.target == service || self.links.hits(&f.target, &f.action, service))
        {
            m.faults.push(FaultMark {
                from: f.injected_at,
                to: f.rolled_back_at,
                label: if f.target == service {
                    f.action.clone()
                } else {
                    format!("{} {}", f.action, f.target)
                },
                title: format!(
                    "fault step {}: {} {} at {}{}",
                    f.step,
                    f.action,
                    f.target,
                    self.clock(f.injected_at),
                    f.rolled_back_at
                        .map(|t| format!(", rolled back at {}", self.clock(t)))
                        .unwrap_or_default()
                ),
            });
        }
        for a in &self.report.assertions {
            let (Verdict::Fail, Some(at)) = (a.verdict, a.at) else {
                continue;
            };
            if a.service.as_deref().is_some_and(|s| s != service) {
                continue;
            }
            m.failures.push(FailMark {
                at,
                label: format!("✕ {}", a.name),
                title: format!("{} failed at {}: {}", a.name, self.clock(at), a.reason),
            });
        }
        m
    }

    pub(super) fn bars(&self, service: &str) -> Vec<Bar> {
        self.data
            .incarnations
            .iter()
            .filter(|i| i.service == service)
            .map(|i| Bar {
                from: i.started_at,
                ready: i.ready_at,
                to: i.ended_at.unwrap_or(self.span.t1),
                title: format!(
                    "pid {}: started {}, {}, {}",
                    i.pid.map_or("?".into(), |p| p.to_string()),
                    self.clock(i.started_at),
                    i.ready_at.map_or("never ready".into(), |r| format!(
                        "ready after {}",
                        human(Duration::from_millis(
                            r.saturating_sub(i.started_at).max(0) as u64
                        ))
                    )),
                    describe_exit(i)
                ),
            })
            .collect()
    }
}
