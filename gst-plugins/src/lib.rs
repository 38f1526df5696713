//! GStreamer elements that turn encoded media into Moonlight's RTP packets.
//!
//! * `moonlightvideopay` ([`videopay`]): H.264/HEVC/AV1 access units → video packets with
//!   Reed–Solomon FEC and optional AES-GCM (`docs/PROTOCOL.md` §4).
//! * `moonlightaudiopay` ([`audiopay`]): Opus packets → audio packets with 4+2 FEC and
//!   optional AES-CBC (`docs/PROTOCOL.md` §5).
//! * `hatitestsrc` ([`testsrc`]): the Test pattern app's live picture, cheap per frame.
//! * [`live`]: clock pacing, buffer pool and latency shared by Hati's live video sources.
//! * [`fec`]: the nanors-compatible GF(2^8) Reed–Solomon codes both use.
//!
//! The host registers the elements without installing the plugin by calling
//! [`register_static`] once after `gst::init()`.
//!
//! # Using the elements from the host
//!
//! ```text
//! ... ! x264enc tune=zerolatency ! video/x-h264,stream-format=byte-stream,alignment=au
//!     ! moonlightvideopay name=vpay payload-size=1392 fec-percentage=20 min-required-fec-packets=2
//!       [encrypt=true aes-key=<32 hex digits>] ! appsink name=video
//! ... ! opusenc frame-size=5 bitrate-type=cbr ! moonlightaudiopay packet-duration=5
//!       encrypt=true aes-key=<32 hex digits> rikeyid=<rikeyid> ! appsink name=audio
//! ```
//!
//! * One input buffer is one frame: the video element numbers frames 1, 2, 3, … itself and
//!   keeps the RTP sequence continuous; set it up once per session (a new element restarts at
//!   frame 1, sequence 0 and GCM IV counter 0, so never reuse a rikey with a new element).
//! * Frame type comes from the `DELTA_UNIT` flag; the RTP timestamp from the running time of
//!   the PTS (90 kHz); host latency from a `timestamp/x-unix` `ReferenceTimestampMeta` (capture
//!   wall-clock time) when present, else from the clock. See `videopay/imp.rs`.
//! * IDR requests: send `GstForceKeyUnit` upstream (e.g. `gst_video::UpstreamForceKeyUnitEvent`
//!   with `all-headers=true`) on the payloader's src pad or on the encoder; the payloader
//!   forwards upstream events unchanged.
//! * Output: per frame one `gst::BufferList` with one buffer per datagram, in send order.

use std::sync::OnceLock;

use gst::glib;

pub mod audiopay;
pub mod fec;
pub mod live;
pub mod testsrc;
pub mod videopay;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    videopay::register(Some(plugin))?;
    audiopay::register(Some(plugin))?;
    testsrc::register(Some(plugin))?;
    Ok(())
}

gst::plugin_define!(
    hati,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    env!("CARGO_PKG_VERSION"),
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    "https://example.invalid/hati"
);

/// Registers the `hati` plugin (its three elements) with the running GStreamer, once per process;
/// later calls return the first result. Call after `gst::init()`.
pub fn register_static() -> Result<(), glib::BoolError> {
    static RESULT: OnceLock<Result<(), String>> = OnceLock::new();
    RESULT
        .get_or_init(|| plugin_register_static().map_err(|e| e.to_string()))
        .clone()
        .map_err(|e| glib::bool_error!("registering the hati plugin failed: {}", e))
}

/// Parses an AES-128 key written as 32 hex digits (the `aes-key` property format).
pub fn parse_hex_key(s: &str) -> Option<[u8; 16]> {
    hati_protocol::query::decode_hex(s.trim())?.try_into().ok()
}

/// The value of an `aes-key` property: `Ok(None)` when unset, `Err(())` when it is not 32 hex
/// digits (the element logs that and clears the key).
pub(crate) fn aes_key_property(value: &glib::Value) -> Result<Option<[u8; 16]>, ()> {
    match value.get::<Option<String>>() {
        Ok(Some(text)) => parse_hex_key(&text).map(Some).ok_or(()),
        _ => Ok(None),
    }
}
