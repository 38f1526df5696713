//! The two SDP-like bodies of the RTSP handshake: the host's DESCRIBE body (`docs/PROTOCOL.md`
//! §2.4 and §5.5) and the client's ANNOUNCE body (§2.6).
//!
//! [`StreamConfig::parse`] turns the ANNOUNCE body into typed settings, filling omitted
//! attributes with Sunshine's defaults; [`DescribeBody::encode`] writes the text the client
//! searches with `strstr`; [`OpusLayout`] is the table of the six Opus multistream
//! configurations the host encodes with and advertises.

use core::fmt::Write as _;

use thiserror::Error;

/// Largest ANNOUNCE body accepted, in bytes (the real one is about 2 KiB).
pub const MAX_SDP_LEN: usize = 16 * 1024;

/// Most lines accepted in an ANNOUNCE body (the real one has about 45).
pub const MAX_SDP_LINES: usize = 256;

/// Smallest `packetSize` accepted.
pub const MIN_PACKET_SIZE: u32 = 64;

/// Largest `packetSize` accepted: a UDP datagram holds the 16-byte RTP header plus this.
pub const MAX_PACKET_SIZE: u32 = 65_000;

/// Largest width or height accepted.
pub const MAX_DIMENSION: u32 = 16_384;

/// Largest frame rate accepted.
pub const MAX_FPS: u32 = 1_000;

/// Why an ANNOUNCE body was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SdpError {
    /// The body is longer than [`MAX_SDP_LEN`].
    #[error("SDP body longer than {MAX_SDP_LEN} bytes")]
    TooLong,
    /// The body has more than [`MAX_SDP_LINES`] lines.
    #[error("SDP body has more than {MAX_SDP_LINES} lines")]
    TooManyLines,
    /// The body is not valid UTF-8.
    #[error("SDP body is not valid UTF-8")]
    NotUtf8,
    /// An attribute Sunshine requires (it has no default) is absent.
    #[error("SDP attribute {attribute} is missing")]
    MissingAttribute {
        /// The attribute name.
        attribute: &'static str,
    },
    /// A known attribute appears twice.
    #[error("SDP attribute {attribute} appears twice")]
    DuplicateAttribute {
        /// The attribute name.
        attribute: &'static str,
    },
    /// A known attribute's value is not an unsigned decimal that fits 32 bits.
    #[error("SDP attribute {attribute} is not a valid number")]
    InvalidNumber {
        /// The attribute name.
        attribute: &'static str,
    },
    /// A known attribute's value is a number this host cannot honour.
    #[error("SDP attribute {attribute} has unsupported value {value}")]
    OutOfRange {
        /// The attribute name.
        attribute: &'static str,
        /// The value received.
        value: u32,
    },
}

/// Encryption feature bits of `x-ss-general.encryption*` (`SS_ENC_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct EncryptionFlags(pub u32);

impl EncryptionFlags {
    /// No encryption.
    pub const NONE: Self = Self(0);
    /// `SS_ENC_CONTROL_V2`: control stream with V2 IVs.
    pub const CONTROL_V2: Self = Self(0x01);
    /// `SS_ENC_VIDEO`: video packets.
    pub const VIDEO: Self = Self(0x02);
    /// `SS_ENC_AUDIO`: audio packets.
    pub const AUDIO: Self = Self(0x04);

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl core::ops::BitOr for EncryptionFlags {
    type Output = Self;

    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// Host feature bits of `x-ss-general.featureFlags` (DESCRIBE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct HostFeatureFlags(pub u32);

impl HostFeatureFlags {
    /// Pen and touch events allowed.
    pub const PEN_TOUCH_EVENTS: Self = Self(0x01);
    /// Controller touchpad and motion events allowed.
    pub const CONTROLLER_TOUCH_EVENTS: Self = Self(0x02);
}

impl core::ops::BitOr for HostFeatureFlags {
    type Output = Self;

    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// `x-nv-general.featureFlags` bit: audio is encrypted.
pub const NV_FEATURE_AUDIO_ENCRYPTION: u32 = 0x20;

/// `x-ml-general.featureFlags` bit: the client sends FEC status reports.
pub const ML_FEATURE_FEC_STATUS: u32 = 0x01;

/// `x-ml-general.featureFlags` bit: the client echoes `X-SS-Ping-Payload` and
/// `X-SS-Connect-Data`.
pub const ML_FEATURE_SESSION_ID_V1: u32 = 0x02;

/// Video codec to encode (`x-nv-vqos[0].bitStreamFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// 0.
    H264,
    /// 1.
    Hevc,
    /// 2.
    Av1,
}

/// `x-nv-video[0].dynamicRangeMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DynamicRange {
    /// 0: 8-bit SDR.
    Sdr,
    /// 1: HDR, 10-bit.
    Hdr,
}

/// `x-ss-video[0].chromaSamplingType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChromaSampling {
    /// 0: 4:2:0.
    Yuv420,
    /// 1: 4:4:4.
    Yuv444,
}

