//! Fuzz target `rtsp_response`: see fuzz/README.md.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hati_protocol::rtsp::fuzzing::response(data));
