//! What a session owns besides its pipelines: its runtime directory, its headless Wayland
//! desktop (compositor), its PulseAudio sink and the app it runs. Created at `/launch`,
//! released when the session ends, in reverse order.

use std::path::PathBuf;
use std::sync::Arc;

use hati_compositor::{CompositorConfig, CompositorHandle};

use crate::audio::{AudioServer, SessionSink};
use crate::config::AppConfig;
use crate::runner::{AppExit, LaunchContext, Launcher, RunningApp};

/// Fallback desktop size when `/launch` carries no `mode`.
const DEFAULT_MODE: (u32, u32, u32) = (1920, 1080, 60);

/// The session's desktop, sink and app.
#[derive(Default)]
pub struct AppResources {
    /// The session's private runtime directory (the Wayland socket lives here).
    pub runtime_dir: Option<PathBuf>,
    /// The headless desktop.
    pub compositor: Option<CompositorHandle>,
    /// The audio sink the app plays into.
    pub sink: Option<SessionSink>,
    /// The running app.
    pub app: Option<RunningApp>,
}

impl std::fmt::Debug for AppResources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppResources")
            .field("runtime_dir", &self.runtime_dir)
            .field(
                "compositor",
                &self
                    .compositor
                    .as_ref()
                    .map(CompositorHandle::wayland_display),
            )
            .field("sink", &self.sink.as_ref().map(SessionSink::sink_name))
            .finish_non_exhaustive()
    }
}

