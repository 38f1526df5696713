//! A headless Wayland compositor per streaming session, and the `waylanddisplaysrc` GStreamer
//! source that turns its output into raw video.
//!
//! Each session calls [`Compositor::start`] with the stream size and frame rate. The compositor
//! runs on its own thread (a calloop event loop), listens on a unique socket inside the given
//! runtime directory and renders with Smithay's pixman renderer into CPU memory, so no GPU is
//! needed. The returned [`CompositorHandle`] names the socket (`WAYLAND_DISPLAY`, and `DISPLAY`
//! when XWayland runs), injects input ([`input::InputEvent`]) and renders frames into
//! `gst::Buffer`s; [`waylanddisplaysrc`] wraps that as a live `PushSrc`. Several streams may
//! share one compositor, each through its own [`FrameConsumer`]: a change is rendered once and
//! handed to all of them.
//!
//! A host session typically does this:
//!
//! ```no_run
//! use hati_compositor::{Compositor, CompositorConfig, InputEvent, vk_to_evdev};
//!
//! let handle = Compositor::start(CompositorConfig {
//!     width: 1920,
//!     height: 1080,
//!     fps: 60,
//!     runtime_dir: "/run/user/1000".into(),
//!     xwayland: true,
//!     on_thread_start: None,
//! })?;
//! // Launch the application with these variables (XDG_RUNTIME_DIR, WAYLAND_DISPLAY, DISPLAY).
//! let _env = handle.client_env();
//!
//! // Frames: the element attaches to the running compositor by its socket name.
//! gst::init()?;
//! hati_compositor::waylanddisplaysrc::register_static()?;
//! let _pipeline = gst::parse::launch(&format!(
//!     "waylanddisplaysrc wayland-display={} ! videoconvert ! x264enc tune=zerolatency ! fakesink",
//!     handle.wayland_display()
//! ))?;
//!
//! // Input from the client, from any thread.
//! let input = handle.input_sender();
//! if let Some(key) = vk_to_evdev(0x41) {
//!     input.send(InputEvent::KeyboardKey { linux_keycode: key, pressed: true })?;
//!     input.send(InputEvent::KeyboardKey { linux_keycode: key, pressed: false })?;
//! }
//! // Dropping the last handle (or `handle.stop()`) ends the compositor and removes its socket.
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod handle;
mod handlers;
pub mod input;
mod render;
mod state;
pub mod vk;
pub mod waylanddisplaysrc;

pub use handle::delays;
pub use handle::{
    Compositor, CompositorConfig, CompositorError, CompositorHandle, CompositorStats,
    FrameConsumer, FrameOutcome, InputSender,
};
pub use input::{InputEvent, PenEvent, PenKind, TouchKind};
pub use render::RenderError;
pub use state::StateError;
pub use vk::vk_to_evdev;
