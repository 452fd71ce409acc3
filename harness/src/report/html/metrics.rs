//! A service's kept metrics (`[services.NAME.metrics] keep`): one chart per
//! series over the run, each incarnation its own line segment (a restart
//! starts its numbers again), with the service's restarts and fault
//! windows. Counters (`_total`, by Prometheus naming) are drawn as their
//! rate per second: a counter's level says nothing a reader can use.

use super::chart::{self, MAX_POINTS, Marks, Point, Series, downsample};
use super::{Page, ServiceView};
use crate::journal::{MetricRow, RunData};
use maud::{Markup, html};
use std::collections::HashMap;

/// One kept series of one service, ready to draw: its points (a counter's
/// rates) downsampled.
pub(super) struct MetricChart {
    series: String,
    counter: bool,
    points: Vec<Point>,
}

impl MetricChart {
    /// Each service's charts, by series name: one series is read at a
    /// time (a 72 h series scraped every 5 s is 52 000 rows) and split by
    /// the service of its incarnations (`services` maps an incarnation to
    /// its service's index among `n`).
    pub(super) fn read(
        data: &RunData,
        services: &HashMap<i64, usize>,
        n: usize,
    ) -> Vec<Result<Vec<MetricChart>, String>> {
        let mut out: Vec<Vec<MetricChart>> = (0..n).map(|_| Vec::new()).collect();
        let read = data.metric_names().and_then(|names| {
            for name in names {
                let rows = data.metric_series(&name)?;
                let mut by_service: Vec<Vec<&MetricRow>> = vec![Vec::new(); n];
                for r in &rows {
                    if let Some(&s) = services.get(&r.incarnation) {
                        by_service[s].push(r);
                    }
                }
                for (s, rows) in by_service.into_iter().enumerate() {
                    if !rows.is_empty() {
                        out[s].push(MetricChart::of(&name, &rows));
                    }
                }
            }
            Ok(())
        });
        match read {
            Ok(()) => out.into_iter().map(Ok).collect(),
            Err(e) => (0..n).map(|_| Err(e.to_string())).collect(),
        }
    }

    fn of(series: &str, rows: &[&MetricRow]) -> MetricChart {
        let counter = is_counter(series);
        let points = if counter {
            rates(rows)
        } else {
            rows.iter()
                .map(|r| Point {
                    t: r.ts as f64,
                    v: r.value,
                    seg: r.incarnation,
                })
                .collect()
        };
        MetricChart {
            series: series.to_string(),
            counter,
            points: downsample(&points, MAX_POINTS),
        }
    }
}

impl Page<'_> {
    pub(super) fn metric_charts(&self, v: &ServiceView, marks: &Marks) -> Markup {
        let charts = match &v.metrics {
            Ok(charts) => charts,
            Err(e) => {
                return html! { p class="muted" { "Its metrics could not be read: " (e) } };
            }
        };
        html! {
            @for (k, c) in charts.iter().enumerate() {
                @let (series, counter, points) = (&c.series, c.counter, c.points.clone());
                @let peak = points.iter().map(|p| p.v).fold(f64::NAN, f64::max);
                @let last = points.last().map_or(f64::NAN, |p| p.v);
                h3 {
                    "Metric " code { (series) }
                    @if counter { " (rate)" }
                    " "
                    span class="stat" { "peak " (number(peak)) " · last " (number(last)) }
                }
                (chart::line_chart(
                    &format!("{}-m{k}", v.id),
                    if counter { "per s" } else { "value" },
                    &[Series {
                        name: if counter { "per second" } else { "value" },
                        color: "#2f7f86",
                        points,
                    }],
                    None,
                    self.span,
                    marks,
                ))
            }
        }
    }
}

/// A Prometheus counter by its name (`errors_total{route="/"}`).
fn is_counter(series: &str) -> bool {
    series
        .split('{')
        .next()
        .is_some_and(|name| name.ends_with("_total"))
}

/// Growth per second between consecutive scrapes of one incarnation. A
/// value lower than the one before is a reset (all of it is growth since),
/// as in Prometheus's `rate()`; a new incarnation starts a new segment.
fn rates(rows: &[&MetricRow]) -> Vec<Point> {
    rows.windows(2)
        .filter(|w| w[0].incarnation == w[1].incarnation && w[1].ts > w[0].ts)
        .map(|w| {
            let (a, b) = (w[0], w[1]);
            let grew = if b.value >= a.value {
                b.value - a.value
            } else {
                b.value
            };
            Point {
                t: b.ts as f64,
                v: grew / ((b.ts - a.ts) as f64 / 1000.0),
                seg: b.incarnation,
            }
        })
        .collect()
}

/// Metric values span nanoseconds to bytes: three significant digits.
fn number(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    let a = v.abs();
    if a != 0.0 && !(0.01..1e6).contains(&a) {
        format!("{v:.3e}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ts: i64, incarnation: i64, value: f64) -> MetricRow {
        MetricRow {
            ts,
            incarnation,
            name: "errors_total".into(),
            value,
        }
    }

    #[test]
    fn a_counter_is_drawn_as_its_rate_and_restarts_from_zero() {
        let rows = [
            row(0, 1, 10.0),
            row(1_000, 1, 20.0),
            row(2_000, 1, 5.0),
            row(3_000, 2, 1.0),
            row(4_000, 2, 3.0),
        ];
        let refs: Vec<&MetricRow> = rows.iter().collect();
        let r = rates(&refs);
        let v: Vec<(f64, i64)> = r.iter().map(|p| (p.v, p.seg)).collect();
        assert_eq!(v, [(10.0, 1), (5.0, 1), (2.0, 2)]);
    }

    #[test]
    fn only_total_series_are_counters() {
        assert!(is_counter("errors_total"));
        assert!(is_counter(r#"http_requests_total{route="/x_total"}"#));
        assert!(!is_counter("queue_depth"));
        assert!(!is_counter(r#"queue{kind="a_total"}"#));
    }
}
