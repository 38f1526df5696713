//! Fuzz target `node_link_message`: see fuzz/README.md.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hati_protocol::node_link::fuzzing::message(data));
