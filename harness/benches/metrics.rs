//! The cost of metrics in and out per sampler tick: parsing and selecting a
//! large exposition (a service with 10 000 series, about 600 KB, near the
//! 1 MiB cap), and rendering soak's own page for 20 services, 10 workloads
//! and 50 assertions. Both are paid once per `sample_every` (in) or per
//! Prometheus scrape (out).
//!
//! `cargo bench -p soak --bench metrics`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use soak::metrics::expose::{AssertionState, Exposition, classic_text};
use soak::metrics::parse::parse;
use soak::metrics::scrape::Keep;
use std::hint::black_box;
use std::time::Duration;

fn exposition(series: usize) -> String {
    let mut t =
        String::from("# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n");
    for i in 0..series {
        t.push_str(&format!(
            "http_requests_total{{route=\"/r{}\",code=\"{}\",method=\"GET\"}} {}\n",
            i / 5,
            200 + i % 5,
            i * 7
        ));
    }
    t.push_str("queue_depth{queue=\"mail\"} 12\n");
    t
}

fn scrape_side(c: &mut Criterion) {
    let text = exposition(10_000);
    let keep = Keep::parse(&["queue_depth", r#"http_requests_total{route="/r7"}"#], 100).unwrap();
    let mut g = c.benchmark_group("scrape");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("parse_and_keep_10k_series", |b| {
        b.iter(|| keep.select(&parse(black_box(&text)).unwrap()))
    });
    g.finish();
}

fn expose_side(c: &mut Criterion) {
    let e = Exposition::new();
    for s in 0..20 {
        let s = format!("service{s}");
        e.service_started(&s);
        e.sample(&s, 50_000_000, 40, 8, 1.0);
        e.fault_active(&s, "kill", false);
        e.incarnation_ended(&s, "unplanned");
        e.service_started(&s);
    }
    for w in 0..10 {
        for i in 0..100 {
            e.request(&format!("w{w}"), "ok", Duration::from_micros(100 * i));
        }
    }
    for a in 0..50 {
        e.assertion(&format!("a{a}"), "service0", AssertionState::Pass);
    }
    let mut g = c.benchmark_group("expose");
    g.bench_function("openmetrics_page", |b| b.iter(|| black_box(&e).encode()));
    g.bench_function("classic_page", |b| {
        b.iter(|| classic_text(&black_box(&e).encode()))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = scrape_side, expose_side
}
criterion_main!(benches);
