//! The host's video and audio UDP sockets: clients ping them (PROTOCOL.md §4.1, §5.1; see
//! `session::pings`) and the same sockets send the streams.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;

use anyhow::Context;

/// Kernel send buffer for the media sockets, so key frames fit.
const SEND_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// Which stream a socket carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// Video (RTP + FEC).
    Video,
    /// Audio (RTP + FEC).
    Audio,
}

/// The host's two media sockets.
#[derive(Debug, Clone)]
pub struct MediaSockets {
    /// The video socket.
    pub video: Arc<UdpSocket>,
    /// The audio socket.
    pub audio: Arc<UdpSocket>,
}

impl MediaSockets {
    /// Binds both sockets.
    pub fn bind(address: IpAddr, video_port: u16, audio_port: u16) -> anyhow::Result<Self> {
        Ok(Self {
            video: Arc::new(bind_one(
                SocketAddr::new(address, video_port),
                "network.video_port",
            )?),
            audio: Arc::new(bind_one(
                SocketAddr::new(address, audio_port),
                "network.audio_port",
            )?),
        })
    }
}

fn bind_one(address: SocketAddr, key: &str) -> anyhow::Result<UdpSocket> {
    let context = || format!("cannot listen on UDP {address} (set by {key} in the config)");
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::DGRAM,
        None,
    )
    .with_context(context)?;
    let _ = socket.set_send_buffer_size(SEND_BUFFER_BYTES);
    socket.bind(&address.into()).with_context(context)?;
    socket.set_nonblocking(true).with_context(context)?;
    let socket: UdpSocket = socket.into();
    super::qos::mark_for_qos(&socket, key == "network.audio_port");
    Ok(socket)
}
