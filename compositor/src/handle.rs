//! Starting and stopping a compositor: its thread, event loop and listening socket, the
//! [`CompositorHandle`] the host keeps, and the commands that cross from the handle to the
//! compositor thread.

use std::{
    collections::HashMap,
    ffi::OsString,
    io,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        Arc, LazyLock, Mutex, Weak,
        atomic::{AtomicU32, AtomicUsize, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use smithay::{
    reexports::{
        calloop::{
            EventLoop, Interest, Mode, PostAction,
            channel::{self, Channel, Sender},
            generic::Generic,
            timer::{TimeoutAction, Timer},
        },
        wayland_server::{BindError, Display, ListeningSocket},
    },
    xwayland::{X11Wm, XWayland, XWaylandEvent},
};
use tracing::{debug, info, warn};

use crate::{
    input::InputEvent,
    render::RenderError,
    state::{State, StateError, new_client_data},
};

/// Longest time [`Compositor::start`] waits for the compositor thread to come up.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Highest accepted output dimension.
const MAX_DIMENSION: u32 = 8192;
/// Highest accepted frame rate.
const MAX_FPS: u32 = 480;
/// Number of socket names tried before giving up.
const MAX_SOCKET_TRIES: u32 = 1000;

/// Counter making socket names unique inside this process.
static SOCKET_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Compositors running in this process, by socket name, so that a `waylanddisplaysrc` given a
/// `wayland-display` name can attach to one.
static REGISTRY: LazyLock<Mutex<HashMap<String, Weak<Inner>>>> = LazyLock::new(Default::default);

/// How to start a compositor.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Result of [`CompositorHandle::render`].
#[derive(Debug)]
pub enum FrameOutcome {
    /// The frame was drawn into the buffer, which is handed back.
    Rendered(gst::Buffer),
    /// Nothing changed since the previous call; the buffer is handed back untouched.
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

/// A request from a handle to the compositor thread.
pub(crate) enum Command {
    Input(InputEvent),
    Render {
        buffer: gst::Buffer,
        force: bool,
        reply: mpsc::SyncSender<Result<FrameOutcome, CompositorError>>,
    },
    Stats(mpsc::SyncSender<CompositorStats>),
    Stop,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Input(event) => f.debug_tuple("Input").field(event).finish(),
            Self::Render { force, .. } => f.debug_struct("Render").field("force", force).finish(),
            Self::Stats(_) => f.write_str("Stats"),
            Self::Stop => f.write_str("Stop"),
        }
    }
}

/// Entry point: starts compositors.
#[derive(Debug)]
pub struct Compositor;

impl Compositor {
    /// Starts a compositor on its own thread and returns once its socket accepts clients.
    pub fn start(config: CompositorConfig) -> Result<CompositorHandle, CompositorError> {
        validate(&config)?;
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let span = tracing::Span::current();
        let thread_config = config.clone();
        let thread = std::thread::Builder::new()
            .name("hati-compositor".into())
            .spawn(move || {
                let _entered = span.entered();
                run(thread_config, ready_tx);
            })
            .map_err(CompositorError::Spawn)?;
        let ready = match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok(ready) => ready?,
            Err(_) => return Err(CompositorError::StartTimeout),
        };
        let inner = Arc::new(Inner {
            config,
            socket_name: ready.socket_name.clone(),
            socket_path: ready.socket_path,
            x_display: ready.x_display,
            sender: ready.sender,
            thread: Mutex::new(Some(thread)),
        });
        REGISTRY
            .lock()
            .unwrap()
            .insert(ready.socket_name, Arc::downgrade(&inner));
        Ok(CompositorHandle { inner })
    }
}

fn validate(config: &CompositorConfig) -> Result<(), CompositorError> {
    if !(1..=MAX_DIMENSION).contains(&config.width) || !(1..=MAX_DIMENSION).contains(&config.height)
    {
        return Err(CompositorError::InvalidConfig(
            "width and height must be 1..=8192",
        ));
    }
    if !(1..=MAX_FPS).contains(&config.fps) {
        return Err(CompositorError::InvalidConfig("fps must be 1..=480"));
    }
    if !config.runtime_dir.is_dir() {
        return Err(CompositorError::RuntimeDir(config.runtime_dir.clone()));
    }
    Ok(())
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
            .send(Command::Input(event))
            .map_err(|_| CompositorError::Stopped)
    }

    /// Renders the output into `buffer` (BGRx, `width * 4` stride unless the buffer carries a
    /// `VideoMeta`) if anything changed since the previous call or `force` is set; otherwise
    /// hands the buffer back untouched. Blocks until the compositor thread has done it.
    pub fn render(
        &self,
        buffer: gst::Buffer,
        force: bool,
    ) -> Result<FrameOutcome, CompositorError> {
        let (reply, rx) = mpsc::sync_channel(1);
        self.inner
            .sender
            .send(Command::Render {
                buffer,
                force,
                reply,
            })
            .map_err(|_| CompositorError::Stopped)?;
        rx.recv().map_err(|_| CompositorError::Stopped)?
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
        self.sender
            .send(Command::Input(event))
            .map_err(|_| CompositorError::Stopped)
    }
}

