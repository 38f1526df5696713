//! Control-stream messages carried over ENet on UDP 47999: `docs/PROTOCOL.md` §3.2 (V2 framing
//! and the AES-128-GCM envelope), §3.3 (packet types), §3.4 (client→host payloads) and §3.5
//! (host→client payloads).
//!
//! Receiving: [`ControlCipher::open`] checks and decrypts one encrypted ENet packet into a V2
//! plaintext, [`ControlMessage::parse`] splits that into type and payload, and
//! [`ClientMessage::parse`] decodes the payload. [`ControlCipher::open_client_message`] does all
//! three. Sending: [`HostMessage::encode`] builds the V2 plaintext and [`ControlCipher::seal`]
//! wraps it; [`ControlCipher::seal_host_message`] does both. The session keeps the sequence
//! counters. The opposite directions exist too, for tests and fuzzing.

use aes_gcm::aead::{AeadInOut, Key, KeyInit};
use aes_gcm::aes::Aes128;
use aes_gcm::aes::cipher::consts::U16;
use aes_gcm::{Aes128Gcm, AesGcm, Nonce, Tag};
use thiserror::Error;

use crate::codec::{Reader, Writer};
use crate::input::MotionType;

/// The LE16 type that marks an encrypted control packet.
pub const ENCRYPTED_PACKET_TYPE: u16 = 0x0001;

/// Bytes before the ciphertext in an encrypted packet: type, length, seq, tag.
pub const ENCRYPTED_HEADER_LEN: usize = 24;

/// Bytes of the V2 plaintext header: type and payload length.
pub const V2_HEADER_LEN: usize = 4;

/// Length of an AES-GCM tag.
pub const TAG_LEN: usize = 16;

/// Largest V2 plaintext that fits an encrypted packet: its LE16 `length` counts seq, tag and
/// ciphertext.
pub const MAX_PLAINTEXT_LEN: usize = u16::MAX as usize - 4 - TAG_LEN;

/// Control packet types of §3.3 (≥ 7.1.431).
pub mod packet_type {
    /// C→H: request an IDR frame ("Start A").
    pub const REQUEST_IDR: u16 = 0x0302;
    /// C→H: Start B.
    pub const START_B: u16 = 0x0307;
    /// C→H: invalidate reference frames.
    pub const INVALIDATE_REF_FRAMES: u16 = 0x0301;
    /// C→H: periodic ping, every 100 ms.
    pub const PERIODIC_PING: u16 = 0x0200;
    /// C→H: legacy loss statistics.
    pub const LOSS_STATS: u16 = 0x0201;
    /// C→H: one input packet.
    pub const INPUT_DATA: u16 = 0x0206;
    /// C→H: frame FEC status (Sunshine extension). Same number as [`RGB_LED`] host→client.
    pub const FEC_STATUS: u16 = 0x5502;
    /// C→H: LTR frame acknowledgement (Sunshine extension).
    pub const LTR_ACK: u16 = 0x0350;
    /// H→C: termination, extended form.
    pub const TERMINATION: u16 = 0x0109;
    /// H→C: rumble.
    pub const RUMBLE: u16 = 0x010b;
    /// H→C: HDR mode.
    pub const HDR_MODE: u16 = 0x010e;
    /// H→C: trigger rumble (Sunshine extension).
    pub const RUMBLE_TRIGGERS: u16 = 0x5500;
    /// H→C: motion event state (Sunshine extension).
    pub const MOTION_EVENT_STATE: u16 = 0x5501;
    /// H→C: controller RGB LED (Sunshine extension). Same number as [`FEC_STATUS`] client→host.
    pub const RGB_LED: u16 = 0x5502;
    /// H→C: DualSense adaptive triggers (Sunshine extension).
    pub const ADAPTIVE_TRIGGERS: u16 = 0x5503;
}

/// Termination HRESULTs the client interprets (§3.5).
pub mod hresult {
    /// Graceful end of stream.
    pub const GRACEFUL: u32 = 0x8003_0023;
    /// Protected content.
    pub const PROTECTED_CONTENT: u32 = 0x800e_9302;
    /// Frame conversion failed.
    pub const FRAME_CONVERSION_FAILED: u32 = 0x800e_9403;
}

