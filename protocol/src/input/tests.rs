//! Tests for input packets (docs/PROTOCOL.md §3.6–3.7): known answers, round trips, one test per
//! error variant, and a mutation robustness run of the module's fuzzing entry point.

use super::*;

/// Builds a packet from a magic and body, with the BE32 size field.
fn packet(magic: u32, body: &[u8]) -> Vec<u8> {
    let mut p = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    p.extend_from_slice(&magic.to_le_bytes());
    p.extend_from_slice(body);
    p
}

/// Known-answer vectors, laid out by hand from the §3.7 table, with the event each decodes to.
fn vectors() -> Vec<(&'static str, Vec<u8>, InputEvent)> {
    vec![
        (
            "key down shift+A, moonlight-qt 0x8000 bit",
            vec![
                0x00, 0x00, 0x00, 0x0A, 0x03, 0x00, 0x00, 0x00, 0x00, 0x41, 0x80, 0x01, 0x00, 0x00,
            ],
            InputEvent::KeyDown(KeyEvent {
                flags: 0,
                raw_key_code: 0x8041,
                modifiers: 0x01,
            }),
        ),
        (
            "key up, non-normalised flag",
            vec![
                0x00, 0x00, 0x00, 0x0A, 0x04, 0x00, 0x00, 0x00, 0x01, 0x1B, 0x00, 0x00, 0x00, 0x00,
            ],
            InputEvent::KeyUp(KeyEvent {
                flags: 1,
                raw_key_code: 0x001B,
                modifiers: 0,
            }),
        ),
        (
            "UTF-8 text é",
            vec![0x00, 0x00, 0x00, 0x06, 0x17, 0x00, 0x00, 0x00, 0xC3, 0xA9],
            InputEvent::Utf8Text("é".to_owned()),
        ),
        (
            "relative mouse -1, +300",
            vec![
                0x00, 0x00, 0x00, 0x08, 0x07, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0x01, 0x2C,
            ],
            InputEvent::MouseMoveRelative { dx: -1, dy: 300 },
        ),
        (
            "absolute mouse 100,200 in 1919x1079",
            vec![
                0x00, 0x00, 0x00, 0x0E, 0x05, 0x00, 0x00, 0x00, 0x00, 0x64, 0x00, 0xC8, 0x00, 0x00,
                0x07, 0x7F, 0x04, 0x37,
            ],
            InputEvent::MouseMoveAbsolute {
                x: 100,
                y: 200,
                width: 1919,
                height: 1079,
            },
        ),
        (
            "right button down",
            vec![0x00, 0x00, 0x00, 0x05, 0x08, 0x00, 0x00, 0x00, 0x03],
            InputEvent::MouseButton {
                action: ButtonAction::Down,
                button: MouseButton::Right,
            },
        ),
        (
            "X2 button up",
            vec![0x00, 0x00, 0x00, 0x05, 0x09, 0x00, 0x00, 0x00, 0x05],
            InputEvent::MouseButton {
                action: ButtonAction::Up,
                button: MouseButton::X2,
            },
        ),
        (
            "scroll one notch down",
            vec![
                0x00, 0x00, 0x00, 0x0A, 0x0A, 0x00, 0x00, 0x00, 0xFF, 0x88, 0xFF, 0x88, 0x00, 0x00,
            ],
            InputEvent::ScrollVertical(-120),
        ),
        (
            "horizontal scroll",
            vec![0x00, 0x00, 0x00, 0x06, 0x01, 0x00, 0x00, 0x55, 0x00, 0x78],
            InputEvent::ScrollHorizontal(120),
        ),
        (
            "multi-controller pad 1, A + up + paddle1",
            vec![
                0x00, 0x00, 0x00, 0x1E, 0x0C, 0x00, 0x00, 0x00, // header
                0x1A, 0x00, 0x01, 0x00, 0x03, 0x00, 0x14, 0x00, // headerB, nr, mask, midB
                0x01, 0x10, 0xFF, 0x00, // buttons, triggers
                0xFF, 0x7F, 0x00, 0x80, 0x00, 0x00, 0x00, 0x01, // sticks
                0x9C, 0x00, 0x01, 0x00, 0x55, 0x00, // tailA, buttonFlags2, tailB
            ],
            InputEvent::MultiController(ControllerState {
                controller_number: 1,
                active_gamepad_mask: 0x3,
                buttons: 0x0001_1001,
                left_trigger: 0xFF,
                right_trigger: 0,
                left_stick_x: i16::MAX,
                left_stick_y: i16::MIN,
                right_stick_x: 0,
                right_stick_y: 0x0100,
            }),
        ),
        (
            "controller arrival PlayStation",
            vec![
                0x00, 0x00, 0x00, 0x0C, 0x04, 0x00, 0x00, 0x55, 0x00, 0x02, 0x38, 0x00, 0xFF, 0xF7,
                0x1F, 0x00,
            ],
            InputEvent::ControllerArrival(ControllerArrival {
                controller_number: 0,
                controller_type: 2,
                capabilities: 0x38,
                supported_buttons: 0x001F_F7FF,
            }),
        ),
        (
            "touch down",
            vec![
                0x00, 0x00, 0x00, 0x20, 0x02, 0x00, 0x00, 0x55, // header
                0x01, 0x00, 0xFF, 0xFF, 0x07, 0x00, 0x00, 0x00, // type, rotation, id
                0x00, 0x00, 0x00, 0x3F, 0x00, 0x00, 0x80, 0x3E, // x 0.5, y 0.25
                0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            ],
            InputEvent::Touch(TouchEvent {
                event_type: TouchEventType::Down,
                rotation: ROTATION_UNKNOWN,
                pointer_id: 7,
                x: 0.5,
                y: 0.25,
                pressure_or_distance: 1.0,
                contact_area_major: 0.0,
                contact_area_minor: 0.0,
            }),
        ),
        (
            "pen move",
            vec![
                0x00, 0x00, 0x00, 0x20, 0x03, 0x00, 0x00, 0x55, // header
                0x03, 0x01, 0x01, 0x00, // type, tool, buttons, pad
                0x00, 0x00, 0x00, 0x3F, 0x00, 0x00, 0x00, 0x3F, 0x00, 0x00, 0x40, 0x3F, 0x5A, 0x00,
                0x2D, 0x00, // rotation 90, tilt 45, pad
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            ],
            InputEvent::Pen(PenEvent {
                event_type: TouchEventType::Move,
                tool: PenTool::Pen,
                buttons: 1,
                x: 0.5,
                y: 0.5,
                pressure_or_distance: 0.75,
                rotation: 90,
                tilt: 45,
                contact_area_major: 0.0,
                contact_area_minor: 0.0,
            }),
        ),
        (
            "controller touch",
            vec![
                0x00, 0x00, 0x00, 0x18, 0x05, 0x00, 0x00, 0x55, 0x00, 0x01, 0x00, 0x01, 0x02, 0x00,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x3F, 0x00, 0x00, 0x00, 0x3F, 0x00, 0x00, 0x80, 0x3F,
            ],
            InputEvent::ControllerTouch(ControllerTouch {
                controller_number: 0,
                event_type: TouchEventType::Down,
                touchpad_index: 1,
                pointer_id: 2,
                x: 0.5,
                y: 0.5,
                pressure: 1.0,
            }),
        ),
        (
            "controller gyro",
            vec![
                0x00, 0x00, 0x00, 0x14, 0x06, 0x00, 0x00, 0x55, 0x03, 0x02, 0x00, 0x00, 0x00, 0x00,
                0x80, 0x3F, 0x00, 0x00, 0x80, 0xBF, 0x00, 0x00, 0x00, 0x00,
            ],
            InputEvent::ControllerMotion(ControllerMotion {
                controller_number: 3,
                motion_type: MotionType::Gyroscope,
                x: 1.0,
                y: -1.0,
                z: 0.0,
            }),
        ),
        (
            "controller battery discharging 80%",
            vec![
                0x00, 0x00, 0x00, 0x08, 0x07, 0x00, 0x00, 0x55, 0x00, 0x02, 0x50, 0x00,
            ],
            InputEvent::ControllerBattery(ControllerBattery {
                controller_number: 0,
                state: 2,
                percent: 80,
            }),
        ),
        (
            "enable haptics",
            vec![0x00, 0x00, 0x00, 0x06, 0x0D, 0x00, 0x00, 0x00, 0x01, 0x00],
            InputEvent::EnableHaptics { enabled: true },
        ),
    ]
}

