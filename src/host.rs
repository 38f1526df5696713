//! The running host: configuration, identity, paired clients and pairing state shared by every
//! server, and `serve`, which starts them and waits for shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use anyhow::Context;
use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::audio::AudioServer;
use crate::config::{Config, Ports};
use crate::encoders::CodecSupport;
use crate::events::{Event, EventBus};
use crate::pairing::PairingManager;
use crate::runner::Launcher;
use crate::session::{ControlCommand, SessionManager};
use crate::state::StateDir;
use crate::state::clients::ClientStore;
use crate::state::identity::HostIdentity;
use crate::stream::ping::{MediaSockets, StreamKind};

/// State shared by the HTTP, HTTPS and admin servers.
pub struct Host {
    /// The merged configuration now in force (replaced whole by [`Host::reload`]).
    config: ArcSwap<Config>,
    /// The file it came from (`None`: the embedded default).
    config_path: Option<PathBuf>,
    /// Ports, derived once.
    pub ports: Ports,
    /// Where state lives.
    pub state: StateDir,
    /// Host certificate, key and unique ID.
    pub identity: HostIdentity,
    /// Paired clients (written rarely: on pairing and unpairing).
    pub clients: RwLock<ClientStore>,
    /// PIN pairing.
    pub pairing: PairingManager,
    /// Codecs this machine can encode.
    pub codecs: CodecSupport,
    /// The `hati pair` command line to show people (with `--state-dir` when not the default).
    pub pair_command: String,
    /// Streaming sessions.
    pub sessions: Arc<SessionManager>,
    /// Queue of the control-stream task.
    pub control_commands: tokio::sync::mpsc::UnboundedSender<ControlCommand>,
    /// The video and audio sockets.
    pub media: MediaSockets,
    /// Starts apps (processes, containers).
    pub launcher: Launcher,
    /// The bearer token other machines need for the dashboard's API (`<state>/api-token`).
    pub api_token: String,
    /// Every state change, for the admin API's event stream (and tests).
    pub events: EventBus,
    /// TCP connections the HTTP, HTTPS and RTSP servers may hold together.
    pub connections: Arc<crate::net::ConnectionBudget>,
    /// The PulseAudio server sessions' sinks live on, connected (or started) on first use.
    audio: tokio::sync::OnceCell<Option<Arc<AudioServer>>>,
}

impl Host {
    /// Loads state, probes encoders, binds the media sockets. Returns the control-stream task's
    /// command queue with the host.
    pub fn new(
        config: Config,
        config_path: Option<PathBuf>,
        state_dir: Option<PathBuf>,
    ) -> anyhow::Result<(Self, tokio::sync::mpsc::UnboundedReceiver<ControlCommand>)> {
        let explicit_state_dir = state_dir.is_some();
        let state = StateDir::open(state_dir.unwrap_or_else(StateDir::default_path))
            .context("cannot open the state directory")?;
        let identity = HostIdentity::load_or_create(&state)?;
        let api_token = state.api_token()?;
        let clients = ClientStore::load(&state)?;
        gst::init().context("cannot initialise GStreamer")?;
        gsthati::register_static().context("cannot register Hati's GStreamer elements")?;
        hati_compositor::waylanddisplaysrc::register_static()
            .context("cannot register waylanddisplaysrc")?;
        let codecs = CodecSupport::probe(&config.gstreamer.video);
        let pair_command = if explicit_state_dir {
            format!("hati --state-dir {} pair <PIN>", state.path().display())
        } else {
            "hati pair <PIN>".to_owned()
        };
        let ports = config.ports();
        let media = MediaSockets::bind(config.network.bind, ports.video, ports.audio)?;
        let (control_commands, control_queue) = tokio::sync::mpsc::unbounded_channel();
        let events = EventBus::new();
        let host = Self {
            sessions: Arc::new(SessionManager::new(
                control_commands.clone(),
                events.clone(),
            )),
            events,
            api_token,
            control_commands,
            media,
            launcher: Launcher::owned_by(&owner_tag(&identity.unique_id)),
            connections: crate::net::ConnectionBudget::new(
                crate::net::connection_budget_from_rlimit(),
            ),
            audio: tokio::sync::OnceCell::new(),
            ports,
            pairing: PairingManager::new(config.pairing.clone()),
            config: ArcSwap::from_pointee(config),
            config_path,
            state,
            identity,
            clients: RwLock::new(clients),
            codecs,
            pair_command,
        };
        Ok((host, control_queue))
    }

    /// Removes what a crashed earlier run of this host left: its containers, audio sinks,
    /// session runtime directories and the temporary files of interrupted state writes.
    /// Another Hati instance's containers and sinks carry another ID and stay.
    pub async fn cleanup_stale(&self) {
        let temp_files = self.state.remove_stale_temp_files();
        let runtime_dirs =
            crate::session::resources::remove_stale_runtime_dirs(self.launcher.owner());
        let containers = match self.launcher.cleanup_stale().await {
            Ok(removed) => removed,
            Err(error) => {
                tracing::warn!(%error, "cannot remove stale containers");
                0
            }
        };
        let sinks = match self.audio().await {
            Some(audio) => match audio.cleanup_stale().await {
                Ok(removed) => removed,
                Err(error) => {
                    tracing::warn!(%error, "cannot remove stale audio sinks");
                    0
                }
            },
            None => 0,
        };
        if temp_files + runtime_dirs + containers + sinks > 0 {
            tracing::info!(
                containers,
                sinks,
                runtime_dirs,
                temp_files,
                "removed what a crashed earlier run left"
            );
        }
    }