/// Why a control packet could not be opened, parsed or built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ControlError {
    /// A V2 message shorter than its 4-byte header.
    #[error("control message shorter than its 4-byte header")]
    TooShort,
    /// A V2 message whose `payloadLength` does not match the bytes that follow.
    #[error("control payload length field {declared} does not match {actual} payload bytes")]
    LengthMismatch {
        /// The LE16 `payloadLength`.
        declared: u16,
        /// Bytes actually present after the header.
        actual: usize,
    },
    /// A packet whose type is not 0x0001: plaintext control, which ≥ 7.1.431 peers never send.
    #[error("control packet type {packet_type:#06x} is not the encrypted type")]
    NotEncrypted {
        /// The LE16 type received.
        packet_type: u16,
    },
    /// An encrypted packet shorter than its 24-byte header.
    #[error("encrypted control packet shorter than its 24-byte header")]
    EnvelopeTooShort,
    /// An encrypted packet whose LE16 `length` is not the packet length minus 4.
    #[error(
        "encrypted control length field {declared} does not match packet length minus 4 ({actual})"
    )]
    EnvelopeLengthMismatch {
        /// The LE16 `length`.
        declared: u16,
        /// Packet length minus 4.
        actual: usize,
    },
    /// The AES-GCM tag did not verify: wrong key, wrong IV direction, or tampering.
    #[error("control packet failed to decrypt")]
    Decrypt,
    /// A plaintext too long for the LE16 length fields.
    #[error("control message too long to frame")]
    TooLong,
    /// A known message type arrived with a payload of the wrong size.
    #[error("{message} payload is {actual} bytes, expected {expected}")]
    PayloadLength {
        /// The message kind.
        message: &'static str,
        /// Size from §3.3–3.5.
        expected: usize,
        /// Size received.
        actual: usize,
    },
    /// A field holds a value outside its defined set.
    #[error("invalid value {value} for control field {field}")]
    InvalidValue {
        /// The field.
        field: &'static str,
        /// The value received.
        value: u32,
    },
}

/// A V2 plaintext control message: LE16 type, LE16 payload length, payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlMessage<'a> {
    /// The LE16 type (§3.3).
    pub packet_type: u16,
    /// The payload.
    pub payload: &'a [u8],
}

impl<'a> ControlMessage<'a> {
    /// Splits a V2 plaintext; the length field must account for every byte.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ControlError> {
        let mut r = Reader::new(bytes);
        let (Some(packet_type), Some(declared)) = (r.le_u16(), r.le_u16()) else {
            return Err(ControlError::TooShort);
        };
        let payload = r.rest();
        if usize::from(declared) != payload.len() {
            return Err(ControlError::LengthMismatch {
                declared,
                actual: payload.len(),
            });
        }
        Ok(Self {
            packet_type,
            payload,
        })
    }

    /// Serialises the message.
    pub fn encode(&self) -> Result<Vec<u8>, ControlError> {
        let len = u16::try_from(self.payload.len()).map_err(|_| ControlError::TooLong)?;
        let mut w = Writer::default();
        w.le_u16(self.packet_type);
        w.le_u16(len);
        w.bytes(self.payload);
        Ok(w.into_inner())
    }
}

/// Who sent a packet; selects the last IV bytes (`'C'` or `'H'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The Moonlight client.
    Client,
    /// This host.
    Host,
}

impl Origin {
    pub(crate) fn iv_byte(self) -> u8 {
        match self {
            Self::Client => b'C',
            Self::Host => b'H',
        }
    }
}

/// Which IV construction the session negotiated (§3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IvMode {
    /// SS_ENC_CONTROL_V2: 12 bytes, seq LE32, six zeros, origin byte, `'C'`.
    V2,
    /// Legacy GFE: 16 bytes, `seq & 0xFF` then zeros. Only for clients that did not echo V2.
    Legacy,
}

/// The result of opening an encrypted control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The packet's LE32 sequence number.
    pub seq: u32,
    /// The V2 plaintext; parse it with [`ControlMessage::parse`].
    pub plaintext: Vec<u8>,
}

/// AES-128-GCM keyed with the session's rikey, for the control stream.
#[derive(Clone)]
pub struct ControlCipher {
    inner: CipherInner,
}

#[derive(Clone)]
enum CipherInner {
    V2(Aes128Gcm),
    Legacy(AesGcm<Aes128, U16>),
}

