//! A headless Wayland compositor per streaming session.
