//! Frames pulled from `waylanddisplaysrc` show what clients draw.

use crate::fixture::*;

const RED: u32 = 0xFF0000;
const GREEN: u32 = 0x00FF00;
const BLUE: u32 = 0x0000FF;
const WHITE: u32 = 0xFFFFFF;

#[test]
fn test_client_quadrants_reach_the_appsink() {
    let dir = TempDir::new("quadrants");
    let handle = start(&dir, 320, 240, 30);
    let frames = Frames::new(&handle);

    // Before any client: black.
    let first = Frame::from_sample(&frames.pull());
    assert_eq!((first.width, first.height), (320, 240));
    assert_eq!(first.rgb(10, 10) & 0xFFFFFF, 0);

    let log = dir.path().join("client.log");
    let _client = spawn_test_client(&handle, &log);
    let frame = frames.wait_frame("the red quadrant", |f| f.rgb(40, 40) == RED);
    // Pointer cursor sits in the middle; sample away from it.
    assert_eq!(frame.rgb(40, 40), RED);
    assert_eq!(frame.rgb(280, 40), GREEN);
    assert_eq!(frame.rgb(40, 200), BLUE);
    assert_eq!(frame.rgb(280, 200), WHITE);
    assert_eq!(frame.rgb(0, 0), RED);
    assert_eq!(frame.rgb(319, 239), WHITE);

    // The client was configured fullscreen at the stream size.
    wait_for_line(&log, 0, "configure width=320 height=240 fullscreen=true");
    wait_for_line(&log, 0, "decoration mode=server");

    // Frames keep coming with increasing timestamps one frame apart (repeats included).
    let a = Frame::from_sample(&frames.pull());
    let b = Frame::from_sample(&frames.pull());
    let (pa, pb) = (a.pts.unwrap(), b.pts.unwrap());
    assert!(pb > pa, "pts {pb} after {pa}");
    assert_eq!((pb - pa).nseconds() % (1_000_000_000 / 30), 0);
    assert_eq!(b.rgb(280, 200), WHITE);
}

#[test]
fn cursor_is_drawn_at_the_pointer() {
    let dir = TempDir::new("cursor");
    let handle = start(&dir, 320, 240, 30);
    let frames = Frames::new(&handle);
    let log = dir.path().join("client.log");
    let _client = spawn_test_client(&handle, &log);
    frames.wait_frame("the client", |f| f.rgb(280, 200) == WHITE);
    handle
        .send_input(hati_compositor::InputEvent::PointerMotionAbsolute {
            x: 40.0,
            y: 40.0,
            width: 320.0,
            height: 240.0,
        })
        .unwrap();
    // The arrow's outline is black at its tip and its inside white, over the red quadrant.
    let frame = frames.wait_frame("the cursor tip", |f| f.rgb(40, 40) == 0);
    assert_eq!(frame.rgb(40, 40), 0);
    assert_eq!(frame.rgb(41, 45), WHITE);
    assert_eq!(frame.rgb(39, 39), RED);
    assert_eq!(frame.rgb(60, 40), RED);
}

#[test]
fn weston_simple_shm_is_rendered() {
    let Some(program) = which("weston-simple-shm") else {
        skip(
            "weston_simple_shm_is_rendered",
            "weston-simple-shm is not installed",
        );
        return;
    };
    let dir = TempDir::new("simple-shm");
    let handle = start(&dir, 320, 240, 30);
    let frames = Frames::new(&handle);
    let _client = spawn(&handle, program.to_str().unwrap(), &[], &[]);
    // simple-shm draws an animated pattern into a 250x250 window at (0, 0).
    let frame = frames.wait_frame("simple-shm's pattern", |f| {
        (0..240)
            .step_by(8)
            .any(|y| (0..240).step_by(8).any(|x| f.rgb(x, y) != 0))
    });
    let coloured = (0..240)
        .step_by(4)
        .flat_map(|y| (0..240).step_by(4).map(move |x| (x, y)))
        .filter(|&(x, y)| frame.rgb(x, y) != 0)
        .count();
    assert!(coloured > 100, "only {coloured} coloured samples");
    // It animates: a later frame differs.
    let later = frames.wait_frame("a changed frame", |f| f.data != frame.data);
    assert_ne!(later.data, frame.data);
}

#[test]
fn a_client_cursor_surface_is_drawn() {
    let dir = TempDir::new("client-cursor");
    let handle = start(&dir, 320, 240, 30);
    let frames = Frames::new(&handle);
    let log = dir.path().join("client.log");
    let _client = spawn(
        &handle,
        &test_client_bin(),
        &[],
        &[
            ("HATI_TEST_CLIENT_LOG", log.as_path()),
            ("HATI_TEST_CLIENT_CURSOR", std::path::Path::new("1")),
        ],
    );
    wait_for_line(&log, 0, "keyboard enter");
    handle
        .send_input(hati_compositor::InputEvent::PointerMotionAbsolute {
            x: 40.0,
            y: 40.0,
            width: 320.0,
            height: 240.0,
        })
        .unwrap();
    wait_for_line(&log, 0, "cursor set");
    let magenta = 0xFF00FF;
    let frame = frames.wait_frame("the magenta cursor", |f| f.rgb(40, 40) == magenta);
    assert_eq!(frame.rgb(47, 47), magenta);
    assert_eq!(frame.rgb(48, 48), RED);
    assert_eq!(frame.rgb(39, 39), RED);
}
