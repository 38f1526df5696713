//! Windows virtual-key codes (what Moonlight clients send) to Linux evdev key codes
//! (`input-event-codes.h`), for the US layout.
//!
//! OEM keys map to the evdev key at the same physical position on a US keyboard. The generic
//! modifier codes (`VK_SHIFT`, `VK_CONTROL`, `VK_MENU`) map to the left-hand keys.

/// The evdev `KEY_*` code for a Windows virtual-key code, or `None` when no key matches.
pub fn vk_to_evdev(vk: u8) -> Option<u32> {
    let code = match vk {
        0x08 => 14,                              // VK_BACK -> KEY_BACKSPACE
        0x09 => 15,                              // VK_TAB
        0x0D => 28,                              // VK_RETURN -> KEY_ENTER
        0x10 => 42,                              // VK_SHIFT -> KEY_LEFTSHIFT
        0x11 => 29,                              // VK_CONTROL -> KEY_LEFTCTRL
        0x12 => 56,                              // VK_MENU -> KEY_LEFTALT
        0x13 => 119,                             // VK_PAUSE
        0x14 => 58,                              // VK_CAPITAL -> KEY_CAPSLOCK
        0x15 => 122,                             // VK_HANGUL -> KEY_HANGEUL
        0x19 => 123,                             // VK_HANJA
        0x1B => 1,                               // VK_ESCAPE
        0x1C => 92,                              // VK_CONVERT -> KEY_HENKAN
        0x1D => 94,                              // VK_NONCONVERT -> KEY_MUHENKAN
        0x20 => 57,                              // VK_SPACE
        0x21 => 104,                             // VK_PRIOR -> KEY_PAGEUP
        0x22 => 109,                             // VK_NEXT -> KEY_PAGEDOWN
        0x23 => 107,                             // VK_END
        0x24 => 102,                             // VK_HOME
        0x25 => 105,                             // VK_LEFT
        0x26 => 103,                             // VK_UP
        0x27 => 106,                             // VK_RIGHT
        0x28 => 108,                             // VK_DOWN
        0x2A => 210,                             // VK_PRINT -> KEY_PRINT
        0x2C => 99,                              // VK_SNAPSHOT -> KEY_SYSRQ
        0x2D => 110,                             // VK_INSERT
        0x2E => 111,                             // VK_DELETE
        0x2F => 138,                             // VK_HELP
        0x30 => 11,                              // '0' -> KEY_0
        0x31..=0x39 => u32::from(vk - 0x31) + 2, // '1'..'9' -> KEY_1..KEY_9
        0x41..=0x5A => LETTERS[usize::from(vk - 0x41)],
        0x5B => 125, // VK_LWIN -> KEY_LEFTMETA
        0x5C => 126, // VK_RWIN -> KEY_RIGHTMETA
        0x5D => 127, // VK_APPS -> KEY_COMPOSE
        0x5F => 142, // VK_SLEEP
        0x60..=0x69 => NUMPAD[usize::from(vk - 0x60)],
        0x6A => 55,                                // VK_MULTIPLY -> KEY_KPASTERISK
        0x6B => 78,                                // VK_ADD -> KEY_KPPLUS
        0x6C => 121,                               // VK_SEPARATOR -> KEY_KPCOMMA
        0x6D => 74,                                // VK_SUBTRACT -> KEY_KPMINUS
        0x6E => 83,                                // VK_DECIMAL -> KEY_KPDOT
        0x6F => 98,                                // VK_DIVIDE -> KEY_KPSLASH
        0x70..=0x79 => u32::from(vk - 0x70) + 59,  // VK_F1..VK_F10 -> KEY_F1..KEY_F10
        0x7A => 87,                                // VK_F11
        0x7B => 88,                                // VK_F12
        0x7C..=0x87 => u32::from(vk - 0x7C) + 183, // VK_F13..VK_F24 -> KEY_F13..KEY_F24
        0x90 => 69,                                // VK_NUMLOCK
        0x91 => 70,                                // VK_SCROLL -> KEY_SCROLLLOCK
        0xA0 => 42,                                // VK_LSHIFT
        0xA1 => 54,                                // VK_RSHIFT
        0xA2 => 29,                                // VK_LCONTROL
        0xA3 => 97,                                // VK_RCONTROL
        0xA4 => 56,                                // VK_LMENU -> KEY_LEFTALT
        0xA5 => 100,                               // VK_RMENU -> KEY_RIGHTALT
        0xA6 => 158,                               // VK_BROWSER_BACK -> KEY_BACK
        0xA7 => 159,                               // VK_BROWSER_FORWARD -> KEY_FORWARD
        0xA8 => 173,                               // VK_BROWSER_REFRESH -> KEY_REFRESH
        0xA9 => 128,                               // VK_BROWSER_STOP -> KEY_STOP
        0xAA => 217,                               // VK_BROWSER_SEARCH -> KEY_SEARCH
        0xAB => 156,                               // VK_BROWSER_FAVORITES -> KEY_BOOKMARKS
        0xAC => 172,                               // VK_BROWSER_HOME -> KEY_HOMEPAGE
        0xAD => 113,                               // VK_VOLUME_MUTE -> KEY_MUTE
        0xAE => 114,                               // VK_VOLUME_DOWN
        0xAF => 115,                               // VK_VOLUME_UP
        0xB0 => 163,                               // VK_MEDIA_NEXT_TRACK -> KEY_NEXTSONG
        0xB1 => 165,                               // VK_MEDIA_PREV_TRACK -> KEY_PREVIOUSSONG
        0xB2 => 166,                               // VK_MEDIA_STOP -> KEY_STOPCD
        0xB3 => 164,                               // VK_MEDIA_PLAY_PAUSE -> KEY_PLAYPAUSE
        0xB4 => 155,                               // VK_LAUNCH_MAIL -> KEY_MAIL
        0xBA => 39,                                // VK_OEM_1 (;:) -> KEY_SEMICOLON
        0xBB => 13,                                // VK_OEM_PLUS (=+) -> KEY_EQUAL
        0xBC => 51,                                // VK_OEM_COMMA
        0xBD => 12,                                // VK_OEM_MINUS
        0xBE => 52,                                // VK_OEM_PERIOD -> KEY_DOT
        0xBF => 53,                                // VK_OEM_2 (/?) -> KEY_SLASH
        0xC0 => 41,                                // VK_OEM_3 (`~) -> KEY_GRAVE
        0xDB => 26,                                // VK_OEM_4 ([{) -> KEY_LEFTBRACE
        0xDC => 43,                                // VK_OEM_5 (\|) -> KEY_BACKSLASH
        0xDD => 27,                                // VK_OEM_6 (]}) -> KEY_RIGHTBRACE
        0xDE => 40,                                // VK_OEM_7 ('") -> KEY_APOSTROPHE
        0xE2 => 86,                                // VK_OEM_102 -> KEY_102ND
        _ => return None,
    };
    Some(code)
}

