//! What the gateway and its nodes share: the node link's messages and framing (`protocol`), its
//! mutual TLS and join token (`link`), and the port set a session is reached on.

pub use hati_protocol::node_link::PortSet;

pub mod link;
pub mod protocol;

use std::time::Duration;

/// How often each side of a node link sends a heartbeat.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A node (or gateway) silent this long is taken to be gone.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(5);
