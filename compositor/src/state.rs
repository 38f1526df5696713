//! The compositor's one state struct: every Smithay protocol state, the window space, the seat,
//! the output and the renderer, plus window placement and focus rules.
//!
//! Every toplevel is shown fullscreen at the stream size at (0, 0); the most recently mapped one
//! is on top and has keyboard focus.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use smithay::{
    backend::renderer::pixman::PixmanRenderer,
    desktop::{PopupManager, Space, Window, space::SpaceElement},
    input::{Seat, SeatState, keyboard::XkbConfig, pointer::CursorImageStatus},
    output::{Mode, Output, PhysicalProperties, Scale, Subpixel},
    reexports::{
        calloop::{LoopHandle, LoopSignal},
        wayland_protocols::xdg::shell::server::xdg_toplevel,
        wayland_server::{
            DisplayHandle, Resource,
            backend::{ClientData, ClientId, DisconnectReason},
            protocol::wl_surface::WlSurface,
        },
    },
    utils::{Clock, Logical, Monotonic, Point, Serial, Size, Transform},
    wayland::{
        compositor::{CompositorClientState, CompositorState},
        output::OutputManagerState,
        pointer_constraints::PointerConstraintsState,
        presentation::PresentationState,
        relative_pointer::RelativePointerManagerState,
        selection::data_device::DataDeviceState,
        shell::xdg::{XdgShellState, decoration::XdgDecorationState},
        shm::ShmState,
        tablet_manager::{TabletManagerState, TabletSeatTrait},
        viewporter::ViewporterState,
        xwayland_shell::XWaylandShellState,
    },
    xwayland::X11Wm,
};
use tracing::{debug, warn};

use crate::{
    input::{InjectState, TextKeymap, pen_tablet},
    render::FrameRenderer,
};

/// Per-client data Smithay needs.
#[derive(Debug, Default)]
pub(crate) struct ClientState {
    /// Surface state of the client.
    pub compositor_state: CompositorClientState,
    /// The compositor's count of connected clients.
    count: Arc<AtomicUsize>,
}

impl ClientData for ClientState {
    fn initialized(&self, client_id: ClientId) {
        debug!(?client_id, "client connected");
    }

    fn disconnected(&self, client_id: ClientId, reason: DisconnectReason) {
        self.count.fetch_sub(1, Ordering::Relaxed);
        debug!(?client_id, ?reason, "client disconnected");
    }
}

/// The compositor state, owned by the compositor thread.
pub(crate) struct State {
    pub display_handle: DisplayHandle,
    pub loop_handle: LoopHandle<'static, State>,
    pub loop_signal: LoopSignal,
    pub clock: Clock<Monotonic>,
    /// Output size in pixels.
    pub size: (i32, i32),
    /// Frames per second of the stream.
    pub fps: u32,

    pub compositor_state: CompositorState,
    pub xdg_shell_state: XdgShellState,
    #[expect(
        dead_code,
        reason = "owns a global that must live as long as the display"
    )]
    pub xdg_decoration_state: XdgDecorationState,
    pub shm_state: ShmState,
    #[expect(
        dead_code,
        reason = "owns a global that must live as long as the display"
    )]
    pub output_manager_state: OutputManagerState,
    pub seat_state: SeatState<State>,
    pub data_device_state: DataDeviceState,
    #[expect(
        dead_code,
        reason = "owns a global that must live as long as the display"
    )]
    pub viewporter_state: ViewporterState,
    #[expect(
        dead_code,
        reason = "owns a global that must live as long as the display"
    )]
    pub presentation_state: PresentationState,
    #[expect(
        dead_code,
        reason = "owns a global that must live as long as the display"
    )]
    pub relative_pointer_state: RelativePointerManagerState,
    #[expect(
        dead_code,
        reason = "owns a global that must live as long as the display"
    )]
    pub pointer_constraints_state: PointerConstraintsState,
    #[expect(
        dead_code,
        reason = "owns a global that must live as long as the display"
    )]
    pub tablet_state: TabletManagerState,
    pub xwayland_shell_state: XWaylandShellState,

    pub space: Space<Window>,
    pub popups: PopupManager,
    pub output: Output,
    pub seat: Seat<State>,
    pub pointer_location: Point<f64, Logical>,
    pub cursor_status: CursorImageStatus,
    pub inject: InjectState,
    pub text_keymap: Option<TextKeymap>,

    pub frames: FrameRenderer,
    /// The newest frame's serial, kept for the consumers that have not received it yet.
    pub latest: crate::handle::LatestFrame,

    /// The X11 window manager, once XWayland is ready.
    pub xwm: Option<X11Wm>,
    /// A window that should have keyboard focus but whose `wl_surface` is not paired yet (an X11
    /// window mapped before XWayland's `WL_SURFACE_ID`); focused as soon as it is.
    pub(crate) pending_focus: Option<Window>,
    /// The X11 display number XWayland serves.
    pub xdisplay: Option<u32>,
    /// The XWayland event source, removed first at shutdown.
    pub xwayland_token: Option<smithay::reexports::calloop::RegistrationToken>,
    /// XWayland's Wayland client, to resolve legacy `WL_SURFACE_ID` pairings.
    pub xwayland_client: Option<smithay::reexports::wayland_server::Client>,
    /// Connected clients, shared with their `ClientState`s.
    pub client_count: Arc<AtomicUsize>,
    /// How long injected input waited, shared with the handle.
    pub input_delays: Arc<crate::handle::delays::InputDelays>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("size", &self.size)
            .field("fps", &self.fps)
            .finish()
    }
}

