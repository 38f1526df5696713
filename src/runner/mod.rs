//! App runners: start what `[apps.runner]` names inside a session, report when it exits, and
//! stop it when the session ends.
//!
//! The session manager builds a [`LaunchContext`] once the session's compositor and audio sink
//! exist, calls [`Launcher::launch`], and keeps the returned [`RunningApp`]. It waits on
//! [`RunningApp::wait_exit`] (an app that quits ends its session) and calls
//! [`RunningApp::stop`] when the session ends for any other reason; dropping a `RunningApp`
//! also stops it, without waiting. At start-up the host calls [`Launcher::cleanup_stale`] so
//! containers left by a crashed run go away.
//!
//! * [`process`]: a host process in its own process group; SIGTERM, then SIGKILL after a grace
//!   period, to the whole group.
//! * [`docker`]: one container per session through the Engine API (bollard), labelled
//!   `hati.managed=true` and `hati.session=<id>`.

pub mod config;
pub mod docker;
pub mod process;

use std::path::PathBuf;

use thiserror::Error;
use tokio::sync::{OnceCell, watch};

pub use self::config::{DockerConfig, ProcessConfig, RunnerConfig};
pub use self::docker::{ContainerHandle, DockerError, DockerRunner};
pub use self::process::{ProcessError, ProcessHandle};

/// What every runner needs to know about the session it starts an app for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchContext {
    /// The session's id; it names the app's tracing span and its container.
    pub session_id: u32,
    /// The session's environment for the app: `WAYLAND_DISPLAY`, `XDG_RUNTIME_DIR`,
    /// `PULSE_SERVER`, `PULSE_SINK`, … The app's own `env` entries are applied after these.
    ///
    /// A `PULSE_SERVER` of the form `unix:/path` (or `/path`) is bind-mounted into containers
    /// at the same path.
    pub env: Vec<(String, String)>,
    /// The session's runtime directory (the compositor's socket lives here). Containers get it
    /// bind-mounted at the same path.
    pub runtime_dir: PathBuf,
}

impl LaunchContext {
    /// The value of one session variable.
    pub fn var(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The PulseAudio socket named by `PULSE_SERVER`, when it is a local unix socket.
    pub fn pulse_socket(&self) -> Option<PathBuf> {
        let server = self.var("PULSE_SERVER")?;
        let path = server.strip_prefix("unix:").unwrap_or(server);
        path.starts_with('/').then(|| PathBuf::from(path))
    }
}

/// How an app ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppExit {
    /// It exited with this status code.
    Code(i64),
    /// It was killed by this signal.
    Signal(i32),
    /// The runner lost track of it (e.g. the Docker engine went away); the text says why.
    Lost(String),
}

impl AppExit {
    /// Whether the app ended with status 0.
    pub fn success(&self) -> bool {
        *self == AppExit::Code(0)
    }
}

impl std::fmt::Display for AppExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppExit::Code(code) => write!(f, "exit code {code}"),
            AppExit::Signal(signal) => write!(f, "killed by signal {signal}"),
            AppExit::Lost(why) => write!(f, "lost: {why}"),
        }
    }
}

/// Why an app could not be started or stopped.
#[derive(Debug, Error)]
pub enum RunnerError {
    /// The process runner failed.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// The Docker runner failed.
    #[error(transparent)]
    Docker(#[from] DockerError),
}

/// Starts apps; holds the Docker connection, made on first use.
#[derive(Debug, Default)]
pub struct Launcher {
    docker: OnceCell<DockerRunner>,
    /// This host's unique ID, on its containers (empty: none).
    owner: String,
}

impl Launcher {
    /// A launcher that has not talked to Docker yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A launcher whose containers carry this host's ID, and whose clean-up removes only those.
    pub fn owned_by(owner: &str) -> Self {
        Self {
            docker: OnceCell::new(),
            owner: owner.to_owned(),
        }
    }

    /// This host's ID as the launcher labels with it (empty: none).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Starts the app `config` names for the session `ctx` describes.
    pub async fn launch(
        &self,
        config: &RunnerConfig,
        ctx: &LaunchContext,
    ) -> Result<RunningApp, RunnerError> {
        match config {
            RunnerConfig::Process(process) => {
                Ok(RunningApp::Process(process::start(process, ctx)?))
            }
            RunnerConfig::Docker(docker) => {
                let runner = self.docker().await?;
                Ok(RunningApp::Docker(runner.start(docker, ctx).await?))
            }
        }
    }

