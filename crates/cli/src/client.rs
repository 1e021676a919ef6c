//! The client commands: `submit` and `orders`, talking to a running server over HTTP.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;

use crate::{BoxError, render};

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Base URL of a running `orderflow serve`.
    #[arg(
        long,
        env = "ORDERFLOW_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// API key for a server started with one (sent as `x-api-key`).
    #[arg(long, env = "ORDERFLOW_API_KEY", hide_env_values = true, global = true)]
    api_key: Option<String>,
    /// Read the API key from this file.
    #[arg(
        long,
        env = "ORDERFLOW_API_KEY_FILE",
        global = true,
        conflicts_with = "api_key"
    )]
    api_key_file: Option<PathBuf>,
}

impl ServerArgs {
    /// An HTTP client that sends the API key, if one was given, with every request.
    pub fn client(&self) -> Result<reqwest::Client, BoxError> {
        let key = match (&self.api_key, &self.api_key_file) {
            (Some(key), _) => Some(key.trim().to_owned()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read the API key file {}: {e}", path.display()))?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        client(key.as_deref())
    }

    /// `path` on the server, e.g. `/orders`.
    pub fn endpoint(&self, path: &str) -> String {
        endpoint(&self.url, path)
    }
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// File with one order, a JSON array of orders, or JSON lines; `-` or nothing reads stdin.
    #[arg(default_value = "-")]
    file: PathBuf,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct OrdersArgs {
    #[command(subcommand)]
    command: OrdersCommand,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Subcommand)]
enum OrdersCommand {
    /// Print one stored order as JSON.
    Get {
        /// The orderID.
        id: String,
    },
    /// List the most recent stored orders.
    List {
        /// How many orders (newest first).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn client(api_key: Option<&str>) -> Result<reqwest::Client, BoxError> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(key) = api_key {
        let mut value = reqwest::header::HeaderValue::from_str(key)
            .map_err(|_| "the API key must be printable ASCII")?;
        value.set_sensitive(true);
        headers.insert("x-api-key", value);
    }
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .user_agent(concat!("orderflow-cli/", env!("CARGO_PKG_VERSION")))
        .timeout(std::time::Duration::from_secs(30))
        .build()?)
}

fn endpoint(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// Splits the input into orders: a JSON array, one JSON value, or JSON lines.
fn split_orders(text: &str) -> Result<Vec<Value>, BoxError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("no orders in the input".into());
    }
    if let Ok(value) = serde_json::from_str::<Value>(trimmed) {
        return Ok(match value {
            Value::Array(items) => items,
            other => vec![other],
        });
    }
    trimmed
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| format!("line {}: not JSON: {e}", i + 1).into())
        })
        .collect()
}