/// Colour space from `encoderCscMode >> 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorSpace {
    /// 0: BT.601.
    Rec601,
    /// 1: BT.709.
    Rec709,
    /// 2: BT.2020.
    Rec2020,
}

/// Colour range from `encoderCscMode & 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorRange {
    /// 0: limited (video) range.
    Limited,
    /// 1: full range.
    Full,
}

/// The bitrate attributes, in kbps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bitrates {
    /// `x-nv-video[0].initialBitrateKbps`.
    pub initial_kbps: Option<u32>,
    /// `x-nv-video[0].initialPeakBitrateKbps`.
    pub initial_peak_kbps: Option<u32>,
    /// `x-nv-vqos[0].bw.minimumBitrateKbps`.
    pub minimum_kbps: Option<u32>,
    /// `x-nv-vqos[0].bw.maximumBitrateKbps` (required): the client's adjusted bitrate.
    pub maximum_kbps: u32,
    /// `x-ml-video.configuredBitrateKbps`: the user's raw choice, 0 if not sent.
    pub configured_kbps: u32,
}

/// The audio attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioParams {
    /// `x-nv-audio.surround.numChannels`: 2, 6 or 8.
    pub channels: u8,
    /// `x-nv-audio.surround.channelMask`: 0x3, 0x3F or 0x63F.
    pub channel_mask: u32,
    /// `x-nv-audio.surround.AudioQuality`: use the high-quality surround layout.
    pub high_quality: bool,
    /// `x-nv-aqos.packetDuration`: Opus frame length in ms (5, 10, 20, 40 or 60).
    pub packet_duration_ms: u32,
}

/// The client's stream settings from its ANNOUNCE body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamConfig {
    /// `x-nv-video[0].clientViewportWd`.
    pub width: u32,
    /// `x-nv-video[0].clientViewportHt`.
    pub height: u32,
    /// `x-nv-video[0].maxFPS`.
    pub fps: u32,
    /// `x-nv-video[0].clientRefreshRateX100`: display refresh × 100, or 0.
    pub client_refresh_rate_x100: u32,
    /// `x-nv-video[0].packetSize`: NV header plus data per video packet, without RTP header.
    pub packet_size: u32,
    /// Bitrates.
    pub bitrate: Bitrates,
    /// `x-nv-vqos[0].fec.minRequiredFecPackets`: parity shards per block at least.
    pub min_required_fec_packets: u32,
    /// `x-nv-video[0].videoEncoderSlicesPerFrame`.
    pub slices_per_frame: u32,
    /// `x-nv-vqos[0].bitStreamFormat`.
    pub codec: VideoCodec,
    /// `x-nv-video[0].dynamicRangeMode`.
    pub dynamic_range: DynamicRange,
    /// `x-ss-video[0].chromaSamplingType`.
    pub chroma_sampling: ChromaSampling,
    /// `x-nv-video[0].maxNumReferenceFrames`: 0 means any, 1 restricts the encoder to one.
    pub max_reference_frames: u32,
    /// From `x-nv-video[0].encoderCscMode`.
    pub color_space: ColorSpace,
    /// From `x-nv-video[0].encoderCscMode`.
    pub color_range: ColorRange,
    /// `x-ss-video[0].intraRefresh`.
    pub intra_refresh: bool,
    /// Audio settings.
    pub audio: AudioParams,
    /// `x-nv-general.featureFlags` (0x20 = audio encryption).
    pub nv_feature_flags: u32,
    /// `x-ml-general.featureFlags` ([`ML_FEATURE_FEC_STATUS`], [`ML_FEATURE_SESSION_ID_V1`]).
    pub ml_feature_flags: u32,
    /// `x-ss-general.encryptionEnabled`.
    pub encryption_enabled: EncryptionFlags,
    /// `x-nv-general.useReliableUdp`: control protocol id, 13 = encrypted control stream.
    pub control_protocol: u32,
    /// `x-nv-vqos[0].qosTrafficType`: nonzero allows DSCP tagging of video.
    pub video_qos_type: u32,
    /// `x-nv-aqos.qosTrafficType`: nonzero allows DSCP tagging of audio.
    pub audio_qos_type: u32,
}

