//! Input injected through the API reaches the focused client with the right values.

use std::path::Path;

use hati_compositor::{CompositorHandle, InputEvent, PenEvent, PenKind, TouchKind};

use crate::fixture::*;

/// Sends `events` and waits until the log shows `expected` in order after line `from`.
#[track_caller]
fn expect(
    handle: &CompositorHandle,
    log: &Path,
    events: Vec<InputEvent>,
    expected: &[&str],
) -> usize {
    let from = log_lines(log).len();
    for event in events {
        handle.send_input(event).unwrap();
    }
    let mut at = from;
    for line in expected {
        at = wait_for_line(log, at, line) + 1;
    }
    at
}

fn ready_client(tag: &str) -> (TempDir, CompositorHandle, std::path::PathBuf, ClientProcess) {
    let dir = TempDir::new(tag);
    let handle = start(&dir, 320, 240, 30);
    let log = dir.path().join("client.log");
    let client = spawn_test_client(&handle, &log);
    wait_for_line(&log, 0, "drawn width=320 height=240");
    wait_for_line(&log, 0, "keyboard enter");
    (dir, handle, log, client)
}

#[test]
fn keys_reach_the_focused_client() {
    let (_dir, handle, log, _client) = ready_client("keys");
    expect(
        &handle,
        &log,
        vec![
            InputEvent::KeyboardKey {
                linux_keycode: 30,
                pressed: true,
            },
            InputEvent::KeyboardKey {
                linux_keycode: 30,
                pressed: true,
            }, // repeat: dropped
            InputEvent::KeyboardKey {
                linux_keycode: 30,
                pressed: false,
            },
            InputEvent::KeyboardKey {
                linux_keycode: 31,
                pressed: false,
            }, // never pressed: dropped
            InputEvent::KeyboardKey {
                linux_keycode: 42,
                pressed: true,
            },
            InputEvent::KeyboardKey {
                linux_keycode: 42,
                pressed: false,
            },
            InputEvent::KeyboardKey {
                linux_keycode: hati_compositor::vk_to_evdev(0x70).unwrap(),
                pressed: true,
            },
            InputEvent::KeyboardKey {
                linux_keycode: hati_compositor::vk_to_evdev(0x70).unwrap(),
                pressed: false,
            },
        ],
        &[
            "keyboard key code=30 state=pressed",
            "keyboard key code=30 state=released",
            "keyboard key code=42 state=pressed",
            "keyboard modifiers depressed=1 latched=0 locked=0 group=0",
            "keyboard key code=42 state=released",
            "keyboard modifiers depressed=0 latched=0 locked=0 group=0",
            "keyboard key code=59 state=pressed",
            "keyboard key code=59 state=released",
        ],
    );
    let lines = log_lines(&log);
    let presses = lines
        .iter()
        .filter(|l| *l == "keyboard key code=30 state=pressed")
        .count();
    assert_eq!(presses, 1, "a repeated press went through");
    assert!(!lines.iter().any(|l| l.starts_with("keyboard key code=31")));
}

#[test]
fn text_is_typed_with_keys_or_a_temporary_keymap() {
    let (_dir, handle, log, _client) = ready_client("text");
    expect(
        &handle,
        &log,
        vec![InputEvent::Text("aA€".into())],
        &[
            "keyboard key code=30 state=pressed",
            "keyboard key code=30 state=released",
            "keyboard key code=42 state=pressed",
            "keyboard key code=30 state=pressed",
            "keyboard key code=30 state=released",
            "keyboard key code=42 state=released",
            // '€' is not in the US keymap: a keymap binding it to the spare key, the key, and
            // the US keymap again.
            "keyboard key code=240 state=pressed",
            "keyboard key code=240 state=released",
        ],
    );
    let keymaps = log_lines(&log)
        .iter()
        .filter(|l| l.starts_with("keyboard keymap"))
        .count();
    assert_eq!(keymaps, 3, "initial, temporary and restored keymaps");
}

