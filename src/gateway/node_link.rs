//! The gateway's end of node links: a TLS listener nodes dial, admission by join token, then
//! one reader (replies, session changes, heartbeats) and one writer (orders, heartbeats) per
//! node. A link silent for [`NODE_TIMEOUT`] or closed takes its node out.
//!
//! Nothing unauthenticated is unbounded: at most [`MAX_HANDSHAKES`] connections may be in
//! their TLS handshake or hello at once (more are closed at accept), each has
//! [`HELLO_TIMEOUT`] for both, and a hello is one bounded frame.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;

use super::Gateway;
use crate::cluster::protocol::{
    GatewayMessage, NodeMessage, PROTOCOL_VERSION, read_message, write_message,
};
use crate::cluster::{HEARTBEAT, NODE_TIMEOUT};

/// Connections that may be unauthenticated at once.
pub const MAX_HANDSHAKES: usize = 32;
/// Time for the TLS handshake and the hello together.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Orders queued for one node before a sender waits.
const LINK_QUEUE: usize = 256;

/// Accepts node links until shutdown.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    tls: rustls::ServerConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::debug!(%error, "node link accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let Ok(permit) = handshakes.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many unauthenticated node links; closed");
            continue;
        };
        let gateway = gateway.clone();
        let acceptor = acceptor.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let admitted =
                tokio::time::timeout(HELLO_TIMEOUT, handshake(stream, peer, &acceptor, &gateway))
                    .await;
            drop(permit);
            match admitted {
                Ok(Ok((node, stream, outgoing, queue))) => {
                    run_link(node, stream, outgoing, queue, &gateway, shutdown).await;
                }
                Ok(Err(reason)) => tracing::warn!(%peer, %reason, "node link refused"),
                Err(_) => {
                    tracing::warn!(%peer, "node link refused: no hello within {} s", HELLO_TIMEOUT.as_secs())
                }
            }
        });
    }
}

type Link = tokio_rustls::server::TlsStream<TcpStream>;

/// TLS, the hello, admission. Returns the node's number and its link.
async fn handshake(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: &TlsAcceptor,
    gateway: &Gateway,
) -> Result<
    (
        u32,
        Link,
        mpsc::Sender<GatewayMessage>,
        mpsc::Receiver<GatewayMessage>,
    ),
    String,
> {
    let _ = stream.set_nodelay(true);
    let mut stream = acceptor
        .accept(stream)
        .await
        .map_err(|error| format!("TLS: {error}"))?;
    let fingerprint = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .map(|cert| crate::state::clients::fingerprint(cert))
        .ok_or("the node sent no certificate")?;
    let mut buffer = Vec::new();
    let hello = match read_message::<NodeMessage, _>(&mut stream, &mut buffer).await {
        Ok(NodeMessage::Hello(hello)) => hello,
        Ok(_) => return Err("the first message was not a hello".into()),
        Err(error) => return Err(error.to_string()),
    };
    let refusal = if !gateway.token().admits(&hello.secret) {
        Some("wrong join token (print the right one with `hati join-token` on the gateway)".into())
    } else if hello.protocol != PROTOCOL_VERSION {
        Some(format!(
            "node link protocol {} is not this gateway's {PROTOCOL_VERSION}: run the same Hati version on both",
            hello.protocol
        ))
    } else if hello.capacity == 0 {
        Some("a node with capacity 0 can run nothing".to_owned())
    } else {
        None
    };
    if let Some(reason) = refusal {
        return Err(refuse(&mut stream, reason).await);
    }
    let (outgoing, queue) = mpsc::channel(LINK_QUEUE);
    let node = match gateway
        .admit(
            hello,
            fingerprint,
            crate::net::canonical_ip(peer.ip()),
            outgoing.clone(),
        )
        .await
    {
        Ok(node) => node,
        Err(reason) => return Err(refuse(&mut stream, reason).await),
    };
    write_message(&mut stream, &GatewayMessage::Welcome { node })
        .await
        .map_err(|error| error.to_string())?;
    Ok((node, stream, outgoing, queue))
}

/// Tells a node why it was not admitted; returns the reason for the log.
async fn refuse(stream: &mut Link, reason: String) -> String {
    let _ = write_message(
        stream,
        &GatewayMessage::Refused {
            reason: reason.clone(),
        },
    )
    .await;
    reason
}

/// Serves an admitted node until its link ends, then takes it out.
async fn run_link(
    node: u32,
    stream: Link,
    outgoing: mpsc::Sender<GatewayMessage>,
    queue: mpsc::Receiver<GatewayMessage>,
    gateway: &Gateway,
    mut shutdown: watch::Receiver<bool>,
) {
    let (reader, writer) = tokio::io::split(stream);
    drop(outgoing);
    let writer = tokio::spawn(write_link(writer, queue));
    let reason = tokio::select! {
        reason = read_link(node, reader, gateway) => reason,
        _ = shutdown.changed() => {
            // The gateway stops; its nodes keep their sessions and re-dial the next one.
            writer.abort();
            return;
        }
    };
    writer.abort();
    gateway.node_lost(node, &reason).await;
}

async fn read_link<R: AsyncRead + Unpin>(node: u32, mut reader: R, gateway: &Gateway) -> String {
    let mut buffer = Vec::new();
    loop {
        let message = match tokio::time::timeout(
            NODE_TIMEOUT,
            read_message::<NodeMessage, _>(&mut reader, &mut buffer),
        )
        .await
        {
            Ok(Ok(message)) => message,
            Ok(Err(error)) => return error.to_string(),
            Err(_) => {
                return format!("no heartbeat for {} s", NODE_TIMEOUT.as_secs());
            }
        };
        match message {
            NodeMessage::Heartbeat { sessions, load } => gateway.heartbeat(node, sessions, load),
            NodeMessage::Reply { request, error } => gateway.replied(node, request, error),
            NodeMessage::Session { session, change } => {
                gateway.session_changed(node, session, change).await;
            }
            NodeMessage::Stats {
                session,
                fps,
                bitrate_kbps,
                video_frames,
            } => {
                let stats = super::PlacedStats {
                    fps,
                    bitrate_kbps,
                    video_frames,
                };
                gateway.stats(node, session, stats);
            }
            NodeMessage::BrowserSignal { channel, text } => {
                let message = text.map_or(super::ToPage::Ping, super::ToPage::Text);
                gateway.to_page(node, channel, message);
            }
            NodeMessage::BrowserClose { channel } => {
                gateway.to_page(node, channel, super::ToPage::Close);
            }
            NodeMessage::Hello(_) => return "a second hello on one link".into(),
        }
    }
}

async fn write_link<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut queue: mpsc::Receiver<GatewayMessage>,
) {
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    loop {
        let message = tokio::select! {
            message = queue.recv() => match message {
                Some(message) => message,
                None => return,
            },
            _ = heartbeat.tick() => GatewayMessage::Heartbeat,
        };
        if write_message(&mut writer, &message).await.is_err() {
            return;
        }
    }
}
