//! Reading a journal back: the input of verdicts, reports and summaries.
//! Works on a journal a killed run left behind too.
//!
//! [`read`] loads every table whole (tools and tests). [`RunData::open`]
//! loads the small tables and leaves the sample tables in the journal, read
//! through [`RunData`]'s accessors one incarnation or one aggregate at a
//! time: what the report child of a 72 h soak can afford on the host being
//! soaked. Both answer the accessors alike, so verdicts and reports are the
//! same either way.

use super::{Cause, Event, JournalError};
use rusqlite::{Connection, OptionalExtension, params_from_iter};
use serde::Serialize;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a finished (or interrupted) run's journal holds: the input of
/// verdicts, reports and summaries. Verdicts and reports read the sample
/// tables through the accessors below, never the vectors directly, so they
/// work on a [`RunData::open`] too.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunData {
    pub run: Option<RunRow>,
    pub incarnations: Vec<IncarnationRow>,
    pub events: Vec<EventRow>,
    /// Per incarnation (main process and descendants, summed), by time.
    pub samples: Vec<SampleRow>,
    pub service_samples: Vec<ServiceSampleRow>,
    pub host_samples: Vec<HostSampleRow>,
    /// Kept series of the services' own metrics, by time.
    pub metrics: Vec<MetricRow>,
    pub link_samples: Vec<LinkSampleRow>,
    pub lag: Vec<LagRow>,
    /// Rows of the `writes` table (acknowledged writes) per workload: the
    /// true count, where a workload's own read-back may check a capped
    /// sample of them.
    pub acknowledged_writes: BTreeMap<String, u64>,
    /// Where [`RunData::open`] left `samples`, `service_samples`,
    /// `host_samples`, `metrics` and the load events' histograms (those
    /// fields are then empty). Empty when the fields hold the rows
    /// themselves.
    #[serde(skip)]
    pub unread: Unread,
}

/// The journal a [`RunData::open`] reads its sample tables from on demand,
/// inside the read transaction it began: every accessor sees the same
/// snapshot of a journal a running soak keeps writing.
#[derive(Clone, Default)]
pub struct Unread(Option<Arc<Mutex<Journaled>>>);

struct Journaled {
    path: String,
    conn: Connection,
    /// Each service's peaks in `service_samples`, which has no index by
    /// service: found in one pass the first time one is asked for.
    service_peaks: Option<BTreeMap<String, ServicePeaks>>,
}

/// A service's largest sampled WAL (time, bytes; of equal peaks the latest)
/// and log size.
#[derive(Clone, Copy)]
struct ServicePeaks {
    /// (bytes, time, rowid): the order that picks the peak.
    wal: (i64, i64, i64),
    log_bytes: i64,
}

