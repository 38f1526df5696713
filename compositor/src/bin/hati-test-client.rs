//! `hati-test-client`: a small pure-Rust Wayland client for testing Hati's compositor.
//!
//! It maps one fullscreen `xdg_toplevel`, fills it through `wl_shm` with a known pattern at the
//! configured size (top-left red, top-right green, bottom-left blue, bottom-right white) and
//! writes every input event it receives as one line to the file named by `HATI_TEST_CLIENT_LOG`
//! (or the first argument; standard output when neither is given). Lines look like
//! `pointer button code=272 state=pressed`; see `Logger` callers for the full set.
//!
//! With `HATI_TEST_CLIENT_LOCK_POINTER=1` it also asks for a persistent pointer lock on its
//! surface (`zwp_pointer_constraints_v1`) and logs `pointer locked` / `pointer unlocked`.
//!
//! With `HATI_TEST_CLIENT_CLOCK=1` every line starts with `t=<µs> `, the time it was written
//! on `CLOCK_MONOTONIC` (Python's `time.monotonic()`), so a benchmark on the same machine can
//! time input from the client library to the app.
//!
//! With `HATI_TEST_CLIENT_CURSOR=1` it sets an 8x8 opaque magenta cursor (hotspot at its
//! top-left corner) whenever the pointer enters, and logs `cursor set`.
//!
//! It connects with `WAYLAND_DISPLAY` / `XDG_RUNTIME_DIR` like any client and uses only the
//! pure-Rust `wayland-client` backend, so it builds as a static binary (checked: static-pie,
//! about 2.3 MB, passes the integration tests when named by `HATI_TEST_CLIENT_BIN`):
//!
//! ```text
//! RUSTFLAGS="-C target-feature=+crt-static" cargo build -p hati-compositor --release \
//!     --bin hati-test-client --target x86_64-unknown-linux-gnu
//! ```

use std::{
    fs::File,
    io::{BufWriter, Write},
    os::fd::AsFd,
    path::PathBuf,
    process::ExitCode,
};

use wayland_client::{
    Connection, Dispatch, QueueHandle, WEnum, delegate_noop, event_created_child,
    protocol::{
        wl_buffer, wl_compositor, wl_keyboard, wl_pointer, wl_registry, wl_seat, wl_shm,
        wl_shm_pool, wl_surface, wl_touch,
    },
};
use wayland_protocols::{
    wp::{
        pointer_constraints::zv1::client::{zwp_locked_pointer_v1, zwp_pointer_constraints_v1},
        relative_pointer::zv1::client::{zwp_relative_pointer_manager_v1, zwp_relative_pointer_v1},
        tablet::zv2::client::{
            zwp_tablet_manager_v2, zwp_tablet_pad_group_v2, zwp_tablet_pad_ring_v2,
            zwp_tablet_pad_strip_v2, zwp_tablet_pad_v2, zwp_tablet_seat_v2, zwp_tablet_tool_v2,
            zwp_tablet_v2,
        },
    },
    xdg::{
        decoration::zv1::client::{zxdg_decoration_manager_v1, zxdg_toplevel_decoration_v1},
        shell::client::{xdg_surface, xdg_toplevel, xdg_wm_base},
    },
};

/// Quadrant colours, XRGB8888.
const RED: u32 = 0x00FF_0000;
const GREEN: u32 = 0x0000_FF00;
const BLUE: u32 = 0x0000_00FF;
const WHITE: u32 = 0x00FF_FFFF;
/// Cursor colour with `HATI_TEST_CLIENT_CURSOR=1`, ARGB8888 (opaque magenta).
const CURSOR: u32 = 0xFFFF_00FF;
/// Size used when the compositor leaves the choice to the client.
const DEFAULT_SIZE: (i32, i32) = (640, 480);
/// Largest accepted configure size.
const MAX_SIZE: i32 = 8192;

/// Writes one line per event and flushes it, so a test can read the file while we run.
struct Logger {
    sink: Box<dyn Write>,
    /// Whether lines start with their `CLOCK_MONOTONIC` time.
    clock: bool,
}