#[test]
fn known_answers_parse() {
    for (name, bytes, event) in vectors() {
        assert_eq!(InputEvent::parse(&bytes), Ok(event), "{name}");
    }
}

#[test]
fn known_answers_encode_byte_exact() {
    for (name, bytes, event) in vectors() {
        assert_eq!(event.encode(), bytes, "{name}");
        assert_eq!(event.magic().to_le_bytes(), bytes[4..8], "{name}");
    }
}

#[test]
fn key_code_masks_high_byte() {
    let InputEvent::KeyDown(key) = InputEvent::parse(&vectors()[0].1).unwrap() else {
        panic!("not a key event");
    };
    assert_eq!(key.key_code(), 0x41);
    assert_eq!(key.raw_key_code, 0x8041);
}

#[test]
fn unknown_magic_skips_body() {
    let p = packet(0x1234_5678, &[0xAA, 0xBB, 0xCC]);
    let event = InputEvent::parse(&p).unwrap();
    assert_eq!(event, InputEvent::Unknown { magic: 0x1234_5678 });
    assert_eq!(InputEvent::parse(&event.encode()), Ok(event));
}

#[test]
fn text_of_32_bytes_accepted() {
    let text = "€".repeat(10) + "ab"; // 30 + 2 bytes
    assert_eq!(text.len(), 32);
    let p = packet(magic::UTF8_TEXT, text.as_bytes());
    assert_eq!(InputEvent::parse(&p), Ok(InputEvent::Utf8Text(text)));
}

