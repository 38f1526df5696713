//! `hati node`: a host that runs sessions for a gateway. It serves no HTTP (clients pair and
//! launch at the gateway); it dials the gateway, keeps one mutually authenticated link, and
//! launches, resumes and stops sessions the gateway orders, answering RTSP SETUP with the
//! session's front ports. Its sessions outlive the link: after a gateway restart or a link
//! loss it re-dials and reports them, so streams go on.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_rustls::TlsConnector;

use crate::cluster::link::{JoinToken, node_tls, server_name};
use crate::cluster::protocol::{
    GatewayMessage, Hello, LaunchOrder, NodeMessage, PROTOCOL_VERSION, RunningSession,
    SessionChange, read_message, write_message,
};
use crate::cluster::{HEARTBEAT, NODE_TIMEOUT};
use crate::events::{Event, Stamped};
use crate::gateway::lock;
use crate::host::Host;
use crate::session::{LaunchParams, LaunchRequest, Placement};

/// How long a connection attempt (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Wait between attempts after a failure.
const RETRY: Duration = Duration::from_secs(1);
/// Wait after the gateway refused the node (a wrong token will not fix itself quickly).
const RETRY_REFUSED: Duration = Duration::from_secs(10);
/// The environment variable naming the gateway (`host:port`).
pub const GATEWAY_ENV: &str = "HATI_GATEWAY";

/// What a node needs to join.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// The gateway's node-link address, `host:port`.
    pub gateway: String,
    /// The join token.
    pub token: JoinToken,
    /// The node's name.
    pub name: String,
    /// Sessions it runs together.
    pub capacity: u32,
    /// The address the gateway forwards to (`None`: the link's).
    pub address: Option<IpAddr>,
}

/// How a link ended.
#[derive(Debug)]
enum LinkEnd {
    /// The gateway refused the node; the reason is the gateway's.
    Refused(String),
    /// It failed or went silent.
    Failed(String),
}

