//! Several consumers of one compositor (the streams of a shared session): each change is
//! rendered once and every consumer gets it; a consumer may run below the compositor's rate.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use gst::prelude::*;
use hati_compositor::{CompositorHandle, FrameConsumer, FrameOutcome, InputEvent};

use crate::fixture::*;

const WIDTH: usize = 320;
const HEIGHT: usize = 240;
const RED: u32 = 0xFF0000;
const WHITE: u32 = 0xFFFFFF;
/// The arrow cursor's tip is black.
const TIP: u32 = 0;

/// A frame-sized buffer to render into.
fn target() -> gst::Buffer {
    gst::Buffer::with_size(WIDTH * HEIGHT * 4).unwrap()
}

/// `0xRRGGBB` at (x, y) of a BGRx buffer of the compositor's size.
fn rgb(buffer: &gst::Buffer, x: usize, y: usize) -> u32 {
    let map = buffer.map_readable().unwrap();
    let i = y * WIDTH * 4 + x * 4;
    let px = &map.as_slice()[i..i + 4];
    (u32::from(px[2]) << 16) | (u32::from(px[1]) << 8) | u32::from(px[0])
}

/// What a consumer's render answered, without the buffer.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Rendered,
    Shared,
    Unchanged,
}

fn render(consumer: &mut FrameConsumer) -> (Kind, gst::Buffer) {
    match consumer.render(target(), false).unwrap() {
        FrameOutcome::Rendered(buffer) => (Kind::Rendered, buffer),
        FrameOutcome::Shared(buffer) => (Kind::Shared, buffer),
        FrameOutcome::Unchanged(buffer) => (Kind::Unchanged, buffer),
    }
}

#[track_caller]
fn expect(consumer: &mut FrameConsumer, kind: Kind) -> gst::Buffer {
    let (got, buffer) = render(consumer);
    assert_eq!(got, kind, "serial now {}", consumer.serial());
    buffer
}

/// Moves the pointer (so the cursor, a change every consumer must see) to (x, y).
fn move_pointer(handle: &CompositorHandle, x: usize, y: usize) {
    // Input and render requests share one queue, so the next render sees the move.
    handle
        .send_input(InputEvent::PointerMotionAbsolute {
            x: x as f64,
            y: y as f64,
            width: WIDTH as f64,
            height: HEIGHT as f64,
        })
        .unwrap();
}

