//! Manager tests: a recording pad factory stands in for the device boundary (there is no
//! `/dev/uinput` in CI); the real `/dev/uinput` path is tested in `tests/runners/gamepad.rs`.

use std::io::Write;
use std::sync::{Arc, Mutex};

use evdev::{AbsoluteAxisCode, EventType, KeyCode};

use super::*;
use hati_protocol::input::button;

type Log = Arc<Mutex<Vec<String>>>;
type Writes = Arc<Mutex<Vec<(u8, Vec<(u16, u16, i32)>)>>>;

#[derive(Default, Clone)]
struct Recorder {
    created: Log,
    writes: Writes,
    dropped: Log,
    fail: Option<&'static str>,
}

struct RecordedPad {
    controller: u8,
    recorder: Recorder,
}

impl PadDevice for RecordedPad {
    fn write(&mut self, events: &[EvdevEvent]) -> Result<(), GamepadError> {
        let events = events
            .iter()
            .map(|e| (e.event_type().0, e.code(), e.value()))
            .collect();
        self.recorder
            .writes
            .lock()
            .unwrap()
            .push((self.controller, events));
        Ok(())
    }
}

impl Drop for RecordedPad {
    fn drop(&mut self) {
        self.recorder
            .dropped
            .lock()
            .unwrap()
            .push(self.controller.to_string());
    }
}

impl PadFactory for Recorder {
    type Pad = RecordedPad;

    fn create(
        &mut self,
        kind: PadKind,
        controller: u8,
        _rumble: RumbleCallback,
    ) -> Result<RecordedPad, GamepadError> {
        match self.fail {
            Some("unavailable") => Err(GamepadError::Unavailable {
                reason: "/dev/uinput does not exist".into(),
            }),
            Some(_) => Err(GamepadError::Create(std::io::Error::other("boom"))),
            None => {
                self.created
                    .lock()
                    .unwrap()
                    .push(format!("{controller}:{kind:?}"));
                Ok(RecordedPad {
                    controller,
                    recorder: self.clone(),
                })
            }
        }
    }
}

fn manager(joypad: JoypadType, recorder: &Recorder) -> GamepadManager<Recorder> {
    GamepadManager::with_factory(9, joypad, Arc::new(|_, _| {}), recorder.clone())
}

fn arrival(controller_number: u8, controller_type: u8) -> InputEvent {
    InputEvent::ControllerArrival(ControllerArrival {
        controller_number,
        controller_type,
        capabilities: 0x03,
        supported_buttons: 0xffff,
    })
}

fn state(controller_number: u16, mask: u16, buttons: u32) -> InputEvent {
    InputEvent::MultiController(ControllerState {
        controller_number,
        active_gamepad_mask: mask,
        buttons,
        left_trigger: 0,
        right_trigger: 0,
        left_stick_x: 0,
        left_stick_y: 0,
        right_stick_x: 0,
        right_stick_y: 0,
    })
}

#[test]
fn arrival_then_state_writes_changes_only() {
    let recorder = Recorder::default();
    let mut pads = manager(JoypadType::Xbox, &recorder);
    assert!(pads.handle(&arrival(0, controller_type::XBOX)));
    assert!(pads.handle(&state(0, 0b1, 0)));
    assert!(
        recorder.writes.lock().unwrap().is_empty(),
        "the empty state after arrival changes nothing"
    );
    pads.handle(&state(0, 0b1, button::A));
    pads.handle(&state(0, 0b1, button::A));
    pads.handle(&state(0, 0b1, button::A | button::UP));
    let writes = recorder.writes.lock().unwrap().clone();
    assert_eq!(
        writes,
        [
            (0, vec![(EventType::KEY.0, KeyCode::BTN_SOUTH.0, 1)]),
            (
                0,
                vec![(EventType::ABSOLUTE.0, AbsoluteAxisCode::ABS_HAT0Y.0, -1)]
            ),
        ]
    );
    assert_eq!(pads.connected(), [(0, PadKind::Xbox)]);
}

