//! The sampler: every `sample_every`, for each live incarnation, the figures
//! of its main process and all its descendants (RSS, CPU time, open fds,
//! threads); per service, its SQLite and WAL sizes and the log it wrote; for
//! the host, available memory and free disk; and soak's own RSS and CPU.
//!
//! It reads only the processes it watches: the tree is walked through
//! /proc/PID/task/TID/children from each main process, never by scanning
//! all of /proc, so a tick costs the same on a busy host as on an idle one.
//! Every figure is read through [`procfs`], which says why /proc directly
//! for processes and sysinfo for host memory.
//!
//! A service with `[services.NAME.metrics]` is also scraped every tick (see
//! [`Scraper`]), in a task of its own: a hanging endpoint costs a timeout
//! there, never a late sample here.

use crate::journal::{Event, Record};
use crate::metrics::Keep;
use crate::plan::{Plan, ServicePlan};
use crate::record::{Recorder, Severity};
use crate::supervise::{Phase, Supervisor, procfs};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Figures {
    pub rss_bytes: u64,
    pub cpu_seconds: f64,
    pub fds: u32,
    pub threads: u32,
    pub processes: u32,
}

impl std::ops::AddAssign for Figures {
    fn add_assign(&mut self, o: Figures) {
        self.rss_bytes += o.rss_bytes;
        self.cpu_seconds += o.cpu_seconds;
        self.fds += o.fds;
        self.threads += o.threads;
        self.processes += o.processes;
    }
}

/// Figures of one process, or None if it is gone.
pub fn figures(pid: i32) -> Option<Figures> {
    let u = procfs::usage(pid)?;
    Some(Figures {
        rss_bytes: u.rss_bytes,
        cpu_seconds: u.cpu_ticks as f64 / procfs::ticks_per_second(),
        fds: procfs::fd_count(pid).unwrap_or(0),
        threads: u.threads,
        processes: 1,
    })
}

/// The whole tree under `pid`, summed.
pub fn tree_figures(pid: i32) -> Option<Figures> {
    let mut sum = figures(pid)?;
    for p in procfs::tree(pid).into_iter().skip(1) {
        if let Some(f) = figures(p) {
            sum += f;
        }
    }
    Some(sum)
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

fn wal_of(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push("-wal");
    PathBuf::from(s)
}

/// Free bytes on the file system holding `path`.
fn disk_free(path: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return 0;
    };
    // SAFETY: statvfs into a zeroed struct with a valid C string.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut s) != 0 {
            return 0;
        }
        s.f_bavail as u64 * s.f_frsize as u64
    }
}

/// Bytes a capped, rotating log has taken in: growth of the live file, and
/// on rotation what filled the old file up to the cap. A rotation is a new
/// file (its inode), not only a smaller one: a flood that rotates every
/// tick can leave the new file as large as the old one was. Rotations
/// between two ticks beyond the first are not seen, so this is a lower
/// bound under a flood, which is far above any limit all the same.
#[derive(Default)]
struct LogMeter {
    last: u64,
    inode: u64,
    total: u64,
}

impl LogMeter {
    fn update(&mut self, (size, inode): (u64, u64), cap: u64) -> u64 {
        let rotated = size < self.last || (inode != self.inode && self.inode != 0);
        self.total += if rotated {
            size + cap.saturating_sub(self.last)
        } else {
            size - self.last
        };
        (self.last, self.inode) = (size, inode);
        self.total
    }
}

/// A file's size and inode; zeros when it is not there (yet).
fn size_and_inode(p: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).map_or((0, 0), |m| (m.len(), m.ino()))
}

/// Scrapes one service's own `/metrics` and journals the kept series.
struct Scraper {
    service: String,
    url: String,
    keep: Keep,
    timeout: Duration,
    state: Arc<Mutex<ScrapeState>>,
    /// The scrape in flight, if any; a tick never starts a second one.
    running: Option<JoinHandle<()>>,
}

/// What has been said already, so events mark changes, not every tick.
#[derive(Default)]
struct ScrapeState {
    failing: bool,
    /// (incarnation, selector) already journaled as capped or missing.
    capped: HashSet<(i64, String)>,
    missing: HashSet<(i64, String)>,
}

