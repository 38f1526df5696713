//! Audio sinks: one PulseAudio null sink per session, captured from its monitor.
//!
//! At start-up the host calls [`AudioServer::connect_or_spawn`] (the user's PulseAudio or
//! PipeWire-pulse server, else a private `pulseaudio` under a runtime directory of Hati's) and
//! then [`AudioServer::cleanup_stale`], which unloads `hati-*` sinks a crashed run left. Per
//! session the session manager calls [`AudioServer::create_sink`] and gets a [`SessionSink`]:
//!
//! * [`SessionSink::env`] goes into the app's `LaunchContext` (`PULSE_SERVER`, `PULSE_SINK`),
//! * [`SessionSink::monitor_source`] is the `pulsesrc device=` of the audio pipeline,
//! * [`SessionSink::remove`] (or dropping the sink) unloads it when the session ends.
//!
//! The connection uses libpulse-binding (see `worker.rs` for how it is threaded).

mod daemon;
mod worker;

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::oneshot;

pub use self::daemon::PrivateDaemon;
use self::worker::Command;
pub use self::worker::SinkEntry;

/// Every sink Hati creates is named with this prefix followed by the session id.
pub const SINK_PREFIX: &str = "hati-";

/// How long a sink may take to disappear after its module was unloaded.
const UNLOAD_TIMEOUT: Duration = Duration::from_secs(2);

/// Sample rate of session sinks (Moonlight's Opus streams are 48 kHz).
pub const SAMPLE_RATE: u32 = 48_000;

/// Why an audio operation failed.
#[derive(Debug, Clone, Error)]
pub enum AudioError {
    /// No server answered at that address.
    #[error("cannot connect to pulseaudio server {server}: {reason}")]
    Connect {
        /// The server string (`(default)` for libpulse's own choice).
        server: String,
        /// libpulse's description.
        reason: String,
    },
    /// The private daemon could not be started.
    #[error("cannot start a private pulseaudio in {}: {reason}", runtime_dir.display())]
    Spawn {
        /// Its runtime directory.
        runtime_dir: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The server refused to load a module.
    #[error("pulseaudio refused to load {module}: {reason}")]
    LoadModule {
        /// The module.
        module: String,
        /// libpulse's description.
        reason: String,
    },
    /// Another request failed.
    #[error("pulseaudio request failed: {reason}")]
    Operation {
        /// What failed.
        reason: String,
    },
    /// The server did not answer in time.
    #[error("pulseaudio did not answer in time")]
    Timeout,
    /// A channel count Moonlight does not use.
    #[error("unsupported channel count {0} (2, 6 or 8)")]
    Channels(u8),
    /// The connection thread could not be created.
    #[error("cannot start the pulseaudio thread: {0}")]
    Thread(String),
    /// The connection thread has gone.
    #[error("the pulseaudio connection thread has stopped")]
    WorkerGone,
}

/// The PulseAudio server session sinks live on: the user's, else a private one Hati starts,
/// connected (or started) when the first session needs it.
#[derive(Debug)]
pub struct SharedAudioServer {
    server: tokio::sync::OnceCell<Option<Arc<AudioServer>>>,
    private_runtime_dir: PathBuf,
    owner: String,
}

impl SharedAudioServer {
    /// A server not yet connected; a private daemon would live under `private_runtime_dir`
    /// and sinks carry `owner` in their names.
    pub fn new(private_runtime_dir: PathBuf, owner: &str) -> Self {
        Self {
            server: tokio::sync::OnceCell::new(),
            private_runtime_dir,
            owner: owner.to_owned(),
        }
    }

    /// Stops the private daemon, if one was started (the host's shutdown: sessions and their
    /// sinks are gone by then). Blocks up to two seconds: call it off the async runtime.
    pub fn stop_private_daemon(&self) {
        if let Some(daemon) = self
            .server
            .get()
            .and_then(Option::as_ref)
            .and_then(|s| s.private_daemon())
        {
            daemon.stop();
        }
    }

