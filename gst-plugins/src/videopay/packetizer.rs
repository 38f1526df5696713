//! Moonlight video packetisation in plain Rust, no GStreamer types.
//!
//! Implements `docs/PROTOCOL.md` §4.2–§4.6: one encoded access unit becomes
//! `FH ‖ bitstream` (the 8-byte short frame header, §4.3), cut into full-size, zero-padded
//! `16 + P` byte packets (RTP header with X=1 plus 4 extension bytes, then `NV_VIDEO_PACKET`),
//! grouped into at most 4 FEC blocks, each followed by its Reed–Solomon parity packets (§4.4,
//! §4.5). Optional AES-128-GCM video encryption (§4.6) is applied to every packet after FEC.
//!
//! All packets of a frame are written back to back at a fixed stride
//! ([`FramePlan::packet_len`]) into one output buffer: either the packetizer's own, reused from
//! frame to frame ([`VideoPacketizer::packetize`]), or one the caller provides
//! ([`VideoPacketizer::packetize_into`]). Once the buffer and the FEC encoders for the frame
//! shapes in use exist, a frame is packetized without any allocation.

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes128Gcm, KeyInit};

use crate::fec::{EncoderCache, FecError, Kernel};

/// RTP header (12 bytes) plus the 4 "extension" bytes the client skips.
pub const RTP_HEADER_LEN: usize = 16;
/// `NV_VIDEO_PACKET` header length.
pub const NV_HEADER_LEN: usize = 16;
/// Both headers: the offset of the payload chunk inside a plaintext packet.
pub const PACKET_HEADER_LEN: usize = RTP_HEADER_LEN + NV_HEADER_LEN;
/// The short frame header at the start of every frame payload (§4.3).
pub const FRAME_HEADER_LEN: usize = 8;
/// `ENC_VIDEO_HEADER` prefix of encrypted packets: iv\[12\], frameNumber LE32, tag\[16\].
pub const ENCRYPTION_PREFIX_LEN: usize = 32;
/// At most this many FEC blocks per frame (2-bit block index).
pub const MAX_FEC_BLOCKS: usize = 4;
/// Data shards per block when FEC is off: the 10-bit `fecInfo` field limit.
pub const MAX_DATA_SHARDS_WITHOUT_FEC: usize = 1023;
/// Smallest accepted `P` (`x-nv-video[0].packetSize`).
pub const MIN_PAYLOAD_SIZE: usize = 32;
/// Largest accepted `P`: an encrypted packet must still fit a UDP datagram.
pub const MAX_PAYLOAD_SIZE: usize = 65_507 - RTP_HEADER_LEN - ENCRYPTION_PREFIX_LEN;

const FLAG_CONTAINS_PIC_DATA: u8 = 0x01;
const FLAG_EOF: u8 = 0x02;
const FLAG_SOF: u8 = 0x04;
const MULTI_FEC_FLAGS: u8 = 0x10;
const RTP_FIRST_BYTE: u8 = 0x90;

/// Errors from packetizing a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketizeError {
    /// `P` outside [`MIN_PAYLOAD_SIZE`]..=[`MAX_PAYLOAD_SIZE`].
    #[error("invalid payload size {0}")]
    InvalidPayloadSize(usize),
    /// The frame needs more than 4 blocks even without FEC (more than 4092 packets).
    #[error("frame of {0} bytes is too large to packetize")]
    FrameTooLarge(usize),
    /// The caller's output buffer does not have the planned size.
    #[error("output buffer is {got} bytes, the frame needs {expected}")]
    OutputSize {
        /// Bytes the frame needs ([`FramePlan::total_len`]).
        expected: usize,
        /// Bytes provided.
        got: usize,
    },
    /// The Reed–Solomon encoder rejected the block (an internal bug if it ever happens).
    #[error("fec: {0}")]
    Fec(#[from] FecError),
    /// AES-GCM refused the packet (it only does so for absurd lengths).
    #[error("video encryption failed")]
    Encrypt,
}

