//! `waylanddisplaysrc` as a GStreamer element: timestamps, caps and flushing.

use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_base::prelude::*;

use crate::fixture::*;

#[test]
fn harness_pulls_frames_one_interval_apart() {
    let dir = TempDir::new("harness");
    let handle = start(&dir, 64, 48, 50);
    let mut h = gst_check::Harness::new_parse(&format!(
        "waylanddisplaysrc wayland-display={}",
        handle.wayland_display()
    ));
    h.use_systemclock();
    h.play();
    let first = h.pull().unwrap();
    let second = h.pull().unwrap();
    assert_eq!(first.size(), 64 * 48 * 4);
    let interval = gst::ClockTime::from_mseconds(20);
    assert_eq!(first.duration(), Some(interval));
    let gap = second.pts().unwrap() - first.pts().unwrap();
    assert!(
        gap >= interval && gap.nseconds().is_multiple_of(interval.nseconds()),
        "gap {gap}"
    );
    assert_eq!(
        second.offset(),
        first.offset() + gap.nseconds() / interval.nseconds()
    );
    let caps = h.sinkpad().unwrap().current_caps().unwrap();
    let s = caps.structure(0).unwrap();
    assert_eq!(s.get::<&str>("format").unwrap(), "BGRx");
    assert_eq!(
        s.get::<gst::Fraction>("framerate").unwrap(),
        gst::Fraction::new(50, 1)
    );
    // A static, empty desktop: the second frame repeats the first's pixels.
    assert_eq!(
        first.map_readable().unwrap().as_slice(),
        second.map_readable().unwrap().as_slice()
    );
}

#[test]
fn stopping_does_not_wait_for_the_next_frame() {
    let dir = TempDir::new("unlock");
    let handle = start(&dir, 32, 32, 1);
    let frames = Frames::new(&handle);
    frames.pull();
    // The next frame is due in up to a second; going to NULL must unlock the wait.
    let started = Instant::now();
    frames.pipeline.set_state(gst::State::Null).unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn the_element_reports_its_compositor() {
    init();
    let dir = TempDir::new("attach");
    let handle = start(&dir, 32, 32, 10);
    let src = gst::ElementFactory::make("waylanddisplaysrc")
        .build()
        .unwrap();
    let src = src
        .downcast::<hati_compositor::waylanddisplaysrc::WaylandDisplaySrc>()
        .unwrap();
    src.set_compositor(handle.clone());
    assert_eq!(
        src.compositor().unwrap().wayland_display(),
        handle.wayland_display()
    );
    let name: String = src.property("wayland-display");
    assert_eq!(name, handle.wayland_display());
    assert!(src.is_live());
}
