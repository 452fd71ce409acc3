//! The scenario's clock: each step injected on time, each fault rolled back
//! when its hold ends (or when the supervisor has replaced what it hit), a
//! long run's partial report rewritten every so often, and every fault
//! still held rolled back however the loop ends.

use super::Course;
use crate::chaos::{self, Fault};
use crate::clock::human;
use crate::config::scenario::{Action, Scenario};
use crate::journal::Event;
use crate::partial::Refresher;
use crate::record::Severity;
use crate::schedule::{self, Planned, SCHEDULED_FAULT_WAIT};
use crate::session::Session;
use crate::supervise::Phase;
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;

/// How often the loop looks again when nothing is due: a step waiting for
/// its target, a fault held until the supervisor acts.
const POLL: Duration = Duration::from_millis(200);

pub(super) struct Driver<'a> {
    pub sc: &'a Scenario,
    pub session: &'a Session,
    pub steps: &'a [Planned],
    pub shim_exe: &'a Path,
    pub refresh_report: Option<Duration>,
}

impl Driver<'_> {
    /// Runs the steps from `t0` until `end`. Returns the services a step
    /// stopped for good, which the recovery does not wait for.
    pub async fn drive(
        &self,
        t0: Instant,
        end: Instant,
        stop: &mut (impl Future<Output = &'static str> + Unpin),
        course: &mut Course,
    ) -> Vec<String> {
        let (sc, rec, sup) = (self.sc, &self.session.rec, &self.session.sup);
        let mut stopped_by_step = Vec::new();
        let mut next_refresh = self.refresh_report.map(|r| Instant::now() + r);
        let mut refresher = Refresher::default();
        let mut next = 0usize;
        let mut active: Vec<(Option<Instant>, Fault)> = Vec::new();
        loop {
            let next_step = self.steps.get(next).map(|p| t0 + p.step.at);
            let next_rollback = active.iter().filter_map(|(d, _)| *d).min();
            // A step already due is one waiting for its target to be ready:
            // look again in a while rather than spin.
            let poll = Instant::now() + POLL;
            let step_wake = next_step.map(|t| if t <= Instant::now() { poll } else { t });
            let wake = [Some(end), step_wake, next_rollback, Some(poll)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(end);
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = &mut *stop => { course.interrupted = true; break; }
            }
            let now = Instant::now();
            let mut i = 0;
            while i < active.len() {
                let current = sup
                    .state(&active[i].1.target)
                    .ok()
                    .and_then(|s| s.borrow().incarnation);
                let due = active[i].0.is_some_and(|d| d <= now);
                // Faults held "until the supervisor acts" end when the
                // incarnation they hit is gone.
                let open_ended_done = active[i].0.is_none() && active[i].1.target_replaced(current);
                if due || open_ended_done {
                    active.swap_remove(i).1.roll_back(rec).await;
                } else {
                    i += 1;
                }
            }
            if now >= end {
                break;
            }
            if let (Some(at), Some(every)) = (next_refresh, self.refresh_report)
                && now >= at
            {
                // Off the runtime: a slow disk must not stall fault timing.
                let journal = rec.journal.clone();
                let _ = tokio::task::spawn_blocking(move || journal.flush()).await;
                refresher
                    .refresh(self.shim_exe, &self.session.run_dir, rec)
                    .await;
                next_refresh = Some(now + every);
            }
            let Some(due) = next_step.filter(|due| *due <= now) else {
                continue;
            };
            let Planned {
                step, scheduled, ..
            } = &self.steps[next];
            // Scheduled faults do not stack on one target: a second one
            // would take the first's lowered limit or stopped process as
            // the state to restore, and its verdicts could not tell the two
            // apart. It is skipped, and the soak goes on.
            if *scheduled
                && let Some((_, held)) = active.iter().find(|(_, f)| f.target == step.target)
            {
                let why = format!("a {} fault was still held on {}", held.action, step.target);
                schedule::skip(rec, next, step, why);
                next += 1;
                continue;
            }
            // A scheduled fault on a service that is down waits for its
            // next ready incarnation, then is skipped: a soak never ends
            // because one fault could not land.
            if *scheduled && !step.action.is_link() {
                let ready = sup
                    .state(&step.target)
                    .is_ok_and(|s| s.borrow().phase == Phase::Ready);
                if !ready {
                    if now < due + SCHEDULED_FAULT_WAIT {
                        continue;
                    }
                    let why = format!(
                        "{} was not ready within {} of the fault's time",
                        step.target,
                        human(SCHEDULED_FAULT_WAIT)
                    );
                    schedule::skip(rec, next, step, why);
                    next += 1;
                    continue;
                }
            }
            let consistency = sc
                .expect
                .consistent_reads
                .as_ref()
                .and_then(|w| sc.config.workloads.get(w.get_ref()));
            let targets = chaos::Targets {
                sup,
                plan: &self.session.plan,
                links: &self.session.links,
                restart_after_stop: *scheduled,
            };
            match chaos::inject(next, step, &targets, rec, consistency).await {
                Ok(fault) => {
                    if step.action == Action::Stop && !*scheduled {
                        stopped_by_step.push(step.target.clone());
                    }
                    // A kill or a stop leaves nothing to undo.
                    if !matches!(step.action, Action::Kill { .. } | Action::Stop) {
                        let until = step.action.hold().map(|h| Instant::now() + h);
                        active.push((until, fault));
                    }
                }
                Err(e) if *scheduled => schedule::skip(rec, next, step, e.to_string()),
                Err(e) => {
                    rec.emit(
                        Some(&step.target),
                        &Event::InjectFailed {
                            step: next,
                            error: e.to_string(),
                        },
                        Severity::Bad,
                        e.to_string(),
                    );
                    course.inconclusive = Some(e.to_string());
                    break;
                }
            }
            next += 1;
        }
        // Scheduled faults still waiting for their target when the soak
        // ended: every planned fault is journaled as landed or skipped.
        if course.undisturbed() {
            for (i, p) in self.steps.iter().enumerate().skip(next) {
                if p.scheduled && t0 + p.step.at <= Instant::now() {
                    let why = format!("the run ended while {} was not ready", p.step.target);
                    schedule::skip(rec, i, &p.step, why);
                }
            }
        }
        for (_, fault) in active.drain(..) {
            fault.roll_back(rec).await;
        }
        refresher.stop().await;
        stopped_by_step
    }
}