impl std::fmt::Debug for Unread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(j) => match j.lock() {
                Ok(j) => write!(f, "Unread({})", j.path),
                Err(_) => f.write_str("Unread(poisoned)"),
            },
            None => f.write_str("Unread(none)"),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MetricRow {
    pub ts: i64,
    pub incarnation: i64,
    pub name: String,
    pub value: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LinkSampleRow {
    pub ts: i64,
    pub link: String,
    pub connections: i64,
    pub active: i64,
    pub bytes_up: i64,
    pub bytes_down: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LagRow {
    pub ts: i64,
    pub p99_ms: f64,
    pub max_ms: f64,
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
    /// Empty (`{}`) for a load event: its fields, histogram included, are
    /// in `event`, and a 72 h run holds thousands of them (each parsed
    /// object costs about a kilobyte; no view shows a load row's detail).
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
        && !h.is_null()
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
        if matches!(event, Event::Load { .. }) {
            detail = serde_json::Value::Object(serde_json::Map::new());
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

/// Opens a journal for reading (also one a killed run left behind) and
/// reads every table whole.
pub fn read(path: &Path) -> Result<RunData, JournalError> {
    let wrap = wrapper(path);
    let conn = connect(path)?;
    let mut data = read_small(&conn, false).map_err(wrap)?;
    data.samples = read_all(
        &conn,
        "samples",
        &format!("SELECT {SAMPLE_COLUMNS} FROM samples ORDER BY ts, rowid"),
        sample_row,
    )
    .map_err(wrap)?;
    data.service_samples = read_all(
        &conn,
        "service_samples",
        "SELECT ts, service, db_bytes, wal_bytes, log_bytes FROM service_samples ORDER BY ts, rowid",
        |r| {
            Ok(ServiceSampleRow {
                ts: r.get(0)?,
                service: r.get(1)?,
                db_bytes: r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                wal_bytes: r.get::<_, Option<i64>>(3)?.unwrap_or(0),
                log_bytes: r.get::<_, Option<i64>>(4)?.unwrap_or(0),
            })
        },
    )
    .map_err(wrap)?;
    data.host_samples = read_all(
        &conn,
        "host_samples",
        &format!("SELECT {HOST_COLUMNS} FROM host_samples ORDER BY ts, rowid"),
        host_row,
    )
    .map_err(wrap)?;
    Ok(data)
}

impl RunData {
    /// Opens a journal for judging and reporting: the run, incarnations,
    /// events (a load event's histogram left out), link samples and lag
    /// are read whole; `samples`, `service_samples`, `host_samples` and
    /// `metrics` stay empty and the accessors read them from the journal
    /// (a metric one series at a time), in one read transaction. A 72 h journal of 5 services
    /// holds about 520 000 sample rows; this holds one incarnation's at a
    /// time.
    pub fn open(path: &Path) -> Result<RunData, JournalError> {
        let wrap = wrapper(path);
        let conn = connect(path)?;
        // Deferred: the snapshot is taken by the first read below and kept
        // by every later one until the connection closes.
        conn.execute_batch("BEGIN").map_err(wrap)?;
        let mut data = read_small(&conn, true).map_err(wrap)?;
        data.unread = Unread(Some(Arc::new(Mutex::new(Journaled {
            path: path.display().to_string(),
            conn,
            service_peaks: None,
        }))));
        Ok(data)
    }

    /// Runs `f` on the journal [`RunData::open`] left open; None when the
    /// rows are in memory.
    fn journaled<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Option<Result<T, JournalError>> {
        self.journaled_mut(|j| f(&j.conn))
    }

    fn journaled_mut<T>(
        &self,
        f: impl FnOnce(&mut Journaled) -> rusqlite::Result<T>,
    ) -> Option<Result<T, JournalError>> {
        let j = self.unread.0.as_ref()?;
        // A panic elsewhere while reading leaves the connection sound:
        // SQLite keeps no state in a half-read statement that the next
        // prepare depends on.
        let mut j = j.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let path = j.path.clone();
        Some(f(&mut j).map_err(|source| JournalError { path, source }))
    }

    /// `service`'s peaks in `service_samples`; None when it has no rows.
    fn service_peaks(&self, service: &str) -> Option<Result<Option<ServicePeaks>, JournalError>> {
        self.journaled_mut(|j| {
            if j.service_peaks.is_none() {
                let mut peaks: BTreeMap<String, ServicePeaks> = BTreeMap::new();
                let mut stmt = j.conn.prepare(
                    "SELECT service, coalesce(wal_bytes, 0), ts, rowid, max(coalesce(log_bytes, 0), 0) FROM service_samples",
                )?;
                let mut rows = stmt.query([])?;
                while let Some(r) = rows.next()? {
                    let wal = (r.get(1)?, r.get(2)?, r.get(3)?);
                    let log_bytes: i64 = r.get(4)?;
                    let service = r.get_ref(0)?.as_str()?;
                    match peaks.get_mut(service) {
                        Some(p) => {
                            p.wal = p.wal.max(wal);
                            p.log_bytes = p.log_bytes.max(log_bytes);
                        }
                        None => {
                            peaks.insert(service.to_string(), ServicePeaks { wal, log_bytes });
                        }
                    }
                }
                j.service_peaks = Some(peaks);
            }
            Ok(j.service_peaks.as_ref().and_then(|p| p.get(service)).copied())
        })
    }

    /// How many resource samples `incarnations` have.
    pub fn sample_count(&self, incarnations: &[i64]) -> Result<usize, JournalError> {
        let mut n = 0usize;
        for &id in incarnations {
            n += self
                .journaled(|conn| {
                    conn.query_row(
                        "SELECT count(*) FROM samples WHERE incarnation = ?1",
                        [id],
                        |r| r.get::<_, i64>(0),
                    )
                })
                .unwrap_or_else(|| {
                    Ok(self.samples.iter().filter(|s| s.incarnation == id).count() as i64)
                })?
                .max(0) as usize;
        }
        Ok(n)
    }

    /// Calls `f` on every resource sample of `incarnations`, by time (rows
    /// of one time in the order they were written).
    pub fn for_each_sample(
        &self,
        incarnations: &[i64],
        mut f: impl FnMut(&SampleRow),
    ) -> Result<(), JournalError> {
        if incarnations.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "SELECT {SAMPLE_COLUMNS} FROM samples WHERE incarnation IN ({}) ORDER BY ts, rowid",
            vec!["?"; incarnations.len()].join(",")
        );
        match self.journaled(|conn| {
            let mut stmt = conn.prepare(&sql)?;
            let mut rows = stmt.query(params_from_iter(incarnations))?;
            while let Some(r) = rows.next()? {
                f(&sample_row(r)?);
            }
            Ok(())
        }) {
            Some(done) => done,
            None => {
                for s in &self.samples {
                    if incarnations.contains(&s.incarnation) {
                        f(s);
                    }
                }
                Ok(())
            }
        }
    }

    /// One incarnation's resource samples, by time.
    pub fn samples_of(&self, incarnation: i64) -> Result<Vec<SampleRow>, JournalError> {
        let mut out = Vec::with_capacity(self.sample_count(&[incarnation])?);
        self.for_each_sample(&[incarnation], |r| out.push(r.clone()))?;
        Ok(out)
    }

    /// The newest sample of `incarnations` taken at or before `ts`; of
    /// samples of one time, the one of the incarnation listed last.
    pub fn last_sample_at(
        &self,
        incarnations: &[i64],
        ts: i64,
    ) -> Result<Option<SampleRow>, JournalError> {
        let mut best: Option<SampleRow> = None;
        let mut keep = |r: SampleRow| {
            if best.as_ref().is_none_or(|b| r.ts >= b.ts) {
                best = Some(r);
            }
        };
        for &id in incarnations {
            let newest = self.journaled(|conn| {
                conn.query_row(
                    &format!(
                        "SELECT {SAMPLE_COLUMNS} FROM samples WHERE incarnation = ?1 AND ts <= ?2 ORDER BY ts DESC, rowid DESC LIMIT 1"
                    ),
                    [id, ts],
                    sample_row,
                )
                .optional()
            });
            match newest {
                Some(row) => {
                    if let Some(r) = row? {
                        keep(r);
                    }
                }
                None => {
                    for s in &self.samples {
                        if s.incarnation == id && s.ts <= ts {
                            keep(s.clone());
                        }
                    }
                }
            }
        }
        Ok(best)
    }

    /// The times of the first and the last resource sample.
    pub fn sample_span(&self) -> Result<Option<(i64, i64)>, JournalError> {
        self.journaled(|conn| {
            conn.query_row("SELECT min(ts), max(ts) FROM samples", [], |r| {
                Ok(r.get::<_, Option<i64>>(0)?.zip(r.get::<_, Option<i64>>(1)?))
            })
        })
        .unwrap_or_else(|| {
            Ok(self
                .samples
                .first()
                .map(|s| s.ts)
                .zip(self.samples.last().map(|s| s.ts)))
        })
    }

    /// When `service`'s WAL was largest and how large (of equal peaks, the
    /// latest).
    pub fn peak_wal(&self, service: &str) -> Result<Option<(i64, i64)>, JournalError> {
        match self.service_peaks(service) {
            Some(peaks) => Ok(peaks?.map(|p| (p.wal.1, p.wal.0))),
            None => Ok(self
                .service_samples
                .iter()
                .filter(|s| s.service == service)
                .max_by_key(|s| s.wal_bytes)
                .map(|s| (s.ts, s.wal_bytes))),
        }
    }

    /// The largest size `service`'s log was sampled at (0 when never).
    pub fn peak_log_bytes(&self, service: &str) -> Result<u64, JournalError> {
        match self.service_peaks(service) {
            Some(peaks) => Ok(peaks?.map_or(0, |p| p.log_bytes) as u64),
            None => Ok(self
                .service_samples
                .iter()
                .filter(|s| s.service == service)
                .map(|s| s.log_bytes.max(0) as u64)
                .max()
                .unwrap_or(0)),
        }
    }

    /// Calls `f(ts, log_bytes)` on each of `service`'s samples, by time:
    /// the bytes its log has taken in so far, as the sampler measured them.
    pub fn for_each_log_sample(
        &self,
        service: &str,
        mut f: impl FnMut(i64, u64),
    ) -> Result<(), JournalError> {
        match self.journaled(|conn| {
            let mut stmt = conn.prepare(
                "SELECT ts, max(coalesce(log_bytes, 0), 0) FROM service_samples \
                 WHERE service = ?1 ORDER BY ts, rowid",
            )?;
            let mut rows = stmt.query([service])?;
            while let Some(r) = rows.next()? {
                f(r.get(0)?, r.get::<_, i64>(1)? as u64);
            }
            Ok(())
        }) {
            Some(done) => done,
            None => {
                self.service_samples
                    .iter()
                    .filter(|s| s.service == service)
                    .for_each(|s| f(s.ts, s.log_bytes.max(0) as u64));
                Ok(())
            }
        }
    }

    /// Calls `f` on every host sample, by time.
    pub fn for_each_host_sample(
        &self,
        mut f: impl FnMut(&HostSampleRow),
    ) -> Result<(), JournalError> {
        match self.journaled(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {HOST_COLUMNS} FROM host_samples ORDER BY ts, rowid"
            ))?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                f(&host_row(r)?);
            }
            Ok(())
        }) {
            Some(done) => done,
            None => {
                self.host_samples.iter().for_each(f);
                Ok(())
            }
        }
    }

    /// The names of the metric series kept (with their labels), sorted.
    pub fn metric_names(&self) -> Result<Vec<String>, JournalError> {
        self.journaled(|conn| {
            if !has_table(conn, "metrics")? {
                return Ok(Vec::new());
            }
            let mut stmt = conn.prepare("SELECT DISTINCT name FROM metrics ORDER BY name")?;
            stmt.query_map([], |r| r.get(0))?.collect()
        })
        .unwrap_or_else(|| {
            let names: std::collections::BTreeSet<&str> =
                self.metrics.iter().map(|m| m.name.as_str()).collect();
            Ok(names.into_iter().map(str::to_string).collect())
        })
    }

    /// Every row of the metric series `name`, by time (rows of one time in
    /// the order they were written).
    pub fn metric_series(&self, name: &str) -> Result<Vec<MetricRow>, JournalError> {
        self.journaled(|conn| {
            let mut stmt = conn.prepare(
                "SELECT ts, incarnation, name, value FROM metrics WHERE name = ?1 ORDER BY ts, rowid",
            )?;
            stmt.query_map([name], metric_row)?.collect()
        })
        .unwrap_or_else(|| {
            let mut rows: Vec<MetricRow> = self
                .metrics
                .iter()
                .filter(|m| m.name == name)
                .cloned()
                .collect();
            rows.sort_by_key(|r| r.ts);
            Ok(rows)
        })
    }

    /// How many host samples there are.
    pub fn host_sample_count(&self) -> Result<usize, JournalError> {
        self.journaled(|conn| {
            conn.query_row("SELECT count(*) FROM host_samples", [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .unwrap_or_else(|| Ok(self.host_samples.len() as i64))
        .map(|n| n.max(0) as usize)
    }

    /// The last host sample.
    pub fn last_host_sample(&self) -> Result<Option<HostSampleRow>, JournalError> {
        self.journaled(|conn| {
            conn.query_row(
                &format!(
                    "SELECT {HOST_COLUMNS} FROM host_samples ORDER BY ts DESC, rowid DESC LIMIT 1"
                ),
                [],
                host_row,
            )
            .optional()
        })
        .unwrap_or_else(|| Ok(self.host_samples.last().cloned()))
    }

    /// A load event's latency histogram, in a form
    /// [`crate::workload::LatencyHistogram::merge_json`] takes; null for
    /// any other event.
    pub fn histogram<'e>(
        &self,
        e: &'e EventRow,
    ) -> Result<Cow<'e, serde_json::Value>, JournalError> {
        let Event::Load { histogram, .. } = &e.event else {
            return Ok(Cow::Owned(serde_json::Value::Null));
        };
        match self.journaled(|conn| {
            conn.query_row("SELECT detail FROM events WHERE id = ?1", [e.id], |r| {
                r.get::<_, String>(0)
            })
            .optional()
        }) {
            None => Ok(Cow::Borrowed(histogram)),
            Some(detail) => {
                let mut detail = detail?
                    .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
                    .unwrap_or_default();
                compact_histogram(&mut detail);
                Ok(Cow::Owned(
                    detail
                        .get_mut("histogram")
                        .map(serde_json::Value::take)
                        .unwrap_or_default(),
                ))
            }
        }
    }
}

fn wrapper(path: &Path) -> impl Fn(rusqlite::Error) -> JournalError + Copy + '_ {
    move |source| JournalError {
        path: path.display().to_string(),
        source,
    }
}

