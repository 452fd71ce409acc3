//! Counters across restarts: how fast a `_total` series grew, when each
//! restart of the service starts its counters again from zero.
//!
//! The rule is Prometheus's `increase()`: within one process a counter
//! only grows, so a value lower than the one before means a reset, and the
//! new value is all growth since it. soak also knows when the process
//! changed (the journal's incarnation), which catches the reset Prometheus
//! misses: a new process that counted past the old value before its first
//! scrape. Growth between an incarnation's last scrape and its death is not
//! seen by anyone, so rates across restarts are a lower bound.

/// One scraped value of a counter series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CounterPoint {
    /// Milliseconds since the Unix epoch, as in the journal.
    pub ts: i64,
    /// The journal's incarnation id of the process that served the value.
    pub incarnation: i64,
    pub value: f64,
}

/// Total growth of the counter over `points` (taken in time order). NaN
/// values are skipped; an empty or single-point series grew by 0.
pub fn counter_increase(points: &[CounterPoint]) -> f64 {
    let mut sorted: Vec<CounterPoint> = points
        .iter()
        .copied()
        .filter(|p| p.value.is_finite())
        .collect();
    sorted.sort_by_key(|p| p.ts);
    sorted
        .windows(2)
        .map(|w| {
            let (a, b) = (w[0], w[1]);
            if b.incarnation != a.incarnation || b.value < a.value {
                b.value.max(0.0)
            } else {
                b.value - a.value
            }
        })
        .sum()
}

/// Growth per second between the first and the last point, or None when
/// there is no time span to divide by (fewer than two points, same ts).
pub fn counter_rate(points: &[CounterPoint]) -> Option<f64> {
    let finite = || points.iter().filter(|p| p.value.is_finite());
    let first = finite().map(|p| p.ts).min()?;
    let last = finite().map(|p| p.ts).max()?;
    if last <= first {
        return None;
    }
    Some(counter_increase(points) / ((last - first) as f64 / 1000.0))
}

/// The highest rate over any `window_ms` of the series: for each point, the
/// rate from it to the last point at most `window_ms` later, counting only
/// windows that span at least half of `window_ms` (a short span between two
/// close scrapes says little). None when no window is long enough.
pub fn max_counter_rate(points: &[CounterPoint], window_ms: i64) -> Option<f64> {
    let mut sorted: Vec<CounterPoint> = points
        .iter()
        .copied()
        .filter(|p| p.value.is_finite())
        .collect();
    sorted.sort_by_key(|p| p.ts);
    let mut best: Option<f64> = None;
    let mut end = 0;
    for start in 0..sorted.len() {
        end = end.max(start);
        while end + 1 < sorted.len() && sorted[end + 1].ts - sorted[start].ts <= window_ms {
            end += 1;
        }
        let span = sorted[end].ts - sorted[start].ts;
        if span * 2 < window_ms || span == 0 {
            continue;
        }
        let r = counter_rate(&sorted[start..=end]).unwrap_or(0.0);
        best = Some(best.map_or(r, |b: f64| b.max(r)));
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(v: &[(i64, i64, f64)]) -> Vec<CounterPoint> {
        v.iter()
            .map(|&(ts, incarnation, value)| CounterPoint {
                ts,
                incarnation,
                value,
            })
            .collect()
    }

    #[test]
    fn within_one_incarnation_rate_is_growth_over_time() {
        let p = pts(&[(0, 1, 10.0), (1000, 1, 20.0), (2000, 1, 30.0)]);
        assert_eq!(counter_increase(&p), 20.0);
        assert_eq!(counter_rate(&p), Some(10.0));
    }

    #[test]
    fn a_decrease_is_a_reset_and_counts_from_zero() {
        let p = pts(&[
            (0, 1, 100.0),
            (1000, 1, 110.0),
            (2000, 1, 5.0),
            (3000, 1, 15.0),
        ]);
        assert_eq!(counter_increase(&p), 10.0 + 5.0 + 10.0);
        assert_eq!(counter_rate(&p), Some(25.0 / 3.0));
    }

    #[test]
    fn a_new_incarnation_is_a_reset_even_when_the_value_is_higher() {
        let p = pts(&[
            (0, 1, 10.0),
            (1000, 1, 20.0),
            (2000, 2, 30.0),
            (3000, 2, 40.0),
        ]);
        assert_eq!(counter_increase(&p), 10.0 + 30.0 + 10.0);
    }

    #[test]
    fn order_and_nan_do_not_matter() {
        let p = pts(&[
            (2000, 1, 30.0),
            (0, 1, 10.0),
            (500, 1, f64::NAN),
            (1000, 1, 20.0),
        ]);
        assert_eq!(counter_rate(&p), Some(10.0));
    }

    #[test]
    fn no_span_means_no_rate() {
        assert_eq!(counter_rate(&[]), None);
        assert_eq!(counter_rate(&pts(&[(5, 1, 1.0)])), None);
        assert_eq!(counter_rate(&pts(&[(5, 1, 1.0), (5, 1, 2.0)])), None);
    }

    #[test]
    fn the_max_rate_finds_a_burst_and_a_steady_counter_stays_low() {
        // 1/s for a minute, then 50 in 10 s, then 1/s again.
        let mut v = Vec::new();
        let mut total = 0.0;
        for s in 0..120 {
            total += if (60..70).contains(&s) { 5.0 } else { 1.0 };
            v.push((s * 1000, 1, total));
        }
        let p = pts(&v);
        let burst = max_counter_rate(&p, 10_000).unwrap();
        assert!(burst >= 4.0, "burst rate {burst}");
        let steady = pts(&(0..120)
            .map(|s| (s * 1000, 1, s as f64))
            .collect::<Vec<_>>());
        let r = max_counter_rate(&steady, 10_000).unwrap();
        assert!((r - 1.0).abs() < 1e-9, "steady rate {r}");
        assert_eq!(max_counter_rate(&steady[..2], 10_000), None);
    }
}