#[test]
fn auto_follows_the_arrival_type() {
    let recorder = Recorder::default();
    let mut pads = manager(JoypadType::Auto, &recorder);
    pads.handle(&arrival(0, controller_type::PLAYSTATION));
    pads.handle(&arrival(1, controller_type::NINTENDO));
    pads.handle(&arrival(2, controller_type::UNKNOWN));
    pads.handle(&state(3, 0b1111, 0));
    assert_eq!(
        *recorder.created.lock().unwrap(),
        ["0:PlayStation", "1:Nintendo", "2:Xbox", "3:Xbox"]
    );
}

#[test]
fn fixed_type_ignores_the_arrival_type() {
    let recorder = Recorder::default();
    let mut pads = manager(JoypadType::Switch, &recorder);
    pads.handle(&arrival(0, controller_type::XBOX));
    assert_eq!(*recorder.created.lock().unwrap(), ["0:Nintendo"]);
    assert_eq!(
        JoypadType::Ps.resolve(Some(controller_type::XBOX)),
        PadKind::PlayStation
    );
    assert_eq!(JoypadType::default(), JoypadType::Xbox);
}

#[test]
fn state_before_arrival_is_recreated_with_the_right_kind() {
    let recorder = Recorder::default();
    let mut pads = manager(JoypadType::Auto, &recorder);
    pads.handle(&state(0, 0b1, 0));
    pads.handle(&arrival(0, controller_type::PLAYSTATION));
    assert_eq!(
        *recorder.created.lock().unwrap(),
        ["0:Xbox", "0:PlayStation"]
    );
    assert_eq!(*recorder.dropped.lock().unwrap(), ["0"]);
}

#[test]
fn cleared_mask_bit_removes_pads() {
    let recorder = Recorder::default();
    let mut pads = manager(JoypadType::Xbox, &recorder);
    pads.handle(&state(0, 0b11, 0));
    pads.handle(&state(1, 0b11, 0));
    assert_eq!(pads.connected().len(), 2);
    // Pad 1 leaves: the client sends its number with its bit cleared.
    pads.handle(&state(1, 0b01, 0));
    assert_eq!(pads.connected(), [(0, PadKind::Xbox)]);
    assert_eq!(*recorder.dropped.lock().unwrap(), ["1"]);
    pads.remove_all();
    assert!(pads.connected().is_empty());
    assert_eq!(*recorder.dropped.lock().unwrap(), ["1", "0"]);
}

#[test]
fn out_of_range_and_other_events_are_ignored() {
    let recorder = Recorder::default();
    let mut pads = manager(JoypadType::Xbox, &recorder);
    pads.handle(&state(16, 0xffff, button::A));
    pads.handle(&arrival(200, controller_type::XBOX));
    assert!(!pads.handle(&InputEvent::ControllerBattery(
        hati_protocol::input::ControllerBattery {
            controller_number: 0,
            state: 0,
            percent: 0,
        }
    )));
    assert!(recorder.created.lock().unwrap().is_empty());
}

/// Log lines of one test, captured through a thread-local subscriber.
fn capture_logs(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = buffer.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn unavailable_is_logged_once_and_input_is_dropped() {
    let recorder = Recorder {
        fail: Some("unavailable"),
        ..Recorder::default()
    };
    let mut pads = manager(JoypadType::Xbox, &recorder);
    let logs = capture_logs(|| {
        pads.handle(&arrival(0, controller_type::XBOX));
        for n in 0..4u16 {
            pads.handle(&state(n, 0b1111, button::A));
        }
    });
    assert_eq!(
        logs.matches("virtual gamepads are unavailable").count(),
        1,
        "{logs}"
    );
    assert!(
        logs.contains("/dev/uinput does not exist") && logs.contains("session=9"),
        "{logs}"
    );
    assert_eq!(
        pads.unavailable_reason(),
        Some("/dev/uinput does not exist")
    );
    assert!(pads.connected().is_empty());
}

#[test]
fn other_create_errors_are_logged_once_per_controller() {
    let recorder = Recorder {
        fail: Some("io"),
        ..Recorder::default()
    };
    let mut pads = manager(JoypadType::Xbox, &recorder);
    let logs = capture_logs(|| {
        for _ in 0..3 {
            pads.handle(&state(0, 0b11, 0));
            pads.handle(&state(1, 0b11, 0));
        }
    });
    assert_eq!(logs.matches("cannot create gamepad").count(), 2, "{logs}");
    assert_eq!(pads.unavailable_reason(), None);
}