fn connect(path: &Path) -> Result<Connection, JournalError> {
    let wrap = wrapper(path);
    // No SQLite mutex: a connection is only ever used by one thread at a
    // time here, and serialized mode locks on every column read (a tenth
    // of a 72 h report's time).
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(wrap)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(wrap)?;
    Ok(conn)
}

const SAMPLE_COLUMNS: &str = "ts, incarnation, rss_bytes, cpu_seconds, fds, threads, processes";

fn sample_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SampleRow> {
    Ok(SampleRow {
        ts: r.get(0)?,
        incarnation: r.get(1)?,
        rss_bytes: r.get::<_, Option<i64>>(2)?.unwrap_or(0),
        cpu_seconds: r.get::<_, Option<f64>>(3)?.unwrap_or(0.0),
        fds: r.get::<_, Option<i64>>(4)?.unwrap_or(0),
        threads: r.get::<_, Option<i64>>(5)?.unwrap_or(0),
        processes: r.get::<_, Option<i64>>(6)?.unwrap_or(0),
    })
}

fn metric_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MetricRow> {
    Ok(MetricRow {
        ts: r.get(0)?,
        incarnation: r.get(1)?,
        name: r.get(2)?,
        value: r.get(3)?,
    })
}

const HOST_COLUMNS: &str =
    "ts, mem_available_bytes, disk_free_bytes, soak_rss_bytes, soak_cpu_seconds";

