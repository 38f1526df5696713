//! Every key the browser play page can send reaches the desktop: each virtual-key code in
//! `hati_protocol::browser::KEY_CODES` has a Linux key in the compositor's `vk_to_evdev`. The
//! check lives here because neither crate may depend on the other.

use hati_compositor::vk_to_evdev;
use hati_protocol::browser::{KEY_CODES, vk_for_code};

#[test]
fn every_browser_key_has_a_linux_key() {
    let missing: Vec<String> = KEY_CODES
        .iter()
        .filter(|&&(_, vk)| vk_to_evdev(vk).is_none())
        .map(|(code, vk)| format!("{code} (VK {vk:#04x})"))
        .collect();
    assert!(missing.is_empty(), "no Linux key for: {missing:?}");
}

#[test]
fn left_and_right_modifiers_stay_distinct() {
    for (left, right) in [
        ("ShiftLeft", "ShiftRight"),
        ("ControlLeft", "ControlRight"),
        ("AltLeft", "AltRight"),
        ("MetaLeft", "MetaRight"),
    ] {
        let linux = |code: &str| vk_for_code(code).and_then(vk_to_evdev);
        assert!(linux(left).is_some(), "{left}");
        assert_ne!(linux(left), linux(right), "{left} / {right}");
    }
}
