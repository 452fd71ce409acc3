//! Journal growth of a 72 h soak: 5 services sampled every 5 s, two
//! workloads journaling per-minute load with histograms, a fault an hour.
//! Writes a real journal through the real writer and prints its size; then
//! rebuilds the run's report from it with the real binary (`soak __report`,
//! what a long run does every few minutes and at its end) and prints that
//! child's wall time and peak RSS: what an operator's VPS must spare.
//!
//! `cargo bench -p soak --bench journal_growth`
//!
//! With `JOURNAL_GROWTH_DIR=DIR` the run directory is DIR and is kept, so the
//! report child can be measured again on the same journal:
//! `/usr/bin/time -v target/release/soak __report DIR`.

use serde_json::json;
use soak::journal::{Event, Journal, Record};
use soak::workload::LatencyHistogram;
use std::time::Instant;

const HOURS: i64 = 72;
const SERVICES: i64 = 5;
const SAMPLE_MS: i64 = 5_000;
/// The soak expectations that read every sample: the trend verdicts.
const SCENARIO: &str = r#"config = "soak.toml"
duration = "72h"
[expect]
rss_slope_max = "10MB/h"
rss_growth_max = "50%/24h"
fds_slope_max = "10/h"
threads_slope_max = "10/h"
restart_budget = { max = 3, window = "5m" }
wal_max = "64MB"
log_rate_max = "10MB/h"
"#;

fn main() {
    let temp = tempfile::tempdir().expect("a temp dir");
    let kept = std::env::var_os("JOURNAL_GROWTH_DIR").map(std::path::PathBuf::from);
    let dir = kept.as_deref().unwrap_or(temp.path());
    std::fs::create_dir_all(dir).expect("the run directory");
    let path = dir.join("journal.sqlite");
    // A kept journal from an earlier run would be appended to.
    for ext in ["sqlite", "sqlite-wal", "sqlite-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("journal.{ext}")));
    }
    let started = Instant::now();
    let journal = Journal::create(&path).expect("a journal");
    let tx = journal.tx();
    let t0 = 1_795_392_000_000i64;
    tx.send(Record::Run {
        id: "bench".into(),
        scenario: Some("soak".into()),
        started_at: t0,
        seed: Some(42),
        config_path: "soak.toml".into(),
        config: (0..SERVICES)
            .map(|s| format!("[services.service{s}]\ncommand = [\"true\"]\n"))
            .collect(),
        scenario_path: Some("soak-bench.toml".into()),
        scenario_toml: Some(SCENARIO.into()),
    });
    for s in 0..SERVICES {
        tx.send(Record::Started {
            incarnation: s + 1,
            service: format!("service{s}"),
            pid: 1000 + s as i32,
            started_at: t0,
        });
    }
    let mut hist = LatencyHistogram::default();
    for ms in 0..1200 {
        hist.record(1.0 + (ms % 97) as f64 * 0.7);
    }
    let end = t0 + HOURS * 3_600_000;
    let mut ts = t0;
    let mut rows = 0u64;
    while ts < end {
        for s in 0..SERVICES {
            let wobble = (ts / SAMPLE_MS % 100) as u64;
            tx.send(Record::Sample {
                ts,
                incarnation: s + 1,
                rss_bytes: 80_000_000 + wobble * 4096,
                cpu_seconds: (ts - t0) as f64 / 1e5,
                fds: 40,
                threads: 12,
                processes: 3,
            });
            tx.send(Record::ServiceSample {
                ts,
                service: format!("service{s}"),
                db_bytes: 50_000_000,
                wal_bytes: 4_000_000 + wobble,
                log_bytes: (ts - t0) as u64 / 10,
            });
            rows += 2;
        }
        tx.send(Record::HostSample {
            ts,
            mem_available_bytes: 500_000_000,
            disk_free_bytes: 20_000_000_000,
            soak_rss_bytes: 6_000_000,
            soak_cpu_seconds: 1.0,
        });
        rows += 1;
        if (ts - t0) % 60_000 == 0 {
            for w in ["items", "work"] {
                tx.emit(
                    Some("service0"),
                    &Event::Load {
                        workload: w.into(),
                        sent: 1200,
                        ok: 1200,
                        failed: 0,
                        p50_ms: 2.1,
                        p99_ms: 9.8,
                        max_ms: 40.0,
                        errors: Vec::new(),
                        histogram: hist.to_json(),
                    },
                );
                rows += 1;
            }
        }
        if (ts - t0) % 3_600_000 == 0 {
            tx.event(
                Some("service0"),
                "fault-injected",
                json!({"step": 0, "action": "kill", "pids": [1000]}),
            );
            tx.event(
                Some("service0"),
                "fault-rolled-back",
                json!({"step": 0, "action": "kill", "held_ms": 0}),
            );
            rows += 2;
        }
        ts += SAMPLE_MS;
    }
    drop(tx);
    journal.close();
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!("| run | rows | journal size | write time |");
    println!("|---|---|---|---|");
    println!(
        "| {HOURS} h, {SERVICES} services, {} s sampling, 2 workloads, a fault an hour | {rows} | {:.1} MB | {:.1} s |",
        SAMPLE_MS / 1000,
        size as f64 / 1_048_576.0,
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_soak"))
        .arg("__report")
        .arg(dir)
        .spawn()
        .expect("running soak __report");
    // The child's own high-water mark, read from /proc while it runs (it
    // only rises). getrusage would not do: at exec the kernel keeps the
    // high-water mark of the memory the child replaced, which is this
    // bench's.
    let hwm = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    let status = loop {
        if let Some(kb) = std::fs::read_to_string(&hwm).ok().and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        }) {
            peak_kb = peak_kb.max(kb);
        }
        if let Some(status) = child.try_wait().expect("waiting for soak __report") {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    let wall = started.elapsed();
    assert!(status.success(), "soak __report failed: {status}");
    let html = std::fs::metadata(dir.join("report.html")).map_or(0, |m| m.len());
    let judged = std::fs::read_to_string(dir.join("report.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|r| r["assertions"].as_array().map(Vec::len))
        .unwrap_or(0);
    println!(
        "\nreport rebuilt from it (soak __report, {judged} assertions judged): {:.1} s, \
         peak RSS {:.0} MiB, report.html {:.2} MB",
        wall.as_secs_f64(),
        peak_kb as f64 / 1024.0,
        html as f64 / 1_048_576.0
    );
}
