//! Keyboard input: the key down / key up body ([`KeyEvent`]) and its wire layout.

use super::{InputError, TOO_SHORT};
use crate::codec::{Reader, Writer};

/// Body of a key down or key up event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyEvent {
    /// Sunshine flags: 0x01 = the key code is not normalised to the US layout.
    pub flags: u8,
    /// The keyCode field as sent (LE16); moonlight-qt sets 0x8000.
    pub raw_key_code: u16,
    /// Modifier bits: Shift 0x01, Ctrl 0x02, Alt 0x04, Meta 0x08.
    pub modifiers: u8,
}

impl KeyEvent {
    /// The Windows virtual-key code: the low byte of [`Self::raw_key_code`].
    pub fn key_code(&self) -> u8 {
        let [low, _high] = self.raw_key_code.to_le_bytes();
        low
    }
}

/// Reads a key body: flags, the LE16 key code, modifiers and two bytes of padding.
pub(super) fn parse_key(r: &mut Reader<'_>) -> Result<KeyEvent, InputError> {
    let key = KeyEvent {
        flags: r.u8().ok_or(TOO_SHORT)?,
        raw_key_code: r.le_u16().ok_or(TOO_SHORT)?,
        modifiers: r.u8().ok_or(TOO_SHORT)?,
    };
    r.skip(2).ok_or(TOO_SHORT)?;
    Ok(key)
}

/// Writes a key body in the layout [`parse_key`] reads.
pub(super) fn encode_key(key: &KeyEvent, w: &mut Writer) {
    w.u8(key.flags);
    w.le_u16(key.raw_key_code);
    w.u8(key.modifiers);
    w.le_u16(0);
}
