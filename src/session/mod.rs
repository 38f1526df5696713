//! Streaming sessions: one per client certificate (never per IP address, so several clients
//! behind one NAT work). A session is created by `/launch`, gets its stream parameters from the
//! RTSP ANNOUNCE, streams while the control connection lives, pauses when the client
//! disconnects (so `/resume` can pick it up), and ends with `/cancel` or when its app exits,
//! releasing its pipelines, desktop, audio sink and app.

pub mod resources;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use hati_protocol::control::{ClientMessage, ControlCipher, IvMode, ReplayWindow};
use hati_protocol::input::InputEvent;
use hati_protocol::rtsp::RtspCipher;
use hati_protocol::sdp::StreamConfig;
use tokio::sync::mpsc;

use self::resources::AppResources;
use crate::config::AppConfig;
use crate::events::{EndReason, Event, EventBus};
use crate::input::InputSink;
use crate::stream::ping::StreamKind;
use crate::stream::target::PingOutcome;
use crate::stream::{MediaStream, Target};

/// What `/launch` and `/resume` carry.
#[derive(Debug, Clone)]
pub struct LaunchParams {
    /// The AES key for every stream cipher.
    pub rikey: [u8; 16],
    /// The key ID (audio IV base).
    pub rikeyid: i32,
    /// `mode`: width, height, fps (the stream itself follows ANNOUNCE).
    pub mode: Option<(u32, u32, u32)>,
    /// `surroundAudioInfo`.
    pub surround_info: u32,
    /// `corever`: 1 enables encrypted RTSP.
    pub corever: u32,
}

/// A request to the control-stream task.
#[derive(Debug)]
pub enum ControlCommand {
    /// Tell the client the stream ended (termination message), then disconnect it.
    Terminate {
        /// The session.
        session_id: u32,
        /// HRESULT to report.
        hresult: u32,
    },
    /// Send everything queued now (host shutdown), then answer on the channel.
    Flush(tokio::sync::oneshot::Sender<()>),
    /// Set a gamepad's rumble motors on the client.
    Rumble {
        /// The session.
        session_id: u32,
        /// The client's controller number.
        controller: u16,
        /// Low-frequency motor, 0–65535.
        low_freq: u16,
        /// High-frequency motor, 0–65535.
        high_freq: u16,
    },
}

/// Counters the client reports over the control stream.
#[derive(Debug, Default)]
pub struct SessionMetrics {
    /// IDR requests and reference-frame invalidations received.
    pub idr_requests: AtomicU64,
    /// Frames the client reported needing FEC recovery or lost.
    pub fec_status_reports: AtomicU64,
    /// Input packets received.
    pub input_events: AtomicU64,
    /// Times a stream's target address was learned or moved.
    pub target_changes: AtomicU64,
    /// Pings refused because they would have moved a live stream or came from a stranger.
    pub refused_pings: AtomicU64,
    /// Control messages dropped as replays (a sequence number seen before).
    pub replayed_control_messages: AtomicU64,
}

/// Packets a running stream has handed to the kernel, and dropped (no client address yet, or
/// the send failed); their sum is how far the stream's packet counter advanced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketCounts {
    /// Video packets sent.
    pub video_sent: u64,
    /// Video packets dropped.
    pub video_dropped: u64,
    /// Audio packets sent.
    pub audio_sent: u64,
    /// Audio packets dropped.
    pub audio_dropped: u64,
}

/// One client's streaming session.
pub struct Session {
    /// A random nonzero ID: also the control stream's connect data.
    pub id: u32,
    /// The client's certificate fingerprint.
    pub client_id: String,
    /// The client's address at launch (for clients without session-ID pings).
    pub client_ip: IpAddr,
    /// The app.
    pub app: AppConfig,
    /// The app's ID.
    pub app_id: u32,
    /// The 16 ASCII characters clients echo in their pings.
    pub ping_payload: String,
    /// The span every log line of this session goes under.
    pub span: tracing::Span,
    /// Where video goes.
    pub video_target: Arc<Target>,
    /// Where audio goes.
    pub audio_target: Arc<Target>,
    /// What the control stream counted.
    pub metrics: SessionMetrics,
    /// Where the client's input goes.
    pub input: Arc<dyn InputSink>,
    /// The address of the control connection that proved it holds the session key.
    control_ip: Mutex<Option<IpAddr>>,
    launch: Mutex<LaunchParams>,
    rtsp_response_seq: AtomicU32,
    /// The highest sequence number of an encrypted RTSP request opened with the current key.
    rtsp_request_seq: AtomicU32,
    /// Sequence numbers of client control messages opened with the current key.
    control_replay: Mutex<ReplayWindow>,
    /// The next host control message's sequence number under the current key (one counter for
    /// every connection, so no AES-GCM nonce is used twice); `None` once exhausted.
    control_send_seq: Mutex<Option<u32>>,
    stream: Mutex<Option<MediaStream>>,
    stream_config: Mutex<Option<StreamConfig>>,
    control: mpsc::UnboundedSender<ControlCommand>,
    events: EventBus,
    resources: Mutex<Option<AppResources>>,
    desktop: Option<hati_compositor::CompositorHandle>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("app", &self.app.title)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The launch parameters now in force.
    pub fn launch_params(&self) -> LaunchParams {
        lock(&self.launch).clone()
    }

