//! Tests for `docs/PROTOCOL.md` §4: exact header bytes, FEC block layout, parity counts,
//! encryption, and a client-style depayloader that reassembles frames from lossy packets.

// `(d * F + 99) / 100` is written exactly as the client computes it.
#![allow(clippy::manual_div_ceil)]

use std::collections::BTreeMap;
use std::sync::Once;

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes128Gcm, KeyInit};
use gst::prelude::*;

use super::packetizer::*;

const KEY: [u8; 16] = *b"0123456789abcdef";

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        crate::register_static().unwrap();
    });
}

fn meta(frame_type: FrameType) -> FrameMeta {
    FrameMeta {
        frame_type,
        rtp_timestamp: 0x0102_0304,
        host_processing_latency: 0x0a0b,
    }
}

/// Deterministic filler bytes.
fn bytes(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

fn split(packets: &Packets<'_>) -> Vec<Vec<u8>> {
    packets.iter().map(<[u8]>::to_vec).collect()
}

#[track_caller]
fn assert_bytes(actual: &[u8], expected: &[u8]) {
    assert_eq!(
        actual.len(),
        expected.len(),
        "length differs: {actual:02x?} vs {expected:02x?}"
    );
    for (k, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert_eq!(a, e, "byte {k}: {a:#04x} != {e:#04x}");
    }
}

// ---------------------------------------------------------------------------------------------
// A client-side depayloader modelled on moonlight-common-c (RtpVideoQueue.c,
// VideoDepacketizer.c). FEC recovery uses fec-rs, an implementation independent of ours that
// matches nanors.

#[derive(Debug, PartialEq, Eq)]
struct ReceivedFrame {
    frame_index: u32,
    rtp_timestamp: u32,
    host_processing_latency: u16,
    frame_type: u8,
    /// The bitstream after the frame header, cut with `lastPayloadLen`.
    bitstream: Vec<u8>,
    /// Data packets rebuilt from parity.
    recovered: usize,
}

struct Fields {
    seq: u16,
    timestamp: u32,
    stream_packet_index: u32,
    frame_index: u32,
    flags: u8,
    block: u8,
    last_block: u8,
    data_shards: usize,
    fec_index: usize,
    fec_percentage: usize,
}

fn fields(pkt: &[u8]) -> Fields {
    let le32 = |o: usize| u32::from_le_bytes(pkt[o..o + 4].try_into().unwrap());
    let fec_info = le32(28);
    Fields {
        seq: u16::from_be_bytes([pkt[2], pkt[3]]),
        timestamp: u32::from_be_bytes(pkt[4..8].try_into().unwrap()),
        stream_packet_index: le32(16),
        frame_index: le32(20),
        flags: pkt[24],
        block: (pkt[27] >> 4) & 3,
        last_block: (pkt[27] >> 6) & 3,
        data_shards: (fec_info >> 22) as usize,
        fec_index: ((fec_info >> 12) & 0x3ff) as usize,
        fec_percentage: ((fec_info >> 4) & 0xff) as usize,
    }
}

fn decrypt(pkt: &[u8], key: &[u8; 16]) -> Result<(u32, Vec<u8>), String> {
    let aead = Aes128Gcm::new(&(*key).into());
    let iv: [u8; 12] = pkt[..12].try_into().unwrap();
    let frame_number = u32::from_le_bytes(pkt[12..16].try_into().unwrap());
    let tag: [u8; 16] = pkt[16..32].try_into().unwrap();
    let mut body = pkt[32..].to_vec();
    aead.decrypt_inout_detached(&iv.into(), &[], body.as_mut_slice().into(), &tag.into())
        .map_err(|_| "tag mismatch".to_string())?;
    Ok((frame_number, body))
}

/// Reassembles one frame from whatever packets arrived (any order).
fn depacketize(
    received: &[Vec<u8>],
    payload_size: usize,
    key: Option<&[u8; 16]>,
) -> Result<ReceivedFrame, String> {
    let shard_len = 16 + payload_size;
    let chunk = payload_size - 16;
    let mut blocks: BTreeMap<u8, Vec<Vec<u8>>> = BTreeMap::new();
    let mut last_block = None;
    for pkt in received {
        let plain = match key {
            Some(key) => {
                if pkt.len() != 32 + shard_len {
                    return Err(format!("encrypted packet of {} bytes", pkt.len()));
                }
                let (frame_number, plain) = decrypt(pkt, key)?;
                if frame_number != fields(&plain).frame_index {
                    return Err("frameNumber differs from frameIndex".into());
                }
                plain
            }
            None => pkt.clone(),
        };
        if plain.len() != shard_len {
            return Err(format!(
                "packet of {} bytes, expected {shard_len}",
                plain.len()
            ));
        }
        if plain[0] != 0x90 {
            return Err("RTP byte 0 is not 0x90 (X=1)".into());
        }
        let f = fields(&plain);
        *last_block.get_or_insert(f.last_block) = f.last_block;
        blocks.entry(f.block).or_default().push(plain);
    }
    let last_block = last_block.ok_or("no packets")?;
    let mut payload = Vec::new();
    let mut frame_index = None;
    let mut timestamp = 0;
    let mut recovered_total = 0;
    for b in 0..=last_block {
        let pkts = blocks
            .remove(&b)
            .ok_or(format!("block {b} lost entirely"))?;
        let first = fields(&pkts[0]);
        let d = first.data_shards;
        let f = first.fec_percentage;
        let p = (d * f + 99) / 100;
        let lowest = first.seq.wrapping_sub(first.fec_index as u16);
        timestamp = first.timestamp;
        if *frame_index.get_or_insert(first.frame_index) != first.frame_index {
            return Err("frame index differs between blocks".into());
        }
        let mut shards: Vec<Option<Vec<u8>>> = vec![None; d + p];
        for pkt in pkts {
            let g = fields(&pkt);
            if g.data_shards != d || g.fec_percentage != f || g.frame_index != first.frame_index {
                return Err("fecInfo differs within a block".into());
            }
            if g.fec_index >= d + p {
                return Err(format!("shard index {} beyond {d}+{p}", g.fec_index));
            }
            if g.seq.wrapping_sub(g.fec_index as u16) != lowest {
                return Err("sequence != lowest + fecIndex".into());
            }
            shards[g.fec_index] = Some(pkt);
        }
        let missing_data = shards[..d].iter().filter(|s| s.is_none()).count();
        if missing_data > 0 {
            if p == 0 || shards.iter().filter(|s| s.is_some()).count() < d {
                return Err(format!("block {b} unrecoverable"));
            }
            let before: Vec<bool> = shards[..d].iter().map(Option::is_some).collect();
            let rs = fec_rs::ReedSolomon::new(d, p).map_err(|e| format!("{e:?}"))?;
            rs.reconstruct_data(&mut shards)
                .map_err(|e| format!("{e:?}"))?;
            for (i, had) in before.iter().enumerate() {
                if !had {
                    // The client rewrites these fields of recovered packets.
                    let pkt = shards[i].as_mut().unwrap();
                    pkt[0] = 0x90;
                    pkt[2..4].copy_from_slice(&lowest.wrapping_add(i as u16).to_be_bytes());
                    pkt[4..8].copy_from_slice(&timestamp.to_be_bytes());
                    pkt[20..24].copy_from_slice(&first.frame_index.to_le_bytes());
                    pkt[27] = (b << 4) | (last_block << 6);
                    recovered_total += 1;
                }
            }
        }
        for (i, shard) in shards[..d].iter().enumerate() {
            let pkt = shard.as_ref().unwrap();
            let g = fields(pkt);
            // The sanity checks the client applies to recovered packets, on every packet.
            let want_flags =
                0x01 | if i == 0 { 0x04 } else { 0 } | if i + 1 == d { 0x02 } else { 0 };
            if g.flags != want_flags {
                return Err(format!("block {b} packet {i}: flags {:#x}", g.flags));
            }
            // The client reads bits 8..31 as a 24-bit index that must be consecutive within a
            // block (VideoDepacketizer.c); its low 16 bits are the RTP sequence number.
            let seq = lowest.wrapping_add(i as u16);
            let index = g.stream_packet_index >> 8;
            let first_index = fields(shards[0].as_ref().unwrap()).stream_packet_index >> 8;
            if index as u16 != seq || u24(index.wrapping_sub(first_index)) != i as u32 {
                return Err(format!("block {b} packet {i}: streamPacketIndex"));
            }
            if pkt[25] != 0 || pkt[26] != 0x10 {
                return Err("extraFlags / multiFecFlags".into());
            }
            payload.extend_from_slice(&pkt[32..]);
        }
    }
    if payload.len() < 8 || payload[0] != 0x01 {
        return Err("bad frame header".into());
    }
    let last_payload_len = usize::from(u16::from_le_bytes([payload[4], payload[5]]));
    if last_payload_len == 0 || last_payload_len > chunk {
        return Err("bad lastPayloadLen".into());
    }
    let end = payload.len() - (chunk - last_payload_len);
    Ok(ReceivedFrame {
        frame_index: frame_index.unwrap_or(0),
        rtp_timestamp: timestamp,
        host_processing_latency: u16::from_le_bytes([payload[1], payload[2]]),
        frame_type: payload[3],
        bitstream: payload[8..end].to_vec(),
        recovered: recovered_total,
    })
}

// ---------------------------------------------------------------------------------------------
// Packetizer unit tests.

#[test]
fn small_frame_header_bytes() {
    let mut pz = VideoPacketizer::new(Config::default(), None).unwrap();
    let au = [0x00, 0x00, 0x00, 0x01, 0x65, 0xaa, 0xbb];
    let packets = pz.packetize(&au, &meta(FrameType::Idr)).unwrap();
    let info = packets.info;
    assert_eq!(info.frame_index, 1);
    assert_eq!(info.first_sequence, 0);
    // 1 data packet; p = ceil(1·20/100) = 1 < 2 → p = 2, F = 100·2/1 = 200.
    assert_eq!(
        info.plan.blocks(),
        &[BlockPlan {
            data_shards: 1,
            parity_shards: 2,
            fec_percentage: 200
        }]
    );
    let pkts = split(&packets);
    assert_eq!(pkts.len(), 3);
    assert!(pkts.iter().all(|p| p.len() == 16 + 1392));

    #[rustfmt::skip]
    let expected_head = [
        // RTP: V=2 X=1, pt 0, seq 0, timestamp, SSRC 0, 4 extension bytes
        0x90, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0, 0, 0, 0, 0, 0, 0, 0,
        // NV: streamPacketIndex = 0 << 8, frameIndex 1 (LE)
        0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
        // flags PIC|EOF|SOF, extraFlags, multiFecFlags, multiFecBlocks (block 0 of 1)
        0x07, 0x00, 0x10, 0x00,
        // fecInfo = (0 << 12) | (1 << 22) | (200 << 4) = 0x00400c80 LE
        0x80, 0x0c, 0x40, 0x00,
        // frame header: type 1 header, latency 0x0a0b LE, IDR, lastPayloadLen 15 LE, 0
        0x01, 0x0b, 0x0a, 0x02, 0x0f, 0x00, 0x00, 0x00,
        // the access unit
        0x00, 0x00, 0x00, 0x01, 0x65, 0xaa, 0xbb,
    ];
    assert_bytes(&pkts[0][..expected_head.len()], &expected_head);
    assert!(pkts[0][expected_head.len()..].iter().all(|&b| b == 0));

    // Parity packets: seq 1 and 2, fecInfo index 1 and 2, same timestamp / frame / block.
    for (j, pkt) in pkts[1..].iter().enumerate() {
        assert_eq!(pkt[0], 0x90);
        assert_eq!(pkt[1], 0x00);
        assert_eq!(&pkt[2..4], &(1 + j as u16).to_be_bytes());
        assert_eq!(&pkt[4..8], &[0x01, 0x02, 0x03, 0x04]);
        assert_eq!(&pkt[8..16], &[0; 8]);
        assert_eq!(&pkt[20..24], &[1, 0, 0, 0]);
        assert_eq!(pkt[27], 0x00);
        let fec_info = (1 + j as u32) << 12 | 1 << 22 | 200 << 4;
        assert_eq!(&pkt[28..32], &fec_info.to_le_bytes());
    }
    // With one data shard, parity j is that shard times inv((2 + 0) ^ j): check the payload.
    for (j, pkt) in pkts[1..].iter().enumerate() {
        let c = crate::fec::gf_inv((2 ^ j) as u8);
        for k in 32..pkt.len() {
            assert_eq!(
                pkt[k],
                crate::fec::gf_mul(c, pkts[0][k]),
                "parity {j} byte {k}"
            );
        }
    }
}

#[test]
fn fec_info_matches_wolf_vector() {
    // Wolf's testGSTPlugin checks fecInfo == 8402496: 2 data shards, F = 100, shard index 3.
    let mut pz = VideoPacketizer::new(Config::default(), None).unwrap();
    let au = bytes(1376 * 2 - 8, 1); // exactly two full data packets
    let packets = pz.packetize(&au, &meta(FrameType::PFrame)).unwrap();
    let pkts = split(&packets);
    assert_eq!(pkts.len(), 4);
    let fec_infos: Vec<u32> = pkts
        .iter()
        .map(|p| u32::from_le_bytes(p[28..32].try_into().unwrap()))
        .collect();
    assert_eq!(fec_infos, [8_390_208, 8_394_304, 8_398_400, 8_402_496]);
    // lastPayloadLen is a whole chunk when the payload fills the last packet exactly.
    assert_eq!(&pkts[0][36..38], &1376u16.to_le_bytes());
    assert_eq!(pkts[0][35], 1, "P-frame type");
    assert_eq!(pkts[0][24], 0x05, "PIC|SOF");
    assert_eq!(pkts[1][24], 0x03, "PIC|EOF");
}

#[test]
fn multi_block_split() {
    let cfg = Config::default();
    let chunk = cfg.payload_size - 16;
    let au = bytes(500 * chunk - 8, 2); // 500 data packets
    let mut pz = VideoPacketizer::new(cfg, None).unwrap();
    let packets = pz.packetize(&au, &meta(FrameType::Idr)).unwrap();
    let plan = packets.info.plan;
    // 212 data shards per block at 20 % → 3 blocks, spread evenly.
    let shapes: Vec<(usize, usize, u8)> = plan
        .blocks()
        .iter()
        .map(|b| (b.data_shards, b.parity_shards, b.fec_percentage))
        .collect();
    assert_eq!(shapes, [(167, 34, 20), (167, 34, 20), (166, 34, 20)]);
    let pkts = split(&packets);
    assert_eq!(pkts.len(), 500 + 3 * 34);
    let mut k = 0;
    for (b, &(d, p, _)) in shapes.iter().enumerate() {
        for i in 0..d + p {
            let f = fields(&pkts[k]);
            assert_eq!(
                f.seq as usize, k,
                "sequence continuous over data and parity"
            );
            assert_eq!(f.block as usize, b);
            assert_eq!(f.last_block, 2);
            assert_eq!(pkts[k][27], ((b as u8) << 4) | (2 << 6));
            assert_eq!(f.fec_index, i);
            assert_eq!(f.data_shards, d);
            if i < d {
                assert_eq!(f.stream_packet_index, (k as u32) << 8);
                assert_eq!(f.flags & 0x04 != 0, i == 0, "SOF");
                assert_eq!(f.flags & 0x02 != 0, i == d - 1, "EOF");
            }
            k += 1;
        }
    }
    let frame = depacketize(&pkts, cfg.payload_size, None).unwrap();
    assert_eq!(frame.bitstream, au);
    assert_eq!(frame.recovered, 0);
}

#[test]
fn fec_disabled_beyond_four_blocks() {
    let cfg = Config::default();
    let chunk = cfg.payload_size - 16;
    let mut pz = VideoPacketizer::new(cfg, None).unwrap();
    // 900 data packets would need 5 blocks of ≤ 212: FEC off, one block of 900.
    let au = bytes(900 * chunk - 8, 3);
    let packets = pz.packetize(&au, &meta(FrameType::Idr)).unwrap();
    assert!(packets.info.plan.fec_disabled);
    assert_eq!(
        packets.info.plan.blocks(),
        &[BlockPlan {
            data_shards: 900,
            parity_shards: 0,
            fec_percentage: 0
        }]
    );
    let pkts = split(&packets);
    assert_eq!(fields(&pkts[899]).data_shards, 900);
    assert_eq!(fields(&pkts[899]).fec_index, 899);
    assert_eq!(fields(&pkts[899]).fec_percentage, 0);
    assert_eq!(depacketize(&pkts, 1392, None).unwrap().bitstream, au);
    // 2000 data packets → 2 blocks of 1000 without FEC.
    let plan = pz.plan(2000 * chunk - 8).unwrap();
    assert_eq!(plan.blocks().len(), 2);
    assert_eq!(plan.total_packets(), 2000);
    // More than 4 × 1023 packets cannot be sent at all.
    assert_eq!(
        pz.plan(4093 * chunk),
        Err(PacketizeError::FrameTooLarge(4093 * chunk))
    );
    assert!(pz.plan(4092 * chunk - 8).is_ok());
}

#[test]
fn parity_count_rule_exhaustive() {
    for d in 1..=1023usize {
        // Parity counts some F in 0..=255 can express that fit in 255 shards.
        let fitting: Vec<usize> = (0..=255usize)
            .map(|f| (d * f + 99) / 100)
            .filter(|&a| a == 0 || d + a <= 255)
            .collect();
        for f in 0..=255u8 {
            for min in 0..=6u8 {
                let (p, fw) = block_parity(d, f, min);
                let fw = usize::from(fw);
                assert_eq!(
                    p,
                    (d * fw + 99) / 100,
                    "client recomputation d={d} F={f} min={min}"
                );
                if f == 0 {
                    assert_eq!((p, fw), (0, 0));
                    continue;
                }
                if p > 0 {
                    assert!(d + p <= 255, "d={d} F={f} min={min}");
                }
                // p is the smallest parity count a valid F can express that is at least the
                // wanted one, or, if none fits in 255 shards, the largest that does.
                let wanted = (d * usize::from(f)).div_ceil(100).max(usize::from(min));
                let expected = fitting
                    .iter()
                    .copied()
                    .filter(|&a| a >= wanted)
                    .min()
                    .or_else(|| fitting.iter().copied().max())
                    .unwrap();
                assert_eq!(p, expected, "d={d} F={f} min={min}");
            }
        }
    }
    // The PROTOCOL.md §4.4 example: d = 201, p = 40 must not be written as F = 19.
    assert_eq!(block_parity(201, 20, 2), (41, 20));
    assert_eq!(block_parity(201, 19, 40), (41, 20));
    assert_eq!(block_parity(1, 20, 2), (2, 200));
    assert_eq!(block_parity(10, 20, 2), (2, 20));
    assert_eq!(block_parity(5, 20, 2), (2, 40));
    assert_eq!(block_parity(1, 20, 3), (3, 201));
}

#[test]
fn plans_respect_limits() {
    for f in [0u8, 1, 5, 20, 50, 100, 200, 255] {
        let cfg = Config {
            payload_size: 1392,
            fec_percentage: f,
            min_required_fec_packets: 2,
        };
        for n in (1..=4092usize).step_by(7) {
            let plan = plan_frame(n * 1376 - 8, &cfg, false).unwrap();
            assert_eq!(plan.data_packets, n);
            assert!(plan.blocks().len() <= 4);
            let sum: usize = plan.blocks().iter().map(|b| b.data_shards).sum();
            assert_eq!(sum, n);
            for b in plan.blocks() {
                assert!(b.data_shards <= 1023);
                if b.parity_shards > 0 {
                    assert!(b.data_shards + b.parity_shards <= 255);
                }
                assert_eq!(
                    b.parity_shards,
                    (b.data_shards * usize::from(b.fec_percentage) + 99) / 100
                );
            }
        }
    }
}

#[test]
fn frame_indices_and_sequences_continue() {
    let mut pz = VideoPacketizer::new(Config::default(), None).unwrap();
    let mut next_seq = 0u16;
    for frame in 1..=5u32 {
        let au = bytes(1000 * frame as usize, frame);
        let packets = pz.packetize(&au, &meta(FrameType::PFrame)).unwrap();
        assert_eq!(packets.info.frame_index, frame);
        for pkt in packets.iter() {
            assert_eq!(fields(pkt).seq, next_seq);
            assert_eq!(fields(pkt).frame_index, frame);
            next_seq = next_seq.wrapping_add(1);
        }
    }
    assert_eq!(pz.next_frame_index(), 6);
    assert_eq!(pz.next_sequence(), next_seq);
}

fn u24(x: u32) -> u32 {
    x & 0xFF_FFFF
}

/// moonlight-common-c's `isBefore24`.
fn is_before24(x: u32, y: u32) -> bool {
    u24(x.wrapping_sub(y)) > 0xFF_FFFF / 2
}

/// The client's per-packet order check (VideoDepacketizer.c `processRtpPayload`): a packet
/// whose 24-bit index is before the last one + 1, or a non-SOF packet that does not follow it,
/// is dropped and the frame with it. Returns how many of `packets` (in send order) pass.
fn client_order_check(last_in_stream: &mut u32, packets: &[Vec<u8>]) -> usize {
    let mut accepted = 0;
    for pkt in packets {
        let f = fields(pkt);
        if f.fec_index >= f.data_shards {
            continue; // parity packets do not reach this check
        }
        let index = u24(f.stream_packet_index >> 8);
        let next = u24(last_in_stream.wrapping_add(1));
        if is_before24(index, next) || (f.flags & 0x04 == 0 && index != next) {
            continue;
        }
        *last_in_stream = index;
        accepted += 1;
    }
    accepted
}

#[test]
fn packet_index_crosses_16_and_24_bit_wraps() {
    // Start just below each wrap the client can see: the RTP sequence (16 bits), the 24-bit
    // streamPacketIndex the client compares, and the 32-bit counter itself.
    for start in [65_536 - 300, (1 << 24) - 300, u32::MAX - 300] {
        let mut pz = VideoPacketizer::new(Config::default(), None).unwrap();
        pz.set_next_packet_index(start);
        let mut last_in_stream = start.wrapping_sub(1);
        let mut data_packets = 0;
        let mut accepted = 0;
        for frame in 0..40u32 {
            let au = bytes(20 * 1376 + frame as usize * 7, frame);
            let pkts = split(&pz.packetize(&au, &meta(FrameType::PFrame)).unwrap());
            data_packets += pkts
                .iter()
                .filter(|p| fields(p).fec_index < fields(p).data_shards)
                .count();
            accepted += client_order_check(&mut last_in_stream, &pkts);
            let frame_back = depacketize(&pkts, 1392, None).unwrap();
            assert_eq!(frame_back.bitstream, au, "start {start} frame {frame}");
        }
        assert!(
            pz.next_packet_index().wrapping_sub(start) > 600,
            "crossed the wrap"
        );
        assert_eq!(
            accepted, data_packets,
            "start {start}: the client would drop packets"
        );
        assert_eq!(pz.next_sequence(), pz.next_packet_index() as u16);
    }
}

#[test]
fn index_that_wraps_with_the_rtp_sequence_is_refused_by_the_client_model() {
    // The regression: `streamPacketIndex = seq << 8` with a 16-bit seq jumps from 0xFFFF to 0,
    // which the client sees as 65 535 packets back. Keeps the model honest.
    let mut last = 0xFFFF;
    let mut pkt = vec![0u8; 32];
    pkt[24] = 0x04 | 0x01;
    pkt[28..32].copy_from_slice(&(1u32 << 22).to_le_bytes());
    pkt[16..20].copy_from_slice(&0u32.to_le_bytes());
    assert_eq!(client_order_check(&mut last, &[pkt.clone()]), 0);
    pkt[16..20].copy_from_slice(&(0x1_0000u32 << 8).to_le_bytes());
    assert_eq!(client_order_check(&mut last, &[pkt]), 1);
}

#[test]
fn sequence_wraps() {
    let mut pz = VideoPacketizer::new(Config::default(), None).unwrap();
    let au = bytes(150 * 1376, 9);
    let mut frames = 0;
    while pz.next_sequence() < 65_000 {
        pz.packetize(&au, &meta(FrameType::PFrame)).unwrap();
        frames += 1;
    }
    for _ in 0..5 {
        let pkts = split(&pz.packetize(&au, &meta(FrameType::PFrame)).unwrap());
        let frame = depacketize(&pkts, 1392, None).unwrap();
        assert_eq!(frame.bitstream, au);
        frames += 1;
        assert_eq!(frame.frame_index, frames);
    }
}

#[test]
fn recovers_up_to_parity_losses_per_block() {
    let cfg = Config::default();
    for (n_bytes, seed) in [(60, 1u32), (40_000, 2), (250_000, 3), (600_000, 4)] {
        let au = bytes(n_bytes, seed);
        let mut pz = VideoPacketizer::new(cfg, None).unwrap();
        let packets = pz.packetize(&au, &meta(FrameType::Idr)).unwrap();
        let plan = packets.info.plan;
        let pkts = split(&packets);
        for trial in 0..3u32 {
            // Drop exactly p packets of every block; trial 0 drops data packets only.
            let mut kept = Vec::new();
            let mut start = 0;
            for b in plan.blocks() {
                let (d, p) = (b.data_shards, b.parity_shards);
                let pool = if trial == 0 { d } else { d + p };
                let lost: Vec<usize> = (0..p)
                    .map(|j| (j * 7919 + trial as usize * 13) % pool)
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                for k in 0..d + p {
                    if !lost.contains(&k) {
                        kept.push(pkts[start + k].clone());
                    }
                }
                start += d + p;
            }
            // Deliver in reverse order too: the depayloader must not rely on ordering.
            if trial == 2 {
                kept.reverse();
            }
            let frame = depacketize(&kept, cfg.payload_size, None)
                .unwrap_or_else(|e| panic!("{n_bytes} bytes, trial {trial}: {e}"));
            assert_eq!(frame.bitstream, au, "{n_bytes} bytes trial {trial}");
            assert_eq!(frame.frame_type, 2);
            assert_eq!(frame.host_processing_latency, 0x0a0b);
            assert_eq!(frame.rtp_timestamp, 0x0102_0304);
        }
        // One packet too many lost from the first block: unrecoverable.
        let b0 = plan.blocks()[0];
        let kept: Vec<Vec<u8>> = pkts
            .iter()
            .enumerate()
            .filter(|(k, _)| *k > b0.parity_shards)
            .map(|(_, p)| p.clone())
            .collect();
        assert!(depacketize(&kept, cfg.payload_size, None).is_err());
    }
}

#[test]
fn av1_last_payload_len_trims_padding() {
    let mut pz = VideoPacketizer::new(Config::default(), None).unwrap();
    // Ends in zeros that a client must keep: only lastPayloadLen tells where the frame ends.
    let mut au = bytes(5000, 5);
    au.extend_from_slice(&[0, 0, 0]);
    let pkts = split(&pz.packetize(&au, &meta(FrameType::Idr)).unwrap());
    let frame = depacketize(&pkts, 1392, None).unwrap();
    assert_eq!(frame.bitstream, au);
    assert_eq!(
        u16::from_le_bytes([pkts[0][36], pkts[0][37]]) as usize,
        (5003 + 8) % 1376
    );
}

#[test]
fn odd_payload_sizes() {
    for p in [MIN_PAYLOAD_SIZE, 33, 100, 1024, 1392, 1500, 9000] {
        let cfg = Config {
            payload_size: p,
            ..Config::default()
        };
        let mut pz = VideoPacketizer::new(cfg, None).unwrap();
        for len in [0, 1, p - 24, p - 23, 3 * p, 20_000] {
            let au = bytes(len, len as u32);
            let pkts = split(&pz.packetize(&au, &meta(FrameType::PFrame)).unwrap());
            assert!(pkts.iter().all(|x| x.len() == 16 + p));
            // Lose the first packet of each block where parity exists.
            let plan = pz.plan(len).unwrap();
            let mut kept = Vec::new();
            let mut start = 0;
            for b in plan.blocks() {
                for k in 0..b.data_shards + b.parity_shards {
                    if !(k == 0 && b.parity_shards > 0) {
                        kept.push(pkts[start + k].clone());
                    }
                }
                start += b.data_shards + b.parity_shards;
            }
            let frame = depacketize(&kept, p, None).unwrap();
            assert_eq!(frame.bitstream, au, "P={p} len={len}");
        }
    }
    assert!(
        VideoPacketizer::new(
            Config {
                payload_size: 31,
                ..Config::default()
            },
            None
        )
        .is_err()
    );
}

#[test]
fn packetize_into_checks_size() {
    let mut pz = VideoPacketizer::new(Config::default(), None).unwrap();
    let au = bytes(3000, 1);
    let plan = pz.plan(au.len()).unwrap();
    let mut out = vec![0u8; plan.total_len() - 1];
    assert_eq!(
        pz.packetize_into(&au, &meta(FrameType::Idr), &mut out),
        Err(PacketizeError::OutputSize {
            expected: plan.total_len(),
            got: plan.total_len() - 1
        })
    );
    // A failed call consumes neither a frame index nor sequence numbers.
    assert_eq!(pz.next_frame_index(), 1);
    let mut out = vec![0xffu8; plan.total_len()];
    let info = pz
        .packetize_into(&au, &meta(FrameType::Idr), &mut out)
        .unwrap();
    assert_eq!(info.frame_index, 1);
    let mut pz2 = VideoPacketizer::new(Config::default(), None).unwrap();
    assert_eq!(
        pz2.packetize(&au, &meta(FrameType::Idr))
            .unwrap()
            .as_bytes(),
        &out[..]
    );
}

#[test]
fn encryption_prefix_and_round_trip() {
    let cfg = Config::default();
    let mut clear = VideoPacketizer::new(cfg, None).unwrap();
    let mut enc = VideoPacketizer::new(cfg, Some(KEY)).unwrap();
    assert!(enc.is_encrypted());
    let mut ivs = std::collections::HashSet::new();
    let mut counter = 0u64;
    for frame in 1..=3u32 {
        let au = bytes(20_000 * frame as usize, frame);
        let plain = split(&clear.packetize(&au, &meta(FrameType::Idr)).unwrap());
        let cipher = split(&enc.packetize(&au, &meta(FrameType::Idr)).unwrap());
        assert_eq!(plain.len(), cipher.len());
        for (p, c) in plain.iter().zip(&cipher) {
            assert_eq!(c.len(), 32 + 16 + 1392);
            // iv = 64-bit counter LE, zeros, 'V'; frameNumber LE32.
            assert_eq!(&c[..8], &counter.to_le_bytes());
            assert_eq!(&c[8..12], &[0, 0, 0, b'V']);
            assert_eq!(&c[12..16], &frame.to_le_bytes());
            assert!(ivs.insert(c[..12].to_vec()), "IV reused");
            counter += 1;
            // Encrypted after FEC: decrypting gives exactly the unencrypted packet.
            let (frame_number, body) = decrypt(c, &KEY).unwrap();
            assert_eq!(frame_number, frame);
            assert_eq!(&body, p);
        }
        // Lossy encrypted delivery still reassembles.
        let kept: Vec<Vec<u8>> = cipher.iter().skip(2).cloned().collect();
        let frame_out = depacketize(&kept, 1392, Some(&KEY)).unwrap();
        assert_eq!(frame_out.bitstream, au);
        assert!(frame_out.recovered >= 2);
    }
    // A flipped ciphertext bit fails authentication.
    let mut cipher = split(&enc.packetize(&[1, 2, 3], &meta(FrameType::Idr)).unwrap());
    cipher[0][100] ^= 1;
    assert!(decrypt(&cipher[0], &KEY).is_err());
}

// ---------------------------------------------------------------------------------------------
// Element tests.

fn harness(props: &[(&str, &dyn ToValue)]) -> gst_check::Harness {
    init();
    let mut builder = gst::ElementFactory::make("moonlightvideopay");
    for (name, value) in props {
        builder = builder.property(name, value.to_value());
    }
    let element = builder.build().unwrap();
    let mut h = gst_check::Harness::with_element(&element, Some("sink"), Some("src"));
    h.set_src_caps_str("video/x-h264,stream-format=byte-stream,alignment=au");
    h
}

fn pull_all(h: &mut gst_check::Harness) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while h.buffers_in_queue() > 0 {
        let buf = h.pull().unwrap();
        out.push(buf.map_readable().unwrap().to_vec());
    }
    out
}

