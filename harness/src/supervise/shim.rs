//! The shim: one small process per service incarnation, between soak and the
//! service. It runs `soak __shim` (the same binary) and:
//!
//! - is a child subreaper, so every process the service starts, even one that
//!   daemonizes or calls setsid(), stays in the shim's subtree;
//! - starts the service in a process group of its own and pumps its stdout and
//!   stderr into the capped log;
//! - notices the service's exit at once (signalfd, no polling), lets the tree
//!   settle for [`SETTLE`], then kills and counts whatever is left (orphans) so
//!   the next incarnation starts clean;
//! - dies with soak: soak holds the write end of the shim's stdin, and the
//!   kernel closes it however soak ends, SIGKILL included. EOF on stdin means
//!   "kill the whole tree now". This needs no parent-death signal, which would
//!   fire when the *thread* that spawned the shim exits.
//!
//! Protocol: the first stdin line is a JSON [`ShimSpec`]; later lines are
//! [`ShimCommand`]s. The shim answers with [`ShimReport`] lines on stdout.

use super::logs::{LogFile, Stream};
use super::procfs;
use crate::clock::now_ms;
use serde::{Deserialize, Serialize};
use std::io::{self, Write};
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// How long descendants get to die on their own after the service's main
/// process exits before they count as orphans. Workers with a parent-death
/// signal are gone in microseconds; workers that outlive this are a finding.
pub const SETTLE: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimSpec {
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    /// The complete environment of the service.
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
    pub log_max: u64,
    pub log_keep: u32,
    /// The service's port, so orphans still listening on it can be named.
    pub port: Option<u16>,
    /// Run this incarnation as a container (`argv` is then the image's
    /// arguments): see `supervise/container.rs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<crate::container::ContainerSpec>,
}

/// A service that daemonizes (systemd's `Type=forking` with `PIDFile=`):
/// when the started process exits 0, the pid written to `pidfile` within
/// `wait_ms` becomes the main process. The daemon re-parents to the shim,
/// a subreaper, so it is waited on, signalled and reported like any other.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Daemon {
    pub pidfile: PathBuf,
    pub wait_ms: u64,
}

/// The first line a shim reads: the spec, and how to follow a daemon.
#[derive(Debug, Serialize, Deserialize)]
pub struct StartLine {
    #[serde(flatten)]
    pub spec: ShimSpec,
    #[serde(default)]
    pub daemon: Option<Daemon>,
}

/// Which processes of an incarnation a signal goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// The service's main process only.
    Main,
    /// Its process group and every other descendant (the whole tree).
    Group,
    /// Every descendant of the main process, not the main process itself.
    Children,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "op")]
pub enum ShimCommand {
    Signal {
        signal: i32,
        scope: Scope,
    },
    /// Graceful stop: `signal` (and SIGCONT, so a stopped tree can act on it)
    /// to the whole tree; after `grace_ms` kill what is left.
    Stop {
        signal: i32,
        grace_ms: u64,
    },
    /// SIGKILL the whole tree now.
    Kill,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Orphan {
    pub pid: i32,
    pub command: String,
    /// It still had the service's port open for listening.
    pub holds_port: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "report")]
pub enum ShimReport {
    Started {
        pid: i32,
        ts: i64,
        /// The container's id, for an image service.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        container: Option<String>,
        /// The image's STOPSIGNAL, for an image service whose image has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image_stop_signal: Option<i32>,
    },
    SpawnFailed {
        error: String,
    },
    /// The started process exited 0 and this daemon, from its pid file, is
    /// now the main process.
    Adopted {
        pid: i32,
        ts: i64,
    },
    /// The started process exited 0 but left no daemon to follow; its exit
    /// is the incarnation's.
    NotAdopted {
        error: String,
    },
    Signalled {
        signal: i32,
        pids: Vec<i32>,
    },
    Exited {
        ts: i64,
        exit_code: Option<i32>,
        signal: Option<i32>,
        /// Descendants still alive `SETTLE` after the main process died.
        orphans: Vec<Orphan>,
        /// A stop was asked for and grace ran out, so the tree was killed.
        killed_after_grace: bool,
        log_bytes: u64,
        /// A container killed by its memory limit.
        #[serde(default)]
        oom_killed: bool,
    },
}

