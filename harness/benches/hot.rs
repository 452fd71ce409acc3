//! Hot paths of long runs, timed by criterion. A 72 h soak samples every
//! service every few seconds for three days, so anything that touches each
//! sample is paid 51 840 times per series at 5 s (259 200 at 1 s):
//!
//! - `trend`: the leak detector ([`soak::verdict::trend::judge`]) on one
//!   incarnation's RSS series of 720 (1 h), 8 640 (12 h) and 51 840 (72 h)
//!   points at 5 s, flat with noise and leaking under a GC sawtooth. The
//!   two shapes take the two bucketing paths (equal-time buckets, whole GC
//!   cycles).
//! - `chart`: one service's `report.html` for 72 h at 1 s (259 200 sample
//!   rows). The downsampler itself is private, so this times the public
//!   [`soak::report::html::render`], whose per-sample work is the
//!   downsampling of four resource series plus the RSS trend line; the same
//!   series judged alone is timed next to it so the two can be told apart.
//! - `journal`: sample rows through the real writer thread into a real
//!   SQLite file (WAL) in a temp dir: a burst of 10 000 rows including the
//!   final flush and close, and one 1 s tick of 10 services (10 rows, then a
//!   flush that waits for the commit), the steady-state cost.
//! - `histogram`: [`soak::workload::LatencyHistogram`]: recording 1 M
//!   latencies, merging a 72 h run's 4 320 per-minute histograms from their
//!   journaled JSON and taking the p99 (what the `latency_p99_max` verdict
//!   does), and the p99 of an already merged histogram.
//!
//! `cargo bench -p soak --bench hot` (about two minutes); one group alone:
//! `cargo bench -p soak --bench hot -- journal`.

#[path = "shared/rng.rs"]
mod rng;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use rng::SplitMix64;
use soak::journal::{IncarnationRow, Journal, JournalTx, Record, RunData, RunRow, SampleRow};
use soak::verdict::trend::{self, Decision, Metric, Params};
use soak::workload::LatencyHistogram;
use std::hint::black_box;
use std::time::{Duration, Instant};

const MB: f64 = 1_048_576.0;
const HOUR_MS: i64 = 3_600_000;
/// Some fixed day, so every run draws the same series.
const T0: i64 = 1_795_392_000_000;
/// The sampling interval of long runs.
const SAMPLE_MS: i64 = 5_000;

// ---------------------------------------------------------------------------
// trend

/// 1 h, 12 h and 72 h at 5 s.
const TREND_SIZES: [(usize, &str); 3] = [(720, "1h"), (8_640, "12h"), (51_840, "72h")];

/// A healthy service: 120 MB with 2 MB of Gaussian noise, no trend.
fn flat_noise(n: usize, step_ms: i64, seed: u64) -> Vec<(i64, f64)> {
    let mut rng = SplitMix64::new(seed);
    (0..n as i64)
        .map(|i| (T0 + i * step_ms, (120.0 + 2.0 * rng.normal()) * MB))
        .collect()
}

/// A leak of 30 MB/h under a 10 min GC sawtooth 25 MB high, with 0.5 MB of
/// noise: the drops stand far out of the noise, so the detector buckets by
/// whole GC cycles, the more expensive of its two paths.
fn leak_sawtooth(n: usize, step_ms: i64, seed: u64) -> Vec<(i64, f64)> {
    const PERIOD_MS: i64 = 10 * 60_000;
    let mut rng = SplitMix64::new(seed);
    (0..n as i64)
        .map(|i| {
            let ms = i * step_ms;
            let hours = ms as f64 / HOUR_MS as f64;
            let ramp = (ms % PERIOD_MS) as f64 / PERIOD_MS as f64;
            let mb = 120.0 + 30.0 * hours + 25.0 * ramp + 0.5 * rng.normal();
            (T0 + ms, mb * MB)
        })
        .collect()
}

/// What `verdict::soak` judges RSS with for a scenario giving
/// `rss_slope_max = "10MB/h"` and the default warm-up and span.
fn rss_params() -> Params {
    let mut p = Params::new(Metric::Rss, 10.0 * MB);
    p.min_points = 20;
    p
}

