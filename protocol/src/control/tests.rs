//! Tests for control envelope and messages (docs/PROTOCOL.md §3.2–3.5): known answers, round trips,
//! one test per error variant, and a mutation robustness run of the module's fuzzing entry point.

use super::*;

const KEY: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

// Vectors computed with an independent AES-GCM (Python `cryptography`), key 00..0f, using the
// §3.2 layouts and IVs.
/// Client RequestIdr (`02 03 02 00 00 00`), seq 0, IV `00000000 000000000000 'C' 'C'`.
const CLIENT_IDR_SEQ0: &str = "01001a000000000022302723537811166cb9bfead7dad4575cd629f5cafe";
/// Host termination 0x80030023, seq 7, IV origin 'H'.
const HOST_TERMINATION_SEQ7: &str =
    "01001c0007000000a825d6bd20ccfe5ba7fbb60530900ef17f27937ed176265a";
/// Client Start B with the legacy 16-byte IV, seq 0x101 (IV byte 0 = 0x01).
const CLIENT_START_B_LEGACY_SEQ257: &str =
    "01001900010100009d43560e2414621fcbf2552c1bd1c647e0503fd7b9";

fn v2() -> ControlCipher {
    ControlCipher::new(&KEY, IvMode::V2)
}

#[test]
fn known_answer_open_client_idr() {
    let packet = hex(CLIENT_IDR_SEQ0);
    assert_eq!(
        v2().open_client_message(&packet),
        Ok((0, ClientMessage::RequestIdr))
    );
    let opened = v2().open(Origin::Client, &packet).unwrap();
    assert_eq!(opened.plaintext, [0x02, 0x03, 0x02, 0x00, 0x00, 0x00]);
}

#[test]
fn known_answer_seal_client_idr() {
    let plaintext = ClientMessage::RequestIdr.encode().unwrap();
    assert_eq!(
        v2().seal(Origin::Client, 0, &plaintext).unwrap(),
        hex(CLIENT_IDR_SEQ0)
    );
}

#[test]
fn known_answer_seal_host_termination() {
    let message = HostMessage::Termination {
        hresult: hresult::GRACEFUL,
    };
    assert_eq!(
        message.encode(),
        [0x09, 0x01, 0x04, 0x00, 0x80, 0x03, 0x00, 0x23]
    );
    assert_eq!(
        v2().seal_host_message(7, &message).unwrap(),
        hex(HOST_TERMINATION_SEQ7)
    );
}

#[test]
fn known_answer_legacy_iv() {
    let cipher = ControlCipher::new(&KEY, IvMode::Legacy);
    assert_eq!(
        cipher.open_client_message(&hex(CLIENT_START_B_LEGACY_SEQ257)),
        Ok((257, ClientMessage::StartB))
    );
    // The legacy IV truncates the sequence number: 1 and 257 share an IV.
    let sealed = cipher
        .seal(Origin::Client, 1, &ClientMessage::StartB.encode().unwrap())
        .unwrap();
    assert_eq!(sealed[8..], hex(CLIENT_START_B_LEGACY_SEQ257)[8..]);
}

#[test]
fn known_answer_fec_status_is_big_endian() {
    let payload = [
        0x00, 0x00, 0x01, 0x02, // frameIndex 258
        0x12, 0x34, 0x12, 0x30, 0x00, 0x03, 0x00, 0x0A, 0x00, 0x02, 0x00, 0x07, 0x00, 0x01, 20, 0,
        1,
    ];
    let message = ControlMessage {
        packet_type: packet_type::FEC_STATUS,
        payload: &payload,
    };
    assert_eq!(
        ClientMessage::parse(&message),
        Ok(ClientMessage::FecStatus(FecStatus {
            frame_index: 258,
            highest_received_sequence_number: 0x1234,
            next_contiguous_sequence_number: 0x1230,
            missing_packets_before_highest_received: 3,
            total_data_packets: 10,
            total_parity_packets: 2,
            received_data_packets: 7,
            received_parity_packets: 1,
            fec_percentage: 20,
            multi_fec_block_index: 0,
            multi_fec_block_count: 1,
        }))
    );
}

