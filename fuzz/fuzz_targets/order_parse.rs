#![no_main]
//! Order parsing: rejects or round-trips, never panics.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| orderflow_core::fuzz::order_parse(data));