    /// The server, connecting or starting it on first use. `None` (logged once) when neither
    /// works: apps then stream no sound.
    pub async fn get(&self) -> Option<Arc<AudioServer>> {
        self.server
            .get_or_init(|| async {
                match AudioServer::connect_or_spawn(&self.private_runtime_dir).await {
                    Ok(server) => {
                        let server = server.owned_by(&self.owner);
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
}

/// A connection to the PulseAudio server sessions play into.
#[derive(Debug)]
pub struct AudioServer {
    commands: mpsc::Sender<Command>,
    server: String,
    daemon: Option<Arc<PrivateDaemon>>,
    /// This host's tag in sink names (empty: none).
    owner: String,
}

impl AudioServer {
    /// Connects to `server` (a `PULSE_SERVER` string), or with `None` to libpulse's default
    /// (`PULSE_SERVER`, else the user's runtime socket). Never autospawns.
    pub async fn connect(server: Option<&str>) -> Result<Self, AudioError> {
        let (commands, reported) = worker::start(server.map(str::to_owned)).await?;
        let server = server
            .map(str::to_owned)
            .or_else(|| reported.map(|s| normalise_server(&s)))
            .unwrap_or_else(default_server);
        tracing::info!(%server, "connected to pulseaudio");
        Ok(Self {
            commands,
            server,
            daemon: None,
            owner: String::new(),
        })
    }

    /// Starts a private `pulseaudio` under `runtime_dir` and connects to it.
    pub async fn spawn_private(runtime_dir: &Path) -> Result<Self, AudioError> {
        let runtime_dir = runtime_dir.to_owned();
        let daemon = tokio::task::spawn_blocking(move || PrivateDaemon::spawn(&runtime_dir))
            .await
            .map_err(|e| AudioError::Thread(e.to_string()))??;
        let server = daemon.server();
        let (commands, _) = worker::start(Some(server.clone())).await?;
        Ok(Self {
            commands,
            server,
            daemon: Some(Arc::new(daemon)),
            owner: String::new(),
        })
    }

    /// The user's server when one answers, else a private daemon under `private_runtime_dir`.
    pub async fn connect_or_spawn(private_runtime_dir: &Path) -> Result<Self, AudioError> {
        match Self::connect(None).await {
            Ok(server) => Ok(server),
            Err(error) => {
                tracing::info!(%error, "no pulseaudio server answered; starting a private one");
                Self::spawn_private(private_runtime_dir).await
            }
        }
    }

    /// Names this host's sinks `hati-OWNER-SESSION`, so that [`Self::cleanup_stale`] removes
    /// only this host's sinks when several Hati instances share one PulseAudio server.
    pub fn owned_by(mut self, owner: &str) -> Self {
        self.owner = owner.to_owned();
        self
    }

    /// The prefix of every sink this server object creates.
    fn own_prefix(&self) -> String {
        if self.owner.is_empty() {
            SINK_PREFIX.to_owned()
        } else {
            format!("{SINK_PREFIX}{}-", self.owner)
        }
    }

    /// The `PULSE_SERVER` value that reaches this server.
    pub fn pulse_server(&self) -> &str {
        &self.server
    }

    /// The server's unix socket, when it is one (containers get it bind-mounted).
    pub fn socket_path(&self) -> Option<PathBuf> {
        let path = self.server.strip_prefix("unix:").unwrap_or(&self.server);
        path.starts_with('/').then(|| PathBuf::from(path))
    }

    /// Whether this is a private daemon Hati started.
    pub fn is_private(&self) -> bool {
        self.daemon.is_some()
    }

    /// The private daemon Hati started, if this is one.
    pub fn private_daemon(&self) -> Option<&PrivateDaemon> {
        self.daemon.as_deref()
    }

    /// Creates the null sink of session `session_id` with `channels` channels (2, 6 or 8) at
    /// 48 kHz. A leftover sink with the same name is removed first.
    pub async fn create_sink(
        &self,
        session_id: u32,
        channels: u8,
    ) -> Result<SessionSink, AudioError> {
        let sink_name = sink_name(&self.owner, session_id);
        for sink in self.sinks().await? {
            if sink.name == sink_name
                && let Some(module) = sink.owner_module
            {
                tracing::warn!(sink = %sink_name, "removing a leftover sink with this session's name");
                unload_and_wait(&self.commands, module, &sink_name).await?;
            }
        }
        let argument = null_sink_argument(&sink_name, session_id, channels)?;
        let module = self
            .request(|reply| Command::LoadModule {
                name: "module-null-sink",
                argument,
                reply,
            })
            .await??;
        tracing::info!(session = session_id, sink = %sink_name, module, "audio sink created");
        Ok(SessionSink {
            session_id,
            sink_name,
            module,
            server: self.server.clone(),
            commands: self.commands.clone(),
            removed: false,
        })
    }

    /// Every sink the server has.
    pub async fn sinks(&self) -> Result<Vec<SinkEntry>, AudioError> {
        self.request(|reply| Command::ListSinks { reply }).await?
    }

    /// Names of the `hati-*` sinks the server has.
    pub async fn hati_sinks(&self) -> Result<Vec<String>, AudioError> {
        Ok(self
            .sinks()
            .await?
            .into_iter()
            .filter(|s| s.name.starts_with(SINK_PREFIX))
            .map(|s| s.name)
            .collect())
    }

    /// Unloads this host's sinks (`hati-OWNER-*`, every `hati-*` without an owner) left by a
    /// crashed earlier run; returns how many. Call it at start-up, before any session exists.
    pub async fn cleanup_stale(&self) -> Result<usize, AudioError> {
        let prefix = self.own_prefix();
        let mut removed = 0;
        for sink in self.sinks().await? {
            if let (true, Some(module)) = (sink.name.starts_with(&prefix), sink.owner_module) {
                unload_and_wait(&self.commands, module, &sink.name).await?;
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(removed, "removed stale hati audio sinks");
        }
        Ok(removed)
    }

    async fn request<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, AudioError> {
        request(&self.commands, command).await
    }
}

async fn request<T>(
    commands: &mpsc::Sender<Command>,
    command: impl FnOnce(oneshot::Sender<T>) -> Command,
) -> Result<T, AudioError> {
    let (reply, answer) = oneshot::channel();
    commands
        .send(command(reply))
        .map_err(|_| AudioError::WorkerGone)?;
    answer.await.map_err(|_| AudioError::WorkerGone)
}

/// Unloads module `index` and waits until its sink `sink` is gone: the server acknowledges an
/// unload before it happens (modules are unloaded from a deferred event).
async fn unload_and_wait(
    commands: &mpsc::Sender<Command>,
    index: u32,
    sink: &str,
) -> Result<(), AudioError> {
    request(commands, |reply| Command::UnloadModule {
        index,
        reply: Some(reply),
    })
    .await??;
    let deadline = Instant::now() + UNLOAD_TIMEOUT;
    loop {
        let sinks = request(commands, |reply| Command::ListSinks { reply }).await??;
        if !sinks.iter().any(|s| s.name == sink) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(AudioError::Timeout);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One session's null sink. Dropping it unloads the sink in the background.
#[derive(Debug)]
pub struct SessionSink {
    session_id: u32,
    sink_name: String,
    module: u32,
    server: String,
    commands: mpsc::Sender<Command>,
    removed: bool,
}

impl SessionSink {
    /// The sink's name, `hati-<session>`: the app's `PULSE_SINK`.
    pub fn sink_name(&self) -> &str {
        &self.sink_name
    }

    /// The sink's monitor source, `hati-<session>.monitor`: the capture pipeline's
    /// `pulsesrc device=`.
    pub fn monitor_source(&self) -> String {
        format!("{}.monitor", self.sink_name)
    }

    /// The `PULSE_SERVER` value that reaches the sink's server.
    pub fn pulse_server(&self) -> &str {
        &self.server
    }

    /// The PulseAudio module index that owns the sink.
    pub fn module_index(&self) -> u32 {
        self.module
    }

    /// The variables the session's app needs: `PULSE_SERVER` and `PULSE_SINK`.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("PULSE_SERVER".to_owned(), self.server.clone()),
            ("PULSE_SINK".to_owned(), self.sink_name.clone()),
        ]
    }

    /// Unloads the sink and waits until the server has done so.
    pub async fn remove(mut self) -> Result<(), AudioError> {
        self.removed = true;
        unload_and_wait(&self.commands, self.module, &self.sink_name).await?;
        tracing::info!(session = self.session_id, sink = %self.sink_name, "audio sink removed");
        Ok(())
    }
}

impl Drop for SessionSink {
    fn drop(&mut self) {
        if !self.removed {
            let command = Command::UnloadModule {
                index: self.module,
                reply: None,
            };
            if self.commands.send(command).is_err() {
                tracing::warn!(sink = %self.sink_name, "pulseaudio connection gone; sink left for stale cleanup");
            }
        }
    }
}

/// `hati-OWNER-SESSION`, or `hati-SESSION` without an owner.
pub fn sink_name(owner: &str, session_id: u32) -> String {
    if owner.is_empty() {
        format!("{SINK_PREFIX}{session_id}")
    } else {
        format!("{SINK_PREFIX}{owner}-{session_id}")
    }
}

/// The `module-null-sink` argument for a session sink.
fn null_sink_argument(
    sink_name: &str,
    session_id: u32,
    channels: u8,
) -> Result<String, AudioError> {
    let channel_map = match channels {
        2 => "front-left,front-right",
        6 => "front-left,front-right,front-center,lfe,rear-left,rear-right",
        8 => "front-left,front-right,front-center,lfe,rear-left,rear-right,side-left,side-right",
        other => return Err(AudioError::Channels(other)),
    };
    Ok(format!(
        "sink_name={} rate={SAMPLE_RATE} channels={channels} channel_map={channel_map} \
         sink_properties='device.description=\"Hati session {session_id}\"'",
        sink_name
    ))
}

/// libpulse reports unix servers as bare paths; `PULSE_SERVER` wants `unix:` in front.
fn normalise_server(server: &str) -> String {
    if server.starts_with('/') {
        format!("unix:{server}")
    } else {
        server.to_owned()
    }
}

/// What libpulse would have used: `PULSE_SERVER`, else the user's runtime socket.
fn default_server() -> String {
    if let Ok(server) = std::env::var("PULSE_SERVER") {
        return server;
    }
    let runtime = std::env::var("XDG_RUNTIME_DIR")
        .unwrap_or_else(|_| format!("/run/user/{}", rustix::process::getuid().as_raw()));
    format!("unix:{runtime}/pulse/native")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_arguments() {
        let argument = null_sink_argument("hati-7", 7, 2).unwrap();
        assert!(argument.starts_with("sink_name=hati-7 rate=48000 channels=2 "));
        assert!(argument.contains("channel_map=front-left,front-right "));
        assert!(argument.ends_with("sink_properties='device.description=\"Hati session 7\"'"));
        assert_eq!(
            null_sink_argument("hati-1", 1, 6)
                .unwrap()
                .matches(',')
                .count(),
            5
        );
        assert!(matches!(
            null_sink_argument("hati-1", 1, 3),
            Err(AudioError::Channels(3))
        ));
    }

    #[test]
    fn server_strings() {
        assert_eq!(
            normalise_server("/run/user/1000/pulse/native"),
            "unix:/run/user/1000/pulse/native"
        );
        assert_eq!(normalise_server("tcp:host:4713"), "tcp:host:4713");
        assert_eq!(sink_name("", 3), "hati-3");
        assert_eq!(sink_name("a1b2", 3), "hati-a1b2-3");
    }
}
