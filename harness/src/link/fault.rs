//! What a link fault is, and what the faults active at one moment do to the
//! bytes of one direction. Pure: no sockets, no clocks.

use serde::Serialize;
use std::fmt;
use std::time::Duration;

/// Which stream of a connection a fault acts on: upstream is client →
/// target (requests), downstream is target → client (answers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    Both,
    Upstream,
    Downstream,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Both => "both",
            Direction::Upstream => "upstream",
            Direction::Downstream => "downstream",
        }
    }

    /// True when a fault set for `self` acts on the stream `way`.
    pub(super) fn covers(self, way: Way) -> bool {
        matches!(
            (self, way),
            (Direction::Both, _)
                | (Direction::Upstream, Way::Up)
                | (Direction::Downstream, Way::Down)
        )
    }
}

/// One stream of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Way {
    Up,
    Down,
}

/// One fault a link can carry. Several may be active at once; they compose
/// (two latencies add up, the slowest bandwidth wins).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "fault", rename_all = "kebab-case")]
pub enum Fault {
    /// Every chunk is held `delay` (± a uniform `jitter`) before it is
    /// passed on; chunks keep their order.
    Latency {
        #[serde(rename = "delay_ms", serialize_with = "millis")]
        delay: Duration,
        #[serde(rename = "jitter_ms", serialize_with = "millis")]
        jitter: Duration,
        direction: Direction,
    },
    /// Data is read and thrown away: the client's connection stays open and
    /// nothing answers (a hung dependency). Swallowed bytes are gone for
    /// good; bytes sent after the fault is removed flow again.
    Blackhole { direction: Direction },
    /// Every open connection is reset (RST) when the fault is added, and
    /// every new one as soon as it is accepted: the client sees ECONNRESET.
    Reset,
    /// The proxy stops listening: new clients see ECONNREFUSED. Open
    /// connections are left alone (add `Reset` too for a dependency that
    /// died). Removing it listens again on the same port.
    Refuse,
    /// Each connection's stream carries at most `rate` bytes per second.
    Bandwidth { rate: u64, direction: Direction },
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Fault {
    /// The action name, as scenario files spell it.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Latency { .. } => "latency",
            Fault::Blackhole { .. } => "blackhole",
            Fault::Reset => "reset",
            Fault::Refuse => "refuse",
            Fault::Bandwidth { .. } => "bandwidth",
        }
    }

    /// The stream the fault acts on; `None` for the faults that act on
    /// whole connections (`Reset`, `Refuse`).
    pub fn direction(&self) -> Option<Direction> {
        match self {
            Fault::Latency { direction, .. }
            | Fault::Blackhole { direction }
            | Fault::Bandwidth { direction, .. } => Some(*direction),
            Fault::Reset | Fault::Refuse => None,
        }
    }

    pub(super) fn check(&self) -> Result<(), String> {
        match self {
            Fault::Bandwidth { rate: 0, .. } => {
                Err("bandwidth rate must be at least 1 byte/s (use blackhole to stop data)".into())
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Latency { delay, jitter, .. } if jitter.is_zero() => {
                write!(f, "latency {delay:?}")?
            }
            Fault::Latency { delay, jitter, .. } => write!(f, "latency {delay:?} ± {jitter:?}")?,
            Fault::Bandwidth { rate, .. } => write!(f, "bandwidth {rate} B/s")?,
            other => f.write_str(other.name())?,
        }
        match self.direction() {
            Some(Direction::Both) | None => Ok(()),
            Some(d) => write!(f, " {}", d.name()),
        }
    }
}

/// What the active faults do to one stream, summed up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Effects {
    pub blackhole: bool,
    pub delay: Duration,
    pub jitter: Duration,
    /// Bytes per second; `None` for no cap.
    pub rate: Option<u64>,
}