fn bench_trend(c: &mut Criterion) {
    let mut g = c.benchmark_group("trend");
    // A 72 h series takes milliseconds; 20 samples of linearly growing
    // iteration counts fit in 3 s, where criterion's 100 would take ~30 s.
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let p = rss_params();
    for (n, label) in TREND_SIZES {
        let flat = flat_noise(n, SAMPLE_MS, 7);
        let leak = leak_sawtooth(n, SAMPLE_MS, 11);
        // Not timed: that each shape takes the path it stands for, or the
        // figures would describe some other code.
        let t = trend::judge(&flat, &p);
        assert_eq!(t.decision, Decision::Pass, "flat {label}: {}", t.reason);
        assert!(
            !t.reason.contains("GC cycles"),
            "flat {label}: {}",
            t.reason
        );
        let t = trend::judge(&leak, &p);
        assert!(t.reason.contains("GC cycles"), "leak {label}: {}", t.reason);
        if n >= 8_640 {
            assert_eq!(t.decision, Decision::Fail, "leak {label}: {}", t.reason);
        }
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("flat_noise", label), &flat, |b, s| {
            b.iter(|| trend::judge(black_box(s), &p))
        });
        g.bench_with_input(BenchmarkId::new("leak_sawtooth", label), &leak, |b, s| {
            b.iter(|| trend::judge(black_box(s), &p))
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------
// chart

/// 72 h at 1 s.
const CHART_POINTS: usize = 259_200;

/// One service, one incarnation, sampled every second for 72 h: a leak
/// under a 5 min sawtooth, so the min/max buckets of the downsampler see
/// spikes and dips in every bucket.
fn chart_run() -> RunData {
    let mut rng = SplitMix64::new(42);
    let end = T0 + CHART_POINTS as i64 * 1000;
    let mut cpu = 0.0;
    let samples = (0..CHART_POINTS as i64)
        .map(|i| {
            let ts = T0 + i * 1000;
            let hours = (i * 1000) as f64 / HOUR_MS as f64;
            let saw = (i % 300) as f64 / 300.0 * 20.0;
            cpu += 0.02 + 0.01 * rng.unit();
            SampleRow {
                ts,
                incarnation: 1,
                rss_bytes: ((120.0 + 5.0 * hours + saw + 2.0 * rng.unit()) * MB) as i64,
                cpu_seconds: cpu,
                fds: 30 + (rng.range(0.0, 5.0)) as i64,
                threads: 12,
                processes: 3,
            }
        })
        .collect();
    RunData {
        run: Some(RunRow {
            id: "20261123-000000-hot".into(),
            scenario: Some("soak".into()),
            started_at: T0,
            ended_at: Some(end),
            seed: Some(42),
            soak_version: env!("CARGO_PKG_VERSION").into(),
            interrupted: false,
            config_path: None,
            config: None,
            scenario_path: None,
            scenario_toml: None,
        }),
        incarnations: vec![IncarnationRow {
            id: 1,
            service: "svc0".into(),
            pid: Some(1000),
            started_at: T0,
            ready_at: Some(T0 + 150),
            ended_at: Some(end),
            exit_code: None,
            signal: Some("TERM".into()),
            cause: Some(soak::journal::Cause::Stopped),
            orphans: Some(0),
        }],
        samples,
        ..RunData::default()
    }
}

fn bench_chart(c: &mut Criterion) {
    let data = chart_run();
    let report = soak::report::build(&data, Some("72 h at 1 s".into()), Vec::new());
    // No incident, so no log is read; the directory only has to exist.
    let logs = tempfile::tempdir().expect("a temp dir");
    // Not timed: the page really draws the service's resource charts.
    let page = soak::report::html::render(&report, &data, logs.path());
    assert!(page.matches("<svg").count() >= 4, "no resource charts");
    // The series `render` judges for the chart's trend line (the last
    // incarnation's RSS in MB, warm-up a tenth of the span).
    let rss: Vec<(i64, f64)> = data
        .samples
        .iter()
        .map(|r| (r.ts, r.rss_bytes as f64 / MB))
        .collect();
    let mut p = Params::new(Metric::Rss, 1.0);
    p.warmup_ms = CHART_POINTS as i64 * 1000 / 10;
    p.min_points = 10;
    p.min_span_ms = 0;

    let mut g = c.benchmark_group("chart");
    // Tens of milliseconds per render: flat sampling keeps 10 samples
    // within a few seconds instead of criterion's linear ramp.
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Elements(CHART_POINTS as u64));
    g.bench_function("render_one_service_72h_1s", |b| {
        b.iter(|| soak::report::html::render(&report, black_box(&data), logs.path()))
    });
    g.bench_function("trend_line_judge_72h_1s", |b| {
        b.iter(|| trend::judge(black_box(&rss), &p))
    });
    g.finish();
}

// ---------------------------------------------------------------------------
// journal

const BURST_ROWS: i64 = 10_000;
/// Services sampled per tick in the steady-state case.
const TICK_SERVICES: i64 = 10;

/// Row `i` of a run sampling `services` services every second.
fn sample(i: i64, services: i64) -> Record {
    let wobble = (i % 97) as u64;
    Record::Sample {
        ts: T0 + i / services * 1000,
        incarnation: i % services + 1,
        rss_bytes: 80_000_000 + wobble * 4096,
        cpu_seconds: i as f64 / 1e3,
        fds: 40,
        threads: 12,
        processes: 3,
    }
}

fn bench_journal(c: &mut Criterion) {
    let mut g = c.benchmark_group("journal");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(BURST_ROWS as u64));
    g.bench_function("burst_10k_samples_close", |b| {
        // A fresh file per iteration, so every one starts from the same
        // empty tables; creating it (schema, WAL switch) and deleting it are
        // not timed, the sends, commits, close and final checkpoint are.
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("a temp dir");
                let journal =
                    Journal::create(&dir.path().join("journal.sqlite")).expect("a journal");
                let tx = journal.tx();
                let start = Instant::now();
                for i in 0..BURST_ROWS {
                    tx.send(sample(i, TICK_SERVICES));
                }
                drop(tx);
                journal.close();
                total += start.elapsed();
            }
            total
        })
    });

    // One journal for the whole benchmark: a real run's tables grow too.
    // The flush is what makes the tick honest: without it the writer would
    // batch many ticks into one 250 ms transaction.
    let dir = tempfile::tempdir().expect("a temp dir");
    let journal = Journal::create(&dir.path().join("journal.sqlite")).expect("a journal");
    let tx: JournalTx = journal.tx();
    let mut row = 0i64;
    g.sampling_mode(SamplingMode::Auto)
        .sample_size(30)
        .measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(TICK_SERVICES as u64));
    g.bench_function("tick_10_services_commit", |b| {
        b.iter(|| {
            for _ in 0..TICK_SERVICES {
                tx.send(sample(row, TICK_SERVICES));
                row += 1;
            }
            tx.flush();
        })
    });
    g.finish();
    drop(tx);
    journal.close();
}

