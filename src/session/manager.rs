//! Every session of the host: launching one (and everything it owns), finding one for a
//! request, and ending one, through a single path whatever the reason.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use hati_protocol::control::hresult;
use thiserror::Error;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::resources::{AppResources, ResourceError};
use super::worker::MediaWorker;
use super::{
    ControlCommand, LaunchParams, MoonlightKey, Session, SessionKeys, SessionMetrics, SessionState,
    lock,
};
use crate::audio::SharedAudioServer;
use crate::config::{AppConfig, Config};
use crate::encoders::CodecSupport;
use crate::events::{EndReason, Event, EventBus};
use crate::gamepad::{GamepadManager, Player};
use crate::input::SessionInput;
use crate::lobby::{Lobbies, LobbyError};
use crate::runner::Launcher;
use crate::stream::ping::MediaSockets;
use crate::stream::webrtc::StreamClosed;

/// The termination HRESULT for a stream that failed on the host (E_FAIL).
const STREAM_FAILED: u32 = 0x8000_4005;
/// A launched session whose client has not started a stream within this time gave up on its
/// start (its RTSP or control handshake failed): it ends, so that client can launch again.
/// Moonlight announces its stream within a second or two of `/launch`.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// What sessions use of the host.
pub struct SessionServices {
    /// Queue of the control-stream task.
    pub control: mpsc::UnboundedSender<ControlCommand>,
    /// Where state changes are published.
    pub events: EventBus,
    /// The video and audio sockets.
    pub media: MediaSockets,
    /// Codecs this machine can encode.
    pub codecs: Arc<CodecSupport>,
    /// Starts apps (processes, containers).
    pub launcher: Arc<Launcher>,
    /// The PulseAudio server for session sinks.
    pub audio: Arc<SharedAudioServer>,
}

/// A client's `/launch`.
#[derive(Debug)]
pub struct LaunchRequest {
    /// The client's certificate fingerprint.
    pub client_id: String,
    /// The client's address.
    pub client_ip: IpAddr,
    /// The app to run.
    pub app_id: u32,
    /// The configuration in force (the session keeps it for its whole life).
    pub config: Arc<Config>,
    /// What `/launch` carried.
    pub params: LaunchParams,
    /// Set when a gateway placed the session here (`hati node`): its ID and front ports.
    pub placement: Option<Placement>,
}

/// What a gateway decided for a session it placed on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// The session's ID, unique across the gateway's nodes.
    pub session_id: u32,
    /// The ports clients reach it on at the gateway (RTSP SETUP names them).
    pub front: hati_protocol::node_link::PortSet,
    /// The gateway's address as this node sees it: forwarded streams come from there.
    pub gateway_ip: Option<IpAddr>,
}

/// Why `/launch` or `/resume` was refused.
#[derive(Debug, Error)]
pub enum LaunchError {
    /// No app has this ID.
    #[error("no app with ID {0}")]
    UnknownApp(u32),
    /// This client already has a session.
    #[error("An app is already running on this host")]
    AlreadyRunning,
    /// `/resume` without a session.
    #[error("No app is running; launch one")]
    NotRunning,
    /// The app's desktop, sink or app did not start.
    #[error("{app}: {source}")]
    Resources {
        /// The app's title.
        app: String,
        /// What failed.
        source: ResourceError,
    },
    /// A browser resuming a Moonlight session, or the other way round.
    #[error("this session belongs to another kind of client")]
    WrongClientKind,
    /// The session was cancelled or stopped while its app started.
    #[error("{0}: the session ended while its app was starting")]
    EndedWhileLaunching(String),
    /// A lobby's "Join:" entry could not be joined.
    #[error(transparent)]
    Lobby(#[from] LobbyError),
}

/// Every session of the host.
pub struct SessionManager {
    sessions: Mutex<Vec<Arc<Session>>>,
    /// Open lobbies; locked after a session's `lifecycle` where both are held.
    pub(super) lobbies: Mutex<Lobbies>,
    services: Arc<SessionServices>,
}

/// What a new session is made of (a launch or a lobby guest).
pub(super) struct NewSession {
    pub(super) client_id: String,
    pub(super) client_ip: IpAddr,
    pub(super) placement: Option<Placement>,
    pub(super) app_id: u32,
    pub(super) app: AppConfig,
    pub(super) config: Arc<Config>,
    pub(super) params: LaunchParams,
}

impl SessionManager {
    /// A manager whose sessions use `services`.
    pub fn new(services: SessionServices) -> Self {
        Self {
            sessions: Mutex::new(Vec::new()),
            lobbies: Mutex::default(),
            services: Arc::new(services),
        }
    }

