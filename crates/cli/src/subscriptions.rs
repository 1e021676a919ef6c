//! `orderflow subscriptions ...` (a client of a running server) and the fan-out settings of
//! `orderflow serve`: the SMTP relay and the declarative `--subscriptions` file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use orderflow_embedded::Engine;
use orderflow_embedded::fanout::FanoutConfig;
use orderflow_embedded::fanout::email::SmtpConfig;
use orderflow_embedded::fanout::spec::{DeliveryPolicy, SubscriptionRequest};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{BoxError, render};

/// `orderflow serve` flags for e-mail and the declarative subscriptions file.
#[derive(Debug, Args)]
pub struct FanoutArgs {
    /// SMTP relay for `email` subscriptions: smtp://host:port (STARTTLS when the relay offers
    /// it; add ?tls=required to insist) or smtps://host:port. Without it, e-mail is refused.
    #[arg(long, env = "ORDERFLOW_SMTP_URL")]
    smtp_url: Option<String>,
    /// SMTP user name (or in the URL).
    #[arg(long, env = "ORDERFLOW_SMTP_USERNAME")]
    smtp_username: Option<String>,
    /// SMTP password; prefer the environment variable to the flag, which `ps` shows.
    #[arg(long, env = "ORDERFLOW_SMTP_PASSWORD", hide_env_values = true)]
    smtp_password: Option<String>,
    /// Sender of every mail.
    #[arg(
        long,
        env = "ORDERFLOW_SMTP_FROM",
        default_value = "orderflow <orderflow@localhost>"
    )]
    smtp_from: String,
    /// PEM file of CA certificates to trust for the relay, besides the system's.
    #[arg(long, env = "ORDERFLOW_SMTP_CA_FILE")]
    smtp_ca_file: Option<PathBuf>,
    /// Subscriptions to keep, in TOML or YAML (by extension), applied at start: entries are
    /// matched by name; file-managed subscriptions no longer listed are removed.
    #[arg(long, env = "ORDERFLOW_SUBSCRIPTIONS")]
    subscriptions: Option<PathBuf>,
}

impl FanoutArgs {
    pub fn config(&self) -> Result<FanoutConfig, BoxError> {
        Ok(FanoutConfig {
            smtp: self.smtp_url.as_ref().map(|url| SmtpConfig {
                url: url.clone(),
                username: self.smtp_username.clone(),
                password: self.smtp_password.clone(),
                from: self.smtp_from.clone(),
                ca_file: self.smtp_ca_file.clone(),
                timeout: Duration::from_secs(30),
            }),
        })
    }
}

/// The declarative file: `[[subscriptions]]` tables in TOML, a `subscriptions:` list in YAML.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscriptionsFile {
    #[serde(default)]
    subscriptions: Vec<SubscriptionRequest>,
}

/// Reads and validates the file; every error names its entry and field.
pub fn read_file(path: &Path, engine: &Engine) -> Result<Vec<SubscriptionRequest>, BoxError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let file: SubscriptionsFile = match ext.as_str() {
        "toml" => toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?,
        "yaml" | "yml" => {
            serde_norway::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        _ => {
            return Err(format!(
                "{}: the subscriptions file must end in .toml, .yaml or .yml",
                path.display()
            )
            .into());
        }
    };
    let rules = engine.subscription_rules(true);
    let mut problems = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (i, entry) in file.subscriptions.iter().enumerate() {
        let label = format!(
            "subscriptions[{i}]{}",
            entry
                .name
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        );
        match &entry.name {
            None => problems.push(format!("{label}: name: is required in the file")),
            Some(name) if !names.insert(name.clone()) => {
                problems.push(format!("{label}: name: {name} is listed twice"));
            }
            Some(_) => {}
        }
        if let Err(errors) = entry.clone().validate(&rules) {
            for e in errors {
                problems.push(format!("{label}: {}: {}", e.field, e.message));
            }
        }
    }
    if problems.is_empty() {
        Ok(file.subscriptions)
    } else {
        Err(format!(
            "{} is not valid:\n  {}",
            path.display(),
            problems.join("\n  ")
        )
        .into())
    }
}