/// Keeps the node joined to its gateway until shutdown.
pub async fn run(host: Arc<Host>, settings: NodeSettings, mut shutdown: watch::Receiver<bool>) {
    let tls = match node_tls(&host.identity, &settings.token) {
        Ok(tls) => Arc::new(tls),
        Err(error) => {
            tracing::error!(%error, "cannot set up the node link's TLS");
            return;
        }
    };
    let connector = TlsConnector::from(tls);
    loop {
        let ended = tokio::select! {
            ended = serve_link(&host, &settings, &connector) => ended,
            _ = shutdown.changed() => return,
        };
        let wait = match ended {
            LinkEnd::Refused(reason) => {
                tracing::error!(gateway = %settings.gateway, %reason, "the gateway refused this node");
                RETRY_REFUSED
            }
            LinkEnd::Failed(reason) => {
                tracing::warn!(gateway = %settings.gateway, %reason, "node link down; dialling again");
                // Up to a second more, at random: after a gateway restart its nodes do not all
                // dial at once (the gateway takes 32 handshakes at a time).
                RETRY + Duration::from_millis(u64::from(crate::crypto::random::<2>()[0]) * 4)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One link: connect, hello, then serve orders until it ends.
async fn serve_link(
    host: &Arc<Host>,
    settings: &NodeSettings,
    connector: &TlsConnector,
) -> LinkEnd {
    let failed =
        |what: &str, error: &dyn std::fmt::Display| LinkEnd::Failed(format!("{what}: {error}"));
    let stream =
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&settings.gateway)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => return failed("cannot connect", &error),
            Err(_) => return LinkEnd::Failed("connect timed out".into()),
        };
    let _ = stream.set_nodelay(true);
    // Forwarded streams reach this node from the gateway's side of the link (relay, or DNAT
    // with masquerade): pings from there are the clients'.
    let gateway_ip = stream
        .peer_addr()
        .ok()
        .map(|a| crate::net::canonical_ip(a.ip()));
    let mut link =
        match tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(server_name(), stream)).await
        {
            Ok(Ok(link)) => link,
            Ok(Err(error)) => return failed("TLS", &error),
            Err(_) => return LinkEnd::Failed("TLS handshake timed out".into()),
        };
    // Subscribed before the hello, so no session change between the two is missed.
    let events = host.events.subscribe();
    let hello = Hello {
        protocol: PROTOCOL_VERSION,
        secret: settings.token.secret.clone(),
        name: settings.name.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        capacity: settings.capacity,
        codecs: codecs(host),
        ports: crate::cluster::PortSet {
            rtsp: host.ports.rtsp,
            control: host.ports.control,
            video: host.ports.video,
            audio: host.ports.audio,
        },
        address: settings.address,
        sessions: running_sessions(host),
    };
    let reported = hello.sessions.len();
    if let Err(error) = write_message(&mut link, &NodeMessage::Hello(hello)).await {
        return failed("hello", &error);
    }
    let mut buffer = Vec::new();
    match tokio::time::timeout(
        NODE_TIMEOUT,
        read_message::<GatewayMessage, _>(&mut link, &mut buffer),
    )
    .await
    {
        Ok(Ok(GatewayMessage::Welcome { node })) => {
            tracing::info!(gateway = %settings.gateway, node, sessions = reported, "joined the gateway");
        }
        Ok(Ok(GatewayMessage::Refused { reason })) => return LinkEnd::Refused(reason),
        Ok(Ok(_)) => return LinkEnd::Failed("the gateway did not answer the hello".into()),
        Ok(Err(error)) => return failed("hello", &error),
        Err(_) => return LinkEnd::Failed("no answer to the hello".into()),
    }
    let (reader, writer) = tokio::io::split(link);
    let (outgoing, queue) = mpsc::channel(256);
    let writer = tokio::spawn(write_link(writer, queue));
    let mut reader = tokio::spawn(read_link(
        reader,
        host.clone(),
        settings.capacity,
        gateway_ip,
        outgoing.clone(),
    ));
    let ended = tokio::select! {
        ended = &mut reader => ended.unwrap_or_else(|error| LinkEnd::Failed(error.to_string())),
        ended = report(host, events, outgoing) => {
            ended.unwrap_or_else(|| LinkEnd::Failed("the link's writer stopped".into()))
        }
    };
    reader.abort();
    writer.abort();
    ended
}

/// Sends heartbeats and session changes until the link's writer is gone.
async fn report(
    host: &Host,
    mut events: broadcast::Receiver<Stamped>,
    outgoing: mpsc::Sender<NodeMessage>,
) -> Option<LinkEnd> {
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let mut cpu = CpuLoad::default();
    loop {
        let message = tokio::select! {
            _ = heartbeat.tick() => NodeMessage::Heartbeat {
                sessions: u32::try_from(host.sessions.all().len()).unwrap_or(u32::MAX),
                load: cpu.sample(),
            },
            event = events.recv() => match event {
                Ok(stamped) => match &stamped.event {
                    Event::StreamStats { session, fps, bitrate_kbps, video_frames, .. } => {
                        NodeMessage::Stats {
                            session: *session,
                            fps: *fps,
                            bitrate_kbps: *bitrate_kbps,
                            video_frames: *video_frames,
                        }
                    }
                    event => match session_change(event) {
                        Some((session, change)) => NodeMessage::Session { session, change },
                        None => continue,
                    },
                },
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    // An end missed here would leave the gateway's table wrong: re-dial, and
                    // the hello reports what runs.
                    return Some(LinkEnd::Failed(format!("{missed} events missed; re-joining to resynchronise")));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            },
            () = outgoing.closed() => return None,
        };
        if outgoing.send(message).await.is_err() {
            return None;
        }
    }
}

/// What of a host event the gateway follows.
fn session_change(event: &Event) -> Option<(u32, SessionChange)> {
    match event {
        Event::SessionEnded { session, reason } => {
            Some((*session, SessionChange::Ended { reason: *reason }))
        }
        Event::SessionStreaming { session, .. } => Some((*session, SessionChange::Streaming)),
        Event::SessionPaused { session } => Some((*session, SessionChange::Paused)),
        _ => None,
    }
}

async fn write_link<W: AsyncWrite + Unpin>(mut writer: W, mut queue: mpsc::Receiver<NodeMessage>) {
    while let Some(message) = queue.recv().await {
        if write_message(&mut writer, &message).await.is_err() {
            return;
        }
    }
}

/// Pages of browsers playing here through the gateway: where their messages go.
type Pages = HashMap<u64, mpsc::Sender<Option<String>>>;

/// Reads the gateway's orders; each runs in its own task and answers on `outgoing`.
async fn read_link<R: AsyncRead + Unpin>(
    mut reader: R,
    host: Arc<Host>,
    capacity: u32,
    gateway_ip: Option<IpAddr>,
    outgoing: mpsc::Sender<NodeMessage>,
) -> LinkEnd {
    let mut buffer = Vec::new();
    let pages: Arc<Mutex<Pages>> = Arc::default();
    loop {
        let message = match tokio::time::timeout(
            NODE_TIMEOUT,
            read_message::<GatewayMessage, _>(&mut reader, &mut buffer),
        )
        .await
        {
            Ok(Ok(message)) => message,
            Ok(Err(error)) => return LinkEnd::Failed(error.to_string()),
            Err(_) => {
                return LinkEnd::Failed(format!(
                    "the gateway was silent for {} s",
                    NODE_TIMEOUT.as_secs()
                ));
            }
        };
        let (request, work): (u64, OrderFuture) = match message {
            GatewayMessage::Heartbeat | GatewayMessage::Welcome { .. } => continue,
            GatewayMessage::BrowserOpen(open) => {
                open_page(&host, *open, &pages, &outgoing);
                continue;
            }
            GatewayMessage::BrowserSignal { channel, text } => {
                let page = lock(&pages).get(&channel).cloned();
                // A page whose queue is full has stopped reading: its messages are dropped.
                if let Some(page) = page {
                    let _ = page.try_send(text);
                }
                continue;
            }
            GatewayMessage::BrowserClose { channel } => {
                lock(&pages).remove(&channel);
                continue;
            }
            GatewayMessage::Refused { reason } => return LinkEnd::Refused(reason),
            GatewayMessage::Launch(order) => {
                let host = host.clone();
                (
                    order.request,
                    Box::pin(async move { launch(&host, capacity, gateway_ip, *order).await }),
                )
            }
            GatewayMessage::Resume {
                request,
                session,
                key,
            } => {
                let host = host.clone();
                let work = async move {
                    let key = crate::session::MoonlightKey::from_wire(&key)
                        .ok_or("the resume's key is malformed")?;
                    let client = host
                        .sessions
                        .by_id(session)
                        .map(|s| s.client_id.clone())
                        .ok_or("this node has no such session")?;
                    host.sessions
                        .resume(&client, Some(key))
                        .map(|_| ())
                        .map_err(|error| error.to_string())
                };
                (
                    request,
                    Box::pin(async move { work.await.map_err(|e: String| e) }),
                )
            }
            GatewayMessage::Stop {
                request,
                session,
                reason,
            } => {
                let host = host.clone();
                (
                    request,
                    Box::pin(async move {
                        host.sessions.end_session(session, reason).await;
                        Ok(())
                    }),
                )
            }
        };
        let outgoing = outgoing.clone();
        tokio::spawn(async move {
            let error = work.await.err();
            if let Some(error) = &error {
                tracing::warn!(request, %error, "gateway order failed");
            }
            let _ = outgoing.send(NodeMessage::Reply { request, error }).await;
        });
    }
}

/// Streams a placed browser session to a page whose signalling the gateway relays.
fn open_page(
    host: &Arc<Host>,
    open: crate::cluster::protocol::BrowserOpen,
    pages: &Arc<Mutex<Pages>>,
    outgoing: &mpsc::Sender<NodeMessage>,
) {
    use tokio_tungstenite::tungstenite::{Error, Message};
    let channel = open.channel;
    let (page, messages) = mpsc::channel::<Option<String>>(64);
    lock(pages).insert(channel, page);
    let incoming = futures_util::stream::unfold(messages, |mut messages| async move {
        let message = match messages.recv().await? {
            Some(text) => Message::text(text),
            // The page answered the gateway's ping.
            None => Message::Pong(Default::default()),
        };
        Some((Ok::<_, Error>(message), messages))
    });
    let to_gateway = outgoing.clone();
    let socket =
        futures_util::sink::unfold(to_gateway, move |to_gateway, message: Message| async move {
            let text = match message {
                Message::Text(text) => Some(text.as_str().to_owned()),
                Message::Ping(_) => None,
                _ => return Ok::<_, Error>(to_gateway),
            };
            let _ = to_gateway
                .send(NodeMessage::BrowserSignal { channel, text })
                .await;
            Ok(to_gateway)
        });
    let host = host.clone();
    let pages = pages.clone();
    let outgoing = outgoing.clone();
    tokio::spawn(async move {
        crate::webrtc::signalling::serve_placed(&host, &open, Box::pin(incoming), Box::pin(socket))
            .await;
        lock(&pages).remove(&channel);
        let _ = outgoing.send(NodeMessage::BrowserClose { channel }).await;
    });
}

type OrderFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;

/// Launches a session the gateway placed here.
async fn launch(
    host: &Host,
    capacity: u32,
    gateway_ip: Option<IpAddr>,
    order: LaunchOrder,
) -> Result<(), String> {
    let running = host.sessions.all().len();
    if running >= usize::try_from(capacity).unwrap_or(usize::MAX) {
        return Err(format!(
            "this node runs its {capacity} sessions (node.max_sessions)"
        ));
    }
    let config = host.config();
    match config.app(order.app_id) {
        Some(app) if app.title == order.app => {}
        Some(app) => {
            return Err(format!(
                "app {} is `{}` on this node but `{}` on the gateway: give the gateway and its nodes the same [[apps]]",
                order.app_id, app.title, order.app
            ));
        }
        None => {
            return Err(format!(
                "this node has no app `{}` (ID {}): give the gateway and its nodes the same [[apps]]",
                order.app, order.app_id
            ));
        }
    }
    let key = match &order.key {
        Some(key) => Some(
            crate::session::MoonlightKey::from_wire(key).ok_or("the launch's key is malformed")?,
        ),
        None => None,
    };
    let request = LaunchRequest {
        client_id: order.client_id,
        client_ip: order.client_ip,
        app_id: order.app_id,
        config,
        params: LaunchParams {
            mode: order.mode,
            surround_info: order.surround_info,
            key,
        },
        placement: Some(Placement {
            session_id: order.session,
            front: order.front,
            gateway_ip,
        }),
    };
    host.sessions
        .launch(request)
        .await
        .map(|_| ())
        .map_err(|error| error.to_string())
}

/// Sessions the gateway placed here, for the hello.
fn running_sessions(host: &Host) -> Vec<RunningSession> {
    host.sessions
        .all()
        .iter()
        .filter_map(|session| {
            Some(RunningSession {
                session: session.id,
                client_id: session.client_id.clone(),
                client_ip: session.client_ip,
                app_id: session.app_id,
                app: session.app.title.clone(),
                front: session.front_ports?,
                streaming: session.is_streaming(),
            })
        })
        .collect()
}

fn codecs(host: &Host) -> Vec<String> {
    let codecs = host.codecs.as_ref();
    [
        ("h264", codecs.h264.is_some()),
        ("hevc", codecs.hevc.is_some()),
        ("av1", codecs.av1.is_some()),
    ]
    .into_iter()
    .filter(|(_, present)| *present)
    .map(|(name, _)| name.to_owned())
    .collect()
}

/// CPU use of the whole machine between samples, from `/proc/stat`.
#[derive(Default)]
struct CpuLoad {
    last: Option<(u64, u64)>,
}

impl CpuLoad {
    fn sample(&mut self) -> f32 {
        let Some((busy, total)) = read_cpu_times() else {
            return 0.0;
        };
        let load = match self.last {
            Some((last_busy, last_total)) if total > last_total => {
                (busy.saturating_sub(last_busy)) as f32 / (total - last_total) as f32
            }
            _ => 0.0,
        };
        self.last = Some((busy, total));
        load.clamp(0.0, 1.0)
    }
}

/// (busy, total) jiffies of all CPUs.
fn read_cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().sum();
    // idle and iowait are the 4th and 5th fields.
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}