    /// What sessions use of the host.
    pub fn services(&self) -> &SessionServices {
        &self.services
    }

    /// Launches `request.app_id` for the client: registers the session (so a second launch is
    /// refused at once), starts its desktop, audio sink and app, then its input. The session
    /// then waits for the client's RTSP ANNOUNCE.
    pub async fn launch(
        self: &Arc<Self>,
        request: LaunchRequest,
    ) -> Result<Arc<Session>, LaunchError> {
        let LaunchRequest {
            client_id,
            client_ip,
            app_id,
            config,
            params,
            placement,
        } = request;
        let app = config
            .app(app_id)
            .ok_or(LaunchError::UnknownApp(app_id))?
            .clone();
        self.make_way_for_new_launch(&client_id).await;
        let session = self.register(NewSession {
            client_id,
            client_ip,
            placement,
            app_id,
            app,
            config,
            params,
        })?;
        match self.start_resources(&session).await {
            Ok(()) => {}
            Err(error) => {
                self.remove(|s| s.id == session.id);
                tracing::error!(parent: &session.span, app = %session.app.title, %error, "launch failed");
                self.services.events.publish(Event::LaunchFailed {
                    client: crate::state::clients::short_id(&session.client_id).to_owned(),
                    app: session.app.title.clone(),
                    error: error.to_string(),
                });
                return Err(error);
            }
        }
        tracing::info!(parent: &session.span, app = %session.app.title, "session launched");
        self.services.events.publish(Event::SessionLaunched {
            session: session.id,
            client: crate::state::clients::short_id(&session.client_id).to_owned(),
            app: session.app.title.clone(),
        });
        self.end_when_app_exits(&session);
        session.end_if_still_waiting(START_TIMEOUT);
        session.arm_client_timeout();
        Ok(session)
    }

    /// A session of this client that never streamed is a start that failed on the client's
    /// side (it launched again instead of resuming): it makes way for the new launch.
    pub(super) async fn make_way_for_new_launch(&self, client_id: &str) {
        if let Some(stale) = self.by_client(client_id)
            && stale.state() == SessionState::WaitingForClient
            && !stale.ever_streamed()
        {
            tracing::info!(parent: &stale.span, "the client launched again before its stream ever started; ending the stale session");
            self.end_session(stale.id, EndReason::Cancelled).await;
        }
    }

