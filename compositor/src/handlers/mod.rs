//! Protocol handlers of [`State`]. `compositor` and `xdg_shell` (and the X11 window manager) have
//! their own files; the small protocols live here, one banner each.

mod compositor;
mod xdg_shell;
mod xwayland;

use std::os::fd::OwnedFd;

use smithay::{
    backend::input::TabletToolDescriptor,
    delegate_data_device, delegate_output, delegate_pointer_constraints, delegate_presentation,
    delegate_relative_pointer, delegate_seat, delegate_shm, delegate_tablet_manager,
    delegate_viewporter, delegate_xdg_decoration, delegate_xwayland_shell,
    input::{
        Seat, SeatHandler, SeatState,
        pointer::{CursorImageStatus, PointerHandle},
    },
    reexports::{
        wayland_protocols::xdg::decoration::zv1::server::zxdg_toplevel_decoration_v1::Mode as DecorationMode,
        wayland_server::{
            Resource,
            protocol::{wl_buffer::WlBuffer, wl_surface::WlSurface},
        },
    },
    utils::{Logical, Point},
    wayland::{
        buffer::BufferHandler,
        output::OutputHandler,
        pointer_constraints::{PointerConstraintsHandler, with_pointer_constraint},
        selection::{
            SelectionHandler, SelectionSource, SelectionTarget,
            data_device::{
                ClientDndGrabHandler, DataDeviceHandler, DataDeviceState, ServerDndGrabHandler,
                set_data_device_focus,
            },
        },
        shell::xdg::{ToplevelSurface, decoration::XdgDecorationHandler},
        shm::{ShmHandler, ShmState},
        tablet_manager::TabletSeatHandler,
        xwayland_shell::{XWaylandShellHandler, XWaylandShellState},
    },
};
use tracing::warn;

use crate::state::State;

// ---------------------------------------------------------------------------------------------
// wl_seat: keyboard focus moves the clipboard focus with it; the cursor image is kept for
// drawing into the frame.

impl SeatHandler for State {
    type KeyboardFocus = WlSurface;
    type PointerFocus = WlSurface;
    type TouchFocus = WlSurface;

    fn seat_state(&mut self) -> &mut SeatState<State> {
        &mut self.seat_state
    }

    fn focus_changed(&mut self, seat: &Seat<Self>, focused: Option<&WlSurface>) {
        let client = focused.and_then(|s| self.display_handle.get_client(s.id()).ok());
        set_data_device_focus(&self.display_handle, seat, client);
    }

    fn cursor_image(&mut self, _seat: &Seat<Self>, image: CursorImageStatus) {
        self.cursor_status = image;
    }
}
delegate_seat!(State);

// ---------------------------------------------------------------------------------------------
// wl_data_device: clipboard and drag-and-drop between clients, no compositor-side selection.

impl SelectionHandler for State {
    type SelectionUserData = ();

    fn new_selection(
        &mut self,
        ty: SelectionTarget,
        source: Option<SelectionSource>,
        _seat: Seat<Self>,
    ) {
        if let Some(xwm) = self.xwm.as_mut()
            && let Err(err) = xwm.new_selection(ty, source.map(|s| s.mime_types()))
        {
            warn!(?err, "cannot forward a selection to X11");
        }
    }

    fn send_selection(
        &mut self,
        ty: SelectionTarget,
        mime_type: String,
        fd: OwnedFd,
        _seat: Seat<Self>,
        _user_data: &(),
    ) {
        if let Some(xwm) = self.xwm.as_mut()
            && let Err(err) = xwm.send_selection(ty, mime_type, fd, self.loop_handle.clone())
        {
            warn!(?err, "cannot send an X11 selection");
        }
    }
}

impl DataDeviceHandler for State {
    fn data_device_state(&self) -> &DataDeviceState {
        &self.data_device_state
    }
}

impl ClientDndGrabHandler for State {}

impl ServerDndGrabHandler for State {}
delegate_data_device!(State);

// ---------------------------------------------------------------------------------------------
// wl_output and xdg-output: one output at the stream size.

impl OutputHandler for State {}
delegate_output!(State);

// ---------------------------------------------------------------------------------------------
// wl_shm and buffer lifetime.

impl BufferHandler for State {
    fn buffer_destroyed(&mut self, _buffer: &WlBuffer) {}
}

impl ShmHandler for State {
    fn shm_state(&self) -> &ShmState {
        &self.shm_state
    }
}
delegate_shm!(State);

// ---------------------------------------------------------------------------------------------
// xdg-decoration: always server side (there are no decorations to draw: windows are fullscreen).

impl XdgDecorationHandler for State {
    fn new_decoration(&mut self, toplevel: ToplevelSurface) {
        server_side(&toplevel);
    }

    fn request_mode(&mut self, toplevel: ToplevelSurface, _mode: DecorationMode) {
        server_side(&toplevel);
    }

    fn unset_mode(&mut self, toplevel: ToplevelSurface) {
        server_side(&toplevel);
    }
}
delegate_xdg_decoration!(State);

/// Sets server-side decorations and re-sends the configure if the first one went out.
fn server_side(toplevel: &ToplevelSurface) {
    toplevel.with_pending_state(|state| state.decoration_mode = Some(DecorationMode::ServerSide));
    if toplevel.is_initial_configure_sent() {
        toplevel.send_pending_configure();
    }
}

// ---------------------------------------------------------------------------------------------
// wp_viewporter and wp_presentation: state only, feedback is sent with frame callbacks.

delegate_viewporter!(State);
delegate_presentation!(State);

// ---------------------------------------------------------------------------------------------
// zwp_relative_pointer and zwp_pointer_constraints: relative motion is always sent; a lock
// stops absolute motion, a confinement clamps it (see `input.rs`).

delegate_relative_pointer!(State);

impl PointerConstraintsHandler for State {
    fn new_constraint(&mut self, surface: &WlSurface, pointer: &PointerHandle<Self>) {
        if pointer.current_focus().as_ref() == Some(surface) {
            let under = self.surface_under(self.pointer_location);
            self.activate_pointer_constraint(under);
        }
    }

    fn cursor_position_hint(
        &mut self,
        surface: &WlSurface,
        pointer: &PointerHandle<Self>,
        location: Point<f64, Logical>,
    ) {
        let active =
            with_pointer_constraint(surface, pointer, |c| c.is_some_and(|c| c.is_active()));
        if !active {
            return;
        }
        let origin = self
            .space
            .elements()
            .find_map(|w| {
                (self.window_wl_surface(w).as_ref() == Some(surface))
                    .then(|| self.space.element_location(w))
                    .flatten()
            })
            .unwrap_or_default();
        let target = origin.to_f64() + location;
        self.pointer_location = target;
        pointer.set_location(target);
    }
}
delegate_pointer_constraints!(State);

// ---------------------------------------------------------------------------------------------
// zwp_tablet_manager_v2: one virtual pen tablet; the pen draws no cursor of its own.

impl TabletSeatHandler for State {
    fn tablet_tool_image(&mut self, _tool: &TabletToolDescriptor, _image: CursorImageStatus) {}
}
delegate_tablet_manager!(State);

// ---------------------------------------------------------------------------------------------
// xwayland_shell_v1: associates XWayland's surfaces with X11 windows.

impl XWaylandShellHandler for State {
    fn xwayland_shell_state(&mut self) -> &mut XWaylandShellState {
        &mut self.xwayland_shell_state
    }
}
delegate_xwayland_shell!(State);
