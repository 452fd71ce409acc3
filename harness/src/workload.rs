//! Workloads: the requests soak sends while it watches. Open loop: request n
//! is due at `start + n / rate` whatever happened to request n-1, and its
//! latency is measured from that intended time, so a stalled service cannot
//! hide its stall by slowing the sender down (coordinated omission).
//!
//! Every acknowledged write goes to the journal; at the end each is read back,
//! streamed from the journal's `writes` table, so a soak of days checks its
//! first write as surely as its last.
//! Each interval, counts and latency quantiles go to the journal as a `load`
//! event. Traffic is bounded: by the run's end, by a cap on requests in
//! flight, and by a per-request timeout.

use crate::clock::now_ms;
use crate::config::{Config, Request, expand};
use crate::journal::{Event, Record};
use crate::plan::Plan;
use crate::record::{Recorder, Severity};
use serde_json::json;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

/// A request that takes longer than this failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests in flight per workload; past this, due requests count as failed
/// ("overloaded") instead of piling up.
const MAX_IN_FLIGHT: usize = 256;
/// Acknowledged writes kept in memory to draw the run's reads from (the
/// final read-back reads every write from the journal instead).
const KEEP_ACKED: usize = 100_000;
/// Reads in flight during the read-back: enough to hide a slow store's
/// latency, few enough not to knock over a service that just recovered.
const READBACK_IN_FLIGHT: usize = 12;
/// Journal rows fetched at a time: the read-back's memory stays flat
/// however many writes a run acknowledged.
const READBACK_PAGE: usize = 1000;

/// The read-back's time: a base plus an allowance per write, so millions of
/// writes are all read, and only a store far slower than 2 ms a write (24 ms
/// a read with [`READBACK_IN_FLIGHT`] in flight) runs out of time; writes
/// left unread then count as unchecked, never as missing.
pub fn readback_budget(acknowledged: u64) -> Duration {
    Duration::from_secs(60) + Duration::from_millis(acknowledged.saturating_mul(2))
}

#[derive(Debug, Clone)]
struct Target {
    name: String,
    service: String,
    port: u16,
    write: Option<Request>,
    read: Option<Request>,
    rate: f64,
}

/// A log-bucketed latency histogram (each bucket 10 % wider than the one
/// before, from 0.05 ms): bounded memory at any rate, ~5 % error on a
/// quantile, and mergeable, so intervals journaled as sparse bucket counts
/// add up to the whole run's p99.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatencyHistogram {
    counts: BTreeMap<u32, u64>,
    max_ms: f64,
}

const BUCKET_BASE_MS: f64 = 0.05;
const BUCKET_GROWTH: f64 = 1.1;

impl LatencyHistogram {
    fn bucket(ms: f64) -> u32 {
        if ms <= BUCKET_BASE_MS || !ms.is_finite() {
            return 0;
        }
        ((ms / BUCKET_BASE_MS).ln() / BUCKET_GROWTH.ln())
            .ceil()
            .min(1000.0) as u32
    }

    /// The upper edge of a bucket, what a quantile in it reports.
    fn upper_ms(b: u32) -> f64 {
        BUCKET_BASE_MS * BUCKET_GROWTH.powi(b as i32)
    }

    pub fn record(&mut self, ms: f64) {
        *self.counts.entry(Self::bucket(ms)).or_default() += 1;
        if ms.is_finite() {
            self.max_ms = self.max_ms.max(ms);
        }
    }

    pub fn count(&self) -> u64 {
        self.counts.values().sum()
    }

    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, c) in &self.counts {
            seen += c;
            if seen >= rank {
                return Some(Self::upper_ms(*b).min(self.max_ms.max(BUCKET_BASE_MS)));
            }
        }
        Some(self.max_ms)
    }

    pub fn max_ms(&self) -> f64 {
        self.max_ms
    }

    /// `{"max_ms": .., "buckets": [[bucket, count], ...]}`
    pub fn to_json(&self) -> serde_json::Value {
        let buckets: Vec<[u64; 2]> = self.counts.iter().map(|(b, c)| [*b as u64, *c]).collect();
        json!({"max_ms": self.max_ms, "buckets": buckets})
    }

    /// Adds a histogram journaled by [`Self::to_json`], as a JSON value or
    /// as its text (the journal reader keeps it as text); ignores malformed
    /// input.
    pub fn merge_json(&mut self, v: &serde_json::Value) {
        if let Some(text) = v.as_str() {
            if let Ok(parsed) = serde_json::from_str::<serde_json::Value>(text) {
                self.merge_json(&parsed);
            }
            return;
        }
        for pair in v["buckets"].as_array().into_iter().flatten() {
            if let (Some(b), Some(c)) = (pair[0].as_u64(), pair[1].as_u64()) {
                *self.counts.entry(b.min(1000) as u32).or_default() += c;
            }
        }
        if let Some(m) = v["max_ms"].as_f64() {
            self.max_ms = self.max_ms.max(m);
        }
    }
}

