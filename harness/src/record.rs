//! Where facts go: every event is written to the journal and, when someone is
//! watching (the console, soak's own `/metrics`), handed over as a [`Note`]
//! carrying the typed [`Event`], so a watcher reads facts, not console text.

use crate::journal::{Event, JournalTx};
use crate::sample::Figures;
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
    /// The console line; None for facts that only feed figures (a quiet
    /// load interval, a sample).
    pub text: Option<String>,
    pub severity: Severity,
    /// The journaled event, typed; None for progress and samples.
    pub event: Option<Event>,
    /// A sampler tick: the service's process tree (`service` set) or soak's
    /// own process (`service` None).
    pub figures: Option<Figures>,
}

/// The journal as a [`Recorder`] holds it: events journaled through it
/// without a console line (`rec.journal.emit`, e.g. a load interval with no
/// failure) still reach the watcher as quiet notes, so the `/metrics` page
/// counts every request, not only those of failing intervals. Everything
/// else is the plain [`JournalTx`].
#[derive(Clone)]
pub struct Journaling {
    tx: JournalTx,
    notes: Option<UnboundedSender<Note>>,
}

impl std::ops::Deref for Journaling {
    type Target = JournalTx;
    fn deref(&self) -> &JournalTx {
        &self.tx
    }
}

impl Journaling {
    /// Journals `event` now; a watcher gets it without a console line.
    pub fn emit(&self, service: Option<&str>, event: &Event) {
        self.tx.emit(service, event);
        send_note(&self.notes, service, event.clone(), None, Severity::Info);
    }
}

fn send_note(
    notes: &Option<UnboundedSender<Note>>,
    service: Option<&str>,
    event: Event,
    text: Option<String>,
    severity: Severity,
) {
    if let Some(notes) = notes {
        let (kind, _) = event.to_row();
        let _ = notes.send(Note {
            ts: crate::clock::now_ms(),
            service: service.map(str::to_string),
            kind,
            text,
            severity,
            event: Some(event),
            figures: None,
        });
    }
}

#[derive(Clone)]
pub struct Recorder {
    pub journal: Journaling,
    notes: Option<UnboundedSender<Note>>,
}

impl Recorder {
    pub fn new(journal: JournalTx, notes: Option<UnboundedSender<Note>>) -> Recorder {
        Recorder {
            journal: Journaling {
                tx: journal,
                notes: notes.clone(),
            },
            notes,
        }
    }

    /// Shows live figures to a watcher without journaling them (the samples
    /// themselves are journaled by the sampler).
    pub fn progress(&self, text: String) {
        if let Some(notes) = &self.notes {
            let _ = notes.send(Note {
                ts: crate::clock::now_ms(),
                service: None,
                kind: "progress".into(),
                text: Some(text),
                severity: Severity::Info,
                event: None,
                figures: None,
            });
        }
    }

    /// Hands one sampler tick to a watcher (the sampler journals it): a
    /// service's process tree, or soak's own process when `service` is None.
    pub fn figures(&self, service: Option<&str>, figures: Figures) {
        if let Some(notes) = &self.notes {
            let _ = notes.send(Note {
                ts: crate::clock::now_ms(),
                service: service.map(str::to_string),
                kind: "sample".into(),
                text: None,
                severity: Severity::Info,
                event: None,
                figures: Some(figures),
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
        self.journal.tx.emit(service, event);
        send_note(
            &self.notes,
            service,
            event.clone(),
            Some(text.into()),
            severity,
        );
    }

    /// Journals `kind` with `detail` and shows `text` to a watcher. Only for
    /// emitters not yet converted to [`Recorder::emit`] (chaos.rs); the
    /// watcher still gets the typed event, read back as the journal would.
    pub fn event(
        &self,
        service: Option<&str>,
        kind: &str,
        detail: serde_json::Value,
        severity: Severity,
        text: impl Into<String>,
    ) {
        self.event_at(
            crate::clock::now_ms(),
            service,
            kind,
            detail,
            severity,
            text,
        );
    }

    /// [`Recorder::event`] for a fact that happened at `ts`.
    pub fn event_at(
        &self,
        ts: i64,
        service: Option<&str>,
        kind: &str,
        detail: serde_json::Value,
        severity: Severity,
        text: impl Into<String>,
    ) {
        let typed = self
            .notes
            .as_ref()
            .map(|_| Event::parse(kind, detail.clone()).0);
        self.journal.tx.event_at(ts, service, kind, detail);
        if let Some(event) = typed {
            send_note(&self.notes, service, event, Some(text.into()), severity);
        }
    }
}
