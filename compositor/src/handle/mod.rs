//! The host's side of a compositor: how to configure it, its errors, the [`CompositorHandle`]
//! the host keeps (stopping the compositor when the last clone goes) and the [`InputSender`].
//!
//! Starting the compositor thread, its event loop and listening socket lives in `start`,
//! XWayland in `xwayland`, the commands that cross from the handle to the compositor thread
//! in `command`, and sharing frames between several consumers in `consumer`.

mod command;
mod consumer;
pub mod delays;
mod start;
mod xwayland;

use std::{
    collections::HashMap,
    ffi::OsString,
    io,
    path::{Path, PathBuf},
    sync::{Arc, LazyLock, Mutex, Weak, mpsc},
    thread::JoinHandle,
};

use smithay::reexports::calloop::channel::Sender;
use tracing::warn;

use crate::{input::InputEvent, render::RenderError, state::StateError};
use command::Command;
pub use consumer::FrameConsumer;
pub(crate) use consumer::LatestFrame;
pub use start::Compositor;

/// Compositors running in this process, by socket name, so that a `waylanddisplaysrc` given a
/// `wayland-display` name can attach to one.
static REGISTRY: LazyLock<Mutex<HashMap<String, Weak<Inner>>>> = LazyLock::new(Default::default);

/// How to start a compositor.
#[derive(Debug, Clone)]
pub struct CompositorConfig {
    /// Output width in pixels.
    pub width: u32,
    /// Output height in pixels.
    pub height: u32,
    /// Frame rate: frame callbacks are sent at this pace.
    pub fps: u32,
    /// Directory that receives the Wayland socket (an `XDG_RUNTIME_DIR`); must exist.
    pub runtime_dir: PathBuf,
    /// Start XWayland when the `Xwayland` binary is on the `PATH`.
    pub xwayland: bool,
    /// Called first on the compositor thread, e.g. to raise its scheduling priority: the thread
    /// applies every input event, so whatever else runs on the machine delays input by as long
    /// as it keeps this thread waiting for a CPU.
    pub on_thread_start: Option<fn()>,
}

impl Default for CompositorConfig {
    fn default() -> Self {
        Self {
            width: 1920,
            height: 1080,
            fps: 60,
            runtime_dir: std::env::var_os("XDG_RUNTIME_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir),
            xwayland: true,
            on_thread_start: None,
        }
    }
}

/// Errors starting or talking to a compositor.
#[derive(Debug, thiserror::Error)]
pub enum CompositorError {
    /// The configuration is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
    /// The runtime directory does not exist or is not a directory.
    #[error("runtime directory {0:?} is not a directory")]
    RuntimeDir(PathBuf),
    /// Binding the Wayland socket failed.
    #[error("cannot bind the Wayland socket: {0}")]
    Bind(String),
    /// The event loop or display could not be created.
    #[error("cannot create the event loop: {0}")]
    EventLoop(String),
    /// The compositor state could not be created.
    #[error(transparent)]
    State(#[from] StateError),
    /// The compositor thread could not be spawned.
    #[error("cannot spawn the compositor thread: {0}")]
    Spawn(#[source] io::Error),
    /// The compositor thread did not come up in time.
    #[error("the compositor thread did not start in time")]
    StartTimeout,
    /// The compositor has stopped.
    #[error("the compositor has stopped")]
    Stopped,
    /// Rendering failed.
    #[error(transparent)]
    Render(#[from] RenderError),
}

/// Result of [`FrameConsumer::render`] and [`CompositorHandle::render`].
#[derive(Debug)]
pub enum FrameOutcome {
    /// The frame was drawn into the buffer, which is handed back.
    Rendered(gst::Buffer),
    /// Another consumer received a newer frame than this one has: here it is, by reference
    /// (not writable; making it writable to set timestamps copies the buffer, not the pixels).
    /// The buffer given was released. Only [`FrameConsumer::render`] answers this.
    Shared(gst::Buffer),
    /// The requester has the newest frame already; the buffer is handed back untouched.
    Unchanged(gst::Buffer),
}

/// Counts of what a compositor currently serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompositorStats {
    /// Connected Wayland clients (XWayland counts as one).
    pub clients: usize,
    /// Mapped windows (toplevels and X11 windows).
    pub windows: usize,
}

/// A running compositor. Cloning shares it; it stops when [`CompositorHandle::stop`] is called
/// or the last clone is dropped, removing its socket and lock files.
#[derive(Debug, Clone)]
pub struct CompositorHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: CompositorConfig,
    socket_name: String,
    socket_path: PathBuf,
    x_display: Option<String>,
    sender: Sender<Command>,
    thread: Mutex<Option<JoinHandle<()>>>,
    input_delays: Arc<delays::InputDelays>,
}

impl Inner {
    fn stop(&self) {
        let thread = self.thread.lock().unwrap().take();
        if let Some(thread) = thread {
            // The thread may already be gone; then the send fails and join returns at once.
            let _ = self.sender.send(Command::Stop);
            if thread.join().is_err() {
                warn!("compositor thread panicked");
            }
            REGISTRY.lock().unwrap().remove(&self.socket_name);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop();
    }
}

impl CompositorHandle {
    /// Finds a compositor of this process by its socket name.
    pub fn by_socket_name(name: &str) -> Option<CompositorHandle> {
        let inner = REGISTRY.lock().unwrap().get(name).and_then(Weak::upgrade)?;
        Some(CompositorHandle { inner })
    }