#[test]
fn padding_is_ignored() {
    let mut p = vectors()[0].1.clone();
    p[12] = 0xEE;
    assert!(matches!(InputEvent::parse(&p), Ok(InputEvent::KeyDown(_))));
}

#[test]
fn error_too_short() {
    assert_eq!(InputEvent::parse(&[]), Err(InputError::TooShort));
    assert_eq!(
        InputEvent::parse(&[0, 0, 0, 3, 3, 0, 0]),
        Err(InputError::TooShort)
    );
}

#[test]
fn error_too_long() {
    let p = packet(0x99, &vec![0; MAX_INPUT_PACKET_LEN]);
    assert_eq!(InputEvent::parse(&p), Err(InputError::TooLong));
}

#[test]
fn error_size_mismatch() {
    let mut p = vectors()[0].1.clone();
    p[3] = 0x0B;
    assert_eq!(
        InputEvent::parse(&p),
        Err(InputError::SizeMismatch {
            declared: 11,
            actual: 10
        })
    );
    // A trailing byte the size field does not cover is rejected the same way.
    let mut p = vectors()[0].1.clone();
    p.push(0);
    assert!(matches!(
        InputEvent::parse(&p),
        Err(InputError::SizeMismatch { .. })
    ));
}

#[test]
fn error_wrong_length() {
    let p = packet(magic::KEY_DOWN, &[0; 7]);
    assert_eq!(
        InputEvent::parse(&p),
        Err(InputError::WrongLength {
            event: "key",
            expected: 14,
            actual: 15
        })
    );
    let p = packet(magic::TOUCH, &[0; 27]);
    assert!(matches!(
        InputEvent::parse(&p),
        Err(InputError::WrongLength { event: "touch", .. })
    ));
}

#[test]
fn error_text_length() {
    let p = packet(magic::UTF8_TEXT, &[]);
    assert_eq!(
        InputEvent::parse(&p),
        Err(InputError::TextLength { len: 0 })
    );
    let p = packet(magic::UTF8_TEXT, &[b'a'; 33]);
    assert_eq!(
        InputEvent::parse(&p),
        Err(InputError::TextLength { len: 33 })
    );
}

#[test]
fn error_invalid_utf8() {
    let p = packet(magic::UTF8_TEXT, &[0xC3]);
    assert_eq!(InputEvent::parse(&p), Err(InputError::InvalidUtf8));
}

#[test]
fn error_invalid_value() {
    let p = packet(magic::MOUSE_BUTTON_DOWN, &[0]);
    assert_eq!(
        InputEvent::parse(&p),
        Err(InputError::InvalidValue {
            field: "mouse button",
            value: 0
        })
    );
    let mut touch = vectors()[11].1.clone();
    touch[8] = 8;
    assert!(matches!(
        InputEvent::parse(&touch),
        Err(InputError::InvalidValue {
            field: "touch event type",
            value: 8
        })
    ));
    let mut pen = vectors()[12].1.clone();
    pen[9] = 3;
    assert!(matches!(
        InputEvent::parse(&pen),
        Err(InputError::InvalidValue {
            field: "pen tool",
            ..
        })
    ));
    let mut motion = vectors()[14].1.clone();
    motion[9] = 0;
    assert!(matches!(
        InputEvent::parse(&motion),
        Err(InputError::InvalidValue {
            field: "motion type",
            ..
        })
    ));
}

#[test]
fn error_non_finite_float() {
    let mut touch = vectors()[11].1.clone();
    touch[16..20].copy_from_slice(&f32::NAN.to_le_bytes());
    assert_eq!(
        InputEvent::parse(&touch),
        Err(InputError::NonFiniteFloat { field: "touch x" })
    );
    let mut motion = vectors()[14].1.clone();
    motion[20..24].copy_from_slice(&f32::INFINITY.to_le_bytes());
    assert_eq!(
        InputEvent::parse(&motion),
        Err(InputError::NonFiniteFloat { field: "motion z" })
    );
}