impl Logger {
    fn line(&mut self, line: std::fmt::Arguments<'_>) {
        // A log that cannot be written is not worth dying for; the test will notice.
        if self.clock {
            let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
            let micros = now.tv_sec as i128 * 1_000_000 + now.tv_nsec as i128 / 1_000;
            let _ = write!(self.sink, "t={micros} ");
        }
        let _ = writeln!(self.sink, "{line}");
        let _ = self.sink.flush();
    }
}

macro_rules! log {
    ($app:expr, $($arg:tt)*) => { $app.log.line(format_args!($($arg)*)) };
}

#[derive(Default)]
struct Globals {
    compositor: Option<wl_compositor::WlCompositor>,
    shm: Option<wl_shm::WlShm>,
    wm_base: Option<xdg_wm_base::XdgWmBase>,
    seat: Option<wl_seat::WlSeat>,
    relative: Option<zwp_relative_pointer_manager_v1::ZwpRelativePointerManagerV1>,
    tablet: Option<zwp_tablet_manager_v2::ZwpTabletManagerV2>,
    decoration: Option<zxdg_decoration_manager_v1::ZxdgDecorationManagerV1>,
    constraints: Option<zwp_pointer_constraints_v1::ZwpPointerConstraintsV1>,
}

struct App {
    log: Logger,
    globals: Globals,
    surface: Option<wl_surface::WlSurface>,
    xdg_surface: Option<xdg_surface::XdgSurface>,
    pending_size: (i32, i32),
    drawn_size: Option<(i32, i32)>,
    buffer: Option<wl_buffer::WlBuffer>,
    pointer: Option<wl_pointer::WlPointer>,
    keyboard: Option<wl_keyboard::WlKeyboard>,
    touch: Option<wl_touch::WlTouch>,
    lock_pointer: bool,
    cursor: bool,
    cursor_surface: Option<wl_surface::WlSurface>,
    closed: bool,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("hati-test-client: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let log_path = std::env::var_os("HATI_TEST_CLIENT_LOG")
        .map(PathBuf::from)
        .or_else(|| std::env::args_os().nth(1).map(PathBuf::from));
    let sink: Box<dyn Write> = match log_path {
        Some(path) => Box::new(BufWriter::new(
            File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?,
        )),
        None => Box::new(std::io::stdout()),
    };
    let conn = Connection::connect_to_env().map_err(|e| format!("cannot connect: {e}"))?;
    let mut queue = conn.new_event_queue();
    let qh = queue.handle();
    conn.display().get_registry(&qh, ());
    let mut app = App {
        log: Logger {
            sink,
            clock: std::env::var_os("HATI_TEST_CLIENT_CLOCK").is_some_and(|v| v == "1"),
        },
        globals: Globals::default(),
        surface: None,
        xdg_surface: None,
        pending_size: (0, 0),
        drawn_size: None,
        buffer: None,
        pointer: None,
        keyboard: None,
        touch: None,
        lock_pointer: std::env::var_os("HATI_TEST_CLIENT_LOCK_POINTER").is_some_and(|v| v == "1"),
        cursor: std::env::var_os("HATI_TEST_CLIENT_CURSOR").is_some_and(|v| v == "1"),
        cursor_surface: None,
        closed: false,
    };
    queue.roundtrip(&mut app).map_err(|e| e.to_string())?;
    let (Some(compositor), Some(wm_base)) =
        (app.globals.compositor.clone(), app.globals.wm_base.clone())
    else {
        return Err("compositor lacks wl_compositor or xdg_wm_base".into());
    };
    if app.globals.shm.is_none() {
        return Err("compositor lacks wl_shm".into());
    }
    let surface = compositor.create_surface(&qh, ());
    let xdg = wm_base.get_xdg_surface(&surface, &qh, ());
    let toplevel = xdg.get_toplevel(&qh, ());
    toplevel.set_title("hati-test-client".into());
    toplevel.set_app_id("hati-test-client".into());
    toplevel.set_fullscreen(None);
    if let Some(decoration) = &app.globals.decoration {
        let deco = decoration.get_toplevel_decoration(&toplevel, &qh, ());
        deco.set_mode(zxdg_toplevel_decoration_v1::Mode::ServerSide);
    }
    surface.commit();
    app.surface = Some(surface);
    app.request_lock(&qh);
    app.xdg_surface = Some(xdg);
    if let (Some(tablet), Some(seat)) = (&app.globals.tablet, &app.globals.seat) {
        tablet.get_tablet_seat(seat, &qh, ());
    }
    log!(app, "started");
    while !app.closed {
        queue
            .blocking_dispatch(&mut app)
            .map_err(|e| e.to_string())?;
    }
    log!(app, "closed");
    Ok(())
}

impl App {
    /// Asks for the pointer lock once both the pointer and the surface exist.
    fn request_lock(&mut self, qh: &QueueHandle<App>) {
        if !self.lock_pointer {
            return;
        }
        let (Some(constraints), Some(surface), Some(pointer)) =
            (&self.globals.constraints, &self.surface, &self.pointer)
        else {
            return;
        };
        constraints.lock_pointer(
            surface,
            pointer,
            None,
            zwp_pointer_constraints_v1::Lifetime::Persistent,
            qh,
            (),
        );
        self.lock_pointer = false;
    }

