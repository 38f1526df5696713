//! One browser's WebSocket on `/play/ws`: it proves it is paired (`hello` with its credential),
//! launches or resumes its app in the same session model Moonlight clients use (or joins a
//! lobby, when the app is a lobby's "Join:" entry, as a guest session), then relays
//! the WebRTC offer, answer and ICE candidates until the player leaves (the session pauses, as
//! when Moonlight disconnects), quits (the session ends) or the session ends on the host.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hati_protocol::browser::{Hello, HostSignal, SignalMessage};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tracing::Instrument;

use crate::events::EndReason;
use crate::host::Host;
use crate::host::lobbies::JoinRefused;
use crate::net::ConnectionPermit;
use crate::session::{
    BrowserPlay, BrowserStream, LaunchError, LaunchParams, LaunchRequest, Session, SessionState,
};
use crate::state::clients::PairedClient;
use crate::state::permissions::Denied;
use crate::stream::webrtc::{BrowserEvent, StreamClosed};

/// How long a browser has to say `hello` after connecting.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest signalling message taken (an SDP answer is a few KiB).
const MAX_MESSAGE: usize = 64 * 1024;
/// How often the host pings a playing browser (browsers answer pings by themselves).
const PING_INTERVAL: Duration = Duration::from_secs(5);
/// A playing browser that sent nothing, not even a pong, for this long is gone.
const PEER_SILENCE: Duration = Duration::from_secs(20);
/// `surroundAudioInfo` for stereo.
const STEREO: u32 = 0x0003_0002;