/// Why a session's resources could not be started. Whatever was started is released first.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// The session's runtime directory could not be made.
    #[error("cannot create the session's runtime directory {path}: {source}")]
    RuntimeDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The session's Wayland desktop did not start.
    #[error("cannot start the session's desktop: {0}")]
    Desktop(#[from] hati_compositor::CompositorError),
    /// The session's audio sink could not be created.
    #[error("cannot create the audio sink: {0}")]
    Sink(#[from] crate::audio::AudioError),
    /// The app did not start.
    #[error("cannot start the app: {0}")]
    App(#[from] crate::runner::RunnerError),
}

impl AppResources {
    /// Starts what `app` needs for session `session_id`. On error, whatever was started is
    /// released again before returning.
    pub async fn start(
        session_id: u32,
        app: &AppConfig,
        mode: Option<(u32, u32, u32)>,
        audio: Option<&Arc<AudioServer>>,
        launcher: &Launcher,
    ) -> Result<Self, ResourceError> {
        let mut resources = Self::default();
        match resources
            .start_inner(session_id, app, mode, audio, launcher)
            .await
        {
            Ok(()) => Ok(resources),
            Err(error) => {
                resources.release().await;
                Err(error)
            }
        }
    }

    async fn start_inner(
        &mut self,
        session_id: u32,
        app: &AppConfig,
        mode: Option<(u32, u32, u32)>,
        audio: Option<&Arc<AudioServer>>,
        launcher: &Launcher,
    ) -> Result<(), ResourceError> {
        if !app.compositor && app.runner.is_none() {
            return Ok(());
        }
        let runtime_dir = session_runtime_dir(launcher.owner(), session_id)?;
        self.runtime_dir = Some(runtime_dir.clone());
        let mut env: Vec<(String, String)> =
            vec![("XDG_RUNTIME_DIR".into(), runtime_dir.display().to_string())];
        if app.compositor {
            let (width, height, fps) = mode
                .filter(|(w, h, f)| *w > 0 && *h > 0 && *f > 0)
                .unwrap_or(DEFAULT_MODE);
            let config = CompositorConfig {
                width,
                height,
                fps,
                runtime_dir: runtime_dir.clone(),
                xwayland: app.xwayland,
                on_thread_start: Some(crate::priority::raise_input_thread),
            };
            let compositor = hati_compositor::Compositor::start(config)?;
            for (key, value) in compositor.client_env() {
                if key != "XDG_RUNTIME_DIR" {
                    env.push((key, value.to_string_lossy().into_owned()));
                }
            }
            tracing::info!(display = %compositor.wayland_display(), width, height, fps, "desktop started");
            self.compositor = Some(compositor);
        }
        let Some(runner) = &app.runner else {
            return Ok(());
        };
        match audio {
            Some(server) => {
                let sink = server.create_sink(session_id, 2).await?;
                env.extend(sink.env());
                self.sink = Some(sink);
            }
            None => tracing::warn!("no PulseAudio server: the app's sound will not be streamed"),
        }
        let context = LaunchContext {
            session_id,
            env,
            runtime_dir,
        };
        let running = launcher.launch(runner, &context).await?;
        self.app = Some(running);
        Ok(())
    }

    /// A receiver that sees the app's exit, if an app runs.
    pub fn exit_watch(&self) -> Option<tokio::sync::watch::Receiver<Option<AppExit>>> {
        self.app.as_ref().map(RunningApp::exit_watch)
    }

    /// Stops the app, removes the sink, stops the desktop, removes the runtime directory.
    pub async fn release(&mut self) {
        if let Some(app) = self.app.take() {
            match app.stop().await {
                Ok(exit) => tracing::info!(?exit, "app stopped"),
                Err(error) => tracing::warn!(%error, "stopping the app failed"),
            }
        }
        if let Some(sink) = self.sink.take()
            && let Err(error) = sink.remove().await
        {
            tracing::warn!(%error, "removing the audio sink failed");
        }
        if let Some(compositor) = self.compositor.take() {
            tokio::task::spawn_blocking(move || compositor.stop())
                .await
                .ok();
        }
        if let Some(dir) = self.runtime_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The environment variable naming a directory shared with app containers at the same path
/// inside and outside a container (see docs/install.md, "Container"): session runtime
/// directories and the private PulseAudio socket go under `<it>/<owner>` when it is set.
pub const SHARED_RUNTIME_DIR_ENV: &str = "HATI_RUNTIME_DIR";

/// `$HATI_RUNTIME_DIR/<owner>` when that variable is set and not empty.
fn shared_runtime_base(owner: &str) -> Option<PathBuf> {
    let base = std::env::var_os(SHARED_RUNTIME_DIR_ENV).filter(|v| !v.is_empty())?;
    Some(PathBuf::from(base).join(owner))
}

/// Where this host's session runtime directories live: `$HATI_RUNTIME_DIR/<owner>`, else
/// `$XDG_RUNTIME_DIR/hati/<owner>` (else under the temp dir), so that two hosts of one user
/// keep theirs apart.
fn runtime_base(owner: &str) -> PathBuf {
    if let Some(shared) = shared_runtime_base(owner) {
        return shared;
    }
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("hati-{}", rustix::process::getuid().as_raw()))
        });
    let base = base.join("hati");
    if owner.is_empty() {
        base
    } else {
        base.join(owner)
    }
}

/// Where the private PulseAudio daemon keeps its socket: `$HATI_RUNTIME_DIR/<owner>/pulse`
/// when set (app containers must reach it at the same path), else `fallback` (the state
/// directory's `pulse`).
pub fn private_audio_dir(owner: &str, fallback: PathBuf) -> PathBuf {
    shared_runtime_base(owner).map_or(fallback, |base| base.join("pulse"))
}

/// Removes the session runtime directories a crashed run of this host left; returns how
/// many. Call it at start-up, before any session exists.
pub fn remove_stale_runtime_dirs(owner: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(runtime_base(owner)) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("session-"))
        .filter(|e| std::fs::remove_dir_all(e.path()).is_ok())
        .count()
}

/// `<runtime base>/session-<id>`, mode 0700.
fn session_runtime_dir(owner: &str, session_id: u32) -> Result<PathBuf, ResourceError> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = runtime_base(owner).join(format!("session-{session_id}"));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|source| ResourceError::RuntimeDir {
            path: dir.clone(),
            source,
        })?;
    Ok(dir)
}
