//! Clients come and go without harming the compositor or each other.

use std::time::Duration;

use crate::fixture::*;

#[test]
fn a_killed_client_does_not_take_the_compositor_down() {
    let dir = TempDir::new("crash");
    let handle = start(&dir, 160, 120, 30);
    let frames = Frames::new(&handle);
    let log = dir.path().join("first.log");
    let mut client = spawn_test_client(&handle, &log);
    wait_for("the first client's window", Duration::from_secs(10), || {
        handle.stats().unwrap().windows == 1
    });
    frames.wait_frame("the first client", |f| f.rgb(10, 10) == 0xFF0000);
    client.0.kill().unwrap();
    client.0.wait().unwrap();
    wait_for("the window to go", Duration::from_secs(10), || {
        let stats = handle.stats().unwrap();
        stats.windows == 0 && stats.clients == 0
    });
    frames.wait_frame("black again", |f| f.rgb(10, 10) == 0);

    let log = dir.path().join("second.log");
    let _second = spawn_test_client(&handle, &log);
    frames.wait_frame("the second client", |f| f.rgb(10, 10) == 0xFF0000);
    wait_for_line(&log, 0, "keyboard enter");
}

#[test]
fn two_compositors_do_not_share_clients() {
    let dir_a = TempDir::new("side-a");
    let dir_b = TempDir::new("side-b");
    let a = start(&dir_a, 160, 120, 30);
    let b = start(&dir_b, 160, 120, 30);
    assert_ne!(a.socket_path(), b.socket_path());
    let frames_a = Frames::new(&a);
    let frames_b = Frames::new(&b);
    let log = dir_a.path().join("client.log");
    let _client = spawn_test_client(&a, &log);
    frames_a.wait_frame("the client on A", |f| f.rgb(10, 10) == 0xFF0000);
    assert_eq!(a.stats().unwrap().windows, 1);
    let stats_b = b.stats().unwrap();
    assert_eq!((stats_b.clients, stats_b.windows), (0, 0));
    for _ in 0..5 {
        assert_eq!(
            Frame::from_sample(&frames_b.pull()).rgb(10, 10),
            0,
            "B shows A's client"
        );
    }

    // Same runtime directory: distinct sockets, still separate.
    let c = start(&dir_a, 160, 120, 30);
    assert_ne!(c.wayland_display(), a.wayland_display());
    assert_eq!(c.stats().unwrap().windows, 0);
}

#[test]
fn x11_clients_run_through_xwayland() {
    let (Some(_), Some(xmessage)) = (which("Xwayland"), which("xmessage")) else {
        skip(
            "x11_clients_run_through_xwayland",
            "Xwayland or xmessage is not installed",
        );
        return;
    };
    let dir = TempDir::new("xwayland");
    init();
    let handle = hati_compositor::Compositor::start(hati_compositor::CompositorConfig {
        width: 320,
        height: 240,
        fps: 30,
        runtime_dir: dir.path().to_owned(),
        xwayland: true,
        on_thread_start: None,
    })
    .unwrap();
    let display = handle.x11_display().expect("XWayland runs").to_owned();
    let socket = std::path::PathBuf::from(format!("/tmp/.X11-unix/X{}", &display[1..]));
    assert!(socket.exists(), "{} missing", socket.display());
    let frames = Frames::new(&handle);
    let _client = spawn(
        &handle,
        xmessage.to_str().unwrap(),
        &["hati xwayland test"],
        &[],
    );
    wait_for("the X11 window", Duration::from_secs(15), || {
        handle.stats().unwrap().windows == 1
    });
    // xmessage is configured fullscreen: something other than black appears.
    frames.wait_frame("xmessage's window", |f| {
        let coloured = (0..f.height)
            .step_by(4)
            .flat_map(|y| (0..f.width).step_by(4).map(move |x| (x, y)))
            .filter(|&(x, y)| f.rgb(x, y) != 0)
            .count();
        // 80x60 samples; the cursor covers a handful.
        coloured > 1000
    });
    // The X11 window has keyboard focus through XWayland's wl_surface.
    assert_eq!(handle.stats().unwrap().windows, 1);
    drop(frames);
    handle.stop();
    assert!(!socket.exists(), "{} left behind", socket.display());
}

#[test]
fn x11_clients_get_keyboard_input() {
    let (Some(_), Some(xev)) = (which("Xwayland"), which("xev")) else {
        skip(
            "x11_clients_get_keyboard_input",
            "Xwayland or xev is not installed",
        );
        return;
    };
    let dir = TempDir::new("xev");
    init();
    let handle = hati_compositor::Compositor::start(hati_compositor::CompositorConfig {
        width: 320,
        height: 240,
        fps: 30,
        runtime_dir: dir.path().to_owned(),
        xwayland: true,
        on_thread_start: None,
    })
    .unwrap();
    let out = dir.path().join("xev.out");
    let mut cmd = std::process::Command::new(xev);
    cmd.args(["-event", "keyboard"])
        .env_remove("WAYLAND_DISPLAY")
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::process::Stdio::null());
    for (key, value) in handle.client_env() {
        cmd.env(key, value);
    }
    let _client = ClientProcess(cmd.spawn().unwrap());
    wait_for("the xev window", Duration::from_secs(15), || {
        handle.stats().unwrap().windows == 1
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        handle
            .send_input(hati_compositor::InputEvent::KeyboardKey {
                linux_keycode: 30,
                pressed: true,
            })
            .unwrap();
        handle
            .send_input(hati_compositor::InputEvent::KeyboardKey {
                linux_keycode: 30,
                pressed: false,
            })
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        if text.contains("KeyPress event") && text.contains("(keysym 0x61, a)") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "xev saw no key press; output:\n{text}"
        );
    }
}
