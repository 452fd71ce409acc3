//! The journal: one SQLite file per run, the single source of truth.
//!
//! Everything that happens is sent as a [`Record`] down one channel to one
//! writer thread, which batches records into transactions committed at least
//! every [`COMMIT_EVERY`]. WAL mode keeps the file readable while the run goes
//! on (`sqlite3 journal.sqlite` works mid-run) and consistent when soak is
//! SIGKILLed: a torn batch is rolled back on the next open, so at most the
//! last quarter second is lost.

mod event;

pub use event::{Event, FaultParams, FaultUndone, OrphanProcess, ScheduledFault};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const COMMIT_EVERY: Duration = Duration::from_millis(250);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs(
  id TEXT PRIMARY KEY, scenario TEXT, started_at INTEGER NOT NULL, ended_at INTEGER,
  seed INTEGER, soak_version TEXT NOT NULL, config TEXT, interrupted INTEGER NOT NULL DEFAULT 0,
  config_path TEXT, scenario_path TEXT, scenario_toml TEXT);
CREATE TABLE IF NOT EXISTS incarnations(
  id INTEGER PRIMARY KEY, service TEXT NOT NULL, pid INTEGER, started_at INTEGER NOT NULL,
  ready_at INTEGER, ended_at INTEGER, exit_code INTEGER, signal TEXT, cause TEXT, orphans INTEGER);
