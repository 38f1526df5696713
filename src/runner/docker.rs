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

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerCreateBody, DeviceMapping, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, LogsOptions, RemoveContainerOptions,
    StopContainerOptions, WaitContainerOptions,
};
use futures_util::StreamExt;
use serde_json::Value;
use thiserror::Error;
use tokio::sync::watch;
use tracing::{Instrument, Span};

use super::config::{DockerConfig, MAX_STOP_GRACE_SECONDS};
use super::{AppExit, LaunchContext, merged_env, parse_env};

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

/// Longest line of container output logged as one event.
const MAX_LINE_BYTES: usize = 4096;

/// Largest accepted `create_options` text.
const MAX_CREATE_OPTIONS_BYTES: usize = 64 * 1024;

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

    /// Ids of every container (running or not) that carries Hati's label (and this host's,
    /// when it has an owner).
    pub async fn managed_containers(&self) -> Result<Vec<String>, DockerError> {
        let mut labels = vec![format!("{MANAGED_LABEL}=true")];
        if !self.owner.is_empty() {
            labels.push(format!("{HOST_LABEL}={}", self.owner));
        }
        let filters = HashMap::from([("label".to_owned(), labels)]);
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(DockerError::engine("list"))?;
        Ok(containers.into_iter().filter_map(|c| c.id).collect())
    }

    /// Removes every container with Hati's label and this host's (left by a crashed earlier
    /// run); returns how many were removed. Call it at start-up, before any session exists.
    pub async fn cleanup_stale(&self) -> Result<usize, DockerError> {
        let ids = self.managed_containers().await?;
        let mut removed = 0;
        for id in &ids {
            match self.docker.remove_container(id, Some(force_remove())).await {
                Ok(()) => removed += 1,
                Err(error) if status_of(&error) == Some(404) => {}
                Err(source) => {
                    return Err(DockerError::Engine {
                        operation: "remove",
                        source,
                    });
                }
            }
        }
        if removed > 0 {
            tracing::info!(removed, "removed stale hati containers");
        }
        Ok(removed)
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

/// A running session container. Dropping it stops and removes the container in the
/// background (when a tokio runtime is there to do it; else the next start-up's
/// [`DockerRunner::cleanup_stale`] does).
#[derive(Debug)]
pub struct ContainerHandle {
    docker: Docker,
    id: String,
    name: String,
    exit: watch::Receiver<Option<AppExit>>,
    grace_seconds: u64,
    span: Span,
    stopped: bool,
}

impl ContainerHandle {
    /// The container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The container name (`hati-session-<id>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A receiver that holds `Some(exit)` once the container has exited.
    pub fn exit_watch(&self) -> watch::Receiver<Option<AppExit>> {
        self.exit.clone()
    }

    /// Resolves when the container has exited.
    pub async fn wait_exit(&self) -> AppExit {
        super::wait_exit(self.exit_watch()).await
    }

    /// Stops the container (SIGTERM, SIGKILL after the grace period), removes it, and returns
    /// how it ended.
    pub async fn stop(mut self) -> Result<AppExit, DockerError> {
        self.stopped = true;
        let result = stop_and_remove(&self.docker, &self.id, self.grace_seconds)
            .instrument(self.span.clone())
            .await;
        let exit = match result {
            Ok(()) => {
                let exit = tokio::time::timeout(Duration::from_secs(5), self.wait_exit()).await;
                exit.unwrap_or_else(|_| AppExit::Lost("no exit status from the engine".into()))
            }
            Err(error) => return Err(error),
        };
        self.span
            .in_scope(|| tracing::info!(%exit, "container stopped and removed"));
        Ok(exit)
    }
}

impl Drop for ContainerHandle {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        let _entered = self.span.enter();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("container handle dropped outside a runtime; left for stale cleanup");
            return;
        };
        tracing::info!("container handle dropped; stopping and removing it");
        let (docker, id, grace) = (self.docker.clone(), self.id.clone(), self.grace_seconds);
        runtime.spawn(
            async move {
                if let Err(error) = stop_and_remove(&docker, &id, grace).await {
                    tracing::warn!(%error, "cannot stop dropped container");
                }
            }
            .instrument(self.span.clone()),
        );
    }
}