fn au_buffer(data: &[u8], pts_ms: u64, delta: bool) -> gst::Buffer {
    let mut buf = gst::Buffer::from_slice(data.to_vec());
    let b = buf.get_mut().unwrap();
    b.set_pts(gst::ClockTime::from_mseconds(pts_ms));
    if delta {
        b.set_flags(gst::BufferFlags::DELTA_UNIT);
    }
    buf
}

#[test]
fn element_round_trip() {
    let mut h = harness(&[]);
    let caps = h.sinkpad().unwrap().current_caps().unwrap();
    let s = caps.structure(0).unwrap();
    assert_eq!(s.name(), "application/x-moonlight-rtp");
    assert_eq!(s.get::<&str>("encoding-name").unwrap(), "H264");
    assert_eq!(s.get::<i32>("payload-size").unwrap(), 1392);

    let key_frame = bytes(250_000, 11);
    let p_frame = bytes(40_000, 12);
    h.push(au_buffer(&key_frame, 1000, false)).unwrap();
    let pkts = pull_all(&mut h);
    let frame = depacketize(&pkts, 1392, None).unwrap();
    assert_eq!(frame.frame_index, 1);
    assert_eq!(frame.frame_type, 2);
    assert_eq!(frame.rtp_timestamp, 90_000, "1 s of running time at 90 kHz");
    assert_eq!(frame.bitstream, key_frame);

    h.push(au_buffer(&p_frame, 1016, true)).unwrap();
    let pkts2 = pull_all(&mut h);
    let frame = depacketize(&pkts2, 1392, None).unwrap();
    assert_eq!(frame.frame_index, 2);
    assert_eq!(frame.frame_type, 1);
    assert_eq!(frame.rtp_timestamp, 91_440);
    assert_eq!(frame.bitstream, p_frame);
    // The RTP sequence continues across frames.
    assert_eq!(
        fields(&pkts2[0]).seq as usize,
        pkts.len(),
        "sequence continues"
    );
}

