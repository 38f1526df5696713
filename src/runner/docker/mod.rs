//! The Docker runner: one container per session, created through the Engine API (bollard) on
//! the local engine (`DOCKER_HOST` when set, else `/var/run/docker.sock`).
//!
//! The ContainerCreate body holds the app's `image` (which must be present locally: Hati never
//! pulls), its `cmd` override, the session environment followed by the app's `env`, bind mounts
//! of the session runtime directory and the PulseAudio socket (each at the same path inside),
//! the app's `mounts` and `devices`, and the labels `hati.managed=true` and
//! `hati.session=<id>`. The app's raw `create_options` JSON is deep-merged over that body the
//! way Wolf merges `base_create_json`: objects merge key by key, arrays are concatenated (ours
//! first, so a later duplicate `Env` entry of the user's wins), other values are replaced. Keys
//! the Engine API model does not know are rejected rather than silently dropped.
//!
//! Container output is forwarded to `tracing` (target `hati::app`) inside an `app` span that
//! carries the session id. Stopping asks the engine to stop (SIGTERM, SIGKILL after the grace
//! period) and then removes the container.

mod cleanup;
mod create;
mod handle;
mod logs;

use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::CreateContainerOptions;
use thiserror::Error;
use tokio::sync::watch;
use tracing::Instrument;

use self::cleanup::force_remove;
use self::create::create_body;
pub use self::handle::ContainerHandle;
use self::handle::watch_exit;
use self::logs::forward_logs;
use super::LaunchContext;
use super::config::{DockerConfig, MAX_STOP_GRACE_SECONDS};

/// Label every Hati container carries; [`DockerRunner::cleanup_stale`] removes by it.
pub const MANAGED_LABEL: &str = "hati.managed";

/// Label holding the session id.
pub const SESSION_LABEL: &str = "hati.session";

/// Label naming the Hati host that started the container (its unique ID), so that two hosts
/// sharing one engine never remove each other's containers.
pub const HOST_LABEL: &str = "hati.host";

/// Seconds any single Engine API request may take before its reply starts (stop requests get
/// their grace period on top).
const REQUEST_TIMEOUT_SECONDS: u64 = 30;

/// Why a Docker app could not be started or stopped.
#[derive(Debug, Error)]
pub enum DockerError {
    /// The engine could not be reached (no socket, daemon down, permission denied).
    #[error("cannot reach the Docker engine: {reason}")]
    Connect {
        /// What failed, from bollard.
        reason: String,
    },
    /// The image is not in the local engine; Hati never pulls.
    #[error(
        "docker image {image:?} is not present locally; build or pull it first (`docker pull {image}`)"
    )]
    ImageMissing {
        /// The configured image.
        image: String,
    },
    /// `cmd` could not be split like a shell would.
    #[error("cannot split command line {cmd:?}: {source}")]
    Split {
        /// The configured command line.
        cmd: String,
        /// The splitter's complaint.
        source: shell_words::ParseError,
    },
    /// An `env` entry is not `KEY=value`.
    #[error("env entry {0:?} is not KEY=value")]
    BadEnv(String),
    /// A `mounts` entry is not `src:dst` or `src:dst:ro|rw`.
    #[error("mount {0:?} is not src:dst or src:dst:ro")]
    BadMount(String),
    /// A `devices` entry is not `/dev/x`, `/dev/x:/dev/y` or `/dev/x:/dev/y:perms`.
    #[error("device {0:?} is not /dev/x, /dev/x:/dev/y or /dev/x:/dev/y:rwm")]
    BadDevice(String),
    /// `create_options` is not a JSON object, or names keys the Engine API does not know.
    #[error("create_options: {0}")]
    CreateOptions(String),
    /// A container with Hati's name exists and is not Hati's.
    #[error("a container named {name:?} exists and is not managed by Hati")]
    NameInUse {
        /// The container name.
        name: String,
    },
    /// The engine refused a request.
    #[error("docker {operation} failed: {source}")]
    Engine {
        /// What Hati asked for ("create", "start", "stop", …).
        operation: &'static str,
        /// The engine's answer.
        source: BollardError,
    },
}

impl DockerError {
    fn engine(operation: &'static str) -> impl FnOnce(BollardError) -> Self {
        move |source| DockerError::Engine { operation, source }
    }
}

/// A connection to the Docker engine that starts session containers.
#[derive(Debug, Clone)]
pub struct DockerRunner {
    docker: Docker,
    /// This host's unique ID for [`HOST_LABEL`] (empty: no host label).
    owner: String,
}

