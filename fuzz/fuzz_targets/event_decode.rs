#![no_main]
//! SQS and DynamoDB stream event decoding as the handlers do it: never panics.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| orderflow_core::fuzz::event_decode(data));