impl core::fmt::Debug for ControlCipher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print key material.
        let mode = match self.inner {
            CipherInner::V2(_) => IvMode::V2,
            CipherInner::Legacy(_) => IvMode::Legacy,
        };
        f.debug_struct("ControlCipher")
            .field("mode", &mode)
            .finish_non_exhaustive()
    }
}

impl ControlCipher {
    /// Keys the cipher with rikey.
    pub fn new(key: &[u8; 16], mode: IvMode) -> Self {
        let key = Key::<Aes128Gcm>::from(*key);
        let inner = match mode {
            IvMode::V2 => CipherInner::V2(Aes128Gcm::new(&key)),
            IvMode::Legacy => CipherInner::Legacy(AesGcm::new(&key)),
        };
        Self { inner }
    }

    /// Encrypts a V2 plaintext into an ENet packet: `0x0001`, length, seq, tag, ciphertext.
    pub fn seal(
        &self,
        origin: Origin,
        seq: u32,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, ControlError> {
        if plaintext.len() > MAX_PLAINTEXT_LEN {
            return Err(ControlError::TooLong);
        }
        let mut body = plaintext.to_vec();
        let tag = match &self.inner {
            CipherInner::V2(c) => c
                .encrypt_inout_detached(&v2_nonce(origin, seq), &[], body.as_mut_slice().into())
                .map(<[u8; TAG_LEN]>::from),
            CipherInner::Legacy(c) => c
                .encrypt_inout_detached(&legacy_nonce(seq), &[], body.as_mut_slice().into())
                .map(<[u8; TAG_LEN]>::from),
        }
        .map_err(|_| ControlError::TooLong)?;
        let length = u16::try_from(4 + TAG_LEN + body.len()).map_err(|_| ControlError::TooLong)?;
        let mut w = Writer::default();
        w.le_u16(ENCRYPTED_PACKET_TYPE);
        w.le_u16(length);
        w.le_u32(seq);
        w.bytes(&tag);
        w.bytes(&body);
        Ok(w.into_inner())
    }

    /// Checks and decrypts one encrypted ENet packet sent by `origin`.
    pub fn open(&self, origin: Origin, packet: &[u8]) -> Result<Opened, ControlError> {
        let mut r = Reader::new(packet);
        let Some(packet_type) = r.le_u16() else {
            return Err(ControlError::EnvelopeTooShort);
        };
        if packet_type != ENCRYPTED_PACKET_TYPE {
            return Err(ControlError::NotEncrypted { packet_type });
        }
        let (Some(declared), Some(seq), Some(tag)) = (r.le_u16(), r.le_u32(), r.array::<TAG_LEN>())
        else {
            return Err(ControlError::EnvelopeTooShort);
        };
        let actual = packet.len() - 4;
        if usize::from(declared) != actual {
            return Err(ControlError::EnvelopeLengthMismatch { declared, actual });
        }
        let mut plaintext = r.rest().to_vec();
        let tag = Tag::<U16>::from(tag);
        match &self.inner {
            CipherInner::V2(c) => c.decrypt_inout_detached(
                &v2_nonce(origin, seq),
                &[],
                plaintext.as_mut_slice().into(),
                &tag,
            ),
            CipherInner::Legacy(c) => c.decrypt_inout_detached(
                &legacy_nonce(seq),
                &[],
                plaintext.as_mut_slice().into(),
                &tag,
            ),
        }
        .map_err(|_| ControlError::Decrypt)?;
        Ok(Opened { seq, plaintext })
    }

    /// Builds, frames and encrypts a host message with sequence number `seq`.
    pub fn seal_host_message(
        &self,
        seq: u32,
        message: &HostMessage,
    ) -> Result<Vec<u8>, ControlError> {
        self.seal(Origin::Host, seq, &message.encode())
    }

    /// Opens, frames and decodes a client packet; returns its sequence number and message.
    pub fn open_client_message(&self, packet: &[u8]) -> Result<(u32, ClientMessage), ControlError> {
        let opened = self.open(Origin::Client, packet)?;
        let message = ClientMessage::parse(&ControlMessage::parse(&opened.plaintext)?)?;
        Ok((opened.seq, message))
    }
}

/// The V2 control IV: seq LE32, six zeros, origin, `'C'`.
fn v2_nonce(origin: Origin, seq: u32) -> Nonce<aes_gcm::aes::cipher::consts::U12> {
    crate_iv(seq, origin.iv_byte(), b'C').into()
}

/// The legacy 16-byte IV: the low byte of seq, then zeros.
fn legacy_nonce(seq: u32) -> Nonce<U16> {
    let [low, ..] = seq.to_le_bytes();
    let mut iv = [0u8; 16];
    iv[0] = low;
    iv.into()
}

/// The 12-byte IV shared by control and encrypted RTSP: seq LE32, six zeros, two ASCII bytes.
/// Sequence numbers of sealed client messages seen under one key, so a replayed message is
/// recognised (the client counts from 0 for each stream and never repeats). Messages on
/// different ENet channels may overtake each other, so a window of [`ReplayWindow::SPAN`]
/// numbers below the highest is remembered, as IPsec does; anything older is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayWindow {
    /// The highest number accepted, once one was.
    highest: Option<u32>,
    /// Bit `k` set: `highest - k` was accepted.
    seen: [u64; Self::WORDS],
}

