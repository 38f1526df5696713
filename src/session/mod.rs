//! Streaming sessions: one per client certificate (never per IP address, so several clients
//! behind one NAT work).
//!
//! A session owns its lifecycle, a small state machine:
//!
//! ```text
//! launching ──▶ waiting for the client ──▶ streaming ◀──▶ paused
//!     │                  │                     │            │
//!     └──────────────────┴──────────┬──────────┴────────────┘
//!                                   ▼
//!                                 ended (cancelled, app exited, stopped, host shutdown,
//!                                        pipeline error, client timeout)
//! ```
//!
//! [`SessionManager`] starts what a session owns (desktop, audio sink, app, input) in one place
//! and releases it in one place, [`SessionManager::end_session`], in a fixed order, whatever
//! ended the session. HTTP, RTSP and the control stream only send requests: launch, resume,
//! cancel, announce, control messages, pause.
//!
//! The state and the running stream sit under one lock (`lifecycle`), so an end never misses a
//! stream stored after it looked; building and tearing down pipelines happens on the session's
//! media worker (`worker`), never on an async task. What the client sends (pings, control
//! messages, input) is handled in `client`; the Moonlight key and its counters are `keys`.

mod client;
mod guests;
mod keys;
mod lifecycle;
mod manager;
pub mod pings;
pub mod resources;
mod streaming;
mod worker;

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use hati_protocol::control::ControlCipher;
use hati_protocol::sdp::StreamConfig;

pub use self::guests::{GuestLink, JoinRequest, LobbyView};
pub use self::keys::SessionKeys;
use self::lifecycle::Lifecycle;
pub use self::lifecycle::SessionState;
pub use self::manager::{LaunchError, LaunchRequest, Placement, SessionManager, SessionServices};
use self::resources::AppResources;
use self::streaming::ActiveStream;
pub use self::streaming::{BrowserPlay, BrowserStream, StartError};
use self::worker::MediaWorker;
use crate::config::{AppConfig, Config};
use crate::events::{EndReason, Event};
use crate::input::InputSink;
pub use crate::metrics::{SessionCounters, SessionMetrics};
use crate::stream::Target;
use crate::stream::webrtc::StreamClosed;

/// What a launch carries.
#[derive(Debug, Clone)]
pub struct LaunchParams {
    /// `mode`: width, height, fps (the stream itself follows ANNOUNCE).
    pub mode: Option<(u32, u32, u32)>,
    /// `surroundAudioInfo`.
    pub surround_info: u32,
    /// A Moonlight client's key; `None` for a browser, whose WebRTC stream brings its own
    /// (DTLS-SRTP), so its session answers no RTSP or control stream.
    pub key: Option<MoonlightKey>,
}

/// The key a Moonlight client sends with `/launch` and `/resume`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoonlightKey {
    /// The AES key for every stream cipher.
    pub rikey: [u8; 16],
    /// The key ID (audio IV base).
    pub rikeyid: i32,
    /// `corever`: 1 enables encrypted RTSP.
    pub corever: u32,
}

impl MoonlightKey {
    /// The key as the node link carries it.
    pub fn to_wire(&self) -> hati_protocol::node_link::WireKey {
        hati_protocol::node_link::WireKey::new(&self.rikey, self.rikeyid, self.corever)
    }

