//! Link-fault verdicts tested with data: a gateway behind a faulty link to
//! its store, built through the typed events.

use super::tests::{data, ev, exited, fault, inc};
use super::*;
use crate::config::Config;
use crate::journal::{Cause, FaultUndone};
use crate::workload::LatencyHistogram;
use std::path::Path;

const CONFIG: &str = r#"
[services.store]
command = ["store", "--port", "{port}"]
[services.gateway]
command = ["gw", "--store", "{link.store}"]
depends_on = ["store"]
[links.store]
to = "store"
[workloads.work]
service = "gateway"
read = { url = "http://127.0.0.1:{port}/work" }
"#;

fn scenario(expect: &str) -> Scenario {
    let src = format!(
        "config = \"soak.toml\"\nduration = \"60s\"\nworkloads = [\"work\"]\n\
         [[steps]]\nat = \"10s\"\naction = \"blackhole\"\nlink = \"store\"\nfor = \"10s\"\n\
         [expect]\n{expect}"
    );
    Scenario::parse_with(Path::new("/s/x.toml"), &src, |p| Config::parse(p, CONFIG)).unwrap()
}

/// One second of `work` ending at `ts`: `sent` requests, each `latency_ms`.
fn work(ts: i64, sent: u64, failed: u64, latency_ms: f64) -> EventRow {
    let mut h = LatencyHistogram::default();
    for _ in 0..sent {
        h.record(latency_ms);
    }
    ev(
        ts,
        "gateway",
        Event::Load {
            workload: "work".into(),
            sent,
            ok: sent - failed,
            failed,
            p50_ms: latency_ms,
            p99_ms: latency_ms,
            max_ms: latency_ms,
            errors: Vec::new(),
            histogram: h.to_json(),
        },
    )
}

fn rolled_back(ts: i64) -> EventRow {
    ev(
        ts,
        "store",
        Event::FaultRolledBack {
            step: 0,
            action: "blackhole".into(),
            held_ms: ts - 10_000,
            undone: FaultUndone::default(),
        },
    )
}

/// Load every second from 1 s to 40 s: `during(ts)` gives the interval
/// ending at ts while the fault is active (10 s to 20 s), else 20 fast
/// successes.
fn run(during: impl Fn(i64) -> EventRow, after: impl Fn(i64) -> EventRow) -> Vec<EventRow> {
    let mut events = vec![fault(10_000, "store", 0, "blackhole")];
    for s in 1..=40 {
        let ts = s * 1_000;
        events.push(if ts > 10_000 && ts <= 20_000 {
            during(ts)
        } else if ts > 20_000 {
            after(ts)
        } else {
            work(ts, 20, 0, 2.0)
        });
        if ts == 20_000 {
            events.push(rolled_back(20_000));
        }
    }
    events
}

#[test]
fn a_gateway_that_fails_fast_behind_a_blackholed_link_passes() {
    let sc = scenario("fails_fast = { workload = \"work\", p99_max = \"500ms\" }\n");
    // Answers in 50 ms, errors included; the first second (the grace) is slow.
    let d = data(
        vec![],
        run(
            |ts| {
                if ts == 11_000 {
                    work(ts, 20, 20, 3_000.0)
                } else {
                    work(ts, 20, 20, 50.0)
                }
            },
            |ts| work(ts, 20, 0, 2.0),
        ),
    );
    let a = &judge(&sc, &d)[0];
    assert_eq!((a.name.as_str(), a.verdict), ("fails_fast", Verdict::Pass));
    assert_eq!(a.service.as_deref(), Some("gateway"));
    assert!(
        a.reason
            .starts_with("work answered fast while the blackhole on link store was active: p99 5"),
        "{}",
        a.reason
    );
    assert!(
        a.reason.contains("first 2.0 s of the fault not counted"),
        "{}",
        a.reason
    );
}

#[test]
fn a_load_interval_ending_just_after_the_grace_belongs_to_the_grace() {
    let sc = scenario("fails_fast = { workload = \"work\", p99_max = \"500ms\" }\n");
    // Ticks a millisecond past each second: the one at 12.001 s sums the
    // second before the 2 s grace ended, when the breaker was still
    // timing out; every later one answers in 50 ms.
    let mut events = vec![fault(10_000, "store", 0, "blackhole")];
    for s in 1..=30 {
        let ts = s * 1_000 + 1;
        events.push(match ts {
            10_001..=12_001 => work(ts, 20, 20, 3_000.0),
            12_002..=20_001 => work(ts, 20, 20, 50.0),
            _ => work(ts, 20, 0, 2.0),
        });
    }
    events.push(rolled_back(20_000));
    events.sort_by_key(|e| e.ts);
    let a = &judge(&sc, &data(vec![], events))[0];
    assert_eq!(
        (a.name.as_str(), a.verdict),
        ("fails_fast", Verdict::Pass),
        "{}",
        a.reason
    );
    // The same timeouts a second later are in the window, and fail it.
    let mut events = vec![fault(10_000, "store", 0, "blackhole")];
    for s in 1..=30 {
        let ts = s * 1_000 + 1;
        events.push(match ts {
            10_001..=13_001 => work(ts, 20, 20, 3_000.0),
            13_002..=20_001 => work(ts, 20, 20, 50.0),
            _ => work(ts, 20, 0, 2.0),
        });
    }
    events.push(rolled_back(20_000));
    events.sort_by_key(|e| e.ts);
    let a = &judge(&sc, &data(vec![], events))[0];
    assert_eq!(a.verdict, Verdict::Fail, "{}", a.reason);
}

