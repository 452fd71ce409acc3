//! Leak-trend verdicts: is a resource (RSS, open fds, threads) of one service
//! incarnation flat, or does it grow faster than the scenario allows?
//!
//! RSS of a healthy service is not a line: garbage collectors draw a sawtooth,
//! caches fill in steps, and samples taken every few seconds are strongly
//! autocorrelated. A plain regression or "last minus first" mistakes a GC
//! ramp or a cache step for a leak, and a plain significance test treats
//! 4000 correlated samples as 4000 independent witnesses. So [`judge`]:
//!
//! 1. drops non-finite values, sorts by time, and drops the warm-up;
//! 2. reduces the series to at most [`MAX_BUCKETS`] buckets, each the median
//!    of its samples (robust to GC spikes, and it bounds the cost): runs of
//!    whole GC cycles when the series is a sawtooth (split at its drops),
//!    equal-time buckets otherwise;
//! 3. fits the Theil–Sen slope (median of pairwise slopes) on the buckets;
//! 4. tests the trend with Mann–Kendall, its variance inflated by the
//!    Hamed–Rao effective-sample-size correction computed from the
//!    autocorrelation of the detrended ranks, and turns that same variance
//!    into Sen's distribution-free confidence interval for the slope.
//!
//! A slow wander or a step, once detrended, leaves long runs of same-signed
//! residuals; the correction sees that autocorrelation and widens the
//! interval, while a real leak under white-ish noise keeps a narrow one.
//! A Fail also needs the growth to be steady across thirds of the span (see
//! [`judge`]), which is what separates a leak from a late cache fill.
//! What no method can do is tell a single GC ramp from a leak before the
//! ramp has dropped once: a sawtooth whose period exceeds the span can Fail.
//!
//! Cost for n samples: O(n) to clean, find drops and bucket (plus
//! O(n log n) only when the input is unsorted), then O(B²) with B ≤ 256
//! buckets for the ~33k pairwise slopes, the Mann–Kendall sum and the rank
//! autocorrelations (and a third of that for each of the three pieces);
//! order statistics use selection, not sorting. A 72 h trace at 1 s (260k
//! samples) is judged in a few milliseconds.

use std::cmp::Ordering;
use std::ops::Range;

const MS_PER_HOUR: f64 = 3_600_000.0;

/// Bucket count cap: 256 buckets resolve a trend over any span while keeping
/// the O(B²) pairwise work near 33k slopes, well under a millisecond.
pub const MAX_BUCKETS: usize = 256;

/// Below three distinct times there is no slope distribution to speak of.
const MIN_BUCKETS: usize = 3;

/// Stretches a Fail's growth must be steady across (see [`judge`]).
const PIECES: usize = 3;

/// Which resource a series measures; only the wording of the reason depends
/// on it (RSS in bytes is shown in MB = 2²⁰ bytes, the unit of `"10MB/h"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Rss,
    Fds,
    Threads,
}

impl Metric {
    fn name(self) -> &'static str {
        match self {
            Metric::Rss => "RSS",
            Metric::Fds => "open fds",
            Metric::Threads => "threads",
        }
    }

    fn number(self, v: f64) -> String {
        let text = match self {
            Metric::Rss => format!("{:.1}", v / 1_048_576.0),
            Metric::Fds | Metric::Threads => format!("{v:.2}"),
        };
        // A tiny negative rounds to "-0.0", which reads like a sign error.
        if text.trim_start_matches(['-', '0', '.']).is_empty() {
            text.trim_start_matches('-').to_string()
        } else {
            text
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Metric::Rss => "MB",
            Metric::Fds => "fds",
            Metric::Threads => "threads",
        }
    }

    fn amount(self, v: f64) -> String {
        format!("{} {}", self.number(v), self.unit())
    }

    fn rate(self, v: f64) -> String {
        format!("{} {}/h", self.number(v), self.unit())
    }
}

/// What to judge against. Units are the series' own (bytes for RSS).
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Only used to word the reason.
    pub metric: Metric,
    /// The expectation, e.g. `rss_slope_max = "10MB/h"` as 10 × 2²⁰.
    pub slope_max_per_hour: f64,
    /// Samples earlier than the first one plus this are ignored.
    pub warmup_ms: i64,
    /// Fewer samples after the warm-up give Unknown.
    pub min_points: usize,
    /// A shorter span after the warm-up gives Unknown.
    pub min_span_ms: i64,
    /// Test level; the slope interval is the two-sided 1 − alpha one.
    pub alpha: f64,
    /// `rss_max` or host memory, only for the projection.
    pub limit: Option<f64>,
}

