//! Fuzz target `enet_connect`: see fuzz/README.md.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hati_protocol::enet::fuzzing::connect(data));
