//! Filter policies with SNS semantics: each operator lets only matching orders through, and
//! policies beyond SNS's limits are refused with a 400 naming the field.

use std::collections::{BTreeMap, HashSet};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fanout_support::{add_subscription, order_id_of, read_all, subscribe_with};
use crate::helpers::{SHORT, id_set, order, spawn_app, unique_id, wait_until};
use crate::subscriber::TestSubscriber;

/// An order with the given currency, customer and items.
fn order_of(id: &str, currency: &str, customer: &str, items: Value) -> Value {
    let mut o = order(id);
    o["currency"] = json!(currency);
    o["customerId"] = json!(customer);
    o["items"] = items;
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_filter_operator_delivers_only_the_matching_orders() {
    let app = spawn_app().await;
    // (queue name, scope, policy): each subscription reads its own pull queue.
    let cases: Vec<(&str, &str, Value)> = vec![
        (
            "exact-string",
            "MessageAttributes",
            json!({"currency": ["EUR"]}),
        ),
        (
            "or-within-a-key",
            "MessageAttributes",
            json!({"currency": ["USD", "GBP"]}),
        ),
        (
            "exact-number",
            "MessageAttributes",
            json!({"total": [60.07]}),
        ),
        (
            "prefix",
            "MessageAttributes",
            json!({"customerId": [{"prefix": "vip-"}]}),
        ),
        (
            "suffix",
            "MessageAttributes",
            json!({"customerId": [{"suffix": "-eu"}]}),
        ),
        (
            "anything-but",
            "MessageAttributes",
            json!({"currency": [{"anything-but": ["EUR", "USD"]}]}),
        ),
        (
            "numeric-range",
            "MessageAttributes",
            json!({"total": [{"numeric": [">=", 100, "<", 1000]}]}),
        ),
        (
            "exists-true",
            "MessageAttributes",
            json!({"customerId": [{"exists": true}]}),
        ),
        (
            "exists-false",
            "MessageAttributes",
            json!({"coupon": [{"exists": false}]}),
        ),
        (
            "exists-false-present",
            "MessageAttributes",
            json!({"currency": [{"exists": false}]}),
        ),
        (
            "equals-ignore-case",
            "MessageAttributes",
            json!({"currency": [{"equals-ignore-case": "eur"}]}),
        ),
        (
            "and-across-keys",
            "MessageAttributes",
            json!({"currency": ["EUR", "GBP"], "total": [{"numeric": [">", 100]}]}),
        ),
        (
            "message-body",
            "MessageBody",
            json!({"order": {"items": {"sku": ["PEN"]}}}),
        ),
        (
            "or-across-keys",
            "MessageAttributes",
            json!({"$or": [{"currency": ["JPY"]}, {"total": [{"numeric": [">", 200]}], "customerId": [{"suffix": "-eu"}]}]}),
        ),
        (
            "or-in-the-body",
            "MessageBody",
            json!({"order": {"currency": ["EUR", "GBP"], "$or": [{"customerId": [{"prefix": "vip-b"}]}, {"items": {"sku": ["BOOK-1"]}}]}}),
        ),
    ];
    let mut ids = BTreeMap::new();
    for (name, scope, policy) in &cases {
        let sub = subscribe_with(
            &app,
            json!({"protocol": "queue", "endpoint": name, "rawMessageDelivery": true,
                   "filterPolicyScope": scope, "filterPolicy": policy}),
        )
        .await;
        assert_eq!(sub["status"], json!("Confirmed"), "{sub}");
        assert_eq!(sub["filterPolicy"], *policy, "{sub}");
        ids.insert(*name, sub["id"].as_str().unwrap().to_owned());
    }
    let webhook = TestSubscriber::start().await;
    let (status, body) = add_subscription(
        &app,
        &json!({"protocol": "http", "endpoint": webhook.url(), "filterPolicy": {"currency": ["EUR"]}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    wait_until(SHORT, "the webhook to confirm", async || {
        webhook.confirmed_count() == 1
    })
    .await;

    let eur = unique_id("eur");
    let usd = unique_id("usd");
    let gbp = unique_id("gbp");
    let jpy = unique_id("jpy");
    let orders = vec![
        // total 60.07, has a PEN
        order_of(
            &eur,
            "EUR",
            "vip-anna",
            json!([{"sku": "BOOK-1", "quantity": 3, "unitPrice": 19.99}, {"sku": "PEN", "quantity": 1, "unitPrice": 0.1}]),
        ),
        // total 250
        order_of(
            &usd,
            "USD",
            "c-berlin-eu",
            json!([{"sku": "MUG", "quantity": 1, "unitPrice": 250}]),
        ),
        // total 1000, has PENs
        order_of(
            &gbp,
            "GBP",
            "vip-bob-eu",
            json!([{"sku": "PEN", "quantity": 10, "unitPrice": 100}]),
        ),
        // total 5, has a PEN
        order_of(
            &jpy,
            "JPY",
            "plain",
            json!([{"sku": "PEN", "quantity": 1, "unitPrice": 5}]),
        ),
    ];
    app.submit_all(orders).await;
    app.wait_until_stored_count(4, SHORT).await;
    app.drain().await;

    let all = id_set([&eur, &usd, &gbp, &jpy]);
    let expected: BTreeMap<&str, HashSet<String>> = BTreeMap::from([
        ("exact-string", id_set([&eur])),
        ("or-within-a-key", id_set([&usd, &gbp])),
        ("exact-number", id_set([&eur])),
        ("prefix", id_set([&eur, &gbp])),
        ("suffix", id_set([&usd, &gbp])),
        ("anything-but", id_set([&gbp, &jpy])),
        ("numeric-range", id_set([&usd])),
        ("exists-true", all.clone()),
        ("exists-false", all.clone()),
        ("exists-false-present", HashSet::new()),
        ("equals-ignore-case", id_set([&eur])),
        ("and-across-keys", id_set([&gbp])),
        ("message-body", id_set([&eur, &gbp, &jpy])),
        ("or-across-keys", id_set([&usd, &gbp, &jpy])),
        ("or-in-the-body", id_set([&eur, &gbp])),
    ]);
    let subscriptions = app.subscriptions().await;
    for (name, want) in &expected {
        let got: Vec<String> = read_all(&app, name)
            .await
            .iter()
            .map(|b| order_id_of(b))
            .collect();
        assert_eq!(got.len(), want.len(), "{name}: delivered {got:?}");
        assert_eq!(got.into_iter().collect::<HashSet<_>>(), *want, "{name}");
        let listed = subscriptions
            .iter()
            .find(|s| s["id"] == json!(ids[name]))
            .unwrap_or_else(|| panic!("{name} not listed"));
        assert_eq!(
            listed["deliveries"]["filtered"],
            json!(4 - want.len()),
            "{name}: rejected orders are counted: {listed}"
        );
        assert_eq!(
            listed["deliveries"]["pending"],
            json!(0),
            "{name}: nothing retried: {listed}"
        );
    }
    assert_eq!(webhook.order_ids_delivered(), id_set([&eur]));
    assert_eq!(
        webhook.notification_attempts().len(),
        1,
        "filtered-out orders are never sent"
    );
}

#[tokio::test]
async fn policies_beyond_the_sns_limits_are_refused_naming_the_field() {
    let app = spawn_app().await;
    let values = |n: usize| Value::Array((0..n).map(|i| json!(format!("v{i}"))).collect());
    let cases = [
        (
            json!({"a": ["1"], "b": ["1"], "c": ["1"], "d": ["1"], "e": ["1"], "f": ["1"]}),
            "filterPolicy",
            "6 keys",
        ),
        (
            json!({"a": values(10), "b": values(16)}),
            "filterPolicy",
            "160 combinations",
        ),
        (
            json!({"currency": [{"regex": "E.*"}]}),
            "filterPolicy.currency[0].regex",
            "unknown operator",
        ),
        (
            json!({"total": [{"numeric": [">", 10, "<", 5]}]}),
            "filterPolicy.total[0].numeric",
            "lower bound",
        ),
        (json!({"currency": "EUR"}), "filterPolicy.currency", "array"),
    ];
    for (policy, field, message) in cases {
        let (status, body) = add_subscription(
            &app,
            &json!({"protocol": "queue", "endpoint": "q", "filterPolicy": policy}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{policy}: {body}");
        let details = body["details"].as_array().expect("details");
        assert!(
            details.iter().any(|d| d["field"] == json!(field)
                && d["message"].as_str().unwrap_or_default().contains(message)),
            "{policy}: expected {field} ({message}), got {body}"
        );
    }
    let (status, body) = add_subscription(
        &app,
        &json!({"protocol": "queue", "endpoint": "q", "filterPolicyScope": "Everything", "filterPolicy": {}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["details"][0]["field"],
        json!("filterPolicyScope"),
        "{body}"
    );
    assert!(app.subscriptions().await.is_empty(), "nothing was created");
}