#[test]
fn the_last_short_flush_of_the_load_does_not_shorten_every_interval() {
    let sc = scenario("fails_fast = { workload = \"work\", p99_max = \"500ms\" }\n");
    // Ticks 400 ms past each second: the one at 12.4 s sums a second of
    // which 600 ms lie in the 2 s grace, when the breaker was still timing
    // out, so it is not judged. The load's last interval, flushed when it
    // stops, is 40 ms long; intervals are still a second long, not 40 ms
    // (which would put all of the 12.4 s one after the grace).
    for flush in [None, Some(30_440)] {
        let mut events = vec![fault(10_000, "store", 0, "blackhole")];
        for s in 1..=30 {
            let ts = s * 1_000 + 400;
            events.push(match ts {
                10_400..=12_400 => work(ts, 20, 20, 3_000.0),
                12_401..=20_400 => work(ts, 20, 20, 50.0),
                _ => work(ts, 20, 0, 2.0),
            });
        }
        events.extend(flush.map(|ts| work(ts, 1, 0, 2.0)));
        events.push(rolled_back(20_000));
        events.sort_by_key(|e| e.ts);
        let a = &judge(&sc, &data(vec![], events))[0];
        assert_eq!(a.verdict, Verdict::Pass, "flush {flush:?}: {}", a.reason);
    }
}

#[test]
fn a_gateway_that_hangs_behind_a_blackholed_link_fails_naming_its_p99() {
    let sc = scenario("fails_fast = { workload = \"work\", p99_max = \"500ms\" }\n");
    let d = data(
        vec![],
        run(|ts| work(ts, 20, 20, 5_000.0), |ts| work(ts, 20, 0, 2.0)),
    );
    let a = &judge(&sc, &d)[0];
    assert_eq!(a.verdict, Verdict::Fail);
    assert!(
        a.reason
            .starts_with("work was slow while the blackhole on link store was active: p99 5"),
        "{}",
        a.reason
    );
}

#[test]
fn no_load_while_the_link_is_faulty_is_unknown() {
    let sc = scenario("fails_fast = { workload = \"work\", p99_max = \"500ms\" }\n");
    let events = vec![
        work(1_000, 20, 0, 2.0),
        work(2_000, 20, 0, 2.0),
        fault(10_000, "store", 0, "blackhole"),
        rolled_back(20_000),
    ];
    let a = &judge(&sc, &data(vec![], events))[0];
    assert_eq!(a.verdict, Verdict::Unknown);
    assert_eq!(
        a.reason,
        "no request of work was measured while the blackhole on link store was active"
    );
}

#[test]
fn recovery_after_the_rollback_is_timed_from_the_first_clean_interval() {
    let sc = scenario("recovers_within = { workload = \"work\", within = \"5s\" }\n");
    // Failing until 23 s, clean from the interval that starts at 23 s.
    let quick = data(
        vec![],
        run(
            |ts| work(ts, 20, 20, 50.0),
            |ts| {
                if ts <= 23_000 {
                    work(ts, 20, 5, 50.0)
                } else {
                    work(ts, 20, 0, 2.0)
                }
            },
        ),
    );
    let a = &judge(&sc, &quick)[0];
    assert_eq!(
        (a.name.as_str(), a.verdict),
        ("recovers_within", Verdict::Pass)
    );
    assert_eq!(
        a.reason,
        "work succeeded again 3.0 s after the blackhole on link store was rolled back"
    );
    let never = data(
        vec![],
        run(|ts| work(ts, 20, 20, 50.0), |ts| work(ts, 20, 1, 50.0)),
    );
    let a = &judge(&sc, &never)[0];
    assert_eq!(a.verdict, Verdict::Fail);
    assert!(
        a.reason
            .starts_with("work never succeeded without failures again after the blackhole"),
        "{}",
        a.reason
    );
}

#[test]
fn a_link_step_judges_survives_on_the_services_behind_the_link() {
    let sc = scenario("survives = true\n");
    let calm = data(
        vec![inc(1, "gateway", 0, None, None, 0)],
        run(|ts| work(ts, 20, 20, 50.0), |ts| work(ts, 20, 0, 2.0)),
    );
    let a = &judge(&sc, &calm)[0];
    assert_eq!(
        (a.verdict, a.service.as_deref()),
        (Verdict::Pass, Some("gateway"))
    );
    let mut events = run(|ts| work(ts, 20, 20, 50.0), |ts| work(ts, 20, 0, 2.0));
    events.push(exited(15_000, "gateway", Cause::Unplanned));
    let died = data(
        vec![inc(
            1,
            "gateway",
            0,
            Some(15_000),
            Some(Cause::Unplanned),
            0,
        )],
        events,
    );
    let a = &judge(&sc, &died)[0];
    assert_eq!(
        (a.verdict, a.service.as_deref()),
        (Verdict::Fail, Some("gateway"))
    );
    assert!(
        a.reason.contains("died during the blackhole"),
        "{}",
        a.reason
    );
}