impl ReplayWindow {
    const WORDS: usize = 16;
    /// How far below the highest number a late message is still accepted.
    pub const SPAN: u32 = (Self::WORDS * 64) as u32;

    /// Records `seq`; false if it was seen before or is too old to tell.
    pub fn accept(&mut self, seq: u32) -> bool {
        let Some(highest) = self.highest else {
            self.highest = Some(seq);
            self.seen = [0; Self::WORDS];
            self.seen[0] = 1;
            return true;
        };
        if seq > highest {
            self.shift(seq - highest);
            self.highest = Some(seq);
            self.seen[0] |= 1;
            return true;
        }
        let age = highest - seq;
        if age >= Self::SPAN {
            return false;
        }
        let (word, bit) = ((age / 64) as usize, age % 64);
        let Some(slot) = self.seen.get_mut(word) else {
            return false;
        };
        if *slot & (1 << bit) != 0 {
            return false;
        }
        *slot |= 1 << bit;
        true
    }

    /// Ages every remembered number by `by`.
    fn shift(&mut self, by: u32) {
        if by >= Self::SPAN {
            self.seen = [0; Self::WORDS];
            return;
        }
        let (words, bits) = ((by / 64) as usize, by % 64);
        for i in (0..Self::WORDS).rev() {
            let from = i.checked_sub(words);
            let high = from.and_then(|f| self.seen.get(f)).copied().unwrap_or(0);
            let low = from
                .and_then(|f| f.checked_sub(1))
                .and_then(|f| self.seen.get(f))
                .copied()
                .unwrap_or(0);
            let value = if bits == 0 {
                high
            } else {
                (high << bits) | (low >> (64 - bits))
            };
            if let Some(slot) = self.seen.get_mut(i) {
                *slot = value;
            }
        }
    }
}

pub(crate) fn crate_iv(seq: u32, origin: u8, stream: u8) -> [u8; 12] {
    let [a, b, c, d] = seq.to_le_bytes();
    [a, b, c, d, 0, 0, 0, 0, 0, 0, origin, stream]
}

/// Frame FEC status (type 0x5502 client→host); every field is big-endian on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FecStatus {
    /// Frame index.
    pub frame_index: u32,
    /// Highest RTP sequence number received.
    pub highest_received_sequence_number: u16,
    /// Next contiguous sequence number expected.
    pub next_contiguous_sequence_number: u16,
    /// Packets missing before the highest received one.
    pub missing_packets_before_highest_received: u16,
    /// Data shards in the block.
    pub total_data_packets: u16,
    /// Parity shards in the block.
    pub total_parity_packets: u16,
    /// Data shards received.
    pub received_data_packets: u16,
    /// Parity shards received.
    pub received_parity_packets: u16,
    /// FEC percentage of the block.
    pub fec_percentage: u8,
    /// Index of this FEC block within the frame.
    pub multi_fec_block_index: u8,
    /// FEC blocks in the frame.
    pub multi_fec_block_count: u8,
}

