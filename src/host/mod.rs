//! The running host's shared state: configuration (and its reload), identity, paired clients,
//! pairing, sessions and the event bus. `daemon` starts the servers on it.

pub mod lobbies;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use anyhow::Context;
use arc_swap::ArcSwap;

use crate::audio::SharedAudioServer;
use crate::config::{Config, Ports};
use crate::encoders::CodecSupport;
use crate::events::{Event, EventBus};
use crate::pairing::PairingManager;
use crate::runner::Launcher;
use crate::session::{ControlCommand, SessionManager, SessionServices};
use crate::state::clients::{ClientStore, PairedClient};
use crate::state::identity::HostIdentity;
use crate::state::permissions::{Denied, Permissions, visible_apps};
use crate::state::{StateDir, StateError};
use crate::stream::ping::MediaSockets;

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
    pub codecs: Arc<CodecSupport>,
    /// The `hati pair` command line to show people (with `--state-dir` when not the default).
    pub pair_command: String,
    /// Streaming sessions.
    pub sessions: Arc<SessionManager>,
    /// The bearer token other machines need for the dashboard's API (`<state>/api-token`).
    pub api_token: String,
    /// Every state change, for the admin API's event stream (and tests).
    pub events: EventBus,
    /// TCP connections the HTTP, HTTPS and RTSP servers may hold together.
    pub connections: Arc<crate::net::ConnectionBudget>,
    /// Set when this host is `hati gateway`: launches go to its nodes.
    pub gateway: std::sync::OnceLock<Arc<crate::gateway::Gateway>>,
}

impl Host {
    /// Loads state, probes encoders, binds the media sockets. Returns the control-stream task's
    /// command queue with the host.
    pub fn new(
        config: Config,
        config_path: Option<PathBuf>,
        state_dir: Option<PathBuf>,
    ) -> anyhow::Result<(Self, tokio::sync::mpsc::UnboundedReceiver<ControlCommand>)> {
        Self::with_media(config, config_path, state_dir, true)
    }

    /// [`Host::new`]; `stream_ports: false` binds the media sockets to any free port (a gateway
    /// streams nothing itself, and may share a machine with a node).
    pub fn with_media(
        config: Config,
        config_path: Option<PathBuf>,
        state_dir: Option<PathBuf>,
        stream_ports: bool,
    ) -> anyhow::Result<(Self, tokio::sync::mpsc::UnboundedReceiver<ControlCommand>)> {
        let explicit_state_dir = state_dir.is_some();
        let state = StateDir::open(state_dir.unwrap_or_else(StateDir::default_path))
            .context("cannot open the state directory")?;
        state.migrate()?;
        let identity = HostIdentity::load_or_create(&state)?;
        let api_token = state.api_token()?;
        let clients = ClientStore::load(&state)?;
        gst::init().context("cannot initialise GStreamer")?;
        gsthati::register_static().context("cannot register Hati's GStreamer elements")?;
        hati_compositor::waylanddisplaysrc::register_static()
            .context("cannot register waylanddisplaysrc")?;
        let codecs = Arc::new(CodecSupport::probe(&config.gstreamer.video));
        let pair_command = if explicit_state_dir {
            format!("hati --state-dir {} pair <PIN>", state.path().display())
        } else {
            "hati pair <PIN>".to_owned()
        };
        let ports = config.ports();
        let media = if stream_ports {
            MediaSockets::bind(config.network.bind, ports.video, ports.audio)?
        } else {
            MediaSockets::bind(config.network.bind, 0, 0)?
        };
        let (control_commands, control_queue) = tokio::sync::mpsc::unbounded_channel();
        let events = EventBus::new();
        let owner = owner_tag(&identity.unique_id);
        let sessions = SessionManager::new(SessionServices {
            control: control_commands,
            events: events.clone(),
            media,
            codecs: codecs.clone(),
            launcher: Arc::new(Launcher::owned_by(&owner)),
            audio: Arc::new(SharedAudioServer::new(
                crate::session::resources::private_audio_dir(&owner, state.file("pulse")),
                &owner,
            )),
        });
        let host = Self {
            sessions: Arc::new(sessions),
            events,
            api_token,
            connections: crate::net::ConnectionBudget::new(
                crate::net::connection_budget_from_rlimit(),
            ),
            ports,
            pairing: PairingManager::new(config.pairing.clone()),
            config: ArcSwap::from_pointee(config),
            config_path,
            state,
            identity,
            clients: RwLock::new(clients),
            codecs,
            pair_command,
            gateway: std::sync::OnceLock::new(),
        };
        Ok((host, control_queue))
    }

