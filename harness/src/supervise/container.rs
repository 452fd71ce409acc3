//! The shim's container mode: one shim owns one container for one
//! incarnation, as it owns a process tree in process mode.
//!
//! It creates and starts the container through the engine (host
//! network, the data dir mounted at the same path, labels naming the run
//! and the service, the memory and CPU limits), pumps its logs into the
//! service's log file, reports the container's main process as the host
//! sees it, waits for the exit through the engine, and removes the
//! container once it has ended. The same stdin contract holds: EOF (soak is
//! gone, SIGKILL included) or a terminating signal to the shim removes the
//! container at once.
//!
//! Orphans cannot outlive a container's main process: it is PID 1 of the
//! container's PID namespace, and the kernel kills the namespace with it.

use super::logs::{LogFile, Stream};
use super::procfs;
use super::shim::{Control, Scope, ShimCommand, ShimReport, ShimSpec, report};
use crate::clock::now_ms;
use crate::container::{ContainerSpec, Engine};
use futures_util::StreamExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testcontainers::bollard::container::LogOutput;
use testcontainers::bollard::query_parameters::LogsOptions;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

/// Entry of the container mode, after the spec line was read.
pub(super) fn run(spec: ShimSpec, c: ContainerSpec, control: Control) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let (tx, rx) = mpsc::unbounded_channel();
    // Blocking reads of stdin on a thread of their own: the channel closes
    // on EOF, which is how the shim learns that soak is gone.
    std::thread::spawn(move || {
        let mut control = control;
        let mut lines = control.buffered();
        loop {
            for line in lines.drain(..) {
                if tx.send(line).is_err() {
                    return;
                }
            }
            if !control.open {
                return;
            }
            lines = control.read();
        }
    });
    rt.block_on(incarnation(spec, c, rx))
}

fn soak_line(log: &Mutex<LogFile>, text: &str) {
    if let Ok(mut log) = log.lock() {
        let _ = log.write(Stream::Soak, now_ms(), format!("{text}\n").as_bytes());
    }
}

fn spawn_failed(log: &Mutex<LogFile>, error: String) {
    soak_line(log, &error);
    report(&ShimReport::SpawnFailed { error });
}

/// The signal of an exit code: engines report a death by signal N as
/// 128 + N, as a shell does.
fn decode(code: Option<i64>) -> (Option<i32>, Option<i32>) {
    match code {
        Some(c) if c > 128 && c <= 128 + 64 => (None, Some((c - 128) as i32)),
        Some(c) => (Some(c as i32), None),
        None => (None, None),
    }
}

/// The container's processes as the host sees them: its main process and
/// every descendant of it.
fn host_pids(main: i32) -> Vec<i32> {
    // No main process (the container ended before it was seen): nothing,
    // and never pid 0, which kill(2) reads as the shim's own group.
    if main <= 0 {
        return Vec::new();
    }
    let mut pids = vec![main];
    pids.extend(procfs::descendants(main).iter().map(|p| p.pid));
    pids
}

/// SIGKILL through the engine. A paused container is thawed after the kill
/// is sent (so it dies, not runs): a frozen task acts on no signal, and some
/// engines refuse to kill a paused container at all, then it is killed again.
async fn force_kill(engine: &Engine, id: &str) {
    let first = engine.kill(id, libc::SIGKILL).await;
    if engine.state(id).await.is_ok_and(|s| s.paused) {
        let _ = engine.unpause(id).await;
        if first.is_err() {
            let _ = engine.kill(id, libc::SIGKILL).await;
        }
    }
}

/// A pidfd of `pid`, readable once it has exited: the moment to read the
/// OOM counter, before the engine tears the container's cgroup down.
fn exit_watch(pid: i32) -> Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open(2) with no flags; the result is a new fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd was just returned by the kernel and nothing else owns it.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: the OwnedFd is valid and is neither replaced nor closed while
    // the AsyncFd owns it.
    unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE).ok()
    }
}