async fn stop_and_remove(docker: &Docker, id: &str, grace_seconds: u64) -> Result<(), DockerError> {
    let options = StopContainerOptions {
        t: i32::try_from(grace_seconds).ok(),
        ..Default::default()
    };
    let patient = docker
        .clone()
        .with_timeout(Duration::from_secs(REQUEST_TIMEOUT_SECONDS + grace_seconds));
    match patient.stop_container(id, Some(options)).await {
        Ok(()) => {}
        Err(error) if status_of(&error) == Some(404) => return Ok(()),
        Err(source) => {
            return Err(DockerError::Engine {
                operation: "stop",
                source,
            });
        }
    }
    match docker.remove_container(id, Some(force_remove())).await {
        Ok(()) => Ok(()),
        Err(error) if status_of(&error) == Some(404) => Ok(()),
        Err(source) => Err(DockerError::Engine {
            operation: "remove",
            source,
        }),
    }
}

fn force_remove() -> RemoveContainerOptions {
    RemoveContainerOptions {
        force: true,
        ..Default::default()
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

async fn watch_exit(docker: Docker, id: String, exit_tx: watch::Sender<Option<AppExit>>) {
    let options = WaitContainerOptions {
        condition: "not-running".into(),
    };
    let mut stream = docker.wait_container(&id, Some(options));
    let exit = match stream.next().await {
        Some(Ok(response)) => AppExit::Code(response.status_code),
        Some(Err(BollardError::DockerContainerWaitError { code, .. })) => AppExit::Code(code),
        Some(Err(error)) => AppExit::Lost(error.to_string()),
        None => AppExit::Lost("the engine closed the wait request".into()),
    };
    tracing::info!(%exit, "container exited");
    exit_tx.send_replace(Some(exit));
}

async fn forward_logs(docker: Docker, id: String) {
    let options = LogsOptions {
        follow: true,
        stdout: true,
        stderr: true,
        ..Default::default()
    };
    let mut stream = docker.logs(&id, Some(options));
    let mut stdout = LineBuffer::default();
    let mut stderr = LineBuffer::default();
    while let Some(item) = stream.next().await {
        match item {
            Ok(bollard::container::LogOutput::StdErr { message }) => {
                stderr.push(&message, |line| log_line("stderr", line));
            }
            Ok(output) => stdout.push(output.as_ref(), |line| log_line("stdout", line)),
            Err(error) => {
                tracing::debug!(%error, "container log stream ended");
                break;
            }
        }
    }
    stdout.flush(|line| log_line("stdout", line));
    stderr.flush(|line| log_line("stderr", line));
}

fn log_line(stream: &'static str, line: &str) {
    tracing::info!(target: "hati::app", stream, "{line}");
}

/// Reassembles lines from chunks of output; lines longer than [`MAX_LINE_BYTES`] are split.
#[derive(Debug, Default)]
struct LineBuffer {
    pending: Vec<u8>,
}

impl LineBuffer {
    fn push(&mut self, chunk: &[u8], mut emit: impl FnMut(&str)) {
        for &byte in chunk {
            if byte == b'\n' {
                self.flush(&mut emit);
            } else {
                self.pending.push(byte);
                if self.pending.len() >= MAX_LINE_BYTES {
                    self.flush(&mut emit);
                }
            }
        }
    }

    fn flush(&mut self, mut emit: impl FnMut(&str)) {
        if self.pending.last() == Some(&b'\r') {
            self.pending.pop();
        }
        if !self.pending.is_empty() {
            emit(&String::from_utf8_lossy(&self.pending));
        }
        self.pending.clear();
    }
}

/// Builds the ContainerCreate body for the app, `create_options` merged in.
fn create_body(
    config: &DockerConfig,
    ctx: &LaunchContext,
    owner: &str,
) -> Result<ContainerCreateBody, DockerError> {
    let cmd = match &config.cmd {
        Some(cmd) => Some(
            shell_words::split(cmd).map_err(|source| DockerError::Split {
                cmd: cmd.clone(),
                source,
            })?,
        ),
        None => None,
    };
    let app_env = parse_env(&config.env).map_err(DockerError::BadEnv)?;
    let env = merged_env(&ctx.env, &app_env)
        .into_iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();

    let runtime_dir = ctx.runtime_dir.display().to_string();
    let mut binds = vec![format!("{runtime_dir}:{runtime_dir}")];
    if let Some(socket) = ctx.pulse_socket()
        && !socket.starts_with(&ctx.runtime_dir)
    {
        let socket = socket.display().to_string();
        binds.push(format!("{socket}:{socket}"));
    }
    for mount in &config.mounts {
        binds.push(parse_mount(mount)?);
    }
    let devices = config
        .devices
        .iter()
        .map(|device| parse_device(device))
        .collect::<Result<Vec<_>, _>>()?;

    let labels = managed_labels(ctx.session_id, owner);
    let body = ContainerCreateBody {
        image: Some(config.image.clone()),
        cmd,
        env: Some(env),
        labels: Some(labels.clone()),
        attach_stdin: Some(false),
        open_stdin: Some(false),
        tty: Some(false),
        host_config: Some(HostConfig {
            binds: Some(binds),
            devices: Some(devices),
            ..Default::default()
        }),
        ..Default::default()
    };
    let Some(options) = &config.create_options else {
        return Ok(body);
    };
    let mut merged = merge_create_options(body, options)?;
    // The labels are how Hati finds its containers again; create_options cannot remove them.
    merged
        .labels
        .get_or_insert_with(HashMap::new)
        .extend(labels);
    Ok(merged)
}

fn managed_labels(session_id: u32, owner: &str) -> HashMap<String, String> {
    let mut labels = HashMap::from([
        (MANAGED_LABEL.to_owned(), "true".to_owned()),
        (SESSION_LABEL.to_owned(), session_id.to_string()),
    ]);
    if !owner.is_empty() {
        labels.insert(HOST_LABEL.to_owned(), owner.to_owned());
    }
    labels
}

/// `src:dst` or `src:dst:ro|rw`, both paths non-empty and `dst` absolute.
fn parse_mount(entry: &str) -> Result<String, DockerError> {
    let bad = || DockerError::BadMount(entry.to_owned());
    let parts: Vec<&str> = entry.split(':').collect();
    match parts.as_slice() {
        [src, dst] | [src, dst, "ro" | "rw"] if !src.is_empty() && dst.starts_with('/') => {
            Ok(entry.to_owned())
        }
        _ => Err(bad()),
    }
}

/// `/dev/x`, `/dev/x:/dev/y` or `/dev/x:/dev/y:perms` (perms from `rwm`).
fn parse_device(entry: &str) -> Result<DeviceMapping, DockerError> {
    let bad = || DockerError::BadDevice(entry.to_owned());
    let parts: Vec<&str> = entry.split(':').collect();
    let (host, container, perms) = match parts.as_slice() {
        [host] => (*host, *host, "rwm"),
        [host, container] => (*host, *container, "rwm"),
        [host, container, perms] => (*host, *container, *perms),
        _ => return Err(bad()),
    };
    let perms_ok = !perms.is_empty() && perms.chars().all(|c| matches!(c, 'r' | 'w' | 'm'));
    if !host.starts_with('/') || !container.starts_with('/') || !perms_ok {
        return Err(bad());
    }
    Ok(DeviceMapping {
        path_on_host: Some(host.to_owned()),
        path_in_container: Some(container.to_owned()),
        cgroup_permissions: Some(perms.to_owned()),
    })
}

/// Deep-merges the JSON object `options` over `body` (objects by key, arrays concatenated,
/// anything else replaced) and rejects keys the Engine API model does not have.
fn merge_create_options(
    body: ContainerCreateBody,
    options: &str,
) -> Result<ContainerCreateBody, DockerError> {
    if options.len() > MAX_CREATE_OPTIONS_BYTES {
        return Err(DockerError::CreateOptions(format!(
            "longer than {MAX_CREATE_OPTIONS_BYTES} bytes"
        )));
    }
    let user: Value = serde_json::from_str(options)
        .map_err(|e| DockerError::CreateOptions(format!("not valid JSON: {e}")))?;
    if !user.is_object() {
        return Err(DockerError::CreateOptions("not a JSON object".into()));
    }
    let mut merged = serde_json::to_value(&body)
        .map_err(|e| DockerError::CreateOptions(format!("cannot encode the base body: {e}")))?;
    deep_merge(&mut merged, user);
    let parsed: ContainerCreateBody = serde_json::from_value(merged.clone())
        .map_err(|e| DockerError::CreateOptions(e.to_string()))?;
    let reencoded = serde_json::to_value(&parsed)
        .map_err(|e| DockerError::CreateOptions(format!("cannot encode the merged body: {e}")))?;
    let mut unknown = Vec::new();
    dropped_keys(&merged, &reencoded, "", &mut unknown);
    if !unknown.is_empty() {
        return Err(DockerError::CreateOptions(format!(
            "unknown key(s) {} (keys are the Engine API's, e.g. \"HostConfig\": {{\"IpcMode\": \"host\"}})",
            unknown.join(", ")
        )));
    }
    Ok(parsed)
}

fn deep_merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(slot) => deep_merge(slot, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (Value::Array(base), Value::Array(overlay)) => base.extend(overlay),
        (slot, overlay) => *slot = overlay,
    }
}

/// Object keys (with non-null values) present in `sent` but missing from `kept`, as dotted
/// paths. Free-form maps (labels, sysctls, …) round-trip whole, so only model keys can be lost.
fn dropped_keys(sent: &Value, kept: &Value, path: &str, out: &mut Vec<String>) {
    let (Value::Object(sent), Value::Object(kept)) = (sent, kept) else {
        return;
    };
    for (key, value) in sent {
        let here = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match kept.get(key) {
            Some(kept_value) => dropped_keys(value, kept_value, &here, out),
            None if value.is_null() => {}
            None => out.push(here),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DockerConfig {
        DockerConfig {
            image: "hati-test:1".into(),
            cmd: Some("/app --flag 'two words'".into()),
            env: vec!["APP=1".into(), "PULSE_SINK=override".into()],
            mounts: vec!["/srv/games:/games:ro".into(), "/tmp/x:/x".into()],
            devices: vec!["/dev/dri/renderD128".into(), "/dev/a:/dev/b:r".into()],
            create_options: None,
            stop_grace_seconds: 5,
        }
    }

    fn ctx() -> LaunchContext {
        LaunchContext {
            session_id: 7,
            env: vec![
                ("WAYLAND_DISPLAY".into(), "wayland-1".into()),
                ("PULSE_SERVER".into(), "unix:/run/hati/pulse/native".into()),
                ("PULSE_SINK".into(), "hati-7".into()),
            ],
            runtime_dir: "/run/hati/7".into(),
        }
    }

    #[test]
    fn body_has_everything() {
        let body = create_body(&config(), &ctx(), "hostid").unwrap();
        assert_eq!(body.image.as_deref(), Some("hati-test:1"));
        assert_eq!(body.cmd.unwrap(), ["/app", "--flag", "two words"]);
        let env = body.env.unwrap();
        assert!(env.contains(&"WAYLAND_DISPLAY=wayland-1".to_owned()));
        assert!(env.contains(&"PULSE_SINK=override".to_owned()));
        assert!(!env.contains(&"PULSE_SINK=hati-7".to_owned()));
        let labels = body.labels.unwrap();
        assert_eq!(labels[MANAGED_LABEL], "true");
        assert_eq!(labels[SESSION_LABEL], "7");
        assert_eq!(labels[HOST_LABEL], "hostid");
        let host = body.host_config.unwrap();
        assert_eq!(
            host.binds.unwrap(),
            [
                "/run/hati/7:/run/hati/7",
                "/run/hati/pulse/native:/run/hati/pulse/native",
                "/srv/games:/games:ro",
                "/tmp/x:/x"
            ]
        );
        let devices = host.devices.unwrap();
        assert_eq!(
            devices[0].path_in_container.as_deref(),
            Some("/dev/dri/renderD128")
        );
        assert_eq!(devices[1].cgroup_permissions.as_deref(), Some("r"));
    }

    #[test]
    fn bad_entries_are_named() {
        for (mounts, devices) in [
            (vec!["nocolon".to_owned()], vec![]),
            (vec!["/a:relative".to_owned()], vec![]),
            (vec!["/a:/b:rx".to_owned()], vec![]),
            (vec![], vec!["dev/x".to_owned()]),
            (vec![], vec!["/dev/x:/dev/y:q".to_owned()]),
        ] {
            let config = DockerConfig {
                mounts,
                devices,
                ..config()
            };
            let error = create_body(&config, &ctx(), "").unwrap_err();
            assert!(
                matches!(error, DockerError::BadMount(_) | DockerError::BadDevice(_)),
                "{error}"
            );
        }
    }

    #[test]
    fn create_options_merge_deeply() {
        let config = DockerConfig {
            create_options: Some(
                r#"{"Env": ["EXTRA=1"], "User": "1000:1000",
                    "HostConfig": {"IpcMode": "host", "Binds": ["/u:/u"], "CapAdd": ["SYS_NICE"]},
                    "Labels": {"mine": "yes", "hati.managed": "false"}}"#
                    .into(),
            ),
            ..config()
        };
        let body = create_body(&config, &ctx(), "").unwrap();
        assert_eq!(body.user.as_deref(), Some("1000:1000"));
        assert_eq!(body.env.unwrap().last().unwrap(), "EXTRA=1");
        let host = body.host_config.unwrap();
        assert_eq!(host.ipc_mode.as_deref(), Some("host"));
        assert_eq!(host.binds.unwrap().last().unwrap(), "/u:/u");
        assert_eq!(host.cap_add.unwrap(), ["SYS_NICE"]);
        let labels = body.labels.unwrap();
        assert_eq!(labels["mine"], "yes");
        assert_eq!(labels[MANAGED_LABEL], "true");
    }

    #[test]
    fn create_options_errors() {
        for (options, expected) in [
            ("[1]", "not a JSON object"),
            ("{", "not valid JSON"),
            (r#"{"HostConfig": {"IpcMod": "host"}}"#, "HostConfig.IpcMod"),
            (r#"{"hostconfig": {}}"#, "hostconfig"),
            (r#"{"User": 5}"#, "invalid type"),
        ] {
            let config = DockerConfig {
                create_options: Some(options.into()),
                ..config()
            };
            let error = create_body(&config, &ctx(), "").unwrap_err().to_string();
            assert!(error.contains(expected), "{options}: {error}");
        }
    }

    #[test]
    fn line_buffer_reassembles() {
        let mut lines = Vec::new();
        let mut buffer = LineBuffer::default();
        buffer.push(b"par", |l| lines.push(l.to_owned()));
        buffer.push(b"tial\r\nnext\nla", |l| lines.push(l.to_owned()));
        buffer.flush(|l| lines.push(l.to_owned()));
        assert_eq!(lines, ["partial", "next", "la"]);
    }
}
