//! The X11 window manager for XWayland: managed windows are shown fullscreen at the stream size
//! like xdg toplevels; override-redirect windows (menus, tooltips) keep their own geometry.

use std::os::fd::OwnedFd;

use smithay::{
    desktop::Window,
    utils::{Logical, Rectangle, SERIAL_COUNTER},
    wayland::selection::{
        SelectionTarget,
        data_device::{
            clear_data_device_selection, current_data_device_selection_userdata,
            request_data_device_client_selection, set_data_device_selection,
        },
    },
    xwayland::{
        X11Surface, X11Wm, XwmHandler,
        xwm::{Reorder, ResizeEdge, XwmId},
    },
};
use tracing::{debug, warn};

use crate::state::State;

impl XwmHandler for State {
    fn xwm_state(&mut self, _xwm: XwmId) -> &mut X11Wm {
        // Invariant: Smithay only calls XwmHandler methods from the X11Wm's event source, which
        // is inserted after `self.xwm` is set in the XWayland ready handler.
        match self.xwm.as_mut() {
            Some(xwm) => xwm,
            None => unreachable!("X11 window manager event without a window manager"),
        }
    }

    fn new_window(&mut self, _xwm: XwmId, _window: X11Surface) {}

    fn new_override_redirect_window(&mut self, _xwm: XwmId, _window: X11Surface) {}

    fn map_window_request(&mut self, _xwm: XwmId, window: X11Surface) {
        let geometry = Rectangle::from_size(self.output_logical_size());
        if let Err(err) = window.set_mapped(true) {
            warn!(?err, "cannot map an X11 window");
            return;
        }
        if let Err(err) = window.set_fullscreen(true) {
            warn!(?err, "cannot make an X11 window fullscreen");
        }
        if let Err(err) = window.configure(geometry) {
            warn!(?err, "cannot configure an X11 window");
        }
        let window = Window::new_x11_window(window);
        self.space.map_element(window.clone(), (0, 0), true);
        self.focus_window(Some(&window), SERIAL_COUNTER.next_serial());
    }

    fn mapped_override_redirect_window(&mut self, _xwm: XwmId, window: X11Surface) {
        let location = window.geometry().loc;
        let window = Window::new_x11_window(window);
        self.space.map_element(window, location, true);
    }

    fn unmapped_window(&mut self, _xwm: XwmId, window: X11Surface) {
        self.unmap_x11(&window);
        if !window.is_override_redirect()
            && let Err(err) = window.set_mapped(false)
        {
            debug!(?err, "cannot unmap an X11 window");
        }
    }

    fn destroyed_window(&mut self, _xwm: XwmId, window: X11Surface) {
        self.unmap_x11(&window);
    }

    fn configure_request(
        &mut self,
        _xwm: XwmId,
        window: X11Surface,
        _x: Option<i32>,
        _y: Option<i32>,
        _w: Option<u32>,
        _h: Option<u32>,
        _reorder: Option<Reorder>,
    ) {
        // Managed windows stay fullscreen: answer with the geometry we impose.
        let geometry = if window.is_override_redirect() {
            window.geometry()
        } else {
            Rectangle::from_size(self.output_logical_size())
        };
        if let Err(err) = window.configure(geometry) {
            warn!(?err, "cannot configure an X11 window");
        }
    }

    fn configure_notify(
        &mut self,
        _xwm: XwmId,
        window: X11Surface,
        geometry: Rectangle<i32, Logical>,
        _above: Option<u32>,
    ) {
        let Some(elem) = self
            .space
            .elements()
            .find(|e| e.x11_surface() == Some(&window))
            .cloned()
        else {
            return;
        };
        self.space.map_element(elem, geometry.loc, false);
    }

    fn resize_request(
        &mut self,
        _xwm: XwmId,
        _window: X11Surface,
        _button: u32,
        _edge: ResizeEdge,
    ) {
    }

    fn move_request(&mut self, _xwm: XwmId, _window: X11Surface, _button: u32) {}

    fn allow_selection_access(&mut self, _xwm: XwmId, _selection: SelectionTarget) -> bool {
        true
    }

    fn send_selection(
        &mut self,
        _xwm: XwmId,
        selection: SelectionTarget,
        mime_type: String,
        fd: OwnedFd,
    ) {
        if selection == SelectionTarget::Clipboard
            && let Err(err) = request_data_device_client_selection(&self.seat, mime_type, fd)
        {
            debug!(?err, "cannot hand the Wayland clipboard to X11");
        }
    }

    fn new_selection(&mut self, _xwm: XwmId, selection: SelectionTarget, mime_types: Vec<String>) {
        if selection == SelectionTarget::Clipboard {
            set_data_device_selection(&self.display_handle, &self.seat, mime_types, ());
        }
    }

    fn cleared_selection(&mut self, _xwm: XwmId, selection: SelectionTarget) {
        if selection == SelectionTarget::Clipboard
            && current_data_device_selection_userdata(&self.seat).is_some()
        {
            clear_data_device_selection(&self.display_handle, &self.seat);
        }
    }

    fn disconnected(&mut self, _xwm: XwmId) {
        tracing::info!("X11 window manager disconnected");
        self.xwm = None;
    }
}

impl State {
    fn unmap_x11(&mut self, window: &X11Surface) {
        let elem = self
            .space
            .elements()
            .find(|e| e.x11_surface() == Some(window))
            .cloned();
        if let Some(elem) = elem {
            self.space.unmap_elem(&elem);
            self.focus_top_window(SERIAL_COUNTER.next_serial());
        }
    }
}