/// Attribute names, in the order moonlight-common-c emits them.
mod attr {
    pub const ML_FEATURE_FLAGS: &str = "x-ml-general.featureFlags";
    pub const ENCRYPTION_ENABLED: &str = "x-ss-general.encryptionEnabled";
    pub const CHROMA_SAMPLING: &str = "x-ss-video[0].chromaSamplingType";
    pub const WIDTH: &str = "x-nv-video[0].clientViewportWd";
    pub const HEIGHT: &str = "x-nv-video[0].clientViewportHt";
    pub const FPS: &str = "x-nv-video[0].maxFPS";
    pub const PACKET_SIZE: &str = "x-nv-video[0].packetSize";
    pub const INITIAL_BITRATE: &str = "x-nv-video[0].initialBitrateKbps";
    pub const INITIAL_PEAK_BITRATE: &str = "x-nv-video[0].initialPeakBitrateKbps";
    pub const MIN_BITRATE: &str = "x-nv-vqos[0].bw.minimumBitrateKbps";
    pub const MAX_BITRATE: &str = "x-nv-vqos[0].bw.maximumBitrateKbps";
    pub const CONFIGURED_BITRATE: &str = "x-ml-video.configuredBitrateKbps";
    pub const VIDEO_QOS: &str = "x-nv-vqos[0].qosTrafficType";
    pub const AUDIO_QOS: &str = "x-nv-aqos.qosTrafficType";
    pub const NV_FEATURE_FLAGS: &str = "x-nv-general.featureFlags";
    pub const RELIABLE_UDP: &str = "x-nv-general.useReliableUdp";
    pub const MIN_FEC: &str = "x-nv-vqos[0].fec.minRequiredFecPackets";
    pub const SLICES: &str = "x-nv-video[0].videoEncoderSlicesPerFrame";
    pub const BIT_STREAM_FORMAT: &str = "x-nv-vqos[0].bitStreamFormat";
    pub const DYNAMIC_RANGE: &str = "x-nv-video[0].dynamicRangeMode";
    pub const MAX_REF_FRAMES: &str = "x-nv-video[0].maxNumReferenceFrames";
    pub const REFRESH_X100: &str = "x-nv-video[0].clientRefreshRateX100";
    pub const CHANNELS: &str = "x-nv-audio.surround.numChannels";
    pub const CHANNEL_MASK: &str = "x-nv-audio.surround.channelMask";
    pub const AUDIO_QUALITY: &str = "x-nv-audio.surround.AudioQuality";
    pub const PACKET_DURATION: &str = "x-nv-aqos.packetDuration";
    pub const CSC_MODE: &str = "x-nv-video[0].encoderCscMode";
    pub const INTRA_REFRESH: &str = "x-ss-video[0].intraRefresh";

    /// Every attribute the parser reads.
    pub const KNOWN: [&str; 28] = [
        ML_FEATURE_FLAGS,
        ENCRYPTION_ENABLED,
        CHROMA_SAMPLING,
        WIDTH,
        HEIGHT,
        FPS,
        PACKET_SIZE,
        INITIAL_BITRATE,
        INITIAL_PEAK_BITRATE,
        MIN_BITRATE,
        MAX_BITRATE,
        CONFIGURED_BITRATE,
        VIDEO_QOS,
        AUDIO_QOS,
        NV_FEATURE_FLAGS,
        RELIABLE_UDP,
        MIN_FEC,
        SLICES,
        BIT_STREAM_FORMAT,
        DYNAMIC_RANGE,
        MAX_REF_FRAMES,
        REFRESH_X100,
        CHANNELS,
        CHANNEL_MASK,
        AUDIO_QUALITY,
        PACKET_DURATION,
        CSC_MODE,
        INTRA_REFRESH,
    ];
}

/// The known attributes found in a body, by name.
struct Attributes<'a> {
    values: [Option<&'a str>; attr::KNOWN.len()],
}

