//! The host section: the machine's free memory and disk, soak's own RSS,
//! and soak's runtime lag (how late its timers fired). A soak that cannot
//! keep time samples and measures late, so every other figure of the page
//! is read against this one.

use super::chart::{self, Downsampler, MAX_POINTS, Marks, Point, Series, downsample};
use super::{MB, Page};
use crate::journal::{JournalError, RunData};
use maud::{Markup, html};

/// The host's memory available and soak's own RSS over time (MB), each
/// downsampled as the journal is read, with the lowest and the highest.
struct HostSeries {
    mem: Vec<Point>,
    soak: Vec<Point>,
    low: f64,
    peak: f64,
}

impl HostSeries {
    /// One pass over the host samples, downsampling as it goes (their
    /// count fixes the buckets). None without host samples.
    fn read(data: &RunData) -> Result<Option<HostSeries>, JournalError> {
        let n = data.host_sample_count()?;
        if n == 0 {
            return Ok(None);
        }
        let (mut mem, mut soak) = (
            Downsampler::new(n, MAX_POINTS),
            Downsampler::new(n, MAX_POINTS),
        );
        let (mut low, mut peak) = (f64::NAN, f64::NAN);
        data.for_each_host_sample(|s| {
            let point = |v| Point {
                t: s.ts as f64,
                v,
                seg: 0,
            };
            let (m, r) = (
                s.mem_available_bytes as f64 / MB,
                s.soak_rss_bytes as f64 / MB,
            );
            (low, peak) = (low.min(m), peak.max(r));
            mem.push(point(m));
            soak.push(point(r));
        })?;
        Ok(Some(HostSeries {
            mem: mem.finish(),
            soak: soak.finish(),
            low,
            peak,
        }))
    }
}

impl Page<'_> {
    pub(super) fn host(&self) -> Markup {
        let (samples, lag) = (HostSeries::read(self.data), &self.data.lag);
        if matches!(samples, Ok(None)) && lag.is_empty() {
            return html! {};
        }
        // Faults are the service sections' story; here only time matters.
        let marks = Marks::default();
        let point = |t: i64, v: f64| Point {
            t: t as f64,
            v,
            seg: 0,
        };
        let p99: Vec<Point> = lag.iter().map(|l| point(l.ts, l.p99_ms)).collect();
        let max: Vec<Point> = lag.iter().map(|l| point(l.ts, l.max_ms)).collect();
        let worst = |pts: &[Point]| pts.iter().map(|p| p.v).fold(f64::NAN, f64::max);
        html! {
            section id="host" {
                h2 { "Host" }
                @match samples {
                    Err(e) => p class="muted" { "The host samples could not be read: " (e.to_string()) },
                    Ok(None) => {}
                    Ok(Some(HostSeries { mem, soak, low, peak })) => {
                        h3 { "Memory available " span class="stat" { (format_args!("lowest {low:.0} MB")) } }
                        (chart::line_chart(
                            "host-mem",
                            "MB",
                            &[Series {
                                name: "available",
                                color: "#3b6ea8",
                                points: mem,
                            }],
                            None,
                            self.span,
                            &marks,
                        ))
                        h3 { "soak's own RSS " span class="stat" { (format_args!("peak {peak:.1} MB")) } }
                        (chart::line_chart(
                            "host-soak",
                            "MB",
                            &[Series {
                                name: "soak RSS",
                                color: "#7a5ea8",
                                points: soak,
                            }],
                            None,
                            self.span,
                            &marks,
                        ))
                    }
                }
                @if lag.is_empty() {
                    p class="muted" { "soak's runtime lag was not recorded in this journal." }
                } @else {
                    h3 {
                        "soak's runtime lag "
                        span class="legend" {
                            i class="k" style="background:#b0663a" {} "p99 "
                            i class="k" style="background:#b3261e" {} "max"
                        }
                        " "
                        span class="stat" {
                            (format_args!("worst p99 {:.1} ms · worst {:.1} ms", worst(&p99), worst(&max)))
                        }
                    }
                    (chart::line_chart(
                        "host-lag",
                        "ms",
                        &[
                            Series {
                                name: "p99",
                                color: "#b0663a",
                                points: downsample(&p99, MAX_POINTS),
                            },
                            Series {
                                name: "max",
                                color: "#b3261e",
                                points: downsample(&max, MAX_POINTS),
                            },
                        ],
                        None,
                        self.span,
                        &marks,
                    ))
                }
            }
        }
    }
}
