//! End-to-end tests: each one starts the real `orderflow` binary on a fresh data directory.

mod auth;
mod backpressure;
mod backup;
mod bench;
mod cli;
mod crash;
mod dead_letters;
mod delivery;
mod dlq;
mod errors;
mod fanout_email;
mod fanout_log;
mod fanout_queue;
mod fanout_support;
mod filter_policy;
mod helpers;
mod limits;
mod observability;
mod orders;
mod peers;
mod queue;
mod recovery;
mod shutdown;
mod signing;
mod subscriber;
mod subscriptions;
