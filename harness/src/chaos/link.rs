//! Link faults: a step whose target is a `[links.NAME]` breaks the proxy in
//! front of a dependency. The fault is held by the link's guard, so it is
//! removed on every path the guard is dropped on.

use crate::config::scenario::{self, LinkFault};
use crate::link::{self, FaultGuard, Links};
use serde_json::{Value, json};
use std::time::Duration;

/// The proxy's fault for a scenario's link action.
pub fn fault(fault: &LinkFault, direction: scenario::Direction) -> link::Fault {
    let direction = match direction {
        scenario::Direction::Both => link::Direction::Both,
        scenario::Direction::Upstream => link::Direction::Upstream,
        scenario::Direction::Downstream => link::Direction::Downstream,
    };
    match *fault {
        LinkFault::Latency { delay, jitter } => link::Fault::Latency {
            delay,
            jitter,
            direction,
        },
        LinkFault::Blackhole => link::Fault::Blackhole { direction },
        LinkFault::Reset => link::Fault::Reset,
        LinkFault::Refuse => link::Fault::Refuse,
        LinkFault::Bandwidth { bytes_per_second } => link::Fault::Bandwidth {
            // At least a byte a second: the proxy refuses 0 (a blackhole).
            rate: bytes_per_second.ceil().max(1.0) as u64,
            direction,
        },
    }
}

/// Puts the fault on the named link; the detail names its parameters.
pub fn add(
    links: &Links,
    name: &str,
    fault: link::Fault,
    hold: Duration,
) -> Result<(FaultGuard, Value, String), String> {
    let link = links
        .get(name)
        .ok_or_else(|| format!("no link `{name}` in this run"))?;
    let mut detail = serde_json::to_value(&fault).unwrap_or_else(|_| json!({}));
    detail["link"] = json!(name);
    detail["listen"] = json!(link.addr().to_string());
    detail["to"] = json!(link.target().to_string());
    detail["hold_ms"] = json!(hold.as_millis() as u64);
    let text = format!(
        "{fault} on link {name} ({} → {})",
        link.addr(),
        link.target()
    );
    let guard = link.add(fault).map_err(|e| e.to_string())?;
    Ok((guard, detail, text))
}
