//! The faults of a run, resolved before anything starts: the scenario's own
//! steps, plus, for a `[schedule]`, the steps of a picked scenario every
//! `every`, from a seed, so a soak's faults can be replayed.

use crate::clock::human;
use crate::config::scenario::{Scenario, Step};
use crate::journal::{Event, ScheduledFault};
use crate::record::{Recorder, Severity};
use crate::rng::SplitMix;
use std::time::Duration;

/// One planned fault of the run: a step, and the scenario it came from.
#[derive(Debug, Clone)]
pub struct Planned {
    pub step: Step,
    pub from: String,
    /// Picked by a `[schedule]`: a soak goes on when it cannot land.
    pub scheduled: bool,
}

/// How long a scheduled fault whose target is down (restarting, in
/// backoff) waits for the next ready incarnation before it is skipped.
pub const SCHEDULED_FAULT_WAIT: Duration = Duration::from_secs(30);

/// The steps of the run: the scenario's own, plus, for a `[schedule]`, the
/// steps of a picked scenario every `every`, jittered by up to a quarter
/// interval. A fault that would not finish before the end is left out.
pub fn plan_steps(sc: &Scenario, duration: Duration, seed: u64) -> Result<Vec<Planned>, String> {
    let mut out: Vec<Planned> = sc
        .steps
        .iter()
        .map(|s| Planned {
            step: s.clone(),
            from: sc.name.clone(),
            scheduled: false,
        })
        .collect();
    if let Some(sched) = &sc.schedule {
        let picks = sc.picks().map_err(|e| e.to_string())?;
        let every = sched.every.0;
        let mut rng = SplitMix(seed);
        let mut k = 1u32;
        while !picks.is_empty() && every * k < duration {
            let jitter = Duration::from_millis(rng.below((every.as_millis() as u64 / 4).max(1)));
            let pick = &picks[rng.below(picks.len() as u64) as usize];
            let start = every * k + jitter;
            for s in &pick.steps {
                let at = start + s.at;
                if at + s.action.hold().unwrap_or_default() < duration {
                    out.push(Planned {
                        step: Step { at, ..s.clone() },
                        from: pick.name.clone(),
                        scheduled: true,
                    });
                }
            }
            k += 1;
        }
    }
    out.sort_by_key(|p| p.step.at);
    Ok(out)
}

/// Journals a soak's schedule, every fault and when, before the first one.
pub fn journal(rec: &Recorder, steps: &[Planned], seed: u64, duration: Duration) {
    let faults: Vec<_> = steps
        .iter()
        .map(|p| ScheduledFault {
            at_ms: p.step.at.as_millis() as u64,
            action: p.step.action.name().to_string(),
            target: p.step.target.clone(),
            from: p.from.clone(),
        })
        .collect();
    rec.emit(
        None,
        &Event::Schedule { seed, faults },
        Severity::Info,
        format!(
            "schedule (seed {seed}): {} fault(s) over {}",
            steps.len(),
            human(duration)
        ),
    );
}

/// Journals a scheduled fault that could not land; the soak goes on.
pub fn skip(rec: &Recorder, index: usize, step: &Step, reason: String) {
    rec.emit(
        Some(&step.target),
        &Event::FaultSkipped {
            step: index,
            action: step.action.name().to_string(),
            reason: reason.clone(),
        },
        Severity::Warn,
        format!("skipped {}: {reason}", step.action.name()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_same_seed_replays_the_same_faults_and_another_does_not() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/soak.toml");
        let sc = Scenario::load(&path).unwrap();
        let day = Duration::from_secs(24 * 3600);
        let describe = |seed| -> Vec<(Duration, String, String)> {
            plan_steps(&sc, day, seed)
                .unwrap()
                .into_iter()
                .map(|p| (p.step.at, p.step.target, p.from))
                .collect()
        };
        let a = describe(42);
        assert_eq!(a, describe(42));
        assert_ne!(a, describe(43));
        // One fault per hour after the first, each within its hour plus jitter.
        assert_eq!(a.len(), 23, "{a:#?}");
        assert!(a.iter().all(|(at, ..)| *at < day));
        let kinds: std::collections::BTreeSet<&str> =
            a.iter().map(|(_, _, f)| f.as_str()).collect();
        assert!(kinds.len() >= 2, "the picks vary: {kinds:?}");
    }
}
