//! What soak's own `/metrics` costs soak: `soak up` over a scraped service
//! (a Python http.server answering a small exposition, scraped every
//! `sample_every` = 1 s) for SECS seconds, once without `--metrics` and once
//! with it while this bench scrapes it every 5 s as a Prometheus server
//! would. Reports soak's RSS (at the end and its peak) and CPU time (user +
//! system) for each run.
//!
//! `cargo bench -p soak --bench metrics_endpoint` (SOAK_BENCH_SECS=60 by
//! default)

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// (VmRSS, VmHWM) in kB, and CPU seconds, of a live process.
fn figures(pid: u32) -> Option<(u64, u64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(key))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of proc(5); `rest` starts at 3.
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((kb("VmRSS:")?, kb("VmHWM:")?, ticks / hz))
}

fn run(dir: &Path, secs: u64, metrics: bool) -> (u64, u64, f64, usize) {
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(
        www.join("metrics"),
        "# TYPE queue_depth gauge\nqueue_depth{queue=\"mail\"} 3\n# TYPE jobs_total counter\njobs_total 42\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("soak.toml"),
        format!(
            "[harness]\nreports = \"reports\"\nsample_every = \"1s\"\n\
             [services.web]\ncommand = [\"python3\", \"-m\", \"http.server\", \"--bind\", \"127.0.0.1\", \"--directory\", \"{}\", \"{{port}}\"]\n\
             [services.web.metrics]\nurl = \"http://127.0.0.1:{{port}}/metrics\"\nkeep = [\"queue_depth\", \"jobs_total\"]\n",
            www.display()
        ),
    )
    .unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_soak"));
    cmd.current_dir(dir)
        .args(["--plain", "up", "--for", &format!("{secs}s")])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if metrics {
        cmd.args(["--metrics", &addr]);
    }
    let mut child = cmd.spawn().expect("soak runs");
    let pid = child.id();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let mut last = None;
    let mut scrapes = 0;
    // Stop reading a second before soak stops its services.
    while started.elapsed() < Duration::from_secs(secs.saturating_sub(1)) {
        if metrics {
            let got = rt.block_on(soak::http::request(
                "GET",
                &format!("http://{addr}/metrics"),
                &[],
                None,
                Duration::from_secs(2),
            ));
            if got.is_ok_and(|r| r.status == 200) {
                scrapes += 1;
            }
        }
        last = figures(pid).or(last);
        std::thread::sleep(Duration::from_secs(5).min(Duration::from_secs(secs)));
    }
    let _ = child.wait();
    let (rss, hwm, cpu) = last.expect("soak's figures");
    (rss, hwm, cpu, scrapes)
}

fn main() {
    // `cargo test --benches` runs benches with --bench absent: nothing to time.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let secs: u64 = std::env::var("SOAK_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    println!("soak up for {secs} s, one service scraped every 1 s");
    for metrics in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (rss, hwm, cpu, scrapes) = run(dir.path(), secs, metrics);
        println!(
            "{:<34} RSS {:>6} kB (peak {:>6} kB), CPU {:.2} s ({:.2} % of one core){}",
            if metrics {
                "--metrics, scraped every 5 s:"
            } else {
                "no --metrics:"
            },
            rss,
            hwm,
            cpu,
            cpu / secs as f64 * 100.0,
            if metrics {
                format!(", {scrapes} scrapes answered")
            } else {
                String::new()
            }
        );
    }
}
