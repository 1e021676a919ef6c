//! End-to-end tests: each one starts the real `orderflow` binary on a fresh data directory.

mod auth;
mod backpressure;
mod cli;
mod crash;
mod delivery;
mod errors;
mod helpers;
mod orders;
mod queue;
mod recovery;
mod shutdown;
mod subscriber;
mod subscriptions;
