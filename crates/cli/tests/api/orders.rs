//! Posting, reading and listing orders.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    AppOptions, SHORT, json_of, order, order_without_id, spawn_app, spawn_app_with, unique_id,
    wait_for,
};

fn assert_rfc3339_utc(value: &Value, what: &str) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value}"));
    assert!(
        text.len() >= 20
            && text.as_bytes()[4] == b'-'
            && text.as_bytes()[10] == b'T'
            && (text.ends_with('Z') || text.ends_with("+00:00")),
        "{what} is not RFC 3339 UTC: {text}"
    );
}

#[tokio::test]
async fn healthz_answers_ok() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "ok"}));
}

#[tokio::test]
async fn posting_a_valid_order_returns_202_naming_the_order() {
    let app = spawn_app().await;
    let id = unique_id("ord");

    let (status, body) = json_of(app.post_order(&order(&id)).await).await;

    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        body,
        json!({"orderID": id, "status": "ACCEPTED", "message": format!("Order {id} received")})
    );
}

#[tokio::test]
async fn an_order_without_an_id_gets_a_time_ordered_id_from_the_server() {
    let app = spawn_app().await;

    let first = app.submit(&order_without_id()).await;
    let second = app.submit(&order_without_id()).await;

    for id in [&first, &second] {
        let uuid = uuid::Uuid::parse_str(id).unwrap_or_else(|e| panic!("{id} is not a UUID: {e}"));
        assert_eq!(uuid.get_version_num(), 7, "{id} is not a UUIDv7");
    }
    assert!(
        first < second,
        "ids are not time-ordered: {first} then {second}"
    );
    app.wait_until_stored(&second, SHORT).await;
}

#[tokio::test]
async fn an_accepted_order_is_stored_with_its_exact_total() {
    let app = spawn_app().await;
    let id = app.submit(&order(&unique_id("ord"))).await;

    let stored = app.wait_until_stored(&id, SHORT).await;

    assert_eq!(stored["orderID"], json!(id), "{stored}");
    assert_eq!(stored["status"], json!("STORED"), "{stored}");
    assert_eq!(stored["customerId"], json!("cust-42"), "{stored}");
    assert_eq!(stored["currency"], json!("EUR"), "{stored}");
    assert_eq!(stored["items"], order(&id)["items"], "{stored}");
    assert!(
        stored["total"].is_number(),
        "total is not a JSON number: {stored}"
    );
    assert_eq!(stored["total"].to_string(), "60.07", "{stored}");
    assert_rfc3339_utc(&stored["receivedAt"], "receivedAt");
    assert_rfc3339_utc(&stored["storedAt"], "storedAt");
    assert_eq!(app.stats().await.stored(), 1);
}

#[tokio::test]
async fn get_orders_lists_recent_orders_newest_first_and_paginates() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    // One at a time, each stored before the next is posted, so "newest" is unambiguous.
    for i in 0..5 {
        let id = app.submit(&order(&unique_id(&format!("list{i}")))).await;
        app.wait_until_stored(&id, SHORT).await;
        ids.push(id);
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();

    let everything = app.list_orders(None, None).await;
    let listed = ids_in(&everything);
    assert_eq!(listed, newest_first, "{everything}");
    for listed in everything["orders"].as_array().unwrap() {
        assert_eq!(listed["status"], json!("STORED"), "{listed}");
        assert_eq!(listed["total"].to_string(), "60.07", "{listed}");
    }

    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let page = app.list_orders(Some(2), cursor.as_deref()).await;
        let page_ids = ids_in(&page);
        assert!(
            page_ids.len() <= 2,
            "limit=2 returned {}: {page}",
            page_ids.len()
        );
        pages.push(page_ids);
        match &page["nextCursor"] {
            Value::String(next) => cursor = Some(next.clone()),
            Value::Null => {
                cursor = None;
                break;
            }
            other => panic!("nextCursor is neither a string nor null: {other}"),
        }
    }
    assert!(
        cursor.is_none(),
        "pagination did not end within 10 pages: {pages:?}"
    );
    assert_eq!(
        pages.first().cloned().unwrap_or_default(),
        newest_first[..2].to_vec(),
        "first page: {pages:?}"
    );
    assert_eq!(pages.concat(), newest_first, "pages: {pages:?}");
}

#[tokio::test]
async fn get_orders_on_an_empty_store_returns_an_empty_page() {
    let app = spawn_app().await;
    let page = app.list_orders(Some(10), None).await;
    assert_eq!(page, json!({"orders": [], "nextCursor": null}));
}

