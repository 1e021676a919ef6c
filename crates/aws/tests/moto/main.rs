//! The AWS adapters and the two Lambda binaries against moto, the local AWS emulator.
//!
//! `./scripts/test-aws` starts moto and sets `ORDERFLOW_MOTO_URL`; without it every test
//! here says loudly that it was skipped.

mod conformance;
mod pipeline;
mod sns;
mod support;