    /// Sets an 8x8 magenta cursor with its hotspot at the top-left corner.
    fn set_cursor(
        &mut self,
        pointer: &wl_pointer::WlPointer,
        serial: u32,
        qh: &QueueHandle<App>,
    ) -> Result<(), String> {
        let (Some(shm), Some(compositor)) = (&self.globals.shm, &self.globals.compositor) else {
            return Err("no shm or compositor".into());
        };
        let surface = match &self.cursor_surface {
            Some(surface) => surface.clone(),
            None => {
                let surface = compositor.create_surface(qh, ());
                let pixels: Vec<u8> = std::iter::repeat_n(CURSOR.to_le_bytes(), 64)
                    .flatten()
                    .collect();
                let file = shm_file(&pixels)?;
                let pool = shm.create_pool(file.as_fd(), 256, qh, ());
                let buffer = pool.create_buffer(0, 8, 8, 32, wl_shm::Format::Argb8888, qh, ());
                pool.destroy();
                surface.attach(Some(&buffer), 0, 0);
                surface.damage_buffer(0, 0, 8, 8);
                surface.commit();
                self.cursor_surface = Some(surface.clone());
                surface
            }
        };
        pointer.set_cursor(serial, Some(&surface), 0, 0);
        log!(self, "cursor set");
        Ok(())
    }

    /// Draws the quadrants at `size` and commits.
    fn draw(&mut self, qh: &QueueHandle<App>, size: (i32, i32)) -> Result<(), String> {
        let (Some(shm), Some(surface)) = (self.globals.shm.clone(), self.surface.clone()) else {
            return Err("no shm or surface".into());
        };
        let (w, h) = size;
        let (Ok(wu), Ok(hu)) = (usize::try_from(w), usize::try_from(h)) else {
            return Err("negative size".into());
        };
        let stride = wu * 4;
        let len = stride * hu;
        let mut pixels = Vec::with_capacity(len);
        for y in 0..hu {
            for x in 0..wu {
                let color = match (x < wu / 2, y < hu / 2) {
                    (true, true) => RED,
                    (false, true) => GREEN,
                    (true, false) => BLUE,
                    (false, false) => WHITE,
                };
                pixels.extend_from_slice(&color.to_le_bytes());
            }
        }
        let file = shm_file(&pixels)?;
        let pool = shm.create_pool(
            file.as_fd(),
            i32::try_from(len).map_err(|_| "buffer too large")?,
            qh,
            (),
        );
        let buffer = pool.create_buffer(0, w, h, w * 4, wl_shm::Format::Xrgb8888, qh, ());
        pool.destroy();
        surface.attach(Some(&buffer), 0, 0);
        surface.damage_buffer(0, 0, w, h);
        surface.commit();
        if let Some(old) = self.buffer.replace(buffer) {
            old.destroy();
        }
        self.drawn_size = Some(size);
        log!(self, "drawn width={w} height={h}");
        Ok(())
    }
}

/// An unlinked file in `XDG_RUNTIME_DIR` (or the temp dir) holding `bytes`.
fn shm_file(bytes: &[u8]) -> Result<File, String> {
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let path = dir.join(format!(".hati-test-client-{}-{nanos}", std::process::id()));
    let mut file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| format!("cannot create shm file: {e}"))?;
    let _ = std::fs::remove_file(&path);
    file.write_all(bytes)
        .map_err(|e| format!("cannot fill shm file: {e}"))?;
    Ok(file)
}