    /// Lists a new session (launching), so a second launch of its client is refused at once.
    pub(super) fn register(self: &Arc<Self>, new: NewSession) -> Result<Arc<Session>, LaunchError> {
        let NewSession {
            client_id,
            client_ip,
            placement,
            app_id,
            app,
            config,
            params,
        } = new;
        let mut sessions = lock(&self.sessions);
        if sessions.iter().any(|s| s.client_id == client_id) {
            return Err(LaunchError::AlreadyRunning);
        }
        let id = match placement {
            Some(placement) if sessions.iter().any(|s| s.id == placement.session_id) => {
                return Err(LaunchError::AlreadyRunning);
            }
            Some(placement) => placement.session_id,
            None => loop {
                let id = u32::from_be_bytes(crate::crypto::random::<4>()) & 0x7fff_ffff;
                if id != 0 && sessions.iter().all(|s| s.id != id) {
                    break id;
                }
            },
        };
        let span = tracing::info_span!("session", id, client = %crate::state::clients::short_id(&client_id));
        let session = Arc::new(Session {
            id,
            span: span.clone(),
            client_id,
            client_ip: crate::net::canonical_ip(client_ip),
            front_ports: placement.map(|p| p.front),
            gateway_ip: placement.and_then(|p| p.gateway_ip),
            app_id,
            app,
            config,
            ping_payload: hati_protocol::query::encode_hex(&crate::crypto::random::<8>()),
            video_target: Arc::default(),
            audio_target: Arc::default(),
            video_tap: Arc::default(),
            audio_tap: Arc::default(),
            metrics: SessionMetrics::default(),
            keys: params.key.map(SessionKeys::new),
            launch_mode: params.mode,
            lifecycle: Mutex::default(),
            media: MediaWorker::start(span.clone()),
            input: OnceLock::new(),
            desktop: OnceLock::new(),
            guest: OnceLock::new(),
            pad_slots: crate::gamepad::SharedPadSlots::default(),
            control_ip: Mutex::new(None),
            resources: Mutex::new(None),
            services: self.services.clone(),
            manager: Arc::downgrade(self),
            runtime: tokio::runtime::Handle::current(),
        });
        sessions.push(session.clone());
        Ok(session)
    }

    /// Starts the session's desktop, audio sink, app and input, and moves it to waiting for
    /// the client. If the session ended meanwhile, releases what was started.
    async fn start_resources(&self, session: &Arc<Session>) -> Result<(), LaunchError> {
        let audio = if session.app.runner.is_some() {
            self.services.audio.get().await
        } else {
            None
        };
        let launch_mode = session.launch_mode;
        let resources = AppResources::start(
            session.id,
            &session.app,
            launch_mode,
            audio.as_ref(),
            &self.services.launcher,
        )
        .instrument(session.span.clone())
        .await
        .map_err(|source| LaunchError::Resources {
            app: session.app.title.clone(),
            source,
        })?;
        let rumble = session.rumble_callback();
        let seat = resources.compositor.as_ref().map(|c| c.input_sender());
        let gamepads = GamepadManager::with_factory(
            session.id,
            session.app.joypad_type,
            rumble,
            session.config.debug.virtual_pads,
        )
        .in_slots(Player::Owner, session.pad_slots.clone())
        .publishing(self.services.events.clone());
        let input = Arc::new(SessionInput::new(seat, gamepads));
        // Attach under the state lock: an end that raced the start either sees the
        // resources (and releases them) or has already ended the session (and we do).
        let refused = {
            let mut lifecycle = lock(&session.lifecycle);
            if lifecycle.transition(SessionState::WaitingForClient) {
                if let Some(desktop) = resources.compositor.clone() {
                    let _ = session.desktop.set(desktop);
                }
                let _ = session.input.set(input.clone());
                *lock(&session.resources) = Some(resources);
                None
            } else {
                Some(resources)
            }
        };
        if let Some(mut resources) = refused {
            resources.release().instrument(session.span.clone()).await;
            crate::input::InputSink::release(input.as_ref());
            return Err(LaunchError::EndedWhileLaunching(session.app.title.clone()));
        }
        Ok(())
    }

    /// Ends the session when its app exits.
    fn end_when_app_exits(&self, session: &Arc<Session>) {
        let exit = lock(&session.resources)
            .as_ref()
            .and_then(AppResources::exit_watch);
        let Some(mut exit) = exit else {
            return;
        };
        let session = Arc::downgrade(session);
        tokio::spawn(async move {
            while exit.borrow_and_update().is_none() {
                if exit.changed().await.is_err() {
                    return;
                }
            }
            let status = exit.borrow().clone();
            if let Some(session) = session.upgrade() {
                tracing::info!(parent: &session.span, ?status, "the app exited; ending the session");
                session.request_end(EndReason::AppExited);
            }
        });
    }

