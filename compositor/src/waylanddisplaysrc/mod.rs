//! `waylanddisplaysrc`: a live source producing the frames of a Hati compositor as
//! `video/x-raw,format=BGRx` in system memory.
//!
//! The element either starts its own compositor when it starts (sized by its `width`, `height`
//! and `framerate` properties, socket in `runtime-dir`) or uses a running one: attached from Rust
//! with [`WaylandDisplaySrc::set_compositor`], or named by socket in the `wayland-display`
//! property (a compositor started by this process with [`crate::Compositor::start`]).
//!
//! Several elements may use one compositor (the streams of a shared session): each is its own
//! [`crate::FrameConsumer`], so a change is rendered once and every element pushes it. The
//! `output-fps` property lets one produce fewer frames than the compositor (a guest's stream);
//! its caps then carry that rate, at the compositor's size.

use gst::{glib, prelude::*, subclass::prelude::*};

use crate::CompositorHandle;

mod imp;

glib::wrapper! {
    /// The `waylanddisplaysrc` element (GType `HatiWaylandDisplaySrc`).
    pub struct WaylandDisplaySrc(ObjectSubclass<imp::WaylandDisplaySrc>)
        @extends gst_base::PushSrc, gst_base::BaseSrc, gst::Element, gst::Object;
}

impl WaylandDisplaySrc {
    /// Makes the element use `handle` instead of starting a compositor. Call it before the
    /// element leaves the READY state; caps follow the compositor's size and frame rate (or
    /// `output-fps` when set).
    pub fn set_compositor(&self, handle: CompositorHandle) {
        self.imp().set_compositor(handle);
    }

    /// The compositor the element renders, once it has started (or been given one).
    pub fn compositor(&self) -> Option<CompositorHandle> {
        self.imp().compositor()
    }
}

/// Registers `waylanddisplaysrc` in `plugin`.
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "waylanddisplaysrc",
        gst::Rank::NONE,
        WaylandDisplaySrc::static_type(),
    )
}

/// Registers `waylanddisplaysrc` with no plugin, for use inside this process (call after
/// `gst::init()`; calling it again is harmless).
pub fn register_static() -> Result<(), glib::BoolError> {
    gst::Element::register(
        None,
        "waylanddisplaysrc",
        gst::Rank::NONE,
        WaylandDisplaySrc::static_type(),
    )
}
