//! What the gateway and its nodes share: the node link's messages and framing (`protocol`), its
//! mutual TLS and join token (`link`), and the port set a session is reached on.

use serde::{Deserialize, Serialize};

/// The four ports one session's streams use: RTSP (TCP), control (ENet over UDP), video and
/// audio (UDP). On the gateway's front address each session gets its own set; on a node the set
/// is the node's fixed ports, shared by its sessions (told apart by their payloads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortSet {
    /// RTSP, TCP.
    pub rtsp: u16,
    /// Control stream, UDP (ENet).
    pub control: u16,
    /// Video, UDP.
    pub video: u16,
    /// Audio, UDP.
    pub audio: u16,
}

pub mod link;
pub mod protocol;

use std::time::Duration;

/// How often each side of a node link sends a heartbeat.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A node (or gateway) silent this long is taken to be gone.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(5);
