//! SVG charts of one quantity over the run's time axis, with what happened
//! to the service drawn over it (restarts, fault windows, failed
//! assertions), so a reader sees what the service was doing at the moment
//! something went wrong. Plain SVG without script: hover details are native
//! `<title>` elements, which every browser shows and no script can break.
//!
//! The SVG is written by hand, not with maud's `html!`: it is mostly
//! numbers, and maud cannot write SVG's self-closing `<line/>` (a `<line>`
//! left open would swallow the rest of the drawing). Its few strings
//! (titles and labels: service names, fault actions, a trend's label) go
//! through `text`, maud's escaping; a chart is handed to the page as
//! `Markup` once it is whole.

use maud::{Markup, PreEscaped, html};
use std::fmt::Write;

/// Points per drawn series: about one per pixel of the plot, so a 72 h run
/// at 1 s costs the same few kilobytes as a 15 s chaos run.
pub const MAX_POINTS: usize = 1000;

/// The drawing is scaled by the browser (width 100 %); these are the units
/// of the viewBox, chosen for a ~1000 px wide page.
const W: f64 = 960.0;
const LEFT: f64 = 58.0;
const RIGHT: f64 = 16.0;
/// Room above the plot for failed-assertion labels.
const TOP: f64 = 20.0;
const BOTTOM: f64 = 20.0;
const PLOT_H: f64 = 100.0;
const STRIP_H: f64 = 26.0;

/// One sample of a series: ms since the epoch, value, and the incarnation
/// it belongs to (the line breaks where that changes: a restart).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub t: f64,
    pub v: f64,
    pub seg: i64,
}

/// Reduces `points` to at most `max` (at least 4), keeping the shape a
/// reader needs: the first and last points, and in each of `(max - 2) / 2`
/// equal-count buckets between them its lowest and highest point, in time
/// order. So every spike and every dip survives (the global extremes
/// included), which averaging or striding would hide. Non-finite points are
/// dropped (they cannot be drawn) and unsorted input is sorted by time.
pub fn downsample(points: &[Point], max: usize) -> Vec<Point> {
    let mut pts: Vec<Point> = points
        .iter()
        .copied()
        .filter(|p| p.t.is_finite() && p.v.is_finite())
        .collect();
    if !pts.is_sorted_by(|a, b| a.t <= b.t) {
        pts.sort_by(|a, b| a.t.total_cmp(&b.t));
    }
    let mut d = Downsampler::new(pts.len(), max);
    for p in pts {
        d.push(p);
    }
    d.finish()
}

/// [`downsample`] of a series read one point at a time, in time order,
/// holding only the points it keeps (at most `max`) and one bucket's
/// extremes: a series the journal streams need never be in memory whole.
/// `n` is how many finite points will come, which fixes the buckets.
pub struct Downsampler {
    n: usize,
    buckets: usize,
    /// Finite points met so far.
    seen: usize,
    /// The bucket being filled and the inner index where it ends.
    bucket: usize,
    bucket_end: usize,
    /// Its lowest and highest point, each with its index (the first of
    /// equal ones).
    extremes: Option<((usize, Point), (usize, Point))>,
    out: Vec<Point>,
}

impl Downsampler {
    pub fn new(n: usize, max: usize) -> Self {
        let max = max.max(4);
        let buckets = (max - 2) / 2;
        let mut d = Downsampler {
            n,
            buckets: if n <= max { 0 } else { buckets },
            seen: 0,
            bucket: 0,
            bucket_end: 0,
            extremes: None,
            out: Vec::with_capacity(n.min(max)),
        };
        d.bucket_end = d.end_of(0);
        d
    }

    /// Where bucket `b` ends among the inner points (all but the first and
    /// the last).
    fn end_of(&self, b: usize) -> usize {
        (b + 1) * self.n.saturating_sub(2) / self.buckets.max(1)
    }