#[test]
fn known_answer_rfi_and_ltr() {
    let mut payload = vec![0u8; 24];
    payload[0..4].copy_from_slice(&100u32.to_le_bytes());
    payload[8..12].copy_from_slice(&105u32.to_le_bytes());
    let message = ControlMessage {
        packet_type: 0x0301,
        payload: &payload,
    };
    assert_eq!(
        ClientMessage::parse(&message),
        Ok(ClientMessage::InvalidateRefFrames {
            first_frame_index: 100,
            last_frame_index: 105
        })
    );
    let ltr = [0x2A, 0, 0, 0, 0, 0, 0, 0];
    let message = ControlMessage {
        packet_type: 0x0350,
        payload: &ltr,
    };
    assert_eq!(
        ClientMessage::parse(&message),
        Ok(ClientMessage::LtrAck { frame_index: 42 })
    );
}

#[test]
fn known_answer_periodic_ping_and_input() {
    // The client leaves the last two ping bytes unset; any value is accepted.
    let ping = [4, 0, 0, 0, 0, 0, 0xAB, 0xCD];
    let message = ControlMessage {
        packet_type: 0x0200,
        payload: &ping,
    };
    assert_eq!(
        ClientMessage::parse(&message),
        Ok(ClientMessage::PeriodicPing)
    );
    let input = [0, 0, 0, 5, 8, 0, 0, 0, 1];
    let bytes = ControlMessage {
        packet_type: 0x0206,
        payload: &input,
    }
    .encode()
    .unwrap();
    assert_eq!(bytes[..4], [0x06, 0x02, 0x09, 0x00]);
    let ClientMessage::InputData(data) =
        ClientMessage::parse(&ControlMessage::parse(&bytes).unwrap()).unwrap()
    else {
        panic!("not input");
    };
    assert!(matches!(
        crate::input::InputEvent::parse(&data),
        Ok(crate::input::InputEvent::MouseButton { .. })
    ));
}

#[test]
fn known_answer_host_payloads() {
    assert_eq!(
        HostMessage::Rumble {
            controller: 1,
            low_freq: 0x1234,
            high_freq: 0xFFFF
        }
        .encode(),
        [0x0b, 0x01, 10, 0, 0, 0, 0, 0, 1, 0, 0x34, 0x12, 0xFF, 0xFF]
    );
    assert_eq!(
        HostMessage::RumbleTriggers {
            controller: 2,
            left: 1,
            right: 0x100
        }
        .encode(),
        [0x00, 0x55, 6, 0, 2, 0, 1, 0, 0, 1]
    );
    assert_eq!(
        HostMessage::MotionEventState {
            controller: 0,
            report_rate_hz: 100,
            motion_type: MotionType::Gyroscope
        }
        .encode(),
        [0x01, 0x55, 5, 0, 0, 0, 100, 0, 2]
    );
    assert_eq!(
        HostMessage::RgbLed {
            controller: 3,
            red: 0xFF,
            green: 0x80,
            blue: 0
        }
        .encode(),
        [0x02, 0x55, 5, 0, 3, 0, 0xFF, 0x80, 0]
    );
    assert_eq!(
        HostMessage::HdrMode {
            enabled: false,
            metadata: None
        }
        .encode(),
        [0x0e, 0x01, 1, 0, 0]
    );
    let hdr = HostMessage::HdrMode {
        enabled: true,
        metadata: Some(HdrMetadata {
            display_primaries: [(34000, 16000), (13250, 34500), (7500, 3000)],
            white_point: (15635, 16450),
            max_display_luminance: 1000,
            min_display_luminance: 50,
            max_content_light_level: 1000,
            max_frame_average_light_level: 400,
            max_full_frame_luminance: 600,
        }),
    }
    .encode();
    assert_eq!(hdr.len(), 4 + 27);
    assert_eq!(hdr[..7], [0x0e, 0x01, 27, 0, 1, 0xD0, 0x84]);
}

fn all_client_messages() -> Vec<ClientMessage> {
    vec![
        ClientMessage::RequestIdr,
        ClientMessage::StartB,
        ClientMessage::InvalidateRefFrames {
            first_frame_index: 1,
            last_frame_index: u32::MAX,
        },
        ClientMessage::PeriodicPing,
        ClientMessage::LossStats {
            last_good_frame: 0x0102_0304_0506_0708,
        },
        ClientMessage::InputData(vec![0, 0, 0, 6, 0x0D, 0, 0, 0, 1, 0]),
        ClientMessage::FecStatus(FecStatus {
            frame_index: 9,
            highest_received_sequence_number: 1,
            next_contiguous_sequence_number: 2,
            missing_packets_before_highest_received: 3,
            total_data_packets: 4,
            total_parity_packets: 5,
            received_data_packets: 6,
            received_parity_packets: 7,
            fec_percentage: 8,
            multi_fec_block_index: 9,
            multi_fec_block_count: 10,
        }),
        ClientMessage::LtrAck { frame_index: 77 },
        ClientMessage::Unknown {
            packet_type: 0x0204,
        },
    ]
}

