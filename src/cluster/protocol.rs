//! The node link's framing on a connection (the messages themselves are
//! [`hati_protocol::node_link`]'s): read and write one bounded frame at a time.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub use hati_protocol::node_link::{
    BrowserOpen, GatewayMessage, Hello, LaunchOrder, MAX_FRAME, NodeMessage, PROTOCOL_VERSION,
    RunningSession, SessionChange, WireKey,
};

/// What can go wrong reading or writing a frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The connection failed or closed.
    #[error("node link: {0}")]
    Io(#[from] std::io::Error),
    /// A frame longer than [`MAX_FRAME`].
    #[error("node link: a frame of {0} bytes is longer than the {MAX_FRAME} allowed")]
    TooLong(usize),
    /// A frame that is not a message of this protocol.
    #[error("node link: malformed message: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// Parses one frame's body.
pub fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, FrameError> {
    Ok(hati_protocol::node_link::decode(body)?)
}

/// Reads one message; `buffer` is reused between calls.
pub async fn read_message<T, R>(reader: &mut R, buffer: &mut Vec<u8>) -> Result<T, FrameError>
where
    T: for<'de> Deserialize<'de>,
    R: AsyncRead + Unpin,
{
    let length = reader.read_u32().await? as usize;
    if length > MAX_FRAME {
        return Err(FrameError::TooLong(length));
    }
    buffer.clear();
    buffer.resize(length, 0);
    reader.read_exact(buffer).await?;
    decode(buffer)
}

/// Writes one message.
pub async fn write_message<T, W>(writer: &mut W, message: &T) -> Result<(), FrameError>
where
    T: Serialize,
    W: AsyncWrite + Unpin,
{
    let body = hati_protocol::node_link::encode(message)?;
    if body.len() > MAX_FRAME {
        return Err(FrameError::TooLong(body.len()));
    }
    let length = u32::try_from(body.len()).map_err(|_| FrameError::TooLong(body.len()))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(&body);
    writer.write_all(&frame).await?;
    writer.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EndReason;
    use hati_protocol::node_link::PortSet;

    fn ports() -> PortSet {
        PortSet {
            rtsp: 40000,
            control: 40001,
            video: 40002,
            audio: 40003,
        }
    }

    #[tokio::test]
    async fn messages_survive_the_round_trip() {
        let launch = GatewayMessage::Launch(Box::new(LaunchOrder {
            request: 7,
            session: 42,
            client_id: "ab".repeat(32),
            client_ip: "10.0.0.2".parse().unwrap(),
            app_id: 1,
            app: "Test pattern".into(),
            mode: Some((1280, 720, 30)),
            surround_info: 0x3_0002,
            key: Some(WireKey {
                rikey: "00112233445566778899aabbccddeeff".into(),
                rikeyid: -5,
                corever: 1,
            }),
            front: ports(),
        }));
        let (mut a, mut b) = tokio::io::duplex(4096);
        write_message(&mut a, &launch).await.unwrap();
        let mut buffer = Vec::new();
        let read: GatewayMessage = read_message(&mut b, &mut buffer).await.unwrap();
        assert_eq!(read, launch);
        let ended = NodeMessage::Session {
            session: 42,
            change: SessionChange::Ended {
                reason: EndReason::AppExited,
            },
        };
        write_message(&mut b, &ended).await.unwrap();
        let read: NodeMessage = read_message(&mut a, &mut buffer).await.unwrap();
        assert_eq!(read, ended);
    }

    #[tokio::test]
    async fn an_oversized_frame_is_refused_before_it_is_read() {
        let (mut a, mut b) = tokio::io::duplex(64);
        tokio::spawn(async move {
            let _ = a.write_u32(MAX_FRAME as u32 + 1).await;
        });
        let mut buffer = Vec::new();
        let error = read_message::<NodeMessage, _>(&mut b, &mut buffer)
            .await
            .unwrap_err();
        assert!(matches!(error, FrameError::TooLong(_)), "{error}");
        assert!(buffer.capacity() < 1024, "nothing was allocated for it");
    }
}