impl DockerRunner {
    /// Connects to the engine named by `DOCKER_HOST` (`unix://…`, `tcp://…`), or to
    /// `/var/run/docker.sock`, and agrees on an API version with it.
    pub async fn connect() -> Result<Self, DockerError> {
        let docker = Docker::connect_with_defaults().map_err(|e| DockerError::Connect {
            reason: e.to_string(),
        })?;
        Self::from_client(docker).await
    }

    /// Uses an existing bollard client (after negotiating the API version with it).
    pub async fn from_client(docker: Docker) -> Result<Self, DockerError> {
        let docker = docker
            .with_timeout(Duration::from_secs(REQUEST_TIMEOUT_SECONDS))
            .negotiate_version()
            .await
            .map_err(|e| DockerError::Connect {
                reason: e.to_string(),
            })?;
        Ok(Self {
            docker,
            owner: String::new(),
        })
    }

    /// Labels containers with this host's ID and cleans up only those.
    pub fn owned_by(mut self, owner: &str) -> Self {
        self.owner = owner.to_owned();
        self
    }

    /// The bollard client, for inspection.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// The name Hati gives the container of session `session_id`.
    pub fn container_name(session_id: u32) -> String {
        format!("hati-session-{session_id}")
    }

    /// Creates and starts the container of the session `ctx` describes.
    pub async fn start(
        &self,
        config: &DockerConfig,
        ctx: &LaunchContext,
    ) -> Result<ContainerHandle, DockerError> {
        let name = Self::container_name(ctx.session_id);
        let span = tracing::info_span!("app", session = ctx.session_id, runner = "docker", container = %name);
        let body = create_body(config, ctx, &self.owner)?;
        let id = self
            .create(&name, &config.image, body)
            .instrument(span.clone())
            .await?;
        if let Err(source) = self.docker.start_container(&id, None).await {
            self.remove(&id).await;
            return Err(DockerError::Engine {
                operation: "start",
                source,
            });
        }
        span.in_scope(
            || tracing::info!(image = %config.image, id = %short_id(&id), "container started"),
        );

        let (exit_tx, exit_rx) = watch::channel(None);
        tokio::spawn(forward_logs(self.docker.clone(), id.clone()).instrument(span.clone()));
        tokio::spawn(watch_exit(self.docker.clone(), id.clone(), exit_tx).instrument(span.clone()));
        Ok(ContainerHandle {
            docker: self.docker.clone(),
            id,
            name,
            exit: exit_rx,
            grace_seconds: config.stop_grace_seconds.min(MAX_STOP_GRACE_SECONDS),
            span,
            stopped: false,
        })
    }

    async fn create(
        &self,
        name: &str,
        image: &str,
        body: ContainerCreateBody,
    ) -> Result<String, DockerError> {
        let options = CreateContainerOptions {
            name: Some(name.to_owned()),
            ..Default::default()
        };
        let mut retried = false;
        loop {
            match self
                .docker
                .create_container(Some(options.clone()), body.clone())
                .await
            {
                Ok(created) => {
                    for warning in created.warnings {
                        tracing::warn!(%warning, "docker create warning");
                    }
                    return Ok(created.id);
                }
                Err(error) if status_of(&error) == Some(404) => {
                    return Err(DockerError::ImageMissing {
                        image: image.to_owned(),
                    });
                }
                Err(error) if status_of(&error) == Some(409) && !retried => {
                    // A container of an earlier session with this id survived; remove it if it
                    // is ours.
                    if !self.is_managed(name).await? {
                        return Err(DockerError::NameInUse {
                            name: name.to_owned(),
                        });
                    }
                    tracing::warn!("removing a leftover container with this session's name");
                    self.remove(name).await;
                    retried = true;
                }
                Err(source) => {
                    return Err(DockerError::Engine {
                        operation: "create",
                        source,
                    });
                }
            }
        }
    }

    async fn is_managed(&self, name: &str) -> Result<bool, DockerError> {
        let inspect = self
            .docker
            .inspect_container(name, None)
            .await
            .map_err(DockerError::engine("inspect"))?;
        Ok(inspect
            .config
            .and_then(|c| c.labels)
            .is_some_and(|labels| labels.get(MANAGED_LABEL).is_some_and(|v| v == "true")))
    }

    async fn remove(&self, id: &str) {
        if let Err(error) = self.docker.remove_container(id, Some(force_remove())).await
            && status_of(&error) != Some(404)
        {
            tracing::warn!(%error, "cannot remove container");
        }
    }
}

fn status_of(error: &BollardError) -> Option<u16> {
    match error {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}
