//! The two pipeline handlers, over the real AWS Lambda event types.

pub mod publish;
pub mod store;

pub use publish::{publish_orders, publish_orders_explained};
pub use store::{store_orders, store_orders_explained};
