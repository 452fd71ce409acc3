//! Reading a journal back whole: the input of verdicts, reports and
//! summaries. Works on a journal a killed run left behind too.

use super::{Cause, Event, JournalError};
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

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
    /// Kept series of the services' own metrics, by time.
    pub metrics: Vec<MetricRow>,
    pub link_samples: Vec<LinkSampleRow>,
    pub lag: Vec<LagRow>,
    /// Rows of the `writes` table (acknowledged writes) per workload: the
    /// true count, where a workload's own read-back may check a capped
    /// sample of them.
    pub acknowledged_writes: BTreeMap<String, u64>,
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
    let events = read_all(
        &conn,
        "events",
        "SELECT id, ts, service, kind, detail FROM events ORDER BY ts, id",
        |r| {
            let detail: String = r.get(4)?;
            let detail = serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail));
            Ok(EventRow::from_row(
                r.get(0)?,
                r.get(1)?,
                r.get::<_, Option<String>>(2)?.as_deref(),
                r.get(3)?,
                detail,
            ))
        },
    )
    .map_err(wrap)?;
    let samples = read_all(
        &conn,
        "samples",
        "SELECT ts, incarnation, rss_bytes, cpu_seconds, fds, threads, processes FROM samples ORDER BY ts",
        |r| {
            Ok(SampleRow {
                ts: r.get(0)?,
                incarnation: r.get(1)?,
                rss_bytes: r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                cpu_seconds: r.get::<_, Option<f64>>(3)?.unwrap_or(0.0),
                fds: r.get::<_, Option<i64>>(4)?.unwrap_or(0),
                threads: r.get::<_, Option<i64>>(5)?.unwrap_or(0),
                processes: r.get::<_, Option<i64>>(6)?.unwrap_or(0),
            })
        },
    )
    .map_err(wrap)?;
    let service_samples = read_all(
        &conn,
        "service_samples",
        "SELECT ts, service, db_bytes, wal_bytes, log_bytes FROM service_samples ORDER BY ts",
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
    let host_samples = read_all(
        &conn,
        "host_samples",
        "SELECT ts, mem_available_bytes, disk_free_bytes, soak_rss_bytes, soak_cpu_seconds FROM host_samples ORDER BY ts",
        |r| {
            Ok(HostSampleRow {
                ts: r.get(0)?,
                mem_available_bytes: r.get::<_, Option<i64>>(1)?.unwrap_or(0),
                disk_free_bytes: r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                soak_rss_bytes: r.get::<_, Option<i64>>(3)?.unwrap_or(0),
                soak_cpu_seconds: r.get::<_, Option<f64>>(4)?.unwrap_or(0.0),
            })
        },
    )
    .map_err(wrap)?;
    // Tables a journal of an older soak may lack: read as empty.
    let has = |table: &str| -> Result<bool, JournalError> {
        conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
        .map_err(wrap)
    };
    let metrics = read_if_present(
        &conn,
        "metrics",
        "SELECT ts, incarnation, name, value FROM metrics ORDER BY ts, rowid",
        |r| {
            Ok(MetricRow {
                ts: r.get(0)?,
                incarnation: r.get(1)?,
                name: r.get(2)?,
                value: r.get(3)?,
            })
        },
    )
    .map_err(wrap)?;
    let link_samples = read_if_present(
            &conn,
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
        )
        .map_err(wrap)?;
    let lag = read_if_present(
        &conn,
        "runtime_lag",
        "SELECT ts, p99_ms, max_ms FROM runtime_lag ORDER BY ts",
        |r| {
            Ok(LagRow {
                ts: r.get(0)?,
                p99_ms: r.get(1)?,
                max_ms: r.get(2)?,
            })
        },
    )
    .map_err(wrap)?;
    let mut acknowledged_writes = BTreeMap::new();
    if has("writes")? {
        let mut stmt = conn
            .prepare("SELECT workload, count(*) FROM writes GROUP BY workload")
            .map_err(wrap)?;
        for row in stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(wrap)?
        {
            let (workload, n) = row.map_err(wrap)?;
            acknowledged_writes.insert(workload, n.max(0) as u64);
        }
    }
    Ok(RunData {
        run,
        incarnations,
        events,
        samples,
        service_samples,
        host_samples,
        metrics,
        link_samples,
        lag,
        acknowledged_writes,
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
    let present: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [table],
        |r| r.get(0),
    )?;
    if present == 0 {
        return Ok(Vec::new());
    }
    read_all(conn, table, sql, row)
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
