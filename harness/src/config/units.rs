//! The value types users write as strings: durations ("100ms", "2h"), sizes
//! ("10MB"), rates ("20/s"), percentages ("99.9%") and signal names ("TERM").
//!
//! Each parses with an error that says what a right value looks like, and each
//! deserializes through that parser so the TOML error carries the value's span.

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::time::Duration;

/// A parse failure; the message is shown to the user under the offending value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitError(pub String);

impl fmt::Display for UnitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn split_number(s: &str) -> Option<(f64, &str)> {
    let s = s.trim();
    let end = s
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    let n: f64 = s[..end].parse().ok()?;
    n.is_finite().then_some((n, s[end..].trim()))
}

/// Parses "250ms", "5s", "1.5m", "2h", "3d". A bare "0" is zero.
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    let bad = || {
        UnitError(format!(
            "invalid duration `{s}`: write a number and a unit (ms, s, m, h, d), e.g. \"500ms\", \"5s\", \"2h\""
        ))
    };
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    let (n, unit) = split_number(s).ok_or_else(bad)?;
    let ms_per_unit = match unit {
        "ms" => 1.0,
        "s" => 1e3,
        "m" | "min" => 60e3,
        "h" => 3600e3,
        "d" => 86_400e3,
        _ => return Err(bad()),
    };
    let ms = n * ms_per_unit;
    // A year is far beyond any run; larger values are typos, not intentions.
    if ms > 366.0 * 86_400e3 {
        return Err(UnitError(format!("duration `{s}` is longer than a year")));
    }
    Ok(Duration::from_micros((ms * 1e3).round() as u64))
}

/// Parses "512B", "64KB", "10MB", "1.5GB". Units are binary (1 MB = 1024 KB),
/// the way RSS is usually read.
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let bad = || {
        UnitError(format!(
            "invalid size `{s}`: write a number and a unit (B, KB, MB, GB), e.g. \"10MB\""
        ))
    };
    let (n, unit) = split_number(s).ok_or_else(bad)?;
    let mult = match unit.to_ascii_uppercase().as_str() {
        "B" | "" => 1.0,
        "KB" | "KIB" | "K" => 1024.0,
        "MB" | "MIB" | "M" => 1024.0 * 1024.0,
        "GB" | "GIB" | "G" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let v = n * mult;
    if v > 1e18 {
        return Err(UnitError(format!("size `{s}` is too large")));
    }
    Ok(v as u64)
}

/// Parses "20/s", "5/m", "100/h": requests per second.
pub fn parse_rate(s: &str) -> Result<f64, UnitError> {
    let bad = || {
        UnitError(format!(
            "invalid rate `{s}`: write a count per unit of time, e.g. \"20/s\", \"30/m\""
        ))
    };
    let (count, per) = s.split_once('/').ok_or_else(bad)?;
    let (n, rest) = split_number(count).ok_or_else(bad)?;
    if !rest.is_empty() {
        return Err(bad());
    }
    let secs = match per.trim() {
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    let rate = n / secs;
    if rate <= 0.0 || rate > 100_000.0 {
        return Err(UnitError(format!(
            "rate `{s}` must be above zero and at most 100000/s"
        )));
    }
    Ok(rate)
}

/// Parses "99.9%" into 0.999.
pub fn parse_percent(s: &str) -> Result<f64, UnitError> {
    let bad = || UnitError(format!("invalid percentage `{s}`: write e.g. \"99.9%\""));
    let num = s.trim().strip_suffix('%').ok_or_else(bad)?;
    let (n, rest) = split_number(num).ok_or_else(bad)?;
    if !rest.is_empty() || n > 100.0 {
        return Err(bad());
    }
    Ok(n / 100.0)
}

fn per_hour(unit: &str) -> Option<f64> {
    match unit.trim() {
        "s" => Some(3600.0),
        "m" | "min" => Some(60.0),
        "h" => Some(1.0),
        "d" => Some(1.0 / 24.0),
        _ => None,
    }
}

/// Parses "10MB/h" or "1MB/min" into bytes per hour.
pub fn parse_size_rate(s: &str) -> Result<f64, UnitError> {
    let bad = || {
        UnitError(format!(
            "invalid rate `{s}`: write a size per time, e.g. \"10MB/h\""
        ))
    };
    let (size, per) = s.split_once('/').ok_or_else(bad)?;
    let bytes = parse_size(size).map_err(|_| bad())?;
    Ok(bytes as f64 * per_hour(per).ok_or_else(bad)?)
}

/// Parses "10/h" into a count per hour.
pub fn parse_count_rate(s: &str) -> Result<f64, UnitError> {
    let bad = || {
        UnitError(format!(
            "invalid rate `{s}`: write a count per time, e.g. \"10/h\""
        ))
    };
    let (count, per) = s.split_once('/').ok_or_else(bad)?;
    let (n, rest) = split_number(count).ok_or_else(bad)?;
    if !rest.is_empty() {
        return Err(bad());
    }
    Ok(n * per_hour(per).ok_or_else(bad)?)
}

/// Parses "50%/24h" into (0.5, 24 h).
pub fn parse_growth(s: &str) -> Result<(f64, Duration), UnitError> {
    let bad = || {
        UnitError(format!(
            "invalid growth `{s}`: write a percentage per time, e.g. \"50%/24h\""
        ))
    };
    let (pct, per) = s.split_once('/').ok_or_else(bad)?;
    let frac = parse_percent(pct).map_err(|_| bad())?;
    let per = parse_duration(per).map_err(|_| bad())?;
    if per.is_zero() {
        return Err(bad());
    }
    Ok((frac, per))
}

const SIGNALS: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
    ("TERM", libc::SIGTERM),
    ("STOP", libc::SIGSTOP),
    ("CONT", libc::SIGCONT),
    ("ABRT", libc::SIGABRT),
];