/// A decoded client→host control message (§3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    /// 0x0302: encode an IDR frame soon. Also the "Start A" message after connecting.
    RequestIdr,
    /// 0x0307: Start B, sent once after connecting.
    StartB,
    /// 0x0301: the client lost frames `first_frame_index..=last_frame_index`.
    InvalidateRefFrames {
        /// First lost frame.
        first_frame_index: u32,
        /// Last lost frame.
        last_frame_index: u32,
    },
    /// 0x0200: liveness ping; carries nothing of use.
    PeriodicPing,
    /// 0x0201: legacy loss statistics.
    LossStats {
        /// Last frame received intact.
        last_good_frame: u64,
    },
    /// 0x0206: one input packet; decode it with [`crate::input::InputEvent::parse`].
    InputData(Vec<u8>),
    /// 0x5502: FEC status of one frame.
    FecStatus(FecStatus),
    /// 0x0350: the client received an LTR frame.
    LtrAck {
        /// Frame index.
        frame_index: u32,
    },
    /// Any other type; the payload is ignored.
    Unknown {
        /// The LE16 type.
        packet_type: u16,
    },
}

/// Each message arm checks the exact payload length before reading, so reads cannot run short;
/// this error is there so that a wrong layout gives an error rather than a panic.
const SHORT: ControlError = ControlError::TooShort;

fn expect_len(message: &'static str, payload: &[u8], expected: usize) -> Result<(), ControlError> {
    if payload.len() == expected {
        Ok(())
    } else {
        Err(ControlError::PayloadLength {
            message,
            expected,
            actual: payload.len(),
        })
    }
}

impl ClientMessage {
    /// Decodes a V2 message sent by the client.
    pub fn parse(message: &ControlMessage<'_>) -> Result<Self, ControlError> {
        let payload = message.payload;
        let mut r = Reader::new(payload);
        Ok(match message.packet_type {
            packet_type::REQUEST_IDR => {
                expect_len("request IDR", payload, 2)?;
                Self::RequestIdr
            }
            packet_type::START_B => {
                expect_len("start B", payload, 1)?;
                Self::StartB
            }
            packet_type::INVALIDATE_REF_FRAMES => {
                expect_len("invalidate reference frames", payload, 24)?;
                let first_frame_index = r.le_u32().ok_or(SHORT)?;
                r.skip(4).ok_or(SHORT)?;
                let last_frame_index = r.le_u32().ok_or(SHORT)?;
                Self::InvalidateRefFrames {
                    first_frame_index,
                    last_frame_index,
                }
            }
            packet_type::PERIODIC_PING => {
                expect_len("periodic ping", payload, 8)?;
                Self::PeriodicPing
            }
            packet_type::LOSS_STATS => {
                expect_len("loss stats", payload, 32)?;
                r.skip(12).ok_or(SHORT)?;
                Self::LossStats {
                    last_good_frame: r.le_u64().ok_or(SHORT)?,
                }
            }
            packet_type::INPUT_DATA => Self::InputData(payload.to_vec()),
            packet_type::FEC_STATUS => {
                expect_len("FEC status", payload, 21)?;
                Self::FecStatus(FecStatus {
                    frame_index: r.be_u32().ok_or(SHORT)?,
                    highest_received_sequence_number: r.be_u16().ok_or(SHORT)?,
                    next_contiguous_sequence_number: r.be_u16().ok_or(SHORT)?,
                    missing_packets_before_highest_received: r.be_u16().ok_or(SHORT)?,
                    total_data_packets: r.be_u16().ok_or(SHORT)?,
                    total_parity_packets: r.be_u16().ok_or(SHORT)?,
                    received_data_packets: r.be_u16().ok_or(SHORT)?,
                    received_parity_packets: r.be_u16().ok_or(SHORT)?,
                    fec_percentage: r.u8().ok_or(SHORT)?,
                    multi_fec_block_index: r.u8().ok_or(SHORT)?,
                    multi_fec_block_count: r.u8().ok_or(SHORT)?,
                })
            }
            packet_type::LTR_ACK => {
                expect_len("LTR ACK", payload, 8)?;
                Self::LtrAck {
                    frame_index: r.le_u32().ok_or(SHORT)?,
                }
            }
            other => Self::Unknown { packet_type: other },
        })
    }

    /// The LE16 type this message is sent with.
    pub fn packet_type(&self) -> u16 {
        match self {
            Self::RequestIdr => packet_type::REQUEST_IDR,
            Self::StartB => packet_type::START_B,
            Self::InvalidateRefFrames { .. } => packet_type::INVALIDATE_REF_FRAMES,
            Self::PeriodicPing => packet_type::PERIODIC_PING,
            Self::LossStats { .. } => packet_type::LOSS_STATS,
            Self::InputData(_) => packet_type::INPUT_DATA,
            Self::FecStatus(_) => packet_type::FEC_STATUS,
            Self::LtrAck { .. } => packet_type::LTR_ACK,
            Self::Unknown { packet_type } => *packet_type,
        }
    }

