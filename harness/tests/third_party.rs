//! soak supervising a real third-party service from Debian's packages
//! (redis-server, which .ci/run installs) through the real `soak chaos`,
//! where the hang is one its health probe cannot see. The matrix of chaos
//! actions against nginx, redis and services written in tests is
//! tests/matrix.rs.

#[path = "it/common.rs"]
mod common;
mod support;

use common::Sandbox;
use support::run::{chaos, program, qp};

/// redis-server with an append-only file in its data dir, probed with
/// `probe` (a TOML key = value line).
fn redis_sandbox(probe: &str) -> Sandbox {
    let config = format!(
        r#"[harness]
reports = "reports"
sample_every = "1s"

[services.redis]
command = [{server}, "--port", "{{port}}", "--bind", "127.0.0.1", "--dir", "{{data_dir}}", "--save", "", "--appendonly", "yes", "--daemonize", "no"]
port = "auto"
data_dir = "auto"
restart = "on-failure"
restart_delay = "100ms"
stop = {{ signal = "TERM", grace = "10s" }}

[services.redis.health]
{probe}
interval = "500ms"
timeout = "1s"
failures = 3
start_grace = "10s"
"#,
        server = qp(&program("redis-server", "redis-server")),
    );
    Sandbox::new(&config)
}

/// SIGSTOP of redis-server behind a `tcp` probe (the matrix probes redis
/// with `redis-cli PING`, which a frozen redis fails). The kernel completes the
/// handshake for a stopped listener from its accept backlog, so the connect
/// alone stays green; soak must still call the stopped redis hung (a
/// stopped process is a hang like any other), because it also checks the
/// main process's state.
#[test]
fn redis_frozen_with_sigstop_is_detected_behind_a_tcp_probe() {
    let sb = redis_sandbox("tcp = \"127.0.0.1:{port}\"");
    let run = chaos(
        sb.path(),
        r#"description = "SIGSTOP redis-server behind a tcp probe: the hang is noticed and redis restarted"
services = ["redis"]
duration = "10s"

[[steps]]
at = "2s"
action = "hang"
target = "redis"

[expect]
detected_within = "8s"
healthy_within = "20s"
restarts = { min = 1, max = 1 }
"#,
    );
    run.assert_nothing_left();
    assert_eq!(run.code, Some(0), "{}", run.output);
    run.verdict("detected_within", "pass");
}