/// Why a browser's hello or launch was refused; the text goes to the page.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("no hello within {} s", HELLO_TIMEOUT.as_secs())]
    NoHello,
    #[error("the connection closed before hello")]
    ClosedBeforeHello,
    #[error(transparent)]
    Malformed(#[from] hati_protocol::browser::BrowserError),
    #[error("the first message must be hello")]
    NotHello,
    #[error("this browser is not paired with the host (or was unpaired): pair it again")]
    NotPaired,
    #[error("{0} is running for this browser: quit it before starting another app")]
    OtherAppRunning(String),
    #[error("{0} is still starting")]
    StillStarting(String),
    #[error(transparent)]
    Launch(#[from] LaunchError),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Join(#[from] JoinRefused),
}

/// Serves one WebSocket connection until it closes.
pub async fn run<S>(io: S, host: Arc<Host>, peer: SocketAddr, permit: Arc<ConnectionPermit>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
    let (mut sink, mut incoming) = socket.split();
    let span = tracing::info_span!("browser", %peer);
    async {
        match greet(&mut incoming, &host).await {
            Ok((client, hello)) => {
                play(&mut sink, &mut incoming, &host, peer, client, hello).await;
            }
            Err(refusal) => {
                tracing::info!(%refusal, "browser refused");
                let message = refusal.to_string();
                let _ = send(&mut sink, &HostSignal::Error { message }).await;
            }
        }
        let _ = sink.close().await;
    }
    .instrument(span)
    .await;
    drop(permit);
}

/// Waits for `hello` and checks its credential.
async fn greet(
    incoming: &mut impl Incoming,
    host: &Host,
) -> Result<(PairedClient, Hello), Refusal> {
    let first = tokio::time::timeout(HELLO_TIMEOUT, next_text(incoming))
        .await
        .map_err(|_| Refusal::NoHello)?
        .ok_or(Refusal::ClosedBeforeHello)?;
    let hello = match SignalMessage::parse(&first)? {
        SignalMessage::Hello(hello) => hello,
        _ => return Err(Refusal::NotHello),
    };
    let client = host
        .clients
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .browser(&hello.token)
        .cloned()
        .ok_or(Refusal::NotPaired)?;
    Ok((client, hello))
}

/// Launches or resumes the app and relays signalling until the end.
async fn play(
    socket: &mut impl Outgoing,
    incoming: &mut impl Incoming,
    host: &Arc<Host>,
    peer: SocketAddr,
    client: PairedClient,
    hello: Hello,
) {
    let config = host.config();
    let ice_servers = config.webrtc.ice_servers.clone();
    if send(socket, &HostSignal::Config { ice_servers })
        .await
        .is_err()
    {
        return;
    }
    // A lobby's "Join:" entry (lobbies are on hosts that run their sessions) is held to the
    // join's checks when it joins or resumes; any other app to the same check as Moonlight's
    // `/launch` and `/resume`, before a session is placed, launched or resumed.
    let lobby = match host.gateway.get() {
        None => host.sessions.lobby_for_app_id(hello.app_id),
        Some(_) => None,
    };
    if lobby.is_none()
        && let Err(denied) = host.may_launch(&client.id, hello.app_id)
    {
        tracing::info!(%denied, "browser refused");
        let message = denied.to_string();
        let _ = send(socket, &HostSignal::Error { message }).await;
        return;
    }
    if let Some(gateway) = host.gateway.get() {
        through_gateway(socket, incoming, gateway, host, peer, &client, &hello).await;
        return;
    }
    let (session, resumed) = match session_for(host, peer, &client, &hello, lobby).await {
        Ok(found) => found,
        Err(refusal) => {
            let message = refusal.to_string();
            let _ = send(socket, &HostSignal::Error { message }).await;
            return;
        }
    };
    let request = BrowserStream {
        width: hello.width,
        height: hello.height,
        fps: hello.fps,
        bitrate_kbps: hello
            .bitrate_kbps
            .unwrap_or(config.webrtc.max_bitrate_kbps / 2),
    };
    stream_session(
        socket, incoming, host, &session, resumed, &client.id, request,
    )
    .await;
}

/// Streams a launched or resumed session to the browser and relays its signalling until the
/// end (also what a node runs for a browser whose signalling comes through its gateway).
async fn stream_session(
    socket: &mut impl Outgoing,
    incoming: &mut impl Incoming,
    host: &Arc<Host>,
    session: &Arc<Session>,
    resumed: bool,
    client_id: &str,
    request: BrowserStream,
) {
    let launched = HostSignal::Launched {
        session: session.id,
        app: session.app.title.clone(),
        resumed,
    };
    if send(socket, &launched).await.is_err() {
        return;
    }
    let BrowserPlay {
        generation,
        handle,
        mut events,
    } = match session.start_browser_stream(request).await {
        Ok(play) => play,
        Err(failure) => {
            let message = failure.to_string();
            let _ = send(socket, &HostSignal::Error { message }).await;
            return;
        }
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_heard = Instant::now();
    let mut last_ping = Instant::now();
    loop {
        tokio::select! {
            event = events.recv() => {
                // The stream always says why it closed before its channel does.
                let Some(event) = event else { return };
                match event {
                    BrowserEvent::Signal(signal) => {
                        if send(socket, &signal).await.is_err() {
                            break;
                        }
                    }
                    BrowserEvent::Input(text) => match hati_protocol::browser::parse_input(&text) {
                        Ok(inputs) => {
                            let received = std::time::Instant::now();
                            inputs
                                .into_iter()
                                .for_each(|input| session.handle_input(input, received))
                        }
                        Err(error) => tracing::debug!(%error, "malformed browser input dropped"),
                    },
                    BrowserEvent::PeerGone => {
                        // A page kept in the back-forward cache holds its WebSocket open and
                        // answers pings, so this is the only sign that its player left.
                        tracing::info!("the browser closed its peer connection");
                        break;
                    }
                    BrowserEvent::Failed(message) => session.stream_failed(message),
                    BrowserEvent::Closed(StreamClosed::Ended(reason)) => {
                        let reason = end_reason_text(reason);
                        let _ = send(socket, &HostSignal::Ended { reason }).await;
                        return;
                    }
                    BrowserEvent::Closed(StreamClosed::Replaced) => {
                        let reason = "the session was resumed in another tab or browser".to_owned();
                        let _ = send(socket, &HostSignal::Ended { reason }).await;
                        return;
                    }
                    BrowserEvent::Closed(StreamClosed::Paused) => return,
                }
            }
            message = next_message(incoming) => {
                let Some(message) = message else { break };
                last_heard = Instant::now();
                let Some(text) = message else { continue };
                match SignalMessage::parse(&text) {
                    Ok(SignalMessage::Answer { sdp }) => {
                        if let Err(refused) = handle.set_answer(&sdp) {
                            let message = refused.to_string();
                            let _ = send(socket, &HostSignal::Error { message }).await;
                        }
                    }
                    Ok(SignalMessage::Ice { candidate, sdp_mline_index }) => {
                        handle.add_ice_candidate(sdp_mline_index, &candidate);
                    }
                    Ok(SignalMessage::Quit) => {
                        // The end comes back as the stream's last event, and is told to the
                        // page there.
                        host.sessions.cancel(client_id).await;
                    }
                    Ok(SignalMessage::Hello(_)) => {
                        tracing::debug!("a second hello ignored");
                    }
                    Err(failure) => tracing::debug!(error = %failure, "malformed signalling message dropped"),
                }
            }
            _ = tick.tick() => {
                // A browser that vanished without closing (its network went away) stops
                // answering pings: the session then waits to be resumed, as after a close.
                if last_heard.elapsed() > PEER_SILENCE {
                    tracing::info!(silent_s = PEER_SILENCE.as_secs(), "the browser stopped answering");
                    break;
                }
                if last_ping.elapsed() >= PING_INTERVAL {
                    last_ping = Instant::now();
                    if socket.send(Message::Ping(Default::default())).await.is_err() {
                        break;
                    }
                }
            }
        }
    }
    // The player left (closed the tab or its peer connection, lost the network): the session
    // waits to be resumed, unless another connection already took it over.
    session.pause_if_current(generation);
}

/// `hati gateway`: the browser paired here; its session runs on a node. The gateway places or
/// resumes it, then relays the page's signalling to the node and back; media goes between the
/// browser and the node.
async fn through_gateway(
    socket: &mut impl Outgoing,
    incoming: &mut impl Incoming,
    gateway: &crate::gateway::Gateway,
    host: &Host,
    peer: SocketAddr,
    client: &PairedClient,
    hello: &Hello,
) {
    use crate::cluster::protocol::GatewayMessage;
    use crate::gateway::ToPage;
    let config = host.config();
    let Some(app) = config.app(hello.app_id) else {
        let message = format!("no app with ID {}", hello.app_id);
        let _ = send(socket, &HostSignal::Error { message }).await;
        return;
    };
    let request = crate::gateway::BrowserRequest {
        app_id: hello.app_id,
        width: hello.width,
        height: hello.height,
        fps: hello.fps,
        bitrate_kbps: hello.bitrate_kbps,
    };
    let mut channel = match gateway
        .open_browser(&client.id, peer.ip(), peer.ip(), &app.title, request)
        .await
    {
        Ok(channel) => channel,
        Err(message) => {
            tracing::info!(%message, "browser refused");
            let _ = send(socket, &HostSignal::Error { message }).await;
            return;
        }
    };
    tracing::info!(
        session = channel.session,
        resumed = channel.resumed,
        "browser plays through the gateway"
    );
    let id = channel.channel;
    let to_node = |text: Option<String>| GatewayMessage::BrowserSignal { channel: id, text };
    loop {
        tokio::select! {
            from_node = channel.from_node.recv() => match from_node {
                Some(ToPage::Text(text)) => {
                    if socket.send(Message::text(text)).await.is_err() {
                        break;
                    }
                }
                Some(ToPage::Ping) => {
                    if socket.send(Message::Ping(Default::default())).await.is_err() {
                        break;
                    }
                }
                Some(ToPage::Close) => return,
                None => {
                    let reason = end_reason_text(EndReason::NodeLost);
                    let _ = send(socket, &HostSignal::Ended { reason }).await;
                    return;
                }
            },
            message = next_message(incoming) => {
                let Some(message) = message else { break };
                if channel.to_node.send(to_node(message)).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = channel
        .to_node
        .send(GatewayMessage::BrowserClose { channel: id })
        .await;
    gateway.browser_gone(None, id);
}

/// `hati node`: streams a session the gateway placed here to a browser whose signalling comes
/// through the gateway (`open`); `incoming` and `socket` carry the page's messages. Returns
/// when the page left or the session ended.
pub(crate) async fn serve_placed<I, O>(
    host: &Arc<Host>,
    open: &crate::cluster::protocol::BrowserOpen,
    mut incoming: I,
    mut socket: O,
) where
    I: Incoming,
    O: Outgoing,
{
    let session = host
        .sessions
        .by_id(open.session)
        .filter(|s| s.client_id == open.client_id && s.keys.is_none());
    let Some(session) = session else {
        let message = "this node has no such browser session".to_owned();
        let _ = send(&mut socket, &HostSignal::Error { message }).await;
        return;
    };
    if !open.launched
        && let Err(error) = host.sessions.resume(&open.client_id, None)
    {
        let message = error.to_string();
        let _ = send(&mut socket, &HostSignal::Error { message }).await;
        return;
    }
    let request = BrowserStream {
        width: open.width,
        height: open.height,
        fps: open.fps,
        bitrate_kbps: open
            .bitrate_kbps
            .unwrap_or(host.config().webrtc.max_bitrate_kbps / 2),
    };
    let span = tracing::info_span!("browser", channel = open.channel);
    stream_session(
        &mut socket,
        &mut incoming,
        host,
        &session,
        !open.launched,
        &open.client_id,
        request,
    )
    .instrument(span)
    .await;
}

/// The browser's session for `hello.app_id`: its running one (resumed), a new launch, or a
/// guest's session in the lobby whose "Join:" entry it is (`lobby`: its number and the owner's
/// app ID).
async fn session_for(
    host: &Arc<Host>,
    peer: SocketAddr,
    client: &PairedClient,
    hello: &Hello,
    lobby: Option<(u32, u32)>,
) -> Result<(Arc<Session>, bool), Refusal> {
    if let Some(session) = host.sessions.by_client(&client.id) {
        // A guest's session is known to the page by its "Join:" entry.
        let join_app = crate::host::lobbies::join_app_id_of(host, &session);
        if join_app.unwrap_or(session.app_id) != hello.app_id {
            return Err(Refusal::OtherAppRunning(session.app.title.clone()));
        }
        if session.state() == SessionState::Launching {
            return Err(Refusal::StillStarting(session.app.title.clone()));
        }
        // As Moonlight's `/resume` of a guest: its permissions may have changed since it
        // joined.
        if join_app.is_some() {
            host.may_join(&client.id, session.app_id)?;
        }
        // The same resume as Moonlight's `/resume` (it publishes `session_resumed`), without
        // a key.
        return host
            .sessions
            .resume(&client.id, None)
            .map(|session| (session, true))
            .map_err(Refusal::from);
    }
    let params = LaunchParams {
        mode: Some((hello.width, hello.height, hello.fps)),
        surround_info: STEREO,
        // WebRTC brings its own keys (DTLS-SRTP): the session answers no RTSP or control.
        key: None,
    };
    if let Some((_, owner_app)) = lobby {
        let session = crate::host::lobbies::join_lobby(
            host,
            client.id.clone(),
            peer.ip(),
            hello.app_id,
            owner_app,
            params,
        )
        .await?;
        return Ok((session, false));
    }
    let request = LaunchRequest {
        client_id: client.id.clone(),
        client_ip: peer.ip(),
        app_id: hello.app_id,
        config: host.config(),
        params,
        placement: None,
    };
    let session = host.sessions.launch(request).await?;
    // As after Moonlight's `/launch`: an app with `[apps.lobby]` opens its lobby.
    if let Some(settings) = session.app.lobby.clone() {
        crate::host::lobbies::open_app_lobby(host, &session, settings);
    }
    Ok((session, false))
}

/// Words for the page.
fn end_reason_text(reason: EndReason) -> String {
    match reason {
        EndReason::Cancelled => "you quit the app",
        EndReason::AppExited => "the app exited",
        EndReason::HostShutdown => "the host shut down",
        EndReason::Stopped => "the host's owner stopped it",
        EndReason::PipelineError => "the stream failed on the host",
        EndReason::ClientTimeout => "the host waited too long for this browser",
        EndReason::NodeLost => "the machine that ran it went away",
        EndReason::LobbyClosed => "the lobby closed (its owner left or closed it)",
        EndReason::Kicked => "the lobby's owner removed you",
    }
    .to_owned()
}

/// The browser's side of the WebSocket.
pub(crate) trait Incoming:
    futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin
{
}
impl<T> Incoming for T where
    T: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin
{
}

/// The host's side of the WebSocket.
pub(crate) trait Outgoing:
    futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin
{
}
impl<T> Outgoing for T where
    T: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin
{
}

/// The next text message; `None` when the connection closed or failed (binary messages and
/// pings are skipped: tungstenite answers pings itself).
async fn next_text(incoming: &mut impl Incoming) -> Option<String> {
    loop {
        if let Some(text) = next_message(incoming).await? {
            return Some(text);
        }
    }
}

/// The next message: `Some(Some(text))`, `Some(None)` for anything else the browser sent (a
/// pong, a ping), `None` when the connection closed or failed.
async fn next_message(incoming: &mut impl Incoming) -> Option<Option<String>> {
    match incoming.next().await? {
        Ok(Message::Text(text)) => Some(Some(text.as_str().to_owned())),
        Ok(Message::Close(_)) | Err(_) => None,
        Ok(_) => Some(None),
    }
}

async fn send(
    socket: &mut impl Outgoing,
    signal: &HostSignal,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    socket.send(Message::text(signal.to_json())).await
}
