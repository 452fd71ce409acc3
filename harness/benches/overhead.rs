//! What supervising costs: soak, supervisord and PM2 each keep the same 10
//! idle services (5 `python3 -m http.server` on loopback and 5 `sleep`s) for
//! SOAK_OVERHEAD_SECS (default 300); soak also samples all 10 every second
//! and probes the 5 servers over HTTP every second, as a soak would. Every
//! second the bench samples the daemon's RSS and CPU
//! time, and for soak also its shims' RSS and PSS (shims are the soak binary,
//! so they share its pages: PSS is their fair share). Every process is read
//! through `soak::supervise::procfs`, the reader soak samples with.
//!
//! `SOAK_OVERHEAD_SECS=30 cargo bench -p soak --bench overhead`
//! (`SOAK_OVERHEAD_ONLY=soak` skips the competitors, whose figures do not
//! change with soak's code.)

#[path = "../../bench/support.rs"]
mod support;

use soak::supervise::procfs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{Daemon, Service, gone_within, selected, toml};

const WEB: usize = 5;
const IDLE: usize = 5;
/// How long the services get to come up before the run counts as broken.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

struct Shim {
    rss_kb: u64,
    pss_kb: u64,
}

struct Sample {
    at: Instant,
    rss_kb: u64,
    cpu_ticks: u64,
    /// soak's shims (its children running the soak binary); none for others.
    shims: Vec<Shim>,
    shim_cpu_ticks: u64,
}

fn sample(daemon: i32) -> Option<Sample> {
    let me = procfs::usage(daemon)?;
    let shims: Vec<(i32, procfs::Usage)> = procfs::children(daemon)
        .into_iter()
        .filter(|p| procfs::stat(*p).is_some_and(|p| p.comm == "soak"))
        .filter_map(|p| Some((p, procfs::usage(p)?)))
        .collect();
    Some(Sample {
        at: Instant::now(),
        rss_kb: me.rss_bytes / 1024,
        cpu_ticks: me.cpu_ticks,
        shims: shims
            .iter()
            .map(|(pid, u)| Shim {
                rss_kb: u.rss_bytes / 1024,
                pss_kb: procfs::pss_bytes(*pid).unwrap_or(0) / 1024,
            })
            .collect(),
        shim_cpu_ticks: shims.iter().map(|(_, u)| u.cpu_ticks).sum(),
    })
}

