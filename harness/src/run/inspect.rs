//! What the services left, looked at once every one has stopped: the files
//! in each data dir, and `PRAGMA integrity_check` of each SQLite database.

use crate::journal::Event;
use crate::record::Severity;
use crate::session::Session;
use std::path::Path;
use std::time::Duration;

/// Journals each service's data dir listing, then its databases' integrity.
pub(super) fn data_dirs(session: &Session) {
    let rec = &session.rec;
    for sp in &session.plan.services {
        // Listed before soak opens the databases: the check's own
        // connection may create -wal and -shm files, which `no_leftovers`
        // must not blame on the service.
        let files: Vec<String> = std::fs::read_dir(&sp.data_dir)
            .map(|rd| {
                rd.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        rec.journal.emit(
            Some(&sp.name),
            &Event::DataDir {
                path: sp.data_dir.display().to_string(),
                files,
            },
        );
        for db in &sp.sqlite {
            let result = integrity_check(db);
            let sev = if result == "ok" {
                Severity::Good
            } else {
                Severity::Bad
            };
            rec.emit(
                Some(&sp.name),
                &Event::Integrity {
                    db: db.display().to_string(),
                    result: result.clone(),
                },
                sev,
                format!("integrity_check {}: {result}", db.display()),
            );
        }
    }
}

/// `PRAGMA integrity_check` through a read-only connection. On a WAL
/// database whose service closed it cleanly, that connection creates the
/// -wal and -shm files again and, read-only, cannot remove them: soak
/// removes the ones it made, so a user's data dir is left as the service
/// left it.
fn integrity_check(db: &Path) -> String {
    if !db.exists() {
        return format!("missing: {}", db.display());
    }
    let side = |suffix: &str| {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        std::path::PathBuf::from(p)
    };
    let made: Vec<_> = ["-wal", "-shm"]
        .into_iter()
        .map(side)
        .filter(|p| !p.exists())
        .collect();
    let check = || -> rusqlite::Result<String> {
        let conn =
            rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
    };
    let result = check().unwrap_or_else(|e| format!("cannot check: {e}"));
    // Every service is stopped by now, and a read-only connection writes
    // no frames: the files it made hold nothing (a -shm is only an index
    // of the -wal, rebuilt by the next opener).
    for p in made {
        let _ = std::fs::remove_file(&p);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_integrity_check_leaves_a_data_dir_as_the_service_left_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("store.db");
        {
            let c = rusqlite::Connection::open(&db).unwrap();
            c.pragma_update(None, "journal_mode", "wal").unwrap();
            c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
                .unwrap();
        }
        // A clean close checkpoints and deletes the -wal: only the database.
        let files = || {
            let mut f: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            f.sort();
            f
        };
        assert_eq!(files(), ["store.db"]);
        assert_eq!(integrity_check(&db), "ok");
        assert_eq!(files(), ["store.db"], "soak's check left files behind");
    }
}