impl<'a> Attributes<'a> {
    fn collect(body: &'a str) -> Result<Self, SdpError> {
        let mut values = [None; attr::KNOWN.len()];
        let lines = body.split(['\r', '\n']).filter(|l| !l.is_empty());
        for (i, line) in lines.enumerate() {
            if i == MAX_SDP_LINES {
                return Err(SdpError::TooManyLines);
            }
            let Some(attribute) = line.strip_prefix("a=") else {
                // v=, o=, s=, t=, m= carry nothing the host needs.
                continue;
            };
            let Some((name, value)) = attribute.split_once(':') else {
                continue;
            };
            // The client writes `a=name:value \r\n`; drop the space (and any others).
            let value = value.trim_matches([' ', '\t']);
            if let Some(index) = attr::KNOWN.iter().position(|k| *k == name) {
                let (Some(slot), Some(known)) = (values.get_mut(index), attr::KNOWN.get(index))
                else {
                    continue;
                };
                if slot.is_some() {
                    return Err(SdpError::DuplicateAttribute { attribute: known });
                }
                *slot = Some(value);
            }
        }
        Ok(Self { values })
    }

    fn raw(&self, name: &'static str) -> Option<&'a str> {
        let index = attr::KNOWN.iter().position(|k| *k == name)?;
        self.values.get(index).copied().flatten()
    }

    /// A number, or `None` if the attribute is absent.
    fn optional(&self, name: &'static str) -> Result<Option<u32>, SdpError> {
        self.raw(name).map(|v| number(name, v)).transpose()
    }

    /// A number Sunshine requires.
    fn required(&self, name: &'static str) -> Result<u32, SdpError> {
        self.optional(name)?
            .ok_or(SdpError::MissingAttribute { attribute: name })
    }

    /// A number with Sunshine's default for an omitted attribute.
    fn or_default(&self, name: &'static str, default: u32) -> Result<u32, SdpError> {
        Ok(self.optional(name)?.unwrap_or(default))
    }

    fn bounded(
        &self,
        name: &'static str,
        range: core::ops::RangeInclusive<u32>,
    ) -> Result<u32, SdpError> {
        in_range(name, self.required(name)?, range)
    }

    fn flag(&self, name: &'static str, default: Option<bool>) -> Result<bool, SdpError> {
        let value = match (self.optional(name)?, default) {
            (Some(v), _) => v,
            (None, Some(d)) => return Ok(d),
            (None, None) => return Err(SdpError::MissingAttribute { attribute: name }),
        };
        match value {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(SdpError::OutOfRange {
                attribute: name,
                value,
            }),
        }
    }
}

fn number(attribute: &'static str, value: &str) -> Result<u32, SdpError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SdpError::InvalidNumber { attribute });
    }
    value
        .parse()
        .map_err(|_| SdpError::InvalidNumber { attribute })
}

fn in_range(
    attribute: &'static str,
    value: u32,
    range: core::ops::RangeInclusive<u32>,
) -> Result<u32, SdpError> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(SdpError::OutOfRange { attribute, value })
    }
}

