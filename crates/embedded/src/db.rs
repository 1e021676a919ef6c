//! One SQLite database, one writer thread that group-commits, and a small pool of readers.
//!
//! Every mutation is a job sent to the writer. The writer takes all jobs that are waiting,
//! runs each in its own savepoint inside one transaction and commits once, so many
//! concurrent requests share one fsync. A job learns its result only after the commit.
//!
//! Two durabilities: a *synced* job (an acknowledged order, a new subscription) returns only
//! after the WAL is fsync'd. A *relaxed* job (the pipeline's internal steps) is committed and
//! survives a process crash, but a power loss may roll back the newest relaxed commits. The
//! WAL is a log, so what survives is always a prefix: a lost step is redone from the durable
//! state before it (a message reappears, a record is republished), which at-least-once
//! delivery already allows.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// Most jobs folded into one transaction; bounds the latency one commit adds.
const MAX_GROUP: usize = 512;

/// Prepared statements kept per connection.
const STATEMENT_CACHE_CAPACITY: usize = 128;

/// Idle reader connections kept for the next read: as many as the pipeline's blocking
/// threads, which make most reads, so that on a machine with more cores reads past a fixed
/// few do not each open a connection and parse their statements afresh.
pub(crate) const KEPT_READERS: crate::blocking::BlockingThreads = crate::blocking::PIPELINE;

