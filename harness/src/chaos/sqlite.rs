//! SQLite lock contention: a connection of soak's own holds a lock on a
//! service's database.
//!
//! rusqlite blocks while it waits for a lock, so the connection lives on a
//! thread of its own and reports back over channels: the runtime (probes,
//! shim reports, the open-loop clock) never waits on SQLite.
//!
//! What each mode blocks, for a connection opened during the hold (tested
//! below on real files):
//!
//! | journal mode | exclusive       | immediate | read                   |
//! |--------------|-----------------|-----------|------------------------|
//! | delete       | readers+writers | writers   | writers                |
//! | wal          | readers+writers | writers   | nothing (pins the WAL) |
//!
//! In WAL mode `BEGIN EXCLUSIVE` alone blocks only writers, so `exclusive`
//! first sets `locking_mode=EXCLUSIVE`: the write lock it then takes is the
//! file's exclusive lock, which readers need to share. That lock can only be
//! had while no other connection has the database open (each holds a shared
//! lock on the file for its lifetime in WAL mode); when one has, the fault
//! falls back to `BEGIN EXCLUSIVE` and journals `blocks_readers: false` and
//! why, rather than pretend.

use crate::config::scenario::LockMode;
use serde_json::json;
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;
use tokio::sync::oneshot;

/// How long the lock thread waits for a lock held by the service.
const BUSY_WAIT: Duration = Duration::from_secs(5);
/// How long a WAL `exclusive` waits for the service's connections to close
/// before falling back to blocking writers only.
const EXCLUSIVE_WAIT: Duration = Duration::from_secs(2);

/// A held lock. Dropping it releases the lock (the thread rolls back and
/// closes its connection); [`LockHold::release`] also waits for that.
pub struct LockHold {
    release: Option<std_mpsc::Sender<()>>,
    released: Option<oneshot::Receiver<()>>,
}

fn take(
    db: &PathBuf,
    mode: LockMode,
) -> rusqlite::Result<(rusqlite::Connection, serde_json::Value)> {
    let open =
        || rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE);
    let conn = open()?;
    let journal: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    let wal = journal.eq_ignore_ascii_case("wal");
    let mut facts = json!({"journal_mode": journal.to_lowercase()});
    match mode {
        LockMode::Exclusive if wal => {
            conn.busy_timeout(EXCLUSIVE_WAIT)?;
            conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
            match conn.execute_batch("BEGIN EXCLUSIVE") {
                Ok(()) => {
                    facts["blocks_readers"] = json!(true);
                    return Ok((conn, facts));
                }
                Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {
                    // A fresh connection, in normal locking mode.
                    drop(conn);
                    let conn = open()?;
                    conn.busy_timeout(BUSY_WAIT)?;
                    conn.execute_batch("BEGIN EXCLUSIVE")?;
                    facts["blocks_readers"] = json!(false);
                    facts["why"] = json!(
                        "another connection has the database open: in WAL mode readers can only be \
                         blocked while none is, so this lock blocks writers only"
                    );
                    return Ok((conn, facts));
                }
                Err(e) => return Err(e),
            }
        }
        LockMode::Exclusive => {
            conn.busy_timeout(BUSY_WAIT)?;
            conn.execute_batch("BEGIN EXCLUSIVE")?;
            facts["blocks_readers"] = json!(true);
        }
        LockMode::Immediate => {
            conn.busy_timeout(BUSY_WAIT)?;
            conn.execute_batch("BEGIN IMMEDIATE")?;
            facts["blocks_readers"] = json!(false);
        }
        // A read transaction: in WAL mode it pins a snapshot, so checkpoints
        // cannot pass it and the WAL grows; otherwise it holds a shared lock
        // and no writer can commit.
        LockMode::Read => {
            conn.busy_timeout(BUSY_WAIT)?;
            conn.execute_batch("BEGIN")?;
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
            facts["blocks_readers"] = json!(false);
        }
    }
    Ok((conn, facts))
}

/// Takes the lock on a thread of its own and holds it until released, or
/// `hold` (plus a margin) passes. Resolves once the lock is held, with the
/// facts of the lock (journal mode, whether readers are blocked).
pub async fn hold(
    db: PathBuf,
    mode: LockMode,
    hold: Duration,
) -> Result<(LockHold, serde_json::Value), String> {
    let (held_tx, held_rx) = oneshot::channel::<Result<serde_json::Value, String>>();
    let (release_tx, release_rx) = std_mpsc::channel::<()>();
    let (released_tx, released_rx) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("soak-sqlite-lock".into())
        .spawn(move || match take(&db, mode) {
            Ok((conn, facts)) => {
                let _ = held_tx.send(Ok(facts));
                // The safety net: even if nobody releases, never hold past this.
                let _ = release_rx.recv_timeout(hold + Duration::from_secs(5));
                let _ = conn.execute_batch("ROLLBACK");
                // Closing is what ends an exclusive locking mode.
                drop(conn);
                let _ = released_tx.send(());
            }
            Err(e) => {
                let _ = held_tx.send(Err(format!("{}: {e}", db.display())));
            }
        })
        .map_err(|e| e.to_string())?;
    let limit = BUSY_WAIT + EXCLUSIVE_WAIT + Duration::from_secs(5);
    match tokio::time::timeout(limit, held_rx).await {
        Ok(Ok(Ok(facts))) => Ok((
            LockHold {
                release: Some(release_tx),
                released: Some(released_rx),
            },
            facts,
        )),
        Ok(Ok(Err(e))) => Err(e),
        // The thread is left to give up on its own busy timeout; if it does
        // get the lock, the dropped release channel makes it let go at once.
        Ok(Err(_)) | Err(_) => Err("timed out taking the lock".into()),
    }
}