impl Scraper {
    /// The scraper of `sp`, if it has metrics. The url expands like the
    /// service's other templates; the selectors were checked when the config
    /// was read. Never longer than a tick: the next one is due by then.
    fn new(sp: &ServicePlan, plan: &Plan, every: Duration) -> Option<Scraper> {
        let m = sp.config.metrics.as_ref()?;
        let mut vars = vec![
            ("port", sp.port.to_string()),
            ("data_dir", sp.data_dir.display().to_string()),
            ("service", sp.name.clone()),
        ];
        let others: Vec<(String, String)> = plan
            .services
            .iter()
            .map(|o| (format!("port.{}", o.name), o.port.to_string()))
            .collect();
        vars.extend(others.iter().map(|(k, v)| (k.as_str(), v.clone())));
        Some(Scraper {
            service: sp.name.clone(),
            url: crate::plan::expand_all(m.url.get_ref(), &vars),
            keep: Keep::parse(&m.keep, crate::metrics::scrape::DEFAULT_SERIES_CAP).ok()?,
            timeout: every.min(m.timeout.0),
            state: Arc::default(),
            running: None,
        })
    }

    /// Starts a scrape of `incarnation` unless one is still in flight.
    fn tick(&mut self, ts: i64, incarnation: i64, rec: &Recorder) {
        if self.running.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        let (service, url, keep, timeout) = (
            self.service.clone(),
            self.url.clone(),
            self.keep.clone(),
            self.timeout,
        );
        let (state, rec) = (self.state.clone(), rec.clone());
        self.running = Some(tokio::spawn(async move {
            let got = crate::metrics::scrape(&url, &keep, timeout).await;
            journal_scrape(&rec, &service, &url, ts, incarnation, got, &state);
        }));
    }

    fn abort(&mut self) {
        if let Some(h) = self.running.take() {
            h.abort();
        }
    }
}

/// Journals one scrape's series, and the events that mark a change: failing
/// or recovered, and once per incarnation a capped or missing selector.
fn journal_scrape(
    rec: &Recorder,
    service: &str,
    url: &str,
    ts: i64,
    incarnation: i64,
    got: Result<crate::metrics::Scraped, crate::metrics::ScrapeError>,
    state: &Mutex<ScrapeState>,
) {
    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
    let scraped = match got {
        Ok(s) => s,
        Err(e) => {
            if !st.failing {
                st.failing = true;
                rec.emit(
                    Some(service),
                    &Event::MetricsScrapeFailed {
                        incarnation,
                        url: url.to_string(),
                        error: e.to_string(),
                    },
                    Severity::Warn,
                    e.to_string(),
                );
            }
            return;
        }
    };
    if st.failing {
        st.failing = false;
        rec.emit(
            Some(service),
            &Event::MetricsScrapeRecovered { incarnation },
            Severity::Good,
            format!("metrics of {url} readable again"),
        );
    }
    for (name, value) in scraped.series {
        rec.journal.send(Record::Metric {
            ts,
            incarnation,
            name,
            value,
        });
    }
    let cap = crate::metrics::scrape::DEFAULT_SERIES_CAP;
    for selector in scraped.capped {
        if st.capped.insert((incarnation, selector.clone())) {
            rec.emit(
                Some(service),
                &Event::MetricsCapped {
                    incarnation,
                    selector: selector.clone(),
                    cap,
                },
                Severity::Warn,
                format!(
                    "metrics: `{selector}` matches more than {cap} series; kept the first {cap}"
                ),
            );
        }
    }
    for selector in scraped.missing {
        if st.missing.insert((incarnation, selector.clone())) {
            rec.emit(
                Some(service),
                &Event::MetricsMissing {
                    incarnation,
                    selector: selector.clone(),
                },
                Severity::Warn,
                format!("metrics: `{selector}` matches no series"),
            );
        }
    }
}