/// `KEY_A`..`KEY_Z` in alphabetical order.
const LETTERS: [u32; 26] = [
    30, 48, 46, 32, 18, 33, 34, 35, 23, 36, 37, 38, 50, 49, 24, 25, 16, 19, 31, 20, 22, 47, 17, 45,
    21, 44,
];

/// `KEY_KP0`..`KEY_KP9`.
const NUMPAD: [u32; 10] = [82, 79, 80, 81, 75, 76, 77, 71, 72, 73];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys() {
        assert_eq!(vk_to_evdev(b'A'), Some(30));
        assert_eq!(vk_to_evdev(b'Z'), Some(44));
        assert_eq!(vk_to_evdev(b'Q'), Some(16));
        assert_eq!(vk_to_evdev(b'0'), Some(11));
        assert_eq!(vk_to_evdev(b'1'), Some(2));
        assert_eq!(vk_to_evdev(b'9'), Some(10));
        assert_eq!(vk_to_evdev(0x70), Some(59)); // F1
        assert_eq!(vk_to_evdev(0x79), Some(68)); // F10
        assert_eq!(vk_to_evdev(0x7B), Some(88)); // F12
        assert_eq!(vk_to_evdev(0x87), Some(194)); // F24
        assert_eq!(vk_to_evdev(0x60), Some(82)); // KP0
        assert_eq!(vk_to_evdev(0x69), Some(73)); // KP9
        assert_eq!(vk_to_evdev(0xA5), Some(100)); // right Alt
        assert_eq!(vk_to_evdev(0x26), Some(103)); // up
        assert_eq!(vk_to_evdev(0xDE), Some(40)); // apostrophe
        assert_eq!(vk_to_evdev(0x00), None);
        assert_eq!(vk_to_evdev(0xFF), None);
    }

    #[test]
    fn every_code_fits_the_xkb_range() {
        for vk in 0..=u8::MAX {
            if let Some(code) = vk_to_evdev(vk) {
                assert!(code + 8 <= 255, "vk {vk:#x} -> {code}");
            }
        }
    }
}
