//! Process facts, in one place: identity and state and what a process
//! costs (`/proc/PID/stat`), the tree (`task/TID/children`), fds, limits,
//! sockets, cgroups, and the host's available memory. The supervisor, the
//! shim, chaos, the sampler and the overhead bench all read processes
//! through this module, so a quirk of /proc (a comm with spaces and
//! parentheses, a zombie leader, a kernel without `children` files) is
//! handled once.
//!
//! Per-process figures are read from /proc directly, not through sysinfo:
//! soak needs four numbers (CPU ticks, RSS, threads, fd count) of a tree it
//! finds by walking `children` files, and one `stat` read gives three of
//! them, so a sample opens 4 files per process (`stat`, `fd`, `task`,
//! `task/TID/children`). sysinfo has no tree walk (it learns parents by
//! scanning all of /proc) and, even handed the pids, opens 5 per process
//! (`stat`, `statm`, `status`, `task`, `fd`; counted with `strace -f -e
//! trace=openat` on the bench below). `cargo bench -p soak --bench
//! proc_facts` samples a tree of 10 processes each way (on a shared, loaded
//! 2-core machine): this module 0.71–0.81 ms, sysinfo handed the 10 pids
//! 1.07–1.35 ms, sysinfo finding the tree by refreshing every process 15 ms.
//!
//! sysinfo serves for the host's available memory ([`HostMemory`]): one read
//! of /proc/meminfo, with its fallback for kernels older than MemAvailable.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A walk of a process tree stops at this many processes: past it the host
/// is broken (a fork bomb) and reading more would not help anyone.
const MAX_TREE: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub pgrp: i32,
    /// One-letter state from /proc/PID/stat ('Z' is a zombie).
    pub state: char,
    pub comm: String,
}

/// What a process costs now, from /proc/PID/stat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// utime + stime over all its threads, in clock ticks
    /// ([`ticks_per_second`]).
    pub cpu_ticks: u64,
    /// Resident set size.
    pub rss_bytes: u64,
    pub threads: u32,
}

/// pid, comm and the fields from 3 (state) on of a /proc/PID/stat line;
/// comm may hold spaces and parentheses, so split at the last ')'.
fn split_stat(stat: &str) -> Option<(i32, &str, Vec<&str>)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let pid = stat[..open].trim().parse().ok()?;
    let comm = stat.get(open + 1..close)?;
    Some((
        pid,
        comm,
        stat.get(close + 1..)?.split_whitespace().collect(),
    ))
}

pub fn parse_stat(stat: &str) -> Option<Proc> {
    let (pid, comm, rest) = split_stat(stat)?;
    Some(Proc {
        pid,
        ppid: rest.get(1)?.parse().ok()?,
        pgrp: rest.get(2)?.parse().ok()?,
        state: rest.first()?.chars().next()?,
        comm: comm.to_string(),
    })
}

/// utime, stime, num_threads and rss of a /proc/PID/stat line, with rss in
/// pages of `page` bytes.
pub fn parse_usage(stat: &str, page: u64) -> Option<Usage> {
    let (_, _, rest) = split_stat(stat)?;
    // Field numbers in proc(5) count from 1 at pid; `rest` starts at field 3.
    let at = |n: usize| rest.get(n - 3)?.parse::<u64>().ok();
    Some(Usage {
        cpu_ticks: at(14)? + at(15)?,
        rss_bytes: at(24)? * page,
        threads: u32::try_from(at(20)?).ok()?,
    })
}

fn read_stat(pid: i32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/stat")).ok()
}

/// `pid` as /proc/PID/stat shows it; None once it is gone.
pub fn stat(pid: i32) -> Option<Proc> {
    parse_stat(&read_stat(pid)?)
}

/// What `pid` costs now; None once it is gone.
pub fn usage(pid: i32) -> Option<Usage> {
    parse_usage(&read_stat(pid)?, page_size())
}

pub fn page_size() -> u64 {
    static PAGE: OnceLock<u64> = OnceLock::new();
    // SAFETY: sysconf with a constant name has no preconditions.
    *PAGE.get_or_init(|| (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).max(1) as u64)
}

/// The unit of [`Usage::cpu_ticks`].
pub fn ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    // SAFETY: sysconf with a constant name has no preconditions.
    *TICKS.get_or_init(|| (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as f64)
}

/// Proportional set size (`Pss:` of /proc/PID/smaps_rollup): its share of
/// pages it shares with others, such as soak's shims with soak. The kernel
/// walks the page tables for it, so it is for benches, not for every tick.
pub fn pss_bytes(pid: i32) -> Option<u64> {
    let kb: u64 = fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Every process in /proc.
pub fn all() -> Vec<Proc> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| stat(e.ok()?.file_name().to_str()?.parse().ok()?))
        .collect()
}

/// Whether this kernel has /proc/PID/task/TID/children (3.5 and later, with
/// CONFIG_PROC_CHILDREN); asked once.
fn has_children_files() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        Path::new("/proc/self/task")
            .join(std::process::id().to_string())
            .join("children")
            .exists()
    })
}

