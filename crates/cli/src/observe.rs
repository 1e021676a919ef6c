//! `orderflow status` and `orderflow trace`: the pipeline's health at a glance, and where one
//! order is, read from a running server.

use std::process::ExitCode;

use clap::Args;
use serde_json::Value;

use crate::client::ServerArgs;
use crate::{BoxError, render};

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the server's JSON (`/stats` and the subscriptions) instead of the summary.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct TraceArgs {
    /// The orderID.
    order_id: String,
    /// Print the server's JSON instead of the timeline.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// GET `path`: the JSON body, or the server's error rendered for a person.
async fn get(
    client: &reqwest::Client,
    server: &ServerArgs,
    path: &str,
) -> Result<Result<Value, String>, BoxError> {
    crate::client::request_json(client, server, reqwest::Method::GET, path, None).await
}

fn n(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

/// Exit status 0 when nothing is failing, 1 when something needs a look.
pub async fn status(args: StatusArgs) -> Result<ExitCode, BoxError> {
    let client = args.server.client()?;
    let stats = match get(&client, &args.server, "/stats").await? {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let subscriptions = match get(&client, &args.server, "/subscriptions").await? {
        Ok(v) => v["subscriptions"].as_array().cloned().unwrap_or_default(),
        Err(e) => {
            eprintln!("subscriptions: {e}");
            Vec::new()
        }
    };
    let failing: Vec<&Value> = subscriptions
        .iter()
        .filter(|s| n(s, "/deliveries/failed") > 0 || s["lastError"].is_string())
        .collect();
    if args.json {
        println!(
            "{}",
            render::json_line(&serde_json::json!({"stats": stats, "subscriptions": subscriptions}))
        );
    } else {
        let age = stats
            .pointer("/queue/oldestAgeMs")
            .and_then(Value::as_i64)
            .map_or_else(
                || "-".to_owned(),
                |ms| format!("{:.1}s", ms as f64 / 1000.0),
            );
        println!(
            "queue          {} visible, {} in flight, {} dead letters, oldest {age}",
            n(&stats, "/queue/visible"),
            n(&stats, "/queue/inFlight"),
            n(&stats, "/queue/deadLetter"),
        );
        println!("orders         {} stored", n(&stats, "/orders/stored"));
        println!(
            "stream         {} not yet published, {} failed",
            n(&stats, "/stream/pending"),
            n(&stats, "/stream/failed"),
        );
        println!(
            "deliveries     {} delivered, {} pending, {} failed, {} filtered",
            n(&stats, "/deliveries/delivered"),
            n(&stats, "/deliveries/pending"),
            n(&stats, "/deliveries/failed"),
            n(&stats, "/deliveries/filtered"),
        );
        println!(
            "subscriptions  {} ({} failing)",
            n(&stats, "/subscriptions"),
            failing.len()
        );
        for s in &failing {
            println!(
                "  FAILING {} {} {}: {} pending, {} failed; last error: {}",
                render::text(s["name"].as_str().or(s["id"].as_str()).unwrap_or("")),
                render::field(s, "protocol", ""),
                render::field(s, "endpoint", ""),
                n(s, "/deliveries/pending"),
                n(s, "/deliveries/failed"),
                render::field(s, "lastError", "-"),
            );
        }
    }
    let unhealthy = !failing.is_empty()
        || n(&stats, "/queue/deadLetter") > 0
        || n(&stats, "/stream/failed") > 0;
    Ok(if unhealthy {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("-")
}

/// Prints the order's journey, one line per stage; exit status 1 when a stage failed.
pub async fn trace(args: TraceArgs) -> Result<ExitCode, BoxError> {
    let client = args.server.client()?;
    let path = format!("/orders/{}/trace", args.order_id);
    let t = match get(&client, &args.server, &path).await? {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    if args.json {
        println!("{}", render::json_line(&t));
    } else {
        print!("{}", render_trace(&t));
    }
    let failed = matches!(
        t["stage"].as_str(),
        Some("dead-lettered" | "publish-failed" | "delivery-failed")
    ) || t["deliveries"]
        .as_array()
        .is_some_and(|d| d.iter().any(|d| d["lastError"].is_string()));
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The timeline: `STAGE  TIME  DETAIL`, a stage not reached yet shows `-`.
pub fn render_trace(t: &Value) -> String {
    // Every field the server sent may hold what a client wrote: each line is rendered safe.
    let mut out = format!(
        "order {}  request {}  stage {}\n",
        render::text(s(t, "orderID")),
        render::text(s(t, "requestId")),
        render::text(s(t, "stage"))
    );
    let mut line = |stage: &str, at: &str, detail: String| {
        let (at, detail) = (render::text(at), render::text(&detail));
        out.push_str(&format!("  {stage:<10} {at:<25} {detail}\n"));
    };
    line("accepted", s(t, "acceptedAt"), String::new());
    let pruned = |stage: &str| {
        t["pruned"]
            .as_array()
            .is_some_and(|p| p.iter().any(|v| v == stage))
    };
    const PRUNED: &str = "done; details pruned (past their retention)";
    let r = &t["received"];
    if pruned("received") {
        line("received", "-", PRUNED.into());
    } else if r.is_object() {
        let mut detail = format!("receives: {}", n(r, "/receiveCount"));
        if let Some(e) = r["lastError"].as_str() {
            detail.push_str(&format!("; last error: {e}"));
        }
        if let Some(at) = r["deadLetteredAt"].as_str() {
            detail.push_str(&format!("; DEAD-LETTERED at {at}"));
        }
        line("received", s(r, "firstReceivedAt"), detail);
    } else {
        line(
            "received",
            "-",
            "not yet received by the store handler".into(),
        );
    }
    line("stored", s(t, "storedAt"), String::new());
    let p = &t["published"];
    if pruned("published") {
        line("published", "-", PRUNED.into());
    } else if p.is_object() {
        let mut detail = s(p, "state").to_owned();
        if let Some(m) = p["messageId"].as_str() {
            detail.push_str(&format!("; message {m}"));
        }
        if let Some(a) = p["attempts"].as_u64() {
            detail.push_str(&format!("; attempts: {a}"));
        }
        line("published", s(p, "at"), detail);
    } else {
        line("published", "-", String::new());
    }
    let deliveries = t["deliveries"].as_array().cloned().unwrap_or_default();
    if pruned("deliveries") {
        line("delivered", "-", PRUNED.into());
    } else if deliveries.is_empty() && p["state"] == "published" {
        line("delivered", "-", "no subscription takes it".into());
    }
    for d in &deliveries {
        let who = d["name"].as_str().unwrap_or_else(|| s(d, "subscriptionId"));
        let at = d["deliveredAt"]
            .as_str()
            .or(d["failedAt"].as_str())
            .unwrap_or("-");
        let mut detail = format!(
            "{} {} {}: {}; attempts: {}",
            who,
            s(d, "protocol"),
            s(d, "endpoint"),
            s(d, "state"),
            n(d, "/attempts")
        );
        if let Some(e) = d["lastError"].as_str() {
            detail.push_str(&format!("; last error: {e}"));
        }
        if let Some(next) = d["nextAttemptAt"].as_str() {
            detail.push_str(&format!("; next attempt {next}"));
        }
        line("delivered", at, detail);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pruned_order_shows_its_pruned_stages_as_done() {
        let trace = serde_json::json!({
            "orderID": "o-1", "stage": "published", "acceptedAt": "2026-01-01T00:00:00Z",
            "storedAt": "2026-01-01T00:00:01Z", "deliveries": [],
            "pruned": ["received", "published", "deliveries"]
        });
        let text = render_trace(&trace);
        for stage in ["received", "published", "delivered"] {
            let line = text
                .lines()
                .find(|l| l.trim_start().starts_with(stage))
                .unwrap_or_else(|| panic!("no {stage} line in\n{text}"));
            assert!(line.contains("details pruned"), "{line}");
        }
        assert!(!text.contains("not yet received"), "{text}");
    }
}
