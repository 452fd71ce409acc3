//! The links of a run: started from the plan right after it is made and
//! before any service (their ports are already bound, so `{link.NAME}` is
//! right from the first start), sampled into the journal, shut down after
//! the services have stopped.

use super::{Link, LinkError};
use crate::clock::now_ms;
use crate::journal::{Event, Record};
use crate::plan::Plan;
use crate::record::{Recorder, Severity};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Every link of a run, by name. The default, none, is what a session
/// holds once its links are shut down.
#[derive(Default)]
pub struct Links {
    links: Vec<Link>,
}

/// Starts a link for each `[links.NAME]` of the plan, forwarding to its
/// target, and journals `link-up` for each (service column: the link).
/// `soak run` and `soak up` both call it before starting any service.
pub async fn start_all(plan: &Plan, rec: &Recorder) -> Result<Links, LinkError> {
    let mut links = Vec::new();
    for lp in &plan.links {
        let target = tokio::net::lookup_host(lp.to.as_str())
            .await
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| LinkError::Unresolved {
                link: lp.name.clone(),
                to: lp.to.clone(),
            })?;
        let listener = lp.take_listener().ok_or_else(|| LinkError::Closed {
            link: lp.name.clone(),
        })?;
        let link = Link::from_std(lp.name.clone(), listener, target)?;
        rec.emit(
            Some(&lp.name),
            &Event::LinkUp {
                listen: link.addr().to_string(),
                to: lp.to.clone(),
            },
            Severity::Info,
            format!("link {} listening on {} → {}", lp.name, link.addr(), lp.to),
        );
        links.push(link);
    }
    Ok(Links { links })
}

impl Links {
    pub fn get(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name() == name)
    }

    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// Journals one `link_samples` row per link: the interval since the
    /// previous sample.
    pub fn sample(&self, rec: &Recorder) {
        let ts = now_ms();
        for link in &self.links {
            let c = link.take();
            rec.journal.send(Record::LinkSample {
                ts,
                link: link.name().to_string(),
                connections: c.opened,
                active: c.active,
                bytes_up: c.bytes_up,
                bytes_down: c.bytes_down,
            });
        }
    }

    /// Samples every `every` until the task is aborted; nothing when there
    /// are no links.
    pub fn sample_every(
        self: &Arc<Self>,
        every: Duration,
        rec: &Recorder,
    ) -> Option<JoinHandle<()>> {
        if self.is_empty() {
            return None;
        }
        let (links, rec) = (Arc::clone(self), rec.clone());
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                links.sample(&rec);
            }
        }))
    }

    /// Closes every link and its connections and waits for their tasks.
    /// The last sample is taken first, so the final interval is journaled.
    pub async fn shutdown(self, rec: &Recorder) {
        self.sample(rec);
        for link in self.links {
            link.shutdown().await;
        }
    }
}