#[derive(Default)]
struct Interval {
    sent: u64,
    ok: u64,
    failed: u64,
    latency: LatencyHistogram,
    errors: BTreeMap<String, u64>,
}

#[derive(Default)]
struct Shared {
    interval: Interval,
    acked: VecDeque<(String, String)>,
    acked_total: u64,
}

/// One running workload: its name, counters, target and sending task.
type Running = (String, Arc<Mutex<Shared>>, Target, JoinHandle<()>);

pub struct Load {
    stop: watch::Sender<bool>,
    tasks: Vec<Running>,
    /// The run's journal, whose `writes` table the read-back reads.
    journal: PathBuf,
}

/// What the read-back found for one workload.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadBack {
    /// Writes the journal holds as acknowledged.
    pub acknowledged: u64,
    /// Writes the service answered for, rightly or wrongly.
    pub checked: u64,
    pub missing_count: u64,
    /// The first [`MISSING_LISTED`] missing writes: (key, what the read got).
    pub missing: Vec<(String, String)>,
    /// Acknowledged writes not checked (out of time, or no answer).
    pub unchecked: u64,
    /// Why some were not checked; empty when all were.
    pub unchecked_reason: String,
}

/// Missing writes named in the journal; the rest are counted.
const MISSING_LISTED: usize = 50;

/// Why a request was not acknowledged.
#[derive(Debug, Clone, PartialEq)]
enum Miss {
    /// The service answered, and the answer was wrong (status, body).
    Wrong(String),
    /// No answer to judge: timed out, refused, or a 5xx ("cannot serve
    /// now" is not "the write is gone").
    NoAnswer(String),
}

impl std::fmt::Display for Miss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Miss::Wrong(e) | Miss::NoAnswer(e) => f.write_str(e),
        }
    }
}

/// `{port}`, `{key}`, `{value}` of one request.
fn vars<'a>(port: &'a str, key: &'a str, value: &'a str) -> [(&'a str, &'a str); 3] {
    [("port", port), ("key", key), ("value", value)]
}

/// Sends one request; Ok(()) when it is acknowledged (status and body match).
pub async fn send(req: &Request, port: u16, key: &str, value: &str) -> Result<(), String> {
    answer(req, port, key, value)
        .await
        .map_err(|m| m.to_string())
}

/// [`send`], telling a wrong answer from no answer.
async fn answer(req: &Request, port: u16, key: &str, value: &str) -> Result<(), Miss> {
    let port = port.to_string();
    let v = vars(&port, key, value);
    match req {
        Request::Http {
            method,
            url,
            body,
            headers,
            expect_status,
            expect_body,
        } => {
            let headers: Vec<(String, String)> = headers
                .iter()
                .map(|(k, val)| (k.clone(), expand(val, &v)))
                .collect();
            let body = body.as_ref().map(|b| expand(b, &v));
            let r = crate::http::request(
                method,
                &expand(url, &v),
                &headers,
                body.as_deref(),
                REQUEST_TIMEOUT,
            )
            .await
            .map_err(|e| Miss::NoAnswer(e.to_string()))?;
            if r.status != *expect_status {
                let why = format!("status {}", r.status);
                return Err(if r.status >= 500 {
                    Miss::NoAnswer(why)
                } else {
                    Miss::Wrong(why)
                });
            }
            if let Some(want) = expect_body
                && !r.body.contains(&expand(want, &v))
            {
                return Err(Miss::Wrong("unexpected body".into()));
            }
            Ok(())
        }
        Request::Exec {
            command,
            expect_body,
        } => {
            let argv: Vec<String> = command.iter().map(|a| expand(a, &v)).collect();
            let mut cmd = tokio::process::Command::new(&argv[0]);
            cmd.args(&argv[1..])
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true);
            let out = tokio::time::timeout(REQUEST_TIMEOUT, cmd.output())
                .await
                .map_err(|_| Miss::NoAnswer("timed out".into()))?
                .map_err(|e| Miss::NoAnswer(format!("cannot run {}: {e}", argv[0])))?;
            if !out.status.success() {
                return Err(Miss::Wrong(format!("{}", out.status)));
            }
            if let Some(want) = expect_body
                && !String::from_utf8_lossy(&out.stdout).contains(&expand(want, &v))
            {
                return Err(Miss::Wrong("unexpected output".into()));
            }
            Ok(())
        }
    }
}

