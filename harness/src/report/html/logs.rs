//! The lines a service logged around an incident, read from its rotated log
//! files (`NAME.log.N` … `NAME.log.1`, `NAME.log`, oldest first), whose
//! lines start with `2026-11-23T00:35:58.123Z out|err|soak `.
//!
//! Each service's files are read once, streaming, whatever the number of
//! incidents: a service that flooded its log (tens of MB) costs one pass,
//! and memory holds only the lines kept.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// Lines kept on each side of an incident.
pub const CONTEXT_LINES: usize = 20;
/// Lines further than this from the incident are not about it.
pub const WINDOW_MS: i64 = 30_000;
/// A flood of one long line must not fill the page.
const MAX_LINE_CHARS: usize = 400;
/// Rotations looked for (`keep` in a service's `logs`).
const MAX_ROTATIONS: u32 = 64;

#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// From the line's stamp; a line without one (the tail of a line cut by
    /// rotation) inherits the previous line's.
    pub ts: Option<i64>,
    /// `out`, `err`, `soak`, or empty when the line had no prefix.
    pub stream: String,
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Excerpt {
    /// Lines before the incident, oldest first.
    pub before: Vec<LogLine>,
    /// Lines at and after it.
    pub after: Vec<LogLine>,
}

/// Why there is no excerpt.
#[derive(Debug, Clone, PartialEq)]
pub enum Missing {
    /// The name cannot be a file name in the logs folder (a path separator,
    /// `..`): never read outside it.
    BadName,
    NoLog,
}

/// The excerpt around each of `times` (any order) in `service`'s logs.
pub fn excerpts(dir: &Path, service: &str, times: &[i64]) -> Result<Vec<Excerpt>, Missing> {
    if service.is_empty()
        || service == "."
        || service == ".."
        || service.contains(['/', '\\', '\0'])
    {
        return Err(Missing::BadName);
    }
    let files = files(dir, service);
    if files.is_empty() {
        return Err(Missing::NoLog);
    }
    let mut order: Vec<usize> = (0..times.len()).collect();
    order.sort_by_key(|&i| times[i]);
    let mut out = vec![Excerpt::default(); times.len()];
    // Incidents whose time has not been reached yet (`order[next..]`), and
    // those collecting their after-lines.
    let mut next = 0;
    let mut collecting: Vec<usize> = Vec::new();
    let mut ring: VecDeque<LogLine> = VecDeque::with_capacity(CONTEXT_LINES + 1);
    let mut last_ts = None;
    for path in files {
        let Ok(file) = File::open(&path) else {
            continue;
        };
        let mut reader = BufReader::new(file);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = parse(&buf, last_ts);
            last_ts = line.ts;
            let ts = line.ts.unwrap_or(i64::MIN);
            while next < order.len() && ts >= times[order[next]] {
                let i = order[next];
                out[i].before = ring
                    .iter()
                    .filter(|l| {
                        l.ts.is_some_and(|t| t >= times[i].saturating_sub(WINDOW_MS))
                    })
                    .cloned()
                    .collect();
                collecting.push(i);
                next += 1;
            }
            collecting.retain(|&i| {
                let keep =
                    out[i].after.len() < CONTEXT_LINES && ts <= times[i].saturating_add(WINDOW_MS);
                if keep {
                    out[i].after.push(line.clone());
                }
                keep
            });
            if next == order.len() && collecting.is_empty() {
                return Ok(out);
            }
            ring.push_back(line);
            if ring.len() > CONTEXT_LINES {
                ring.pop_front();
            }
        }
    }
    // Incidents after the last line: what came before is all there is.
    for &i in &order[next..] {
        out[i].before = ring
            .iter()
            .filter(|l| {
                l.ts.is_some_and(|t| t >= times[i].saturating_sub(WINDOW_MS))
            })
            .cloned()
            .collect();
    }
    Ok(out)
}

/// The log files of `service`, oldest first.
fn files(dir: &Path, service: &str) -> Vec<PathBuf> {
    let current = dir.join(format!("{service}.log"));
    let mut out: Vec<PathBuf> = (1..=MAX_ROTATIONS)
        .map(|n| dir.join(format!("{service}.log.{n}")))
        .take_while(|p| p.is_file())
        .collect();
    out.reverse();
    if current.is_file() {
        out.push(current);
    }
    out
}

