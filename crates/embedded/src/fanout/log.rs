//! `log` subscriptions: one JSON line per message, to stdout or appended to a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::fanout::spec::LogTarget;

/// Writes lines whole: one writer at a time, so lines of concurrent deliveries never mix.
#[derive(Debug)]
pub struct LogWriter {
    dir: PathBuf,
    lock: tokio::sync::Mutex<()>,
}

impl LogWriter {
    /// `dir` holds the files of subscriptions whose endpoint is a relative path.
    pub fn new(dir: PathBuf) -> Self {
        LogWriter {
            dir,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub async fn write(&self, endpoint: &str, line: String) -> Result<(), String> {
        let mut line = line.replace('\n', "\\n");
        line.push('\n');
        let _guard = self.lock.lock().await;
        match LogTarget::of(endpoint, &self.dir) {
            LogTarget::Stdout => tokio::task::spawn_blocking(move || {
                let mut out = std::io::stdout().lock();
                out.write_all(line.as_bytes())
                    .and_then(|()| out.flush())
                    .map_err(|e| format!("cannot write to stdout: {e}"))
            })
            .await
            .map_err(|e| format!("log writer failed: {e}"))?,
            LogTarget::File(path) => tokio::task::spawn_blocking(move || append(&path, &line))
                .await
                .map_err(|e| format!("log writer failed: {e}"))?,
        }
    }
}

fn append(path: &Path, line: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    file.write_all(line.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
