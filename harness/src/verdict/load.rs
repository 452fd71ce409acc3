//! Load: availability and p99 latency of each workload, from the load
//! events the workload journals every interval.

use super::soak::push;
use super::{Judge, Verdict};
use crate::clock::human;
use crate::config::scenario::Scenario;
use crate::journal::Event;
use crate::workload::LatencyHistogram;

pub(super) fn judge(j: &mut Judge, sc: &Scenario) {
    let (out, data) = (&mut j.out, j.data);
    let e = &sc.expect;
    for w in &sc.workloads {
        let service = sc.config.workloads[w].service.get_ref().clone();
        // Each interval of the workload: (sent, ok, its load event).
        let loads: Vec<_> = data
            .events
            .iter()
            .filter_map(|e| match &e.event {
                Event::Load {
                    workload, sent, ok, ..
                } if workload == w => Some((*sent, *ok, e)),
                _ => None,
            })
            .collect();
        let sent: u64 = loads.iter().map(|l| l.0).sum();
        let ok: u64 = loads.iter().map(|l| l.1).sum();
        if let Some(min) = e.availability_min {
            let expected = format!(">= {:.3}%", min.0 * 100.0);
            if sent == 0 {
                push(
                    out,
                    "availability_min",
                    &service,
                    Verdict::Unknown,
                    [
                        expected,
                        "no requests".into(),
                        format!("workload {w} sent no requests"),
                    ],
                    None,
                );
            } else {
                let a = ok as f64 / sent as f64;
                let v = if a >= min.0 {
                    Verdict::Pass
                } else {
                    Verdict::Fail
                };
                push(
                    out,
                    "availability_min",
                    &service,
                    v,
                    [
                        expected,
                        format!("{:.3}%", a * 100.0),
                        format!(
                            "{ok} of {sent} requests of {w} succeeded ({:.3}%)",
                            a * 100.0
                        ),
                    ],
                    None,
                );
            }
        }
        if let Some(max) = e.latency_p99_max {
            let mut h = LatencyHistogram::default();
            let mut unreadable = None;
            for (_, _, e) in &loads {
                match data.histogram(e) {
                    Ok(v) => h.merge_json(&v),
                    Err(err) => {
                        unreadable = Some(err);
                        break;
                    }
                }
            }
            let expected = format!("p99 <= {}", human(max.0));
            if let Some(err) = unreadable {
                push(
                    out,
                    "latency_p99_max",
                    &service,
                    Verdict::Unknown,
                    [
                        expected,
                        "unreadable".into(),
                        format!("cannot read the latency histograms of {w}: {err}"),
                    ],
                    None,
                );
                continue;
            }
            match h.quantile_ms(0.99) {
                None => push(
                    out,
                    "latency_p99_max",
                    &service,
                    Verdict::Unknown,
                    [
                        expected,
                        "no requests".into(),
                        format!("workload {w} measured no latency"),
                    ],
                    None,
                ),
                Some(p99) => {
                    let v = if p99 <= max.0.as_secs_f64() * 1000.0 {
                        Verdict::Pass
                    } else {
                        Verdict::Fail
                    };
                    push(
                        out,
                        "latency_p99_max",
                        &service,
                        v,
                        [
                            expected,
                            format!("{p99:.1} ms"),
                            format!(
                                "p99 latency of {w} was {p99:.1} ms over {} requests (open loop)",
                                h.count()
                            ),
                        ],
                        None,
                    );
                }
            }
        }
    }
}
