//! `soak analyze`: the trend detector on one series, from a CSV or a journal.

use crate::verdict::trend::{self, Decision, Metric, Params};
use std::path::Path;
use std::time::Duration;

/// Reads `time,value` lines; a header line and blank lines are skipped.
/// Times below 1e11 are taken as seconds (a year of ms is above it).
pub fn parse_csv(text: &str) -> Result<Vec<(i64, f64)>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut cols = line.split([',', ';', '\t']).map(str::trim);
        let (Some(t), Some(v)) = (cols.next(), cols.next()) else {
            return Err(format!("line {}: expected time,value", n + 1));
        };
        match (t.parse::<f64>(), v.parse::<f64>()) {
            (Ok(t), Ok(v)) if t.is_finite() => {
                let ms = if t.abs() < 1e11 { t * 1000.0 } else { t };
                out.push((ms as i64, v));
            }
            _ if n == 0 => continue,
            _ => return Err(format!("line {}: `{line}` is not two numbers", n + 1)),
        }
    }
    Ok(out)
}

fn segments_from(
    path: &Path,
    service: Option<&str>,
    metric: Metric,
) -> Result<Vec<Vec<(i64, f64)>>, String> {
    let is_csv = path.extension().is_some_and(|e| e == "csv");
    if is_csv {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        return Ok(vec![parse_csv(&text)?]);
    }
    let service = service.ok_or("a journal needs --service NAME")?;
    // One incarnation's samples at a time, as the verdicts read them.
    let data = crate::journal::RunData::open(path).map_err(|e| e.to_string())?;
    let ids: Vec<i64> = data
        .incarnations
        .iter()
        .filter(|i| i.service == service)
        .map(|i| i.id)
        .collect();
    if ids.is_empty() {
        let known: Vec<&str> = data
            .incarnations
            .iter()
            .map(|i| i.service.as_str())
            .collect();
        return Err(format!(
            "no service `{service}` in this journal; {}",
            crate::config::suggest(service, &known, "service")
        ));
    }
    ids.iter()
        .map(|id| {
            let rows = data.samples_of(*id).map_err(|e| e.to_string())?;
            Ok(rows
                .iter()
                .map(|s| {
                    let v = match metric {
                        Metric::Rss => s.rss_bytes as f64,
                        Metric::Fds => s.fds as f64,
                        Metric::Threads => s.threads as f64,
                    };
                    (s.ts, v)
                })
                .collect())
        })
        .collect()
}

pub fn run(
    path: &Path,
    service: Option<&str>,
    metric: Metric,
    limit: f64,
    warmup: Duration,
    min_span: Duration,
) -> Result<Decision, String> {
    let segments = segments_from(path, service, metric)?;
    let mut p = Params::new(metric, limit);
    p.warmup_ms = warmup.as_millis() as i64;
    p.min_span_ms = min_span.as_millis() as i64;
    let refs: Vec<&[(i64, f64)]> = segments.iter().map(Vec::as_slice).collect();
    let t = trend::judge_segments(&refs, &p);
    let (scale, unit) = if metric == Metric::Rss {
        (1_048_576.0, "MB/h")
    } else {
        (1.0, "/h")
    };
    println!(
        "points:     {} over {}",
        t.points,
        crate::clock::human(Duration::from_millis(t.span_ms.max(0) as u64))
    );
    println!("slope:      {:.3} {unit}", t.slope_per_hour / scale);
    println!(
        "confidence: {:.0}% interval {:.3} .. {:.3} {unit}, p = {:.4}",
        (1.0 - p.alpha) * 100.0,
        t.ci_per_hour.0 / scale,
        t.ci_per_hour.1 / scale,
        t.p_value
    );
    if let Some(ms) = t.projected_limit_ms {
        println!(
            "projection: limit reached in {}",
            crate::clock::human(Duration::from_millis(ms.max(0) as u64))
        );
    }
    println!(
        "verdict:    {}",
        match t.decision {
            Decision::Pass => "PASS",
            Decision::Fail => "FAIL",
            Decision::Unknown => "UNKNOWN",
        }
    );
    println!("{}", t.reason);
    Ok(t.decision)
}

#[cfg(test)]
mod tests {
    use super::parse_csv;
    use proptest::prelude::*;

    #[test]
    fn csv_with_a_header_and_seconds_parses_to_ms() {
        let s = parse_csv("time,rss\n0,100\n1.5,200\n").unwrap();
        assert_eq!(s, vec![(0, 100.0), (1500, 200.0)]);
        assert!(parse_csv("0,1\nx,y\n").is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_csv_never_panics(s in "\\\\PC{0,200}") {
            let _ = parse_csv(&s);
        }
    }
}
