//! The one model of what happens in a run: every event soak journals is a
//! variant of [`Event`], written by the code that saw it and read back by
//! the code that judges it, so a field renamed on one side is a compile
//! error on the other instead of a silently wrong verdict.
//!
//! The journal's layout is unchanged: `events.kind` is the variant's
//! kebab-case name and `events.detail` its fields as JSON (serde's adjacent
//! tagging, `{"kind": .., "detail": {..}}`, split into the two columns).

use crate::config::RestartPolicy;
use crate::journal::Cause;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A process that outlived its incarnation's main process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrphanProcess {
    pub pid: i32,
    pub command: String,
    /// It still had the service's port open for listening.
    pub holds_port: bool,
}

/// One fault of a `[schedule]`, as drawn for this run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduledFault {
    pub at_ms: u64,
    pub action: String,
    pub target: String,
    /// The scenario the step was taken from.
    pub from: String,
}

/// An assertion's outcome: pass, fail, or unknown (not enough evidence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    Unknown,
}

/// One assertion as a partial report judged it while the run went on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerdictSoFar {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "kebab-case")]
pub enum Event {
    // The supervisor.
    Started {
        /// The main process as this host sees it (a container's `State.Pid`).
        pid: i32,
        incarnation: i64,
        /// An image service's container id, so a journal names what
        /// `docker ps` shows.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        container: Option<String>,
    },
    Ready {
        incarnation: i64,
        after_ms: u64,
    },
    SpawnFailed {
        error: String,
    },
    StandbyFailed {
        error: String,
    },
    ShimLost {},
    ProbeFailed {
        error: String,
        consecutive: u32,
    },
    ProbeRecovered {
        after_failures: u32,
    },
    Hung {
        pid: i32,
        reason: String,
        ready: bool,
    },
    Stopping {
        signal: String,
        grace_ms: u64,
    },
    Exited {
        pid: i32,
        incarnation: i64,
        exit_code: Option<i32>,
        signal: Option<String>,
        cause: Cause,
        /// How many; the processes are in the [`Event::Orphans`] beside it.
        orphans: usize,
        killed_after_grace: bool,
        up_ms: u64,
        log_bytes: u64,
    },
    Orphans {
        pid: i32,
        incarnation: i64,
        orphans: Vec<OrphanProcess>,
    },
    Down {
        restart: RestartPolicy,
    },
    GaveUp {
        starts: usize,
        interval_ms: u64,
    },
    RestartScheduled {
        delay_ms: u64,
        failures_in_row: u32,
    },

    // Workloads.
    Load {
        workload: String,
        sent: u64,
        ok: u64,
        failed: u64,
        p50_ms: f64,
        p99_ms: f64,
        max_ms: f64,
        /// The most frequent errors of the interval with their counts.
        errors: Vec<(String, u64)>,
        /// [`crate::workload::LatencyHistogram::to_json`]; read back as its
        /// JSON text (see `journal::read`), which `merge_json` also takes.
        histogram: Value,
    },
    Readback {
        workload: String,
        checked: u64,
        missing_count: u64,
        /// The first 50, each `key: error`.
        missing: Vec<String>,
        /// Writes the journal holds as acknowledged; None in journals from
        /// before the read-back read the whole journal (it checked all it
        /// counted then).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        acknowledged: Option<u64>,
        /// Acknowledged writes not read back (out of time, store gone):
        /// unknown, never missing.
        #[serde(default)]
        unchecked: u64,
        #[serde(default)]
        unchecked_reason: String,
    },

