//! Starting a compositor: [`Compositor::start`] validates the configuration and spawns the
//! compositor thread, which sets up its event loop and listening socket, runs until stopped and
//! shuts XWayland down.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, AtomicUsize, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use smithay::reexports::{
    calloop::{
        EventLoop, Interest, Mode, PostAction,
        channel::{self, Channel, Sender},
        generic::Generic,
        timer::{TimeoutAction, Timer},
    },
    wayland_server::{BindError, Display, ListeningSocket},
};
use tracing::{debug, info, warn};

use super::{
    CompositorConfig, CompositorError, CompositorHandle, Inner, REGISTRY,
    command::Command,
    xwayland::{shut_down_xwayland, start_xwayland},
};
use crate::state::{State, new_client_data};

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
                if let Some(on_thread_start) = thread_config.on_thread_start {
                    on_thread_start();
                }
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
            input_delays: ready.input_delays,
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

/// What the thread reports once it is listening.
struct Ready {
    socket_name: String,
    socket_path: PathBuf,
    x_display: Option<String>,
    sender: Sender<Command>,
    input_delays: Arc<super::delays::InputDelays>,
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

    let input_delays = state.input_delays.clone();
    Ok((
        event_loop,
        state,
        Ready {
            socket_name,
            socket_path,
            x_display,
            sender,
            input_delays,
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
