//! Reading a service's own `/metrics`: one GET under one deadline, a capped
//! body, a strict parse, and only the series the config asked to keep.

use super::parse::{ParseError, Sample, Selector, SelectorError, parse};
use crate::http::{self, HttpError};
use std::time::Duration;

/// Bodies of this size or more are refused rather than parsed: a runaway
/// exposition (a label per request id) must not cost soak memory or time.
/// Exporters with thousands of series stay well below it.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// How many series one selector may keep. A name alone keeps every label
/// set of it; a label holding an id would otherwise grow the journal by one
/// series per request.
pub const DEFAULT_SERIES_CAP: usize = 100;

/// What to keep of a scrape: the validated `keep` selectors and the cap.
#[derive(Debug, Clone, PartialEq)]
pub struct Keep {
    pub selectors: Vec<Selector>,
    pub cap: usize,
}

impl Keep {
    /// Validates every selector up front, so a typo is a config error at
    /// start, not an empty chart after three days.
    pub fn parse<S: AsRef<str>>(selectors: &[S], cap: usize) -> Result<Keep, SelectorError> {
        let selectors = selectors
            .iter()
            .map(|s| Selector::parse(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Keep { selectors, cap })
    }

    /// The kept series of `samples`, each once, in exposition order.
    pub fn select(&self, samples: &[Sample]) -> Scraped {
        let mut kept: Vec<(String, f64)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut counts = vec![0usize; self.selectors.len()];
        let mut capped = Vec::new();
        for s in samples {
            for (i, sel) in self.selectors.iter().enumerate() {
                if !sel.matches(s) {
                    continue;
                }
                if counts[i] >= self.cap {
                    if !capped.contains(&sel.text) {
                        capped.push(sel.text.clone());
                    }
                    continue;
                }
                counts[i] += 1;
                let series = s.series();
                if seen.insert(series.clone()) {
                    kept.push((series, s.value));
                }
                break;
            }
        }
        let missing = self
            .selectors
            .iter()
            .zip(&counts)
            .filter(|(_, n)| **n == 0)
            .filter(|(sel, _)| !capped.contains(&sel.text))
            .map(|(sel, _)| sel.text.clone())
            .collect();
        Scraped {
            series: kept,
            capped,
            missing,
        }
    }
}

/// The outcome of one good scrape.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scraped {
    /// (canonical series name with labels, value), one per kept series.
    pub series: Vec<(String, f64)>,
    /// Selectors that matched more series than the cap; the extra ones
    /// were dropped. Worth a journal event: the service's labels are
    /// unbounded, or the selector is too wide.
    pub capped: Vec<String>,
    /// Selectors that matched nothing in this scrape (not yet created, or
    /// misspelled).
    pub missing: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScrapeError {
    #[error("scrape of {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: HttpError,
    },
    #[error("scrape of {url} timed out after {ms} ms")]
    Timeout { url: String, ms: u64 },
    #[error("scrape of {url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("scrape of {url}: the body reached {limit} bytes; soak reads at most that much")]
    TooLarge { url: String, limit: usize },
    #[error("scrape of {url} is not a Prometheus or OpenMetrics exposition: {source}")]
    Parse {
        url: String,
        #[source]
        source: ParseError,
    },
}

/// Prefer OpenMetrics (it says which series are counters' `_total`), take
/// the classic text format otherwise; the parser reads both.
const ACCEPT: &str =
    "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// GETs `url` and keeps what `keep` selects. Never takes longer than