/// Frame type byte of the frame header (§4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameType {
    /// An ordinary inter frame.
    PFrame = 1,
    /// An IDR / key frame (what AV1 clients wait for after loss).
    Idr = 2,
    /// An intra-refresh frame.
    IntraRefresh = 4,
    /// A P-frame sent after reference-frame invalidation.
    PFrameAfterInvalidation = 5,
}

/// Per-frame metadata supplied by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameMeta {
    /// Frame type byte.
    pub frame_type: FrameType,
    /// RTP timestamp, 90 kHz.
    pub rtp_timestamp: u32,
    /// Host processing latency in 0.1 ms units; 0 means unknown.
    pub host_processing_latency: u16,
}

/// Packetizer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// `P`: bytes per packet after the 16-byte RTP header (NV header + payload chunk).
    pub payload_size: usize,
    /// Requested FEC percentage F (0 disables FEC).
    pub fec_percentage: u8,
    /// Minimum parity packets per block when F > 0 (Sunshine: 2).
    pub min_required_fec_packets: u8,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            payload_size: 1392,
            fec_percentage: 20,
            min_required_fec_packets: 2,
        }
    }
}

/// One FEC block of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockPlan {
    /// Data shards d.
    pub data_shards: usize,
    /// Parity shards p; always `(d·F + 99) / 100` for the F below.
    pub parity_shards: usize,
    /// The F written into this block's `fecInfo`.
    pub fec_percentage: u8,
}

/// How one frame is split into packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramePlan {
    /// Length of the access unit.
    pub au_len: usize,
    /// Data packets N = ⌈(len + 8) / (P − 16)⌉.
    pub data_packets: usize,
    blocks: [BlockPlan; MAX_FEC_BLOCKS],
    block_count: usize,
    /// Bytes per packet on the wire: `16 + P`, plus 32 when encrypted.
    pub packet_len: usize,
    /// Whether FEC was turned off for this frame because it needed more than 4 blocks.
    pub fec_disabled: bool,
}

impl FramePlan {
    /// The FEC blocks, in send order.
    pub fn blocks(&self) -> &[BlockPlan] {
        self.blocks.get(..self.block_count).unwrap_or(&[])
    }

    /// Data plus parity packets.
    pub fn total_packets(&self) -> usize {
        self.blocks()
            .iter()
            .map(|b| b.data_shards + b.parity_shards)
            .sum()
    }

    /// Output bytes: `total_packets × packet_len`.
    pub fn total_len(&self) -> usize {
        self.total_packets() * self.packet_len
    }
}

/// Parity count and the F to write for a block of `data` shards (§4.4 step 3).
///
/// Returns `(p, F')` with `p == (data·F' + 99) / 100` (what the client recomputes),
/// `data + p <= 255` and `F' <= 255`. With `F > 0`, p is raised to `min_required` when
/// below it, as Sunshine does.
pub fn block_parity(data: usize, fec_percentage: u8, min_required: u8) -> (usize, u8) {
    if fec_percentage == 0 || data == 0 {
        return (0, 0);
    }
    let client_parity = |f: usize| (data * f).div_ceil(100);
    let f = usize::from(fec_percentage);
    let mut p = client_parity(f);
    let mut f_out = f;
    if p < usize::from(min_required) {
        p = usize::from(min_required);
        f_out = 100 * p / data;
    }
    if f_out > 255 || client_parity(f_out) != p {
        // The smallest F whose client parity is at least p; for data > 100 no F may give
        // exactly p, then we send the (larger) parity count that F implies.
        f_out = (100 * (p - 1) / data + 1).min(255);
        p = client_parity(f_out);
    }
    while f_out > 0 && data + p > crate::fec::MAX_TOTAL_SHARDS {
        f_out -= 1;
        p = client_parity(f_out);
    }
    (p, f_out as u8)
}

