//! Labelled synthetic RSS traces for measuring leak detectors.
//!
//! Every trace is a baseline plus measurement noise (white) plus a slow
//! AR(1) wander, because real RSS is never flat to the byte and its noise is
//! autocorrelated at the 5 s sampling soak uses: a detector that only copes
//! with white noise would look better here than in the field. On top come the
//! shapes healthy services show (GC sawtooth with jittered periods, warm-up
//! steps, exponential cache fill) and the one they must not (a linear leak).
//! Values are bytes, times ms since the epoch, 1 MB = 10⁶ bytes. Seeded and
//! dependency-free so a bench reproduces the same traces everywhere.

#[path = "../shared/rng.rs"]
mod rng;

pub use rng::SplitMix64;

pub const MB: f64 = 1e6;
pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 60 * MINUTE_MS;

/// 2023-11-14T22:13:20Z, so timestamps look like the journal's.
const EPOCH_MS: i64 = 1_700_000_000_000;

/// What a trace does besides noise. Rates in bytes per hour, sizes in bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    Flat,
    /// GC-like ramp to `amplitude` then drop, each cycle's period within
    /// ±15 % of `period_ms`, random phase.
    Sawtooth {
        period_ms: i64,
        amplitude: f64,
    },
    /// One to four steps of 5–60 MB, each ramped over 10–60 s, at random
    /// times in the first 30 min (so some land after a 5 min warm-up).
    WarmupSteps,
    /// Cache fill 20–150 MB approaching its size as 1 − e^(−t/τ), τ 1–6 min.
    CacheFill,
    Leak {
        per_hour: f64,
    },
    LeakSawtooth {
        per_hour: f64,
        period_ms: i64,
        amplitude: f64,
    },
    /// Restarts every 45–90 min; each incarnation starts again from the
    /// baseline, fills a cache (τ 1–3 min), saws 10 MB every ~2 min and
    /// leaks at `per_hour`.
    Restarts {
        per_hour: f64,
    },
}

impl Shape {
    /// The label: the true leak rate in bytes per hour, 0 for healthy shapes.
    pub fn leak_per_hour(self) -> f64 {
        match self {
            Shape::Leak { per_hour }
            | Shape::LeakSawtooth { per_hour, .. }
            | Shape::Restarts { per_hour } => per_hour,
            Shape::Flat | Shape::Sawtooth { .. } | Shape::WarmupSteps | Shape::CacheFill => 0.0,
        }
    }
}

/// A labelled trace: one segment per incarnation (a single one unless the
/// shape restarts), each a time-sorted series of `(ms, bytes)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    pub leak_per_hour: f64,
    pub segments: Vec<Vec<(i64, f64)>>,
}

/// Draws a trace sampled every `interval_ms` (±2 % jitter, as a real sampler
/// wakes late) for `duration_ms`. The same arguments give the same trace.
pub fn generate(shape: Shape, interval_ms: i64, duration_ms: i64, seed: u64) -> Trace {
    let mut rng = SplitMix64::new(seed ^ 0x5EED_50A4_u64.rotate_left(17));
    let interval = interval_ms.max(1);
    let restart_every = |rng: &mut SplitMix64| rng.range(45.0, 90.0) * MINUTE_MS as f64;
    let mut segments = Vec::new();
    let mut start = 0i64;
    while start < duration_ms {
        let end = match shape {
            Shape::Restarts { .. } => (start + restart_every(&mut rng) as i64).min(duration_ms),
            _ => duration_ms,
        };
        let mut incarnation = Incarnation::new(shape, &mut rng);
        let mut segment = Vec::new();
        let mut t = start;
        while t < end {
            let jitter = (rng.range(-0.02, 0.02) * interval as f64) as i64;
            let at = t + jitter.max(0);
            let value = incarnation.value(at - start, interval, &mut rng);
            segment.push((EPOCH_MS + at, value));
            t += interval;
        }
        segments.push(segment);
        // A restart takes a few seconds before the next first sample.
        start = end + 5_000;
    }
    Trace {
        leak_per_hour: shape.leak_per_hour(),
        segments,
    }
}

/// The classes the accuracy bench runs, with their display names: every
/// healthy shape soak must pass and every leak it must find.
pub fn catalogue() -> Vec<(String, Shape)> {
    let mut out = vec![("flat".to_string(), Shape::Flat)];
    for period in [1, 10, 60] {
        for amp in [5.0, 20.0, 50.0] {
            out.push((
                format!("saw {} {amp:.0} MB", period_name(period)),
                Shape::Sawtooth {
                    period_ms: period * MINUTE_MS,
                    amplitude: amp * MB,
                },
            ));
        }
    }
    out.push(("warm-up steps".to_string(), Shape::WarmupSteps));
    out.push(("cache fill".to_string(), Shape::CacheFill));
    out.push((
        "restarts, no leak".to_string(),
        Shape::Restarts { per_hour: 0.0 },
    ));
    for rate in [1.0, 2.0, 5.0, 10.0, 20.0, 50.0] {
        out.push((
            format!("leak {rate:.0} MB/h"),
            Shape::Leak {
                per_hour: rate * MB,
            },
        ));
    }
    for period in [1, 10, 60] {
        for rate in [1.0, 2.0, 5.0, 10.0, 20.0, 50.0] {
            out.push((
                format!("leak {rate:.0} MB/h + saw {} 20 MB", period_name(period)),
                Shape::LeakSawtooth {
                    per_hour: rate * MB,
                    period_ms: period * MINUTE_MS,
                    amplitude: 20.0 * MB,
                },
            ));
        }
    }
    for rate in [5.0, 10.0] {
        out.push((
            format!("restarts, leak {rate:.0} MB/h"),
            Shape::Restarts {
                per_hour: rate * MB,
            },
        ));
    }
    out
}