    /// `/resume` (a Moonlight client's new `key`) or a browser's return (no key): the
    /// client's session, ready for its next stream.
    pub fn resume(
        &self,
        client_id: &str,
        key: Option<MoonlightKey>,
    ) -> Result<Arc<Session>, LaunchError> {
        let session = self
            .by_client(client_id)
            .filter(|s| s.state() != SessionState::Launching)
            .ok_or(LaunchError::NotRunning)?;
        match (&session.keys, key) {
            (Some(keys), Some(key)) => keys.rekey(key),
            (None, None) => {}
            // A Moonlight client's session without a key or the other way round: clients
            // are either (their certificate or credential says which), so this is a bug.
            _ => return Err(LaunchError::WrongClientKind),
        }
        tracing::info!(parent: &session.span, "session resumed");
        self.services.events.publish(Event::SessionResumed {
            session: session.id,
        });
        Ok(session)
    }

    /// `/cancel`: ends the client's session and releases everything it held.
    pub async fn cancel(&self, client_id: &str) -> bool {
        match self.remove(|s| s.client_id == client_id) {
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
        match self.remove(|s| s.id == id) {
            Some(session) => {
                self.finish(&session, reason).await;
                true
            }
            None => false,
        }
    }

    /// Ends every session (host shutdown).
    pub async fn end_all(&self) {
        let sessions = std::mem::take(&mut *lock(&self.sessions));
        for session in sessions {
            self.finish(&session, EndReason::HostShutdown).await;
        }
    }

    fn remove(&self, matches: impl Fn(&Session) -> bool) -> Option<Arc<Session>> {
        let mut sessions = lock(&self.sessions);
        let position = sessions.iter().position(|s| matches(s))?;
        Some(sessions.remove(position))
    }

    /// The one way a session ends, for every reason: tell the client, stop the pipelines,
    /// stop the app, remove the sink, stop the desktop, release the gamepads, then say so on
    /// the bus. The session was removed from the list, so this runs once per session.
    async fn finish(&self, session: &Session, reason: EndReason) {
        let stream = {
            let mut lifecycle = lock(&session.lifecycle);
            if !lifecycle.transition(SessionState::Ended) {
                return;
            }
            lifecycle.stream.take()
        };
        let hresult = match reason {
            EndReason::PipelineError => STREAM_FAILED,
            _ => hresult::GRACEFUL,
        };
        // An owner's guests end before the desktop they share goes; a guest leaves its lobby.
        self.leave_lobby(session, reason).await;
        let _ = self.services.control.send(ControlCommand::Terminate {
            session_id: session.id,
            hresult,
        });
        // Queued behind any stream start under way, which then finds the session ended and
        // drops its own pipelines: when this returns, no pipeline of the session runs.
        session.retire(stream, StreamClosed::Ended(reason));
        session.media.run(|| ()).await;
        let resources = lock(&session.resources).take();
        if let Some(mut resources) = resources {
            resources.release().instrument(session.span.clone()).await;
        }
        if let Some(input) = session.input.get() {
            input.release();
        }
        // What the session's pipelines, desktop and threads freed goes back to the system.
        let _ = tokio::task::spawn_blocking(crate::memory::release_free_memory).await;
        tracing::info!(parent: &session.span, ?reason, "session ended");
        self.services.events.publish(Event::SessionEnded {
            session: session.id,
            reason,
        });
    }

    /// Whether `client_id` has a session.
    pub fn is_running(&self, client_id: &str) -> bool {
        lock(&self.sessions)
            .iter()
            .any(|s| s.client_id == client_id)
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

    /// How many live sessions were launched from `address`.
    pub fn count_from_address(&self, address: IpAddr) -> usize {
        let address = crate::net::canonical_ip(address);
        lock(&self.sessions)
            .iter()
            .filter(|s| s.client_ip == address)
            .count()
    }

    /// Every session, oldest first.
    pub fn all(&self) -> Vec<Arc<Session>> {
        lock(&self.sessions).clone()
    }
}