async fn incarnation(
    spec: ShimSpec,
    c: ContainerSpec,
    mut commands: mpsc::UnboundedReceiver<String>,
) -> Result<(), String> {
    let log = LogFile::open(&spec.log, spec.log_max, spec.log_keep)
        .map_err(|e| format!("cannot open log {}: {e}", spec.log.display()))?;
    let log = Arc::new(Mutex::new(log));
    let engine = match Engine::connect().await {
        Ok(e) => e,
        Err(e) => {
            spawn_failed(&log, e.to_string());
            return Ok(());
        }
    };
    let image_stop = match engine.image_stop_signal(&c.image).await {
        Ok(s) => s.and_then(|s| crate::config::units::parse_signal(&s).ok()),
        Err(e) => {
            spawn_failed(&log, e.to_string());
            return Ok(());
        }
    };
    let id = match engine
        .run(&c, &spec.argv, &spec.env, std::process::id())
        .await
    {
        Ok(id) => id,
        Err(e) => {
            spawn_failed(
                &log,
                format!("cannot start a container from `{}`: {e}", c.image),
            );
            return Ok(());
        }
    };
    let started = now_ms();
    // 0 once the container has ended already (nothing runs to point at),
    // and for an engine on another host or in another PID namespace, whose
    // pid names none of this host's processes: a pid of this host is one
    // whose cgroup names the container (Docker and Podman both name it so).
    // Without it, faults that act on processes refuse, and sampling finds
    // nothing, rather than touch a stranger.
    let main = engine.state(&id).await.map(|s| s.pid).unwrap_or(0).max(0);
    let main = if main > 0
        && std::fs::read_to_string(format!("/proc/{main}/cgroup")).is_ok_and(|c| c.contains(&id))
    {
        main
    } else {
        if main > 0 {
            soak_line(
                &log,
                &format!(
                    "the engine's pid {main} of container {id} is not a process of this host: faults on its processes and sampling are off"
                ),
            );
        }
        0
    };
    soak_line(
        &log,
        &format!(
            "started container {} from {} (host pid {main}): {}",
            &id[..id.len().min(12)],
            c.image,
            spec.argv.join(" ")
        ),
    );
    report(&ShimReport::Started {
        pid: main,
        ts: started,
        container: Some(id.clone()),
        image_stop_signal: image_stop,
    });

    let pump = {
        let (docker, id, log) = (engine.docker.clone(), id.clone(), log.clone());
        tokio::spawn(async move {
            let mut logs = docker.logs(
                &id,
                Some(LogsOptions {
                    follow: true,
                    stdout: true,
                    stderr: true,
                    ..Default::default()
                }),
            );
            while let Some(Ok(out)) = logs.next().await {
                let (stream, bytes) = match out {
                    LogOutput::StdErr { message } => (Stream::Err, message),
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        (Stream::Out, message)
                    }
                    LogOutput::StdIn { .. } => continue,
                };
                if let Ok(mut log) = log.lock() {
                    let _ = log.write(stream, now_ms(), &bytes);
                }
            }
        })
    };

    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    // Podman on cgroup v1 reports OOMKilled false for a kill by the memory
    // limit; the cgroup's own counter, read as the main process exits
    // (before the cgroup is removed), says it either way.
    let oom_file = (main > 0).then(|| procfs::oom_file(main)).flatten();
    let oom_before = oom_file.as_deref().and_then(procfs::oom_kills);
    let mut exit_watch = (main > 0).then(|| exit_watch(main)).flatten();
    let mut oom_counted = false;
    let wait = engine.wait(&id);
    tokio::pin!(wait);
    let mut stop_deadline: Option<tokio::time::Instant> = None;
    let mut killed_after_grace = false;
    let soak_gone = loop {
        let grace_over = async {
            match stop_deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let main_exited = async {
            match &exit_watch {
                Some(w) => drop(w.readable().await),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = &mut wait => break false,
            () = main_exited => {
                exit_watch = None;
                let after = oom_file.as_deref().and_then(procfs::oom_kills);
                oom_counted = matches!((oom_before, after), (Some(b), Some(a)) if a > b);
            }
            () = grace_over => {
                killed_after_grace = true;
                stop_deadline = None;
                force_kill(&engine, &id).await;
            }
            _ = term.recv() => break true,
            _ = hup.recv() => break true,
            _ = int.recv() => break true,
            line = commands.recv() => {
                let Some(line) = line else { break true };
                let Ok(cmd) = serde_json::from_str::<ShimCommand>(&line) else {
                    eprintln!("soak shim: ignoring bad command {line:?}");
                    continue;
                };
                match cmd {
                    ShimCommand::Signal { signal, scope } => {
                        let pids = match scope {
                            Scope::Main => {
                                if engine.kill(&id, signal).await.is_ok() { vec![main] } else { Vec::new() }
                            }
                            Scope::Group => host_pids(main),
                            Scope::Children => host_pids(main).into_iter().skip(1).collect(),
                        };
                        if scope != Scope::Main {
                            for &pid in &pids {
                                // SAFETY: kill(2) on pids just read from the container's tree.
                                unsafe { libc::kill(pid, signal) };
                            }
                        }
                        report(&ShimReport::Signalled { signal, pids });
                    }
                    ShimCommand::Stop { signal, grace_ms } => {
                        soak_line(&log, &format!(
                            "stopping container: SIG{} then {grace_ms} ms grace",
                            crate::config::units::signal_name(signal)
                        ));
                        let _ = engine.kill(&id, signal).await;
                        if engine.state(&id).await.is_ok_and(|s| s.paused) {
                            let _ = engine.unpause(&id).await;
                        }
                        stop_deadline = Some(tokio::time::Instant::now() + Duration::from_millis(grace_ms));
                    }
                    ShimCommand::Kill => force_kill(&engine, &id).await,
                }
            }
        }
    };
    if soak_gone {
        // Nothing may outlive soak: the engine kills and removes at once.
        let _ = engine.remove(&id).await;
        return Ok(());
    }
    let ts = now_ms();
    let state = engine.state(&id).await.ok();
    let (exit_code, signal) = decode(state.and_then(|s| s.exit_code));
    let oom_killed = oom_counted || state.is_some_and(|s| s.oom_killed);
    // The log stream ends with the container; bounded in case it does not.
    let _ = tokio::time::timeout(Duration::from_secs(1), pump).await;
    let removed = engine.remove(&id).await;
    let how = match (exit_code, signal) {
        (Some(c), _) => format!("exited with code {c}"),
        (None, Some(s)) => format!("killed by SIG{}", crate::config::units::signal_name(s)),
        _ => "ended".into(),
    };
    soak_line(
        &log,
        &format!(
            "container {} (host pid {main}) {how}{}{}",
            &id[..id.len().min(12)],
            if oom_killed {
                ", killed by its memory limit"
            } else {
                ""
            },
            match &removed {
                Ok(()) => String::new(),
                Err(e) => format!("; not removed: {e}"),
            }
        ),
    );
    let log_bytes = log.lock().map(|l| l.written).unwrap_or(0);
    report(&ShimReport::Exited {
        ts,
        exit_code,
        signal,
        orphans: Vec::new(),
        killed_after_grace,
        log_bytes,
        oom_killed,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exit_code_above_128_is_a_signal() {
        assert_eq!(decode(Some(137)), (None, Some(9)));
        assert_eq!(decode(Some(143)), (None, Some(15)));
        assert_eq!(decode(Some(0)), (Some(0), None));
        assert_eq!(decode(Some(3)), (Some(3), None));
        assert_eq!(decode(None), (None, None));
    }
}