/// `timeout`, whatever the service does.
pub async fn scrape(url: &str, keep: &Keep, timeout: Duration) -> Result<Scraped, ScrapeError> {
    let ms = timeout.as_millis() as u64;
    let headers = [("Accept".to_string(), ACCEPT.to_string())];
    // http::request has its own deadline; this outer one holds the promise
    // even if that module's internals change.
    let got = tokio::time::timeout(timeout, http::request("GET", url, &headers, None, timeout))
        .await
        .map_err(|_| ScrapeError::Timeout {
            url: url.into(),
            ms,
        })?;
    let response = got.map_err(|source| match source {
        HttpError::Timeout(ms) => ScrapeError::Timeout {
            url: url.into(),
            ms,
        },
        // The client refuses a body past its cap before soak sees it.
        HttpError::BodyTooLarge(limit) => ScrapeError::TooLarge {
            url: url.into(),
            limit,
        },
        source => ScrapeError::Http {
            url: url.into(),
            source,
        },
    })?;
    if response.status != 200 {
        return Err(ScrapeError::Status {
            url: url.into(),
            status: response.status,
        });
    }
    let samples = parse_body(&response.body).map_err(|e| e.at(url))?;
    Ok(keep.select(&samples))
}

/// Errors of a body, before the url is known to them.
#[derive(Debug)]
pub enum BodyError {
    TooLarge,
    Parse(ParseError),
}

impl BodyError {
    fn at(self, url: &str) -> ScrapeError {
        match self {
            BodyError::TooLarge => ScrapeError::TooLarge {
                url: url.into(),
                limit: MAX_BODY_BYTES,
            },
            BodyError::Parse(source) => ScrapeError::Parse {
                url: url.into(),
                source,
            },
        }
    }
}

/// The size check and the parse of a scraped body.
pub fn parse_body(body: &str) -> Result<Vec<Sample>, BodyError> {
    // The http client refuses bodies past its own cap (mapped in scrape);
    // one that reaches ours is refused too, whatever the client's cap.
    if body.len() >= MAX_BODY_BYTES {
        return Err(BodyError::TooLarge);
    }
    parse(body).map_err(BodyError::Parse)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(text: &str) -> Vec<Sample> {
        parse(text).unwrap()
    }

    #[test]
    fn a_name_keeps_every_label_set_and_labels_narrow_it() {
        let keep = Keep::parse(&["queue_depth", r#"in_flight{route="/work"}"#], 10).unwrap();
        let got = keep.select(&samples(
            "queue_depth{q=\"a\"} 1\nqueue_depth{q=\"b\"} 2\nin_flight{route=\"/work\"} 3\nin_flight{route=\"/\"} 4\nother 5\n",
        ));
        assert_eq!(
            got.series,
            vec![
                (r#"queue_depth{q="a"}"#.to_string(), 1.0),
                (r#"queue_depth{q="b"}"#.to_string(), 2.0),
                (r#"in_flight{route="/work"}"#.to_string(), 3.0),
            ]
        );
        assert!(got.capped.is_empty() && got.missing.is_empty());
    }

    #[test]
    fn the_cap_is_reported_and_missing_selectors_are_named() {
        let keep = Keep::parse(&["req", "absent"], 2).unwrap();
        let text: String = (0..5).map(|i| format!("req{{id=\"{i}\"}} {i}\n")).collect();
        let got = keep.select(&samples(&text));
        assert_eq!(got.series.len(), 2);
        assert_eq!(got.capped, vec!["req".to_string()]);
        assert_eq!(got.missing, vec!["absent".to_string()]);
    }

    #[test]
    fn a_series_matched_twice_is_kept_once() {
        let keep = Keep::parse(&["x", r#"x{a="1"}"#], 10).unwrap();
        let got = keep.select(&samples("x{a=\"1\"} 1\n"));
        assert_eq!(got.series.len(), 1);
    }

    #[test]
    fn a_bad_selector_names_itself() {
        let e = Keep::parse(&["ok", "bad{"], 10).unwrap_err();
        assert_eq!(e.text, "bad{");
    }

    #[test]
    fn a_body_at_the_cap_is_too_large() {
        let big = "x 1\n".repeat(MAX_BODY_BYTES / 4);
        assert!(matches!(parse_body(&big), Err(BodyError::TooLarge)));
        assert!(parse_body("x 1\n").is_ok());
    }
}