/// Renders for `consumer` until the output has stopped changing (two `Unchanged` answers in a
/// row); returns the last frame it received.
#[track_caller]
fn settle(consumer: &mut FrameConsumer) -> gst::Buffer {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut newest = None;
    let mut quiet = 0;
    while quiet < 2 {
        assert!(Instant::now() < deadline, "the desktop never settled");
        let (kind, buffer) = render(consumer);
        if kind == Kind::Unchanged {
            quiet += 1;
        } else {
            quiet = 0;
            newest = Some(buffer);
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    newest.expect("a first frame")
}

/// Moves the pointer to `at`; `first` asks first and renders the change, `second` gets the same
/// frame, and both are then up to date.
#[track_caller]
fn change_seen_by_both(
    handle: &CompositorHandle,
    (x, y): (usize, usize),
    first: &mut FrameConsumer,
    second: &mut FrameConsumer,
) {
    move_pointer(handle, x, y);
    let rendered = expect(first, Kind::Rendered);
    assert_eq!(rgb(&rendered, x, y), TIP);
    let shared = expect(second, Kind::Shared);
    assert_eq!(shared.as_ptr(), rendered.as_ptr());
    assert_eq!(rgb(&shared, x, y), TIP);
    assert_eq!(first.serial(), second.serial());
    expect(first, Kind::Unchanged);
    expect(second, Kind::Unchanged);
}

/// Starts a compositor with `hati-test-client` drawn and nothing changing any more.
fn settled_desktop(dir: &TempDir) -> (CompositorHandle, ClientProcess) {
    let handle = start(dir, WIDTH as u32, HEIGHT as u32, 30);
    let log = dir.path().join("client.log");
    let client = spawn_test_client(&handle, &log);
    wait_for_line(&log, 0, "drawn width=320 height=240");
    // Settled by a consumer that goes away again: the one under test starts fresh.
    settle(&mut handle.frame_consumer());
    (handle, client)
}

#[test]
fn two_consumers_both_get_each_change_rendered_once() {
    let dir = TempDir::new("share-direct");
    let handle = start(&dir, WIDTH as u32, HEIGHT as u32, 30);
    let mut a = handle.frame_consumer();
    let mut b = handle.frame_consumer();

    // The first frame: `a` renders it, `b` gets the same buffer.
    let first = expect(&mut a, Kind::Rendered);
    let shared = expect(&mut b, Kind::Shared);
    assert_eq!(shared.as_ptr(), first.as_ptr(), "not the same frame");
    assert_eq!(a.serial(), b.serial());
    expect(&mut a, Kind::Unchanged);
    expect(&mut b, Kind::Unchanged);

    // A client draws; `b` happens to ask first and renders, `a` then gets its frame.
    let log = dir.path().join("client.log");
    let _client = spawn_test_client(&handle, &log);
    wait_for_line(&log, 0, "drawn width=320 height=240");
    let drawn = settle(&mut b);
    assert_eq!(rgb(&drawn, 40, 40), RED);
    assert!(!drawn.is_writable(), "a shared frame must be kept for `a`");
    let seen = expect(&mut a, Kind::Shared);
    assert_eq!(seen.as_ptr(), drawn.as_ptr());
    assert_eq!(rgb(&seen, 280, 200), WHITE);

    // Each change of the pointer, whoever asks first: the other sees it too, then both are
    // up to date.
    change_seen_by_both(&handle, (40, 40), &mut a, &mut b);
    change_seen_by_both(&handle, (280, 200), &mut b, &mut a);

    // `b` leaves: `a` alone again gets its own buffer back with no reference kept.
    drop(b);
    move_pointer(&handle, 100, 100);
    let alone = expect(&mut a, Kind::Rendered);
    assert!(alone.is_writable(), "a lone consumer's frame was kept");
}

#[test]
fn a_lone_consumer_renders_into_its_own_buffer_as_before() {
    let dir = TempDir::new("share-lone");
    let (handle, _client) = settled_desktop(&dir);
    let mut consumer = handle.frame_consumer();

    // Its first frame is drawn for it, into the very buffer it gave, which nothing else holds.
    let given = target();
    let given_ptr = given.as_ptr();
    let FrameOutcome::Rendered(frame) = consumer.render(given, false).unwrap() else {
        panic!("the first frame was not rendered");
    };
    assert_eq!(frame.as_ptr(), given_ptr);
    assert!(
        frame.is_writable(),
        "a reference to a lone consumer's frame was kept"
    );
    assert_eq!(rgb(&frame, 40, 40), RED);
    let FrameOutcome::Unchanged(back) = consumer.render(frame, false).unwrap() else {
        panic!("a settled desktop changed");
    };
    assert_eq!(back.as_ptr(), given_ptr, "Unchanged hands the buffer back");

    move_pointer(&handle, 40, 40);
    let moved = expect(&mut consumer, Kind::Rendered);
    assert!(moved.is_writable());
    assert_eq!(rgb(&moved, 40, 40), TIP);
    expect(&mut consumer, Kind::Unchanged);
    // `force` redraws an unchanged output.
    assert!(matches!(
        consumer.render(target(), true).unwrap(),
        FrameOutcome::Rendered(_)
    ));

    // A plain `render` caller takes a change; the consumer, behind and with nothing kept for
    // it, gets that change drawn again.
    move_pointer(&handle, 280, 200);
    assert!(matches!(
        handle.render(target(), false).unwrap(),
        FrameOutcome::Rendered(_)
    ));
    assert!(matches!(
        handle.render(target(), false).unwrap(),
        FrameOutcome::Unchanged(_)
    ));
    let redrawn = expect(&mut consumer, Kind::Rendered);
    assert_eq!(rgb(&redrawn, 280, 200), TIP);
    expect(&mut consumer, Kind::Unchanged);
}

#[test]
fn two_elements_on_one_compositor_both_show_each_change() {
    let dir = TempDir::new("share-elements");
    let handle = start(&dir, WIDTH as u32, HEIGHT as u32, 60);
    // A lobby: the owner at the compositor's rate, a guest at half of it.
    let owner = Frames::new(&handle);
    let guest = Frames::with_properties(&handle, "output-fps=30");
    owner.pull();
    guest.pull();
    assert_eq!(owner.framerate(), gst::Fraction::new(60, 1));
    assert_eq!(guest.framerate(), gst::Fraction::new(30, 1));

    let log = dir.path().join("client.log");
    let _client = spawn_test_client(&handle, &log);
    for frames in [&owner, &guest] {
        let frame = frames.wait_frame("the red quadrant", |f| f.rgb(40, 40) == RED);
        assert_eq!(frame.rgb(280, 200), WHITE);
    }
    // One change, rendered by whichever element asks first: both must show it.
    for (x, y) in [(40, 40), (280, 200)] {
        move_pointer(&handle, x, y);
        for frames in [&owner, &guest] {
            frames.wait_frame("the cursor tip", |f| f.rgb(x, y) == TIP);
        }
    }
}

#[test]
fn output_fps_paces_an_element_below_its_compositor() {
    let dir = TempDir::new("output-fps");
    let handle = start(&dir, 64, 48, 60);
    let pipeline = gst::parse::launch(&format!(
        "waylanddisplaysrc name=src wayland-display={} output-fps=30 ! fakesink name=sink sync=false",
        handle.wayland_display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let src = pipeline.by_name("src").unwrap();
    assert_eq!(src.property::<u32>("output-fps"), 30);
    let count = Arc::new(AtomicU64::new(0));
    let bad_timing = Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let count = count.clone();
        let bad_timing = bad_timing.clone();
        let frame = gst::ClockTime::SECOND / 30;
        src.static_pad("src")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(buffer) = info.buffer() {
                    let on_grid = buffer
                        .pts()
                        .is_some_and(|pts| pts.nseconds() % frame.nseconds() == 0);
                    if buffer.duration() != Some(frame) || !on_grid {
                        bad_timing
                            .lock()
                            .unwrap()
                            .push((buffer.pts(), buffer.duration()));
                    }
                }
                count.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
    }
    pipeline.set_state(gst::State::Playing).unwrap();
    wait_for("the first buffer", Duration::from_secs(5), || {
        count.load(Ordering::Relaxed) > 0
    });
    let (start_count, started) = (count.load(Ordering::Relaxed), Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let produced = count.load(Ordering::Relaxed) - start_count;
    let per_second = produced as f64 / started.elapsed().as_secs_f64();
    let caps = src.static_pad("src").unwrap().current_caps().unwrap();
    pipeline.set_state(gst::State::Null).unwrap();

    // 30 a second, not the compositor's 60 (a busy machine may skip a few, never add any).
    assert!(
        (22.0..=33.0).contains(&per_second),
        "{per_second:.1} buffers a second"
    );
    assert_eq!(
        caps.structure(0)
            .unwrap()
            .get::<gst::Fraction>("framerate")
            .unwrap(),
        gst::Fraction::new(30, 1)
    );
    assert_eq!(*bad_timing.lock().unwrap(), Vec::new());
}