/// Errors creating the compositor state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The US xkb keymap could not be compiled (xkeyboard-config missing?).
    #[error("cannot add a keyboard to the seat: {0}")]
    Keyboard(String),
    /// The pixman renderer could not be created.
    #[error("cannot create the pixman renderer: {0}")]
    Renderer(String),
}

impl State {
    /// Creates every global and the output for a `size` stream at `fps`.
    pub(crate) fn new(
        display_handle: DisplayHandle,
        loop_handle: LoopHandle<'static, State>,
        loop_signal: LoopSignal,
        size: (i32, i32),
        fps: u32,
    ) -> Result<Self, StateError> {
        let dh = &display_handle;
        let clock = Clock::new();

        let compositor_state = CompositorState::new::<Self>(dh);
        let xdg_shell_state = XdgShellState::new::<Self>(dh);
        let xdg_decoration_state = XdgDecorationState::new::<Self>(dh);
        let shm_state = ShmState::new::<Self>(dh, vec![]);
        let output_manager_state = OutputManagerState::new_with_xdg_output::<Self>(dh);
        let mut seat_state = SeatState::new();
        let data_device_state = DataDeviceState::new::<Self>(dh);
        let viewporter_state = ViewporterState::new::<Self>(dh);
        let presentation_state = PresentationState::new::<Self>(dh, clock.id() as u32);
        let relative_pointer_state = RelativePointerManagerState::new::<Self>(dh);
        let pointer_constraints_state = PointerConstraintsState::new::<Self>(dh);
        let tablet_state = TabletManagerState::new::<Self>(dh);
        let xwayland_shell_state = XWaylandShellState::new::<Self>(dh);

        let mut seat = seat_state.new_wl_seat(dh, "seat0");
        seat.add_keyboard(
            XkbConfig {
                layout: "us",
                ..XkbConfig::default()
            },
            200,
            25,
        )
        .map_err(|e| StateError::Keyboard(e.to_string()))?;
        seat.add_pointer();
        seat.add_touch();
        seat.tablet_seat().add_tablet::<Self>(dh, &pen_tablet());

        let output = Output::new(
            "HEADLESS-1".into(),
            PhysicalProperties {
                size: (0, 0).into(),
                subpixel: Subpixel::Unknown,
                make: "Hati".into(),
                model: "Virtual display".into(),
            },
        );
        let _global = output.create_global::<Self>(dh);
        let mode = Mode {
            size: size.into(),
            refresh: i32::try_from(fps.saturating_mul(1000)).unwrap_or(i32::MAX),
        };
        output.change_current_state(
            Some(mode),
            Some(Transform::Normal),
            Some(Scale::Integer(1)),
            Some((0, 0).into()),
        );
        output.set_preferred(mode);
        let mut space = Space::default();
        space.map_output(&output, (0, 0));

        let renderer = PixmanRenderer::new().map_err(|e| StateError::Renderer(e.to_string()))?;
        let frames = FrameRenderer::new(renderer, &output);

        let pointer_location = Point::from((f64::from(size.0) / 2.0, f64::from(size.1) / 2.0));
        Ok(Self {
            display_handle,
            loop_handle,
            loop_signal,
            clock,
            size,
            fps,
            compositor_state,
            xdg_shell_state,
            xdg_decoration_state,
            shm_state,
            output_manager_state,
            seat_state,
            data_device_state,
            viewporter_state,
            presentation_state,
            relative_pointer_state,
            pointer_constraints_state,
            tablet_state,
            xwayland_shell_state,
            space,
            popups: PopupManager::default(),
            output,
            seat,
            pointer_location,
            cursor_status: CursorImageStatus::default_named(),
            inject: InjectState::default(),
            text_keymap: TextKeymap::us(),
            frames,
            latest: crate::handle::LatestFrame::default(),
            xwm: None,
            pending_focus: None,
            xdisplay: None,
            xwayland_token: None,
            xwayland_client: None,
            client_count: Arc::default(),
            input_delays: Arc::default(),
        })
    }