    /// Takes the next point; a non-finite one is dropped (not counted in
    /// `n`).
    pub fn push(&mut self, p: Point) {
        if !(p.t.is_finite() && p.v.is_finite()) {
            return;
        }
        let i = self.seen;
        self.seen += 1;
        if self.buckets == 0 || i == 0 {
            self.out.push(p);
            return;
        }
        if i >= self.n - 1 {
            // The last point (or one more than promised: kept as is).
            self.flush();
            self.out.push(p);
            return;
        }
        let k = i - 1;
        while k >= self.bucket_end && self.bucket < self.buckets {
            self.flush();
            self.bucket += 1;
            self.bucket_end = self.end_of(self.bucket);
        }
        match &mut self.extremes {
            None => self.extremes = Some(((k, p), (k, p))),
            Some((lo, hi)) => {
                if p.v < lo.1.v {
                    *lo = (k, p);
                }
                if p.v > hi.1.v {
                    *hi = (k, p);
                }
            }
        }
    }

    /// Emits the bucket being filled: its extremes in time order.
    fn flush(&mut self) {
        if let Some((lo, hi)) = self.extremes.take() {
            let (a, b) = if lo.0 <= hi.0 { (lo, hi) } else { (hi, lo) };
            self.out.push(a.1);
            if b.0 != a.0 {
                self.out.push(b.1);
            }
        }
    }

    /// The points kept. Fewer than `n` having come, the series ends with
    /// the last bucket's extremes.
    pub fn finish(mut self) -> Vec<Point> {
        self.flush();
        self.out
    }
}

/// The time axis every chart of a page shares, so that a mark at 01:25:09
/// is at the same x in every chart.
#[derive(Clone, Copy, Debug)]
pub struct Span {
    pub t0: i64,
    pub t1: i64,
}

/// What is drawn over every chart of one service.
#[derive(Default, Debug)]
pub struct Marks {
    pub restarts: Vec<Restart>,
    pub faults: Vec<FaultMark>,
    pub failures: Vec<FailMark>,
}

#[derive(Debug)]
pub struct Restart {
    pub at: i64,
    /// The death before it was not planned (crash, hang): drawn in warning colour.
    pub unplanned: bool,
    pub title: String,
}

#[derive(Debug)]
pub struct FaultMark {
    pub from: i64,
    /// None for instant faults (kill, stop): drawn as a narrow band.
    pub to: Option<i64>,
    pub label: String,
    pub title: String,
}

#[derive(Debug)]
pub struct FailMark {
    pub at: i64,
    pub label: String,
    pub title: String,
}

#[derive(Debug)]
pub struct Series {
    pub name: &'static str,
    pub color: &'static str,
    /// Already downsampled.
    pub points: Vec<Point>,
}

/// A fitted line `v = v_from + per_hour × (t − t_from)`, drawn solid over
/// the samples it was fitted on and dashed beyond the last one.
#[derive(Debug, Clone)]
pub struct TrendLine {
    pub t_from: i64,
    pub v_from: f64,
    pub t_last: i64,
    pub per_hour: f64,
    pub label: String,
}

impl TrendLine {
    fn at(&self, t: f64) -> f64 {
        self.v_from + self.per_hour * (t - self.t_from as f64) / 3_600_000.0
    }
}

/// x and y of the plot area.
struct Frame {
    t0: f64,
    t1: f64,
    top: f64,
    height: f64,
    ymax: f64,
}

impl Frame {
    fn x(&self, t: f64) -> f64 {
        LEFT + (t - self.t0) / (self.t1 - self.t0).max(1.0) * (W - LEFT - RIGHT)
    }

    fn y(&self, v: f64) -> f64 {
        self.top + self.height - (v / self.ymax).clamp(0.0, 1.05) * self.height
    }

    fn contains(&self, t: f64) -> bool {
        (self.t0..=self.t1).contains(&t)
    }
}