/// Sends a request to the server, with `body` as JSON when given: the status and the body's
/// text for any answer, an error only when the server cannot be reached.
pub async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<String>,
) -> Result<(reqwest::StatusCode, String), BoxError> {
    // The server takes every POST as JSON only, with or without a body (SECURITY.md).
    let json = body.is_some() || method == reqwest::Method::POST;
    let mut request = client.request(method, url);
    if json {
        request = request
            .header("content-type", "application/json")
            .body(body.unwrap_or_default());
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {}", orderflow_core::error_chain(&e)))?;
    let status = response.status();
    Ok((status, response.text().await?))
}

/// `path` on the server: the JSON body of a success, or the server's error rendered for a
/// person.
pub async fn request_json(
    client: &reqwest::Client,
    server: &ServerArgs,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<Result<Value, String>, BoxError> {
    let (status, text) = send(
        client,
        method,
        &server.endpoint(path),
        body.map(|b| b.to_string()),
    )
    .await?;
    if status.is_success() {
        Ok(Ok(serde_json::from_str(&text)?))
    } else {
        Ok(Err(describe_error(status, &text)))
    }
}

pub fn describe_error(status: reqwest::StatusCode, body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(v) => {
            let mut out = format!(
                "HTTP {}: {}",
                status.as_u16(),
                render::text(v["error"].as_str().unwrap_or(body))
            );
            if let Some(details) = v["details"].as_array() {
                for d in details {
                    out.push_str(&format!(
                        "\n  {}: {}",
                        render::field(d, "field", "?"),
                        render::field(d, "message", "?")
                    ));
                }
            }
            out
        }
        Err(_) => format!("HTTP {}: {}", status.as_u16(), render::text(body)),
    }
}

pub async fn submit(args: SubmitArgs) -> Result<ExitCode, BoxError> {
    let text = if args.file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s
    } else {
        std::fs::read_to_string(&args.file)
            .map_err(|e| format!("cannot read {}: {e}", args.file.display()))?
    };
    let orders = split_orders(&text)?;
    let client = args.server.client()?;
    let url = endpoint(&args.server.url, "/orders");
    let mut failures = 0;
    for (i, order) in orders.iter().enumerate() {
        let (status, body) = send(
            &client,
            reqwest::Method::POST,
            &url,
            Some(order.to_string()),
        )
        .await?;
        if status == reqwest::StatusCode::ACCEPTED {
            let v: Value = serde_json::from_str(&body)?;
            println!("{}", render::field(&v, "orderID", ""));
        } else {
            failures += 1;
            eprintln!(
                "order #{} rejected: {}",
                i + 1,
                describe_error(status, &body)
            );
        }
    }
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub async fn orders(args: OrdersArgs) -> Result<ExitCode, BoxError> {
    let client = args.server.client()?;
    match args.command {
        OrdersCommand::Get { id } => {
            let path = format!("/orders/{id}");
            match request_json(&client, &args.server, reqwest::Method::GET, &path, None).await? {
                Ok(v) => {
                    println!("{}", render::json_pretty(&v));
                    Ok(ExitCode::SUCCESS)
                }
                Err(message) => {
                    eprintln!("{message}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        OrdersCommand::List { limit, json } => {
            let mut remaining = limit as usize;
            let mut cursor: Option<String> = None;
            if !json {
                println!(
                    "{:<40} {:<20} {:>14} {:<4} STORED AT",
                    "ORDER ID", "CUSTOMER", "TOTAL", "CUR"
                );
            }
            while remaining > 0 {
                let mut url = endpoint(
                    &args.server.url,
                    &format!("/orders?limit={}", remaining.min(100)),
                );
                if let Some(c) = &cursor {
                    url.push_str(&format!("&cursor={c}"));
                }
                let (status, body) = send(&client, reqwest::Method::GET, &url, None).await?;
                if !status.is_success() {
                    eprintln!("{}", describe_error(status, &body));
                    return Ok(ExitCode::FAILURE);
                }
                let page: Value = serde_json::from_str(&body)?;
                let orders = page["orders"].as_array().cloned().unwrap_or_default();
                for o in &orders {
                    if json {
                        println!("{}", render::json_line(o));
                    } else {
                        println!(
                            "{:<40} {:<20} {:>14} {:<4} {}",
                            render::field(o, "orderID", ""),
                            render::field(o, "customerId", ""),
                            render::text(&o["total"].to_string()),
                            render::field(o, "currency", ""),
                            render::field(o, "storedAt", "")
                        );
                    }
                }
                remaining = remaining.saturating_sub(orders.len());
                match page["nextCursor"].as_str() {
                    Some(c) if !orders.is_empty() => cursor = Some(c.to_owned()),
                    _ => break,
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_may_be_an_object_an_array_or_json_lines() {
        assert_eq!(split_orders(r#"{"a":1}"#).unwrap().len(), 1);
        assert_eq!(split_orders(r#"[{"a":1},{"a":2}]"#).unwrap().len(), 2);
        assert_eq!(
            split_orders("{\"a\":1}\n\n{\"a\":2}\n{\"a\":3}\n")
                .unwrap()
                .len(),
            3
        );
        assert!(
            split_orders("{\"a\":1}\nnope")
                .unwrap_err()
                .to_string()
                .contains("line 2")
        );
        assert!(split_orders("  ").is_err());
    }
}
