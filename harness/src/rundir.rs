//! Run directories: `reports/<run-id>/` with the journal, logs and data of one
//! run, and `reports/latest` pointing at the newest.

use std::io;
use std::path::{Path, PathBuf};

/// Creates a fresh run directory named after the time and `label`.
pub fn create(reports: &Path, label: &str) -> io::Result<PathBuf> {
    // Absolute, so paths in the journal mean the same from anywhere.
    let reports = &std::path::absolute(reports)?;
    std::fs::create_dir_all(reports)?;
    let stamp = crate::clock::rfc3339_ms(crate::clock::now_ms());
    // 2026-11-23T00:35:58.123Z -> 20261123-003558
    let compact: String = stamp[..19]
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    let base = format!("{}-{}", compact.replace('T', "-"), sanitize(label));
    for n in 1.. {
        let name = if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        let dir = reports.join(&name);
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                std::fs::create_dir_all(dir.join("logs"))?;
                point_latest(reports, &name);
                return Ok(dir);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns or errs")
}

fn sanitize(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Atomically repoints `latest` (a relative symlink, so the folder can move).
fn point_latest(reports: &Path, name: &str) {
    let tmp = reports.join(format!(".latest-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    if std::os::unix::fs::symlink(name, &tmp).is_ok() {
        let _ = std::fs::rename(&tmp, reports.join("latest"));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn runs_get_unique_dirs_and_latest_follows() {
        let dir = tempfile::tempdir().unwrap();
        let a = super::create(dir.path(), "up").unwrap();
        let b = super::create(dir.path(), "up").unwrap();
        assert_ne!(a, b);
        let latest = std::fs::canonicalize(dir.path().join("latest")).unwrap();
        assert_eq!(latest, std::fs::canonicalize(&b).unwrap());
        assert!(b.join("logs").is_dir());
    }
}