/// Splits a frame of `au_len` bytes into blocks (§4.4 steps 1–3).
pub fn plan_frame(
    au_len: usize,
    cfg: &Config,
    encrypted: bool,
) -> Result<FramePlan, PacketizeError> {
    let p = cfg.payload_size;
    if !(MIN_PAYLOAD_SIZE..=MAX_PAYLOAD_SIZE).contains(&p) {
        return Err(PacketizeError::InvalidPayloadSize(p));
    }
    let chunk = p - NV_HEADER_LEN;
    let data_packets = au_len
        .checked_add(FRAME_HEADER_LEN)
        .ok_or(PacketizeError::FrameTooLarge(au_len))?
        .div_ceil(chunk);
    let mut fec = cfg.fec_percentage;
    let mut fec_disabled = false;
    let mut block_count = if fec > 0 {
        let max_data = 25_500 / (100 + usize::from(fec));
        data_packets.div_ceil(max_data)
    } else {
        data_packets.div_ceil(MAX_DATA_SHARDS_WITHOUT_FEC)
    };
    if block_count > MAX_FEC_BLOCKS && fec > 0 {
        fec = 0;
        fec_disabled = true;
        block_count = data_packets.div_ceil(MAX_DATA_SHARDS_WITHOUT_FEC);
    }
    if block_count > MAX_FEC_BLOCKS {
        return Err(PacketizeError::FrameTooLarge(au_len));
    }
    let block_count = block_count.max(1);
    let mut blocks = [BlockPlan::default(); MAX_FEC_BLOCKS];
    // Spread the data shards evenly, the first blocks taking the remainder.
    let (base, extra) = (data_packets / block_count, data_packets % block_count);
    for (b, block) in blocks.iter_mut().take(block_count).enumerate() {
        let d = base + usize::from(b < extra);
        let (parity, f) = block_parity(d, fec, cfg.min_required_fec_packets);
        *block = BlockPlan {
            data_shards: d,
            parity_shards: parity,
            fec_percentage: f,
        };
    }
    let mut packet_len = RTP_HEADER_LEN + p;
    if encrypted {
        packet_len += ENCRYPTION_PREFIX_LEN;
    }
    Ok(FramePlan {
        au_len,
        data_packets,
        blocks,
        block_count,
        packet_len,
        fec_disabled,
    })
}

/// What [`VideoPacketizer`] wrote for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    /// `frameIndex` of the frame (1, 2, 3, …).
    pub frame_index: u32,
    /// RTP sequence number of its first packet.
    pub first_sequence: u16,
    /// The layout used.
    pub plan: FramePlan,
}

/// The packets of one frame in the packetizer's own buffer.
#[derive(Debug)]
pub struct Packets<'a> {
    /// What was written.
    pub info: FrameInfo,
    bytes: &'a [u8],
}

impl<'a> Packets<'a> {
    /// All packets back to back, each [`FramePlan::packet_len`] bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Number of packets.
    pub fn len(&self) -> usize {
        self.info.plan.total_packets()
    }

    /// Whether there are no packets (never the case for a packetized frame).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The packets in send order.
    pub fn iter(&self) -> std::slice::ChunksExact<'a, u8> {
        self.bytes.chunks_exact(self.info.plan.packet_len.max(1))
    }
}

/// Per-session AES-128-GCM state for §4.6.
struct VideoCipher {
    aead: Aes128Gcm,
    /// 64-bit IV counter; never repeats for the lifetime of the packetizer.
    counter: u64,
}

impl std::fmt::Debug for VideoCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoCipher")
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

/// The video packetizer: owns the packet counter, the frame counter, the FEC encoder cache and
/// the encryption state of one video stream.
///
/// Invariant: the RTP sequence number of every packet is the low 16 bits of `packet_index`,
/// a 32-bit running counter; `streamPacketIndex` carries `packet_index << 8`, which the client
/// compares as a 24-bit number, so it must not wrap together with the RTP sequence.
#[derive(Debug)]
pub struct VideoPacketizer {
    cfg: Config,
    cipher: Option<VideoCipher>,
    packet_index: u32,
    next_frame_index: u32,
    encoders: EncoderCache,
    kernel: Kernel,
    buf: Vec<u8>,
}

