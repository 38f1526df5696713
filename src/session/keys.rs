//! A Moonlight session's key and the sequence state tied to it: the key `/launch` (or
//! `/resume`) brought, the RTSP request and response counters, the control stream's replay
//! window and send counter. They change together: [`SessionKeys::rekey`] is the one way a new
//! key comes in, and it resets every counter that belonged to the old one.

use std::sync::Mutex;

use hati_protocol::control::{ControlCipher, IvMode, ReplayWindow};
use hati_protocol::rtsp::RtspCipher;

use super::{MoonlightKey, lock};

/// The key in force and what has been counted under it.
#[derive(Debug)]
struct KeyState {
    key: MoonlightKey,
    /// The last sealed RTSP response's sequence number (the next one is this + 1).
    rtsp_response_seq: u32,
    /// The highest sequence number of an encrypted RTSP request opened with this key.
    rtsp_request_seq: u32,
    /// Sequence numbers of client control messages opened with this key.
    control_replay: ReplayWindow,
    /// The next host control message's sequence number (one counter for every connection, so
    /// no AES-GCM nonce is used twice); `None` once all 2^32 were used.
    control_send_seq: Option<u32>,
}

impl KeyState {
    fn new(key: MoonlightKey) -> Self {
        Self {
            key,
            rtsp_response_seq: 0,
            rtsp_request_seq: 0,
            control_replay: ReplayWindow::default(),
            control_send_seq: Some(0),
        }
    }
}

/// A session's keys and counters, under one lock.
#[derive(Debug)]
pub struct SessionKeys(Mutex<KeyState>);

impl SessionKeys {
    /// The key `/launch` carried, with every counter at its start.
    pub fn new(key: MoonlightKey) -> Self {
        Self(Mutex::new(KeyState::new(key)))
    }

    /// `/resume`: a new key; every counter starts again, since each belongs to a key.
    pub fn rekey(&self, key: MoonlightKey) {
        *lock(&self.0) = KeyState::new(key);
    }

    /// The key now in force.
    pub fn key(&self) -> MoonlightKey {
        lock(&self.0).key.clone()
    }

    /// The RTSP cipher for the current key.
    pub fn rtsp_cipher(&self) -> RtspCipher {
        RtspCipher::new(&lock(&self.0).key.rikey)
    }

    /// The next sequence number for a sealed RTSP response (starting at 1).
    pub fn next_rtsp_response_seq(&self) -> u32 {
        let mut keys = lock(&self.0);
        keys.rtsp_response_seq = keys.rtsp_response_seq.wrapping_add(1);
        keys.rtsp_response_seq
    }

    /// Accepts an encrypted RTSP request's sequence number if it is higher than every one
    /// accepted under the current key (the client counts from 1 and never repeats).
    pub fn accept_rtsp_request_seq(&self, seq: u32) -> bool {
        let mut keys = lock(&self.0);
        if seq <= keys.rtsp_request_seq {
            return false;
        }
        keys.rtsp_request_seq = seq;
        true
    }

    /// Accepts a client control message's sequence number unless it was seen under the
    /// current key (a replay).
    pub fn accept_control_seq(&self, seq: u32) -> bool {
        lock(&self.0).control_replay.accept(seq)
    }

    /// The sequence number for the next host control message; `None` once all 2^32 were used
    /// under this key (the client must resume with a new one).
    pub fn next_control_send_seq(&self) -> Option<u32> {
        let mut keys = lock(&self.0);
        let seq = keys.control_send_seq?;
        keys.control_send_seq = seq.checked_add(1);
        Some(seq)
    }

    /// The control-stream cipher for the current key; `v2` follows the announced stream
    /// (true before any ANNOUNCE, as every current client uses it).
    pub fn control_cipher(&self, v2: bool) -> ControlCipher {
        ControlCipher::new(
            &lock(&self.0).key.rikey,
            if v2 { IvMode::V2 } else { IvMode::Legacy },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(rikey: u8, rikeyid: i32) -> MoonlightKey {
        MoonlightKey {
            rikey: [rikey; 16],
            rikeyid,
            corever: 1,
        }
    }

    #[test]
    fn rekey_resets_every_counter_of_the_old_key() {
        let keys = SessionKeys::new(key(1, 7));
        assert_eq!(keys.next_rtsp_response_seq(), 1);
        assert!(keys.accept_rtsp_request_seq(5));
        assert!(!keys.accept_rtsp_request_seq(5), "a replayed RTSP request");
        assert!(keys.accept_control_seq(3));
        assert!(!keys.accept_control_seq(3), "a replayed control message");
        assert_eq!(keys.next_control_send_seq(), Some(0));

        keys.rekey(key(2, 8));
        assert_eq!(keys.key(), key(2, 8));
        assert_eq!(keys.next_rtsp_response_seq(), 1);
        assert!(keys.accept_rtsp_request_seq(1));
        assert!(keys.accept_control_seq(3));
        assert_eq!(keys.next_control_send_seq(), Some(0));
    }

    #[test]
    fn the_control_send_counter_ends_at_its_limit_instead_of_wrapping() {
        let keys = SessionKeys::new(key(1, 7));
        lock(&keys.0).control_send_seq = Some(u32::MAX - 1);
        assert_eq!(keys.next_control_send_seq(), Some(u32::MAX - 1));
        assert_eq!(keys.next_control_send_seq(), Some(u32::MAX));
        assert_eq!(keys.next_control_send_seq(), None, "no nonce is used twice");
        assert_eq!(keys.next_control_send_seq(), None);
    }

    #[test]
    fn rtsp_response_counter_wraps_without_panicking() {
        let keys = SessionKeys::new(key(1, 7));
        lock(&keys.0).rtsp_response_seq = u32::MAX;
        assert_eq!(keys.next_rtsp_response_seq(), 0);
    }
}
