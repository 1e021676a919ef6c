//! Backups and restores of the database.
//!
//! A running server writes a consistent snapshot with `VACUUM INTO` on a read connection:
//! in WAL mode a reader never blocks the writer, so ingestion goes on, and the snapshot is
//! the database as of one transaction (every order acknowledged before it began is in it).
//! A stopped data directory is copied with SQLite's online backup API, page batch by page
//! batch, which can report progress. A restore refuses a data directory a server holds,
//! checks the copy with `PRAGMA integrity_check` before it replaces anything, and swaps the
//! file in with a rename.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::db::DbError;
use crate::{DATABASE_FILE, Engine};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} is in use by a running orderflow server: back it up with --url, or stop it")]
    Live(PathBuf),
    #[error("there is no orderflow database in {0}")]
    NoDatabase(PathBuf),
    #[error("{0} already exists; choose a new file")]
    Exists(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot read the database")]
    Db(#[from] DbError),
    #[error("{path} fails PRAGMA integrity_check: {report}")]
    Damaged { path: PathBuf, report: String },
    #[error("{path} was written by a newer orderflow (schema {found}, this one knows {known})")]
    Newer {
        path: PathBuf,
        found: i64,
        known: i64,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// How far a copy is, in bytes (or pages times the page size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

/// Locks `data_dir` as `Engine::open` does; `Live` when a server holds it.
fn lock(data_dir: &Path) -> Result<File, BackupError> {
    let path = data_dir.join("orderflow.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(BackupError::Live(data_dir.to_owned())),
        Err(std::fs::TryLockError::Error(source)) => Err(BackupError::Io { path, source }),
    }
}

/// Makes a rename or a new file survive a power loss.
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent()
        && let Ok(d) = File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
    {
        let _ = d.sync_all();
    }
}

fn sync_file(path: &Path) -> Result<(), BackupError> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io(path))
}