impl VideoPacketizer {
    /// A packetizer; `key` (the 16-byte rikey) turns on video encryption.
    pub fn new(cfg: Config, key: Option<[u8; 16]>) -> Result<Self, PacketizeError> {
        if !(MIN_PAYLOAD_SIZE..=MAX_PAYLOAD_SIZE).contains(&cfg.payload_size) {
            return Err(PacketizeError::InvalidPayloadSize(cfg.payload_size));
        }
        Ok(Self {
            cfg,
            cipher: key.map(|k| VideoCipher {
                aead: Aes128Gcm::new(&k.into()),
                counter: 0,
            }),
            packet_index: 0,
            next_frame_index: 1,
            encoders: EncoderCache::new(),
            kernel: Kernel::detect(),
            buf: Vec::new(),
        })
    }

    /// Current settings.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Changes the FEC settings from the next frame on.
    pub fn set_fec(&mut self, fec_percentage: u8, min_required_fec_packets: u8) {
        self.cfg.fec_percentage = fec_percentage;
        self.cfg.min_required_fec_packets = min_required_fec_packets;
    }

    /// Forces a Reed–Solomon kernel (benchmarks, tests).
    pub fn set_kernel(&mut self, kernel: Kernel) {
        self.kernel = kernel;
    }

    /// Whether packets are encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.cipher.is_some()
    }

    /// The `frameIndex` the next frame will get.
    pub fn next_frame_index(&self) -> u32 {
        self.next_frame_index
    }

    /// The RTP sequence number the next packet will get.
    pub fn next_sequence(&self) -> u16 {
        self.packet_index as u16
    }

    /// The 32-bit running packet index the next packet will get.
    pub fn next_packet_index(&self) -> u32 {
        self.packet_index
    }

    /// Starts the packet counter at `packet_index` (a debug setting lets tests start it just
    /// below a wrap, so that crossing it takes seconds).
    pub fn set_next_packet_index(&mut self, packet_index: u32) {
        self.packet_index = packet_index;
    }

    /// The layout a frame of `au_len` bytes would get now.
    pub fn plan(&self, au_len: usize) -> Result<FramePlan, PacketizeError> {
        plan_frame(au_len, &self.cfg, self.cipher.is_some())
    }

    /// Packetizes one access unit into the packetizer's reused buffer.
    pub fn packetize(
        &mut self,
        au: &[u8],
        meta: &FrameMeta,
    ) -> Result<Packets<'_>, PacketizeError> {
        let plan = self.plan(au.len())?;
        let total = plan.total_len();
        // Grow only; every byte of the used range is rewritten below, so no clearing is needed.
        if self.buf.len() < total {
            self.buf.resize(total, 0);
        }
        let mut buf = std::mem::take(&mut self.buf);
        let result = match buf.get_mut(..total) {
            Some(out) => self.write_frame(au, meta, &plan, out),
            None => Err(PacketizeError::OutputSize {
                expected: total,
                got: buf.len(),
            }),
        };
        self.buf = buf;
        let info = result?;
        Ok(Packets {
            info,
            bytes: self.buf.get(..total).unwrap_or(&[]),
        })
    }

    /// Packetizes one access unit into `out`, which must be exactly
    /// [`plan(au.len())`](Self::plan)`.total_len()` bytes.
    pub fn packetize_into(
        &mut self,
        au: &[u8],
        meta: &FrameMeta,
        out: &mut [u8],
    ) -> Result<FrameInfo, PacketizeError> {
        let plan = self.plan(au.len())?;
        if out.len() != plan.total_len() {
            return Err(PacketizeError::OutputSize {
                expected: plan.total_len(),
                got: out.len(),
            });
        }
        self.write_frame(au, meta, &plan, out)
    }

    fn write_frame(
        &mut self,
        au: &[u8],
        meta: &FrameMeta,
        plan: &FramePlan,
        out: &mut [u8],
    ) -> Result<FrameInfo, PacketizeError> {
        let frame_index = self.next_frame_index;
        let first_sequence = self.packet_index as u16;
        let stride = plan.packet_len;
        let prefix = if self.cipher.is_some() {
            ENCRYPTION_PREFIX_LEN
        } else {
            0
        };
        let shard_len = RTP_HEADER_LEN + self.cfg.payload_size;
        let chunk = self.cfg.payload_size - NV_HEADER_LEN;

        let total_payload = au.len() + FRAME_HEADER_LEN;
        let last_payload_len = match total_payload % chunk {
            0 => chunk,
            r => r,
        };
        let mut frame_header = [0u8; FRAME_HEADER_LEN];
        frame_header[0] = 0x01;
        frame_header[1..3].copy_from_slice(&meta.host_processing_latency.to_le_bytes());
        frame_header[3] = meta.frame_type as u8;
        // lastPayloadLen is a LE16 field; chunk < 65536 by MAX_PAYLOAD_SIZE.
        frame_header[4..6].copy_from_slice(&(last_payload_len as u16).to_le_bytes());

        let last_block = (plan.block_count - 1) as u8;
        let out_len = out.len();
        let size_error = PacketizeError::OutputSize {
            expected: plan.total_len(),
            got: out_len,
        };
        let mut index = self.packet_index;
        let mut data_index = 0usize; // data packet index across all blocks
        let mut packet = 0usize; // packet index across the frame
        for (b, block) in plan.blocks().iter().enumerate() {
            let d = block.data_shards;
            let p = block.parity_shards;
            let block_start = packet * stride;
            let multi_fec_blocks = ((b as u8) << 4) | (last_block << 6);
            let fec_info_base = ((d as u32) << 22) | (u32::from(block.fec_percentage) << 4);
            for i in 0..d {
                let pkt = out
                    .get_mut(packet * stride + prefix..(packet + 1) * stride)
                    .ok_or(size_error)?;
                let mut flags = FLAG_CONTAINS_PIC_DATA;
                if i == 0 {
                    flags |= FLAG_SOF;
                }
                if i + 1 == d {
                    flags |= FLAG_EOF;
                }
                let header = packet_header(
                    index,
                    meta.rtp_timestamp,
                    frame_index,
                    flags,
                    multi_fec_blocks,
                    fec_info_base | ((i as u32) << 12),
                );
                let (head, payload) = pkt
                    .split_at_mut_checked(PACKET_HEADER_LEN)
                    .ok_or(size_error)?;
                head.copy_from_slice(&header);
                fill_payload(payload, data_index * chunk, &frame_header, au);
                data_index += 1;
                packet += 1;
                index = index.wrapping_add(1);
            }
            if p == 0 {
                continue;
            }
            // Parity packets: RS over the whole plaintext packets, then the header fields the
            // client reads from parity packets. Fields the client does not rewrite in recovered
            // packets (streamPacketIndex, flags, extraFlags, multiFecFlags) keep the RS output,
            // so a recovered data packet gets them back exactly.
            let block_buf = out
                .get_mut(block_start..block_start + (d + p) * stride)
                .ok_or(size_error)?;
            let rs = self.encoders.get(d, p)?;
            rs.encode_strided_with(self.kernel, block_buf, stride, prefix, shard_len)?;
            for j in 0..p {
                let pkt = out
                    .get_mut(packet * stride + prefix..(packet + 1) * stride)
                    .ok_or(size_error)?;
                let fec_info = fec_info_base | (((d + j) as u32) << 12);
                patch_parity_header(
                    pkt,
                    index as u16,
                    meta.rtp_timestamp,
                    frame_index,
                    multi_fec_blocks,
                    fec_info,
                );
                packet += 1;
                index = index.wrapping_add(1);
            }
        }

        if let Some(cipher) = self.cipher.as_mut() {
            for slot in out.chunks_exact_mut(stride) {
                encrypt_packet(cipher, slot, frame_index)?;
            }
        }

        self.packet_index = index;
        self.next_frame_index = frame_index.wrapping_add(1);
        Ok(FrameInfo {
            frame_index,
            first_sequence,
            plan: *plan,
        })
    }
}

