//! A strict parser for the Prometheus text exposition format (0.0.4) and
//! OpenMetrics text (1.0): what a service's `/metrics` says, as samples.
//!
//! Written here rather than taken from `prometheus-parse` (0.2.5): that crate
//! splits label sets on `,` and `}` with a regex, so a label value holding
//! either is misread, and it knows nothing of OpenMetrics (`# EOF`,
//! exemplars, `# UNIT`). Strict matters more than lenient for soak: a body
//! that is not an exposition (an HTML error page, a truncated read) must be
//! an error, not a handful of half-parsed series.

use std::fmt::Write as _;

/// One line of an exposition: a series and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    /// In the order the exposition gave them; [`Sample::series`] sorts.
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The canonical name of the series: `name{a="x",b="y"}`, labels sorted
    /// by name, values escaped as in the exposition; `name` alone when it
    /// has no labels. The same series always gives the same string, so it
    /// can key a journal row.
    pub fn series(&self) -> String {
        series_string(&self.name, &self.labels)
    }
}

pub(crate) fn series_string(name: &str, labels: &[(String, String)]) -> String {
    if labels.is_empty() {
        return name.to_string();
    }
    let mut sorted: Vec<&(String, String)> = labels.iter().collect();
    sorted.sort();
    let mut out = String::with_capacity(name.len() + 16 * labels.len());
    out.push_str(name);
    out.push('{');
    for (i, (k, v)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{k}=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    /// 1-based line of the exposition.
    pub line: usize,
    pub reason: String,
}

/// Parses a whole exposition. Any line that is not a comment, a blank line
/// or a well-formed sample makes the whole body an error: a scrape is
/// evidence, and half of a garbled body is not.
pub fn parse(text: &str) -> Result<Vec<Sample>, ParseError> {
    if !text.is_empty() && !text.ends_with('\n') {
        // Both formats end every line with a line feed; a body without one
        // was cut short, and its last sample may be a prefix of the truth.
        return Err(ParseError {
            line: text.lines().count(),
            reason: "the last line has no line feed: the body was cut short".into(),
        });
    }
    let mut out = Vec::new();
    let mut eof = false;
    for (i, line) in text.split_terminator('\n').enumerate() {
        let line_no = i + 1;
        let err = |reason: String| ParseError {
            line: line_no,
            reason,
        };
        if eof {
            return Err(err("text after `# EOF`".into()));
        }
        let line = line.strip_suffix('\r').unwrap_or(line);
        let line = line.trim_start_matches([' ', '\t']);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            if comment.trim_end() == " EOF" {
                eof = true;
            }
            continue;
        }
        out.push(sample(line).map_err(err)?);
    }
    Ok(out)
}

/// A cursor over one line.
struct Line<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Line<'a> {
    fn peek(&self) -> Option<char> {
        self.s[self.at..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, want: char) -> bool {
        if self.peek() == Some(want) {
            self.at += want.len_utf8();
            true
        } else {
            false
        }
    }

    fn spaces(&mut self) -> bool {
        let start = self.at;
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.at += 1;
        }
        self.at > start
    }

    fn word(&mut self) -> &'a str {
        let start = self.at;
        while matches!(self.peek(), Some(c) if c != ' ' && c != '\t') {
            self.bump();
        }
        &self.s[start..self.at]
    }

    fn rest(&self) -> &'a str {
        &self.s[self.at..]
    }
}

fn shown(c: Option<char>) -> String {
    c.map_or_else(|| "end of line".into(), |c| format!("{c:?}"))
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*` for metric names; label names drop the colon.
fn name(l: &mut Line, colon: bool, what: &str) -> Result<String, String> {
    let start = l.at;
    let ok_first = |c: char| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':');
    match l.peek() {
        Some(c) if ok_first(c) => {
            l.bump();
        }
        c => return Err(format!("expected a {what}, found {}", shown(c))),
    }
    while matches!(l.peek(), Some(c) if ok_first(c) || c.is_ascii_digit()) {
        l.bump();
    }
    Ok(l.s[start..l.at].to_string())
}

/// `{k="v",...}` after the opening brace was seen; a trailing comma is allowed.
fn label_set(l: &mut Line) -> Result<Vec<(String, String)>, String> {
    let mut labels: Vec<(String, String)> = Vec::new();
    loop {
        l.spaces();
        if l.eat('}') {
            return Ok(labels);
        }
        let k = name(l, false, "label name")?;
        l.spaces();
        if !l.eat('=') {
            return Err(format!(
                "expected `=` after label `{k}`, found {}",
                shown(l.peek())
            ));
        }
        l.spaces();
        if !l.eat('"') {
            return Err(format!("expected `\"` to open the value of label `{k}`"));
        }
        let mut v = String::new();
        loop {
            match l.bump() {
                None => return Err(format!("the value of label `{k}` is not closed")),
                Some('"') => break,
                Some('\\') => match l.bump() {
                    Some('\\') => v.push('\\'),
                    Some('"') => v.push('"'),
                    Some('n') => v.push('\n'),
                    c => return Err(format!("bad escape `\\{}` in label `{k}`", shown(c))),
                },
                Some(c) => v.push(c),
            }
        }
        if labels.iter().any(|(have, _)| *have == k) {
            return Err(format!("label `{k}` appears twice"));
        }
        labels.push((k, v));
        l.spaces();
        if l.eat(',') {
            continue;
        }
        if l.eat('}') {
            return Ok(labels);
        }
        return Err(format!(
            "expected `,` or `}}` after a label, found {}",
            shown(l.peek())
        ));
    }
}

