//! orderflow's core: the order domain, the ports it needs, and the two pipeline handlers.
//!
//! Nothing here knows about SQLite, HTTP servers or the AWS SDK. The handlers take and
//! return the real AWS Lambda event types, so the same code runs in Lambda and in
//! `orderflow serve`.

pub mod content_hash;
pub mod correlation;
pub mod event;
pub mod filter;
pub mod fuzz;
pub mod handlers;
pub mod item;
pub mod mail;
pub mod memory;
pub mod money;
pub mod order;
pub mod ports;
pub mod time;

#[cfg(any(test, feature = "testing"))]
pub mod conformance;

pub use content_hash::ContentHash;
pub use correlation::RequestId;
pub use event::{OrderCreated, TOPIC_SUBJECT};
pub use mail::OrderMail;
pub use money::Money;
pub use order::{FieldError, Order, OrderId, OrderRejection, OrderRequest, StoredOrder};
pub use ports::{MessageAttribute, OrderTable, Publication, TableError, Topic, TopicError};

/// Renders an error with its whole `source()` chain, for logs.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
