//! Process faults (hang) and the pidfd that keeps their undo on the right
//! process: a pid recorded at injection can belong to someone else by the
//! time a delayed rollback runs, a pidfd cannot.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A process by pidfd: signalling it never reaches a later process that
/// reused its pid.
#[derive(Debug)]
pub struct Pidfd {
    pub pid: i32,
    fd: OwnedFd,
}

impl Pidfd {
    pub fn open(pid: i32) -> io::Result<Pidfd> {
        // SAFETY: pidfd_open(2) with no flags; the result is a new fd we own.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just returned by the kernel and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        Ok(Pidfd { pid, fd })
    }

    /// pidfd_send_signal(2): ESRCH once the process has been reaped.
    pub fn signal(&self, sig: i32) -> io::Result<()> {
        // SAFETY: a valid pidfd, no siginfo, no flags.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// True while the process has not been reaped (a zombie still holds its
    /// pid, so the pid cannot have been reused).
    pub fn alive(&self) -> bool {
        self.signal(0).is_ok()
    }
}

/// Opens a pidfd for each pid that still exists.
pub fn pidfds(pids: &[i32]) -> Vec<Pidfd> {
    pids.iter().filter_map(|p| Pidfd::open(*p).ok()).collect()
}

/// SIGCONT to each stopped process still alive; returns (continued, gone).
pub fn continue_all(procs: &[Pidfd]) -> (Vec<i32>, Vec<i32>) {
    let (mut continued, mut gone) = (Vec::new(), Vec::new());
    for p in procs {
        match p.signal(libc::SIGCONT) {
            Ok(()) => continued.push(p.pid),
            Err(_) => gone.push(p.pid),
        }
    }
    (continued, gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pidfd_of_a_reaped_process_signals_nothing() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let fd = Pidfd::open(child.id() as i32).unwrap();
        assert!(fd.alive());
        fd.signal(libc::SIGKILL).unwrap();
        child.wait().unwrap();
        assert!(!fd.alive(), "a reaped process is gone for its pidfd");
        assert_eq!(
            fd.signal(libc::SIGCONT).unwrap_err().raw_os_error(),
            Some(libc::ESRCH)
        );
    }
}
