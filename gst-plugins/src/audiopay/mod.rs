//! `moonlightaudiopay`: Opus packets in, Moonlight audio RTP packets (with FEC) out.
//!
//! Implements `docs/PROTOCOL.md` §5 (audio stream). The wire format lives in the
//! GStreamer-free [`packetizer`]; the element in `imp.rs` feeds it and pushes, per input
//! packet, a `gst::BufferList` with the data packet and, after every fourth, the two FEC
//! packets.
//!
//! ```text
//! gst-launch-1.0 audiotestsrc is-live=true ! audio/x-raw,rate=48000,channels=2 \
//!     ! opusenc frame-size=5 bitrate-type=cbr bitrate=96000 \
//!     ! moonlightaudiopay packet-duration=5 ! udpsink host=10.0.0.2 port=48000
//! ```

use gst::glib;
use gst::prelude::*;

mod imp;
pub mod packetizer;
#[cfg(test)]
mod tests;

glib::wrapper! {
    /// The `moonlightaudiopay` element (GType `HatiMoonlightAudioPay`).
    pub struct MoonlightAudioPay(ObjectSubclass<imp::MoonlightAudioPay>)
        @extends gst::Element, gst::Object;
}

/// Registers `moonlightaudiopay` with `plugin` (or statically with `None`).
pub fn register(plugin: Option<&gst::Plugin>) -> Result<(), glib::BoolError> {
    gst::Element::register(
        plugin,
        "moonlightaudiopay",
        gst::Rank::NONE,
        MoonlightAudioPay::static_type(),
    )
}