/// What the thread reports once it is listening.
struct Ready {
    socket_name: String,
    socket_path: PathBuf,
    x_display: Option<String>,
    sender: Sender<Command>,
}

/// The compositor thread's body.
fn run(config: CompositorConfig, ready: mpsc::SyncSender<Result<Ready, CompositorError>>) {
    let setup = setup(&config);
    let (mut event_loop, mut state, ready_msg) = match setup {
        Ok(parts) => parts,
        Err(err) => {
            let _ = ready.send(Err(err));
            return;
        }
    };
    info!(
        socket = %ready_msg.socket_name,
        x_display = ready_msg.x_display.as_deref().unwrap_or("none"),
        width = config.width,
        height = config.height,
        fps = config.fps,
        "compositor started"
    );
    // If `start` gave up waiting, nobody will use this compositor: shut it down at once.
    if ready.send(Ok(ready_msg)).is_ok() {
        let result = event_loop.run(None, &mut state, |state| {
            state.refresh();
            if let Err(err) = state.display_handle.flush_clients() {
                debug!(?err, "flushing clients failed");
            }
        });
        if let Err(err) = result {
            warn!(?err, "compositor event loop failed");
        }
    }
    shut_down_xwayland(&mut event_loop, &mut state);
    drop(state);
    drop(event_loop);
    info!("compositor stopped");
}

/// Longest wait for the X11 window manager to see XWayland go.
const XWAYLAND_SHUTDOWN: Duration = Duration::from_secs(3);

/// Kills XWayland and lets the X11 window manager notice. Its event source holds a handle to
/// the event loop, a reference cycle that only ends when its X11 connection closes; without
/// this the loop, its sources and the X11 socket files would outlive the compositor.
fn shut_down_xwayland(event_loop: &mut EventLoop<'static, State>, state: &mut State) {
    let Some(token) = state.xwayland_token.take() else {
        return;
    };
    // Dropping the source kills XWayland's Wayland client and removes the X11 socket and lock.
    state.loop_handle.remove(token);
    if let Err(err) = state.display_handle.flush_clients() {
        debug!(?err, "flushing clients failed");
    }
    let deadline = Instant::now() + XWAYLAND_SHUTDOWN;
    while state.xwm.is_some() && Instant::now() < deadline {
        if let Err(err) = event_loop.dispatch(Some(Duration::from_millis(20)), state) {
            warn!(?err, "dispatching during shutdown failed");
            break;
        }
    }
    if state.xwm.is_some() {
        warn!("the X11 window manager did not stop in time");
    }
}