impl Effects {
    pub fn of<'a>(faults: impl IntoIterator<Item = &'a Fault>, way: Way) -> Effects {
        let mut e = Effects::default();
        for fault in faults {
            if !fault.direction().is_some_and(|d| d.covers(way)) {
                continue;
            }
            match fault {
                Fault::Latency { delay, jitter, .. } => {
                    e.delay += *delay;
                    e.jitter += *jitter;
                }
                Fault::Blackhole { .. } => e.blackhole = true,
                Fault::Bandwidth { rate, .. } => {
                    e.rate = Some(e.rate.map_or(*rate, |r| r.min(*rate)));
                }
                Fault::Reset | Fault::Refuse => {}
            }
        }
        e
    }

    /// The hold for one chunk: `delay` ± `jitter`, drawn from `unit`, a
    /// number in [0, 1).
    pub fn hold(&self, unit: f64) -> Duration {
        if self.jitter.is_zero() {
            return self.delay;
        }
        let offset = self.jitter.mul_f64(2.0 * unit);
        (self.delay + offset).saturating_sub(self.jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn faults_act_only_on_the_streams_their_direction_names() {
        let faults = [
            Fault::Latency {
                delay: ms(100),
                jitter: ms(0),
                direction: Direction::Upstream,
            },
            Fault::Blackhole {
                direction: Direction::Downstream,
            },
            Fault::Reset,
        ];
        let up = Effects::of(&faults, Way::Up);
        let down = Effects::of(&faults, Way::Down);
        assert_eq!((up.delay, up.blackhole), (ms(100), false));
        assert_eq!((down.delay, down.blackhole), (ms(0), true));
    }

    #[test]
    fn latencies_add_up_and_the_slowest_bandwidth_wins() {
        let faults = [
            Fault::Latency {
                delay: ms(100),
                jitter: ms(10),
                direction: Direction::Both,
            },
            Fault::Latency {
                delay: ms(50),
                jitter: ms(0),
                direction: Direction::Downstream,
            },
            Fault::Bandwidth {
                rate: 1000,
                direction: Direction::Both,
            },
            Fault::Bandwidth {
                rate: 300,
                direction: Direction::Downstream,
            },
        ];
        let down = Effects::of(&faults, Way::Down);
        assert_eq!(
            (down.delay, down.jitter, down.rate),
            (ms(150), ms(10), Some(300))
        );
        assert_eq!(Effects::of(&faults, Way::Up).rate, Some(1000));
        assert_eq!(Effects::of(&[], Way::Up), Effects::default());
    }

    #[test]
    fn jitter_spreads_the_hold_around_the_delay_and_never_below_zero() {
        let e = Effects {
            delay: ms(100),
            jitter: ms(20),
            ..Effects::default()
        };
        assert_eq!(e.hold(0.0), ms(80));
        assert_eq!(e.hold(0.5), ms(100));
        assert!(e.hold(0.999) < ms(120) && e.hold(0.999) > ms(119));
        let wide = Effects {
            delay: ms(10),
            jitter: ms(50),
            ..Effects::default()
        };
        assert_eq!(wide.hold(0.0), ms(0));
    }

    #[test]
    fn faults_read_as_a_person_says_them() {
        let latency = Fault::Latency {
            delay: ms(200),
            jitter: ms(0),
            direction: Direction::Upstream,
        };
        assert_eq!(latency.to_string(), "latency 200ms upstream");
        let bw = Fault::Bandwidth {
            rate: 10240,
            direction: Direction::Both,
        };
        assert_eq!(bw.to_string(), "bandwidth 10240 B/s");
        assert_eq!(Fault::Refuse.to_string(), "refuse");
        assert_eq!(
            serde_json::to_value(&latency).unwrap(),
            serde_json::json!({"fault": "latency", "delay_ms": 200, "jitter_ms": 0, "direction": "upstream"})
        );
        assert!(bw.check().is_ok());
        assert!(
            Fault::Bandwidth {
                rate: 0,
                direction: Direction::Both
            }
            .check()
            .is_err()
        );
    }
}