    /// Removes what a crashed earlier run of this host left: its containers, audio sinks,
    /// session runtime directories and the temporary files of interrupted state writes.
    /// Another Hati instance's containers and sinks carry another ID and stay.
    pub async fn cleanup_stale(&self) {
        let temp_files = self.state.remove_stale_temp_files();
        let services = self.sessions.services();
        let runtime_dirs =
            crate::session::resources::remove_stale_runtime_dirs(services.launcher.owner());
        let containers = match services.launcher.cleanup_stale().await {
            Ok(removed) => removed,
            Err(error) => {
                tracing::warn!(%error, "cannot remove stale containers");
                0
            }
        };
        let sinks = match services.audio.get().await {
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

    /// The one check of whether the paired client with ID `client_id` may launch (or resume)
    /// app `app_id`: `/launch`, `/resume` (on `hati serve` and `hati gateway`) and the play
    /// page's WebSocket ask it. A client no longer paired may do nothing.
    pub fn may_launch(&self, client_id: &str, app_id: u32) -> Result<(), Denied> {
        self.check_client(client_id, |client, apps| {
            client.permissions.may_launch(&client.name, app_id, apps)
        })
    }

    /// Whether the paired client with ID `client_id` may be a guest in a lobby of app
    /// `app_id` at all (its app list; a spectator only watches).
    pub fn may_join(&self, client_id: &str, app_id: u32) -> Result<(), Denied> {
        self.check_client(client_id, |client, apps| {
            client
                .permissions
                .may_join(&client.name, app_id, false, apps)
        })
    }

    /// Runs a permission check on the paired client with ID `client_id` and the configured
    /// apps; a client no longer paired is refused.
    fn check_client(
        &self,
        client_id: &str,
        check: impl FnOnce(&PairedClient, &[crate::config::AppConfig]) -> Result<(), Denied>,
    ) -> Result<(), Denied> {
        let clients = self
            .clients
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(client) = clients.by_id(client_id) else {
            return Err(Denied::NotPaired {
                client: crate::state::clients::short_id(client_id).to_owned(),
            });
        };
        check(client, &self.config().apps)
    }

    /// The apps of `config` that `/applist` and the play page offer the paired client with ID
    /// `client_id` (see [`visible_apps`]); none when it is no longer paired.
    pub fn visible_apps<'a>(
        &self,
        client_id: &str,
        config: &'a Config,
    ) -> Vec<&'a crate::config::AppConfig> {
        let clients = self
            .clients
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match clients.by_id(client_id) {
            Some(client) => visible_apps(&client.permissions, &config.apps),
            None => Vec::new(),
        }
    }

    /// Sets the role and apps of the paired client with ID `id`, persists them and announces
    /// `ClientUpdated`. Returns the updated client, `None` when no client has that ID.
    pub fn set_permissions(
        &self,
        id: &str,
        permissions: Permissions,
    ) -> Result<Option<PairedClient>, StateError> {
        let updated = self
            .clients
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .set_permissions(id, permissions)?;
        if let Some(client) = &updated {
            self.events.publish(Event::ClientUpdated {
                client_id: client.id.clone(),
                name: client.name.clone(),
                role: client.permissions.role,
                apps: client.permissions.apps.clone(),
            });
        }
        Ok(updated)
    }

    /// Removes the paired client with this ID (its fingerprint), persists the list and, when it
    /// was there, announces `ClientUnpaired`. Returns the removed client.
    pub fn unpair(&self, id: &str) -> Result<Option<PairedClient>, StateError> {
        let removed = self
            .clients
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id)?;
        if let Some(client) = &removed {
            self.events.publish(Event::ClientUnpaired {
                client_id: client.id.clone(),
                name: client.name.clone(),
            });
        }
        Ok(removed)
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
