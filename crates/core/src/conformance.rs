//! Port conformance suites: every adapter's tests call these with their own instance.
//!
//! Ids are fresh per run, so the suites also work against a shared, long-lived table.

use std::collections::BTreeMap;

use chrono::{SubsecRound, Utc};

use crate::order::{OrderId, OrderRequest, StoredOrder};
use crate::ports::{MessageAttribute, OrderTable, Publication, TableError, Topic};

/// A valid stored order with a fresh id.
pub fn sample_order() -> StoredOrder {
    let id = OrderId::generate();
    let body = format!(
        r#"{{"orderID":"{id}","customerId":"cust-1","customerEmail":"a@example.com","items":[{{"sku":"A-1","quantity":3,"unitPrice":19.99}},{{"sku":"B","quantity":1,"unitPrice":0.1}}],"currency":"EUR","shippingAddress":{{"line1":"1 Main St","city":"Berlin","postalCode":"10115","country":"DE"}},"notes":"ring twice"}}"#
    );
    let order = OrderRequest::parse(body.as_bytes())
        .expect("sample order is valid")
        .into_order(OrderId::generate);
    let now = Utc::now().trunc_subsecs(3);
    StoredOrder::new(order, now, now)
        .expect("sample total")
        .with_request_id(Some(crate::RequestId::generate()))
}

pub async fn order_table(table: &dyn OrderTable) {
    let order = sample_order();

    assert!(
        table.get(order.id()).await.unwrap().is_none(),
        "a new id is not stored yet"
    );

    table.put_new(&order).await.expect("first put stores");
    let got = table
        .get(order.id())
        .await
        .unwrap()
        .expect("stored order is found");
    assert_eq!(got, order, "the stored order reads back exactly");
    assert_eq!(got.total.to_string(), "60.07");

    // The queue delivers at least once: the same order again, received and stored at
    // another moment, is a resend.
    let mut resend = order.clone();
    resend.received_at += chrono::Duration::seconds(5);
    resend.stored_at += chrono::Duration::seconds(5);
    resend.request_id = Some(crate::RequestId::generate());
    match table.put_new(&resend).await {
        Err(TableError::AlreadyExists(id)) => assert_eq!(&id, order.id()),
        other => panic!("a resend of the same order must be AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        table.get(order.id()).await.unwrap().unwrap(),
        order,
        "a resend leaves the stored order as it was"
    );

    let mut second = order.clone();
    second.order.customer_id = "someone-else".into();
    match table.put_new(&second).await {
        Err(TableError::Conflict(id)) => assert_eq!(&id, order.id()),
        other => panic!("a different order under a taken id must be Conflict, got {other:?}"),
    }
    let mut dearer = order.clone();
    dearer.order.items[0].quantity += 1;
    dearer.total = dearer.order.total().unwrap();
    assert!(
        matches!(table.put_new(&dearer).await, Err(TableError::Conflict(_))),
        "a changed quantity is a different order"
    );
    assert_eq!(
        table.get(order.id()).await.unwrap().unwrap(),
        order,
        "the first write wins, untouched"
    );

    let other = sample_order();
    table.put_new(&other).await.expect("another id stores");
    assert_eq!(table.get(other.id()).await.unwrap().unwrap(), other);
}

pub async fn topic(topic: &dyn Topic) {
    let publication = Publication {
        dedup_id: uuid::Uuid::new_v4().to_string(),
        subject: "OrderCreated".into(),
        message: r#"{"type":"OrderCreated","order":{}}"#.into(),
        attributes: BTreeMap::from([
            (
                "eventType".to_owned(),
                MessageAttribute::String("OrderCreated".into()),
            ),
            ("total".to_owned(), MessageAttribute::Number("60.07".into())),
        ]),
    };
    let id = topic.publish(&publication).await.expect("publish succeeds");
    assert!(!id.is_empty(), "a message id is returned");

    let mut other = publication.clone();
    other.dedup_id = uuid::Uuid::new_v4().to_string();
    let id2 = topic
        .publish(&other)
        .await
        .expect("second publish succeeds");
    assert_ne!(id, id2, "distinct publications get distinct message ids");
}