    /// The RTSP cipher for this session's current key.
    pub fn rtsp_cipher(&self) -> RtspCipher {
        RtspCipher::new(&lock(&self.launch).rikey)
    }

    /// The next sequence number for a sealed RTSP response (starting at 1).
    pub fn next_rtsp_response_seq(&self) -> u32 {
        self.rtsp_response_seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Accepts an encrypted RTSP request's sequence number if it is higher than every one
    /// accepted under the current key (the client counts from 1 and never repeats).
    pub fn accept_rtsp_request_seq(&self, seq: u32) -> bool {
        self.rtsp_request_seq.fetch_max(seq, Ordering::Relaxed) < seq
    }

    /// Accepts a client control message's sequence number unless it was seen under the
    /// current key (a replay).
    pub fn accept_control_seq(&self, seq: u32) -> bool {
        lock(&self.control_replay).accept(seq)
    }

    /// The sequence number for the next host control message; `None` once all 2^32 were used
    /// under this key (the client must resume with a new one).
    pub fn next_control_send_seq(&self) -> Option<u32> {
        let mut next = lock(&self.control_send_seq);
        let seq = (*next)?;
        *next = seq.checked_add(1);
        Some(seq)
    }

    /// The control-stream cipher for the negotiated stream.
    pub fn control_cipher(&self) -> ControlCipher {
        let v2 = lock(&self.stream_config)
            .as_ref()
            .is_none_or(StreamConfig::control_v2);
        ControlCipher::new(
            &lock(&self.launch).rikey,
            if v2 { IvMode::V2 } else { IvMode::Legacy },
        )
    }

    /// Records the negotiated stream and starts its pipelines (replacing any running ones). The
    /// targets stay: the client pings audio before it announces the stream.
    pub fn start_stream<E>(
        &self,
        config: StreamConfig,
        start: impl FnOnce(&StreamConfig) -> Result<MediaStream, E>,
    ) -> Result<(), E> {
        // Stop the old pipelines outside the lock (stopping takes a while).
        let previous = lock(&self.stream).take();
        drop(previous);
        let stream = start(&config)?;
        self.events.publish(Event::SessionStreaming {
            session: self.id,
            width: config.width,
            height: config.height,
            fps: config.fps,
            codec: format!("{:?}", config.codec),
        });
        *lock(&self.stream_config) = Some(config);
        *lock(&self.stream) = Some(stream);
        Ok(())
    }

    /// The client disconnected: stops the pipelines and waits for `/resume`.
    pub fn pause(&self) {
        self.stop_stream();
        self.events
            .publish(Event::SessionPaused { session: self.id });
    }

    /// The running stream's host processing latency (p50, p99) in µs, if a stream runs.
    pub fn host_latency_us(&self) -> Option<(u32, u32)> {
        lock(&self.stream)
            .as_ref()
            .and_then(MediaStream::host_latency_us)
    }

    /// The running stream's counters: (video, audio), if a stream runs.
    pub fn stream_counters(
        &self,
    ) -> Option<(
        Arc<crate::stream::media::StreamCounters>,
        Arc<crate::stream::media::StreamCounters>,
    )> {
        lock(&self.stream)
            .as_ref()
            .map(|s| (s.video_counters.clone(), s.audio_counters.clone()))
    }

    /// Stops the pipelines (the client disconnected or the session ends); the session stays.
    pub fn stop_stream(&self) {
        let stream = lock(&self.stream).take();
        if stream.is_some() {
            tracing::info!(parent: &self.span, "stream stopped");
        }
        drop(stream);
        self.video_target.clear();
        self.audio_target.clear();
    }

    /// The running stream's packet counters, if one runs.
    pub fn packet_counts(&self) -> Option<PacketCounts> {
        self.stream_counters().map(|(video, audio)| PacketCounts {
            video_sent: video.packets_sent.load(Ordering::Relaxed),
            video_dropped: video.packets_dropped.load(Ordering::Relaxed),
            audio_sent: audio.packets_sent.load(Ordering::Relaxed),
            audio_dropped: audio.packets_dropped.load(Ordering::Relaxed),
        })
    }

    /// Whether pipelines are running.
    pub fn is_streaming(&self) -> bool {
        lock(&self.stream).is_some()
    }

    /// Asks the encoder for a key frame.
    pub fn request_idr(&self) {
        if let Some(stream) = lock(&self.stream).as_ref() {
            stream.request_idr();
        }
    }

    /// Whether pings from `ip` may steer this session's streams: the address that launched
    /// it (over mutual TLS) or the one whose control connection proved it holds the key.
    fn may_ping_from(&self, ip: IpAddr) -> bool {
        // The target keeps the socket's own form of the address (a `::` socket cannot send
        // to a plain IPv4 address); comparisons use the canonical one.
        let ip = crate::net::canonical_ip(ip);
        ip == self.client_ip || *lock(&self.control_ip) == Some(ip)
    }

    /// The control stream authenticated a client at `ip` (its first message decrypted).
    pub fn control_authenticated(&self, ip: IpAddr) {
        *lock(&self.control_ip) = Some(crate::net::canonical_ip(ip));
    }

    /// A ping arrived: the stream goes to where it came from, unless the client's current
    /// address is alive or the ping comes from an address that has not authenticated.
    pub fn client_pinged(&self, kind: StreamKind, from: SocketAddr) {
        let target = match kind {
            StreamKind::Video => &self.video_target,
            StreamKind::Audio => &self.audio_target,
        };
        let outcome = if self.may_ping_from(from.ip()) {
            target.offer(from, std::time::Instant::now())
        } else {
            PingOutcome::Refused {
                current: target.get().unwrap_or(from),
            }
        };
        match outcome {
            PingOutcome::Refreshed => {}
            PingOutcome::Learned => {
                self.metrics.target_changes.fetch_add(1, Ordering::Relaxed);
                tracing::info!(parent: &self.span, ?kind, client = %from, "client address learned from ping");
            }
            PingOutcome::Moved { from: old } => {
                self.metrics.target_changes.fetch_add(1, Ordering::Relaxed);
                tracing::info!(parent: &self.span, ?kind, client = %from, previous = %old, "client address moved (the previous one went silent)");
            }
            PingOutcome::Refused { current } => {
                let refused = self.metrics.refused_pings.fetch_add(1, Ordering::Relaxed) + 1;
                // 1, 2, 4, 8, …: a flood cannot flood the log.
                if refused.is_power_of_two() {
                    tracing::warn!(parent: &self.span, ?kind, from = %from, %current, refused, "ping refused: the stream stays with the client's address");
                }
                return;
            }
        }
        if kind == StreamKind::Video {
            self.request_idr();
        }
    }

    /// Handles one decrypted control message.
    pub fn on_control_message(&self, message: ClientMessage) {
        let _entered = self.span.enter();
        match message {
            ClientMessage::RequestIdr | ClientMessage::InvalidateRefFrames { .. } => {
                self.metrics.idr_requests.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("client asks for a key frame");
                self.request_idr();
            }
            ClientMessage::InputData(bytes) => {
                self.metrics.input_events.fetch_add(1, Ordering::Relaxed);
                match InputEvent::parse(&bytes) {
                    Ok(event) => self.input.handle(event),
                    Err(error) => tracing::debug!(%error, "malformed input packet dropped"),
                }
            }
            ClientMessage::FecStatus(status) => {
                self.metrics
                    .fec_status_reports
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(?status, "client FEC status");
            }
            ClientMessage::LossStats { last_good_frame } => {
                tracing::debug!(last_good_frame, "client loss stats")
            }
            ClientMessage::PeriodicPing | ClientMessage::StartB | ClientMessage::LtrAck { .. } => {}
            ClientMessage::Unknown { packet_type } => {
                tracing::debug!(packet_type, "unknown control message")
            }
        }
    }

    /// The session's desktop, if its app has one.
    pub fn desktop(&self) -> Option<&hati_compositor::CompositorHandle> {
        self.desktop.as_ref()
    }

    /// The session's audio sink name and PulseAudio server, if its app plays into one.
    pub fn audio_sink(&self) -> Option<(String, String)> {
        lock(&self.resources)
            .as_ref()
            .and_then(|r| r.sink.as_ref())
            .map(|sink| (sink.sink_name().to_owned(), sink.pulse_server().to_owned()))
    }

    /// Ends the session: tells the client, stops the pipelines. Its desktop, sink and app are
    /// released by [`Self::release`].
    pub fn end(&self, hresult: u32) {
        let _ = self.control.send(ControlCommand::Terminate {
            session_id: self.id,
            hresult,
        });
        self.stop_stream();
        tracing::info!(parent: &self.span, "session ended");
    }

    /// Stops the app, removes the audio sink, stops the desktop.
    pub async fn release(&self) {
        let resources = lock(&self.resources).take();
        if let Some(mut resources) = resources {
            use tracing::Instrument;
            resources.release().instrument(self.span.clone()).await;
        }
    }

    /// A receiver that sees the app's exit, if the session runs an app.
    pub fn app_exit_watch(
        &self,
    ) -> Option<tokio::sync::watch::Receiver<Option<crate::runner::AppExit>>> {
        lock(&self.resources)
            .as_ref()
            .and_then(AppResources::exit_watch)
    }
}

/// Every session of the host.
pub struct SessionManager {
    sessions: Mutex<Vec<Arc<Session>>>,
    control: mpsc::UnboundedSender<ControlCommand>,
    events: EventBus,
}

/// A session about to be registered by [`SessionManager::launch`].
pub struct NewSession<'a> {
    /// From [`SessionManager::new_session_id`].
    pub id: u32,
    /// From [`SessionManager::new_session_id`].
    pub span: tracing::Span,
    /// The client's certificate fingerprint.
    pub client_id: &'a str,
    /// The client's address.
    pub client_ip: IpAddr,
    /// The app.
    pub app: &'a AppConfig,
    /// What `/launch` carried.
    pub params: LaunchParams,
    /// The started desktop, sink and app.
    pub resources: AppResources,
    /// Where input goes.
    pub input: Arc<dyn InputSink>,
}

