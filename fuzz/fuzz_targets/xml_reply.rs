//! Fuzz target `xml_reply`: see fuzz/README.md.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hati_protocol::xml::fuzzing::reply(data));