impl Load {
    /// Starts the named workloads against the plan's services.
    pub fn start(
        config: &Config,
        plan: &Plan,
        names: &[String],
        rec: &Recorder,
        report_every: Duration,
    ) -> Load {
        let (stop, stopped) = watch::channel(false);
        let salt = now_ms() % 100_000;
        let mut tasks = Vec::new();
        for name in names {
            let Some(w) = config.workloads.get(name) else {
                continue;
            };
            let Some(svc) = plan.service(w.service.get_ref()) else {
                continue;
            };
            let target = Target {
                name: name.clone(),
                service: svc.name.clone(),
                port: svc.port,
                write: w.write.clone(),
                read: w.read.clone(),
                rate: w.rate.0,
            };
            let shared = Arc::new(Mutex::new(Shared::default()));
            let task = tokio::spawn(drive(
                target.clone(),
                shared.clone(),
                rec.clone(),
                stopped.clone(),
                report_every,
                salt,
            ));
            tasks.push((name.clone(), shared, target, task));
        }
        Load {
            stop,
            tasks,
            journal: plan.run_dir.join("journal.sqlite"),
        }
    }

    /// Stops sending, waits for requests in flight, flushes the last interval.
    pub async fn stop(&mut self) {
        let _ = self.stop.send(true);
        for (_, _, _, task) in &mut self.tasks {
            let _ = task.await;
        }
    }

    /// Reads back every acknowledged write of `workload`, as the journal
    /// holds them, [`READBACK_IN_FLIGHT`] at a time within
    /// [`readback_budget`], and journals what it found.
    ///
    /// `down` says why its service cannot answer (it gave up, a step
    /// stopped it): then nothing is read, and every acknowledged write is
    /// journaled as unchecked, not as missing. Its data may be intact.
    pub async fn read_back(
        &self,
        workload: &str,
        rec: &Recorder,
        down: Option<String>,
    ) -> Option<ReadBack> {
        let (_, _, target, _) = self.tasks.iter().find(|(n, ..)| n == workload)?;
        target.write.as_ref()?;
        let read = target.read.clone()?;
        // Writes acknowledged in the last moments may still be on their way
        // to the journal.
        let journal = rec.journal.clone();
        let _ = tokio::task::spawn_blocking(move || journal.flush()).await;
        let rb = match down {
            None => read_back_from(&self.journal, workload, &read, target.port).await,
            Some(why) => {
                let (path, w) = (self.journal.clone(), workload.to_string());
                match tokio::task::spawn_blocking(move || count_writes(&path, &w)).await {
                    Ok(Ok(acknowledged)) => ReadBack {
                        acknowledged,
                        unchecked: acknowledged,
                        unchecked_reason: why,
                        ..ReadBack::default()
                    },
                    Ok(Err(e)) => unreadable_journal(&self.journal, e.to_string()),
                    Err(e) => unreadable_journal(&self.journal, e.to_string()),
                }
            }
        };
        let first: Vec<String> = rb
            .missing
            .iter()
            .map(|(k, e)| format!("{k}: {e}"))
            .collect();
        let severity = if rb.missing_count > 0 {
            Severity::Bad
        } else if rb.unchecked > 0 {
            Severity::Warn
        } else {
            Severity::Good
        };
        let event = Event::Readback {
            workload: workload.to_string(),
            checked: rb.checked,
            missing_count: rb.missing_count,
            missing: first,
            acknowledged: Some(rb.acknowledged),
            unchecked: rb.unchecked,
            unchecked_reason: rb.unchecked_reason.clone(),
        };
        rec.emit(
            Some(&target.service),
            &event,
            severity,
            format!(
                "read back {} of {} acknowledged write(s) of {workload}: {} missing{}",
                rb.checked,
                rb.acknowledged,
                rb.missing_count,
                if rb.unchecked > 0 {
                    format!(", {} unchecked ({})", rb.unchecked, rb.unchecked_reason)
                } else {
                    String::new()
                }
            ),
        );
        Some(rb)
    }
}

