//! What one sample of a process tree costs, read the two ways soak could:
//! its own /proc reader and sysinfo. The tree is 10 processes, a `sh` and
//! the 9 `sleep`s it started, and each way gets the figures the sampler
//! journals: RSS, CPU time, threads and open fds, summed over the tree.
//!
//! - `procfs`: [`soak::sample::tree_figures`], what the sampler does every
//!   tick: walk `task/TID/children` from the root, then one `stat` read and
//!   one `fd` listing per process.
//! - `sysinfo_known_pids`: sysinfo refreshing exactly those 10 pids (memory,
//!   CPU, tasks for the thread count) and counting their fds. It has no
//!   tree walk, so it is handed the pids: its best case.
//! - `sysinfo_scan`: sysinfo finding the tree the only way it can, by
//!   refreshing every process on the host and following parent pids.
//!
//! Both keep their state between samples, as a sampler would (sysinfo's
//! `System` lives across ticks).
//!
//! `cargo bench -p soak --bench proc_facts` (about 15 s).

use criterion::{Criterion, criterion_group, criterion_main};
use soak::sample::{Figures, tree_figures};
use soak::supervise::procfs;
use std::hint::black_box;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

const SIZE: usize = 10;

/// A `sh` with 9 `sleep`s under it, in a process group of its own so that
/// all of it ends by one kill of that group.
struct Tree {
    root: Child,
}

impl Tree {
    fn start() -> Tree {
        let root = Command::new("sh")
            .args([
                "-c",
                &format!("for i in $(seq {}); do sleep 600 & done; wait", SIZE - 1),
            ])
            .process_group(0)
            .spawn()
            .expect("sh starts");
        let tree = Tree { root };
        let deadline = Instant::now() + Duration::from_secs(10);
        while procfs::tree(tree.pid()).len() < SIZE {
            assert!(Instant::now() < deadline, "the tree did not grow to {SIZE}");
            std::thread::sleep(Duration::from_millis(20));
        }
        tree
    }

    fn pid(&self) -> i32 {
        self.root.id() as i32
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        // SAFETY: kill of our own process group, by its id.
        unsafe { libc::kill(-self.pid(), libc::SIGKILL) };
        let _ = self.root.wait();
    }
}

/// The sampler's figures, summed over `pids` as sysinfo sees them.
fn sysinfo_figures(sys: &System, pids: &[Pid]) -> Figures {
    let mut sum = Figures::default();
    for p in pids.iter().filter_map(|pid| sys.process(*pid)) {
        sum += Figures {
            rss_bytes: p.memory(),
            cpu_seconds: p.accumulated_cpu_time() as f64 / 1000.0,
            fds: p.open_files().unwrap_or(0) as u32,
            threads: p.tasks().map_or(1, |t| t.len().max(1)) as u32,
            processes: 1,
        };
    }
    sum
}

fn kind() -> ProcessRefreshKind {
    ProcessRefreshKind::nothing()
        .with_memory()
        .with_cpu()
        .with_tasks()
}

fn sample(c: &mut Criterion) {
    let tree = Tree::start();
    let root = tree.pid();
    let pids: Vec<Pid> = procfs::tree(root)
        .into_iter()
        .map(|p| Pid::from_u32(p as u32))
        .collect();

    let mut g = c.benchmark_group("sample_10_processes");
    g.sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g.bench_function("procfs", |b| b.iter(|| black_box(tree_figures(root))));

    let mut sys = System::new().expect("sysinfo reads /proc");
    g.bench_function("sysinfo_known_pids", |b| {
        b.iter(|| {
            sys.refresh_processes_specifics(ProcessesToUpdate::Some(&pids), true, kind());
            black_box(sysinfo_figures(&sys, &pids))
        })
    });

    let mut sys = System::new().expect("sysinfo reads /proc");
    let root = Pid::from_u32(root as u32);
    g.bench_function("sysinfo_scan", |b| {
        b.iter(|| {
            sys.refresh_processes_specifics(ProcessesToUpdate::All, true, kind());
            let mut found = vec![root];
            let mut i = 0;
            while i < found.len() {
                let parent = found[i];
                found.extend(
                    sys.processes()
                        .iter()
                        .filter(|(_, p)| p.parent() == Some(parent) && p.thread_kind().is_none())
                        .map(|(pid, _)| *pid),
                );
                i += 1;
            }
            black_box(sysinfo_figures(&sys, &found))
        })
    });
    g.finish();
    drop(tree);
}

criterion_group!(benches, sample);
criterion_main!(benches);
