//! `wl_compositor` and `wl_subcompositor`: surface commits, buffer import bookkeeping and the
//! initial configure of new xdg surfaces.

use smithay::{
    backend::renderer::utils::on_commit_buffer_handler,
    delegate_compositor,
    reexports::wayland_server::{Client, protocol::wl_surface::WlSurface},
    utils::SERIAL_COUNTER,
    wayland::{
        compositor::{
            CompositorClientState, CompositorHandler, CompositorState, get_parent,
            is_sync_subsurface,
        },
        shell::xdg::XdgToplevelSurfaceData,
    },
    xwayland::XWaylandClientData,
};

use crate::state::{ClientState, State};

impl CompositorHandler for State {
    fn compositor_state(&mut self) -> &mut CompositorState {
        &mut self.compositor_state
    }

    fn client_compositor_state<'a>(&self, client: &'a Client) -> &'a CompositorClientState {
        if let Some(state) = client.get_data::<XWaylandClientData>() {
            return &state.compositor_state;
        }
        match client.get_data::<ClientState>() {
            Some(state) => &state.compositor_state,
            // Invariant: every client is inserted either by the socket accept loop with a
            // `ClientState` or by Smithay's XWayland spawner with `XWaylandClientData`.
            None => unreachable!("client without compositor data"),
        }
    }

    fn commit(&mut self, surface: &WlSurface) {
        on_commit_buffer_handler::<Self>(surface);
        if !is_sync_subsurface(surface) {
            let mut root = surface.clone();
            while let Some(parent) = get_parent(&root) {
                root = parent;
            }
            if let Some(window) = self.window_for_surface(&root) {
                window.on_commit();
                if root == *surface {
                    self.toplevel_committed(&window);
                }
            }
        }
        self.popups.commit(surface);
        self.send_initial_configure(surface);
    }
}
delegate_compositor!(State);

impl State {
    /// Sends the first configure of a toplevel or popup once its surface has been committed.
    fn send_initial_configure(&mut self, surface: &WlSurface) {
        if let Some(window) = self.window_for_surface(surface)
            && let Some(toplevel) = window.toplevel()
        {
            let initial_configure_sent =
                smithay::wayland::compositor::with_states(surface, |states| {
                    states
                        .data_map
                        .get::<XdgToplevelSurfaceData>()
                        .and_then(|data| data.lock().ok().map(|d| d.initial_configure_sent))
                        .unwrap_or(true)
                });
            if !initial_configure_sent {
                self.fullscreen_toplevel_state(toplevel);
                toplevel.send_configure();
            }
        }
        if let Some(smithay::desktop::PopupKind::Xdg(popup)) = self.popups.find_popup(surface)
            && !popup.is_initial_configure_sent()
            && let Err(err) = popup.send_configure()
        {
            tracing::warn!(?err, "cannot configure a popup");
        }
    }

    /// Gives focus to a toplevel the first time it shows a buffer.
    fn toplevel_committed(&mut self, window: &smithay::desktop::Window) {
        let Some(keyboard) = self.seat.get_keyboard() else {
            return;
        };
        let mapped = self.window_wl_surface(window).is_some_and(|surface| {
            smithay::backend::renderer::utils::with_renderer_surface_state(&surface, |s| {
                s.buffer().is_some()
            })
            .unwrap_or(false)
        });
        let on_top = self.space.elements().last() == Some(window);
        let focused = keyboard.current_focus() == self.window_wl_surface(window);
        if mapped && on_top && !focused {
            self.focus_window(Some(window), SERIAL_COUNTER.next_serial());
        }
    }
}
