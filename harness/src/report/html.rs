//! `report.html`: one self-contained page a reviewer opens to understand a
//! run without reading logs: the verdict and why, every assertion, per
//! service charts of what it was doing (with restarts, faults and failures
//! drawn in time), its incarnations, each incident with the log lines
//! around it, and the event timeline.
//!
//! A pure function of the report, the journal and the logs. No script, no
//! network, no external font: the file must open the same from a CI
//! artifact, an email or a laptop offline. The page is written with maud's
//! `html!`, which escapes every inserted value: a string that came from a
//! service, a log or a config cannot become markup unless the code says
//! `PreEscaped`, which it says only for the stylesheet and the charts' SVG
//! (see chart.rs). Element ids are built from indexes, never from names.
//!
//! `model.rs` gathers what the page shows (services and their charts'
//! series, incidents, the time axis) from the report and the journal; this
//! file and the section modules (host, links, metrics, logs) write it out.
//! Each section, and each service's, is its own `Markup`, copied once into
//! the page: no buffer holds all the services' charts a second time.

mod chart;
mod host;
mod links;
mod logs;
mod metrics;
mod model;
mod style;

use model::{Page, Resources, ServiceView, rss_trend};

use super::Report;
use crate::clock::{human, rfc3339_ms};
use crate::journal::{Cause, Event, EventRow, IncarnationRow, RunData};
use crate::verdict::Verdict;
use chart::{Marks, Series};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

const MB: f64 = 1_048_576.0;
/// Incidents shown with their log lines; more would bury the first ones.
const MAX_EXCERPTS: usize = 40;
/// Rows of the long tables (incarnations per service, events), half from
/// the start and half from the end of the run.
const MAX_ROWS: usize = 1_000;
const MAX_DETAIL_CHARS: usize = 300;

/// Renders the whole page. `logs_dir` holds the services' `NAME.log` files;
/// a missing folder or file only leaves the incidents without log lines.
pub fn render(report: &Report, data: &RunData, logs_dir: &Path) -> String {
    let page = Page::new(report, data);
    let title = report.run.scenario.as_deref().unwrap_or("soak run");
    html! {
        (DOCTYPE) "\n"
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (label(report).0) " " (title) ": " (report.run.id) }
                // Raw: the stylesheet is a constant of this crate, and CSS
                // must not be HTML-escaped (`>` is a selector).
                style { (PreEscaped(style::CSS)) }
            }
            body {
                main {
                    (page.verdict())
                    (page.assertions())
                    (page.summary())
                    @for v in &page.services {
                        (page.service(v))
                    }
                    (page.links())
                    (page.faults())
                    (page.host())
                    (page.incidents(logs_dir))
                    (page.timeline())
                    footer {
                        "Rendered by soak " (report.run.soak_version)
                        " from the run's journal. Times are UTC; +N is time since the run started."
                    }
                }
            }
        }
        "\n"
    }
    .into_string()
}