impl Dispatch<wl_registry::WlRegistry, ()> for App {
    fn event(
        app: &mut Self,
        registry: &wl_registry::WlRegistry,
        event: wl_registry::Event,
        _: &(),
        _: &Connection,
        qh: &QueueHandle<Self>,
    ) {
        let wl_registry::Event::Global {
            name,
            interface,
            version,
        } = event
        else {
            return;
        };
        let g = &mut app.globals;
        match interface.as_str() {
            "wl_compositor" => g.compositor = Some(registry.bind(name, version.min(5), qh, ())),
            "wl_shm" => g.shm = Some(registry.bind(name, 1, qh, ())),
            "xdg_wm_base" => g.wm_base = Some(registry.bind(name, version.min(5), qh, ())),
            "wl_seat" => g.seat = Some(registry.bind(name, version.min(8), qh, ())),
            "zwp_relative_pointer_manager_v1" => g.relative = Some(registry.bind(name, 1, qh, ())),
            "zwp_tablet_manager_v2" => g.tablet = Some(registry.bind(name, 1, qh, ())),
            "zxdg_decoration_manager_v1" => g.decoration = Some(registry.bind(name, 1, qh, ())),
            "zwp_pointer_constraints_v1" => g.constraints = Some(registry.bind(name, 1, qh, ())),
            _ => {}
        }
    }
}

impl Dispatch<xdg_wm_base::XdgWmBase, ()> for App {
    fn event(
        _: &mut Self,
        wm_base: &xdg_wm_base::XdgWmBase,
        event: xdg_wm_base::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_wm_base::Event::Ping { serial } = event {
            wm_base.pong(serial);
        }
    }
}

impl Dispatch<xdg_surface::XdgSurface, ()> for App {
    fn event(
        app: &mut Self,
        xdg: &xdg_surface::XdgSurface,
        event: xdg_surface::Event,
        _: &(),
        _: &Connection,
        qh: &QueueHandle<Self>,
    ) {
        let xdg_surface::Event::Configure { serial } = event else {
            return;
        };
        xdg.ack_configure(serial);
        let (w, h) = app.pending_size;
        let size = if w > 0 && h > 0 && w <= MAX_SIZE && h <= MAX_SIZE {
            (w, h)
        } else {
            DEFAULT_SIZE
        };
        if app.drawn_size != Some(size) {
            if let Err(err) = app.draw(qh, size) {
                log!(app, "error {err}");
            }
        } else if let Some(surface) = &app.surface {
            surface.commit();
        }
    }
}

impl Dispatch<xdg_toplevel::XdgToplevel, ()> for App {
    fn event(
        app: &mut Self,
        _: &xdg_toplevel::XdgToplevel,
        event: xdg_toplevel::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            xdg_toplevel::Event::Configure {
                width,
                height,
                states,
            } => {
                let fullscreen = states
                    .chunks_exact(4)
                    .filter_map(|c| c.try_into().ok().map(u32::from_ne_bytes))
                    .any(|s| s == xdg_toplevel::State::Fullscreen as u32);
                log!(
                    app,
                    "configure width={width} height={height} fullscreen={fullscreen}"
                );
                app.pending_size = (width, height);
            }
            xdg_toplevel::Event::Close => app.closed = true,
            _ => {}
        }
    }
}