    /// Milliseconds of the monotonic clock, for input event times.
    pub(crate) fn clock_ms(&self) -> u32 {
        // Wayland event times are 32-bit milliseconds that wrap around by design.
        Duration::from(self.clock.now()).as_millis() as u32
    }

    /// The output size in logical pixels.
    pub(crate) fn output_logical_size(&self) -> Size<i32, Logical> {
        self.size.into()
    }

    /// Sets the state a toplevel gets: fullscreen, activated, at the stream size.
    pub(crate) fn fullscreen_toplevel_state(
        &self,
        surface: &smithay::wayland::shell::xdg::ToplevelSurface,
    ) {
        let size = self.output_logical_size();
        let wl_output = surface
            .wl_surface()
            .client()
            .and_then(|client| self.output.client_outputs(&client).next());
        surface.with_pending_state(|state| {
            state.size = Some(size);
            state.states.set(xdg_toplevel::State::Fullscreen);
            state.states.set(xdg_toplevel::State::Activated);
            state.fullscreen_output = wl_output;
        });
    }

    /// Gives keyboard focus to the window on top, or to nobody.
    pub(crate) fn focus_top_window(&mut self, serial: Serial) {
        let top = self.space.elements().last().cloned();
        self.focus_window(top.as_ref(), serial);
    }

    /// Raises `window` and gives it keyboard focus (`None` clears focus).
    pub(crate) fn focus_window(&mut self, window: Option<&Window>, serial: Serial) {
        let Some(keyboard) = self.seat.get_keyboard() else {
            return;
        };
        let surface = window.and_then(|w| self.window_wl_surface(w));
        self.pending_focus = window.filter(|_| surface.is_none()).cloned();
        if let Some(window) = window {
            self.space.raise_element(window, true);
            if let Some(x11) = window.x11_surface() {
                if let Some(xwm) = self.xwm.as_mut()
                    && let Err(err) = xwm.raise_window(x11)
                {
                    warn!(?err, "cannot raise an X11 window");
                }
                if let Err(err) = x11.set_activated(true) {
                    warn!(?err, "cannot activate an X11 window");
                }
            }
        }
        for other in self.space.elements() {
            let active = Some(other) == window;
            if let Some(toplevel) = other.toplevel() {
                let changed = toplevel.with_pending_state(|state| {
                    let was = state.states.contains(xdg_toplevel::State::Activated);
                    if active {
                        state.states.set(xdg_toplevel::State::Activated);
                    } else {
                        state.states.unset(xdg_toplevel::State::Activated);
                    }
                    was != active
                });
                if changed && toplevel.is_initial_configure_sent() {
                    toplevel.send_pending_configure();
                }
            }
        }
        if keyboard.current_focus() != surface {
            keyboard.set_focus(self, surface, serial);
        }
    }

    /// Focuses the window under the pointer (on a click).
    pub(crate) fn focus_window_under_pointer(&mut self, serial: Serial) {
        self.focus_window_at(self.pointer_location, serial);
    }

    /// Focuses the window at `location` if there is one.
    pub(crate) fn focus_window_at(&mut self, location: Point<f64, Logical>, serial: Serial) {
        let window = self.window_under(location);
        if let Some(window) = window
            && self.space.elements().last() != Some(&window)
        {
            self.focus_window(Some(&window), serial);
        }
    }

    /// The window whose root surface is `surface`.
    pub(crate) fn window_for_surface(&self, surface: &WlSurface) -> Option<Window> {
        self.space
            .elements()
            .find(|w| self.window_wl_surface(w).as_ref() == Some(surface))
            .cloned()
    }