/// Applies `--subscriptions`, if given, before the delivery worker starts.
pub async fn apply_file(args: &FanoutArgs, engine: &Engine) -> Result<(), BoxError> {
    let Some(path) = &args.subscriptions else {
        return Ok(());
    };
    let rules = engine.subscription_rules(true);
    let specs = read_file(path, engine)?
        .into_iter()
        .map(|r| r.validate(&rules).map_err(|_| "validated above"))
        .collect::<Result<Vec<_>, _>>()?;
    // The operator wrote the file, but its webhooks go through the same address policy as
    // every delivery: say so now rather than fail every delivery later.
    for spec in &specs {
        if let Err(e) = engine.egress().check_subscription(spec).await {
            let name = spec.name.as_deref().unwrap_or_default();
            return Err(format!("{}: {name}: {} {}", path.display(), e.field, e.message).into());
        }
    }
    let applied = engine
        .topic()
        .apply_file(specs)
        .await
        .map_err(|e| format!("{}: {}", path.display(), e))?;
    tracing::info!(
        file = %path.display(),
        created = ?applied.created,
        updated = ?applied.updated,
        replaced = ?applied.replaced,
        removed = ?applied.removed,
        unchanged = applied.unchanged.len(),
        "subscriptions file applied"
    );
    Ok(())
}

// ---- the client commands ----

#[derive(Debug, Args)]
pub struct SubscriptionsArgs {
    #[command(subcommand)]
    command: SubscriptionsCommand,
    #[command(flatten)]
    server: crate::client::ServerArgs,
}

#[derive(Debug, Subcommand)]
enum SubscriptionsCommand {
    /// Subscribe an endpoint: http(s) URL, e-mail address, queue name, or log file / stdout.
    Add(AddArgs),
    /// List subscriptions with their status and delivery counts.
    List {
        /// Print the JSON the server answers instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a subscription (by id or ARN).
    Remove { id: String },
    /// Print a subscription's status; exits 0 when confirmed, 1 while pending.
    ConfirmStatus { id: String },
    /// A subscription's dead-letter store: deliveries whose retries ran out.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// List the dead-lettered deliveries of a subscription.
    List {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Retry them (all, or the given delivery ids) with a fresh set of attempts.
    Redrive {
        id: String,
        #[arg(long = "delivery-id")]
        delivery_ids: Vec<i64>,
    },
}

#[derive(Debug, Args)]
struct AddArgs {
    /// http, https, email, queue or log.
    #[arg(long)]
    protocol: String,
    #[arg(long)]
    endpoint: String,
    /// A unique name.
    #[arg(long)]
    name: Option<String>,
    /// SNS filter policy as JSON, or @FILE.
    #[arg(long)]
    filter_policy: Option<String>,
    /// MessageAttributes (default) or MessageBody.
    #[arg(long)]
    filter_policy_scope: Option<String>,
    /// Deliver the message alone, without the SNS envelope.
    #[arg(long)]
    raw: bool,
    /// Only the API key removes this subscription: its UnsubscribeURL alone is refused
    /// (SNS's AuthenticateOnUnsubscribe).
    #[arg(long)]
    authenticate_on_unsubscribe: bool,
    /// Attempts before a delivery goes to the subscription's dead-letter store.
    #[arg(long)]
    max_attempts: Option<u32>,
    #[arg(long)]
    min_delay_ms: Option<u64>,
    #[arg(long)]
    max_delay_ms: Option<u64>,
    /// queue only.
    #[arg(long)]
    visibility_timeout_seconds: Option<u32>,
    /// queue only.
    #[arg(long)]
    max_receive_count: Option<u32>,
    /// Print the JSON the server answers.
    #[arg(long)]
    json: bool,
}

struct Server {
    url: String,
    client: reqwest::Client,
}

impl Server {
    fn new(args: &SubscriptionsArgs) -> Result<Self, BoxError> {
        Ok(Server {
            url: args.server.endpoint(""),
            client: args.server.client()?,
        })
    }

    /// Sends the request; `Ok((status, body))` for any answer.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(reqwest::StatusCode, Value), BoxError> {
        let url = format!("{}{path}", self.url);
        let (status, text) =
            crate::client::send(&self.client, method, &url, body.map(|b| b.to_string())).await?;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, value))
    }
}

