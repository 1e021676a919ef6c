//! `orderflow backup` and `orderflow restore`: a consistent copy of the database, from a
//! running server (`--url`) or a stopped data directory, and its restore.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use orderflow_embedded::backup::{self, Progress};

use crate::BoxError;
use crate::client::ServerArgs;

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The file to write (must not exist yet).
    dest: PathBuf,
    /// Copy a stopped server's data directory instead of asking a running server (`--url`).
    #[arg(long, conflicts_with = "url")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A file written by `orderflow backup`.
    src: PathBuf,
    /// The data directory to restore into; no server may be running on it.
    #[arg(long, env = "ORDERFLOW_DATA_DIR")]
    data_dir: PathBuf,
}

/// Prints progress on stderr: redrawn in place on a terminal, a line every few seconds
/// otherwise.
struct Meter {
    what: &'static str,
    last: Option<Instant>,
    tty: bool,
}

impl Meter {
    fn new(what: &'static str) -> Self {
        Meter {
            what,
            last: None,
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn show(&mut self, p: Progress) {
        let every = if self.tty {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(2)
        };
        let finished = p.total > 0 && p.done >= p.total;
        if !finished && self.last.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        self.last = Some(Instant::now());
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let percent = (p.done * 100).checked_div(p.total).unwrap_or(0);
        let line = format!(
            "{}: {percent:>3}% ({:.1} of {:.1} MiB)",
            self.what,
            mib(p.done),
            mib(p.total)
        );
        let mut err = std::io::stderr();
        let _ = if self.tty {
            write!(err, "\r{line}{}", if finished { "\n" } else { "" })
        } else {
            writeln!(err, "{line}")
        };
    }
}

pub async fn backup(args: BackupArgs) -> Result<ExitCode, BoxError> {
    if args.dest.exists() {
        return Err(format!("{} already exists; choose a new file", args.dest.display()).into());
    }
    if let Some(data_dir) = args.data_dir {
        let dest = args.dest.clone();
        tokio::task::spawn_blocking(move || {
            let mut meter = Meter::new("backup");
            backup::backup_data_dir(&data_dir, &dest, |p| meter.show(p))
        })
        .await??;
    } else {
        download(&args.server, &args.dest).await?;
    }
    let dest = args.dest.clone();
    let version = tokio::task::spawn_blocking(move || backup::check(&dest)).await??;
    println!(
        "backup written to {} (integrity ok, schema {version})",
        args.dest.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `POST /backup` into `dest`, through a `.partial` file renamed once complete and synced.
async fn download(server: &ServerArgs, dest: &Path) -> Result<(), BoxError> {
    let client = server.client()?;
    let url = server.endpoint("/backup");
    let mut response = client
        .post(&url)
        // Every POST must say JSON (the cross-site guard); this one carries no body.
        .header("content-type", "application/json")
        // The whole database comes down this response: the client's usual 30 s is too short.
        .timeout(Duration::from_secs(24 * 3600))
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {}", orderflow_core::error_chain(&e)))?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        return Err(crate::client::describe_error(status, &text).into());
    }
    let total = response.content_length().unwrap_or(0);
    let partial = dest.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    // Owner-only whatever the umask: the file holds every customer's data.
    let mut file = orderflow_embedded::private::create_private_file(&partial)
        .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
    let mut meter = Meter::new("backup");
    let mut done = 0u64;
    while let Some(chunk) = response.chunk().await? {
        file.write_all(&chunk)?;
        done += chunk.len() as u64;
        meter.show(Progress { done, total });
    }
    if total > 0 && done != total {
        return Err(
            format!("the server sent {done} of {total} bytes; the backup is incomplete").into(),
        );
    }
    file.sync_all()?;
    drop(file);
    std::fs::rename(&partial, dest)?;
    Ok(())
}

pub async fn restore(args: RestoreArgs) -> Result<ExitCode, BoxError> {
    let (src, data_dir) = (args.src.clone(), args.data_dir.clone());
    let version = tokio::task::spawn_blocking(move || {
        let mut meter = Meter::new("restore");
        backup::restore(&src, &data_dir, |p| meter.show(p))
    })
    .await??;
    println!(
        "restored {} into {} (integrity ok, schema {version}); start the server on it",
        args.src.display(),
        args.data_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
