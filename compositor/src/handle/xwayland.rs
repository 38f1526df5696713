//! XWayland: spawning it and its X11 window manager when the binary exists, and shutting it
//! down with the compositor.

use std::{
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use smithay::{
    reexports::calloop::EventLoop,
    xwayland::{X11Wm, XWayland, XWaylandEvent},
};
use tracing::{debug, info, warn};

use crate::state::State;

/// Spawns XWayland if the binary exists; returns the `DISPLAY` value.
pub(super) fn start_xwayland(state: &mut State) -> Option<String> {
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

/// Longest wait for the X11 window manager to see XWayland go.
const XWAYLAND_SHUTDOWN: Duration = Duration::from_secs(3);

/// Kills XWayland and lets the X11 window manager notice. Its event source holds a handle to
/// the event loop, a reference cycle that only ends when its X11 connection closes; without
/// this the loop, its sources and the X11 socket files would outlive the compositor.
pub(super) fn shut_down_xwayland(event_loop: &mut EventLoop<'static, State>, state: &mut State) {
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
