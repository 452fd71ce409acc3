//! Crash → respawn latency: from `kill -9` of a service's main process to its
//! replacement running, under soak, supervisord, PM2, and the floor (this
//! bench fork+exec'ing the service itself).
//!
//! Every supervisor runs the same service, `sh -c 'echo $$ > FIFO; exec sleep
//! 100000'`: each new process writes its pid to a FIFO with a shell builtin
//! (no extra fork to skew the time), the bench kills that pid and times the
//! arrival of the next pid line.
//!
//! `cargo bench -p soak --bench respawn`
//! (`SOAK_RESPAWN_ONLY=floor,soak` skips the others.)

#[path = "../../bench/support.rs"]
mod support;

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use support::{Daemon, Service, gone_within, selected, toml};

const WARMUP: usize = 10;
const KILLS: usize = 200;
/// A respawn slower than this counts as a failure.
const RESPAWN_TIMEOUT: Duration = Duration::from_secs(5);
/// After a failure, how long to wait for a late respawn before giving up on
/// the competitor altogether.
const RESYNC_TIMEOUT: Duration = Duration::from_secs(10);
/// The first start includes the supervisor's own start-up (PM2 boots node).
const FIRST_START_TIMEOUT: Duration = Duration::from_secs(60);

/// The read side of the pid FIFO. It is opened read+write, so the reader
/// never sees EOF between one writer's exit and the next one's open.
struct PidFifo {
    file: File,
    buf: Vec<u8>,
    /// When the last read returned: a line's arrival time.
    read_at: Instant,
}

impl PidFifo {
    fn create(path: &Path) -> Result<PidFifo, String> {
        let c = CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
        // SAFETY: mkfifo with a NUL-terminated path.
        if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
            return Err(format!(
                "mkfifo {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            ));
        }
        let file = File::options()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| e.to_string())?;
        Ok(PidFifo {
            file,
            buf: Vec::new(),
            read_at: Instant::now(),
        })
    }

    /// The next pid written, and when it arrived; `None` after `timeout`.
    fn next(&mut self, timeout: Duration) -> Option<(i32, Instant)> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                if let Some(pid) = std::str::from_utf8(&line)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                {
                    return Some((pid, self.read_at));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let mut pfd = libc::pollfd {
                fd: self.file.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // Round up so a sub-millisecond remainder still waits.
            let ms = left.as_millis().min(i32::MAX as u128) as i32 + 1;
            // SAFETY: one live pollfd.
            if unsafe { libc::poll(&mut pfd, 1, ms) } <= 0 {
                continue;
            }
            let mut chunk = [0u8; 256];
            // SAFETY: reading into a stack buffer of its length; poll said
            // the FIFO is readable, so this does not block.
            let n = unsafe { libc::read(pfd.fd, chunk.as_mut_ptr().cast(), chunk.len()) };
            self.read_at = Instant::now();
            if n > 0 {
                self.buf.extend_from_slice(&chunk[..n as usize]);
            }
        }
    }
}

struct Run {
    /// One per measured kill (warm-up excluded) that was respawned in time.
    latencies: Vec<Duration>,
    /// Kills, warm-up included, not respawned within RESPAWN_TIMEOUT.
    failures: usize,
    last_pid: i32,
}

/// Kills the current process `WARMUP + KILLS` times (`respawn` does the kill,
/// and for the floor the restart too) and times each next pid line.
fn measure(fifo: &mut PidFifo, first: i32, mut respawn: impl FnMut(i32)) -> Run {
    let mut run = Run {
        latencies: Vec::with_capacity(KILLS),
        failures: 0,
        last_pid: first,
    };
    for i in 0..WARMUP + KILLS {
        let t0 = Instant::now();
        respawn(run.last_pid);
        let next = match fifo.next(RESPAWN_TIMEOUT) {
            Some((pid, at)) => {
                if i >= WARMUP {
                    run.latencies.push(at - t0);
                }
                Some(pid)
            }
            None => {
                run.failures += 1;
                fifo.next(RESYNC_TIMEOUT).map(|(pid, _)| pid)
            }
        };
        match next {
            Some(pid) => run.last_pid = pid,
            None => {
                // Nothing restarts any more: every kill left counts as failed.
                run.failures += WARMUP + KILLS - i - 1;
                break;
            }
        }
    }
    run
}