#[test]
fn element_single_buffer_carries_the_same_packets_and_reuses_its_buffers() {
    let key_frame = bytes(250_000, 11);
    let p_frame = bytes(40_000, 12);
    let mut lists = harness(&[]);
    let mut single = harness(&[("single-buffer", &true)]);
    let caps = single.sinkpad().unwrap().current_caps().unwrap();
    let stride = caps
        .structure(0)
        .unwrap()
        .get::<i32>("packet-size")
        .unwrap() as usize;
    assert_eq!(stride, 16 + 1392, "RTP header plus payload");
    let mut frames = Vec::new();
    for (index, (data, delta)) in [(&key_frame, false), (&p_frame, true), (&p_frame, true)]
        .into_iter()
        .enumerate()
    {
        let pts = 1000 + 16 * index as u64;
        lists.push(au_buffer(data, pts, delta)).unwrap();
        single.push(au_buffer(data, pts, delta)).unwrap();
        let expected = pull_all(&mut lists);
        assert_eq!(single.buffers_in_queue(), 1, "one buffer per frame");
        let whole = single.pull().unwrap();
        let bytes = whole.map_readable().unwrap().to_vec();
        let packets: Vec<Vec<u8>> = bytes.chunks(stride).map(<[u8]>::to_vec).collect();
        assert_eq!(
            packets, expected,
            "frame {index}: the same packets in the same order"
        );
        frames.push(whole);
    }
    // Pooled: once the earlier frames are released, a later frame reuses their memory.
    let seen: Vec<usize> = frames
        .iter()
        .map(|b| b.map_readable().unwrap().as_ptr() as usize)
        .collect();
    drop(frames);
    single.push(au_buffer(&p_frame, 1100, true)).unwrap();
    let again = single.pull().unwrap();
    let pointer = again.map_readable().unwrap().as_ptr() as usize;
    assert!(seen.contains(&pointer), "a released frame buffer is reused");
}

