//! The orders the bench sends: one body per id, built before any clock starts.

use axum::body::Bytes;
use serde_json::json;

pub fn order_body(id: &str, i: usize) -> String {
    json!({
        "orderID": id,
        "customerId": format!("bench-{}", i % 1000),
        "customerEmail": "bench@example.com",
        "items": [
            {"sku": "SKU-1", "quantity": 1 + (i % 5), "unitPrice": 19.99},
            {"sku": "SKU-2", "quantity": 2, "unitPrice": 0.5}
        ],
        "currency": "EUR",
        "shippingAddress": {"line1": "1 Main St", "city": "Berlin", "postalCode": "10115", "country": "DE"}
    })
    .to_string()
}

/// One order body per id, built before any clock starts.
pub fn order_bodies(ids: &[String]) -> Vec<Bytes> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| Bytes::from(order_body(id, i)))
        .collect()
}