pub(super) fn report(r: &ShimReport) {
    // soak may be gone (that is how we learn to clean up): ignore EPIPE.
    let mut out = io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, r);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// Entry point of `soak __shim`.
pub fn main() -> ! {
    let code = match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("soak shim: {e}");
            1
        }
    };
    std::process::exit(code)
}

fn errno() -> io::Error {
    io::Error::last_os_error()
}

pub(super) struct Control {
    buf: Vec<u8>,
    pub(super) open: bool,
}

impl Control {
    /// Complete lines already read.
    pub(super) fn buffered(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            lines.push(String::from_utf8_lossy(&line).trim().to_string());
        }
        lines
    }

    /// Reads what is available on stdin; returns complete lines.
    pub(super) fn read(&mut self) -> Vec<String> {
        let mut chunk = [0u8; 4096];
        // SAFETY: reading into a stack buffer of the given length.
        let n = unsafe { libc::read(0, chunk.as_mut_ptr().cast(), chunk.len()) };
        if n == 0
            || (n < 0
                && errno().kind() != io::ErrorKind::WouldBlock
                && errno().kind() != io::ErrorKind::Interrupted)
        {
            self.open = false;
        } else if n > 0 {
            self.buf.extend_from_slice(&chunk[..n as usize]);
        }
        self.buffered()
    }
}

/// Signals inherited as ignored go back to their default, so a service
/// starts as systemd starts one. `nohup soak run &` ignores SIGHUP, and a
/// script's background job SIGINT and SIGQUIT: a service inheriting that
/// would ignore its stop signal (nginx stops on SIGQUIT). SIGPIPE stays
/// ignored in the shim, which must see EPIPE when soak is gone, not die;
/// the service gets the default from std. Done before the spec arrives, so
/// off the restart path.
fn reset_ignored_signals() {
    for sig in 1..=libc::SIGRTMAX() {
        if matches!(sig, libc::SIGKILL | libc::SIGSTOP | libc::SIGPIPE) {
            continue;
        }
        // SAFETY: sigaction on a zeroed, then filled, local struct. glibc
        // refuses its internal signals (EINVAL), which are left alone.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction == libc::SIG_IGN
            {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
    }
}

fn block_signals() -> io::Result<RawFd> {
    // SAFETY: plain libc signal-set manipulation on a local sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGCHLD, libc::SIGTERM, libc::SIGHUP, libc::SIGINT] {
            libc::sigaddset(&mut set, s);
        }
        if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(errno());
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
        if fd < 0 {
            return Err(errno());
        }
        Ok(fd)
    }
}

/// Drains the signalfd; true if a terminating signal arrived.
fn read_signals(fd: RawFd) -> bool {
    let mut term = false;
    loop {
        // SAFETY: signalfd_siginfo is plain data; we read whole records.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let n = unsafe {
            libc::read(
                fd,
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                std::mem::size_of::<libc::signalfd_siginfo>(),
            )
        };
        if n <= 0 {
            return term;
        }
        if info.ssi_signo as i32 != libc::SIGCHLD {
            term = true;
        }
    }
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

/// Reaps every exited child; returns the main process's status if it was
/// among them.
fn reap(main: i32) -> Option<(Option<i32>, Option<i32>)> {
    let mut main_status = None;
    loop {
        let mut status = 0;
        // SAFETY: waitpid with WNOHANG on our own children.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return main_status;
        }
        if pid == main {
            main_status = Some(decode(status));
        }
    }
}

fn decode(status: i32) -> (Option<i32>, Option<i32>) {
    if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else {
        (None, Some(libc::WTERMSIG(status)))
    }
}

/// Waits, for a bounded time, until `main` can be reaped. The leader of a
/// multi-threaded process (redis, any JVM or Node) shows as a zombie as
/// soon as its own thread exits, but cannot be reaped until every other
/// thread has: the tree walk skips zombies, so without this wait its exit
/// status was lost now and then. None if it was reaped already.
fn reap_main_patiently(main: i32) -> Option<(Option<i32>, Option<i32>)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut status = 0;
        // SAFETY: waitpid with WNOHANG on our own child.
        let pid = unsafe { libc::waitpid(main, &mut status, libc::WNOHANG) };
        if pid == main {
            return Some(decode(status));
        }
        if pid < 0 || Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn signal_pids(pids: &[i32], sig: i32) {
    for &pid in pids {
        // SAFETY: kill(2) on pids just read from our own subtree.
        unsafe { libc::kill(pid, sig) };
    }
}

