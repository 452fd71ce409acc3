//! Where facts go: every event is written to the journal and, when someone is
//! watching (the console of `soak up`), shown as a one-line note.

use crate::journal::{Event, JournalTx};
use tokio::sync::mpsc::UnboundedSender;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Good,
    Warn,
    Bad,
}

#[derive(Debug, Clone)]
pub struct Note {
    pub ts: i64,
    pub service: Option<String>,
    pub kind: String,
    pub text: String,
    pub severity: Severity,
}

#[derive(Clone)]
pub struct Recorder {
    pub journal: JournalTx,
    notes: Option<UnboundedSender<Note>>,
}

impl Recorder {
    pub fn new(journal: JournalTx, notes: Option<UnboundedSender<Note>>) -> Recorder {
        Recorder { journal, notes }
    }

    /// Shows live figures to a watcher without journaling them (the samples
    /// themselves are journaled by the sampler).
    pub fn progress(&self, text: String) {
        if let Some(notes) = &self.notes {
            let _ = notes.send(Note {
                ts: crate::clock::now_ms(),
                service: None,
                kind: "progress".into(),
                text,
                severity: Severity::Info,
            });
        }
    }

    /// Journals `event` and shows `text` to a watcher.
    pub fn emit(
        &self,
        service: Option<&str>,
        event: &Event,
        severity: Severity,
        text: impl Into<String>,
    ) {
        let (kind, detail) = event.to_row();
        self.event(service, &kind, detail, severity, text);
    }

    /// Journals `kind` with `detail` and shows `text` to a watcher. Only for
    /// emitters not yet converted to [`Recorder::emit`] (chaos.rs).
    pub fn event(
        &self,
        service: Option<&str>,
        kind: &str,
        detail: serde_json::Value,
        severity: Severity,
        text: impl Into<String>,
    ) {
        let ts = crate::clock::now_ms();
        self.journal.send(crate::journal::Record::Event {
            ts,
            service: service.map(str::to_string),
            kind: kind.to_string(),
            detail,
        });
        if let Some(notes) = &self.notes {
            let _ = notes.send(Note {
                ts,
                service: service.map(str::to_string),
                kind: kind.to_string(),
                text: text.into(),
                severity,
            });
        }
    }
}
