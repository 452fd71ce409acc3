//! The host section: the machine's free memory and disk, soak's own RSS,
//! and soak's runtime lag (how late its timers fired). A soak that cannot
//! keep time samples and measures late, so every other figure of the page
//! is read against this one.

use super::chart::{self, MAX_POINTS, Marks, Point, Series, downsample};
use super::{MB, Page};
use std::fmt::Write;

impl Page<'_> {
    pub(super) fn host(&self, h: &mut String) {
        let (samples, lag) = (&self.data.host_samples, &self.data.lag);
        if samples.is_empty() && lag.is_empty() {
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
        if !samples.is_empty() {
            let mem: Vec<Point> = samples
                .iter()
                .map(|s| point(s.ts, s.mem_available_bytes as f64 / MB))
                .collect();
            let soak: Vec<Point> = samples
                .iter()
                .map(|s| point(s.ts, s.soak_rss_bytes as f64 / MB))
                .collect();
            let low = mem.iter().map(|p| p.v).fold(f64::NAN, f64::min);
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
                    points: downsample(&mem, MAX_POINTS),
                }],
                None,
                self.span,
                &marks,
            ));
            let peak = soak.iter().map(|p| p.v).fold(f64::NAN, f64::max);
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
                    points: downsample(&soak, MAX_POINTS),
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