impl StreamConfig {
    /// Parses the client's ANNOUNCE body.
    ///
    /// Lines may end in CR, LF or both; attribute values lose surrounding spaces. Unknown
    /// attributes are ignored; a known one may appear once. Omitted attributes take Sunshine's
    /// defaults (§2.6); those Sunshine requires are errors when missing.
    pub fn parse(body: &[u8]) -> Result<Self, SdpError> {
        if body.len() > MAX_SDP_LEN {
            return Err(SdpError::TooLong);
        }
        let body = core::str::from_utf8(body).map_err(|_| SdpError::NotUtf8)?;
        let a = Attributes::collect(body)?;

        let codec = match a.or_default(attr::BIT_STREAM_FORMAT, 0)? {
            0 => VideoCodec::H264,
            1 => VideoCodec::Hevc,
            2 => VideoCodec::Av1,
            value => {
                return Err(SdpError::OutOfRange {
                    attribute: attr::BIT_STREAM_FORMAT,
                    value,
                });
            }
        };
        let csc = a.or_default(attr::CSC_MODE, 0)?;
        let color_space = match csc >> 1 {
            0 => ColorSpace::Rec601,
            1 => ColorSpace::Rec709,
            2 => ColorSpace::Rec2020,
            _ => {
                return Err(SdpError::OutOfRange {
                    attribute: attr::CSC_MODE,
                    value: csc,
                });
            }
        };
        let color_range = if csc & 1 == 0 {
            ColorRange::Limited
        } else {
            ColorRange::Full
        };
        let channels = match a.required(attr::CHANNELS)? {
            2 => 2,
            6 => 6,
            8 => 8,
            value => {
                return Err(SdpError::OutOfRange {
                    attribute: attr::CHANNELS,
                    value,
                });
            }
        };
        let packet_duration_ms = match a.or_default(attr::PACKET_DURATION, 5)? {
            d @ (5 | 10 | 20 | 40 | 60) => d,
            value => {
                return Err(SdpError::OutOfRange {
                    attribute: attr::PACKET_DURATION,
                    value,
                });
            }
        };

        Ok(Self {
            width: a.bounded(attr::WIDTH, 1..=MAX_DIMENSION)?,
            height: a.bounded(attr::HEIGHT, 1..=MAX_DIMENSION)?,
            fps: a.bounded(attr::FPS, 1..=MAX_FPS)?,
            client_refresh_rate_x100: a.or_default(attr::REFRESH_X100, 0)?,
            packet_size: a.bounded(attr::PACKET_SIZE, MIN_PACKET_SIZE..=MAX_PACKET_SIZE)?,
            bitrate: Bitrates {
                initial_kbps: a.optional(attr::INITIAL_BITRATE)?,
                initial_peak_kbps: a.optional(attr::INITIAL_PEAK_BITRATE)?,
                minimum_kbps: a.optional(attr::MIN_BITRATE)?,
                maximum_kbps: a.bounded(attr::MAX_BITRATE, 1..=u32::MAX)?,
                configured_kbps: a.or_default(attr::CONFIGURED_BITRATE, 0)?,
            },
            min_required_fec_packets: in_range(
                attr::MIN_FEC,
                a.or_default(attr::MIN_FEC, 0)?,
                0..=255,
            )?,
            slices_per_frame: a.bounded(attr::SLICES, 1..=255)?,
            codec,
            dynamic_range: if a.flag(attr::DYNAMIC_RANGE, Some(false))? {
                DynamicRange::Hdr
            } else {
                DynamicRange::Sdr
            },
            chroma_sampling: if a.flag(attr::CHROMA_SAMPLING, Some(false))? {
                ChromaSampling::Yuv444
            } else {
                ChromaSampling::Yuv420
            },
            max_reference_frames: a.bounded(attr::MAX_REF_FRAMES, 0..=16)?,
            color_space,
            color_range,
            intra_refresh: a.flag(attr::INTRA_REFRESH, Some(false))?,
            audio: AudioParams {
                channels,
                channel_mask: a.required(attr::CHANNEL_MASK)?,
                high_quality: a.flag(attr::AUDIO_QUALITY, Some(false))?,
                packet_duration_ms,
            },
            nv_feature_flags: a.or_default(attr::NV_FEATURE_FLAGS, 135)?,
            ml_feature_flags: a.or_default(attr::ML_FEATURE_FLAGS, 0)?,
            encryption_enabled: EncryptionFlags(a.or_default(attr::ENCRYPTION_ENABLED, 0)?),
            control_protocol: a.or_default(attr::RELIABLE_UDP, 1)?,
            video_qos_type: a.or_default(attr::VIDEO_QOS, 5)?,
            audio_qos_type: a.or_default(attr::AUDIO_QOS, 4)?,
        })
    }

    /// Audio must be AES-CBC encrypted: NV feature flag 0x20 or `SS_ENC_AUDIO` (Sunshine ORs
    /// both, §2.6).
    pub fn audio_encrypted(&self) -> bool {
        self.nv_feature_flags & NV_FEATURE_AUDIO_ENCRYPTION != 0
            || self.encryption_enabled.contains(EncryptionFlags::AUDIO)
    }

    /// Video must be encrypted (`SS_ENC_VIDEO`).
    pub fn video_encrypted(&self) -> bool {
        self.encryption_enabled.contains(EncryptionFlags::VIDEO)
    }

    /// The control stream uses V2 IVs (`SS_ENC_CONTROL_V2`); otherwise the legacy IV.
    pub fn control_v2(&self) -> bool {
        self.encryption_enabled
            .contains(EncryptionFlags::CONTROL_V2)
    }

    /// The client ties its ENet peer to the session with `X-SS-Connect-Data`.
    pub fn session_id_v1(&self) -> bool {
        self.ml_feature_flags & ML_FEATURE_SESSION_ID_V1 != 0
    }

    /// The client sends FEC status reports (control type 0x5502).
    pub fn fec_status_reports(&self) -> bool {
        self.ml_feature_flags & ML_FEATURE_FEC_STATUS != 0
    }