/// `root` and every process under it, parents before children, zombies
/// included (a sampler must not pay for reading each one's state).
///
/// Walks /proc/PID/task/TID/children from `root` down, which reads only the
/// tree itself: the shim does this the moment a service dies and the
/// sampler every tick, and a scan of all of /proc would cost milliseconds
/// on a busy host. Kernels without those files get the full scan.
pub fn tree(root: i32) -> Vec<i32> {
    if !has_children_files() {
        return tree_in(&all(), root);
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() && out.len() < MAX_TREE {
        out.extend(children(out[i]));
        i += 1;
    }
    out
}

/// [`tree`] over a scan of /proc.
pub fn tree_in(procs: &[Proc], root: i32) -> Vec<i32> {
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() && out.len() < MAX_TREE {
        let parent = out[i];
        out.extend(procs.iter().filter(|p| p.ppid == parent).map(|p| p.pid));
        i += 1;
    }
    out
}

/// Every live (non-zombie) descendant of `root`, parents before children.
pub fn descendants(root: i32) -> Vec<Proc> {
    tree(root)
        .into_iter()
        .skip(1)
        .filter_map(stat)
        .filter(|p| p.state != 'Z')
        .collect()
}

/// The state letter of `pid` if it is stopped by a signal (`T`) or by a
/// tracer (`t`); None if it runs, sleeps or is gone.
pub fn stopped(pid: i32) -> Option<char> {
    stat(pid)
        .map(|p| p.state)
        .filter(|s| matches!(s, 'T' | 't'))
}

/// Direct children of `pid`, over all its threads.
pub fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// The memory-cgroup file of `pid` that counts OOM kills, from
/// /proc/PID/cgroup: `memory.oom_control` of cgroup v1's memory controller,
/// else `memory.events` of the unified hierarchy.
pub fn oom_file(pid: i32) -> Option<PathBuf> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    oom_file_in(&text, Path::new("/sys/fs/cgroup"))
}

pub fn oom_file_in(cgroup: &str, root: &Path) -> Option<PathBuf> {
    let line = |want: &dyn Fn(&str) -> bool| {
        cgroup.lines().find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            want(controllers).then(|| path.trim_start_matches('/').to_string())
        })
    };
    if let Some(path) = line(&|c| c.split(',').any(|c| c == "memory")) {
        return Some(root.join("memory").join(path).join("memory.oom_control"));
    }
    let path = line(&|c| c.is_empty())?;
    let unified = if root.join("unified").is_dir() {
        root.join("unified")
    } else {
        root.to_path_buf()
    };
    Some(unified.join(path).join("memory.events"))
}

/// The `oom_kill N` count of such a file.
pub fn oom_kills(file: &Path) -> Option<u64> {
    fs::read_to_string(file)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
}

/// The command line of a process, for naming orphans in reports.
pub fn cmdline(pid: i32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Inodes of TCP sockets listening on `port` (IPv4 and IPv6), from /proc/net.
pub fn listening_inodes(port: u16) -> Vec<u64> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| fs::read_to_string(f).ok())
        .flat_map(|text| parse_listening(&text, port))
        .collect()
}

/// Lines look like `0: 0100007F:1F90 00000000:0000 0A ... inode`; state 0A is LISTEN.
pub fn parse_listening(text: &str, port: u16) -> Vec<u64> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let local_port = u16::from_str_radix(cols.get(1)?.rsplit(':').next()?, 16).ok()?;
            (local_port == port && *cols.get(3)? == "0A").then(|| cols.get(9)?.parse().ok())?
        })
        .collect()
}

/// Inodes of the sockets `pid` holds open.
pub fn socket_inodes(pid: i32) -> Vec<u64> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let target = fs::read_link(e.ok()?.path()).ok()?;
        let t = target.to_str()?;
        t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
    })
    .collect()
}

/// The fd numbers `pid` has open.
pub fn open_fds(pid: i32) -> Option<Vec<u64>> {
    Some(
        fs::read_dir(format!("/proc/{pid}/fd"))
            .ok()?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
    )
}

/// How many fds `pid` has open, without reading their numbers.
pub fn fd_count(pid: i32) -> Option<u32> {
    Some(fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u32)
}

/// The host's available memory, through sysinfo (see the module doc).
pub struct HostMemory(Option<sysinfo::System>);

impl HostMemory {
    pub fn new() -> HostMemory {
        HostMemory(sysinfo::System::new().ok())
    }

    /// MemAvailable in bytes, read now; 0 where sysinfo cannot read /proc
    /// (an unusual /proc is not an error for a sampler).
    pub fn available(&mut self) -> u64 {
        self.0.as_mut().map_or(0, |s| {
            s.refresh_memory();
            s.available_memory()
        })
    }
}

impl Default for HostMemory {
    fn default() -> Self {
        Self::new()
    }
}