/// Reads back every write of `workload` in the journal at `journal`.
pub async fn read_back_from(journal: &Path, workload: &str, read: &Request, port: u16) -> ReadBack {
    let (path, w) = (journal.to_path_buf(), workload.to_string());
    let counted = tokio::task::spawn_blocking(move || count_writes(&path, &w)).await;
    let acknowledged = match counted {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => return unreadable_journal(journal, e.to_string()),
        Err(e) => return unreadable_journal(journal, e.to_string()),
    };
    let mut rb = ReadBack {
        acknowledged,
        ..ReadBack::default()
    };
    let budget = readback_budget(acknowledged);
    let deadline = Instant::now() + budget;
    let (pages_tx, mut pages) = mpsc::channel(2);
    let (path, w) = (journal.to_path_buf(), workload.to_string());
    let pager = tokio::task::spawn_blocking(move || page_writes(&path, &w, pages_tx));
    let mut tally = Tally::default();
    let mut out_of_time = false;
    let mut reads = JoinSet::new();
    let mut seq: u64 = 0;
    'pages: while let Some(page) = pages.recv().await {
        for (k, v) in page {
            seq += 1;
            if Instant::now() >= deadline {
                out_of_time = true;
                break 'pages;
            }
            while reads.len() >= READBACK_IN_FLIGHT {
                if let Some(Ok(done)) = reads.join_next().await {
                    tally.add(done);
                }
            }
            let read = read.clone();
            reads.spawn(async move {
                let r = answer(&read, port, &k, &v).await;
                (seq, k, r)
            });
        }
    }
    // Stops the pager at its next page when the read-back stopped early.
    drop(pages);
    while let Some(done) = reads.join_next().await {
        if let Ok(done) = done {
            tally.add(done);
        }
    }
    let paged = pager.await;
    tally.keep_oldest();
    rb.checked = tally.checked;
    rb.missing_count = tally.missing_count;
    rb.missing = tally.missing.into_iter().map(|(_, k, e)| (k, e)).collect();
    rb.unchecked = rb.acknowledged.saturating_sub(rb.checked);
    let mut why = Vec::new();
    if out_of_time {
        why.push(format!(
            "the read-back ran out of its {} budget",
            crate::clock::human(budget)
        ));
    }
    if let Some(e) = tally.no_answer {
        why.push(format!("reads got no answer (first: {e})"));
    }
    match paged {
        Ok(Err(e)) => why.push(format!("the journal could not be read: {e}")),
        Err(e) => why.push(format!("the journal could not be read: {e}")),
        Ok(Ok(())) => {}
    }
    if rb.unchecked > 0 && why.is_empty() {
        why.push("the journal listed fewer writes than it counted".into());
    }
    rb.unchecked_reason = why.join("; ");
    rb
}

fn unreadable_journal(journal: &Path, e: String) -> ReadBack {
    ReadBack {
        unchecked_reason: format!("cannot read {}: {e}", journal.display()),
        ..ReadBack::default()
    }
}

/// One read's outcome: its place in journal order, its key, its answer.
type Read = (u64, String, Result<(), Miss>);

/// What the reads found so far; missing writes keep their place in journal
/// order, since reads finish out of order.
#[derive(Default)]
struct Tally {
    checked: u64,
    missing_count: u64,
    missing: Vec<(u64, String, String)>,
    no_answer: Option<String>,
}

impl Tally {
    fn add(&mut self, (seq, key, r): Read) {
        match r {
            Ok(()) => self.checked += 1,
            Err(Miss::Wrong(e)) => {
                self.checked += 1;
                self.missing_count += 1;
                self.missing.push((seq, key, e));
                if self.missing.len() >= 2 * MISSING_LISTED {
                    self.keep_oldest();
                }
            }
            Err(Miss::NoAnswer(e)) => {
                self.no_answer.get_or_insert(e);
            }
        }
    }

    /// The [`MISSING_LISTED`] oldest missing writes, oldest first.
    fn keep_oldest(&mut self) {
        self.missing.sort_by_key(|m| m.0);
        self.missing.truncate(MISSING_LISTED);
    }
}