fn period_name(minutes: i64) -> String {
    if minutes % 60 == 0 {
        format!("{} h", minutes / 60)
    } else {
        format!("{minutes} min")
    }
}

/// The drawn parameters of one incarnation and its running noise state.
struct Incarnation {
    shape: Shape,
    baseline: f64,
    white_sd: f64,
    wander_sd: f64,
    wander_tau_ms: f64,
    wander: f64,
    /// (time, height, ramp duration) of each warm-up step.
    steps: Vec<(f64, f64, f64)>,
    fill: f64,
    fill_tau_ms: f64,
    saw_period_ms: f64,
    saw_amplitude: f64,
    saw_phase: f64,
    saw_cycle_ms: f64,
    last_ms: i64,
}

impl Incarnation {
    fn new(shape: Shape, rng: &mut SplitMix64) -> Self {
        let wander_sd = rng.range(0.2, 0.8) * MB;
        let mut me = Incarnation {
            shape,
            baseline: rng.range(80.0, 400.0) * MB,
            white_sd: rng.range(0.2, 1.0) * MB,
            wander_sd,
            wander_tau_ms: rng.range(0.5, 5.0) * MINUTE_MS as f64,
            wander: wander_sd * rng.normal(),
            steps: Vec::new(),
            fill: 0.0,
            fill_tau_ms: 1.0,
            saw_period_ms: 0.0,
            saw_amplitude: 0.0,
            saw_phase: rng.unit(),
            saw_cycle_ms: 0.0,
            last_ms: 0,
        };
        match shape {
            Shape::Sawtooth {
                period_ms,
                amplitude,
            }
            | Shape::LeakSawtooth {
                period_ms,
                amplitude,
                ..
            } => {
                me.saw_period_ms = period_ms as f64;
                me.saw_amplitude = amplitude;
            }
            Shape::WarmupSteps => {
                let count = 1 + rng.0.below(4) as usize;
                me.steps = (0..count)
                    .map(|_| {
                        let at = rng.range(0.0, 30.0) * MINUTE_MS as f64;
                        (at, rng.range(5.0, 60.0) * MB, rng.range(10_000.0, 60_000.0))
                    })
                    .collect();
            }
            Shape::CacheFill => {
                me.fill = rng.range(20.0, 150.0) * MB;
                me.fill_tau_ms = rng.range(1.0, 6.0) * MINUTE_MS as f64;
            }
            Shape::Restarts { .. } => {
                me.fill = rng.range(20.0, 80.0) * MB;
                me.fill_tau_ms = rng.range(1.0, 3.0) * MINUTE_MS as f64;
                me.saw_period_ms = 2.0 * MINUTE_MS as f64;
                me.saw_amplitude = 10.0 * MB;
                me.saw_phase = 0.0;
            }
            Shape::Flat | Shape::Leak { .. } => {}
        }
        me.saw_cycle_ms = me.jittered_period(rng);
        me
    }

    fn jittered_period(&self, rng: &mut SplitMix64) -> f64 {
        self.saw_period_ms * rng.range(0.85, 1.15)
    }

    /// The value at `t_ms` since the incarnation started; calls come in
    /// increasing time, `dt_ms` apart, which advances the noise state.
    fn value(&mut self, t_ms: i64, interval_ms: i64, rng: &mut SplitMix64) -> f64 {
        let dt = (t_ms - self.last_ms).max(interval_ms) as f64;
        self.last_ms = t_ms;
        // Exact AR(1) discretisation of an Ornstein–Uhlenbeck wander.
        let phi = (-dt / self.wander_tau_ms).exp();
        self.wander = phi * self.wander + self.wander_sd * (1.0 - phi * phi).sqrt() * rng.normal();
        let mut v = self.baseline + self.wander + self.white_sd * rng.normal();
        let t = t_ms as f64;
        v += self.shape.leak_per_hour() * t / HOUR_MS as f64;
        v += self.fill * (1.0 - (-t / self.fill_tau_ms).exp());
        for &(at, height, ramp) in &self.steps {
            v += height * ((t - at) / ramp).clamp(0.0, 1.0);
        }
        if self.saw_period_ms > 0.0 {
            self.saw_phase += dt / self.saw_cycle_ms;
            if self.saw_phase >= 1.0 {
                // A collection: drop to the floor and start a new cycle of
                // its own length, as GC pauses never keep exact time.
                self.saw_phase = self.saw_phase.fract();
                self.saw_cycle_ms = self.jittered_period(rng);
            }
            v += self.saw_amplitude * self.saw_phase;
        }
        v
    }
}
