//! `moonlightvideopay`: encoded video access units in, Moonlight video RTP packets out.
//!
//! Implements `docs/PROTOCOL.md` §4 (video stream). The wire format lives in the
//! GStreamer-free [`packetizer`]; the element in `imp.rs` feeds it and pushes the packets of
//! each frame as one `gst::BufferList`.
//!
//! ```text
//! gst-launch-1.0 videotestsrc is-live=true ! x264enc tune=zerolatency key-int-max=600 \
//!     ! video/x-h264,stream-format=byte-stream,alignment=au \
//!     ! moonlightvideopay payload-size=1392 fec-percentage=20 ! udpsink host=10.0.0.2 port=47998
//! ```

use gst::glib;
use gst::prelude::*;

mod imp;
pub mod packetizer;
#[cfg(test)]
mod tests;

glib::wrapper! {
    /// The `moonlightvideopay` element (GType `HatiMoonlightVideoPay`).
    pub struct MoonlightVideoPay(ObjectSubclass<imp::MoonlightVideoPay>)
        @extends gst::Element, gst::Object;
}

/// Registers `moonlightvideopay` with `plugin` (or statically with `None`).
pub fn register(plugin: Option<&gst::Plugin>) -> Result<(), glib::BoolError> {
    gst::Element::register(
        plugin,
        "moonlightvideopay",
        gst::Rank::NONE,
        MoonlightVideoPay::static_type(),
    )
}