/// Why `/launch` or `/resume` was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum LaunchError {
    /// This client already streams another app.
    AlreadyRunning,
    /// `/resume` without a session.
    NotRunning,
}

impl SessionManager {
    /// A manager whose sessions send control commands to `control` and publish on `events`.
    pub fn new(control: mpsc::UnboundedSender<ControlCommand>, events: EventBus) -> Self {
        Self {
            sessions: Mutex::new(Vec::new()),
            control,
            events,
        }
    }

    /// A fresh session ID, and the span its start-up logs under.
    pub fn new_session_id(&self, client_id: &str) -> (u32, tracing::Span) {
        let sessions = lock(&self.sessions);
        let id = loop {
            let id = u32::from_be_bytes(crate::crypto::random::<4>()) & 0x7fff_ffff;
            if id != 0 && sessions.iter().all(|s| s.id != id) {
                break id;
            }
        };
        (
            id,
            tracing::info_span!("session", id, client = %crate::state::clients::short_id(client_id)),
        )
    }

    /// Whether `client_id` has a session.
    pub fn is_running(&self, client_id: &str) -> bool {
        lock(&self.sessions)
            .iter()
            .any(|s| s.client_id == client_id)
    }

    /// Registers a session whose resources are started. If the client already has a session
    /// (it launched twice at once), the resources are handed back to be released.
    pub fn launch(&self, new: NewSession<'_>) -> Result<Arc<Session>, Box<AppResources>> {
        let NewSession {
            id,
            span,
            client_id,
            client_ip,
            app,
            params,
            resources,
            input,
        } = new;
        let mut sessions = lock(&self.sessions);
        if sessions.iter().any(|s| s.client_id == client_id) {
            return Err(Box::new(resources));
        }
        let ping_payload = hati_protocol::query::encode_hex(&crate::crypto::random::<8>());
        let session = Arc::new(Session {
            id,
            span,
            client_id: client_id.to_owned(),
            client_ip,
            app_id: app.id(),
            app: app.clone(),
            ping_payload,
            video_target: Arc::default(),
            audio_target: Arc::default(),
            metrics: SessionMetrics::default(),
            input,
            control_ip: Mutex::new(None),
            launch: Mutex::new(params),
            rtsp_response_seq: AtomicU32::new(0),
            rtsp_request_seq: AtomicU32::new(0),
            control_replay: Mutex::default(),
            control_send_seq: Mutex::new(Some(0)),
            stream: Mutex::new(None),
            stream_config: Mutex::new(None),
            control: self.control.clone(),
            events: self.events.clone(),
            desktop: resources.compositor.clone(),
            resources: Mutex::new(Some(resources)),
        });
        tracing::info!(parent: &session.span, app = %app.title, "session launched");
        self.events.publish(Event::SessionLaunched {
            session: session.id,
            client: crate::state::clients::short_id(&session.client_id).to_owned(),
            app: app.title.clone(),
        });
        sessions.push(session.clone());
        Ok(session)
    }