    /// Serialises the message as the client does, as a V2 plaintext. [`Self::Unknown`] gets an
    /// empty payload.
    pub fn encode(&self) -> Result<Vec<u8>, ControlError> {
        let mut w = Writer::default();
        match self {
            Self::RequestIdr => w.bytes(&[0, 0]),
            Self::StartB => w.u8(0),
            Self::InvalidateRefFrames {
                first_frame_index,
                last_frame_index,
            } => {
                w.le_u32(*first_frame_index);
                w.le_u32(0);
                w.le_u32(*last_frame_index);
                w.bytes(&[0; 12]);
            }
            Self::PeriodicPing => {
                w.le_u16(4);
                w.le_u32(0);
                w.le_u16(0);
            }
            Self::LossStats { last_good_frame } => {
                w.le_u32(0);
                w.le_u32(50);
                w.le_u32(1000);
                w.le_u64(*last_good_frame);
                w.le_u32(0);
                w.le_u32(0);
                w.le_u32(0x14);
            }
            Self::InputData(data) => w.bytes(data),
            Self::FecStatus(s) => {
                w.be_u32(s.frame_index);
                w.be_u16(s.highest_received_sequence_number);
                w.be_u16(s.next_contiguous_sequence_number);
                w.be_u16(s.missing_packets_before_highest_received);
                w.be_u16(s.total_data_packets);
                w.be_u16(s.total_parity_packets);
                w.be_u16(s.received_data_packets);
                w.be_u16(s.received_parity_packets);
                w.u8(s.fec_percentage);
                w.u8(s.multi_fec_block_index);
                w.u8(s.multi_fec_block_count);
            }
            Self::LtrAck { frame_index } => {
                w.le_u32(*frame_index);
                w.le_u32(0);
            }
            Self::Unknown { .. } => {}
        }
        ControlMessage {
            packet_type: self.packet_type(),
            payload: &w.into_inner(),
        }
        .encode()
    }
}

/// HDR static metadata sent with [`HostMessage::HdrMode`] to Sunshine-mode clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HdrMetadata {
    /// Display primaries R, G, B as (x, y), normalised to 50000.
    pub display_primaries: [(u16, u16); 3],
    /// White point (x, y), normalised to 50000.
    pub white_point: (u16, u16),
    /// Maximum display luminance in nits.
    pub max_display_luminance: u16,
    /// Minimum display luminance in 1/10000 nit.
    pub min_display_luminance: u16,
    /// MaxCLL.
    pub max_content_light_level: u16,
    /// MaxFALL.
    pub max_frame_average_light_level: u16,
    /// Maximum full-frame luminance.
    pub max_full_frame_luminance: u16,
}

/// A host→client control message (§3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostMessage {
    /// 0x0109: end of stream with an HRESULT, e.g. [`hresult::GRACEFUL`] (sent BE32).
    Termination {
        /// The HRESULT.
        hresult: u32,
    },
    /// 0x010b: set the two rumble motors of a pad; values persist until changed.
    Rumble {
        /// Controller number.
        controller: u16,
        /// Low-frequency motor, 0–65535.
        low_freq: u16,
        /// High-frequency motor, 0–65535.
        high_freq: u16,
    },
    /// 0x5500: set the trigger motors of a pad.
    RumbleTriggers {
        /// Controller number.
        controller: u16,
        /// Left trigger motor.
        left: u16,
        /// Right trigger motor.
        right: u16,
    },
    /// 0x5501: ask for (or stop, with rate 0) motion reports.
    MotionEventState {
        /// Controller number.
        controller: u16,
        /// Report rate in Hz; 0 stops.
        report_rate_hz: u16,
        /// Sensor.
        motion_type: MotionType,
    },
    /// 0x5502: set a pad's RGB LED.
    RgbLed {
        /// Controller number.
        controller: u16,
        /// Red.
        red: u8,
        /// Green.
        green: u8,
        /// Blue.
        blue: u8,
    },
    /// 0x5503: DualSense adaptive trigger effects.
    AdaptiveTriggers {
        /// Controller number.
        controller: u16,
        /// 0x04 right, 0x08 left.
        event_flags: u8,
        /// Left effect type.
        type_left: u8,
        /// Right effect type.
        type_right: u8,
        /// Left effect parameters.
        left: [u8; 10],
        /// Right effect parameters.
        right: [u8; 10],
    },
    /// 0x010e: HDR on or off, with metadata for Sunshine-mode clients.
    HdrMode {
        /// HDR is active.
        enabled: bool,
        /// Metadata; `None` sends the 1-byte form.
        metadata: Option<HdrMetadata>,
    },
}