    // Chaos (written by chaos.rs as JSON for now; modelled here so it is
    // judged through the same type).
    FaultInjected {
        step: usize,
        action: String,
        incarnation: Option<i64>,
        #[serde(flatten)]
        params: FaultParams,
    },
    FaultRolledBack {
        step: usize,
        action: String,
        held_ms: i64,
        #[serde(flatten)]
        undone: FaultUndone,
    },
    InjectFailed {
        step: usize,
        error: String,
    },
    StopResult {
        step: usize,
        /// None when the stop's outcome was lost: the evidence is missing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        took_ms: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        killed_after_grace: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grace_ms: Option<u64>,
        /// Why there is no outcome (e.g. "not running").
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    DuplicateEnded {
        step: usize,
        pid: i32,
        port: u16,
        after_ms: i64,
        exit_code: Option<i32>,
        signal: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal_number: Option<i32>,
        /// It exited on its own, non-zero, without a signal. None in
        /// journals from before this was written.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refused: Option<bool>,
        /// Its last log lines, so a reviewer sees why it refused or died.
        #[serde(default)]
        log_tail: Vec<String>,
    },
    DuplicateStillRunning {
        step: usize,
        pid: i32,
        port: u16,
        after_ms: i64,
        serving: bool,
    },
    Consistency {
        step: usize,
        checked: u64,
        stale_count: u64,
        /// Each `key (after writing value): error`.
        stale: Vec<String>,
    },

    // The run.
    Schedule {
        seed: u64,
        faults: Vec<ScheduledFault>,
    },
    Steady {},
    NotSteady {
        reason: String,
    },
    NotRecovered {
        reason: String,
    },
    Integrity {
        db: String,
        result: String,
    },
    DataDir {
        path: String,
        files: Vec<String>,
    },
    Interrupted {},
    RunEnding {
        reason: String,
    },
    ReportFailed {
        error: String,
    },
    /// A partial report of a long run was rebuilt: every assertion as it
    /// stands, so `/metrics` shows them mid-run and the journal keeps when
    /// each first failed.
    VerdictsSoFar {
        assertions: Vec<VerdictSoFar>,
    },
    /// A scheduled fault that could not land: its target was down past the
    /// wait, or its incarnation went away. A soak goes on without it.
    FaultSkipped {
        step: usize,
        action: String,
        reason: String,
    },

    // A service's own metrics (the event's service is the scraped one).
    /// A scrape failed (unreachable, timed out, garbage, too large); journaled
    /// when scraping goes from working to failing, not at every sample.
    MetricsScrapeFailed {
        incarnation: i64,
        url: String,
        error: String,
    },
    MetricsScrapeRecovered {
        incarnation: i64,
    },
    /// A `keep` selector matched more series than the cap; the rest were dropped.
    MetricsCapped {
        incarnation: i64,
        selector: String,
        cap: usize,
    },
    /// A `keep` selector matched no series of a successful scrape.
    MetricsMissing {
        incarnation: i64,
        selector: String,
    },

    // Links (the event's service is the link's name).
    /// The proxy of `[links.NAME]` listens on `listen` and forwards to `to`.
    LinkUp {
        listen: String,
        to: String,
    },

    /// A row this version cannot read (a kind it does not know, or fields
    /// it does not expect, e.g. from another soak version). Never written;
    /// judged as missing evidence. `why` is serde's complaint.
    #[serde(skip)]
    Unreadable {
        why: String,
    },
}

/// What a fault did, by action; only the keys of the action are present.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultParams {
    /// kill: the signal; stop: the service's stop signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// kill, hang: `main` or `group`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Value>,
    /// kill, hang: the processes signalled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<Vec<i32>>,
    /// hang, fd-exhaustion, sqlite-lock: how long it is held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_ms: Option<u64>,
    /// fd-exhaustion: the process; duplicate: the duplicate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// fd-exhaustion: fds open, soft limit before and after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_before: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft: Option<u64>,
    /// sqlite-lock: the database and the lock mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Value>,
    /// duplicate: the duplicate's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// stop: the grace before SIGKILL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_ms: Option<u64>,
}

/// What a rollback undid, by action; only the keys of the action are present.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultUndone {
    /// hang: the processes sent SIGCONT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continued: Option<Vec<i32>>,
    /// fd-exhaustion: the process, its restored soft limit, and whether it
    /// was still there to restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_soft: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_alive: Option<bool>,
}

impl Event {
    /// Reads one `events` row; never fails (see [`Event::Unreadable`]).
    pub fn parse(kind: &str, detail: Value) -> (Event, Value) {
        let mut pair = serde_json::json!({ "kind": kind, "detail": detail });
        let event = Event::deserialize(&pair).unwrap_or_else(|e| Event::Unreadable {
            why: format!("{kind}: {e}"),
        });
        (event, pair["detail"].take())
    }

    /// The row this event is written as: (`kind`, `detail`).
    pub fn to_row(&self) -> (String, Value) {
        match serde_json::to_value(self) {
            Ok(Value::Object(mut m)) => {
                let kind = match m.remove("kind") {
                    Some(Value::String(k)) => k,
                    _ => "unreadable".into(),
                };
                (kind, m.remove("detail").unwrap_or(Value::Null))
            }
            // Only Unreadable cannot serialize, and it is never written.
            _ => ("unreadable".into(), Value::Null),
        }
    }
}
