//! The media path of a session: its GStreamer pipelines, and the UDP endpoints that learn each
//! client's address from its pings (PROTOCOL.md §4.1, §5.1) and send the payloaders' packets
//! there.

pub mod media;
pub mod ping;
pub mod sender;
pub mod target;

pub use media::{MediaStream, StreamError};
pub use target::Target;
