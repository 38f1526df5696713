//! What an in-process `wayland-client` sees: the advertised globals and frame callbacks paced
//! at the stream rate.

use std::{
    io::Write,
    os::{fd::AsFd, unix::net::UnixStream},
    time::{Duration, Instant},
};

use wayland_client::{
    Connection, Dispatch, QueueHandle, delegate_noop,
    protocol::{
        wl_buffer, wl_callback, wl_compositor, wl_registry, wl_shm, wl_shm_pool, wl_surface,
    },
};
use wayland_protocols::xdg::shell::client::{
    xdg_popup, xdg_positioner, xdg_surface, xdg_toplevel, xdg_wm_base,
};

use crate::fixture::*;

#[derive(Default)]
struct Client {
    globals: Vec<(String, u32)>,
    compositor: Option<wl_compositor::WlCompositor>,
    shm: Option<wl_shm::WlShm>,
    wm_base: Option<xdg_wm_base::XdgWmBase>,
    configured: bool,
    frames: u32,
    frame_pending: bool,
    popup_configure: Option<(i32, i32, i32, i32)>,
}

impl Dispatch<wl_registry::WlRegistry, ()> for Client {
    fn event(
        state: &mut Self,
        registry: &wl_registry::WlRegistry,
        event: wl_registry::Event,
        _: &(),
        _: &Connection,
        qh: &QueueHandle<Self>,
    ) {
        if let wl_registry::Event::Global {
            name,
            interface,
            version,
        } = event
        {
            match interface.as_str() {
                "wl_compositor" => state.compositor = Some(registry.bind(name, 4, qh, ())),
                "wl_shm" => state.shm = Some(registry.bind(name, 1, qh, ())),
                "xdg_wm_base" => state.wm_base = Some(registry.bind(name, 1, qh, ())),
                _ => {}
            }
            state.globals.push((interface, version));
        }
    }
}

impl Dispatch<xdg_surface::XdgSurface, ()> for Client {
    fn event(
        state: &mut Self,
        surface: &xdg_surface::XdgSurface,
        event: xdg_surface::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_surface::Event::Configure { serial } = event {
            surface.ack_configure(serial);
            state.configured = true;
        }
    }
}

impl Dispatch<wl_callback::WlCallback, ()> for Client {
    fn event(
        state: &mut Self,
        _: &wl_callback::WlCallback,
        event: wl_callback::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_callback::Event::Done { .. } = event {
            state.frames += 1;
            state.frame_pending = false;
        }
    }
}

delegate_noop!(Client: ignore wl_compositor::WlCompositor);
delegate_noop!(Client: ignore wl_surface::WlSurface);
delegate_noop!(Client: ignore wl_shm::WlShm);
delegate_noop!(Client: ignore wl_shm_pool::WlShmPool);
delegate_noop!(Client: ignore wl_buffer::WlBuffer);
delegate_noop!(Client: ignore xdg_wm_base::XdgWmBase);
delegate_noop!(Client: ignore xdg_toplevel::XdgToplevel);
delegate_noop!(Client: ignore xdg_positioner::XdgPositioner);

impl Dispatch<xdg_popup::XdgPopup, ()> for Client {
    fn event(
        state: &mut Self,
        _: &xdg_popup::XdgPopup,
        event: xdg_popup::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_popup::Event::Configure {
            x,
            y,
            width,
            height,
        } = event
        {
            state.popup_configure = Some((x, y, width, height));
        }
    }
}

fn connect(
    handle: &hati_compositor::CompositorHandle,
) -> (Connection, wayland_client::EventQueue<Client>, Client) {
    let conn = Connection::from_socket(UnixStream::connect(handle.socket_path()).unwrap()).unwrap();
    let mut queue = conn.new_event_queue();
    conn.display().get_registry(&queue.handle(), ());
    let mut client = Client::default();
    queue.roundtrip(&mut client).unwrap();
    (conn, queue, client)
}

#[test]
fn the_advertised_globals() {
    let dir = TempDir::new("globals");
    let handle = start(&dir, 64, 64, 30);
    let (_conn, _queue, client) = connect(&handle);
    let names: Vec<&str> = client.globals.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "wl_compositor",
        "wl_subcompositor",
        "wl_shm",
        "wl_seat",
        "wl_output",
        "wl_data_device_manager",
        "xdg_wm_base",
        "zxdg_output_manager_v1",
        "zxdg_decoration_manager_v1",
        "wp_viewporter",
        "wp_presentation",
        "zwp_relative_pointer_manager_v1",
        "zwp_pointer_constraints_v1",
        "zwp_tablet_manager_v2",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let seat = client.globals.iter().find(|(n, _)| n == "wl_seat").unwrap();
    assert!(seat.1 >= 8, "wl_seat v{} lacks axis_value120", seat.1);
}

