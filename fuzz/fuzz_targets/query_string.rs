//! Fuzz target `query_string`: see fuzz/README.md.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hati_protocol::query::fuzzing::query(data));