/// The soft RLIMIT_NOFILE under which exactly `headroom` more fds can be
/// opened. The kernel refuses an fd *number* at or above the limit and hands
/// out the lowest free number, so with gaps below the highest open fd
/// "open count + headroom" would leave more room than asked.
pub fn limit_for_headroom(open: &[u64], headroom: u64) -> u64 {
    let mut free_seen = 0;
    let mut n = 0;
    loop {
        if !open.contains(&n) {
            if free_seen == headroom {
                return n;
            }
            free_seen += 1;
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_sockets_are_found_by_port() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0\n   1: 0100007F:1F90 0100007F:C000 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0\n";
        assert_eq!(parse_listening(text, 8080), vec![4242]);
        assert!(parse_listening(text, 8081).is_empty());
    }

    #[test]
    fn the_limit_counts_free_fd_numbers_not_open_ones() {
        assert_eq!(limit_for_headroom(&[0, 1, 2], 0), 3);
        assert_eq!(limit_for_headroom(&[0, 1, 2], 2), 5);
        // A gap at 3: with no headroom the limit must stop right there.
        assert_eq!(limit_for_headroom(&[0, 1, 2, 4, 5], 0), 3);
        assert_eq!(limit_for_headroom(&[0, 1, 2, 4, 5], 1), 6);
    }

    #[test]
    fn stat_with_odd_comm_parses() {
        let p = parse_stat("123 (a) b (c)) S 1 123 123 0 -1").unwrap();
        assert_eq!((p.pid, p.ppid, p.pgrp, p.state), (123, 1, 123, 'S'));
        assert_eq!(p.comm, "a) b (c)");
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn usage_fields_are_read_by_position() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 123 1000000 300 18446744073709551615";
        let u = parse_usage(stat, 4096).unwrap();
        assert_eq!(u.rss_bytes, 300 * 4096);
        assert_eq!(u.cpu_ticks, 300);
        assert_eq!(u.threads, 7);
        assert!(parse_usage("42 (a) S 1 42", 4096).is_none());
    }

    #[test]
    fn the_scanned_tree_walks_through_zombies_and_skips_strangers() {
        let p = |pid, ppid, state| Proc {
            pid,
            ppid,
            pgrp: pid,
            state,
            comm: String::new(),
        };
        let procs = vec![
            p(10, 1, 'S'),
            p(11, 10, 'S'),
            p(12, 11, 'Z'),
            p(13, 12, 'R'),
            p(20, 1, 'S'),
        ];
        assert_eq!(tree_in(&procs, 10), vec![10, 11, 12, 13]);
    }

    #[test]
    fn a_child_is_in_the_tree_and_among_the_descendants() {
        let me = std::process::id() as i32;
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let in_tree = tree(me).contains(&pid);
        let found = descendants(me).into_iter().find(|p| p.pid == pid);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(in_tree);
        assert_eq!(found.map(|p| p.ppid), Some(me));
        assert!(!descendants(me).iter().any(|p| p.pid == pid), "reaped");
    }

    /// This process's figures against readings that share no code with
    /// this module: getrusage for CPU time, sysinfo (statm) for RSS. Other
    /// test threads run meanwhile, so the bounds are wide.
    #[test]
    fn usage_agrees_with_getrusage_and_sysinfo() {
        let cpu = || {
            // SAFETY: getrusage into a zeroed struct.
            let r = unsafe {
                let mut r: libc::rusage = std::mem::zeroed();
                assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut r), 0);
                r
            };
            let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            s(r.ru_utime) + s(r.ru_stime)
        };
        // Some CPU time of its own, so the figure is not all rounding.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let me = std::process::id() as i32;
        let before = cpu();
        let u = usage(me).unwrap();
        let after = cpu();
        let secs = u.cpu_ticks as f64 / ticks_per_second();
        assert!(
            secs > before - 0.5 && secs < after + 0.5,
            "stat {secs} s, getrusage {before}..{after} s"
        );

        let pid = sysinfo::Pid::from_u32(me as u32);
        let mut sys = sysinfo::System::new().unwrap();
        sys.refresh_processes_specifics(
            sysinfo::ProcessesToUpdate::Some(&[pid]),
            true,
            sysinfo::ProcessRefreshKind::nothing().with_memory(),
        );
        let theirs = sys.process(pid).unwrap().memory();
        let ours = usage(me).unwrap().rss_bytes;
        assert!(
            ours.abs_diff(theirs) < (theirs / 2).max(64 << 20),
            "stat {ours} B, sysinfo {theirs} B"
        );
        assert!(u.threads >= 1);
        assert!(fd_count(me).unwrap() >= 3);
        assert!(HostMemory::new().available() > 0);
    }

    #[test]
    fn the_oom_counter_is_found_in_either_cgroup_version() {
        let root = Path::new("/sys/fs/cgroup");
        let v1 = "5:devices:/x\n4:memory:/libpod_parent/libpod-abc\n0::/\n";
        assert_eq!(
            oom_file_in(v1, root).unwrap(),
            root.join("memory/libpod_parent/libpod-abc/memory.oom_control")
        );
        let v2 = "0::/system.slice/docker-abc.scope\n";
        let f = oom_file_in(v2, root).unwrap();
        assert!(
            f.ends_with("system.slice/docker-abc.scope/memory.events"),
            "{f:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("memory.events");
        std::fs::write(&file, "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n").unwrap();
        assert_eq!(oom_kills(&file), Some(1));
    }
}
