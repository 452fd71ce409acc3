//! Link faults: the services behind a faulty link answer fast while it is
//! faulty (`fails_fast`: a timeout or a breaker, not a hang) and succeed
//! again once it is healed (`recovers_within`). A link step's target is the
//! LINK; the services it hits are the link's dependents, and `survives` and
//! `healthy_within` judge those (see [`hit_services`]).

use super::{FaultRecord, Judge, Verdict, ms};
use crate::clock::human;
use crate::config::scenario::{FailsFast, RecoversWithin, Scenario, Step, is_link_action};
use crate::journal::{Event, EventRow, RunData};
use crate::workload::LatencyHistogram;

/// A link fault's active span as journaled: injected until rolled back (or
/// the end of its window when no rollback was journaled).
struct Span<'a> {
    fault: &'a FaultRecord,
    from: i64,
    to: i64,
    rolled_back: Option<i64>,
}

fn link_faults<'a>(sc: &Scenario, data: &RunData, fs: &'a [FaultRecord]) -> Vec<Span<'a>> {
    fs.iter()
        .filter(|f| is_link_fault(sc, f))
        .map(|f| {
            let rolled_back = data.events.iter().find_map(|e| match &e.event {
                Event::FaultRolledBack { step, .. }
                    if *step == f.step
                        && e.service.as_deref() == Some(f.target.as_str())
                        && e.ts >= f.injected_at =>
                {
                    Some(e.ts)
                }
                _ => None,
            });
            Span {
                fault: f,
                from: f.injected_at,
                to: rolled_back.unwrap_or(f.window_end),
                rolled_back,
            }
        })
        .collect()
}

/// The faults as the services they hit see them: a link fault becomes one
/// fault per dependent of the link (the link itself has no process to
/// restart or probe); every other fault is kept as it is.
pub(super) fn hit_services(sc: &Scenario, fs: &[FaultRecord]) -> Vec<FaultRecord> {
    let mut out = Vec::new();
    for f in fs {
        if is_link_fault(sc, f) {
            for s in sc.config.dependents_of_link(&f.target) {
                out.push(FaultRecord {
                    target: s,
                    ..f.clone()
                });
            }
        } else {
            out.push(f.clone());
        }
    }
    out
}

/// A step's target as a service list: a link stands for its dependents.
pub(super) fn hit_targets(sc: &Scenario, step: &Step) -> Vec<String> {
    if step.action.is_link() {
        sc.config.dependents_of_link(&step.target)
    } else {
        vec![step.target.clone()]
    }
}

/// A fault on a link, told by its action: a link and a service often share
/// a name (`[links.store] to = "store"`), and a fault on the service is not
/// one on its link.
fn is_link_fault(sc: &Scenario, f: &FaultRecord) -> bool {
    is_link_action(&f.action) && sc.config.links.contains_key(&f.target)
}

/// One load interval of a workload: [start, end], counts, and its load
/// event (whose histogram [`RunData::histogram`] reads).
struct Interval<'a> {
    start: i64,
    end: i64,
    ok: u64,
    failed: u64,
    event: &'a EventRow,
}

/// The workload's intervals. A load event is journaled at the end of its
/// interval and does not say how long it was. The typical gap between two
/// events (their median) is the reporting period: a longer gap is an
/// interval that sent nothing before it, and a shorter one is the last,
/// partial interval flushed at the end of the load, whose start is the
/// event before it. One event alone is taken as a second long.
fn intervals<'a>(data: &'a RunData, workload: &str) -> Vec<Interval<'a>> {
    let rows: Vec<(i64, u64, u64, &EventRow)> = data
        .events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Load {
                workload: w,
                ok,
                failed,
                ..
            } if w == workload => Some((e.ts, *ok, *failed, e)),
            _ => None,
        })
        .collect();
    let mut gaps: Vec<i64> = rows
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .filter(|g| *g > 0)
        .collect();
    gaps.sort_unstable();
    let period = gaps.get(gaps.len() / 2).copied().unwrap_or(1_000);
    let mut previous: Option<i64> = None;
    rows.into_iter()
        .map(|(ts, ok, failed, event)| {
            let start = (ts - period).max(previous.unwrap_or(i64::MIN));
            previous = Some(ts);
            Interval {
                start,
                end: ts,
                ok,
                failed,
                event,
            }
        })
        .collect()
}