impl Dispatch<zxdg_toplevel_decoration_v1::ZxdgToplevelDecorationV1, ()> for App {
    fn event(
        app: &mut Self,
        _: &zxdg_toplevel_decoration_v1::ZxdgToplevelDecorationV1,
        event: zxdg_toplevel_decoration_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let zxdg_toplevel_decoration_v1::Event::Configure { mode } = event {
            let mode = match mode {
                WEnum::Value(zxdg_toplevel_decoration_v1::Mode::ServerSide) => "server",
                WEnum::Value(zxdg_toplevel_decoration_v1::Mode::ClientSide) => "client",
                _ => "unknown",
            };
            log!(app, "decoration mode={mode}");
        }
    }
}

impl Dispatch<wl_seat::WlSeat, ()> for App {
    fn event(
        app: &mut Self,
        seat: &wl_seat::WlSeat,
        event: wl_seat::Event,
        _: &(),
        _: &Connection,
        qh: &QueueHandle<Self>,
    ) {
        let wl_seat::Event::Capabilities {
            capabilities: WEnum::Value(caps),
        } = event
        else {
            return;
        };
        if caps.contains(wl_seat::Capability::Pointer) && app.pointer.is_none() {
            let pointer = seat.get_pointer(qh, ());
            if let Some(relative) = &app.globals.relative {
                relative.get_relative_pointer(&pointer, qh, ());
            }
            app.pointer = Some(pointer);
            app.request_lock(qh);
        }
        if caps.contains(wl_seat::Capability::Keyboard) && app.keyboard.is_none() {
            app.keyboard = Some(seat.get_keyboard(qh, ()));
        }
        if caps.contains(wl_seat::Capability::Touch) && app.touch.is_none() {
            app.touch = Some(seat.get_touch(qh, ()));
        }
    }
}

fn button_state(state: WEnum<wl_pointer::ButtonState>) -> &'static str {
    match state {
        WEnum::Value(wl_pointer::ButtonState::Pressed) => "pressed",
        WEnum::Value(wl_pointer::ButtonState::Released) => "released",
        _ => "unknown",
    }
}

fn axis_name(axis: WEnum<wl_pointer::Axis>) -> &'static str {
    match axis {
        WEnum::Value(wl_pointer::Axis::VerticalScroll) => "vertical",
        WEnum::Value(wl_pointer::Axis::HorizontalScroll) => "horizontal",
        _ => "unknown",
    }
}

impl Dispatch<wl_pointer::WlPointer, ()> for App {
    fn event(
        app: &mut Self,
        pointer: &wl_pointer::WlPointer,
        event: wl_pointer::Event,
        _: &(),
        _: &Connection,
        qh: &QueueHandle<Self>,
    ) {
        match event {
            wl_pointer::Event::Enter {
                serial,
                surface_x,
                surface_y,
                ..
            } => {
                log!(app, "pointer enter x={surface_x:.2} y={surface_y:.2}");
                if app.cursor
                    && let Err(err) = app.set_cursor(pointer, serial, qh)
                {
                    log!(app, "error {err}");
                }
            }
            wl_pointer::Event::Leave { .. } => log!(app, "pointer leave"),
            wl_pointer::Event::Motion {
                surface_x,
                surface_y,
                ..
            } => {
                log!(app, "pointer motion x={surface_x:.2} y={surface_y:.2}")
            }
            wl_pointer::Event::Button { button, state, .. } => {
                log!(
                    app,
                    "pointer button code={button} state={}",
                    button_state(state)
                )
            }
            wl_pointer::Event::Axis { axis, value, .. } => {
                log!(
                    app,
                    "pointer axis axis={} value={value:.2}",
                    axis_name(axis)
                )
            }
            wl_pointer::Event::AxisValue120 { axis, value120 } => {
                log!(
                    app,
                    "pointer axis_value120 axis={} value120={value120}",
                    axis_name(axis)
                )
            }
            wl_pointer::Event::AxisSource { axis_source } => {
                let source = match axis_source {
                    WEnum::Value(wl_pointer::AxisSource::Wheel) => "wheel",
                    WEnum::Value(wl_pointer::AxisSource::Finger) => "finger",
                    _ => "other",
                };
                log!(app, "pointer axis_source source={source}")
            }
            wl_pointer::Event::AxisStop { axis, .. } => {
                log!(app, "pointer axis_stop axis={}", axis_name(axis))
            }
            _ => {}
        }
    }
}