/// Samples until `stop` turns true.
pub async fn run(
    sup: Arc<Supervisor>,
    plan: Plan,
    rec: Recorder,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut host = procfs::HostMemory::new();
    let mut meters: BTreeMap<String, LogMeter> = BTreeMap::new();
    for sp in &plan.services {
        let (last, inode) = size_and_inode(&sp.log);
        let m = LogMeter {
            last,
            inode,
            total: 0,
        };
        meters.insert(sp.name.clone(), m);
    }
    let mut scrapers: BTreeMap<String, Scraper> = plan
        .services
        .iter()
        .filter_map(|sp| Some((sp.name.clone(), Scraper::new(sp, &plan, every)?)))
        .collect();
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        let ts = crate::clock::now_ms();
        let mut live = Vec::new();
        for sp in &plan.services {
            let state = match sup.state(&sp.name) {
                Ok(s) => s.borrow().clone(),
                Err(_) => continue,
            };
            if let (Some(incarnation), Some(scraper), Phase::Ready) =
                (state.incarnation, scrapers.get_mut(&sp.name), state.phase)
            {
                scraper.tick(ts, incarnation, &rec);
            }
            if let (Some(pid), Some(incarnation)) = (state.pid, state.incarnation)
                && let Some(f) = tree_figures(pid)
            {
                rec.figures(Some(&sp.name), f);
                live.push(format!(
                    "{} {} {} fds",
                    sp.name,
                    crate::config::units::bytes(f.rss_bytes as f64),
                    f.fds
                ));
                rec.journal.send(Record::Sample {
                    ts,
                    incarnation,
                    rss_bytes: f.rss_bytes,
                    cpu_seconds: f.cpu_seconds,
                    fds: f.fds,
                    threads: f.threads,
                    processes: f.processes,
                });
            }
            let log_bytes = meters.get_mut(&sp.name).map_or(0, |m| {
                m.update(size_and_inode(&sp.log), sp.config.logs.max_size.0)
            });
            rec.journal.send(Record::ServiceSample {
                ts,
                service: sp.name.clone(),
                db_bytes: sp.sqlite.iter().map(|d| file_len(d)).sum(),
                wal_bytes: sp.sqlite.iter().map(|d| file_len(&wal_of(d))).sum(),
                log_bytes,
            });
        }
        let mem_available_bytes = host.available();
        let me = figures(std::process::id() as i32).unwrap_or_default();
        rec.figures(None, me);
        rec.progress(live.join(", "));
        rec.journal.send(Record::HostSample {
            ts,
            mem_available_bytes,
            disk_free_bytes: disk_free(&plan.run_dir),
            soak_rss_bytes: me.rss_bytes,
            soak_cpu_seconds: me.cpu_seconds,
        });
    }
    // A scrape still waiting on a silent endpoint has nothing left to say.
    for scraper in scrapers.values_mut() {
        scraper.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrape_events_mark_changes_and_once_per_incarnation() {
        use crate::metrics::{ScrapeError, Scraped};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        let journal = crate::journal::Journal::create(&path).unwrap();
        let rec = Recorder::new(journal.tx(), None);
        let state = Mutex::new(ScrapeState::default());
        let down = || {
            Err(ScrapeError::Status {
                url: "u".into(),
                status: 500,
            })
        };
        let good = || {
            Ok(Scraped {
                series: vec![("q".into(), 1.0)],
                capped: vec!["wide".into()],
                missing: vec!["gone".into()],
            })
        };
        for (ts, inc, got) in [
            (1, 1, down()),
            (2, 1, down()),
            (3, 1, good()),
            (4, 1, good()),
            (5, 2, good()),
        ] {
            journal_scrape(&rec, "api", "u", ts, inc, got, &state);
        }
        drop(rec);
        journal.close();
        let data = crate::journal::read(&path).unwrap();
        let count = |kind: &str| data.events.iter().filter(|e| e.kind == kind).count();
        assert_eq!(count("metrics-scrape-failed"), 1);
        assert_eq!(count("metrics-scrape-recovered"), 1);
        assert_eq!(count("metrics-capped"), 2, "once for each incarnation");
        assert_eq!(count("metrics-missing"), 2, "once for each incarnation");
        let rows: Vec<(i64, i64)> = data.metrics.iter().map(|m| (m.ts, m.incarnation)).collect();
        assert_eq!(rows, [(3, 1), (4, 1), (5, 2)]);
    }

    #[test]
    fn the_log_meter_counts_across_rotations() {
        let mut m = LogMeter::default();
        assert_eq!(m.update((100, 7), 1000), 100);
        assert_eq!(m.update((900, 7), 1000), 900);
        // Rotated: 100 more filled the old file, 50 went to the new one.
        assert_eq!(m.update((50, 8), 1000), 1050);
        // Rotated again, the new file as large as the last one: a new
        // inode says so (a size alone read as no growth at all).
        assert_eq!(m.update((50, 9), 1000), 2050);
        assert_eq!(m.update((80, 9), 1000), 2080);
    }

    #[test]
    fn this_process_has_figures_and_a_tree() {
        let me = std::process::id() as i32;
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let f = tree_figures(me).unwrap();
        let c = figures(child.id() as i32);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(f.rss_bytes > 0 && f.threads >= 1 && f.fds >= 3, "{f:?}");
        assert!(f.processes >= 2, "the child is in the tree: {f:?}");
        // Not its RSS: right after exec the kernel's per-CPU RSS counters
        // may not have reached the total that /proc shows yet.
        assert!(
            c.is_some_and(|c| c.threads == 1 && c.processes == 1),
            "{c:?}"
        );
    }
}
