//! Fuzz target `sdp_announce`: see fuzz/README.md.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hati_protocol::sdp::fuzzing::announce(data));