    /// Whether audio uses its high-quality layout. Stereo follows the `Host` header (pass
    /// [`crate::rtsp::RtspRequest::host_requests_high_quality_audio`]); surround follows
    /// `AudioQuality`.
    pub fn high_quality_audio(&self, stereo_host_header_hq: Option<bool>) -> bool {
        match (self.audio.channels, stereo_host_header_hq) {
            (2, Some(hq)) => hq,
            _ => self.audio.high_quality,
        }
    }

    /// The Opus layout to encode with; see [`Self::high_quality_audio`].
    pub fn opus_layout(&self, stereo_host_header_hq: Option<bool>) -> &'static OpusLayout {
        let hq = self.high_quality_audio(stereo_host_header_hq);
        OpusLayout::select(self.audio.channels, hq).unwrap_or(&OpusLayout::STEREO)
    }

    /// Sunshine's encoder bitrate (§2.6): with a configured bitrate, remove the FEC share (if
    /// `fec_percentage` ≤ 80), the audio allowance (≤ 20 %) and 500 kbps (≤ 10 %); otherwise
    /// `maximumBitrateKbps`. Integer arithmetic.
    pub fn encoder_bitrate_kbps(&self, fec_percentage: u32, high_quality_audio: bool) -> u32 {
        let mut kbps = u64::from(self.bitrate.configured_kbps);
        if kbps == 0 {
            return self.bitrate.maximum_kbps;
        }
        if fec_percentage <= 80 {
            kbps = kbps * u64::from(100 - fec_percentage) / 100;
        }
        let per_channel = if high_quality_audio { 256 } else { 96 };
        let audio = per_channel * u64::from(self.audio.channels);
        kbps -= audio.min(kbps / 5);
        kbps -= 500u64.min(kbps / 10);
        u32::try_from(kbps).unwrap_or(u32::MAX)
    }

    /// Serialises the settings as moonlight-common-c does for a `7.1.431.-1` host (attribute
    /// order, constant attributes and the trailing space included), with `client_addr` in the
    /// `o=` line. The inverse of [`Self::parse`], for tests and fuzzing.
    pub fn to_sdp(&self, client_addr: &str) -> String {
        let mut s = String::with_capacity(2048);
        let _ = write!(
            s,
            "v=0\r\no=android 0 14 IN IPv4 {client_addr}\r\ns=NVIDIA Streaming Client\r\n"
        );
        let mut a = |name: &str, value: &dyn core::fmt::Display| {
            let _ = write!(s, "a={name}:{value} \r\n");
        };
        let b = &self.bitrate;
        a(attr::ML_FEATURE_FLAGS, &self.ml_feature_flags);
        a(attr::ENCRYPTION_ENABLED, &self.encryption_enabled.0);
        a(
            attr::CHROMA_SAMPLING,
            &u8::from(self.chroma_sampling == ChromaSampling::Yuv444),
        );
        a(attr::WIDTH, &self.width);
        a(attr::HEIGHT, &self.height);
        a(attr::FPS, &self.fps);
        a(attr::PACKET_SIZE, &self.packet_size);
        a("x-nv-video[0].rateControlMode", &4);
        a("x-nv-video[0].timeoutLengthMs", &7000);
        a("x-nv-video[0].framesWithInvalidRefThreshold", &0);
        for (name, value) in [
            (attr::INITIAL_BITRATE, b.initial_kbps),
            (attr::INITIAL_PEAK_BITRATE, b.initial_peak_kbps),
            (attr::MIN_BITRATE, b.minimum_kbps),
            (attr::MAX_BITRATE, Some(b.maximum_kbps)),
            (attr::CONFIGURED_BITRATE, Some(b.configured_kbps)),
        ] {
            if let Some(v) = value {
                a(name, &v);
            }
        }
        a("x-nv-vqos[0].fec.enable", &1);
        a("x-nv-vqos[0].videoQualityScoreUpdateTime", &5000);
        a(attr::VIDEO_QOS, &self.video_qos_type);
        a(attr::AUDIO_QOS, &self.audio_qos_type);
        a(attr::NV_FEATURE_FLAGS, &self.nv_feature_flags);
        a(attr::RELIABLE_UDP, &self.control_protocol);
        a(attr::MIN_FEC, &self.min_required_fec_packets);
        a("x-nv-vqos[0].bllFec.enable", &0);
        a("x-nv-vqos[0].drc.enable", &0);
        a("x-nv-general.enableRecoveryMode", &0);
        a(attr::SLICES, &self.slices_per_frame);
        let format = match self.codec {
            VideoCodec::H264 => 0,
            VideoCodec::Hevc => 1,
            VideoCodec::Av1 => 2,
        };
        if self.codec != VideoCodec::Av1 {
            a("x-nv-clientSupportHevc", &format);
        }
        a(attr::BIT_STREAM_FORMAT, &format);
        a(
            attr::DYNAMIC_RANGE,
            &u8::from(self.dynamic_range == DynamicRange::Hdr),
        );
        a(attr::MAX_REF_FRAMES, &self.max_reference_frames);
        a(attr::REFRESH_X100, &self.client_refresh_rate_x100);
        a(attr::CHANNELS, &self.audio.channels);
        a(attr::CHANNEL_MASK, &self.audio.channel_mask);
        a(
            "x-nv-audio.surround.enable",
            &u8::from(self.audio.channels > 2),
        );
        a(attr::AUDIO_QUALITY, &u8::from(self.audio.high_quality));
        a(attr::PACKET_DURATION, &self.audio.packet_duration_ms);
        let space = match self.color_space {
            ColorSpace::Rec601 => 0,
            ColorSpace::Rec709 => 1,
            ColorSpace::Rec2020 => 2,
        };
        let csc = space << 1 | u8::from(self.color_range == ColorRange::Full);
        a(attr::CSC_MODE, &csc);
        if self.intra_refresh {
            a(attr::INTRA_REFRESH, &1);
        }
        s.push_str("t=0 0\r\nm=video 47998  \r\n");
        s
    }
}

