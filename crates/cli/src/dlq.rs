//! `orderflow dlq`: the orders queue's dead letters and the stream's on-failure destination,
//! listed with why each failed and how often it was tried; shown, redriven or purged.

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::BoxError;
use crate::client::ServerArgs;

#[derive(Debug, Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    command: DlqCommand,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Source {
    /// The orders queue's dead-letter queue (messages the store handler kept failing).
    Orders,
    /// The change stream's on-failure destination (records that kept failing to publish).
    Stream,
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// List dead letters with their reason and receive count (both sources unless --source).
    List {
        #[arg(long, value_enum)]
        source: Option<Source>,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print one dead letter as JSON: an orders message id or a stream sequence number.
    Show { id: String },
    /// Put dead letters back: orders onto the queue, stream records through the publisher.
    Redrive {
        /// Message ids or sequence numbers (the source is told by the id's form).
        ids: Vec<String>,
        /// Every dead letter of --source (or of both).
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        #[arg(long, value_enum, requires = "all")]
        source: Option<Source>,
    },
    /// Delete dead letters for good.
    Purge {
        ids: Vec<String>,
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        #[arg(long, value_enum, requires = "all")]
        source: Option<Source>,
    },
}

/// Stream sequence numbers are digits only; queue message ids are UUIDs.
fn source_of(id: &str) -> Source {
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
        Source::Stream
    } else {
        Source::Orders
    }
}

fn sources(source: Option<Source>) -> Vec<Source> {
    source.map_or_else(|| vec![Source::Orders, Source::Stream], |s| vec![s])
}

struct Api {
    client: reqwest::Client,
    server: ServerArgs,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Result<Value, String>, BoxError> {
        crate::client::request_json(&self.client, &self.server, method, path, body).await
    }
}

/// One dead letter from either source, as the table prints it.
fn row(source: Source, v: &Value) -> (String, String, u64, String) {
    match source {
        Source::Orders => {
            let count = v["receiveCount"].as_u64().unwrap_or(0);
            let reason = v["lastError"].as_str().map_or_else(
                || format!("no failure recorded; received {count} times without being deleted"),
                str::to_owned,
            );
            (
                v["messageId"].as_str().unwrap_or("").to_owned(),
                v["deadLetteredAt"].as_str().unwrap_or("").to_owned(),
                count,
                reason,
            )
        }
        Source::Stream => (
            v["sequenceNumber"].as_str().unwrap_or("").to_owned(),
            v["failedAt"].as_str().unwrap_or("").to_owned(),
            v["attempts"].as_u64().unwrap_or(0),
            v["lastError"]
                .as_str()
                .unwrap_or("no reason recorded")
                .to_owned(),
        ),
    }
}

fn list_path(source: Source) -> (&'static str, &'static str) {
    match source {
        Source::Orders => ("/queue/dlq", "messages"),
        Source::Stream => ("/stream/failures", "records"),
    }
}

fn source_name(source: Source) -> &'static str {
    match source {
        Source::Orders => "orders",
        Source::Stream => "stream",
    }
}