/// The whole tree under the shim: the service and everything it started.
fn tree(me: i32) -> Vec<i32> {
    procfs::descendants(me).iter().map(|p| p.pid).collect()
}

fn signal_scope(me: i32, main: i32, main_alive: bool, sig: i32, scope: Scope) -> Vec<i32> {
    if !main_alive && scope != Scope::Group {
        return Vec::new();
    }
    match scope {
        Scope::Main => {
            signal_pids(&[main], sig);
            vec![main]
        }
        Scope::Group => {
            if main_alive {
                // The group signal is atomic for the common case (a master and
                // its workers); the walk catches what left the group.
                // SAFETY: main is our unreaped child, so its pgid is ours to use.
                unsafe { libc::kill(-main, sig) };
            }
            let pids = tree(me);
            signal_pids(&pids, sig);
            pids
        }
        Scope::Children => {
            let pids: Vec<i32> = procfs::descendants(main).iter().map(|p| p.pid).collect();
            signal_pids(&pids, sig);
            pids
        }
    }
}

/// SIGKILLs the tree until nothing is left, reaping as it goes. The status
/// is the main process's, if this reaped it; `main_reaped` says the caller
/// already has (then its pid may belong to someone else by now).
fn kill_tree(me: i32, main: i32, main_reaped: bool) -> Option<(Option<i32>, Option<i32>)> {
    if !main_reaped {
        // The main process by its pid as well: once its first thread has
        // exited it shows as a zombie, which the tree walk skips, while its
        // other threads may still run.
        // SAFETY: kill(2) on our own unreaped child.
        unsafe { libc::kill(main, libc::SIGKILL) };
    }
    let mut main_status = None;
    for _ in 0..200 {
        let pids = tree(me);
        if pids.is_empty() {
            break;
        }
        signal_pids(&pids, libc::SIGKILL);
        std::thread::sleep(Duration::from_millis(5));
        main_status = main_status.or(reap(main));
    }
    main_status = main_status.or_else(|| reap(main));
    if main_reaped {
        return None;
    }
    main_status.or_else(|| reap_main_patiently(main))
}

struct Output {
    fd: Option<RawFd>,
    stream: Stream,
}

fn pump(out: &mut Output, log: &mut LogFile) {
    let Some(fd) = out.fd else { return };
    let mut buf = [0u8; 65536];
    // SAFETY: reading into a stack buffer of the given length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n > 0 {
        let _ = log.write(out.stream, now_ms(), &buf[..n as usize]);
    } else if n == 0 || errno().kind() != io::ErrorKind::WouldBlock {
        // SAFETY: closing the read end we own, once.
        unsafe { libc::close(fd) };
        out.fd = None;
    }
}