    /// The configuration it was started with.
    pub fn config(&self) -> &CompositorConfig {
        &self.inner.config
    }

    /// The socket name, the value of `WAYLAND_DISPLAY` for clients (relative to the runtime
    /// directory, which is their `XDG_RUNTIME_DIR`).
    pub fn wayland_display(&self) -> &str {
        &self.inner.socket_name
    }

    /// The full path of the Wayland socket.
    pub fn socket_path(&self) -> &Path {
        &self.inner.socket_path
    }

    /// The value of `DISPLAY` for X11 clients (`":N"`), when XWayland runs.
    pub fn x11_display(&self) -> Option<&str> {
        self.inner.x_display.as_deref()
    }

    /// Environment variables a client needs: `XDG_RUNTIME_DIR`, `WAYLAND_DISPLAY` and, with
    /// XWayland, `DISPLAY`.
    pub fn client_env(&self) -> Vec<(String, OsString)> {
        let mut env = vec![
            (
                "XDG_RUNTIME_DIR".to_owned(),
                self.inner.config.runtime_dir.clone().into_os_string(),
            ),
            (
                "WAYLAND_DISPLAY".to_owned(),
                OsString::from(&self.inner.socket_name),
            ),
        ];
        if let Some(display) = &self.inner.x_display {
            env.push(("DISPLAY".to_owned(), OsString::from(display)));
        }
        env
    }

    /// A cheap sender for input events, usable from any thread.
    pub fn input_sender(&self) -> InputSender {
        InputSender {
            sender: self.inner.sender.clone(),
        }
    }

    /// Injects one input event.
    pub fn send_input(&self, event: InputEvent) -> Result<(), CompositorError> {
        self.inner
            .sender
            .send(Command::Input(event, std::time::Instant::now()))
            .map_err(|_| CompositorError::Stopped)
    }

    /// How long injected input took from its arrival (the time given to
    /// [`InputSender::send_received`], else its hand-over) until it was applied, as cumulative
    /// counts per bucket (see [`delays::bucket_upper_us`]).
    pub fn input_delays(&self) -> [u64; delays::BUCKETS] {
        self.inner.input_delays.snapshot()
    }

    /// A new consumer of this compositor's frames (one per stream): each gets every change,
    /// rendered once for all of them (see [`FrameConsumer::render`]).
    pub fn frame_consumer(&self) -> FrameConsumer {
        FrameConsumer::new(self.clone())
    }

    /// Renders the output into `buffer` (BGRx, `width * 4` stride unless the buffer carries a
    /// `VideoMeta`) if anything changed since anyone's previous request or `force` is set;
    /// otherwise hands the buffer back untouched. Blocks until the compositor thread has done
    /// it. For a lone caller; a stream sharing the compositor with others uses a
    /// [`FrameConsumer`], which also gets the changes that others rendered.
    pub fn render(
        &self,
        buffer: gst::Buffer,
        force: bool,
    ) -> Result<FrameOutcome, CompositorError> {
        consumer::request(self, buffer, force, consumer::ALWAYS_NEWEST).map(|(outcome, _)| outcome)
    }

    /// Counts clients and windows.
    pub fn stats(&self) -> Result<CompositorStats, CompositorError> {
        let (reply, rx) = mpsc::sync_channel(1);
        self.inner
            .sender
            .send(Command::Stats(reply))
            .map_err(|_| CompositorError::Stopped)?;
        rx.recv().map_err(|_| CompositorError::Stopped)
    }

    /// Stops the compositor thread and removes its socket and lock files. Other clones of this
    /// handle see [`CompositorError::Stopped`] afterwards.
    pub fn stop(&self) {
        self.inner.stop();
    }
}

/// Sends input events to a compositor; `Clone` and `Send`.
#[derive(Debug, Clone)]
pub struct InputSender {
    sender: Sender<Command>,
}

impl InputSender {
    /// Injects one input event.
    pub fn send(&self, event: InputEvent) -> Result<(), CompositorError> {
        self.send_received(event, std::time::Instant::now())
    }

    /// Injects one input event that reached the host at `received`: the compositor's input
    /// delay figures count from then (see [`CompositorHandle::input_delays`]).
    pub fn send_received(
        &self,
        event: InputEvent,
        received: std::time::Instant,
    ) -> Result<(), CompositorError> {
        self.sender
            .send(Command::Input(event, received))
            .map_err(|_| CompositorError::Stopped)
    }
}