#[test]
fn every_known_magic_rejects_every_wrong_length() {
    // Truncating or extending any known layout (with a consistent size field) never panics and
    // never yields the same event kind with garbage.
    for (name, bytes, _) in vectors() {
        let body = &bytes[8..];
        let magic = u32::from_le_bytes(bytes[4..8].try_into().unwrap());
        for len in 0..body.len() + 4 {
            let mut b = body.to_vec();
            b.resize(len, 0);
            let p = packet(magic, &b);
            let result = InputEvent::parse(&p);
            if len != body.len() && magic != magic::UTF8_TEXT {
                assert!(result.is_err(), "{name} with body {len}");
            }
        }
    }
}

/// A small deterministic mutator (xorshift64*) for the stable-Rust robustness tests: it feeds
/// `f` every seed, then `rounds` inputs made by stacking a few random edits on a random seed
/// (bit flips, interesting bytes, inserts, deletes, truncation, duplication, splicing), plus
/// purely random buffers. The fuzz targets call the same `fuzzing` functions.
pub(crate) fn mutate_and_feed(seeds: &[Vec<u8>], rounds: usize, f: impl Fn(&[u8])) {
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            if n == 0 {
                0
            } else {
                (self.next() % n as u64) as usize
            }
        }
    }
    const INTERESTING: [u8; 10] = [0, 1, 0x7F, 0x80, 0xFF, b' ', b':', b'\r', b'\n', b'0'];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for seed in seeds {
        f(seed);
    }
    for round in 0..rounds {
        if round % 16 == 0 {
            let len = rng.below(64);
            let buf: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            f(&buf);
            continue;
        }
        let mut buf = seeds[rng.below(seeds.len())].clone();
        for _ in 0..1 + rng.below(4) {
            let pos = rng.below(buf.len() + 1);
            match rng.below(8) {
                0 if !buf.is_empty() => {
                    let i = rng.below(buf.len());
                    buf[i] ^= 1 << rng.below(8);
                }
                1 if !buf.is_empty() => {
                    let i = rng.below(buf.len());
                    buf[i] = INTERESTING[rng.below(INTERESTING.len())];
                }
                2 => {
                    let n = 1 + rng.below(8);
                    let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                    buf.splice(pos..pos, bytes);
                }
                3 => {
                    let end = (pos + 1 + rng.below(16)).min(buf.len());
                    buf.drain(pos.min(end)..end);
                }
                4 => buf.truncate(pos),
                5 => {
                    let end = (pos + rng.below(32)).min(buf.len());
                    let chunk = buf[pos.min(end)..end].to_vec();
                    buf.splice(pos..pos, chunk);
                }
                6 => {
                    let other = &seeds[rng.below(seeds.len())];
                    let from = rng.below(other.len() + 1);
                    buf.truncate(pos);
                    buf.extend_from_slice(&other[from..]);
                }
                _ if buf.len() >= 4 => {
                    // Rewrite a 16- or 32-bit field at a random place with a boundary value.
                    let i = rng.below(buf.len() - 3);
                    let v = [0u32, 1, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFF][rng.below(5)];
                    buf[i..i + 4].copy_from_slice(&v.to_le_bytes());
                }
                _ => {}
            }
        }
        f(&buf);
    }
}

/// Every input vector as a seed.
pub(crate) fn seeds() -> Vec<Vec<u8>> {
    vectors().into_iter().map(|(_, bytes, _)| bytes).collect()
}

#[test]
fn robustness_no_panic() {
    mutate_and_feed(&seeds(), 50_000, fuzzing::input);
}

/// Regenerates the committed fuzz seed corpus under `fuzz/seeds/` from the known-answer
/// vectors of every module: `cargo test -p hati-protocol -- --ignored write_fuzz_seeds`.
#[test]
#[ignore = "writes files; run by hand after changing the vectors"]
fn write_fuzz_seeds() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds");
    let rtsp = crate::rtsp::tests::seeds();
    let cipher = crate::rtsp::RtspCipher::new(&[0x42; 16]);
    // The sealed target reads frames and also seals its input, so it gets both kinds.
    let sealed: Vec<_> = rtsp
        .iter()
        .enumerate()
        .map(|(i, s)| cipher.seal_request(i as u32, s).unwrap())
        .chain(rtsp.iter().cloned())
        .collect();
    for (target, seeds) in [
        ("rtsp_request", rtsp.clone()),
        ("rtsp_response", rtsp),
        ("rtsp_sealed_request", sealed),
        ("sdp_announce", crate::sdp::tests::seeds()),
        ("control_envelope", crate::control::tests::seeds()),
        ("input_packet", seeds()),
        ("browser_message", crate::browser::tests::seeds()),
        ("node_link_message", crate::node_link::tests::seeds()),
    ] {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), seed).unwrap();
        }
    }
}