    /// The root `wl_surface` of a window: the toplevel's, or the one XWayland paired with an X11
    /// window.
    pub(crate) fn window_wl_surface(&self, window: &Window) -> Option<WlSurface> {
        if let Some(toplevel) = window.toplevel() {
            return Some(toplevel.wl_surface().clone());
        }
        let x11 = window.x11_surface()?;
        x11.wl_surface().or_else(|| self.legacy_x11_surface(window))
    }

    /// The `wl_surface` of an X11 window paired through the legacy `WL_SURFACE_ID` message,
    /// which XWayland before 23.1 (Debian 12 ships 22.1) sends instead of using
    /// `xwayland_shell_v1`. Smithay 0.7 records the id but leaves resolving it to us; such
    /// windows are then drawn, hit-tested and sent frame callbacks through this surface.
    pub(crate) fn legacy_x11_surface(&self, window: &Window) -> Option<WlSurface> {
        let x11 = window.x11_surface()?;
        if x11.wl_surface().is_some() {
            return None;
        }
        #[allow(deprecated)]
        let id = x11.wl_surface_id()?;
        let client = self.xwayland_client.as_ref()?;
        client
            .object_from_protocol_id::<WlSurface>(&self.display_handle, id)
            .ok()
            .filter(|surface| surface.is_alive())
    }

    /// Windows from the top of the stack down, with the location their surfaces are drawn at.
    pub(crate) fn windows_top_down(&self) -> Vec<(Window, Point<i32, Logical>)> {
        let mut windows: Vec<_> = self
            .space
            .elements()
            .rev()
            .filter_map(|w| {
                self.space
                    .element_location(w)
                    .map(|loc| (w.clone(), loc - w.geometry().loc))
            })
            .collect();
        windows.sort_by_key(|(w, _)| std::cmp::Reverse(w.z_index()));
        windows
    }

    /// Sends frame callbacks and presentation feedback for everything on screen. Called once per
    /// frame interval by the frame timer.
    pub(crate) fn send_frames(&mut self) {
        let now = self.clock.now();
        let output = self.output.clone();
        let refresh = Duration::from_secs(1) / self.fps.max(1);
        for window in self.space.elements() {
            window.send_frame(&output, now, Some(Duration::ZERO), |_, _| {
                Some(output.clone())
            });
            let mut feedback = smithay::desktop::utils::OutputPresentationFeedback::new(&output);
            window.take_presentation_feedback(
                &mut feedback,
                |_, _| Some(output.clone()),
                |_, _| {
                    smithay::reexports::wayland_protocols::wp::presentation_time::server::wp_presentation_feedback::Kind::empty()
                },
            );
            feedback.presented::<_, Monotonic>(
                now,
                smithay::wayland::presentation::Refresh::fixed(refresh),
                0,
                smithay::reexports::wayland_protocols::wp::presentation_time::server::wp_presentation_feedback::Kind::empty(),
            );
        }
        for window in self.space.elements() {
            if let Some(surface) = self.legacy_x11_surface(window) {
                smithay::desktop::utils::send_frames_surface_tree(
                    &surface,
                    &output,
                    now,
                    Some(Duration::ZERO),
                    |_, _| Some(output.clone()),
                );
            }
        }
        if let CursorImageStatus::Surface(surface) = &self.cursor_status {
            smithay::desktop::utils::send_frames_surface_tree(
                surface,
                &output,
                now,
                Some(Duration::ZERO),
                |_, _| Some(output.clone()),
            );
        }
    }

    /// Drops dead windows and popups; called after each dispatch.
    pub(crate) fn refresh(&mut self) {
        self.space.refresh();
        self.popups.cleanup();
        if let Some(window) = self.pending_focus.clone() {
            let still_mapped = self.space.elements().any(|w| *w == window);
            if !still_mapped {
                self.pending_focus = None;
            } else if self.window_wl_surface(&window).is_some() {
                self.focus_window(Some(&window), smithay::utils::SERIAL_COUNTER.next_serial());
            }
        }
    }
}

/// Data for a client that connected to the socket; counts it in `count` until it disconnects.
pub(crate) fn new_client_data(count: Arc<AtomicUsize>) -> Arc<ClientState> {
    count.fetch_add(1, Ordering::Relaxed);
    Arc::new(ClientState {
        compositor_state: CompositorClientState::default(),
        count,
    })
}