/// A sample value: a decimal float, `NaN`, `+Inf` or `-Inf`.
pub(crate) fn value(w: &str) -> Result<f64, String> {
    let plain = w
        .strip_prefix(['+', '-'])
        .unwrap_or(w)
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    let special = matches!(
        w.to_ascii_lowercase().as_str(),
        "nan" | "+inf" | "-inf" | "inf"
    );
    // Rust also reads "infinity" and "nan" in any case; the formats do not.
    if !(plain || special) || w.is_empty() {
        return Err(format!("`{w}` is not a number"));
    }
    w.parse::<f64>()
        .map_err(|_| format!("`{w}` is not a number"))
}

fn sample(line: &str) -> Result<Sample, String> {
    let mut l = Line { s: line, at: 0 };
    let metric = name(&mut l, true, "metric name")?;
    let mut spaced = l.spaces();
    let labels = if l.eat('{') {
        let labels = label_set(&mut l)?;
        spaced = l.spaces();
        labels
    } else {
        Vec::new()
    };
    if !spaced {
        return Err(format!(
            "expected a space and a value after `{metric}`, found {}",
            shown(l.peek())
        ));
    }
    let v = value(l.word())?;
    l.spaces();
    let ts = if l.peek() == Some('#') { "" } else { l.word() };
    if !ts.is_empty() && ts.parse::<f64>().is_err() {
        return Err(format!("`{ts}` is not a timestamp"));
    }
    l.spaces();
    let rest = l.rest();
    // OpenMetrics exemplar: ` # {labels} value [timestamp]`; soak keeps only
    // the sample, but the exemplar must still be well formed.
    if let Some(ex) = rest.strip_prefix('#') {
        let mut e = Line { s: ex, at: 0 };
        e.spaces();
        if !e.eat('{') {
            return Err("expected `{` to open an exemplar".into());
        }
        label_set(&mut e)?;
        e.spaces();
        value(e.word())?;
    } else if !rest.is_empty() {
        return Err(format!("unexpected `{rest}` after the value"));
    }
    Ok(Sample {
        name: metric,
        labels,
        value: v,
    })
}

/// A `keep` entry: a metric name alone (every label set of it) or a name
/// with labels a series must carry (`requests{route="/work"}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub text: String,
    pub name: String,
    pub labels: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad metric selector `{text}`: {reason}")]
pub struct SelectorError {
    pub text: String,
    pub reason: String,
}