fn host_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<HostSampleRow> {
    Ok(HostSampleRow {
        ts: r.get(0)?,
        mem_available_bytes: r.get::<_, Option<i64>>(1)?.unwrap_or(0),
        disk_free_bytes: r.get::<_, Option<i64>>(2)?.unwrap_or(0),
        soak_rss_bytes: r.get::<_, Option<i64>>(3)?.unwrap_or(0),
        soak_cpu_seconds: r.get::<_, Option<f64>>(4)?.unwrap_or(0.0),
    })
}

/// Every table but the sample tables. `lean` leaves a load event's
/// histogram out (null; [`RunData::histogram`] reads it when judged): as
/// text it is most of a load row, and a 72 h run has thousands of them.
fn read_small(conn: &Connection, lean: bool) -> rusqlite::Result<RunData> {
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
        .optional()?;
    let mut stmt = conn.prepare("SELECT id, service, pid, started_at, ready_at, ended_at, exit_code, signal, cause, orphans FROM incarnations ORDER BY id")?;
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
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let events = read_all(
        conn,
        "events",
        "SELECT id, ts, service, kind, detail FROM events ORDER BY ts, id",
        |r| {
            let detail: String = r.get(4)?;
            let mut detail =
                serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail));
            let kind: String = r.get(3)?;
            if lean
                && kind == "load"
                && let Some(h) = detail.get_mut("histogram")
            {
                *h = serde_json::Value::Null;
            }
            Ok(EventRow::from_row(
                r.get(0)?,
                r.get(1)?,
                r.get::<_, Option<String>>(2)?.as_deref(),
                kind,
                detail,
            ))
        },
    )?;
    let metrics = if lean {
        Vec::new()
    } else {
        read_if_present(
            conn,
            "metrics",
            "SELECT ts, incarnation, name, value FROM metrics ORDER BY ts, rowid",
            metric_row,
        )?
    };
    let link_samples = read_if_present(
        conn,
        "link_samples",
        "SELECT ts, link, connections, active, bytes_up, bytes_down FROM link_samples ORDER BY ts, rowid",
        |r| {
            Ok(LinkSampleRow {
                ts: r.get(0)?,
                link: r.get(1)?,
                connections: r.get(2)?,
                active: r.get(3)?,
                bytes_up: r.get(4)?,
                bytes_down: r.get(5)?,
            })
        },
    )?;
    let lag = read_if_present(
        conn,
        "runtime_lag",
        "SELECT ts, p99_ms, max_ms FROM runtime_lag ORDER BY ts",
        |r| {
            Ok(LagRow {
                ts: r.get(0)?,
                p99_ms: r.get(1)?,
                max_ms: r.get(2)?,
            })
        },
    )?;
    let mut acknowledged_writes = BTreeMap::new();
    if has_table(conn, "writes")? {
        let mut stmt = conn.prepare("SELECT workload, count(*) FROM writes GROUP BY workload")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (workload, n) = row?;
            acknowledged_writes.insert(workload, n.max(0) as u64);
        }
    }
    Ok(RunData {
        run,
        incarnations,
        events,
        metrics,
        link_samples,
        lag,
        acknowledged_writes,
        ..RunData::default()
    })
}

/// [`read_all`] for a table a journal of an older soak may lack: none is
/// read as no rows.
fn read_if_present<T>(
    conn: &Connection,
    table: &str,
    sql: &str,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    if !has_table(conn, table)? {
        return Ok(Vec::new());
    }
    read_all(conn, table, sql, row)
}

/// Whether the journal has `table`: one of an older soak may lack some.
fn has_table(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [table],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// Every row `sql` selects from `table`, into a vector sized once from the
/// table's row count: grown by doubling, a vector of a 72 h table briefly
/// holds its old and new buffers (three times the rows) and keeps up to
/// twice the room it needs. A row the writer adds meanwhile only grows it.
fn read_all<T>(
    conn: &Connection,
    table: &str,
    sql: &str,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let n: i64 = conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
    let mut out = Vec::with_capacity(n.max(0) as usize);
    let mut stmt = conn.prepare(sql)?;
    for r in stmt.query_map([], row)? {
        out.push(r?);
    }
    Ok(out)
}
