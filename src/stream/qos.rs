//! QoS marking of the media sockets (DSCP and `SO_PRIORITY`).

use std::net::UdpSocket;

/// Marks the socket's packets for QoS as Sunshine does: DSCP 40 (CS5) for video, 56 (CS7) for
/// audio, and `SO_PRIORITY` 5 and 6 for the host's own queues. Best effort: a failure is logged.
pub fn mark_for_qos(socket: &UdpSocket, audio: bool) {
    use nix::sys::socket::{setsockopt, sockopt};
    let dscp: i32 = if audio { 56 } else { 40 };
    let priority: i32 = if audio { 6 } else { 5 };
    let v6 = socket.local_addr().is_ok_and(|a| a.is_ipv6());
    // A dual-stack socket sends IPv4 (to mapped addresses) with IP_TOS and IPv6 with the
    // traffic class: set both there.
    let mut result = setsockopt(socket, sockopt::IpTos, &(dscp << 2));
    if v6 {
        result = setsockopt(socket, sockopt::Ipv6TClass, &(dscp << 2)).and(result);
    }
    if let Err(error) = result.and(setsockopt(socket, sockopt::Priority, &priority)) {
        tracing::debug!(%error, audio, "cannot mark the media socket for QoS");
    }
}