impl Selector {
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        let err = |reason: String| SelectorError {
            text: text.to_string(),
            reason,
        };
        let mut l = Line {
            s: text.trim(),
            at: 0,
        };
        let metric = name(&mut l, true, "metric name").map_err(err)?;
        l.spaces();
        let labels = if l.eat('{') {
            label_set(&mut l).map_err(err)?
        } else {
            Vec::new()
        };
        l.spaces();
        if !l.rest().is_empty() {
            return Err(err(format!(
                "unexpected `{}`; write name or name{{label=\"value\"}}",
                l.rest()
            )));
        }
        Ok(Selector {
            text: text.to_string(),
            name: metric,
            labels,
        })
    }

    /// Whether a canonical series string (as journaled, see
    /// [`Sample::series`]) is one this selector keeps; for verdicts that
    /// read the journal's `metrics.name`.
    pub fn matches_series(&self, series: &str) -> bool {
        match parse(&format!("{series} 0\n")) {
            Ok(samples) => samples.len() == 1 && self.matches(&samples[0]),
            Err(_) => false,
        }
    }

    /// The series has this name and carries every label of the selector.
    pub fn matches(&self, s: &Sample) -> bool {
        s.name == self.name
            && self
                .labels
                .iter()
                .all(|want| s.labels.iter().any(|have| have == want))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TEXT: &str = r#"# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400"}    3 1395066363000

# Escaping in label values:
msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9

metric_without_timestamp_and_labels 12.47
something_weird{problem="division by zero"} +Inf -3982045
http_request_duration_seconds_bucket{le="+Inf"} 144320
rpc_duration_seconds{quantile="0.5",} 4773
nan_gauge NaN
"#;

    #[test]
    fn the_reference_text_example_parses() {
        let s = parse(TEXT).unwrap();
        assert_eq!(s.len(), 8);
        assert_eq!(
            s[0].series(),
            r#"http_requests_total{code="200",method="post"}"#
        );
        assert_eq!(s[1].value, 3.0);
        assert_eq!(
            s[2].labels[1].1, "Cannot find file:\n\"FILE.TXT\"",
            "escapes are undone"
        );
        assert_eq!(
            s[2].series(),
            r#"msdos_file_access_time_seconds{error="Cannot find file:\n\"FILE.TXT\"",path="C:\\DIR\\FILE.TXT"}"#
        );
        assert_eq!(s[3].series(), "metric_without_timestamp_and_labels");
        assert_eq!(s[4].value, f64::INFINITY);
        assert_eq!(s[6].labels, vec![("quantile".into(), "0.5".into())]);
        assert!(s[7].value.is_nan());
    }

    #[test]
    fn openmetrics_with_units_exemplars_and_eof_parses() {
        let om = "# TYPE jobs counter\n# UNIT lat seconds\njobs_total{kind=\"a\"} 3.0 # {trace_id=\"x\"} 1.0 1.5e9\njobs_created{kind=\"a\"} 1.7e9\n# EOF\n";
        let s = parse(om).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].series().as_str(), s[0].value),
            (r#"jobs_total{kind="a"}"#, 3.0)
        );
    }

    #[test]
    fn garbage_is_an_error_with_its_line() {
        let html = "<html><body>502 Bad Gateway</body></html>\n";
        assert_eq!(parse(html).unwrap_err().line, 1);
        let cases = [
            "ok 1\nbad{ 2\n",
            "ok 1\nx{a=\"1\" b=\"2\"} 3\n",
            "x{a=\"1\",a=\"2\"} 3\n",
            "x 1 2 3\n",
            "x infinity\n",
            "x 0x10\n",
            "x{a=\"\\q\"} 1\n",
            "x 1\n# EOF\ny 2\n",
            "x 1",
            "x\n",
        ];
        for c in cases {
            assert!(parse(c).is_err(), "{c:?} must not parse");
        }
        assert_eq!(parse("ok 1\nbad{ 2\n").unwrap_err().line, 2);
    }

    #[test]
    fn selectors_parse_match_and_name_themselves_when_bad() {
        let s = Selector::parse(r#"http_requests_in_flight{route="/work"}"#).unwrap();
        let hit = parse("http_requests_in_flight{route=\"/work\",pod=\"a\"} 2\n").unwrap();
        let miss = parse("http_requests_in_flight{route=\"/\"} 2\n").unwrap();
        assert!(s.matches(&hit[0]));
        assert!(!s.matches(&miss[0]));
        assert!(!Selector::parse("queue_depth").unwrap().matches(&miss[0]));
        assert!(s.matches_series(&hit[0].series()));
        assert!(!s.matches_series(&miss[0].series()));
        assert!(!s.matches_series("not a series"));
        for bad in ["", "9lives", "q{route=/work}", "q{route=\"x\"} extra", "q{"] {
            let e = Selector::parse(bad).unwrap_err();
            assert!(e.to_string().contains(&format!("`{bad}`")), "{e}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let _ = parse(&text);
            let _ = Selector::parse(&text);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&String::from_utf8_lossy(&data));
        }

        #[test]
        fn a_written_series_reads_back_as_itself(
            name in "[a-zA-Z_:][a-zA-Z0-9_:]{0,12}",
            labels in proptest::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,8}", "\\PC{0,12}", 0..4),
            v in any::<f64>().prop_filter("finite", |v| v.is_finite()),
        ) {
            let labels: Vec<(String, String)> = labels.into_iter().collect();
            let series = series_string(&name, &labels);
            let parsed = parse(&format!("{series} {v}\n")).unwrap();
            prop_assert_eq!(parsed.len(), 1);
            prop_assert_eq!(parsed[0].series(), series);
            prop_assert_eq!(parsed[0].value, v);
        }
    }
}