CREATE TABLE IF NOT EXISTS events(
  id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, service TEXT, kind TEXT NOT NULL, detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS samples(
  ts INTEGER NOT NULL, incarnation INTEGER NOT NULL, rss_bytes INTEGER, cpu_seconds REAL,
  fds INTEGER, threads INTEGER, processes INTEGER);
CREATE TABLE IF NOT EXISTS service_samples(
  ts INTEGER NOT NULL, service TEXT NOT NULL, db_bytes INTEGER, wal_bytes INTEGER, log_bytes INTEGER);
CREATE TABLE IF NOT EXISTS host_samples(
  ts INTEGER NOT NULL, mem_available_bytes INTEGER, disk_free_bytes INTEGER,
  soak_rss_bytes INTEGER, soak_cpu_seconds REAL);
CREATE TABLE IF NOT EXISTS writes(
  workload TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, sent_at INTEGER NOT NULL,
  acked_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_kind ON events(kind, ts);
CREATE INDEX IF NOT EXISTS samples_by_incarnation ON samples(incarnation, ts);
";

/// Why an incarnation ended. The names are the journal's `cause` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    /// Killed on purpose by a scenario step.
    Planned,
    /// Died on its own (crash or exit).
    Unplanned,
    /// Killed by the supervisor because its health probe failed.
    Hung,
    /// Died on its own and the start limit forbade another start.
    GaveUp,
    /// Stopped by soak at the end of the run or on request.
    Stopped,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Planned => "planned",
            Cause::Unplanned => "unplanned",
            Cause::Hung => "hung",
            Cause::GaveUp => "gave-up",
            Cause::Stopped => "stopped",
        }
    }

    /// The cause named `s` in the journal, if this version knows it.
    pub fn parse(s: &str) -> Option<Cause> {
        [
            Cause::Planned,
            Cause::Unplanned,
            Cause::Hung,
            Cause::GaveUp,
            Cause::Stopped,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A cause reads as its journal name, so `row.cause.as_deref() ==
/// Some("hung")` keeps working for code written when the column was a string.
impl std::ops::Deref for Cause {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

#[derive(Debug)]
pub enum Record {
    /// The run, with copies of its config and scenario files so verdicts
    /// and reports can be rebuilt from the journal alone.
    Run {
        id: String,
        scenario: Option<String>,
        started_at: i64,
        seed: Option<i64>,
        config_path: String,
        config: String,
        scenario_path: Option<String>,
        scenario_toml: Option<String>,
    },
    RunEnded {
        ended_at: i64,
        interrupted: bool,
    },
    Started {
        incarnation: i64,
        service: String,
        pid: i32,
        started_at: i64,
    },
    Ready {
        incarnation: i64,
        ready_at: i64,
    },
    Ended {
        incarnation: i64,
        ended_at: i64,
        exit_code: Option<i32>,
        signal: Option<String>,
        cause: Cause,
        orphans: usize,
    },
    Event {
        ts: i64,
        service: Option<String>,
        kind: String,
        detail: serde_json::Value,
    },
    Sample {
        ts: i64,
        incarnation: i64,
        rss_bytes: u64,
        cpu_seconds: f64,
        fds: u32,
        threads: u32,
        processes: u32,
    },
    /// Per service: its SQLite files and the log it has written so far.
    ServiceSample {
        ts: i64,
        service: String,
        db_bytes: u64,
        wal_bytes: u64,
        log_bytes: u64,
    },
    /// The machine and soak itself.
    HostSample {
        ts: i64,
        mem_available_bytes: u64,
        disk_free_bytes: u64,
        soak_rss_bytes: u64,
        soak_cpu_seconds: f64,
    },
    /// A write the service acknowledged: it must be readable afterwards.
    Write {
        workload: String,
        key: String,
        value: String,
        sent_at: i64,
        acked_at: i64,
    },
    /// Answers once everything sent before it is committed.
    Flush(mpsc::SyncSender<()>),
}

/// The sending side, cheap to clone; the writer thread ends when every clone
/// and the [`Journal`] are dropped.
#[derive(Clone)]
pub struct JournalTx {
    tx: mpsc::Sender<Record>,
    next_incarnation: Arc<AtomicI64>,
}

impl JournalTx {
    pub fn send(&self, r: Record) {
        // A closed journal means the run is ending; late records have nowhere to go.
        let _ = self.tx.send(r);
    }

    /// Journals an event given as kind and JSON. Only for emitters not yet
    /// converted to [`JournalTx::emit`] (chaos.rs).
    pub fn event(&self, service: Option<&str>, kind: &str, detail: serde_json::Value) {
        self.send(Record::Event {
            ts: crate::clock::now_ms(),
            service: service.map(str::to_string),
            kind: kind.to_string(),
            detail,
        });
    }

    /// Journals `event` now.
    pub fn emit(&self, service: Option<&str>, event: &Event) {
        let (kind, detail) = event.to_row();
        self.event(service, &kind, detail);
    }

    /// Incarnation ids are handed out here, not by SQLite, so the supervisor
    /// knows an id without waiting for the writer.
    pub fn new_incarnation_id(&self) -> i64 {
        self.next_incarnation.fetch_add(1, Ordering::Relaxed)
    }

    /// Blocks until everything sent so far is committed.
    pub fn flush(&self) {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Record::Flush(tx));
        let _ = rx.recv_timeout(Duration::from_secs(30));
    }
}

pub struct Journal {
    tx: JournalTx,
    writer: JoinHandle<()>,
}

#[derive(Debug, thiserror::Error)]
#[error("journal {path}: {source}")]
pub struct JournalError {
    pub path: String,
    #[source]
    pub source: rusqlite::Error,
}

fn open(path: &Path) -> Result<Connection, JournalError> {
    let wrap = |source| JournalError {
        path: path.display().to_string(),
        source,
    };
    let conn = Connection::open(path).map_err(wrap)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(wrap)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(wrap)?;
    // NORMAL in WAL mode: a commit can be lost on power failure but the file
    // is never corrupt, and each commit costs no fsync.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(wrap)?;
    // The writer only appends, so it needs the right edge of each b-tree,
    // not SQLite's default 2 MB of page cache, which soak's RSS would grow
    // into over the first hours of a run.
    conn.pragma_update(None, "cache_size", "-256")
        .map_err(wrap)?;
    conn.execute_batch(SCHEMA).map_err(wrap)?;
    Ok(conn)
}

impl Journal {
    /// Creates (or reopens) the journal and starts its writer thread.
    pub fn create(path: &Path) -> Result<Journal, JournalError> {
        let conn = open(path)?;
        let next: i64 = conn
            .query_row(
                "SELECT COALESCE(MAX(id), 0) + 1 FROM incarnations",
                [],
                |r| r.get(0),
            )
            .map_err(|source| JournalError {
                path: path.display().to_string(),
                source,
            })?;
        let (tx, rx) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("soak-journal".into())
            .spawn(move || write_loop(conn, rx))
            .expect("spawning the journal thread");
        Ok(Journal {
            tx: JournalTx {
                tx,
                next_incarnation: Arc::new(AtomicI64::new(next)),
            },
            writer,
        })
    }

    pub fn tx(&self) -> JournalTx {
        self.tx.clone()
    }

    /// Commits everything and stops the writer. Other `JournalTx` clones must
    /// be dropped first or this waits for them.
    pub fn close(self) {
        self.tx.flush();
        drop(self.tx);
        let _ = self.writer.join();
    }
}

fn write_loop(mut conn: Connection, rx: mpsc::Receiver<Record>) {
    while let Ok(first) = rx.recv() {
        let started = Instant::now();
        let mut flushes = Vec::new();
        let tx = match conn.transaction() {
            Ok(tx) => tx,
            Err(e) => {
                eprintln!("soak: journal: cannot begin a transaction: {e}");
                continue;
            }
        };
        let mut next = Some(first);
        while let Some(record) = next.take() {
            match record {
                Record::Flush(done) => flushes.push(done),
                r => {
                    if let Err(e) = apply(&tx, &r) {
                        eprintln!("soak: journal: cannot record {r:?}: {e}");
                    }
                }
            }
            if !flushes.is_empty() {
                break;
            }
            let left = COMMIT_EVERY.saturating_sub(started.elapsed());
            next = rx.recv_timeout(left).ok();
        }
        if let Err(e) = tx.commit() {
            eprintln!("soak: journal: commit failed: {e}");
        }
        for f in flushes {
            let _ = f.send(());
        }
    }
    let _ = conn.pragma_update(None, "wal_checkpoint", "TRUNCATE");
}

fn apply(tx: &rusqlite::Transaction<'_>, r: &Record) -> rusqlite::Result<()> {
    match r {
        Record::Run {
            id,
            scenario,
            started_at,
            seed,
            config_path,
            config,
            scenario_path,
            scenario_toml,
        } => tx.execute(
            "INSERT OR REPLACE INTO runs(id, scenario, started_at, seed, soak_version, config, config_path, scenario_path, scenario_toml) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![id, scenario, started_at, seed, env!("CARGO_PKG_VERSION"), config, config_path, scenario_path, scenario_toml],
        ),
        Record::RunEnded { ended_at, interrupted } => tx.execute(
            "UPDATE runs SET ended_at = ?1, interrupted = ?2",
            params![ended_at, *interrupted as i64],
        ),
        Record::Started {
            incarnation,
            service,
            pid,
            started_at,
        } => tx.execute(
            "INSERT INTO incarnations(id, service, pid, started_at) VALUES (?1, ?2, ?3, ?4)",
            params![incarnation, service, pid, started_at],
        ),
        Record::Ready { incarnation, ready_at } => tx.execute(
            "UPDATE incarnations SET ready_at = ?2 WHERE id = ?1 AND ready_at IS NULL",
            params![incarnation, ready_at],
        ),
        Record::Ended {
            incarnation,
            ended_at,
            exit_code,
            signal,
            cause,
            orphans,
        } => tx.execute(
            "UPDATE incarnations SET ended_at = ?2, exit_code = ?3, signal = ?4, cause = ?5, orphans = ?6 WHERE id = ?1",
            params![incarnation, ended_at, exit_code, signal, cause.as_str(), *orphans as i64],
        ),
        Record::Event {
            ts,
            service,
            kind,
            detail,
        } => tx.execute(
            "INSERT INTO events(ts, service, kind, detail) VALUES (?1, ?2, ?3, ?4)",
            params![ts, service, kind, detail.to_string()],
        ),
        Record::Sample {
            ts,
            incarnation,
            rss_bytes,
            cpu_seconds,
            fds,
            threads,
            processes,
        } => tx.execute(
            "INSERT INTO samples(ts, incarnation, rss_bytes, cpu_seconds, fds, threads, processes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![ts, incarnation, *rss_bytes as i64, cpu_seconds, fds, threads, processes],
        ),
        Record::ServiceSample {
            ts,
            service,
            db_bytes,
            wal_bytes,
            log_bytes,
        } => tx.execute(
            "INSERT INTO service_samples(ts, service, db_bytes, wal_bytes, log_bytes) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![ts, service, *db_bytes as i64, *wal_bytes as i64, *log_bytes as i64],
        ),
        Record::HostSample {
            ts,
            mem_available_bytes,
            disk_free_bytes,
            soak_rss_bytes,
            soak_cpu_seconds,
        } => tx.execute(
            "INSERT INTO host_samples(ts, mem_available_bytes, disk_free_bytes, soak_rss_bytes, soak_cpu_seconds) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![ts, *mem_available_bytes as i64, *disk_free_bytes as i64, *soak_rss_bytes as i64, soak_cpu_seconds],
        ),
        Record::Write {
            workload,
            key,
            value,
            sent_at,
            acked_at,
        } => tx.execute(
            "INSERT INTO writes(workload, key, value, sent_at, acked_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![workload, key, value, sent_at, acked_at],
        ),
        Record::Flush(_) => Ok(0),
    }
    .map(|_| ())
}

/// What a finished (or interrupted) run's journal holds, read back whole:
/// the input of verdicts, reports and summaries.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunData {
    pub run: Option<RunRow>,
    pub incarnations: Vec<IncarnationRow>,
    pub events: Vec<EventRow>,
    /// Per incarnation (main process and descendants, summed), by time.
    pub samples: Vec<SampleRow>,
    pub service_samples: Vec<ServiceSampleRow>,
    pub host_samples: Vec<HostSampleRow>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SampleRow {
    pub ts: i64,
    pub incarnation: i64,
    pub rss_bytes: i64,
    pub cpu_seconds: f64,
    pub fds: i64,
    pub threads: i64,
    pub processes: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServiceSampleRow {
    pub ts: i64,
    pub service: String,
    pub db_bytes: i64,
    pub wal_bytes: i64,
    pub log_bytes: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HostSampleRow {
    pub ts: i64,
    pub mem_available_bytes: i64,
    pub disk_free_bytes: i64,
    pub soak_rss_bytes: i64,
    pub soak_cpu_seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub id: String,
    pub scenario: Option<String>,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub seed: Option<i64>,
    pub soak_version: String,
    pub interrupted: bool,
    pub config_path: Option<String>,
    pub config: Option<String>,
    pub scenario_path: Option<String>,
    pub scenario_toml: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct IncarnationRow {
    pub id: i64,
    pub service: String,
    pub pid: Option<i32>,
    pub started_at: i64,
    pub ready_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub exit_code: Option<i32>,
    pub signal: Option<String>,
    /// None while it runs, and for a cause this version does not know.
    pub cause: Option<Cause>,
    pub orphans: Option<i64>,
}

/// One row of `events`. `kind` and `detail` are the row as stored (for
/// display and ad-hoc reading); verdicts and reports judge `event`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EventRow {
    pub id: i64,
    pub ts: i64,
    pub service: Option<String>,
    pub kind: String,
    /// A load event's histogram is moved to `event` (it is most of the
    /// row's size), so it is absent here.
    pub detail: serde_json::Value,
    #[serde(skip)]
    pub event: Event,
}

impl EventRow {
    /// The row `event` is written as (for tests and tools that build runs).
    pub fn new(id: i64, ts: i64, service: Option<&str>, event: Event) -> EventRow {
        let (kind, detail) = event.to_row();
        EventRow {
            id,
            ts,
            service: service.map(str::to_string),
            kind,
            detail,
            event,
        }
    }
}

/// Keeps a load event's latency histogram as its JSON text. Parsed, each
/// bucket is a little tree of heap values, some 20 times the text: reading
/// 72 h of per-minute load took 73 of 123 MB that way. Only the p99
/// verdict reads histograms, once each, and
/// [`crate::workload::LatencyHistogram::merge_json`] takes either form.
fn compact_histogram(detail: &mut serde_json::Value) {
    if let Some(h) = detail.get_mut("histogram")
        && !h.is_string()
    {
        *h = serde_json::Value::String(h.to_string());
    }
}

impl EventRow {
    /// Reads a stored row into its [`Event`] (an [`Event::Unreadable`] if
    /// this version cannot).
    pub fn from_row(
        id: i64,
        ts: i64,
        service: Option<&str>,
        kind: String,
        mut detail: serde_json::Value,
    ) -> EventRow {
        if kind == "load" {
            compact_histogram(&mut detail);
        }
        let (event, mut detail) = Event::parse(&kind, detail);
        if let Some(d) = detail.as_object_mut()
            && matches!(event, Event::Load { .. })
        {
            d.remove("histogram");
        }
        EventRow {
            id,
            ts,
            service: service.map(str::to_string),
            kind,
            detail,
            event,
        }
    }
}

/// Opens a journal for reading (also one a killed run left behind).
pub fn read(path: &Path) -> Result<RunData, JournalError> {
    let wrap = |source| JournalError {
        path: path.display().to_string(),
        source,
    };
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(wrap)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(wrap)?;
    let run = conn
        .query_row(
            "SELECT id, scenario, started_at, ended_at, seed, soak_version, interrupted, config_path, config, scenario_path, scenario_toml FROM runs LIMIT 1",
            [],
            |r| {
                Ok(RunRow {
                    id: r.get(0)?,
                    scenario: r.get(1)?,
                    started_at: r.get(2)?,
                    ended_at: r.get(3)?,
                    seed: r.get(4)?,
                    soak_version: r.get(5)?,
                    interrupted: r.get::<_, i64>(6)? != 0,
                    config_path: r.get(7)?,
                    config: r.get(8)?,
                    scenario_path: r.get(9)?,
                    scenario_toml: r.get(10)?,
                })
            },
        )
        .optional()
        .map_err(wrap)?;
    let mut stmt = conn
        .prepare("SELECT id, service, pid, started_at, ready_at, ended_at, exit_code, signal, cause, orphans FROM incarnations ORDER BY id")
        .map_err(wrap)?;
    let incarnations = stmt
        .query_map([], |r| {
            Ok(IncarnationRow {
                id: r.get(0)?,
                service: r.get(1)?,
                pid: r.get(2)?,
                started_at: r.get(3)?,
                ready_at: r.get(4)?,
                ended_at: r.get(5)?,
                exit_code: r.get(6)?,
                signal: r.get(7)?,
                cause: r
                    .get::<_, Option<String>>(8)?
                    .as_deref()
                    .and_then(Cause::parse),
                orphans: r.get(9)?,
            })
        })
        .map_err(wrap)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(wrap)?;
    let mut stmt = conn
        .prepare("SELECT id, ts, service, kind, detail FROM events ORDER BY ts, id")
        .map_err(wrap)?;
    let events = stmt
        .query_map([], |r| {
            let detail: String = r.get(4)?;
            let detail = serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail));
            Ok(EventRow::from_row(
                r.get(0)?,
                r.get(1)?,
                r.get::<_, Option<String>>(2)?.as_deref(),
                r.get(3)?,
                detail,
            ))
        })
        .map_err(wrap)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(wrap)?;
    let mut stmt = conn
        .prepare("SELECT ts, incarnation, rss_bytes, cpu_seconds, fds, threads, processes FROM samples ORDER BY ts")
        .map_err(wrap)?;
    let samples = stmt
        .query_map([], |r| {
            Ok(SampleRow {
                ts: r.get(0)?,
                incarnation: r.get(1)?,
                rss_bytes: r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                cpu_seconds: r.get::<_, Option<f64>>(3)?.unwrap_or(0.0),
                fds: r.get::<_, Option<i64>>(4)?.unwrap_or(0),
                threads: r.get::<_, Option<i64>>(5)?.unwrap_or(0),
                processes: r.get::<_, Option<i64>>(6)?.unwrap_or(0),
            })
        })
        .map_err(wrap)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(wrap)?;
    let mut stmt = conn
        .prepare(
            "SELECT ts, service, db_bytes, wal_bytes, log_bytes FROM service_samples ORDER BY ts",
        )
        .map_err(wrap)?;
    let service_samples = stmt
        .query_map([], |r| {
            Ok(ServiceSampleRow {
                ts: r.get(0)?,
                service: r.get(1)?,
                db_bytes: r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                wal_bytes: r.get::<_, Option<i64>>(3)?.unwrap_or(0),
                log_bytes: r.get::<_, Option<i64>>(4)?.unwrap_or(0),
            })
        })
        .map_err(wrap)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(wrap)?;
    let mut stmt = conn
        .prepare("SELECT ts, mem_available_bytes, disk_free_bytes, soak_rss_bytes, soak_cpu_seconds FROM host_samples ORDER BY ts")
        .map_err(wrap)?;
    let host_samples = stmt
        .query_map([], |r| {
            Ok(HostSampleRow {
                ts: r.get(0)?,
                mem_available_bytes: r.get::<_, Option<i64>>(1)?.unwrap_or(0),
                disk_free_bytes: r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                soak_rss_bytes: r.get::<_, Option<i64>>(3)?.unwrap_or(0),
                soak_cpu_seconds: r.get::<_, Option<f64>>(4)?.unwrap_or(0.0),
            })
        })
        .map_err(wrap)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(wrap)?;
    Ok(RunData {
        run,
        incarnations,
        events,
        samples,
        service_samples,
        host_samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        let journal = Journal::create(&path).unwrap();
        let tx = journal.tx();
        tx.send(Record::Run {
            id: "r1".into(),
            scenario: None,
            started_at: 1,
            seed: None,
            config_path: "soak.toml".into(),
            config: String::new(),
            scenario_path: None,
            scenario_toml: None,
        });
        let id = tx.new_incarnation_id();
        tx.send(Record::Started {
            incarnation: id,
            service: "a".into(),
            pid: 42,
            started_at: 2,
        });
        tx.send(Record::Ended {
            incarnation: id,
            ended_at: 3,
            exit_code: Some(3),
            signal: None,
            cause: Cause::GaveUp,
            orphans: 0,
        });
        let started = Event::Started {
            pid: 42,
            incarnation: id,
        };
        tx.emit(Some("a"), &started);
        drop(tx);
        journal.close();
        let data = read(&path).unwrap();
        assert_eq!(data.run.unwrap().id, "r1");
        assert_eq!(data.incarnations.len(), 1);
        assert_eq!(data.incarnations[0].cause, Some(Cause::GaveUp));
        assert_eq!(data.incarnations[0].exit_code, Some(3));
        // The row layout people query with sqlite3 is what it always was.
        assert_eq!(data.events[0].kind, "started");
        assert_eq!(
            data.events[0].detail,
            serde_json::json!({"pid": 42, "incarnation": id})
        );
        assert_eq!(data.events[0].event, started);
    }

    /// chaos.rs still journals kind + JSON; those rows read back typed.
    #[test]
    fn rows_written_as_json_read_back_as_typed_events() {
        let row = |kind: &str, detail| EventRow::from_row(1, 2, Some("a"), kind.into(), detail);
        let stop = row(
            "stop-result",
            serde_json::json!({"step": 1, "took_ms": 40, "exit_code": 0, "signal": null,
                "killed_after_grace": false, "grace_ms": 5000}),
        );
        assert_eq!(
            stop.event,
            Event::StopResult {
                step: 1,
                took_ms: Some(40),
                exit_code: Some(0),
                signal: None,
                killed_after_grace: Some(false),
                grace_ms: Some(5000),
                error: None,
            }
        );
        let fault = row(
            "fault-injected",
            serde_json::json!({"signal": "KILL", "scope": "main", "pids": [7],
                "step": 0, "action": "kill", "incarnation": 3}),
        );
        let Event::FaultInjected {
            step: 0,
            incarnation: Some(3),
            params,
            ..
        } = &fault.event
        else {
            panic!("{fault:?}");
        };
        assert_eq!(params.pids, Some(vec![7]));
        assert_eq!(params.signal.as_deref(), Some("KILL"));
    }

    /// A row of another soak version is kept as a row and judged as
    /// missing, with the reason, never a panic.
    #[test]
    fn an_unknown_kind_or_shape_reads_as_unreadable() {
        let unknown = EventRow::from_row(
            1,
            2,
            None,
            "from-the-future".into(),
            serde_json::json!({"x": 1}),
        );
        let Event::Unreadable { why } = &unknown.event else {
            panic!("{unknown:?}");
        };
        assert!(why.contains("from-the-future"), "{why}");
        assert_eq!(unknown.detail, serde_json::json!({"x": 1}));
        let renamed = EventRow::from_row(
            1,
            2,
            None,
            "ready".into(),
            serde_json::json!({"incarnation": 1, "after": 5}),
        );
        let Event::Unreadable { why } = &renamed.event else {
            panic!("{renamed:?}");
        };
        assert!(why.contains("after_ms"), "{why}");
        let text = EventRow::from_row(1, 2, None, "exited".into(), "not json".into());
        assert!(matches!(text.event, Event::Unreadable { .. }));
    }

    /// A load event's histogram comes back as text (compact in memory) and
    /// still merges to the same quantiles as the histogram written.
    #[test]
    fn a_load_histogram_reads_back_as_text_that_merges_the_same() {
        use crate::workload::LatencyHistogram;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        let journal = Journal::create(&path).unwrap();
        let tx = journal.tx();
        let mut h = LatencyHistogram::default();
        for ms in 1..=500 {
            h.record(f64::from(ms));
        }
        tx.emit(
            Some("a"),
            &Event::Load {
                workload: "w".into(),
                sent: 500,
                ok: 500,
                failed: 0,
                p50_ms: 250.0,
                p99_ms: 495.0,
                max_ms: 500.0,
                errors: Vec::new(),
                histogram: h.to_json(),
            },
        );
        drop(tx);
        journal.close();
        let data = read(&path).unwrap();
        let Event::Load {
            sent, histogram, ..
        } = &data.events[0].event
        else {
            panic!("{:?}", data.events[0]);
        };
        assert!(histogram.is_string(), "{histogram}");
        assert_eq!(*sent, 500);
        // Kept once, in the event, not again in the row's detail.
        assert!(data.events[0].detail.get("histogram").is_none());
        let mut merged = LatencyHistogram::default();
        merged.merge_json(histogram);
        assert_eq!(merged.count(), 500);
        assert_eq!(merged.quantile_ms(0.99), h.quantile_ms(0.99));
    }
}
