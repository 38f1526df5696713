//! Fuzz target `browser_message`: see fuzz/README.md.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hati_protocol::browser::fuzzing::message(data));
