//! Tests for browser messages: every message kind, the key map, one test per error variant,
//! hostile input (huge numbers, deep nesting, oversize), and a mutation robustness run of the
//! module's fuzzing entry point.

use super::*;
use crate::input::{
    ButtonAction, ControllerArrival, ControllerState, InputEvent, KeyEvent, MAX_UTF8_TEXT_LEN,
    MouseButton, ROTATION_UNKNOWN, TouchEvent, TouchEventType,
};

fn one(text: &str) -> InputEvent {
    let events = parse_input(text).unwrap();
    assert_eq!(events.len(), 1, "{text}: {events:?}");
    events.into_iter().next().unwrap()
}

fn key(vk: u8) -> KeyEvent {
    KeyEvent {
        flags: 0,
        raw_key_code: 0x8000 | u16::from(vk),
        modifiers: 0,
    }
}

fn out_of_range(result: Result<impl std::fmt::Debug, BrowserError>) -> &'static str {
    match result {
        Err(BrowserError::OutOfRange { field, .. }) => field,
        other => panic!("expected OutOfRange, got {other:?}"),
    }
}

// --- signalling -------------------------------------------------------------------------------

const HELLO: &str = r#"{"type":"hello","token":"00ff0a","app_id":123,"width":1280,"height":720,"fps":60,"bitrate_kbps":10000}"#;

#[test]
fn hello_parses() {
    assert_eq!(
        SignalMessage::parse(HELLO).unwrap(),
        SignalMessage::Hello(Hello {
            token: "00ff0a".into(),
            app_id: 123,
            width: 1280,
            height: 720,
            fps: 60,
            bitrate_kbps: Some(10000),
        })
    );
}

#[test]
fn hello_bitrate_is_optional_and_may_be_null() {
    for text in [
        r#"{"type":"hello","token":"AB","app_id":0,"width":16,"height":16,"fps":1}"#,
        r#"{"type":"hello","token":"AB","app_id":0,"width":16,"height":16,"fps":1,"bitrate_kbps":null}"#,
    ] {
        let SignalMessage::Hello(hello) = SignalMessage::parse(text).unwrap() else {
            panic!("not a hello");
        };
        assert_eq!(hello.bitrate_kbps, None);
        assert_eq!((hello.width, hello.height, hello.fps), (16, 16, 1));
    }
}

#[test]
fn hello_debug_hides_the_token() {
    let SignalMessage::Hello(hello) = SignalMessage::parse(HELLO).unwrap() else {
        panic!("not a hello");
    };
    let debug = format!("{hello:?}");
    assert!(!debug.contains("00ff0a"), "{debug}");
    assert!(debug.contains("1280"), "{debug}");
}

#[test]
fn hello_limits_are_inclusive() {
    let hello = |w: i64, h: i64, fps: i64, rate: i64, app: i64| {
        SignalMessage::parse(&format!(
            r#"{{"type":"hello","token":"1","app_id":{app},"width":{w},"height":{h},"fps":{fps},"bitrate_kbps":{rate}}}"#
        ))
    };
    assert!(hello(7680, 4320, 240, 500_000, u32::MAX.into()).is_ok());
    assert!(hello(16, 16, 1, 500, 0).is_ok());
    assert_eq!(out_of_range(hello(7681, 720, 60, 500, 1)), "width");
    assert_eq!(out_of_range(hello(15, 720, 60, 500, 1)), "width");
    assert_eq!(out_of_range(hello(1280, 4321, 60, 500, 1)), "height");
    assert_eq!(out_of_range(hello(1280, 0, 60, 500, 1)), "height");
    assert_eq!(out_of_range(hello(1280, 720, 0, 500, 1)), "fps");
    assert_eq!(out_of_range(hello(1280, 720, 241, 500, 1)), "fps");
    assert_eq!(out_of_range(hello(1280, 720, 60, 499, 1)), "bitrate_kbps");
    assert_eq!(
        out_of_range(hello(1280, 720, 60, 500_001, 1)),
        "bitrate_kbps"
    );
    assert_eq!(out_of_range(hello(1280, 720, 60, 500, -1)), "app_id");
    assert_eq!(
        out_of_range(hello(1280, 720, 60, 500, i64::from(u32::MAX) + 1)),
        "app_id"
    );
}

#[test]
fn out_of_range_names_field_and_range() {
    let err = SignalMessage::parse(
        r#"{"type":"hello","token":"1","app_id":1,"width":9000,"height":720,"fps":60}"#,
    )
    .unwrap_err();
    assert_eq!(
        err,
        BrowserError::OutOfRange {
            field: "width",
            value: 9000.0,
            min: 16.0,
            max: 7680.0
        }
    );
    assert_eq!(err.to_string(), "width is 9000, outside 16..=7680");
}

