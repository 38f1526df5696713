//! Fuzz target `input_packet`: see fuzz/README.md.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hati_protocol::input::fuzzing::input(data));
