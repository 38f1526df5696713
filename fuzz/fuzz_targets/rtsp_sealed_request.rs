//! Fuzz target `rtsp_sealed_request`: see fuzz/README.md.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hati_protocol::rtsp::fuzzing::sealed_request(data));