fn open_read_only(journal: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let db = rusqlite::Connection::open_with_flags(
        journal,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // The journal's writer may be committing; wait rather than fail.
    db.busy_timeout(Duration::from_secs(10))?;
    Ok(db)
}

fn count_writes(journal: &Path, workload: &str) -> rusqlite::Result<u64> {
    open_read_only(journal)?.query_row(
        "SELECT COUNT(*) FROM writes WHERE workload = ?1",
        [workload],
        |r| r.get::<_, i64>(0).map(|n| n.max(0) as u64),
    )
}

/// Sends the workload's writes in journal order, a page at a time, until
/// the rows or the receiver run out.
fn page_writes(
    journal: &Path,
    workload: &str,
    pages: mpsc::Sender<Vec<(String, String)>>,
) -> rusqlite::Result<()> {
    let db = open_read_only(journal)?;
    let mut stmt = db.prepare(
        "SELECT rowid, key, value FROM writes WHERE workload = ?1 AND rowid > ?2 \
         ORDER BY rowid LIMIT ?3",
    )?;
    let mut after: i64 = 0;
    loop {
        let mut page = Vec::with_capacity(READBACK_PAGE);
        let mut rows = stmt.query(rusqlite::params![workload, after, READBACK_PAGE as i64])?;
        while let Some(row) = rows.next()? {
            after = row.get(0)?;
            page.push((row.get(1)?, row.get(2)?));
        }
        let last = page.len() < READBACK_PAGE;
        if page.is_empty() || pages.blocking_send(page).is_err() || last {
            return Ok(());
        }
    }
}

async fn drive(
    t: Target,
    shared: Arc<Mutex<Shared>>,
    rec: Recorder,
    mut stopped: watch::Receiver<bool>,
    report_every: Duration,
    salt: i64,
) {
    let start = tokio::time::Instant::now();
    let period = Duration::from_secs_f64(1.0 / t.rate);
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut next_report = start + report_every;
    let mut n: u64 = 0;
    let mut in_flight = Vec::new();
    loop {
        let due = start + period.mul_f64(n as f64);
        tokio::select! {
            _ = tokio::time::sleep_until(due.min(next_report)) => {}
            _ = stopped.changed() => break,
        }
        if *stopped.borrow() {
            break;
        }
        if tokio::time::Instant::now() >= next_report {
            flush(&t, &shared, &rec);
            next_report += report_every;
            continue;
        }
        n += 1;
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
            s.interval.sent += 1;
            s.interval.failed += 1;
            *s.interval
                .errors
                .entry("overloaded: too many requests in flight".into())
                .or_default() += 1;
            continue;
        };
        // Alternate writes and reads of acknowledged keys; a workload with
        // only `read` (or nothing acked yet) is plain load.
        let acked_sample = {
            let s = shared.lock().unwrap_or_else(|e| e.into_inner());
            (!s.acked.is_empty()).then(|| s.acked[(n as usize * 7919) % s.acked.len()].clone())
        };
        let op = match (&t.write, &t.read, acked_sample) {
            (Some(_), Some(_), Some(kv)) if n.is_multiple_of(2) => Op::Read(kv),
            (Some(_), _, _) => Op::Write(format!("k{n}"), format!("v{n}-{salt}")),
            (None, _, _) => Op::Read((format!("k{n}"), String::new())),
        };
        let (t2, shared2, rec2) = (t.clone(), shared.clone(), rec.clone());
        let intended = due.into_std();
        let sent_at = now_ms();
        in_flight.push(tokio::spawn(async move {
            let _permit = permit;
            let (result, write) = match &op {
                Op::Write(k, v) => (
                    send(
                        t2.write.as_ref().expect("write op implies a write"),
                        t2.port,
                        k,
                        v,
                    )
                    .await,
                    Some((k, v)),
                ),
                Op::Read((k, v)) => (
                    send(
                        t2.read.as_ref().expect("read op implies a read"),
                        t2.port,
                        k,
                        v,
                    )
                    .await,
                    None,
                ),
            };
            let latency = intended.elapsed().as_secs_f64() * 1000.0;
            let mut s = shared2.lock().unwrap_or_else(|e| e.into_inner());
            s.interval.sent += 1;
            s.interval.latency.record(latency);
            match result {
                Ok(()) => {
                    s.interval.ok += 1;
                    if let Some((k, v)) = write {
                        rec2.journal.send(Record::Write {
                            workload: t2.name.clone(),
                            key: k.clone(),
                            value: v.clone(),
                            sent_at,
                            acked_at: now_ms(),
                        });
                        s.acked_total += 1;
                        if s.acked.len() >= KEEP_ACKED {
                            s.acked.pop_front();
                        }
                        s.acked.push_back((k.clone(), v.clone()));
                    }
                }
                Err(e) => {
                    s.interval.failed += 1;
                    *s.interval.errors.entry(e).or_default() += 1;
                }
            }
        }));
        in_flight.retain(|h: &JoinHandle<()>| !h.is_finished());
    }
    for h in in_flight {
        let _ = h.await;
    }
    flush(&t, &shared, &rec);
}

