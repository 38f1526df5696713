//! Tests for `docs/PROTOCOL.md` §5: RTP headers, IV derivation, AES-CBC round trip, 4+2 FEC.

use std::sync::Once;

use aes::Aes128;
use cbc::cipher::{BlockModeDecrypt, KeyIvInit, block_padding::Pkcs7};
use gst::prelude::*;

use super::packetizer::*;

const KEY: [u8; 16] = [
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
];

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        crate::register_static().unwrap();
    });
}

/// Independent GF(2^8)/0x11D multiply for the parity check.
fn ref_mul(mut a: u8, mut b: u8) -> u8 {
    let mut p = 0;
    while b != 0 {
        if b & 1 != 0 {
            p ^= a;
        }
        let carry = a & 0x80 != 0;
        a <<= 1;
        if carry {
            a ^= 0x1d;
        }
        b >>= 1;
    }
    p
}

fn opus(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|k| (k as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn decrypt(payload: &[u8], rikeyid: i32, seq: u16) -> Vec<u8> {
    let iv = audio_iv(rikeyid, seq);
    cbc::Decryptor::<Aes128>::new(&KEY.into(), &iv.into())
        .decrypt_padded_vec::<Pkcs7>(payload)
        .unwrap()
}

#[test]
fn iv_derivation() {
    let iv = audio_iv(1234, 5);
    assert_eq!(&iv[..4], &1239u32.to_be_bytes());
    assert_eq!(&iv[4..], &[0; 12]);
    // rikeyid may be negative and the sum wraps mod 2^32.
    assert_eq!(audio_iv(-1, 1), [0; 16]);
    assert_eq!(&audio_iv(-2, 0)[..4], &[0xff, 0xff, 0xff, 0xfe]);
    assert_eq!(&audio_iv(i32::MAX, 1)[..4], &[0x80, 0, 0, 0]);
    assert_eq!(&audio_iv(0, 65_535)[..4], &[0, 0, 0xff, 0xff]);
}

#[test]
fn rtp_headers_and_fec_cadence() {
    let mut pz = AudioPacketizer::new(AudioConfig::default());
    for seq in 0..12u16 {
        let payload = opus(120, seq as u8);
        let out = pz.packetize(&payload).unwrap();
        let ts = u32::from(seq) * 5;
        #[rustfmt::skip]
        let header = [
            0x80, 97,
            (seq >> 8) as u8, seq as u8,
            (ts >> 24) as u8, (ts >> 16) as u8, (ts >> 8) as u8, ts as u8,
            0, 0, 0, 0,
        ];
        assert_eq!(&out.data[..12], &header);
        assert_eq!(&out.data[12..], &payload[..]);
        assert_eq!(out.sequence, seq);
        // FEC after the data packets 4k+3 only.
        assert_eq!(out.fec.is_some(), seq % 4 == 3, "seq {seq}");
        assert!(!out.fec_skipped);
    }
}

#[test]
fn sequence_and_fec_blocks_cross_the_16_bit_wrap() {
    let rikeyid = 77;
    let mut pz = AudioPacketizer::new(AudioConfig {
        packet_duration_ms: 5,
        key: Some(KEY),
        rikeyid,
    });
    // An unaligned start is rounded down so that blocks still start at 4k.
    pz.set_next_sequence(65_535 - 9);
    assert_eq!(pz.next_sequence(), 65_524);
    let mut expected_seq = 65_524u16;
    for k in 0..24u16 {
        let payload = opus(100, k as u8);
        let out = pz.packetize(&payload).unwrap();
        assert_eq!(out.sequence, expected_seq);
        assert_eq!(&out.data[2..4], &expected_seq.to_be_bytes());
        assert_eq!(decrypt(&out.data[12..], rikeyid, expected_seq), payload);
        assert_eq!(
            out.fec.is_some(),
            expected_seq % 4 == 3,
            "seq {expected_seq}"
        );
        if let Some(fec) = out.fec {
            let base = expected_seq.wrapping_sub(3);
            assert_eq!(
                &fec[0][14..16],
                &base.to_be_bytes(),
                "FEC base after the wrap"
            );
        }
        expected_seq = expected_seq.wrapping_add(1);
    }
    assert!(expected_seq < 100, "crossed the wrap");
}

#[test]
fn fec_packets_exact() {
    let mut pz = AudioPacketizer::new(AudioConfig {
        packet_duration_ms: 10,
        ..AudioConfig::default()
    });
    // Skip to the second block, so base sequence and timestamp are non-zero.
    for k in 0..4 {
        pz.packetize(&opus(60, k)).unwrap();
    }
    let payloads: Vec<Vec<u8>> = (0..4).map(|k| opus(60, 100 + k)).collect();
    for p in &payloads[..3] {
        assert!(pz.packetize(p).unwrap().fec.is_none());
    }
    let out = pz.packetize(&payloads[3]).unwrap();
    let fec = out.fec.unwrap();
    let matrix = [[0x77, 0x40, 0x38, 0x0e], [0xc7, 0xa7, 0x0d, 0x6c]];
    for (x, pkt) in fec.iter().enumerate() {
        assert_eq!(pkt.len(), 12 + 12 + 60);
        #[rustfmt::skip]
        let header = [
            // RTP: pt 127, seq = last data seq (7) + 1 + x, timestamp 0, SSRC 0
            0x80, 127, 0, 8 + x as u8, 0, 0, 0, 0, 0, 0, 0, 0,
            // AUDIO_FEC_HEADER: shard index, pt 97, base seq 4, base timestamp 40 ms, SSRC 0
            x as u8, 97, 0, 4, 0, 0, 0, 40, 0, 0, 0, 0,
        ];
        assert_eq!(&pkt[..24], &header);
        for k in 0..60 {
            let want = (0..4).fold(0, |acc, i| acc ^ ref_mul(matrix[x][i], payloads[i][k]));
            assert_eq!(pkt[24 + k], want, "parity {x} byte {k}");
        }
    }
}

#[test]
fn encryption_round_trip_and_fec_over_ciphertext() {
    let rikeyid = -123_456;
    let mut pz = AudioPacketizer::new(AudioConfig {
        packet_duration_ms: 5,
        key: Some(KEY),
        rikeyid,
    });
    let mut data_packets = Vec::new();
    for seq in 0..8u16 {
        // 100 bytes → 112 with PKCS#7; 96 → 112 too (a full padding block).
        let payload = opus(if seq % 2 == 0 { 100 } else { 96 }, seq as u8);
        let out = pz.packetize(&payload).unwrap();
        assert_eq!(out.data.len(), 12 + 112);
        assert_eq!(decrypt(&out.data[12..], rikeyid, seq), payload);
        // A wrong IV (off by one in the sequence) does not give the plaintext back.
        let wrong = cbc::Decryptor::<Aes128>::new(&KEY.into(), &audio_iv(rikeyid, seq + 1).into())
            .decrypt_padded_vec::<Pkcs7>(&out.data[12..]);
        assert!(wrong.map_or(true, |w| w != payload));
        data_packets.push(out.data.to_vec());
        if let Some(fec) = out.fec {
            // Recover two lost data packets of this block from the parity of the ciphertext.
            let base = usize::from(seq) - 3;
            let mut shards: Vec<Vec<u8>> = (0..4)
                .map(|i| data_packets[base + i][12..].to_vec())
                .chain(fec.iter().map(|f| f[24..].to_vec()))
                .collect();
            let original = shards.clone();
            shards[1].fill(0);
            shards[2].fill(0);
            let present = [true, false, false, true, true, true];
            let mut refs: Vec<&mut [u8]> = shards.iter_mut().map(|v| v.as_mut_slice()).collect();
            crate::fec::ReedSolomon::audio()
                .reconstruct(&mut refs, &present)
                .unwrap();
            assert_eq!(shards, original);
            let seq1 = (base + 1) as u16;
            assert_eq!(decrypt(&shards[1], rikeyid, seq1), opus(96, seq1 as u8));
        }
    }
}

#[test]
fn unequal_block_skips_fec() {
    let mut pz = AudioPacketizer::new(AudioConfig::default());
    for (k, len) in [100, 100, 101, 100].into_iter().enumerate() {
        let out = pz.packetize(&opus(len, k as u8)).unwrap();
        if k == 3 {
            assert!(out.fec.is_none());
            assert!(out.fec_skipped);
        }
    }
    // The next block is equal again and gets FEC.
    for k in 0..4 {
        let out = pz.packetize(&opus(100, k)).unwrap();
        assert_eq!(out.fec.is_some(), k == 3);
        assert!(!out.fec_skipped);
    }
}

#[test]
fn bad_input_does_not_consume_a_sequence() {
    let mut pz = AudioPacketizer::new(AudioConfig::default());
    assert_eq!(pz.packetize(&[]).unwrap_err(), AudioError::Empty);
    assert_eq!(
        pz.packetize(&[0; MAX_PAYLOAD_LEN + 1]).unwrap_err(),
        AudioError::TooLarge(MAX_PAYLOAD_LEN + 1)
    );
    assert_eq!(pz.next_sequence(), 0);
    assert_eq!(pz.packetize(&[1]).unwrap().sequence, 0);
    // Payloads too big for a 1400-byte FEC datagram are sent without FEC.
    let mut pz = AudioPacketizer::new(AudioConfig::default());
    for _ in 0..4 {
        let out = pz.packetize(&[7; MAX_FEC_PAYLOAD_LEN + 1]).unwrap();
        assert!(out.data.len() <= MAX_DATAGRAM_LEN);
        assert!(out.fec.is_none());
    }
}

#[test]
fn element_round_trip() {
    init();
    let element = gst::ElementFactory::make("moonlightaudiopay")
        .property("encrypt", true)
        .property("aes-key", "00112233445566778899aabbccddeeff")
        .property("rikeyid", 42i32)
        .property("packet-duration", 10u32)
        .build()
        .unwrap();
    let mut h = gst_check::Harness::with_element(&element, Some("sink"), Some("src"));
    h.set_src_caps_str("audio/x-opus,rate=48000,channels=2,channel-mapping-family=0");
    let caps = h.sinkpad().unwrap().current_caps().unwrap();
    assert_eq!(
        caps.structure(0).unwrap().name(),
        "application/x-moonlight-rtp"
    );

    for k in 0..8u8 {
        h.push(gst::Buffer::from_slice(opus(200, k))).unwrap();
    }
    // Also a bad (empty) packet: dropped without using a sequence number.
    h.push(gst::Buffer::new()).unwrap();
    let mut packets = Vec::new();
    while h.buffers_in_queue() > 0 {
        packets.push(h.pull().unwrap().map_readable().unwrap().to_vec());
    }
    // 8 data packets + 2 FEC blocks × 2.
    let types: Vec<u8> = packets.iter().map(|p| p[1]).collect();
    assert_eq!(types, [97, 97, 97, 97, 127, 127, 97, 97, 97, 97, 127, 127]);
    let data: Vec<&Vec<u8>> = packets.iter().filter(|p| p[1] == 97).collect();
    for (seq, pkt) in data.iter().enumerate() {
        assert_eq!(u16::from_be_bytes([pkt[2], pkt[3]]), seq as u16);
        assert_eq!(
            u32::from_be_bytes(pkt[4..8].try_into().unwrap()),
            10 * seq as u32
        );
        assert_eq!(decrypt(&pkt[12..], 42, seq as u16), opus(200, seq as u8));
    }
}