    /// The key a node link message carries; `None` when it is malformed.
    pub fn from_wire(key: &hati_protocol::node_link::WireKey) -> Option<Self> {
        Some(Self {
            rikey: key.rikey_bytes()?,
            rikeyid: key.rikeyid,
            corever: key.corever,
        })
    }
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
    /// The ports clients reach this session on when a gateway placed it (`hati node`);
    /// `None`: the host's own.
    pub front_ports: Option<hati_protocol::node_link::PortSet>,
    /// The gateway's address when a gateway placed this session: its forwarded streams arrive
    /// from there (relay, or DNAT with masquerade).
    pub gateway_ip: Option<IpAddr>,
    /// The app.
    pub app: AppConfig,
    /// The app's ID.
    pub app_id: u32,
    /// The configuration the session launched with (a reload changes only later sessions).
    pub config: Arc<Config>,
    /// The 16 ASCII characters clients echo in their pings.
    pub ping_payload: String,
    /// The span every log line of this session goes under.
    pub span: tracing::Span,
    /// Where video goes.
    pub video_target: Arc<Target>,
    /// Where audio goes.
    pub audio_target: Arc<Target>,
    /// This session's encoded video, for lobby guests in the same mode.
    pub video_tap: Arc<crate::stream::share::EncodedTap>,
    /// This session's encoded sound, for lobby guests with the same Opus layout.
    pub audio_tap: Arc<crate::stream::share::EncodedTap>,
    /// What the control stream counted.
    pub metrics: SessionMetrics,
    /// The desktop's mode from the launch (width, height, fps); the stream follows ANNOUNCE.
    pub launch_mode: Option<(u32, u32, u32)>,
    /// A Moonlight session's key in force and its sequence state; `None` for a browser's.
    pub keys: Option<SessionKeys>,
    lifecycle: Mutex<Lifecycle>,
    /// Builds and tears down the session's pipelines, in order, off the async runtime.
    media: MediaWorker,
    /// Where the client's input goes (set once launched).
    input: OnceLock<Arc<dyn InputSink>>,
    /// The session's desktop, if its app has one (set once launched; a guest's is its
    /// lobby owner's).
    desktop: OnceLock<hati_compositor::CompositorHandle>,
    /// Set when this is a guest's session in another session's lobby.
    guest: OnceLock<GuestLink>,
    /// The app's player slots: this session's pads take theirs here, and so do its guests'
    /// when it is a lobby's owner (a guest's own table stays empty).
    pad_slots: crate::gamepad::SharedPadSlots,
    /// The address of the control connection that proved it holds the session key.
    control_ip: Mutex<Option<IpAddr>>,
    resources: Mutex<Option<AppResources>>,
    services: Arc<SessionServices>,
    /// The manager, for ends requested from inside (app exit, pipeline error, timeout).
    manager: Weak<SessionManager>,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("app", &self.app.title)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Where the session is in its life.
    pub fn state(&self) -> SessionState {
        lock(&self.lifecycle).state
    }

    /// Asks the manager to end this session (from a task or a GStreamer thread); the end runs
    /// on the host's runtime. Does nothing if the session already ended.
    pub fn request_end(&self, reason: EndReason) {
        let Some(manager) = self.manager.upgrade() else {
            return;
        };
        let id = self.id;
        self.runtime.spawn(async move {
            manager.end_session(id, reason).await;
        });
    }

    /// Ends the session with [`EndReason::ClientTimeout`] if it still waits for its client, in
    /// the same state, after the configured timeout (0: never).
    fn arm_client_timeout(self: &Arc<Self>) {
        let seconds = self.config.streaming.client_timeout_s;
        if seconds != 0 {
            self.end_if_still_waiting(std::time::Duration::from_secs(seconds));
        }
    }

    /// Ends the session with [`EndReason::ClientTimeout`] if, `after` from now, it is still in
    /// the state it is in now and that state waits for the client.
    fn end_if_still_waiting(self: &Arc<Self>, after: std::time::Duration) {
        let epoch = lock(&self.lifecycle).epoch;
        let session = Arc::downgrade(self);
        self.runtime.spawn(async move {
            tokio::time::sleep(after).await;
            let Some(session) = session.upgrade() else {
                return;
            };
            let waiting = {
                let lifecycle = lock(&session.lifecycle);
                lifecycle.epoch == epoch && lifecycle.state.awaits_client()
            };
            if waiting {
                tracing::info!(parent: &session.span, seconds = after.as_secs(), "the client did not come; ending the session");
                session.request_end(EndReason::ClientTimeout);
            }
        });
    }

    /// Whether a stream ever started in this session (a client that launched and never
    /// announced a stream gave up on its start).
    pub fn ever_streamed(&self) -> bool {
        lock(&self.lifecycle).generation > 0
    }