fn path_segment(raw: &str) -> String {
    raw.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn failure(status: reqwest::StatusCode, body: &Value) -> ExitCode {
    let mut out = format!(
        "HTTP {}: {}",
        status.as_u16(),
        body["error"]
            .as_str()
            .map_or_else(|| render::json_line(body), |e| render::text(e).into_owned())
    );
    for d in body["details"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\n  {}: {}",
            render::field(d, "field", "?"),
            render::field(d, "message", "?")
        ));
    }
    eprintln!("{out}");
    ExitCode::FAILURE
}

fn filter_policy_arg(raw: &str) -> Result<Value, BoxError> {
    let text = match raw.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?
        }
        None => raw.to_owned(),
    };
    Ok(serde_json::from_str(&text).map_err(|e| format!("--filter-policy is not JSON: {e}"))?)
}

pub async fn run(args: SubscriptionsArgs) -> Result<ExitCode, BoxError> {
    let server = Server::new(&args)?;
    use reqwest::Method;
    match args.command {
        SubscriptionsCommand::Add(add) => {
            let delivery_policy = (add.max_attempts.is_some()
                || add.min_delay_ms.is_some()
                || add.max_delay_ms.is_some())
            .then_some(DeliveryPolicy {
                max_attempts: add.max_attempts,
                min_delay_ms: add.min_delay_ms,
                max_delay_ms: add.max_delay_ms,
            });
            let request = SubscriptionRequest {
                name: add.name,
                protocol: add.protocol,
                endpoint: add.endpoint,
                filter_policy: add
                    .filter_policy
                    .as_deref()
                    .map(filter_policy_arg)
                    .transpose()?,
                filter_policy_scope: add.filter_policy_scope,
                raw_message_delivery: add.raw.then_some(true),
                delivery_policy,
                visibility_timeout_seconds: add.visibility_timeout_seconds,
                max_receive_count: add.max_receive_count,
                authenticate_on_unsubscribe: add.authenticate_on_unsubscribe.then_some(true),
            };
            let (status, body) = server
                .call(
                    Method::POST,
                    "/subscriptions",
                    Some(serde_json::to_value(&request)?),
                )
                .await?;
            // 200: the same subscription existed already (SNS's Subscribe is idempotent).
            if !status.is_success() {
                return Ok(failure(status, &body));
            }
            if add.json {
                println!("{}", render::json_line(&body));
            } else {
                println!(
                    "{}\t{}",
                    render::field(&body, "subscriptionArn", ""),
                    render::field(&body, "status", "")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        SubscriptionsCommand::List { json } => {
            let (status, body) = server.call(Method::GET, "/subscriptions", None).await?;
            if !status.is_success() {
                return Ok(failure(status, &body));
            }
            let subs = body["subscriptions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if json {
                for s in &subs {
                    println!("{}", render::json_line(s));
                }
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<36} {:<6} {:<20} {:<40} {:>8} {:>9} {:>6} {:>8}",
                "ID", "PROTO", "STATUS", "ENDPOINT", "PENDING", "DELIVERED", "DEAD", "FILTERED"
            );
            for s in &subs {
                let d = &s["deliveries"];
                println!(
                    "{:<36} {:<6} {:<20} {:<40} {:>8} {:>9} {:>6} {:>8}",
                    render::field(s, "id", ""),
                    render::field(s, "protocol", ""),
                    render::field(s, "status", ""),
                    render::field(s, "endpoint", ""),
                    d["pending"],
                    d["delivered"],
                    d["failed"],
                    d["filtered"]
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        SubscriptionsCommand::Remove { id } => {
            let (status, body) = server
                .call(
                    Method::DELETE,
                    &format!("/subscriptions/{}", path_segment(&id)),
                    None,
                )
                .await?;
            if status != reqwest::StatusCode::NO_CONTENT {
                return Ok(failure(status, &body));
            }
            println!("removed {id}");
            Ok(ExitCode::SUCCESS)
        }
        SubscriptionsCommand::ConfirmStatus { id } => {
            let (status, body) = server
                .call(
                    Method::GET,
                    &format!("/subscriptions/{}", path_segment(&id)),
                    None,
                )
                .await?;
            if !status.is_success() {
                return Ok(failure(status, &body));
            }
            let state = body["status"].as_str().unwrap_or_default();
            println!("{state}");
            Ok(if state == "Confirmed" {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        SubscriptionsCommand::Dlq {
            command: DlqCommand::List { id, json },
        } => {
            let (status, body) = server
                .call(
                    Method::GET,
                    &format!("/subscriptions/{}/dlq", path_segment(&id)),
                    None,
                )
                .await?;
            if !status.is_success() {
                return Ok(failure(status, &body));
            }
            let deliveries = body["deliveries"].as_array().cloned().unwrap_or_default();
            if json {
                for d in &deliveries {
                    println!("{}", render::json_line(d));
                }
            } else {
                println!(
                    "{:>10} {:<36} {:>8} {:<24} LAST ERROR",
                    "DELIVERY", "MESSAGE ID", "ATTEMPTS", "FAILED AT"
                );
                for d in &deliveries {
                    println!(
                        "{:>10} {:<36} {:>8} {:<24} {}",
                        d["deliveryId"],
                        render::field(d, "messageId", ""),
                        d["attempts"],
                        render::field(d, "failedAt", ""),
                        render::field(d, "lastError", "")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        SubscriptionsCommand::Dlq {
            command: DlqCommand::Redrive { id, delivery_ids },
        } => {
            let body = (!delivery_ids.is_empty()).then(|| json!({"deliveryIds": delivery_ids}));
            let (status, answer) = server
                .call(
                    Method::POST,
                    &format!("/subscriptions/{}/dlq/redrive", path_segment(&id)),
                    body,
                )
                .await?;
            if !status.is_success() {
                return Ok(failure(status, &answer));
            }
            println!("redriven {}", answer["redriven"]);
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_toml_or_yaml_with_the_api_field_names() {
        let toml_text = r#"
[[subscriptions]]
name = "warehouse"
protocol = "queue"
endpoint = "warehouse"
filterPolicy = { currency = ["EUR"], total = [{ numeric = [">=", 100] }] }
maxReceiveCount = 3

[[subscriptions]]
name = "audit"
protocol = "log"
endpoint = "audit.jsonl"
rawMessageDelivery = true
deliveryPolicy = { maxAttempts = 5 }
"#;
        let from_toml: SubscriptionsFile = toml::from_str(toml_text).unwrap();
        let yaml_text = r#"
subscriptions:
  - name: warehouse
    protocol: queue
    endpoint: warehouse
    filterPolicy:
      currency: [EUR]
      total: [{numeric: [">=", 100]}]
    maxReceiveCount: 3
  - name: audit
    protocol: log
    endpoint: audit.jsonl
    rawMessageDelivery: true
    deliveryPolicy: {maxAttempts: 5}
"#;
        let from_yaml: SubscriptionsFile = serde_norway::from_str(yaml_text).unwrap();
        assert_eq!(from_toml.subscriptions, from_yaml.subscriptions);
        assert_eq!(
            from_toml.subscriptions[0].filter_policy,
            Some(json!({"currency": ["EUR"], "total": [{"numeric": [">=", 100]}]}))
        );
        assert!(toml::from_str::<SubscriptionsFile>("[[subscriptions]]\nname = \"x\"\nprotocol = \"log\"\nendpoint = \"-\"\ncolour = 1\n").is_err());
    }
}
