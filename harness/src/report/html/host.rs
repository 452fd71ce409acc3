//! The host section: the machine's free memory and disk, soak's own RSS,
//! and soak's runtime lag (how late its timers fired). A soak that cannot
//! keep time samples and measures late, so every other figure of the page
//! is read against this one.

use super::chart::{self, Downsampler, MAX_POINTS, Marks, Point, Series, downsample};
use super::{MB, Page, esc};
use crate::journal::{JournalError, RunData};
use std::fmt::Write;

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
    pub(super) fn host(&self, h: &mut String) {
        let (samples, lag) = (HostSeries::read(self.data), &self.data.lag);
        if matches!(samples, Ok(None)) && lag.is_empty() {
            return;
        }
        h.push_str("<section id=\"host\"><h2>Host</h2>");
        // Faults are the service sections' story; here only time matters.
        let marks = Marks::default();
        let point = |t: i64, v: f64| Point {
            t: t as f64,
            v,
            seg: 0,
        };
        if let Err(e) = &samples {
            let _ = write!(
                h,
                "<p class=\"muted\">The host samples could not be read: {}</p>",
                esc(&e.to_string())
            );
        }
        if let Ok(Some(HostSeries {
            mem,
            soak,
            low,
            peak,
        })) = samples
        {
            let _ = write!(
                h,
                "<h3>Memory available <span class=\"stat\">lowest {low:.0} MB</span></h3>"
            );
            h.push_str(&chart::line_chart(
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
            ));
            let _ = write!(
                h,
                "<h3>soak's own RSS <span class=\"stat\">peak {peak:.1} MB</span></h3>"
            );
            h.push_str(&chart::line_chart(
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
            ));
        }
        if lag.is_empty() {
            h.push_str(
                "<p class=\"muted\">soak's runtime lag was not recorded in this journal.</p>",
            );
        } else {
            let p99: Vec<Point> = lag.iter().map(|l| point(l.ts, l.p99_ms)).collect();
            let max: Vec<Point> = lag.iter().map(|l| point(l.ts, l.max_ms)).collect();
            let worst = |pts: &[Point]| pts.iter().map(|p| p.v).fold(f64::NAN, f64::max);
            let _ = write!(
                h,
                "<h3>soak's runtime lag <span class=\"legend\"><i class=\"k\" style=\"background:#b0663a\"></i>p99 <i class=\"k\" style=\"background:#b3261e\"></i>max</span> <span class=\"stat\">worst p99 {:.1} ms · worst {:.1} ms</span></h3>",
                worst(&p99),
                worst(&max)
            );
            h.push_str(&chart::line_chart(
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
            ));
        }
        h.push_str("</section>");
    }
}