#[test]
fn frame_callbacks_follow_the_stream_rate() {
    let dir = TempDir::new("pacing");
    let handle = start(&dir, 64, 64, 30);
    let (_conn, mut queue, mut client) = connect(&handle);
    let qh = queue.handle();
    let surface = client.compositor.as_ref().unwrap().create_surface(&qh, ());
    let xdg = client
        .wm_base
        .as_ref()
        .unwrap()
        .get_xdg_surface(&surface, &qh, ());
    let _toplevel = xdg.get_toplevel(&qh, ());
    surface.commit();
    while !client.configured {
        queue.blocking_dispatch(&mut client).unwrap();
    }
    let mut file = tempfile_in(dir.path());
    file.write_all(&[0x80; 64 * 64 * 4]).unwrap();
    let pool = client
        .shm
        .as_ref()
        .unwrap()
        .create_pool(file.as_fd(), 64 * 64 * 4, &qh, ());
    let buffer = pool.create_buffer(0, 64, 64, 256, wl_shm::Format::Xrgb8888, &qh, ());
    surface.attach(Some(&buffer), 0, 0);
    surface.commit();

    // Ask for a frame callback after each one, as an animating client does, for one second.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        if !client.frame_pending {
            surface.frame(&qh, ());
            surface.damage_buffer(0, 0, 64, 64);
            surface.attach(Some(&buffer), 0, 0);
            surface.commit();
            client.frame_pending = true;
        }
        // A callback is always pending, so this returns at least once per frame interval.
        queue.blocking_dispatch(&mut client).unwrap();
    }
    assert!(
        (25..=35).contains(&client.frames),
        "{} frame callbacks in 1 s at 30 fps",
        client.frames
    );
}

/// An unlinked temporary file.
fn tempfile_in(dir: &std::path::Path) -> std::fs::File {
    let path = dir.join("shm");
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    file
}

#[test]
fn popups_are_configured_inside_the_output() {
    let dir = TempDir::new("popup");
    let handle = start(&dir, 320, 240, 30);
    let (_conn, mut queue, mut client) = connect(&handle);
    let qh = queue.handle();
    let wm_base = client.wm_base.clone().unwrap();
    let surface = client.compositor.as_ref().unwrap().create_surface(&qh, ());
    let xdg = wm_base.get_xdg_surface(&surface, &qh, ());
    let _toplevel = xdg.get_toplevel(&qh, ());
    surface.commit();
    while !client.configured {
        queue.blocking_dispatch(&mut client).unwrap();
    }
    let mut file = tempfile_in(dir.path());
    file.write_all(&vec![0x80; 320 * 240 * 4]).unwrap();
    let pool = client
        .shm
        .as_ref()
        .unwrap()
        .create_pool(file.as_fd(), 320 * 240 * 4, &qh, ());
    let buffer = pool.create_buffer(0, 320, 240, 320 * 4, wl_shm::Format::Xrgb8888, &qh, ());
    surface.attach(Some(&buffer), 0, 0);
    surface.commit();

    // A 100x50 menu anchored at the bottom-right corner of a rectangle near the right edge:
    // it would stick out, so the compositor slides it back inside.
    let positioner = wm_base.create_positioner(&qh, ());
    positioner.set_size(100, 50);
    positioner.set_anchor_rect(300, 10, 10, 10);
    positioner.set_anchor(xdg_positioner::Anchor::BottomRight);
    positioner.set_gravity(xdg_positioner::Gravity::BottomRight);
    positioner.set_constraint_adjustment(xdg_positioner::ConstraintAdjustment::SlideX);
    let popup_surface = client.compositor.as_ref().unwrap().create_surface(&qh, ());
    let popup_xdg = wm_base.get_xdg_surface(&popup_surface, &qh, ());
    let _popup = popup_xdg.get_popup(Some(&xdg), &positioner, &qh, ());
    popup_surface.commit();
    let deadline = Instant::now() + Duration::from_secs(5);
    while client.popup_configure.is_none() {
        assert!(Instant::now() < deadline, "no popup configure");
        queue.blocking_dispatch(&mut client).unwrap();
    }
    let (x, y, w, h) = client.popup_configure.unwrap();
    assert_eq!((w, h), (100, 50));
    assert_eq!(y, 20);
    assert!(x + w <= 320, "popup at x={x} sticks out of the output");
}