// ---------------------------------------------------------------------------
// histogram

const RECORDED: usize = 1_000_000;
/// A 72 h run journals load once a minute.
const INTERVALS: usize = 72 * 60;
/// Requests per one-minute interval (20 req/s).
const PER_INTERVAL: usize = 1_200;

/// Log-normal latencies around 2 ms with a 1 % slow tail, so the
/// histogram spreads over the tens of buckets a real service fills.
fn latencies(n: usize, rng: &mut SplitMix64) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let ms = 2.0 * (0.6 * rng.normal()).exp();
            if rng.unit() < 0.01 { ms * 20.0 } else { ms }
        })
        .collect()
}

fn bench_histogram(c: &mut Criterion) {
    let mut rng = SplitMix64::new(3);
    let values = latencies(RECORDED, &mut rng);
    // As the journal hands them to the verdict: parsed JSON, one per minute.
    let journaled: Vec<serde_json::Value> = (0..INTERVALS)
        .map(|_| {
            let mut h = LatencyHistogram::default();
            for ms in latencies(PER_INTERVAL, &mut rng) {
                h.record(ms);
            }
            h.to_json()
        })
        .collect();
    let merge = || {
        let mut h = LatencyHistogram::default();
        for v in &journaled {
            h.merge_json(black_box(v));
        }
        h
    };
    let merged = merge();

    let mut g = c.benchmark_group("histogram");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(RECORDED as u64));
    g.sampling_mode(SamplingMode::Flat).sample_size(10);
    g.bench_function("record_1M", |b| {
        b.iter(|| {
            let mut h = LatencyHistogram::default();
            for &ms in black_box(&values) {
                h.record(ms);
            }
            h
        })
    });
    g.sampling_mode(SamplingMode::Auto).sample_size(30);
    g.throughput(Throughput::Elements(INTERVALS as u64));
    g.bench_function("merge_4320_minutes_p99", |b| {
        b.iter(|| merge().quantile_ms(0.99))
    });
    g.throughput(Throughput::Elements(1));
    g.sample_size(50);
    g.bench_function("p99_of_merged", |b| {
        b.iter(|| black_box(&merged).quantile_ms(0.99))
    });
    g.finish();
}

criterion_group!(
    hot,
    bench_trend,
    bench_chart,
    bench_journal,
    bench_histogram
);
criterion_main!(hot);
