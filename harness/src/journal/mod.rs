//! The journal: one SQLite file per run, the single source of truth.
//!
//! Everything that happens is sent as a [`Record`] down one channel to one
//! writer thread, which batches records into transactions committed at least
//! every [`COMMIT_EVERY`]. WAL mode keeps the file readable while the run goes
//! on (`sqlite3 journal.sqlite` works mid-run) and consistent when soak is
//! SIGKILLed: a torn batch is rolled back on the next open, so at most the
//! last quarter second is lost.
//!
//! This file is the writer; `read.rs` reads a journal back (whole with
//! `read`, or with `RunData::open` leaving the sample tables in the journal
//! for the report and the CLI to stream) and `event.rs` is the one typed
//! [`Event`] both sides share.

mod event;
mod read;

pub use event::{
    Event, FaultParams, FaultUndone, OrphanProcess, ScheduledFault, Verdict, VerdictSoFar,
};
pub use read::{
    EventRow, HostSampleRow, IncarnationRow, LagRow, LinkSampleRow, MetricRow, RunData, RunRow,
    SampleRow, ServiceSampleRow, read,
};

use rusqlite::{Connection, params};
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
CREATE TABLE IF NOT EXISTS metrics(
  ts INTEGER NOT NULL, incarnation INTEGER NOT NULL, name TEXT NOT NULL, value REAL NOT NULL);
CREATE TABLE IF NOT EXISTS link_samples(
  ts INTEGER NOT NULL, link TEXT NOT NULL, connections INTEGER NOT NULL, active INTEGER NOT NULL,
  bytes_up INTEGER NOT NULL, bytes_down INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS runtime_lag(
  ts INTEGER NOT NULL, p99_ms REAL NOT NULL, max_ms REAL NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_kind ON events(kind, ts);
CREATE INDEX IF NOT EXISTS metrics_by_name ON metrics(name, ts);
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
    /// A container killed by its memory limit (the engine's OOMKilled).
    OomKilled,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Planned => "planned",
            Cause::Unplanned => "unplanned",
            Cause::Hung => "hung",
            Cause::GaveUp => "gave-up",
            Cause::Stopped => "stopped",
            Cause::OomKilled => "oom-killed",
        }
    }

    /// The service failed: it died on its own, hung, was killed by its
    /// memory limit, or gave up. Planned kills and soak's stops are not.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Cause::Unplanned | Cause::Hung | Cause::GaveUp | Cause::OomKilled
        )
    }

    /// The cause named `s` in the journal, if this version knows it.
    pub fn parse(s: &str) -> Option<Cause> {
        [
            Cause::Planned,
            Cause::Unplanned,
            Cause::Hung,
            Cause::GaveUp,
            Cause::Stopped,
            Cause::OomKilled,
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
    /// One series of a service's own metrics, scraped: `name` with its
    /// labels, canonical (`queue_depth{route="/work"}`).
    Metric {
        ts: i64,
        incarnation: i64,
        name: String,
        value: f64,
    },
    /// A link's traffic since its previous sample: connections opened,
    /// connections open now, bytes each way.
    LinkSample {
        ts: i64,
        link: String,
        connections: u64,
        active: u64,
        bytes_up: u64,
        bytes_down: u64,
    },
    /// How late soak's own runtime woke up over the last interval: a stall
    /// of soak, never to be charged to a service.
    Lag {
        ts: i64,
        p99_ms: f64,
        max_ms: f64,
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
        self.event_at(crate::clock::now_ms(), service, kind, detail);
    }

    /// Journals an event that happened at `ts`, before it could be written:
    /// a fault is injected when its signal goes out, and the death it causes
    /// can reach the journal first.
    pub fn event_at(&self, ts: i64, service: Option<&str>, kind: &str, detail: serde_json::Value) {
        self.send(Record::Event {
            ts,
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
        Record::Metric {
            ts,
            incarnation,
            name,
            value,
        } => tx.execute(
            "INSERT INTO metrics(ts, incarnation, name, value) VALUES (?1, ?2, ?3, ?4)",
            params![ts, incarnation, name, value],
        ),
        Record::LinkSample {
            ts,
            link,
            connections,
            active,
            bytes_up,
            bytes_down,
        } => tx.execute(
            "INSERT INTO link_samples(ts, link, connections, active, bytes_up, bytes_down) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![ts, link, *connections as i64, *active as i64, *bytes_up as i64, *bytes_down as i64],
        ),
        Record::Lag { ts, p99_ms, max_ms } => tx.execute(
            "INSERT INTO runtime_lag(ts, p99_ms, max_ms) VALUES (?1, ?2, ?3)",
            params![ts, p99_ms, max_ms],
        ),
        Record::Flush(_) => Ok(0),
    }
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_links_and_lag_round_trip_and_older_journals_read_without_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        let journal = Journal::create(&path).unwrap();
        let tx = journal.tx();
        let metric = |ts, value| Record::Metric {
            ts,
            incarnation: 1,
            name: "queue_depth{route=\"/work\"}".into(),
            value,
        };
        tx.send(metric(20, 7.0));
        tx.send(metric(10, 5.5));
        tx.send(Record::LinkSample {
            ts: 10,
            link: "store".into(),
            connections: 3,
            active: 1,
            bytes_up: 100,
            bytes_down: 2_000,
        });
        tx.send(Record::Lag {
            ts: 10,
            p99_ms: 1.5,
            max_ms: 40.0,
        });
        drop(tx);
        journal.close();
        let data = read(&path).unwrap();
        let values: Vec<f64> = data.metrics.iter().map(|m| m.value).collect();
        assert_eq!(values, [5.5, 7.0], "by time");
        assert_eq!(data.metrics[0].name, "queue_depth{route=\"/work\"}");
        assert_eq!(data.link_samples[0].bytes_down, 2_000);
        assert_eq!(data.lag[0].max_ms, 40.0);

        // A journal written before these tables existed still reads.
        let conn = Connection::open(&path).unwrap();
        for t in ["metrics", "link_samples", "runtime_lag"] {
            conn.execute_batch(&format!("DROP TABLE {t}")).unwrap();
        }
        drop(conn);
        let data = read(&path).unwrap();
        assert!(data.metrics.is_empty() && data.link_samples.is_empty() && data.lag.is_empty());
    }

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
            container: None,
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
