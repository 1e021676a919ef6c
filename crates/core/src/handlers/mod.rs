//! The two pipeline handlers, over the real AWS Lambda event types.

pub mod publish;
pub mod store;

pub use publish::publish_orders;
pub use store::store_orders;
