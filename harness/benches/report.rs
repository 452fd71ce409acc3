//! `report.html` of a long soak: 10 services sampled every second for 72 h
//! (2.6 M sample rows), a fault every hour, load events every second on two
//! services and a flooded 10 MB log, built in memory (no SQLite: the
//! journal's read cost is not the renderer's). Prints the render time, the
//! page's size, and, when Chromium is installed, how long a browser takes to
//! lay the page out (measured inside the page) and to screenshot it
//! (wall time, next to an empty page's, which is Chromium's own start-up).
//!
//! `cargo bench -p soak --bench report`

// This bench draws no normal noise, which the shared generator also offers.
#[allow(dead_code)]
#[path = "shared/rng.rs"]
mod rng;

use rng::SplitMix64;
use serde_json::json;
use soak::journal::{Cause, Event, EventRow, IncarnationRow, RunData, RunRow, SampleRow};
use soak::report::html::render;
use soak::verdict::{Assertion, FittedTrend, Verdict};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SERVICES: i64 = 10;
const HOURS: i64 = 72;
const HOUR: i64 = 3_600_000;
const T0: i64 = 1_795_392_000_000;
const MB: f64 = 1_048_576.0;
/// The page must stay below this to be mailed and opened anywhere.
const MAX_BYTES: usize = 5 * 1024 * 1024;
const CHROMIUM: &str = "/usr/bin/chromium";
const BROWSER_TIMEOUT: Duration = Duration::from_secs(120);