/// RTP + NV header of a data packet (§4.2, §4.4 step 4); `packet_index` is the 32-bit running
/// counter, whose low 16 bits are the RTP sequence number.
fn packet_header(
    packet_index: u32,
    timestamp: u32,
    frame_index: u32,
    flags: u8,
    multi_fec_blocks: u8,
    fec_info: u32,
) -> [u8; PACKET_HEADER_LEN] {
    let mut h = [0u8; PACKET_HEADER_LEN];
    h[0] = RTP_FIRST_BYTE;
    h[2..4].copy_from_slice(&(packet_index as u16).to_be_bytes());
    h[4..8].copy_from_slice(&timestamp.to_be_bytes());
    // SSRC and the 4 extension bytes stay zero.
    h[16..20].copy_from_slice(&(packet_index << 8).to_le_bytes());
    h[20..24].copy_from_slice(&frame_index.to_le_bytes());
    h[24] = flags;
    h[25] = 0;
    h[26] = MULTI_FEC_FLAGS;
    h[27] = multi_fec_blocks;
    h[28..32].copy_from_slice(&fec_info.to_le_bytes());
    h
}

fn write_prefix(dst: &mut [u8], src: &[u8]) {
    if let Some(d) = dst.get_mut(..src.len()) {
        d.copy_from_slice(src);
    }
}

