//! A headless Wayland compositor per streaming session, and the `waylanddisplaysrc` GStreamer
//! source that turns its output into raw video.
//!
//! Each session calls [`Compositor::start`] with the stream size and frame rate. The compositor
//! runs on its own thread (a calloop event loop), listens on a unique socket inside the given
//! runtime directory and renders with Smithay's pixman renderer into CPU memory, so no GPU is
//! needed. The returned [`CompositorHandle`] names the socket (`WAYLAND_DISPLAY`, and `DISPLAY`
//! when XWayland runs), injects input ([`input::InputEvent`]) and renders frames into
//! `gst::Buffer`s; [`waylanddisplaysrc`] wraps that as a live `PushSrc`.

mod handle;
mod handlers;
pub mod input;
mod render;
mod state;
pub mod vk;
pub mod waylanddisplaysrc;

pub use handle::{
    Compositor, CompositorConfig, CompositorError, CompositorHandle, CompositorStats, FrameOutcome,
    InputSender,
};
pub use input::{InputEvent, PenEvent, PenKind, TouchKind};
pub use render::RenderError;
pub use state::StateError;
pub use vk::vk_to_evdev;