/// True once every web service accepts connections.
fn wait_ready(ports: &[u16]) -> bool {
    let deadline = Instant::now() + READY_TIMEOUT;
    let up = |port: u16| {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    };
    while Instant::now() < deadline {
        if ports.iter().all(|p| up(*p)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

struct Report {
    name: &'static str,
    samples: Vec<Sample>,
    cleanup: Vec<String>,
}

/// Starts one supervisor on `services`, samples it every second for `run`,
/// stops it and checks that it and every process under it are gone.
fn observe(
    name: &'static str,
    dir: &Path,
    services: &[Service],
    ports: &[u16],
    run: Duration,
    start: impl FnOnce(&Path, &[Service]) -> Result<Daemon, String>,
) -> Result<Report, String> {
    let mut daemon = start(dir, services)?;
    if !wait_ready(ports) {
        return Err(format!(
            "services not listening within {} s",
            READY_TIMEOUT.as_secs()
        ));
    }
    eprintln!("{name}: sampling for {} s ...", run.as_secs());
    let began = Instant::now();
    let mut samples = Vec::new();
    for tick in 0..=run.as_secs() {
        // Paced on the start time, so sampling costs do not stretch the run.
        let due = began + Duration::from_secs(tick);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        samples.push(sample(daemon.pid).ok_or("the daemon disappeared")?);
    }
    // Everything under the daemon, to check after the stop that none of it
    // outlived the daemon.
    let tree = procfs::tree(daemon.pid).into_iter().skip(1);
    let mut cleanup = Vec::new();
    if let Err(e) = daemon.stop() {
        cleanup.push(e);
    }
    for pid in std::iter::once(daemon.pid).chain(tree) {
        if !gone_within(pid, Duration::from_secs(2)) {
            cleanup.push(format!("pid {pid} still alive"));
        }
    }
    Ok(Report {
        name,
        samples,
        cleanup,
    })
}

fn soak(dir: &Path, services: &[Service], ports: &[u16]) -> Result<Daemon, String> {
    let mut config = format!(
        // Sampling every second, as a soak of these services would.
        "[harness]\nreports = {}\nsample_every = \"1s\"\n",
        toml(dir.join("reports").display().to_string())
    );
    for (i, s) in services.iter().enumerate() {
        config += &format!(
            "[services.{}]\ncommand = {}\n",
            s.name,
            toml(s.argv.clone())
        );
        if let Some(port) = ports.get(i) {
            config += &format!(
                "port = {port}\n[services.{}.health]\nhttp = \"http://127.0.0.1:{port}/\"\n\
                 interval = \"1s\"\ntimeout = \"1s\"\nfailures = 3\n",
                s.name
            );
        }
    }
    Daemon::soak(dir, &config)
}

/// The interpreter itself, not a version-manager shim script in PATH (pyenv's
/// is a shell script that would sit between supervisor and server).
fn python() -> PathBuf {
    Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| PathBuf::from(s.trim()))
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// Free loopback ports, found by binding port 0 (all held until all are
/// found, so they differ).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free loopback port"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("a bound address").port())
        .collect()
}

fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn main() {
    let secs: u64 = std::env::var("SOAK_OVERHEAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let run = Duration::from_secs(secs);
    let root = tempfile::Builder::new()
        .prefix("soak-bench-overhead.")
        .tempdir()
        .expect("a temporary directory");
    let python = python().display().to_string();
    let ports = free_ports(WEB);
    let services: Vec<Service> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| Service {
            name: format!("web{i}"),
            argv: vec![
                python.clone(),
                "-m".into(),
                "http.server".into(),
                port.to_string(),
                "--bind".into(),
                "127.0.0.1".into(),
            ],
        })
        .chain((0..IDLE).map(|i| Service {
            name: format!("idle{i}"),
            argv: vec!["sleep".into(), "100000".into()],
        }))
        .collect();
    let ticks_per_s = procfs::ticks_per_second();

    type Start<'a> = Box<dyn FnOnce(&Path, &[Service]) -> Result<Daemon, String> + 'a>;
    let competitors: [(&str, Start); 3] = [
        ("soak", Box::new(|d, s| soak(d, s, &ports))),
        ("supervisord", Box::new(Daemon::supervisord)),
        ("pm2", Box::new(Daemon::pm2)),
    ];
    let mut reports = Vec::new();
    let mut notes = Vec::new();
    for (name, start) in competitors {
        if !selected("SOAK_OVERHEAD_ONLY", name) {
            continue;
        }
        let dir = root.path().join(name);
        std::fs::create_dir(&dir).expect("a directory in the temporary one");
        match observe(name, &dir, &services, &ports, run, start) {
            Ok(r) => reports.push(r),
            Err(e) => notes.push(format!("{name}: skipped: {e}")),
        }
    }

    println!(
        "\n{} services ({WEB} http.server, {IDLE} sleep) for {secs} s; soak probes the {WEB} \
         servers over HTTP every 1 s, supervisord and PM2 have no probes.\n",
        WEB + IDLE
    );
    println!(
        "| supervisor | RSS start MiB | RSS max MiB | RSS end MiB | CPU % of a core \
         | shims | shims RSS sum MiB | shims PSS sum MiB | shim RSS/PSS each MiB | shims CPU % |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &reports {
        let (Some(first), Some(last)) = (r.samples.first(), r.samples.last()) else {
            continue;
        };
        let wall = (last.at - first.at).as_secs_f64().max(1e-9);
        let pct = |ticks: u64| ticks as f64 / ticks_per_s / wall * 100.0;
        let max = r.samples.iter().map(|s| s.rss_kb).max().unwrap_or(0);
        let shims = if last.shims.is_empty() {
            "| - | - | - | - | - |".to_string()
        } else {
            let rss: Vec<u64> = last.shims.iter().map(|s| s.rss_kb).collect();
            let pss: Vec<u64> = last.shims.iter().map(|s| s.pss_kb).collect();
            let range = |v: &[u64]| {
                let (lo, hi) = (v.iter().min().unwrap_or(&0), v.iter().max().unwrap_or(&0));
                format!("{:.1}–{:.1}", mib(*lo), mib(*hi))
            };
            format!(
                "| {} | {:.1} | {:.1} | {} / {} | {:.3} |",
                last.shims.len(),
                mib(rss.iter().sum()),
                mib(pss.iter().sum()),
                range(&rss),
                range(&pss),
                pct(last.shim_cpu_ticks.saturating_sub(first.shim_cpu_ticks))
            )
        };
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.3} {shims}",
            r.name,
            mib(first.rss_kb),
            mib(max),
            mib(last.rss_kb),
            pct(last.cpu_ticks - first.cpu_ticks),
        );
    }
    println!();
    for n in &notes {
        println!("{n}");
    }
    for r in &reports {
        for c in &r.cleanup {
            println!("{}: clean-up: {c}", r.name);
        }
    }
}