pub async fn run(args: DlqArgs) -> Result<ExitCode, BoxError> {
    let api = Api {
        client: args.server.client()?,
        server: args.server,
    };
    let mut failed = false;
    match args.command {
        DlqCommand::List { source, json } => {
            if !json {
                println!(
                    "{:<7} {:<36} {:<24} {:>8}  REASON",
                    "SOURCE", "ID", "DEAD SINCE", "RECEIVES"
                );
            }
            for source in sources(source) {
                let (path, key) = list_path(source);
                match api.call(reqwest::Method::GET, path, None).await? {
                    Ok(v) => {
                        for item in v[key].as_array().cloned().unwrap_or_default() {
                            let (id, since, count, reason) = row(source, &item);
                            if json {
                                let mut item = item;
                                item["source"] = json!(source_name(source));
                                item["reason"] = json!(reason);
                                println!("{item}");
                            } else {
                                println!(
                                    "{:<7} {:<36} {:<24} {:>8}  {}",
                                    source_name(source),
                                    id,
                                    since,
                                    count,
                                    reason.replace('\n', " ")
                                );
                            }
                        }
                    }
                    Err(e) => {
                        eprintln!("{e}");
                        failed = true;
                    }
                }
            }
        }
        DlqCommand::Show { id } => {
            let path = match source_of(&id) {
                Source::Orders => format!("/queue/dlq/{id}"),
                Source::Stream => format!("/stream/failures/{id}"),
            };
            match api.call(reqwest::Method::GET, &path, None).await? {
                Ok(v) => println!("{}", serde_json::to_string_pretty(&v)?),
                Err(e) => {
                    eprintln!("{e}");
                    failed = true;
                }
            }
        }
        DlqCommand::Redrive { ids, all, source } => {
            let targets = targets(&ids, all, source)?;
            for (source, ids) in targets {
                let (path, body) = match source {
                    Source::Orders => (
                        "/queue/dlq/redrive",
                        ids.map(|ids| json!({"messageIds": ids})),
                    ),
                    Source::Stream => (
                        "/stream/failures/redrive",
                        ids.map(|ids| json!({"sequenceNumbers": ids})),
                    ),
                };
                match api.call(reqwest::Method::POST, path, body).await? {
                    Ok(v) => match source {
                        Source::Orders => {
                            println!("orders: {} redriven to the queue", v["redriven"])
                        }
                        Source::Stream => {
                            let redriven = v["redriven"].as_array().map_or(0, Vec::len);
                            println!("stream: {redriven} republished");
                            for f in v["stillFailing"].as_array().cloned().unwrap_or_default() {
                                failed = true;
                                eprintln!(
                                    "stream: {} failed again: {}",
                                    f["sequenceNumber"].as_str().unwrap_or("?"),
                                    f["reason"].as_str().unwrap_or("?")
                                );
                            }
                            for n in v["notFound"].as_array().cloned().unwrap_or_default() {
                                failed = true;
                                eprintln!(
                                    "stream: {} is not a kept failure",
                                    n.as_str().unwrap_or("?")
                                );
                            }
                        }
                    },
                    Err(e) => {
                        eprintln!("{e}");
                        failed = true;
                    }
                }
            }
        }
        DlqCommand::Purge { ids, all, source } => {
            for (source, ids) in targets(&ids, all, source)? {
                let (path, body) = match source {
                    Source::Orders => ("/queue/dlq", ids.map(|ids| json!({"messageIds": ids}))),
                    Source::Stream => (
                        "/stream/failures",
                        ids.map(|ids| json!({"sequenceNumbers": ids})),
                    ),
                };
                match api.call(reqwest::Method::DELETE, path, body).await? {
                    Ok(v) => println!("{}: {} purged", source_name(source), v["purged"]),
                    Err(e) => {
                        eprintln!("{e}");
                        failed = true;
                    }
                }
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Which sources to act on, each with its ids (`None` = all of it).
type Targets = Vec<(Source, Option<Vec<String>>)>;

fn targets(ids: &[String], all: bool, source: Option<Source>) -> Result<Targets, BoxError> {
    if all {
        return Ok(sources(source).into_iter().map(|s| (s, None)).collect());
    }
    if ids.is_empty() {
        return Err("name the dead letters (message ids or sequence numbers) or pass --all".into());
    }
    let mut by_source: Targets = Vec::new();
    for source in [Source::Orders, Source::Stream] {
        let mine: Vec<String> = ids
            .iter()
            .filter(|id| source_of(id) == source)
            .cloned()
            .collect();
        if !mine.is_empty() {
            by_source.push((source, Some(mine)));
        }
    }
    Ok(by_source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_tell_their_source() {
        assert_eq!(source_of("000000000000000000042"), Source::Stream);
        assert_eq!(
            source_of("8f3c2a1e-6b5d-4e7f-9a0b-1c2d3e4f5a6b"),
            Source::Orders
        );
        let t = targets(&["1".into(), "abc".into()], false, None).unwrap();
        assert_eq!(t.len(), 2);
        assert!(targets(&[], false, None).is_err());
        assert_eq!(targets(&[], true, Some(Source::Stream)).unwrap().len(), 1);
    }
}