fn parse(raw: &[u8], inherit: Option<i64>) -> LogLine {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim_end_matches(['\n', '\r']);
    let stamped = text
        .get(..24)
        .and_then(crate::clock::parse_rfc3339_ms)
        .zip(text.get(25..));
    let (ts, stream, rest) = match stamped {
        Some((ts, rest)) => match rest.split_once(' ') {
            Some((tag @ ("out" | "err" | "soak"), body)) => (Some(ts), tag, body),
            _ => (Some(ts), "", rest),
        },
        None => (inherit, "", text),
    };
    // Control characters (a colour code's ESC, a NUL) shown as U+FFFD:
    // raw, a browser draws nothing or a box, and the page's escaping leaves
    // them as they are.
    let mut body: String = rest
        .chars()
        .take(MAX_LINE_CHARS)
        .map(|c| match c {
            '\t' => c,
            c if c.is_ascii_control() && c != '\x7f' => '\u{FFFD}',
            c => c,
        })
        .collect();
    if rest.chars().nth(MAX_LINE_CHARS).is_some() {
        body.push('…');
    }
    LogLine {
        ts,
        stream: stream.to_string(),
        text: body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::rfc3339_ms;
    use std::fmt::Write;

    const T: i64 = 1_795_392_000_000;

    fn log(lines: impl IntoIterator<Item = (i64, &'static str)>) -> String {
        let mut s = String::new();
        for (t, text) in lines {
            let _ = writeln!(s, "{} err {text}", rfc3339_ms(t));
        }
        s
    }

    #[test]
    fn lines_around_each_incident_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let old = log((0..50).map(|i| (T + i * 100, "old")));
        let new = log((50..100).map(|i| (T + i * 100, "new")));
        std::fs::write(dir.path().join("svc.log.1"), old).unwrap();
        std::fs::write(dir.path().join("svc.log"), new).unwrap();
        let got = excerpts(dir.path(), "svc", &[T + 5_000, T + 1_000]).unwrap();
        // At T+5 s: 20 lines before from the rotated file, 20 from the current.
        assert_eq!(got[0].before.len(), CONTEXT_LINES);
        assert!(got[0].before.iter().all(|l| l.text == "old"));
        assert_eq!(got[0].after.len(), CONTEXT_LINES);
        assert_eq!(got[0].after[0].ts, Some(T + 5_000));
        assert_eq!(got[0].after[0].text, "new");
        // At T+1 s: only the 10 lines that exist before it.
        assert_eq!(got[1].before.len(), 10);
    }

    #[test]
    fn lines_far_from_the_incident_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let text = log([
            (T, "long ago"),
            (T + 100_000, "now"),
            (T + 200_000, "later"),
        ]);
        std::fs::write(dir.path().join("svc.log"), text).unwrap();
        let got = excerpts(dir.path(), "svc", &[T + 100_000, T + 500_000]).unwrap();
        assert_eq!(got[0].before, vec![]);
        assert_eq!(got[0].after.len(), 1);
        assert_eq!(got[1].before, vec![]);
    }

    #[test]
    fn odd_names_and_odd_lines_are_handled() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(excerpts(dir.path(), "../x", &[T]), Err(Missing::BadName));
        assert_eq!(excerpts(dir.path(), "svc", &[T]), Err(Missing::NoLog));
        let mut raw = log([(T, "first")]).into_bytes();
        raw.extend_from_slice(b"continued \xff without a stamp\n");
        raw.extend_from_slice("x".repeat(5000).as_bytes());
        std::fs::write(dir.path().join("svc.log"), raw).unwrap();
        let got = excerpts(dir.path(), "svc", &[T]).unwrap();
        assert_eq!(got[0].after.len(), 3);
        assert_eq!(got[0].after[1].ts, Some(T));
        assert_eq!(got[0].after[1].stream, "");
        assert!(got[0].after[1].text.contains('\u{FFFD}'));
        assert!(got[0].after[2].text.chars().count() <= MAX_LINE_CHARS + 1);
        assert!(got[0].after[2].text.ends_with('…'));
    }

    #[test]
    fn control_characters_are_shown_as_replacement_characters() {
        let dir = tempfile::tempdir().unwrap();
        let raw = log([(T, "\x1b[31mred\x1b[0m\ttabbed\0")]);
        std::fs::write(dir.path().join("svc.log"), raw).unwrap();
        let got = excerpts(dir.path(), "svc", &[T]).unwrap();
        assert_eq!(
            got[0].after[0].text,
            "\u{FFFD}[31mred\u{FFFD}[0m\ttabbed\u{FFFD}"
        );
    }
}