impl Dispatch<zwp_relative_pointer_v1::ZwpRelativePointerV1, ()> for App {
    fn event(
        app: &mut Self,
        _: &zwp_relative_pointer_v1::ZwpRelativePointerV1,
        event: zwp_relative_pointer_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let zwp_relative_pointer_v1::Event::RelativeMotion { dx, dy, .. } = event {
            log!(app, "relative motion dx={dx:.2} dy={dy:.2}");
        }
    }
}

impl Dispatch<zwp_locked_pointer_v1::ZwpLockedPointerV1, ()> for App {
    fn event(
        app: &mut Self,
        _: &zwp_locked_pointer_v1::ZwpLockedPointerV1,
        event: zwp_locked_pointer_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            zwp_locked_pointer_v1::Event::Locked => log!(app, "pointer locked"),
            zwp_locked_pointer_v1::Event::Unlocked => log!(app, "pointer unlocked"),
            _ => {}
        }
    }
}

impl Dispatch<wl_keyboard::WlKeyboard, ()> for App {
    fn event(
        app: &mut Self,
        _: &wl_keyboard::WlKeyboard,
        event: wl_keyboard::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            wl_keyboard::Event::Keymap { size, .. } => log!(app, "keyboard keymap size={size}"),
            wl_keyboard::Event::Enter { .. } => log!(app, "keyboard enter"),
            wl_keyboard::Event::Leave { .. } => log!(app, "keyboard leave"),
            wl_keyboard::Event::Key { key, state, .. } => {
                let state = match state {
                    WEnum::Value(wl_keyboard::KeyState::Pressed) => "pressed",
                    WEnum::Value(wl_keyboard::KeyState::Released) => "released",
                    _ => "unknown",
                };
                log!(app, "keyboard key code={key} state={state}")
            }
            wl_keyboard::Event::Modifiers {
                mods_depressed,
                mods_latched,
                mods_locked,
                group,
                ..
            } => log!(
                app,
                "keyboard modifiers depressed={mods_depressed} latched={mods_latched} locked={mods_locked} group={group}"
            ),
            wl_keyboard::Event::RepeatInfo { rate, delay } => {
                log!(app, "keyboard repeat rate={rate} delay={delay}")
            }
            _ => {}
        }
    }
}

impl Dispatch<wl_touch::WlTouch, ()> for App {
    fn event(
        app: &mut Self,
        _: &wl_touch::WlTouch,
        event: wl_touch::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            wl_touch::Event::Down { id, x, y, .. } => {
                log!(app, "touch down id={id} x={x:.2} y={y:.2}")
            }
            wl_touch::Event::Motion { id, x, y, .. } => {
                log!(app, "touch motion id={id} x={x:.2} y={y:.2}")
            }
            wl_touch::Event::Up { id, .. } => log!(app, "touch up id={id}"),
            wl_touch::Event::Cancel => log!(app, "touch cancel"),
            wl_touch::Event::Frame => log!(app, "touch frame"),
            _ => {}
        }
    }
}

impl Dispatch<zwp_tablet_seat_v2::ZwpTabletSeatV2, ()> for App {
    fn event(
        app: &mut Self,
        _: &zwp_tablet_seat_v2::ZwpTabletSeatV2,
        event: zwp_tablet_seat_v2::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            zwp_tablet_seat_v2::Event::TabletAdded { .. } => log!(app, "tablet added"),
            zwp_tablet_seat_v2::Event::ToolAdded { .. } => log!(app, "tablet tool added"),
            _ => {}
        }
    }

    event_created_child!(App, zwp_tablet_seat_v2::ZwpTabletSeatV2, [
        zwp_tablet_seat_v2::EVT_TABLET_ADDED_OPCODE => (zwp_tablet_v2::ZwpTabletV2, ()),
        zwp_tablet_seat_v2::EVT_TOOL_ADDED_OPCODE => (zwp_tablet_tool_v2::ZwpTabletToolV2, ()),
        zwp_tablet_seat_v2::EVT_PAD_ADDED_OPCODE => (zwp_tablet_pad_v2::ZwpTabletPadV2, ()),
    ]);
}

