//! 100 clients connecting and leaving leak no file descriptors. Its own test binary, so that no
//! other test opens descriptors while it counts.

use std::{os::unix::net::UnixStream, time::Duration};

use hati_compositor::{Compositor, CompositorConfig};
use wayland_client::{
    Connection, Dispatch, QueueHandle, delegate_noop,
    protocol::{wl_compositor, wl_registry, wl_surface},
};
use wayland_protocols::xdg::shell::client::{xdg_surface, xdg_toplevel, xdg_wm_base};

#[derive(Default)]
struct Client {
    compositor: Option<wl_compositor::WlCompositor>,
    wm_base: Option<xdg_wm_base::XdgWmBase>,
    configured: bool,
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
            name, interface, ..
        } = event
        {
            match interface.as_str() {
                "wl_compositor" => state.compositor = Some(registry.bind(name, 4, qh, ())),
                "xdg_wm_base" => state.wm_base = Some(registry.bind(name, 1, qh, ())),
                _ => {}
            }
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

delegate_noop!(Client: ignore wl_compositor::WlCompositor);
delegate_noop!(Client: ignore wl_surface::WlSurface);
delegate_noop!(Client: ignore xdg_wm_base::XdgWmBase);
delegate_noop!(Client: ignore xdg_toplevel::XdgToplevel);

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn hundred_clients_leak_no_fds() {
    let dir = std::env::temp_dir().join(format!("hati-test-fds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let handle = Compositor::start(CompositorConfig {
        width: 64,
        height: 64,
        fps: 60,
        runtime_dir: dir.clone(),
        xwayland: false,
        on_thread_start: None,
    })
    .unwrap();
    // Warm up once so lazily created descriptors are not counted as leaks.
    let one = || {
        let stream = UnixStream::connect(handle.socket_path()).unwrap();
        let conn = Connection::from_socket(stream).unwrap();
        let mut queue = conn.new_event_queue();
        let qh = queue.handle();
        conn.display().get_registry(&qh, ());
        let mut client = Client::default();
        queue.roundtrip(&mut client).unwrap();
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
    };
    one();
    let wait_gone = || {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while handle.stats().unwrap().clients != 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "clients never went away"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_gone();
    let before = open_fds();
    for _ in 0..100 {
        one();
    }
    wait_gone();
    let after = open_fds();
    assert_eq!(before, after, "descriptors before and after 100 clients");
    let stats = handle.stats().unwrap();
    assert_eq!(stats.windows, 0);
    handle.stop();
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "socket files left behind"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
