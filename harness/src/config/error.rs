//! Config errors that point at the byte that is wrong: file:line:col, the line
//! itself with a caret, and what would be right.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Boxed: a config error is rare and its `Result`s are everywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(Box<Located>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub file: PathBuf,
    /// 1-based line and column; `None` when the whole file is at fault.
    pub at: Option<(usize, usize)>,
    pub message: String,
    /// The offending line and the caret under it.
    pub snippet: Option<(String, usize, usize)>,
    pub help: Option<String>,
}

impl std::error::Error for ConfigError {}

impl std::ops::Deref for ConfigError {
    type Target = Located;
    fn deref(&self) -> &Located {
        &self.0
    }
}

impl ConfigError {
    pub fn whole_file(file: &Path, message: impl Into<String>, help: Option<String>) -> Self {
        ConfigError(Box::new(Located {
            file: file.to_path_buf(),
            at: None,
            message: message.into(),
            snippet: None,
            help,
        }))
    }

    /// An error at `span` (byte offsets) of `source`.
    pub fn at_span(
        file: &Path,
        source: &str,
        span: Option<Range<usize>>,
        message: impl Into<String>,
        help: Option<String>,
    ) -> Self {
        let Some(span) = span else {
            return Self::whole_file(file, message, help);
        };
        let start = floor_char_boundary(source, span.start.min(source.len()));
        let line_start = source[..start].rfind('\n').map(|i| i + 1).unwrap_or(0);
        let line_end = source[start..]
            .find('\n')
            .map(|i| start + i)
            .unwrap_or(source.len());
        let line_no = source[..start].matches('\n').count() + 1;
        let col = source[line_start..start].chars().count() + 1;
        let text = source[line_start..line_end]
            .trim_end_matches('\r')
            .to_string();
        let end = floor_char_boundary(source, span.end.clamp(start, line_end));
        let width = source[start..end].chars().count().max(1);
        ConfigError(Box::new(Located {
            file: file.to_path_buf(),
            at: Some((line_no, col)),
            message: message.into(),
            snippet: Some((text, col, width)),
            help,
        }))
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        match self.at {
            Some((line, col)) => writeln!(f, "  --> {}:{line}:{col}", self.file.display())?,
            None => writeln!(f, "  --> {}", self.file.display())?,
        }
        if let (Some((text, col, width)), Some((line, _))) = (&self.snippet, self.at) {
            let gutter = line.to_string().len();
            writeln!(f, "{:gutter$} |", "")?;
            writeln!(f, "{line} | {text}")?;
            writeln!(
                f,
                "{:gutter$} | {}{}",
                "",
                " ".repeat(col - 1),
                "^".repeat(*width)
            )?;
        }
        if let Some(help) = &self.help {
            writeln!(f, "  = help: {help}")?;
        }
        Ok(())
    }
}

/// Rewrites serde's "unknown field `x`, expected one of `a`, `b`" into our
/// wording plus a "did you mean" when a known key is close.
pub fn explain_serde_message(message: &str) -> (String, Option<String>) {
    let first_line = message.lines().next().unwrap_or(message).trim();
    if let Some(rest) = first_line.strip_prefix("unknown field `")
        && let Some((field, expected)) = rest.split_once('`')
    {
        let known: Vec<&str> = expected
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s)
            .collect();
        return (
            format!("unknown key `{field}`"),
            Some(suggest(field, &known, "key")),
        );
    }
    if let Some(rest) = first_line.strip_prefix("unknown variant `")
        && let Some((value, expected)) = rest.split_once('`')
    {
        let known: Vec<&str> = expected
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s)
            .collect();
        return (
            format!("unknown value `{value}`"),
            Some(suggest(value, &known, "value")),
        );
    }
    if let Some(rest) = first_line.strip_prefix("missing field `")
        && let Some((field, _)) = rest.split_once('`')
    {
        return (
            format!("missing key `{field}`"),
            Some(format!("add `{field} = ...` to this table")),
        );
    }
    let help = if first_line.ends_with("expected a sequence") {
        Some("write a list, e.g. [\"./server\", \"--port\", \"{port}\"]".to_string())
    } else if first_line.ends_with("expected a string") {
        Some("quote the value, e.g. \"5s\"".to_string())
    } else {
        None
    };
    (first_line.to_string(), help)
}

/// "did you mean `restart_delay`?" when one is close, else the full list.
pub fn suggest(given: &str, known: &[&str], what: &str) -> String {
    let best = known
        .iter()
        .map(|k| (strsim::jaro_winkler(given, k), *k))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((score, k)) if score > 0.8 => format!("did you mean `{k}`?"),
        _ if known.is_empty() => format!("remove this {what}"),
        _ => format!(
            "expected one of {}",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