/// A line chart of `series` (values already in `unit`), with `marks` and
/// an optional trend line. With a trend, the axis runs a quarter of the run
/// past its end, shaded, so the projection has somewhere to go.
pub fn line_chart(
    id: &str,
    unit: &str,
    series: &[Series],
    trend: Option<&TrendLine>,
    span: Span,
    marks: &Marks,
) -> Markup {
    let t0 = span.t0 as f64;
    let end = span.t1 as f64;
    let t1 = if trend.is_some() {
        end + (end - t0) / 4.0
    } else {
        end
    };
    let mut vmax = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.v))
        .fold(0.0_f64, f64::max);
    if let Some(tr) = trend {
        // The projection may climb off the chart; the axis follows it up to
        // twice the data, beyond which it is clipped rather than flattening
        // the data into a line at the bottom.
        let projected = tr.at(t1).max(tr.at(tr.t_from as f64));
        if projected.is_finite() {
            vmax = vmax.max(projected.min(2.0 * vmax.max(f64::MIN_POSITIVE)));
        }
    }
    let (step, ymax) = nice_axis(vmax);
    let f = Frame {
        t0,
        t1,
        top: TOP,
        height: PLOT_H,
        ymax,
    };
    let h = TOP + PLOT_H + BOTTOM;
    let mut s = open_svg(id, h);
    // Horizontal grid and y labels.
    let mut v = 0.0;
    while v <= ymax * 1.0001 {
        let y = f.y(v);
        let _ = write!(
            s,
            r#"<line class="grid" x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}"/><text class="ylab" x="{:.1}" y="{:.1}">{}</text>"#,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            number(v, step)
        );
        v += step;
    }
    let _ = write!(
        s,
        r#"<text class="unit" x="4" y="{:.1}">{}</text>"#,
        TOP - 8.0,
        text(unit)
    );
    if trend.is_some() {
        let x = f.x(end);
        let _ = write!(
            s,
            r#"<rect class="future" x="{x:.1}" y="{TOP}" width="{:.1}" height="{PLOT_H}"><title>after the run: the trend's projection</title></rect><text class="futurelab" x="{:.1}" y="{:.1}">projection</text>"#,
            W - RIGHT - x,
            x + 4.0,
            TOP + PLOT_H - 4.0
        );
    }
    time_axis(&mut s, &f);
    draw_marks(&mut s, &f, marks);
    // The fit first, so the data it summarises stays visible on top.
    if let Some(tr) = trend {
        let (a, b, c) = (tr.t_from as f64, tr.t_last as f64, t1);
        let _ = write!(
            s,
            r#"<path class="trend" d="M{:.1},{:.1} {:.1},{:.1}"><title>{}</title></path><path class="projection" d="M{:.1},{:.1} {:.1},{:.1}"><title>{} (projected)</title></path><text class="trendlab" x="{:.1}" y="{:.1}">{}</text>"#,
            f.x(a),
            f.y(tr.at(a)),
            f.x(b),
            f.y(tr.at(b)),
            text(&tr.label),
            f.x(b),
            f.y(tr.at(b)),
            f.x(c),
            f.y(tr.at(c)),
            text(&tr.label),
            W - RIGHT - 4.0,
            (f.y(tr.at(c)) - 6.0).max(TOP + 10.0),
            text(&tr.label)
        );
    }
    for ser in series {
        let _ = write!(
            s,
            r#"<path class="line" stroke="{}" d="{}"><title>{}</title></path>"#,
            ser.color,
            path(&ser.points, &f),
            text(ser.name)
        );
    }
    s.push_str("</svg>");
    svg(s)
}

/// One incarnation on the lifecycle strip.
#[derive(Debug)]
pub struct Bar {
    pub from: i64,
    pub ready: Option<i64>,
    pub to: i64,
    pub title: String,
}