impl Params {
    /// Defaults tuned on the corpus (see `examples/accuracy.rs`): 5 min
    /// warm-up, then at least 30 min and 60 samples, 5 % level. Below 30 min
    /// a cache still filling after the warm-up, or slow wander, is too often
    /// indistinguishable from a leak.
    pub fn new(metric: Metric, slope_max_per_hour: f64) -> Self {
        Params {
            metric,
            slope_max_per_hour,
            warmup_ms: 5 * 60_000,
            min_points: 60,
            min_span_ms: 30 * 60_000,
            alpha: 0.05,
            limit: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Pass,
    Fail,
    Unknown,
}

/// The verdict and the evidence behind it. Slope figures are NaN, and the
/// p-value 1, when fewer than three distinct times leave nothing to fit;
/// the interval is NaN and the p-value 1 when the parameters are unusable.
#[derive(Clone, Debug, PartialEq)]
pub struct Trend {
    pub decision: Decision,
    /// Theil–Sen slope, series units per hour.
    pub slope_per_hour: f64,
    /// Sen's interval for the slope at 1 − alpha, autocorrelation-corrected.
    pub ci_per_hour: (f64, f64),
    /// Two-sided Mann–Kendall p-value with the Hamed–Rao correction.
    pub p_value: f64,
    /// Samples after the warm-up.
    pub points: usize,
    /// Their span.
    pub span_ms: i64,
    /// From the last sample until the fitted line reaches `limit`; 0 when it
    /// is already there, None without a limit or a positive slope.
    pub projected_limit_ms: Option<i64>,
    /// One human line.
    pub reason: String,
}

/// Judges one incarnation's series of `(ms since epoch, value)`.
///
/// Decision rule, with the interval `[lo, hi]` at 1 − alpha:
/// - Unknown when the parameters are unusable, or fewer than `min_points`
///   samples or less than `min_span_ms` remain after the warm-up: too little
///   evidence either way.
/// - Fail when the trend is significant (p < alpha), `lo > slope_max` (the
///   whole plausible range of slopes is above the limit) and the growth is
///   steady: in each third of the span the slope exceeds the limit, is not
///   significantly below a third of the overall slope nor above three times
///   it. A leak grows at a steady rate; a cache still filling after the
///   warm-up decelerates and a step is flat on both sides, and both are
///   Unknown until enough flat data follows to Pass. A third with fewer
///   than three buckets (a sawtooth of only 4 to 8 GC cycles) is widened to
///   the three buckets around it, so a few cycles are judged, not left
///   without a slope.
/// - Pass when `hi < slope_max`: the slope is shown to be below the limit,
///   whether or not a smaller, allowed growth is significant.
/// - Unknown otherwise: the interval straddles the limit (short or noisy
///   soak). A non-significant trend alone is not a Pass, since a wide
///   interval is absence of evidence, not evidence of flatness.
pub fn judge(series: &[(i64, f64)], p: &Params) -> Trend {
    judge_counted(series, p).0
}

/// Like [`judge`], also telling whether there was enough data to judge at
/// all, which [`judge_segments`] needs to skip stubs.
fn judge_counted(series: &[(i64, f64)], p: &Params) -> (Trend, bool) {
    let pts = after_warmup(series, p.warmup_ms);
    let points = pts.len();
    let span_ms = span(&pts);
    let Reduced { buckets, cycles } = reduce(&pts);
    let fit = fit(&buckets, p.alpha);
    let end_hours = buckets.last().map_or(0.0, |b| b.0);
    let projected_limit_ms = p.limit.and_then(|l| project(&fit, end_hours, l));
    let mut trend = Trend {
        decision: Decision::Unknown,
        slope_per_hour: fit.slope,
        ci_per_hour: (fit.lo, fit.hi),
        p_value: fit.p,
        points,
        span_ms,
        projected_limit_ms,
        reason: String::new(),
    };
    let m = p.metric;
    let after = format!("after {} warm-up", duration(p.warmup_ms.max(0)));
    if let Some(problem) = invalid(p) {
        // An alpha outside (0, 1) makes Sen's ranks cross (lo above hi):
        // no interval is better than a nonsensical one.
        trend.ci_per_hour = (f64::NAN, f64::NAN);
        trend.p_value = 1.0;
        trend.reason = format!("{}: cannot judge, {problem}", m.name());
        return (trend, false);
    }
    let enough = points >= p.min_points
        && span_ms >= p.min_span_ms
        && buckets.len() >= MIN_BUCKETS
        && fit.slope.is_finite();
    if !enough {
        let over = format!("over {} {after}", duration(span_ms));
        trend.reason = if points < p.min_points || span_ms < p.min_span_ms {
            format!(
                "{}: only {points} samples {over}; need {} over {}",
                m.name(),
                p.min_points.max(MIN_BUCKETS),
                duration(p.min_span_ms.max(0)),
            )
        } else if buckets.len() < MIN_BUCKETS {
            format!(
                "{}: {points} samples {over} fall on only {} distinct times; need {MIN_BUCKETS} to fit a slope",
                m.name(),
                buckets.len()
            )
        } else {
            format!(
                "{}: {points} samples {over} are too far apart to fit a finite slope",
                m.name()
            )
        };
        return (trend, false);
    }
    let max = p.slope_max_per_hour;
    let evidence = format!(
        "({} CI {}–{}, {}{})",
        confidence(p.alpha),
        m.number(fit.lo),
        m.number(fit.hi),
        p_text(fit.p),
        cycles.map_or(String::new(), |c| format!(", {c} GC cycles"))
    );
    let over = format!("over {} {after}", duration(span_ms));
    let significant = fit.p < p.alpha && fit.lo > max;
    let pieces = piece_fits(&buckets, p.alpha).unwrap_or_default();
    // A leak grows at a steady rate; a cache fill decelerates and a step is
    // flat on at least one side. Each third must show more than the limit and
    // at least a third of the overall slope (equal in expectation for a line;
    // a third leaves room for noise).
    let steady = !pieces.is_empty()
        && pieces
            .iter()
            .all(|f| f.slope > max && f.hi > max.max(fit.slope / 3.0) && f.lo < 3.0 * fit.slope);
    let (decision, reason) = if significant && steady {
        (
            Decision::Fail,
            format!(
                "{} grows {} {evidence}, above the {} limit, {over}",
                m.name(),
                m.rate(fit.slope),
                m.rate(max)
            ),
        )
    } else if significant {
        (
            Decision::Unknown,
            format!(
                "{} rose {} {evidence} {over}, but {}: a step or a fading warm-up, not yet a leak; needs a longer soak",
                m.name(),
                m.rate(fit.slope),
                if pieces.is_empty() {
                    "its growth by thirds has no finite slope".to_string()
                } else {
                    format!(
                        "unevenly ({} by thirds)",
                        pieces
                            .iter()
                            .map(|f| m.rate(f.slope))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ),
        )
    } else if fit.hi < max {
        let how = if fit.p < p.alpha && fit.slope > 0.0 {
            "grows only"
        } else {
            "is flat at"
        };
        (
            Decision::Pass,
            format!(
                "{} {how} {} {evidence}, below the {} limit, {over}",
                m.name(),
                m.rate(fit.slope),
                m.rate(max)
            ),
        )
    } else {
        (
            Decision::Unknown,
            format!(
                "{} slope {} {evidence} cannot be told from the {} limit {over}; needs a longer soak",
                m.name(),
                m.rate(fit.slope),
                m.rate(max)
            ),
        )
    };
    trend.decision = decision;
    trend.reason = reason;
    if let (Some(limit), Some(ms)) = (p.limit, projected_limit_ms) {
        trend.reason += &if ms == 0 {
            format!("; already at {}", m.amount(limit))
        } else {
            format!("; reaches {} in {}", m.amount(limit), duration(ms))
        };
    }
    (trend, true)
}

/// Judges each incarnation separately, since memory resets on restart, and
/// combines: any Fail is a Fail (reported with the longest failing
/// incarnation: the most data, the least warm-up bias; picking the highest
/// slope would pick the luckiest overestimate); all judged Pass is a Pass; otherwise
/// Unknown. Incarnations too short to judge (shorter than the warm-up, or
/// too little data after it) are skipped rather than made Unknown: a stub
/// after the last fault carries no evidence and must not turn a long, clean
/// soak inconclusive. If nothing could be judged, the verdict is Unknown.
pub fn judge_segments(segments: &[&[(i64, f64)]], p: &Params) -> Trend {
    let judged = segments
        .iter()
        .enumerate()
        .filter_map(|(i, s)| Some((i, judge_segment(s, p)?)))
        .collect();
    combine_segments(segments.len(), judged, p)
}

/// One incarnation's part of [`judge_segments`]: its trend, or None when it
/// is too short to count. For a caller that reads one incarnation at a
/// time and combines with [`combine_segments`].
pub fn judge_segment(segment: &[(i64, f64)], p: &Params) -> Option<Trend> {
    if span(&after_warmup(segment, 0)) < p.warmup_ms {
        return None;
    }
    let (t, enough) = judge_counted(segment, p);
    enough.then_some(t)
}

/// [`judge_segments`]'s decision from the trends of the incarnations that
/// counted (by their index among all `total`), in incarnation order.
pub fn combine_segments(total: usize, judged: Vec<(usize, Trend)>, p: &Params) -> Trend {
    let labelled = |(i, mut t): (usize, Trend)| {
        t.reason = format!("incarnation {} of {total}: {}", i + 1, t.reason);
        t
    };
    let worst_fail = judged
        .iter()
        .filter(|(_, t)| t.decision == Decision::Fail)
        .max_by_key(|(_, t)| t.span_ms);
    if let Some(fail) = worst_fail {
        return labelled(fail.clone());
    }
    if let Some(unknown) = judged.iter().find(|(_, t)| t.decision != Decision::Pass) {
        return labelled(unknown.clone());
    }
    let count = judged.len();
    match judged.into_iter().max_by_key(|(_, t)| t.span_ms) {
        Some((i, mut t)) => {
            t.reason = format!(
                "all {count} judged incarnations of {total} pass; longest, #{}: {}",
                i + 1,
                t.reason
            );
            t
        }
        None => Trend {
            decision: Decision::Unknown,
            slope_per_hour: f64::NAN,
            ci_per_hour: (f64::NAN, f64::NAN),
            p_value: 1.0,
            points: 0,
            span_ms: 0,
            projected_limit_ms: None,
            reason: format!(
                "{}: none of {total} incarnations ran long enough to judge",
                p.metric.name()
            ),
        },
    }
}

/// Field rule "last minus first > limit per hour": Fail when the growth
/// between the first and the last sample, scaled to the span, exceeds it.
/// Unknown only when there is no span (fewer than two distinct times).
pub fn rule_last_minus_first(series: &[(i64, f64)], limit_per_hour: f64) -> Decision {
    let pts = after_warmup(series, 0);
    match ends(&pts) {
        Some(((t0, v0), (t1, v1))) => pass_fail((v1 - v0) / hours_between(t0, t1) > limit_per_hour),
        None => Decision::Unknown,
    }
}

/// Field rule "> pct % growth per `per_ms`" (e.g. 50 % in 24 h), scaled
/// linearly to the observed span. Unknown without a span or a positive
/// first value to take a percentage of.
pub fn rule_growth_pct(series: &[(i64, f64)], pct: f64, per_ms: i64) -> Decision {
    let pts = after_warmup(series, 0);
    match ends(&pts) {
        Some(((t0, v0), (t1, v1))) if v0 > 0.0 && per_ms > 0 => {
            let allowed = pct / 100.0 * hours_between(t0, t1) / (per_ms as f64 / MS_PER_HOUR);
            pass_fail((v1 - v0) / v0 > allowed)
        }
        _ => Decision::Unknown,
    }
}

/// Field rule "linear regression with R² > r2_min": Fail when the ordinary
/// least-squares slope exceeds the limit and the line explains more than
/// `r2_min` of the variance. Unknown without a span.
pub fn rule_linreg_r2(series: &[(i64, f64)], slope_max_per_hour: f64, r2_min: f64) -> Decision {
    let pts = after_warmup(series, 0);
    let Some(((t0, _), _)) = ends(&pts) else {
        return Decision::Unknown;
    };
    let n = pts.len() as f64;
    let xs = || pts.iter().map(|&(t, _)| hours_between(t0, t));
    let mx = xs().sum::<f64>() / n;
    let my = pts.iter().map(|&(_, v)| v).sum::<f64>() / n;
    let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
    for (x, &(_, y)) in xs().zip(&pts) {
        sxx += (x - mx) * (x - mx);
        sxy += (x - mx) * (y - my);
        syy += (y - my) * (y - my);
    }
    if sxx <= 0.0 || syy <= 0.0 {
        // A constant series has no variance to explain: nothing grows.
        return pass_fail(false);
    }
    let slope = sxy / sxx;
    let r2 = sxy * sxy / (sxx * syy);
    pass_fail(slope > slope_max_per_hour && r2 > r2_min)
}

/// The samples judged: finite values, sorted by time (stable, so equal
/// timestamps keep their order), from the first sample plus `warmup_ms` on.
/// The warm-up counts from the first sample because that is the earliest
/// moment the series itself can vouch for.
pub fn after_warmup(series: &[(i64, f64)], warmup_ms: i64) -> Vec<(i64, f64)> {
    let mut pts: Vec<(i64, f64)> = series
        .iter()
        .copied()
        .filter(|&(_, v)| v.is_finite())
        .collect();
    if !pts.is_sorted_by_key(|&(t, _)| t) {
        pts.sort_by_key(|&(t, _)| t);
    }
    if let Some(&(t0, _)) = pts.first() {
        let cut = t0.saturating_add(warmup_ms.max(0));
        let skip = pts.partition_point(|&(t, _)| t < cut);
        pts.drain(..skip);
    }
    pts
}

fn pass_fail(fail: bool) -> Decision {
    if fail { Decision::Fail } else { Decision::Pass }
}

/// First and last sample of a sorted series, if they are at distinct times.
fn ends(pts: &[(i64, f64)]) -> Option<((i64, f64), (i64, f64))> {
    let (&first, &last) = (pts.first()?, pts.last()?);
    (last.0 > first.0).then_some((first, last))
}

/// In i128 so that no pair of i64 timestamps can overflow.
fn hours_between(t0: i64, t1: i64) -> f64 {
    (i128::from(t1) - i128::from(t0)) as f64 / MS_PER_HOUR
}

fn span(pts: &[(i64, f64)]) -> i64 {
    match (pts.first(), pts.last()) {
        (Some(a), Some(b)) => b.0.saturating_sub(a.0),
        _ => 0,
    }
}

fn invalid(p: &Params) -> Option<&'static str> {
    if p.slope_max_per_hour.is_nan() {
        Some("the slope limit is not a number")
    } else if !(p.alpha > 0.0 && p.alpha < 1.0) {
        Some("alpha must lie strictly between 0 and 1")
    } else if p.limit.is_some_and(f64::is_nan) {
        Some("the projection limit is not a number")
    } else {
        None
    }
}

/// The series reduced to at most [`MAX_BUCKETS`] `(hours since the first
/// sample, median value)` points in time order, and how many GC cycles they
/// summarise when the series is a sawtooth.
struct Reduced {
    buckets: Vec<(f64, f64)>,
    cycles: Option<usize>,
}

/// Fewer whole cycles than this and the sawtooth is too coarse to average:
/// time buckets (and the autocorrelation correction) take over.
const MIN_CYCLES: usize = 4;

/// A fall this many robust standard deviations below the typical
/// sample-to-sample change is a collection, not noise (Gaussian odds ~1e-9).
const DROP_SIGMAS: f64 = 6.0;

/// With a GC sawtooth the unit of evidence is a cycle: a time bucket that
/// cuts a ramp anywhere but at a drop has a median biased by up to half the
/// amplitude, which on a 20 MB sawtooth swamps a 5 MB/h leak for hours. So
/// when the series has at least [`MIN_CYCLES`] whole cycles between drops,
/// buckets are runs of whole cycles (partial first and last cycles dropped);
/// otherwise equal-time buckets, or every distinct timestamp when few.
fn reduce(pts: &[(i64, f64)]) -> Reduced {
    let Some(&(t0, _)) = pts.first() else {
        return Reduced {
            buckets: Vec::new(),
            cycles: None,
        };
    };
    let cycles = gc_cycles(pts);
    if cycles.len() < MIN_CYCLES {
        return Reduced {
            buckets: time_buckets(pts),
            cycles: None,
        };
    }
    let groups = cycles.len().min(MAX_BUCKETS);
    let mut scratch = Vec::new();
    let buckets = (0..groups)
        .map(|g| {
            let first = &cycles[g * cycles.len() / groups];
            let last = &cycles[(g + 1) * cycles.len() / groups - 1];
            summarise(t0, &pts[first.start..last.end], &mut scratch)
        })
        .collect();
    Reduced {
        buckets,
        cycles: Some(cycles.len()),
    }
}

/// Index ranges of the whole cycles between GC-like drops, in order. A drop
/// caught mid-fall spans several samples; those samples belong to no cycle.
/// O(n): medians by selection.
fn gc_cycles(pts: &[(i64, f64)]) -> Vec<Range<usize>> {
    let diffs: Vec<f64> = pts.windows(2).map(|w| w[1].1 - w[0].1).collect();
    let mut scratch = diffs.clone();
    let typical = median(&mut scratch);
    for d in &mut scratch {
        *d = (*d - typical).abs();
    }
    // 1.4826·MAD estimates the standard deviation of Gaussian noise. A zero
    // spread (integer counts, constant series) gives no scale to judge by.
    let scale = 1.4826 * median(&mut scratch);
    if scale.is_nan() || scale <= 0.0 {
        return Vec::new();
    }
    let cut = typical - DROP_SIGMAS * scale;
    let is_drop = |i: usize| diffs[i] < cut.min(0.0);
    // (first, last) diff index of each run of consecutive falling diffs.
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for i in (0..diffs.len()).filter(|&i| is_drop(i)) {
        match runs.last_mut() {
            Some(run) if run.1 + 1 == i => run.1 = i,
            _ => runs.push((i, i)),
        }
    }
    // Diff i falls from sample i to i + 1: a cycle runs from the sample after
    // one drop to the peak before the next.
    runs.windows(2).map(|w| w[0].1 + 1..w[1].0 + 1).collect()
}

/// Equal-time buckets of a sorted series; series short enough for direct
/// pairwise work keep every distinct timestamp (equal ones merged).
fn time_buckets(pts: &[(i64, f64)]) -> Vec<(f64, f64)> {
    let (Some(&(t0, _)), Some(&(t_end, _))) = (pts.first(), pts.last()) else {
        return Vec::new();
    };
    let width = i128::from(t_end) - i128::from(t0) + 1;
    let direct = pts.len() <= MAX_BUCKETS;
    let key = |t: i64| {
        let offset = i128::from(t) - i128::from(t0);
        if direct {
            offset
        } else {
            offset * MAX_BUCKETS as i128 / width
        }
    };
    let mut scratch = Vec::new();
    pts.chunk_by(|a, b| key(a.0) == key(b.0))
        .map(|group| summarise(t0, group, &mut scratch))
        .collect()
}

/// A group of samples as (mean hours since `t0`, median value).
fn summarise(t0: i64, group: &[(i64, f64)], scratch: &mut Vec<f64>) -> (f64, f64) {
    let hours = group
        .iter()
        .map(|&(t, _)| hours_between(t0, t))
        .sum::<f64>();
    scratch.clear();
    scratch.extend(group.iter().map(|&(_, v)| v));
    (hours / group.len() as f64, median(scratch))
}

struct Fit {
    slope: f64,
    lo: f64,
    hi: f64,
    p: f64,
    /// Median of `value − slope · hours`, the Theil–Sen line's offset.
    intercept: f64,
}

fn fit(b: &[(f64, f64)], alpha: f64) -> Fit {
    let none = Fit {
        slope: f64::NAN,
        lo: f64::NAN,
        hi: f64::NAN,
        p: 1.0,
        intercept: f64::NAN,
    };
    let n = b.len();
    let (mut slopes, s) = pairwise(b);
    if n < MIN_BUCKETS || slopes.is_empty() {
        return none;
    }
    let slope = median(&mut slopes);
    let var = mann_kendall_variance(b) * hamed_rao_factor(b, slope);
    let z_crit = normal_quantile(1.0 - alpha / 2.0);
    // Sen's interval: the order statistics of the pairwise slopes that are
    // z·sd(S) ranks either side of the middle (Gilbert 1987, §16.4).
    let count = slopes.len() as f64;
    let c = z_crit * var.sqrt();
    let last = slopes.len() - 1;
    let rank = |r: f64| {
        if r.is_nan() {
            0
        } else {
            (r.max(0.0) as usize).min(last)
        }
    };
    let lo_idx = rank(((count - c) / 2.0).floor() - 1.0);
    let hi_idx = rank(((count + c) / 2.0).ceil());
    let lo = order_stat(&mut slopes, lo_idx);
    let hi = order_stat(&mut slopes, hi_idx);
    let p = if var > 0.0 {
        // Continuity-corrected normal approximation of S.
        let z = (s.abs() as f64 - 1.0).max(0.0) / var.sqrt();
        erfc(z / std::f64::consts::SQRT_2)
    } else {
        1.0
    };
    let mut offsets: Vec<f64> = b.iter().map(|&(t, y)| y - slope * t).collect();
    Fit {
        slope,
        lo,
        hi,
        p: if p.is_nan() { 1.0 } else { p.min(1.0) },
        intercept: median(&mut offsets),
    }
}

/// All pairwise slopes of time-ordered buckets, and Mann–Kendall's S (the
/// count of rising pairs minus falling pairs).
fn pairwise(b: &[(f64, f64)]) -> (Vec<f64>, i64) {
    let n = b.len();
    let mut slopes = Vec::with_capacity(n * n.saturating_sub(1) / 2);
    let mut s = 0i64;
    for (i, &(ti, yi)) in b.iter().enumerate() {
        for &(tj, yj) in &b[i + 1..] {
            // Only absurd timestamps collapse to equal f64 hours; such a pair
            // has no slope and does not count.
            if tj > ti {
                slopes.push((yj - yi) / (tj - ti));
                s += match yj.total_cmp(&yi) {
                    Ordering::Greater => 1,
                    Ordering::Less => -1,
                    Ordering::Equal => 0,
                };
            }
        }
    }
    (slopes, s)
}

/// Fits of [`PIECES`] equal-time stretches of the buckets, whose times count
/// from the first sample. A stretch with fewer than [`MIN_BUCKETS`] buckets
/// has no slope to fit: with a handful of GC cycles as buckets a third may
/// hold one or two. It is widened to the [`MIN_BUCKETS`] buckets around it
/// (the first and last stay anchored at their ends), so the pieces overlap
/// but still compare the start, middle and end of the span, which is what
/// tells a steady leak from a fill that levels off. None when the buckets
/// are too few for even one piece.
fn piece_fits(b: &[(f64, f64)], alpha: f64) -> Option<Vec<Fit>> {
    let n = b.len();
    if n < MIN_BUCKETS {
        return None;
    }
    let end = b.last().map_or(0.0, |l| l.0);
    let cut = |k: usize| match k {
        0 => 0,
        k if k >= PIECES => n,
        k => b.partition_point(|&(t, _)| t < end * k as f64 / PIECES as f64),
    };
    let fits = (0..PIECES)
        .map(|k| {
            let (mut start, mut stop) = (cut(k), cut(k + 1));
            if stop - start < MIN_BUCKETS {
                start = match k {
                    0 => 0,
                    k if k + 1 == PIECES => n - MIN_BUCKETS,
                    _ => ((start + stop) / 2).saturating_sub(MIN_BUCKETS / 2),
                }
                .min(n - MIN_BUCKETS);
                stop = start + MIN_BUCKETS;
            }
            fit(&b[start..stop], alpha)
        })
        .collect::<Vec<_>>();
    fits.iter().all(|f| f.slope.is_finite()).then_some(fits)
}

/// Time from `end_hours` until the fitted line reaches `limit`.
fn project(fit: &Fit, end_hours: f64, limit: f64) -> Option<i64> {
    let level = fit.intercept + fit.slope * end_hours;
    if !level.is_finite() {
        return None;
    }
    if level >= limit {
        return Some(0);
    }
    if fit.slope <= 0.0 {
        return None;
    }
    let ms = (limit - level) / fit.slope * MS_PER_HOUR;
    // Beyond ~292 million years the answer is "never" for any soak.
    (ms.is_finite() && ms < i64::MAX as f64).then(|| ms.ceil() as i64)
}

/// Var(S) of Mann–Kendall's S under no trend, with the tie correction.
fn mann_kendall_variance(b: &[(f64, f64)]) -> f64 {
    let n = b.len() as f64;
    let mut ys: Vec<f64> = b.iter().map(|&(_, y)| y).collect();
    ys.sort_by(f64::total_cmp);
    let ties: f64 = ys
        .chunk_by(|a, b| a == b)
        .map(|g| {
            let t = g.len() as f64;
            t * (t - 1.0) * (2.0 * t + 5.0)
        })
        .sum();
    ((n * (n - 1.0) * (2.0 * n + 5.0) - ties) / 18.0).max(0.0)
}

/// Hamed & Rao (1998) variance inflation n/n*: from the significant lag
/// autocorrelations of the ranks of the detrended series. Never below 1:
/// shrinking the variance on the strength of periodic noise would be
/// optimism the data has not earned.
fn hamed_rao_factor(b: &[(f64, f64)], slope: f64) -> f64 {
    let n = b.len();
    if n < 4 || !slope.is_finite() {
        return 1.0;
    }
    let resid: Vec<f64> = b.iter().map(|&(t, y)| y - slope * t).collect();
    let mid = (n as f64 + 1.0) / 2.0;
    let dev: Vec<f64> = average_ranks(&resid).iter().map(|r| r - mid).collect();
    let denom: f64 = dev.iter().map(|d| d * d).sum();
    if denom <= 0.0 {
        return 1.0;
    }
    let nf = n as f64;
    // Sum lags only up to the first one whose autocorrelation is not
    // significantly positive (Geyer's initial-sequence idea). Over a short
    // window, detrending a persistent series makes its sample ACF swing
    // negative at long lags; summing those, as the textbook correction
    // does, cancels the genuine short-lag dependence and yields intervals
    // far too narrow on wandering-but-flat traces.
    let band = 1.96 / nf.sqrt();
    let mut sum = 0.0;
    for k in 1..n - 2 {
        let rho = dev.iter().zip(&dev[k..]).map(|(a, b)| a * b).sum::<f64>() / denom;
        if rho <= band {
            break;
        }
        let kf = k as f64;
        sum += (nf - kf) * (nf - kf - 1.0) * (nf - kf - 2.0) * rho;
    }
    let factor = 1.0 + 2.0 * sum / (nf * (nf - 1.0) * (nf - 2.0));
    if factor.is_finite() { factor } else { 1.0 }
}

/// Ranks 1..=n, ties given their average rank.
fn average_ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut ranks = vec![0.0; v.len()];
    let mut start = 0;
    for group in idx.chunk_by(|&a, &b| v[a] == v[b]) {
        let avg = start as f64 + (group.len() as f64 + 1.0) / 2.0;
        for &i in group {
            ranks[i] = avg;
        }
        start += group.len();
    }
    ranks
}

/// k-th smallest (0-based) by selection, O(len); reorders `v`.
fn order_stat(v: &mut [f64], k: usize) -> f64 {
    *v.select_nth_unstable_by(k, f64::total_cmp).1
}

/// Median of a non-empty slice (mean of the middle two for even lengths);
/// NaN for an empty one. Reorders `v`.
fn median(v: &mut [f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    let upper = order_stat(v, n / 2);
    if n % 2 == 1 {
        return upper;
    }
    // After selection everything left of n/2 is ≤ it; the lower middle is
    // the largest of those.
    let lower = v[..n / 2].iter().copied().fold(f64::NEG_INFINITY, f64::max);
    lower / 2.0 + upper / 2.0
}

/// Complementary error function, Numerical Recipes' Chebyshev fit
/// (relative error < 1.2e-7 everywhere): ample for p-values shown to 3 places.
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// Standard normal quantile, Acklam's rational approximation (relative
/// error < 1.2e-9); `p` must lie in (0, 1), which `invalid` guarantees.
fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    const LOW: f64 = 0.024_25;
    if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - LOW {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

fn confidence(alpha: f64) -> String {
    let c = (1.0 - alpha) * 100.0;
    if (c - c.round()).abs() < 1e-9 {
        format!("{c:.0}%")
    } else {
        format!("{c:.1}%")
    }
}

fn p_text(p: f64) -> String {
    if p < 0.001 {
        "p<0.001".to_string()
    } else {
        format!("p={p:.3}")
    }
}

/// "45 s", "12 min", "5.5 h", "3.1 d": the scale a soak report reads in.
fn duration(ms: i64) -> String {
    let s = ms as f64 / 1000.0;
    if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 5400.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 172_800.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} d", s / 86_400.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIN: i64 = 60_000;

    fn rss(slope_max_mb: f64) -> Params {
        Params::new(Metric::Rss, slope_max_mb * 1_048_576.0)
    }

    /// `minutes` of samples every 5 s with value `f(t in hours)`.
    fn series(minutes: i64, f: impl Fn(f64) -> f64) -> Vec<(i64, f64)> {
        (0..minutes * 12)
            .map(|i| {
                let t = 1_700_000_000_000 + i * 5_000;
                (t, f(i as f64 * 5.0 / 3600.0))
            })
            .collect()
    }

    /// SplitMix64: a seeded, dependency-free source for generated traces.
    struct Rng(u64);

    impl Rng {
        fn unit(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        }

        fn range(&mut self, lo: f64, hi: f64) -> f64 {
            lo + (hi - lo) * self.unit()
        }
    }

    /// `minutes` of 5 s samples of a GC-collected heap: 200 MB, a sawtooth
    /// of `amp_mb` whose every cycle lasts within ±15 % of `period_min`
    /// (random phase), 0.3 MB of white noise, and a leak of `leak_mb_h`.
    fn gc_trace(
        seed: u64,
        minutes: i64,
        period_min: f64,
        amp_mb: f64,
        leak_mb_h: f64,
    ) -> Vec<(i64, f64)> {
        const MB: f64 = 1_048_576.0;
        let mut rng = Rng(seed);
        let mut period = period_min * rng.range(0.85, 1.15);
        let mut phase = rng.range(0.0, period);
        let mut out = Vec::new();
        for i in 0..minutes * 12 {
            let t_min = i as f64 / 12.0;
            phase += 1.0 / 12.0;
            if phase >= period {
                phase -= period;
                period = period_min * rng.range(0.85, 1.15);
            }
            let v = 200.0 * MB
                + amp_mb * MB * phase / period
                + leak_mb_h * MB * t_min / 60.0
                + rng.range(-0.5, 0.5) * 0.6 * MB;
            out.push((1_700_000_000_000 + i * 5_000, v));
        }
        out
    }

    /// Spans after the 5 min warm-up that hold 5 to 10 whole cycles of an
    /// 11 min sawtooth: too few cycles for three pieces of three apiece.
    const FEW_CYCLE_SPANS: [i64; 4] = [75, 90, 105, 120];

    #[test]
    fn leak_under_an_11_min_sawtooth_fails_with_a_handful_of_cycles() {
        for seed in 0..12 {
            for minutes in FEW_CYCLE_SPANS {
                for limit in [2.0, 5.0] {
                    let t = judge(&gc_trace(seed, minutes, 11.0, 20.0, 10.0), &rss(limit));
                    let at = format!("seed {seed}, {minutes} min, limit {limit}");
                    assert_eq!(t.decision, Decision::Fail, "{at}: {}", t.reason);
                    assert!(t.reason.contains("GC cycles"), "{at}: {}", t.reason);
                    assert!(!t.reason.contains("NaN"), "{at}: {}", t.reason);
                }
            }
        }
    }

    #[test]
    fn flat_under_the_same_sawtooth_passes() {
        for seed in 0..12 {
            for minutes in FEW_CYCLE_SPANS {
                let t = judge(&gc_trace(seed, minutes, 11.0, 20.0, 0.0), &rss(2.0));
                assert_eq!(
                    t.decision,
                    Decision::Pass,
                    "seed {seed}, {minutes} min: {}",
                    t.reason
                );
            }
        }
    }

    #[test]
    fn fewer_than_four_cycles_is_unknown_and_says_what_is_missing() {
        // 35 min after the warm-up: three cycles of 11 min at most, so the
        // ramps are not yet averaged out and neither verdict is earned.
        for seed in 0..12 {
            for leak in [0.0, 10.0] {
                let t = judge(&gc_trace(seed, 40, 11.0, 20.0, leak), &rss(2.0));
                assert_eq!(t.decision, Decision::Unknown, "seed {seed}: {}", t.reason);
                assert!(
                    t.reason.contains("needs a longer soak") && !t.reason.contains("NaN"),
                    "seed {seed}: {}",
                    t.reason
                );
            }
        }
    }

    #[test]
    fn degenerate_inputs_are_unknown() {
        let p = rss(10.0);
        let nan = vec![(0, f64::NAN); 100];
        let same_time: Vec<(i64, f64)> = (0..500).map(|i| (42, i as f64)).collect();
        for s in [&[][..], &[(0, 1.0)][..], &nan[..], &same_time[..]] {
            let t = judge(s, &p);
            assert_eq!(t.decision, Decision::Unknown, "{}", t.reason);
            assert!(!t.reason.is_empty());
        }
        assert_eq!(judge_segments(&[], &p).decision, Decision::Unknown);
    }

    #[test]
    fn invalid_params_are_unknown() {
        let s = series(120, |h| 200e6 + 50e6 * h);
        for p in [
            Params {
                alpha: 0.0,
                ..rss(1.0)
            },
            Params {
                alpha: f64::NAN,
                ..rss(1.0)
            },
            rss(f64::NAN),
            Params {
                limit: Some(f64::NAN),
                ..rss(1.0)
            },
        ] {
            assert_eq!(judge(&s, &p).decision, Decision::Unknown);
        }
    }

    #[test]
    fn exact_line_gives_exact_slope_and_projection() {
        const MB: f64 = 1_048_576.0;
        let s = series(180, |h| 100.0 * MB + 20.0 * MB * h);
        let p = Params {
            limit: Some(500.0 * 1_048_576.0),
            ..rss(10.0)
        };
        let t = judge(&s, &p);
        assert_eq!(t.decision, Decision::Fail, "{}", t.reason);
        assert!((t.slope_per_hour - 20.0 * MB).abs() < 1.0);
        // 100 MB + 3 h·20 MB/h = 160 MB at the end; 340 MB to go at 20 MB/h.
        let ms = t.projected_limit_ms.expect("positive slope") as f64;
        assert!((ms / 3_600_000.0 - 17.0).abs() < 0.01, "{ms}");
        assert!(
            t.reason.contains("reaches 500.0 MB in 17.0 h"),
            "{}",
            t.reason
        );
    }

    #[test]
    fn constant_series_passes() {
        let t = judge(&series(60, |_| 300e6), &rss(1.0));
        assert_eq!(t.decision, Decision::Pass, "{}", t.reason);
        assert_eq!(t.slope_per_hour, 0.0);
    }

    #[test]
    fn order_of_samples_does_not_matter() {
        let s = series(90, |h| 100e6 + 8e6 * h + 2e6 * (h * 400.0).sin());
        let mut shuffled = s.clone();
        shuffled.reverse();
        shuffled.swap(3, 700);
        assert_eq!(judge(&s, &rss(2.0)), judge(&shuffled, &rss(2.0)));
    }

    #[test]
    fn short_soak_is_unknown_even_when_steep() {
        let t = judge(&series(20, |h| 100e6 + 100e6 * h), &rss(2.0));
        assert_eq!(t.decision, Decision::Unknown);
        assert!(t.reason.contains("need 60 over 30 min"), "{}", t.reason);
    }

    #[test]
    fn a_late_step_is_not_a_leak() {
        // Flat, one 40 MB step 25 min in, flat again: growth, but not steady.
        let step = |h: f64| 100e6 + if h > 25.0 / 60.0 { 40e6 } else { 0.0 };
        let noisy = |h: f64| step(h) + 0.5e6 * (h * 977.0).sin();
        for minutes in [40, 60, 120, 360] {
            let t = judge(&series(minutes, noisy), &rss(2.0));
            assert_ne!(t.decision, Decision::Fail, "{minutes} min: {}", t.reason);
        }
    }

    #[test]
    fn incarnations_combine() {
        let flat = series(120, |h| 100e6 + 0.3e6 * (h * 500.0).sin());
        let leak = series(120, |h| 100e6 + 30e6 * h + 0.3e6 * (h * 500.0).sin());
        let stub = series(3, |_| 100e6);
        let p = rss(2.0);
        assert_eq!(judge_segments(&[&flat, &stub], &p).decision, Decision::Pass);
        let t = judge_segments(&[&flat, &leak, &stub], &p);
        assert_eq!(t.decision, Decision::Fail);
        assert!(t.reason.starts_with("incarnation 2 of 3"), "{}", t.reason);
        assert_eq!(judge_segments(&[&stub], &p).decision, Decision::Unknown);
    }

    #[test]
    fn fixed_rules() {
        let up = series(60, |h| 100e6 + 20e6 * h);
        assert_eq!(rule_last_minus_first(&up, 10e6), Decision::Fail);
        assert_eq!(rule_last_minus_first(&up, 30e6), Decision::Pass);
        // 20 % in 1 h against 50 % per 24 h.
        assert_eq!(rule_growth_pct(&up, 50.0, 24 * 60 * MIN), Decision::Fail);
        assert_eq!(rule_linreg_r2(&up, 10e6, 0.8), Decision::Fail);
        assert_eq!(
            rule_linreg_r2(&series(60, |_| 5.0), 0.0, 0.8),
            Decision::Pass
        );
        for rule in [
            rule_last_minus_first(&[], 1.0),
            rule_growth_pct(&[(0, 0.0), (1, 1.0)], 50.0, MIN),
            rule_linreg_r2(&[(5, 1.0), (5, 2.0)], 1.0, 0.8),
        ] {
            assert_eq!(rule, Decision::Unknown);
        }
    }

    #[test]
    fn normal_helpers_are_accurate() {
        assert!((normal_quantile(0.975) - 1.959_964).abs() < 1e-5);
        assert!((normal_quantile(0.0005) + 3.290_527).abs() < 1e-5);
        assert!((erfc(1.959_964 / std::f64::consts::SQRT_2) - 0.05).abs() < 1e-6);
    }

    fn any_value() -> impl Strategy<Value = f64> {
        prop_oneof![
            4 => -1e12f64..1e12,
            1 => proptest::num::f64::ANY,
            1 => Just(f64::NAN),
        ]
    }

    fn any_time() -> impl Strategy<Value = i64> {
        prop_oneof![4 => 0i64..20_000_000, 1 => any::<i64>()]
    }

    proptest! {
        #[test]
        fn never_panics_and_decisions_follow_the_rule(
            s in proptest::collection::vec((any_time(), any_value()), 0..700),
            slope_max in any_value(),
            warmup in any::<i64>(),
            min_span in prop_oneof![Just(0i64), any::<i64>()],
            min_points in 0usize..100,
            alpha in prop_oneof![0.001f64..0.5, proptest::num::f64::ANY],
            limit in proptest::option::of(any_value()),
        ) {
            let p = Params {
                metric: Metric::Fds,
                slope_max_per_hour: slope_max,
                warmup_ms: warmup,
                min_points,
                min_span_ms: min_span,
                alpha,
                limit,
            };
            let t = judge(&s, &p);
            match t.decision {
                Decision::Fail => prop_assert!(t.p_value < alpha && t.ci_per_hour.0 > slope_max),
                Decision::Pass => prop_assert!(t.ci_per_hour.1 < slope_max),
                Decision::Unknown => {}
            }
            prop_assert!(!t.reason.contains("NaN"), "{}", t.reason);
            prop_assert!(t.ci_per_hour.0.is_nan() || t.ci_per_hour.0 <= t.ci_per_hour.1);
            prop_assert!((0.0..=1.0).contains(&t.p_value));
            prop_assert!(t.projected_limit_ms.is_none_or(|ms| ms >= 0));
            let halves = s.split_at(s.len() / 2);
            judge_segments(&[halves.0, halves.1], &p);
            rule_last_minus_first(&s, slope_max);
            rule_growth_pct(&s, slope_max, warmup);
            rule_linreg_r2(&s, slope_max, 0.8);
        }
    }
}