fn write_at(dst: &mut [u8], at: usize, src: &[u8]) {
    if let Some(d) = dst.get_mut(at..at + src.len()) {
        d.copy_from_slice(src);
    }
}

fn patch_parity_header(
    pkt: &mut [u8],
    seq: u16,
    timestamp: u32,
    frame_index: u32,
    multi_fec_blocks: u8,
    fec_info: u32,
) {
    write_at(pkt, 0, &[RTP_FIRST_BYTE]);
    write_at(pkt, 2, &seq.to_be_bytes());
    write_at(pkt, 4, &timestamp.to_be_bytes());
    write_at(pkt, 20, &frame_index.to_le_bytes());
    write_at(pkt, 27, &[multi_fec_blocks]);
    write_at(pkt, 28, &fec_info.to_le_bytes());
}

/// Writes bytes `start .. start + payload.len()` of `frame_header ‖ au` into `payload`,
/// zero-padding past the end of the frame.
fn fill_payload(
    payload: &mut [u8],
    start: usize,
    frame_header: &[u8; FRAME_HEADER_LEN],
    au: &[u8],
) {
    let mut written = 0;
    if start < FRAME_HEADER_LEN {
        let fh = frame_header.get(start..).unwrap_or_default();
        let n = fh.len().min(payload.len());
        write_prefix(payload, fh.get(..n).unwrap_or_default());
        written = n;
    }
    let au_start = (start + written).saturating_sub(FRAME_HEADER_LEN);
    let rest = payload.get_mut(written..).unwrap_or_default();
    let src = au.get(au_start..).unwrap_or_default();
    let n = src.len().min(rest.len());
    let (head, tail) = rest.split_at_mut(n);
    head.copy_from_slice(src.get(..n).unwrap_or_default());
    tail.fill(0);
}

/// Encrypts one packet slot in place: `slot = prefix[32] ‖ plaintext` → `iv ‖ frameNumber ‖ tag
/// ‖ ciphertext` (§4.6).
fn encrypt_packet(
    cipher: &mut VideoCipher,
    slot: &mut [u8],
    frame_index: u32,
) -> Result<(), PacketizeError> {
    let mut iv = [0u8; 12];
    iv[..8].copy_from_slice(&cipher.counter.to_le_bytes());
    iv[11] = b'V';
    cipher.counter = cipher.counter.wrapping_add(1);
    let (prefix, body) = slot
        .split_at_mut_checked(ENCRYPTION_PREFIX_LEN)
        .ok_or(PacketizeError::Encrypt)?;
    let tag = cipher
        .aead
        .encrypt_inout_detached(&iv.into(), &[], body.into())
        .map_err(|_| PacketizeError::Encrypt)?;
    write_at(prefix, 0, &iv);
    write_at(prefix, 12, &frame_index.to_le_bytes());
    write_at(prefix, 16, tag.as_slice());
    Ok(())
}