#[test]
fn element_drop_percentage_recovered_by_fec() {
    // Drop 10 % of packets, evenly spread: under the 20 % parity of each block.
    let mut h = harness(&[("drop-percentage", &10u32)]);
    for k in 0..5u64 {
        let au = bytes(100_000 + 30_000 * k as usize, k as u32);
        h.push(au_buffer(&au, 16 * k, k > 0)).unwrap();
        let pkts = pull_all(&mut h);
        let plan = plan_frame(au.len(), &Config::default(), false).unwrap();
        assert!(pkts.len() < plan.total_packets(), "some packets dropped");
        let frame = depacketize(&pkts, 1392, None).unwrap();
        assert!(frame.recovered > 0);
        assert_eq!(frame.bitstream, au);
        assert_eq!(frame.frame_index, k as u32 + 1);
    }
}

#[test]
fn element_encrypts() {
    let key_hex: String = KEY.iter().map(|b| format!("{b:02x}")).collect();
    let mut h = harness(&[
        ("encrypt", &true),
        ("aes-key", &key_hex),
        ("payload-size", &1024u32),
        ("fec-percentage", &50u32),
    ]);
    let au = bytes(10_000, 99);
    h.push(au_buffer(&au, 0, false)).unwrap();
    let pkts = pull_all(&mut h);
    assert!(pkts.iter().all(|p| p.len() == 32 + 16 + 1024));
    // 10 data + 5 parity packets: lose every third packet, 5 in all.
    let kept: Vec<Vec<u8>> = pkts
        .into_iter()
        .enumerate()
        .filter(|(k, _)| k % 3 != 0)
        .map(|(_, p)| p)
        .collect();
    let frame = depacketize(&kept, 1024, Some(&KEY)).unwrap();
    assert_eq!(frame.bitstream, au);
}