#[test]
fn hello_token_is_checked() {
    let with = |token: &str| {
        SignalMessage::parse(&format!(
            r#"{{"type":"hello","token":"{token}","app_id":1,"width":1280,"height":720,"fps":60}}"#
        ))
    };
    assert!(with(&"a".repeat(128)).is_ok());
    assert_eq!(
        with(&"a".repeat(129)),
        Err(BrowserError::FieldTooLong {
            field: "token",
            len: 129,
            max: 128
        })
    );
    assert_eq!(with(""), Err(BrowserError::Empty("token")));
    assert_eq!(with("12 4"), Err(BrowserError::NotHex("token")));
    assert_eq!(with("zz"), Err(BrowserError::NotHex("token")));
    assert_eq!(with("é"), Err(BrowserError::NotHex("token")));
}

#[test]
fn hello_fields_must_have_the_right_type() {
    for text in [
        r#"{"type":"hello","token":1,"app_id":1,"width":1280,"height":720,"fps":60}"#,
        r#"{"type":"hello","token":"1","app_id":"1","width":1280,"height":720,"fps":60}"#,
        r#"{"type":"hello","token":"1","app_id":1,"width":1280.5,"height":720,"fps":60}"#,
        r#"{"type":"hello","token":"1","app_id":1,"width":1280,"height":720}"#,
        r#"{"type":"hello","token":"1","app_id":1e999,"width":1280,"height":720,"fps":60}"#,
        r#"{"type":"hello","token":"1","app_id":99999999999999999999999,"width":1280,"height":720,"fps":60}"#,
    ] {
        assert!(
            matches!(SignalMessage::parse(text), Err(BrowserError::Json(_))),
            "{text}"
        );
    }
}

