//! `queue` subscriptions: a durable pull queue per subscription that a client reads over
//! HTTP with SQS semantics, with its own dead-letter queue.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fanout_support::{order_id_of, read_all, receive, subscribe_with};
use crate::helpers::{SHORT, json_of, order, spawn_app, unique_id, wait_for};

fn receipt(m: &Value) -> &str {
    m["receiptHandle"].as_str().expect("receiptHandle")
}

fn receive_count(m: &Value) -> &str {
    m["attributes"]["ApproximateReceiveCount"]
        .as_str()
        .expect("ApproximateReceiveCount")
}

#[tokio::test]
async fn a_pull_queue_is_read_and_acknowledged_by_a_client_with_sqs_semantics() {
    let app = spawn_app().await;
    let sub = subscribe_with(
        &app,
        json!({"protocol": "queue", "endpoint": "warehouse", "visibilityTimeoutSeconds": 1, "maxReceiveCount": 2}),
    )
    .await;
    assert_eq!(
        sub["status"],
        json!("Confirmed"),
        "a queue of ours needs no handshake"
    );
    let ids: Vec<String> = (0..3).map(|i| unique_id(&format!("pull{i}"))).collect();
    for id in &ids {
        app.submit(&order(id)).await;
    }
    app.wait_until_stored_count(3, SHORT).await;
    app.drain().await;

    // Receive two: each is an SNS envelope, signed, with the order as its Message.
    let first = receive(&app, "warehouse", &json!({"maxNumberOfMessages": 2})).await;
    assert_eq!(first.len(), 2, "{first:?}");
    let envelope: Value = serde_json::from_str(first[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(envelope["Type"], json!("Notification"), "{envelope}");
    assert_eq!(envelope["SignatureVersion"], json!("2"), "{envelope}");
    assert_eq!(receive_count(&first[0]), "1");

    // Acknowledge the first by its receipt handle; the second is left in flight.
    let response = app
        .client
        .delete(app.endpoint(&format!(
            "/queues/warehouse/messages/{}",
            receipt(&first[0])
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let stale = app
        .client
        .delete(app.endpoint(&format!(
            "/queues/warehouse/messages/{}",
            receipt(&first[0])
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(
        stale.status(),
        StatusCode::NOT_FOUND,
        "a handle deletes once"
    );

    // Only the third is visible while the second is in flight.
    let third = receive(&app, "warehouse", &json!({"maxNumberOfMessages": 10})).await;
    assert_eq!(third.len(), 1, "{third:?}");
    let (status, _) = json_of(
        app.post_json(
            "/queues/warehouse/delete",
            &json!({"receiptHandles": [receipt(&third[0])]}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // After the visibility timeout the unacknowledged one is back, received a second time.
    let second_id = order_id_of(first[1]["body"].as_str().unwrap());
    let again = wait_for(
        SHORT,
        "the unacknowledged message to reappear",
        async || {
            let m = receive(&app, "warehouse", &json!({"maxNumberOfMessages": 10})).await;
            if m.is_empty() {
                Err("nothing visible".into())
            } else {
                Ok(m)
            }
        },
    )
    .await;
    assert_eq!(order_id_of(again[0]["body"].as_str().unwrap()), second_id);
    assert_eq!(receive_count(&again[0]), "2");

    // Past maxReceiveCount it moves to the queue's own dead-letter queue...
    let dead = wait_for(SHORT, "the message to be dead-lettered", async || {
        let _ = receive(&app, "warehouse", &json!({"maxNumberOfMessages": 10})).await;
        let (_, body) = app.get_json("/queues/warehouse/dlq").await;
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        if messages.len() == 1 {
            Ok(messages)
        } else {
            Err(body.to_string())
        }
    })
    .await;
    assert_eq!(order_id_of(dead[0]["body"].as_str().unwrap()), second_id);

    // ...and a redrive puts it back, with a fresh receive count.
    let (status, body) = json_of(
        app.post_json("/queues/warehouse/dlq/redrive", &json!({}))
            .await,
    )
    .await;
    assert_eq!(
        (status, &body["redriven"]),
        (StatusCode::OK, &json!(1)),
        "{body}"
    );
    let back = receive(
        &app,
        "warehouse",
        &json!({"maxNumberOfMessages": 10, "visibilityTimeout": 30}),
    )
    .await;
    assert_eq!(back.len(), 1);
    assert_eq!(receive_count(&back[0]), "1");
    let (_, stats) = app.get_json("/queues/warehouse").await;
    assert_eq!(stats["stats"]["inFlight"], json!(1), "{stats}");
    assert_eq!(stats["stats"]["deadLetter"], json!(0), "{stats}");
}

#[tokio::test]
async fn a_long_poll_returns_as_soon_as_an_order_arrives() {
    let app = spawn_app().await;
    subscribe_with(&app, json!({"protocol": "queue", "endpoint": "waiting"})).await;
    let started = Instant::now();
    let poll = {
        let client = app.client.clone();
        let url = app.endpoint("/queues/waiting/receive");
        tokio::spawn(async move {
            let response = client
                .post(url)
                .header("content-type", "application/json")
                .body(json!({"waitTimeSeconds": 20}).to_string())
                .send()
                .await
                .unwrap();
            json_of(response).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = app.submit(&order(&unique_id("poll"))).await;
    let (status, body) = poll.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{body}");
    assert_eq!(order_id_of(messages[0]["body"].as_str().unwrap()), id);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the poll waited {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn raw_delivery_to_a_queue_carries_the_message_and_its_attributes() {
    let app = spawn_app().await;
    subscribe_with(
        &app,
        json!({"protocol": "queue", "endpoint": "raw", "rawMessageDelivery": true}),
    )
    .await;
    let id = app.submit(&order(&unique_id("raw"))).await;
    app.wait_until_stored(&id, SHORT).await;
    app.drain().await;
    let messages = receive(&app, "raw", &json!({"maxNumberOfMessages": 10})).await;
    assert_eq!(messages.len(), 1);
    let body: Value = serde_json::from_str(messages[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["type"], json!("OrderCreated"), "no envelope: {body}");
    assert_eq!(body["order"]["orderID"], json!(id));
    assert_eq!(
        messages[0]["messageAttributes"]["total"],
        json!({"dataType": "Number", "stringValue": "60.07"}),
        "{}",
        messages[0]
    );
    assert_eq!(
        messages[0]["messageAttributes"]["currency"],
        json!({"dataType": "String", "stringValue": "EUR"})
    );
    assert!(
        read_all(&app, "raw").await.is_empty(),
        "the message is in flight"
    );
}

#[tokio::test]
async fn queue_requests_are_checked() {
    let app = spawn_app().await;
    subscribe_with(&app, json!({"protocol": "queue", "endpoint": "checked"})).await;
    let (status, _) = json_of(app.post_json("/queues/nope/receive", &json!({})).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for (request, field) in [
        (json!({"maxNumberOfMessages": 11}), "maxNumberOfMessages"),
        (json!({"visibilityTimeout": 50000}), "visibilityTimeout"),
        (json!({"waitTimeSeconds": 21}), "waitTimeSeconds"),
    ] {
        let (status, body) =
            json_of(app.post_json("/queues/checked/receive", &request).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{request}: {body}");
        assert_eq!(body["details"][0]["field"], json!(field), "{body}");
    }
    // One subscription per queue: the same subscribe again is that subscription (SNS's
    // Subscribe is idempotent); other settings for the same queue are refused.
    let (status, body) = json_of(
        app.post_json(
            "/subscriptions",
            &json!({"protocol": "queue", "endpoint": "checked"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the existing subscription: {body}");
    let (status, body) = json_of(
        app.post_json(
            "/subscriptions",
            &json!({"protocol": "queue", "endpoint": "checked", "maxReceiveCount": 9}),
        )
        .await,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "one subscription per queue: {body}"
    );
    let (status, body) = json_of(
        app.post_json(
            "/subscriptions",
            &json!({"protocol": "queue", "endpoint": "x-dlq"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn a_receipt_handle_deletes_only_from_the_queue_it_was_received_from() {
    let app = spawn_app().await;
    for queue in ["mine", "theirs"] {
        subscribe_with(&app, json!({"protocol": "queue", "endpoint": queue})).await;
    }
    let id = app.submit(&order(&unique_id("scoped"))).await;
    app.wait_until_stored(&id, SHORT).await;
    app.drain().await;
    let theirs = receive(
        &app,
        "theirs",
        &json!({"maxNumberOfMessages": 1, "visibilityTimeout": 30}),
    )
    .await;
    assert_eq!(theirs.len(), 1);
    let handle = receipt(&theirs[0]);

    // SQS scopes a receipt handle to the queue that issued it
    // (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_DeleteMessage.html:
    // DeleteMessage takes the QueueUrl and the ReceiptHandle received from that queue).
    let response = app
        .client
        .delete(app.endpoint(&format!("/queues/mine/messages/{handle}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let (status, body) = json_of(
        app.post_json("/queues/mine/delete", &json!({"receiptHandles": [handle]}))
            .await,
    )
    .await;
    assert_eq!(
        (status, &body["deleted"]),
        (StatusCode::OK, &json!(0)),
        "{body}"
    );
    let (_, stats) = app.get_json("/queues/theirs").await;
    assert_eq!(stats["stats"]["inFlight"], json!(1), "still there: {stats}");

    let response = app
        .client
        .delete(app.endpoint(&format!("/queues/theirs/messages/{handle}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}