impl LockHold {
    /// Releases the lock and waits (without blocking the runtime) until the
    /// connection is closed. Returns whether that was seen.
    pub async fn release(&mut self) -> bool {
        drop(self.release.take());
        match self.released.take() {
            Some(rx) => tokio::time::timeout(Duration::from_secs(10), rx)
                .await
                .is_ok_and(|r| r.is_ok()),
            None => false,
        }
    }
}

impl Drop for LockHold {
    fn drop(&mut self) {
        // The thread sees the channel close and releases; nobody waits.
        drop(self.release.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn db(journal: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let c = rusqlite::Connection::open(&path).unwrap();
        c.pragma_update(None, "journal_mode", journal).unwrap();
        c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
            .unwrap();
        (dir, path)
    }

    /// (a new reader can read, a new writer can write), without waiting.
    fn probe(path: &PathBuf) -> (bool, bool) {
        let c = rusqlite::Connection::open(path).unwrap();
        c.busy_timeout(Duration::ZERO).unwrap();
        let read = c
            .query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
            .is_ok();
        let write = c.execute("INSERT INTO t VALUES (2)", []).is_ok();
        (read, write)
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn each_mode_blocks_what_the_table_says_and_always_releases() {
        use LockMode::*;
        // (journal mode, lock mode, reader blocked, writer blocked)
        let table = [
            ("delete", Exclusive, true, true),
            ("delete", Immediate, false, true),
            ("delete", Read, false, true),
            ("wal", Exclusive, true, true),
            ("wal", Immediate, false, true),
            ("wal", Read, false, false),
        ];
        let rt = rt();
        for (journal, mode, reader_blocked, writer_blocked) in table {
            let (_dir, path) = db(journal);
            let (mut lock, facts) = rt
                .block_on(hold(path.clone(), mode, Duration::from_secs(60)))
                .unwrap();
            assert_eq!(facts["journal_mode"], journal);
            assert_eq!(facts["blocks_readers"], reader_blocked);
            let (read, write) = probe(&path);
            assert_eq!(
                (!read, !write),
                (reader_blocked, writer_blocked),
                "{journal} {mode:?}: (reader blocked, writer blocked)"
            );
            assert!(rt.block_on(lock.release()), "{journal} {mode:?}: released");
            assert_eq!(
                probe(&path),
                (true, true),
                "{journal} {mode:?}: after release"
            );
        }
    }

    #[test]
    fn wal_exclusive_with_a_connection_open_blocks_writers_and_says_readers_are_not() {
        let (_dir, path) = db("wal");
        let service = rusqlite::Connection::open(&path).unwrap();
        service
            .query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
            .unwrap();
        let rt = rt();
        let (mut lock, facts) = rt
            .block_on(hold(
                path.clone(),
                LockMode::Exclusive,
                Duration::from_secs(60),
            ))
            .unwrap();
        assert_eq!(facts["blocks_readers"], false);
        assert!(
            facts["why"]
                .as_str()
                .unwrap()
                .contains("another connection")
        );
        assert_eq!(probe(&path), (true, false));
        assert!(rt.block_on(lock.release()));
        assert_eq!(probe(&path), (true, true));
    }

    #[test]
    fn dropping_a_held_lock_releases_it() {
        let (_dir, path) = db("wal");
        let rt = rt();
        let (lock, _) = rt
            .block_on(hold(
                path.clone(),
                LockMode::Exclusive,
                Duration::from_secs(60),
            ))
            .unwrap();
        drop(lock);
        let start = Instant::now();
        while probe(&path) != (true, true) {
            assert!(start.elapsed() < Duration::from_secs(10), "never released");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn waiting_for_a_busy_database_leaves_the_runtime_running() {
        let (_dir, path) = db("delete");
        // The "service" holds an exclusive lock for 1.5 s.
        let busy = rusqlite::Connection::open(&path).unwrap();
        busy.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let holder = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            busy.execute_batch("ROLLBACK").unwrap();
        });
        let rt = rt();
        let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counted = ticks.clone();
        let got = rt.block_on(async move {
            let ticker = tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_millis(50));
                loop {
                    every.tick().await;
                    counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
            let got = hold(path.clone(), LockMode::Immediate, Duration::from_secs(60)).await;
            ticker.abort();
            got
        });
        holder.join().unwrap();
        let (mut lock, _) = got.unwrap();
        assert!(rt.block_on(lock.release()));
        // About 30 ticks in 1.5 s; a runtime blocked on the wait ticks once.
        let ticks = ticks.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            ticks >= 10,
            "the runtime ticked {ticks} time(s) while the lock was awaited"
        );
    }
}