pub(super) fn fails_fast(j: &mut Judge, sc: &Scenario, fs: &[FaultRecord], ff: &FailsFast) {
    let w = ff.workload.get_ref();
    let service = sc.config.workloads[w].service.get_ref().clone();
    let limit = ff.p99_max.0.as_millis() as f64;
    let expected = format!("{w} p99 <= {} while a link is faulty", human(ff.p99_max.0));
    let spans = link_faults(sc, j.data, fs);
    if spans.is_empty() {
        j.push(
            "fails_fast",
            Some(&service),
            Verdict::Unknown,
            [
                expected,
                "no link fault".into(),
                "no link fault was injected, so there was nothing to fail fast on".into(),
            ],
            None,
        );
        return;
    }
    let all = intervals(j.data, w);
    for s in spans {
        let f = s.fault;
        // A breaker opens only after a few timeouts: those first requests
        // are slow by design.
        // What the user says their client needs to give up on a silent
        // dependency (a timeout or two before the breaker opens), else a
        // guess that fits a breaker with second-long timeouts.
        let grace = match ff.after {
            Some(after) => (after.0.as_millis() as i64).min(s.to - s.from),
            None => (2_000).min((s.to - s.from) / 5),
        };
        let from = s.from + grace;
        // An interval counts when at least half of it lies between the end
        // of the grace and the rollback (or the whole window lies in it).
        // Load is journaled every second: a tick a millisecond after the
        // grace ends sums a second of the breaker's first timeouts, which
        // the grace is there to leave out; counted on any overlap, whether
        // it failed the run depended on that millisecond.
        let during: Vec<&Interval> = all
            .iter()
            .filter(|i| {
                let overlap = i.end.min(s.to) - i.start.max(from);
                overlap > 0 && (2 * overlap >= i.end - i.start || overlap >= s.to - from)
            })
            .collect();
        let what = format!("the {} on link {}", f.action, f.target);
        let mut h = LatencyHistogram::default();
        let mut unreadable = None;
        for i in &during {
            match j.data.histogram(i.event) {
                Ok(v) => h.merge_json(&v),
                Err(e) => {
                    unreadable = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = unreadable {
            j.push(
                "fails_fast",
                Some(&service),
                Verdict::Unknown,
                [
                    expected.clone(),
                    "unreadable".into(),
                    format!("cannot read the latency histograms of {w}: {e}"),
                ],
                Some(f.injected_at),
            );
            continue;
        }
        let Some(p99) = h.quantile_ms(0.99) else {
            j.push(
                "fails_fast",
                Some(&service),
                Verdict::Unknown,
                [
                    expected.clone(),
                    "no requests".into(),
                    format!("no request of {w} was measured while {what} was active"),
                ],
                Some(f.injected_at),
            );
            continue;
        };
        let ok = p99 <= limit;
        let observed = format!("p99 {p99:.0} ms over {} request(s)", h.count());
        let reason = format!(
            "{w} {} while {what} was active: p99 {p99:.0} ms over {} request(s) \
             (the first {} of the fault not counted: a breaker needs a few timeouts to open)",
            if ok { "answered fast" } else { "was slow" },
            h.count(),
            ms(grace)
        );
        j.push(
            "fails_fast",
            Some(&service),
            if ok { Verdict::Pass } else { Verdict::Fail },
            [expected.clone(), observed, reason],
            Some(f.injected_at),
        );
    }
}

pub(super) fn recovers_within(
    j: &mut Judge,
    sc: &Scenario,
    fs: &[FaultRecord],
    rw: &RecoversWithin,
) {
    let w = rw.workload.get_ref();
    let service = sc.config.workloads[w].service.get_ref().clone();
    let limit = rw.within.0.as_millis() as i64;
    let expected = format!("{w} succeeds within {} of the rollback", human(rw.within.0));
    let spans = link_faults(sc, j.data, fs);
    if spans.is_empty() {
        j.push(
            "recovers_within",
            Some(&service),
            Verdict::Unknown,
            [
                expected,
                "no link fault".into(),
                "no link fault was injected, so there was nothing to recover from".into(),
            ],
            None,
        );
        return;
    }
    let all = intervals(j.data, w);
    for s in spans {
        let f = s.fault;
        let what = format!("the {} on link {}", f.action, f.target);
        let Some(back) = s.rolled_back else {
            j.push(
                "recovers_within",
                Some(&service),
                Verdict::Unknown,
                [
                    expected.clone(),
                    "not rolled back".into(),
                    format!("no rollback of {what} was journaled (run interrupted?)"),
                ],
                Some(f.injected_at),
            );
            continue;
        };
        let after: Vec<&Interval> = all
            .iter()
            .filter(|i| i.end > back && i.start < f.window_end)
            .collect();
        let clean = after.iter().find(|i| i.ok > 0 && i.failed == 0);
        let (verdict, observed, reason) = match clean {
            Some(i) if (i.start - back).max(0) <= limit => (
                Verdict::Pass,
                format!("succeeded {} after", ms(i.start - back)),
                format!(
                    "{w} succeeded again {} after {what} was rolled back",
                    ms(i.start - back)
                ),
            ),
            Some(i) => (
                Verdict::Fail,
                format!("succeeded {} after", ms(i.start - back)),
                format!(
                    "{w} kept failing for {} after {what} was rolled back",
                    ms(i.start - back)
                ),
            ),
            None if after.is_empty() => (
                Verdict::Unknown,
                "no requests".into(),
                format!("no request of {w} was measured after {what} was rolled back"),
            ),
            None => (
                Verdict::Fail,
                "never".into(),
                format!(
                    "{w} never succeeded without failures again after {what} was rolled back \
                     ({} interval(s) measured, {} failed request(s))",
                    after.len(),
                    after.iter().map(|i| i.failed).sum::<u64>()
                ),
            ),
        };
        j.push(
            "recovers_within",
            Some(&service),
            verdict,
            [expected.clone(), observed, reason],
            Some(back),
        );
    }
}