enum Op {
    Write(String, String),
    Read((String, String)),
}

/// Journals the interval's counts and latency quantiles, and starts a new one.
fn flush(t: &Target, shared: &Mutex<Shared>, rec: &Recorder) {
    let iv = {
        let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut s.interval)
    };
    if iv.sent == 0 {
        return;
    }
    let lat = &iv.latency;
    let q = |p| lat.quantile_ms(p).unwrap_or(0.0);
    let mut errors: Vec<(String, u64)> = iv.errors.into_iter().collect();
    errors.sort_by_key(|e| std::cmp::Reverse(e.1));
    errors.truncate(3);
    let severity = if iv.failed > 0 {
        Severity::Warn
    } else {
        Severity::Info
    };
    let text = format!(
        "{}: {} sent, {} failed, p99 {:.0} ms",
        t.name,
        iv.sent,
        iv.failed,
        q(0.99)
    );
    let event = Event::Load {
        workload: t.name.clone(),
        sent: iv.sent,
        ok: iv.ok,
        failed: iv.failed,
        p50_ms: q(0.5),
        p99_ms: q(0.99),
        max_ms: lat.max_ms(),
        errors,
        histogram: lat.to_json(),
    };
    // Only failures are worth a line on the console; every interval is journaled.
    if iv.failed > 0 {
        rec.emit(Some(&t.service), &event, severity, text);
    } else {
        rec.journal.emit(Some(&t.service), &event);
    }
}

#[cfg(test)]
mod tests {
    use super::{LatencyHistogram, read_back_from};
    use crate::config::Request;
    use crate::journal::{Journal, Record};
    use proptest::prelude::*;

    #[tokio::test]
    async fn writes_that_get_no_answer_are_unchecked_not_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        let journal = Journal::create(&path).unwrap();
        for n in 1..=3 {
            journal.tx().send(Record::Write {
                workload: "items".into(),
                key: format!("k{n}"),
                value: format!("v{n}"),
                sent_at: n,
                acked_at: n,
            });
        }
        journal.close();
        // A port nobody listens on: the store is gone, not the writes.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let read = Request::Http {
            method: "GET".into(),
            url: "http://127.0.0.1:{port}/items/{key}".into(),
            body: None,
            headers: Default::default(),
            expect_status: 200,
            expect_body: None,
        };
        let rb = read_back_from(&path, "items", &read, port).await;
        assert_eq!(
            (rb.acknowledged, rb.checked, rb.missing_count, rb.unchecked),
            (3, 0, 0, 3)
        );
        assert!(
            rb.unchecked_reason
                .starts_with("reads got no answer (first: "),
            "{}",
            rb.unchecked_reason
        );
    }

    #[test]
    fn quantiles_are_within_a_bucket_and_merge() {
        let mut h = LatencyHistogram::default();
        for ms in 1..=100 {
            h.record(ms as f64);
        }
        let p50 = h.quantile_ms(0.5).unwrap();
        let p99 = h.quantile_ms(0.99).unwrap();
        assert!((50.0..=55.0).contains(&p50), "{p50}");
        assert!((99.0..=100.0).contains(&p99), "{p99}");
        let mut merged = LatencyHistogram::default();
        merged.merge_json(&h.to_json());
        merged.merge_json(&h.to_json());
        assert_eq!(merged.count(), 200);
        assert_eq!(merged.quantile_ms(0.99), h.quantile_ms(0.99));
        assert_eq!(LatencyHistogram::default().quantile_ms(0.99), None);
    }

    proptest! {
        #[test]
        fn a_quantile_is_never_below_the_true_one_by_more_than_a_bucket(
            xs in proptest::collection::vec(0.01f64..60_000.0, 1..300), q in 0.0f64..1.0
        ) {
            let mut h = LatencyHistogram::default();
            for x in &xs { h.record(*x); }
            let mut sorted = xs.clone();
            sorted.sort_by(f64::total_cmp);
            let rank = ((xs.len() as f64 * q).ceil() as usize).clamp(1, xs.len());
            let truth = sorted[rank - 1];
            let got = h.quantile_ms(q).unwrap();
            prop_assert!(got >= truth.min(0.05) && got <= truth * 1.1 + 0.05, "{} vs {}", got, truth);
        }
    }
}