    /// The PulseAudio server for session sinks: the user's, else a private one Hati starts.
    /// `None` (logged once) when neither works: apps then stream no sound.
    pub async fn audio(&self) -> Option<Arc<AudioServer>> {
        self.audio
            .get_or_init(|| async {
                let private_dir = self.state.file("pulse");
                match AudioServer::connect_or_spawn(&private_dir).await {
                    Ok(server) => {
                        let server = server.owned_by(self.launcher.owner());
                        tracing::info!(server = %server.pulse_server(), private = server.is_private(), "audio server ready");
                        Some(Arc::new(server))
                    }
                    Err(error) => {
                        tracing::error!(%error, "no PulseAudio server and none could be started: apps will stream no sound");
                        None
                    }
                }
            })
            .await
            .clone()
    }

    /// The configuration now in force. Hold the `Arc` for one request: a reload swaps it.
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// Reloads the config file: apps and pipelines change for sessions launched from now on;
    /// running sessions keep the app they launched with. A broken file is refused with the
    /// same key-and-line message as at start-up, and the old config stays in force.
    /// `[network]` and `[pairing]` changes need a restart (ports are bound, limits are set).
    pub fn reload(&self) -> Result<usize, crate::config::ConfigError> {
        let new = match Config::load(self.config_path.as_deref()) {
            Ok(config) => config,
            Err(error) => {
                tracing::error!(%error, "config reload refused; the running config stays");
                self.events.publish(Event::ConfigRefused {
                    error: error.to_string(),
                });
                return Err(error);
            }
        };
        let old = self.config();
        if new.ports() != old.ports() || new.network.bind != old.network.bind {
            tracing::warn!("[network] changes take effect at the next start");
        }
        let apps = new.apps.len();
        self.config.store(Arc::new(new));
        tracing::info!(apps, "config reloaded");
        self.events.publish(Event::ConfigReloaded { apps });
        Ok(apps)
    }

    /// Whether the certificate with this fingerprint is paired.
    pub fn is_paired(&self, fingerprint: &str) -> bool {
        self.clients
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_paired(fingerprint)
    }
}

/// The tag that marks this host's containers, sinks and runtime directories: its unique ID,
/// lower-case alphanumerics only (safe in a label, a sink name and a path).
pub fn owner_tag(unique_id: &str) -> String {
    unique_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(16)
        .collect()
}

