//! Our AWS adapters and the two Lambda binaries, unchanged, against `orderflow serve`'s AWS
//! wire protocols (DynamoDB, DynamoDB Streams, SNS and SQS on its own listener), as they run
//! against moto in tests/moto.
//!
//! `./scripts/test-awsapi` builds the binary and sets `ORDERFLOW_BIN`; without it every test
//! here says loudly that it was skipped.

mod conformance;
mod pipeline;
mod support;