impl HostMessage {
    /// The LE16 type this message is sent with.
    pub fn packet_type(&self) -> u16 {
        match self {
            Self::Termination { .. } => packet_type::TERMINATION,
            Self::Rumble { .. } => packet_type::RUMBLE,
            Self::RumbleTriggers { .. } => packet_type::RUMBLE_TRIGGERS,
            Self::MotionEventState { .. } => packet_type::MOTION_EVENT_STATE,
            Self::RgbLed { .. } => packet_type::RGB_LED,
            Self::AdaptiveTriggers { .. } => packet_type::ADAPTIVE_TRIGGERS,
            Self::HdrMode { .. } => packet_type::HDR_MODE,
        }
    }

    /// Serialises the message as a V2 plaintext (type, length, payload).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.le_u16(self.packet_type());
        let mut p = Writer::default();
        match self {
            Self::Termination { hresult } => p.be_u32(*hresult),
            Self::Rumble {
                controller,
                low_freq,
                high_freq,
            } => {
                p.le_u32(0);
                p.le_u16(*controller);
                p.le_u16(*low_freq);
                p.le_u16(*high_freq);
            }
            Self::RumbleTriggers {
                controller,
                left,
                right,
            } => {
                p.le_u16(*controller);
                p.le_u16(*left);
                p.le_u16(*right);
            }
            Self::MotionEventState {
                controller,
                report_rate_hz,
                motion_type,
            } => {
                p.le_u16(*controller);
                p.le_u16(*report_rate_hz);
                p.u8(motion_type.to_u8());
            }
            Self::RgbLed {
                controller,
                red,
                green,
                blue,
            } => {
                p.le_u16(*controller);
                p.bytes(&[*red, *green, *blue]);
            }
            Self::AdaptiveTriggers {
                controller,
                event_flags,
                type_left,
                type_right,
                left,
                right,
            } => {
                p.le_u16(*controller);
                p.bytes(&[*event_flags, *type_left, *type_right]);
                p.bytes(left);
                p.bytes(right);
            }
            Self::HdrMode { enabled, metadata } => {
                p.u8(u8::from(*enabled));
                if let Some(m) = metadata {
                    for (x, y) in m.display_primaries.iter().chain([&m.white_point]) {
                        p.le_u16(*x);
                        p.le_u16(*y);
                    }
                    p.le_u16(m.max_display_luminance);
                    p.le_u16(m.min_display_luminance);
                    p.le_u16(m.max_content_light_level);
                    p.le_u16(m.max_frame_average_light_level);
                    p.le_u16(m.max_full_frame_luminance);
                }
            }
        }
        let payload = p.into_inner();
        // Every payload above is at most 27 bytes.
        w.le_u16(u16::try_from(payload.len()).unwrap_or(u16::MAX));
        w.bytes(&payload);
        w.into_inner()
    }

    /// Decodes a host message the way the client would; for tests and fuzzing. Returns
    /// `Ok(None)` for a type that is not a host→client message.
    pub fn parse(message: &ControlMessage<'_>) -> Result<Option<Self>, ControlError> {
        let payload = message.payload;
        let mut r = Reader::new(payload);
        Ok(Some(match message.packet_type {
            packet_type::TERMINATION => {
                expect_len("termination", payload, 4)?;
                Self::Termination {
                    hresult: r.be_u32().ok_or(SHORT)?,
                }
            }
            packet_type::RUMBLE => {
                expect_len("rumble", payload, 10)?;
                r.skip(4).ok_or(SHORT)?;
                Self::Rumble {
                    controller: r.le_u16().ok_or(SHORT)?,
                    low_freq: r.le_u16().ok_or(SHORT)?,
                    high_freq: r.le_u16().ok_or(SHORT)?,
                }
            }
            packet_type::RUMBLE_TRIGGERS => {
                expect_len("rumble triggers", payload, 6)?;
                Self::RumbleTriggers {
                    controller: r.le_u16().ok_or(SHORT)?,
                    left: r.le_u16().ok_or(SHORT)?,
                    right: r.le_u16().ok_or(SHORT)?,
                }
            }
            packet_type::MOTION_EVENT_STATE => {
                expect_len("motion event state", payload, 5)?;
                let controller = r.le_u16().ok_or(SHORT)?;
                let report_rate_hz = r.le_u16().ok_or(SHORT)?;
                let raw = r.u8().ok_or(SHORT)?;
                Self::MotionEventState {
                    controller,
                    report_rate_hz,
                    motion_type: MotionType::from_u8(raw).ok_or(ControlError::InvalidValue {
                        field: "motion type",
                        value: raw.into(),
                    })?,
                }
            }
            packet_type::RGB_LED => {
                expect_len("RGB LED", payload, 5)?;
                Self::RgbLed {
                    controller: r.le_u16().ok_or(SHORT)?,
                    red: r.u8().ok_or(SHORT)?,
                    green: r.u8().ok_or(SHORT)?,
                    blue: r.u8().ok_or(SHORT)?,
                }
            }
            packet_type::ADAPTIVE_TRIGGERS => {
                expect_len("adaptive triggers", payload, 25)?;
                Self::AdaptiveTriggers {
                    controller: r.le_u16().ok_or(SHORT)?,
                    event_flags: r.u8().ok_or(SHORT)?,
                    type_left: r.u8().ok_or(SHORT)?,
                    type_right: r.u8().ok_or(SHORT)?,
                    left: r.array().ok_or(SHORT)?,
                    right: r.array().ok_or(SHORT)?,
                }
            }
            packet_type::HDR_MODE => {
                if payload.len() != 1 && payload.len() != 27 {
                    return Err(ControlError::PayloadLength {
                        message: "HDR mode",
                        expected: 27,
                        actual: payload.len(),
                    });
                }
                let enabled = r.u8().ok_or(SHORT)? != 0;
                let metadata = if r.is_empty() {
                    None
                } else {
                    let mut v = [0u16; 13];
                    for slot in &mut v {
                        *slot = r.le_u16().ok_or(SHORT)?;
                    }
                    let [
                        rx,
                        ry,
                        gx,
                        gy,
                        bx,
                        by,
                        wx,
                        wy,
                        max_dl,
                        min_dl,
                        cll,
                        fall,
                        fff,
                    ] = v;
                    Some(HdrMetadata {
                        display_primaries: [(rx, ry), (gx, gy), (bx, by)],
                        white_point: (wx, wy),
                        max_display_luminance: max_dl,
                        min_display_luminance: min_dl,
                        max_content_light_level: cll,
                        max_frame_average_light_level: fall,
                        max_full_frame_luminance: fff,
                    })
                };
                Self::HdrMode { enabled, metadata }
            }
            _ => return Ok(None),
        }))
    }
}