/// How long start-up clean-up may take before the host serves anyway.
const CLEANUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs the host until Ctrl-C or SIGTERM.
pub async fn serve(
    config: Config,
    config_path: Option<PathBuf>,
    state_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let (host, control_queue) = Host::new(config, config_path, state_dir)?;
    let host = Arc::new(host);
    // Before any server accepts a session, so nothing of a new session is removed.
    if tokio::time::timeout(CLEANUP_TIMEOUT, host.cleanup_stale())
        .await
        .is_err()
    {
        tracing::warn!(
            "start-up clean-up did not finish within {} s",
            CLEANUP_TIMEOUT.as_secs()
        );
    }
    let config = host.config();
    let bind = config.network.bind;
    let listen = |port: u16, key: &'static str| async move {
        let address = SocketAddr::new(bind, port);
        TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address} (set by {key} in the config)"))
    };
    let http = listen(host.ports.http, "network.http_port").await?;
    let https = listen(host.ports.https, "network.https_port").await?;
    let rtsp = listen(host.ports.rtsp, "network.rtsp_port").await?;
    let tls = crate::http::tls::server_config(&host.identity).context("cannot set up TLS")?;
    let admin = crate::admin::AdminSocket::bind(&host.state)?;
    let (shutdown_tx, shutdown) = watch::channel(false);

    let mdns = if config.network.mdns {
        match crate::mdns::Advertisement::start(&config.hostname, host.ports.http, bind) {
            Ok(advert) => Some(advert),
            Err(error) => {
                tracing::warn!(%error, "mDNS advertisement failed; clients must add this host by address");
                None
            }
        }
    } else {
        None
    };

    match &host.codecs {
        CodecSupport { h264: None, .. } => tracing::error!(
            "no H.264 encoder found in GStreamer (see [gstreamer.video] h264_encoders): clients cannot stream"
        ),
        codecs => {
            let [h264, hevc, av1] = codecs.names();
            tracing::info!(?h264, ?hevc, ?av1, "video encoders")
        }
    }
    let paired = host
        .clients
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .list()
        .len();
    tracing::info!(
        hostname = %config.hostname,
        http = %http.local_addr()?,
        https = %https.local_addr()?,
        state_dir = %host.state.path().display(),
        paired_clients = paired,
        connection_limit = host.connections.limit(),
        "hati is running; pair from Moonlight, then enter the PIN with `{}`",
        host.pair_command
    );

    let tasks = [
        tokio::spawn(crate::http::serve_http(
            http,
            host.clone(),
            shutdown.clone(),
        )),
        tokio::spawn(crate::http::serve_https(
            https,
            tls,
            host.clone(),
            shutdown.clone(),
        )),
        tokio::spawn(admin.serve(host.clone(), shutdown.clone())),
        tokio::spawn(crate::rtsp::serve(rtsp, host.clone(), shutdown.clone())),
        tokio::spawn(publish_pairing_events(host.clone(), shutdown.clone())),
        tokio::spawn(publish_stream_stats(host.clone(), shutdown.clone())),
        tokio::spawn(reload_on_sighup(host.clone(), shutdown.clone())),
        tokio::spawn(crate::stream::ping::listen(
            host.media.video.clone(),
            StreamKind::Video,
            host.sessions.clone(),
            shutdown.clone(),
        )),
        tokio::spawn(crate::stream::ping::listen(
            host.media.audio.clone(),
            StreamKind::Audio,
            host.sessions.clone(),
            shutdown.clone(),
        )),
    ];
    let control_address = SocketAddr::new(bind, host.ports.control);
    let control = tokio::spawn(crate::control::serve(
        control_address,
        host.sessions.clone(),
        control_queue,
        shutdown.clone(),
    ));
    tokio::select! {
        _ = wait_for_shutdown_signal() => {}
        result = control => {
            // The control stream only returns early when it cannot start.
            result??;
        }
    }
    tracing::info!("shutting down");
    host.sessions.end_all().await;
    // The termination messages went into the control task's queue; wait until it has sent them.
    let (flushed, sent) = tokio::sync::oneshot::channel();
    if host
        .control_commands
        .send(crate::session::ControlCommand::Flush(flushed))
        .is_ok()
    {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), sent).await;
    }
    let _ = shutdown_tx.send(true);
    for task in tasks {
        let _ = task.await;
    }
    drop(mdns);
    Ok(())
}

/// Reloads the config on SIGHUP, as daemons do.
async fn reload_on_sighup(host: Arc<Host>, mut shutdown: watch::Receiver<bool>) {
    let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        return;
    };
    loop {
        tokio::select! {
            _ = hangup.recv() => { let _ = host.reload(); }
            _ = shutdown.changed() => return,
        }
    }
}

/// Republishes the pairing state machine's events on the host's bus.
async fn publish_pairing_events(host: Arc<Host>, mut shutdown: watch::Receiver<bool>) {
    use crate::pairing::PairingEvent;
    let mut pairing = host.pairing.subscribe();
    loop {
        let event = tokio::select! {
            event = pairing.recv() => event,
            _ = shutdown.changed() => return,
        };
        let event = match event {
            Ok(PairingEvent::Waiting {
                attempt,
                address,
                device_name,
            }) => Event::PairingWaiting {
                attempt,
                address,
                device_name,
            },
            Ok(PairingEvent::Paired { attempt, client }) => Event::Paired {
                attempt,
                client_id: client.id,
                name: client.name,
            },
            Ok(PairingEvent::Failed { attempt, reason }) => {
                Event::PairingFailed { attempt, reason }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        host.events.publish(event);
    }
}

/// Publishes every streaming session's statistics once a second.
async fn publish_stream_stats(host: Arc<Host>, mut shutdown: watch::Receiver<bool>) {
    use std::collections::HashMap;
    use std::sync::atomic::Ordering::Relaxed;
    let mut previous: HashMap<u32, (u64, u64)> = HashMap::new();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let mut seen = HashMap::new();
        for session in host.sessions.all() {
            let Some((video, _)) = session.stream_counters() else {
                continue;
            };
            let latency = session.host_latency_us().unwrap_or((0, 0));
            let frames = video.samples.load(Relaxed);
            let bytes = video.bytes_sent.load(Relaxed);
            let (last_frames, last_bytes) = previous.get(&session.id).copied().unwrap_or((0, 0));
            seen.insert(session.id, (frames, bytes));
            host.events.publish(Event::StreamStats {
                session: session.id,
                fps: frames.saturating_sub(last_frames),
                bitrate_kbps: bytes.saturating_sub(last_bytes) * 8 / 1000,
                video_packets: video.packets_sent.load(Relaxed),
                video_frames: frames,
                idr_requests: session.metrics.idr_requests.load(Relaxed),
                fec_status_reports: session.metrics.fec_status_reports.load(Relaxed),
                refused_pings: session.metrics.refused_pings.load(Relaxed),
                fec_percentage: host.config().streaming.fec_percentage,
                host_latency_p50_ms: f64::from(latency.0) / 1000.0,
                host_latency_p99_ms: f64::from(latency.1) / 1000.0,
            });
        }
        previous = seen;
    }
}

async fn wait_for_shutdown_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match terminate.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
    }
}
