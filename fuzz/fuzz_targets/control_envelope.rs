//! Fuzz target `control_envelope`: see fuzz/README.md.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hati_protocol::control::fuzzing::envelope(data));