/// Entry points for the fuzz targets in `fuzz/`; not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use super::{ClientMessage, ControlCipher, ControlMessage, HostMessage, IvMode, Origin};

    /// Opens the bytes as an encrypted packet, then treats them as a V2 plaintext: decodes it
    /// in the clear and through a seal/open round trip (both must agree), and re-encodes any
    /// decoded message.
    pub fn envelope(data: &[u8]) {
        let cipher = ControlCipher::new(&[0x42; 16], IvMode::V2);
        let _ = cipher.open_client_message(data);
        let _ = ControlCipher::new(&[0x42; 16], IvMode::Legacy).open(Origin::Client, data);

        let clear = ControlMessage::parse(data).and_then(|m| ClientMessage::parse(&m));
        if let Ok(sealed) = cipher.seal(Origin::Client, 7, data) {
            let opened = cipher.open_client_message(&sealed).map(|(_, m)| m);
            assert_eq!(opened, clear);
        }
        if let Ok(message) = clear
            && let Ok(bytes) = message.encode()
        {
            let again = ControlMessage::parse(&bytes).and_then(|m| ClientMessage::parse(&m));
            assert_eq!(again, Ok(message));
        }
        if let Ok(m) = ControlMessage::parse(data)
            && let Ok(Some(host)) = HostMessage::parse(&m)
        {
            let bytes = host.encode();
            let again = ControlMessage::parse(&bytes).and_then(|m| HostMessage::parse(&m));
            assert_eq!(again, Ok(Some(host)));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
