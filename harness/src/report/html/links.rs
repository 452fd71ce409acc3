//! Links: the fault proxies soak runs in front of dependencies. A fault on
//! a link is drawn on the charts of both its ends (the service it forwards
//! to and the services that reach it), and each link gets charts of its
//! connections and traffic with its own fault windows.

use super::Page;
use super::chart::{self, FaultMark, MAX_POINTS, Marks, Point, Series, downsample};
use crate::config::{Config, LinkTarget};
use crate::journal::{Event, LinkSampleRow, RunData};
use maud::{Markup, html};
use std::collections::BTreeMap;
use std::path::Path;

/// The actions of a link fault (`Action::Link`'s faults, as journaled).
const LINK_ACTIONS: [&str; 5] = ["latency", "blackhole", "reset", "refuse", "bandwidth"];

/// Every link of the run with the services a fault on it hits.
#[derive(Default)]
pub(super) struct Links {
    /// Link name → (the service it forwards to, if soak runs it; the
    /// services that reach it).
    ends: BTreeMap<String, (Option<String>, Vec<String>)>,
}

impl Links {
    /// From the run's config (kept in the journal) and what the journal
    /// says of links: a journal whose config no longer parses still shows
    /// its links, without their ends.
    pub(super) fn of(data: &RunData) -> Links {
        let config = data.run.as_ref().and_then(|r| {
            Config::parse(Path::new(r.config_path.as_deref()?), r.config.as_deref()?).ok()
        });
        let mut ends: BTreeMap<String, (Option<String>, Vec<String>)> = BTreeMap::new();
        if let Some(c) = &config {
            for name in c.links.keys() {
                let target = match c.link_target(name) {
                    LinkTarget::Service(s) => Some(s),
                    LinkTarget::Address(_) => None,
                };
                ends.insert(name.clone(), (target, c.dependents_of_link(name)));
            }
        }
        for e in &data.events {
            if let (Event::LinkUp { .. }, Some(link)) = (&e.event, &e.service) {
                ends.entry(link.clone()).or_default();
            }
        }
        for s in &data.link_samples {
            if !ends.contains_key(&s.link) {
                ends.insert(s.link.clone(), Default::default());
            }
        }
        Links { ends }
    }

    /// A fault `action` on `target` hits `service` through a link: it is a
    /// link fault, on a link that forwards to `service` or that `service`
    /// reaches.
    pub(super) fn hits(&self, target: &str, action: &str, service: &str) -> bool {
        LINK_ACTIONS.contains(&action)
            && self.ends.get(target).is_some_and(|(to, from)| {
                to.as_deref() == Some(service) || from.iter().any(|s| s == service)
            })
    }
}

impl Page<'_> {
    pub(super) fn links(&self) -> Markup {
        if self.links.ends.is_empty() {
            return html! {};
        }
        html! {
            section id="links" {
                h2 { "Links" }
                table {
                    thead { tr { th { "link" } th { "to" } th { "reached by" } th { "connections" } th { "peak open" } th { "bytes up" } th { "bytes down" } } }
                    tbody {
                        @for (name, (to, from)) in &self.links.ends {
                            @let info = self.report.links.get(name);
                            tr {
                                td { (name) }
                                td { (to.as_deref().unwrap_or("—")) }
                                td { @if from.is_empty() { "—" } @else { (from.join(", ")) } }
                                td { (info.map_or(0, |l| l.connections)) }
                                td { (info.map_or(0, |l| l.peak_active)) }
                                td { (info.map_or(0, |l| l.bytes_up)) }
                                td { (info.map_or(0, |l| l.bytes_down)) }
                            }
                        }
                    }
                }
                @for (k, name) in self.links.ends.keys().enumerate() {
                    (self.link_charts(k, name))
                }
            }
        }
    }

    /// Link `k`'s open connections and traffic, with its fault windows;
    /// nothing when it has no samples.
    fn link_charts(&self, k: usize, name: &str) -> Markup {
        let rows: Vec<&LinkSampleRow> = self
            .data
            .link_samples
            .iter()
            .filter(|s| s.link == name)
            .collect();
        if rows.is_empty() {
            return html! {};
        }
        let marks = Marks {
            faults: self
                .report
                .faults
                .iter()
                .filter(|f| f.target == name && LINK_ACTIONS.contains(&f.action.as_str()))
                .map(|f| FaultMark {
                    from: f.injected_at,
                    to: f.rolled_back_at,
                    label: f.action.clone(),
                    title: format!("fault step {}: {} on link {}", f.step, f.action, name),
                })
                .collect(),
            ..Marks::default()
        };
        let point = |t: i64, v: f64| Point {
            t: t as f64,
            v,
            seg: 0,
        };
        let active: Vec<Point> = rows.iter().map(|r| point(r.ts, r.active as f64)).collect();
        let (up, down) = byte_rates(&rows);
        html! {
            h3 { "Open connections through " (name) }
            (chart::line_chart(
                &format!("l{k}-conn"),
                "open",
                &[Series {
                    name: "open",
                    color: "#2f7f86",
                    points: downsample(&active, MAX_POINTS),
                }],
                None,
                self.span,
                &marks,
            ))
            h3 {
                "Traffic through " (name) " "
                span class="legend" {
                    i class="k" style="background:#3b6ea8" {} "up "
                    i class="k" style="background:#b0663a" {} "down"
                }
            }
            (chart::line_chart(
                &format!("l{k}-bytes"),
                "KB/s",
                &[
                    Series {
                        name: "up",
                        color: "#3b6ea8",
                        points: downsample(&up, MAX_POINTS),
                    },
                    Series {
                        name: "down",
                        color: "#b0663a",
                        points: downsample(&down, MAX_POINTS),
                    },
                ],
                None,
                self.span,
                &marks,
            ))
        }
    }
}

/// KB/s up and down between consecutive samples of one link (its byte
/// counts only grow; a lower one means the proxy started again).
fn byte_rates(rows: &[&LinkSampleRow]) -> (Vec<Point>, Vec<Point>) {
    let (mut up, mut down) = (Vec::new(), Vec::new());
    for w in rows.windows(2) {
        let (a, b) = (w[0], w[1]);
        let secs = (b.ts - a.ts) as f64 / 1000.0;
        if secs <= 0.0 {
            continue;
        }
        let grew = |x: i64, y: i64| if y >= x { y - x } else { y } as f64;
        let point = |bytes: f64| Point {
            t: b.ts as f64,
            v: bytes / 1024.0 / secs,
            seg: 0,
        };
        up.push(point(grew(a.bytes_up, b.bytes_up)));
        down.push(point(grew(a.bytes_down, b.bytes_down)));
    }
    (up, down)
}
