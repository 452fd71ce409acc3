//! A service's kept metrics (`[services.NAME.metrics] keep`): one chart per
//! series over the run, each incarnation its own line segment (a restart
//! starts its numbers again), with the service's restarts and fault
//! windows. Counters (`_total`, by Prometheus naming) are drawn as their
//! rate per second: a counter's level says nothing a reader can use.

use super::chart::{self, MAX_POINTS, Marks, Point, Series, downsample};
use super::{Page, ServiceView, esc};
use crate::journal::MetricRow;
use std::fmt::Write;

impl Page<'_> {
    pub(super) fn metric_charts(&self, h: &mut String, v: &ServiceView, marks: &Marks) {
        for (k, (series, rows)) in v.metrics.iter().enumerate() {
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
            let points = downsample(&points, MAX_POINTS);
            let peak = points.iter().map(|p| p.v).fold(f64::NAN, f64::max);
            let last = points.last().map_or(f64::NAN, |p| p.v);
            let _ = write!(
                h,
                "<h3>Metric <code>{}</code>{} <span class=\"stat\">peak {} · last {}</span></h3>",
                esc(series),
                if counter { " (rate)" } else { "" },
                number(peak),
                number(last)
            );
            h.push_str(&chart::line_chart(
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
            ));
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