fn ids_in(page: &Value) -> Vec<String> {
    page["orders"]
        .as_array()
        .unwrap_or_else(|| panic!("no orders array: {page}"))
        .iter()
        .map(|o| {
            o["orderID"]
                .as_str()
                .unwrap_or_else(|| panic!("listed order without orderID: {o}"))
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn resending_the_identical_order_spelled_differently_is_accepted_and_stored_once() {
    let app = spawn_app().await;
    let id = unique_id("resend");
    app.submit(&order(&id)).await;
    // Same order: keys in another order, amounts spelled differently.
    let respelled = format!(
        r#"{{"notes":"leave at the door","currency":"EUR","orderID":"{id}","customerEmail":"ada@example.com",
            "items":[{{"unitPrice":1.999e1,"quantity":3,"sku":"BOOK-1"}},{{"sku":"PEN","unitPrice":0.10,"quantity":1}}],
            "shippingAddress":{{"country":"DE","postalCode":"10115","city":"Berlin","line1":"1 Main St"}},"customerId":"cust-42"}}"#
    );
    let queued = app
        .post_raw("/orders", Some("application/json"), respelled.clone())
        .await;
    assert_eq!(
        queued.status(),
        StatusCode::ACCEPTED,
        "while the first is queued or stored"
    );
    app.wait_until_stored(&id, SHORT).await;
    let stored = app
        .post_raw("/orders", Some("application/json"), respelled)
        .await;
    assert_eq!(
        stored.status(),
        StatusCode::ACCEPTED,
        "once the first is stored"
    );
    let stats = app.drain().await;
    assert_eq!(stats.stored(), 1, "{}", stats.0);
}

#[tokio::test]
async fn a_different_order_under_a_taken_id_is_a_409_naming_the_id_and_the_first_is_kept() {
    let app = spawn_app().await;
    let id = unique_id("taken");
    app.submit(&order(&id)).await;
    let mut impostor = order(&id);
    impostor["customerEmail"] = json!("mallory@example.com");

    // Still queued, then stored: both are conflicts.
    let (status, body) = json_of(app.post_order(&impostor).await).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"].as_str().unwrap().contains(&id), "{body}");
    app.wait_until_stored(&id, SHORT).await;
    let (status, body) = json_of(app.post_order(&impostor).await).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let stats = app.drain().await;
    assert_eq!(stats.stored(), 1, "{}", stats.0);
    let stored = app.stored_order(&id).await.unwrap();
    assert_eq!(
        stored["customerEmail"],
        json!("ada@example.com"),
        "{stored}"
    );
}

/// Many different orders posted at once under one new id: one wins, the rest get 409.
#[tokio::test]
async fn concurrent_different_orders_under_one_id_give_one_202_and_the_rest_409() {
    let app = spawn_app().await;
    let id = unique_id("race");
    let mut posts = Vec::new();
    for i in 0..16 {
        let mut o = order(&id);
        o["customerId"] = json!(format!("racer-{i}"));
        let (client, url) = (app.client.clone(), format!("{}/orders", app.url));
        posts.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .header("content-type", "application/json")
                .body(o.to_string())
                .send()
                .await
                .unwrap();
            response.status()
        }));
    }
    let mut statuses = Vec::new();
    for post in posts {
        statuses.push(post.await.unwrap());
    }
    statuses.sort();
    let accepted = statuses
        .iter()
        .filter(|s| **s == StatusCode::ACCEPTED)
        .count();
    let conflicts = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((accepted, conflicts), (1, 15), "{statuses:?}");
    let stats = app.drain().await;
    assert_eq!(stats.stored(), 1, "{}", stats.0);
    assert_eq!(stats.0["queue"]["deadLetter"], json!(0), "{}", stats.0);
}

/// A producer that bypasses the API (straight onto the queue) with a conflicting order:
/// the store handler never reports it as stored; it ends in the DLQ with the reason.
#[tokio::test]
async fn a_conflicting_order_put_straight_on_the_queue_is_dead_lettered_with_the_reason() {
    let app = spawn_app_with(AppOptions {
        visibility_timeout_ms: Some(200),
        max_receive_count: Some(2),
        ..AppOptions::default()
    })
    .await;
    let id = unique_id("bypass");
    app.submit(&order(&id)).await;
    app.wait_until_stored(&id, SHORT).await;
    let mut impostor = order(&id);
    impostor["customerId"] = json!("mallory");
    app.put_on_queue(&impostor.to_string()).await;

    let letters = wait_for(SHORT, "the conflicting message in the DLQ", async || {
        let letters = app.dead_letters().await;
        if letters.is_empty() {
            Err("no dead letters yet".into())
        } else {
            Ok(letters)
        }
    })
    .await;
    assert!(
        letters[0]["lastError"]
            .as_str()
            .unwrap_or("")
            .contains("conflicts with the stored order"),
        "{letters:?}"
    );
    let stored = app.stored_order(&id).await.unwrap();
    assert_eq!(stored["customerId"], json!("cust-42"), "{stored}");
}
