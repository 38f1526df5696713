//! Keyboard input: evdev key presses and [`InputEvent::Text`], typed with the US keymap or, for
//! a character it lacks, through a temporary keymap.

use std::collections::HashMap;

use smithay::{
    backend::input::KeyState,
    input::keyboard::{FilterResult, Keycode, xkb},
    utils::SERIAL_COUNTER,
};
use tracing::{debug, warn};

#[cfg(doc)]
use super::InputEvent;
use crate::state::State;

/// Linux `KEY_LEFTSHIFT`.
const KEY_LEFTSHIFT: u32 = 42;
/// Linux `KEY_ENTER`.
const KEY_ENTER: u32 = 28;
/// The evdev code left free in the US keymap that a temporary keymap binds to one character.
const SPARE_EVDEV_KEY: u32 = 240;
/// Offset between evdev codes and xkb keycodes.
const XKB_OFFSET: u32 = 8;
/// Longest text accepted in one [`InputEvent::Text`].
const MAX_TEXT_CHARS: usize = 1024;

/// Finds the key (and Shift level) typing a character with the US keymap.
pub(crate) struct TextKeymap {
    /// `char` to `(evdev code, needs shift)`.
    keys: HashMap<char, (u32, bool)>,
    /// The US keymap as xkb text, restored after a temporary keymap.
    us_keymap: String,
}

impl std::fmt::Debug for TextKeymap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextKeymap")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl TextKeymap {
    /// Compiles the US keymap and indexes the characters of its first two levels.
    pub(crate) fn us() -> Option<Self> {
        let context = xkb::Context::new(xkb::CONTEXT_NO_FLAGS);
        let keymap = xkb::Keymap::new_from_names(
            &context,
            "",
            "",
            "us",
            "",
            None,
            xkb::KEYMAP_COMPILE_NO_FLAGS,
        )?;
        let mut keys = HashMap::new();
        for level in 0..2u32 {
            // Only codes `keyboard_key` accepts (xkb codes up to 255).
            for code in keymap.min_keycode().raw()..=keymap.max_keycode().raw().min(255) {
                let Some(evdev) = code.checked_sub(XKB_OFFSET) else {
                    continue;
                };
                for sym in keymap.key_get_syms_by_level(code.into(), 0, level) {
                    let utf32 = xkb::keysym_to_utf32(*sym);
                    if let Some(ch) = char::from_u32(utf32).filter(|c| *c != '\0') {
                        keys.entry(ch).or_insert((evdev, level == 1));
                    }
                }
            }
        }
        keys.insert('\n', (KEY_ENTER, false));
        let us_keymap = keymap.get_as_string(xkb::KEYMAP_FORMAT_TEXT_V1);
        Some(Self { keys, us_keymap })
    }

    /// The key typing `ch`, with whether Shift is needed.
    pub(crate) fn lookup(&self, ch: char) -> Option<(u32, bool)> {
        self.keys.get(&ch).copied()
    }

    /// A keymap text equal to the US one with the spare key bound to `ch`.
    pub(crate) fn with_spare_key(ch: char) -> String {
        format!(
            "xkb_keymap {{\n\
             xkb_keycodes {{ include \"evdev+aliases(qwerty)\" }};\n\
             xkb_types {{ include \"complete\" }};\n\
             xkb_compat {{ include \"complete\" }};\n\
             xkb_symbols {{ include \"pc+us+inet(evdev)\"\n\
             key <I248> {{ [ U{:04X} ] }}; }};\n\
             }};\n",
            u32::from(ch)
        )
    }
}

impl State {
    pub(super) fn keyboard_key(&mut self, linux_keycode: u32, pressed: bool, time: u32) {
        let Some(xkb_code) = linux_keycode.checked_add(XKB_OFFSET).filter(|c| *c <= 255) else {
            debug!(linux_keycode, "key code out of range");
            return;
        };
        let changed = if pressed {
            self.inject.pressed_keys.insert(linux_keycode)
        } else {
            self.inject.pressed_keys.remove(&linux_keycode)
        };
        if !changed {
            return;
        }
        let Some(keyboard) = self.seat.get_keyboard() else {
            return;
        };
        let state = if pressed {
            KeyState::Pressed
        } else {
            KeyState::Released
        };
        keyboard.input::<(), _>(
            self,
            Keycode::new(xkb_code),
            state,
            SERIAL_COUNTER.next_serial(),
            time,
            |_, _, _| FilterResult::Forward,
        );
    }

    pub(super) fn type_text(&mut self, text: &str, time: u32) {
        for ch in text.chars().take(MAX_TEXT_CHARS) {
            if let Some((code, shift)) = self.text_keymap.as_ref().and_then(|k| k.lookup(ch)) {
                if shift {
                    self.keyboard_key(KEY_LEFTSHIFT, true, time);
                }
                self.keyboard_key(code, true, time);
                self.keyboard_key(code, false, time);
                if shift {
                    self.keyboard_key(KEY_LEFTSHIFT, false, time);
                }
            } else if !ch.is_control() {
                self.type_with_temporary_keymap(ch, time);
            }
        }
    }

    fn type_with_temporary_keymap(&mut self, ch: char, time: u32) {
        let Some(keyboard) = self.seat.get_keyboard() else {
            return;
        };
        let Some(us) = self.text_keymap.as_ref().map(|k| k.us_keymap.clone()) else {
            return;
        };
        if let Err(err) = keyboard.set_keymap_from_string(self, TextKeymap::with_spare_key(ch)) {
            warn!(?err, "cannot build a keymap for a character");
            return;
        }
        self.keyboard_key(SPARE_EVDEV_KEY, true, time);
        self.keyboard_key(SPARE_EVDEV_KEY, false, time);
        if let Err(err) = keyboard.set_keymap_from_string(self, us) {
            warn!(?err, "cannot restore the US keymap");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn us_keymap_types_ascii() {
        let keymap = TextKeymap::us().expect("US keymap compiles");
        assert_eq!(keymap.lookup('a'), Some((30, false)));
        assert_eq!(keymap.lookup('A'), Some((30, true)));
        assert_eq!(keymap.lookup('1'), Some((2, false)));
        assert_eq!(keymap.lookup('!'), Some((2, true)));
        assert_eq!(keymap.lookup(' '), Some((57, false)));
        assert_eq!(keymap.lookup('\n'), Some((KEY_ENTER, false)));
        assert_eq!(keymap.lookup('€'), None);
    }

    #[test]
    fn spare_key_keymap_compiles() {
        let context = xkb::Context::new(xkb::CONTEXT_NO_FLAGS);
        let keymap = xkb::Keymap::new_from_string(
            &context,
            TextKeymap::with_spare_key('€'),
            xkb::KEYMAP_FORMAT_TEXT_V1,
            xkb::KEYMAP_COMPILE_NO_FLAGS,
        )
        .expect("temporary keymap compiles");
        let syms = keymap.key_get_syms_by_level((SPARE_EVDEV_KEY + XKB_OFFSET).into(), 0, 0);
        assert_eq!(
            syms.iter()
                .map(|s| xkb::keysym_to_utf32(*s))
                .collect::<Vec<_>>(),
            [0x20AC]
        );
    }
}