fn all_host_messages() -> Vec<HostMessage> {
    vec![
        HostMessage::Termination {
            hresult: hresult::PROTECTED_CONTENT,
        },
        HostMessage::Rumble {
            controller: 15,
            low_freq: 1,
            high_freq: 2,
        },
        HostMessage::RumbleTriggers {
            controller: 0,
            left: 3,
            right: 4,
        },
        HostMessage::MotionEventState {
            controller: 1,
            report_rate_hz: 0,
            motion_type: MotionType::Accelerometer,
        },
        HostMessage::RgbLed {
            controller: 1,
            red: 1,
            green: 2,
            blue: 3,
        },
        HostMessage::AdaptiveTriggers {
            controller: 0,
            event_flags: 0x0C,
            type_left: 0x21,
            type_right: 0x26,
            left: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            right: [10, 9, 8, 7, 6, 5, 4, 3, 2, 1],
        },
        HostMessage::HdrMode {
            enabled: true,
            metadata: None,
        },
        HostMessage::HdrMode {
            enabled: true,
            metadata: Some(HdrMetadata {
                max_display_luminance: 1000,
                ..HdrMetadata::default()
            }),
        },
    ]
}

#[test]
fn client_messages_round_trip_through_envelope() {
    for (seq, message) in all_client_messages().into_iter().enumerate() {
        let seq = seq as u32;
        let sealed = v2()
            .seal(Origin::Client, seq, &message.encode().unwrap())
            .unwrap();
        assert_eq!(v2().open_client_message(&sealed), Ok((seq, message)));
    }
}

#[test]
fn host_messages_round_trip_through_envelope() {
    for (seq, message) in all_host_messages().into_iter().enumerate() {
        let sealed = v2().seal_host_message(seq as u32, &message).unwrap();
        let opened = v2().open(Origin::Host, &sealed).unwrap();
        assert_eq!(opened.seq, seq as u32);
        let parsed = HostMessage::parse(&ControlMessage::parse(&opened.plaintext).unwrap());
        assert_eq!(parsed, Ok(Some(message)));
    }
}

#[test]
fn host_parse_ignores_client_types() {
    let m = ControlMessage {
        packet_type: 0x0200,
        payload: &[],
    };
    assert_eq!(HostMessage::parse(&m), Ok(None));
}

#[test]
fn error_too_short() {
    assert_eq!(
        ControlMessage::parse(&[1, 2, 3]),
        Err(ControlError::TooShort)
    );
}

#[test]
fn error_length_mismatch() {
    assert_eq!(
        ControlMessage::parse(&[0x02, 0x03, 0x03, 0x00, 0, 0]),
        Err(ControlError::LengthMismatch {
            declared: 3,
            actual: 2
        })
    );
}

#[test]
fn error_not_encrypted() {
    assert_eq!(
        v2().open(Origin::Client, &[0x02, 0x03, 0x02, 0x00, 0, 0]),
        Err(ControlError::NotEncrypted {
            packet_type: 0x0302
        })
    );
}

#[test]
fn error_envelope_too_short() {
    let packet = hex(CLIENT_IDR_SEQ0);
    assert_eq!(
        v2().open(Origin::Client, &packet[..23]),
        Err(ControlError::EnvelopeTooShort)
    );
    assert_eq!(
        v2().open(Origin::Client, &[1]),
        Err(ControlError::EnvelopeTooShort)
    );
}

#[test]
fn error_envelope_length_mismatch() {
    let mut packet = hex(CLIENT_IDR_SEQ0);
    packet.push(0);
    assert_eq!(
        v2().open(Origin::Client, &packet),
        Err(ControlError::EnvelopeLengthMismatch {
            declared: 26,
            actual: 27
        })
    );
}

#[test]
fn error_decrypt() {
    let packet = hex(CLIENT_IDR_SEQ0);
    // Wrong direction: the 'H' IV does not match a client packet.
    assert_eq!(v2().open(Origin::Host, &packet), Err(ControlError::Decrypt));
    // Wrong key.
    assert_eq!(
        ControlCipher::new(&[0; 16], IvMode::V2).open(Origin::Client, &packet),
        Err(ControlError::Decrypt)
    );
    // Tampered ciphertext, tag and sequence number.
    for i in [4, 8, 24, 29] {
        let mut p = packet.clone();
        p[i] ^= 1;
        assert_eq!(
            v2().open(Origin::Client, &p),
            Err(ControlError::Decrypt),
            "byte {i}"
        );
    }
}