    /// `/resume`: new keys for the client's session.
    pub fn resume(
        &self,
        client_id: &str,
        rikey: [u8; 16],
        rikeyid: i32,
        corever: u32,
    ) -> Result<Arc<Session>, LaunchError> {
        let session = self.by_client(client_id).ok_or(LaunchError::NotRunning)?;
        {
            let mut launch = lock(&session.launch);
            launch.rikey = rikey;
            launch.rikeyid = rikeyid;
            launch.corever = corever;
        }
        session.rtsp_response_seq.store(0, Ordering::Relaxed);
        session.rtsp_request_seq.store(0, Ordering::Relaxed);
        *lock(&session.control_replay) = ReplayWindow::default();
        *lock(&session.control_send_seq) = Some(0);
        tracing::info!(parent: &session.span, "session resumed");
        self.events.publish(Event::SessionResumed {
            session: session.id,
        });
        Ok(session)
    }

    /// `/cancel`: ends the client's session and releases everything it held.
    pub async fn cancel(&self, client_id: &str) -> bool {
        let removed = {
            let mut sessions = lock(&self.sessions);
            let position = sessions.iter().position(|s| s.client_id == client_id);
            position.map(|i| sessions.remove(i))
        };
        match removed {
            Some(session) => {
                self.finish(&session, EndReason::Cancelled).await;
                true
            }
            None => false,
        }
    }

