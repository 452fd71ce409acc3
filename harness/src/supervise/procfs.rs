//! Process facts as /proc shows them, in one place: identity and state
//! (`/proc/PID/stat`), the tree (`task/TID/children`), fds, limits, sockets
//! and cgroups. The supervisor, the shim, chaos and the sampler all read
//! processes through this module, so a quirk of /proc (a comm with spaces
//! and parentheses, a zombie leader, a kernel without `children` files) is
//! handled once. The sampler's per-tick figures live in `sample.rs` but
//! walk the tree with [`children`].

use std::fs;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub pgrp: i32,
    /// One-letter state from /proc/PID/stat ('Z' is a zombie).
    pub state: char,
    pub comm: String,
}

/// Parses /proc/PID/stat; comm may hold spaces and parentheses, so split at
/// the last ')'.
pub fn parse_stat(stat: &str) -> Option<Proc> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let pid = stat[..open].trim().parse().ok()?;
    let comm = stat.get(open + 1..close)?.to_string();
    let mut rest = stat.get(close + 1..)?.split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    let pgrp = rest.next()?.parse().ok()?;
    Some(Proc {
        pid,
        ppid,
        pgrp,
        state,
        comm,
    })
}

/// `pid` as /proc/PID/stat shows it; None once it is gone.
pub fn stat(pid: i32) -> Option<Proc> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

pub fn all() -> Vec<Proc> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| stat(e.ok()?.file_name().to_str()?.parse().ok()?))
        .collect()
}

/// Every live (non-zombie) descendant of `root`, parents before children.
///
/// Walks /proc/PID/task/TID/children from `root` down, which reads only the
/// tree itself: the shim does this the moment a service dies, and a scan
/// of all of /proc would cost milliseconds of restart latency on a busy
/// host. Kernels without those files get the full scan.
pub fn descendants(root: i32) -> Vec<Proc> {
    if !std::path::Path::new("/proc/self/task")
        .join(std::process::id().to_string())
        .join("children")
        .exists()
    {
        return descendants_in(&all(), root);
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for child in children(parent) {
            let Some(p) = stat(child) else {
                continue;
            };
            frontier.push(child);
            if p.state != 'Z' {
                out.push(p);
            }
        }
        if out.len() > 100_000 {
            break;
        }
    }
    out
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

pub fn descendants_in(procs: &[Proc], root: i32) -> Vec<Proc> {
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for p in procs.iter().filter(|p| p.ppid == parent) {
            frontier.push(p.pid);
            if p.state != 'Z' {
                out.push(p.clone());
            }
        }
    }
    out
}

/// The memory-cgroup file of `pid` that counts OOM kills, from
/// /proc/PID/cgroup: `memory.oom_control` of cgroup v1's memory controller,
/// else `memory.events` of the unified hierarchy.
pub fn oom_file(pid: i32) -> Option<std::path::PathBuf> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    oom_file_in(&text, std::path::Path::new("/sys/fs/cgroup"))
}

pub fn oom_file_in(cgroup: &str, root: &std::path::Path) -> Option<std::path::PathBuf> {
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
pub fn oom_kills(file: &std::path::Path) -> Option<u64> {
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
    fn descendants_skip_zombies_and_strangers() {
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
        let pids: Vec<i32> = descendants_in(&procs, 10).iter().map(|p| p.pid).collect();
        assert_eq!(pids, vec![11, 13]);
    }

    #[test]
    fn the_oom_counter_is_found_in_either_cgroup_version() {
        let root = std::path::Path::new("/sys/fs/cgroup");
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