#[test]
fn error_too_long() {
    let big = vec![0; MAX_PLAINTEXT_LEN + 1];
    assert_eq!(v2().seal(Origin::Host, 0, &big), Err(ControlError::TooLong));
    assert!(v2().seal(Origin::Host, 0, &big[1..]).is_ok());
    assert_eq!(
        ClientMessage::InputData(vec![0; 70_000]).encode(),
        Err(ControlError::TooLong)
    );
}

#[test]
fn error_payload_length() {
    let m = ControlMessage {
        packet_type: 0x0302,
        payload: &[0, 0, 0],
    };
    assert_eq!(
        ClientMessage::parse(&m),
        Err(ControlError::PayloadLength {
            message: "request IDR",
            expected: 2,
            actual: 3
        })
    );
    let m = ControlMessage {
        packet_type: 0x5502,
        payload: &[0; 20],
    };
    assert!(matches!(
        ClientMessage::parse(&m),
        Err(ControlError::PayloadLength {
            message: "FEC status",
            ..
        })
    ));
}

#[test]
fn error_invalid_value() {
    let m = ControlMessage {
        packet_type: 0x5501,
        payload: &[0, 0, 10, 0, 3],
    };
    assert_eq!(
        HostMessage::parse(&m),
        Err(ControlError::InvalidValue {
            field: "motion type",
            value: 3
        })
    );
}

#[test]
fn debug_does_not_print_key() {
    let s = format!("{:?}", v2());
    assert!(s.contains("V2"), "{s}");
    assert!(!s.contains("0, 1, 2"), "{s}");
}

/// V2 plaintexts of every client and host message, plus the encrypted vectors, as seeds.
pub(crate) fn seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = all_client_messages()
        .iter()
        .map(|m| m.encode().unwrap())
        .chain(all_host_messages().iter().map(HostMessage::encode))
        .collect();
    // Sealed with the key the fuzz entry point uses, so mutations start past the tag check.
    let fuzz_cipher = ControlCipher::new(&[0x42; 16], IvMode::V2);
    for (seq, m) in seeds.clone().iter().enumerate() {
        seeds.push(fuzz_cipher.seal(Origin::Client, seq as u32, m).unwrap());
    }
    seeds.push(hex(CLIENT_IDR_SEQ0));
    seeds.push(hex(HOST_TERMINATION_SEQ7));
    seeds
}

#[test]
fn robustness_no_panic() {
    crate::input::tests::mutate_and_feed(&seeds(), 10_000, fuzzing::envelope);
}

#[test]
fn replay_window_refuses_repeats_and_accepts_reordering() {
    let mut window = ReplayWindow::default();
    assert!(window.accept(0));
    assert!(!window.accept(0), "a replay of the first message");
    for seq in [2, 1, 5, 3, 4] {
        assert!(window.accept(seq), "{seq} arrives late but once");
    }
    for seq in 0..=5 {
        assert!(!window.accept(seq), "{seq} again");
    }
    // A jump forward keeps what lies within the span.
    assert!(window.accept(700));
    assert!(!window.accept(5));
    assert!(window.accept(6));
    // Beyond the span: too old to tell, refused.
    assert!(window.accept(6 + ReplayWindow::SPAN + 10));
    assert!(!window.accept(7));
}

#[test]
fn replay_window_matches_a_set_model() {
    // Pseudo-random arrival orders within the span against a HashSet model.
    let mut window = ReplayWindow::default();
    let mut seen = std::collections::HashSet::new();
    let mut highest = 0u32;
    let mut x = 0x1234_5678u32;
    for n in 0..20_000u32 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let seq = (n + (x % 300)).saturating_sub(150);
        let fresh = !seen.contains(&seq) && (seq + ReplayWindow::SPAN > highest || seen.is_empty());
        let fresh = fresh && highest.saturating_sub(seq) < ReplayWindow::SPAN;
        assert_eq!(
            window.accept(seq),
            fresh,
            "seq {seq} after highest {highest}"
        );
        if fresh {
            seen.insert(seq);
            highest = highest.max(seq);
        }
    }
}