impl Page<'_> {
    fn clock(&self, ms: i64) -> String {
        rfc3339_ms(ms).get(11..23).unwrap_or_default().to_string()
    }

    /// `01:25:09.142 (+3.1 s)`
    fn when(&self, ms: i64) -> Markup {
        let d = ms.saturating_sub(self.span.t0);
        let sign = if d < 0 { "−" } else { "+" };
        html! {
            (self.clock(ms)) " "
            span class="rel" { (sign) (human(Duration::from_millis(d.unsigned_abs()))) }
        }
    }

    fn verdict(&self) -> Markup {
        let r = self.report;
        let (word, class) = label(r);
        let count = |v| r.assertions.iter().filter(|a| a.verdict == v).count();
        let (pass, fail, unknown) = (
            count(Verdict::Pass),
            count(Verdict::Fail),
            count(Verdict::Unknown),
        );
        let why: Vec<(usize, &crate::verdict::Assertion)> = r
            .assertions
            .iter()
            .enumerate()
            .filter(|(_, a)| a.verdict != Verdict::Pass)
            .collect();
        html! {
            header class={ "banner " (class) } {
                div class="word" id="verdict" { (word) }
                div class="what" {
                    div class="scenario" { (r.run.scenario.as_deref().unwrap_or("soak run")) }
                    div class="desc" { (r.run.description.as_deref().unwrap_or_default()) }
                    div class="facts" {
                        "run " (r.run.id)
                        " · started " (rfc3339_ms(r.run.started_at).get(..19).unwrap_or_default())
                        " UTC · "
                        @if r.run.ended_at.is_some() {
                            "lasted " (human(Duration::from_millis(r.run.duration_ms.max(0) as u64)))
                        } @else {
                            "did not finish"
                        }
                        " · soak " (r.run.soak_version)
                        @if let Some(s) = r.run.seed { " · seed " (s) }
                    }
                }
            }
            @if r.interrupted {
                p class="note" { "The run was interrupted before it finished: what follows is what the journal holds up to that point." }
            }
            p class="counts" {
                (r.assertions.len()) " assertion(s): "
                b class="pass" { (pass) " passed" } " · "
                b class="fail" { (fail) " failed" } " · "
                b class="unknown" { (unknown) " unknown" }
            }
            @if !why.is_empty() {
                ol class="why" {
                    // Failures first: they decide the verdict; unknowns explain an UNKNOWN.
                    @for (i, a) in why
                        .iter()
                        .filter(|(_, a)| a.verdict == Verdict::Fail)
                        .chain(why.iter().filter(|(_, a)| a.verdict == Verdict::Unknown))
                    {
                        @let (mark, class) = match a.verdict {
                            Verdict::Fail => ("✕ failed", "fail"),
                            _ => ("? unknown", "unknown"),
                        };
                        @let links = self.why_links(*i, a);
                        li class=(class) {
                            span class="tag" { (mark) } " "
                            b { (a.name) }
                            @if let Some(s) = &a.service { " [" (s) "]" }
                            " "
                            span class="at" {
                                @match a.at {
                                    Some(t) => { "at " (self.when(t)) }
                                    None => "time not recorded",
                                }
                            }
                            " "
                            @for (j, (href, text)) in links.iter().enumerate() {
                                @if j > 0 { " · " }
                                a href=(href) { (text) }
                            }
                            div class="reason" { (a.reason) }
                        }
                    }
                }
            }
        }
    }

    /// Where a failed or unknown assertion of the why list leads: its chart
    /// and the logs around it, those that exist.
    fn why_links(&self, i: usize, a: &crate::verdict::Assertion) -> Vec<(String, &'static str)> {
        let chart = self
            .chart_of(&a.name, a.service.as_deref())
            .map(|c| (format!("#{c}"), "chart"));
        let logs = self
            .incident_of(i)
            .map(|k| (format!("#incident-{k}"), "logs around it"));
        chart.into_iter().chain(logs).collect()
    }

    fn assertions(&self) -> Markup {
        html! {
            section id="assertions" {
                h2 { "Assertions" }
                @if self.report.assertions.is_empty() {
                    p class="muted" { "Nothing was judged: the run's scenario could not be read back from its journal, or it has no expectations." }
                } @else {
                    table {
                        thead { tr { th { "verdict" } th { "assertion" } th { "service" } th { "expected" } th { "observed" } th { "reason" } th { "at" } } }
                        tbody {
                            @for a in &self.report.assertions {
                                @let (word, class) = verdict_word(a.verdict);
                                tr class=(class) {
                                    td { span class={ "badge " (class) } { (word) } }
                                    td {
                                        @match self.chart_of(&a.name, a.service.as_deref()) {
                                            Some(c) if a.verdict != Verdict::Pass => {
                                                a href={ "#" (c) } { (a.name) }
                                            }
                                            _ => (a.name),
                                        }
                                    }
                                    td { (a.service.as_deref().unwrap_or("—")) }
                                    td { (a.expected) }
                                    td { (a.observed) }
                                    td class="reason" { (a.reason) }
                                    td class="nowrap" { @if let Some(t) = a.at { (self.when(t)) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn summary(&self) -> Markup {
        let r = self.report;
        let warn = |bad: bool| bad.then_some("warn");
        let opt = |v: Option<u64>| v.map_or("—".to_string(), |v| v.to_string());
        let workloads = html! {
            @if !r.workloads.is_empty() {
                h3 { "Workloads" }
                table {
                    thead { tr { th { "workload" } th { "sent" } th { "ok" } th { "failed" } th { "worst p99" } th { "acknowledged writes" } th { "read back" } th { "missing writes" } } }
                    tbody {
                        @for (name, w) in &r.workloads {
                            tr {
                                td { (name) }
                                td { (w.sent) }
                                td { (w.ok) }
                                td class=[warn(w.failed > 0)] { (w.failed) }
                                td { (format_args!("{:.1}", w.worst_p99_ms)) " ms" }
                                td { (opt(w.acknowledged_writes)) }
                                td { (opt(w.checked_writes)) }
                                td class=[warn(w.missing_writes.unwrap_or(0) > 0)] { (opt(w.missing_writes)) }
                            }
                        }
                    }
                }
            }
        };
        if r.services.is_empty() {
            return workloads;
        }
        html! {
            section id="summary" {
                h2 { "Services" }
                table {
                    thead { tr { th { "service" } th { "incarnations" } th { "planned restarts" } th { "unplanned restarts" } th { "hangs" } th { "orphans" } th { "last exit" } } }
                    tbody {
                        @for (name, s) in &r.services {
                            tr {
                                td {
                                    @match self.view(name) {
                                        Some(v) => { a href={ "#" (v.id) } { (name) } }
                                        None => (name),
                                    }
                                }
                                td { (s.incarnations) }
                                td { (s.restarts.planned) }
                                td class=[warn(s.restarts.unplanned > 0)] { (s.restarts.unplanned) }
                                td class=[warn(s.hangs > 0)] { (s.hangs) }
                                td class=[warn(s.orphans > 0)] { (s.orphans) }
                                td {
                                    (s.last_exit.as_deref().unwrap_or("—"))
                                    @if s.gave_up { " · " b class="fail" { "gave up" } }
                                }
                            }
                        }
                    }
                }
                (workloads)
            }
        }
    }

    fn service(&self, v: &ServiceView) -> Markup {
        let marks = self.marks(v.name);
        html! {
            section class="service" id=(v.id) {
                h2 { (v.name) }
                (self.never_started(v.name))
                h3 {
                    "Lifecycle "
                    span class="legend" {
                        i class="k up" {} "up "
                        i class="k starting" {} "starting "
                        i class="k fault" {} "fault "
                        i class="k restart" {} "restart "
                        i class="k failmark" {} "failed assertion"
                    }
                }
                (chart::lifecycle(&format!("{}-life", v.id), &self.bars(v.name), self.span, &marks))
                @match &v.resources {
                    Ok(None) => p class="muted" { "No resource samples were recorded for this service." },
                    Ok(Some(r)) => (self.resource_charts(v, r, &marks)),
                    Err(e) => p class="muted" { "Its resource samples could not be read: " (e) },
                }
                (self.load_charts(v, &marks))
                (self.metric_charts(v, &marks))
                (self.incarnations(v.name))
            }
        }
    }

    /// A service without an incarnation never ran: that is the first thing
    /// its section says, with why when the journal knows.
    fn never_started(&self, service: &str) -> Markup {
        if self.data.incarnations.iter().any(|i| i.service == service) {
            return html! {};
        }
        let failure = self
            .report
            .services
            .get(service)
            .and_then(|s| s.start_failure.as_deref());
        html! {
            p class="never-started" {
                b class="fail" { "Never started." } " "
                @match failure {
                    Some(e) => { "Its command could not be started: " (e) }
                    None => "The journal holds no start of it; the event timeline shows what happened instead.",
                }
            }
        }
    }

    fn resource_charts(&self, v: &ServiceView, r: &Resources, marks: &Marks) -> Markup {
        let (rss, cpu, fds, threads) = (
            r.rss.clone(),
            r.cpu.clone(),
            r.fds.clone(),
            r.threads.clone(),
        );
        let trend = rss_trend(self.report, v.name);
        let peak = rss.iter().map(|p| p.v).fold(f64::NAN, f64::max);
        let last = rss.last().map_or(f64::NAN, |p| p.v);
        let rss_chart = chart::line_chart(
            &format!("{}-rss", v.id),
            "MB",
            &[Series {
                name: "RSS",
                color: "#3b6ea8",
                points: rss,
            }],
            trend.as_ref(),
            self.span,
            marks,
        );
        html! {
            h3 {
                "RSS "
                span class="stat" {
                    (format_args!("peak {peak:.1} MB · last {last:.1} MB"))
                    @if let Some(t) = &trend { " · " (t.label) " (dashed: projection)" }
                }
            }
            (rss_chart)
            @for (key, title, unit, color, pts) in [
                ("cpu", "CPU", "%", "#4e8a5c", cpu),
                ("fds", "Open fds", "fds", "#2f7f86", fds),
                ("threads", "Threads", "threads", "#7a5ea8", threads),
            ] {
                @let peak = pts.iter().map(|p| p.v).fold(f64::NAN, f64::max);
                @let last = pts.last().map_or(f64::NAN, |p| p.v);
                h3 {
                    (title) " "
                    span class="stat" {
                        (format_args!("peak {peak:.1} · last {last:.1}"))
                        @if key == "cpu" { " % of one core" }
                    }
                }
                (chart::line_chart(
                    &format!("{}-{key}", v.id),
                    unit,
                    &[Series {
                        name: title,
                        color,
                        points: pts,
                    }],
                    None,
                    self.span,
                    marks,
                ))
            }
        }
    }

    fn load_charts(&self, v: &ServiceView, marks: &Marks) -> Markup {
        html! {
            @for (k, l) in v.workloads.iter().enumerate() {
                @let worst = l.p99.iter().map(|p| p.v).fold(f64::NAN, f64::max);
                h3 {
                    "Latency of " (l.workload) " "
                    span class="legend" {
                        i class="k" style="background:#3b6ea8" {} "p50 "
                        i class="k" style="background:#b0663a" {} "p99"
                    }
                    " "
                    span class="stat" { (format_args!("worst p99 {worst:.1} ms")) }
                }
                (chart::line_chart(
                    &format!("{}-lat{k}", v.id),
                    "ms",
                    &[
                        Series {
                            name: "p50",
                            color: "#3b6ea8",
                            points: l.p50.clone(),
                        },
                        Series {
                            name: "p99",
                            color: "#b0663a",
                            points: l.p99.clone(),
                        },
                    ],
                    None,
                    self.span,
                    marks,
                ))
                h3 {
                    "Failed requests of " (l.workload) " "
                    span class="stat" { (format_args!("{:.0} of {:.0}", l.failed, l.sent)) }
                }
                (chart::line_chart(
                    &format!("{}-err{k}", v.id),
                    "% failed",
                    &[Series {
                        name: "failed %",
                        color: "#b3261e",
                        points: l.errors.clone(),
                    }],
                    None,
                    self.span,
                    marks,
                ))
            }
        }
    }

    fn incarnations(&self, service: &str) -> Markup {
        let incs: Vec<&IncarnationRow> = self
            .data
            .incarnations
            .iter()
            .filter(|i| i.service == service)
            .collect();
        if incs.is_empty() {
            return html! {};
        }
        let ms = |d: i64| human(Duration::from_millis(d.max(0) as u64));
        html! {
            h3 { "Incarnations" }
            table {
                thead { tr { th { "#" } th { "pid" } th { "started" } th { "ready after" } th { "ended" } th { "up" } th { "exit" } th { "cause" } th { "orphans" } } }
                tbody {
                    @for row in capped(&incs, MAX_ROWS) {
                        @match row {
                            None => (gap_row(9, incs.len() - MAX_ROWS / 2 * 2)),
                            Some((n, i)) => {
                                @let bad = i.cause.is_some_and(Cause::is_failure) || i.orphans.unwrap_or(0) > 0;
                                tr class=[bad.then_some("fail")] {
                                    td { (n + 1) }
                                    td { (i.pid.map_or("—".into(), |p| p.to_string())) }
                                    td class="nowrap" { (self.when(i.started_at)) }
                                    td { (i.ready_at.map_or("never".into(), |r| ms(r.saturating_sub(i.started_at)))) }
                                    td class="nowrap" {
                                        @match i.ended_at {
                                            Some(e) => (self.when(e)),
                                            None => "running",
                                        }
                                    }
                                    td { (i.ended_at.map_or(String::new(), |e| ms(e.saturating_sub(i.started_at)))) }
                                    td {
                                        @match (i.exit_code, &i.signal) {
                                            (Some(c), _) => { "code " (c) }
                                            (None, Some(s)) => { "signal " (s) }
                                            (None, None) => "—",
                                        }
                                    }
                                    td { (i.cause.as_ref().map_or("—", |c| c.as_str())) }
                                    td { (i.orphans.map_or("—".into(), |o| o.to_string())) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn faults(&self) -> Markup {
        if self.report.faults.is_empty() {
            return html! {};
        }
        html! {
            section id="faults" {
                h2 { "Faults" }
                table {
                    thead { tr { th { "step" } th { "action" } th { "target" } th { "injected" } th { "rolled back" } th { "load during it" } th { "detail" } } }
                    tbody {
                        @for f in &self.report.faults {
                            @let during: Vec<String> = f
                                .load_during
                                .iter()
                                .map(|(w, l)| {
                                    format!(
                                        "{}: {} sent, {} failed, p99 ≤ {:.1} ms, max {:.1} ms",
                                        w, l.sent, l.failed, l.worst_p99_ms, l.worst_max_ms
                                    )
                                })
                                .collect();
                            tr {
                                td { (f.step) }
                                td { (f.action) }
                                td { (f.target) }
                                td class="nowrap" { (self.when(f.injected_at)) }
                                td class="nowrap" {
                                    @match f.rolled_back_at {
                                        Some(t) => (self.when(t)),
                                        None => "—",
                                    }
                                }
                                td class="detail" {
                                    @if during.is_empty() { "—" } @else { (during.join("; ")) }
                                }
                                td class="detail" { (detail_text(&f.detail)) }
                            }
                        }
                    }
                }
            }
        }
    }

    fn incidents(&self, logs_dir: &Path) -> Markup {
        if self.incidents.is_empty() {
            return html! {
                section id="incidents" {
                    h2 { "Incidents" }
                    p class="muted" { "No crash, hang, fault or failed assertion." }
                }
            };
        }
        // Which incidents get log lines: failures first, then crashes and
        // hangs, then faults; earliest first within each.
        let mut order: Vec<usize> = (0..self.incidents.len()).collect();
        order.sort_by_key(|&i| (self.incidents[i].what[0].0, self.incidents[i].at));
        order.truncate(MAX_EXCERPTS);
        let mut wanted: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for &i in &order {
            if let Some(s) = self.incidents[i].service.as_deref() {
                wanted.entry(s).or_default().push(i);
            }
        }
        let mut excerpts: HashMap<usize, Result<logs::Excerpt, logs::Missing>> = HashMap::new();
        for (service, idx) in wanted {
            let times: Vec<i64> = idx.iter().map(|&i| self.incidents[i].at).collect();
            match logs::excerpts(logs_dir, service, &times) {
                Ok(found) => excerpts.extend(idx.into_iter().zip(found.into_iter().map(Ok))),
                Err(e) => excerpts.extend(idx.into_iter().map(|i| (i, Err(e.clone())))),
            }
        }
        html! {
            section id="incidents" {
                h2 { "Incidents" }
                @if self.incidents.len() > MAX_EXCERPTS {
                    p class="note" {
                        (self.incidents.len())
                        " incidents; log lines are shown for " (MAX_EXCERPTS)
                        " of them (failures first). The others are listed with their time."
                    }
                }
                @for (k, inc) in self.incidents.iter().enumerate() {
                    article class={ "incident " (inc.what[0].0.class()) } id={ "incident-" (k) } {
                        h3 {
                            span class="at" { (self.when(inc.at)) } " "
                            (inc.service.as_deref().unwrap_or("run"))
                            @if let Some(v) = inc.service.as_deref().and_then(|s| self.view(s)) {
                                " · " a href={ "#" (v.id) "-life" } { "chart" }
                            }
                        }
                        ul {
                            @for (kind, text) in &inc.what {
                                li class=(kind.class()) { (text) }
                            }
                        }
                        @match excerpts.get(&k) {
                            Some(Ok(e)) => (self.excerpt(e, inc.at)),
                            Some(Err(logs::Missing::NoLog)) => p class="muted" { "No log file for this service." },
                            Some(Err(logs::Missing::BadName)) => p class="muted" { "The service's name is not a file name: its log was not read." },
                            None => {}
                        }
                    }
                }
            }
        }
    }

    fn excerpt(&self, e: &logs::Excerpt, at: i64) -> Markup {
        if e.before.is_empty() && e.after.is_empty() {
            return html! {
                p class="muted" { "Nothing logged within " (logs::WINDOW_MS / 1000) " s of it." }
            };
        }
        let line = |l: &logs::LogLine| {
            html! {
                span class="t" { (l.ts.map(|t| self.clock(t)).unwrap_or_default()) } " "
                span class={ "s " (if l.stream == "err" { "err" } else { "" }) } { (format_args!("{:4}", l.stream)) } " "
                (l.text) "\n"
            }
        };
        html! {
            pre class="log" {
                @for l in &e.before { (line(l)) }
                // A block of its own: no newline after it, or the pre shows a blank line.
                span class="here" { "▶ " (self.clock(at)) "  incident" }
                @for l in &e.after { (line(l)) }
            }
        }
    }

    fn timeline(&self) -> Markup {
        let shown: Vec<&EventRow> = self
            .data
            .events
            .iter()
            .filter(|e| !matches!(e.event, Event::Load { .. }))
            .collect();
        let loads = self.data.events.len() - shown.len();
        html! {
            section id="timeline" {
                h2 { "Event timeline" }
                @if loads > 0 {
                    p class="muted" { (loads) " " code { "load" } " events are drawn in the latency charts, not listed." }
                }
                table class="events" {
                    thead { tr { th { "time" } th { "service" } th { "event" } th { "detail" } } }
                    tbody {
                        @for row in capped(&shown, MAX_ROWS) {
                            @match row {
                                None => (gap_row(4, shown.len() - MAX_ROWS / 2 * 2)),
                                Some((_, e)) => {
                                    tr class=[row_class(&e.event)] {
                                        td class="nowrap" { (self.when(e.ts)) }
                                        td { (e.service.as_deref().unwrap_or("—")) }
                                        td class="nowrap" { (e.kind) }
                                        td class="detail" { (detail_text(&e.detail)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A timeline row's colour: failures red, faults amber.
fn row_class(e: &Event) -> Option<&'static str> {
    match e {
        Event::Hung { .. }
        | Event::GaveUp { .. }
        | Event::ProbeFailed { .. }
        | Event::Orphans { .. }
        | Event::Interrupted {}
        | Event::NotSteady { .. } => Some("fail"),
        Event::Exited { cause, .. } if cause.is_failure() => Some("fail"),
        Event::FaultInjected { .. } | Event::FaultRolledBack { .. } => Some("faultrow"),
        _ => None,
    }
}

/// The rows of a long table: all of them, or the first and last `max / 2`
/// with one `None` between them standing for the rows left out.
fn capped<T>(rows: &[T], max: usize) -> Vec<Option<(usize, &T)>> {
    if rows.len() <= max {
        return rows.iter().enumerate().map(Some).collect();
    }
    let half = max / 2;
    let tail = rows.len() - half;
    rows.iter()
        .enumerate()
        .take(half)
        .map(Some)
        .chain([None])
        .chain(rows.iter().enumerate().skip(tail).map(Some))
        .collect()
}

fn gap_row(cols: usize, omitted: usize) -> Markup {
    html! {
        tr class="gap" {
            td colspan=(cols) { "… " (omitted) " rows left out; the journal has them all …" }
        }
    }
}

/// The big word at the top, and its colour class.
fn label(r: &Report) -> (&'static str, &'static str) {
    match r.verdict {
        Verdict::Fail => ("FAIL", "fail"),
        _ if r.interrupted => ("INTERRUPTED", "interrupted"),
        Verdict::Pass => ("PASS", "pass"),
        Verdict::Unknown => ("UNKNOWN", "unknown"),
    }
}

fn verdict_word(v: Verdict) -> (&'static str, &'static str) {
    match v {
        Verdict::Pass => ("pass", "pass"),
        Verdict::Fail => ("fail", "fail"),
        Verdict::Unknown => ("unknown", "unknown"),
    }
}

/// A JSON detail as `key=value` pairs, strings unquoted, cut to a line.
fn detail_text(v: &serde_json::Value) -> String {
    let mut s = match v {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}={s}"),
                v => format!("{k}={v}"),
            })
            .collect::<Vec<_>>()
            .join("  "),
        serde_json::Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    if s.chars().count() > MAX_DETAIL_CHARS {
        s = s.chars().take(MAX_DETAIL_CHARS).collect::<String>() + "…";
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{MetricRow, RunRow, SampleRow};
    use crate::report::build;
    use crate::verdict::{Assertion, FittedTrend};
    use proptest::prelude::*;
    use serde_json::json;

    const T0: i64 = 1_795_392_000_000;
    const XSS_TAG: &str = "<script>alert(1)</script>";
    const XSS_ATTR: &str = "\"><img src=x onerror=alert(1)>";

    fn run(ended: i64) -> Option<RunRow> {
        Some(RunRow {
            id: "20261123-000000-test".into(),
            scenario: Some("kill-gateway".into()),
            started_at: T0,
            ended_at: Some(ended),
            seed: None,
            soak_version: "0.1.0".into(),
            interrupted: false,
            config_path: None,
            config: None,
            scenario_path: None,
            scenario_toml: None,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn inc(
        id: i64,
        service: &str,
        start: i64,
        end: Option<i64>,
        code: Option<i32>,
        signal: Option<&str>,
        cause: Option<&str>,
        orphans: i64,
    ) -> IncarnationRow {
        IncarnationRow {
            id,
            service: service.into(),
            pid: Some(100 + id as i32),
            started_at: start,
            ready_at: Some(start + 100),
            ended_at: end,
            exit_code: code,
            signal: signal.map(str::to_string),
            cause: cause.and_then(Cause::parse),
            orphans: Some(orphans),
        }
    }

    fn ev(ts: i64, service: &str, event: Event) -> EventRow {
        EventRow::new(ts, ts, Some(service), event)
    }

    fn assertion(
        name: &str,
        service: &str,
        verdict: Verdict,
        reason: &str,
        at: Option<i64>,
    ) -> Assertion {
        Assertion {
            name: name.into(),
            service: Some(service.into()),
            verdict,
            expected: "as expected".into(),
            observed: "as observed".into(),
            reason: reason.into(),
            at,
            trend: None,
        }
    }

    /// The part of the page a reviewer sees first: above the assertion table.
    fn top(html: &str) -> &str {
        &html[..html.find("id=\"assertions\"").expect("an assertion table")]
    }

    /// The `<svg>` element with this id.
    fn svg<'h>(html: &'h str, id: &str) -> &'h str {
        let start = html
            .find(&format!("<svg id=\"{id}\""))
            .unwrap_or_else(|| panic!("no chart {id}"));
        let len = html[start..].find("</svg>").expect("a closed svg");
        &html[start..start + len]
    }

    fn kill_run() -> RunData {
        RunData {
            run: run(T0 + 12_000),
            incarnations: vec![
                inc(
                    1,
                    "gateway",
                    T0 + 10,
                    Some(T0 + 3_150),
                    None,
                    Some("KILL"),
                    Some("planned"),
                    2,
                ),
                inc(
                    2,
                    "gateway",
                    T0 + 3_280,
                    Some(T0 + 11_900),
                    Some(0),
                    None,
                    Some("stopped"),
                    0,
                ),
            ],
            events: vec![
                // As chaos.rs journals it: kind and JSON.
                EventRow::from_row(
                    T0 + 3_000,
                    T0 + 3_000,
                    Some("gateway"),
                    "fault-injected".into(),
                    json!({"step": 0, "action": "kill", "signal": "KILL", "pids": [101]}),
                ),
                ev(
                    T0 + 3_150,
                    "gateway",
                    Event::Exited {
                        pid: 101,
                        incarnation: 1,
                        exit_code: None,
                        signal: Some("KILL".into()),
                        cause: Cause::Planned,
                        orphans: 2,
                        killed_after_grace: false,
                        up_ms: 3_050,
                        log_bytes: 0,
                    },
                ),
                ev(
                    T0 + 4_000,
                    "gateway",
                    Event::Load {
                        workload: "work".into(),
                        sent: 5,
                        ok: 4,
                        failed: 1,
                        p50_ms: 2.0,
                        p99_ms: 9.0,
                        max_ms: 11.0,
                        errors: vec![("status 503".into(), 1)],
                        histogram: serde_json::Value::Null,
                    },
                ),
            ],
            ..RunData::default()
        }
    }

    /// A gateway that reaches the store through `[links.store]`, a
    /// latency fault on that link, a kept gauge and counter, soak's lag,
    /// and a `cache` that never started.
    fn link_run() -> RunData {
        let config = r#"
[services.store]
command = ["store", "--port", "{port}"]
[services.gateway]
command = ["gateway", "--port", "{port}", "--store", "{link.store}"]
[services.bystander]
command = ["bystander", "--port", "{port}"]
[services.cache]
command = ["no-such-cache"]
[links.store]
to = "store"
"#;
        let mut row = run(T0 + 60_000).unwrap();
        row.config_path = Some("/tmp/soak.toml".into());
        row.config = Some(config.into());
        let link = |ts, event| EventRow::new(ts, ts, Some("store"), event);
        let mut metrics = Vec::new();
        for i in 0..12 {
            let ts = T0 + i * 5_000;
            metrics.push(MetricRow {
                ts,
                incarnation: 1,
                name: "queue_depth".into(),
                value: i as f64,
            });
            metrics.push(MetricRow {
                ts,
                incarnation: 1,
                name: "errors_total".into(),
                value: (i * 10) as f64,
            });
        }
        RunData {
            run: Some(row),
            incarnations: vec![
                inc(1, "gateway", T0, None, None, None, None, 0),
                inc(2, "store", T0, None, None, None, None, 0),
                inc(3, "bystander", T0, None, None, None, None, 0),
            ],
            events: vec![
                link(
                    T0 + 10_000,
                    Event::LinkUp {
                        listen: "127.0.0.1:4000".into(),
                        to: "127.0.0.1:4001".into(),
                    },
                ),
                ev(
                    T0 + 1_000,
                    "cache",
                    Event::SpawnFailed {
                        error: format!("no-such-cache: not found {XSS_TAG}"),
                    },
                ),
                EventRow::from_row(
                    T0 + 20_000,
                    T0 + 20_000,
                    Some("store"),
                    "fault-injected".into(),
                    json!({"step": 0, "action": "latency", "delay_ms": 500}),
                ),
                EventRow::from_row(
                    T0 + 40_000,
                    T0 + 40_000,
                    Some("store"),
                    "fault-rolled-back".into(),
                    json!({"step": 0, "action": "latency", "held_ms": 20_000}),
                ),
            ],
            metrics,
            link_samples: (0..12)
                .map(|i| crate::journal::LinkSampleRow {
                    ts: T0 + i * 5_000,
                    link: "store".into(),
                    connections: i,
                    active: 1,
                    bytes_up: i * 1_000,
                    bytes_down: i * 8_000,
                })
                .collect(),
            lag: vec![crate::journal::LagRow {
                ts: T0 + 5_000,
                p99_ms: 1.0,
                max_ms: 4.0,
            }],
            ..RunData::default()
        }
    }

    #[test]
    fn a_link_fault_is_drawn_on_both_ends_and_not_elsewhere() {
        let data = link_run();
        let report = build(&data, None, Vec::new());
        let html = render(&report, &data, Path::new("/nonexistent"));
        let page = Page::new(&report, &data);
        let id = |name: &str| page.view(name).unwrap().id.clone();
        for end in ["gateway", "store"] {
            assert!(
                svg(&html, &format!("{}-life", id(end))).contains("latency store"),
                "{end}"
            );
        }
        assert!(!svg(&html, &format!("{}-life", id("bystander"))).contains("latency"));
        // And on the link's own charts.
        assert!(svg(&html, "l0-conn").contains("latency"));
        assert!(svg(&html, "l0-bytes").contains("latency"));
    }

    #[test]
    fn kept_metrics_get_a_chart_each_and_counters_are_rates() {
        let data = link_run();
        let html = render(
            &build(&data, None, Vec::new()),
            &data,
            Path::new("/nonexistent"),
        );
        assert!(html.contains("<code>errors_total</code> (rate)"));
        assert!(html.contains("<code>queue_depth</code> <span"));
        // 10 per 5 s scrape.
        assert!(html.contains("<code>errors_total</code> (rate) <span class=\"stat\">peak 2.000"));
    }

    #[test]
    fn the_host_section_shows_soaks_runtime_lag() {
        let data = link_run();
        let html = render(
            &build(&data, None, Vec::new()),
            &data,
            Path::new("/nonexistent"),
        );
        assert!(html.contains("worst p99 1.0 ms · worst 4.0 ms"));
        svg(&html, "host-lag");
        let quiet = kill_run();
        let html = render(
            &build(&quiet, None, Vec::new()),
            &quiet,
            Path::new("/nonexistent"),
        );
        assert!(!html.contains("id=\"host\""));
    }

    #[test]
    fn a_service_that_never_started_says_so_first() {
        let data = link_run();
        let report = build(&data, None, Vec::new());
        let html = render(&report, &data, Path::new("/nonexistent"));
        let page = Page::new(&report, &data);
        let section = &html[html
            .find(&format!("id=\"{}\"", page.view("cache").unwrap().id))
            .unwrap()..];
        let first = &section[..section.find("<h3>").unwrap()];
        assert!(first.contains("Never started."), "{first}");
        assert!(first.contains("no-such-cache: not found &lt;script&gt;"));
        let started = &html[html
            .find(&format!("id=\"{}\"", page.view("gateway").unwrap().id))
            .unwrap()..];
        assert!(!started[..started.find("<h3>").unwrap()].contains("Never started"));
    }

    #[test]
    fn a_failed_chaos_run_says_what_failed_why_and_when_at_the_top() {
        let data = kill_run();
        let reason = "2 process(es) outlived gateway's main process (pid 101), 2 still listening on its port";
        let report = build(
            &data,
            Some("kill -9 the gateway".into()),
            vec![
                assertion(
                    "healthy_within",
                    "gateway",
                    Verdict::Pass,
                    "healthy again",
                    Some(T0 + 3_400),
                ),
                assertion(
                    "no_orphans",
                    "gateway",
                    Verdict::Fail,
                    reason,
                    Some(T0 + 3_150),
                ),
            ],
        );
        let logs = tempfile::tempdir().unwrap();
        std::fs::write(
            logs.path().join("gateway.log"),
            format!(
                "{} err gateway[worker 1]: master is gone; staying up\n",
                rfc3339_ms(T0 + 3_100)
            ),
        )
        .unwrap();
        let html = render(&report, &data, logs.path());
        let top = top(&html);
        assert!(top.contains(">FAIL<"), "the verdict is at the top");
        assert!(top.contains("<b>no_orphans</b>"));
        // Its apostrophe needs no escape: maud leaves it as it is.
        assert!(top.contains(reason));
        assert!(top.contains("00:00:03.150"), "the time it happened");
        assert!(
            !top.contains("healthy again"),
            "passing assertions stay in the table"
        );
        // The link goes to the service's chart, which exists further down,
        // and carries the failure's mark.
        assert!(top.contains("href=\"#s0-life\""));
        assert!(svg(&html, "s0-life").contains("✕ no_orphans"));
        // The logs around it are one click away.
        assert!(top.contains("href=\"#incident-0\""));
        let incident = &html[html.find("id=\"incident-0\"").unwrap()..];
        assert!(incident.contains("master is gone"));
        assert!(incident.contains("fault step 0: kill gateway"));
        // Latency and errors from the load events.
        assert!(svg(&html, "s0-lat0").contains("class=\"line\""));
        assert!(svg(&html, "s0-err0").contains("class=\"line\""));
    }

    #[test]
    fn a_leaking_soak_shows_the_verdicts_rss_trend_and_its_projection() {
        const HOUR: i64 = 3_600_000;
        let end = T0 + 6 * HOUR;
        // 50 MB/h from 100 MB, sampled every 10 s, with a GC-like sawtooth.
        let samples: Vec<SampleRow> = (0..6 * 360)
            .map(|i| {
                let ts = T0 + i * 10_000;
                let mb = 100.0 + 50.0 * (ts - T0) as f64 / HOUR as f64 + (i % 30) as f64 * 0.3;
                SampleRow {
                    ts,
                    incarnation: 1,
                    rss_bytes: (mb * MB) as i64,
                    cpu_seconds: i as f64 * 0.5,
                    fds: 20,
                    threads: 8,
                    processes: 1,
                }
            })
            .collect();
        let data = RunData {
            run: run(end),
            incarnations: vec![inc(
                1,
                "store",
                T0,
                Some(end),
                Some(0),
                None,
                Some("stopped"),
                0,
            )],
            samples,
            ..RunData::default()
        };
        // The verdict's own line, deliberately not what the samples would
        // refit to: the chart must draw (and label) this one.
        let reason = "store: RSS grows 42.0 MB/h, above the 10.0 MB/h limit";
        let mut judged = assertion("rss_slope_max", "store", Verdict::Fail, reason, Some(end));
        judged.trend = Some(FittedTrend {
            incarnation: 1,
            warmup_ms: 5 * 60_000,
            from: T0 + 5 * 60_000,
            to: end - 10_000,
            value_at_from: 104.0 * MB,
            slope_per_hour: 42.0 * MB,
            projected_limit_ms: None,
        });
        let report = build(&data, None, vec![judged]);
        let html = render(&report, &data, Path::new("/nonexistent"));
        assert!(top(&html).contains("href=\"#s0-rss\""));
        let rss = svg(&html, "s0-rss");
        assert!(rss.contains("class=\"trend\""));
        assert!(rss.contains("class=\"projection\""));
        assert!(rss.contains("✕ rss_slope_max"));
        let label = &rss[rss.find("trend +").unwrap() + 7..];
        let slope: f64 = label[..label.find(' ').unwrap()].parse().unwrap();
        assert_eq!(slope, 42.0);
        // Without a fitted line in the verdict, no line of its own.
        let unfitted = build(
            &data,
            None,
            vec![assertion(
                "rss_slope_max",
                "store",
                Verdict::Fail,
                reason,
                Some(end),
            )],
        );
        let html = render(&unfitted, &data, Path::new("/nonexistent"));
        assert!(!svg(&html, "s0-rss").contains("class=\"trend\""));
        for id in ["s0-cpu", "s0-fds", "s0-threads"] {
            assert!(svg(&html, id).contains("class=\"line\""), "{id}");
        }
    }

    #[test]
    fn strings_from_services_logs_and_configs_are_escaped() {
        let evil = format!("{XSS_TAG}{XSS_ATTR}");
        let mut data = kill_run();
        data.incarnations.push(inc(
            3,
            &evil,
            T0,
            Some(T0 + 5_000),
            Some(1),
            Some(&evil),
            Some("unplanned"),
            0,
        ));
        data.incarnations.push(inc(
            4,
            "gateway",
            T0 + 11_950,
            Some(T0 + 11_990),
            Some(3),
            None,
            Some("gave-up"),
            0,
        ));
        data.events.push(ev(
            T0 + 5_000,
            &evil,
            Event::Hung {
                pid: 1,
                reason: evil.clone(),
                ready: true,
            },
        ));
        data.events.push(EventRow::from_row(
            T0 + 5_000,
            T0 + 5_000,
            Some(&evil),
            evil.clone(),
            json!({evil.clone(): evil}),
        ));
        let report = build(
            &data,
            Some(evil.clone()),
            vec![
                assertion(&evil, &evil, Verdict::Fail, &evil, Some(T0 + 5_000)),
                assertion(
                    "survives",
                    "gateway",
                    Verdict::Fail,
                    &evil,
                    Some(T0 + 11_990),
                ),
            ],
        );
        let logs = tempfile::tempdir().unwrap();
        std::fs::write(
            logs.path().join("gateway.log"),
            format!("{} out {evil}\n", rfc3339_ms(T0 + 11_980)),
        )
        .unwrap();
        let html = render(&report, &data, logs.path());
        assert!(
            !html.contains("<script"),
            "no script at all, so none injected"
        );
        assert!(!html.contains("<img"));
        let escaped = maud::html! { (evil) }.into_string();
        assert!(escaped.starts_with("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img"));
        // In the banner, the why list, the tables, the charts' titles, the
        // incidents and the log excerpt.
        assert!(
            html.matches(&escaped).count() >= 8,
            "{}",
            html.matches(&escaped).count()
        );
        let log = &html[html.find("<pre class=\"log\">").unwrap()..];
        assert!(log[..log.find("</pre>").unwrap()].contains(&escaped));
    }

    #[test]
    fn an_empty_journal_renders_a_page() {
        let data = RunData::default();
        let html = render(&build(&data, None, vec![]), &data, Path::new(""));
        assert!(html.contains("id=\"verdict\""));
        assert!(html.ends_with("</html>\n"));
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(XSS_TAG.to_string()),
            Just(XSS_ATTR.to_string()),
            "\\PC{0,12}"
        ]
    }

    fn time() -> impl Strategy<Value = i64> {
        prop_oneof![4 => T0..T0 + 100_000, 1 => any::<i64>()]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_journal_renders_without_panicking_or_injecting(
            incs in prop::collection::vec((0i64..4, text(), time(), prop::option::of(time()), prop::option::of(text())), 0..6),
            events in prop::collection::vec((time(), prop::option::of(text()), text(), text()), 0..12),
            samples in prop::collection::vec((time(), 0i64..5, any::<i64>(), any::<f64>(), any::<i64>()), 0..40),
            verdicts in prop::collection::vec((0u8..3, text(), prop::option::of(time())), 0..4),
            start in time(),
            end in prop::option::of(time()),
        ) {
            let mut data = RunData {
                run: run(0),
                ..RunData::default()
            };
            if let Some(r) = data.run.as_mut() {
                r.started_at = start;
                r.ended_at = end;
            }
            data.incarnations = incs
                .iter()
                .map(|(id, svc, st, en, cause)| IncarnationRow {
                    ready_at: Some(st.saturating_add(5)),
                    ..inc(*id, svc, *st, *en, None, cause.as_deref(), cause.as_deref(), -1)
                })
                .collect();
            data.events = events
                .iter()
                .map(|(ts, svc, kind, d)| EventRow::from_row(
                    0,
                    *ts,
                    svc.as_deref(),
                    if kind.len() % 3 == 0 { "load".into() } else { kind.clone() },
                    json!({"workload": d, "sent": ts % 7, "ok": 0, "failed": 1, "p50_ms": 1.0, "p99_ms": d.len(), "max_ms": 2.0, "errors": [], "histogram": null, "cause": "hung", "step": 0, "action": d}),
                ))
                .collect();
            data.samples = samples
                .iter()
                .map(|&(ts, incarnation, rss, cpu, fds)| SampleRow {
                    ts,
                    incarnation,
                    rss_bytes: rss,
                    cpu_seconds: cpu,
                    fds,
                    threads: fds,
                    processes: 1,
                })
                .collect();
            let assertions = verdicts
                .iter()
                .map(|(v, s, at)| {
                    let v = [Verdict::Pass, Verdict::Fail, Verdict::Unknown][*v as usize];
                    assertion("rss_slope_max", s, v, s, *at)
                })
                .collect();
            // `build` is not under test here (and does plain arithmetic on
            // times): it gets a sane copy; the page gets the wild data and a
            // wild run start.
            let mut sane = data.clone();
            for e in &mut sane.events {
                e.ts = e.ts.clamp(T0, T0 + 100_000);
            }
            if let Some(r) = sane.run.as_mut() {
                r.started_at = T0;
                r.ended_at = end.map(|e| e.clamp(T0, T0 + 100_000));
            }
            let mut report = build(&sane, None, assertions);
            report.run.started_at = start;
            report.run.ended_at = end;
            let html = render(&report, &data, Path::new("/nonexistent"));
            prop_assert!(!html.contains("<script") && !html.contains("<img"));
            prop_assert!(html.ends_with("</html>\n"));
        }
    }
}