/// Parses "TERM", "SIGTERM" or "15" into a signal number.
pub fn parse_signal(s: &str) -> Result<i32, UnitError> {
    let name = s.trim().to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    if let Some((_, n)) = SIGNALS.iter().find(|(k, _)| *k == name) {
        return Ok(*n);
    }
    if let Ok(n) = name.parse::<i32>()
        && (1..=64).contains(&n)
    {
        return Ok(n);
    }
    let names: Vec<&str> = SIGNALS.iter().map(|(k, _)| *k).collect();
    Err(UnitError(format!(
        "unknown signal `{s}`: use one of {}",
        names.join(", ")
    )))
}

/// The short name of a signal number, for messages ("KILL").
pub fn signal_name(n: i32) -> String {
    SIGNALS
        .iter()
        .find(|(_, v)| *v == n)
        .map(|(k, _)| (*k).to_string())
        .unwrap_or_else(|| n.to_string())
}

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident($inner:ty), $parse:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
        pub struct $name(pub $inner);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $parse(&s).map($name).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_newtype!(
    /// A duration written as a string, e.g. "5s".
    Dur(Duration),
    parse_duration
);
string_newtype!(
    /// A size in bytes written as a string, e.g. "10MB".
    Size(u64),
    parse_size
);
string_newtype!(
    /// Requests per second written as a string, e.g. "20/s".
    Rate(f64),
    parse_rate
);
string_newtype!(
    /// A fraction written as a percentage, e.g. "99.9%".
    Percent(f64),
    parse_percent
);
string_newtype!(
    /// A signal number written as a name, e.g. "TERM".
    Signal(i32),
    parse_signal
);

string_newtype!(
    /// Bytes per hour written as a string, e.g. "10MB/h".
    SizeRate(f64),
    parse_size_rate
);
string_newtype!(
    /// A count per hour written as a string, e.g. "10/h".
    CountRate(f64),
    parse_count_rate
);

/// Relative growth over a period, e.g. "50%/24h".
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Growth {
    pub fraction: f64,
    pub per: Duration,
}

impl<'de> Deserialize<'de> for Growth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_growth(&s)
            .map(|(fraction, per)| Growth { fraction, per })
            .map_err(serde::de::Error::custom)
    }
}

/// A plain number, written as one (`0.1`) or as a string (`"0.1"`), as
/// metric thresholds are.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Number(pub f64);

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            I(i64),
            F(f64),
            S(String),
        }
        let n = match Raw::deserialize(d)? {
            Raw::I(i) => i as f64,
            Raw::F(f) => f,
            Raw::S(s) => s.trim().parse().map_err(|_| {
                serde::de::Error::custom(format!(
                    "`{s}` is not a number: write e.g. \"0.1\" or 100"
                ))
            })?,
        };
        if n.is_finite() {
            Ok(Number(n))
        } else {
            Err(serde::de::Error::custom("the number must be finite"))
        }
    }
}

/// Bytes as a person reads them: "12.3 MB", "4.0 KB", "512 B".
pub fn bytes(b: f64) -> String {
    const MB: f64 = 1024.0 * 1024.0;
    if b.abs() >= MB {
        format!("{:.1} MB", b / MB)
    } else if b.abs() >= 1024.0 {
        format!("{:.1} KB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

impl Dur {
    pub fn ms(self) -> u64 {
        self.0.as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_systemd() {
        assert_eq!(parse_duration("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("5 mins").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn sizes_rates_percents_and_signals_parse() {
        assert_eq!(parse_size("10MB").unwrap(), 10 * 1024 * 1024);
        assert_eq!(parse_rate("20/s").unwrap(), 20.0);
        assert_eq!(parse_rate("30/m").unwrap(), 0.5);
        assert!(parse_rate("0/s").is_err());
        assert!((parse_percent("99.9%").unwrap() - 0.999).abs() < 1e-12);
        assert_eq!(parse_signal("SIGTERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("kill").unwrap(), libc::SIGKILL);
        assert!(parse_signal("TERMINATE").is_err());
        assert_eq!(signal_name(libc::SIGKILL), "KILL");
        assert_eq!(parse_size_rate("1MB/min").unwrap(), 60.0 * 1024.0 * 1024.0);
        assert_eq!(parse_count_rate("10/h").unwrap(), 10.0);
        assert_eq!(
            parse_growth("50%/24h").unwrap(),
            (0.5, Duration::from_secs(86_400))
        );
        assert!(parse_growth("50%/0s").is_err());
    }
}