    /// The control-stream cipher for the negotiated stream; `None` for a browser's session.
    pub fn control_cipher(&self) -> Option<ControlCipher> {
        let v2 = lock(&self.lifecycle)
            .stream_config
            .as_ref()
            .is_none_or(StreamConfig::control_v2);
        Some(self.keys.as_ref()?.control_cipher(v2))
    }

    /// The client disconnected: the stream stops (on the media worker: this returns at once)
    /// and the session waits for `/resume` (or the client timeout).
    pub fn pause(self: &Arc<Self>) {
        self.pause_stream(None);
    }

    /// [`Self::pause`], but only if the stream of `generation` still runs (a browser's
    /// connection leaving must not pause a stream that another connection has started since).
    pub fn pause_if_current(self: &Arc<Self>, generation: u64) {
        self.pause_stream(Some(generation));
    }

    fn pause_stream(self: &Arc<Self>, generation: Option<u64>) {
        let stream = {
            let mut lifecycle = lock(&self.lifecycle);
            if generation.is_some_and(|g| g != lifecycle.generation)
                || !lifecycle.transition(SessionState::Paused)
            {
                return;
            }
            lifecycle.stream.take()
        };
        self.retire(stream, StreamClosed::Paused);
        tracing::info!(parent: &self.span, "session paused");
        self.services
            .events
            .publish(Event::SessionPaused { session: self.id });
        self.arm_client_timeout();
    }

    /// Forgets the client's addresses and queues `stream`'s teardown on the media worker; a
    /// browser's signalling task hears `why` first.
    fn retire(&self, stream: Option<ActiveStream>, why: StreamClosed) {
        self.video_target.clear();
        self.audio_target.clear();
        self.video_tap.detach();
        self.audio_tap.detach();
        if let Some(stream) = stream {
            let span = self.span.clone();
            self.media.detach(move || {
                stream.close(why);
                tracing::info!(parent: &span, "stream stopped");
            });
        }
    }

    /// The running stream's host processing latency (p50, p99) in µs, if a stream runs.
    pub fn host_latency_us(&self) -> Option<(u32, u32)> {
        lock(&self.lifecycle)
            .stream
            .as_ref()
            .and_then(ActiveStream::host_latency_us)
    }

    /// The running stream's counters: (video, audio), if a stream runs.
    pub fn stream_counters(
        &self,
    ) -> Option<(
        Arc<crate::stream::media::StreamCounters>,
        Arc<crate::stream::media::StreamCounters>,
    )> {
        lock(&self.lifecycle)
            .stream
            .as_ref()
            .map(ActiveStream::counters)
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

    /// The running stream's encoder bitrate (kbit/s), when the encoder can change it.
    pub fn encoder_bitrate_kbps(&self) -> Option<u32> {
        lock(&self.lifecycle)
            .stream
            .as_ref()
            .and_then(ActiveStream::encoder_bitrate_kbps)
    }

    /// Whether pipelines are running.
    pub fn is_streaming(&self) -> bool {
        lock(&self.lifecycle).stream.is_some()
    }

    /// Asks the encoder for a key frame.
    pub fn request_idr(&self) {
        if let Some(stream) = lock(&self.lifecycle).stream.as_ref() {
            stream.request_idr();
        }
    }

    /// The session's desktop, if its app has one.
    pub fn desktop(&self) -> Option<&hati_compositor::CompositorHandle> {
        self.desktop.get()
    }

    /// The session's audio sink name and PulseAudio server, if its app plays into one (a
    /// guest hears its lobby owner's).
    pub fn audio_sink(&self) -> Option<(String, String)> {
        if let Some(guest) = self.guest.get() {
            return guest.sink.clone();
        }
        lock(&self.resources)
            .as_ref()
            .and_then(|r| r.sink.as_ref())
            .map(|sink| (sink.sink_name().to_owned(), sink.pulse_server().to_owned()))
    }

    /// Set when this is a guest's session: whose lobby, and how it takes part.
    pub fn guest(&self) -> Option<&GuestLink> {
        self.guest.get()
    }

    /// The session's virtual pads, by controller number.
    pub fn gamepads(&self) -> Vec<crate::gamepad::PadView> {
        self.input
            .get()
            .map(|input| input.gamepads())
            .unwrap_or_default()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