#[test]
fn element_refuses_encrypt_without_key() {
    init();
    let element = gst::ElementFactory::make("moonlightvideopay")
        .property("encrypt", true)
        .property("aes-key", "not hex")
        .build()
        .unwrap();
    assert!(element.set_state(gst::State::Paused).is_err());
    element.set_state(gst::State::Null).unwrap();
}

#[test]
fn element_host_latency_from_capture_meta() {
    let mut h = harness(&[]);
    let mut buf = au_buffer(&bytes(500, 1), 0, false);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let capture = gst::ClockTime::from_nseconds(now.as_nanos() as u64 - 7_000_000);
    gst::ReferenceTimestampMeta::add(
        buf.get_mut().unwrap(),
        &gst::Caps::new_empty_simple("timestamp/x-unix"),
        capture,
        None,
    );
    h.push(buf).unwrap();
    let frame = depacketize(&pull_all(&mut h), 1392, None).unwrap();
    // 7 ms = 70 units of 0.1 ms; allow for a slow test machine.
    assert!(
        (70..200).contains(&frame.host_processing_latency),
        "{}",
        frame.host_processing_latency
    );
}

#[test]
fn element_stats_report_frames_and_latency_percentiles() {
    let mut h = harness(&[]);
    let stats = |h: &gst_check::Harness| h.element().unwrap().property::<gst::Structure>("stats");
    assert_eq!(stats(&h).get::<u32>("latency-p99-us").unwrap(), 0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    // 99 frames captured 5 ms ago and one 40 ms ago: p50 about 5 ms, p99 about 40 ms.
    for k in 0..100u64 {
        let mut buf = au_buffer(&bytes(500, k as u32), k * 16, k > 0);
        let age = if k == 50 { 40_000_000 } else { 5_000_000 };
        gst::ReferenceTimestampMeta::add(
            buf.get_mut().unwrap(),
            &gst::Caps::new_empty_simple("timestamp/x-unix"),
            gst::ClockTime::from_nseconds(now - age),
            None,
        );
        h.push(buf).unwrap();
        pull_all(&mut h);
    }
    let s = stats(&h);
    assert_eq!(s.get::<u64>("frames").unwrap(), 100);
    let p50 = s.get::<u32>("latency-p50-us").unwrap();
    let p99 = s.get::<u32>("latency-p99-us").unwrap();
    assert!((5_000..15_000).contains(&p50), "p50 {p50} µs");
    assert!((40_000..60_000).contains(&p99), "p99 {p99} µs");
}

#[test]
fn element_forwards_force_key_unit_upstream() {
    let mut h = harness(&[]);
    let s = gst::Structure::builder("GstForceKeyUnit")
        .field("all-headers", true)
        .build();
    assert!(h.push_upstream_event(gst::event::CustomUpstream::new(s)));
    let mut found = false;
    while let Some(ev) = h.try_pull_upstream_event() {
        if ev
            .structure()
            .is_some_and(|s| s.name() == "GstForceKeyUnit")
        {
            found = true;
        }
    }
    assert!(found, "force-key-unit reached the upstream encoder side");
}

#[test]
fn element_rejects_other_caps() {
    init();
    let mut h = gst_check::Harness::new("moonlightvideopay");
    let caps = gst::Caps::builder("video/x-vp8").build();
    h.set_src_caps(caps);
    // Caps were refused, so pushing fails negotiation instead of emitting packets.
    assert!(h.push(gst::Buffer::from_slice(vec![1u8, 2, 3])).is_err());
}

#[test]
fn element_accepts_av1_from_av1enc() {
    init();
    // av1enc (GStreamer 1.22) announces no stream-format.
    let mut h = gst_check::Harness::new("moonlightvideopay");
    h.set_src_caps_str("video/x-av1,alignment=tu,width=320,height=240");
    let caps = h.sinkpad().unwrap().current_caps().unwrap();
    assert_eq!(
        caps.structure(0)
            .unwrap()
            .get::<&str>("encoding-name")
            .unwrap(),
        "AV1"
    );
    let au = bytes(9_000, 3);
    h.push(au_buffer(&au, 40, false)).unwrap();
    let mut pkts = Vec::new();
    while h.buffers_in_queue() > 0 {
        let buf = h.pull().unwrap();
        // Every packet carries the frame's timestamps, not only the first.
        assert_eq!(buf.pts(), Some(gst::ClockTime::from_mseconds(40)));
        pkts.push(buf.map_readable().unwrap().to_vec());
    }
    let frame = depacketize(&pkts, 1392, None).unwrap();
    assert_eq!(frame.bitstream, au);
    assert_eq!(frame.frame_type, 2);

    // Annex B AV1 is refused.
    let mut h = gst_check::Harness::new("moonlightvideopay");
    h.set_src_caps_str("video/x-av1,alignment=tu,stream-format=annexb");
    assert!(h.push(au_buffer(&au, 0, false)).is_err());
}