#[test]
fn pointer_motion_buttons_and_scroll() {
    let (_dir, handle, log, _client) = ready_client("pointer");
    // Absolute positions are mapped from the client's reference frame onto 320x240.
    expect(
        &handle,
        &log,
        vec![InputEvent::PointerMotionAbsolute {
            x: 960.0,
            y: 540.0,
            width: 1920.0,
            height: 1080.0,
        }],
        &["pointer enter x=160.00 y=120.00"],
    );
    expect(
        &handle,
        &log,
        vec![
            InputEvent::PointerMotionAbsolute {
                x: 480.0,
                y: 270.0,
                width: 1920.0,
                height: 1080.0,
            },
            InputEvent::PointerMotionRelative { dx: 5.0, dy: -3.0 },
        ],
        &[
            "pointer motion x=80.00 y=60.00",
            "relative motion dx=5.00 dy=-3.00",
            "pointer motion x=85.00 y=57.00",
        ],
    );
    expect(
        &handle,
        &log,
        (1..=5)
            .flat_map(|button| {
                [
                    InputEvent::PointerButton {
                        button,
                        pressed: true,
                    },
                    InputEvent::PointerButton {
                        button,
                        pressed: false,
                    },
                ]
            })
            .collect(),
        &[
            "pointer button code=272 state=pressed",
            "pointer button code=272 state=released",
            "pointer button code=274 state=pressed",
            "pointer button code=274 state=released",
            "pointer button code=273 state=pressed",
            "pointer button code=273 state=released",
            "pointer button code=275 state=pressed",
            "pointer button code=275 state=released",
            "pointer button code=276 state=pressed",
            "pointer button code=276 state=released",
        ],
    );
    // One notch up: Wayland's negative vertical, 15 units, value120 -120; half a notch right.
    expect(
        &handle,
        &log,
        vec![
            InputEvent::Scroll {
                vertical: 120,
                horizontal: 0,
            },
            InputEvent::Scroll {
                vertical: 0,
                horizontal: 60,
            },
        ],
        &[
            "pointer axis_source source=wheel",
            "pointer axis_value120 axis=vertical value120=-120",
            "pointer axis axis=vertical value=-15.00",
            "pointer axis_value120 axis=horizontal value120=60",
            "pointer axis axis=horizontal value=7.50",
        ],
    );
}

#[test]
fn touch_and_pen() {
    let (_dir, handle, log, _client) = ready_client("touch");
    expect(
        &handle,
        &log,
        vec![
            InputEvent::Touch {
                id: 7,
                kind: TouchKind::Down,
                x: 0.25,
                y: 0.5,
            },
            InputEvent::Touch {
                id: 7,
                kind: TouchKind::Move,
                x: 0.5,
                y: 0.5,
            },
            InputEvent::Touch {
                id: 7,
                kind: TouchKind::Up,
                x: 0.5,
                y: 0.5,
            },
        ],
        &[
            "touch down id=7 x=80.00 y=120.00",
            "touch frame",
            "touch motion id=7 x=160.00 y=120.00",
            "touch frame",
            "touch up id=7",
        ],
    );
    let pen = |kind, x, pressure, buttons| {
        InputEvent::Pen(PenEvent {
            kind,
            x,
            y: 0.5,
            pressure,
            tilt: (10.0, -5.0),
            buttons,
            eraser: false,
        })
    };
    expect(
        &handle,
        &log,
        vec![
            pen(PenKind::Hover, 0.5, 0.0, 0),
            pen(PenKind::Down, 0.5, 0.5, 0),
            pen(PenKind::Move, 0.75, 1.0, 1),
            pen(PenKind::Up, 0.75, 0.0, 0),
            pen(PenKind::Leave, 0.75, 0.0, 0),
        ],
        &[
            "tablet tool type=pen",
            "tablet tool proximity_in",
            "tablet tool motion x=160.00 y=120.00",
            "tablet tool pressure value=32768",
            "tablet tool tilt x=10.00 y=-5.00",
            "tablet tool down",
            "tablet tool motion x=240.00 y=120.00",
            "tablet tool pressure value=65535",
            "tablet tool button code=331 state=pressed",
            "tablet tool up",
            "tablet tool button code=331 state=released",
            "tablet tool proximity_out",
        ],
    );
}

#[test]
fn a_locked_pointer_gets_only_relative_motion() {
    let dir = TempDir::new("lock");
    let handle = start(&dir, 320, 240, 30);
    let log = dir.path().join("client.log");
    let _client = spawn(
        &handle,
        &test_client_bin(),
        &[],
        &[
            ("HATI_TEST_CLIENT_LOG", log.as_path()),
            ("HATI_TEST_CLIENT_LOCK_POINTER", Path::new("1")),
        ],
    );
    wait_for_line(&log, 0, "keyboard enter");
    let at = expect(
        &handle,
        &log,
        vec![InputEvent::PointerMotionAbsolute {
            x: 100.0,
            y: 100.0,
            width: 320.0,
            height: 240.0,
        }],
        &["pointer enter x=100.00 y=100.00", "pointer locked"],
    );
    let end = expect(
        &handle,
        &log,
        vec![
            InputEvent::PointerMotionAbsolute {
                x: 200.0,
                y: 200.0,
                width: 320.0,
                height: 240.0,
            },
            InputEvent::PointerMotionRelative { dx: 3.0, dy: 4.0 },
            InputEvent::KeyboardKey {
                linux_keycode: 30,
                pressed: true,
            },
        ],
        &[
            "relative motion dx=3.00 dy=4.00",
            "keyboard key code=30 state=pressed",
        ],
    );
    let lines = log_lines(&log);
    let moved: Vec<_> = lines[at..end]
        .iter()
        .filter(|l| l.starts_with("pointer motion"))
        .collect();
    assert!(moved.is_empty(), "a locked pointer moved: {moved:?}");
}