fn journal() -> RunData {
    let end = T0 + HOURS * HOUR;
    let mut rng = SplitMix64::new(42);
    let mut data = RunData {
        run: Some(RunRow {
            id: "20261123-000000-soak".into(),
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
        ..RunData::default()
    };
    let mut next_id = 1;
    for s in 0..SERVICES {
        let name = format!("svc{s}");
        // Service 1 is killed every other hour and restarts; the others
        // live the whole run.
        let starts: Vec<i64> = if s == 1 {
            (0..HOURS).step_by(2).map(|h| T0 + h * HOUR).collect()
        } else {
            vec![T0]
        };
        for (k, &start) in starts.iter().enumerate() {
            let id = next_id;
            next_id += 1;
            let stop = starts.get(k + 1).map_or(end, |n| n - 200);
            data.incarnations.push(IncarnationRow {
                id,
                service: name.clone(),
                pid: Some(1000 + id as i32),
                started_at: start,
                ready_at: Some(start + 150),
                ended_at: Some(stop),
                exit_code: None,
                signal: Some("KILL".into()),
                cause: Some(if stop == end {
                    Cause::Stopped
                } else {
                    Cause::Planned
                }),
                orphans: Some(0),
            });
            if stop != end {
                data.events.push(EventRow::from_row(
                    0,
                    stop - 10,
                    Some(&name),
                    "fault-injected".into(),
                    json!({"step": k, "action": "kill", "signal": "KILL", "pids": [1000 + id]}),
                ));
            }
            let mut cpu = 0.0;
            for ts in (start..stop).step_by(1000) {
                let hours = (ts - start) as f64 / HOUR as f64;
                // Service 0 leaks 50 MB/h; every service has a GC sawtooth.
                let leak = if s == 0 { 50.0 * hours } else { 0.0 };
                let saw = ((ts / 1000) % 300) as f64 / 300.0 * 20.0;
                cpu += 0.02 + 0.01 * rng.unit();
                data.samples.push(SampleRow {
                    ts,
                    incarnation: id,
                    rss_bytes: ((120.0 + leak + saw + rng.range(0.0, 4.0)) * MB) as i64,
                    cpu_seconds: cpu,
                    fds: 30 + (rng.range(0.0, 5.0)) as i64,
                    threads: 12,
                    processes: 3,
                });
            }
        }
    }
    for h in 0..HOURS / 2 {
        let at = T0 + (2 * h + 1) * HOUR;
        data.events.push(EventRow::from_row(
            0,
            at,
            Some("svc2"),
            "fault-injected".into(),
            json!({"step": h, "action": "hang", "scope": "group"}),
        ));
        data.events.push(EventRow::from_row(
            0,
            at + 12_000,
            Some("svc2"),
            "fault-rolled-back".into(),
            json!({"step": h, "action": "hang", "held_ms": 12_000}),
        ));
    }
    for (svc, workload) in [("svc0", "items"), ("svc1", "reads")] {
        for ts in (T0..end).step_by(1000) {
            let failed = u64::from(rng.unit() < 0.01);
            data.events.push(EventRow::new(
                0,
                ts,
                Some(svc),
                Event::Load {
                    workload: workload.into(),
                    sent: 20,
                    ok: 20 - failed,
                    failed,
                    p50_ms: 2.0 + rng.unit(),
                    p99_ms: 8.0 + 20.0 * rng.unit(),
                    max_ms: 40.0,
                    errors: Vec::new(),
                    histogram: serde_json::Value::Null,
                },
            ));
        }
    }
    data.events.sort_by_key(|e| e.ts);
    // SQLite's ORDER BY ts: sample rows of all services interleaved by time.
    data.samples.sort_by_key(|s| s.ts);
    data
}

fn assertions() -> Vec<Assertion> {
    let a = |name: &str, service: &str, verdict, reason: &str| Assertion {
        name: name.into(),
        service: Some(service.into()),
        verdict,
        expected: "see reason".into(),
        observed: "see reason".into(),
        reason: reason.into(),
        at: Some(T0 + HOURS * HOUR - 1000),
        trend: None,
    };
    let mut leak = a(
        "rss_slope_max",
        "svc0",
        Verdict::Fail,
        "svc0: RSS grows 50.0 MB/h, above the 10.0 MB/h limit",
    );
    // The line the verdict fitted to svc0's last incarnation, which the
    // page draws.
    leak.trend = Some(FittedTrend {
        incarnation: HOURS / 2,
        warmup_ms: 5 * 60_000,
        from: T0 + (HOURS - 2) * HOUR + 5 * 60_000,
        to: T0 + HOURS * HOUR - 1000,
        value_at_from: 125.0 * MB,
        slope_per_hour: 50.0 * MB,
        projected_limit_ms: None,
    });
    let mut out = vec![leak];
    for s in 1..SERVICES {
        out.push(a(
            "rss_slope_max",
            &format!("svc{s}"),
            Verdict::Pass,
            "RSS is flat",
        ));
    }
    out
}

/// svc1's log: 10 MB of chatter, stamped across the run.
fn logs(dir: &Path) -> std::io::Result<()> {
    let mut text = String::with_capacity(11 << 20);
    let lines = 100_000;
    for i in 0..lines {
        let ts = T0 + i * (HOURS * HOUR / lines);
        text.push_str(&soak::clock::rfc3339_ms(ts));
        text.push_str(" err svc1: handled request; pool 3/8 busy, cache 81% warm, nothing to report here at all\n");
    }
    std::fs::write(dir.join("svc1.log"), text)
}

/// Runs Chromium on `url`, killed if it overruns; returns its wall time and
/// stdout (through a file: a pipe nobody reads while waiting would fill
/// with a big DOM and block Chromium).
fn chromium(profile: &Path, args: &[&str], url: &str) -> Result<(Duration, String), String> {
    let out_path = profile.with_extension("out");
    let out = std::fs::File::create(&out_path).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    while child.try_wait().map_err(|e| e.to_string())?.is_none() {
        if start.elapsed() > BROWSER_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "chromium did not finish within {BROWSER_TIMEOUT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = start.elapsed();
    let stdout = std::fs::read(&out_path).map_err(|e| e.to_string())?;
    Ok((took, String::from_utf8_lossy(&stdout).into_owned()))
}

fn browser(out: &Path, html: &str) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    // A copy that titles itself with the time from navigation to a forced
    // layout after load, read back with --dump-dom.
    let timed = out.with_file_name("report-timed.html");
    let probe = "<script>addEventListener('load',()=>{document.body.offsetHeight;document.title='laid out in '+Math.round(performance.now())+' ms'})</script>";
    std::fs::write(
        &timed,
        html.replacen("</body>", &format!("{probe}</body>"), 1),
    )
    .map_err(|e| e.to_string())?;
    let (_, dom) = chromium(
        &tmp.path().join("a"),
        &["--dump-dom"],
        &format!("file://{}", timed.display()),
    )?;
    let laid_out = dom
        .split("<title>")
        .nth(1)
        .and_then(|t| t.split("</title>").next())
        .unwrap_or("no title: the page did not load");
    println!("chromium: {laid_out} (in-page, navigation start to layout after load)");
    let empty = out.with_file_name("empty.html");
    std::fs::write(&empty, "<!DOCTYPE html><title>empty</title>").map_err(|e| e.to_string())?;
    let shot = out.with_file_name("report.png");
    for (name, page, profile) in [
        ("empty page", &empty, "b"),
        ("report", &out.to_path_buf(), "c"),
    ] {
        let (took, _) = chromium(
            &tmp.path().join(profile),
            &[
                &format!("--screenshot={}", shot.display()),
                "--window-size=1280,2000",
            ],
            &format!("file://{}", page.display()),
        )?;
        println!(
            "chromium --headless --screenshot, {name}: {:.2} s wall",
            took.as_secs_f64()
        );
    }
    Ok(())
}

fn main() {
    // `cargo test --benches` runs this too; the figures are for `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let built = Instant::now();
    let data = journal();
    let report = soak::report::build(
        &data,
        Some("72 h soak, a fault every hour".into()),
        assertions(),
    );
    let logs_dir = tempfile::tempdir().expect("a temp dir");
    logs(logs_dir.path()).expect("writing the log");
    println!(
        "journal: {} samples, {} events, {} incarnations (built in {:.1} s)",
        data.samples.len(),
        data.events.len(),
        data.incarnations.len(),
        built.elapsed().as_secs_f64()
    );
    let mut times = Vec::new();
    let mut html = String::new();
    for _ in 0..5 {
        let start = Instant::now();
        html = render(&report, &data, logs_dir.path());
        times.push(start.elapsed());
    }
    times.sort();
    println!(
        "render: median {:.0} ms, min {:.0} ms (5 runs)",
        times[2].as_secs_f64() * 1000.0,
        times[0].as_secs_f64() * 1000.0
    );
    println!(
        "report.html: {:.2} MB ({} bytes), {} svg charts",
        html.len() as f64 / MB,
        html.len(),
        html.matches("<svg ").count()
    );
    let out: PathBuf = [env!("CARGO_MANIFEST_DIR"), "..", "target", "bench-report"]
        .iter()
        .collect();
    std::fs::create_dir_all(&out).expect("target/bench-report");
    let out = out.join("report.html");
    std::fs::write(&out, &html).expect("writing the page");
    println!("written to {}", out.display());
    assert!(html.len() < MAX_BYTES, "report.html is over 5 MB");
    if Path::new(CHROMIUM).exists() {
        if let Err(e) = browser(&out, &html) {
            println!("chromium: {e}");
        }
    } else {
        println!("chromium: not installed (apt-get install chromium) — browser time not measured");
    }
}