    /// Removes containers a crashed earlier run left behind; returns how many. An unreachable
    /// engine is not an error here (a host without Docker apps need not run one): it counts 0.
    pub async fn cleanup_stale(&self) -> Result<usize, RunnerError> {
        match self.docker().await {
            Ok(runner) => Ok(runner.cleanup_stale().await?),
            Err(DockerError::Connect { reason }) => {
                tracing::debug!(%reason, "docker not reachable; no stale containers to remove");
                Ok(0)
            }
            Err(error) => Err(error.into()),
        }
    }

    async fn docker(&self) -> Result<&DockerRunner, DockerError> {
        self.docker
            .get_or_try_init(|| async { Ok(DockerRunner::connect().await?.owned_by(&self.owner)) })
            .await
    }
}

/// A running app, whatever runs it.
#[derive(Debug)]
pub enum RunningApp {
    /// A host process group.
    Process(ProcessHandle),
    /// A container.
    Docker(ContainerHandle),
}

impl RunningApp {
    /// Resolves when the app has exited (at once if it already has). May be called any number
    /// of times, from several tasks.
    pub async fn wait_exit(&self) -> AppExit {
        wait_exit(self.exit_watch()).await
    }

    /// A receiver that holds `Some(exit)` once the app has exited, for `select!` loops.
    pub fn exit_watch(&self) -> watch::Receiver<Option<AppExit>> {
        match self {
            RunningApp::Process(handle) => handle.exit_watch(),
            RunningApp::Docker(handle) => handle.exit_watch(),
        }
    }

    /// Stops the app (gracefully, then forcefully) and releases what it held. Returns how it
    /// ended.
    pub async fn stop(self) -> Result<AppExit, RunnerError> {
        match self {
            RunningApp::Process(handle) => Ok(handle.stop().await?),
            RunningApp::Docker(handle) => Ok(handle.stop().await?),
        }
    }
}

/// Waits on an exit watch until it holds a value.
pub(crate) async fn wait_exit(mut exit: watch::Receiver<Option<AppExit>>) -> AppExit {
    match exit.wait_for(Option::is_some).await {
        Ok(value) => value
            .clone()
            .unwrap_or_else(|| AppExit::Lost("no exit status".into())),
        Err(_) => AppExit::Lost("runner task ended without an exit status".into()),
    }
}

/// An app's `env` entry that is not `KEY=value` (the entry itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadEnvEntry(pub String);

/// Splits `KEY=value` entries from the config; an entry without `=` or with an empty key is
/// rejected with the entry itself.
pub(crate) fn parse_env(entries: &[String]) -> Result<Vec<(String, String)>, BadEnvEntry> {
    entries
        .iter()
        .map(|entry| match entry.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
            _ => Err(BadEnvEntry(entry.clone())),
        })
        .collect()
}

/// The session's variables followed by the app's, as `KEY=value` strings; a later duplicate
/// wins, so the app's entries replace the session's.
pub(crate) fn merged_env(
    session: &[(String, String)],
    app: &[(String, String)],
) -> Vec<(String, String)> {
    let mut merged: Vec<(String, String)> = Vec::with_capacity(session.len() + app.len());
    for (key, value) in session.iter().chain(app) {
        match merged.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.clone(),
            None => merged.push((key.clone(), value.clone())),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(pulse: &str) -> LaunchContext {
        LaunchContext {
            session_id: 1,
            env: vec![("PULSE_SERVER".into(), pulse.into())],
            runtime_dir: "/run/hati/1".into(),
        }
    }

    #[test]
    fn pulse_socket_from_server_string() {
        assert_eq!(
            ctx("unix:/run/pa/native").pulse_socket(),
            Some("/run/pa/native".into())
        );
        assert_eq!(
            ctx("/run/pa/native").pulse_socket(),
            Some("/run/pa/native".into())
        );
        assert_eq!(ctx("tcp:127.0.0.1:4713").pulse_socket(), None);
    }

    #[test]
    fn env_entries_parse_and_app_wins() {
        let app = parse_env(&["A=1".into(), "B=x=y".into(), "EMPTY=".into()]).unwrap();
        assert_eq!(app[1], ("B".into(), "x=y".into()));
        assert_eq!(
            parse_env(&["NOEQUALS".into()]),
            Err(BadEnvEntry("NOEQUALS".into()))
        );
        assert_eq!(parse_env(&["=v".into()]), Err(BadEnvEntry("=v".into())));
        let session = vec![("A".into(), "0".into()), ("S".into(), "s".into())];
        let merged = merged_env(&session, &app);
        assert_eq!(
            merged,
            [("A", "1"), ("S", "s"), ("B", "x=y"), ("EMPTY", "")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn exit_display() {
        assert_eq!(AppExit::Code(3).to_string(), "exit code 3");
        assert!(AppExit::Code(0).success());
        assert!(!AppExit::Signal(9).success());
    }
}