#[test]
fn answer_ice_and_quit_parse() {
    assert_eq!(
        SignalMessage::parse(r#"{"type":"answer","sdp":"v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\n"}"#),
        Ok(SignalMessage::Answer {
            sdp: "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\n".into()
        })
    );
    assert_eq!(
        SignalMessage::parse(r#"{"type":"answer","sdp":""}"#),
        Err(BrowserError::Empty("sdp"))
    );
    // What `{type: "ice", ...candidate.toJSON()}` sends: extra fields are ignored.
    assert_eq!(
        SignalMessage::parse(
            r#"{"type":"ice","candidate":"candidate:1 1 udp 2122260223 192.168.1.2 50000 typ host","sdpMid":"0","sdpMLineIndex":1,"usernameFragment":"abcd"}"#
        ),
        Ok(SignalMessage::Ice {
            candidate: "candidate:1 1 udp 2122260223 192.168.1.2 50000 typ host".into(),
            sdp_mline_index: 1
        })
    );
    for end in [
        r#"{"type":"ice","candidate":"","sdpMLineIndex":0}"#,
        r#"{"type":"ice","candidate":"","sdpMLineIndex":null}"#,
        r#"{"type":"ice","candidate":""}"#,
    ] {
        assert_eq!(
            SignalMessage::parse(end),
            Ok(SignalMessage::Ice {
                candidate: String::new(),
                sdp_mline_index: 0
            }),
            "{end}"
        );
    }
    assert_eq!(
        SignalMessage::parse(r#"{"type":"quit"}"#),
        Ok(SignalMessage::Quit)
    );
    assert_eq!(
        SignalMessage::parse(r#" { "extra" : [1, {"a": null}], "type" : "quit" } "#),
        Ok(SignalMessage::Quit)
    );
}

#[test]
fn ice_limits() {
    let ice = |candidate: &str, index: i64| {
        SignalMessage::parse(&format!(
            r#"{{"type":"ice","candidate":"{candidate}","sdpMLineIndex":{index}}}"#
        ))
    };
    assert!(ice(&"c".repeat(1024), 15).is_ok());
    assert_eq!(
        ice(&"c".repeat(1025), 0),
        Err(BrowserError::FieldTooLong {
            field: "candidate",
            len: 1025,
            max: 1024
        })
    );
    assert_eq!(out_of_range(ice("", 16)), "sdpMLineIndex");
    assert_eq!(out_of_range(ice("", -1)), "sdpMLineIndex");
}

#[test]
fn unknown_signal_type_is_named() {
    assert_eq!(
        SignalMessage::parse(r#"{"type":"bye"}"#),
        Err(BrowserError::UnknownType("bye".into()))
    );
    // The input channel's tag is not a signalling tag.
    assert!(matches!(
        SignalMessage::parse(r#"{"t":"quit"}"#),
        Err(BrowserError::Json(_))
    ));
    // A long unknown name is quoted only in part.
    let Err(BrowserError::UnknownType(name)) =
        SignalMessage::parse(&format!(r#"{{"type":"{}"}}"#, "x".repeat(1000)))
    else {
        panic!("expected UnknownType");
    };
    assert_eq!(name.chars().count(), 65);
    assert!(name.ends_with('…'));
}

#[test]
fn signal_size_limit() {
    let padding = " ".repeat(MAX_SIGNAL_LEN - r#"{"type":"quit"}"#.len());
    assert_eq!(
        SignalMessage::parse(&format!(r#"{{"type":"quit"}}{padding}"#)),
        Ok(SignalMessage::Quit)
    );
    let sdp = "v".repeat(MAX_SIGNAL_LEN);
    assert_eq!(
        SignalMessage::parse(&format!(r#"{{"type":"answer","sdp":"{sdp}"}}"#)),
        Err(BrowserError::TooLong {
            len: MAX_SIGNAL_LEN + 26,
            max: MAX_SIGNAL_LEN
        })
    );
}

#[test]
fn malformed_signals_are_json_errors_with_a_position() {
    for text in [
        "",
        "null",
        "[]",
        "\"hello\"",
        "{",
        r#"{"type":"quit"} trailing"#,
        r#"{"type":null}"#,
        r#"{"type":1}"#,
        r#"{"type":"quit","type":"hello"}"#,
        r#"{"type":"answer"}"#,
        r#"{"type":"ice","candidate":null}"#,
        "{\"type\":\"qu\u{0}it\"}",
    ] {
        let err = SignalMessage::parse(text).unwrap_err();
        let BrowserError::Json(message) = &err else {
            panic!("{text:?}: expected Json, got {err:?}");
        };
        assert!(message.contains("line 1 column"), "{text:?}: {message}");
    }
}

#[test]
fn json_errors_quote_little_peer_text() {
    let long = "y".repeat(3000);
    let err = SignalMessage::parse(&format!(
        r#"{{"type":"hello","token":"1","app_id":"{long}","width":1280,"height":720,"fps":60}}"#
    ))
    .unwrap_err();
    let BrowserError::Json(message) = err else {
        panic!("expected Json");
    };
    assert!(message.len() < 400, "{message}");
    assert!(message.contains("line 1 column"), "{message}");
    let err = parse_input(&format!(
        r#"{{"t":"mm","dx":"{}","dy":0}}"#,
        "z".repeat(3000)
    ));
    let Err(BrowserError::Json(message)) = err else {
        panic!("expected Json, got {err:?}");
    };
    assert!(message.len() < 400, "{message}");
}

#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    // serde_json skips an ignored field without recursing, so deep junk there is harmless.
    let deep = format!(
        r#"{{"type":"quit","junk":{}{}}}"#,
        "[".repeat(32_000),
        "]".repeat(32_000)
    );
    assert!(deep.len() < MAX_SIGNAL_LEN);
    assert_eq!(SignalMessage::parse(&deep), Ok(SignalMessage::Quit));
    let unclosed = format!(r#"{{"type":"quit","junk":{}"#, "[".repeat(65_000));
    assert!(matches!(
        SignalMessage::parse(&unclosed),
        Err(BrowserError::Json(_))
    ));
    // Nesting where a field is read stops at the first level: no field is a container of
    // containers.
    let deep = format!(r#"{{"t":"mm","dx":{}1"#, "{\"a\":".repeat(800));
    assert!(deep.len() < MAX_INPUT_LEN);
    assert!(matches!(parse_input(&deep), Err(BrowserError::Json(_))));
    let deep = format!(
        r#"{{"t":"pad","index":0,"buttons":{}{}}}"#,
        "[".repeat(2000),
        "]".repeat(2000)
    );
    assert!(matches!(parse_input(&deep), Err(BrowserError::Json(_))));
}

#[test]
fn host_signals_serialise_exactly() {
    assert_eq!(
        HostSignal::Config {
            ice_servers: vec![
                IceServer {
                    urls: vec!["stun:stun.example.org:3478".into()],
                    username: None,
                    credential: None,
                },
                IceServer {
                    urls: vec!["turn:t.example.org".into(), "turns:t.example.org".into()],
                    username: Some("u".into()),
                    credential: Some("c".into()),
                },
            ]
        }
        .to_json(),
        r#"{"type":"config","ice_servers":[{"urls":["stun:stun.example.org:3478"]},{"urls":["turn:t.example.org","turns:t.example.org"],"username":"u","credential":"c"}]}"#
    );
    assert_eq!(
        HostSignal::Launched {
            session: 7,
            app: "Desktop \"1\"".into(),
            resumed: true
        }
        .to_json(),
        r#"{"type":"launched","session":7,"app":"Desktop \"1\"","resumed":true}"#
    );
    assert_eq!(
        HostSignal::Offer {
            sdp: "v=0\r\n".into()
        }
        .to_json(),
        r#"{"type":"offer","sdp":"v=0\r\n"}"#
    );
    assert_eq!(
        HostSignal::Ice {
            candidate: "candidate:1".into(),
            sdp_mline_index: 2
        }
        .to_json(),
        r#"{"type":"ice","candidate":"candidate:1","sdpMLineIndex":2}"#
    );
    assert_eq!(
        HostSignal::Ended {
            reason: "app exited".into()
        }
        .to_json(),
        r#"{"type":"ended","reason":"app exited"}"#
    );
    assert_eq!(
        HostSignal::Error {
            message: "bad token".into()
        }
        .to_json(),
        r#"{"type":"error","message":"bad token"}"#
    );
}

#[test]
fn ice_server_reads_config_shape() {
    let server: IceServer = serde_json::from_str(r#"{"urls":["stun:s"]}"#).unwrap();
    assert_eq!(
        server,
        IceServer {
            urls: vec!["stun:s".into()],
            username: None,
            credential: None
        }
    );
}

// --- input ------------------------------------------------------------------------------------

#[test]
fn keys_map_to_moonlight_key_events() {
    assert_eq!(
        one(r#"{"t":"kd","code":"KeyA"}"#),
        InputEvent::KeyDown(key(0x41))
    );
    assert_eq!(
        one(r#"{"t":"ku","code":"KeyA"}"#),
        InputEvent::KeyUp(key(0x41))
    );
    for (code, vk) in [
        ("Digit0", 0x30),
        ("Digit9", 0x39),
        ("F1", 0x70),
        ("F12", 0x7B),
        ("F24", 0x87),
        ("Enter", 0x0D),
        ("NumpadEnter", 0x0D),
        ("Escape", 0x1B),
        ("Backspace", 0x08),
        ("Tab", 0x09),
        ("Space", 0x20),
        ("ArrowLeft", 0x25),
        ("ArrowUp", 0x26),
        ("ArrowRight", 0x27),
        ("ArrowDown", 0x28),
        ("ShiftLeft", 0xA0),
        ("ShiftRight", 0xA1),
        ("ControlLeft", 0xA2),
        ("ControlRight", 0xA3),
        ("AltLeft", 0xA4),
        ("AltRight", 0xA5),
        ("MetaLeft", 0x5B),
        ("MetaRight", 0x5C),
        ("CapsLock", 0x14),
        ("Numpad0", 0x60),
        ("Numpad9", 0x69),
        ("NumLock", 0x90),
        ("ScrollLock", 0x91),
        ("Pause", 0x13),
        ("PrintScreen", 0x2C),
        ("ContextMenu", 0x5D),
        ("Semicolon", 0xBA),
        ("Equal", 0xBB),
        ("Comma", 0xBC),
        ("Minus", 0xBD),
        ("Period", 0xBE),
        ("Slash", 0xBF),
        ("Backquote", 0xC0),
        ("BracketLeft", 0xDB),
        ("Backslash", 0xDC),
        ("BracketRight", 0xDD),
        ("Quote", 0xDE),
        ("IntlBackslash", 0xE2),
    ] {
        assert_eq!(vk_for_code(code), Some(vk), "{code}");
        let event = one(&format!(r#"{{"t":"kd","code":"{code}"}}"#));
        let InputEvent::KeyDown(k) = event else {
            panic!("{code}: {event:?}");
        };
        assert_eq!(k.key_code(), vk, "{code}");
    }
}

#[test]
fn key_table_is_consistent() {
    let mut names: Vec<&str> = KEY_CODES.iter().map(|(name, _)| *name).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(names.len(), before, "duplicate code in KEY_CODES");
    for c in b'A'..=b'Z' {
        assert_eq!(vk_for_code(&format!("Key{}", c as char)), Some(c));
    }
    for n in 1..=24u8 {
        assert_eq!(vk_for_code(&format!("F{n}")), Some(0x6F + n));
    }
    for n in 0..=9u8 {
        assert_eq!(vk_for_code(&format!("Digit{n}")), Some(0x30 + n));
        assert_eq!(vk_for_code(&format!("Numpad{n}")), Some(0x60 + n));
    }
    // Every mapped key survives Moonlight's packet encoding.
    for &(code, vk) in KEY_CODES {
        let event = one(&format!(r#"{{"t":"ku","code":"{code}"}}"#));
        assert_eq!(InputEvent::parse(&event.encode()), Ok(event.clone()));
        assert_eq!(event, InputEvent::KeyUp(key(vk)));
    }
}

#[test]
fn unknown_key_is_named() {
    assert_eq!(
        parse_input(r#"{"t":"kd","code":"Fn"}"#),
        Err(BrowserError::UnknownKey("Fn".into()))
    );
    assert_eq!(
        parse_input(r#"{"t":"kd","code":"keya"}"#),
        Err(BrowserError::UnknownKey("keya".into()))
    );
    assert_eq!(
        parse_input(r#"{"t":"kd","code":""}"#),
        Err(BrowserError::UnknownKey(String::new()))
    );
    assert!(matches!(
        parse_input(r#"{"t":"kd"}"#),
        Err(BrowserError::Json(_))
    ));
}

#[test]
fn text_is_split_between_characters() {
    assert_eq!(
        parse_input(r#"{"t":"text","text":"é"}"#),
        Ok(vec![InputEvent::Utf8Text("é".into())])
    );
    assert_eq!(parse_input(r#"{"t":"text","text":""}"#), Ok(vec![]));
    assert_eq!(
        parse_input(r#"{"t":"text","text":"\u00e9\ud83d\ude00"}"#),
        Ok(vec![InputEvent::Utf8Text("é😀".into())])
    );
    // 33 ASCII bytes: 32 + 1.
    let text = "a".repeat(33);
    let events = parse_input(&format!(r#"{{"t":"text","text":"{text}"}}"#)).unwrap();
    assert_eq!(
        events,
        vec![
            InputEvent::Utf8Text("a".repeat(32)),
            InputEvent::Utf8Text("a".into())
        ]
    );
    // 4-byte characters never straddle a chunk; 31 ASCII + an emoji does not fit in 32.
    let text = format!("{}😀{}", "b".repeat(31), "é".repeat(40));
    let events = parse_input(&format!(r#"{{"t":"text","text":"{text}"}}"#)).unwrap();
    let mut joined = String::new();
    for event in &events {
        let InputEvent::Utf8Text(chunk) = event else {
            panic!("{event:?}");
        };
        assert!(
            !chunk.is_empty() && chunk.len() <= MAX_UTF8_TEXT_LEN,
            "{chunk}"
        );
        assert_eq!(InputEvent::parse(&event.encode()), Ok(event.clone()));
        joined.push_str(chunk);
    }
    assert_eq!(joined, text);
    assert_eq!(events.first(), Some(&InputEvent::Utf8Text("b".repeat(31))));
}

#[test]
fn relative_mouse() {
    assert_eq!(
        one(r#"{"t":"mm","dx":3,"dy":-2}"#),
        InputEvent::MouseMoveRelative { dx: 3, dy: -2 }
    );
    // Fractional CSS pixels round.
    assert_eq!(
        one(r#"{"t":"mm","dx":2.5,"dy":-0.4}"#),
        InputEvent::MouseMoveRelative { dx: 3, dy: 0 }
    );
    assert_eq!(
        one(r#"{"t":"mm","dx":32767,"dy":-32768}"#),
        InputEvent::MouseMoveRelative {
            dx: i16::MAX,
            dy: i16::MIN
        }
    );
    assert_eq!(
        out_of_range(parse_input(r#"{"t":"mm","dx":32768,"dy":0}"#)),
        "dx"
    );
    assert_eq!(
        out_of_range(parse_input(r#"{"t":"mm","dx":0,"dy":-1e300}"#)),
        "dy"
    );
    assert!(matches!(
        parse_input(r#"{"t":"mm","dx":1e999,"dy":0}"#),
        Err(BrowserError::Json(_))
    ));
}

#[test]
fn absolute_mouse_sends_size_minus_one() {
    assert_eq!(
        one(r#"{"t":"ma","x":100,"y":50,"w":1280,"h":720}"#),
        InputEvent::MouseMoveAbsolute {
            x: 100,
            y: 50,
            width: 1279,
            height: 719
        }
    );
    assert_eq!(
        one(r#"{"t":"ma","x":0,"y":0,"w":1,"h":32767}"#),
        InputEvent::MouseMoveAbsolute {
            x: 0,
            y: 0,
            width: 0,
            height: 32766
        }
    );
    assert_eq!(
        out_of_range(parse_input(r#"{"t":"ma","x":1,"y":1,"w":0,"h":720}"#)),
        "w"
    );
    assert_eq!(
        out_of_range(parse_input(r#"{"t":"ma","x":1,"y":1,"w":1280,"h":-5}"#)),
        "h"
    );
    assert_eq!(
        out_of_range(parse_input(r#"{"t":"ma","x":1,"y":1,"w":40000,"h":720}"#)),
        "w"
    );
    assert_eq!(
        out_of_range(parse_input(
            r#"{"t":"ma","x":40000,"y":1,"w":1280,"h":720}"#
        )),
        "x"
    );
    assert_eq!(
        out_of_range(parse_input(
            r#"{"t":"ma","x":1,"y":-40000,"w":1280,"h":720}"#
        )),
        "y"
    );
}

#[test]
fn mouse_buttons_use_dom_numbering() {
    for (dom, button) in [
        (0, MouseButton::Left),
        (1, MouseButton::Middle),
        (2, MouseButton::Right),
        (3, MouseButton::X1),
        (4, MouseButton::X2),
    ] {
        assert_eq!(
            one(&format!(r#"{{"t":"mb","button":{dom},"down":true}}"#)),
            InputEvent::MouseButton {
                action: ButtonAction::Down,
                button
            }
        );
        assert_eq!(
            one(&format!(r#"{{"t":"mb","button":{dom},"down":false}}"#)),
            InputEvent::MouseButton {
                action: ButtonAction::Up,
                button
            }
        );
    }
    assert_eq!(
        out_of_range(parse_input(r#"{"t":"mb","button":5,"down":true}"#)),
        "button"
    );
    assert_eq!(
        out_of_range(parse_input(r#"{"t":"mb","button":-1,"down":true}"#)),
        "button"
    );
    assert!(matches!(
        parse_input(r#"{"t":"mb","button":0,"down":1}"#),
        Err(BrowserError::Json(_))
    ));
}

#[test]
fn wheel_scrolls_each_axis_that_moved() {
    assert_eq!(
        parse_input(r#"{"t":"wh","dx":0,"dy":120}"#),
        Ok(vec![InputEvent::ScrollVertical(120)])
    );
    assert_eq!(
        parse_input(r#"{"t":"wh","dx":-120,"dy":0}"#),
        Ok(vec![InputEvent::ScrollHorizontal(-120)])
    );
    assert_eq!(
        parse_input(r#"{"t":"wh","dx":30,"dy":-240}"#),
        Ok(vec![
            InputEvent::ScrollVertical(-240),
            InputEvent::ScrollHorizontal(30)
        ])
    );
    assert_eq!(parse_input(r#"{"t":"wh","dx":0,"dy":0.2}"#), Ok(vec![]));
    assert_eq!(parse_input(r#"{"t":"wh"}"#), Ok(vec![]));
    assert_eq!(
        parse_input(r#"{"t":"wh","dx":-1e300,"dy":99999}"#),
        Ok(vec![
            InputEvent::ScrollVertical(i16::MAX),
            InputEvent::ScrollHorizontal(i16::MIN)
        ])
    );
}

#[test]
fn touch_events() {
    let touch = |event_type, pressure| {
        InputEvent::Touch(TouchEvent {
            event_type,
            rotation: ROTATION_UNKNOWN,
            pointer_id: 3,
            x: 0.25,
            y: 0.5,
            pressure_or_distance: pressure,
            contact_area_major: 0.0,
            contact_area_minor: 0.0,
        })
    };
    for (kind, event) in [
        ("down", touch(TouchEventType::Down, 1.0)),
        ("move", touch(TouchEventType::Move, 1.0)),
        ("up", touch(TouchEventType::Up, 0.0)),
        ("cancel", touch(TouchEventType::Cancel, 0.0)),
    ] {
        let parsed = one(&format!(
            r#"{{"t":"touch","kind":"{kind}","id":3,"x":0.25,"y":0.5}}"#
        ));
        assert_eq!(parsed, event, "{kind}");
        assert_eq!(InputEvent::parse(&parsed.encode()), Ok(parsed));
    }
    assert!(matches!(
        one(r#"{"t":"touch","kind":"down","id":4294967295,"x":0,"y":1}"#),
        InputEvent::Touch(TouchEvent {
            pointer_id: u32::MAX,
            ..
        })
    ));
    assert_eq!(
        parse_input(r#"{"t":"touch","kind":"hover","id":3,"x":0.25,"y":0.5}"#),
        Err(BrowserError::InvalidValue {
            field: "kind",
            value: "hover".into()
        })
    );
    for (text, field) in [
        (
            r#"{"t":"touch","kind":"down","id":3,"x":1.01,"y":0.5}"#,
            "x",
        ),
        (
            r#"{"t":"touch","kind":"down","id":3,"x":0.5,"y":-0.01}"#,
            "y",
        ),
        (
            r#"{"t":"touch","kind":"down","id":-1,"x":0.5,"y":0.5}"#,
            "id",
        ),
        (
            r#"{"t":"touch","kind":"down","id":4294967296,"x":0.5,"y":0.5}"#,
            "id",
        ),
    ] {
        assert_eq!(out_of_range(parse_input(text)), field, "{text}");
    }
}

fn pad_state(index: u16, mask: u16, buttons: u32) -> ControllerState {
    ControllerState {
        controller_number: index,
        active_gamepad_mask: mask,
        buttons,
        left_trigger: 0,
        right_trigger: 0,
        left_stick_x: 0,
        left_stick_y: 0,
        right_stick_x: 0,
        right_stick_y: 0,
    }
}

#[test]
fn standard_gamepad_buttons_map_to_moonlight_flags() {
    let expected = [
        0x1000, 0x2000, 0x4000, 0x8000, 0x0100, 0x0200, 0, 0, 0x0020, 0x0010, 0x0040, 0x0080,
        0x0001, 0x0002, 0x0004, 0x0008, 0x0400,
    ];
    for (n, flag) in expected.into_iter().enumerate() {
        let mut buttons = vec!["false"; 17];
        buttons[n] = "true";
        let text = format!(
            r#"{{"t":"pad","index":0,"buttons":[{}],"axes":[0,0,0,0],"lt":0,"rt":0}}"#,
            buttons.join(",")
        );
        assert_eq!(
            one(&text),
            InputEvent::MultiController(pad_state(0, 1, flag)),
            "button {n}"
        );
    }
    let all = format!(
        r#"{{"t":"pad","index":2,"buttons":[{}]}}"#,
        vec!["true"; 32].join(",")
    );
    assert_eq!(
        one(&all),
        InputEvent::MultiController(pad_state(2, 0b100, 0xF7FF))
    );
}

#[test]
fn gamepad_sticks_triggers_and_mask() {
    let event = one(
        r#"{"t":"pad","index":1,"mask":5,"buttons":[true,false],"axes":[1,1,-1,-1],"lt":0.5,"rt":1}"#,
    );
    assert_eq!(
        event,
        InputEvent::MultiController(ControllerState {
            controller_number: 1,
            // The pad itself is always in the mask.
            active_gamepad_mask: 0b111,
            buttons: 0x1000,
            left_trigger: 128,
            right_trigger: 255,
            left_stick_x: 32767,
            // Browser down is Moonlight down (negative).
            left_stick_y: -32768,
            right_stick_x: -32768,
            right_stick_y: 32767,
        })
    );
    assert_eq!(InputEvent::parse(&event.encode()), Ok(event));
    // Out-of-range axes and triggers clamp; missing ones are at rest.
    assert_eq!(
        one(r#"{"t":"pad","index":15,"axes":[7,-0.5],"lt":-3,"rt":9}"#),
        InputEvent::MultiController(ControllerState {
            controller_number: 15,
            active_gamepad_mask: 0x8000,
            buttons: 0,
            left_trigger: 0,
            right_trigger: 255,
            left_stick_x: 32767,
            left_stick_y: 16384,
            right_stick_x: 0,
            right_stick_y: 0,
        })
    );
}

#[test]
fn gamepad_limits() {
    assert_eq!(
        out_of_range(parse_input(r#"{"t":"pad","index":16}"#)),
        "index"
    );
    assert_eq!(
        out_of_range(parse_input(r#"{"t":"pad","index":0,"mask":65536}"#)),
        "mask"
    );
    let many = vec!["false"; 33].join(",");
    assert_eq!(
        parse_input(&format!(r#"{{"t":"pad","index":0,"buttons":[{many}]}}"#)),
        Err(BrowserError::TooManyEntries {
            field: "buttons",
            len: 33,
            max: 32
        })
    );
    let many = vec!["0"; 33].join(",");
    assert_eq!(
        parse_input(&format!(r#"{{"t":"pad","index":0,"axes":[{many}]}}"#)),
        Err(BrowserError::TooManyEntries {
            field: "axes",
            len: 33,
            max: 32
        })
    );
    assert!(matches!(
        parse_input(r#"{"t":"pad","index":0,"buttons":[1]}"#),
        Err(BrowserError::Json(_))
    ));
}

#[test]
fn gamepad_arrival_and_removal() {
    assert_eq!(
        parse_input(r#"{"t":"padon","index":1,"mask":1}"#),
        Ok(vec![
            InputEvent::ControllerArrival(ControllerArrival {
                controller_number: 1,
                controller_type: 1,
                capabilities: 0x03,
                supported_buttons: 0xF7FF,
            }),
            InputEvent::MultiController(pad_state(1, 0b11, 0)),
        ])
    );
    assert_eq!(
        parse_input(r#"{"t":"padon","index":3}"#).unwrap().last(),
        Some(&InputEvent::MultiController(pad_state(3, 0b1000, 0)))
    );
    assert_eq!(
        parse_input(r#"{"t":"padoff","index":0,"mask":0}"#),
        Ok(vec![InputEvent::MultiController(pad_state(0, 0, 0))])
    );
    // The pad's own bit is cleared even if the page left it set.
    assert_eq!(
        parse_input(r#"{"t":"padoff","index":1,"mask":3}"#),
        Ok(vec![InputEvent::MultiController(pad_state(1, 0b01, 0))])
    );
    assert!(matches!(
        parse_input(r#"{"t":"padoff","index":1}"#),
        Err(BrowserError::Json(_))
    ));
    assert_eq!(
        out_of_range(parse_input(r#"{"t":"padon","index":-1}"#)),
        "index"
    );
    assert_eq!(
        out_of_range(parse_input(r#"{"t":"padoff","index":0,"mask":-1}"#)),
        "mask"
    );
}

#[test]
fn rumble_message_format() {
    assert_eq!(
        rumble_message(0, 0, 65535),
        r#"{"t":"rumble","index":0,"low":0,"high":65535}"#
    );
    let value: serde_json::Value = serde_json::from_str(&rumble_message(15, 1, 2)).unwrap();
    assert_eq!(value["index"], 15);
}

#[test]
fn unknown_input_type_and_malformed_input() {
    assert_eq!(
        parse_input(r#"{"t":"pen"}"#),
        Err(BrowserError::UnknownType("pen".into()))
    );
    for text in [
        "",
        "{}",
        "[]",
        "1",
        r#"{"t":7}"#,
        r#"{"t":"mm","dx":1}"#,
        r#"{"t":"mm","dx":"1","dy":1}"#,
        r#"{"t":"mm","dx":1,"dy":1,"dx":2}"#,
        r#"{"t":"mm","dx":1,"dy":1}{"t":"mm","dx":1,"dy":1}"#,
        r#"{"t":"mm","dx":NaN,"dy":1}"#,
        r#"{"t":"mm","dx":Infinity,"dy":1}"#,
        r#"{"t":"mm","dx":-1e400,"dy":1}"#,
        r#"{"t":"text","text":"\ud800"}"#,
        r#"{"type":"quit"}"#,
    ] {
        assert!(
            matches!(parse_input(text), Err(BrowserError::Json(_))),
            "{text}: {:?}",
            parse_input(text)
        );
    }
}

#[test]
fn input_size_limit() {
    let fits = format!(r#"{{"t":"text","text":"{}"}}"#, "a".repeat(4096 - 22));
    assert_eq!(fits.len(), MAX_INPUT_LEN);
    assert_eq!(parse_input(&fits).unwrap().len(), 4074usize.div_ceil(32));
    let over = format!(r#"{{"t":"text","text":"{}"}}"#, "a".repeat(4096 - 21));
    assert_eq!(
        parse_input(&over),
        Err(BrowserError::TooLong {
            len: 4097,
            max: MAX_INPUT_LEN
        })
    );
}

#[test]
fn error_messages_name_the_problem() {
    assert_eq!(
        BrowserError::TooLong {
            len: 5000,
            max: 4096
        }
        .to_string(),
        "browser message is 5000 bytes, more than the 4096 allowed"
    );
    assert_eq!(
        BrowserError::UnknownKey("Fn".into()).to_string(),
        "unknown key code \"Fn\""
    );
    assert_eq!(
        BrowserError::UnknownType("bye".into()).to_string(),
        "unknown browser message type \"bye\""
    );
    assert_eq!(BrowserError::Empty("sdp").to_string(), "sdp is empty");
    assert_eq!(
        BrowserError::NotHex("token").to_string(),
        "token is not a hex string"
    );
    let json = parse_input("{").unwrap_err().to_string();
    assert!(json.starts_with("malformed browser message: "), "{json}");
}

// --- robustness -------------------------------------------------------------------------------

/// Valid messages of every kind, as mutation seeds.
pub(crate) fn seeds() -> Vec<Vec<u8>> {
    [
        HELLO,
        r#"{"type":"answer","sdp":"v=0\r\n"}"#,
        r#"{"type":"ice","candidate":"candidate:1 1 udp 1 1.2.3.4 5 typ host","sdpMLineIndex":0}"#,
        r#"{"type":"quit"}"#,
        r#"{"t":"kd","code":"KeyA"}"#,
        r#"{"t":"ku","code":"ShiftLeft"}"#,
        r#"{"t":"text","text":"é😀"}"#,
        r#"{"t":"mm","dx":3,"dy":-2}"#,
        r#"{"t":"ma","x":100,"y":50,"w":1280,"h":720}"#,
        r#"{"t":"mb","button":0,"down":true}"#,
        r#"{"t":"wh","dx":0,"dy":120}"#,
        r#"{"t":"touch","kind":"down","id":3,"x":0.25,"y":0.5}"#,
        r#"{"t":"pad","index":0,"buttons":[true,false,false,false,false,false,false,false,false,false,false,false,false,false,false,false,true],"axes":[0.1,-0.2,1,-1],"lt":0.5,"rt":0}"#,
        r#"{"t":"padon","index":0,"mask":1}"#,
        r#"{"t":"padoff","index":0,"mask":0}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

#[test]
fn robustness_no_panic() {
    crate::input::tests::mutate_and_feed(&seeds(), 30_000, fuzzing::message);
}

#[test]
fn random_bytes_never_panic() {
    // xorshift32: random printable-ish text built from JSON's alphabet, so that much of it
    // gets past the tokenizer.
    const ALPHABET: &[u8] = b"{}[]\":,.-+eE0123456789 tfnaulrsxyz\\u\xc3\xa9";
    let mut x = 0x2545_f491u32;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    for _ in 0..20_000 {
        let len = (next() % 96) as usize;
        let data: Vec<u8> = (0..len)
            .map(|_| {
                let r = next();
                if r & 0x100 == 0 {
                    ALPHABET[(r as usize >> 9) % ALPHABET.len()]
                } else {
                    r as u8
                }
            })
            .collect();
        fuzzing::message(&data);
        if let Ok(text) = std::str::from_utf8(&data) {
            let _ = SignalMessage::parse(text);
            let _ = parse_input(text);
        }
    }
}
