//! Gamepads through the real `/dev/uinput`. Where it is missing or not writable (CI, this
//! project's build machines) the test checks the degraded path: a typed error, one clear log
//! line per session, and gamepad input dropped without disturbing anything. Where it works the
//! test creates a pad and reads the translated events back from its evdev node.

use std::fs::OpenOptions;
use std::sync::Arc;
use std::time::Duration;

use hati::gamepad::{GamepadError, GamepadManager, JoypadType, PadKind, PadSpec, UinputPad};
use hati_protocol::input::button;
use hati_protocol::input::{ControllerArrival, ControllerState, InputEvent};

use crate::logs;

fn arrival(n: u8) -> InputEvent {
    InputEvent::ControllerArrival(ControllerArrival {
        controller_number: n,
        controller_type: 1,
        capabilities: 0x02,
        supported_buttons: 0xffff,
    })
}

fn state(n: u16, buttons: u32, left_trigger: u8) -> InputEvent {
    InputEvent::MultiController(ControllerState {
        controller_number: n,
        active_gamepad_mask: 1 << n,
        buttons,
        left_trigger,
        right_trigger: 0,
        left_stick_x: 0,
        left_stick_y: 0,
        right_stick_x: 0,
        right_stick_y: 0,
    })
}

fn uinput_usable() -> Result<(), std::io::Error> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/uinput")
        .map(drop)
}

#[test]
fn pads_through_dev_uinput_or_a_clean_degradation() {
    logs::init();
    match uinput_usable() {
        Err(why) => degraded(&why),
        Ok(()) => real_pad(),
    }
}

fn degraded(why: &std::io::Error) {
    eprintln!("/dev/uinput unusable here ({why}): checking the degraded path");
    let spec = PadSpec {
        kind: PadKind::Xbox,
        controller: 0,
        slot: 0,
    };
    let error = UinputPad::create(spec, Arc::new(|_, _| {})).unwrap_err();
    let GamepadError::Unavailable { reason } = &error else {
        panic!("expected Unavailable, got {error}")
    };
    assert!(reason.contains("/dev/uinput"), "{reason}");

    let mut pads = GamepadManager::new(5_000_001, JoypadType::Auto, Arc::new(|_, _| {}));
    assert!(pads.handle(&arrival(0)));
    for i in 0..50 {
        pads.handle(&state(i % 4, button::A, 0));
    }
    assert!(pads.connected().is_empty());
    assert!(
        pads.unavailable_reason()
            .is_some_and(|r| r.contains("/dev/uinput"))
    );
    let lines: Vec<_> = logs::lines_with("virtual gamepads are unavailable")
        .into_iter()
        .filter(|l| l.contains("session=5000001"))
        .collect();
    assert_eq!(lines.len(), 1, "logged once per session: {lines:?}");
    assert!(
        lines[0].contains("WARN") && lines[0].contains("/dev/uinput"),
        "{}",
        lines[0]
    );

    // Another session logs it again, once.
    let mut other = GamepadManager::new(5_000_002, JoypadType::Xbox, Arc::new(|_, _| {}));
    other.handle(&state(0, 0, 0));
    other.handle(&state(0, button::B, 0));
    assert_eq!(
        logs::lines_with("virtual gamepads are unavailable")
            .iter()
            .filter(|l| l.contains("session=5000002"))
            .count(),
        1
    );
}

fn real_pad() {
    eprintln!("/dev/uinput is usable: creating a real pad");
    let mut pads = GamepadManager::new(5_000_003, JoypadType::Xbox, Arc::new(|_, _| {}));
    pads.handle(&arrival(0));
    assert_eq!(pads.connected(), [(0, PadKind::Xbox)]);
    let node = logs::lines_with("gamepad created")
        .into_iter()
        .find(|l| l.contains("session=5000003"))
        .and_then(|l| {
            l.split("node=Some(\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .map(str::to_owned)
        });
    let Some(node) = node else {
        crate::print_skip("readback: the pad has no /dev/input node here (no udev?)");
        return;
    };
    // The node may take a moment to appear and get its permissions.
    let mut device = None;
    for _ in 0..50 {
        if let Ok(opened) = evdev::Device::open(&node) {
            device = Some(opened);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let Some(mut device) = device else {
        crate::print_skip(&format!("readback: cannot open {node}"));
        return;
    };
    assert_eq!(
        device.name(),
        Some("Hati X-Box One (virtual) pad (player 1)")
    );
    assert_eq!(device.physical_path(), Some("hati/player1"));
    assert_eq!(device.input_id().vendor(), 0x045e);
    pads.handle(&state(0, button::A, 200));
    let events: Vec<_> = device
        .fetch_events()
        .unwrap()
        .map(|e| (e.event_type(), e.code(), e.value()))
        .collect();
    assert!(
        events.contains(&(evdev::EventType::KEY, evdev::KeyCode::BTN_SOUTH.0, 1)),
        "{events:?}"
    );
    assert!(
        events.contains(&(
            evdev::EventType::ABSOLUTE,
            evdev::AbsoluteAxisCode::ABS_Z.0,
            200
        )),
        "{events:?}"
    );
    pads.remove_all();
    assert!(pads.connected().is_empty());
}