/// The service's life as a strip: starting (light), up (solid), down
/// (blank), with the marks over it. Drawn even without samples, so every
/// service has a place where its failures are shown in time.
pub fn lifecycle(id: &str, bars: &[Bar], span: Span, marks: &Marks) -> Markup {
    let f = Frame {
        t0: span.t0 as f64,
        t1: span.t1 as f64,
        top: TOP,
        height: STRIP_H,
        ymax: 1.0,
    };
    let mut s = open_svg(id, TOP + STRIP_H + BOTTOM);
    let _ = write!(
        s,
        r#"<rect class="down" x="{LEFT}" y="{TOP}" width="{:.1}" height="{STRIP_H}"/>"#,
        W - LEFT - RIGHT
    );
    for b in bars {
        let x0 = f.x(b.from.max(span.t0) as f64);
        let x1 = f.x(b.to.min(span.t1) as f64).max(x0 + 1.0);
        let xr = b
            .ready
            .map(|r| f.x(r.clamp(span.t0, span.t1) as f64).clamp(x0, x1));
        let (class, xs) = match xr {
            Some(xr) => ("up", xr),
            None => ("never", x0),
        };
        let _ = write!(
            s,
            r#"<g><title>{}</title><rect class="starting" x="{x0:.1}" y="{TOP}" width="{:.1}" height="{STRIP_H}"/><rect class="{class}" x="{xs:.1}" y="{TOP}" width="{:.1}" height="{STRIP_H}"/></g>"#,
            text(&b.title),
            (xs - x0).max(0.0),
            (x1 - xs).max(0.0)
        );
    }
    time_axis(&mut s, &f);
    draw_marks(&mut s, &f, marks);
    s.push_str("</svg>");
    svg(s)
}

/// A whole chart, inserted into the page as it is: raw, because it is SVG
/// markup this module wrote, every string in it through `text`.
fn svg(s: String) -> Markup {
    PreEscaped(s)
}

/// A string drawn in a chart, escaped as the page's values are.
fn text(s: &str) -> String {
    html! { (s) }.into_string()
}

fn open_svg(id: &str, h: f64) -> String {
    format!(
        r#"<svg id="{}" class="chart" viewBox="0 0 {W} {h:.0}" width="100%" role="img" xmlns="http://www.w3.org/2000/svg">"#,
        text(id)
    )
}

/// Labels closer than this to the previous one are left out (the hover
/// title still tells): a fault every hour of a 72 h soak would be a smear.
const LABEL_GAP: f64 = 34.0;

fn draw_marks(s: &mut String, f: &Frame, m: &Marks) {
    let (top, bottom) = (f.top, f.top + f.height);
    let mut labelled = f64::NEG_INFINITY;
    for fault in &m.faults {
        let from = fault.from as f64;
        let to = fault.to.map_or(from, |t| t as f64);
        if to < f.t0 || from > f.t1 {
            continue;
        }
        let x0 = f.x(from.max(f.t0));
        // An instant fault still needs a visible width.
        let x1 = f.x(to.min(f.t1)).max(x0 + 3.0);
        let _ = write!(
            s,
            r#"<g class="fault"><title>{}</title><rect x="{x0:.1}" y="{top}" width="{:.1}" height="{:.1}"/>"#,
            text(&fault.title),
            x1 - x0,
            f.height,
        );
        if x0 - labelled >= LABEL_GAP {
            labelled = x0;
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
                x0 + 3.0,
                top + 11.0,
                text(&fault.label)
            );
        }
        s.push_str("</g>");
    }
    for r in &m.restarts {
        if !f.contains(r.at as f64) {
            continue;
        }
        let x = f.x(r.at as f64);
        let class = if r.unplanned {
            "restart bad"
        } else {
            "restart"
        };
        let _ = write!(
            s,
            r#"<line class="{class}" x1="{x:.1}" x2="{x:.1}" y1="{top}" y2="{bottom}"><title>{}</title></line>"#,
            text(&r.title)
        );
    }
    labelled = f64::NEG_INFINITY;
    for fail in &m.failures {
        if !f.contains(fail.at as f64) {
            continue;
        }
        let x = f.x(fail.at as f64);
        // Labels right of the middle read leftwards, so they stay on the chart.
        let anchor = if x > W / 2.0 { "end" } else { "start" };
        let dx = if x > W / 2.0 { -4.0 } else { 4.0 };
        let _ = write!(
            s,
            r#"<g class="failmark"><title>{}</title><line x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{bottom}"/>"#,
            text(&fail.title),
            top - 14.0,
        );
        // Failure labels are long: one per three gaps.
        if (x - labelled).abs() >= 3.0 * LABEL_GAP {
            labelled = x;
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="{anchor}">{}</text>"#,
                x + dx,
                top - 6.0,
                text(&fail.label)
            );
        }
        s.push_str("</g>");
    }
}

