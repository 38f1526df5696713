//! Integration tests of the compositor with real Wayland clients: `hati-test-client` (built
//! from this crate), Debian's `weston-simple-shm`, in-process `wayland-client` connections and,
//! when installed, X11 clients through XWayland. Frames are pulled from `waylanddisplaysrc` into
//! an `appsink`, or straight from `FrameConsumer`s (`sharing`).

mod fixture;

mod clients;
mod element;
mod frames;
mod input;
mod lifecycle;
mod protocols;
mod sharing;