/// Runs one of the writer's own fixed statements (transaction control), parsed once.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the transaction could not be committed")]
    Commit(#[source] Arc<rusqlite::Error>),
    #[error("stored data is not valid")]
    Corrupt(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the database is closed")]
    Closed,
}

type Completion = Box<dyn FnOnce(Option<&Arc<rusqlite::Error>>) + Send>;

/// Sets the connection's `synchronous` mode: FULL (`true`) or NORMAL. A parameter of the
/// writer so a test can make it fail, which no outside action provokes reliably.
type SetSynchronous = fn(&Connection, bool) -> rusqlite::Result<()>;

fn set_synchronous(conn: &Connection, full: bool) -> rusqlite::Result<()> {
    run_cached(
        conn,
        if full {
            "PRAGMA synchronous = FULL"
        } else {
            "PRAGMA synchronous = NORMAL"
        },
    )
}

struct Job {
    synced: bool,
    run: Box<dyn FnOnce(&Connection) -> Completion + Send>,
}

#[derive(Debug)]
pub struct Db {
    path: PathBuf,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    checkpointer: Mutex<Option<(mpsc::Sender<()>, std::thread::JoinHandle<()>)>>,
    readers: Mutex<Vec<Connection>>,
    /// See [`KEPT_READERS`].
    kept_readers: usize,
}

fn open_connection(path: &Path, flags: OpenFlags) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // The pipeline uses about fifty statements; rusqlite keeps 16 by default, and an
    // evicted statement is parsed again on its next use.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    // WAL: readers never block the writer. FULL: every commit fsyncs the WAL, which is
    // what makes a 202 a promise.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

impl Db {
    /// Opens (creating if needed) the database and runs `migrate` on the writer connection.
    pub fn open(
        path: &Path,
        migrate: impl FnOnce(&Connection) -> rusqlite::Result<()>,
    ) -> Result<Arc<Db>, DbError> {
        Db::open_with(path, migrate, set_synchronous)
    }

    fn open_with(
        path: &Path,
        migrate: impl FnOnce(&Connection) -> rusqlite::Result<()>,
        set_synchronous: SetSynchronous,
    ) -> Result<Arc<Db>, DbError> {
        let conn = open_connection(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        migrate(&conn)?;
        restrict_permissions(path);
        // The database and WAL files must survive a power loss as directory entries too.
        if let Some(dir) = path.parent()
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        // Checkpoints copy the WAL into the database and fsync it; run on the writer they
        // stall every commit behind them, so a background thread does them instead. Only it
        // cannot finish while commits keep coming, and an unfinished WAL is never reused, so
        // the writer still checkpoints when the WAL gets long; by then little is left to copy.
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)?;
        let checkpointer_conn = open_connection(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let checkpointer = std::thread::Builder::new()
            .name("orderflow-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpointer_conn, stop_rx))
            .expect("spawn checkpoint thread");
        let (tx, rx) = mpsc::channel::<Job>();
        let writer = std::thread::Builder::new()
            .name("orderflow-writer".into())
            .spawn(move || writer_loop(conn, rx, set_synchronous))
            .expect("spawn writer thread");
        Ok(Arc::new(Db {
            path: path.to_owned(),
            jobs: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            checkpointer: Mutex::new(Some((stop_tx, checkpointer))),
            readers: Mutex::new(Vec::new()),
            kept_readers: KEPT_READERS.here(),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the writer inside a group-committed transaction; returns once the commit
    /// is fsync'd.
    pub async fn write<R, F>(&self, f: F) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, DbError> + Send + 'static,
    {
        self.submit(true, f).await
    }

    /// Like [`Db::write`], but returns once committed, without waiting for an fsync.
    pub async fn write_relaxed<R, F>(&self, f: F) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, DbError> + Send + 'static,
    {
        self.submit(false, f).await
    }

    async fn submit<R, F>(&self, synced: bool, f: F) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, DbError> + Send + 'static,
    {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<Result<R, DbError>>();
        let run = Box::new(move |conn: &Connection| -> Completion {
            let result = in_savepoint(conn, f);
            Box::new(move |commit_error: Option<&Arc<rusqlite::Error>>| {
                let result = match commit_error {
                    None => result,
                    Some(e) => Err(DbError::Commit(e.clone())),
                };
                let _ = done_tx.send(result);
            })
        });
        let job = Job { synced, run };
        {
            let jobs = self.jobs.lock().expect("jobs lock");
            let sender = jobs.as_ref().ok_or(DbError::Closed)?;
            sender.send(job).map_err(|_| DbError::Closed)?;
        }
        done_rx.await.map_err(|_| DbError::Closed)?
    }

    /// Runs `f` on a pooled read connection, off the async runtime.
    pub async fn read<R, F>(self: &Arc<Self>, f: F) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, DbError> + Send + 'static,
    {
        let db = Arc::clone(self);
        tokio::task::spawn_blocking(move || db.read_blocking(f))
            .await
            .map_err(|_| DbError::Closed)?
    }

    pub fn read_blocking<R>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, DbError>,
    ) -> Result<R, DbError> {
        let conn = match self.readers.lock().expect("readers lock").pop() {
            Some(c) => c,
            None => open_connection(
                &self.path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?,
        };
        let result = f(&conn);
        let mut readers = self.readers.lock().expect("readers lock");
        if readers.len() < self.kept_readers {
            readers.push(conn);
        }
        result
    }

    /// Stops the writer after the jobs already sent; later writes fail with `Closed`.
    pub fn close(&self) {
        if let Some((stop, handle)) = self.checkpointer.lock().expect("checkpointer lock").take() {
            drop(stop);
            let _ = handle.join();
        }
        self.jobs.lock().expect("jobs lock").take();
        if let Some(handle) = self.writer.lock().expect("writer lock").take() {
            let _ = handle.join();
        }
        self.readers.lock().expect("readers lock").clear();
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        self.close();
    }
}

fn in_savepoint<R>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<R, DbError>,
) -> Result<R, DbError> {
    run_cached(conn, "SAVEPOINT job")?;
    match f(conn) {
        Ok(r) => {
            run_cached(conn, "RELEASE job")?;
            Ok(r)
        }
        Err(e) => {
            run_cached(conn, "ROLLBACK TO job")?;
            run_cached(conn, "RELEASE job")?;
            Err(e)
        }
    }
}

/// How often the WAL is folded back into the database while the server runs.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// WAL length (pages) at which the writer finishes the checkpoint itself, so the WAL restarts.
const WRITER_CHECKPOINT_PAGES: i64 = 4000;

fn checkpoint_loop(conn: Connection, stop: mpsc::Receiver<()>) {
    // PASSIVE never blocks the writer or readers; it copies what it can.
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "background checkpoint failed");
        }
    }
}

fn writer_loop(conn: Connection, jobs: mpsc::Receiver<Job>, set_synchronous: SetSynchronous) {
    let mut synchronous_full = true;
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Relaxed jobs commit first, on their own, so the pipeline's steps never wait for
        // the fsync that acknowledged orders need. Jobs waiting together were sent
        // concurrently, so no caller relies on an order between them.
        let (synced, relaxed): (Vec<Job>, Vec<Job>) = batch.into_iter().partition(|j| j.synced);
        for (group, full) in [(relaxed, false), (synced, true)] {
            if !group.is_empty() {
                commit_group(&conn, group, full, &mut synchronous_full, set_synchronous);
            }
        }
    }
    // A clean stop: fold the WAL back so the next start is quick.
    let _ = conn.pragma_update(None, "wal_checkpoint", "TRUNCATE");
}

/// Runs `group` in one transaction and answers every job once the commit is done.
fn commit_group(
    conn: &Connection,
    group: Vec<Job>,
    full: bool,
    synchronous_full: &mut bool,
    set_synchronous: SetSynchronous,
) {
    // FULL makes this COMMIT fsync the WAL; NORMAL leaves it to the OS.
    if full != *synchronous_full {
        match set_synchronous(conn, full) {
            Ok(()) => *synchronous_full = full,
            // A synced job is answered as fsync'd (a 202); without FULL its commit might
            // not be, so the whole group fails instead and its callers answer 503.
            Err(e) if full => {
                tracing::error!(error = %e, "could not switch to synchronous=FULL; failing the synced group");
                refuse_group(conn, group, Arc::new(e));
                return;
            }
            // A relaxed group committed under FULL is only slower.
            Err(e) => tracing::warn!(error = %e, "could not switch to synchronous=NORMAL"),
        }
    }
    if let Err(e) = run_cached(conn, "BEGIN IMMEDIATE") {
        tracing::error!(error = %e, "could not begin a transaction");
        refuse_group(conn, group, Arc::new(e));
        return;
    }
    let durability = if full { "synced" } else { "relaxed" };
    metrics::counter!("orderflow_db_jobs_total", "durability" => durability)
        .increment(group.len() as u64);
    metrics::counter!("orderflow_db_commits_total", "durability" => durability).increment(1);
    let completions: Vec<Completion> = group.into_iter().map(|job| (job.run)(conn)).collect();
    let commit_error = run_cached(conn, "COMMIT").err().map(Arc::new);
    if let Some(e) = &commit_error {
        tracing::error!(error = %e, "commit failed; rolling back the group");
        let _ = run_cached(conn, "ROLLBACK");
    }
    for c in completions {
        c(commit_error.as_ref());
    }
}

/// Answers every job of `group` with `error`. Each job still runs so it can answer, inside
/// a savepoint that is rolled back, so nothing of it is kept.
fn refuse_group(conn: &Connection, group: Vec<Job>, error: Arc<rusqlite::Error>) {
    let began = run_cached(conn, "SAVEPOINT refused").is_ok();
    let completions: Vec<Completion> = group.into_iter().map(|job| (job.run)(conn)).collect();
    if began {
        let _ = run_cached(conn, "ROLLBACK TO refused");
        let _ = run_cached(conn, "RELEASE refused");
    }
    for c in completions {
        c(Some(&error));
    }
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for p in [
        path.to_owned(),
        path.with_extension("db-wal"),
        path.with_extension("db-shm"),
    ] {
        if p.exists() {
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
        }
    }
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) {}

/// Milliseconds since the epoch: the unit every timestamp column uses.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &tempfile::TempDir) -> Arc<Db> {
        Db::open(&dir.path().join("t.db"), |c| {
            c.execute_batch("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY)")
        })
        .unwrap()
    }

    /// Concurrent reads each take a connection; afterwards as many as the bound stay open
    /// for the next reads, and no more. The bound is this machine's (`KEPT_READERS` for its
    /// cores); here it is set above the eight that used to be fixed, as on a bigger machine.
    #[test]
    fn idle_readers_are_kept_up_to_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = open(&dir);
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(db.kept_readers, KEPT_READERS.on(cores));
        assert_eq!(KEPT_READERS.on(16), 64, "four a core");
        let bound = 11;
        Arc::get_mut(&mut db)
            .expect("no other handle yet")
            .kept_readers = bound;
        let reads = bound + 3;
        let all_in = Arc::new(std::sync::Barrier::new(reads));
        std::thread::scope(|scope| {
            for _ in 0..reads {
                let (db, all_in) = (Arc::clone(&db), Arc::clone(&all_in));
                scope.spawn(move || {
                    db.read_blocking(|c| {
                        all_in.wait(); // every read holds its connection at once
                        Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))?)
                    })
                    .unwrap()
                });
            }
        });
        assert_eq!(db.readers.lock().unwrap().len(), bound);
    }

    #[tokio::test]
    async fn a_failing_job_does_not_undo_its_neighbours_in_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir);
        let mut handles = Vec::new();
        for i in 0..50 {
            let db = Arc::clone(&db);
            handles.push(tokio::spawn(async move {
                db.write(move |c| {
                    c.execute("INSERT INTO t (k) VALUES (?1)", [format!("k{}", i % 25)])?;
                    Ok(())
                })
                .await
                .is_ok()
            }));
        }
        let mut ok = 0;
        for h in handles {
            ok += h.await.unwrap() as usize;
        }
        assert_eq!(ok, 25, "each key is inserted once; duplicates fail alone");
        let n: i64 = db
            .read(|c| Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(n, 25);
    }

    #[tokio::test]
    async fn a_synced_write_commits_with_synchronous_full_and_a_relaxed_one_without() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir);
        let mode = |c: &Connection| -> Result<i64, DbError> {
            Ok(c.pragma_query_value(None, "synchronous", |r| r.get(0))?)
        };
        assert_eq!(db.write_relaxed(mode).await.unwrap(), 1, "NORMAL");
        assert_eq!(db.write(mode).await.unwrap(), 2, "FULL");
        assert_eq!(db.write_relaxed(mode).await.unwrap(), 1, "NORMAL again");
    }

    #[tokio::test]
    async fn a_synced_group_fails_and_keeps_nothing_when_synchronous_full_cannot_be_set() {
        // The seam: a writer whose switch to FULL fails (SQLite can refuse a pragma, e.g.
        // SQLITE_BUSY or SQLITE_NOMEM; nothing from outside provokes that reliably).
        fn refuse_full(conn: &Connection, full: bool) -> rusqlite::Result<()> {
            if full {
                Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                    Some("synchronous=FULL refused by the test".into()),
                ))
            } else {
                set_synchronous(conn, full)
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_with(
            &dir.path().join("t.db"),
            |c| c.execute_batch("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY)"),
            refuse_full,
        )
        .unwrap();
        // A relaxed write switches to NORMAL, so the next synced group must switch back.
        db.write_relaxed(|c| Ok(c.execute("INSERT INTO t (k) VALUES ('relaxed')", [])?))
            .await
            .unwrap();
        let synced = db
            .write(|c| Ok(c.execute("INSERT INTO t (k) VALUES ('synced')", [])?))
            .await;
        assert!(matches!(synced, Err(DbError::Commit(_))), "{synced:?}");
        let keys: Vec<String> = db
            .read(|c| {
                let mut stmt = c.prepare("SELECT k FROM t ORDER BY k")?;
                let rows = stmt
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                Ok(rows)
            })
            .await
            .unwrap();
        assert_eq!(
            keys,
            vec!["relaxed".to_owned()],
            "the failed group kept nothing"
        );
        db.write_relaxed(|c| Ok(c.execute("INSERT INTO t (k) VALUES ('after')", [])?))
            .await
            .expect("the writer goes on");
    }

    #[tokio::test]
    async fn the_wal_is_checkpointed_in_the_background_not_by_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir);
        let auto: i64 = db
            .write(|c| Ok(c.pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(
            auto, WRITER_CHECKPOINT_PAGES,
            "the writer checkpoints only a long WAL"
        );
        let before = std::fs::metadata(db.path()).unwrap().len();
        for i in 0..100 {
            let key = format!("{i:04}{}", "x".repeat(2000));
            db.write_relaxed(move |c| Ok(c.execute("INSERT INTO t (k) VALUES (?1)", [key])?))
                .await
                .unwrap();
        }
        // Only a checkpoint moves pages from the WAL into the database file, and these few
        // pages are far below the writer's threshold.
        let grew = async {
            while std::fs::metadata(db.path()).unwrap().len() < before + 100_000 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(CHECKPOINT_EVERY * 10, grew)
            .await
            .expect("the background checkpoint copied the WAL into the database file");
    }

    #[tokio::test]
    async fn relaxed_jobs_sent_with_synced_ones_never_wait_in_a_synced_commit() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir);
        let mut synced = Vec::new();
        let mut relaxed = Vec::new();
        for i in 0..100 {
            let d = Arc::clone(&db);
            synced.push(tokio::spawn(async move {
                d.write(move |c| Ok(c.execute("INSERT INTO t (k) VALUES (?1)", [i.to_string()])?))
                    .await
                    .unwrap()
            }));
            let d = Arc::clone(&db);
            relaxed.push(tokio::spawn(async move {
                d.write_relaxed(|c| {
                    Ok(c.pragma_query_value(None, "synchronous", |r| r.get::<_, i64>(0))?)
                })
                .await
                .unwrap()
            }));
        }
        for h in synced {
            h.await.unwrap();
        }
        for h in relaxed {
            assert_eq!(
                h.await.unwrap(),
                1,
                "a relaxed job ran under synchronous=FULL"
            );
        }
    }

    #[tokio::test]
    async fn writes_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = open(&dir);
            db.write(|c| Ok(c.execute("INSERT INTO t (k) VALUES ('x')", [])?))
                .await
                .unwrap();
            db.close();
        }
        let db = open(&dir);
        let n: i64 = db
            .read(|c| Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(n, 1);
    }

    #[tokio::test]
    async fn the_database_file_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir);
        let mode = std::fs::metadata(db.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
    }
}