/// One Opus multistream configuration (Sunshine's `audio.cpp: stream_configs`, §5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusLayout {
    /// Channels: 2, 6 or 8.
    pub channels: u8,
    /// Opus streams.
    pub streams: u8,
    /// Coupled (stereo) streams among them.
    pub coupled_streams: u8,
    /// Encoder mapping: coded channel for each input channel in client order
    /// FL FR C LFE BL BR SL SR. Identity for all six.
    pub mapping: &'static [u8],
    /// Bitrate in bits per second.
    pub bitrate: u32,
    /// This is the high-quality variant.
    pub high_quality: bool,
}

impl OpusLayout {
    /// Stereo, 96 kbps.
    pub const STEREO: Self = Self {
        channels: 2,
        streams: 1,
        coupled_streams: 1,
        mapping: &[0, 1],
        bitrate: 96_000,
        high_quality: false,
    };
    /// Stereo high quality, 512 kbps.
    pub const STEREO_HQ: Self = Self {
        channels: 2,
        streams: 1,
        coupled_streams: 1,
        mapping: &[0, 1],
        bitrate: 512_000,
        high_quality: true,
    };
    /// 5.1, 256 kbps.
    pub const SURROUND_51: Self = Self {
        channels: 6,
        streams: 4,
        coupled_streams: 2,
        mapping: &[0, 1, 2, 3, 4, 5],
        bitrate: 256_000,
        high_quality: false,
    };
    /// 5.1 high quality, uncoupled, 1536 kbps.
    pub const SURROUND_51_HQ: Self = Self {
        channels: 6,
        streams: 6,
        coupled_streams: 0,
        mapping: &[0, 1, 2, 3, 4, 5],
        bitrate: 1_536_000,
        high_quality: true,
    };
    /// 7.1, 450 kbps.
    pub const SURROUND_71: Self = Self {
        channels: 8,
        streams: 5,
        coupled_streams: 3,
        mapping: &[0, 1, 2, 3, 4, 5, 6, 7],
        bitrate: 450_000,
        high_quality: false,
    };
    /// 7.1 high quality, uncoupled, 2048 kbps.
    pub const SURROUND_71_HQ: Self = Self {
        channels: 8,
        streams: 8,
        coupled_streams: 0,
        mapping: &[0, 1, 2, 3, 4, 5, 6, 7],
        bitrate: 2_048_000,
        high_quality: true,
    };

    /// The six layouts in DESCRIBE order.
    pub const ALL: [Self; 6] = [
        Self::STEREO,
        Self::STEREO_HQ,
        Self::SURROUND_51,
        Self::SURROUND_51_HQ,
        Self::SURROUND_71,
        Self::SURROUND_71_HQ,
    ];

