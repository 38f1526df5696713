//! Moonlight audio packetisation in plain Rust, no GStreamer types.
//!
//! Implements `docs/PROTOCOL.md` §5.2–§5.4: each Opus packet becomes one RTP packet with
//! payload type 97 (sequence +1 per packet from 0, timestamp +packet duration in ms from 0),
//! optionally AES-128-CBC encrypted with PKCS#7 and `IV = BE32(rikeyid + seq) ‖ 0^12`. After
//! the data packets with sequence numbers `4k .. 4k+3`, two FEC packets (payload type 127,
//! 12-byte `AUDIO_FEC_HEADER`) carry parity of the four (encrypted) payloads under the fixed
//! 2×4 audio matrix.
//!
//! Unequal payload lengths within a block: the client compares every packet of a block
//! (data and FEC) against the block's size and, on the first mismatch, disables audio FEC for
//! the rest of the session (`RtpAudioQueue.c`, "Audio block size mismatch"). Padding payloads
//! only for the parity computation cannot help, because the data packets themselves already
//! differ; so for such a block this packetizer sends **no** FEC packets and reports it
//! ([`AudioPackets::fec_skipped`]). Keep blocks equal by encoding CBR (`opusenc
//! bitrate-type=cbr`); with encryption, payload lengths are rounded up to 16 anyway.

use aes::Aes128;
use cbc::cipher::{BlockModeEncrypt, KeyIvInit, block_padding::Pkcs7};

use crate::fec::ReedSolomon;

/// RTP header length (no extension).
pub const RTP_HEADER_LEN: usize = 12;
/// `AUDIO_FEC_HEADER` length.
pub const FEC_HEADER_LEN: usize = 12;
/// The client's receive buffer: no datagram may exceed this (`AudioStream.c: MAX_PACKET_SIZE`).
pub const MAX_DATAGRAM_LEN: usize = 1400;
/// Largest payload a data packet can carry.
pub const MAX_PAYLOAD_LEN: usize = MAX_DATAGRAM_LEN - RTP_HEADER_LEN;
/// Largest payload for which FEC packets still fit the client's buffer.
pub const MAX_FEC_PAYLOAD_LEN: usize = MAX_DATAGRAM_LEN - RTP_HEADER_LEN - FEC_HEADER_LEN;
/// Payload type of audio data packets.
pub const PAYLOAD_TYPE_AUDIO: u8 = 97;
/// Payload type of audio FEC packets.
pub const PAYLOAD_TYPE_FEC: u8 = 127;
/// Data packets per FEC block.
pub const DATA_SHARDS: usize = 4;
/// FEC packets per block.
pub const FEC_SHARDS: usize = 2;

/// Errors from packetizing one Opus packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AudioError {
    /// An empty input packet.
    #[error("empty audio packet")]
    Empty,
    /// The (encrypted) payload would not fit the client's 1400-byte buffer.
    #[error("audio payload of {0} bytes exceeds the datagram limit")]
    TooLarge(usize),
    /// Parity computation failed (an internal bug if it ever happens).
    #[error("audio fec failed")]
    Fec,
}

/// Audio packetizer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioConfig {
    /// `x-nv-aqos.packetDuration` in ms: the RTP timestamp step.
    pub packet_duration_ms: u32,
    /// The rikey; `Some` turns on AES-128-CBC.
    pub key: Option<[u8; 16]>,
    /// rikeyid as sent in `/launch` (may be negative).
    pub rikeyid: i32,
}

impl Default for AudioConfig {
    fn default() -> Self {
        Self {
            packet_duration_ms: 5,
            key: None,
            rikeyid: 0,
        }
    }
}

/// The datagrams produced for one input packet.
#[derive(Debug)]
pub struct AudioPackets<'a> {
    /// The RTP data packet (payload type 97).
    pub data: &'a [u8],
    /// The two FEC packets (payload type 127) when this packet completed a block.
    pub fec: Option<[&'a [u8]; FEC_SHARDS]>,
    /// This packet completed a block whose payloads differ in length, so no FEC was sent.
    pub fec_skipped: bool,
    /// RTP sequence number of the data packet.
    pub sequence: u16,
}

/// The audio IV of §5.3: `BE32(rikeyid + seq)` then 12 zero bytes.
pub fn audio_iv(rikeyid: i32, sequence: u16) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..4].copy_from_slice(
        &(rikeyid as u32)
            .wrapping_add(u32::from(sequence))
            .to_be_bytes(),
    );
    iv
}

/// Per-stream audio packetizer state.
#[derive(Debug)]
pub struct AudioPacketizer {
    cfg: AudioConfig,
    sequence: u16,
    timestamp: u32,
    rs: ReedSolomon,
    /// Payloads of the current block, reused.
    block: [Vec<u8>; DATA_SHARDS],
    block_valid: bool,
    block_base_timestamp: u32,
    data_buf: Vec<u8>,
    fec_bufs: [Vec<u8>; FEC_SHARDS],
}

impl AudioPacketizer {
    /// A packetizer starting at sequence 0, timestamp 0.
    pub fn new(cfg: AudioConfig) -> Self {
        Self {
            cfg,
            sequence: 0,
            timestamp: 0,
            rs: ReedSolomon::audio(),
            block: std::array::from_fn(|_| Vec::with_capacity(MAX_DATAGRAM_LEN)),
            block_valid: false,
            block_base_timestamp: 0,
            data_buf: Vec::with_capacity(MAX_DATAGRAM_LEN),
            fec_bufs: std::array::from_fn(|_| Vec::with_capacity(MAX_DATAGRAM_LEN)),
        }
    }

