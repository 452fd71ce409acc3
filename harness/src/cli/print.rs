//! What soak prints: event lines as they happen, a long run's progress,
//! the verdict table, `soak up`'s summary, with colour on a terminal only.

use super::exposed::feed;
use crate::clock::{human, now_ms, rfc3339_ms};
use crate::journal;
use crate::metrics::Exposition;
use crate::record::{Note, Severity};
use crate::verdict::Verdict;
use std::io::IsTerminal;
use std::time::Duration;

/// Prints events as lines. For a long run (`total` set) it also shows
/// progress: a bar redrawn in place on a terminal, a plain line every
/// minute otherwise.
/// With `exposition`, every note also updates soak's `/metrics`: this is
/// the one place the page is fed from.
pub(super) async fn print_notes(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Note>,
    style: Style,
    total: Option<Duration>,
    exposition: Option<std::sync::Arc<Exposition>>,
) {
    let started = std::time::Instant::now();
    let mut last_plain = started;
    let mut bar_shown = false;
    while let Some(n) = rx.recv().await {
        if let Some(e) = &exposition {
            feed(e, &n);
        }
        let Some(text) = &n.text else { continue };
        if n.kind == "progress" {
            let Some(total) = total else { continue };
            let line = progress_line(started.elapsed(), total, text);
            if style.colour {
                print!("\r\x1b[2K{}", style.dim(&line));
                let _ = std::io::Write::flush(&mut std::io::stdout());
                bar_shown = true;
            } else if last_plain.elapsed() >= Duration::from_secs(60) {
                println!("{} {:<12} {line}", &rfc3339_ms(n.ts)[11..23], "progress");
                last_plain = std::time::Instant::now();
            }
            continue;
        }
        if bar_shown {
            print!("\r\x1b[2K");
            bar_shown = false;
        }
        let time = &rfc3339_ms(n.ts)[11..23];
        let service = n.service.as_deref().unwrap_or("soak");
        println!(
            "{} {:<12} {}",
            style.dim(time),
            style.bold(service),
            style.severity(n.severity, text)
        );
    }
    if bar_shown {
        println!();
    }
}

/// The assertions, then the verdict line. An inconclusive run (exit 3) says
/// so, with why, whatever its assertions say: a run that never got going is
/// not a FAIL of the service.
pub(super) fn print_verdict(r: &crate::report::Report, inconclusive: Option<&str>, style: Style) {
    println!();
    for a in &r.assertions {
        let (mark, sev) = match a.verdict {
            Verdict::Pass => ("PASS", Severity::Good),
            Verdict::Fail => ("FAIL", Severity::Bad),
            Verdict::Unknown => ("UNKNOWN", Severity::Warn),
        };
        let name = match &a.service {
            Some(s) => format!("{} [{s}]", a.name),
            None => a.name.clone(),
        };
        println!(
            "{} {:<34} {}",
            style.severity(sev, &format!("{mark:<7}")),
            name,
            a.reason
        );
    }
    let (word, sev) = match (r.interrupted, inconclusive, r.verdict) {
        (true, _, _) => ("INTERRUPTED".to_string(), Severity::Warn),
        (_, Some(why), _) => (format!("INCONCLUSIVE ({why})"), Severity::Warn),
        (_, _, Verdict::Pass) => ("PASS".to_string(), Severity::Good),
        (_, _, Verdict::Fail) => ("FAIL".to_string(), Severity::Bad),
        (_, _, Verdict::Unknown) => ("UNKNOWN".to_string(), Severity::Warn),
    };
    println!(
        "{}",
        style.severity(sev, &style.bold(&format!("verdict: {word}")))
    );
}

/// `[######----]  30% 1 h 5 min of 72 h 0 min, ETA 70 h 55 min | gateway 12 MB 14 fds`
pub fn progress_line(elapsed: Duration, total: Duration, figures: &str) -> String {
    let frac = (elapsed.as_secs_f64() / total.as_secs_f64().max(1e-9)).clamp(0.0, 1.0);
    let filled = (frac * 20.0).round() as usize;
    format!(
        "[{}{}] {:>3.0}% {} of {}, ETA {} | {figures}",
        "#".repeat(filled),
        "-".repeat(20 - filled),
        frac * 100.0,
        human(elapsed),
        human(total),
        human(total.saturating_sub(elapsed))
    )
}

pub(super) fn print_summary(data: &journal::RunData, style: Style) {
    let summary = crate::report::summarize(data);
    println!();
    println!(
        "{}",
        style.bold(&format!(
            "{:<14} {:>12} {:>9} {:>11} {:>7}  last exit",
            "service", "incarnations", "planned", "unplanned", "orphans"
        ))
    );
    for (name, s) in &summary {
        println!(
            "{:<14} {:>12} {:>9} {:>11} {:>7}  {}",
            name,
            s.incarnations,
            s.restarts.planned,
            s.restarts.unplanned,
            s.orphans,
            s.last_exit.as_deref().unwrap_or("-")
        );
    }
    if let Some(run) = &data.run {
        let took = run.ended_at.unwrap_or_else(now_ms) - run.started_at;
        println!(
            "{}",
            style.dim(&format!(
                "ran {}",
                human(Duration::from_millis(took.max(0) as u64))
            ))
        );
    }
}

/// Colour on a terminal; plain when piped, with --plain, or with NO_COLOR.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    colour: bool,
}

impl Style {
    pub fn detect(plain: bool) -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            colour: !plain && !no_color && std::io::stdout().is_terminal(),
        }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    pub fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }

    pub fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }

    pub fn severity(&self, sev: Severity, s: &str) -> String {
        match sev {
            Severity::Info => s.to_string(),
            Severity::Good => self.paint("32", s),
            Severity::Warn => self.paint("33", s),
            Severity::Bad => self.paint("31", s),
        }
    }
}
