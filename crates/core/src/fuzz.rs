//! The bodies of the fuzz targets (`fuzz/`, run with `cargo fuzz`), kept here so a stable
//! `cargo test` runs them too (`tests/fuzz_corpus.rs`). Each may reject its input but must
//! never panic, and what it accepts must round-trip.

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::sqs::SqsEvent;

use crate::event::OrderCreated;
use crate::order::{Order, OrderId, OrderRequest};

/// Order parsing as the API and the store handler do it: an accepted order serializes to
/// JSON that parses back to the same order, and its total is computable without a panic.
pub fn order_parse(data: &[u8]) {
    match OrderRequest::parse(data) {
        Ok(request) => {
            let order = request.into_order(|| OrderId::parse("fuzz-assigned").expect("a valid id"));
            let json = order.to_json();
            let again = Order::parse(json.as_bytes())
                .unwrap_or_else(|e| panic!("an accepted order's own JSON is rejected: {e:?}"));
            assert_eq!(again, order, "the order changed in a JSON round trip");
            let _ = order.total();
        }
        Err(rejection) => {
            let _ = rejection.details();
        }
    }
    let _ = Order::parse(data);
}

/// Event decoding as the two handlers do it: an SQS event's bodies parsed as orders, and a
/// DynamoDB stream event's records turned into `OrderCreated` publications.
pub fn event_decode(data: &[u8]) {
    if let Ok(event) = serde_json::from_slice::<SqsEvent>(data) {
        for message in &event.records {
            if let Some(body) = &message.body {
                order_parse(body.as_bytes());
            }
        }
    }
    if let Ok(event) = serde_json::from_slice::<StreamEvent>(data) {
        for record in &event.records {
            if let Ok(created) = OrderCreated::try_from(record) {
                let publication = created.to_publication(record.event_id.clone());
                let _ = created.attributes();
                let _ = publication;
            }
        }
    }
}