    /// The settings.
    pub fn config(&self) -> &AudioConfig {
        &self.cfg
    }

    /// The sequence number the next data packet gets.
    pub fn next_sequence(&self) -> u16 {
        self.sequence
    }

    /// Starts the sequence at `sequence` rounded down to a multiple of 4, because FEC blocks
    /// start at sequence numbers `4k` (a debug setting lets tests start just below the wrap).
    pub fn set_next_sequence(&mut self, sequence: u16) {
        self.sequence = sequence - sequence % DATA_SHARDS as u16;
    }

    /// Packetizes one Opus packet. On error nothing is sent and the sequence does not advance.
    pub fn packetize(&mut self, opus: &[u8]) -> Result<AudioPackets<'_>, AudioError> {
        if opus.is_empty() {
            return Err(AudioError::Empty);
        }
        let seq = self.sequence;
        let payload_len = match self.cfg.key {
            Some(_) => (opus.len() / 16 + 1) * 16,
            None => opus.len(),
        };
        if payload_len > MAX_PAYLOAD_LEN {
            return Err(AudioError::TooLarge(payload_len));
        }

        // RTP header + payload.
        self.data_buf.clear();
        self.data_buf.extend_from_slice(&[0x80, PAYLOAD_TYPE_AUDIO]);
        self.data_buf.extend_from_slice(&seq.to_be_bytes());
        self.data_buf
            .extend_from_slice(&self.timestamp.to_be_bytes());
        self.data_buf.extend_from_slice(&[0; 4]);
        match self.cfg.key {
            Some(key) => {
                self.data_buf.resize(RTP_HEADER_LEN + payload_len, 0);
                let buf = self.data_buf.get_mut(RTP_HEADER_LEN..).unwrap_or_default();
                if let Some(dst) = buf.get_mut(..opus.len()) {
                    dst.copy_from_slice(opus);
                }
                let iv = audio_iv(self.cfg.rikeyid, seq);
                let enc = cbc::Encryptor::<Aes128>::new(&key.into(), &iv.into());
                let written = enc
                    .encrypt_padded::<Pkcs7>(buf, opus.len())
                    .map_or(0, |ct| ct.len());
                if written != payload_len {
                    return Err(AudioError::TooLarge(payload_len));
                }
            }
            None => self.data_buf.extend_from_slice(opus),
        }

        // FEC block bookkeeping: blocks are the sequence numbers 4k .. 4k+3.
        let index = usize::from(seq) % DATA_SHARDS;
        if index == 0 {
            self.block_valid = true;
            self.block_base_timestamp = self.timestamp;
        }
        let payload = self.data_buf.get(RTP_HEADER_LEN..).unwrap_or_default();
        if index > 0 && self.block.first().is_none_or(|b| b.len() != payload.len()) {
            self.block_valid = false;
        }
        if let Some(slot) = self.block.get_mut(index) {
            slot.clear();
            slot.extend_from_slice(payload);
        }

        let mut fec_ready = false;
        let mut fec_skipped = false;
        if index == DATA_SHARDS - 1 {
            if self.block_valid && payload.len() <= MAX_FEC_PAYLOAD_LEN {
                self.encode_fec(seq)?;
                fec_ready = true;
            } else {
                fec_skipped = true;
            }
        }

        self.sequence = seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(self.cfg.packet_duration_ms);
        let [f0, f1] = &self.fec_bufs;
        Ok(AudioPackets {
            data: &self.data_buf,
            fec: fec_ready.then_some([f0.as_slice(), f1.as_slice()]),
            fec_skipped,
            sequence: seq,
        })
    }

    /// Writes the two FEC packets of the block ending at data sequence `last_seq`.
    fn encode_fec(&mut self, last_seq: u16) -> Result<(), AudioError> {
        let len = self.block.first().map_or(0, Vec::len);
        let base_seq = last_seq.wrapping_sub((DATA_SHARDS - 1) as u16);
        for (x, buf) in self.fec_bufs.iter_mut().enumerate() {
            buf.clear();
            buf.extend_from_slice(&[0x80, PAYLOAD_TYPE_FEC]);
            // Sunshine numbers FEC packets after the block's last data packet; the client
            // ignores this field.
            buf.extend_from_slice(&last_seq.wrapping_add(1 + x as u16).to_be_bytes());
            buf.extend_from_slice(&[0; 8]); // timestamp 0, SSRC 0
            buf.extend_from_slice(&[x as u8, PAYLOAD_TYPE_AUDIO]);
            buf.extend_from_slice(&base_seq.to_be_bytes());
            buf.extend_from_slice(&self.block_base_timestamp.to_be_bytes());
            buf.extend_from_slice(&[0; 4]);
            buf.resize(RTP_HEADER_LEN + FEC_HEADER_LEN + len, 0);
        }
        let [b0, b1, b2, b3] = &self.block;
        let data: [&[u8]; DATA_SHARDS] = [b0, b1, b2, b3];
        let [f0, f1] = &mut self.fec_bufs;
        let off = RTP_HEADER_LEN + FEC_HEADER_LEN;
        let mut parity: [&mut [u8]; FEC_SHARDS] = [
            f0.get_mut(off..).unwrap_or_default(),
            f1.get_mut(off..).unwrap_or_default(),
        ];
        self.rs
            .encode(&data, &mut parity)
            .map_err(|_| AudioError::Fec)
    }
}