fn kill9(pid: i32) {
    // SAFETY: kill(2) on the pid the service itself reported.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

struct Row {
    name: &'static str,
    result: Result<Run, String>,
    /// What was wrong with the clean-up, if anything.
    cleanup: Vec<String>,
}

fn sh(cmd: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(cmd);
    c
}

/// The bench as the supervisor: kill, reap, fork+exec, as directly as it gets.
fn floor(dir: &Path) -> Row {
    let mut cleanup = Vec::new();
    let result = (|| {
        let mut fifo = PidFifo::create(&dir.join("fifo"))?;
        let cmd = service_command(&dir.join("fifo"));
        let mut child: Option<Child> = Some(sh(&cmd).spawn().map_err(|e| e.to_string())?);
        let (first, _) = fifo
            .next(FIRST_START_TIMEOUT)
            .ok_or("the first start wrote no pid")?;
        let run = measure(&mut fifo, first, |pid| {
            kill9(pid);
            if let Some(mut c) = child.take() {
                let _ = c.wait();
            }
            // A failed spawn shows up as a missing pid line, i.e. a failure.
            child = sh(&cmd).spawn().ok();
        });
        if let Some(mut c) = child {
            let _ = c.kill();
            let _ = c.wait();
        }
        if !gone_within(run.last_pid, Duration::from_secs(2)) {
            cleanup.push(format!("victim pid {} still alive", run.last_pid));
        }
        Ok(run)
    })();
    Row {
        name: "floor (bench fork+exec)",
        result,
        cleanup,
    }
}

fn service_command(fifo: &Path) -> String {
    format!("echo $$ > {}; exec sleep 100000", fifo.display())
}

/// One supervisor started by `start`, measured, stopped, and checked for
/// leftovers (its daemon and the last victim).
fn supervised(
    name: &'static str,
    dir: &Path,
    start: impl FnOnce(&Path, &[Service]) -> Result<Daemon, String>,
) -> Row {
    let mut cleanup = Vec::new();
    let result = (|| {
        let mut fifo = PidFifo::create(&dir.join("fifo"))?;
        let victim = Service {
            name: "victim".into(),
            argv: vec!["sh".into(), "-c".into(), service_command(&dir.join("fifo"))],
        };
        let mut daemon = start(dir, &[victim])?;
        let (first, _) = fifo
            .next(FIRST_START_TIMEOUT)
            .ok_or("the first start wrote no pid")?;
        let run = measure(&mut fifo, first, kill9);
        if let Err(e) = daemon.stop() {
            cleanup.push(e);
        }
        for (what, pid) in [("daemon", daemon.pid), ("victim", run.last_pid)] {
            if pid > 0 && !gone_within(pid, Duration::from_secs(2)) {
                cleanup.push(format!("{what} pid {pid} still alive"));
            }
        }
        Ok(run)
    })();
    Row {
        name,
        result,
        cleanup,
    }
}

fn soak(dir: &Path, services: &[Service]) -> Result<Daemon, String> {
    let mut config = format!(
        "[harness]\nreports = {}\n",
        toml(dir.join("reports").display().to_string())
    );
    for s in services {
        config += &format!(
            "[services.{}]\ncommand = {}\nrestart = \"always\"\nrestart_delay = \"0\"\n\
             throttle = \"0\"\nbackoff = {{ factor = 1.0, max = \"0\" }}\n\
             start_limit = {{ burst = 100000, interval = \"1s\" }}\n",
            s.name,
            toml(s.argv.clone())
        );
    }
    Daemon::soak(dir, &config)
}

/// Nearest-rank percentile of sorted values, in milliseconds.
fn percentile_ms(sorted: &[Duration], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e3
}

fn main() {
    let root = tempfile::Builder::new()
        .prefix("soak-bench-respawn.")
        .tempdir()
        .expect("a temporary directory");
    let dir = |name: &str| {
        let d = root.path().join(name);
        std::fs::create_dir(&d).expect("a directory in the temporary one");
        d
    };
    type Measure<'a> = Box<dyn FnOnce() -> Row + 'a>;
    let all: [(&str, Measure); 4] = [
        ("floor", Box::new(|| floor(&dir("floor")))),
        ("soak", Box::new(|| supervised("soak", &dir("soak"), soak))),
        (
            "supervisord",
            Box::new(|| supervised("supervisord", &dir("supervisord"), Daemon::supervisord)),
        ),
        (
            "pm2",
            Box::new(|| supervised("pm2", &dir("pm2"), Daemon::pm2)),
        ),
    ];
    let rows: Vec<Row> = all
        .into_iter()
        .filter(|(name, _)| selected("SOAK_RESPAWN_ONLY", name))
        .map(|(_, measure)| measure())
        .collect();

    println!("\n| supervisor | n | p50 ms | p99 ms | max ms | failures |");
    println!("|---|---:|---:|---:|---:|---:|");
    for row in &rows {
        match &row.result {
            Ok(run) if !run.latencies.is_empty() => {
                let mut l = run.latencies.clone();
                l.sort();
                println!(
                    "| {} | {} | {:.2} | {:.2} | {:.2} | {} |",
                    row.name,
                    l.len(),
                    percentile_ms(&l, 0.50),
                    percentile_ms(&l, 0.99),
                    percentile_ms(&l, 1.0),
                    run.failures
                );
            }
            Ok(run) => println!("| {} | 0 | - | - | - | {} |", row.name, run.failures),
            Err(_) => println!("| {} | skipped | - | - | - | - |", row.name),
        }
    }
    println!();
    for row in &rows {
        if let Err(e) = &row.result {
            println!("{}: skipped: {e}", row.name);
        }
        for c in &row.cleanup {
            println!("{}: clean-up: {c}", row.name);
        }
    }
}
