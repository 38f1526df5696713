//! Manager tests: a recording pad factory stands in for the device boundary (there is no
//! `/dev/uinput` in CI); the real `/dev/uinput` path is tested in `tests/runners/gamepad.rs`.

use std::io::Write;
use std::sync::{Arc, Mutex};

use evdev::{AbsoluteAxisCode, EventType, KeyCode};

use super::*;
use crate::events::Event;
use hati_protocol::input::button;

type Log = Arc<Mutex<Vec<String>>>;
type Writes = Arc<Mutex<Vec<(u8, Vec<(u16, u16, i32)>)>>>;
/// Each created pad's spec and the rumble callback it was given, as its device would call it.
type Rumbles = Arc<Mutex<Vec<(PadSpec, RumbleCallback)>>>;

#[derive(Default, Clone)]
struct Recorder {
    created: Log,
    writes: Writes,
    dropped: Log,
    rumbles: Rumbles,
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
        spec: PadSpec,
        rumble: RumbleCallback,
    ) -> Result<RecordedPad, GamepadError> {
        let PadSpec {
            kind, controller, ..
        } = spec;
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
                self.rumbles.lock().unwrap().push((spec, rumble));
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

/// One client of a lobby: its own manager, devices and rumble log, in the lobby's slot table.
struct Member {
    pads: GamepadManager<Recorder>,
    recorder: Recorder,
    rumbled: Arc<Mutex<Vec<(u8, Motors)>>>,
}

fn member(session: u32, player: Player, slots: &SharedPadSlots, events: &EventBus) -> Member {
    let recorder = Recorder::default();
    let rumbled: Arc<Mutex<Vec<(u8, Motors)>>> = Arc::default();
    let log = Arc::clone(&rumbled);
    let rumble: RumbleCallback = Arc::new(move |controller, motors| {
        log.lock().unwrap().push((controller, motors));
    });
    let pads = GamepadManager::with_factory(session, JoypadType::Xbox, rumble, recorder.clone())
        .in_slots(player, Arc::clone(slots))
        .publishing(events.clone());
    Member {
        pads,
        recorder,
        rumbled,
    }
}

/// (controller, slot) of each pad.
fn slots_of(member: &Member) -> Vec<(u8, u8)> {
    member
        .pads
        .pads()
        .iter()
        .map(|pad| (pad.controller, pad.slot))
        .collect()
}

/// The gamepad events published so far, as (type, session, controller, slot).
fn pad_events(
    receiver: &mut tokio::sync::broadcast::Receiver<crate::events::Stamped>,
) -> Vec<(&'static str, u32, u8, u8)> {
    let mut seen = Vec::new();
    while let Ok(stamped) = receiver.try_recv() {
        match stamped.event {
            Event::GamepadConnected {
                session,
                controller,
                slot,
                ..
            } => seen.push(("connected", session, controller, slot)),
            Event::GamepadRemoved {
                session,
                controller,
                slot,
            } => seen.push(("removed", session, controller, slot)),
            _ => {}
        }
    }
    seen
}

#[test]
fn owner_pads_take_slots_0_to_3_and_guests_the_next_free_ones() {
    let slots = SharedPadSlots::default();
    let events = EventBus::new();
    let mut receiver = events.subscribe();
    let mut owner = member(1, Player::Owner, &slots, &events);
    let mut first = member(2, Player::Guest(2), &slots, &events);
    let mut second = member(3, Player::Guest(3), &slots, &events);

    // A guest plugging in first still gets slot 4: 0-3 are the owner's.
    first.pads.handle(&arrival(0, controller_type::XBOX));
    for n in 0..4 {
        owner.pads.handle(&state(n, 0b1111, 0));
    }
    second.pads.handle(&state(0, 0b1, 0));
    first.pads.handle(&state(1, 0b11, button::A));
    assert_eq!(slots_of(&owner), [(0, 0), (1, 1), (2, 2), (3, 3)]);
    assert_eq!(slots_of(&first), [(0, 4), (1, 6)]);
    assert_eq!(slots_of(&second), [(0, 5)]);
    assert_eq!(first.pads.pads()[1].events, 1, "the A press was written");
    assert_eq!(first.pads.pads()[0].events, 0);
    assert_eq!(
        pad_events(&mut receiver),
        [
            ("connected", 2, 0, 4),
            ("connected", 1, 0, 0),
            ("connected", 1, 1, 1),
            ("connected", 1, 2, 2),
            ("connected", 1, 3, 3),
            ("connected", 3, 0, 5),
            ("connected", 2, 1, 6),
        ]
    );
    // Each device is named after its player (slot + 1).
    let named: Vec<String> = first
        .recorder
        .rumbles
        .lock()
        .unwrap()
        .iter()
        .map(|(spec, _)| spec.device_name())
        .collect();
    assert_eq!(
        named,
        [
            "Hati X-Box One (virtual) pad (player 5)",
            "Hati X-Box One (virtual) pad (player 7)"
        ]
    );

    // The first guest leaves (its session ends): its pads go, its slots are free, nobody
    // else's pad moves; the next guest takes the lowest free slots again.
    first.pads.remove_all();
    assert!(first.pads.pads().is_empty());
    assert_eq!(*first.recorder.dropped.lock().unwrap(), ["0", "1"]);
    assert_eq!(
        pad_events(&mut receiver),
        [("removed", 2, 0, 4), ("removed", 2, 1, 6)]
    );
    assert_eq!(slots_of(&owner), [(0, 0), (1, 1), (2, 2), (3, 3)]);
    assert_eq!(slots_of(&second), [(0, 5)]);
    let mut third = member(4, Player::Guest(4), &slots, &events);
    third.pads.handle(&state(0, 0b11, 0));
    third.pads.handle(&state(1, 0b11, 0));
    assert_eq!(slots_of(&third), [(0, 4), (1, 6)]);
}

#[test]
fn rumble_from_a_guests_pad_reaches_that_guest_only() {
    let slots = SharedPadSlots::default();
    let events = EventBus::new();
    let mut owner = member(1, Player::Owner, &slots, &events);
    let mut guest = member(2, Player::Guest(2), &slots, &events);
    owner.pads.handle(&arrival(0, controller_type::XBOX));
    guest.pads.handle(&arrival(0, controller_type::XBOX));
    assert_eq!(slots_of(&guest), [(0, 4)]);
    assert_eq!(
        slots.lock().unwrap().rumble_target(4),
        Some((Player::Guest(2), 0))
    );

    // The game rumbles the pad in slot 4: its device calls back as a uinput pad's
    // force-feedback thread does, under the client's own controller number.
    let motors = Motors {
        low_freq: 0x8000,
        high_freq: 0x1000,
    };
    let (spec, rumble) = guest.recorder.rumbles.lock().unwrap()[0].clone();
    assert_eq!((spec.controller, spec.slot), (0, 4));
    rumble(spec.controller, motors);
    assert_eq!(*guest.rumbled.lock().unwrap(), [(0, motors)]);
    assert!(owner.rumbled.lock().unwrap().is_empty());

    // And the owner's pad 0 (slot 0) rumbles the owner.
    let (spec, rumble) = owner.recorder.rumbles.lock().unwrap()[0].clone();
    assert_eq!((spec.controller, spec.slot), (0, 0));
    rumble(spec.controller, Motors::default());
    assert_eq!(*owner.rumbled.lock().unwrap(), [(0, Motors::default())]);
    assert_eq!(guest.rumbled.lock().unwrap().len(), 1);
}

#[test]
fn a_pad_without_a_free_slot_is_not_created_until_one_frees() {
    let slots = SharedPadSlots::default();
    let events = EventBus::new();
    let mut greedy = member(2, Player::Guest(2), &slots, &events);
    let mut late = member(3, Player::Guest(3), &slots, &events);
    for n in 0..12 {
        greedy.pads.handle(&state(n, 0x0fff, 0));
    }
    assert_eq!(greedy.pads.pads().len(), 12);
    let logs = capture_logs(|| {
        for _ in 0..3 {
            late.pads.handle(&state(0, 0b1, button::A));
        }
    });
    assert!(late.pads.pads().is_empty());
    assert!(late.recorder.created.lock().unwrap().is_empty());
    assert_eq!(logs.matches("no gamepad created").count(), 1, "{logs}");
    assert!(
        logs.contains("DEBUG") && logs.contains("session=3"),
        "{logs}"
    );

    // The greedy guest unplugs pad 5 (slot 9): the late guest's next state takes it.
    greedy.pads.handle(&state(0, 0x0fff & !(1 << 5), 0));
    late.pads.handle(&state(0, 0b1, button::A));
    assert_eq!(slots_of(&late), [(0, 9)]);
}

#[test]
fn a_failed_create_or_a_dropped_manager_holds_no_slot() {
    let slots = SharedPadSlots::default();
    let events = EventBus::new();
    let failing = Recorder {
        fail: Some("io"),
        ..Recorder::default()
    };
    let mut failing =
        GamepadManager::with_factory(2, JoypadType::Xbox, Arc::new(|_, _| {}), failing)
            .in_slots(Player::Guest(2), Arc::clone(&slots));
    failing.handle(&state(0, 0b1, 0));
    assert!(failing.pads().is_empty());
    assert_eq!(slots.lock().unwrap().rumble_target(4), None);

    let mut leaving = member(3, Player::Guest(3), &slots, &events);
    leaving.pads.handle(&state(0, 0b1, 0));
    assert_eq!(slots_of(&leaving), [(0, 4)]);
    // A guest's manager dropped without remove_all still frees its slot.
    drop(leaving);
    assert_eq!(slots.lock().unwrap().rumble_target(4), None);
    let mut next = member(4, Player::Guest(4), &slots, &events);
    next.pads.handle(&state(0, 0b1, 0));
    assert_eq!(slots_of(&next), [(0, 4)]);
}