/// `M x,y x,y …` with a new `M` where the incarnation changes, so a line
/// never bridges a restart.
fn path(points: &[Point], f: &Frame) -> String {
    let mut d = String::with_capacity(points.len() * 12);
    let mut seg = None;
    for p in points {
        let sep = if seg != Some(p.seg) { "M" } else { " " };
        seg = Some(p.seg);
        let _ = write!(d, "{sep}{:.1},{:.1}", f.x(p.t), f.y(p.v));
    }
    d
}

/// A step of 1, 2, 2.5 or 5 × 10ⁿ giving about four gridlines, and the top
/// of the axis (a multiple of it at or above `max`).
fn nice_axis(max: f64) -> (f64, f64) {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let raw = max / 4.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    (step, (max / step).ceil().max(1.0) * step)
}

/// `v` with as many decimals as the step needs (0.25 needs two), so that
/// no two gridlines read the same.
fn number(v: f64, step: f64) -> String {
    let decimals = (0..6)
        .find(|d| {
            let scaled = step * 10f64.powi(*d);
            (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
        })
        .unwrap_or(6) as usize;
    format!("{v:.decimals$}")
}

/// Tick steps: clock-friendly, so ticks fall on round times.
const TICKS_MS: [i64; 20] = [
    100, 250, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000,
    900_000, 1_800_000, 3_600_000, 7_200_000, 10_800_000, 21_600_000, 43_200_000,
];

fn time_axis(s: &mut String, f: &Frame) {
    let len = f.t1 - f.t0;
    let step = TICKS_MS
        .into_iter()
        .find(|st| len / *st as f64 <= 8.0)
        // Runs longer than 8 × 12 h: whole days (the cast saturates on absurd spans).
        .unwrap_or_else(|| {
            86_400_000i64.saturating_mul(((len / 86_400_000.0 / 8.0) as i64).saturating_add(1))
        });
    let bottom = f.top + f.height;
    let mut t = (f.t0 as i64).div_euclid(step).saturating_mul(step);
    // Bounded: at most ~9 ticks by the choice of step.
    for _ in 0..16 {
        if t as f64 > f.t1 {
            break;
        }
        if t as f64 >= f.t0 {
            let x = f.x(t as f64);
            let _ = write!(
                s,
                r#"<line class="tick" x1="{x:.1}" x2="{x:.1}" y1="{bottom}" y2="{:.1}"/><text class="xlab" x="{x:.1}" y="{:.1}">{}</text>"#,
                bottom + 4.0,
                bottom + 15.0,
                tick_label(t, step)
            );
        }
        let Some(next) = t.checked_add(step) else {
            break;
        };
        t = next;
    }
}

/// UTC, as precise as the step needs: the logs' stamps are UTC too.
fn tick_label(t: i64, step: i64) -> String {
    let stamp = crate::clock::rfc3339_ms(t);
    let part = |r: std::ops::Range<usize>| stamp.get(r).unwrap_or_default().to_string();
    if step >= 3_600_000 {
        format!("{} {}", part(5..10), part(11..16))
    } else if step >= 60_000 {
        part(11..16)
    } else if step >= 1_000 {
        part(11..19)
    } else {
        part(11..23)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn clean(pts: &[Point]) -> Vec<Point> {
        let mut c: Vec<Point> = pts
            .iter()
            .copied()
            .filter(|p| p.t.is_finite() && p.v.is_finite())
            .collect();
        c.sort_by(|a, b| a.t.total_cmp(&b.t));
        c
    }

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            8 => -1e12f64..1e12,
            1 => Just(f64::NAN),
            1 => Just(f64::INFINITY),
        ]
    }

    proptest! {
        #[test]
        fn downsampling_keeps_ends_and_extremes_within_the_bound(
            raw in prop::collection::vec((value(), value(), 0i64..4), 0..1200),
            max in 0usize..400,
        ) {
            let pts: Vec<Point> = raw.iter().map(|&(t, v, seg)| Point { t, v, seg }).collect();
            let out = downsample(&pts, max);
            let c = clean(&pts);
            prop_assert!(out.len() <= max.max(4));
            prop_assert!(out.iter().all(|p| p.t.is_finite() && p.v.is_finite()));
            prop_assert!(out.is_sorted_by(|a, b| a.t <= b.t));
            if let (Some(first), Some(last)) = (c.first(), c.last()) {
                prop_assert_eq!(out.first(), Some(first));
                prop_assert_eq!(out.last(), Some(last));
                let hi = c.iter().map(|p| p.v).fold(f64::MIN, f64::max);
                let lo = c.iter().map(|p| p.v).fold(f64::MAX, f64::min);
                prop_assert!(out.iter().any(|p| p.v == hi));
                prop_assert!(out.iter().any(|p| p.v == lo));
            } else {
                prop_assert!(out.is_empty());
            }
        }
    }

    /// The whole-series algorithm the streaming one replaced, kept as the
    /// reference it must equal: equal-count buckets, each's lowest and
    /// highest point in time order.
    fn whole_series(pts: &[Point], max: usize) -> Vec<Point> {
        let max = max.max(4);
        let n = pts.len();
        if n <= max {
            return pts.to_vec();
        }
        let inner = &pts[1..n - 1];
        let buckets = (max - 2) / 2;
        let mut out = vec![pts[0]];
        for b in 0..buckets {
            let chunk = &inner[b * inner.len() / buckets..(b + 1) * inner.len() / buckets];
            if chunk.is_empty() {
                continue;
            }
            let (mut lo, mut hi) = (0, 0);
            for (i, p) in chunk.iter().enumerate() {
                if p.v < chunk[lo].v {
                    lo = i;
                }
                if p.v > chunk[hi].v {
                    hi = i;
                }
            }
            let (a, b) = (lo.min(hi), lo.max(hi));
            out.push(chunk[a]);
            if b != a {
                out.push(chunk[b]);
            }
        }
        out.push(pts[n - 1]);
        out
    }

    proptest! {
        #[test]
        fn a_streamed_series_keeps_what_the_whole_series_would(
            raw in prop::collection::vec((value(), value(), 0i64..4), 0..3000),
            max in 0usize..300,
        ) {
            let pts: Vec<Point> = raw.iter().map(|&(t, v, seg)| Point { t, v, seg }).collect();
            let c = clean(&pts);
            // Points arrive in time order, non-finite ones included.
            let mut arriving = pts.clone();
            arriving.sort_by(|a, b| a.t.total_cmp(&b.t));
            let mut d = Downsampler::new(c.len(), max);
            for p in arriving {
                d.push(p);
            }
            prop_assert_eq!(d.finish(), whole_series(&c, max));
        }
    }

    #[test]
    fn a_long_series_is_bounded_and_keeps_a_lone_spike() {
        let mut pts: Vec<Point> = (0..259_200)
            .map(|i| Point {
                t: i as f64 * 1000.0,
                v: 100.0,
                seg: 0,
            })
            .collect();
        pts[123_457].v = 900.0;
        let out = downsample(&pts, MAX_POINTS);
        assert!(out.len() <= MAX_POINTS);
        assert!(out.iter().any(|p| p.v == 900.0));
    }

    #[test]
    fn axes_are_round_and_never_degenerate() {
        assert_eq!(nice_axis(0.0), (0.25, 1.0));
        assert_eq!(nice_axis(f64::NAN), (0.25, 1.0));
        assert_eq!(nice_axis(97.0), (25.0, 100.0));
        assert_eq!(nice_axis(130.0), (50.0, 150.0));
        assert_eq!(number(0.75, 0.25), "0.75");
        assert_eq!(number(40.0, 10.0), "40");
        assert_eq!(number(0.5, 0.5), "0.5");
    }
}