    /// Ends session `id` for `reason` and releases everything it held; false if there is no
    /// such session (it already ended: every session ends once).
    pub async fn end_session(&self, id: u32, reason: EndReason) -> bool {
        let removed = {
            let mut sessions = lock(&self.sessions);
            let position = sessions.iter().position(|s| s.id == id);
            position.map(|i| sessions.remove(i))
        };
        match removed {
            Some(session) => {
                self.finish(&session, reason).await;
                true
            }
            None => false,
        }
    }

    /// Ends a session already removed from the list: tells the client, releases what it held,
    /// then says so on the bus.
    async fn finish(&self, session: &Session, reason: EndReason) {
        session.end(hati_protocol::control::hresult::GRACEFUL);
        session.release().await;
        session.input.release();
        self.events.publish(Event::SessionEnded {
            session: session.id,
            reason,
        });
    }

    /// Ends every session (host shutdown).
    pub async fn end_all(&self) {
        let sessions = std::mem::take(&mut *lock(&self.sessions));
        for session in sessions {
            self.finish(&session, EndReason::HostShutdown).await;
        }
    }

    /// The client's session.
    pub fn by_client(&self, client_id: &str) -> Option<Arc<Session>> {
        lock(&self.sessions)
            .iter()
            .find(|s| s.client_id == client_id)
            .cloned()
    }

    /// The session with this ID (the control stream's connect data).
    pub fn by_id(&self, id: u32) -> Option<Arc<Session>> {
        lock(&self.sessions).iter().find(|s| s.id == id).cloned()
    }

    /// The session whose pings carry `payload`.
    pub fn by_ping_payload(&self, payload: &[u8]) -> Option<Arc<Session>> {
        lock(&self.sessions)
            .iter()
            .find(|s| s.ping_payload.as_bytes() == payload)
            .cloned()
    }

    /// The most recent session launched from `address` (for clients without session IDs).
    pub fn latest_by_address(&self, address: IpAddr) -> Option<Arc<Session>> {
        let address = crate::net::canonical_ip(address);
        lock(&self.sessions)
            .iter()
            .rev()
            .find(|s| s.client_ip == address)
            .cloned()
    }

    /// Every session, oldest first.
    pub fn all(&self) -> Vec<Arc<Session>> {
        lock(&self.sessions).clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