impl Dispatch<zwp_tablet_tool_v2::ZwpTabletToolV2, ()> for App {
    fn event(
        app: &mut Self,
        _: &zwp_tablet_tool_v2::ZwpTabletToolV2,
        event: zwp_tablet_tool_v2::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        use zwp_tablet_tool_v2::Event;
        match event {
            Event::Type { tool_type } => {
                let kind = match tool_type {
                    WEnum::Value(zwp_tablet_tool_v2::Type::Pen) => "pen",
                    WEnum::Value(zwp_tablet_tool_v2::Type::Eraser) => "eraser",
                    _ => "other",
                };
                log!(app, "tablet tool type={kind}")
            }
            Event::ProximityIn { .. } => log!(app, "tablet tool proximity_in"),
            Event::ProximityOut => log!(app, "tablet tool proximity_out"),
            Event::Down { .. } => log!(app, "tablet tool down"),
            Event::Up => log!(app, "tablet tool up"),
            Event::Motion { x, y } => log!(app, "tablet tool motion x={x:.2} y={y:.2}"),
            Event::Pressure { pressure } => log!(app, "tablet tool pressure value={pressure}"),
            Event::Tilt { tilt_x, tilt_y } => {
                log!(app, "tablet tool tilt x={tilt_x:.2} y={tilt_y:.2}")
            }
            Event::Button { button, state, .. } => {
                let state = match state {
                    WEnum::Value(zwp_tablet_tool_v2::ButtonState::Pressed) => "pressed",
                    WEnum::Value(zwp_tablet_tool_v2::ButtonState::Released) => "released",
                    _ => "unknown",
                };
                log!(app, "tablet tool button code={button} state={state}")
            }
            _ => {}
        }
    }
}

impl Dispatch<zwp_tablet_pad_v2::ZwpTabletPadV2, ()> for App {
    fn event(
        _: &mut Self,
        _: &zwp_tablet_pad_v2::ZwpTabletPadV2,
        _: zwp_tablet_pad_v2::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }

    event_created_child!(App, zwp_tablet_pad_v2::ZwpTabletPadV2, [
        zwp_tablet_pad_v2::EVT_GROUP_OPCODE => (zwp_tablet_pad_group_v2::ZwpTabletPadGroupV2, ()),
    ]);
}

impl Dispatch<zwp_tablet_pad_group_v2::ZwpTabletPadGroupV2, ()> for App {
    fn event(
        _: &mut Self,
        _: &zwp_tablet_pad_group_v2::ZwpTabletPadGroupV2,
        _: zwp_tablet_pad_group_v2::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }

    event_created_child!(App, zwp_tablet_pad_group_v2::ZwpTabletPadGroupV2, [
        zwp_tablet_pad_group_v2::EVT_RING_OPCODE => (zwp_tablet_pad_ring_v2::ZwpTabletPadRingV2, ()),
        zwp_tablet_pad_group_v2::EVT_STRIP_OPCODE => (zwp_tablet_pad_strip_v2::ZwpTabletPadStripV2, ()),
    ]);
}

delegate_noop!(App: ignore wl_compositor::WlCompositor);
delegate_noop!(App: ignore wl_surface::WlSurface);
delegate_noop!(App: ignore wl_shm::WlShm);
delegate_noop!(App: ignore wl_shm_pool::WlShmPool);
delegate_noop!(App: ignore wl_buffer::WlBuffer);
delegate_noop!(App: zwp_relative_pointer_manager_v1::ZwpRelativePointerManagerV1);
delegate_noop!(App: zwp_tablet_manager_v2::ZwpTabletManagerV2);
delegate_noop!(App: ignore zwp_tablet_v2::ZwpTabletV2);
delegate_noop!(App: ignore zwp_tablet_pad_ring_v2::ZwpTabletPadRingV2);
delegate_noop!(App: ignore zwp_tablet_pad_strip_v2::ZwpTabletPadStripV2);
delegate_noop!(App: zxdg_decoration_manager_v1::ZxdgDecorationManagerV1);
delegate_noop!(App: zwp_pointer_constraints_v1::ZwpPointerConstraintsV1);
