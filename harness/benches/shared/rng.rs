//! The benches' random numbers: soak's own seeded generator (the one the
//! fault schedule uses), with what drawing noise needs on top, so every run
//! of a bench draws the same data on every machine.

use soak::rng::SplitMix;
use std::f64::consts::TAU;

/// soak's own seeded generator, with what drawing noise needs on top.
pub struct SplitMix64(pub SplitMix);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(SplitMix(seed))
    }

    /// Uniform in [0, 1), from the top 53 bits.
    pub fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Standard normal by Box–Muller; `1 - unit()` keeps the log finite.
    pub fn normal(&mut self) -> f64 {
        let r = (-2.0 * (1.0 - self.unit()).ln()).sqrt();
        r * (TAU * self.unit()).cos()
    }
}