    /// The layout for a channel count and quality; `None` for counts other than 2, 6, 8.
    pub fn select(channels: u8, high_quality: bool) -> Option<&'static Self> {
        Some(match (channels, high_quality) {
            (2, false) => &Self::STEREO,
            (2, true) => &Self::STEREO_HQ,
            (6, false) => &Self::SURROUND_51,
            (6, true) => &Self::SURROUND_51_HQ,
            (8, false) => &Self::SURROUND_71,
            (8, true) => &Self::SURROUND_71_HQ,
            _ => return None,
        })
    }

    /// The mapping as written after `surround-params=`. For normal-quality surround the client
    /// moves the last digit to index 3 (§5.5), so the host writes elements 3.. rotated left by
    /// one; high-quality and stereo mappings are written as they are.
    pub fn advertised_mapping(&self) -> Vec<u8> {
        let mut m = self.mapping.to_vec();
        if !self.high_quality
            && let Some(tail) = m.get_mut(3..)
            && !tail.is_empty()
        {
            tail.rotate_left(1);
        }
        m
    }

    /// The DESCRIBE line `a=fmtp:97 surround-params=<C><S><K><mapping>` (no line end).
    pub fn surround_params_line(&self) -> String {
        let mut s = format!(
            "a=fmtp:97 surround-params={}{}{}",
            self.channels, self.streams, self.coupled_streams
        );
        for digit in self.advertised_mapping() {
            let _ = write!(s, "{digit}");
        }
        s
    }
}

/// What the host tells the client in its DESCRIBE reply (§2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescribeBody {
    /// `x-ss-general.featureFlags`.
    pub feature_flags: HostFeatureFlags,
    /// `x-ss-general.encryptionSupported`.
    pub encryption_supported: EncryptionFlags,
    /// `x-ss-general.encryptionRequested`.
    pub encryption_requested: EncryptionFlags,
    /// Advertise `x-nv-video[0].refPicInvalidation:1`.
    pub ref_pic_invalidation: bool,
    /// Advertise HEVC (`sprop-parameter-sets=AAAAAU`).
    pub hevc: bool,
    /// Advertise AV1 (`a=rtpmap:98 AV1/90000`).
    pub av1: bool,
}

impl Default for DescribeBody {
    /// H.264 only, no extra input events, control V2 and audio encryption supported, control V2
    /// requested (§7.3).
    fn default() -> Self {
        Self {
            feature_flags: HostFeatureFlags::default(),
            encryption_supported: EncryptionFlags::CONTROL_V2 | EncryptionFlags::AUDIO,
            encryption_requested: EncryptionFlags::CONTROL_V2,
            ref_pic_invalidation: false,
            hevc: false,
            av1: false,
        }
    }
}

impl DescribeBody {
    /// Writes the body in Sunshine's order with `\n` line ends, ending with the six
    /// `surround-params` lines of [`OpusLayout::ALL`].
    pub fn encode(&self) -> String {
        let mut s = String::with_capacity(512);
        let _ = writeln!(s, "a=x-ss-general.featureFlags:{}", self.feature_flags.0);
        let _ = writeln!(
            s,
            "a=x-ss-general.encryptionSupported:{}",
            self.encryption_supported.0
        );
        let _ = writeln!(
            s,
            "a=x-ss-general.encryptionRequested:{}",
            self.encryption_requested.0
        );
        if self.ref_pic_invalidation {
            s.push_str("a=x-nv-video[0].refPicInvalidation:1\n");
        }
        if self.hevc {
            s.push_str("sprop-parameter-sets=AAAAAU\n");
        }
        if self.av1 {
            s.push_str("a=rtpmap:98 AV1/90000\n");
        }
        for layout in &OpusLayout::ALL {
            s.push_str(&layout.surround_params_line());
            s.push('\n');
        }
        s
    }
}

/// Entry points for the fuzz targets in `fuzz/`; not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use super::StreamConfig;

    /// Parses an ANNOUNCE body; an accepted one must survive [`StreamConfig::to_sdp`].
    pub fn announce(data: &[u8]) {
        if let Ok(config) = StreamConfig::parse(data) {
            let _ = config.audio_encrypted();
            let _ = config.opus_layout(Some(true));
            let _ = config.encoder_bitrate_kbps(20, true);
            assert_eq!(
                StreamConfig::parse(config.to_sdp("fuzz").as_bytes()),
                Ok(config)
            );
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