/// Waits, up to `wait_ms`, until the pid file names a live process of this
/// shim's tree. A pid file left by an earlier incarnation names a process
/// that is gone (or, reused, not ours), so it is waited past, not adopted.
/// Output is pumped meanwhile so a chatty daemon does not block on a full pipe.
fn adopt(d: &Daemon, me: i32, outputs: &mut [Output], log: &mut LogFile) -> Result<i32, String> {
    let deadline = Instant::now() + Duration::from_millis(d.wait_ms);
    let path = d.pidfile.display();
    loop {
        let why = match std::fs::read_to_string(&d.pidfile) {
            Ok(text) => match text.trim().parse::<i32>() {
                Ok(pid) if pid > 0 && procfs::descendants(me).iter().any(|p| p.pid == pid) => {
                    return Ok(pid);
                }
                Ok(pid) => format!("pid {pid} in {path} is not a live process of this service"),
                Err(_) => format!("{path} holds {:?}, not a pid", text.trim()),
            },
            Err(e) => format!("cannot read {path}: {e}"),
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "the service exited 0 and no daemon was found within {} ms: {why}",
                d.wait_ms
            ));
        }
        if soak_gone() {
            // The main loop reads the EOF next and kills the tree.
            return Err("soak ended while the shim waited for the daemon's pid file".into());
        }
        for o in outputs.iter_mut() {
            pump(o, log);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// True once soak's end of the control pipe is closed. Polls without
/// reading, so commands already sent stay for the main loop.
fn soak_gone() -> bool {
    let mut fd = libc::pollfd {
        fd: 0,
        events: 0,
        revents: 0,
    };
    // SAFETY: poll on one live pollfd, no wait.
    unsafe { libc::poll(&mut fd, 1, 0) };
    fd.revents & (libc::POLLHUP | libc::POLLERR) != 0
}

fn run() -> Result<(), String> {
    reset_ignored_signals();
    let mut control = Control {
        buf: Vec::new(),
        open: true,
    };
    let spec_line = loop {
        let mut lines = control.read();
        if !lines.is_empty() {
            break lines.remove(0);
        }
        if !control.open {
            // A standby that was never needed: soak let it go, or is gone.
            return Ok(());
        }
    };
    let StartLine { spec, mut daemon } =
        serde_json::from_str(&spec_line).map_err(|e| format!("bad spec: {e}"))?;
    if let Some(c) = spec.container.clone() {
        return super::container::run(spec, c, control);
    }
    // SAFETY: prctl with constant arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(format!("cannot become a subreaper: {}", errno()));
    }
    let sigfd = block_signals().map_err(|e| format!("signalfd: {e}"))?;
    let mut log = LogFile::open(&spec.log, spec.log_max, spec.log_keep)
        .map_err(|e| format!("cannot open log {}: {e}", spec.log.display()))?;

    let mut command = std::process::Command::new(&spec.argv[0]);
    command
        .args(&spec.argv[1..])
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            // The shim blocks signals for its signalfd; a blocked mask is
            // inherited across exec, and a service that cannot receive
            // SIGTERM cannot stop gracefully. std's posix_spawn path (taken
            // when there is no pre_exec) keeps the mask: this is needed.
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            let error = format!(
                "cannot start `{}` in {}: {e}",
                spec.argv[0],
                spec.cwd.display()
            );
            let _ = log.write(Stream::Soak, now_ms(), format!("{error}\n").as_bytes());
            report(&ShimReport::SpawnFailed { error });
            return Ok(());
        }
    };
    let mut main = child.id() as i32;
    let me = std::process::id() as i32;
    let started = now_ms();
    let _ = log.write(
        Stream::Soak,
        started,
        format!("started pid {main}: {}\n", spec.argv.join(" ")).as_bytes(),
    );
    report(&ShimReport::Started {
        pid: main,
        ts: started,
        container: None,
        image_stop_signal: None,
    });

    let mut outputs = [
        Output {
            fd: child.stdout.take().map(std::os::fd::IntoRawFd::into_raw_fd),
            stream: Stream::Out,
        },
        Output {
            fd: child.stderr.take().map(std::os::fd::IntoRawFd::into_raw_fd),
            stream: Stream::Err,
        },
    ];
    for o in &outputs {
        if let Some(fd) = o.fd {
            set_nonblocking(fd);
        }
    }
    set_nonblocking(0);
    // The std Child must not reap behind our back; we reap with waitpid.
    std::mem::forget(child);

    let mut main_status: Option<(Option<i32>, Option<i32>)> = None;
    let mut exited_at: Option<(i64, Instant)> = None;
    let mut stop_deadline: Option<Instant> = None;
    let mut killed_after_grace = false;

    loop {
        // Exit flow: once the main process is gone and the tree has settled.
        if let Some((_, at)) = exited_at {
            let settle_until = stop_deadline.map_or(at + SETTLE, |d| d.max(at + SETTLE));
            if Instant::now() >= settle_until || tree(me).is_empty() {
                break;
            }
        }
        if let Some(deadline) = stop_deadline
            && Instant::now() >= deadline
            && main_status.is_none()
        {
            killed_after_grace = true;
            main_status = kill_tree(me, main, false);
            exited_at.get_or_insert((now_ms(), Instant::now()));
            continue;
        }
        let mut fds = vec![
            libc::pollfd {
                fd: sigfd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if control.open { 0 } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        for o in &outputs {
            fds.push(libc::pollfd {
                fd: o.fd.unwrap_or(-1),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let timeout = if exited_at.is_some() || stop_deadline.is_some() {
            10
        } else {
            -1
        };
        // SAFETY: fds is a live vector of pollfd of the given length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            if errno().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("poll: {}", errno()));
        }
        if fds[0].revents != 0 && read_signals(sigfd) {
            // Someone asked the shim itself to go: same as losing soak.
            control.open = false;
        }
        if let Some(status) = reap(main) {
            // A daemonizing service's first process is done once it has
            // forked: follow the daemon it left, not its exit.
            if status == (Some(0), None)
                && let Some(d) = daemon.take()
            {
                match adopt(&d, me, &mut outputs, &mut log) {
                    Ok(pid) => {
                        let ts = now_ms();
                        let _ = log.write(
                            Stream::Soak,
                            ts,
                            format!(
                                "pid {main} exited 0; following the daemon, pid {pid} from {}\n",
                                d.pidfile.display()
                            )
                            .as_bytes(),
                        );
                        main = pid;
                        report(&ShimReport::Adopted { pid, ts });
                        continue;
                    }
                    Err(error) => {
                        let _ = log.write(Stream::Soak, now_ms(), format!("{error}\n").as_bytes());
                        report(&ShimReport::NotAdopted { error });
                    }
                }
            }
            main_status = Some(status);
            exited_at = Some((now_ms(), Instant::now()));
        }
        if fds[1].revents != 0 {
            for line in control.read() {
                let Ok(cmd) = serde_json::from_str::<ShimCommand>(&line) else {
                    eprintln!("soak shim: ignoring bad command {line:?}");
                    continue;
                };
                let alive = main_status.is_none();
                match cmd {
                    ShimCommand::Signal { signal, scope } => {
                        let pids = signal_scope(me, main, alive, signal, scope);
                        report(&ShimReport::Signalled { signal, pids });
                    }
                    ShimCommand::Stop { signal, grace_ms } => {
                        signal_scope(me, main, alive, signal, Scope::Group);
                        signal_scope(me, main, alive, libc::SIGCONT, Scope::Group);
                        stop_deadline = Some(Instant::now() + Duration::from_millis(grace_ms));
                    }
                    ShimCommand::Kill => {
                        let reaped = main_status.is_some();
                        main_status = main_status.or(kill_tree(me, main, reaped));
                        exited_at.get_or_insert((now_ms(), Instant::now()));
                    }
                }
            }
        }
        if !control.open {
            // soak is gone or told us to go: nothing may outlive it.
            kill_tree(me, main, main_status.is_some());
            return Ok(());
        }
        for (i, o) in outputs.iter_mut().enumerate() {
            if fds[2 + i].revents != 0 {
                pump(o, &mut log);
            }
        }
    }

    let left = procfs::descendants(me);
    // Reading the socket tables costs milliseconds on a busy host; a clean
    // exit leaves nobody to ask about, and respawn waits on this.
    let listening = match spec.port {
        Some(port) if !left.is_empty() => procfs::listening_inodes(port),
        _ => Default::default(),
    };
    let orphans: Vec<Orphan> = left
        .iter()
        .map(|p| Orphan {
            pid: p.pid,
            command: procfs::cmdline(p.pid),
            holds_port: procfs::socket_inodes(p.pid)
                .iter()
                .any(|i| listening.contains(i)),
        })
        .collect();
    main_status = main_status.or(kill_tree(me, main, main_status.is_some()));
    // The tree is gone, so the pipes' write ends are closed: drain to EOF.
    let drain_until = Instant::now() + Duration::from_secs(1);
    while outputs.iter().any(|o| o.fd.is_some()) && Instant::now() < drain_until {
        for o in &mut outputs {
            pump(o, &mut log);
        }
    }
    let (exit_code, signal) = main_status.unwrap_or((None, None));
    let (ts, _) = exited_at.unwrap_or((now_ms(), Instant::now()));
    let how = match (exit_code, signal) {
        (Some(c), _) => format!("exited with code {c}"),
        (None, Some(s)) => format!("killed by SIG{}", crate::config::units::signal_name(s)),
        _ => "ended".into(),
    };
    let _ = log.write(
        Stream::Soak,
        ts,
        format!("pid {main} {how}; {} orphan(s)\n", orphans.len()).as_bytes(),
    );
    report(&ShimReport::Exited {
        ts,
        exit_code,
        signal,
        orphans,
        killed_after_grace,
        log_bytes: log.written,
        oom_killed: false,
    });
    Ok(())
}