type Setup = (EventLoop<'static, State>, State, Ready);

fn setup(config: &CompositorConfig) -> Result<Setup, CompositorError> {
    let event_loop: EventLoop<'static, State> =
        EventLoop::try_new().map_err(|e| CompositorError::EventLoop(e.to_string()))?;
    let display: Display<State> =
        Display::new().map_err(|e| CompositorError::EventLoop(e.to_string()))?;
    let dh = display.handle();
    let size = (
        i32::try_from(config.width).map_err(|_| CompositorError::InvalidConfig("width"))?,
        i32::try_from(config.height).map_err(|_| CompositorError::InvalidConfig("height"))?,
    );
    let mut state = State::new(
        dh,
        event_loop.handle(),
        event_loop.get_signal(),
        size,
        config.fps,
    )?;
    let handle = event_loop.handle();

    // The display: dispatch client requests when their sockets are readable.
    handle
        .insert_source(
            Generic::new(display, Interest::READ, Mode::Level),
            |_, display, state| {
                // SAFETY: the display is not dropped while the source is in the loop.
                let display = unsafe { display.get_mut() };
                if let Err(err) = display.dispatch_clients(state) {
                    warn!(?err, "dispatching clients failed");
                }
                Ok(PostAction::Continue)
            },
        )
        .map_err(|e| CompositorError::EventLoop(e.to_string()))?;

    // The listening socket.
    let (socket, socket_name) = bind_socket(&config.runtime_dir)?;
    let socket_path = config.runtime_dir.join(&socket_name);
    let clients = Arc::new(AtomicUsize::new(0));
    state.client_count = clients.clone();
    handle
        .insert_source(
            Generic::new(socket, Interest::READ, Mode::Level),
            move |_, socket, state| {
                loop {
                    match socket.accept() {
                        Ok(Some(stream)) => {
                            let data = new_client_data(clients.clone());
                            if let Err(err) = state.display_handle.insert_client(stream, data) {
                                warn!(?err, "cannot add a client");
                            }
                        }
                        Ok(None) => break,
                        Err(err) => {
                            warn!(?err, "accepting a client failed");
                            break;
                        }
                    }
                }
                Ok(PostAction::Continue)
            },
        )
        .map_err(|e| CompositorError::EventLoop(e.to_string()))?;

    // Commands from handles.
    let (sender, channel): (Sender<Command>, Channel<Command>) = channel::channel();
    handle
        .insert_source(channel, |event, _, state| match event {
            channel::Event::Msg(command) => state.handle_command(command),
            channel::Event::Closed => state.loop_signal.stop(),
        })
        .map_err(|e| CompositorError::EventLoop(e.to_string()))?;

    // Frame callbacks at the stream rate.
    let interval = Duration::from_secs(1) / config.fps;
    let mut next = Instant::now() + interval;
    handle
        .insert_source(Timer::from_deadline(next), move |_, _, state| {
            state.send_frames();
            next += interval;
            let now = Instant::now();
            if next < now {
                next = now + interval;
            }
            TimeoutAction::ToInstant(next)
        })
        .map_err(|e| CompositorError::EventLoop(e.to_string()))?;

    let x_display = if config.xwayland {
        start_xwayland(&mut state)
    } else {
        None
    };

    Ok((
        event_loop,
        state,
        Ready {
            socket_name,
            socket_path,
            x_display,
            sender,
        },
    ))
}

/// Binds `hati-wayland-N` with the lowest free `N` this process has not used yet.
fn bind_socket(runtime_dir: &Path) -> Result<(ListeningSocket, String), CompositorError> {
    for _ in 0..MAX_SOCKET_TRIES {
        let n = SOCKET_COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("hati-wayland-{n}");
        match ListeningSocket::bind_absolute(runtime_dir.join(&name)) {
            Ok(socket) => return Ok((socket, name)),
            Err(BindError::AlreadyInUse) => continue,
            Err(err) => return Err(CompositorError::Bind(err.to_string())),
        }
    }
    Err(CompositorError::Bind("no free socket name".into()))
}

/// Spawns XWayland if the binary exists; returns the `DISPLAY` value.
fn start_xwayland(state: &mut State) -> Option<String> {
    if !binary_on_path("Xwayland") {
        info!("Xwayland not found, X11 clients unsupported");
        return None;
    }
    // Smithay binds its X11 sockets in /tmp/.X11-unix but does not create the directory.
    let x11_dir = Path::new("/tmp/.X11-unix");
    if !x11_dir.is_dir() {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let created = std::fs::DirBuilder::new()
            .mode(0o1777)
            .create(x11_dir)
            .and_then(|()| {
                std::fs::set_permissions(x11_dir, std::fs::Permissions::from_mode(0o1777))
            });
        if let Err(err) = created {
            warn!(
                ?err,
                "cannot create /tmp/.X11-unix, X11 clients unsupported"
            );
            return None;
        }
    }
    let spawned = XWayland::spawn(
        &state.display_handle,
        None,
        std::iter::empty::<(String, String)>(),
        true,
        Stdio::null(),
        Stdio::null(),
        |_| {},
    );
    let (xwayland, client) = match spawned {
        Ok(parts) => parts,
        Err(err) => {
            warn!(?err, "cannot spawn Xwayland");
            return None;
        }
    };
    let display_number = xwayland.display_number();
    let inserted = state
        .loop_handle
        .insert_source(xwayland, move |event, _, state| match event {
            XWaylandEvent::Ready {
                x11_socket,
                display_number,
            } => match X11Wm::start_wm(state.loop_handle.clone(), x11_socket, client.clone()) {
                Ok(wm) => {
                    state.xwm = Some(wm);
                    state.xwayland_client = Some(client.clone());
                    state.xdisplay = Some(display_number);
                    info!(display_number, "XWayland ready");
                }
                Err(err) => warn!(?err, "cannot start the X11 window manager"),
            },
            XWaylandEvent::Error => warn!("XWayland exited during startup"),
        });
    match inserted {
        Ok(token) => state.xwayland_token = Some(token),
        Err(err) => {
            warn!(?err, "cannot watch Xwayland");
            return None;
        }
    }
    Some(format!(":{display_number}"))
}

fn binary_on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
}

impl State {
    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Input(event) => self.process_input(event),
            Command::Render {
                buffer,
                force,
                reply,
            } => {
                let outcome = self.render_buffer(buffer, force);
                // The requester may have given up (flushing); nothing to do then.
                let _ = reply.send(outcome);
            }
            Command::Stats(reply) => {
                let _ = reply.send(CompositorStats {
                    clients: self.client_count.load(Ordering::Relaxed),
                    windows: self.space.elements().count(),
                });
            }
            Command::Stop => self.loop_signal.stop(),
        }
    }

    fn render_buffer(
        &mut self,
        mut buffer: gst::Buffer,
        force: bool,
    ) -> Result<FrameOutcome, CompositorError> {
        let changed = self.frame_changed();
        if !changed && !force {
            return Ok(FrameOutcome::Unchanged(buffer));
        }
        let stride = buffer
            .meta::<gst_video::VideoMeta>()
            .and_then(|meta| meta.stride().first().copied())
            .and_then(|s| usize::try_from(s).ok())
            .unwrap_or_else(|| usize::try_from(self.size.0).unwrap_or(0).saturating_mul(4));
        {
            let buffer = buffer.get_mut().ok_or(RenderError::NotWritable)?;
            let mut map = buffer
                .map_writable()
                .map_err(|_| RenderError::NotWritable)?;
            self.render_into(map.as_mut_slice(), stride)?;
        }
        Ok(FrameOutcome::Rendered(buffer))
    }
}