/// `PRAGMA integrity_check` and the schema version of the database at `path`.
pub fn check(path: &Path) -> Result<i64, BackupError> {
    if !path.is_file() {
        return Err(BackupError::NoDatabase(path.to_owned()));
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let report: Vec<String> = conn
        .prepare("PRAGMA integrity_check")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()
        .map_err(|e| BackupError::Damaged {
            path: path.to_owned(),
            report: e.to_string(),
        })?;
    if report != ["ok"] {
        return Err(BackupError::Damaged {
            path: path.to_owned(),
            report: report.join("; "),
        });
    }
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = crate::schema::latest_version();
    if found > known {
        return Err(BackupError::Newer {
            path: path.to_owned(),
            found,
            known,
        });
    }
    Ok(found)
}

impl Engine {
    /// Writes a consistent snapshot of the running database to `dest` (which must not
    /// exist) and fsyncs it; returns its size. Writes go on meanwhile.
    pub async fn snapshot(&self, dest: PathBuf) -> Result<u64, BackupError> {
        if dest.exists() {
            return Err(BackupError::Exists(dest));
        }
        let target = dest.to_string_lossy().into_owned();
        self.db
            .read(move |c| {
                c.execute("VACUUM INTO ?1", [target])?;
                Ok(())
            })
            .await?;
        sync_file(&dest)?;
        sync_dir(&dest);
        Ok(std::fs::metadata(&dest).map_err(io(&dest))?.len())
    }
}

/// Copies the database of a stopped data directory to `dest`, reporting progress.
pub fn backup_data_dir(
    data_dir: &Path,
    dest: &Path,
    mut progress: impl FnMut(Progress),
) -> Result<(), BackupError> {
    if dest.exists() {
        return Err(BackupError::Exists(dest.to_owned()));
    }
    let source_path = data_dir.join(DATABASE_FILE);
    if !source_path.is_file() {
        return Err(BackupError::NoDatabase(data_dir.to_owned()));
    }
    let _lock = lock(data_dir)?;
    // Read-write, so a WAL left by a stopped server is read (we hold the lock: no writer).
    let source = Connection::open_with_flags(&source_path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    let page_size: i64 = source.pragma_query_value(None, "page_size", |r| r.get(0))?;
    let page_size = page_size.max(512) as u64;
    let partial = dest.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    // SQLite would create the file by the umask (world-readable under the usual 022).
    crate::private::create_private_file(&partial).map_err(io(&partial))?;
    {
        let mut target = Connection::open(&partial)?;
        let backup = rusqlite::backup::Backup::new(&source, &mut target)?;
        loop {
            let step = backup.step(1024)?;
            let p = backup.progress();
            let total = p.pagecount.max(0) as u64 * page_size;
            let left = p.remaining.max(0) as u64 * page_size;
            progress(Progress {
                done: total - left,
                total,
            });
            match step {
                rusqlite::backup::StepResult::Done => break,
                rusqlite::backup::StepResult::More => {}
                // Only we hold the data directory; a busy source is another reader.
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
    sync_file(&partial)?;
    std::fs::rename(&partial, dest).map_err(io(dest))?;
    sync_dir(dest);
    Ok(())
}

/// Replaces the database of `data_dir` with the backup at `src`, after checking it. Refuses
/// while a server holds `data_dir`. Returns the backup's schema version.
pub fn restore(
    src: &Path,
    data_dir: &Path,
    mut progress: impl FnMut(Progress),
) -> Result<i64, BackupError> {
    let version = check(src)?;
    crate::create_private_dir(data_dir).map_err(io(data_dir))?;
    let _lock = lock(data_dir)?;
    let db_path = data_dir.join(DATABASE_FILE);
    let incoming = db_path.with_extension("db.restoring");
    {
        use std::io::{Read, Write};
        let mut from = File::open(src).map_err(io(src))?;
        let total = from.metadata().map_err(io(src))?.len();
        let mut to = crate::private_file_options()
            .write(true)
            .truncate(true)
            .open(&incoming)
            .map_err(io(&incoming))?;
        let mut buf = vec![0u8; 1 << 20];
        let mut done = 0;
        loop {
            let n = from.read(&mut buf).map_err(io(src))?;
            if n == 0 {
                break;
            }
            to.write_all(&buf[..n]).map_err(io(&incoming))?;
            done += n as u64;
            progress(Progress { done, total });
        }
        to.sync_all().map_err(io(&incoming))?;
    }
    // The old database's WAL would be replayed onto the restored file: it goes first.
    for leftover in ["db-wal", "db-shm"] {
        let path = db_path.with_extension(leftover);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(BackupError::Io { path, source }),
        }
    }
    std::fs::rename(&incoming, &db_path).map_err(io(&db_path))?;
    sync_dir(&db_path);
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EngineConfig;

    fn order(i: usize) -> orderflow_core::Order {
        orderflow_core::Order::parse(
            format!(
                r#"{{"orderID":"b-{i:05}","customerId":"c","items":[{{"sku":"A","quantity":1,"unitPrice":2}}],"currency":"EUR"}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_stopped_data_directory_is_copied_with_progress_and_restored() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        {
            let engine = Engine::open(EngineConfig::new(&data)).unwrap();
            for i in 0..50 {
                engine
                    .queue()
                    .send_order(&order(i), Default::default())
                    .await
                    .unwrap();
            }
            engine.shutdown().await;
        }
        let copy = dir.path().join("copy.db");
        let mut seen = Vec::new();
        backup_data_dir(&data, &copy, |p| seen.push(p)).unwrap();
        let last = seen.last().unwrap();
        assert!(last.total > 0 && last.done == last.total, "{seen:?}");
        assert!(matches!(
            backup_data_dir(&data, &copy, |_| {}),
            Err(BackupError::Exists(_))
        ));

        let restored = dir.path().join("restored");
        restore(&copy, &restored, |_| {}).unwrap();
        let engine = Engine::open(EngineConfig::new(&restored)).unwrap();
        assert_eq!(engine.queue().stats().await.unwrap().visible, 50);
    }

    #[tokio::test]
    async fn a_live_data_directory_is_neither_copied_offline_nor_restored_over() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let engine = Engine::open(EngineConfig::new(&data)).unwrap();
        let snapshot = dir.path().join("snap.db");
        engine.snapshot(snapshot.clone()).await.unwrap();
        assert!(matches!(
            backup_data_dir(&data, &dir.path().join("x.db"), |_| {}),
            Err(BackupError::Live(_))
        ));
        assert!(matches!(
            restore(&snapshot, &data, |_| {}),
            Err(BackupError::Live(_))
        ));
        engine.shutdown().await;
    }

    #[tokio::test]
    async fn a_damaged_backup_is_refused_before_anything_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        {
            let engine = Engine::open(EngineConfig::new(&data)).unwrap();
            for i in 0..20 {
                engine
                    .queue()
                    .send_order(&order(i), Default::default())
                    .await
                    .unwrap();
            }
            let snapshot = dir.path().join("snap.db");
            engine.snapshot(snapshot).await.unwrap();
            engine.shutdown().await;
        }
        let snapshot = dir.path().join("snap.db");
        let mut bytes = std::fs::read(&snapshot).unwrap();
        // Scribble over the header of every page after the first (b-tree pages of the
        // tables and indexes): their page type byte becomes invalid.
        let page_size = u16::from_be_bytes([bytes[16], bytes[17]]) as usize;
        for page in (page_size..bytes.len()).step_by(page_size) {
            for b in &mut bytes[page..page + 8] {
                *b = 0xA5;
            }
        }
        let damaged = dir.path().join("damaged.db");
        std::fs::write(&damaged, bytes).unwrap();
        let before = std::fs::read(data.join(DATABASE_FILE)).unwrap();

        let refused = restore(&damaged, &data, |_| {});

        assert!(
            matches!(
                refused,
                Err(BackupError::Damaged { .. } | BackupError::Sqlite(_))
            ),
            "{refused:?}"
        );
        assert_eq!(
            std::fs::read(data.join(DATABASE_FILE)).unwrap(),
            before,
            "untouched"
        );
        let engine = Engine::open(EngineConfig::new(&data)).unwrap();
        assert_eq!(engine.queue().stats().await.unwrap().visible, 20);
    }
}
