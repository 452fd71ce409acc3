//! soak's own runtime lag: a task that sleeps a fixed tick and measures how
//! late it wakes. soak runs on one thread, so anything that blocks it (a
//! synchronous flush, a long report) delays every timer: fault rollbacks,
//! probes, workload pacing. The journal keeps the p99 and the max of each
//! interval (`runtime_lag`), so a stall is visible, not guessed.

use crate::clock::now_ms;
use crate::journal::Record;
use crate::record::Recorder;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long the heartbeat sleeps between two wakes.
pub const TICK: Duration = Duration::from_millis(100);

/// The p99 and the max of `late` (milliseconds); `None` when empty.
pub fn summarize(late: &mut [f64]) -> Option<(f64, f64)> {
    if late.is_empty() {
        return None;
    }
    late.sort_by(f64::total_cmp);
    let rank = ((late.len() as f64) * 0.99).ceil() as usize;
    let p99 = late[rank.clamp(1, late.len()) - 1];
    Some((p99, late[late.len() - 1]))
}

/// Journals one `runtime_lag` row every `every` until aborted.
pub fn heartbeat(rec: &Recorder, every: Duration) -> JoinHandle<()> {
    let rec = rec.clone();
    tokio::spawn(async move {
        let mut late: Vec<f64> = Vec::new();
        let mut next_row = Instant::now() + every;
        loop {
            let due = Instant::now() + TICK;
            tokio::time::sleep_until(due).await;
            let woke = Instant::now();
            late.push(woke.saturating_duration_since(due).as_secs_f64() * 1000.0);
            if woke >= next_row {
                if let Some((p99_ms, max_ms)) = summarize(&mut late) {
                    rec.journal.send(Record::Lag {
                        ts: now_ms(),
                        p99_ms,
                        max_ms,
                    });
                }
                late.clear();
                next_row = woke + every;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_stall_in_a_hundred_ticks_is_the_max_and_the_p99() {
        let mut late: Vec<f64> = vec![0.5; 99];
        late.push(1200.0);
        assert_eq!(summarize(&mut late), Some((0.5, 1200.0)));
        let mut late: Vec<f64> = vec![0.5; 98];
        late.extend([900.0, 1200.0]);
        assert_eq!(summarize(&mut late), Some((900.0, 1200.0)));
        assert_eq!(summarize(&mut []), None);
    }
}
