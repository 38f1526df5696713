//! Starting and stopping: sockets and lock files appear and go.

use crate::fixture::*;

#[test]
fn stop_removes_the_socket_and_lock_file() {
    let dir = TempDir::new("stop");
    let handle = start(&dir, 64, 64, 10);
    let socket = handle.socket_path().to_owned();
    let lock = socket.with_extension("lock");
    assert!(socket.exists());
    assert!(lock.exists());
    assert_eq!(socket.parent(), Some(dir.path()));
    let clone = handle.clone();
    handle.stop();
    assert!(!socket.exists(), "socket left behind");
    assert!(!lock.exists(), "lock file left behind");
    assert!(clone.stats().is_err(), "a stopped compositor answers");
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "files left behind"
    );
}

#[test]
fn dropping_the_last_handle_stops_it() {
    let dir = TempDir::new("drop");
    let handle = start(&dir, 64, 64, 10);
    let socket = handle.socket_path().to_owned();
    let name = handle.wayland_display().to_owned();
    assert!(hati_compositor::CompositorHandle::by_socket_name(&name).is_some());
    drop(handle);
    assert!(!socket.exists());
    assert!(hati_compositor::CompositorHandle::by_socket_name(&name).is_none());
}

#[test]
fn element_starts_its_own_compositor() {
    init();
    let dir = TempDir::new("element");
    let pipeline = gst::parse::launch(&format!(
        "waylanddisplaysrc name=src width=128 height=96 framerate=15 xwayland=false runtime-dir={} \
         ! appsink name=sink sync=false",
        dir.path().display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    use gst::prelude::*;
    pipeline.set_state(gst::State::Playing).unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    let sample = sink
        .try_pull_sample(gst::ClockTime::from_seconds(5))
        .unwrap();
    let caps = sample.caps().unwrap().structure(0).unwrap().to_owned();
    assert_eq!(caps.get::<i32>("width").unwrap(), 128);
    assert_eq!(caps.get::<i32>("height").unwrap(), 96);
    assert_eq!(
        caps.get::<gst::Fraction>("framerate").unwrap(),
        gst::Fraction::new(15, 1)
    );
    assert_eq!(caps.get::<&str>("format").unwrap(), "BGRx");
    let name: String = pipeline.by_name("src").unwrap().property("wayland-display");
    assert!(dir.path().join(&name).exists());
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(
        !dir.path().join(&name).exists(),
        "the element's compositor outlived it"
    );
}

#[test]
fn bad_configs_are_refused() {
    let dir = TempDir::new("bad");
    let mut config = hati_compositor::CompositorConfig {
        width: 0,
        height: 64,
        fps: 30,
        runtime_dir: dir.path().to_owned(),
        xwayland: false,
        on_thread_start: None,
    };
    assert!(hati_compositor::Compositor::start(config.clone()).is_err());
    config.width = 64;
    config.fps = 0;
    assert!(hati_compositor::Compositor::start(config.clone()).is_err());
    config.fps = 30;
    config.runtime_dir = dir.path().join("missing");
    assert!(hati_compositor::Compositor::start(config).is_err());
}
